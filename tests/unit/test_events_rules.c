/* events: configuration (errors with file:line:col, defaults, limits),
 * rule semantics (ids, ranges, globs, levels, regexes, any, exclude,
 * first/all), the shipped default rules against the corpus, the counter
 * store (cardinality cap, reload keeps counts, escaping in the
 * exposition) and allocation failures. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#include "events/events_int.h"
#include "exporter/config.h"
#include "exporter/expo.h"
#include "exporter/xalloc.h"

static char dir[] = "/tmp/pki-events-rules-XXXXXX";

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

static char *write_file(const char *name, const char *text)
{
	return tu_write_file(dir, name, text);
}

/* Load `yaml` (testutil.h): the error text (caller frees) or NULL. */
static char *load(const char *yaml, struct config **cfgp)
{
	return tu_load_config(dir, yaml, cfgp);
}

static void expect_error(const char *yaml, const char *needle)
{
	char *errs = load(yaml, NULL);

	if (!errs)
		fail_msg("loaded, expected an error containing '%s'", needle);
	if (!strstr(errs, needle))
		fail_msg("errors:\n%s\nlack '%s'", errs, needle);
	xfree(errs);
}

static void test_config_good(void **state)
{
	struct config *cfg;
	struct events_cfg *ec;
	char *errs;

	(void)state;
	errs = load("events:\n"
		    "  match: all\n"
		    "  max_series: 50\n"
		    "  state_file: st.json\n"
		    "  poll_interval: 100ms\n"
		    "  rotate_wait: 0s\n"
		    "  limits: { max_line_bytes: 32KiB, max_connections: 9 }\n"
		    "  inputs:\n"
		    "    - syslog: udp://127.0.0.1:5514\n"
		    "    - { syslog: 'tcp://[::1]:6514', name: tcp6, framing: "
		    "octet_counting, max_connections: 3, max_line_bytes: 1MiB }\n"
		    "    - { file: ev.json, format: json, start_at: beginning }\n"
		    "    - file: /var/log/x.log\n"
		    "      format: plain\n"
		    "      pattern: '(?<host>\\S+) (?<event_id>\\d+) "
		    "(?<message>.*)'\n"
		    "      state_file: /tmp/own.state\n"
		    "  rules:\n"
		    "    - name: r1\n"
		    "      event_id: [4097, '36870-36888', 1]\n"
		    "      level: [WARN, Error]\n"
		    "      labels: { team: uc, severity_hint: page }\n"
		    "      max_series: 7\n"
		    "    - { name: catch_all }\n",
		    &cfg);
	if (errs)
		fail_msg("%s", errs);
	ec = cfg->events;
	assert_non_null(ec);
	assert_int_equal(ec->match, EV_MATCH_ALL);
	assert_int_equal(ec->max_series, 50);
	assert_int_equal(ec->ninputs, 4);
	assert_int_equal(ec->inputs[0].kind, EV_IN_UDP);
	assert_string_equal(ec->inputs[0].name, "udp://127.0.0.1:5514");
	assert_string_equal(ec->inputs[0].key, "udp://127.0.0.1:5514");
	assert_int_equal(ec->inputs[0].max_line, 32 * 1024);
	assert_int_equal(ec->inputs[0].max_connections, 9);
	assert_null(ec->inputs[0].state_file);
	assert_int_equal(ec->inputs[1].kind, EV_IN_TCP);
	assert_string_equal(ec->inputs[1].name, "tcp6");
	assert_string_equal(ec->inputs[1].key, "tcp://[::1]:6514");
	assert_int_equal(ec->inputs[1].framing, EV_FRAME_OCTET);
	assert_int_equal(ec->inputs[1].max_connections, 3);
	assert_int_equal(ec->inputs[1].max_line, 1024 * 1024);
	assert_int_equal(ec->inputs[2].kind, EV_IN_FILE);
	assert_true(ec->inputs[2].from_beginning);
	assert_int_equal(ec->inputs[2].format, EV_FMT_JSON);
	/* relative paths: relative to the config file's directory */
	assert_non_null(strstr(ec->inputs[2].path, dir));
	assert_non_null(strstr(ec->inputs[2].state_file, "/st.json"));
	assert_string_equal(ec->inputs[2].name, ec->inputs[2].path);
	assert_false(ec->inputs[3].from_beginning);
	assert_string_equal(ec->inputs[3].state_file, "/tmp/own.state");
	assert_int_equal(ec->inputs[3].groups[EV_F_HOST], 1);
	assert_int_equal(ec->inputs[3].groups[EV_F_EVENT_ID], 2);
	assert_int_equal(ec->inputs[3].groups[EV_F_MESSAGE], 3);
	assert_int_equal(ec->inputs[3].groups[EV_F_SOURCE], -1);
	assert_int_equal(ec->nrules, 2);
	assert_int_equal(ec->rules[0].m.nids, 3);
	assert_int_equal(ec->rules[0].m.ids[1].lo, 36870);
	assert_int_equal(ec->rules[0].m.ids[1].hi, 36888);
	assert_string_equal(ec->rules[0].m.levels[0].pat, "warning");
	assert_string_equal(ec->rules[0].m.levels[1].pat, "error");
	assert_int_equal(ec->rules[0].max_series, 7);
	assert_int_equal(ec->rules[0].nlabels, 2);
	assert_int_equal(ec->rules[1].max_series, 50);
	assert_true(ec->poll_interval > 0.09 && ec->poll_interval < 0.11);
	config_free(cfg);

	/* defaults */
	errs = load("events: { inputs: [ { syslog: 'udp://:5514' } ] }\n",
		    &cfg);
	assert_null(errs);
	ec = cfg->events;
	assert_int_equal(ec->match, EV_MATCH_FIRST);
	assert_int_equal(ec->max_series, 1000);
	assert_int_equal(ec->inputs[0].max_line, 65536);
	assert_int_equal(ec->inputs[0].max_connections, 256);
	assert_string_equal(ec->inputs[0].key, "udp://0.0.0.0:5514");
	config_free(cfg);
	/* no events key at all */
	errs = load("global: { scrape_timeout: 5s }\n", &cfg);
	assert_null(errs);
	assert_null(cfg->events);
	config_free(cfg);
}

