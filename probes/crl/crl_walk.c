/* crl_parse(): a CertificateList walked in its DER, never decoded whole.
 *
 * Why: d2i_X509_CRL materialises every entry (an X509_REVOKED with its
 * ASN1_INTEGER, ASN1_TIME and extension stack: ~380 bytes and several
 * allocations each), so a 1,000,000-entry CRL costs ~380 MB and ~1 s before
 * anything is looked at. Here OpenSSL's own primitives do the work on
 * slices: ASN1_get_object's header rules for every TLV, d2i on the few
 * small parts (issuer, times, algorithms, crlExtensions), and
 * EVP_DigestVerify over the tbsCertList bytes. The entries are read twice
 * in place (validate and count, then store) into the compact index of
 * crl_index.h; nothing is allocated per entry.
 *
 * Sameness with d2i_X509_CRL (crl_parse_ref.c) is the contract: every
 * structural rule of X509_CRL's ASN.1 templates is applied (tags, OPTIONAL
 * fields, INTEGER and OID contents, BOOLEAN length, exact lengths), so a
 * CRL d2i refuses is bad_der here too; the facts are read the way
 * OpenSSL's accessors read them (an entry extension present twice counts
 * as absent, as X509V3_get_d2i has it). A BER form d2i accepts and DER
 * forbids (indefinite lengths, constructed strings) is handed to the
 * reference parser. tests/unit/test_crl.c checks both parsers on every
 * corpus CRL, mutations of them, and CRLs signed with RSA, RSA-PSS, ECDSA
 * and Ed25519. */
#include "crl_parse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "exporter/xalloc.h"
#include "probes/crl/crl_parse_int.h"

/* ---- the fast path: walk the DER, decode only the small parts ---- */

/* Besides 0, a walk ends with WALK_BAD (the DER is broken where
 * d2i_X509_CRL would fail too), WALK_BER (a BER form DER forbids but d2i
 * accepts: an indefinite length, a constructed string; the reference
 * parser then reads the CRL, so the two never disagree), or -ENOMEM. */
#define WALK_BAD (-EINVAL)
#define WALK_BER (-EPROTO)

/* One TLV as OpenSSL's decoder sees it. */
struct asn {
	const unsigned char *p;		/* the header */
	const unsigned char *c;		/* the contents */
	const unsigned char *end;	/* past the contents */
	int tag, cls;
	bool cons;
};

static int asn_get_slow(const unsigned char *p, const unsigned char *end,
			struct asn *t)
{
	const unsigned char *q = p;
	long len;
	int r;

	r = ASN1_get_object(&q, &len, &t->tag, &t->cls, end - p);
	if (r & 0x80)
		return WALK_BAD;
	if (r & 1)
		return WALK_BER;
	t->p = p;
	t->c = q;
	t->end = q + len;
	t->cons = (r & V_ASN1_CONSTRUCTED) != 0;
	return 0;
}

/* The TLV at p (before end), read by ASN1_get_object's rules, which are
 * d2i's. The two header forms every CRL uses (a low tag number; a short
 * length or one of 1-4 length bytes) are read inline with the same result;
 * the rest goes to ASN1_get_object. */
static inline int asn_get(const unsigned char *p, const unsigned char *end,
			  struct asn *t)
{
	size_t avail = (size_t)(end - p), len, hdr = 2;

	if (p >= end)
		return WALK_BAD;
	if ((p[0] & 0x1f) == 0x1f || avail < 2 || p[1] == 0x80 || p[1] > 0x84)
		return asn_get_slow(p, end, t);
	if (p[1] < 0x80) {
		len = p[1];
	} else {
		size_t k = p[1] & 0x7f;

		if (avail - 2 < k)
			return WALK_BAD;
		len = 0;
		for (size_t i = 0; i < k; i++)
			len = len << 8 | p[2 + i];
		hdr += k;
	}
	if (len > avail - hdr)
		return WALK_BAD;
	t->tag = p[0] & 0x1f;
	t->cls = p[0] & 0xc0;
	t->cons = (p[0] & 0x20) != 0;
	t->p = p;
	t->c = p + hdr;
	t->end = t->c + len;
	return 0;
}

static bool is_univ(const struct asn *t, int tag)
{
	return t->cls == V_ASN1_UNIVERSAL && t->tag == tag;
}

static bool is_time(const struct asn *t)
{
	return t->cls == V_ASN1_UNIVERSAL &&
	       (t->tag == V_ASN1_UTCTIME || t->tag == V_ASN1_GENERALIZEDTIME);
}

