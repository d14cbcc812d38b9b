#include "x509.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "exporter/buf.h"
#include "exporter/xalloc.h"

int x509_time_to_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

void x509_name_cn(const X509_NAME *name, char *dst, size_t len)
{
	const X509_NAME_ENTRY *e;
	unsigned char *utf8 = NULL;
	int idx, n;

	dst[0] = '\0';
	if (!name)
		return;
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0)
		return;
	e = X509_NAME_get_entry(name, idx);
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
	if (n < 0)
		return;
	/* NUL bytes inside a CN would cut the label short; that is the
	 * safe direction, the text stays a valid C string */
	snprintf(dst, len, "%.*s", n, (const char *)utf8);
	OPENSSL_free(utf8);
}

static void hex_lower(char *dst, const unsigned char *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = hx[p[i] >> 4];
		dst[2 * i + 1] = hx[p[i] & 15];
	}
	dst[2 * n] = '\0';
}

void x509_serial_hex(const ASN1_INTEGER *a, char *dst, size_t len)
{
	static const char hx[] = "0123456789ABCDEF";
	const unsigned char *p = ASN1_STRING_get0_data(a);
	int n = ASN1_STRING_length(a);
	size_t o = 0;

	if (ASN1_STRING_type(a) == V_ASN1_NEG_INTEGER && o + 1 < len)
		dst[o++] = '-';
	if (n <= 0) {
		snprintf(dst + o, len - o, "00");
		return;
	}
	for (int i = 0; i < n && o + 2 < len; i++) {
		dst[o++] = hx[p[i] >> 4];
		dst[o++] = hx[p[i] & 15];
	}
	dst[o] = '\0';
}

static void key_facts(X509 *x, struct x509_facts *f)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	int id;

	snprintf(f->key_type, sizeof(f->key_type), "unknown");
	f->key_bits = 0;
	if (!pk)
		return;
	f->key_bits = EVP_PKEY_get_bits(pk);
	id = EVP_PKEY_get_base_id(pk);
	switch (id) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		snprintf(f->key_type, sizeof(f->key_type), "RSA");
		break;
	case EVP_PKEY_EC:
		snprintf(f->key_type, sizeof(f->key_type), "EC");
		break;
	case EVP_PKEY_DSA:
		snprintf(f->key_type, sizeof(f->key_type), "DSA");
		break;
	case EVP_PKEY_ED25519:
		snprintf(f->key_type, sizeof(f->key_type), "ED25519");
		break;
	case EVP_PKEY_ED448:
		snprintf(f->key_type, sizeof(f->key_type), "ED448");
		break;
	default: {
		const char *sn = OBJ_nid2sn(id);

		if (sn)
			snprintf(f->key_type, sizeof(f->key_type), "%s", sn);
	}
	}
}

/* Format one GENERAL_NAME as "DNS:x", "IP:1.2.3.4", ... into `tmp`. */
static void san_one(const GENERAL_NAME *g, char *tmp, size_t len)
{
	const ASN1_STRING *str = NULL;
	const char *tag = "other:";

	switch (g->type) {
	case GEN_DNS:
		str = g->d.dNSName;
		tag = "DNS:";
		break;
	case GEN_EMAIL:
		str = g->d.rfc822Name;
		tag = "email:";
		break;
	case GEN_URI:
		str = g->d.uniformResourceIdentifier;
		tag = "URI:";
		break;
	case GEN_IPADD: {
		const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
		int n = ASN1_STRING_length(g->d.iPAddress);
		char ip[INET6_ADDRSTRLEN] = "?";

		if (n == 4)
			inet_ntop(AF_INET, p, ip, sizeof(ip));
		else if (n == 16)
			inet_ntop(AF_INET6, p, ip, sizeof(ip));
		snprintf(tmp, len, "IP:%s", ip);
		return;
	}
	default:
		snprintf(tmp, len, "other");
		return;
	}
	snprintf(tmp, len, "%s%.*s", tag, ASN1_STRING_length(str),
		 (const char *)ASN1_STRING_get0_data(str));
}

/* Join the SANs, capped near X509_SANS_MAX bytes with a ",+N more" tail so
 * that a certificate with thousands of names stays one bounded label. */
