/* libFuzzer: label escaping and the exposition renderer. The input gives
 * label values (split at NUL bytes), sample values and a HELP text; the
 * rendered text must parse: every line matches the text-format 0.0.4
 * grammar, the whole body is valid UTF-8, and each label value reads back
 * as the input (when the input was valid UTF-8). */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/buf.h"
#include "exporter/expo.h"
#include "exporter/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_VALUES 16

static const struct metric_desc D_A = {"pki_fuzz_a", "A \\ help\nline",
				       METRIC_GAUGE};
static const struct metric_desc D_B = {"pki_fuzz_b_total", "B", METRIC_COUNTER};
static const struct metric_desc D_C = {"pki_fuzz_c", "C", METRIC_GAUGE};

#define CHECK(c)                                                             \
	do {                                                                 \
		if (!(c))                                                    \
			__builtin_trap();                                    \
	} while (0)

/* An independent UTF-8 check (decode, then reject overlong forms,
 * surrogates and code points past U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			need = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (unsigned k = 1; k <= need; k++) {
			if (i + k >= n || (s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) ||
		    (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

static bool name_char(char c, bool first, bool metric)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (metric && c == ':')
		return true;
	return !first && c >= '0' && c <= '9';
}

/* Parse a name at *p; returns its length (0: none). */
static size_t parse_name(const char **p, const char *end, bool metric)
{
	const char *s = *p;

	while (*p < end && name_char(**p, *p == s, metric))
		(*p)++;
	return (size_t)(*p - s);
}

static bool parse_value(const char *s, size_t n)
{
	char tmp[64];
	char *e;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (!strcmp(tmp, "NaN") || !strcmp(tmp, "+Inf") || !strcmp(tmp, "-Inf"))
		return true;
	strtod(tmp, &e);
	return *e == '\0' && !strchr(tmp, ' ');
}

/* One sample line; each label value, unescaped, goes to vals[]. */
static bool parse_sample(const char *p, const char *end, struct buf *vals,
			 size_t *nvals)
{
	if (!parse_name(&p, end, true))
		return false;
	if (p < end && *p == '{') {
		p++;
		for (;;) {
			struct buf *v = &vals[*nvals < MAX_VALUES * 4 ? *nvals : 0];

			if (!parse_name(&p, end, false))
				return false;
			if (end - p < 2 || p[0] != '=' || p[1] != '"')
				return false;
			p += 2;
			buf_reset(v);
			buf_putc(v, 'x');	/* so data is never NULL */
			while (p < end && *p != '"') {
				if (*p == '\n')
					return false;
				if (*p == '\\') {
					if (p + 1 >= end)
						return false;
					if (p[1] == 'n')
						buf_putc(v, '\n');
					else if (p[1] == '\\' || p[1] == '"')
						buf_putc(v, p[1]);
					else
						return false;
					p += 2;
					continue;
				}
				buf_putc(v, *p++);
			}
			if (p >= end)
				return false;
			p++;	/* closing quote */
			(*nvals)++;
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == '}') {
				p++;
				break;
			}
			return false;
		}
	}
	if (p >= end || *p != ' ')
		return false;
	p++;
	return parse_value(p, (size_t)(end - p));
}

static bool parse_comment(const char *p, const char *end)
{
	if (end - p >= 7 && memcmp(p, "# HELP ", 7) == 0) {
		p += 7;
		if (!parse_name(&p, end, true) || p >= end || *p != ' ')
			return false;
		for (p++; p < end; p++)
			if (*p == '\\') {
				if (p + 1 >= end || (p[1] != '\\' && p[1] != 'n'))
					return false;
				p++;
			}
		return true;
	}
	if (end - p >= 7 && memcmp(p, "# TYPE ", 7) == 0) {
		p += 7;
		if (!parse_name(&p, end, true) || p >= end || *p != ' ')
			return false;
		p++;
		return (end - p == 5 && !memcmp(p, "gauge", 5)) ||
		       (end - p == 7 && !memcmp(p, "counter", 7));
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *vals[MAX_VALUES];
	size_t nv = 0, off = 0, nlabels_seen = 0;
	struct buf parsed[MAX_VALUES * 4];
	struct expo_set set;
	struct buf out, help;
	char *copy;
	double num = 0;

	if (size > 64 * 1024)
		return -1;
	/* a NUL-terminated copy, split at NULs into label values */
	copy = xmalloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	if (size >= sizeof(num))
		memcpy(&num, data, sizeof(num));
	while (off <= size && nv < MAX_VALUES) {
		vals[nv++] = copy + off;
		off += strlen(copy + off) + 1;
	}

	expo_set_init(&set, 1 << 24);
	for (size_t i = 0; i < nv; i++) {
		const struct metric_desc *d =
			i % 3 == 0 ? &D_A : i % 3 == 1 ? &D_B : &D_C;

		expo_add(&set, d, (uint32_t)(nv - i), i == 0 ? num : (double)i,
			 "module", vals[i], "target", vals[(i + 1) % nv], NULL);
	}
	expo_add(&set, &D_C, 0, num, NULL);	/* no labels */
	CHECK(set.err == 0);

	buf_init(&out, 1 << 26);
	CHECK(expo_render(&set, &out) == 0);
	expo_set_cleanup(&set);
	CHECK(utf8_valid((const unsigned char *)out.data, out.len));
	for (size_t i = 0; i < MAX_VALUES * 4; i++)
		buf_init(&parsed[i], 1 << 20);
	{
		const char *p = out.data, *end = out.data + out.len;

		CHECK(out.len > 0 && end[-1] == '\n');
		while (p < end) {
			const char *eol = memchr(p, '\n', (size_t)(end - p));

			CHECK(eol != NULL);
			if (*p == '#')
				CHECK(parse_comment(p, eol));
			else
				CHECK(parse_sample(p, eol, parsed,
						   &nlabels_seen));
			p = eol + 1;
		}
	}
	CHECK(nlabels_seen == 2 * nv);
	/* a valid UTF-8 value reads back unchanged */
	for (size_t i = 0; i < nv; i++) {
		size_t n = strlen(vals[i]);
		bool found = false;

		if (!utf8_valid((const unsigned char *)vals[i], n))
			continue;
		for (size_t k = 0; k < nlabels_seen && !found; k++)
			found = parsed[k].len == n + 1 &&
				memcmp(parsed[k].data + 1, vals[i], n) == 0;
		CHECK(found);
	}

	/* HELP escaping alone: no raw newline, only \\ and \n escapes */
	buf_init(&help, 1 << 20);
	CHECK(expo_escape_help(&help, vals[0]) == 0);
	for (size_t i = 0; i < help.len; i++) {
		CHECK(help.data[i] != '\n');
		if (help.data[i] == '\\') {
			CHECK(i + 1 < help.len &&
			      (help.data[i + 1] == '\\' || help.data[i + 1] == 'n'));
			i++;
		}
	}
	/* values read back */
	{
		char v[64];

		expo_format_value(v, sizeof(v), num);
		if (!isnan(num))
			CHECK(strtod(v, NULL) == num ||
			      (isinf(num) && isinf(strtod(v, NULL))));
	}
	buf_cleanup(&help);
	for (size_t i = 0; i < MAX_VALUES * 4; i++)
		buf_cleanup(&parsed[i]);
	buf_cleanup(&out);
	xfree(copy);
	return 0;
}
