/* Event parsers: every line of the forwarded-event corpus (NXLog JSON,
 * Winlogbeat 7/8, Snare with and without a syslog header, RFC 5424 with
 * SD escapes and a BOM, RFC 3164 with and without PRI) gives the fields
 * the MANIFEST lists; malformed lines (broken JSON, a 1 MiB line, NUL
 * bytes, invalid UTF-8, quotes and newlines) are parse errors or plain
 * data, never a crash. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "events/events_int.h"
#include "exporter/xalloc.h"

/* A parsed event with its strings copied out of the parser. */
struct got {
	int rc;
	bool has_id;
	unsigned id;
	char host[300], source[300], channel[300], level[64];
	char message[4096];
	size_t message_len;
};

static void copy(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "(null)");
}

static void parse_n(enum ev_format fmt, const char *line, size_t len,
		    struct got *g)
{
	struct ev_input_cfg in;
	struct ev_parser p;
	struct ev_event e;
	char *buf = xmalloc(len + 1);

	assert_non_null(buf);
	memcpy(buf, line, len);
	buf[len] = '\0';
	memset(&in, 0, sizeof(in));
	in.format = fmt;
	ev_parser_init(&p);
	memset(g, 0, sizeof(*g));
	g->rc = ev_parse_line(&in, &p, buf, len, "192.0.2.7", &e);
	if (g->rc == 0) {
		g->has_id = e.has_id;
		g->id = e.event_id;
		copy(g->host, sizeof(g->host), e.host);
		copy(g->source, sizeof(g->source), e.source);
		copy(g->channel, sizeof(g->channel), e.channel);
		copy(g->level, sizeof(g->level), e.level);
		g->message_len = e.message_len;
		snprintf(g->message, sizeof(g->message), "%.*s",
			 (int)(e.message_len < 4000 ? e.message_len : 4000),
			 e.message ? e.message : "");
	}
	ev_parser_cleanup(&p);
	xfree(buf);
}

static void parse(enum ev_format fmt, const char *line, struct got *g)
{
	parse_n(fmt, line, strlen(line), g);
}

/* Lines of a corpus file (PKI_CORPUS/events/name); caller frees. */
static char **corpus_lines(const char *name, size_t *n)
{
	const char *dir = getenv("PKI_CORPUS");
	char path[1024], *line = NULL, **v = NULL;
	size_t cap = 0, vcap = 0;
	ssize_t len;
	FILE *f;

	if (!dir)
		dir = "../shared/corpus";
	snprintf(path, sizeof(path), "%s/events/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s (set PKI_CORPUS)", path);
	*n = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		assert_int_equal(xgrow((void **)&v, &vcap, *n + 1, sizeof(*v)),
				 0);
		v[(*n)++] = xstrdup(line);
	}
	free(line);
	fclose(f);
	return v;
}

static void lines_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		xfree(v[i]);
	xfree(v);
}

struct expect {
	int rc;
	long id;	/* -1: none */
	const char *host, *source, *channel, *level, *msg_substr;
};

static void check_file(const char *name, enum ev_format fmt,
		       const struct expect *x, size_t nx)
{
	size_t n;
	char **v = corpus_lines(name, &n);

	assert_int_equal(n, nx);
	for (size_t i = 0; i < n; i++) {
		struct got g;

		parse(fmt, v[i], &g);
		if (g.rc != x[i].rc)
			fail_msg("%s line %zu: rc %d, want %d", name, i + 1,
				 g.rc, x[i].rc);
		if (x[i].rc)
			continue;
		if (x[i].id < 0)
			assert_false(g.has_id);
		else {
			assert_true(g.has_id);
			assert_int_equal(g.id, x[i].id);
		}
		assert_string_equal(g.host, x[i].host);
		assert_string_equal(g.source, x[i].source);
		assert_string_equal(g.channel, x[i].channel);
		assert_string_equal(g.level, x[i].level);
		if (!strstr(g.message, x[i].msg_substr))
			fail_msg("%s line %zu: message '%s' lacks '%s'", name,
				 i + 1, g.message, x[i].msg_substr);
	}
	lines_free(v, n);
}

#define FE "fe01.contoso.test"
#define EDGE "edge01.contoso.test"
#define WF "Microsoft-WindowsFabric"
#define WFC "Microsoft-WindowsFabric/Admin"
#define LUS "LS User Services"
#define LCLA "LS Centralized Logging Agent"

