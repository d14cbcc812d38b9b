#include "scrape.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "probes/dns/dns.h"
#include "probes/http/fetch.h"
#include "probes/libctx.h"
#include "probes/probe.h"
#include "xalloc.h"

#define SCRAPE_MAX_RESOLVERS 16
#define SCRAPE_MAX_SHARDS LIBCTX_MAX
#define SCRAPE_RETRY_NS (5 * 1000000LL)	/* waiting for a global slot */
#define SCRAPE_MIN_PER_SHARD 16	/* targets that make a thread worth it */

struct resolver {
	char *servers;	/* NULL = system */
	struct dns *d;
};

/* Keys claimed during one scrape (probe_claim), shared by its shards. */
struct claims {
	pthread_mutex_t mu;
	char **slots;	/* open addressing, NULL = empty */
	size_t cap, n;
};

struct scrape {
	struct loop loop;
	const struct config *cfg;
	struct expo_set *out;
	struct probe_run *runs;
	size_t nruns;
	size_t next;		/* next run to start */
	size_t running;
	size_t finished;
	struct probe_run *done;	/* ended, waiting for release */
	struct resolver res[SCRAPE_MAX_RESOLVERS];
	size_t nres;
	struct fetcher *fetcher;	/* created on first use */
	struct claims *claims;
	int64_t deadline;
	int64_t t0;
	struct loop_timer retry;	/* waiting for a global slot */
	unsigned concurrency;
	struct scrape_stats *stats;
};

static const struct metric_desc M_SUCCESS = {
	"pki_probe_success",
	"Whether the probe of this target succeeded (1) or not (0).",
	METRIC_GAUGE};
static const struct metric_desc M_DURATION = {
	"pki_probe_duration_seconds", "How long the probe took in seconds.",
	METRIC_GAUGE};
static const struct metric_desc M_FAILURE = {
	"pki_probe_failure_info",
	"Why the probe failed: the stage it reached and the reason; value 1, "
	"present only on failure.",
	METRIC_GAUGE};
static const struct metric_desc M_SCRAPE_DURATION = {
	"pki_exporter_scrape_duration_seconds",
	"Duration of the last scrape's probes of each kind, in seconds.",
	METRIC_GAUGE};
static const struct metric_desc M_INFLIGHT = {
	"pki_exporter_probes_in_flight",
	"Probes running right now across every scrape (capped by "
	"global.max_inflight).",
	METRIC_GAUGE};
static const struct metric_desc M_SCRAPE_PROBES = {
	"pki_exporter_scrape_probes",
	"Probes in the last scrape by outcome: finished on their own, cut off "
	"by the deadline while running, or never started before the deadline.",
	METRIC_GAUGE};

/* Probes in flight across every scrape of the process. `concurrency` caps
 * one scrape; without this, concurrent scrapes add up (50 scrapes of 1,000
 * targets held 12,800 handshakes, 1.6 GiB and ran out of descriptors). */
static atomic_long inflight;

/* The cap: the configured max_inflight, and never more than half the open
 * files (a probe may hold a socket for DNS and one for TLS). */
static long inflight_cap(const struct config *cfg)
{
	static long fd_cap;
	struct rlimit rl;

	if (!fd_cap) {
		fd_cap = 512;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur > 256)
			fd_cap = (long)(rl.rlim_cur - 128) / 2;
		else if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
			 rl.rlim_cur == RLIM_INFINITY)
			fd_cap = 1L << 20;
	}
	return cfg->global.max_inflight < fd_cap ? (long)cfg->global.max_inflight
						  : fd_cap;
}

static bool token_take(const struct config *cfg)
{
	if (atomic_fetch_add(&inflight, 1) >= inflight_cap(cfg)) {
		atomic_fetch_sub(&inflight, 1);
		return false;
	}
	return true;
}

static void token_put(void)
{
	atomic_fetch_sub(&inflight, 1);
}

