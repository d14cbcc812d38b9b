/* libFuzzer: one forwarded-event line through the events path. The first
 * byte picks the format (auto, json, snare, plain, rfc5424, rfc3164), the
 * rest is the line: parse, match the shipped rules (all-match, so every
 * rule runs), count into a store with a small cardinality cap, render the
 * exposition. Invariants: fields are bounded, the exposition has no raw
 * newline inside a sample and no unescaped quote in a label value. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/events_int.h"
#include "exporter/config.h"
#include "exporter/expo.h"
#include "exporter/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config *cfg;
static struct ev_input_cfg plain;
static struct ev_store *store;
static struct ev_group *groups[64];
static struct ev_instat *instats[1];
static pcre2_match_data *md;

static const char RULES[] =
	"events:\n"
	"  match: all\n"
	"  max_series: 8\n"
	"  inputs: [ { syslog: 'udp://127.0.0.1:5514', name: in } ]\n"
	"  rules:\n"
	"    - name: fabric_crl_offline\n"
	"      message: '0x80092013|revocation list offline|0x1000040'\n"
	"      any: [ { event_id: 4097 }, { source: ['*WindowsFabric*'] } ]\n"
	"    - { name: schannel, source: [Schannel], event_id: '36870-36888' }\n"
	"    - { name: lync, event_id: [32174, 33019], labels: { team: uc } }\n"
	"    - { name: warn_fe, level: WARN, host: 'fe*', exclude: { channel: "
	"'x*' } }\n"
	"    - { name: catch_all }\n";

static void init(void)
{
	struct errbuf eb;
	char err[256];

	errbuf_init(&eb, NULL);
	if (config_load_text("fuzz.yml", RULES, sizeof(RULES) - 1, &cfg, &eb))
		abort();
	errbuf_cleanup(&eb);
	plain.format = EV_FMT_PLAIN;
	plain.pattern.code = ev_regex_compile(
		"^(?<host>\\S+) (?<source>\\S+) (?<event_id>\\d+) (?<level>\\w+) "
		"(?<channel>[^:]*): (?<message>.*)$",
		err, sizeof(err));
	if (!plain.pattern.code)
		abort();
	plain.groups[EV_F_HOST] = 1;
	plain.groups[EV_F_SOURCE] = 2;
	plain.groups[EV_F_EVENT_ID] = 3;
	plain.groups[EV_F_LEVEL] = 4;
	plain.groups[EV_F_CHANNEL] = 5;
	plain.groups[EV_F_MESSAGE] = 6;
	store = ev_store_new();
	if (!store || cfg->events->nrules > 64 ||
	    ev_store_configure(store, cfg->events, groups, instats))
		abort();
	md = pcre2_match_data_create(1, NULL);
}

static void check_exposition(void)
{
	struct expo_set set;
	struct buf out;

	expo_set_init(&set, 1 << 24);
	ev_store_emit(store, &set);
	buf_init(&out, 1 << 24);
	if (expo_render(&set, &out) == 0 && out.data) {
		/* every line: # comment or name{labels} value */
		for (char *l = out.data; *l;) {
			char *nl = strchr(l, '\n');
			bool in = false;

			if (!nl)
				__builtin_trap();	/* ends with LF */
			if (*l != '#') {
				for (char *p = l; p < nl; p++) {
					if (*p == '\\' && in) {
						p++;
						if (*p != '\\' && *p != '"' &&
						    *p != 'n')
							__builtin_trap();
						continue;
					}
					if (*p == '"')
						in = !in;
				}
				if (in)
					__builtin_trap();
			}
			l = nl + 1;
		}
	}
	buf_cleanup(&out);
	expo_set_cleanup(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum ev_format fmts[] = {
		EV_FMT_AUTO,	EV_FMT_JSON,	EV_FMT_SNARE,
		EV_FMT_PLAIN,	EV_FMT_RFC5424, EV_FMT_RFC3164,
	};
	struct ev_input_cfg in;
	struct ev_parser p;
	struct ev_event e;
	size_t hits[64], n;
	char *line;
	static unsigned long runs;

	if (!cfg)
		init();
	if (size < 1 || size > 256 * 1024)
		return 0;
	memset(&in, 0, sizeof(in));
	in.format = fmts[data[0] % 6];
	line = xmalloc(size);	/* size - 1 bytes + the writable byte */
	if (!line)
		return 0;
	memcpy(line, data + 1, size - 1);
	line[size - 1] = '\0';
	ev_parser_init(&p);
	if (ev_parse_line(in.format == EV_FMT_PLAIN ? &plain : &in, &p, line,
			  size - 1, "192.0.2.1", &e) == 0) {
		if (e.host && strlen(e.host) > EV_HOST_MAX)
			__builtin_trap();
		if (e.level && strlen(e.level) > 32)
			__builtin_trap();
		if (e.message && (e.message < line || e.message > line + size) &&
		    !p.root)
			__builtin_trap();	/* points into the line or JSON */
		n = ev_rules_match(cfg->events, &e, md, hits);
		for (size_t i = 0; i < n; i++)
			ev_store_count(store, groups[hits[i]], instats[0], &e, 1);
	}
	ev_parser_cleanup(&p);
	xfree(line);
	if (++runs % 256 == 0)
		check_exposition();
	return 0;
}
