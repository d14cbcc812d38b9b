/* libFuzzer: the CRL body parser (DER, PEM, curl's LDAP output), through
 * the public API only (probes/crl/crl_parse.h):
 *   - crl_parse never crashes, leaks or returns a reason outside its set;
 *   - differential: when crl_parse and the OpenSSL-based
 *     crl_parse_reference both accept the bytes, crl_info_diff finds no
 *     difference (built with PKI_FUZZ_CRL_REF, when the reference exists);
 *   - crl_lookup of a few serials on what was parsed;
 *   - crl_ldap_unwrap, then crl_parse of what it unwrapped. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "exporter/xalloc.h"
#include "probes/crl/crl_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                 \
		if (!(c))                                                    \
			__builtin_trap();                                    \
	} while (0)

static void lookups(const struct crl_info *info)
{
	static const long serials[] = {0, 1, 0x7f, 0x80, 0x7fffffff, -1};
	ASN1_INTEGER *a = ASN1_INTEGER_new();
	bool removed = false;

	if (!a || !info->issuer_name) {
		ASN1_INTEGER_free(a);
		return;
	}
	for (size_t i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
		int r;

		ASN1_INTEGER_set(a, serials[i]);
		r = crl_lookup(info, a, info->issuer_name, &removed);
		CHECK(r == 0 || r == 1);
	}
	ASN1_INTEGER_free(a);
}

static enum crl_parse_err parse_checked(const unsigned char *p, size_t n)
{
	struct crl_info info;
	enum crl_parse_err e;

	memset(&info, 0, sizeof(info));
	e = crl_parse(p, n, NULL, &info);
	CHECK(e >= CRL_PARSE_OK && e < CRL_PARSE__COUNT);
	CHECK(strcmp(crl_parse_err_str(e), "unknown") != 0);
	if (e == CRL_PARSE_OK) {
		CHECK(memchr(info.issuer, '\0', sizeof(info.issuer)) != NULL);
		CHECK(memchr(info.number, '\0', sizeof(info.number)) != NULL);
		CHECK(info.nfreshest <= CRL_FRESHEST_MAX);
		CHECK(info.nentry_issuers <= CRL_ENTRY_ISSUERS_MAX);
		lookups(&info);
#ifdef PKI_FUZZ_CRL_REF
		{
			struct crl_info ref;
			char why[512];

			memset(&ref, 0, sizeof(ref));
			if (crl_parse_reference(p, n, NULL, &ref) ==
				    CRL_PARSE_OK &&
			    crl_info_diff(&info, &ref, why, sizeof(why)) != 0) {
				fprintf(stderr, "crl_parse and crl_parse_reference "
						"disagree: %s\n", why);
				__builtin_trap();
			}
			crl_info_cleanup(&ref);
		}
#endif
	}
	crl_info_cleanup(&info);
	ERR_clear_error();
	return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *der = NULL;
	size_t derlen = 0;

	if (size > 1024 * 1024)
		return -1;
	parse_checked(data, size);
	if (crl_ldap_unwrap(data, size, &der, &derlen) == CRL_PARSE_OK) {
		CHECK(der != NULL || derlen == 0);
		parse_checked(der ? der : (const unsigned char *)"", derlen);
	}
	xfree(der);
	ERR_clear_error();
	return 0;
}