const char *probe_stage_str(enum probe_stage s)
{
	switch (s) {
	case PROBE_STAGE_QUEUED:
		return "queued";
	case PROBE_STAGE_RESOLVE:
		return "resolve";
	case PROBE_STAGE_CONNECT:
		return "connect";
	case PROBE_STAGE_STARTTLS:
		return "starttls";
	case PROBE_STAGE_HANDSHAKE:
		return "handshake";
	case PROBE_STAGE_FETCH:
		return "fetch";
	case PROBE_STAGE_DONE:
		return "done";
	}
	return "unknown";
}

const char *probe_fail_str(enum probe_fail f)
{
	static const char *const names[PROBE_FAIL__COUNT] = {
		[PROBE_OK] = "ok",
		[PROBE_FAIL_TIMEOUT] = "timeout",
		[PROBE_FAIL_DEADLINE] = "scrape_deadline",
		[PROBE_FAIL_NXDOMAIN] = "nxdomain",
		[PROBE_FAIL_NODATA] = "no_address",
		[PROBE_FAIL_DNS] = "dns_error",
		[PROBE_FAIL_REFUSED] = "connection_refused",
		[PROBE_FAIL_UNREACHABLE] = "unreachable",
		[PROBE_FAIL_CONNECT] = "connect_error",
		[PROBE_FAIL_RESET] = "connection_reset",
		[PROBE_FAIL_EOF] = "closed_by_peer",
		[PROBE_FAIL_STARTTLS] = "starttls_failed",
		[PROBE_FAIL_TLS_ALERT] = "tls_alert",
		[PROBE_FAIL_TLS] = "tls_error",
		[PROBE_FAIL_INTERNAL] = "internal_error",
		[PROBE_FAIL_NOT_FOUND] = "not_found",
		[PROBE_FAIL_PERMISSION] = "permission_denied",
		[PROBE_FAIL_FILE] = "file_error",
		[PROBE_FAIL_HTTP] = "http_error",
		[PROBE_FAIL_TOO_LARGE] = "too_large",
		[PROBE_FAIL_MALFORMED] = "malformed",
		[PROBE_FAIL_PROXY] = "proxy_error",
	};

	if (f < 0 || f >= PROBE_FAIL__COUNT || !names[f])
		return "unknown";
	return names[f];
}

const char *probe_module_name(const struct probe_run *run)
{
	return run->module->name;
}

const char *probe_target_name(const struct probe_run *run)
{
	return run->target->name;
}

const void *probe_module_cfg(const struct probe_run *run)
{
	return run->module->pcfg;
}

const void *probe_target_cfg(const struct probe_run *run)
{
	return run->target->tcfg;
}

/* Track, per probe kind, when its last run ended. */
static void kind_seen(struct scrape *s, const char *name)
{
	struct scrape_stats *st = s->stats;
	double t = loop_seconds(loop_now() - s->t0);
	size_t i;

	for (i = 0; i < st->nkinds; i++)
		if (strcmp(st->kinds[i].probe, name) == 0)
			break;
	if (i == st->nkinds) {
		if (i == SCRAPE_MAX_KINDS)
			return;
		st->kinds[st->nkinds++].probe = name;
	}
	if (t > st->kinds[i].seconds)
		st->kinds[i].seconds = t;
}

void probe_done(struct probe_run *run, enum probe_fail fail)
{
	struct scrape *s = run->scrape;
	const char *mod = probe_module_name(run), *tgt = probe_target_name(run);

	if (run->done)
		return;
	run->done = true;
	run->fail = fail;
	loop_timer_cancel(&s->loop, &run->timer);
	expo_add(s->out, &M_SUCCESS, run->order, fail == PROBE_OK, "module",
		 mod, "target", tgt, NULL);
	expo_add(s->out, &M_DURATION, run->order,
		 run->start ? loop_seconds(loop_now() - run->start) : 0,
		 "module", mod, "target", tgt, NULL);
	if (fail != PROBE_OK)
		expo_add(s->out, &M_FAILURE, run->order, 1, "module", mod,
			 "target", tgt, "stage", probe_stage_str(run->stage),
			 "reason", probe_fail_str(fail), NULL);
	if (run->observer)
		run->observer->fn(run->observer->arg, run);
	if (run->start) {
		s->running--;
		s->stats->finished++;
		token_put();
	}
	kind_seen(s, run->module->ops->name);
	s->finished++;
	run->next = s->done;
	s->done = run;
}

