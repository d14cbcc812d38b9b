/* The CRL parser against every file of the shared corpus
 * (../shared/corpus/crl/, facts from its MANIFEST.md): each one gives the
 * MANIFEST's facts or fails with the reason our policy names. Also:
 * signatures, look-ups in base and delta, curl's LDAP output, every
 * truncation and allocation failure. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include "exporter/xalloc.h"
#include "probes/crl/crl_cache.h"
#include "probes/crl/crl_get.h"
#include "probes/crl/crl_parse.h"
#include "probes/crl/crl_parse_int.h"

static char corpus[1024];

struct crl_case {
	const char *file;		/* under crl/ */
	enum crl_parse_err rc;
	const char *issuer;
	const char *this_update;	/* ISO 8601 UTC */
	const char *next_update;	/* NULL: absent */
	size_t entries;
	const char *number;		/* NULL: no CRL Number */
	const char *base;		/* NULL: not a delta */
	long ca_version;		/* -1: absent */
	const char *next_publish;	/* NULL: absent */
	const char *freshest;		/* space-separated URIs, "" none */
	bool pem;
	bool unknown_critical;
	bool indirect;
};

#define FAILS(f, r) {f, r, NULL, NULL, NULL, 0, NULL, NULL, -1, NULL, "", 0, 0, 0}

static const struct crl_case cases[] = {
	{"adcs-synthetic/Issuing CA1+.crl", CRL_PARSE_OK,
	 "CN=Issuing CA1,DC=contoso,DC=test", "2025-01-01T11:50:00Z",
	 "2025-01-02T14:34:00Z", 1, "42", "41", 0, "2025-01-02T12:00:00Z", "",
	 0, 0, 0},
	{"adcs-synthetic/Issuing CA1.crl", CRL_PARSE_OK,
	 "CN=Issuing CA1,DC=contoso,DC=test", "2025-01-01T11:50:00Z",
	 "2025-01-09T00:10:00Z", 1, "41", NULL, 0, "2025-01-08T12:00:00Z",
	 "ldap:///CN=Issuing%20CA1,CN=PKI01,CN=CDP,CN=Public%20Key%20Services,"
	 "CN=Services,CN=Configuration,DC=contoso,DC=test?deltaRevocationList?"
	 "base?objectClass=cRLDistributionPoint "
	 "http://pki.contoso.test/CertEnroll/Issuing%20CA1+.crl",
	 0, 0, 0},
	{"adcs/CA POLITICA SELLADO DE TIEMPO - COSTA RICA v2.crl", CRL_PARSE_OK,
	 "CN=CA POLITICA SELLADO DE TIEMPO - COSTA RICA v2,OU=DCFD,O=MICITT,"
	 "C=CR,2.5.4.5=CPJ-2-100-098311",
	 "2018-07-23T16:47:21Z", "2018-09-24T05:07:21Z", 0, "24", NULL, 0,
	 "2018-09-23T16:57:21Z", "", 0, 0, 0},
	{"adcs/CA RAIZ NACIONAL - COSTA RICA v2.crl", CRL_PARSE_OK,
	 "CN=CA RAIZ NACIONAL - COSTA RICA v2,C=CR,O=MICITT,OU=DCFD,"
	 "2.5.4.5=CPJ-2-100-098311",
	 "2018-07-23T16:14:02Z", "2018-11-24T04:34:02Z", 0, "13", NULL, 0,
	 "2018-11-23T16:24:02Z", "", 0, 0, 0},
	{"adcs/CA SINPE - PERSONA FISICA v2.crl", CRL_PARSE_OK,
	 "CN=CA SINPE - PERSONA FISICA v2,OU=DIVISION SISTEMAS DE PAGO,"
	 "O=BANCO CENTRAL DE COSTA RICA,C=CR,2.5.4.5=CPJ-4-000-004017",
	 "2016-11-26T12:02:03Z", "2016-12-04T00:22:03Z", 408, "995", NULL, 0,
	 "2016-12-03T12:12:03Z",
	 "http://fdi.sinpe.fi.cr/repositorio/"
	 "CA%20SINPE%20-%20PERSONA%20FISICA%20v2+.crl",
	 0, 0, 0},
	{"adcs/CA SINPE - PERSONA JURIDICA v2.crl", CRL_PARSE_OK,
	 "CN=CA SINPE - PERSONA JURIDICA v2,OU=DIVISION SISTEMAS DE PAGO,"
	 "O=BANCO CENTRAL DE COSTA RICA,C=CR,2.5.4.5=CPJ-4-000-004017",
	 "2019-03-28T12:02:43Z", "2019-04-05T00:22:43Z", 3, "3560", NULL, 0,
	 "2019-04-04T12:12:43Z",
	 "http://fdi.sinpe.fi.cr/repositorio/"
	 "CA%20SINPE%20-%20PERSONA%20JURIDICA%20v2+.crl",
	 0, 0, 0},
	{"adcs/CommisSign-2.crl", CRL_PARSE_OK,
	 "CN=CommisSign - 2,O=European Commission", "2017-07-20T22:00:04Z",
	 "2017-07-26T22:00:04Z", 53, "329", NULL, -1, "2017-07-26T10:00:03Z",
	 "", 0, 0, 0},
	{"adcs/QA Appliances CA.crl.pem", CRL_PARSE_OK,
	 "CN=QA Appliances CA,OU=Connected Appliances,O=Electrolux",
	 "2017-02-28T15:08:05Z", "2017-04-25T15:28:05Z", 9, "70", NULL, 0,
	 "2017-03-28T15:18:05Z", "", 1, 0, 0},
	/* Freshest CRL as a DirName: nothing fetchable */
	{"delta/deltaCRLCA1CRL.crl", CRL_PARSE_OK,
	 "CN=deltaCRL CA1,O=Test Certificates 2011,C=US",
	 "2010-01-01T08:30:00Z", "2030-12-31T08:30:00Z", 3, "1", NULL, -1,
	 NULL, "", 0, 0, 0},
	{"delta/deltaCRLCA1deltaCRL.crl", CRL_PARSE_OK,
	 "CN=deltaCRL CA1,O=Test Certificates 2011,C=US",
	 "2011-01-01T08:30:00Z", "2030-12-31T08:30:00Z", 4, "5", "1", -1,
	 NULL, "", 0, 0, 0},
	{"delta/deltaCRLIndicatorNoBaseCACRL.crl", CRL_PARSE_OK,
	 "CN=deltaCRLIndicator No Base CA,O=Test Certificates 2011,C=US",
	 "2010-05-01T08:30:00Z", "2030-12-31T08:30:00Z", 0, "5", "1", -1,
	 NULL, "", 0, 0, 0},
	{"delta/webpki-crl.delta.der", CRL_PARSE_OK,
	 "CN=(TEST) Elegant Elephant E1,O=Boulder Test,C=XX",
	 "2022-10-10T20:12:07Z", "2022-10-19T20:12:06Z", 1,
	 "1665432727442340449", "1665432727442340449", -1, NULL, "", 0, 0, 0},
	{"edge/BadCRLSignatureCACRL.crl", CRL_PARSE_OK,
	 "CN=Bad CRL Signature CA,O=Test Certificates 2011,C=US",
	 "2010-01-01T08:30:00Z", "2030-12-31T08:30:00Z", 0, "1", NULL, -1,
	 NULL, "", 0, 0, 0},
	{"edge/GeneralizedTimeCRLnextUpdateCACRL.crl", CRL_PARSE_OK,
	 "CN=GenerizedTime CRL nextUpdate CA,O=Test Certificates 2011,C=US",
	 "2010-01-01T08:30:00Z", "2050-01-01T12:01:00Z", 0, "1", NULL, -1,
	 NULL, "", 0, 0, 0},
	{"edge/OldCRLnextUpdateCACRL.crl", CRL_PARSE_OK,
	 "CN=Old CRL nextUpdate CA,O=Test Certificates 2011,C=US",
	 "2010-01-01T08:30:00Z", "2010-01-02T08:30:00Z", 0, "1", NULL, -1,
	 NULL, "", 0, 0, 0},
	{"edge/UnknownCRLExtensionCACRL.crl", CRL_PARSE_OK,
	 "CN=Unknown CRL Extension CA,O=Test Certificates 2011,C=US",
	 "2010-01-01T08:30:00Z", "2030-12-31T08:30:00Z", 1, "1", NULL, -1,
	 NULL, "", 0, 1, 0},
	{"edge/crl.idp.only_some_reasons.der", CRL_PARSE_OK,
	 "O=only_some_reasons,CN=crl-distrib-point-test.example.com",
	 "1986-12-23T01:59:11Z", "1986-12-23T02:00:11Z", 0,
	 "190617931130887381664241444157260457726826630998", NULL, -1, NULL,
	 "", 0, 0, 0},
	{"edge/crl.missing.next.update.der", CRL_PARSE_OK,
	 "CN=(TEST) Elegant Elephant E1,O=Boulder Test,C=XX",
	 "2022-10-10T20:12:07Z", NULL, 1, "1665432727442340449", NULL, -1,
	 NULL, "", 0, 0, 0},
	/* pyca refuses the extension; OpenSSL reads -42424242: reported */
	{"edge/crl.negative.crl.number.der", CRL_PARSE_OK, "",
	 "2023-04-12T18:08:15Z", "2023-04-13T18:08:15Z", 0, "-42424242", NULL,
	 -1, NULL, "", 0, 0, 0},
	{"edge/crl.too.long.crl.number.der", CRL_PARSE_OK,
	 "CN=(TEST) Elegant Elephant E1,O=Boulder Test,C=XX",
	 "2022-10-10T20:12:07Z", "2022-10-19T20:12:06Z", 1,
	 "866101502342345259599655637619077703837001910233146548098826569261088",
	 NULL, -1, NULL, "", 0, 0, 0},
	{"edge/pre2000CRLnextUpdateCACRL.crl", CRL_PARSE_OK,
	 "CN=pre2000 CRL nextUpdate CA,O=Test Certificates 2011,C=US",
	 "1998-01-01T12:01:00Z", "1999-01-01T12:01:00Z", 0, "1", NULL, -1,
	 NULL, "", 0, 0, 0},
	{"edge/zlint-emptyRevokedContainer-CBonnell.crl.pem", CRL_PARSE_OK,
	 "O=Certs 'r Us", "2024-04-15T14:33:00Z", "2024-05-15T14:33:00Z", 0,
	 NULL, NULL, -1, NULL, "", 1, 0, 0},
	{"indirect/indirectCRLCA1CRL.crl", CRL_PARSE_OK,
	 "CN=indirectCRL CA1,O=Test Certificates 2011,C=US",
	 "2010-01-01T08:30:00Z", "2030-12-31T08:30:00Z", 1, "1", NULL, -1,
	 NULL, "", 0, 0, 1},
	{"indirect/indirectCRLCA3cRLIssuerCRL.crl", CRL_PARSE_OK,
	 "OU=indirectCRL CA3 cRLIssuer,O=Test Certificates 2011,C=US",
	 "2010-01-01T08:30:00Z", "2030-12-31T08:30:00Z", 0, "1", NULL, -1,
	 NULL, "", 0, 0, 1},
	{"indirect/indirectCRLCA5CRL.crl", CRL_PARSE_OK,
	 "OU=indirectCRL CA5,O=Test Certificates 2011,C=US",
	 "2010-01-01T08:30:00Z", "2030-12-31T08:30:00Z", 11, "1", NULL, -1,
	 NULL, "", 0, 0, 1},
	{"large/amazon-r2m02.crl", CRL_PARSE_OK,
	 "CN=Amazon RSA 2048 M02,O=Amazon,C=US", "2025-02-22T23:05:35Z",
	 "2025-03-01T23:05:35Z", 14102, "1374", NULL, -1, NULL, "", 0, 0, 0},
	{"large/hgcaclass2.crl", CRL_PARSE_OK,
	 "2.5.4.5=RUC: 20295613620,CN=RENIEC Class II High Grade CA,"
	 "OU=RENIEC Certification Authority,"
	 "O=Registro Nacional de Identificaci\xc3\xb3n y Estado Civil,C=PE",
	 "2019-12-20T05:00:38Z", "2019-12-21T05:00:38Z", 25219, "2037", NULL,
	 -1, NULL, "", 0, 0, 0},
	/* OpenSSL refuses these too */
	FAILS("malformed/bssl-invalid_garbage_after_nextupdate.der",
	      CRL_PARSE_BAD_DER),
	FAILS("malformed/bssl-invalid_garbage_issuer_name.der",
	      CRL_PARSE_BAD_DER),
	FAILS("malformed/bssl-invalid_garbage_thisupdate.der",
	      CRL_PARSE_BAD_DER),
	FAILS("malformed/bssl-invalid_garbage_version.der", CRL_PARSE_BAD_DER),
	FAILS("malformed/dss-infinite-loop.crl", CRL_PARSE_NOT_CRL),
	FAILS("malformed/synthetic-bad-base64.crl.pem", CRL_PARSE_BAD_PEM),
	FAILS("malformed/synthetic-empty.crl", CRL_PARSE_EMPTY),
	FAILS("malformed/synthetic-proxy-403.html.crl", CRL_PARSE_HTML),
	FAILS("malformed/synthetic-truncated-sinpe-pf.crl", CRL_PARSE_TRUNCATED),
	/* OpenSSL accepts these, stricter parsers do not: our policy rejects
	 * them with a reason (probes/crl/README.md) */
	FAILS("malformed/bssl-invalid_v3.der", CRL_PARSE_BAD_VERSION),
	FAILS("malformed/crl.wrong.version.der", CRL_PARSE_BAD_VERSION),
	FAILS("malformed/crl.mismatched.sigalg.der", CRL_PARSE_SIGALG_MISMATCH),
	FAILS("malformed/synthetic-trailing-garbage.crl",
	      CRL_PARSE_TRAILING_DATA),
	FAILS("malformed/crl.invalid.this.update.time.der", CRL_PARSE_BAD_TIME),
};