/* INTEGER contents by OpenSSL's rules (c2i_ibuf): not empty, no redundant
 * leading byte. *pad: 1 when the first byte is only a sign byte. */
static bool int_valid(const unsigned char *p, size_t n, size_t *pad)
{
	*pad = 0;
	if (n == 0)
		return false;
	if (n == 1)
		return true;
	if (p[0] == 0) {
		*pad = 1;
	} else if (p[0] == 0xff) {
		for (size_t i = 1; i < n && !*pad; i++)
			*pad = p[i] != 0;
	}
	return !(*pad && (p[0] & 0x80) == (p[1] & 0x80));
}

/* OBJECT IDENTIFIER contents by c2i_ASN1_OBJECT's rules. */
static bool oid_valid(const unsigned char *p, size_t n)
{
	if (n == 0 || n > INT32_MAX || (p[n - 1] & 0x80))
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] == 0x80 && (i == 0 || !(p[i - 1] & 0x80)))
			return false;
	return true;
}

/* The extensions crl_known_extension() knows, as DER contents: an OID has
 * exactly one valid encoding, so comparing bytes is comparing NIDs. */
static const struct {
	uint8_t len;
	uint8_t der[9];
} known_oids[] = {
	{3, {0x55, 0x1d, 0x23}},	/* authorityKeyIdentifier */
	{3, {0x55, 0x1d, 0x14}},	/* cRLNumber */
	{3, {0x55, 0x1d, 0x1b}},	/* deltaCRLIndicator */
	{3, {0x55, 0x1d, 0x1c}},	/* issuingDistributionPoint */
	{3, {0x55, 0x1d, 0x2e}},	/* freshestCRL */
	{8, {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01}},	/* AIA */
	{3, {0x55, 0x1d, 0x12}},	/* issuerAltName */
	{3, {0x55, 0x1d, 0x15}},	/* reasonCode */
	{3, {0x55, 0x1d, 0x18}},	/* invalidityDate */
	{3, {0x55, 0x1d, 0x1d}},	/* certificateIssuer */
	{3, {0x55, 0x1d, 0x17}},	/* holdInstructionCode */
	{9, {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x15, 0x01}},
	{9, {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x15, 0x04}},
	{9, {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x15, 0x0e}},
};
#define OID_REASON 7		/* index in known_oids */
#define OID_CERT_ISSUER 9

static bool oid_is(const unsigned char *p, size_t n, size_t k)
{
	return n == known_oids[k].len && memcmp(p, known_oids[k].der, n) == 0;
}

bool crl_known_extension_der(const unsigned char *oid, size_t len)
{
	for (size_t k = 0; k < sizeof(known_oids) / sizeof(known_oids[0]); k++)
		if (oid_is(oid, len, k))
			return true;
	return false;
}

/* What one revokedCertificates entry says, read without decoding it. */
struct entry {
	const unsigned char *end;	/* past the entry */
	const unsigned char *serial;	/* INTEGER contents */
	size_t serial_len, pad;
	const unsigned char *reason;	/* reasonCode extnValue */
	const unsigned char *issuer;	/* certificateIssuer extnValue */
	size_t reason_len, issuer_len;
	unsigned nreason, nissuer;
	bool unknown_critical;
};

/* Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE,
 * extnValue OCTET STRING }, as X509_EXTENSION's template reads it. */
static int walk_extension(const unsigned char *p, const unsigned char *end,
			  const unsigned char **next, struct entry *e)
{
	struct asn x, t;
	const unsigned char *oid;
	size_t oidlen;
	bool crit = false;
	int rc;

	if ((rc = asn_get(p, end, &x)))
		return rc;
	if (!is_univ(&x, V_ASN1_SEQUENCE) || !x.cons)
		return WALK_BAD;
	*next = x.end;
	if ((rc = asn_get(x.c, x.end, &t)))
		return rc;
	if (!is_univ(&t, V_ASN1_OBJECT) || t.cons ||
	    !oid_valid(t.c, (size_t)(t.end - t.c)))
		return WALK_BAD;
	oid = t.c;
	oidlen = (size_t)(t.end - t.c);
	if ((rc = asn_get(t.end, x.end, &t)))
		return rc;
	if (is_univ(&t, V_ASN1_BOOLEAN)) {
		if (t.cons || t.end - t.c != 1)
			return WALK_BAD;
		crit = t.c[0] != 0;
		if ((rc = asn_get(t.end, x.end, &t)))
			return rc;
	}
	if (!is_univ(&t, V_ASN1_OCTET_STRING))
		return WALK_BAD;
	if (t.cons)
		return WALK_BER;
	if (t.end != x.end)
		return WALK_BAD;
	if (oid_is(oid, oidlen, OID_REASON)) {
		e->nreason++;
		e->reason = t.c;
		e->reason_len = (size_t)(t.end - t.c);
	} else if (oid_is(oid, oidlen, OID_CERT_ISSUER)) {
		e->nissuer++;
		e->issuer = t.c;
		e->issuer_len = (size_t)(t.end - t.c);
	}
	if (crit && !crl_known_extension_der(oid, oidlen))
		e->unknown_critical = true;
	return 0;
}

