/* Syslog: RFC 5424 (with structured data) and BSD / RFC 3164.
 *
 * RFC 5424:  <PRI>1 TIMESTAMP HOST APP-NAME PROCID MSGID SD [MSG]
 *   SD params carry what the header cannot (NXLog's to_syslog_ietf puts
 *   EventID, EventType, Channel, SourceName in SD-ID NXLOG@14506); any
 *   SD element is searched, names compared without case.
 * RFC 3164:  [<PRI>][TIMESTAMP ]HOST TAG[PID]: MSG
 *   as relays really send it: PRI may be missing, the day space-padded,
 *   the timestamp RFC 3339, the TAG may contain spaces ("LS User
 *   Services:"), HOST may be missing (the token is then the TAG). No event
 *   id: rules match on TAG (source) and message.
 * With format auto, a MSG that is a JSON object is read as JSON (NXLog
 * to_json() behind a syslog header); the header supplies the host when
 * the JSON has none. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "events/events_int.h"

/* <PRI>: returns the severity (0..7) and advances *s, or -1 if absent,
 * -2 if malformed. */
static int parse_pri(char **s, char *end)
{
	char *q = *s;
	int pri = 0, digits = 0;

	if (q >= end || *q != '<')
		return -1;
	for (q++; q < end && *q >= '0' && *q <= '9' && digits < 3; q++) {
		pri = pri * 10 + (*q - '0');
		digits++;
	}
	if (!digits || q >= end || *q != '>' || pri > 191)
		return -2;
	*s = q + 1;
	return pri & 7;
}

/* A space-delimited token: NUL-terminated in place, *s moves past the
 * single space after it. NULL when the line ends before the token. */
static char *token(char **s, char *end)
{
	char *t = *s, *q = *s;

	if (q >= end)
		return NULL;
	while (q < end && *q != ' ')
		q++;
	if (q == t)
		return NULL;
	if (q < end) {
		*q = '\0';
		*s = q + 1;
	} else {
		*q = '\0';	/* *end is writable by contract */
		*s = end;
	}
	return t;
}

static void set_msg(struct ev_event *ev, char *m, char *end)
{
	if (end - m >= 3 && memcmp(m, "\xef\xbb\xbf", 3) == 0)
		m += 3;	/* RFC 5424 BOM before MSG */
	*end = '\0';
	ev->message = m;
	ev->message_len = (size_t)(end - m);
}

/* One SD param by name: the fields of an event. */
static void sd_param(struct ev_parser *p, struct ev_event *ev,
		     const char *name, char *val, size_t n, bool *have_level)
{
	if (strcasecmp(name, "EventID") == 0 ||
	    strcasecmp(name, "event_id") == 0 ||
	    strcasecmp(name, "EventCode") == 0) {
		if (!ev->has_id)
			ev->has_id = ev_parse_id(val, n, &ev->event_id);
	} else if (strcasecmp(name, "EventType") == 0 ||
		   strcasecmp(name, "Severity") == 0 ||
		   strcasecmp(name, "Level") == 0) {
		if (!*have_level) {
			ev->level = ev_level_norm(val, n, p->level,
						  sizeof(p->level));
			*have_level = ev->level != NULL;
		}
	} else if (strcasecmp(name, "Channel") == 0 ||
		   strcasecmp(name, "LogName") == 0) {
		if (!ev->channel && n)
			ev->channel = val;
	} else if (strcasecmp(name, "SourceName") == 0 ||
		   strcasecmp(name, "ProviderName") == 0 ||
		   strcasecmp(name, "Provider") == 0) {
		if (!ev->source && n)
			ev->source = val;
	}
}

/* STRUCTURED-DATA at *s: "-" or [id param="value"...]... Values are
 * unescaped in place (\" \\ \]) and NUL-terminated. */
static int parse_sd(struct ev_parser *p, struct ev_event *ev, char **s,
		    char *end, bool *have_level)
{
	char *q = *s;

	if (q < end && *q == '-') {
		*s = q + 1;
		return 0;
	}
	if (q >= end || *q != '[')
		return -EINVAL;
	while (q < end && *q == '[') {
		q++;
		/* SD-ID */
		while (q < end && *q != ' ' && *q != ']' && *q != '=' &&
		       *q != '"')
			q++;
		for (;;) {
			char *name, *val, *w;

			if (q >= end)
				return -EINVAL;
			if (*q == ']') {
				q++;
				break;
			}
			if (*q != ' ')
				return -EINVAL;
			q++;
			name = q;
			while (q < end && *q != '=' && *q != ' ' &&
			       *q != ']' && *q != '"')
				q++;
			if (q >= end || *q != '=' || q == name ||
			    q + 1 >= end || q[1] != '"')
				return -EINVAL;
			*q = '\0';
			q += 2;
			val = w = q;
			while (q < end && *q != '"') {
				if (*q == '\\' && q + 1 < end &&
				    (q[1] == '"' || q[1] == '\\' ||
				     q[1] == ']')) {
					*w++ = q[1];
					q += 2;
				} else {
					*w++ = *q++;
				}
			}
			if (q >= end)
				return -EINVAL;
			q++;	/* the closing quote; w <= q - 1 */
			*w = '\0';
			sd_param(p, ev, name, val, (size_t)(w - val),
				 have_level);
		}
	}
	*s = q;
	return 0;
}

static int parse_5424(struct ev_parser *p, char *s, char *end, int sev,
		      struct ev_event *ev)
{
	char *ts, *host, *app, *procid, *msgid;
	bool have_level = false;

