/* The store probe's scan: stores made with the openssl CLI at test time
 * (tests/fixtures/make_stores.sh), one of each kind of misplacement, counts
 * asserted exactly; CA-names bytes checked against an independent DER
 * reader (tests/fixtures/der_subjects.py); the check report; config. */
#include <errno.h>
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

#include "exporter/config.h"
#include "exporter/xalloc.h"
#include "probes/store/store.h"

static char dir[] = "/tmp/pki-store-test-XXXXXX";
static char src[1024];

#define run tu_run

static int setup(void **state)
{
	const char *s = getenv("PKI_SOURCE_DIR");
	char cmd[2048];

	(void)state;
	snprintf(src, sizeof(src), "%s", s ? s : ".");
	if (!mkdtemp(dir))
		return -1;
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/fixtures/make_stores.sh' '%s'",
		 src, dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return tu_rmdir(dir);
}

static char *path(const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel);

	assert_non_null(p);
	return p;
}

static void scan(const char *rel, enum store_role role, struct store_scan *s)
{
	char *p = path(rel);

	assert_int_equal(store_scan(p, role, (int64_t)time(NULL), 0, s), 0);
	xfree(p);
}

/* The certificate of `file` (base name) at `pos`, or fail. */
static const struct store_cert *find(const struct store_scan *s,
				     const char *file, int pos)
{
	for (size_t i = 0; i < s->ncerts; i++) {
		const char *b = strrchr(s->certs[i].file, '/');

		if (strcmp(b ? b + 1 : s->certs[i].file, file) == 0 &&
		    s->certs[i].position == pos)
			return &s->certs[i];
	}
	fail_msg("no certificate %s[%d]", file, pos);
	return NULL;
}

static bool has(const struct store_cert *c, enum store_reason r)
{
	return (c->reasons & (1u << r)) != 0;
}

struct want {
	uint64_t m[STORE_REASON__COUNT];
};

static void assert_misplaced(const struct store_scan *s, const struct want *w)
{
	for (int r = 0; r < STORE_REASON__COUNT; r++)
		if (s->misplaced[r] != w->m[r])
			fail_msg("%s: %llu, expected %llu", store_reason_str(r),
				 (unsigned long long)s->misplaced[r],
				 (unsigned long long)w->m[r]);
}

/* "<certificates> <bytes>" from the independent reader. */
static void der_subjects(const char *args, unsigned long *n,
			 unsigned long *bytes)
{
	char *out = run("cd '%s' && python3 '%s/tests/fixtures/der_subjects.py' %s",
			dir, src, args);

	assert_int_equal(sscanf(out, "%lu %lu", n, bytes), 2);
	xfree(out);
}

static void test_root_store(void **state)
{
	struct store_scan s;
	struct want w = {.m = {
		[STORE_NOT_SELF_SIGNED] = 1,
		[STORE_PRIVATE_KEY_PRESENT] = 2,
		[STORE_DUPLICATE] = 1,
		[STORE_EXPIRED] = 1,
		[STORE_NOT_CA] = 1,
	}};
	unsigned long n, bytes;

	(void)state;
	scan("root", STORE_ROLE_ROOT, &s);
	assert_int_equal(s.ncerts, 7);
	assert_misplaced(&s, &w);
	assert_true(has(find(&s, "inter.crt", 0), STORE_NOT_SELF_SIGNED));
	assert_true(has(find(&s, "leafself.crt", 0), STORE_NOT_CA));
	assert_false(has(find(&s, "leafself.crt", 0), STORE_NOT_SELF_SIGNED));
	assert_true(has(find(&s, "with-key.pem", 0), STORE_PRIVATE_KEY_PRESENT));
	assert_true(has(find(&s, "expired.crt", 0), STORE_EXPIRED));
	/* of two copies the one read later is the duplicate (by name order:
	 * good1-copy.pem < good1.crt) */
	assert_true(has(find(&s, "good1.crt", 0), STORE_DUPLICATE));
	assert_int_equal(find(&s, "good1-copy.pem", 0)->reasons, 0);
	assert_int_equal(find(&s, "good2.pem", 0)->reasons, 0);
	/* garbage.pem fails alone, with its reason; the store is read */
	assert_int_equal(s.unreadable, 1);
	assert_int_equal(s.fail, PROBE_FAIL_FILE);
	for (size_t i = 0; i < s.nfiles; i++) {
		const char *b = strrchr(s.files[i].path, '/') + 1;

		if (strcmp(b, "garbage.pem") == 0)
			assert_int_equal(s.files[i].err, X509_LOAD_UNRECOGNISED);
		else
			assert_int_equal(s.files[i].err, X509_LOAD_OK);
		if (strcmp(b, "stray.key") == 0)
			assert_true(s.files[i].key_only);
	}
	assert_false(s.hashed);
	/* CA names: the distinct CA certificates (not leafself, one copy of
	 * good1) */
	der_subjects("--ca-only --unique root/good1.crt root/good2.pem "
		     "root/inter.crt root/leafself.crt root/with-key.pem "
		     "root/good1-copy.pem root/expired.crt",
		     &n, &bytes);
	assert_int_equal(n, 5);
	assert_int_equal(s.ca_names_bytes, bytes);
	store_scan_cleanup(&s);
}

