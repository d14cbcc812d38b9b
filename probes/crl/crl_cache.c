#include "crl_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exporter/loop.h"
#include "exporter/xalloc.h"

#define CACHE_BUCKETS 256
#define CACHE_IDLE_NS (86400LL * 1000000000LL)	/* evict after a day unused */
#define ISSUER_POOL_MAX 256

struct crl_entry {
	char *key;
	struct crl_entry *next;		/* bucket chain */
	int64_t used;			/* monotonic ns, last begin/snapshot */
	bool fetching;
	bool attempted;
	int64_t due;			/* monotonic ns: next fetch allowed */
	enum fetch_err ferr;
	enum crl_parse_err perr;
	long http_status;
	double duration;
	bool not_modified;
	int64_t last_success;		/* wall seconds */
	int64_t last_attempt;
	struct crl_data *data;
	char *etag, *lastmod;
	char base_seen[CRL_NUMBER_MAX];
	struct crl_waiter *waiters;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct crl_entry *buckets[CACHE_BUCKETS];
static X509 *pool[ISSUER_POOL_MAX];
static size_t pool_next;

static size_t key_hash(const char *k)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ULL;
	return (size_t)(h % CACHE_BUCKETS);
}

static void data_unref_locked(struct crl_data *d)
{
	if (!d || --d->refs > 0)
		return;
	crl_info_cleanup(&d->info);
	xfree(d);
}

void crl_data_unref(struct crl_data *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&mu);
	data_unref_locked(d);
	pthread_mutex_unlock(&mu);
}

void crl_snapshot_cleanup(struct crl_snapshot *s)
{
	crl_data_unref(s->data);
	memset(s, 0, sizeof(*s));
}

const char *crl_snapshot_reason(const struct crl_snapshot *s)
{
	if (s->ferr != FETCH_OK)
		return fetch_err_str(s->ferr);
	if (s->perr != CRL_PARSE_OK)
		return crl_parse_err_str(s->perr);
	return "ok";
}

static void entry_free(struct crl_entry *e)
{
	data_unref_locked(e->data);
	xfree(e->etag);
	xfree(e->lastmod);
	xfree(e->key);
	xfree(e);
}

/* Entries nobody asked about for a day (a target removed by a reload). */
static void evict_idle_locked(int64_t now)
{
	for (size_t b = 0; b < CACHE_BUCKETS; b++) {
		struct crl_entry **pp = &buckets[b];

		while (*pp) {
			struct crl_entry *e = *pp;

			if (!e->fetching && !e->waiters &&
			    now - e->used > CACHE_IDLE_NS) {
				*pp = e->next;
				entry_free(e);
				continue;
			}
			pp = &e->next;
		}
	}
}

struct crl_entry *crl_cache_entry(const char *key)
{
	size_t b = key_hash(key);
	struct crl_entry *e;
	int64_t now = loop_now();

