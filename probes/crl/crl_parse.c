#include "crl_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "exporter/buf.h"
#include "exporter/xalloc.h"
#include "probes/crl/crl_parse_int.h"
#include "probes/x509/x509.h"

#define OID_MS_CA_VERSION "1.3.6.1.4.1.311.21.1"
#define OID_MS_NEXT_PUBLISH "1.3.6.1.4.1.311.21.4"
#define OID_MS_PUBLISHED_CDP "1.3.6.1.4.1.311.21.14"
#define MIN_TIME (-631152000LL)	/* 1950-01-01: RFC 5280 UTCTime's floor */

const char *crl_parse_err_str(enum crl_parse_err e)
{
	static const char *const names[CRL_PARSE__COUNT] = {
		[CRL_PARSE_OK] = "ok",
		[CRL_PARSE_EMPTY] = "empty",
		[CRL_PARSE_HTML] = "html_page",
		[CRL_PARSE_NOT_CRL] = "not_a_crl",
		[CRL_PARSE_BAD_PEM] = "bad_pem",
		[CRL_PARSE_TRUNCATED] = "truncated",
		[CRL_PARSE_BAD_DER] = "bad_der",
		[CRL_PARSE_TRAILING_DATA] = "trailing_data",
		[CRL_PARSE_BAD_VERSION] = "bad_version",
		[CRL_PARSE_SIGALG_MISMATCH] = "sigalg_mismatch",
		[CRL_PARSE_BAD_TIME] = "bad_time",
		[CRL_PARSE_BAD_LDAP] = "bad_ldap_answer",
		[CRL_PARSE_NOMEM] = "out_of_memory",
	};

	if (e < 0 || e >= CRL_PARSE__COUNT || !names[e])
		return "unknown";
	return names[e];
}

/* ---- names ---- */

/* The attribute names RFC 4514 defines (and pyca prints); every other
 * attribute type is written as its dotted OID. */
static const char *rfc4514_key(int nid)
{
	switch (nid) {
	case NID_commonName:
		return "CN";
	case NID_localityName:
		return "L";
	case NID_stateOrProvinceName:
		return "ST";
	case NID_organizationName:
		return "O";
	case NID_organizationalUnitName:
		return "OU";
	case NID_countryName:
		return "C";
	case NID_streetAddress:
		return "STREET";
	case NID_domainComponent:
		return "DC";
	case NID_userId:
		return "UID";
	default:
		return NULL;
	}
}

static void put_escaped(struct buf *b, const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = v[i];

		if (c == '\0') {
			buf_puts(b, "\\00");
			continue;
		}
		if (strchr("\\\"+,;<>", c) || (i == 0 && (c == '#' || c == ' ')) ||
		    (i == n - 1 && c == ' '))
			buf_putc(b, '\\');
		buf_putc(b, c);
	}
}

void crl_name_rfc4514(const X509_NAME *name, char *dst, size_t len)
{
	struct buf b;
	int n = name ? X509_NAME_entry_count(name) : 0;
	int prev_set = -1;

	dst[0] = '\0';
	buf_init(&b, len > 1 ? len - 1 : 0);
	for (int i = n - 1; i >= 0; i--) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
		const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
		const char *key = rfc4514_key(OBJ_obj2nid(obj));
		unsigned char *utf8 = NULL;
		char oid[80];
		int set = X509_NAME_ENTRY_set(e), vn;

		if (i != n - 1)
			buf_putc(&b, set == prev_set ? '+' : ',');
		prev_set = set;
		if (!key) {
			OBJ_obj2txt(oid, sizeof(oid), obj, 1);
			key = oid;
		}
		buf_puts(&b, key);
		buf_putc(&b, '=');
		vn = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
		if (vn >= 0) {
			put_escaped(&b, (const char *)utf8, (size_t)vn);
			OPENSSL_free(utf8);
		}
	}
	if (b.err == -E2BIG) {
		/* too long for a label: keep what fits, marked */
		buf_cleanup(&b);
		snprintf(dst, len, "(name too long)");
		return;
	}
	if (b.data)
		snprintf(dst, len, "%s", b.data);
	buf_cleanup(&b);
}

/* ---- a little DER, for what OpenSSL's API does not tell ---- */

struct tlv {
	unsigned tag;
	const unsigned char *p;	/* start of the TLV */
	size_t hdr, len;	/* header and content length */
};

/* Read one TLV at p (at most avail bytes). Returns 0, -EINVAL when the
 * header is malformed, -ENODATA when it claims more than avail. */
