/* The counters: one group per rule name (kept across reloads), series
 * keyed by (rule, host, source, event_id, level) in one hash table, the
 * last-seen time per (rule, host), and per-input statistics.
 *
 * Memory is bounded: a rule holds at most max_series label sets (and as
 * many hosts); past that, events fold into the rule's "__other__" series
 * and pki_events_dropped_total{reason="cardinality"} of their input grows.
 *
 * Everything here runs under st->lock: the ingest thread counts, scrape
 * threads copy (ev_store_emit formats after unlocking). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/events_int.h"
#include "exporter/xalloc.h"

struct ev_series {
	struct ev_series *hnext;	/* hash chain */
	struct ev_series *next;		/* the group's, in order */
	struct ev_group *g;
	uint64_t hash;
	uint64_t count;
	const char *host, *source, *event_id, *level;	/* in data[] */
	char data[];
};

struct ev_hostts {
	struct ev_hostts *hnext, *next;
	struct ev_group *g;
	uint64_t hash;
	double last;
	char host[];
};

struct ev_group {
	char *name;
	const struct ev_rule *rule;	/* current rule: static labels */
	unsigned max_series;
	size_t nseries, nhosts;
	struct ev_series *first, **tail;
	struct ev_hostts *tfirst, **ttail;
	struct ev_series *other;	/* folded label sets */
	struct ev_hostts *other_ts;
	bool live;
	size_t order;
};

struct ev_store {
	pthread_mutex_t lock;
	struct ev_group **groups;
	size_t ngroups, capgroups;
	struct ev_instat **ins;
	size_t nins, capins;
	struct ev_series **sb;	/* series buckets, power of two */
	size_t nsb, nseries;
	struct ev_hostts **tb;	/* host buckets */
	size_t ntb, nts;
};

static const struct metric_desc M_TOTAL = {
	"pki_events_total",
	"Events counted by each rule, by host, source (provider), event id "
	"and level.",
	METRIC_COUNTER};
static const struct metric_desc M_LAST = {
	"pki_events_last_timestamp_seconds",
	"When the exporter last counted an event of this rule from this host, "
	"Unix time.",
	METRIC_GAUGE};
static const struct metric_desc M_LINES = {
	"pki_events_input_lines_total",
	"Lines (syslog messages, file lines) received by each input, "
	"including dropped and unparsable ones.",
	METRIC_COUNTER};
static const struct metric_desc M_PERR = {
	"pki_events_parse_errors_total",
	"Lines of each input that its format could not read.",
	METRIC_COUNTER};
static const struct metric_desc M_DROP = {
	"pki_events_dropped_total",
	"Lines, events or connections dropped, by input and reason: "
	"line_too_long, cardinality (folded into the __other__ series), "
	"connection_limit, invalid_frame.",
	METRIC_COUNTER};
static const struct metric_desc M_UNMATCHED = {
	"pki_events_unmatched_total",
	"Events of each input that no rule counted.", METRIC_COUNTER};
static const struct metric_desc M_UP = {
	"pki_events_input_up",
	"Whether the input is listening (syslog) or has its file open (1) or "
	"not (0).",
	METRIC_GAUGE};
static const struct metric_desc M_CONNS = {
	"pki_events_input_connections",
	"Open TCP connections of each syslog TCP input.", METRIC_GAUGE};

const char *ev_drop_str(enum ev_drop d)
{
	switch (d) {
	case EV_DROP_LINE_TOO_LONG:
		return "line_too_long";
	case EV_DROP_CARDINALITY:
		return "cardinality";
	case EV_DROP_CONNECTION_LIMIT:
		return "connection_limit";
	case EV_DROP_INVALID_FRAME:
		return "invalid_frame";
	case EV_DROP_MAX:
		break;
	}
	return "unknown";
}

/* ---- hashing ---- */

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (h ^ 0xff) * 1099511628211ULL;	/* field separator */
}

static uint64_t series_hash(const struct ev_group *g, const char *host,
			    const char *source, const char *id,
			    const char *level)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)g;

	h = fnv(h, host);
	h = fnv(h, source);
	h = fnv(h, id);
	return fnv(h, level);
}