struct dns *probe_dns(struct probe_run *run, const char *servers)
{
	struct scrape *s = run->scrape;
	struct resolver *r;

	for (size_t i = 0; i < s->nres; i++) {
		r = &s->res[i];
		if ((!r->servers && !servers) ||
		    (r->servers && servers && strcmp(r->servers, servers) == 0))
			return r->d;
	}
	if (s->nres >= SCRAPE_MAX_RESOLVERS)
		return NULL;
	r = &s->res[s->nres];
	r->servers = servers ? xstrdup(servers) : NULL;
	if (servers && !r->servers)
		return NULL;
	if (dns_new(&s->loop, servers, &r->d)) {
		xfree(r->servers);
		return NULL;
	}
	s->nres++;
	return r->d;
}

struct fetcher *probe_fetcher(struct probe_run *run)
{
	struct scrape *s = run->scrape;

	if (!s->fetcher && fetcher_new(&s->loop, &s->fetcher))
		return NULL;
	return s->fetcher;
}

static size_t claim_hash(const char *k)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ULL;
	return (size_t)h;
}

static char **claim_slot(char **slots, size_t cap, const char *key)
{
	size_t i = claim_hash(key) & (cap - 1);

	while (slots[i] && strcmp(slots[i], key) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

bool probe_claim(struct probe_run *run, const char *key)
{
	struct claims *c = run->scrape->claims;
	bool mine = false;
	char **slot;

	if (!c)
		return false;
	pthread_mutex_lock(&c->mu);
	if (2 * (c->n + 1) > c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 64;
		char **bigger = xcalloc(ncap, sizeof(*bigger));

		if (!bigger)
			goto out;
		for (size_t i = 0; i < c->cap; i++)
			if (c->slots[i])
				*claim_slot(bigger, ncap, c->slots[i]) =
					c->slots[i];
		xfree(c->slots);
		c->slots = bigger;
		c->cap = ncap;
	}
	slot = claim_slot(c->slots, c->cap, key);
	if (!*slot) {
		*slot = xstrdup(key);
		mine = *slot != NULL;
		c->n += mine;
	}
out:
	pthread_mutex_unlock(&c->mu);
	return mine;
}

static void run_on_timer(struct loop_timer *t)
{
	struct probe_run *run = t->arg;

	if (run->done)
		return;
	/* the scrape's deadline, not the module's timeout: this run is cut
	 * off while running (pki_exporter_scrape_probes{outcome="cancelled"}),
	 * like the ones the engine ends after its loop */
	if (run->deadline_is_scrape)
		run->scrape->stats->cancelled++;
	run->module->ops->cancel(run, run->deadline_is_scrape
					      ? PROBE_FAIL_DEADLINE
					      : PROBE_FAIL_TIMEOUT);
}

static void run_start(struct scrape *s, struct probe_run *run)
{
	int64_t now = loop_now();
	int64_t mod_deadline =
		now + (int64_t)(run->module->timeout * 1e9);

	run->start = now;
	s->running++;
	s->stats->started++;
	run->deadline = mod_deadline < s->deadline ? mod_deadline : s->deadline;
	run->deadline_is_scrape = mod_deadline >= s->deadline;
	loop_timer_init(&run->timer, run_on_timer, run);
	loop_timer_set(&s->loop, &run->timer, run->deadline);
	if (run->module->ops->start(run) != 0 && !run->done)
		probe_done(run, PROBE_FAIL_INTERNAL);
}

/* Release runs that ended during the last batch; their sockets are gone,
 * so no queued event can point at freed memory any more. */
static void release_done(struct scrape *s)
{
	while (s->done) {
		struct probe_run *run = s->done;

		s->done = run->next;
		run->module->ops->release(run);
	}
}

static void on_retry(struct loop_timer *t)
{
	(void)t;	/* only wakes the loop: fill() runs after every batch */
}

static void fill(struct scrape *s)
{
	while (s->next < s->nruns && s->running < s->concurrency &&
	       loop_now() < s->deadline) {
		if (!token_take(s->cfg)) {
			/* other scrapes hold every slot: look again soon
			 * (their probes end on other threads' loops) */
			if (s->running == 0 || !loop_timer_armed(&s->retry))
				loop_timer_set(&s->loop, &s->retry,
					       loop_now() + SCRAPE_RETRY_NS);
			return;
		}
		run_start(s, &s->runs[s->next++]);
	}
}

/* One shard of a scrape: its own loop, resolvers and sample set, run on
 * one thread. */
struct shard {
	pthread_t thread;
	bool threaded;	/* thread was started */
	unsigned index;	/* 0..: selects per-thread state (probes/libctx.c) */
	const struct config *cfg;
	const size_t *targets;	/* every `stride`-th from `first` */
	size_t first, stride, n;
	int64_t deadline;
	unsigned concurrency;
	const struct probe_observer *obs;
	struct claims *claims;
	struct expo_set out;
	struct scrape_stats stats;
	int rc;
};

static void *shard_main(void *arg)
{
	struct shard *sh = arg;
	struct scrape s;
	int64_t t0 = loop_now();
	int rc;

	memset(&s, 0, sizeof(s));
	sh->rc = loop_init(&s.loop);
	if (sh->rc)
		return NULL;
	s.cfg = sh->cfg;
	s.t0 = t0;
	loop_timer_init(&s.retry, on_retry, &s);
	s.out = &sh->out;
	s.deadline = sh->deadline;
	s.concurrency = sh->concurrency;
	s.stats = &sh->stats;
	s.claims = sh->claims;
	s.nruns = sh->n;
	s.runs = xcalloc(sh->n ? sh->n : 1, sizeof(*s.runs));
	if (!s.runs) {
		loop_cleanup(&s.loop);
		sh->rc = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < sh->n; i++) {
		struct probe_run *run = &s.runs[i];
		size_t t = sh->targets[sh->first + i * sh->stride];

		run->loop = &s.loop;
		run->out = s.out;
		run->config = sh->cfg;
		run->target = &sh->cfg->targets[t];
		run->module = run->target->module;
		run->order = (uint32_t)t;
		run->scrape = &s;
		run->observer = sh->obs;
		run->shard = sh->index;
		loop_timer_init(&run->timer, run_on_timer, run);
	}

	fill(&s);
	while (s.finished < s.nruns && loop_now() < s.deadline) {
		rc = loop_run_once(&s.loop, s.deadline);
		release_done(&s);
		if (rc < 0) {
			log_err("scrape", "event loop failed: %s", strerror(-rc));
			break;
		}
		fill(&s);
	}

	/* the deadline: cut off what still runs, report what never ran */
	for (size_t i = 0; i < s.nruns; i++) {
		struct probe_run *run = &s.runs[i];

		if (run->done)
			continue;
		if (run->start) {
			sh->stats.cancelled++;
			run->module->ops->cancel(run, PROBE_FAIL_DEADLINE);
			if (!run->done)
				probe_done(run, PROBE_FAIL_DEADLINE);
		} else {
			sh->stats.queued_out++;
			probe_done(run, PROBE_FAIL_DEADLINE);
		}
	}
	release_done(&s);
	fetcher_free(s.fetcher);
	for (size_t i = 0; i < s.nres; i++) {
		dns_free(s.res[i].d);
		xfree(s.res[i].servers);
	}
	loop_timer_cancel(&s.loop, &s.retry);
	xfree(s.runs);
	loop_cleanup(&s.loop);
	sh->stats.duration = loop_seconds(loop_now() - t0);
	return NULL;
}

static void stats_add(struct scrape_stats *dst, const struct scrape_stats *src)
{
	dst->started += src->started;
	dst->finished += src->finished;
	dst->cancelled += src->cancelled;
	dst->queued_out += src->queued_out;
	for (size_t k = 0; k < src->nkinds; k++) {
		size_t i;

		for (i = 0; i < dst->nkinds; i++)
			if (strcmp(dst->kinds[i].probe, src->kinds[k].probe) == 0)
				break;
		if (i == dst->nkinds) {
			if (i == SCRAPE_MAX_KINDS)
				continue;
			dst->kinds[dst->nkinds++] = src->kinds[k];
		} else if (src->kinds[k].seconds > dst->kinds[i].seconds) {
			dst->kinds[i].seconds = src->kinds[k].seconds;
		}
	}
}

/* How many threads a scrape of n targets uses: handshakes are CPU-bound,
 * so one event loop per core, but small scrapes stay on the caller's
 * thread where a thread start would cost more than it saves. */
static size_t shard_count(size_t n, unsigned concurrency)
{
	size_t w = libctx_shards();	/* cores, at most SCRAPE_MAX_SHARDS */

	if (w > n / SCRAPE_MIN_PER_SHARD)
		w = n / SCRAPE_MIN_PER_SHARD;
	if (w > concurrency)
		w = concurrency;
	return w ? w : 1;
}

int scrape_run(const struct config *cfg, const size_t *targets, size_t n,
	       int64_t deadline, struct expo_set *out,
	       struct scrape_stats *stats, const struct probe_observer *obs)
{
	struct shard sh[SCRAPE_MAX_SHARDS];
	size_t w = shard_count(n, cfg->global.concurrency);
	int64_t t0 = loop_now();
	struct claims claims = {.slots = NULL};
	int rc = 0;

	memset(stats, 0, sizeof(*stats));
	memset(sh, 0, sizeof(sh));
	pthread_mutex_init(&claims.mu, NULL);
	for (size_t i = 0; i < w; i++) {
		sh[i].cfg = cfg;
		sh[i].index = (unsigned)i;
		sh[i].targets = targets;
		sh[i].first = i;
		sh[i].stride = w;
		sh[i].n = n > i ? (n - i + w - 1) / w : 0;
		sh[i].deadline = deadline;
		sh[i].obs = obs;
		sh[i].claims = &claims;
		/* the cap is global to the scrape: split it */
		sh[i].concurrency = (unsigned)((cfg->global.concurrency + w - 1 - i) / w);
		/* the label cap is the scrape's: each shard gets its share */
		expo_set_init(&sh[i].out, out->max_bytes / w);
	}
	for (size_t i = 1; i < w; i++) {
		/* if no thread can be had, the shard runs here afterwards */
		sh[i].threaded = pthread_create(&sh[i].thread, NULL, shard_main,
						&sh[i]) == 0;
	}
	shard_main(&sh[0]);
	for (size_t i = 1; i < w; i++) {
		if (sh[i].threaded)
			pthread_join(sh[i].thread, NULL);
		else
			shard_main(&sh[i]);
	}
	for (size_t i = 0; i < w; i++) {
		if (sh[i].rc && !rc)
			rc = sh[i].rc;
		stats_add(stats, &sh[i].stats);
		if (expo_merge(out, &sh[i].out) && !rc)
			rc = out->err;
		expo_set_cleanup(&sh[i].out);
	}
	for (size_t i = 0; i < claims.cap; i++)
		xfree(claims.slots[i]);
	xfree(claims.slots);
	pthread_mutex_destroy(&claims.mu);
	stats->duration = loop_seconds(loop_now() - t0);
	return rc;
}

void scrape_stats_emit(const struct scrape_stats *st, struct expo_set *out)
{
	for (size_t i = 0; i < st->nkinds; i++)
		expo_add(out, &M_SCRAPE_DURATION, 0, st->kinds[i].seconds,
			 "probe", st->kinds[i].probe, NULL);
	expo_add(out, &M_INFLIGHT, 0, (double)atomic_load(&inflight), NULL);
	expo_add(out, &M_SCRAPE_PROBES, 0,
		 (double)(st->finished - st->cancelled), "outcome", "finished",
		 NULL);
	expo_add(out, &M_SCRAPE_PROBES, 0, (double)st->cancelled, "outcome",
		 "cancelled", NULL);
	expo_add(out, &M_SCRAPE_PROBES, 0, (double)st->queued_out, "outcome",
		 "not_started", NULL);
}
