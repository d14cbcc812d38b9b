/* Snare "MSWinEventLog" lines, TAB-delimited, with or without a syslog
 * header in front:
 *
 *   [<PRI>Mmm dd hh:mm:ss ]host<TAB or SP>MSWinEventLog<TAB>criticality
 *   <TAB>log name<TAB>snare counter<TAB>date<TAB>event id<TAB>source
 *   <TAB>user<TAB>SID type<TAB>event log type<TAB>computer<TAB>category
 *   <TAB>data string<TAB>expanded string[<TAB>record counter]
 *
 * Fields are found relative to the token that is or ends with
 * MSWinEventLog (k): k+2 log name, k+5 event id, k+6 source, k+9 type,
 * k+10 computer, k+12 message (k+13 when k+12 is empty). */
#include <errno.h>
#include <string.h>

#include "events/events_int.h"

#define SNARE_MAX_FIELDS 48
#define SNARE_TAG "MSWinEventLog"

static bool ends_with_tag(const char *s)
{
	size_t n = strlen(s), t = sizeof(SNARE_TAG) - 1;

	return n >= t && memcmp(s + n - t, SNARE_TAG, t) == 0 &&
	       (n == t || s[n - t - 1] == ' ');
}

int ev_parse_snare(struct ev_parser *p, char *line, size_t len,
		   struct ev_event *ev)
{
	char *f[SNARE_MAX_FIELDS];
	size_t n = 0, k = SNARE_MAX_FIELDS;
	char *s = line, *end = line + len;
	const char *msg;

	f[n++] = s;
	for (; s < end && n < SNARE_MAX_FIELDS; s++) {
		if (*s == '\t') {
			*s = '\0';
			f[n++] = s + 1;
		}
	}
	*end = '\0';
	for (size_t i = 0; i < n; i++) {
		if (ends_with_tag(f[i])) {
			k = i;
			break;
		}
	}
	if (k == SNARE_MAX_FIELDS || n <= k + 12)
		return -EINVAL;
	if (!ev_parse_id(f[k + 5], strlen(f[k + 5]), &ev->event_id))
		return -EINVAL;
	ev->has_id = true;
	ev->channel = *f[k + 2] ? f[k + 2] : NULL;
	ev->source = *f[k + 6] ? f[k + 6] : NULL;
	ev->level = ev_level_norm(f[k + 9], strlen(f[k + 9]), p->level,
				  sizeof(p->level));
	ev_set_host(p, ev, f[k + 10], strlen(f[k + 10]));
	if (!ev->host) {
		/* the syslog header's host, just before the tag, or the
		 * field before a header-less tag */
		const char *h = f[k];
		size_t hn = strlen(h) - (sizeof(SNARE_TAG) - 1);

		while (hn && h[hn - 1] == ' ')
			hn--;
		if (hn) {
			const char *sp = h + hn;

			while (sp > h && sp[-1] != ' ')
				sp--;
			ev_set_host(p, ev, sp, (size_t)(h + hn - sp));
		} else if (k > 0) {
			ev_set_host(p, ev, f[k - 1], strlen(f[k - 1]));
		}
	}
	msg = f[k + 12];
	if (!*msg && n > k + 13)
		msg = f[k + 13];
	ev->message = msg;
	ev->message_len = strlen(msg);
	return 0;
}