static uint64_t host_hash(const struct ev_group *g, const char *host)
{
	return fnv(1469598103934665603ULL ^ (uint64_t)(uintptr_t)g, host);
}

/* ---- store ---- */

struct ev_store *ev_store_new(void)
{
	struct ev_store *st = xcalloc(1, sizeof(*st));

	if (!st)
		return NULL;
	pthread_mutex_init(&st->lock, NULL);
	return st;
}

pthread_mutex_t *ev_store_lock(struct ev_store *st)
{
	return &st->lock;
}

static struct ev_series *series_new(struct ev_group *g, uint64_t h,
				    const char *host, const char *source,
				    const char *id, const char *level)
{
	size_t lh = strlen(host) + 1, ls = strlen(source) + 1;
	size_t li = strlen(id) + 1, ll = strlen(level) + 1;
	struct ev_series *s = xmalloc(sizeof(*s) + lh + ls + li + ll);
	char *p;

	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->g = g;
	s->hash = h;
	p = s->data;
	s->host = memcpy(p, host, lh);
	p += lh;
	s->source = memcpy(p, source, ls);
	p += ls;
	s->event_id = memcpy(p, id, li);
	p += li;
	s->level = memcpy(p, level, ll);
	return s;
}

static struct ev_hostts *hostts_new(struct ev_group *g, uint64_t h,
				    const char *host)
{
	size_t n = strlen(host) + 1;
	struct ev_hostts *t = xmalloc(sizeof(*t) + n);

	if (!t)
		return NULL;
	memset(t, 0, sizeof(*t));
	t->g = g;
	t->hash = h;
	memcpy(t->host, host, n);
	return t;
}

static void group_free(struct ev_group *g)
{
	struct ev_series *s, *sn;
	struct ev_hostts *t, *tn;

	if (!g)
		return;
	for (s = g->first; s; s = sn) {
		sn = s->next;
		xfree(s);
	}
	for (t = g->tfirst; t; t = tn) {
		tn = t->next;
		xfree(t);
	}
	xfree(g->other);
	xfree(g->other_ts);
	xfree(g->name);
	xfree(g);
}

static struct ev_group *group_new(const struct ev_rule *r)
{
	struct ev_group *g = xcalloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->first = NULL;
	g->tail = &g->first;
	g->ttail = &g->tfirst;
	g->name = xstrdup(r->name);
	g->other = series_new(g, 0, EV_OTHER, EV_OTHER, EV_OTHER, EV_OTHER);
	g->other_ts = hostts_new(g, 0, EV_OTHER);
	if (!g->name || !g->other || !g->other_ts) {
		group_free(g);
		return NULL;
	}
	return g;
}

static void instat_free(struct ev_instat *in)
{
	if (!in)
		return;
	xfree(in->name);
	xfree(in);
}

void ev_store_free(struct ev_store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->ngroups; i++)
		group_free(st->groups[i]);
	for (size_t i = 0; i < st->nins; i++)
		instat_free(st->ins[i]);
	xfree(st->groups);
	xfree(st->ins);
	xfree(st->sb);
	xfree(st->tb);
	pthread_mutex_destroy(&st->lock);
	xfree(st);
}

/* Re-hash every live entry into fresh bucket arrays of at least `want`
 * buckets. On allocation failure the old arrays stay (longer chains). */
static void rehash(struct ev_store *st, size_t want_s, size_t want_t)
{
	size_t ns = 64, nt = 64;
	struct ev_series **sb;
	struct ev_hostts **tb;

	while (ns < want_s)
		ns *= 2;
	while (nt < want_t)
		nt *= 2;
	sb = xcalloc(ns, sizeof(*sb));
	tb = xcalloc(nt, sizeof(*tb));
	if (!sb || !tb) {
		xfree(sb);
		xfree(tb);
		if (!st->sb || !st->tb)
			return;
		/* keep the current arrays but rebuild their chains, as
		 * groups may have gone */
		sb = st->sb;
		tb = st->tb;
		ns = st->nsb;
		nt = st->ntb;
		memset(sb, 0, ns * sizeof(*sb));
		memset(tb, 0, nt * sizeof(*tb));
	} else {
		xfree(st->sb);
		xfree(st->tb);
	}
	st->sb = sb;
	st->nsb = ns;
	st->tb = tb;
	st->ntb = nt;
	st->nseries = st->nts = 0;
	for (size_t i = 0; i < st->ngroups; i++) {
		for (struct ev_series *s = st->groups[i]->first; s;
		     s = s->next) {
			size_t b = s->hash & (ns - 1);

			s->hnext = sb[b];
			sb[b] = s;
			st->nseries++;
		}
		for (struct ev_hostts *t = st->groups[i]->tfirst; t;
		     t = t->next) {
			size_t b = t->hash & (nt - 1);

			t->hnext = tb[b];
			tb[b] = t;
			st->nts++;
		}
	}
}

