#include "crl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "exporter/config.h"
#include "exporter/expo.h"
#include "exporter/xalloc.h"

/* ---- metrics ---- */

static const struct metric_desc M_SUCCESS = {
	"pki_crl_fetch_success",
	"Whether the last fetch of this CRL gave a valid CRL (1) or not (0); "
	"when 0 the last good CRL's facts are still reported.",
	METRIC_GAUGE};
static const struct metric_desc M_FAILURE = {
	"pki_crl_fetch_failure_info",
	"Why the last fetch of this CRL failed; value 1, present only on "
	"failure.",
	METRIC_GAUGE};
static const struct metric_desc M_SKIPPED = {
	"pki_crl_fetch_skipped",
	"1 when this CRL location is deliberately not fetched (an ldap:// CDP "
	"without bind credentials, a file:// on another host): not down.",
	METRIC_GAUGE};
static const struct metric_desc M_DURATION = {
	"pki_crl_fetch_duration_seconds",
	"How long the last fetch of this CRL took, in seconds.", METRIC_GAUGE};
static const struct metric_desc M_HTTP = {
	"pki_crl_http_status",
	"HTTP status of the last fetch (0: no HTTP answer, or not HTTP).",
	METRIC_GAUGE};
static const struct metric_desc M_FROM_CACHE = {
	"pki_crl_from_cache",
	"1 when this scrape reused the cached result instead of fetching "
	"(min_interval not yet over, nothing due).",
	METRIC_GAUGE};
static const struct metric_desc M_LAST_SUCCESS = {
	"pki_crl_last_success_timestamp_seconds",
	"When a fetch of this CRL last gave a valid CRL (200 or 304).",
	METRIC_GAUGE};
static const struct metric_desc M_THIS = {
	"pki_crl_this_update_timestamp_seconds",
	"thisUpdate of the CRL (the last good one).", METRIC_GAUGE};
static const struct metric_desc M_NEXT = {
	"pki_crl_next_update_timestamp_seconds",
	"nextUpdate of the CRL: after it the CRL is expired and clients fail "
	"revocation checks. Absent when the CRL has none.",
	METRIC_GAUGE};
static const struct metric_desc M_PUBLISH = {
	"pki_crl_next_publish_timestamp_seconds",
	"Microsoft Next CRL Publish: when the CA will publish the next CRL; "
	"past it without a newer CRL means a missed publication.",
	METRIC_GAUGE};
static const struct metric_desc M_ENTRIES = {
	"pki_crl_entries", "Revoked certificates listed in the CRL.",
	METRIC_GAUGE};
static const struct metric_desc M_NUMBER = {
	"pki_crl_number",
	"The CRL Number extension (exact up to 2^53).", METRIC_GAUGE};
static const struct metric_desc M_IS_DELTA = {
	"pki_crl_is_delta",
	"1 for a delta CRL (Delta CRL Indicator), 0 for a complete one.",
	METRIC_GAUGE};
static const struct metric_desc M_BASE_NUMBER = {
	"pki_crl_delta_base_number",
	"For a delta CRL: the number of the base CRL it needs (Delta CRL "
	"Indicator).",
	METRIC_GAUGE};
static const struct metric_desc M_DELTA_BASE = {
	"pki_crl_delta_base",
	"For a delta CRL, whether a usable base was seen: ok (a base at least "
	"as new as the Delta CRL Indicator), too_old (only an older base), "
	"missing (no base names this delta). One series per state, 0/1.",
	METRIC_GAUGE};
static const struct metric_desc M_SIG = {
	"pki_crl_signature_valid",
	"Whether the CRL's signature verifies with its issuer's certificate; "
	"absent when no issuer certificate is known.",
	METRIC_GAUGE};
static const struct metric_desc M_BYTES = {
	"pki_crl_bytes", "Size of the CRL (DER), in bytes.", METRIC_GAUGE};
static const struct metric_desc M_INFO = {
	"pki_crl_info",
	"Facts about the CRL: signature algorithm and Microsoft CA Version "
	"(V<cert>.<key>, empty when absent); value 1.",
	METRIC_GAUGE};
static const struct metric_desc M_UNKNOWN_CRIT = {
	"pki_crl_unknown_critical_extension",
	"1 when the CRL has a critical extension the exporter does not know; "
	"a validator must not use such a CRL, so look-ups report unknown.",
	METRIC_GAUGE};