	pthread_mutex_lock(&mu);
	for (e = buckets[b]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			break;
	if (!e) {
		evict_idle_locked(now);
		e = xcalloc(1, sizeof(*e));
		if (e)
			e->key = xstrdup(key);
		if (e && !e->key) {
			xfree(e);
			e = NULL;
		}
		if (e) {
			e->next = buckets[b];
			buckets[b] = e;
		}
	}
	if (e)
		e->used = now;
	pthread_mutex_unlock(&mu);
	return e;
}

static void snapshot_locked(struct crl_entry *e, struct crl_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->attempted = e->attempted;
	s->ferr = e->ferr;
	s->perr = e->perr;
	s->ok = e->attempted && e->ferr == FETCH_OK && e->perr == CRL_PARSE_OK;
	s->http_status = e->http_status;
	s->duration = e->duration;
	s->not_modified = e->not_modified;
	s->last_success = e->last_success;
	s->last_attempt = e->last_attempt;
	s->data = e->data;
	if (s->data)
		s->data->refs++;
	snprintf(s->base_seen, sizeof(s->base_seen), "%s", e->base_seen);
	e->used = loop_now();
}

void crl_cache_snapshot(struct crl_entry *e, struct crl_snapshot *snap)
{
	pthread_mutex_lock(&mu);
	snapshot_locked(e, snap);
	pthread_mutex_unlock(&mu);
}

enum crl_begin crl_cache_begin(struct crl_entry *e, const struct crl_policy *p,
			       struct crl_waiter *w, struct crl_snapshot *snap,
			       char **etag, char **lastmod)
{
	enum crl_begin r;
	int64_t now = loop_now();

	(void)p;
	*etag = *lastmod = NULL;
	pthread_mutex_lock(&mu);
	e->used = now;
	if (e->fetching && w) {
		if (!w->queued) {
			w->queued = true;
			w->next = e->waiters;
			e->waiters = w;
		}
		r = CRL_BEGIN_WAIT;
	} else if (!e->fetching && (!e->attempted || now >= e->due)) {
		e->fetching = true;
		/* validators only with a copy to fall back on after a 304 */
		if (e->data && e->etag)
			*etag = xstrdup(e->etag);
		if (e->data && e->lastmod)
			*lastmod = xstrdup(e->lastmod);
		r = CRL_BEGIN_FETCH;
	} else {
		snapshot_locked(e, snap);
		r = CRL_BEGIN_CACHED;
	}
	pthread_mutex_unlock(&mu);
	return r;
}

static void wake_locked(struct crl_entry *e)
{
	while (e->waiters) {
		struct crl_waiter *w = e->waiters;
		uint64_t one = 1;

		e->waiters = w->next;
		w->next = NULL;
		w->queued = false;
		/* an eventfd write only fails when the counter would
		 * overflow: then it is readable anyway */
		if (write(w->efd, &one, sizeof(one)) == -1)
			continue;
	}
}

/* When the next fetch is due after an attempt that ended now. */
static int64_t next_due(const struct crl_entry *e, const struct crl_policy *p,
			bool ok, int64_t now)
{
	double wait = ok ? p->max_interval : p->min_interval;
	int64_t wall = (int64_t)time(NULL);

	if (ok && e->data) {
		const struct crl_info *i = &e->data->info;
		const int64_t marks[2] = {
			i->has_next_publish ? i->next_publish : INT64_MAX,
			i->has_next_update ? i->next_update : INT64_MAX};

		/* a CA publishes at Next CRL Publish; a client must have the
		 * new CRL by nextUpdate: fetch then, and keep trying (at
		 * min_interval) once either has passed */
		for (int k = 0; k < 2; k++) {
			double until;

			if (marks[k] == INT64_MAX)
				continue;
			until = (double)(marks[k] - wall);
			if (until < p->min_interval)
				until = p->min_interval;
			if (until < wait)
				wait = until;
		}
	}
	if (wait < 0)
		wait = 0;
	return now + (int64_t)(wait * 1e9);
}

void crl_cache_finish(struct crl_entry *e, const struct crl_policy *p,
		      enum fetch_err ferr, enum crl_parse_err perr,
		      long http_status, double duration, bool not_modified,
		      struct crl_data *data, const char *etag,
		      const char *lastmod)
{
	int64_t now = loop_now();
	bool ok;

	pthread_mutex_lock(&mu);
	e->fetching = false;
	e->attempted = true;
	/* a 304 without a copy to keep (evicted meanwhile) is no answer */
	if (ferr == FETCH_OK && not_modified && !e->data)
		perr = CRL_PARSE_EMPTY;
	e->ferr = ferr;
	e->perr = perr;
	e->http_status = http_status;
	e->duration = duration;
	e->not_modified = not_modified;
	e->last_attempt = (int64_t)time(NULL);
	ok = ferr == FETCH_OK && perr == CRL_PARSE_OK;
	if (ok) {
		e->last_success = e->last_attempt;
		if (data) {
			data_unref_locked(e->data);
			e->data = data;
			data = NULL;
			xfree(e->etag);
			xfree(e->lastmod);
			e->etag = etag && *etag ? xstrdup(etag) : NULL;
			e->lastmod = lastmod && *lastmod ? xstrdup(lastmod) : NULL;
		}
	}
	data_unref_locked(data);
	e->due = next_due(e, p, ok, now);
	wake_locked(e);
	pthread_mutex_unlock(&mu);
}

void crl_cache_abort(struct crl_entry *e)
{
	pthread_mutex_lock(&mu);
	e->fetching = false;
	wake_locked(e);
	pthread_mutex_unlock(&mu);
}

bool crl_cache_waiting(const struct crl_waiter *w)
{
	bool q;

	pthread_mutex_lock(&mu);
	q = w->queued;
	pthread_mutex_unlock(&mu);
	return q;
}

void crl_cache_unwait(struct crl_entry *e, struct crl_waiter *w)
{
	pthread_mutex_lock(&mu);
	if (w->queued) {
		struct crl_waiter **pp = &e->waiters;

		while (*pp && *pp != w)
			pp = &(*pp)->next;
		if (*pp)
			*pp = w->next;
		w->queued = false;
		w->next = NULL;
	}
	pthread_mutex_unlock(&mu);
}

int crl_number_cmp(const char *a, const char *b)
{
	bool na = a[0] == '-', nb = b[0] == '-';
	size_t la, lb;
	int c;

	if (na != nb)
		return na ? -1 : 1;
	if (na) {	/* both negative: the larger magnitude is smaller */
		const char *t = a + 1;

		a = b + 1;
		b = t;
	}
	while (a[0] == '0' && a[1])
		a++;
	while (b[0] == '0' && b[1])
		b++;
	la = strlen(a);
	lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	c = strcmp(a, b);
	return c < 0 ? -1 : c > 0;
}

void crl_cache_base_seen(struct crl_entry *e, const char *number)
{
	if (!number || !*number)
		return;
	pthread_mutex_lock(&mu);
	if (!e->base_seen[0] || crl_number_cmp(number, e->base_seen) > 0)
		snprintf(e->base_seen, sizeof(e->base_seen), "%s", number);
	pthread_mutex_unlock(&mu);
}

void crl_issuers_add(X509 *ca)
{
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < ISSUER_POOL_MAX; i++)
		if (pool[i] && X509_cmp(pool[i], ca) == 0)
			goto out;
	if (X509_up_ref(ca)) {
		X509_free(pool[pool_next]);
		pool[pool_next] = ca;
		pool_next = (pool_next + 1) % ISSUER_POOL_MAX;
	}
out:
	pthread_mutex_unlock(&mu);
}

void crl_issuers_all(STACK_OF(X509) *sk)
{
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < ISSUER_POOL_MAX; i++)
		if (pool[i] && X509_up_ref(pool[i]) && !sk_X509_push(sk, pool[i]))
			X509_free(pool[i]);
	pthread_mutex_unlock(&mu);
}

void crl_cache_reset(void)
{
	pthread_mutex_lock(&mu);
	for (size_t b = 0; b < CACHE_BUCKETS; b++) {
		while (buckets[b]) {
			struct crl_entry *e = buckets[b];

			buckets[b] = e->next;
			wake_locked(e);
			entry_free(e);
		}
	}
	for (size_t i = 0; i < ISSUER_POOL_MAX; i++) {
		X509_free(pool[i]);
		pool[i] = NULL;
	}
	pool_next = 0;
	pthread_mutex_unlock(&mu);
}
