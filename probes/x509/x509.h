/* Certificate analysis shared by the tls, store and file probes and the
 * check command: a pure function from one certificate to its facts. */
#ifndef PKI_X509_H
#define PKI_X509_H

#include <stdbool.h>
#include <stdint.h>
#include <openssl/x509.h>

#define X509_SANS_MAX 4096	/* bytes of the joined SAN label */
#define X509_URLS_MAX 8192	/* bytes of each joined CDP/AIA list */

struct x509_facts {
	char subject_cn[256];
	char issuer_cn[256];
	char serial[132];	/* uppercase hex as `openssl x509 -serial` */
	int64_t not_before;	/* Unix seconds */
	int64_t not_after;
	bool dates_ok;		/* both times parsed */
	char sig_alg[64];	/* "sha256WithRSAEncryption" */
	char key_type[16];	/* "RSA", "EC", "ED25519", ... */
	int key_bits;
	char sha1[41];		/* lowercase hex, no colons */
	char sha256[65];
	char *sans;		/* "DNS:a,IP:127.0.0.1"; owned, never NULL
				   after a successful init */
	bool self_signed;	/* subject == issuer and the key verifies */
	bool is_ca;
	bool weak_signature;	/* MD5, MD4, MD2 or SHA-1 based signature */
	bool weak_key;		/* RSA/DSA under 2048 bits, EC under 224 */
	bool has_eku;		/* an extendedKeyUsage extension is present */
	bool server_auth;	/* usable for TLS servers: EKU serverAuth or
				   anyExtendedKeyUsage, or no EKU at all */
	bool client_auth;
	char *cdp;		/* CRL distribution point URIs, space-separated;
				   owned, "" when none */
	char *ocsp;		/* AIA OCSP URIs, space-separated, owned */
	char *ca_issuers;	/* AIA caIssuers URIs, space-separated, owned */
};

/* Fill `f` from `x`. Returns 0 or -ENOMEM; on error nothing is owned. */
int x509_facts_init(struct x509_facts *f, X509 *x);
void x509_facts_cleanup(struct x509_facts *f);

/* ASN1_TIME to Unix seconds; -EINVAL when unparsable. */
int x509_time_to_unix(const ASN1_TIME *t, int64_t *out);

/* Does the signature algorithm name denote a weak hash? */
bool x509_sig_alg_weak(const char *sig_alg);

/* Serial number as uppercase hex, the way `openssl x509 -serial` prints
 * it ("-" in front of a negative one). */
void x509_serial_hex(const ASN1_INTEGER *a, char *dst, size_t len);

/* The first CN of a name as UTF-8 ("" if none). */
void x509_name_cn(const X509_NAME *name, char *dst, size_t len);

#endif