static int cmp_group(const void *a, const void *b)
{
	const struct ev_group *ga = *(struct ev_group *const *)a;
	const struct ev_group *gb = *(struct ev_group *const *)b;

	return ga->order < gb->order ? -1 : ga->order > gb->order;
}

static int cmp_instat(const void *a, const void *b)
{
	const struct ev_instat *ia = *(struct ev_instat *const *)a;
	const struct ev_instat *ib = *(struct ev_instat *const *)b;

	return ia->order < ib->order ? -1 : ia->order > ib->order;
}

int ev_store_configure(struct ev_store *st, const struct events_cfg *ec,
		       struct ev_group **groups, struct ev_instat **instats)
{
	size_t nr = ec ? ec->nrules : 0, ni = ec ? ec->ninputs : 0;
	size_t k;
	int rc = 0;

	/* make room first. Without it, drop everything rather than keep
	 * groups that point into the previous configuration's rules */
	if (xgrow((void **)&st->groups, &st->capgroups, st->ngroups + nr,
		  sizeof(*st->groups)) ||
	    xgrow((void **)&st->ins, &st->capins, st->nins + ni,
		  sizeof(*st->ins))) {
		rc = -ENOMEM;
		for (size_t r = 0; r < nr; r++)
			groups[r] = NULL;
		for (size_t n = 0; n < ni; n++)
			instats[n] = NULL;
		nr = ni = 0;
	}
	for (size_t i = 0; i < st->ngroups; i++)
		st->groups[i]->live = false;
	for (size_t i = 0; i < st->nins; i++)
		st->ins[i]->live = false;

	for (size_t r = 0; r < nr; r++) {
		const struct ev_rule *rule = &ec->rules[r];
		struct ev_group *g = NULL;

		for (size_t i = 0; i < st->ngroups && !g; i++)
			if (!st->groups[i]->live &&
			    strcmp(st->groups[i]->name, rule->name) == 0)
				g = st->groups[i];
		if (!g) {
			g = group_new(rule);
			if (!g) {
				rc = -ENOMEM;
				groups[r] = NULL;
				continue;
			}
			st->groups[st->ngroups++] = g;
		}
		g->live = true;
		g->rule = rule;
		g->max_series = rule->max_series;
		g->order = r;
		groups[r] = g;
	}
	for (size_t n = 0; n < ni; n++) {
		const struct ev_input_cfg *ic = &ec->inputs[n];
		struct ev_instat *in = NULL;

		for (size_t i = 0; i < st->nins && !in; i++)
			if (!st->ins[i]->live &&
			    strcmp(st->ins[i]->name, ic->name) == 0)
				in = st->ins[i];
		if (!in) {
			in = xcalloc(1, sizeof(*in));
			if (in)
				in->name = xstrdup(ic->name);
			if (!in || !in->name) {
				instat_free(in);
				rc = -ENOMEM;
				instats[n] = NULL;
				continue;
			}
			st->ins[st->nins++] = in;
		}
		in->live = true;
		in->tcp = ic->kind == EV_IN_TCP;
		in->order = (unsigned)n;
		instats[n] = in;
	}