static int der_tlv(const unsigned char *p, size_t avail, struct tlv *t)
{
	size_t n = 0, hdr = 2;

	if (avail < 2 || (p[0] & 0x1f) == 0x1f)
		return -EINVAL;
	t->tag = p[0];
	t->p = p;
	if (p[1] < 0x80) {
		n = p[1];
	} else {
		unsigned k = p[1] & 0x7f;

		if (k == 0 || k > 4)
			return -EINVAL;
		if (avail < 2 + k)
			return -ENODATA;
		for (unsigned i = 0; i < k; i++)
			n = (n << 8) | p[2 + i];
		hdr += k;
	}
	t->hdr = hdr;
	t->len = n;
	if (n > avail - hdr)
		return -ENODATA;
	return 0;
}

/* Structural checks on a decoded CertificateList: version and the two
 * signature algorithm fields. */
static enum crl_parse_err der_checks(const unsigned char *der, size_t len)
{
	struct tlv outer, tbs, first, alg, outer_alg;
	const unsigned char *p;
	size_t left;

	if (der_tlv(der, len, &outer) || der_tlv(der + outer.hdr, outer.len, &tbs))
		return CRL_PARSE_BAD_DER;
	p = tbs.p + tbs.hdr;
	left = tbs.len;
	if (der_tlv(p, left, &first))
		return CRL_PARSE_BAD_DER;
	if (first.tag == 0x02) {
		/* version is OPTIONAL (absent = v1); when present it must be
		 * v2 (1): an explicit 0 or a "v3" is not a CRL RFC 5280
		 * knows */
		if (first.len != 1 || first.p[first.hdr] != 1)
			return CRL_PARSE_BAD_VERSION;
		p += first.hdr + first.len;
		left -= first.hdr + first.len;
		if (der_tlv(p, left, &alg))
			return CRL_PARSE_BAD_DER;
	} else {
		alg = first;
	}
	p = tbs.p + tbs.hdr + tbs.len;
	left = outer.len - (tbs.hdr + tbs.len);
	if (der_tlv(p, left, &outer_alg))
		return CRL_PARSE_BAD_DER;
	if (alg.hdr + alg.len != outer_alg.hdr + outer_alg.len ||
	    memcmp(alg.p, outer_alg.p, alg.hdr + alg.len) != 0)
		return CRL_PARSE_SIGALG_MISMATCH;
	return CRL_PARSE_OK;
}

/* ---- facts ---- */

static void int_to_dec(const ASN1_INTEGER *a, char *dst, size_t len,
		       double *value)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(a, NULL);
	char *s = bn ? BN_bn2dec(bn) : NULL;

	snprintf(dst, len, "%s", s ? s : "");
	*value = s ? strtod(s, NULL) : 0;
	OPENSSL_free(s);
	BN_free(bn);
}

enum crl_parse_err crl_structure_checks(const unsigned char *der,
					size_t derlen, size_t outer_len)
{
	/* OpenSSL ignores what follows the CertificateList; a stricter
	 * reader (and a signature over "the file") would not */
	if (derlen != outer_len)
		return CRL_PARSE_TRAILING_DATA;
	return der_checks(der, derlen);
}

/* ---- facts from decoded parts (both parsers) ---- */

int crl_time_unix(const ASN1_TIME *t, int64_t *out)
{
	if (x509_time_to_unix(t, out) || *out < MIN_TIME)
		return -EINVAL;
	return 0;
}

void crl_issuer_facts(struct crl_info *info)
{
	crl_name_rfc4514(info->issuer_name, info->issuer, sizeof(info->issuer));
	x509_name_cn(info->issuer_name, info->issuer_cn,
		     sizeof(info->issuer_cn));
}

void crl_sig_alg_name(const X509_ALGOR *alg, struct crl_info *info)
{
	const ASN1_OBJECT *obj = NULL;

	if (alg)
		X509_ALGOR_get0(&obj, NULL, NULL, alg);
	if (!obj || OBJ_obj2txt(info->sig_alg, sizeof(info->sig_alg), obj, 0) <= 0)
		snprintf(info->sig_alg, sizeof(info->sig_alg), "unknown");
}

static const ASN1_OCTET_STRING *ext_data_by_oid(
	const STACK_OF(X509_EXTENSION) *exts, const char *oid)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int idx = obj ? X509v3_get_ext_by_OBJ(exts, obj, -1) : -1;

	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return NULL;
	return X509_EXTENSION_get_data(X509v3_get_ext(exts, idx));
}

