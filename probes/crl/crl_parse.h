/* A CRL body (DER, PEM, or curl's LDAP output) to the facts the exporter
 * reports and the little a revocation look-up needs: a compact sorted
 * index of the revoked serial numbers (crl_index.h).
 *
 * crl_parse() (crl_walk.c) never builds an X509_CRL: it walks the DER with
 * ASN1_get_object, decodes only the small parts with OpenSSL (issuer,
 * times, algorithms, the CRL extensions), streams the revoked entries
 * into the index without allocating per entry, and verifies the signature
 * with EVP_DigestVerify over the tbsCertList bytes. crl_parse_reference()
 * is the same contract through d2i_X509_CRL, kept to prove both give the
 * same facts (tests/unit/test_crl.c, tests/fuzz/fuzz_crl.c).
 *
 * Policy for CRLs OpenSSL accepts but stricter parsers (pyca/cryptography,
 * rustls-webpki, BoringSSL's pki library) reject — see probes/crl/README.md:
 * a structural defect that changes what the bytes *mean* is a clean
 * failure with its own reason (trailing bytes after the DER, an explicit
 * version other than v2, inner and outer signature algorithms that differ,
 * a time before 1950); an oddity a validator can still read unambiguously
 * is accepted and reported (no nextUpdate, a negative or over-long CRL
 * number, an empty revokedCertificates container, an unknown critical
 * extension, which also makes look-ups answer "unknown"). */
#ifndef PKI_CRL_PARSE_H
#define PKI_CRL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "probes/crl/crl_index.h"

#define CRL_ISSUER_MAX 1024
#define CRL_NUMBER_MAX 160	/* decimal digits of a (capped) CRL number */
#define CRL_FRESHEST_MAX 4	/* Freshest CRL URIs kept */
#define CRL_ENTRY_ISSUERS_MAX 16	/* indirect CRL: distinct issuers */

/* Why a body is not a usable CRL: a bounded set (the `reason` label). */
enum crl_parse_err {
	CRL_PARSE_OK = 0,
	CRL_PARSE_EMPTY,		/* zero bytes */
	CRL_PARSE_HTML,			/* an HTML / proxy error page */
	CRL_PARSE_NOT_CRL,		/* neither DER nor PEM of a CRL */
	CRL_PARSE_BAD_PEM,		/* PEM armour with broken base64 */
	CRL_PARSE_TRUNCATED,		/* the DER says it is longer */
	CRL_PARSE_BAD_DER,		/* OpenSSL cannot decode it */
	CRL_PARSE_TRAILING_DATA,	/* bytes after the CertificateList */
	CRL_PARSE_BAD_VERSION,		/* version present and not v2 */
	CRL_PARSE_SIGALG_MISMATCH,	/* tbs and outer algorithms differ */
	CRL_PARSE_BAD_TIME,		/* unreadable or before 1950 */
	CRL_PARSE_BAD_LDAP,		/* LDAP answer without a CRL value */
	CRL_PARSE_NOMEM,
	CRL_PARSE__COUNT,
};

const char *crl_parse_err_str(enum crl_parse_err e);

enum crl_sig {
	CRL_SIG_UNKNOWN = 0,	/* no issuer certificate to check with */
	CRL_SIG_VALID,
	CRL_SIG_INVALID,
};

struct crl_info {
	char issuer[CRL_ISSUER_MAX];	/* RFC 4514, as pyca prints it */
	char issuer_cn[256];
	X509_NAME *issuer_name;		/* owned, for matching certificates */
	int64_t this_update;
	int64_t next_update;
	bool has_next_update;
	bool has_number;
	char number[CRL_NUMBER_MAX];	/* decimal */
	double number_value;
	bool is_delta;
	char base_number[CRL_NUMBER_MAX];	/* Delta CRL Indicator */
	double base_value;
	bool has_next_publish;		/* Microsoft Next CRL Publish */
	int64_t next_publish;
	bool has_ca_version;		/* Microsoft CA Version */
	uint32_t ca_version;		/* key index << 16 | cert index */
	char *freshest[CRL_FRESHEST_MAX];	/* Freshest CRL URIs, owned */
	size_t nfreshest;
	char sig_alg[64];
	enum crl_sig sig;
	bool unknown_critical;		/* a critical extension we do not know */
	bool indirect;			/* IDP indirectCRL */
	bool partitioned;		/* IDP onlySome/onlyUser/onlyCA */
	bool pem;			/* came as PEM (or via LDAP) */
	size_t bytes;			/* DER size */
	size_t entries;
	struct crl_index index;		/* the revoked serials, owned */
	X509_NAME *entry_issuers[CRL_ENTRY_ISSUERS_MAX];	/* owned */
	size_t nentry_issuers;
};

/* Parse `len` bytes (DER or PEM, any text around a PEM block). When
 * `issuers` is given, the signature is checked against the first of them
 * whose subject is the CRL issuer. Fills *info (crl_info_cleanup after any
 * return) and returns CRL_PARSE_OK or why not. */
enum crl_parse_err crl_parse(const unsigned char *data, size_t len,
			     STACK_OF(X509) *issuers, struct crl_info *info);

/* The same through d2i_X509_CRL and X509_CRL_verify (memory: the whole
 * X509_CRL, ~380 bytes per entry). For comparisons only. */
enum crl_parse_err crl_parse_reference(const unsigned char *data, size_t len,
				       STACK_OF(X509) *issuers,
				       struct crl_info *info);

/* Compare two parses field by field (every fact, the issuer names, the
 * whole serial index). 0 when equal; otherwise -1 and the first
 * difference written to `why`. */
int crl_info_diff(const struct crl_info *a, const struct crl_info *b,
		  char *why, size_t whylen);

/* curl's output for an LDAP search ("DN: ...\n\tattr;binary:: BASE64\n")
 * to the DER of the first value. *out is owned by the caller (xfree). */
enum crl_parse_err crl_ldap_unwrap(const unsigned char *data, size_t len,
				   unsigned char **out, size_t *outlen);

void crl_info_cleanup(struct crl_info *info);

/* Look a certificate up: 1 when (serial, issuer) is listed (and not a
 * removeFromCRL entry), 0 when not. */
int crl_lookup(const struct crl_info *info, const ASN1_INTEGER *serial,
	       const X509_NAME *cert_issuer, bool *removed);

/* A name in RFC 4514 form (reverse order, pyca's attribute names, UTF-8,
 * escaped); "" for an empty name. */
void crl_name_rfc4514(const X509_NAME *name, char *dst, size_t len);

#endif