static const struct metric_desc M_DELTA_URL = {
	"pki_crl_delta_url_info",
	"A delta CRL location named by this base CRL's Freshest CRL; value 1.",
	METRIC_GAUGE};

bool crl_get_ok(const struct crl_get *g)
{
	return g->skipped || (!g->cut && g->snap.ok);
}

enum probe_fail crl_get_fail(const struct crl_get *g,
			     const struct probe_run *run)
{
	if (crl_get_ok(g))
		return PROBE_OK;
	if (g->cut || !g->done)
		return run->deadline_is_scrape ? PROBE_FAIL_DEADLINE
					       : PROBE_FAIL_TIMEOUT;
	if (!g->snap.attempted)
		return PROBE_FAIL_INTERNAL;
	switch (g->snap.ferr) {
	case FETCH_OK:
		return g->snap.perr == CRL_PARSE_NOMEM ? PROBE_FAIL_INTERNAL
						       : PROBE_FAIL_MALFORMED;
	case FETCH_ERR_TIMEOUT:
		return PROBE_FAIL_TIMEOUT;
	case FETCH_ERR_TOO_LARGE:
		return PROBE_FAIL_TOO_LARGE;
	case FETCH_ERR_HTTP_STATUS:
		return PROBE_FAIL_HTTP;
	case FETCH_ERR_DNS:
		return PROBE_FAIL_DNS;
	case FETCH_ERR_CONNECT:
	case FETCH_ERR_LDAP:
		return PROBE_FAIL_CONNECT;
	case FETCH_ERR_PROXY:
	case FETCH_ERR_PROXY_AUTH:
		return PROBE_FAIL_PROXY;
	case FETCH_ERR_TLS:
		return PROBE_FAIL_TLS;
	case FETCH_ERR_TRUNCATED:
		return PROBE_FAIL_EOF;
	case FETCH_ERR_PROTOCOL:
		return PROBE_FAIL_MALFORMED;
	case FETCH_ERR_RESET:
		return PROBE_FAIL_RESET;
	case FETCH_ERR_LDAP_AUTH:
	case FETCH_ERR_PERMISSION:
		return PROBE_FAIL_PERMISSION;
	case FETCH_ERR_NOT_FOUND:
		return PROBE_FAIL_NOT_FOUND;
	case FETCH_ERR_FILE:
		return PROBE_FAIL_FILE;
	default:
		return PROBE_FAIL_INTERNAL;
	}
}

static void delta_state(struct probe_run *run, const char *mod,
			const char *url, const char *issuer,
			const struct crl_info *i, const char *base_seen)
{
	static const char *const states[] = {"ok", "too_old", "missing"};
	int st = 2;

	if (base_seen && *base_seen)
		st = crl_number_cmp(base_seen, i->base_number) >= 0 ? 0 : 1;
	for (int k = 0; k < 3; k++)
		expo_add(run->out, &M_DELTA_BASE, run->order, k == st, "module",
			 mod, "url", url, "issuer", issuer, "state", states[k],
			 NULL);
}

static void report_data(struct probe_run *run, const char *mod,
			const char *url, const struct crl_data *d,
			const char *base_seen)
{
	const struct crl_info *i = &d->info;
	const char *iss = i->issuer;
	uint32_t o = run->order;
	char ver[32] = "";

	expo_add(run->out, &M_THIS, o, (double)i->this_update, "module", mod,
		 "url", url, "issuer", iss, NULL);
	if (i->has_next_update)
		expo_add(run->out, &M_NEXT, o, (double)i->next_update, "module",
			 mod, "url", url, "issuer", iss, NULL);
	if (i->has_next_publish)
		expo_add(run->out, &M_PUBLISH, o, (double)i->next_publish,
			 "module", mod, "url", url, "issuer", iss, NULL);
	expo_add(run->out, &M_ENTRIES, o, (double)i->entries, "module", mod,
		 "url", url, "issuer", iss, NULL);
	if (i->has_number)
		expo_add(run->out, &M_NUMBER, o, i->number_value, "module", mod,
			 "url", url, "issuer", iss, NULL);
	expo_add(run->out, &M_IS_DELTA, o, i->is_delta, "module", mod, "url",
		 url, "issuer", iss, NULL);
	if (i->is_delta) {
		expo_add(run->out, &M_BASE_NUMBER, o, i->base_value, "module",
			 mod, "url", url, "issuer", iss, NULL);
		delta_state(run, mod, url, iss, i, base_seen);
	}
	if (i->sig != CRL_SIG_UNKNOWN)
		expo_add(run->out, &M_SIG, o, i->sig == CRL_SIG_VALID, "module",
			 mod, "url", url, "issuer", iss, NULL);
	expo_add(run->out, &M_BYTES, o, (double)i->bytes, "module", mod, "url",
		 url, NULL);
	if (i->has_ca_version)
		snprintf(ver, sizeof(ver), "V%u.%u", i->ca_version & 0xffff,
			 i->ca_version >> 16);
	expo_add(run->out, &M_INFO, o, 1, "module", mod, "url", url, "issuer",
		 iss, "sig_alg", i->sig_alg, "ca_version", ver, NULL);
	expo_add(run->out, &M_UNKNOWN_CRIT, o, i->unknown_critical, "module",
		 mod, "url", url, "issuer", iss, NULL);
	for (size_t k = 0; k < i->nfreshest; k++)
		expo_add(run->out, &M_DELTA_URL, o, 1, "module", mod, "url", url,
			 "delta_url", i->freshest[k], NULL);
}