static void test_config_errors(void **state)
{
	char *errs;

	(void)state;
	expect_error("events: 5\n", "c.yml:1:9: events: expected a mapping");
	expect_error("events:\n  inputz: []\n",
		     "c.yml:2:3: events: unknown key 'inputz'");
	expect_error("events:\n  match: some\n",
		     "c.yml:2:10: match must be first or all");
	expect_error("events:\n  limits: { max_line_bytes: 10, x: 1 }\n",
		     "10 bytes is out of range");
	expect_error("events:\n  limits: { max_line_bytes: 10, x: 1 }\n",
		     "events.limits: unknown key 'x'");
	expect_error("events:\n  limits: { max_line_bytes: 5GB }\n",
		     "expected a size");
	expect_error("events:\n  inputs: [ { syslog: 'http://x:1' } ]\n",
		     "syslog: expected udp://ADDRESS:PORT");
	expect_error("events:\n  inputs: [ { syslog: 'udp://host.example:5' } "
		     "]\n",
		     "with a numeric address");
	expect_error("events:\n  inputs: [ { syslog: 'udp://1.2.3.4:0' } ]\n",
		     "with a numeric address");
	expect_error("events:\n  inputs: [ { syslog: 'udp://1.2.3.4:1', file: "
		     "x } ]\n",
		     "exactly one of 'syslog' and 'file'");
	expect_error("events:\n  inputs: [ { name: x } ]\n",
		     "exactly one of 'syslog' and 'file'");
	expect_error("events:\n  inputs: [ { file: x, colour: red } ]\n",
		     "c.yml:2:24: events.inputs: unknown key 'colour'");
	expect_error("events:\n  inputs: [ { file: x, format: xml } ]\n",
		     "format must be auto, json");
	expect_error("events:\n  inputs: [ { file: x, format: plain } ]\n",
		     "format plain needs a 'pattern'");
	expect_error("events:\n  inputs: [ { file: x, pattern: '(?<h>.)' } ]\n",
		     "'pattern' is only used with format plain");
	expect_error("events:\n  inputs: [ { file: x, format: plain, pattern: "
		     "'(?<hostname>.)' } ]\n",
		     "unknown group name 'hostname'");
	expect_error("events:\n  inputs: [ { file: x, format: plain, pattern: "
		     "'(' } ]\n",
		     "pattern: at offset 1");
	expect_error("events:\n  inputs: [ { syslog: 'udp://1.2.3.4:1', "
		     "start_at: end } ]\n",
		     "start_at and state_file are for file inputs");
	expect_error("events:\n  inputs: [ { file: x, start_at: middle } ]\n",
		     "start_at must be beginning or end");
	expect_error("events:\n  inputs: [ { syslog: 'udp://1.2.3.4:1', "
		     "framing: newline } ]\n",
		     "framing is for syslog tcp://");
	expect_error("events:\n  inputs: [ { syslog: 'tcp://1.2.3.4:1', "
		     "framing: lf } ]\n",
		     "framing must be auto, newline or octet_counting");
	expect_error("events:\n  inputs: [ { file: x, max_connections: 3 } ]\n",
		     "max_connections is for syslog tcp://");
	expect_error("events:\n  inputs:\n    - { file: x, name: n }\n"
		     "    - { file: y, name: n }\n",
		     "c.yml:4:7: events.inputs: the name 'n' is used twice");
	expect_error("events:\n  inputs:\n    - { syslog: 'udp://127.0.0.1:1' }\n"
		     "    - { syslog: 'udp://127.0.0.1:01', name: b }\n",
		     "udp://127.0.0.1:1 is listed twice");
	expect_error("events:\n  rules: [ { name: a, event_id: '9-1' } ]\n",
		     "c.yml:2:33: event_id: expected an id (4097) or a range");
	expect_error("events:\n  rules: [ { name: a, event_id: [] } ]\n",
		     "event_id: empty list");
	expect_error("events:\n  rules: [ { name: a, event_id: 99999999999 } ]\n",
		     "event_id: expected");
	expect_error("events:\n  rules: [ { name: a, message: '(x' } ]\n",
		     "message: at offset 2");
	expect_error("events:\n  rules: [ { name: a, colour: red } ]\n",
		     "rules: unknown key 'colour'");
	expect_error("events:\n  rules: [ { event_id: 1 } ]\n",
		     "rules: rule has no 'name'");
	expect_error("events:\n  rules: [ { name: '' } ]\n", "rule name is empty");
	expect_error("events:\n  rules: [ { name: a }, { name: a } ]\n",
		     "a rule named 'a' is already defined");
	expect_error("events:\n  rules: [ { name: a, labels: { host: x } } ]\n",
		     "'host' is not a valid label name");
	expect_error("events:\n  rules: [ { name: a, labels: { __x: x } } ]\n",
		     "'__x' is not a valid label name");
	expect_error("events:\n  rules: [ { name: a, labels: { 'a-b': x } } ]\n",
		     "'a-b' is not a valid label name");
	expect_error("events:\n  rules: [ { name: a, any: { event_id: 1 } } ]\n",
		     "any: expected a list");
	expect_error("events:\n  rules: [ { name: a, any: [ { name: 1 } ] } ]\n",
		     "any: unknown key 'name'");
	expect_error("events:\n  rules: [ { name: a, exclude: [ {} ] } ]\n",
		     "exclude: no conditions");
	expect_error("events:\n  rules: [ { name: a, max_series: 0 } ]\n",
		     "0 is out of range");
	expect_error("events:\n  rules_file: missing.yml\n",
		     "rules_file");
	expect_error("events:\n  rules: 5\n", "rules: expected a list");
	expect_error("events:\n  rules: [ { name: a, source: [''] } ]\n",
		     "empty string in a match list");

	/* every error is reported, not only the first */
	errs = load("events:\n  bogus: 1\n  match: x\n  rules: [ { name: a, "
		    "event_id: z } ]\n",
		    NULL);
	assert_non_null(errs);
	assert_non_null(strstr(errs, "c.yml:2:3:"));
	assert_non_null(strstr(errs, "c.yml:3:10:"));
	assert_non_null(strstr(errs, "c.yml:4:33:"));
	xfree(errs);
}