/* revokedCertificates entry ::= SEQUENCE { userCertificate INTEGER,
 * revocationDate Time, crlEntryExtensions Extensions OPTIONAL }. */
static int walk_entry(const unsigned char *p, const unsigned char *end,
		      struct entry *e)
{
	struct asn seq, t;
	int rc;

	e->nreason = e->nissuer = 0;
	e->unknown_critical = false;
	if ((rc = asn_get(p, end, &seq)))
		return rc;
	if (!is_univ(&seq, V_ASN1_SEQUENCE) || !seq.cons)
		return WALK_BAD;
	e->end = seq.end;
	if ((rc = asn_get(seq.c, seq.end, &t)))
		return rc;
	e->serial = t.c;
	e->serial_len = (size_t)(t.end - t.c);
	if (!is_univ(&t, V_ASN1_INTEGER) || t.cons ||
	    !int_valid(e->serial, e->serial_len, &e->pad))
		return WALK_BAD;
	if ((rc = asn_get(t.end, seq.end, &t)))
		return rc;
	if (!is_time(&t))
		return WALK_BAD;
	if (t.cons)
		return WALK_BER;
	if (t.end == seq.end)
		return 0;
	if ((rc = asn_get(t.end, seq.end, &t)))
		return rc;
	if (!is_univ(&t, V_ASN1_SEQUENCE) || !t.cons || t.end != seq.end)
		return WALK_BAD;
	for (p = t.c; p < t.end;)
		if ((rc = walk_extension(p, t.end, &p, e)))
			return rc;
	return 0;
}

/* reasonCode is removeFromCRL (8): what ASN1_ENUMERATED_get() of the
 * decoded extension gives 8 for. */
static bool reason_is_remove(const unsigned char *p, size_t len)
{
	struct asn t;

	if (len == 0 || asn_get(p, p + len, &t))
		return false;
	return is_univ(&t, V_ASN1_ENUMERATED) && !t.cons && t.end - t.c == 1 &&
	       t.c[0] == 8;
}

/* An entry's flags and issuer (X509_REVOKED_get_ext_d2i: an extension
 * present twice counts as absent). */
static int entry_meaning(struct crl_info *info, const struct entry *e,
			 uint8_t *cur, uint8_t *flags)
{
	*flags = (e->serial[0] & 0x80) ? CRL_SERIAL_NEGATIVE : 0;
	if (e->nreason == 1 && reason_is_remove(e->reason, e->reason_len))
		*flags |= CRL_SERIAL_REMOVE;
	if (info->indirect && e->nissuer == 1) {
		const unsigned char *q = e->issuer;
		GENERAL_NAMES *g = d2i_GENERAL_NAMES(NULL, &q, (long)e->issuer_len);
		int rc = 0;

		if (g)
			rc = crl_entry_issuer(info, g, cur);
		GENERAL_NAMES_free(g);
		if (rc)
			return rc;
	}
	return 0;
}

/* The parts of a CertificateList the walk decodes (all owned). */
struct walk {
	const unsigned char *tbs;	/* tbsCertList, header included */
	size_t tbs_len;
	const unsigned char *rev, *rev_end;	/* revokedCertificates
						   contents, or NULL */
	X509_ALGOR *alg;		/* signatureAlgorithm */
	ASN1_BIT_STRING *sig;
	X509_NAME *issuer;
	ASN1_TIME *this_update, *next_update;
	STACK_OF(X509_EXTENSION) *exts;
};

static void walk_cleanup(struct walk *w)
{
	X509_ALGOR_free(w->alg);
	ASN1_BIT_STRING_free(w->sig);
	X509_NAME_free(w->issuer);
	ASN1_TIME_free(w->this_update);
	ASN1_TIME_free(w->next_update);
	sk_X509_EXTENSION_pop_free(w->exts, X509_EXTENSION_free);
	memset(w, 0, sizeof(*w));
}