static char *sans_join(X509 *x)
{
	GENERAL_NAMES *gens;
	struct buf b;
	char tmp[512];
	int n, i;

	buf_init(&b, X509_SANS_MAX + 64);
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	n = gens ? sk_GENERAL_NAME_num(gens) : 0;
	for (i = 0; i < n; i++) {
		san_one(sk_GENERAL_NAME_value(gens, i), tmp, sizeof(tmp));
		if (b.len + strlen(tmp) + 1 > X509_SANS_MAX)
			break;
		if (b.len)
			buf_putc(&b, ',');
		buf_puts(&b, tmp);
	}
	if (i < n)
		buf_printf(&b, "%s+%d more", b.len ? "," : "", n - i);
	GENERAL_NAMES_free(gens);
	if (b.err)
		return NULL;
	return buf_steal(&b, NULL);
}

bool x509_sig_alg_weak(const char *a)
{
	/* names as OpenSSL prints them: md5WithRSAEncryption, sha1WithRSA,
	 * ecdsa-with-SHA1, dsaWithSHA1, md2WithRSAEncryption, ... */
	return strncmp(a, "md2", 3) == 0 || strncmp(a, "md4", 3) == 0 ||
	       strncmp(a, "md5", 3) == 0 || strncmp(a, "sha1", 4) == 0 ||
	       strcmp(a, "ecdsa-with-SHA1") == 0 ||
	       strcmp(a, "dsaWithSHA1") == 0 ||
	       strcmp(a, "shaWithRSAEncryption") == 0;
}

/* Append each URI general name of `names` to b, space-separated. */
/* Whether the space-separated list in b holds `uri` already. */
static bool has_uri(const struct buf *b, const char *uri, size_t n)
{
	const char *p = b->data;

	while (p && *p) {
		size_t len = strcspn(p, " ");

		if (len == n && memcmp(p, uri, n) == 0)
			return true;
		p += len;
		p += *p == ' ';
	}
	return false;
}

/* Append each URI general name of `names` to b, space-separated, once
 * each (a repeated URI would repeat a series), and at most X509_URLS_MAX
 * bytes in all: a hostile certificate gets a shortened list, not a
 * failure that would hide it. */
static void put_uris(struct buf *b, const GENERAL_NAMES *names)
{
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		char one[1024];
		size_t n = 0;
		const ASN1_STRING *u;

		if (g->type != GEN_URI)
			continue;
		u = g->d.uniformResourceIdentifier;
		/* a space inside a URI would split it: encode it, as a
		 * client fetching it would */
		for (int k = 0; k < ASN1_STRING_length(u) && n + 4 < sizeof(one);
		     k++) {
			unsigned char c = ASN1_STRING_get0_data(u)[k];

			if (c <= ' ' || c >= 0x7f)
				n += (size_t)snprintf(one + n, sizeof(one) - n,
						      "%%%02X", c);
			else
				one[n++] = (char)c;
		}
		one[n] = '\0';
		if (n == 0 || has_uri(b, one, n) ||
		    b->len + n + 1 > X509_URLS_MAX)
			continue;
		if (b->len)
			buf_putc(b, ' ');
		buf_append(b, one, n);
	}
}

static char *cdp_uris(X509 *x)
{
	STACK_OF(DIST_POINT) *dps =
		X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	struct buf b;

	buf_init(&b, X509_URLS_MAX + 16);
	for (int i = 0; i < sk_DIST_POINT_num(dps); i++) {
		const DIST_POINT *dp = sk_DIST_POINT_value(dps, i);

		if (dp->distpoint && dp->distpoint->type == 0)
			put_uris(&b, dp->distpoint->name.fullname);
	}
	CRL_DIST_POINTS_free(dps);
	return b.err ? NULL : buf_steal(&b, NULL);
}

