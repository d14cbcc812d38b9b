/* Certificate facts, checked against what the openssl CLI says about
 * certificates generated here, and against the shared corpus. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#include <openssl/pem.h>

#include "exporter/xalloc.h"
#include "probes/x509/x509.h"

static char dir[] = "/tmp/pki-x509-test-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return tu_mkdir(dir);
}

static int teardown(void **state)
{
	(void)state;
	return tu_rmdir(dir);
}

#define run tu_run

static X509 *load_pem(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

/* "notAfter=2026-12-22 00:13:46Z" -> Unix seconds */
static int64_t iso_after_eq(const char *s)
{
	struct tm tm;
	const char *v = strchr(s, '=');

	memset(&tm, 0, sizeof(tm));
	assert_non_null(v);
	assert_non_null(strptime(v + 1, "%Y-%m-%d %H:%M:%S", &tm));
	return (int64_t)timegm(&tm);
}

static void lower_nocolon(char *dst, const char *s)
{
	const char *v = strchr(s, '=');

	for (v = v ? v + 1 : s; *v; v++)
		if (*v != ':')
			*dst++ = (char)tolower((unsigned char)*v);
	*dst = '\0';
}

/* Compare every fact with the openssl CLI's view of the same file. */
static void check_against_cli(const char *pem, struct x509_facts *f)
{
	char *s, want[200];

	s = run("openssl x509 -in %s -noout -enddate -dateopt iso_8601", pem);
	assert_int_equal(f->not_after, iso_after_eq(s));
	free(s);
	s = run("openssl x509 -in %s -noout -startdate -dateopt iso_8601", pem);
	assert_int_equal(f->not_before, iso_after_eq(s));
	free(s);
	s = run("openssl x509 -in %s -noout -serial", pem);
	assert_string_equal(f->serial, s + strlen("serial="));
	free(s);
	s = run("openssl x509 -in %s -noout -fingerprint -sha1", pem);
	lower_nocolon(want, s);
	assert_string_equal(f->sha1, want);
	free(s);
	s = run("openssl x509 -in %s -noout -fingerprint -sha256", pem);
	lower_nocolon(want, s);
	assert_string_equal(f->sha256, want);
	free(s);
}

static void test_generated_rsa(void **state)
{
	char *pem = xasprintf("%s/rsa.pem", dir);
	struct x509_facts f;
	X509 *x;

	(void)state;
	free(run("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/rsa.key "
		 "-out %s -days 45 -set_serial 0x00C0FFEE42 -sha384 "
		 "-subj '/O=Test Org/CN=srv.example.test' "
		 "-addext 'subjectAltName=DNS:srv.example.test,DNS:*.pool.test,"
		 "IP:127.0.0.1,IP:::1,email:pki@example.test' 2>/dev/null && echo ok",
		 dir, pem));
	x = load_pem(pem);
	assert_int_equal(x509_facts_init(&f, x), 0);
	assert_string_equal(f.subject_cn, "srv.example.test");
	assert_string_equal(f.issuer_cn, "srv.example.test");
	/* ASN.1 drops the redundant leading zero byte, as openssl prints */
	assert_string_equal(f.serial, "C0FFEE42");
	assert_string_equal(f.sig_alg, "sha384WithRSAEncryption");
	assert_string_equal(f.key_type, "RSA");
	assert_int_equal(f.key_bits, 2048);
	assert_string_equal(f.sans, "DNS:srv.example.test,DNS:*.pool.test,"
				    "IP:127.0.0.1,IP:::1,email:pki@example.test");
	assert_true(f.self_signed);
	assert_true(f.dates_ok);
	assert_int_equal(f.not_after - f.not_before, 45 * 86400);
	check_against_cli(pem, &f);
	x509_facts_cleanup(&f);
	X509_free(x);
	free(pem);
}