static int setup(void **state)
{
	const char *c = getenv("PKI_CORPUS");

	(void)state;
	snprintf(corpus, sizeof(corpus), "%s",
		 c ? c : "../shared/corpus");
	return 0;
}

static unsigned char *slurp(const char *rel, size_t *len)
{
	char path[2048];
	unsigned char *p;
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", corpus, rel);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	assert_int_equal(fstat(fileno(f), &st), 0);
	p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	*len = fread(p, 1, (size_t)st.st_size, f);
	assert_int_equal(*len, (size_t)st.st_size);
	fclose(f);
	return p;
}

static int64_t iso(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return (int64_t)timegm(&tm);
}

/* Each part of the index in its order: plain by padded bytes, odd by
 * sign, length, bytes. */
static bool index_sorted(const struct crl_index *ix)
{
	for (size_t i = 1; i < ix->n; i++)
		if (memcmp(ix->plain + (i - 1) * ix->width,
			   ix->plain + i * ix->width, ix->width) > 0)
			return false;
	for (size_t i = 1; i < ix->nodd; i++) {
		const struct crl_serial *a = &ix->odd[i - 1], *b = &ix->odd[i];
		bool an = a->flags & CRL_SERIAL_NEGATIVE,
		     bn = b->flags & CRL_SERIAL_NEGATIVE;

		if (an != bn) {
			if (!an)
				return false;
			continue;
		}
		if (a->len > b->len ||
		    (a->len == b->len &&
		     memcmp(ix->odd_blob + a->off, ix->odd_blob + b->off,
			    a->len) > 0))
			return false;
	}
	return true;
}