	/* drop what the configuration no longer names */
	k = 0;
	for (size_t i = 0; i < st->ngroups; i++) {
		if (st->groups[i]->live)
			st->groups[k++] = st->groups[i];
		else
			group_free(st->groups[i]);
	}
	st->ngroups = k;
	k = 0;
	for (size_t i = 0; i < st->nins; i++) {
		if (st->ins[i]->live)
			st->ins[k++] = st->ins[i];
		else
			instat_free(st->ins[i]);
	}
	st->nins = k;
	if (st->ngroups)
		qsort(st->groups, st->ngroups, sizeof(*st->groups), cmp_group);
	if (st->nins)
		qsort(st->ins, st->nins, sizeof(*st->ins), cmp_instat);
	rehash(st, st->nseries, st->nts);
	return rc;
}

static struct ev_series *series_find(struct ev_store *st,
				     const struct ev_group *g, uint64_t h,
				     const char *host, const char *source,
				     const char *id, const char *level)
{
	if (!st->nsb)
		return NULL;
	for (struct ev_series *s = st->sb[h & (st->nsb - 1)]; s;
	     s = s->hnext)
		if (s->g == g && s->hash == h && strcmp(s->host, host) == 0 &&
		    strcmp(s->source, source) == 0 &&
		    strcmp(s->event_id, id) == 0 &&
		    strcmp(s->level, level) == 0)
			return s;
	return NULL;
}

static struct ev_hostts *hostts_find(struct ev_store *st,
				     const struct ev_group *g, uint64_t h,
				     const char *host)
{
	if (!st->ntb)
		return NULL;
	for (struct ev_hostts *t = st->tb[h & (st->ntb - 1)]; t;
	     t = t->hnext)
		if (t->g == g && t->hash == h && strcmp(t->host, host) == 0)
			return t;
	return NULL;
}

void ev_store_count(struct ev_store *st, struct ev_group *g,
		    struct ev_instat *in, const struct ev_event *ev,
		    double now)
{
	const char *host = ev->host ? ev->host : "";
	const char *source = ev->source ? ev->source : "";
	const char *level = ev->level ? ev->level : "";
	char id[16] = "";
	struct ev_series *s;
	struct ev_hostts *t;
	uint64_t h;
	bool folded = false;

	if (!g)
		return;
	if (ev->has_id)
		snprintf(id, sizeof(id), "%u", (unsigned)ev->event_id);
	h = series_hash(g, host, source, id, level);
	s = series_find(st, g, h, host, source, id, level);
	if (!s && g->nseries < g->max_series) {
		if (st->nseries + 1 > st->nsb)
			rehash(st, 2 * (st->nseries + 1), st->ntb);
		s = st->nsb ? series_new(g, h, host, source, id, level) : NULL;
		if (s) {
			size_t b = h & (st->nsb - 1);

			s->hnext = st->sb[b];
			st->sb[b] = s;
			*g->tail = s;
			g->tail = &s->next;
			g->nseries++;
			st->nseries++;
		}
	}
	if (!s) {
		/* over the cap (or out of memory): fold */
		s = g->other;
		folded = true;
		if (in)
			in->dropped[EV_DROP_CARDINALITY]++;
	}
	s->count++;

	t = NULL;
	if (!folded) {
		uint64_t th = host_hash(g, host);

		t = hostts_find(st, g, th, host);
		if (!t && g->nhosts < g->max_series) {
			if (st->nts + 1 > st->ntb)
				rehash(st, st->nsb, 2 * (st->nts + 1));
			t = st->ntb ? hostts_new(g, th, host) : NULL;
			if (t) {
				size_t b = th & (st->ntb - 1);

				t->hnext = st->tb[b];
				st->tb[b] = t;
				*g->ttail = t;
				g->ttail = &t->next;
				g->nhosts++;
				st->nts++;
			}
		}
	}
	if (!t)
		t = g->other_ts;
	t->last = now;
}

/* ---- emission ---- */

enum snap_family {
	SF_TOTAL = 0,
	SF_LAST,
	SF_LINES,
	SF_PERR,
	SF_DROP,
	SF_UNMATCHED,
	SF_UP,
	SF_CONNS,
};

static const struct metric_desc *const snap_desc[] = {
	&M_TOTAL, &M_LAST,	&M_LINES, &M_PERR,
	&M_DROP,  &M_UNMATCHED, &M_UP,	  &M_CONNS,
};

#define SNAP_MAX_LABELS 32

