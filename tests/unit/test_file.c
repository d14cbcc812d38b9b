/* Certificate files: every format the file probe reads (made with the
 * openssl CLI at test time by tests/fixtures/make_stores.sh), every read
 * error, and every certificate of the shared corpus checked against the
 * facts its MANIFEST.md lists. */
#include <dirent.h>
#include <sys/stat.h>
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

#include "exporter/xalloc.h"
#include "probes/file/file.h"
#include "probes/x509/x509.h"
#include "probes/x509/x509_load.h"

static char dir[] = "/tmp/pki-file-test-XXXXXX";
static char src[1024];
static char corpus[1024];

static int setup(void **state)
{
	const char *s = getenv("PKI_SOURCE_DIR");
	const char *c = getenv("PKI_CORPUS");
	char cmd[2048];

	(void)state;
	snprintf(src, sizeof(src), "%s", s ? s : ".");
	snprintf(corpus, sizeof(corpus), "%s",
		 c ? c : "/work/shared/corpus");
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

/* ---- formats and errors ---- */

struct fcase {
	const char *name;
	const char *file;	/* under <dir>/files/, or absolute */
	const char *password_file;
	enum x509_load_err err;
	int ncerts;
	bool has_key;
	enum x509_load_format format;
	const char *cn0;	/* subject CN of certificate 0 */
};

static void test_formats(void **state)
{
	static const struct fcase cases[] = {
		{"pem", "leaf.pem", NULL, X509_LOAD_OK, 1, false, X509_FMT_PEM,
		 "a.leaf.test"},
		{"der", "leaf.der", NULL, X509_LOAD_OK, 1, false, X509_FMT_DER,
		 "a.leaf.test"},
		{"pem with text around", "preamble.pem", NULL, X509_LOAD_OK, 1,
		 false, X509_FMT_PEM, "a.leaf.test"},
		{"pem chain", "chain.pem", NULL, X509_LOAD_OK, 3, false,
		 X509_FMT_PEM, "a.leaf.test"},
		{"pem with key", "with-key.pem", NULL, X509_LOAD_OK, 1, true,
		 X509_FMT_PEM, "a.leaf.test"},
		{"pkcs7 pem", "chain.p7b", NULL, X509_LOAD_OK, 3, false,
		 X509_FMT_PKCS7, NULL},
		{"pkcs7 der", "chain.p7b.der", NULL, X509_LOAD_OK, 3, false,
		 X509_FMT_PKCS7, NULL},
		{"pkcs12 no password", "nopass.p12", NULL, X509_LOAD_OK, 2, true,
		 X509_FMT_PKCS12, "a.leaf.test"},
		{"pkcs12 password", "pass.p12", "password.txt", X509_LOAD_OK, 2,
		 true, X509_FMT_PKCS12, "a.leaf.test"},
		{"pkcs12 legacy RC2-40", "legacy.p12", "password.txt",
		 X509_LOAD_OK, 2, true, X509_FMT_PKCS12, "a.leaf.test"},
		{"pkcs12 legacy, wrong password", "legacy.p12",
		 "wrong-password.txt", X509_LOAD_BAD_PASSWORD, 0, false,
		 X509_FMT_PKCS12, NULL},
		{"pkcs12 unprotected, password given", "nopass.p12",
		 "password.txt", X509_LOAD_OK, 2, true, X509_FMT_PKCS12,
		 "a.leaf.test"},
		{"pkcs12 no password given", "pass.p12", NULL,
		 X509_LOAD_BAD_PASSWORD, 0, false, X509_FMT_PKCS12, NULL},
		{"pkcs12 wrong password", "pass.p12", "wrong-password.txt",
		 X509_LOAD_BAD_PASSWORD, 0, false, X509_FMT_PKCS12, NULL},
		{"concatenated der", "concat.der", NULL, X509_LOAD_OK, 2, false,
		 X509_FMT_DER, "a.leaf.test"},
		{"key only", "key-only.pem", NULL, X509_LOAD_OK, 0, true,
		 X509_FMT_PEM, NULL},
		{"garbage", "garbage.bin", NULL, X509_LOAD_UNRECOGNISED, 0, false,
		 X509_FMT_NONE, NULL},
		{"empty", "empty.pem", NULL, X509_LOAD_UNRECOGNISED, 0, false,
		 X509_FMT_NONE, NULL},
		{"truncated pem", "truncated.pem", NULL, X509_LOAD_UNRECOGNISED,
		 0, false, X509_FMT_PEM, NULL},
		{"over 16 MiB", "huge.pem", NULL, X509_LOAD_TOO_LARGE, 0, false,
		 X509_FMT_NONE, NULL},
		{"fifo (must not block)", "fifo.pem", NULL,
		 X509_LOAD_READ_ERROR, 0, false, X509_FMT_NONE, NULL},
		{"directory", ".", NULL, X509_LOAD_READ_ERROR, 0, false,
		 X509_FMT_NONE, NULL},
		{"missing", "nonexistent.pem", NULL, X509_LOAD_NOT_FOUND, 0,
		 false, X509_FMT_NONE, NULL},
		{"missing directory", "nodir/x.pem", NULL, X509_LOAD_NOT_FOUND, 0,
		 false, X509_FMT_NONE, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fcase *c = &cases[i];
		char *p = xasprintf("%s/files/%s", dir, c->file);
		char *pw = NULL;
		struct x509_loaded l;

		if (c->password_file) {
			char *pf = xasprintf("%s/files/%s", dir,
					     c->password_file);

			assert_int_equal(file_password_read(pf, &pw), 0);
			xfree(pf);
		}
		assert_int_equal(x509_load_file(p, pw, 0, &l), 0);
		if (l.err != c->err || sk_X509_num(l.certs) != c->ncerts ||
		    l.has_key != c->has_key || l.format != c->format)
			fail_msg("%s: err %s certs %d key %d format %s", c->name,
				 x509_load_err_str(l.err), sk_X509_num(l.certs),
				 l.has_key, x509_load_format_str(l.format));
		if (c->cn0) {
			char cn[256];

			x509_name_cn(X509_get_subject_name(
					     sk_X509_value(l.certs, 0)),
				     cn, sizeof(cn));
			assert_string_equal(cn, c->cn0);
		}
		x509_loaded_cleanup(&l);
		file_password_free(pw);
		xfree(p);
	}
}

static void test_errno_map(void **state)
{
	(void)state;
	/* as root a chmod 000 file is still readable: check the mapping */
	assert_int_equal(x509_load_errno(EACCES), X509_LOAD_PERMISSION);
	assert_int_equal(x509_load_errno(EPERM), X509_LOAD_PERMISSION);
	assert_int_equal(x509_load_errno(ENOENT), X509_LOAD_NOT_FOUND);
	assert_int_equal(x509_load_errno(ENOTDIR), X509_LOAD_NOT_FOUND);
	assert_int_equal(x509_load_errno(EIO), X509_LOAD_READ_ERROR);
	if (geteuid() != 0) {
		char *p = xasprintf("%s/files/leaf.pem", dir);
		struct x509_loaded l;

		assert_int_equal(chmod(p, 0), 0);
		assert_int_equal(x509_load_file(p, NULL, 0, &l), 0);
		assert_int_equal(l.err, X509_LOAD_PERMISSION);
		x509_loaded_cleanup(&l);
		assert_int_equal(chmod(p, 0644), 0);
		xfree(p);
	}
	for (int e = 0; e < X509_LOAD__COUNT; e++)
		assert_string_not_equal(x509_load_err_str(e), "unknown");
	assert_string_equal(x509_load_err_str(X509_LOAD_UNRECOGNISED),
			    "unrecognised_format");
}

static void test_cap(void **state)
{
	char *p = xasprintf("%s/files/chain.pem", dir);
	struct x509_loaded l;

	(void)state;
	/* a per-call cap below the file's size */
	assert_int_equal(x509_load_file(p, NULL, 100, &l), 0);
	assert_int_equal(l.err, X509_LOAD_TOO_LARGE);
	x509_loaded_cleanup(&l);
	xfree(p);
}

static void test_password_file(void **state)
{
	char *p = xasprintf("%s/files/long-password.txt", dir);
	char *pw = NULL;
	FILE *f = fopen(p, "w");

	(void)state;
	assert_non_null(f);
	for (int i = 0; i < FILE_PASSWORD_MAX + 10; i++)
		fputc('x', f);
	fclose(f);
	assert_int_equal(file_password_read(p, &pw), -EFBIG);
	assert_null(pw);
	xfree(p);
	p = xasprintf("%s/files/password.txt", dir);
	assert_int_equal(file_password_read(p, &pw), 0);
	assert_string_equal(pw, "s3cret");
	file_password_free(pw);
	xfree(p);
	assert_int_equal(file_password_read("/nonexistent/pw", &pw), -ENOENT);
}

/* ---- the corpus ---- */

struct mcert {
	char subject[512], issuer[512];
	char not_before[32], not_after[32];
	char sig[64], key[64], sha256[32], ca[8];
};

struct mfile {
	char path[512];		/* relative to the corpus */
	struct mcert certs[8];
	int n;
};

/* Copy the value after `label` up to the next backtick. */
static bool field(const char *line, const char *label, char *dst, size_t len)
{
	const char *p = strstr(line, label), *e;

	if (!p)
		return false;
	p += strlen(label);
	e = strchr(p, '`');
	if (!e)
		return false;
	snprintf(dst, len, "%.*s", (int)(e - p), p);
	return true;
}

/* The certs/ sections of MANIFEST.md. Returns how many files. */
static int read_manifest(struct mfile *files, int max)
{
	char *p = xasprintf("%s/MANIFEST.md", corpus);
	FILE *f = fopen(p, "r");
	char line[8192];
	int n = 0;
	struct mfile *cur = NULL;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "### ", 4) == 0) {
			cur = NULL;
			if (strncmp(line, "### `certs/", 11) == 0) {
				assert_true(n < max);
				cur = &files[n++];
				memset(cur, 0, sizeof(*cur));
				assert_true(field(line, "### `", cur->path,
						  sizeof(cur->path)));
			}
			continue;
		}
		if (cur && strstr(line, "subject `")) {
			struct mcert *c;

			assert_true(cur->n < 8);
			c = &cur->certs[cur->n++];
			assert_true(field(line, "subject `", c->subject,
					  sizeof(c->subject)));
			assert_true(field(line, "issuer `", c->issuer,
					  sizeof(c->issuer)));
			assert_true(field(line, "notBefore `", c->not_before,
					  sizeof(c->not_before)));
			assert_true(field(line, "notAfter `", c->not_after,
					  sizeof(c->not_after)));
			assert_true(field(line, "sig `", c->sig, sizeof(c->sig)));
			assert_true(field(line, "key `", c->key, sizeof(c->key)));
			field(line, "sha256 `", c->sha256, sizeof(c->sha256));
			if (strstr(line, "CA=True"))
				strcpy(c->ca, "true");
			else if (strstr(line, "CA=False"))
				strcpy(c->ca, "false");
		}
	}
	fclose(f);
	xfree(p);
	return n;
}