/* d2i one small part on exactly its TLV. */
#define D2I_PART(fn, dst, t)                                                  \
	do {                                                                 \
		const unsigned char *q_ = (t).p;                             \
		(dst) = fn(NULL, &q_, (long)((t).end - (t).p));              \
		if (!(dst) || q_ != (t).end)                                 \
			return WALK_BAD;                                     \
	} while (0)

/* CertificateList and tbsCertList, in the order and with the OPTIONAL
 * rules of X509_CRL's and X509_CRL_INFO's templates; the entries are only
 * delimited here (walk_entries reads them). */
static int walk_top(const unsigned char *der, size_t len, struct walk *w)
{
	struct asn outer, tbs, t;
	X509_ALGOR *inner = NULL;
	bool have;
	int rc;

	if ((rc = asn_get(der, der + len, &outer)))
		return rc;
	if (!is_univ(&outer, V_ASN1_SEQUENCE) || !outer.cons)
		return WALK_BAD;
	if ((rc = asn_get(outer.c, outer.end, &tbs)))
		return rc;
	if (!is_univ(&tbs, V_ASN1_SEQUENCE) || !tbs.cons)
		return WALK_BAD;
	w->tbs = tbs.p;
	w->tbs_len = (size_t)(tbs.end - tbs.p);
	if ((rc = asn_get(tbs.end, outer.end, &t)))
		return rc;
	if (!is_univ(&t, V_ASN1_SEQUENCE) || !t.cons)
		return WALK_BAD;
	D2I_PART(d2i_X509_ALGOR, w->alg, t);
	if ((rc = asn_get(t.end, outer.end, &t)))
		return rc;
	if (!is_univ(&t, V_ASN1_BIT_STRING))
		return WALK_BAD;
	if (t.cons)
		return WALK_BER;
	D2I_PART(d2i_ASN1_BIT_STRING, w->sig, t);
	if (t.end != outer.end)
		return WALK_BAD;

	/* tbsCertList */
	if ((rc = asn_get(tbs.c, tbs.end, &t)))
		return rc;
	if (is_univ(&t, V_ASN1_INTEGER)) {	/* version OPTIONAL */
		size_t pad;

		if (t.cons || !int_valid(t.c, (size_t)(t.end - t.c), &pad))
			return WALK_BAD;
		if ((rc = asn_get(t.end, tbs.end, &t)))
			return rc;
	}
	if (!is_univ(&t, V_ASN1_SEQUENCE) || !t.cons)	/* signature */
		return WALK_BAD;
	{
		const unsigned char *q = t.p;

		/* it must decode; the policy compares its bytes with the
		 * outer algorithm's (crl_structure_checks) */
		inner = d2i_X509_ALGOR(NULL, &q, (long)(t.end - t.p));
		X509_ALGOR_free(inner);
		if (!inner || q != t.end)
			return WALK_BAD;
	}
	if ((rc = asn_get(t.end, tbs.end, &t)))	/* issuer */
		return rc;
	D2I_PART(d2i_X509_NAME, w->issuer, t);
	if ((rc = asn_get(t.end, tbs.end, &t)))	/* thisUpdate */
		return rc;
	if (!is_time(&t))
		return WALK_BAD;
	if (t.cons)
		return WALK_BER;
	D2I_PART(d2i_ASN1_TIME, w->this_update, t);
	have = t.end < tbs.end;
	if (have && (rc = asn_get(t.end, tbs.end, &t)))
		return rc;
	if (have && is_time(&t)) {	/* nextUpdate OPTIONAL */
		if (t.cons)
			return WALK_BER;
		D2I_PART(d2i_ASN1_TIME, w->next_update, t);
		have = t.end < tbs.end;
		if (have && (rc = asn_get(t.end, tbs.end, &t)))
			return rc;
	}
	if (have && is_univ(&t, V_ASN1_SEQUENCE)) {	/* revoked OPTIONAL */
		if (!t.cons)
			return WALK_BAD;
		w->rev = t.c;
		w->rev_end = t.end;
		have = t.end < tbs.end;
		if (have && (rc = asn_get(t.end, tbs.end, &t)))
			return rc;
	}
	if (have && t.cls == V_ASN1_CONTEXT_SPECIFIC && t.tag == 0) {
		struct asn s;	/* crlExtensions [0] EXPLICIT OPTIONAL */

		if (!t.cons)
			return WALK_BAD;
		if ((rc = asn_get(t.c, t.end, &s)))
			return rc;
		if (!is_univ(&s, V_ASN1_SEQUENCE) || !s.cons || s.end != t.end)
			return WALK_BAD;
		D2I_PART(d2i_X509_EXTENSIONS, w->exts, s);
		have = t.end < tbs.end;
	}
	return have ? WALK_BAD : 0;
}