void crl_report(struct probe_run *run, const char *mod,
		const struct crl_get *g, const char *base_number)
{
	const struct crl_snapshot *s = &g->snap;
	const char *url = g->url;
	const char *iss = s->data ? s->data->info.issuer : "";
	char *key = xasprintf("crl\x1f%s\x1f%s", mod, url);
	const char *base = base_number;
	uint32_t o = run->order;
	bool ok = crl_get_ok(g);

	if (!key || !probe_claim(run, key)) {
		xfree(key);
		return;
	}
	xfree(key);
	if (g->skipped) {
		expo_add(run->out, &M_SKIPPED, o, 1, "module", mod, "url", url,
			 "reason", g->skipped, NULL);
		return;
	}
	expo_add(run->out, &M_SUCCESS, o, ok, "module", mod, "url", url,
		 "issuer", iss, NULL);
	if (!ok)
		expo_add(run->out, &M_FAILURE, o, 1, "module", mod, "url", url,
			 "reason",
			 g->cut ? g->cut
				: (s->attempted ? crl_snapshot_reason(s)
						: "not_fetched"),
			 NULL);
	if (s->attempted) {
		expo_add(run->out, &M_DURATION, o, s->duration, "module", mod,
			 "url", url, NULL);
		expo_add(run->out, &M_HTTP, o, (double)s->http_status, "module",
			 mod, "url", url, NULL);
	}
	expo_add(run->out, &M_FROM_CACHE, o, !g->fetched && !g->waited,
		 "module", mod, "url", url, NULL);
	if (s->last_success)
		expo_add(run->out, &M_LAST_SUCCESS, o, (double)s->last_success,
			 "module", mod, "url", url, NULL);
	if (!s->data)
		return;
	if (s->base_seen[0] &&
	    (!base || crl_number_cmp(s->base_seen, base) > 0))
		base = s->base_seen;
	report_data(run, mod, url, s->data, base);
}

/* ---- the probe ---- */

struct crl_module {
	struct crl_fetch_cfg fc;
};

struct crl_run {
	struct probe_run *run;
	const struct crl_module *m;
	struct crl_get *base;
	struct crl_get *deltas[CRL_FRESHEST_MAX];
	size_t ndeltas;
	size_t pending;
	char base_number[CRL_NUMBER_MAX];
};

static void crl_cfg_free(void *p)
{
	struct crl_module *m = p;

	if (!m)
		return;
	crl_fetch_cfg_cleanup(&m->fc);
	xfree(m);
}

static int crl_parse_module(const struct cfg_node *n, const struct config *cfg,
			    void **cfgp, struct errbuf *eb)
{
	struct crl_module *m = xcalloc(1, sizeof(*m));
	unsigned before = eb->count;

	if (!m)
		return -ENOMEM;
	crl_fetch_cfg_init(&m->fc);
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;

		cfg_map_pair(n, i, &p);
		if (cfg_module_common_key(p.key))
			continue;	/* handled by config.c */
		if (!crl_fetch_cfg_key(&p, cfg, &m->fc, eb))
			errbuf_add(eb, &p.knode,
				   "module: unknown key '%s' for prober crl",
				   p.key);
	}
	if (eb->count == before)
		crl_fetch_cfg_finish(&m->fc, n, eb);
	if (eb->count != before) {
		crl_cfg_free(m);
		return -EINVAL;
	}
	*cfgp = m;
	return 0;
}