/* The CN of "CN=a\, b,O=x" (RFC 4514 escapes undone); "" if none. */
static void cn_of(const char *dn, char *dst, size_t len)
{
	const char *p = dn;
	size_t o = 0;

	dst[0] = '\0';
	if (strcmp(dn, "(empty)") == 0)
		return;
	while (p && strncmp(p, "CN=", 3) != 0) {
		p = strchr(p, ',');
		if (p)
			p++;
	}
	if (!p)
		return;
	for (p += 3; *p && *p != ',' && o + 1 < len; p++) {
		if (*p == '\\' && p[1])
			p++;
		dst[o++] = *p;
	}
	dst[o] = '\0';
}

static int64_t iso(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return (int64_t)timegm(&tm);
}

/* Count the files under certs/ (two levels), to see all are listed. */
static int count_corpus_certs(void)
{
	char *p = xasprintf("%s/certs", corpus);
	DIR *d = opendir(p), *sd;
	struct dirent *de, *se;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char *sp;

		if (de->d_name[0] == '.')
			continue;
		sp = xasprintf("%s/%s", p, de->d_name);
		sd = opendir(sp);
		assert_non_null(sd);
		while ((se = readdir(sd)))
			if (se->d_name[0] != '.')
				n++;
		closedir(sd);
		xfree(sp);
	}
	closedir(d);
	xfree(p);
	return n;
}