static void test_rules_file(void **state)
{
	char *p, *errs;
	struct config *cfg;

	(void)state;
	p = write_file("r.yml", "rules:\n  - name: from_file\n    event_id: 1\n");
	xfree(p);
	p = write_file("bad.yml", "rules:\n  - name: b\n    colour: 1\n"
				  "x: 1\n");
	xfree(p);
	p = write_file("list.yml", "- name: listed\n");
	xfree(p);
	p = write_file("broken.yml", "rules: [\n");
	xfree(p);
	errs = load("events:\n  rules: [ { name: inline } ]\n"
		    "  rules_file: [r.yml, list.yml]\n",
		    &cfg);
	assert_null(errs);
	/* inline rules come first */
	assert_int_equal(cfg->events->nrules, 3);
	assert_string_equal(cfg->events->rules[0].name, "inline");
	assert_string_equal(cfg->events->rules[1].name, "from_file");
	assert_string_equal(cfg->events->rules[2].name, "listed");
	config_free(cfg);
	/* errors name the rules file and its own lines */
	errs = load("events:\n  rules_file: bad.yml\n", NULL);
	assert_non_null(errs);
	assert_non_null(strstr(errs, "/bad.yml:3:5: rules: unknown key 'colour'"));
	assert_non_null(strstr(errs, "/bad.yml:4:1: unknown key 'x'"));
	xfree(errs);
	errs = load("events:\n  rules_file: broken.yml\n", NULL);
	assert_non_null(errs);
	assert_non_null(strstr(errs, "/broken.yml:2:1: YAML:"));
	xfree(errs);
	/* duplicates across inline and file */
	expect_error("events:\n  rules: [ { name: from_file } ]\n"
		     "  rules_file: r.yml\n",
		     "a rule named 'from_file' is already defined");
}