static int crl_parse_target(const void *cfg, const char *s, void **tp,
			    char *err, size_t errlen)
{
	(void)cfg;
	if (!crl_url_ok(s, err, errlen))
		return -EINVAL;
	*tp = xstrdup(s);
	return *tp ? 0 : -ENOMEM;
}

static void crl_target_free(void *tp)
{
	xfree(tp);
}

static void crl_finish(struct crl_run *r, enum probe_fail why)
{
	struct probe_run *run = r->run;
	const char *mod = probe_module_name(run);
	const char *cut = why == PROBE_FAIL_DEADLINE ? "scrape_deadline"
						     : "timeout";
	enum probe_fail fail = PROBE_OK;

	if (why != PROBE_OK) {
		crl_get_settle(r->base, cut);
		for (size_t i = 0; i < r->ndeltas; i++)
			crl_get_settle(r->deltas[i], cut);
	}
	crl_report(run, mod, r->base, NULL);
	fail = crl_get_fail(r->base, run);
	for (size_t i = 0; i < r->ndeltas; i++) {
		crl_report(run, mod, r->deltas[i],
			   r->base_number[0] ? r->base_number : NULL);
		if (fail == PROBE_OK)
			fail = crl_get_fail(r->deltas[i], run);
	}
	if (fail == PROBE_OK && why != PROBE_OK)
		fail = why;
	if (fail == PROBE_OK)
		run->stage = PROBE_STAGE_DONE;
	probe_done(run, fail);
}

static void on_delta(void *arg, struct crl_get *g)
{
	struct crl_run *r = arg;

	(void)g;
	if (--r->pending == 0 && !r->run->done)
		crl_finish(r, PROBE_OK);
}

static void on_base(void *arg, struct crl_get *g)
{
	struct crl_run *r = arg;
	const struct crl_data *d = g->snap.data;

	if (r->run->done)
		return;
	if (d && r->m->fc.follow_delta && !d->info.is_delta) {
		if (d->info.has_number)
			snprintf(r->base_number, sizeof(r->base_number), "%s",
				 d->info.number);
		/* the delta is only worth anything next to its base: fetch
		 * every location the base names (Windows needs both) */
		for (size_t i = 0; i < d->info.nfreshest; i++) {
			struct crl_get *dg;
			char err[128];

			if (!crl_url_ok(d->info.freshest[i], err, sizeof(err)) ||
			    crl_get_start(r->run, &r->m->fc, d->info.freshest[i],
					  NULL, r->run->deadline, on_delta, r,
					  &dg))
				continue;
			if (dg->entry && r->base_number[0])
				crl_cache_base_seen(dg->entry, r->base_number);
			r->deltas[r->ndeltas++] = dg;
			r->pending++;
		}
	}
	if (r->pending == 0)
		crl_finish(r, PROBE_OK);
}

static int crl_start(struct probe_run *run)
{
	struct crl_run *r = xcalloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->run = run;
	r->m = probe_module_cfg(run);
	run->priv = r;
	run->stage = PROBE_STAGE_FETCH;
	return crl_get_start(run, &r->m->fc, probe_target_name(run), NULL,
			     run->deadline, on_base, r, &r->base);
}

static void crl_cancel(struct probe_run *run, enum probe_fail why)
{
	struct crl_run *r = run->priv;

	if (!r || !r->base) {
		probe_done(run, why);
		return;
	}
	crl_finish(r, why);
}

static void crl_release(struct probe_run *run)
{
	struct crl_run *r = run->priv;

	if (!r)
		return;
	crl_get_free(r->base);
	for (size_t i = 0; i < r->ndeltas; i++)
		crl_get_free(r->deltas[i]);
	xfree(r);
	run->priv = NULL;
}

const struct probe_ops crl_probe_ops = {
	.name = "crl",
	.parse = crl_parse_module,
	.cfg_free = crl_cfg_free,
	.parse_target = crl_parse_target,
	.target_free = crl_target_free,
	.start = crl_start,
	.cancel = crl_cancel,
	.release = crl_release,
};