static void check_case(const struct crl_case *c)
{
	char rel[512], fr[2048] = "";
	struct crl_info info;
	enum crl_parse_err rc;
	unsigned char *data;
	size_t len;

	snprintf(rel, sizeof(rel), "crl/%s", c->file);
	data = slurp(rel, &len);
	rc = crl_parse(data, len, NULL, &info);
	if (rc != c->rc)
		fail_msg("%s: got %s, want %s", c->file, crl_parse_err_str(rc),
			 crl_parse_err_str(c->rc));
	if (rc != CRL_PARSE_OK) {
		crl_info_cleanup(&info);
		free(data);
		return;
	}
	assert_string_equal(info.issuer, c->issuer);
	assert_int_equal(info.this_update, iso(c->this_update));
	assert_int_equal(info.has_next_update, c->next_update != NULL);
	if (c->next_update)
		assert_int_equal(info.next_update, iso(c->next_update));
	assert_int_equal(info.entries, c->entries);
	assert_int_equal(info.has_number, c->number != NULL);
	if (c->number)
		assert_string_equal(info.number, c->number);
	assert_int_equal(info.is_delta, c->base != NULL);
	if (c->base)
		assert_string_equal(info.base_number, c->base);
	assert_int_equal(info.has_ca_version, c->ca_version >= 0);
	if (c->ca_version >= 0)
		assert_int_equal(info.ca_version, c->ca_version);
	assert_int_equal(info.has_next_publish, c->next_publish != NULL);
	if (c->next_publish)
		assert_int_equal(info.next_publish, iso(c->next_publish));
	for (size_t i = 0; i < info.nfreshest; i++) {
		if (i)
			strcat(fr, " ");
		strcat(fr, info.freshest[i]);
	}
	assert_string_equal(fr, c->freshest);
	assert_int_equal(info.pem, c->pem);
	assert_int_equal(info.unknown_critical, c->unknown_critical);
	assert_int_equal(info.indirect, c->indirect);
	assert_int_equal(info.sig, CRL_SIG_UNKNOWN);
	assert_true(info.bytes > 0 && info.bytes <= len);
	/* the serials are sorted, and all there */
	assert_true(index_sorted(&info.index));
	assert_int_equal(crl_index_size(&info.index), info.entries);
	crl_info_cleanup(&info);
	free(data);
}

static void test_corpus_facts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

/* Every file under crl/ has a row above: nothing in the corpus goes
 * unchecked. */
static void test_corpus_complete(void **state)
{
	const char *dirs[] = {"adcs",	  "adcs-synthetic", "delta", "edge",
			      "indirect", "large",	    "malformed"};
	size_t seen = 0;

	(void)state;
	for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
		char path[1200];
		DIR *dir;
		struct dirent *e;

		snprintf(path, sizeof(path), "%s/crl/%s", corpus, dirs[d]);
		dir = opendir(path);
		assert_non_null(dir);
		while ((e = readdir(dir))) {
			char rel[600];
			bool found = false;

			if (e->d_name[0] == '.')
				continue;
			snprintf(rel, sizeof(rel), "%s/%s", dirs[d], e->d_name);
			for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
				found = found || strcmp(cases[i].file, rel) == 0;
			if (!found)
				fail_msg("corpus file crl/%s has no test row", rel);
			seen++;
		}
		closedir(dir);
	}
	assert_int_equal(seen, sizeof(cases) / sizeof(cases[0]));
}

static X509 *load_cert(const char *rel)
{
	size_t len;
	unsigned char *data = slurp(rel, &len);
	const unsigned char *p = data;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	if (!x) {
		BIO *b = BIO_new_mem_buf(data, (int)len);

		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	free(data);
	assert_non_null(x);
	return x;
}

static enum crl_sig sig_of(const char *crl, const char *cert,
			   bool tamper)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	struct crl_info info;
	enum crl_sig sig;
	size_t len;
	unsigned char *data = slurp(crl, &len);

	sk_X509_push(sk, load_cert(cert));
	if (tamper)
		data[len - 3] ^= 0x55;	/* inside the signature value */
	assert_int_equal(crl_parse(data, len, sk, &info), CRL_PARSE_OK);
	sig = info.sig;
	crl_info_cleanup(&info);
	sk_X509_pop_free(sk, X509_free);
	free(data);
	return sig;
}

static void test_signatures(void **state)
{
	(void)state;
	assert_int_equal(sig_of("crl/adcs/CA SINPE - PERSONA JURIDICA v2.crl",
				"certs/adcs/CA SINPE - PERSONA JURIDICA v2.cer",
				false),
			 CRL_SIG_VALID);
	assert_int_equal(sig_of("crl/adcs-synthetic/Issuing CA1.crl",
				"certs/adcs-synthetic/PKI01.contoso.test_"
				"Issuing CA1.crt",
				false),
			 CRL_SIG_VALID);
	assert_int_equal(sig_of("crl/adcs-synthetic/Issuing CA1+.crl",
				"certs/adcs-synthetic/PKI01.contoso.test_"
				"Issuing CA1.crt",
				false),
			 CRL_SIG_VALID);
	assert_int_equal(sig_of("crl/adcs-synthetic/Issuing CA1.crl",
				"certs/adcs-synthetic/PKI01.contoso.test_"
				"Issuing CA1.crt",
				true),
			 CRL_SIG_INVALID);
	/* a certificate of another name is not the issuer: unknown */
	assert_int_equal(sig_of("crl/adcs/CA SINPE - PERSONA JURIDICA v2.crl",
				"certs/adcs-synthetic/PKI01.contoso.test_"
				"Issuing CA1.crt",
				false),
			 CRL_SIG_UNKNOWN);
}

static void test_lookup(void **state)
{
	X509 *edge = load_cert("certs/adcs-synthetic/edge01.contoso.test-revoked.pem");
	X509 *pool = load_cert("certs/adcs-synthetic/pool01.contoso.test.pem");
	X509 *other = load_cert("certs/adcs/AME CS CA 01.pem");
	struct crl_info base, delta;
	unsigned char *b, *d;
	size_t bl, dl;
	bool removed;

	(void)state;
	b = slurp("crl/adcs-synthetic/Issuing CA1.crl", &bl);
	d = slurp("crl/adcs-synthetic/Issuing CA1+.crl", &dl);
	assert_int_equal(crl_parse(b, bl, NULL, &base), CRL_PARSE_OK);
	assert_int_equal(crl_parse(d, dl, NULL, &delta), CRL_PARSE_OK);
	/* edge01 (1A2D) is in the base, pool01 (1A2C) only in the delta */
	assert_int_equal(crl_lookup(&base, X509_get0_serialNumber(edge),
				    X509_get_issuer_name(edge), &removed), 1);
	assert_false(removed);
	assert_int_equal(crl_lookup(&base, X509_get0_serialNumber(pool),
				    X509_get_issuer_name(pool), &removed), 0);
	assert_int_equal(crl_lookup(&delta, X509_get0_serialNumber(pool),
				    X509_get_issuer_name(pool), &removed), 1);
	assert_int_equal(crl_lookup(&delta, X509_get0_serialNumber(edge),
				    X509_get_issuer_name(edge), &removed), 0);
	/* the right serial under another issuer is not revoked here */
	assert_int_equal(crl_lookup(&base, X509_get0_serialNumber(edge),
				    X509_get_issuer_name(other), &removed), 0);
	crl_info_cleanup(&base);
	crl_info_cleanup(&delta);
	free(b);
	free(d);
	X509_free(edge);
	X509_free(pool);
	X509_free(other);
}

/* In a large CRL every listed serial is found and neighbours are not. */
static void test_lookup_large(void **state)
{
	struct crl_info info;
	unsigned char *data;
	size_t len;
	bool removed;
	X509_NAME *iss;

	(void)state;
	data = slurp("crl/large/amazon-r2m02.crl", &len);
	assert_int_equal(crl_parse(data, len, NULL, &info), CRL_PARSE_OK);
	iss = X509_NAME_dup(info.issuer_name);
	for (size_t i = 0; i < info.entries; i += 97) {
		struct crl_index_entry e;
		ASN1_INTEGER *a = ASN1_INTEGER_new();
		unsigned char tmp[64];

		crl_index_at(&info.index, i, &e);
		assert_true(e.len < sizeof(tmp));
		memcpy(tmp, e.bytes, e.len);
		ASN1_STRING_set(a, tmp, (int)e.len);
		if (e.flags & CRL_SERIAL_NEGATIVE)
			a->type = V_ASN1_NEG_INTEGER;
		assert_int_equal(crl_lookup(&info, a, iss, &removed), 1);
		tmp[e.len - 1] ^= 0x01;	/* a neighbour, most likely absent */
		ASN1_STRING_set(a, tmp, (int)e.len);
		(void)crl_lookup(&info, a, iss, &removed);
		ASN1_INTEGER_free(a);
	}
	X509_NAME_free(iss);
	crl_info_cleanup(&info);
	free(data);
}