static int aia_uris(X509 *x, char **ocsp, char **issuers)
{
	AUTHORITY_INFO_ACCESS *aia =
		X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
	struct buf bo, bi;

	buf_init(&bo, X509_URLS_MAX + 16);
	buf_init(&bi, X509_URLS_MAX + 16);
	for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
		ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);
		int nid = OBJ_obj2nid(ad->method);
		GENERAL_NAMES *one = sk_GENERAL_NAME_new_null();

		if (!one)
			continue;
		sk_GENERAL_NAME_push(one, ad->location);
		if (nid == NID_ad_OCSP)
			put_uris(&bo, one);
		else if (nid == NID_ad_ca_issuers)
			put_uris(&bi, one);
		sk_GENERAL_NAME_free(one);	/* not the names: aia owns */
	}
	AUTHORITY_INFO_ACCESS_free(aia);
	*ocsp = bo.err ? NULL : buf_steal(&bo, NULL);
	*issuers = bi.err ? NULL : buf_steal(&bi, NULL);
	buf_cleanup(&bo);
	buf_cleanup(&bi);
	return *ocsp && *issuers ? 0 : -ENOMEM;
}

/* SHA-1 and SHA-256, fetched once. EVP_sha1()/EVP_sha256() make OpenSSL 3
 * fetch the implementation again on every use (a name lookup under the
 * provider store's lock), twice per reported certificate. */
static EVP_MD *md_sha1, *md_sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_fetch(void)
{
	md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	md_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

int x509_facts_init(struct x509_facts *f, X509 *x)
{
	const X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *obj = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	memset(f, 0, sizeof(*f));
	x509_name_cn(X509_get_subject_name(x), f->subject_cn,
		     sizeof(f->subject_cn));
	x509_name_cn(X509_get_issuer_name(x), f->issuer_cn,
		     sizeof(f->issuer_cn));
	x509_serial_hex(X509_get0_serialNumber(x), f->serial, sizeof(f->serial));
	f->dates_ok = x509_time_to_unix(X509_get0_notBefore(x),
					&f->not_before) == 0 &&
		      x509_time_to_unix(X509_get0_notAfter(x),
					&f->not_after) == 0;

	X509_get0_signature(NULL, &alg, x);
	if (alg)
		X509_ALGOR_get0(&obj, NULL, NULL, alg);
	if (!obj || OBJ_obj2txt(f->sig_alg, sizeof(f->sig_alg), obj, 0) <= 0)
		snprintf(f->sig_alg, sizeof(f->sig_alg), "unknown");
	key_facts(x, f);

	pthread_once(&md_once, md_fetch);
	if (X509_digest(x, md_sha1 ? md_sha1 : EVP_sha1(), md, &mdlen))
		hex_lower(f->sha1, md, mdlen);
	if (X509_digest(x, md_sha256 ? md_sha256 : EVP_sha256(), md, &mdlen))
		hex_lower(f->sha256, md, mdlen);

	/* X509_check_ca also caches the extensions, so do it before the
	 * flag reads below */
	f->is_ca = X509_check_ca(x) != 0;
	f->self_signed = X509_self_signed(x, 0) == 1;

	f->weak_signature = x509_sig_alg_weak(f->sig_alg);
	if ((strcmp(f->key_type, "RSA") == 0 || strcmp(f->key_type, "DSA") == 0)
		    ? f->key_bits < 2048
		    : strcmp(f->key_type, "EC") == 0 && f->key_bits < 224)
		f->weak_key = true;

	f->has_eku = (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) != 0;
	{
		uint32_t xku = X509_get_extended_key_usage(x);

		/* X509_get_extended_key_usage: all bits set without EKU,
		 * XKU_ANYEKU included with anyExtendedKeyUsage */
		f->server_auth = (xku & (XKU_SSL_SERVER | XKU_ANYEKU)) != 0;
		f->client_auth = (xku & (XKU_SSL_CLIENT | XKU_ANYEKU)) != 0;
	}

	f->sans = sans_join(x);
	f->cdp = cdp_uris(x);
	if (!f->sans || !f->cdp || aia_uris(x, &f->ocsp, &f->ca_issuers)) {
		x509_facts_cleanup(f);
		return -ENOMEM;
	}
	return 0;
}

void x509_facts_cleanup(struct x509_facts *f)
{
	xfree(f->sans);
	xfree(f->cdp);
	xfree(f->ocsp);
	xfree(f->ca_issuers);
	f->sans = f->cdp = f->ocsp = f->ca_issuers = NULL;
}
