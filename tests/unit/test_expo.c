/* Exposition: escaping, value formatting, grouping and ordering, compared
 * as whole strings against tests/golden/. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "exporter/expo.h"
#include "exporter/xalloc.h"

static char *escape(const char *in)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	expo_escape_label_value(&b, in);
	return buf_steal(&b, NULL);
}

static void test_escape_table(void **state)
{
	static const struct {
		const char *name, *in, *want;
	} cases[] = {
		{"plain", "abc", "abc"},
		{"empty", "", ""},
		{"quote", "CN=\"x\"", "CN=\\\"x\\\""},
		{"backslash", "a\\b", "a\\\\b"},
		{"newline", "line1\nline2", "line1\\nline2"},
		{"tab stays", "a\tb", "a\tb"},
		{"cr stays", "a\rb", "a\rb"},
		{"all three", "\\\"\n", "\\\\\\\"\\n"},
		{"utf8 kept", "Gr\xc3\xbc\xc3\x9f \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x94\x92",
		 "Gr\xc3\xbc\xc3\x9f \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x94\x92"},
		{"invalid byte", "a\xff" "b", "a\xef\xbf\xbd" "b"},
		{"latin1", "Caf\xe9", "Caf\xef\xbf\xbd"},
		{"truncated seq", "x\xe6\x9d", "x\xef\xbf\xbd\xef\xbf\xbd"},
		{"overlong", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
		{"surrogate", "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"injection", "x\"} 1\nevil_metric 2\n#",
		 "x\\\"} 1\\nevil_metric 2\\n#"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = escape(cases[i].in);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case '%s': got '%s' want '%s'", cases[i].name,
				 got, cases[i].want);
		free(got);
	}
}

static void test_help_escape(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1024);
	expo_escape_help(&b, "a\\b\nc \"q\"");
	assert_string_equal(b.data, "a\\\\b\\nc \"q\"");
	buf_cleanup(&b);
}

static void test_values(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{0, "0"},
		{1, "1"},
		{-3, "-3"},
		{1797898426, "1797898426"},
		{0.1, "0.1"},
		{1.5e-9, "1.5e-09"},
		{1e300, "1e+300"}, {0.30000000000000004, "0.30000000000000004"},
		{123456789.123, "123456789.123"},
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		expo_format_value(buf, sizeof(buf), cases[i].v);
		assert_string_equal(buf, cases[i].want);
		assert_true(strtod(buf, NULL) == cases[i].v);
	}
	expo_format_value(buf, sizeof(buf), NAN);
	assert_string_equal(buf, "NaN");
	expo_format_value(buf, sizeof(buf), INFINITY);
	assert_string_equal(buf, "+Inf");
	expo_format_value(buf, sizeof(buf), -INFINITY);
	assert_string_equal(buf, "-Inf");
}

static char *read_golden(const char *name)
{
	char path[1024];
	const char *src = getenv("PKI_SOURCE_DIR");
	FILE *f;
	long n;
	char *s;

	snprintf(path, sizeof(path), "%s/tests/golden/%s", src ? src : ".",
		 name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open golden file %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

static const struct metric_desc D_B = {"pki_b_seconds",
				       "Help with \\ and\nnewline.",
				       METRIC_GAUGE};
static const struct metric_desc D_A = {"pki_a_total", "A counter.",
				       METRIC_COUNTER};
static const struct metric_desc D_EMPTY = {"pki_empty", "Never sampled.",
					   METRIC_GAUGE};

static void test_render_golden(void **state)
{
	struct expo_set set;
	struct buf out;
	char *want;

	(void)state;
	expo_set_init(&set, 1 << 20);
	/* added out of order: rendering sorts families by name and samples
	 * by (order, insertion) */
	assert_int_equal(expo_add(&set, &D_B, 2, 0.25, "target", "second",
				  NULL), 0);
	assert_int_equal(expo_add(&set, &D_B, 1, NAN, "target",
				  "first \"q\" \\ \n", "tab", "a\tb", NULL), 0);
	assert_int_equal(expo_add(&set, &D_A, 0, 7, NULL), 0);
	assert_int_equal(expo_add(&set, &D_B, 1, INFINITY, "target", "first-2",
				  NULL), 0);
	assert_int_equal(expo_add(&set, &D_B, 3, -INFINITY, "target", NULL,
				  NULL), 0);
	(void)D_EMPTY;
	buf_init(&out, 1 << 20);
	assert_int_equal(expo_render(&set, &out), 0);
	want = read_golden("expo_basic.prom");
	assert_string_equal(out.data, want);
	free(want);
	buf_cleanup(&out);
	expo_set_cleanup(&set);
}