static void test_corpus(void **state)
{
	static struct mfile files[64];
	int n;

	(void)state;
	n = read_manifest(files, 64);
	assert_int_equal(n, count_corpus_certs());
	assert_true(n >= 15);
	for (int i = 0; i < n; i++) {
		char *p = xasprintf("%s/%s", corpus, files[i].path);
		struct x509_loaded l;

		assert_int_equal(x509_load_file(p, NULL, 0, &l), 0);
		if (l.err != X509_LOAD_OK ||
		    sk_X509_num(l.certs) != files[i].n)
			fail_msg("%s: %s, %d certificates (MANIFEST: %d)",
				 files[i].path, x509_load_err_str(l.err),
				 sk_X509_num(l.certs), files[i].n);
		for (int k = 0; k < files[i].n; k++) {
			const struct mcert *m = &files[i].certs[k];
			struct x509_facts f;
			char cn[256], type[16];
			int bits = 0;

			assert_int_equal(
				x509_facts_init(&f, sk_X509_value(l.certs, k)),
				0);
			cn_of(m->subject, cn, sizeof(cn));
			assert_string_equal(f.subject_cn, cn);
			cn_of(m->issuer, cn, sizeof(cn));
			assert_string_equal(f.issuer_cn, cn);
			assert_true(f.dates_ok);
			assert_int_equal(f.not_before, iso(m->not_before));
			assert_int_equal(f.not_after, iso(m->not_after));
			assert_string_equal(f.sig_alg, m->sig);
			/* "RSAPublicKey 2048" / "ECPublicKey 256" */
			{
				const char *pk = strstr(m->key, "PublicKey ");

				assert_non_null(pk);
				snprintf(type, sizeof(type), "%.*s",
					 (int)(pk - m->key), m->key);
				bits = atoi(pk + strlen("PublicKey "));
			}
			assert_string_equal(f.key_type, type);
			assert_int_equal(f.key_bits, bits);
			/* "f6e1ea13f594a93d…": the first 16 hex digits */
			assert_int_equal(strncmp(f.sha256, m->sha256, 16), 0);
			if (strcmp(m->ca, "true") == 0)
				assert_true(f.is_ca);
			else if (strcmp(m->ca, "false") == 0)
				assert_false(f.is_ca);
			x509_facts_cleanup(&f);
		}
		x509_loaded_cleanup(&l);
		xfree(p);
	}
}