static void test_intermediate_store(void **state)
{
	struct store_scan s;
	struct want w = {.m = {
		[STORE_SELF_SIGNED] = 1,
		[STORE_PRIVATE_KEY_PRESENT] = 1,
		[STORE_NOT_CA] = 1,
	}};

	(void)state;
	scan("inter", STORE_ROLE_INTERMEDIATE, &s);
	assert_int_equal(s.ncerts, 4);
	assert_misplaced(&s, &w);
	assert_true(has(find(&s, "good2.pem", 0), STORE_SELF_SIGNED));
	assert_true(has(find(&s, "leafb.pem", 0), STORE_NOT_CA));
	assert_true(has(find(&s, "inter2-with-key.pem", 0),
			STORE_PRIVATE_KEY_PRESENT));
	assert_int_equal(find(&s, "inter.pem", 0)->reasons, 0);
	assert_int_equal(s.fail, PROBE_OK);
	store_scan_cleanup(&s);
}

static void test_personal_store(void **state)
{
	struct store_scan s;
	struct want w = {.m = {
		[STORE_MISSING_PRIVATE_KEY] = 3,
		[STORE_DUPLICATE] = 1,
		[STORE_EXPIRED] = 1,
	}};

	(void)state;
	scan("personal", STORE_ROLE_PERSONAL, &s);
	/* a, b, c, c-copy, d + its intermediate, e (PKCS#12), x */
	assert_int_equal(s.ncerts, 8);
	assert_misplaced(&s, &w);
	assert_int_equal(find(&s, "a.pem", 0)->reasons, 0);
	assert_int_equal(find(&s, "b.crt", 0)->reasons, 0);
	assert_int_equal(find(&s, "e.p12", 0)->reasons, 0);
	assert_true(has(find(&s, "c.crt", 0), STORE_MISSING_PRIVATE_KEY));
	assert_true(has(find(&s, "c-copy.crt", 0), STORE_MISSING_PRIVATE_KEY));
	/* c-copy.crt sorts first, so c.crt is the later copy */
	assert_true(has(find(&s, "c.crt", 0), STORE_DUPLICATE));
	assert_true(has(find(&s, "d-chain.pem", 0), STORE_MISSING_PRIVATE_KEY));
	assert_int_equal(find(&s, "d-chain.pem", 1)->reasons, 0);
	assert_true(has(find(&s, "x.pem", 0), STORE_EXPIRED));
	/* b.key is the key of b.crt, not a file of the store */
	for (size_t i = 0; i < s.nfiles; i++)
		assert_null(strstr(s.files[i].path, ".key"));
	assert_int_equal(s.fail, PROBE_OK);
	store_scan_cleanup(&s);
}

static void test_hashed_dir(void **state)
{
	struct store_scan s;
	struct want w = {{0}};

	(void)state;
	scan("hashed", STORE_ROLE_ROOT, &s);
	assert_true(s.hashed);
	/* good1..3 once each (the .0 links are not counted again); the
	 * unlinked file and the bundle are not seen by OpenSSL */
	assert_int_equal(s.ncerts, 3);
	assert_int_equal(s.unhashed, 2);
	assert_misplaced(&s, &w);
	/* reported under the readable name, not the hash */
	find(&s, "good1.pem", 0);
	find(&s, "good2.pem", 0);
	find(&s, "good3.pem", 0);
	assert_int_equal(s.fail, PROBE_OK);
	store_scan_cleanup(&s);

	scan("plain", STORE_ROLE_ROOT, &s);
	assert_false(s.hashed);
	assert_int_equal(s.ncerts, 2);	/* alias.pem is good1.pem */
	assert_int_equal(s.misplaced[STORE_DUPLICATE], 0);
	store_scan_cleanup(&s);
}