static void test_empty_set(void **state)
{
	struct expo_set set;
	struct buf out;

	(void)state;
	expo_set_init(&set, 1024);
	buf_init(&out, 1024);
	assert_int_equal(expo_render(&set, &out), 0);
	assert_int_equal(out.len, 0);
	buf_cleanup(&out);
	expo_set_cleanup(&set);
}

/* The cap bounds the merged set too: shards' label bytes add up. */
static void test_merge_over_cap(void **state)
{
	struct expo_set a, b;

	(void)state;
	expo_set_init(&a, 24);
	expo_set_init(&b, 24);
	assert_int_equal(expo_add(&a, &D_A, 0, 1, "x", "aaaaaa", NULL), 0);
	assert_int_equal(expo_add(&b, &D_A, 0, 2, "x", "bbbbbb", NULL), 0);
	assert_true(a.bytes + b.bytes > 24);
	assert_int_equal(expo_merge(&a, &b), -E2BIG);
	assert_int_equal(a.err, -E2BIG);
	assert_int_equal(b.bytes, 0);	/* consumed either way */
	expo_set_cleanup(&a);
	expo_set_cleanup(&b);
}

static void test_merge(void **state)
{
	struct expo_set a, b;
	struct buf out;

	(void)state;
	expo_set_init(&a, 1 << 20);
	expo_set_init(&b, 1 << 20);
	expo_add(&a, &D_A, 0, 1, "x", "a", NULL);
	expo_add(&b, &D_A, 0, 2, "x", "b", NULL);
	expo_add(&b, &D_B, 0, 3, NULL);
	assert_int_equal(expo_merge(&a, &b), 0);
	buf_init(&out, 1 << 20);
	expo_render(&a, &out);
	assert_string_equal(out.data,
			    "# HELP pki_a_total A counter.\n"
			    "# TYPE pki_a_total counter\n"
			    "pki_a_total{x=\"a\"} 1\n"
			    "pki_a_total{x=\"b\"} 2\n"
			    "# HELP pki_b_seconds Help with \\\\ and\\nnewline.\n"
			    "# TYPE pki_b_seconds gauge\n"
			    "pki_b_seconds 3\n");
	buf_cleanup(&out);
	expo_set_cleanup(&a);
	expo_set_cleanup(&b);
}

/* A set with several families, escaping in labels and HELP, invalid
 * UTF-8, every value kind and samples added out of order. */
static const struct metric_desc D_C = {"pki_c_info", "Facts.\nMore \\ facts.",
				       METRIC_GAUGE};

static void fill(struct expo_set *set)
{
	char v[32];

	expo_add(set, &D_B, 2, 0.25, "target", "second", NULL);
	expo_add(set, &D_B, 1, NAN, "target", "first \"q\" \\ \n", "tab",
		 "a\tb", NULL);
	expo_add(set, &D_A, 0, 7, NULL);
	expo_add(set, &D_B, 1, INFINITY, "target", "first-2", NULL);
	expo_add(set, &D_B, 3, -INFINITY, "target", NULL, NULL);
	for (int i = 0; i < 40; i++) {
		snprintf(v, sizeof(v), "host-%d.example\xff", 40 - i);
		expo_add(set, &D_C, (uint32_t)(40 - i), 1.5e-9 * i, "target",
			 v, "module", "tls", NULL);
	}
}

/* Whatever the render size and read size, the streamed bytes are
 * expo_render's, with chunk and read boundaries inside lines. */