/* Every other corpus file (CRLs, OCSP, events, malformed ones among them)
 * goes through the loader without a crash and ends with a reason; CRLs
 * are recognised as holding no certificate. */
static void test_corpus_not_certs(void **state)
{
	char *out = NULL, *line, *save = NULL;
	char cmd[4096];
	size_t len = 0;
	FILE *p, *m = open_memstream(&out, &len);
	char buf[4096];
	size_t n;
	int files = 0, crls = 0;

	(void)state;
	snprintf(cmd, sizeof(cmd),
		 "find '%s/crl' '%s/ocsp' '%s/events' -type f | sort", corpus,
		 corpus, corpus);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		fwrite(buf, 1, n, m);
	assert_int_equal(pclose(p), 0);
	fclose(m);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct x509_loaded l;

		assert_int_equal(x509_load_file(line, NULL, 0, &l), 0);
		assert_int_equal(sk_X509_num(l.certs), 0);
		if (l.format == X509_FMT_CRL) {
			assert_int_equal(l.err, X509_LOAD_OK);
			crls++;
		} else {
			assert_int_not_equal(l.err, X509_LOAD_OK);
		}
		files++;
		x509_loaded_cleanup(&l);
	}
	free(out);
	assert_true(files > 20);
	assert_true(crls > 10);
}

static void test_alloc_failures(void **state)
{
	static const char *const names[] = {"chain.pem", "nopass.p12",
					    "chain.p7b.der", "concat.der",
					    "legacy.p12"};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *p = xasprintf("%s/files/%s", dir, names[i]);

		for (unsigned long n = 1; n < 50; n++) {
			struct x509_loaded l;
			int rc;

			xalloc_fail_after(n);
			rc = x509_load_file(p, NULL, 0, &l);
			xalloc_fail_after(0);
			x509_loaded_cleanup(&l);
			if (rc == 0)
				break;
			assert_int_equal(rc, -ENOMEM);
		}
		xfree(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_errno_map),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_password_file),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_corpus_not_certs),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