/* ---- matching ---- */

static struct config *cfg_of(const char *yaml)
{
	struct config *cfg = NULL;
	char *errs = load(yaml, &cfg);

	if (errs)
		fail_msg("%s", errs);
	return cfg;
}

static struct ev_event mk(long id, const char *host, const char *source,
			  const char *channel, const char *level,
			  const char *msg)
{
	struct ev_event e;

	memset(&e, 0, sizeof(e));
	e.has_id = id >= 0;
	e.event_id = id >= 0 ? (uint32_t)id : 0;
	e.host = host;
	e.source = source;
	e.channel = channel;
	e.level = level;
	e.message = msg;
	e.message_len = msg ? strlen(msg) : 0;
	return e;
}

static bool hit(const struct ev_rule *r, struct ev_event e)
{
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	bool b = ev_rule_match(r, &e, md);

	pcre2_match_data_free(md);
	return b;
}

static void test_match(void **state)
{
	struct config *cfg = cfg_of(
		"events:\n"
		"  rules:\n"
		"    - { name: ids, event_id: [4097, '36870-36888'] }\n"
		"    - { name: src, source: ['Sch*', 'LS User Services'], "
		"channel: System }\n"
		"    - { name: lvl, level: [WARN], host: 'fe?""?' }\n"
		"    - { name: msg, message: ['0x8009201[3-9]', '(?i)OFFLINE'] }\n"
		"    - name: anyx\n"
		"      any: [ { event_id: 1 }, { source: x, message: hello } ]\n"
		"      exclude: [ { host: bad* }, { level: error } ]\n"
		"    - { name: all }\n");
	const struct ev_rule *r = cfg->events->rules;

	(void)state;
	assert_true(hit(&r[0], mk(4097, 0, 0, 0, 0, 0)));
	assert_true(hit(&r[0], mk(36870, 0, 0, 0, 0, 0)));
	assert_true(hit(&r[0], mk(36888, 0, 0, 0, 0, 0)));
	assert_false(hit(&r[0], mk(36889, 0, 0, 0, 0, 0)));
	assert_false(hit(&r[0], mk(4098, 0, 0, 0, 0, 0)));
	assert_false(hit(&r[0], mk(-1, 0, 0, 0, 0, 0)));	/* no id */

	assert_true(hit(&r[1], mk(-1, 0, "SCHANNEL", "system", 0, 0)));
	assert_true(hit(&r[1], mk(-1, 0, "ls user services", "System", 0, 0)));
	assert_false(hit(&r[1], mk(-1, 0, "Schannel", "Application", 0, 0)));
	assert_false(hit(&r[1], mk(-1, 0, "Schannel", NULL, 0, 0)));
	assert_false(hit(&r[1], mk(-1, 0, NULL, "System", 0, 0)));

	assert_true(hit(&r[2], mk(-1, "fe01", 0, 0, "warning", 0)));
	assert_false(hit(&r[2], mk(-1, "fe001", 0, 0, "warning", 0)));
	assert_false(hit(&r[2], mk(-1, "fe01", 0, 0, "error", 0)));

	assert_true(hit(&r[3], mk(-1, 0, 0, 0, 0, "ignore error 0x80092013:")));
	assert_true(hit(&r[3], mk(-1, 0, 0, 0, 0, "revocation list Offline")));
	assert_false(hit(&r[3], mk(-1, 0, 0, 0, 0, "0x80092012")));
	assert_false(hit(&r[3], mk(-1, 0, 0, 0, 0, NULL)));

	assert_true(hit(&r[4], mk(1, "h", 0, 0, "warning", 0)));
	assert_true(hit(&r[4], mk(-1, "h", "X", 0, 0, "say hello")));
	assert_false(hit(&r[4], mk(-1, "h", "X", 0, 0, "bye")));
	assert_false(hit(&r[4], mk(1, "badhost", 0, 0, 0, 0)));
	assert_false(hit(&r[4], mk(1, "h", 0, 0, "error", 0)));

	assert_true(hit(&r[5], mk(-1, 0, 0, 0, 0, 0)));
	config_free(cfg);
}