/* Microsoft CA Version (INTEGER) and Next CRL Publish (UTCTime), decoded
 * from the extension's DER: OpenSSL knows neither. */
static void ms_extensions(const STACK_OF(X509_EXTENSION) *exts,
			  struct crl_info *info)
{
	const ASN1_OCTET_STRING *os;
	const unsigned char *p;

	os = ext_data_by_oid(exts, OID_MS_CA_VERSION);
	if (os) {
		ASN1_INTEGER *v;
		uint64_t u;

		p = ASN1_STRING_get0_data(os);
		v = d2i_ASN1_INTEGER(NULL, &p, ASN1_STRING_length(os));
		if (v && ASN1_INTEGER_get_uint64(&u, v) == 1 &&
		    u <= UINT32_MAX) {
			info->has_ca_version = true;
			info->ca_version = (uint32_t)u;
		}
		ASN1_INTEGER_free(v);
	}
	os = ext_data_by_oid(exts, OID_MS_NEXT_PUBLISH);
	if (os) {
		ASN1_TIME *t;

		p = ASN1_STRING_get0_data(os);
		t = d2i_ASN1_TIME(NULL, &p, ASN1_STRING_length(os));
		if (t && crl_time_unix(t, &info->next_publish) == 0)
			info->has_next_publish = true;
		ASN1_TIME_free(t);
	}
}

bool crl_known_extension(const X509_EXTENSION *ext)
{
	const ASN1_OBJECT *obj =
		X509_EXTENSION_get_object((X509_EXTENSION *)ext);
	char oid[80];

	switch (OBJ_obj2nid(obj)) {
	case NID_authority_key_identifier:
	case NID_crl_number:
	case NID_delta_crl:
	case NID_issuing_distribution_point:
	case NID_freshest_crl:
	case NID_info_access:
	case NID_issuer_alt_name:
	case NID_crl_reason:
	case NID_invalidity_date:
	case NID_certificate_issuer:
	case NID_hold_instruction_code:
		return true;
	default:
		break;
	}
	OBJ_obj2txt(oid, sizeof(oid), obj, 1);
	return strcmp(oid, OID_MS_CA_VERSION) == 0 ||
	       strcmp(oid, OID_MS_NEXT_PUBLISH) == 0 ||
	       strcmp(oid, OID_MS_PUBLISHED_CDP) == 0;
}

static bool unknown_critical(const STACK_OF(X509_EXTENSION) *exts)
{
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);

		if (X509_EXTENSION_get_critical(e) && !crl_known_extension(e))
			return true;
	}
	return false;
}

/* URIs of the Freshest CRL extension; other name forms (a DirName, as
 * PKITS uses) are not fetchable and are skipped. */
static int freshest_uris(const STACK_OF(X509_EXTENSION) *exts,
			 struct crl_info *info)
{
	STACK_OF(DIST_POINT) *dps =
		X509V3_get_d2i(exts, NID_freshest_crl, NULL, NULL);
	int rc = 0;

	for (int i = 0; i < sk_DIST_POINT_num(dps); i++) {
		const DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		const GENERAL_NAMES *names;

		if (!dp->distpoint || dp->distpoint->type != 0)
			continue;
		names = dp->distpoint->name.fullname;
		for (int k = 0; k < sk_GENERAL_NAME_num(names); k++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, k);
			const ASN1_STRING *u;
			struct buf b;

			if (g->type != GEN_URI ||
			    info->nfreshest == CRL_FRESHEST_MAX)
				continue;
			u = g->d.uniformResourceIdentifier;
			buf_init(&b, 4096);
			/* a space (AD CS CA names) is sent encoded, as a
			 * client fetching it would */
			for (int j = 0; j < ASN1_STRING_length(u); j++) {
				unsigned char c = ASN1_STRING_get0_data(u)[j];

				if (c <= ' ' || c >= 0x7f)
					buf_printf(&b, "%%%02X", c);
				else
					buf_putc(&b, (char)c);
			}
			if (b.err == -ENOMEM) {
				rc = -ENOMEM;
				continue;
			}
			if (b.len)
				info->freshest[info->nfreshest++] =
					buf_steal(&b, NULL);
			buf_cleanup(&b);
		}
	}
	CRL_DIST_POINTS_free(dps);
	return rc;
}