static void test_ldap_unwrap(void **state)
{
	struct crl_info info;
	unsigned char *der, *out;
	size_t len, outlen;
	char *text;
	int n;

	(void)state;
	der = slurp("crl/adcs-synthetic/Issuing CA1.crl", &len);
	text = malloc(len * 2 + 200);
	n = sprintf(text, "DN: cn=Issuing CA1,dc=contoso,dc=test\n"
			  "\tcertificateRevocationList;binary:: ");
	n += EVP_EncodeBlock((unsigned char *)text + n, der, (int)len);
	n += sprintf(text + n, "\n\n");
	assert_int_equal(crl_ldap_unwrap((unsigned char *)text, (size_t)n, &out,
					 &outlen),
			 CRL_PARSE_OK);
	assert_int_equal(outlen, len);
	assert_memory_equal(out, der, len);
	assert_int_equal(crl_parse(out, outlen, NULL, &info), CRL_PARSE_OK);
	assert_string_equal(info.number, "41");
	crl_info_cleanup(&info);
	xfree(out);
	assert_int_equal(crl_ldap_unwrap((unsigned char *)"", 0, &out, &outlen),
			 CRL_PARSE_BAD_LDAP);
	assert_int_equal(crl_ldap_unwrap((unsigned char *)"DN: x\n\ta:: !!!\n",
					 16, &out, &outlen),
			 CRL_PARSE_BAD_LDAP);
	assert_null(out);
	free(text);
	free(der);
}

/* Every prefix of a CRL fails cleanly; never OK, never a crash. */
static void test_truncations(void **state)
{
	struct crl_info info;
	unsigned char *data;
	size_t len;

	(void)state;
	data = slurp("crl/adcs-synthetic/Issuing CA1+.crl", &len);
	for (size_t n = 0; n < len; n++) {
		unsigned char *copy = malloc(n + 1);

		memcpy(copy, data, n);
		assert_int_not_equal(crl_parse(copy, n, NULL, &info),
				     CRL_PARSE_OK);
		crl_info_cleanup(&info);
		free(copy);
	}
	/* and every single-byte change parses or fails, cleanly */
	for (size_t i = 0; i < len; i++) {
		data[i] ^= 0xff;
		(void)crl_parse(data, len, NULL, &info);
		crl_info_cleanup(&info);
		data[i] ^= 0xff;
	}
	free(data);
}

/* Fail the 1st, 2nd, ... allocation: out_of_memory or OK, no leak. */
static void test_alloc_failures(void **state)
{
	struct crl_info info;
	unsigned char *data;
	size_t len;
	enum crl_parse_err rc = CRL_PARSE_NOMEM;

	(void)state;
	data = slurp("crl/indirect/indirectCRLCA5CRL.crl", &len);
	for (unsigned long n = 1; n < 200 && rc != CRL_PARSE_OK; n++) {
		xalloc_fail_after(n);
		rc = crl_parse(data, len, NULL, &info);
		xalloc_fail_after(0);
		assert_true(rc == CRL_PARSE_OK || rc == CRL_PARSE_NOMEM);
		crl_info_cleanup(&info);
	}
	assert_int_equal(rc, CRL_PARSE_OK);
	free(data);
}

static void test_name_escaping(void **state)
{
	X509_NAME *n = X509_NAME_new();
	char out[256];

	(void)state;
	X509_NAME_add_entry_by_txt(n, "C", MBSTRING_UTF8,
				   (const unsigned char *)"US", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
				   (const unsigned char *)"Acme, \"Inc\"+1", -1,
				   -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
				   (const unsigned char *)" #x ", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "emailAddress", MBSTRING_UTF8,
				   (const unsigned char *)"a@b", -1, -1, 0);
	crl_name_rfc4514(n, out, sizeof(out));
	assert_string_equal(out, "1.2.840.113549.1.9.1=a@b,CN=\\ #x\\ ,"
				 "O=Acme\\, \\\"Inc\\\"\\+1,C=US");
	crl_name_rfc4514(n, out, 10);
	assert_string_equal(out, "(name too");
	X509_NAME_free(n);
}


