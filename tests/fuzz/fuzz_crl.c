/* libFuzzer: the CRL body parser (DER, PEM, curl's LDAP output), the
 * look-up of a serial, and the issuer name printer. */
#include <stddef.h>
#include <stdint.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crl_info info;
	enum crl_parse_err e;
	unsigned char *der = NULL;
	size_t derlen = 0;

	if (size > 1024 * 1024)
		return -1;
	memset(&info, 0, sizeof(info));
	e = crl_parse(data, size, NULL, &info);
	CHECK(e >= CRL_PARSE_OK && e < CRL_PARSE__COUNT);
	CHECK(strcmp(crl_parse_err_str(e), "unknown") != 0);
	if (e == CRL_PARSE_OK) {
		ASN1_INTEGER *serial = ASN1_INTEGER_new();
		bool removed = false;

		CHECK(memchr(info.issuer, '\0', sizeof(info.issuer)) != NULL);
		CHECK(info.nfreshest <= CRL_FRESHEST_MAX);
		if (serial) {
			/* the first listed serial, and one that is not */
			if (info.entries && info.serials) {
				const struct crl_serial *s = &info.serials[0];

				ASN1_STRING_set(serial, info.blob + s->off,
						s->len);
				if (s->flags & CRL_SERIAL_NEGATIVE)
					serial->type = V_ASN1_NEG_INTEGER;
				if (s->issuer == 0 && info.issuer_name)
					(void)crl_lookup(&info, serial,
							 info.issuer_name,
							 &removed);
			}
			ASN1_INTEGER_set(serial, 0x7fffffff);
			if (info.issuer_name)
				(void)crl_lookup(&info, serial,
						 info.issuer_name, &removed);
			ASN1_INTEGER_free(serial);
		}
	}
	crl_info_cleanup(&info);
	if (crl_ldap_unwrap(data, size, &der, &derlen) == CRL_PARSE_OK) {
		CHECK(der != NULL || derlen == 0);
		memset(&info, 0, sizeof(info));
		(void)crl_parse(der, derlen, NULL, &info);
		crl_info_cleanup(&info);
	}
	xfree(der);
	ERR_clear_error();
	return 0;
}