static void test_nxlog(void **state)
{
	static const struct expect x[] = {
		{0, 4097, FE, WF, WFC, "warning", "0x1000040"},
		{0, 4097, FE, WF, WFC, "warning", "0x80092013"},
		{0, 32174, FE, LUS, "Lync Server", "warning",
		 "delayed because fabric pool manager"},
		{0, 33019, FE, LCLA, "Lync Server", "error", "33019"},
		{0, 36888, EDGE, "Schannel", "System", "error",
		 "fatal alert was generated"},
		{0, 36874, EDGE, "Schannel", "System", "error",
		 "none of the cipher suites"},
		{0, 36885, FE, "Schannel", "System", "warning",
		 "has thus been truncated"},
		{-EINVAL, 0, 0, 0, 0, 0, 0},	/* truncated JSON */
	};

	(void)state;
	check_file("nxlog-im_msvistalog.jsonl", EV_FMT_JSON, x, 8);
	check_file("nxlog-im_msvistalog.jsonl", EV_FMT_AUTO, x, 8);
}

static void test_nxlog_multiline_message(void **state)
{
	size_t n;
	char **v = corpus_lines("nxlog-im_msvistalog.jsonl", &n);
	struct got g;

	(void)state;
	parse(EV_FMT_JSON, v[2], &g);
	assert_int_equal(g.rc, 0);
	/* \r\n inside the JSON string arrive as real CR LF */
	assert_non_null(strstr(g.message, "users.\r\nCurrently waiting"));
	lines_free(v, n);
}

static void test_winlogbeat(void **state)
{
	static const struct expect x[] = {
		{0, 4097, FE, WF, WFC, "warning", "0x1000040"},
		{0, 4097, FE, WF, WFC, "warning", "0x80092013"},
		{0, 32174, FE, LUS, "Lync Server", "warning",
		 "initial placement of users.\nCurrently"},
		{0, 36888, EDGE, "Schannel", "System", "error", "fatal alert"},
		{0, 36874, EDGE, "Schannel", "System", "error",
		 "none of the cipher suites"},
		/* 7.17: event_id and event.code are integers */
		{0, 36885, FE, "Schannel", "System", "warning",
		 "grown too long"},
	};

	(void)state;
	check_file("winlogbeat-8.ndjson", EV_FMT_JSON, x, 6);
	check_file("winlogbeat-8.ndjson", EV_FMT_AUTO, x, 6);
}

static void test_snare(void **state)
{
	static const struct expect x[] = {
		{0, 4097, FE, WF, WFC, "warning", "0x1000040"},
		{0, 4097, FE, WF, WFC, "warning", "0x80092013"},
		{0, 32174, FE, LUS, "Lync Server", "warning", "delayed"},
		{0, 36888, EDGE, "Schannel", "System", "error", "fatal alert"},
		{0, 36874, EDGE, "Schannel", "System", "error", "cipher"},
		/* header-less variant */
		{0, 4097, FE, WF, WFC, "warning", "0x1000040"},
	};

	(void)state;
	check_file("snare-over-syslog.log", EV_FMT_SNARE, x, 6);
	check_file("snare-over-syslog.log", EV_FMT_AUTO, x, 6);
}

static void test_rfc5424(void **state)
{
	static const struct expect x[] = {
		{0, 4097, FE, WF, WFC, "warning", "0x1000040"},
		{0, 4097, FE, WF, WFC, "warning", "0x80092013"},
		/* APP-NAME LS_User_Services, the real name in SD */
		{0, 32174, FE, LUS, "Lync Server", "warning", "delayed"},
		{0, 33019, FE, LCLA, "Lync Server", "error", "33019"},
		{0, 36888, EDGE, "Schannel", "System", "error",
		 "error state is 1205."},
		/* no SD, BOM before MSG: level from PRI, source APP-NAME */
		{0, -1, EDGE, "Schannel", "(null)", "error", "An TLS 1.2"},
		{0, 36885, FE, "Schannel", "System", "warning", "truncated"},
	};
	size_t n;
	char **v;
	struct got g;

	(void)state;
	check_file("rfc5424.log", EV_FMT_RFC5424, x, 7);
	check_file("rfc5424.log", EV_FMT_AUTO, x, 7);
	/* the BOM is not part of the message */
	v = corpus_lines("rfc5424.log", &n);
	parse(EV_FMT_RFC5424, v[5], &g);
	assert_int_equal(strncmp(g.message, "An TLS", 6), 0);
	lines_free(v, n);
}