static void test_first_all(void **state)
{
	const char *rules = "  rules:\n"
			    "    - { name: a, event_id: 1 }\n"
			    "    - { name: b, event_id: '1-5' }\n"
			    "    - { name: c }\n";
	char *yf = xasprintf("events:\n  match: first\n%s", rules);
	char *ya = xasprintf("events:\n  match: all\n%s", rules);
	struct config *first = cfg_of(yf), *all = cfg_of(ya);
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	struct ev_event e = mk(1, 0, 0, 0, 0, 0);
	size_t hits[3];

	(void)state;
	assert_int_equal(ev_rules_match(first->events, &e, md, hits), 1);
	assert_int_equal(hits[0], 0);
	assert_int_equal(ev_rules_match(all->events, &e, md, hits), 3);
	assert_int_equal(hits[2], 2);
	e = mk(3, 0, 0, 0, 0, 0);
	assert_int_equal(ev_rules_match(first->events, &e, md, hits), 1);
	assert_int_equal(hits[0], 1);
	assert_int_equal(ev_rules_match(all->events, &e, md, hits), 2);
	pcre2_match_data_free(md);
	config_free(first);
	config_free(all);
	xfree(yf);
	xfree(ya);
}

/* The shipped rules, as they are, against every corpus line. */
static void test_default_rules(void **state)
{
	static const struct {
		const char *file;
		const char *want;	/* rule names per line, "-" none, "!"
					   parse error */
	} files[] = {
		{"nxlog-im_msvistalog.jsonl",
		 "fabric_crl_offline fabric_crl_offline lync_startup_delayed "
		 "lync_33019 schannel_fatal_alert schannel_no_common_cipher "
		 "schannel_ca_list_truncated !"},
		{"winlogbeat-8.ndjson",
		 "fabric_crl_offline fabric_crl_offline lync_startup_delayed "
		 "schannel_fatal_alert schannel_no_common_cipher "
		 "schannel_ca_list_truncated"},
		{"snare-over-syslog.log",
		 "fabric_crl_offline fabric_crl_offline lync_startup_delayed "
		 "schannel_fatal_alert schannel_no_common_cipher "
		 "fabric_crl_offline"},
		{"rfc5424.log",
		 "fabric_crl_offline fabric_crl_offline lync_startup_delayed "
		 "lync_33019 schannel_fatal_alert schannel_no_common_cipher "
		 "schannel_ca_list_truncated"},
		{"rfc3164.log",
		 "fabric_crl_offline fabric_crl_offline lync_startup_delayed "
		 "schannel_fatal_alert schannel_no_common_cipher "
		 "schannel_ca_list_truncated -"},
	};
	const char *src = getenv("PKI_SOURCE_DIR");
	const char *corpus = getenv("PKI_CORPUS");
	char *yaml = xasprintf("events:\n  rules_file: %s/events/default-rules.yml\n",
			       src ? src : ".");
	struct config *cfg = cfg_of(yaml);
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	struct ev_input_cfg in;

	(void)state;
	memset(&in, 0, sizeof(in));
	in.format = EV_FMT_AUTO;
	assert_int_equal(cfg->events->nrules, 7);
	for (size_t f = 0; f < sizeof(files) / sizeof(*files); f++) {
		char path[1024], *line = NULL;
		size_t cap = 0;
		ssize_t n;
		struct buf got;
		FILE *fp;

		snprintf(path, sizeof(path), "%s/events/%s",
			 corpus ? corpus : "../shared/corpus", files[f].file);
		fp = fopen(path, "r");
		assert_non_null(fp);
		buf_init(&got, 4096);
		while ((n = getline(&line, &cap, fp)) > 0) {
			struct ev_parser p;
			struct ev_event e;
			size_t hits[16], k;

			if (line[n - 1] == '\n')
				line[--n] = '\0';
			ev_parser_init(&p);
			if (got.len)
				buf_putc(&got, ' ');
			if (ev_parse_line(&in, &p, line, (size_t)n, NULL, &e)) {
				buf_putc(&got, '!');
			} else {
				k = ev_rules_match(cfg->events, &e, md, hits);
				buf_puts(&got,
					 k ? cfg->events->rules[hits[0]].name
					   : "-");
			}
			ev_parser_cleanup(&p);
		}
		free(line);
		fclose(fp);
		if (strcmp(got.data, files[f].want) != 0)
			fail_msg("%s:\n got %s\nwant %s", files[f].file,
				 got.data, files[f].want);
		buf_cleanup(&got);
	}
	pcre2_match_data_free(md);
	config_free(cfg);
	xfree(yaml);
}