static void test_numbers_and_sizes(void **state)
{
	size_t v;

	(void)state;
	assert_int_equal(crl_number_cmp("41", "41"), 0);
	assert_int_equal(crl_number_cmp("42", "41"), 1);
	assert_int_equal(crl_number_cmp("9", "10"), -1);
	assert_int_equal(crl_number_cmp("007", "7"), 0);
	assert_int_equal(crl_number_cmp("-5", "3"), -1);
	assert_int_equal(crl_number_cmp("-5", "-3"), -1);
	assert_int_equal(crl_number_cmp(
				 "866101502342345259599655637619077703837001910233146548098826569261088",
				 "1665432727442340449"),
			 1);
	assert_int_equal(crl_size_parse("64MiB", &v), 0);
	assert_int_equal(v, 64u << 20);
	assert_int_equal(crl_size_parse("512KiB", &v), 0);
	assert_int_equal(v, 512u << 10);
	assert_int_equal(crl_size_parse("10MB", &v), 0);
	assert_int_equal(v, 10000000);
	assert_int_equal(crl_size_parse("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_not_equal(crl_size_parse("12XB", &v), 0);
	assert_int_not_equal(crl_size_parse("-1", &v), 0);
	assert_int_not_equal(crl_size_parse("", &v), 0);
	assert_int_not_equal(crl_size_parse("99999999999999999999GiB", &v), 0);
}

static struct crl_data *data_of(const char *rel)
{
	struct crl_data *d = xcalloc(1, sizeof(*d));
	unsigned char *b;
	size_t len;

	b = slurp(rel, &len);
	assert_int_equal(crl_parse(b, len, NULL, &d->info), CRL_PARSE_OK);
	d->refs = 1;
	free(b);
	return d;
}

static bool efd_fired(int efd)
{
	uint64_t v = 0;

	return read(efd, &v, sizeof(v)) == sizeof(v) && v > 0;
}

/* Single flight: one fetcher, the others wait and are woken with its
 * result, or take the cache. */
static void test_cache_single_flight(void **state)
{
	const struct crl_policy p = {300, 3600};
	struct crl_entry *e = crl_cache_entry("test\x1fsingle");
	struct crl_waiter w1 = {.efd = -1}, w2 = {.efd = -1};
	struct crl_snapshot snap;
	char *etag, *lm;

	(void)state;
	assert_non_null(e);
	assert_ptr_equal(crl_cache_entry("test\x1fsingle"), e);
	w2.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(crl_cache_begin(e, &p, &w1, &snap, &etag, &lm),
			 CRL_BEGIN_FETCH);
	assert_null(etag);	/* nothing cached: no validators */
	assert_int_equal(crl_cache_begin(e, &p, &w2, &snap, &etag, &lm),
			 CRL_BEGIN_WAIT);
	assert_true(crl_cache_waiting(&w2));
	assert_false(efd_fired(w2.efd));
	/* without a way to wait: what the cache has (nothing yet) */
	assert_int_equal(crl_cache_begin(e, &p, NULL, &snap, &etag, &lm),
			 CRL_BEGIN_CACHED);
	assert_false(snap.attempted);
	crl_snapshot_cleanup(&snap);
	crl_cache_finish(e, &p, FETCH_OK, CRL_PARSE_OK, 200, 0.1, false,
			 data_of("crl/adcs-synthetic/Issuing CA1.crl"), "\"e1\"",
			 "Wed, 01 Jan 2025 12:00:00 GMT");
	assert_true(efd_fired(w2.efd));
	assert_false(crl_cache_waiting(&w2));
	/* the waiter now takes the result: no second fetch */
	assert_int_equal(crl_cache_begin(e, &p, &w2, &snap, &etag, &lm),
			 CRL_BEGIN_CACHED);
	assert_true(snap.ok);
	assert_int_equal(snap.http_status, 200);
	assert_non_null(snap.data);
	assert_string_equal(snap.data->info.number, "41");
	assert_true(snap.last_success > 0);
	crl_snapshot_cleanup(&snap);
	close(w2.efd);
}

/* A fetcher that gives up wakes its waiters, who then fetch themselves. */
static void test_cache_abort(void **state)
{
	const struct crl_policy p = {300, 3600};
	struct crl_entry *e = crl_cache_entry("test\x1f" "abort");
	struct crl_waiter w = {.efd = -1};
	struct crl_snapshot snap;
	char *etag, *lm;

	(void)state;
	w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(crl_cache_begin(e, &p, NULL, &snap, &etag, &lm),
			 CRL_BEGIN_FETCH);
	assert_int_equal(crl_cache_begin(e, &p, &w, &snap, &etag, &lm),
			 CRL_BEGIN_WAIT);
	crl_cache_abort(e);
	assert_true(efd_fired(w.efd));
	assert_int_equal(crl_cache_begin(e, &p, &w, &snap, &etag, &lm),
			 CRL_BEGIN_FETCH);
	/* a waiter that leaves before the end is not woken */
	assert_int_equal(crl_cache_begin(e, &p, &w, &snap, &etag, &lm),
			 CRL_BEGIN_WAIT);
	crl_cache_unwait(e, &w);
	assert_false(crl_cache_waiting(&w));
	crl_cache_finish(e, &p, FETCH_ERR_TIMEOUT, CRL_PARSE_OK, 0, 1.0, false,
			 NULL, NULL, NULL);
	assert_false(efd_fired(w.efd));
	close(w.efd);
}

/* Validators, 304, and a failure that keeps the last good CRL. */
static void test_cache_revalidate(void **state)
{
	const struct crl_policy now = {0, 0};	/* always due */
	struct crl_entry *e = crl_cache_entry("test\x1frevalidate");
	struct crl_snapshot snap;
	char *etag, *lm;
	int64_t good;

	(void)state;
	assert_int_equal(crl_cache_begin(e, &now, NULL, &snap, &etag, &lm),
			 CRL_BEGIN_FETCH);
	crl_cache_finish(e, &now, FETCH_OK, CRL_PARSE_OK, 200, 0.1, false,
			 data_of("crl/adcs-synthetic/Issuing CA1.crl"), "\"v1\"",
			 NULL);
	assert_int_equal(crl_cache_begin(e, &now, NULL, &snap, &etag, &lm),
			 CRL_BEGIN_FETCH);
	assert_non_null(etag);
	assert_string_equal(etag, "\"v1\"");
	assert_null(lm);
	xfree(etag);
	crl_cache_finish(e, &now, FETCH_OK, CRL_PARSE_OK, 304, 0.1, true, NULL,
			 NULL, NULL);
	crl_cache_snapshot(e, &snap);
	assert_true(snap.ok);
	assert_true(snap.not_modified);
	assert_string_equal(snap.data->info.number, "41");
	good = snap.last_success;
	crl_snapshot_cleanup(&snap);
	assert_int_equal(crl_cache_begin(e, &now, NULL, &snap, &etag, &lm),
			 CRL_BEGIN_FETCH);
	xfree(etag);
	crl_cache_finish(e, &now, FETCH_ERR_HTTP_STATUS, CRL_PARSE_OK, 500, 0.1,
			 false, NULL, NULL, NULL);
	crl_cache_snapshot(e, &snap);
	assert_false(snap.ok);
	assert_int_equal(snap.http_status, 500);
	assert_string_equal(crl_snapshot_reason(&snap), "http_status");
	assert_int_equal(snap.last_success, good);
	assert_non_null(snap.data);	/* the last good CRL is kept */
	assert_string_equal(snap.data->info.number, "41");
	crl_snapshot_cleanup(&snap);
	/* a garbled answer is a failure too, the good copy stays */
	assert_int_equal(crl_cache_begin(e, &now, NULL, &snap, &etag, &lm),
			 CRL_BEGIN_FETCH);
	xfree(etag);
	crl_cache_finish(e, &now, FETCH_OK, CRL_PARSE_HTML, 200, 0.1, false,
			 NULL, NULL, NULL);
	crl_cache_snapshot(e, &snap);
	assert_false(snap.ok);
	assert_string_equal(crl_snapshot_reason(&snap), "html_page");
	assert_non_null(snap.data);
	crl_snapshot_cleanup(&snap);
	crl_cache_base_seen(e, "40");
	crl_cache_base_seen(e, "41");
	crl_cache_base_seen(e, "39");
	crl_cache_snapshot(e, &snap);
	assert_string_equal(snap.base_seen, "41");
	crl_snapshot_cleanup(&snap);
}

/* Not due: min_interval holds even when nextUpdate has passed. */
static void test_cache_min_interval(void **state)
{
	const struct crl_policy p = {300, 3600};
	struct crl_entry *e = crl_cache_entry("test\x1fmin");
	struct crl_snapshot snap;
	char *etag, *lm;

	(void)state;
	assert_int_equal(crl_cache_begin(e, &p, NULL, &snap, &etag, &lm),
			 CRL_BEGIN_FETCH);
	/* an expired CRL (nextUpdate 2025-01-09): poll, but not sooner */
	crl_cache_finish(e, &p, FETCH_OK, CRL_PARSE_OK, 200, 0.1, false,
			 data_of("crl/adcs-synthetic/Issuing CA1.crl"), NULL, NULL);
	assert_int_equal(crl_cache_begin(e, &p, NULL, &snap, &etag, &lm),
			 CRL_BEGIN_CACHED);
	crl_snapshot_cleanup(&snap);
	crl_cache_reset();
}

/* ---- the fast path against d2i_X509_CRL ---- */

/* Both parsers on one body: the same verdict, and on success the same
 * facts (crl_info_diff: every field, the issuer names, the whole index). */
static void same_both_ways(const char *what, const unsigned char *data,
			   size_t len, STACK_OF(X509) *issuers)
{
	struct crl_info a, b;
	enum crl_parse_err ra, rb;
	char why[256];

	ra = crl_parse(data, len, issuers, &a);
	rb = crl_parse_reference(data, len, issuers, &b);
	if (ra != rb)
		fail_msg("%s: fast %s, reference %s", what,
			 crl_parse_err_str(ra), crl_parse_err_str(rb));
	if (ra == CRL_PARSE_OK && crl_info_diff(&a, &b, why, sizeof(why)))
		fail_msg("%s: %s", what, why);
	crl_info_cleanup(&a);
	crl_info_cleanup(&b);
}

static EVP_PKEY *test_key(const char *type)
{
	EVP_PKEY *k = NULL;

	if (strcmp(type, "RSA") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	else if (strcmp(type, "EC") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		k = EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(k);
	return k;
}

/* A CA certificate named `name` holding `key` (self-signed). */
static X509 *test_ca(const X509_NAME *name, EVP_PKEY *key)
{
	X509 *x = X509_new();
	bool ed = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");

	assert_non_null(x);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, ed ? NULL : EVP_sha256()) > 0);
	return x;
}

struct walk_ctx {
	STACK_OF(X509) *certs;	/* the corpus's certificates */
	EVP_PKEY *keys[3];	/* RSA, EC, Ed25519: never the right ones */
	size_t files, ok, valid;
};

static struct walk_ctx wctx;

static void load_certs_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[2048];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			load_certs_dir(path);
		} else {
			BIO *b = BIO_new_file(path, "rb");
			X509 *x;

			while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
				sk_X509_push(wctx.certs, x);
			BIO_free(b);
			ERR_clear_error();
			b = BIO_new_file(path, "rb");
			x = b ? d2i_X509_bio(b, NULL) : NULL;
			if (x)
				sk_X509_push(wctx.certs, x);
			BIO_free(b);
			ERR_clear_error();
		}
	}
	closedir(d);
}

static void compare_file(const char *path)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	struct crl_info info;
	unsigned char *data;
	struct stat st;
	size_t len;
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	data = malloc((size_t)st.st_size + 1);
	len = fread(data, 1, (size_t)st.st_size, f);
	fclose(f);
	wctx.files++;
	same_both_ways(path, data, len, NULL);
	/* with issuers: the corpus's certificates, and certificates named
	 * like the CRL's issuer holding keys of each type (a failed
	 * verification, or a key of the wrong type, both ways alike) */
	for (int i = 0; i < sk_X509_num(wctx.certs); i++) {
		X509 *x = sk_X509_value(wctx.certs, i);

		X509_up_ref(x);
		sk_X509_push(sk, x);
	}
	if (crl_parse(data, len, NULL, &info) == CRL_PARSE_OK) {
		wctx.ok++;
		for (size_t k = 0; k < 3; k++)
			sk_X509_push(sk, test_ca(info.issuer_name, wctx.keys[k]));
	}
	crl_info_cleanup(&info);
	same_both_ways(path, data, len, sk);
	if (crl_parse(data, len, sk, &info) == CRL_PARSE_OK &&
	    info.sig == CRL_SIG_VALID)
		wctx.valid++;
	crl_info_cleanup(&info);
	sk_X509_pop_free(sk, X509_free);
	free(data);
}