static void test_rfc3164(void **state)
{
	static const struct expect x[] = {
		{0, -1, "fe01", WF, "(null)", "warning", "0x1000040"},
		{0, -1, "fe01", WF, "(null)", "warning", "0x80092013"},
		/* TAG with spaces, no PID */
		{0, -1, "fe01", LUS, "(null)", "warning", "delayed"},
		{0, -1, "edge01", "Schannel", "(null)", "error", "fatal alert"},
		{0, -1, "edge01", "Schannel", "(null)", "error", "cipher"},
		{0, -1, "fe01", "Schannel", "(null)", "warning", "truncated"},
		/* no PRI: no level */
		{0, -1, "fe01", "Schannel", "(null)", "(null)",
		 "line without PRI"},
	};

	(void)state;
	check_file("rfc3164.log", EV_FMT_RFC3164, x, 7);
	check_file("rfc3164.log", EV_FMT_AUTO, x, 7);
}

static void test_syslog_edges(void **state)
{
	struct got g;

	(void)state;
	/* no host: the token is the tag; the peer is the host */
	parse(EV_FMT_RFC3164, "<11>Jan  8 09:15:02 Schannel[784]: boom", &g);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.host, "192.0.2.7");
	assert_string_equal(g.source, "Schannel");
	assert_string_equal(g.message, "boom");
	/* RFC 3339 timestamp in a BSD line; upper-case host lower-cased */
	parse(EV_FMT_AUTO, "<12>2025-01-08T09:12:44.5Z FE01 app: hi", &g);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.host, "fe01");
	assert_string_equal(g.source, "app");
	assert_string_equal(g.message, "hi");
	/* bad PRI */
	parse(EV_FMT_AUTO, "<999>Jan  8 09:15:02 h t: m", &g);
	assert_int_equal(g.rc, -EINVAL);
	parse(EV_FMT_AUTO, "<1a>x", &g);
	assert_int_equal(g.rc, -EINVAL);
	/* 5424 required but BSD given, and broken SD */
	parse(EV_FMT_RFC5424, "<12>Jan  8 09:15:02 h t: m", &g);
	assert_int_equal(g.rc, -EINVAL);
	parse(EV_FMT_RFC5424, "<12>1 - h a p m [x a=\"unterminated", &g);
	assert_int_equal(g.rc, -EINVAL);
	parse(EV_FMT_RFC5424, "<12>1 - h a p m [x a=b]", &g);
	assert_int_equal(g.rc, -EINVAL);
	parse(EV_FMT_RFC5424, "<12>1 - h", &g);
	assert_int_equal(g.rc, -EINVAL);
	/* minimal 5424: nil everything, no MSG */
	parse(EV_FMT_RFC5424, "<14>1 - - - - - -", &g);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.host, "192.0.2.7");
	assert_string_equal(g.source, "(null)");
	assert_string_equal(g.level, "information");
	assert_int_equal(g.message_len, 0);
	/* SD escapes, several elements, first EventID wins */
	parse(EV_FMT_RFC5424,
	      "<12>1 - h a - - [a@1 x=\"\\\"q\\\" \\\\ \\]\"][b@2 EventID=\"7\" "
	      "eventid=\"8\" Channel=\"C\\]x\"] msg",
	      &g);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.id, 7);
	assert_string_equal(g.channel, "C]x");
	assert_string_equal(g.message, "msg");
	/* JSON behind a syslog header (format auto): JSON fields, header
	 * host as fallback */
	parse(EV_FMT_AUTO,
	      "<12>Jan  8 09:12:44 relay01 nxlog: {\"EventID\":36888,"
	      "\"SourceName\":\"Schannel\",\"Message\":\"x\"}",
	      &g);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.id, 36888);
	assert_string_equal(g.host, "relay01");
	assert_string_equal(g.source, "Schannel");
	assert_string_equal(g.level, "warning");	/* from PRI 12 */
	/* ... and broken JSON there is just text */
	parse(EV_FMT_AUTO, "<12>Jan  8 09:12:44 relay01 nxlog: {\"EventID\":", &g);
	assert_int_equal(g.rc, 0);
	assert_false(g.has_id);
	assert_string_equal(g.message, "{\"EventID\":");
	/* a line that is only text (format auto): the message */
	parse(EV_FMT_AUTO, "just some words", &g);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.message, "just some words");
	assert_string_equal(g.host, "192.0.2.7");
}