void crl_idp_facts(const STACK_OF(X509_EXTENSION) *exts,
		   struct crl_info *info)
{
	ISSUING_DIST_POINT *idp;
	int crit = -1;

	idp = X509V3_get_d2i(exts, NID_issuing_distribution_point, &crit, NULL);
	if (idp) {
		info->indirect = idp->indirectCRL != 0;
		info->partitioned = idp->onlysomereasons || idp->onlyuser ||
				    idp->onlyCA || idp->onlyattr;
		ISSUING_DIST_POINT_free(idp);
	}
}

int crl_ext_facts(const STACK_OF(X509_EXTENSION) *exts,
		  struct crl_info *info)
{
	ASN1_INTEGER *num;
	int crit = -1;

	num = X509V3_get_d2i(exts, NID_crl_number, &crit, NULL);
	if (num) {
		info->has_number = true;
		int_to_dec(num, info->number, sizeof(info->number),
			   &info->number_value);
		ASN1_INTEGER_free(num);
	}
	num = X509V3_get_d2i(exts, NID_delta_crl, &crit, NULL);
	if (num) {
		info->is_delta = true;
		int_to_dec(num, info->base_number, sizeof(info->base_number),
			   &info->base_value);
		ASN1_INTEGER_free(num);
	}
	ms_extensions(exts, info);
	if (unknown_critical(exts))
		info->unknown_critical = true;
	return freshest_uris(exts, info);
}

int crl_entry_issuer(struct crl_info *info, const GENERAL_NAMES *gens,
		     uint8_t *cur)
{
	const X509_NAME *dn = NULL;

	for (int i = 0; i < sk_GENERAL_NAME_num(gens) && !dn; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_DIRNAME)
			dn = g->d.directoryName;
	}
	if (dn && X509_NAME_cmp(dn, info->issuer_name) == 0) {
		*cur = 0;
	} else if (dn) {
		size_t k;

		for (k = 0; k < info->nentry_issuers; k++)
			if (X509_NAME_cmp(dn, info->entry_issuers[k]) == 0)
				break;
		if (k == info->nentry_issuers &&
		    k < CRL_ENTRY_ISSUERS_MAX) {
			info->entry_issuers[k] = X509_NAME_dup(dn);
			if (!info->entry_issuers[k])
				return -ENOMEM;
			info->nentry_issuers++;
		}
		/* past the cap, entries stay with the last issuer known */
		if (k < info->nentry_issuers)
			*cur = (uint8_t)(k + 1);
	}
	return 0;
}

static bool looks_html(const unsigned char *p, size_t len)
{
	while (len && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
		p++;
		len--;
	}
	return len && (p[0] == '<' || (len >= 5 && memcmp(p, "HTTP/", 5) == 0));
}

static bool mem_has(const unsigned char *p, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; n <= len && i <= len - n; i++)
		if (p[i] == (unsigned char)needle[0] && memcmp(p + i, needle, n) == 0)
			return true;
	return false;
}