static void test_bundle(void **state)
{
	struct store_scan s;
	struct want w = {.m = {[STORE_NOT_SELF_SIGNED] = 1}};
	unsigned long n, bytes;

	(void)state;
	scan("bundle.pem", STORE_ROLE_ROOT, &s);
	assert_int_equal(s.ncerts, 3);
	assert_int_equal(s.nfiles, 1);
	assert_misplaced(&s, &w);
	assert_int_equal(find(&s, "bundle.pem", 0)->reasons, 0);
	assert_true(has(find(&s, "bundle.pem", 2), STORE_NOT_SELF_SIGNED));
	assert_string_equal(find(&s, "bundle.pem", 2)->f.subject_cn,
			    "Test Intermediate");
	der_subjects("--ca-only --unique bundle.pem", &n, &bytes);
	assert_int_equal(s.ca_names_bytes, bytes);
	store_scan_cleanup(&s);
}

static void test_150_roots(void **state)
{
	struct store_scan s;
	unsigned long n, bytes;
	char *subj;

	(void)state;
	scan("many", STORE_ROLE_ROOT, &s);
	assert_int_equal(s.ncerts, 150);
	der_subjects("--ca-only many/*.pem", &n, &bytes);
	assert_int_equal(n, 150);
	assert_int_equal(s.ca_names_bytes, bytes);
	/* and the independent reader itself against openssl asn1parse for
	 * a few files: the subject is the 4th SEQUENCE at depth 1 of
	 * tbsCertificate (signature algorithm, issuer, validity, subject) */
	for (int i = 1; i <= 150; i += 37) {
		unsigned long n1, b1;
		char *arg = xasprintf("many/root%d.pem", i);

		subj = run("cd '%s' && openssl asn1parse -in %s -strparse 4 | "
			   "awk '/d=1/ && /SEQUENCE/ {n++; if (n == 4) {"
			   "match($0, /hl=[0-9]+/); "
			   "hl = substr($0, RSTART + 3, RLENGTH - 3); "
			   "match($0, / l= *[0-9]+/); "
			   "l = substr($0, RSTART + 3, RLENGTH - 3); "
			   "print hl + l}}'",
			   dir, arg);
		der_subjects(arg, &n1, &b1);
		assert_int_equal(n1, 1);
		assert_int_equal(strtoul(subj, NULL, 10), b1);
		xfree(subj);
		xfree(arg);
	}
	for (int r = 0; r < STORE_REASON__COUNT; r++)
		assert_int_equal(s.misplaced[r], 0);
	assert_true(s.ncerts > STORE_DEFAULT_MAX_CERTIFICATES);
	store_scan_cleanup(&s);
}

static void test_not_found(void **state)
{
	struct store_scan s;

	(void)state;
	scan("nonexistent", STORE_ROLE_ROOT, &s);
	assert_int_equal(s.fail, PROBE_FAIL_NOT_FOUND);
	assert_int_equal(s.ncerts, 0);
	store_scan_cleanup(&s);
}

/* Run the check report into a string. */
static char *report(const char *rel, const char *role, int *rc)
{
	char *p = path(rel), *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	char *copy;

	assert_non_null(f);
	*rc = store_check_report(p, role, f);
	fclose(f);
	xfree(p);
	copy = xstrdup(buf);
	free(buf);
	return copy;
}

static void test_check_report(void **state)
{
	char *out, *line;
	int rc;

	(void)state;
	out = report("clean", "root", &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "certificates: 2 (limit 100)\n"));
	assert_non_null(strstr(out, "result: clean\n"));
	xfree(out);

	out = report("root", "root", &rc);
	assert_int_equal(rc, 1);
	line = xasprintf("  MISPLACED %s/root/inter.crt [0] "
			 "CN=Test Intermediate,O=Test: not_self_signed\n", dir);
	assert_non_null(strstr(out, line));
	xfree(line);
	line = xasprintf("  MISPLACED %s/root/stray.key: (private key only): "
			 "private_key_present\n", dir);
	assert_non_null(strstr(out, line));
	xfree(line);
	line = xasprintf("  UNREADABLE %s/root/garbage.pem: "
			 "unrecognised_format\n", dir);
	assert_non_null(strstr(out, line));
	xfree(line);
	assert_non_null(strstr(out, "misplaced: not_self_signed=1 "
				    "self_signed=0 private_key_present=2 "
				    "missing_private_key=0 duplicate=1 "
				    "expired=1 not_ca=1\n"));
	assert_non_null(strstr(out, "result: NOT CLEAN\n"));
	xfree(out);

	/* over the count limit, nothing misplaced */
	out = report("many", "root", &rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "certificates: 150 (limit 100) OVER LIMIT\n"));
	xfree(out);

	out = report("root", "rooot", &rc);
	assert_int_equal(rc, 2);
	xfree(out);
	out = report("nonexistent", "root", &rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "not_found"));
	xfree(out);
}