static void test_stream_equals_render(void **state)
{
	static const size_t chunks[] = {1, 2, 7, 64, 1000, 1 << 20};
	static const size_t reads[] = {1, 3, 5, 13, 4096};
	struct expo_set set;
	struct buf want;

	(void)state;
	expo_set_init(&set, 1 << 20);
	fill(&set);
	assert_int_equal(set.err, 0);
	buf_init(&want, 1 << 20);
	assert_int_equal(expo_render(&set, &want), 0);
	expo_set_cleanup(&set);
	assert_true(want.len > 2000);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		for (size_t j = 0; j < sizeof(reads) / sizeof(reads[0]); j++) {
			struct expo_stream st;
			struct buf got;
			char part[4096];
			size_t n;

			expo_set_init(&set, 1 << 20);
			fill(&set);
			expo_stream_init(&st, &set, chunks[i]);
			buf_init(&got, 1 << 20);
			do {
				assert_int_equal(expo_stream_read(&st, part,
								  reads[j],
								  &n),
						 0);
				assert_true(n <= reads[j]);
				buf_append(&got, part, n);
			} while (n);
			/* the end stays the end */
			assert_int_equal(expo_stream_read(&st, part, 1, &n), 0);
			assert_int_equal(n, 0);
			if (got.len != want.len ||
			    memcmp(got.data, want.data, want.len) != 0)
				fail_msg("chunk %zu, read %zu: got\n%s\nwant\n%s",
					 chunks[i], reads[j], got.data,
					 want.data);
			/* the set is spent, as after expo_render */
			for (size_t k = 0; k < set.nfam; k++)
				assert_int_equal(set.fams[k].n, 0);
			buf_cleanup(&got);
			expo_stream_cleanup(&st);
			expo_set_cleanup(&set);
		}
	}
	buf_cleanup(&want);
}

/* An empty set streams nothing; a set with a sticky error streams its
 * error and never any text. */
static void test_stream_empty_and_error(void **state)
{
	struct expo_set set;
	struct expo_stream st;
	char part[64];
	size_t n = 1;

	(void)state;
	expo_set_init(&set, 1024);
	expo_stream_init(&st, &set, 16);
	assert_int_equal(expo_stream_read(&st, part, sizeof(part), &n), 0);
	assert_int_equal(n, 0);
	expo_stream_cleanup(&st);
	expo_set_cleanup(&set);

	expo_set_init(&set, 100);
	expo_add(&set, &D_A, 0, 1, "x", "y", NULL);
	while (expo_add(&set, &D_A, 0, 1, "x", "yyyyyyyyyyyyyyyyyyyy",
			NULL) == 0)
		;
	assert_int_equal(set.err, -E2BIG);
	expo_stream_init(&st, &set, 16);
	n = 1;
	assert_int_equal(expo_stream_read(&st, part, sizeof(part), &n),
			 -E2BIG);
	assert_int_equal(n, 0);
	expo_stream_cleanup(&st);
	expo_set_cleanup(&set);
}

/* Allocation failures while streaming: reported as -ENOMEM, the text
 * before them is a prefix of the whole, nothing leaks (ASan). */
static void test_stream_alloc_failures(void **state)
{
	struct expo_set set;
	struct buf want;

	(void)state;
	expo_set_init(&set, 1 << 20);
	fill(&set);
	buf_init(&want, 1 << 20);
	assert_int_equal(expo_render(&set, &want), 0);
	expo_set_cleanup(&set);
	for (unsigned long f = 1; f < 20; f++) {
		static char got[1 << 16];	/* allocates nothing */
		struct expo_stream st;
		size_t len = 0, n;
		int rc;

		expo_set_init(&set, 1 << 20);
		fill(&set);
		assert_int_equal(set.err, 0);
		expo_stream_init(&st, &set, 50);
		xalloc_fail_after(f);
		do {
			assert_true(len + 100 <= sizeof(got));
			rc = expo_stream_read(&st, got + len, 100, &n);
			len += n;
		} while (rc == 0 && n);
		xalloc_fail_after(0);
		assert_true(rc == 0 || rc == -ENOMEM);
		assert_true(len <= want.len);
		if (len)
			assert_memory_equal(got, want.data, len);
		if (rc == 0)
			assert_int_equal(len, want.len);
		else /* the error sticks */
			assert_int_equal(expo_stream_read(&st, got, 1, &n), rc);
		expo_stream_cleanup(&st);
		expo_set_cleanup(&set);
	}
	buf_cleanup(&want);
}

/* Labels of every length, one longer than a whole chunk, in two sets
 * merged into one: each sample keeps its own labels through packing,
 * merging and rendering. */
static void add_varied(struct expo_set *set, uint32_t first, size_t n,
		       struct buf *want)
{
	static char v[20001];