/* Record: family byte, label count byte, the value, then name\0value\0
 * for each label. */
static void snap_begin(struct buf *b, enum snap_family f, size_t nlabels,
		       double v)
{
	unsigned char hdr[2] = {(unsigned char)f, (unsigned char)nlabels};

	buf_append(b, hdr, 2);
	buf_append(b, &v, sizeof(v));
}

static void snap_label(struct buf *b, const char *name, const char *value)
{
	buf_append(b, name, strlen(name) + 1);
	buf_append(b, value, strlen(value) + 1);
}

static void snap_series(struct buf *b, const struct ev_group *g,
			const struct ev_series *s)
{
	const struct ev_rule *r = g->rule;
	size_t nl = r ? r->nlabels : 0;

	if (nl > SNAP_MAX_LABELS - 5)
		nl = SNAP_MAX_LABELS - 5;
	snap_begin(b, SF_TOTAL, 5 + nl, (double)s->count);
	snap_label(b, "rule", g->name);
	snap_label(b, "host", s->host);
	snap_label(b, "source", s->source);
	snap_label(b, "event_id", s->event_id);
	snap_label(b, "level", s->level);
	for (size_t i = 0; i < nl; i++)
		snap_label(b, r->labels[i].name, r->labels[i].value);
}

static void snap_input(struct buf *b, enum snap_family f,
		       const struct ev_instat *in, double v)
{
	snap_begin(b, f, 1, v);
	snap_label(b, "input", in->name);
}

void ev_store_emit(struct ev_store *st, struct expo_set *out)
{
	struct buf b;
	size_t off = 0;

	buf_init(&b, (size_t)256 * 1024 * 1024);
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < st->ngroups; i++) {
		const struct ev_group *g = st->groups[i];

		for (const struct ev_series *s = g->first; s; s = s->next)
			snap_series(&b, g, s);
		if (g->other->count)
			snap_series(&b, g, g->other);
	}
	for (size_t i = 0; i < st->ngroups; i++) {
		const struct ev_group *g = st->groups[i];

		for (const struct ev_hostts *t = g->tfirst; t; t = t->next) {
			snap_begin(&b, SF_LAST, 2, t->last);
			snap_label(&b, "rule", g->name);
			snap_label(&b, "host", t->host);
		}
		if (g->other_ts->last > 0) {
			snap_begin(&b, SF_LAST, 2, g->other_ts->last);
			snap_label(&b, "rule", g->name);
			snap_label(&b, "host", EV_OTHER);
		}
	}
	for (size_t i = 0; i < st->nins; i++) {
		const struct ev_instat *in = st->ins[i];

		snap_input(&b, SF_LINES, in, (double)in->lines);
		snap_input(&b, SF_PERR, in, (double)in->parse_errors);
		snap_input(&b, SF_UNMATCHED, in, (double)in->unmatched);
		for (int d = 0; d < EV_DROP_MAX; d++) {
			snap_begin(&b, SF_DROP, 2, (double)in->dropped[d]);
			snap_label(&b, "input", in->name);
			snap_label(&b, "reason", ev_drop_str((enum ev_drop)d));
		}
		snap_input(&b, SF_UP, in, in->up ? 1 : 0);
		if (in->tcp)
			snap_input(&b, SF_CONNS, in, in->connections);
	}
	pthread_mutex_unlock(&st->lock);

	if (b.err) {
		out->err = out->err ? out->err : b.err;
		buf_cleanup(&b);
		return;
	}
	while (off + 2 + sizeof(double) <= b.len) {
		const char *names[SNAP_MAX_LABELS], *values[SNAP_MAX_LABELS];
		unsigned char f = (unsigned char)b.data[off];
		size_t nl = (unsigned char)b.data[off + 1];
		double v;

		memcpy(&v, b.data + off + 2, sizeof(v));
		off += 2 + sizeof(v);
		for (size_t i = 0; i < nl; i++) {
			names[i] = b.data + off;
			off += strlen(names[i]) + 1;
			values[i] = b.data + off;
			off += strlen(values[i]) + 1;
		}
		expo_addv(out, snap_desc[f], 0, v, nl, names, values);
	}
	buf_cleanup(&b);
}