static void compare_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[2048];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		assert_int_equal(stat(path, &st), 0);
		if (S_ISDIR(st.st_mode))
			compare_dir(path);
		else if (S_ISREG(st.st_mode))
			compare_file(path);
	}
	closedir(d);
}

/* Every file under crl/ (recursively), with and without issuers. */
static void test_fast_vs_reference_corpus(void **state)
{
	char dir[1200];
	const char *types[3] = {"RSA", "EC", "ED25519"};

	(void)state;
	memset(&wctx, 0, sizeof(wctx));
	wctx.certs = sk_X509_new_null();
	snprintf(dir, sizeof(dir), "%s/certs", corpus);
	load_certs_dir(dir);
	assert_true(sk_X509_num(wctx.certs) > 5);
	for (size_t k = 0; k < 3; k++)
		wctx.keys[k] = test_key(types[k]);
	snprintf(dir, sizeof(dir), "%s/crl", corpus);
	compare_dir(dir);
	assert_int_equal(wctx.files, sizeof(cases) / sizeof(cases[0]));
	assert_true(wctx.ok >= 25);
	assert_true(wctx.valid >= 3);	/* SINPE, Issuing CA1 base and delta */
	for (size_t k = 0; k < 3; k++)
		EVP_PKEY_free(wctx.keys[k]);
	sk_X509_pop_free(wctx.certs, X509_free);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* Broken and odd encodings: every prefix, every byte flipped or set to a
 * value that means something to a DER reader, and random multi-byte
 * damage: both parsers always agree. */
static void test_fast_vs_reference_mutations(void **state)
{
	const char *files[] = {
		"crl/adcs-synthetic/Issuing CA1+.crl",
		"crl/indirect/indirectCRLCA5CRL.crl",
		"crl/delta/deltaCRLCA1deltaCRL.crl",
		"crl/delta/webpki-crl.delta.der",
		"crl/edge/UnknownCRLExtensionCACRL.crl",
		"crl/adcs/CA SINPE - PERSONA JURIDICA v2.crl",
		"crl/edge/crl.idp.only_some_reasons.der",
	};
	const unsigned char vals[] = {0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84,
				      0x85, 0x1f, 0x30, 0xa0, 0x24, 0x37, 0x02,
				      0xff};

	(void)state;
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		unsigned char *data = slurp(files[f], &len);
		char what[600];

		for (size_t n = 0; n < len; n++) {
			snprintf(what, sizeof(what), "%s cut at %zu", files[f], n);
			same_both_ways(what, data, n, NULL);
		}
		for (size_t i = 0; i < len; i++) {
			unsigned char keep = data[i];

			for (size_t v = 0; v <= sizeof(vals); v++) {
				data[i] = v < sizeof(vals) ? vals[v] : keep ^ 0xff;
				snprintf(what, sizeof(what), "%s[%zu]=%02x",
					 files[f], i, data[i]);
				same_both_ways(what, data, len, NULL);
			}
			data[i] = keep;
		}
		for (int r = 0; r < 2000; r++) {
			unsigned char *copy = malloc(len);

			memcpy(copy, data, len);
			for (int k = 1 + (int)(rnd() % 4); k > 0; k--)
				copy[rnd() % len] = (unsigned char)rnd();
			snprintf(what, sizeof(what), "%s random %d", files[f], r);
			same_both_ways(what, copy, len, NULL);
			free(copy);
		}
		free(data);
	}
}

static ASN1_INTEGER *int_of(const unsigned char *mag, size_t n, bool neg)
{
	ASN1_INTEGER *a = ASN1_INTEGER_new();

	assert_non_null(a);
	while (n > 1 && mag[0] == 0) {	/* i2d keeps leading zeros */
		mag++;
		n--;
	}
	assert_true(ASN1_STRING_set(a, mag, (int)n));
	if (neg)
		a->type = V_ASN1_NEG_INTEGER;
	return a;
}

static void add_entry(X509_CRL *crl, ASN1_INTEGER *sn, int reason,
		      int nreasons, bool crit_unknown,
		      const X509_NAME *cert_issuer)
{
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_TIME *t = ASN1_TIME_set(NULL, 1700000000);

	X509_REVOKED_set_serialNumber(r, sn);
	X509_REVOKED_set_revocationDate(r, t);
	for (int i = 0; i < nreasons; i++) {
		ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();

		ASN1_ENUMERATED_set(e, reason);
		assert_int_equal(X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, e,
							   0, X509V3_ADD_APPEND),
				 1);
		ASN1_ENUMERATED_free(e);
	}
	if (crit_unknown) {
		ASN1_OBJECT *o = OBJ_txt2obj("1.3.6.1.4.1.99999.1", 1);
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
		X509_EXTENSION *ex;

		ASN1_OCTET_STRING_set(os, (const unsigned char *)"\x05\x00", 2);
		ex = X509_EXTENSION_create_by_OBJ(NULL, o, 1, os);
		X509_REVOKED_add_ext(r, ex, -1);
		X509_EXTENSION_free(ex);
		ASN1_OCTET_STRING_free(os);
		ASN1_OBJECT_free(o);
	}
	if (cert_issuer) {
		GENERAL_NAMES *g = GENERAL_NAMES_new();
		GENERAL_NAME *gn = GENERAL_NAME_new();

		gn->type = GEN_DIRNAME;
		gn->d.directoryName = X509_NAME_dup(cert_issuer);
		sk_GENERAL_NAME_push(g, gn);
		X509_REVOKED_add1_ext_i2d(r, NID_certificate_issuer, g, 1, 0);
		GENERAL_NAMES_free(g);
	}
	assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(sn);
}

static X509_NAME *name_of(const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
				   (const unsigned char *)"Bench", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
				   (const unsigned char *)cn, -1, -1, 0);
	return n;
}

/* A CRL with the entry kinds the index treats differently, signed by
 * `key` the way `alg` says ("pss" for RSASSA-PSS); DER in *out. */
static size_t make_crl(EVP_PKEY *key, const char *alg, bool indirect,
		       unsigned char **out)
{
	X509_CRL *crl = X509_CRL_new();
	X509_NAME *iss = name_of("Test CRL Issuer");
	X509_NAME *other = name_of("Other CA"), *third = name_of("Third CA");
	ASN1_TIME *t = ASN1_TIME_set(NULL, 1700000000);
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	unsigned char mag[40];
	int len;

	X509_CRL_set_version(crl, X509_CRL_VERSION_2);
	X509_CRL_set_issuer_name(crl, iss);
	X509_CRL_set1_lastUpdate(crl, t);
	ASN1_TIME_set(t, 1700086400);
	X509_CRL_set1_nextUpdate(crl, t);
	ASN1_INTEGER_set(num, 42);
	X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0);
	if (indirect) {
		ISSUING_DIST_POINT *idp = ISSUING_DIST_POINT_new();

		idp->indirectCRL = 1;
		X509_CRL_add1_ext_i2d(crl, NID_issuing_distribution_point, idp,
				      1, 0);
		ISSUING_DIST_POINT_free(idp);
	}
	/* 300 random 16-byte serials (some start with zero bytes) */
	for (int i = 0; i < 300; i++) {
		for (size_t k = 0; k < 16; k++)
			mag[k] = (unsigned char)rnd();
		if (i % 50 == 0)
			mag[0] = 0;
		mag[1] &= i % 7 ? 0xff : 0;
		add_entry(crl, int_of(mag, 16, false), 1, i % 3 == 0 ? 1 : 0,
			  false, indirect && i == 100 ? other
			  : indirect && i == 200 ? third
			  : indirect && i == 250 ? iss : NULL);
	}
	mag[0] = 0;
	add_entry(crl, int_of(mag, 1, false), 0, 0, false, NULL);	/* 0 */
	mag[0] = 0x80;
	add_entry(crl, int_of(mag, 1, false), 0, 0, false, NULL);	/* 128 */
	mag[0] = 5;
	add_entry(crl, int_of(mag, 1, true), 0, 0, false, NULL);	/* -5 */
	memset(mag, 0xab, sizeof(mag));
	add_entry(crl, int_of(mag, 40, false), 0, 0, false, NULL);	/* long */
	mag[0] = 0x11;
	add_entry(crl, int_of(mag, 3, false), 8, 1, false, NULL);	/* remove */
	mag[0] = 0x12;
	add_entry(crl, int_of(mag, 3, false), 8, 2, false, NULL);	/* 2 reasons */
	mag[0] = 0x13;
	add_entry(crl, int_of(mag, 3, false), 0, 0, true, NULL);	/* critical */
	mag[0] = 0x11;
	add_entry(crl, int_of(mag, 3, false), 0, 0, false, NULL);	/* again */
	if (strcmp(alg, "pss") == 0) {
		EVP_MD_CTX *mctx = EVP_MD_CTX_new();
		EVP_PKEY_CTX *pctx = NULL;

		assert_true(EVP_DigestSignInit(mctx, &pctx, EVP_sha256(), NULL,
					       key));
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
		assert_true(X509_CRL_sign_ctx(crl, mctx) > 0);
		EVP_MD_CTX_free(mctx);
	} else {
		assert_true(X509_CRL_sign(crl, key,
					  strcmp(alg, "none") == 0 ? NULL
					  : strcmp(alg, "sha384") == 0
						  ? EVP_sha384()
						  : EVP_sha256()) > 0);
	}
	*out = NULL;
	len = i2d_X509_CRL(crl, out);
	assert_true(len > 0);

	X509_CRL_free(crl);
	X509_NAME_free(iss);
	X509_NAME_free(other);
	X509_NAME_free(third);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(num);
	return (size_t)len;
}

