/* The reference CRL parser: d2i_X509_CRL, OpenSSL's accessors and
 * X509_CRL_verify, feeding the same facts and the same serial index as
 * crl_parse(). It holds the whole X509_CRL while it works (for a
 * 1,000,000-entry CRL ~380 MB and ~1 s), which is why the probe does not
 * use it; it stays to prove the fast path right (tests, fuzzing) and
 * reads the rare BER-encoded CRL the fast path hands over. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "exporter/xalloc.h"
#include "probes/crl/crl_parse.h"
#include "probes/crl/crl_parse_int.h"

/* Magnitude of an INTEGER without leading zero bytes. */
static const unsigned char *serial_bytes(const ASN1_INTEGER *a, size_t *n)
{
	const unsigned char *p = ASN1_STRING_get0_data(a);
	size_t len = (size_t)ASN1_STRING_length(a);

	while (len > 1 && p[0] == 0) {
		p++;
		len--;
	}
	*n = len;
	return p;
}

static bool entry_unknown_critical(const STACK_OF(X509_EXTENSION) *exts)
{
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);

		if (X509_EXTENSION_get_critical(e) && !crl_known_extension(e))
			return true;
	}
	return false;
}

/* The issuer of an indirect CRL's entry (Certificate Issuer extension,
 * carried forward to the entries that follow, RFC 5280 5.3.3). */
static int entry_issuer(struct crl_info *info, const X509_REVOKED *r,
			uint8_t *cur)
{
	GENERAL_NAMES *gens =
		X509_REVOKED_get_ext_d2i(r, NID_certificate_issuer, NULL, NULL);
	int rc;

	if (!gens)
		return 0;
	rc = crl_entry_issuer(info, gens, cur);
	GENERAL_NAMES_free(gens);
	return rc;
}

static int collect_serials(X509_CRL *crl, struct crl_info *info)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	int cnt = sk_X509_REVOKED_num(revs);	/* -1 for none at all */
	size_t n = cnt > 0 ? (size_t)cnt : 0;

	info->entries = n;
	for (int pass = 0; pass < 2; pass++) {
		uint8_t cur = 0;

		if (pass == 1 && crl_index_alloc(&info->index))
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			const X509_REVOKED *r =
				sk_X509_REVOKED_value(revs, (int)i);
			const ASN1_INTEGER *sn =
				X509_REVOKED_get0_serialNumber(r);
			struct crl_index_entry e = {0};
			ASN1_ENUMERATED *reason;

			e.bytes = serial_bytes(sn, &e.len);
			if (ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER)
				e.flags |= CRL_SERIAL_NEGATIVE;
			reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason,
							  NULL, NULL);
			if (reason && ASN1_ENUMERATED_get(reason) == 8)
				e.flags |= CRL_SERIAL_REMOVE;
			ASN1_ENUMERATED_free(reason);
			if (info->indirect && entry_issuer(info, r, &cur))
				return -ENOMEM;
			e.issuer = cur;
			if (pass == 0) {
				crl_index_count(&info->index, &e);
				if (entry_unknown_critical(
					    X509_REVOKED_get0_extensions(r)))
					info->unknown_critical = true;
			} else if (crl_index_put(&info->index, &e)) {
				return -ENOMEM;
			}
		}
	}
	return crl_index_finish(&info->index) ? -ENOMEM : 0;
}

static void check_signature(X509_CRL *crl, STACK_OF(X509) *issuers,
			    struct crl_info *info)
{
	for (int i = 0; i < sk_X509_num(issuers); i++) {
		X509 *x = sk_X509_value(issuers, i);
		EVP_PKEY *pk;

		if (X509_NAME_cmp(X509_get_subject_name(x),
				  X509_CRL_get_issuer(crl)) != 0)
			continue;
		pk = X509_get0_pubkey(x);
		if (!pk)
			continue;
		ERR_clear_error();
		info->sig = X509_CRL_verify(crl, pk) == 1 ? CRL_SIG_VALID
							  : CRL_SIG_INVALID;
		ERR_clear_error();
		if (info->sig == CRL_SIG_VALID)
			return;
	}
}

static enum crl_parse_err facts(X509_CRL *crl, STACK_OF(X509) *issuers,
				struct crl_info *info)
{
	const STACK_OF(X509_EXTENSION) *exts = X509_CRL_get0_extensions(crl);
	const X509_ALGOR *alg = NULL;
	const ASN1_BIT_STRING *sig = NULL;

	if (crl_time_unix(X509_CRL_get0_lastUpdate(crl), &info->this_update))
		return CRL_PARSE_BAD_TIME;
	if (X509_CRL_get0_nextUpdate(crl)) {
		if (crl_time_unix(X509_CRL_get0_nextUpdate(crl),
				  &info->next_update))
			return CRL_PARSE_BAD_TIME;
		info->has_next_update = true;
	}
	info->issuer_name = X509_NAME_dup(X509_CRL_get_issuer(crl));
	if (!info->issuer_name)
		return CRL_PARSE_NOMEM;
	crl_issuer_facts(info);
	X509_CRL_get0_signature(crl, &sig, &alg);
	crl_sig_alg_name(alg, info);
	crl_idp_facts(exts, info);
	if (crl_ext_facts(exts, info) || collect_serials(crl, info))
		return CRL_PARSE_NOMEM;
	if (issuers)
		check_signature(crl, issuers, info);
	return CRL_PARSE_OK;
}

enum crl_parse_err crl_parse_reference(const unsigned char *data, size_t len,
				       STACK_OF(X509) *issuers,
				       struct crl_info *info)
{
	unsigned char *pem_der = NULL;
	const unsigned char *der, *p;
	size_t derlen, outer_len;
	X509_CRL *crl = NULL;
	enum crl_parse_err rc;