	for (size_t i = 0; i < n; i++) {
		size_t len = i == n / 2 ? sizeof(v) - 1 : (i * 37) % 700;

		memset(v, 'a' + (int)((first + i) % 26), len);
		v[len] = '\0';
		assert_int_equal(expo_add(set, &D_A, first + (uint32_t)i,
					  (double)i, "v", v, NULL),
				 0);
		buf_printf(want, "pki_a_total{v=\"%s\"} %zu\n", v, i);
	}
}

static void test_labels_packed(void **state)
{
	struct expo_set a, b;
	struct buf out, want;

	(void)state;
	expo_set_init(&a, 1 << 24);
	expo_set_init(&b, 1 << 24);
	buf_init(&want, 1 << 24);
	buf_puts(&want, "# HELP pki_a_total A counter.\n"
			"# TYPE pki_a_total counter\n");
	add_varied(&a, 0, 300, &want);
	add_varied(&b, 300, 300, &want);
	assert_int_equal(expo_merge(&a, &b), 0);
	/* the merged set goes on taking samples into its own chunks */
	add_varied(&a, 600, 50, &want);
	buf_init(&out, 1 << 24);
	assert_int_equal(expo_render(&a, &out), 0);
	assert_int_equal(out.len, want.len);
	assert_string_equal(out.data, want.data);
	buf_cleanup(&out);
	buf_cleanup(&want);
	expo_set_cleanup(&a);
	expo_set_cleanup(&b);
}

/* Fail each allocation of filling, merging and streaming in turn. */
static void test_merge_alloc_failures(void **state)
{
	(void)state;
	for (unsigned long n = 1; n < 80; n++) {
		struct expo_set a, b;
		struct expo_stream st;
		char part[512];
		size_t got = 1;
		int rc = 0;

		expo_set_init(&a, 1 << 24);
		expo_set_init(&b, 1 << 24);
		xalloc_fail_after(n);
		for (int i = 0; i < 60 && rc == 0; i++)
			rc = expo_add(i % 2 ? &a : &b, i % 3 ? &D_A : &D_B,
				      (uint32_t)i, i, "target",
				      "a-longer-label-value-to-fill-chunks-up",
				      NULL);
		if (rc == 0)
			rc = expo_merge(&a, &b);
		expo_stream_init(&st, &a, 100);
		while (rc == 0 && got)
			rc = expo_stream_read(&st, part, sizeof(part), &got);
		xalloc_fail_after(0);
		assert_true(rc == 0 || rc == -ENOMEM);
		expo_stream_cleanup(&st);
		expo_set_cleanup(&a);
		expo_set_cleanup(&b);
	}
}

/* The byte cap holds: a set refuses samples past max_bytes and the error
 * sticks, so a hostile label cannot grow a scrape without bound. */
static void test_cap(void **state)
{
	struct expo_set set;
	char big[2048];
	int rc = 0;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expo_set_init(&set, 10000);
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = expo_add(&set, &D_A, 0, 1, "v", big, NULL);
	assert_int_equal(rc, -E2BIG);
	assert_int_equal(set.err, -E2BIG);
	expo_set_cleanup(&set);
}

/* Fail the 1st..Nth allocation in turn: every failure is reported, none
 * crashes or leaks (ASan checks the latter). */
static void test_alloc_failures(void **state)
{
	(void)state;
	for (unsigned long n = 1; n < 40; n++) {
		struct expo_set set;
		struct buf out;
		int rc;

		expo_set_init(&set, 1 << 20);
		buf_init(&out, 1 << 20);
		xalloc_fail_after(n);
		rc = expo_add(&set, &D_A, 0, 1, "a", "b", NULL);
		if (rc == 0)
			rc = expo_add(&set, &D_B, 1, 2, "c", "d\"", NULL);
		if (rc == 0)
			rc = expo_render(&set, &out);
		xalloc_fail_after(0);
		assert_true(rc == 0 || rc == -ENOMEM);
		buf_cleanup(&out);
		expo_set_cleanup(&set);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_help_escape),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_render_golden),
		cmocka_unit_test(test_empty_set),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_merge_over_cap),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_stream_equals_render),
		cmocka_unit_test(test_stream_empty_and_error),
		cmocka_unit_test(test_stream_alloc_failures),
		cmocka_unit_test(test_labels_packed),
		cmocka_unit_test(test_merge_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