/* The DER inside the first CRL PEM block; *der is OPENSSL_malloc'ed. */
static enum crl_parse_err pem_unwrap(const unsigned char *data, size_t len,
				     unsigned char **der, long *derlen)
{
	BIO *bio = BIO_new_mem_buf(data, len > INT32_MAX ? INT32_MAX : (int)len);
	enum crl_parse_err rc = CRL_PARSE_BAD_PEM;

	if (!bio)
		return CRL_PARSE_NOMEM;
	for (;;) {
		char *name = NULL, *header = NULL;
		unsigned char *d = NULL;
		long n = 0;

		ERR_clear_error();
		if (!PEM_read_bio(bio, &name, &header, &d, &n))
			break;
		if (strcmp(name, PEM_STRING_X509_CRL) == 0 ||
		    strcmp(name, "CRL") == 0) {
			*der = d;
			*derlen = n;
			rc = CRL_PARSE_OK;
			d = NULL;
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(d);
		if (rc == CRL_PARSE_OK)
			break;
		rc = CRL_PARSE_NOT_CRL;	/* PEM, but of something else */
	}
	ERR_clear_error();
	BIO_free(bio);
	return rc;
}

enum crl_parse_err crl_envelope(const unsigned char *data, size_t len,
				struct crl_info *info, unsigned char **pem_der,
				const unsigned char **der, size_t *derlen,
				size_t *outer_len)
{
	enum crl_parse_err rc;
	struct tlv outer;
	long n = 0;
	int trc;

	*pem_der = NULL;
	*der = data;
	*derlen = len;
	*outer_len = 0;
	if (len == 0)
		return CRL_PARSE_EMPTY;
	if (len > INT32_MAX)
		return CRL_PARSE_NOT_CRL;
	if (data[0] != 0x30) {
		if (!mem_has(data, len, "-----BEGIN "))
			return looks_html(data, len) ? CRL_PARSE_HTML
						     : CRL_PARSE_NOT_CRL;
		rc = pem_unwrap(data, len, pem_der, &n);
		if (rc)
			return rc;
		info->pem = true;
		if (n <= 0 || (*pem_der)[0] != 0x30)
			return CRL_PARSE_BAD_DER;
		*der = *pem_der;
		*derlen = (size_t)n;
	}
	trc = der_tlv(*der, *derlen, &outer);
	if (trc)
		return trc == -ENODATA ? CRL_PARSE_TRUNCATED : CRL_PARSE_BAD_DER;
	*outer_len = outer.hdr + outer.len;
	return CRL_PARSE_OK;
}

enum crl_parse_err crl_ldap_unwrap(const unsigned char *data, size_t len,
				   unsigned char **out, size_t *outlen)
{
	const unsigned char *p = data, *end = data + len;

	*out = NULL;
	*outlen = 0;
	/* lines: "DN: ...", then "\t<attr>:: <base64>" or "\t<attr>: <text>" */
	while (p < end) {
		const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
		const unsigned char *line = p, *colon;
		size_t n;

		if (!eol)
			eol = end;
		p = eol + 1;
		if (line[0] != '\t')
			continue;
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon)
			continue;
		if (colon + 1 < eol && colon[1] == ':') {
			const unsigned char *b64 = colon + 2;
			unsigned char *der;
			int dn;

			while (b64 < eol && *b64 == ' ')
				b64++;
			n = (size_t)(eol - b64);
			while (n && (b64[n - 1] == '\r' || b64[n - 1] == ' '))
				n--;
			if (n == 0 || n > INT32_MAX || n % 4)
				return CRL_PARSE_BAD_LDAP;
			der = xmalloc(n / 4 * 3 + 1);
			if (!der)
				return CRL_PARSE_NOMEM;
			dn = EVP_DecodeBlock(der, b64, (int)n);
			if (dn < 0) {
				xfree(der);
				return CRL_PARSE_BAD_LDAP;
			}
			/* EVP_DecodeBlock counts the padding as zero bytes */
			if (b64[n - 1] == '=')
				dn--;
			if (n > 1 && b64[n - 2] == '=')
				dn--;
			*out = der;
			*outlen = (size_t)dn;
			return CRL_PARSE_OK;
		}
		/* a value curl judged printable: a PEM CRL stored as text */
		n = (size_t)(eol - (colon + 1));
		if (n > 1) {
			unsigned char *copy = xmalloc(n);

			if (!copy)
				return CRL_PARSE_NOMEM;
			memcpy(copy, colon + 2, n - 1);
			*out = copy;
			*outlen = n - 1;
			return CRL_PARSE_OK;
		}
	}
	return CRL_PARSE_BAD_LDAP;
}

void crl_info_cleanup(struct crl_info *info)
{
	X509_NAME_free(info->issuer_name);
	for (size_t i = 0; i < info->nfreshest; i++)
		xfree(info->freshest[i]);
	for (size_t i = 0; i < info->nentry_issuers; i++)
		X509_NAME_free(info->entry_issuers[i]);
	crl_index_cleanup(&info->index);
	memset(info, 0, sizeof(*info));
}

int crl_lookup(const struct crl_info *info, const ASN1_INTEGER *serial,
	       const X509_NAME *cert_issuer, bool *removed)
{
	uint8_t want = 0;
	int len = ASN1_STRING_length(serial);

	*removed = false;
	if (crl_index_size(&info->index) == 0 || len <= 0)
		return 0;
	if (info->issuer_name && cert_issuer &&
	    X509_NAME_cmp(cert_issuer, info->issuer_name) != 0) {
		size_t k;

		/* only an indirect CRL lists other issuers' certificates */
		for (k = 0; k < info->nentry_issuers; k++)
			if (X509_NAME_cmp(cert_issuer, info->entry_issuers[k]) == 0)
				break;
		if (k == info->nentry_issuers)
			return 0;
		want = (uint8_t)(k + 1);
	}
	return crl_index_find(&info->index, ASN1_STRING_get0_data(serial),
			      (size_t)len,
			      ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER,
			      want, removed);
}