static void test_json_edges(void **state)
{
	struct got g;

	(void)state;
	parse(EV_FMT_JSON, "[1,2]", &g);	/* not an object */
	assert_int_equal(g.rc, -EINVAL);
	parse(EV_FMT_JSON, "{\"EventID\":4097", &g);
	assert_int_equal(g.rc, -EINVAL);
	parse(EV_FMT_JSON, "{} trailing", &g);
	assert_int_equal(g.rc, -EINVAL);
	parse(EV_FMT_JSON, "", &g);
	assert_int_equal(g.rc, -EINVAL);
	/* \u0000 inside a string is refused */
	parse(EV_FMT_JSON, "{\"Message\":\"a\\u0000b\"}", &g);
	assert_int_equal(g.rc, -EINVAL);
	/* ids: out of range, negative, non-numeric string */
	parse(EV_FMT_JSON, "{\"EventID\":4294967296}", &g);
	assert_int_equal(g.rc, 0);
	assert_false(g.has_id);
	parse(EV_FMT_JSON, "{\"EventID\":-1}", &g);
	assert_false(g.has_id);
	parse(EV_FMT_JSON, "{\"EventID\":\"12ab\"}", &g);
	assert_false(g.has_id);
	parse(EV_FMT_JSON, "{\"EventID\":\" 42 \"}", &g);
	assert_true(g.has_id);
	assert_int_equal(g.id, 42);
	/* Winlogbeat without winlog.event_id: event.code */
	parse(EV_FMT_JSON,
	      "{\"winlog\":{\"channel\":\"System\"},\"event\":{\"code\":\"36888\","
	      "\"provider\":\"Schannel\"},\"host\":{\"name\":\"H\"}}",
	      &g);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.id, 36888);
	assert_string_equal(g.source, "Schannel");
	assert_string_equal(g.host, "h");
	/* wrong types are absent fields, not errors */
	parse(EV_FMT_JSON, "{\"Hostname\":5,\"SourceName\":[],\"EventID\":{}}",
	      &g);
	assert_int_equal(g.rc, 0);
	assert_false(g.has_id);
	assert_string_equal(g.source, "(null)");
	assert_string_equal(g.host, "192.0.2.7");
	/* unknown levels are lower-cased and kept to [a-z0-9_] */
	parse(EV_FMT_JSON, "{\"Severity\":\"Very \\\"Bad\\\"\"}", &g);
	assert_string_equal(g.level, "very__bad_");
	parse(EV_FMT_JSON, "{\"EventType\":\"AUDIT_FAILURE\"}", &g);
	assert_string_equal(g.level, "audit_failure");
	/* of repeated keys the last counts (as jansson read them) */
	parse(EV_FMT_JSON, "{\"EventID\":1,\"Hostname\":\"A\",\"EventID\":4097}",
	      &g);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.id, 4097);
	/* an escaped backslash before "u0000" is text, not a NUL */
	parse(EV_FMT_JSON, "{\"Message\":\"C:\\\\u0000x\"}", &g);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.message, "C:\\u0000x");
	parse(EV_FMT_JSON, "{\"Message\":\"\\\\\\u0000\"}", &g);	/* \\ then \u0000 */
	assert_int_equal(g.rc, -EINVAL);
	/* whitespace after the object is fine, anything else is not */
	parse(EV_FMT_JSON, "{\"EventID\":7} \t\r", &g);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.id, 7);
	parse(EV_FMT_JSON, "{\"EventID\":7} {}", &g);
	assert_int_equal(g.rc, -EINVAL);
	/* a fractional number is no event id; a whole one is */
	parse(EV_FMT_JSON, "{\"EventID\":12.5}", &g);
	assert_int_equal(g.rc, 0);
	assert_false(g.has_id);
	/* invalid UTF-8 cut at the end of the line */
	parse(EV_FMT_JSON, "{\"Message\":\"ab\"}\xe2\x82", &g);
	assert_int_equal(g.rc, -EINVAL);
}

/* A line whose tree does not fit the parse arena (256 KiB) spills to the
 * heap and is freed node by node (ASan/valgrind see no leak); the next
 * small line parses from the arena again. */