static void test_generated_chain(void **state)
{
	char *ca = xasprintf("%s/ca.pem", dir), *leaf = xasprintf("%s/leaf.pem", dir);
	struct x509_facts f;
	X509 *x;

	(void)state;
	free(run("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 "
		 "-nodes -keyout ca.key -out ca.pem -days 100 -subj '/CN=Unit Root CA' "
		 "2>/dev/null && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		 "-nodes -keyout leaf.key -out leaf.csr -subj '/CN=leaf \"quoted\" \\\\ cn' "
		 "2>/dev/null && openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key "
		 "-set_serial 7 -days 10 -out leaf.pem 2>/dev/null && echo ok", dir));
	x = load_pem(leaf);
	assert_int_equal(x509_facts_init(&f, x), 0);
	assert_string_equal(f.subject_cn, "leaf \"quoted\" \\ cn");
	assert_string_equal(f.issuer_cn, "Unit Root CA");
	assert_string_equal(f.serial, "07");
	assert_string_equal(f.sig_alg, "ecdsa-with-SHA256");
	assert_string_equal(f.key_type, "EC");
	assert_int_equal(f.key_bits, 256);
	assert_string_equal(f.sans, "");
	assert_false(f.self_signed);
	check_against_cli(leaf, &f);
	x509_facts_cleanup(&f);
	X509_free(x);

	x = load_pem(ca);
	assert_int_equal(x509_facts_init(&f, x), 0);
	assert_int_equal(f.key_bits, 384);
	assert_true(f.self_signed);
	assert_true(f.is_ca);
	x509_facts_cleanup(&f);
	X509_free(x);
	free(ca);
	free(leaf);
}

/* EKU and key-size flags on generated certificates. */
static void test_eku_and_weak_key(void **state)
{
	char *pem = xasprintf("%s/eku.pem", dir);
	struct x509_facts f;
	X509 *x;

	(void)state;
	free(run("openssl req -x509 -newkey rsa:1024 -nodes -keyout %s/eku.key "
		 "-out %s -days 1 -subj /CN=client-only -sha1 "
		 "-addext extendedKeyUsage=clientAuth "
		 "-addext 'crlDistributionPoints=URI:http://pki.test/CertEnroll/Issuing CA1.crl,URI:ldap:///CN=Issuing%%20CA1?certificateRevocationList' "
		 "2>/dev/null && echo ok", dir, pem));
	x = load_pem(pem);
	assert_int_equal(x509_facts_init(&f, x), 0);
	assert_true(f.has_eku);
	assert_false(f.server_auth);
	assert_true(f.client_auth);
	assert_true(f.weak_key);
	assert_true(f.weak_signature);
	assert_string_equal(f.sig_alg, "sha1WithRSAEncryption");
	/* the space AD CS puts in CA names is encoded, so URIs stay
	 * space-separated */
	assert_string_equal(f.cdp, "http://pki.test/CertEnroll/Issuing%20CA1.crl "
				   "ldap:///CN=Issuing%20CA1?certificateRevocationList");
	x509_facts_cleanup(&f);
	X509_free(x);

	/* no EKU at all: usable for anything, as TLS stacks treat it */
	pem = (free(pem), xasprintf("%s/rsa.pem", dir));
	x = load_pem(pem);
	assert_int_equal(x509_facts_init(&f, x), 0);
	assert_false(f.has_eku);
	assert_true(f.server_auth);
	assert_false(f.weak_key);
	assert_false(f.weak_signature);
	x509_facts_cleanup(&f);
	X509_free(x);
	free(pem);
}

/* CDP lists: a repeated URI is kept once (it would repeat a series), and a
 * huge list is shortened, never a failure that hides the certificate. */
static void test_cdp_dedupe_and_cap(void **state)
{
	char *cnf = xasprintf("%s/cdp.cnf", dir), *pem = xasprintf("%s/cdp.pem", dir);
	struct x509_facts f;
	FILE *c = fopen(cnf, "w");
	X509 *x;
	const char *p;
	int n = 0;

	(void)state;
	assert_non_null(c);
	fputs("[req]\ndistinguished_name=dn\nx509_extensions=ext\nprompt=no\n"
	      "[dn]\nCN=cdp\n[ext]\ncrlDistributionPoints=URI:http://a.test/x.crl,"
	      "URI:http://a.test/x.crl", c);
	for (int i = 0; i < 400; i++)
		fprintf(c, ",URI:http://crl%03d.example.test/CertEnroll/Issuing-CA.crl", i);
	fputs("\n", c);
	fclose(c);
	free(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s/cdp.key -out %s -days 1 -config %s 2>/dev/null && echo ok",
		 dir, pem, cnf));
	x = load_pem(pem);
	assert_int_equal(x509_facts_init(&f, x), 0);
	assert_int_equal(strncmp(f.cdp, "http://a.test/x.crl http://crl000.", 34), 0);
	assert_true(strlen(f.cdp) <= X509_URLS_MAX);
	for (p = f.cdp; (p = strstr(p, "http://a.test/x.crl")) != NULL; p++)
		n++;
	assert_int_equal(n, 1);
	x509_facts_cleanup(&f);
	X509_free(x);
	free(cnf);
	free(pem);
}