/* ---- the counter store ---- */

static char *render(struct ev_store *st)
{
	struct expo_set set;
	struct buf out;

	expo_set_init(&set, 1 << 20);
	ev_store_emit(st, &set);
	buf_init(&out, 1 << 20);
	assert_int_equal(expo_render(&set, &out), 0);
	expo_set_cleanup(&set);
	return buf_steal(&out, NULL);
}

static void test_store(void **state)
{
	struct config *cfg = cfg_of(
		"events:\n"
		"  inputs: [ { syslog: 'udp://127.0.0.1:1', name: in1 } ]\n"
		"  rules:\n"
		"    - { name: capped, max_series: 2, labels: { team: uc } }\n"
		"    - { name: other }\n");
	struct config *cfg2 = cfg_of(
		"events:\n"
		"  inputs: [ { syslog: 'udp://127.0.0.1:1', name: in1 },\n"
		"            { syslog: 'udp://127.0.0.1:2', name: in2 } ]\n"
		"  rules:\n"
		"    - { name: new }\n"
		"    - { name: capped, max_series: 2 }\n");
	struct ev_store *st = ev_store_new();
	struct ev_group *g[2];
	struct ev_instat *in[2];
	struct ev_event e;
	char *text;

	(void)state;
	assert_int_equal(ev_store_configure(st, cfg->events, g, in), 0);
	e = mk(4097, "a", "S", 0, "warning", 0);
	ev_store_count(st, g[0], in[0], &e, 100);
	ev_store_count(st, g[0], in[0], &e, 101);
	e = mk(4097, "b\"q\\\nx", "S", 0, "warning", 0);
	ev_store_count(st, g[0], in[0], &e, 102);
	/* third and fourth label sets: over the cap, folded */
	e = mk(1, "c", "S", 0, 0, 0);
	ev_store_count(st, g[0], in[0], &e, 103);
	e = mk(-1, "d", 0, 0, 0, 0);
	ev_store_count(st, g[0], in[0], &e, 104);
	ev_store_count(st, g[1], in[0], &e, 105);
	in[0]->lines = 7;
	text = render(st);
	assert_non_null(strstr(
		text, "pki_events_total{rule=\"capped\",host=\"a\",source=\"S\","
		      "event_id=\"4097\",level=\"warning\",team=\"uc\"} 2\n"));
	/* quote, backslash and newline escaped */
	assert_non_null(strstr(text, "host=\"b\\\"q\\\\\\nx\""));
	assert_non_null(strstr(
		text, "pki_events_total{rule=\"capped\",host=\"__other__\","
		      "source=\"__other__\",event_id=\"__other__\",level=\"__"
		      "other__\",team=\"uc\"} 2\n"));
	assert_non_null(strstr(
		text, "pki_events_total{rule=\"other\",host=\"d\",source=\"\","
		      "event_id=\"\",level=\"\"} 1\n"));
	assert_non_null(strstr(text, "pki_events_dropped_total{input=\"in1\","
				     "reason=\"cardinality\"} 2\n"));
	assert_non_null(strstr(text, "pki_events_last_timestamp_seconds{rule="
				     "\"capped\",host=\"__other__\"} 104\n"));
	assert_non_null(strstr(text, "pki_events_last_timestamp_seconds{rule="
				     "\"capped\",host=\"a\"} 101\n"));
	assert_non_null(strstr(text, "pki_events_input_lines_total{input="
				     "\"in1\"} 7\n"));
	/* not a TCP input: no connections gauge */
	assert_null(strstr(text, "pki_events_input_connections"));
	xfree(text);

	/* reload: counts of kept names survive, removed ones go, static
	 * labels follow the new rule */
	assert_int_equal(ev_store_configure(st, cfg2->events, g, in), 0);
	e = mk(4097, "a", "S", 0, "warning", 0);
	ev_store_count(st, g[1], in[0], &e, 200);
	text = render(st);
	assert_non_null(strstr(
		text, "pki_events_total{rule=\"capped\",host=\"a\",source=\"S\","
		      "event_id=\"4097\",level=\"warning\"} 3\n"));
	assert_null(strstr(text, "rule=\"other\""));
	assert_non_null(strstr(text, "pki_events_input_lines_total{input="
				     "\"in1\"} 7\n"));
	assert_non_null(strstr(text, "pki_events_input_lines_total{input="
				     "\"in2\"} 0\n"));
	/* rules in configuration order */
	assert_true(strstr(text, "pki_events_input_up{input=\"in1\"}") <
		    strstr(text, "pki_events_input_up{input=\"in2\"}"));
	xfree(text);

	/* nothing configured: everything goes */
	assert_int_equal(ev_store_configure(st, NULL, g, in), 0);
	text = render(st);
	assert_string_equal(text, "");
	xfree(text);
	ev_store_free(st);
	config_free(cfg);
	config_free(cfg2);
}

