/* Line parsing: the format dispatch and helpers shared by the parsers. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "events/events_int.h"
#include "exporter/xalloc.h"

const char *ev_format_str(enum ev_format f)
{
	switch (f) {
	case EV_FMT_AUTO:
		return "auto";
	case EV_FMT_JSON:
		return "json";
	case EV_FMT_SNARE:
		return "snare";
	case EV_FMT_PLAIN:
		return "plain";
	case EV_FMT_RFC5424:
		return "rfc5424";
	case EV_FMT_RFC3164:
		return "rfc3164";
	}
	return "unknown";
}

const char *ev_field_str(enum ev_field f)
{
	static const char *const names[EV_F_MAX] = {
		"host", "source", "channel", "level", "event_id", "message",
	};

	return f >= 0 && f < EV_F_MAX ? names[f] : "unknown";
}

void ev_parser_init(struct ev_parser *p)
{
	memset(p, 0, sizeof(*p));
}

void ev_parser_reset(struct ev_parser *p)
{
	if (p->root) {
		ev_json_release(p->root, p->root_spilled);
		p->root = NULL;
	}
}

void ev_parser_cleanup(struct ev_parser *p)
{
	ev_parser_reset(p);
	pcre2_match_data_free(p->md);
	p->md = NULL;
	p->md_code = NULL;
}

/* Windows levels under the names the shippers use: NXLog's EventType and
 * Severity (WARNING, INFO, AUDIT_SUCCESS), Winlogbeat's log.level
 * (warning, information), Snare's event log type (Warning, Success Audit)
 * and syslog keywords. One label value per level, whatever the shipper. */
static const struct {
	const char *in, *out;
} level_names[] = {
	{"critical", "critical"},
	{"crit", "critical"},
	{"fatal", "critical"},
	{"emergency", "critical"},
	{"emerg", "critical"},
	{"alert", "critical"},
	{"error", "error"},
	{"err", "error"},
	{"warning", "warning"},
	{"warn", "warning"},
	{"information", "information"},
	{"informational", "information"},
	{"info", "information"},
	{"notice", "information"},
	{"verbose", "verbose"},
	{"debug", "verbose"},
	{"trace", "verbose"},
	{"audit_success", "audit_success"},
	{"success audit", "audit_success"},
	{"audit success", "audit_success"},
	{"auditsuccess", "audit_success"},
	{"audit_failure", "audit_failure"},
	{"failure audit", "audit_failure"},
	{"audit failure", "audit_failure"},
	{"auditfailure", "audit_failure"},
};

/* Normalise a level: a known name (any case) gives its canonical static
 * string; anything else is lower-cased into scratch (cap bytes, [a-z0-9_]
 * only, so a sender cannot grow the label's alphabet). n == 0 gives NULL. */
const char *ev_level_norm(const char *s, size_t n, char *scratch, size_t cap)
{
	size_t k = 0;

	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (!n)
		return NULL;
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++)
		if (strlen(level_names[i].in) == n &&
		    strncasecmp(level_names[i].in, s, n) == 0)
			return level_names[i].out;
	if (cap == 0)
		return NULL;
	for (size_t i = 0; i < n && k + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		scratch[k++] = isalnum(c) && c < 0x80 ? (char)tolower(c) : '_';
	}
	scratch[k] = '\0';
	return scratch;
}

/* RFC 5424 severities 0..7 as Windows levels. */
const char *ev_level_from_syslog(int severity)
{
	switch (severity) {
	case 0:
	case 1:
	case 2:
		return "critical";
	case 3:
		return "error";
	case 4:
		return "warning";
	case 5:
	case 6:
		return "information";
	case 7:
		return "verbose";
	}
	return NULL;
}

/* Decimal event id in [0, 2^32), surrounding blanks allowed. */
bool ev_parse_id(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && isspace((unsigned char)s[i]))
		i++;
	while (n > i && isspace((unsigned char)s[n - 1]))
		n--;
	if (i == n || n - i > 10)
		return false;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Host names are case-insensitive (Windows sends FE01 and fe01 alike):
 * the label is lower-cased, at most EV_HOST_MAX bytes, "-" means none. */
void ev_set_host(struct ev_parser *p, struct ev_event *ev, const char *s,
		 size_t n)
{
	size_t k = 0;

	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (!n || (n == 1 && *s == '-'))
		return;
	for (; k < n && k < EV_HOST_MAX && s[k]; k++)
		p->host[k] = (char)tolower((unsigned char)s[k]);
	p->host[k] = '\0';
	/* EV_OTHER names the overflow series past a rule's max_series: a
	 * sender calling itself that must not collide with it */
	if (strcmp(p->host, EV_OTHER) == 0)
		snprintf(p->host, EV_HOST_MAX + 1, "%s(sender)", EV_OTHER);
	ev->host = p->host;
}

int ev_parse_line(const struct ev_input_cfg *in, struct ev_parser *p,
		  char *line, size_t len, const char *peer,
		  struct ev_event *ev)
{
	int rc;

	memset(ev, 0, sizeof(*ev));
	/* a UTF-8 byte-order mark at the start of a file or datagram */
	if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		len -= 3;
	}
	switch (in->format) {
	case EV_FMT_JSON:
		rc = ev_parse_json(p, line, len, ev);
		break;
	case EV_FMT_SNARE:
		rc = ev_parse_snare(p, line, len, ev);
		break;
	case EV_FMT_PLAIN:
		rc = ev_parse_plain(in, p, line, len, ev);
		break;
	case EV_FMT_RFC5424:
	case EV_FMT_RFC3164:
		rc = ev_parse_syslog(p, line, len, in->format, ev);
		break;
	case EV_FMT_AUTO:
	default:
		if (memmem(line, len, "MSWinEventLog\t", 14))
			rc = ev_parse_snare(p, line, len, ev);
		else if (len && line[0] == '{')
			rc = ev_parse_json(p, line, len, ev);
		else
			rc = ev_parse_syslog(p, line, len, EV_FMT_AUTO, ev);
		break;
	}
	if (rc == 0 && !ev->host && peer)
		ev_set_host(p, ev, peer, strlen(peer));
	return rc;
}