/* RSA (PKCS#1 v1.5 and PSS), ECDSA and Ed25519: valid, tampered, and the
 * wrong key; every entry kind; both parsers alike. */
static void test_signature_algorithms(void **state)
{
	const struct {
		const char *key, *alg;
	} algs[] = {{"RSA", "sha256"}, {"RSA", "pss"}, {"EC", "sha384"},
		    {"ED25519", "none"}};
	EVP_PKEY *wrong = test_key("EC");

	(void)state;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		EVP_PKEY *key = test_key(algs[i].key);
		unsigned char *der;
		size_t len = make_crl(key, algs[i].alg, i == 1, &der);
		STACK_OF(X509) *sk = sk_X509_new_null();
		STACK_OF(X509) *bad = sk_X509_new_null();
		struct crl_info info;
		X509_NAME *iss = name_of("Test CRL Issuer");
		unsigned char *at;
		bool removed;

		sk_X509_push(sk, test_ca(iss, key));
		sk_X509_push(bad, test_ca(iss, wrong));
		same_both_ways(algs[i].alg, der, len, sk);
		same_both_ways(algs[i].alg, der, len, bad);
		assert_int_equal(crl_parse(der, len, sk, &info), CRL_PARSE_OK);
		assert_int_equal(info.sig, CRL_SIG_VALID);
		assert_int_equal(info.entries, 308);
		assert_true(info.unknown_critical);
		assert_int_equal(info.indirect, i == 1);
		assert_true(index_sorted(&info.index));
		/* the 40-byte and the negative serial are odd, and so are
		 * the removeFromCRL and (indirect) other issuers' entries */
		assert_true(info.index.nodd >= 3);
		assert_true(info.index.width <= 16);
		{
			unsigned char m[40];
			ASN1_INTEGER *a;

			memset(m, 0xab, sizeof(m));
			a = int_of(m, 40, false);
			assert_int_equal(crl_lookup(&info, a, iss, &removed), 1);
			ASN1_INTEGER_free(a);
			m[0] = 5;
			a = int_of(m, 1, true);
			assert_int_equal(crl_lookup(&info, a, iss, &removed), 1);
			a->type = V_ASN1_INTEGER;	/* +5 is not listed */
			assert_int_equal(crl_lookup(&info, a, iss, &removed), 0);
			ASN1_INTEGER_free(a);
			/* listed plainly and as removeFromCRL: listed */
			m[0] = 0x11;
			a = int_of(m, 3, false);
			assert_int_equal(crl_lookup(&info, a, iss, &removed), 1);
			assert_false(removed);
			ASN1_INTEGER_free(a);
			/* two reasonCode extensions: OpenSSL reads none */
			m[0] = 0x12;
			a = int_of(m, 3, false);
			assert_int_equal(crl_lookup(&info, a, iss, &removed), 1);
			assert_false(removed);
			ASN1_INTEGER_free(a);
			m[0] = 0;
			a = int_of(m, 1, false);
			assert_int_equal(crl_lookup(&info, a, iss, &removed), 1);
			ASN1_INTEGER_free(a);
		}
		if (i == 1)
			assert_int_equal(info.nentry_issuers, 2);
		crl_info_cleanup(&info);
		/* a changed revocation date (inside tbsCertList) */
		at = der + len / 2;
		while (*at != '2' || at[-1] != 0x0d)
			at++;
		*at = '3';
		same_both_ways("tampered", der, len, sk);
		assert_int_equal(crl_parse(der, len, sk, &info), CRL_PARSE_OK);
		assert_int_equal(info.sig, CRL_SIG_INVALID);
		crl_info_cleanup(&info);
		OPENSSL_free(der);
		X509_NAME_free(iss);
		sk_X509_pop_free(sk, X509_free);
		sk_X509_pop_free(bad, X509_free);
		EVP_PKEY_free(key);
	}
	EVP_PKEY_free(wrong);
}

/* DER length octets for n. */
static size_t put_len(unsigned char *p, size_t n)
{
	if (n < 0x80) {
		p[0] = (unsigned char)n;
		return 1;
	}
	p[0] = 0x83;
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
	return 4;
}

/* BER that d2i accepts and DER forbids (an indefinite-length
 * revokedCertificates): the fast path hands it to the reference. */
static void test_ber_fallback(void **state)
{
	EVP_PKEY *key = test_key("EC");
	unsigned char *der, *ber, *q;
	size_t len = make_crl(key, "sha256", false, &der), i, tbs_hdr, tbs_len;
	size_t rev_at, rev_hdr, rev_len, out_len;
	struct crl_info a, b;
	char why[256];

	(void)state;
	/* outer 30 83 xx xx xx, tbs 30 83 ..., then walk to the SEQUENCE
	 * of entries: version, alg, issuer, this, next */
	assert_int_equal(der[0], 0x30);
	i = 2 + (der[1] & 0x7f);
	tbs_hdr = 2 + (der[i + 1] > 0x80 ? (der[i + 1] & 0x7f) : 0);
	tbs_len = 0;
	for (size_t k = 0; k < (der[i + 1] & 0x7f); k++)
		tbs_len = tbs_len << 8 | der[i + 2 + k];
	rev_at = i + tbs_hdr;
	for (int f = 0; f < 5; f++) {
		size_t l = der[rev_at + 1], h = 2;

		if (l & 0x80) {
			h += l & 0x7f;
			l = 0;
			for (size_t k = 0; k < (der[rev_at + 1] & 0x7f); k++)
				l = l << 8 | der[rev_at + 2 + k];
		}
		rev_at += h + l;
	}
	assert_int_equal(der[rev_at], 0x30);
	rev_hdr = 2 + (der[rev_at + 1] & 0x7f);
	rev_len = 0;
	for (size_t k = 0; k < (der[rev_at + 1] & 0x7f); k++)
		rev_len = rev_len << 8 | der[rev_at + 2 + k];
	/* rebuild: tbs with "30 80 entries 00 00" */
	ber = malloc(len + 32);
	q = ber + 16;	/* room for the outer and tbs headers */
	{
		size_t pre = rev_at - (i + tbs_hdr);
		size_t post = (i + tbs_hdr + tbs_len) - (rev_at + rev_hdr + rev_len);
		size_t new_tbs = pre + 2 + rev_len + 2 + post;
		size_t sig_part = len - (i + tbs_hdr + tbs_len);
		unsigned char hdr[16];
		size_t hl = 0, ol;

		hdr[hl++] = 0x30;
		hl += put_len(hdr + hl, new_tbs);
		q = ber;
		q[0] = 0x30;
		ol = 1 + put_len(q + 1, hl + new_tbs + sig_part);
		q += ol;
		memcpy(q, hdr, hl);
		q += hl;
		memcpy(q, der + i + tbs_hdr, pre);
		q += pre;
		*q++ = 0x30;
		*q++ = 0x80;
		memcpy(q, der + rev_at + rev_hdr, rev_len);
		q += rev_len;
		*q++ = 0;
		*q++ = 0;
		memcpy(q, der + rev_at + rev_hdr + rev_len, post);
		q += post;
		memcpy(q, der + i + tbs_hdr + tbs_len, sig_part);
		q += sig_part;
		out_len = (size_t)(q - ber);
	}
	assert_int_equal(crl_parse(ber, out_len, NULL, &a), CRL_PARSE_OK);
	assert_int_equal(crl_parse_reference(ber, out_len, NULL, &b),
			 CRL_PARSE_OK);
	assert_int_equal(crl_info_diff(&a, &b, why, sizeof(why)), 0);
	assert_int_equal(a.entries, 308);
	crl_info_cleanup(&a);
	crl_info_cleanup(&b);
	free(ber);
	OPENSSL_free(der);
	EVP_PKEY_free(key);
}