/* Thousands of SANs stay one bounded label with a count of the rest. */
static void test_many_sans(void **state)
{
	char *cnf = xasprintf("%s/sans.cnf", dir), *pem = xasprintf("%s/sans.pem", dir);
	struct x509_facts f;
	FILE *c = fopen(cnf, "w");
	X509 *x;
	const char *more;

	(void)state;
	assert_non_null(c);
	fputs("[req]\ndistinguished_name=dn\nx509_extensions=ext\nprompt=no\n"
	      "[dn]\nCN=many\n[ext]\nsubjectAltName=@alt\n[alt]\n", c);
	for (int i = 1; i <= 2000; i++)
		fprintf(c, "DNS.%d=host%04d.example.test\n", i, i);
	fclose(c);
	free(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s/sans.key -out %s -days 1 -config %s 2>/dev/null && echo ok",
		 dir, pem, cnf));
	x = load_pem(pem);
	assert_int_equal(x509_facts_init(&f, x), 0);
	assert_true(strlen(f.sans) <= X509_SANS_MAX + 16);
	assert_int_equal(strncmp(f.sans, "DNS:host0001.example.test,", 26), 0);
	more = strrchr(f.sans, '+');
	assert_non_null(more);
	/* "DNS:hostNNNN.example.test" is 25 bytes; 157 of them and 156
	 * commas fit in 4096 bytes, so 2000 - 157 = 1843 are counted */
	assert_string_equal(more, "+1843 more");
	x509_facts_cleanup(&f);
	X509_free(x);
	free(cnf);
	free(pem);
}

/* Real certificates from the shared corpus, facts from its MANIFEST. */
static void test_corpus_weak(void **state)
{
	static const struct {
		const char *file, *cn, *issuer_cn, *sig;
		int64_t nb, na;	/* Unix seconds */
		bool ca;
		const char *sans, *cdp, *ocsp, *issuers;
	} cases[] = {
		{"certs/weak/globalsign-primary-class2-md5.pem",
		 "GlobalSign Primary Class 2 CA", "GlobalSign Root CA",
		 "md5WithRSAEncryption", 917524800, 1233144000, true, "", "", "",
		 ""},
		{"certs/weak/rapidssl-leaf-sha1.pem",
		 "remote.ozrvsupplies.com.au", "RapidSSL CA",
		 "sha1WithRSAEncryption", 1404148375, 1533174673, false,
		 "DNS:remote.ozrvsupplies.com.au",
		 "http://rapidssl-crl.geotrust.com/crls/rapidssl.crl",
		 "http://rapidssl-ocsp.geotrust.com",
		 "http://rapidssl-aia.geotrust.com/rapidssl.crt"},
	};
	const char *corpus = getenv("PKI_CORPUS");

	(void)state;
	if (!corpus || access(corpus, R_OK) != 0) {
		print_message("corpus not found (%s), skipped\n",
			      corpus ? corpus : "PKI_CORPUS unset");
		skip();
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = xasprintf("%s/%s", corpus, cases[i].file);
		struct x509_facts f;
		X509 *x = load_pem(path);

		assert_int_equal(x509_facts_init(&f, x), 0);
		assert_string_equal(f.subject_cn, cases[i].cn);
		assert_string_equal(f.issuer_cn, cases[i].issuer_cn);
		assert_string_equal(f.sig_alg, cases[i].sig);
		assert_string_equal(f.key_type, "RSA");
		assert_int_equal(f.key_bits, 2048);
		assert_int_equal(f.not_before, cases[i].nb);
		assert_int_equal(f.not_after, cases[i].na);
		assert_int_equal(f.is_ca, cases[i].ca);
		assert_string_equal(f.sans, cases[i].sans);
		assert_true(f.weak_signature);
		assert_string_equal(f.cdp, cases[i].cdp);
		assert_string_equal(f.ocsp, cases[i].ocsp);
		assert_string_equal(f.ca_issuers, cases[i].issuers);
		x509_facts_cleanup(&f);
		X509_free(x);
		free(path);
	}
}

static void test_alloc_failures(void **state)
{
	char *pem = xasprintf("%s/rsa.pem", dir);
	X509 *x = load_pem(pem);

	(void)state;
	for (unsigned long n = 1; n < 20; n++) {
		struct x509_facts f;
		int rc;

		xalloc_fail_after(n);
		rc = x509_facts_init(&f, x);
		xalloc_fail_after(0);
		if (rc == 0)
			x509_facts_cleanup(&f);
	}
	X509_free(x);
	free(pem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generated_rsa),
		cmocka_unit_test(test_generated_chain),
		cmocka_unit_test(test_eku_and_weak_key),
		cmocka_unit_test(test_cdp_dedupe_and_cap),
		cmocka_unit_test(test_many_sans),
		cmocka_unit_test(test_corpus_weak),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