static void test_json_bigger_than_arena(void **state)
{
	size_t fields = 20000, cap = fields * 32 + 64, n = 0;
	char *line = xmalloc(cap);
	struct got g;

	(void)state;
	assert_non_null(line);
	n += (size_t)snprintf(line + n, cap - n, "{\"EventID\":4097");
	for (size_t i = 0; i < fields; i++)
		n += (size_t)snprintf(line + n, cap - n, ",\"f%zu\":\"v%zu\"", i, i);
	n += (size_t)snprintf(line + n, cap - n, ",\"Hostname\":\"BIG\"}");
	parse_n(EV_FMT_JSON, line, n, &g);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.id, 4097);
	assert_string_equal(g.host, "big");
	parse(EV_FMT_JSON, "{\"EventID\":36888,\"Hostname\":\"small\"}", &g);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.id, 36888);
	assert_string_equal(g.host, "small");
	xfree(line);
}

static void test_malformed(void **state)
{
	static const char *const broken[] = {
		"{\"EventID\":4097,\"Message\":\"unterminated",
		"{\"EventID\":4097,,}",
		"{\"a\":\"\xff\xfe\"}",	/* invalid UTF-8 in JSON */
		"{{{{",
	};
	size_t big = 1024 * 1024;
	char *line = xmalloc(big + 1);
	struct got g;

	(void)state;
	for (size_t i = 0; i < sizeof(broken) / sizeof(*broken); i++) {
		parse(EV_FMT_JSON, broken[i], &g);
		assert_int_equal(g.rc, -EINVAL);
		parse(EV_FMT_AUTO, broken[i], &g);
		assert_int_equal(g.rc, -EINVAL);
	}
	/* 1 MiB of JSON nesting and of text: no crash, bounded */
	memset(line, '[', big);
	parse_n(EV_FMT_JSON, line, big, &g);
	assert_int_equal(g.rc, -EINVAL);
	memset(line, 'A', big);
	for (enum ev_format f = EV_FMT_AUTO; f <= EV_FMT_RFC3164; f++) {
		struct ev_input_cfg in;

		if (f == EV_FMT_PLAIN)
			continue;
		memset(&in, 0, sizeof(in));
		parse_n(f, line, big, &g);
	}
	/* NUL bytes in every format: fields end at the NUL, no crash */
	{
		static const char nul[] = "<12>Jan  8 09:12:44 fe\0x01 Sch\0annel[1]: a\0b";
		static const char snare[] = "h\tMSWinEventLog\t1\tSys\0tem\t1\td\t4097\tS\tu\tt\tWarning\tc\tn\tm\0sg\t\t1";

		for (enum ev_format f = EV_FMT_AUTO; f <= EV_FMT_RFC3164; f++) {
			if (f == EV_FMT_PLAIN)
				continue;
			parse_n(f, nul, sizeof(nul) - 1, &g);
			parse_n(f, snare, sizeof(snare) - 1, &g);
		}
		parse_n(EV_FMT_SNARE, snare, sizeof(snare) - 1, &g);
		assert_int_equal(g.rc, 0);
		assert_int_equal(g.id, 4097);
		assert_string_equal(g.channel, "Sys");
		parse_n(EV_FMT_JSON, "{\"EventID\":1}\0garbage", 21, &g);
		assert_int_equal(g.rc, -EINVAL);
	}
	/* invalid UTF-8 outside JSON is just bytes */
	parse(EV_FMT_RFC3164, "<12>Jan  8 09:12:44 h\xc3\x28 t\xff: m\xfe", &g);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.source, "t\xff");
	/* quotes, backslashes and newlines survive as data */
	parse(EV_FMT_JSON,
	      "{\"Hostname\":\"a\\\"b\\\\c\\nd\",\"Message\":\"x \\\"y\\\"\\n"
	      "z\"}",
	      &g);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.host, "a\"b\\c\nd");
	assert_string_equal(g.message, "x \"y\"\nz");
	xfree(line);
}

static void test_snare_short(void **state)
{
	struct got g;

	(void)state;
	parse(EV_FMT_SNARE, "h\tMSWinEventLog\t1\tSystem\t1", &g);
	assert_int_equal(g.rc, -EINVAL);
	parse(EV_FMT_SNARE, "no tag here", &g);
	assert_int_equal(g.rc, -EINVAL);
	/* event id must be numeric */
	parse(EV_FMT_SNARE,
	      "h\tMSWinEventLog\t1\tSystem\t1\td\tXX\tS\tu\tt\tWarning\tc\tn\tm\t\t1",
	      &g);
	assert_int_equal(g.rc, -EINVAL);
	/* empty message field: the expanded string */
	parse(EV_FMT_SNARE,
	      "h\tMSWinEventLog\t1\tSystem\t1\td\t5\tS\tu\tt\tError\t\tn\t\texp\t1",
	      &g);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.message, "exp");
	assert_string_equal(g.host, "h");	/* computer field empty */
}