/* Both passes over the entries: the first checks them and counts them
 * into the index, the second (store) puts them. Nothing is allocated per
 * entry (a negative serial over 64 bytes aside). */
static int walk_entries(const struct walk *w, struct crl_info *info,
			bool store, size_t *count)
{
	const unsigned char *p = w->rev;
	uint8_t cur = 0;
	size_t n = 0;

	while (p && p < w->rev_end) {
		struct crl_index_entry ie;
		unsigned char small[64], *big = NULL;
		struct entry e;
		uint8_t flags;
		size_t mlen;
		int rc;

		if ((rc = walk_entry(p, w->rev_end, &e)))
			return rc;
		p = e.end;
		n++;
		if (e.unknown_critical)
			info->unknown_critical = true;
		if ((rc = entry_meaning(info, &e, &cur, &flags)))
			return rc;
		/* the magnitude, as ASN1_INTEGER holds it: no sign byte,
		 * two's complement undone; never a leading zero here */
		mlen = e.serial_len - e.pad;
		ie.bytes = e.serial + e.pad;
		ie.len = mlen;
		ie.flags = flags;
		ie.issuer = cur;
		if (!store) {
			crl_index_count(&info->index, &ie);
			continue;
		}
		if (flags & CRL_SERIAL_NEGATIVE) {
			unsigned char *m = small;
			unsigned carry = 1;

			if (mlen > sizeof(small) && !(m = big = xmalloc(mlen)))
				return -ENOMEM;
			for (size_t i = mlen; i-- > 0;) {
				carry += (unsigned)(ie.bytes[i] ^ 0xff);
				m[i] = (unsigned char)carry;
				carry >>= 8;
			}
			ie.bytes = m;
		}
		rc = crl_index_put(&info->index, &ie);
		xfree(big);
		if (rc)
			return rc;
	}
	*count = n;
	return 0;
}

/* RSASSA-PSS parameters as ossl_rsa_pss_to_ctx reads them (defaults
 * SHA-1, MGF1 with SHA-1, salt 20, trailer 1). */
static int pss_params(const X509_ALGOR *alg, const EVP_MD **md,
		      const EVP_MD **mgf1, int *saltlen)
{
	RSA_PSS_PARAMS *pss =
		ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS),
					  alg->parameter);
	X509_ALGOR *mh = NULL;
	long trailer = 1;
	int rc = -1;

	if (!pss)
		return -1;
	if (pss->maskGenAlgorithm) {
		if (OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) != NID_mgf1)
			goto out;
		mh = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR),
					       pss->maskGenAlgorithm->parameter);
		if (!mh)
			goto out;
	}
	*md = pss->hashAlgorithm
		      ? EVP_get_digestbyobj(pss->hashAlgorithm->algorithm)
		      : EVP_sha1();
	*mgf1 = mh ? EVP_get_digestbyobj(mh->algorithm) : EVP_sha1();
	*saltlen = pss->saltLength ? (int)ASN1_INTEGER_get(pss->saltLength)
				   : 20;
	if (pss->trailerField)
		trailer = ASN1_INTEGER_get(pss->trailerField);
	if (*md && *mgf1 && *saltlen >= 0 && trailer == 1)
		rc = 0;
out:
	X509_ALGOR_free(mh);
	RSA_PSS_PARAMS_free(pss);
	return rc;
}

/* The signature over the tbsCertList bytes, with the checks
 * ASN1_item_verify_ctx makes: no unused bits, a known algorithm whose key
 * type matches, RSA-PSS parameters; Ed25519/Ed448 take no digest.
 * 1 when it verifies. */