	s += 2;	/* "1 " */
	ts = token(&s, end);
	host = token(&s, end);
	app = token(&s, end);
	procid = token(&s, end);
	msgid = token(&s, end);
	if (!ts || !host || !app || !procid || !msgid)
		return -EINVAL;
	if (parse_sd(p, ev, &s, end, &have_level))
		return -EINVAL;
	if (s < end && *s != ' ')
		return -EINVAL;
	if (s < end)
		s++;
	set_msg(ev, s, end);
	ev_set_host(p, ev, host, strlen(host));
	if (!ev->source && strcmp(app, "-") != 0)
		ev->source = app;
	if (!have_level)
		ev->level = ev_level_from_syslog(sev);
	return 0;
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
				     "May", "Jun", "Jul", "Aug",
				     "Sep", "Oct", "Nov", "Dec"};

/* "Mmm dd hh:mm:ss[.frac] " or an RFC 3339 stamp and its space. */
static bool skip_timestamp(char **s, char *end)
{
	char *q = *s;
	bool month = false;

	if (end - q >= 16) {
		for (size_t i = 0; i < 12; i++)
			if (memcmp(q, months[i], 3) == 0)
				month = true;
	}
	if (month && q[3] == ' ') {
		q += 4;
		if (*q == ' ')
			q++;
		if (q < end && *q >= '0' && *q <= '9')
			q++;
		if (q < end && *q >= '0' && *q <= '9')
			q++;
		if (end - q < 10 || *q != ' ')
			return false;
		q++;
		for (int i = 0; i < 8; i++) {
			char c = q[i];

			if (i == 2 || i == 5 ? c != ':' : c < '0' || c > '9')
				return false;
		}
		q += 8;
		if (q < end && *q == '.')
			while (q < end && *q != ' ')
				q++;
		if (q >= end || *q != ' ')
			return false;
		*s = q + 1;
		return true;
	}
	/* 2025-01-08T09:12:44.123+01:00 */
	if (end - q >= 20 && q[4] == '-' && q[7] == '-' && q[10] == 'T') {
		while (q < end && *q != ' ')
			q++;
		if (q >= end)
			return false;
		*s = q + 1;
		return true;
	}
	return false;
}

/* TAG[PID]: or TAG: at s (TAG may hold spaces, up to 64 bytes). Sets the
 * source and returns where MSG starts; s itself when there is no tag. */
static char *parse_tag(struct ev_event *ev, char *s, char *end)
{
	char *q = s, *lim = end - s > 64 ? s + 64 : end;

	for (; q < lim; q++) {
		if (*q == '[') {
			char *r = q + 1;

			while (r < end && *r != ']' && r - q < 24)
				r++;
			if (r >= end || *r != ']' || q == s)
				return s;
			*q = '\0';
			ev->source = s;
			r++;
			if (r < end && *r == ':')
				r++;
			if (r < end && *r == ' ')
				r++;
			return r;
		}
		if (*q == ':' && (q + 1 == end || q[1] == ' ')) {
			if (q == s)
				return s;
			*q = '\0';
			ev->source = s;
			return q + 1 < end ? q + 2 : end;
		}
	}
	return s;
}

static int parse_3164(struct ev_parser *p, char *s, char *end, int sev,
		      struct ev_event *ev)
{
	bool have_ts = skip_timestamp(&s, end);

	if (sev >= 0 || have_ts) {
		/* HOST, unless the next token is already the TAG */
		char *q = s;

		while (q < end && *q != ' ')
			q++;
		if (q > s && q < end && q[-1] != ':' &&
		    !memchr(s, '[', (size_t)(q - s))) {
			ev_set_host(p, ev, s, (size_t)(q - s));
			s = q + 1;
		}
		s = parse_tag(ev, s, end);
	}
	set_msg(ev, s, end);
	ev->level = ev_level_from_syslog(sev);
	return 0;
}

/* A JSON object in MSG (format auto): its fields win, the header's host
 * stays when the object has none. A MSG that is not valid JSON is kept as
 * text: the syslog line itself was fine. */
static void nested_json(struct ev_parser *p, struct ev_event *ev)
{
	struct ev_event j;
	char host[EV_HOST_MAX + 1];
	bool had_host = ev->host != NULL;

	if (!ev->message || ev->message[0] != '{')
		return;
	if (had_host)
		memcpy(host, p->host, sizeof(host));
	memset(&j, 0, sizeof(j));
	if (ev_parse_json(p, ev->message, ev->message_len, &j)) {
		ev_parser_reset(p);
		if (had_host)
			memcpy(p->host, host, sizeof(host));
		return;
	}
	if (!j.host && had_host) {
		memcpy(p->host, host, sizeof(host));
		j.host = p->host;
	}
	/* the header's fields stay valid: the JSON parser made a copy, and
	 * p->level is only written when the JSON has a level */
	if (!j.level)
		j.level = ev->level;
	if (!j.source)
		j.source = ev->source;
	*ev = j;
}

int ev_parse_syslog(struct ev_parser *p, char *line, size_t len,
		    enum ev_format want, struct ev_event *ev)
{
	char *s = line, *end = line + len;
	int sev = parse_pri(&s, end);
	int rc;

	if (sev == -2)
		return -EINVAL;
	if (sev >= 0 && want != EV_FMT_RFC3164 && end - s >= 2 && s[0] == '1' &&
	    s[1] == ' ')
		rc = parse_5424(p, s, end, sev, ev);
	else if (want == EV_FMT_RFC5424)
		return -EINVAL;
	else
		rc = parse_3164(p, s, end, sev, ev);
	if (rc == 0 && want == EV_FMT_AUTO)
		nested_json(p, ev);
	return rc;
}