/* Many series: the hash table grows, every series stays findable. */
static void test_store_many(void **state)
{
	struct config *cfg = cfg_of("events:\n  rules: [ { name: r, "
				    "max_series: 5000 } ]\n");
	struct ev_store *st = ev_store_new();
	struct ev_group *g[1];
	struct ev_instat *in[1] = {NULL};
	char host[32], *text;

	(void)state;
	assert_int_equal(ev_store_configure(st, cfg->events, g, in), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3000; i++) {
			struct ev_event e;

			snprintf(host, sizeof(host), "h%d", i);
			e = mk(1, host, "s", 0, 0, 0);
			ev_store_count(st, g[0], NULL, &e, 1);
		}
	}
	text = render(st);
	assert_non_null(strstr(text, "host=\"h0\",source=\"s\",event_id=\"1\","
				     "level=\"\"} 2\n"));
	assert_non_null(strstr(text, "host=\"h2999\",source=\"s\",event_id="
				     "\"1\",level=\"\"} 2\n"));
	assert_null(strstr(text, "__other__"));
	xfree(text);
	ev_store_free(st);
	config_free(cfg);
}

/* Fail the 1st, 2nd, ... allocation of a load in turn: an error or a
 * success, never a crash or a leak (ASan). */
static void test_alloc_failures(void **state)
{
	const char *src = getenv("PKI_SOURCE_DIR");
	char *yaml = xasprintf(
		"events:\n"
		"  state_file: s.json\n"
		"  inputs:\n"
		"    - { syslog: 'tcp://127.0.0.1:5514', name: t }\n"
		"    - { file: x.log, format: plain, pattern: "
		"'(?<host>\\S+) (?<message>.*)' }\n"
		"  rules:\n"
		"    - { name: a, event_id: [1, '2-3'], source: x, message: y, "
		"labels: { l: v }, any: [ { host: h } ], exclude: { level: "
		"error } }\n"
		"  rules_file: %s/events/default-rules.yml\n",
		src ? src : ".");
	char *path = write_file("torture.yml", yaml);
	bool ok = false;

	(void)state;
	/* process-wide contexts first, outside the injection */
	ev_pcre2_gctx();
	ev_json_init();
	for (unsigned long n = 1; n < 20000 && !ok; n++) {
		struct config *cfg = NULL;
		struct errbuf eb;
		int rc;

		errbuf_init(&eb, NULL);
		xalloc_fail_after(n);
		rc = config_load(path, &cfg, &eb);
		xalloc_fail_after(0);
		if (rc == 0) {
			struct ev_store *st = ev_store_new();
			struct ev_group *g[8];
			struct ev_instat *in[2];

			ok = true;
			assert_non_null(st);
			/* and the store under failures too */
			xalloc_fail_after(n % 7 + 1);
			if (ev_store_configure(st, cfg->events, g, in) == 0) {
				struct ev_event e = mk(1, "h", "x", 0, 0, "y");

				ev_store_count(st, g[0], in[0], &e, 1);
			}
			xalloc_fail_after(0);
			ev_store_free(st);
		} else {
			assert_null(cfg);
		}
		config_free(cfg);
		errbuf_cleanup(&eb);
	}
	assert_true(ok);
	xfree(path);
	xfree(yaml);
}

