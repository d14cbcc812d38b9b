/* Rules: which events a rule counts.
 *
 * A rule counts an event when
 *   - every condition written at its top level holds (event_id, source,
 *     channel, level, host, message),
 *   - one of its `any:` alternatives holds, when it has any, and
 *   - none of its `exclude:` alternatives holds.
 * Within a condition, one of the listed values suffices. Strings compare
 * without case and may use * and ? wildcards; messages are PCRE2 regexes
 * (searched, not anchored). A condition on a field the event does not
 * carry (no event id in a BSD syslog line) does not hold. */
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "events/events_int.h"
#include "exporter/xalloc.h"

/* PCRE2 is told to allocate through xalloc, so that the allocation-
 * failure tests reach it too. */
static void *pcre_xmalloc(PCRE2_SIZE n, void *data)
{
	(void)data;
	return xmalloc(n);
}

static void pcre_xfree(void *p, void *data)
{
	(void)data;
	xfree(p);
}

static pthread_once_t pcre_once = PTHREAD_ONCE_INIT;
static pcre2_general_context *gctx;
static pcre2_match_context *mctx;

/* Process-wide contexts, made once. Should xalloc fail here (only under
 * failure injection), PCRE2 falls back to its own malloc and its default
 * limits: degraded, never broken. */
static void pcre_init_once(void)
{
	gctx = pcre2_general_context_create(pcre_xmalloc, pcre_xfree, NULL);
	mctx = pcre2_match_context_create(gctx);
	if (mctx) {
		/* a pathological pattern against a 64 KiB line must not stall
		 * the ingest thread: past the limit the regex does not match */
		pcre2_set_match_limit(mctx, 1000000);
		pcre2_set_depth_limit(mctx, 10000);
	}
}

pcre2_general_context *ev_pcre2_gctx(void)
{
	pthread_once(&pcre_once, pcre_init_once);
	return gctx;
}

pcre2_match_context *ev_pcre2_mctx(void)
{
	pthread_once(&pcre_once, pcre_init_once);
	return mctx;
}

pcre2_code *ev_regex_compile(const char *src, char *err, size_t errlen)
{
	pcre2_compile_context *cctx;
	pcre2_code *code;
	int ec;
	PCRE2_SIZE off;

	cctx = pcre2_compile_context_create(ev_pcre2_gctx());
	if (!cctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
			     PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &off,
			     cctx);
	pcre2_compile_context_free(cctx);
	if (!code) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(err, errlen, "at offset %zu: %s", (size_t)off,
			 (const char *)msg);
		return NULL;
	}
	/* no JIT (e.g. SELinux denies executable memory): the interpreter
	 * is used, same results */
	pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	return code;
}

bool ev_glob_match(const struct ev_glob *g, const char *s)
{
	if (!s)
		return false;
	if (!g->wild)
		return strcasecmp(g->pat, s) == 0;
	return fnmatch(g->pat, s, FNM_CASEFOLD) == 0;
}

static bool any_glob(const struct ev_glob *g, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (ev_glob_match(&g[i], s))
			return true;
	return false;
}

static bool matcher_ok(const struct ev_matcher *m, const struct ev_event *ev,
		       pcre2_match_data *md)
{
	if (m->nids) {
		bool hit = false;

		if (!ev->has_id)
			return false;
		for (size_t i = 0; i < m->nids && !hit; i++)
			hit = ev->event_id >= m->ids[i].lo &&
			      ev->event_id <= m->ids[i].hi;
		if (!hit)
			return false;
	}
	if (m->nsources && !any_glob(m->sources, m->nsources, ev->source))
		return false;
	if (m->nchannels && !any_glob(m->channels, m->nchannels, ev->channel))
		return false;
	if (m->nlevels && !any_glob(m->levels, m->nlevels, ev->level))
		return false;
	if (m->nhosts && !any_glob(m->hosts, m->nhosts, ev->host))
		return false;
	if (m->nmessages) {
		const char *msg = ev->message ? ev->message : "";
		bool hit = false;

		for (size_t i = 0; i < m->nmessages && !hit; i++)
			hit = pcre2_match(m->messages[i].code,
					  (PCRE2_SPTR)msg, ev->message_len, 0,
					  0, md, ev_pcre2_mctx()) >= 0;
		if (!hit)
			return false;
	}
	return true;
}

bool ev_rule_match(const struct ev_rule *r, const struct ev_event *ev,
		   pcre2_match_data *md)
{
	if (!matcher_ok(&r->m, ev, md))
		return false;
	if (r->nany) {
		bool hit = false;

		for (size_t i = 0; i < r->nany && !hit; i++)
			hit = matcher_ok(&r->any[i], ev, md);
		if (!hit)
			return false;
	}
	for (size_t i = 0; i < r->nexcl; i++)
		if (matcher_ok(&r->excl[i], ev, md))
			return false;
	return true;
}

size_t ev_rules_match(const struct events_cfg *ec, const struct ev_event *ev,
		      pcre2_match_data *md, size_t *hits)
{
	size_t n = 0;

	for (size_t i = 0; i < ec->nrules; i++) {
		if (!ev_rule_match(&ec->rules[i], ev, md))
			continue;
		hits[n++] = i;
		if (ec->match == EV_MATCH_FIRST)
			break;
	}
	return n;
}
