/* What crl_parse.c (the DER walk) and crl_parse_ref.c (d2i_X509_CRL)
 * share: the body's envelope (PEM, HTML, the outer TLV), the structural
 * policy checks, and the facts read from decoded CRL extensions. Not for
 * other modules. */
#ifndef PKI_CRL_PARSE_INT_H
#define PKI_CRL_PARSE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "probes/crl/crl_parse.h"

/* The DER of a body: `data` itself, or the first CRL PEM block decoded
 * into *pem_der (OPENSSL_free it after any return). Sets info->pem. On
 * CRL_PARSE_OK, *der (*derlen bytes) is the DER and *outer_len the size of its
 * outer TLV (header included), which fits in *derlen. */
enum crl_parse_err crl_envelope(const unsigned char *data, size_t len,
				struct crl_info *info, unsigned char **pem_der,
				const unsigned char **der, size_t *derlen,
				size_t *outer_len);

/* After a successful decode of the outer TLV: trailing bytes, then the
 * version and the two signature algorithm fields. */
enum crl_parse_err crl_structure_checks(const unsigned char *der,
					size_t derlen, size_t outer_len);

/* thisUpdate / nextUpdate / Next CRL Publish to Unix seconds; -EINVAL
 * when unreadable or before 1950. */
int crl_time_unix(const ASN1_TIME *t, int64_t *out);

/* Issuer strings from info->issuer_name (already set). */
void crl_issuer_facts(struct crl_info *info);

/* info->sig_alg from the outer signatureAlgorithm. */
void crl_sig_alg_name(const X509_ALGOR *alg, struct crl_info *info);

/* IDP facts only (indirect, partitioned): entries need them first. */
void crl_idp_facts(const STACK_OF(X509_EXTENSION) *exts,
		   struct crl_info *info);

/* Every other fact of the crlExtensions: CRL number, Delta CRL Indicator,
 * Microsoft CA Version and Next CRL Publish, unknown critical extensions,
 * Freshest CRL URIs. 0 or -ENOMEM. */
int crl_ext_facts(const STACK_OF(X509_EXTENSION) *exts,
		  struct crl_info *info);

/* Does this extension OID (by NID or dotted text) mean something to us? */
bool crl_known_extension(const X509_EXTENSION *ext);

/* The same for an extension OID's DER contents (the fast path). */
bool crl_known_extension_der(const unsigned char *oid, size_t len);

/* An indirect CRL entry's Certificate Issuer names (decoded): the issuer
 * of this and the following entries, *cur (RFC 5280 5.3.3). New issuers
 * are added to info->entry_issuers up to its cap. 0 or -ENOMEM. */
int crl_entry_issuer(struct crl_info *info, const GENERAL_NAMES *gens,
		     uint8_t *cur);

#endif