static int verify_tbs(EVP_PKEY *pk, const struct walk *w)
{
	const ASN1_OBJECT *oid = NULL;
	const EVP_MD *md = NULL, *mgf1 = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *ctx;
	int mdnid, pknid, saltlen, ret = -1;

	if (w->sig->flags & 0x7)
		return -1;
	X509_ALGOR_get0(&oid, NULL, NULL, w->alg);
	if (!OBJ_find_sigid_algs(OBJ_obj2nid(oid), &mdnid, &pknid))
		return -1;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -1;
	if (mdnid == NID_undef && pknid == EVP_PKEY_RSA_PSS) {
		if ((!EVP_PKEY_is_a(pk, "RSA") && !EVP_PKEY_is_a(pk, "RSA-PSS")) ||
		    pss_params(w->alg, &md, &mgf1, &saltlen) ||
		    !EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pk) ||
		    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltlen) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgf1) <= 0)
			goto out;
	} else {
		if (!EVP_PKEY_is_a(pk, OBJ_nid2sn(pknid)))
			goto out;
		if (mdnid != NID_undef && !(md = EVP_get_digestbynid(mdnid)))
			goto out;
		if (!EVP_DigestVerifyInit(ctx, NULL, md, NULL, pk))
			goto out;
	}
	ret = EVP_DigestVerify(ctx, w->sig->data, (size_t)w->sig->length,
			       w->tbs, w->tbs_len);
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

static void check_signature(STACK_OF(X509) *issuers, const struct walk *w,
			    struct crl_info *info)
{
	for (int i = 0; i < sk_X509_num(issuers); i++) {
		X509 *x = sk_X509_value(issuers, i);
		EVP_PKEY *pk;

		if (X509_NAME_cmp(X509_get_subject_name(x),
				  info->issuer_name) != 0)
			continue;
		pk = X509_get0_pubkey(x);
		if (!pk)
			continue;
		ERR_clear_error();
		info->sig = verify_tbs(pk, w) == 1 ? CRL_SIG_VALID
						   : CRL_SIG_INVALID;
		ERR_clear_error();
		/* a renewed CA has several certificates with one name: the
		 * first that verifies wins */
		if (info->sig == CRL_SIG_VALID)
			return;
	}
}

static enum crl_parse_err walk_err(int rc)
{
	return rc == -ENOMEM ? CRL_PARSE_NOMEM : CRL_PARSE_BAD_DER;
}

enum crl_parse_err crl_parse(const unsigned char *data, size_t len,
			     STACK_OF(X509) *issuers, struct crl_info *info)
{
	unsigned char *pem_der = NULL;
	const unsigned char *der;
	size_t derlen, outer_len, n = 0;
	enum crl_parse_err rc;
	struct walk w;
	int wrc;

	memset(info, 0, sizeof(*info));
	memset(&w, 0, sizeof(w));
	rc = crl_envelope(data, len, info, &pem_der, &der, &derlen,
			  &outer_len);
	if (rc)
		goto out;
	/* 1: structure, everything d2i_X509_CRL would check, and pass 1
	 * over the entries (they need the issuer and the IDP first) */
	wrc = walk_top(der, outer_len, &w);
	if (wrc == 0) {
		info->issuer_name = w.issuer;	/* owned by info now */
		w.issuer = NULL;
		crl_idp_facts(w.exts, info);
		wrc = walk_entries(&w, info, false, &n);
	}
	if (wrc == WALK_BER) {
		walk_cleanup(&w);
		OPENSSL_free(pem_der);
		crl_info_cleanup(info);
		ERR_clear_error();
		return crl_parse_reference(data, len, issuers, info);
	}
	if (wrc) {
		rc = walk_err(wrc);
		goto out;
	}
	/* 2: the policy, in the order crl_parse_reference applies it */
	rc = crl_structure_checks(der, derlen, outer_len);
	if (rc)
		goto out;
	info->bytes = derlen;
	if (crl_time_unix(w.this_update, &info->this_update)) {
		rc = CRL_PARSE_BAD_TIME;
		goto out;
	}
	if (w.next_update) {
		if (crl_time_unix(w.next_update, &info->next_update)) {
			rc = CRL_PARSE_BAD_TIME;
			goto out;
		}
		info->has_next_update = true;
	}
	/* 3: facts, the index (pass 2), the signature */
	crl_issuer_facts(info);
	crl_sig_alg_name(w.alg, info);
	info->entries = n;
	if (crl_ext_facts(w.exts, info) || crl_index_alloc(&info->index)) {
		rc = CRL_PARSE_NOMEM;
		goto out;
	}
	wrc = walk_entries(&w, info, true, &n);
	if (wrc || crl_index_finish(&info->index)) {
		rc = wrc ? walk_err(wrc) : CRL_PARSE_NOMEM;
		goto out;
	}
	if (issuers)
		check_signature(issuers, &w, info);
out:
	walk_cleanup(&w);
	OPENSSL_free(pem_der);
	ERR_clear_error();
	return rc;
}