/* The fast path's table of known extension OIDs says what
 * crl_known_extension() says. */
static void test_known_extension_oids(void **state)
{
	const char *oids[] = {
		"2.5.29.35", "2.5.29.20", "2.5.29.27", "2.5.29.28",
		"2.5.29.46", "1.3.6.1.5.5.7.1.1", "2.5.29.18", "2.5.29.21",
		"2.5.29.24", "2.5.29.29", "2.5.29.23", "1.3.6.1.4.1.311.21.1",
		"1.3.6.1.4.1.311.21.4", "1.3.6.1.4.1.311.21.14",
		/* and some it does not know */
		"2.5.29.19", "2.5.29.15", "2.5.29.37", "2.5.29.31",
		"1.3.6.1.4.1.311.21.2", "1.3.6.1.4.1.311.21.7",
		"1.3.6.1.4.1.11129.2.4.2", "1.2.3.4",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(oids) / sizeof(oids[0]); i++) {
		ASN1_OBJECT *o = OBJ_txt2obj(oids[i], 1);
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
		X509_EXTENSION *ex = X509_EXTENSION_create_by_OBJ(NULL, o, 1, os);

		assert_non_null(ex);
		if (crl_known_extension(ex) !=
		    crl_known_extension_der(OBJ_get0_data(o), OBJ_length(o)))
			fail_msg("%s: tables disagree", oids[i]);
		assert_int_equal(crl_known_extension(ex), i < 14);
		X509_EXTENSION_free(ex);
		ASN1_OCTET_STRING_free(os);
		ASN1_OBJECT_free(o);
	}
}

static int cmp_rec16(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

/* The index alone: the width choice, radix sorting against qsort, and
 * look-ups against brute force. */
static void test_index(void **state)
{
	const size_t n = 20000;
	unsigned char *keys = malloc(n * 16), *ref = malloc(n * 16);
	struct crl_index ix;
	bool removed;

	(void)state;
	for (int round = 0; round < 4; round++) {
		crl_index_init(&ix);
		for (size_t i = 0; i < n; i++) {
			unsigned char *k = keys + i * 16;

			for (size_t j = 0; j < 16; j++)
				k[j] = (unsigned char)rnd();
			if (round == 1)	/* long common prefixes */
				memset(k, 0x42, 12);
			if (round == 2)	/* many duplicates */
				k[15] = k[14] = 0, memset(k, 7, 14);
			if (round == 3)	/* already sorted */
				k[0] = 0x10, k[1] = (unsigned char)(i >> 16),
				k[2] = (unsigned char)(i >> 8),
				k[3] = (unsigned char)i;
			if (k[0] == 0)
				k[0] = 1;	/* exactly 16 bytes */
		}
		for (size_t i = 0; i < n; i++) {
			struct crl_index_entry e = {keys + i * 16, 16, 0, 0};

			crl_index_count(&ix, &e);
		}
		{
			unsigned char big[40];
			struct crl_index_entry e = {big, 40, 0, 0};

			memset(big, 0xee, sizeof(big));
			crl_index_count(&ix, &e);	/* an outlier stays odd */
		}
		assert_int_equal(crl_index_alloc(&ix), 0);
		for (size_t i = 0; i < n; i++) {
			struct crl_index_entry e = {keys + i * 16, 16, 0, 0};

			assert_int_equal(crl_index_put(&ix, &e), 0);
		}
		{
			unsigned char big[40];
			struct crl_index_entry e = {big, 40, 0, 0};

			memset(big, 0xee, sizeof(big));
			assert_int_equal(crl_index_put(&ix, &e), 0);
			assert_int_equal(crl_index_put(&ix, &e), -EINVAL);
		}
		assert_int_equal(crl_index_finish(&ix), 0);
		assert_int_equal(ix.width, 16);
		assert_int_equal(ix.n, n);
		assert_int_equal(ix.nodd, 1);
		assert_int_equal(crl_index_bytes(&ix), n * 16 + 8 + 40);
		memcpy(ref, keys, n * 16);
		qsort(ref, n, 16, cmp_rec16);
		assert_memory_equal(ix.plain, ref, n * 16);
		for (size_t i = 0; i < n; i += 7) {
			unsigned char k[17];

			memcpy(k + 1, keys + i * 16, 16);
			k[0] = 0;	/* a leading zero changes nothing */
			assert_int_equal(crl_index_find(&ix, k, 17, false, 0,
							&removed), 1);
			assert_int_equal(crl_index_find(&ix, k + 1, 16, true, 0,
							&removed), 0);
			assert_int_equal(crl_index_find(&ix, k + 1, 16, false,
							1, &removed), 0);
		}
		crl_index_cleanup(&ix);
	}
	/* short serials: width follows the lengths, not the maximum */
	crl_index_init(&ix);
	for (int i = 0; i < 1000; i++) {
		struct crl_index_entry e = {keys, 1 + (size_t)(i % 3), 0, 0};

		crl_index_count(&ix, &e);
	}
	for (int i = 0; i < 3; i++) {
		struct crl_index_entry e = {keys, 20, 0, 0};

		crl_index_count(&ix, &e);
	}
	assert_int_equal(crl_index_alloc(&ix), 0);
	assert_int_equal(ix.width, 3);
	crl_index_cleanup(&ix);
	/* nothing at all */
	crl_index_init(&ix);
	assert_int_equal(crl_index_alloc(&ix), 0);
	assert_int_equal(crl_index_finish(&ix), 0);
	assert_int_equal(crl_index_find(&ix, (const unsigned char *)"\x01", 1,
					false, 0, &removed),
			 0);
	crl_index_cleanup(&ix);
	free(keys);
	free(ref);
}

/* The fast path's allocation failures on a CRL with every entry kind. */
static void test_alloc_failures_fast(void **state)
{
	EVP_PKEY *key = test_key("EC");
	unsigned char *der;
	size_t len = make_crl(key, "sha256", true, &der);
	enum crl_parse_err rc = CRL_PARSE_NOMEM;
	struct crl_info info;

	(void)state;
	for (unsigned long n = 1; n < 400 && rc != CRL_PARSE_OK; n++) {
		xalloc_fail_after(n);
		rc = crl_parse(der, len, NULL, &info);
		xalloc_fail_after(0);
		assert_true(rc == CRL_PARSE_OK || rc == CRL_PARSE_NOMEM);
		crl_info_cleanup(&info);
	}
	assert_int_equal(rc, CRL_PARSE_OK);
	OPENSSL_free(der);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_facts),
		cmocka_unit_test(test_corpus_complete),
		cmocka_unit_test(test_signatures),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_lookup_large),
		cmocka_unit_test(test_ldap_unwrap),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_name_escaping),
		cmocka_unit_test(test_numbers_and_sizes),
		cmocka_unit_test(test_cache_single_flight),
		cmocka_unit_test(test_cache_abort),
		cmocka_unit_test(test_cache_revalidate),
		cmocka_unit_test(test_cache_min_interval),
		cmocka_unit_test(test_fast_vs_reference_corpus),
		cmocka_unit_test(test_fast_vs_reference_mutations),
		cmocka_unit_test(test_signature_algorithms),
		cmocka_unit_test(test_ber_fallback),
		cmocka_unit_test(test_known_extension_oids),
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_alloc_failures_fast),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