/* A reload that runs out of memory in the store must not leave groups
 * that point into the previous configuration (freed right after). */
static void test_store_reload_nomem(void **state)
{
	struct config *cfg = cfg_of("events:\n  rules: [ { name: a, labels: "
				    "{ team: uc } } ]\n");
	/* more rules than the store has room for: its first allocation */
	struct config *cfg2 = cfg_of("events:\n  rules: [ { name: a }, { name: "
				     "b }, { name: c }, { name: d }, { name: "
				     "e }, { name: f }, { name: g }, { name: "
				     "h } ]\n");
	struct ev_store *st = ev_store_new();
	struct ev_group *g[8];
	struct ev_instat *in[1];
	struct ev_event e = mk(1, "h", "s", 0, 0, 0);
	char *text;
	int rc;

	(void)state;
	assert_int_equal(ev_store_configure(st, cfg->events, g, in), 0);
	ev_store_count(st, g[0], NULL, &e, 1);
	for (unsigned long n = 1; n < 50; n++) {
		xalloc_fail_after(n);
		rc = ev_store_configure(st, cfg2->events, g, in);
		xalloc_fail_after(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		/* the old rules may go now: nothing may point into them */
		config_free(cfg);
		cfg = NULL;
		text = render(st);
		assert_null(strstr(text, "team"));
		xfree(text);
	}
	assert_int_equal(rc, 0);
	ev_store_free(st);
	config_free(cfg);
	config_free(cfg2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_good),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_rules_file),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_first_all),
		cmocka_unit_test(test_default_rules),
		cmocka_unit_test(test_store),
		cmocka_unit_test(test_store_many),
		cmocka_unit_test(test_store_reload_nomem),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
