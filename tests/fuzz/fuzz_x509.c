/* libFuzzer: certificate analysis on DER input. d2i_X509 of the bytes,
 * then x509_facts_init and the certificate metrics (rendered, so every
 * label of a hostile certificate goes through the escaper); and the file
 * loader (PEM, DER, PKCS#7, PKCS#12) on the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "exporter/buf.h"
#include "exporter/expo.h"
#include "probes/x509/x509.h"
#include "probes/x509/x509_load.h"
#include "probes/x509/x509_metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                 \
		if (!(c))                                                    \
			__builtin_trap();                                    \
	} while (0)

static void facts(X509 *x)
{
	struct x509_facts f;
	struct expo_set set;
	struct buf out;

	if (x509_facts_init(&f, x) != 0)
		return;
	CHECK(f.sans && f.cdp && f.ocsp && f.ca_issuers);
	CHECK(strlen(f.sans) <= X509_SANS_MAX + 64);
	CHECK(memchr(f.subject_cn, '\0', sizeof(f.subject_cn)) != NULL);
	CHECK(memchr(f.serial, '\0', sizeof(f.serial)) != NULL);
	CHECK(strlen(f.sha256) == 64 || f.sha256[0] == '\0');
	expo_set_init(&set, 1 << 24);
	x509_emit_facts(&set, 0, "m", "t", "a", 0, &f);
	buf_init(&out, 1 << 24);
	CHECK(expo_render(&set, &out) == 0);
	for (size_t i = 0; i < out.len; i++)	/* one sample per line */
		CHECK(out.data[i] != '\0');
	buf_cleanup(&out);
	expo_set_cleanup(&set);
	x509_facts_cleanup(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	struct x509_loaded l;
	X509 *x;

	if (size > 256 * 1024)
		return -1;
	x = d2i_X509(NULL, &p, (long)size);
	if (x) {
		facts(x);
		X509_free(x);
	}
	memset(&l, 0, sizeof(l));
	if (x509_load_mem(data, size, NULL, &l) == 0 && l.certs) {
		for (int i = 0; i < sk_X509_num(l.certs) && i < 8; i++)
			facts(sk_X509_value(l.certs, i));
	}
	x509_loaded_cleanup(&l);
	ERR_clear_error();
	return 0;
}