	memset(info, 0, sizeof(*info));
	rc = crl_envelope(data, len, info, &pem_der, &der, &derlen,
			  &outer_len);
	if (rc)
		goto out;
	p = der;
	ERR_clear_error();
	crl = d2i_X509_CRL(NULL, &p, (long)outer_len);
	ERR_clear_error();
	if (!crl) {
		rc = CRL_PARSE_BAD_DER;
		goto out;
	}
	rc = crl_structure_checks(der, derlen, outer_len);
	if (rc)
		goto out;
	info->bytes = derlen;
	rc = facts(crl, issuers, info);
out:
	X509_CRL_free(crl);
	OPENSSL_free(pem_der);
	return rc;
}

/* ---- comparing two parses ---- */

#define DIFF(cond, ...)                                                       \
	do {                                                                 \
		if (cond) {                                                  \
			snprintf(why, whylen, __VA_ARGS__);                  \
			return -1;                                           \
		}                                                            \
	} while (0)

static bool name_differs(const X509_NAME *a, const X509_NAME *b)
{
	if (!a || !b)
		return a != b;
	return X509_NAME_cmp(a, b) != 0;
}

static int index_diff(const struct crl_index *a, const struct crl_index *b,
		      char *why, size_t whylen)
{
	DIFF(crl_index_size(a) != crl_index_size(b), "index size %zu / %zu",
	     crl_index_size(a), crl_index_size(b));
	DIFF(a->n != b->n || a->width != b->width || a->nodd != b->nodd,
	     "index layout %zu x %zu + %zu / %zu x %zu + %zu", a->n, a->width,
	     a->nodd, b->n, b->width, b->nodd);
	DIFF(crl_index_bytes(a) != crl_index_bytes(b), "index bytes %zu / %zu",
	     crl_index_bytes(a), crl_index_bytes(b));
	for (size_t i = 0; i < crl_index_size(a); i++) {
		struct crl_index_entry x, y;

		crl_index_at(a, i, &x);
		crl_index_at(b, i, &y);
		DIFF(x.len != y.len || x.flags != y.flags ||
			     x.issuer != y.issuer ||
			     memcmp(x.bytes, y.bytes, x.len) != 0,
		     "index entry %zu differs", i);
	}
	return 0;
}

int crl_info_diff(const struct crl_info *a, const struct crl_info *b,
		  char *why, size_t whylen)
{
	DIFF(strcmp(a->issuer, b->issuer), "issuer '%s' / '%s'", a->issuer,
	     b->issuer);
	DIFF(strcmp(a->issuer_cn, b->issuer_cn), "issuer_cn '%s' / '%s'",
	     a->issuer_cn, b->issuer_cn);
	DIFF(name_differs(a->issuer_name, b->issuer_name), "issuer_name");
	DIFF(a->this_update != b->this_update, "this_update %lld / %lld",
	     (long long)a->this_update, (long long)b->this_update);
	DIFF(a->has_next_update != b->has_next_update ||
		     a->next_update != b->next_update,
	     "next_update %d:%lld / %d:%lld", a->has_next_update,
	     (long long)a->next_update, b->has_next_update,
	     (long long)b->next_update);
	DIFF(a->has_number != b->has_number || strcmp(a->number, b->number) ||
		     a->number_value != b->number_value,
	     "number %d:'%s' / %d:'%s'", a->has_number, a->number,
	     b->has_number, b->number);
	DIFF(a->is_delta != b->is_delta ||
		     strcmp(a->base_number, b->base_number) ||
		     a->base_value != b->base_value,
	     "delta %d:'%s' / %d:'%s'", a->is_delta, a->base_number,
	     b->is_delta, b->base_number);
	DIFF(a->has_next_publish != b->has_next_publish ||
		     a->next_publish != b->next_publish,
	     "next_publish");
	DIFF(a->has_ca_version != b->has_ca_version ||
		     a->ca_version != b->ca_version,
	     "ca_version");
	DIFF(a->nfreshest != b->nfreshest, "freshest count %zu / %zu",
	     a->nfreshest, b->nfreshest);
	for (size_t i = 0; i < a->nfreshest; i++)
		DIFF(strcmp(a->freshest[i], b->freshest[i]),
		     "freshest[%zu] '%s' / '%s'", i, a->freshest[i],
		     b->freshest[i]);
	DIFF(strcmp(a->sig_alg, b->sig_alg), "sig_alg '%s' / '%s'", a->sig_alg,
	     b->sig_alg);
	DIFF(a->sig != b->sig, "signature %d / %d", (int)a->sig, (int)b->sig);
	DIFF(a->unknown_critical != b->unknown_critical,
	     "unknown_critical %d / %d", a->unknown_critical,
	     b->unknown_critical);
	DIFF(a->indirect != b->indirect, "indirect");
	DIFF(a->partitioned != b->partitioned, "partitioned");
	DIFF(a->pem != b->pem, "pem");
	DIFF(a->bytes != b->bytes, "bytes %zu / %zu", a->bytes, b->bytes);
	DIFF(a->entries != b->entries, "entries %zu / %zu", a->entries,
	     b->entries);
	DIFF(a->nentry_issuers != b->nentry_issuers, "entry issuers %zu / %zu",
	     a->nentry_issuers, b->nentry_issuers);
	for (size_t i = 0; i < a->nentry_issuers; i++)
		DIFF(name_differs(a->entry_issuers[i], b->entry_issuers[i]),
		     "entry issuer %zu", i);
	return index_diff(&a->index, &b->index, why, whylen);
}