static void test_plain(void **state)
{
	struct ev_input_cfg in;
	struct ev_parser p;
	struct ev_event e;
	char err[256];
	char line[] = "2025-01-08 FE01 Schannel 36888 ERROR sys: fatal \"alert\"";
	char nomatch[] = "nothing here";

	(void)state;
	memset(&in, 0, sizeof(in));
	in.format = EV_FMT_PLAIN;
	for (int f = 0; f < EV_F_MAX; f++)
		in.groups[f] = -1;
	in.pattern.code = ev_regex_compile(
		"^\\S+ (?<host>\\S+) (?<source>\\S+) (?<event_id>\\d+) "
		"(?<level>\\S+) (?<channel>\\w+): (?<message>.*)$",
		err, sizeof(err));
	assert_non_null(in.pattern.code);
	in.groups[EV_F_HOST] = 1;
	in.groups[EV_F_SOURCE] = 2;
	in.groups[EV_F_EVENT_ID] = 3;
	in.groups[EV_F_LEVEL] = 4;
	in.groups[EV_F_CHANNEL] = 5;
	in.groups[EV_F_MESSAGE] = 6;
	ev_parser_init(&p);
	assert_int_equal(ev_parse_line(&in, &p, line, strlen(line), NULL, &e),
			 0);
	assert_string_equal(e.host, "fe01");
	assert_string_equal(e.source, "Schannel");
	assert_int_equal(e.event_id, 36888);
	assert_string_equal(e.level, "error");
	assert_string_equal(e.channel, "sys");
	assert_int_equal(e.message_len, strlen("fatal \"alert\""));
	assert_memory_equal(e.message, "fatal \"alert\"", e.message_len);
	ev_parser_reset(&p);
	assert_int_equal(ev_parse_line(&in, &p, nomatch, strlen(nomatch), NULL,
				       &e),
			 -EINVAL);
	ev_parser_cleanup(&p);
	pcre2_code_free(in.pattern.code);
	/* bad regexes are reported with their offset */
	assert_null(ev_regex_compile("(a", err, sizeof(err)));
	assert_non_null(strstr(err, "offset 2"));
}

static void test_helpers(void **state)
{
	char s[32];
	uint32_t id;

	(void)state;
	assert_string_equal(ev_level_norm("Success Audit", 13, s, sizeof(s)),
			    "audit_success");
	assert_string_equal(ev_level_norm(" INFO ", 6, s, sizeof(s)),
			    "information");
	assert_null(ev_level_norm("  ", 2, s, sizeof(s)));
	assert_string_equal(ev_level_norm("x", 1, s, sizeof(s)), "x");
	assert_string_equal(ev_level_from_syslog(0), "critical");
	assert_string_equal(ev_level_from_syslog(7), "verbose");
	assert_null(ev_level_from_syslog(-1));
	assert_true(ev_parse_id("4294967295", 10, &id));
	assert_int_equal(id, 4294967295u);
	assert_false(ev_parse_id("4294967296", 10, &id));
	assert_false(ev_parse_id("", 0, &id));
	assert_false(ev_parse_id("-1", 2, &id));
	assert_false(ev_parse_id("00000000001", 11, &id));
	assert_string_equal(ev_format_str(EV_FMT_RFC5424), "rfc5424");
	assert_string_equal(ev_drop_str(EV_DROP_CARDINALITY), "cardinality");
	assert_string_equal(ev_field_str(EV_F_EVENT_ID), "event_id");

	{
		/* a sender may not pose as the overflow series */
		struct ev_parser p;
		struct ev_event e;

		ev_parser_init(&p);
		memset(&e, 0, sizeof(e));
		ev_set_host(&p, &e, " __OTHER__ ", 11);
		assert_string_equal(e.host, "__other__(sender)");
		ev_set_host(&p, &e, "FE01", 4);
		assert_string_equal(e.host, "fe01");
		ev_parser_cleanup(&p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nxlog),
		cmocka_unit_test(test_nxlog_multiline_message),
		cmocka_unit_test(test_winlogbeat),
		cmocka_unit_test(test_snare),
		cmocka_unit_test(test_rfc5424),
		cmocka_unit_test(test_rfc3164),
		cmocka_unit_test(test_syslog_edges),
		cmocka_unit_test(test_json_edges),
		cmocka_unit_test(test_json_bigger_than_arena),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_snare_short),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
