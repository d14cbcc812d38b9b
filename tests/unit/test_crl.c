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

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include "exporter/xalloc.h"
#include "probes/crl/crl_cache.h"
#include "probes/crl/crl_get.h"
#include "probes/crl/crl_parse.h"

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
	/* the serials are sorted */
	for (size_t i = 1; i < info.entries; i++) {
		const struct crl_serial *a = &info.serials[i - 1],
					*b = &info.serials[i];

		assert_true(a->len < b->len ||
			    (a->len == b->len &&
			     memcmp(info.blob + a->off, info.blob + b->off,
				    a->len) <= 0) ||
			    (a->flags & CRL_SERIAL_NEGATIVE));
	}
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
		const struct crl_serial *s = &info.serials[i];
		ASN1_INTEGER *a = ASN1_INTEGER_new();
		unsigned char tmp[64];

		assert_true(s->len < sizeof(tmp));
		memcpy(tmp, info.blob + s->off, s->len);
		ASN1_STRING_set(a, tmp, s->len);
		assert_int_equal(crl_lookup(&info, a, iss, &removed), 1);
		tmp[s->len - 1] ^= 0x01;	/* a neighbour, most likely absent */
		ASN1_STRING_set(a, tmp, s->len);
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
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
