/* Plain text read with the input's PCRE2 pattern. Named groups host,
 * source, channel, level, event_id and message fill the event's fields
 * (unknown group names are refused when the configuration is loaded). A
 * line the pattern does not match is a parse error; without a message
 * group the whole line is the message. */
#include <errno.h>
#include <string.h>

#include "events/events_int.h"

/* Copy a capture into a bounded NUL-terminated field. */
static const char *capture(char *dst, size_t cap, const char *line,
			   PCRE2_SIZE a, PCRE2_SIZE b)
{
	size_t n = b - a;

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, line + a, n);
	dst[n] = '\0';
	return dst;
}

int ev_parse_plain(const struct ev_input_cfg *in, struct ev_parser *p,
		   char *line, size_t len, struct ev_event *ev)
{
	PCRE2_SIZE *ov;
	int rc;

	if (!in->pattern.code)
		return -EINVAL;
	if (!p->md || p->md_code != in->pattern.code) {
		pcre2_match_data_free(p->md);
		p->md = pcre2_match_data_create_from_pattern(in->pattern.code,
							     ev_pcre2_gctx());
		p->md_code = p->md ? in->pattern.code : NULL;
		if (!p->md)
			return -ENOMEM;
	}
	rc = pcre2_match(in->pattern.code, (PCRE2_SPTR)line, len, 0, 0, p->md,
			 ev_pcre2_mctx());
	if (rc < 0)
		return -EINVAL;
	ov = pcre2_get_ovector_pointer(p->md);
	ev->message = line;
	ev->message_len = len;
	for (int f = 0; f < EV_F_MAX; f++) {
		int g = in->groups[f];
		PCRE2_SIZE a, b;
		const char *v;

		if (g < 0 || (uint32_t)g >= pcre2_get_ovector_count(p->md))
			continue;
		a = ov[2 * g];
		b = ov[2 * g + 1];
		if (a == PCRE2_UNSET || b < a)
			continue;
		switch ((enum ev_field)f) {
		case EV_F_MESSAGE:
			ev->message = line + a;
			ev->message_len = b - a;
			break;
		case EV_F_HOST:
			ev_set_host(p, ev, line + a, b - a);
			break;
		case EV_F_LEVEL:
			ev->level = ev_level_norm(line + a, b - a, p->level,
						  sizeof(p->level));
			break;
		case EV_F_EVENT_ID:
			ev->has_id = ev_parse_id(line + a, b - a,
						 &ev->event_id);
			break;
		case EV_F_SOURCE:
		case EV_F_CHANNEL:
			v = capture(p->fields[f], sizeof(p->fields[f]), line,
				    a, b);
			if (!*v)
				break;
			if (f == EV_F_SOURCE)
				ev->source = v;
			else
				ev->channel = v;
			break;
		case EV_F_MAX:
			break;
		}
	}
	return 0;
}
