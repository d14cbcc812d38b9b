/* Partner lists as spreadsheets write them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "exporter/csv.h"
#include "exporter/xalloc.h"

static char *write_tmp(const char *data, size_t len)
{
	char *path = xstrdup("/tmp/pki-csv-test-XXXXXX");
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

static void test_spreadsheet_export(void **state)
{
	static const char data[] =
		"\xef\xbb\xbf"	/* BOM */
		"Domain,Type,Port\r\n"
		"contoso.com,FED,\r\n"
		"\"fabrikam.com\",SIP,,\r\n"	/* quoted, trailing comma */
		"\r\n"				/* blank */
		"# a comment\r\n"
		"corp.example,sipint,\r\n"	/* type case-insensitive */
		"sip.partner.example,DIR,5062,\r\n"
		"edge.partner.example,DIR,\r\n"	/* empty port */
		"bad domain!,FED,\r\n"		/* line 9: bad */
		"\"quoted \"\"x\"\".example\",FED\r\n" /* line 10: bad chars */
		"ok.example,XYZ,\r\n"		/* line 11: bad type */
		"ok.example,DIR,70000\r\n"	/* line 12: bad port */
		"  spaced.example , FED , \r\n";	/* trimmed */
	char *path = write_tmp(data, sizeof(data) - 1);
	struct partner_row *rows;
	struct buf skipped;
	size_t n;
	unsigned nskipped;
	char want[1024];

	(void)state;
	buf_init(&skipped, 1 << 16);
	assert_int_equal(partners_load(path, &rows, &n, &skipped, &nskipped), 0);
	assert_int_equal(n, 6);
	assert_string_equal(rows[0].target, "_sipfederationtls._tcp.contoso.com");
	assert_int_equal(rows[0].line, 2);
	assert_string_equal(rows[1].target, "_sip._tls.fabrikam.com");
	assert_string_equal(rows[1].domain, "fabrikam.com");
	assert_string_equal(rows[2].target, "_sipinternaltls._tcp.corp.example");
	assert_int_equal(rows[2].type, PARTNER_SIPINT);
	assert_string_equal(rows[3].target, "sip.partner.example:5062");
	assert_string_equal(rows[3].port, "5062");
	assert_string_equal(rows[4].target, "edge.partner.example:5061");
	assert_string_equal(rows[5].target, "_sipfederationtls._tcp.spaced.example");
	assert_int_equal(rows[5].line, 13);
	assert_int_equal(nskipped, 4);
	snprintf(want, sizeof(want),
		 "%s:9: invalid domain\n"
		 "%s:10: invalid domain\n"
		 "%s:11: type must be FED, SIP, SIPINT or DIR\n"
		 "%s:12: port must be 1-65535\n",
		 path, path, path, path);
	assert_string_equal(skipped.data, want);
	partner_rows_free(rows, n);
	buf_cleanup(&skipped);
	remove(path);
	free(path);
}

static void test_records(void **state)
{
	static const struct {
		const char *name, *in;
		int nf;
		const char *f0, *f1;
		unsigned lines;
	} cases[] = {
		{"plain", "a,b\n", 2, "a", "b", 1},
		{"crlf", "a,b\r\n", 2, "a", "b", 1},
		{"lone cr", "a,b\rnext", 2, "a", "b", 1},
		{"no eol", "a,b", 2, "a", "b", 1},
		{"quoted comma", "\"a,1\",b\n", 2, "a,1", "b", 1},
		{"escaped quote", "\"say \"\"hi\"\"\",b\n", 2, "say \"hi\"", "b", 1},
		{"quoted newline", "\"x\ny\",b\n", 2, "x\ny", "b", 2},
		{"empty fields", ",,\n", 3, "", "", 1},
		{"trailing comma", "a,\n", 2, "a", "", 1},
	};
	char fields[4][CSV_MAX_FIELD];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = cases[i].in, *err = NULL;
		unsigned lines = 0;
		int nf = csv_record(&p, p + strlen(p), fields, 4, &lines, &err);

		if (nf != cases[i].nf)
			fail_msg("%s: %d fields", cases[i].name, nf);
		assert_string_equal(fields[0], cases[i].f0);
		assert_string_equal(fields[1], cases[i].f1);
		assert_int_equal(lines, cases[i].lines);
	}
}

static void test_bad_records(void **state)
{
	char fields[4][CSV_MAX_FIELD];
	char big[CSV_MAX_FIELD + 100];
	const char *p, *err = NULL;
	unsigned lines = 0;

	(void)state;
	p = "\"never closed,b\n";
	assert_int_equal(csv_record(&p, p + strlen(p), fields, 4, &lines, &err),
			 -EINVAL);
	assert_string_equal(err, "unterminated quoted field");

	memset(big, 'x', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	p = big;
	err = NULL;
	assert_int_equal(csv_record(&p, p + strlen(p), fields, 4, &lines, &err),
			 -EINVAL);
	assert_string_equal(err, "field too long");
	assert_ptr_equal(p, big + strlen(big));	/* the rest of the line is gone */
}

static void test_missing_file(void **state)
{
	struct partner_row *rows;
	struct buf skipped;
	size_t n;
	unsigned nskipped;

	(void)state;
	buf_init(&skipped, 4096);
	assert_int_equal(partners_load("/nonexistent/p.csv", &rows, &n, &skipped,
				       &nskipped),
			 -ENOENT);
	assert_non_null(strstr(skipped.data, "/nonexistent/p.csv: cannot open"));
	buf_cleanup(&skipped);
}

static void test_alloc_failures(void **state)
{
	static const char data[] = "Domain,Type,Port\na.example,FED,\nb.example,DIR,1\n";
	char *path = write_tmp(data, sizeof(data) - 1);

	(void)state;
	for (unsigned long k = 1; k < 30; k++) {
		struct partner_row *rows = NULL;
		struct buf skipped;
		size_t n = 0;
		unsigned nskipped;
		int rc;

		buf_init(&skipped, 4096);
		xalloc_fail_after(k);
		rc = partners_load(path, &rows, &n, &skipped, &nskipped);
		xalloc_fail_after(0);
		assert_true(rc == 0 || rc == -ENOMEM);
		if (rc == 0)
			assert_int_equal(n, 2);
		partner_rows_free(rows, n);
		buf_cleanup(&skipped);
	}
	remove(path);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spreadsheet_export),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