static int load_cfg(const char *yaml, struct config **cfg, char **errs)
{
	char *p = path("c.yml");
	FILE *f = fopen(p, "w");
	struct errbuf eb;
	int rc;

	assert_non_null(f);
	fputs(yaml, f);
	fclose(f);
	errbuf_init(&eb, p);
	rc = config_load(p, cfg, &eb);
	*errs = xstrdup(errbuf_str(&eb) ? errbuf_str(&eb) : "");
	errbuf_cleanup(&eb);
	xfree(p);
	return rc;
}

static void test_config(void **state)
{
	static const struct {
		const char *name, *module, *err;
	} bad[] = {
		{"no role", "{prober: store}", "needs a role"},
		{"bad role", "{prober: store, role: trusted}",
		 "role must be root, intermediate or personal"},
		{"zero limit", "{prober: store, role: root, max_certificates: 0}",
		 "out of range"},
		{"unknown key", "{prober: store, role: root, color: red}",
		 "unknown key 'color'"},
		{"file unknown key", "{prober: file, role: root}",
		 "unknown key 'role'"},
		{"no password file", "{prober: file, password_file: nope.txt}",
		 "password_file"},
	};
	struct config *cfg = NULL;
	char *errs, *yaml;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		yaml = xasprintf("modules:\n  m: %s\ntargets:\n"
				 "  - {module: m, targets: [x]}\n",
				 bad[i].module);
		assert_int_equal(load_cfg(yaml, &cfg, &errs), -EINVAL);
		if (!strstr(errs, bad[i].err))
			fail_msg("%s: '%s' not in '%s'", bad[i].name,
				 bad[i].err, errs);
		xfree(errs);
		xfree(yaml);
	}
	assert_int_equal(
		load_cfg("modules:\n"
			 "  r: {prober: store, role: intermediate, "
			 "max_certificates: 120, max_ca_names_bytes: 8192}\n"
			 "  f: {prober: file, password_file: files/password.txt}\n"
			 "targets:\n"
			 "  - {module: r, targets: [root, /etc/ssl/certs]}\n"
			 "  - {module: f, targets: [\"files/*.p12\"]}\n",
			 &cfg, &errs),
		0);
	xfree(errs);
	config_free(cfg);
}

static void test_alloc_failures(void **state)
{
	char *p = path("root");

	(void)state;
	for (unsigned long n = 1; n < 400; n++) {
		struct store_scan s;
		int rc;

		xalloc_fail_after(n);
		rc = store_scan(p, STORE_ROLE_ROOT, (int64_t)time(NULL), 0, &s);
		xalloc_fail_after(0);
		if (rc == 0) {
			/* enough allocations succeeded: the full answer */
			assert_true(n > 1);
			assert_int_equal(s.ncerts, 7);
			assert_int_equal(s.misplaced[STORE_PRIVATE_KEY_PRESENT], 2);
			store_scan_cleanup(&s);
			break;
		}
		store_scan_cleanup(&s);
		assert_int_equal(rc, -ENOMEM);
	}
	xfree(p);
}

/* The reads are synchronous: a deadline already past stops the scan
 * between files, and the caller learns it was cut. */
static void test_deadline_cuts_scan(void **state)
{
	struct store_scan s;
	char *p = xasprintf("%s/root", dir);

	(void)state;
	assert_int_equal(store_scan(p, STORE_ROLE_ROOT, (int64_t)time(NULL), 1,
				    &s),
			 0);
	assert_true(s.cut);
	assert_int_equal(s.ncerts, 0);
	store_scan_cleanup(&s);
	assert_int_equal(store_scan(p, STORE_ROLE_ROOT, (int64_t)time(NULL), 0,
				    &s),
			 0);
	assert_false(s.cut);
	assert_true(s.ncerts > 0);
	store_scan_cleanup(&s);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_store),
		cmocka_unit_test(test_intermediate_store),
		cmocka_unit_test(test_personal_store),
		cmocka_unit_test(test_hashed_dir),
		cmocka_unit_test(test_bundle),
		cmocka_unit_test(test_150_roots),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_check_report),
		cmocka_unit_test(test_deadline_cuts_scan),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
