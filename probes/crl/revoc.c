#include "revoc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "exporter/config.h"
#include "exporter/expo.h"
#include "exporter/xalloc.h"
#include "probes/crl/crl.h"
#include "probes/http/fetch.h"
#include "probes/ocsp/ocsp.h"
#include "probes/x509/x509.h"

#define REVOC_CDP_MAX 4		/* CRL locations tried per certificate */
#define REVOC_MARGIN_NS 150000000LL	/* report before the run's deadline */

/* ---- configuration ---- */

static int parse_check(const struct cfg_node *n, unsigned *check,
		       struct errbuf *eb)
{
	const char *s = cfg_scalar(n);

	if (s && strcmp(s, "crl") == 0)
		*check = REVOC_CHECK_CRL;
	else if (s && strcmp(s, "ocsp") == 0)
		*check = REVOC_CHECK_OCSP;
	else if (s && strcmp(s, "both") == 0)
		*check = REVOC_CHECK_CRL | REVOC_CHECK_OCSP;
	else if (s && strcmp(s, "none") == 0)
		*check = 0;
	else {
		errbuf_add(eb, n, "revocation must be crl, ocsp, both or none");
		return -EINVAL;
	}
	return 0;
}

void revoc_cfg_free(struct revoc_cfg *rc)
{
	if (!rc)
		return;
	crl_fetch_cfg_cleanup(&rc->fc);
	xfree(rc);
}

int revoc_cfg_parse(const struct cfg_node *n, const struct config *cfg,
		    struct revoc_cfg **out, struct errbuf *eb)
{
	struct revoc_cfg *rc = xcalloc(1, sizeof(*rc));
	unsigned before = eb->count;
	bool have_check = false;

	*out = NULL;
	if (!rc)
		return -ENOMEM;
	crl_fetch_cfg_init(&rc->fc);
	rc->staple = true;
	if (cfg_is_scalar(n)) {
		parse_check(n, &rc->check, eb);
		have_check = true;
	} else if (cfg_is_map(n)) {
		for (size_t i = 0; i < cfg_len(n); i++) {
			struct cfg_pair p;

			cfg_map_pair(n, i, &p);
			if (strcmp(p.key, "check") == 0) {
				parse_check(&p.vnode, &rc->check, eb);
				have_check = true;
			} else if (strcmp(p.key, "ocsp_nonce") == 0) {
				cfg_get_bool(&p.vnode, eb, &rc->ocsp_nonce);
			} else if (strcmp(p.key, "staple") == 0) {
				cfg_get_bool(&p.vnode, eb, &rc->staple);
			} else if (!crl_fetch_cfg_key(&p, cfg, &rc->fc, eb)) {
				errbuf_add(eb, &p.knode,
					   "revocation: unknown key '%s'", p.key);
			}
		}
		if (!have_check)
			errbuf_add(eb, n,
				   "revocation: missing 'check' (crl, ocsp or "
				   "both)");
	} else {
		errbuf_add(eb, n,
			   "revocation: expected crl, ocsp, both or a mapping");
	}
	if (eb->count == before)
		crl_fetch_cfg_finish(&rc->fc, n, eb);
	if (eb->count != before || rc->check == 0) {
		revoc_cfg_free(rc);
		return eb->count != before ? -EINVAL : 0;
	}
	if (!(rc->check & REVOC_CHECK_OCSP))
		rc->staple = false;
	*out = rc;
	return 0;
}

/* ---- the check ---- */

struct rv_crl {
	struct revoc *r;
	char *url;
	struct crl_get *g;
	struct rv_crl *base;	/* for a delta: the base that named it */
	X509 *hint;		/* issuer certificate, a reference */
};

struct rv_ocsp {
	struct revoc *r;
	char *url;
	char *key;		/* in the answer cache */
	bool cached;		/* answered from the cache, no request */
	X509 *issuer;		/* a reference */
	struct ocsp_query q;
	struct fetch *fh;
	bool done;
	const char *cut;	/* cut off by the deadline: why */
	enum fetch_err ferr;
	long http_status;
	double seconds;
	struct ocsp_answer ans;
};

struct rv_item {
	char address[64];
	int position;
	X509 *cert, *issuer;	/* references; issuer may be NULL */
	char subject_cn[256], issuer_cn[256], serial[132];
	struct rv_crl *cdp[REVOC_CDP_MAX];
	size_t ncdp;
	bool has_cdp;		/* any CDP, even one not fetchable */
	bool has_ocsp_url;
	struct rv_ocsp *oq;
};

struct rv_staple {
	char address[64];
	unsigned char *der;	/* NULL: the server stapled nothing */
	size_t len;
};

struct revoc {
	struct probe_run *run;
	const struct revoc_cfg *rc;
	struct rv_item *items;
	size_t nitems, capitems;
	struct rv_crl **crls;
	size_t ncrls, capcrls;
	struct rv_ocsp **ocsps;
	size_t nocsps, capocsps;
	struct rv_staple *staples;
	size_t nstaples, capstaples;
	size_t pending;
	bool going, notified;
	int64_t deadline;
	revoc_done_cb cb;
	void *arg;
	struct loop_timer later, budget;
};

/* ---- OCSP answers, cached process-wide ----
 *
 * A responder is asked about a certificate at most every min_interval (the
 * module's, default 5m), or again once the answer's nextUpdate is past;
 * failures are kept as long, so a dead responder is not hammered. Keyed by
 * responder URL, proxy and CertID. */

#define OCSP_CACHE_BUCKETS 256
#define OCSP_CACHE_MAX 4096

struct ocsp_cached {
	char *key;
	int64_t at;		/* monotonic ns */
	int64_t next_update;	/* wall seconds, 0 = none */
	enum fetch_err ferr;
	long http_status;
	double seconds;
	unsigned char *der;
	size_t len;
	struct ocsp_cached *next;
};

static pthread_mutex_t ocsp_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ocsp_cached *ocsp_buckets[OCSP_CACHE_BUCKETS];
static size_t ocsp_count;

static size_t ocsp_bucket(const char *k)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ULL;
	return (size_t)(h % OCSP_CACHE_BUCKETS);
}

static void ocsp_cached_free(struct ocsp_cached *c)
{
	xfree(c->key);
	xfree(c->der);
	xfree(c);
}

/* A fresh answer for `key` into o (the DER copied), or false. */
static bool ocsp_cache_get(const char *key, double min_interval,
			   struct rv_ocsp *o, unsigned char **der, size_t *len)
{
	int64_t now = loop_now();
	struct ocsp_cached *c;
	bool hit = false;

	*der = NULL;
	*len = 0;
	pthread_mutex_lock(&ocsp_mu);
	for (c = ocsp_buckets[ocsp_bucket(key)]; c; c = c->next)
		if (strcmp(c->key, key) == 0)
			break;
	if (c && now - c->at < (int64_t)(min_interval * 1e9) &&
	    (!c->next_update || c->next_update > (int64_t)time(NULL))) {
		hit = true;
		o->ferr = c->ferr;
		o->http_status = c->http_status;
		o->seconds = c->seconds;
		if (c->der) {
			*der = xmalloc(c->len);
			if (*der) {
				memcpy(*der, c->der, c->len);
				*len = c->len;
			} else {
				hit = false;
			}
		}
	}
	pthread_mutex_unlock(&ocsp_mu);
	return hit;
}

/* Drop the oldest entries of the fullest bucket once over the cap. */
static void ocsp_cache_trim_locked(void)
{
	while (ocsp_count > OCSP_CACHE_MAX) {
		struct ocsp_cached **oldest = NULL;

		for (size_t b = 0; b < OCSP_CACHE_BUCKETS; b++)
			for (struct ocsp_cached **pp = &ocsp_buckets[b]; *pp;
			     pp = &(*pp)->next)
				if (!oldest || (*pp)->at < (*oldest)->at)
					oldest = pp;
		if (!oldest)
			return;
		{
			struct ocsp_cached *c = *oldest;

			*oldest = c->next;
			ocsp_cached_free(c);
			ocsp_count--;
		}
	}
}

static void ocsp_cache_put(const struct rv_ocsp *o, const unsigned char *der,
			   size_t len)
{
	struct ocsp_cached *c = xcalloc(1, sizeof(*c)), **pp;
	size_t b = ocsp_bucket(o->key);

	if (!c)
		return;
	c->key = xstrdup(o->key);
	if (der && len) {
		c->der = xmalloc(len);
		if (c->der) {
			memcpy(c->der, der, len);
			c->len = len;
		}
	}
	if (!c->key || (der && len && !c->der)) {
		ocsp_cached_free(c);
		return;
	}
	c->at = loop_now();
	c->ferr = o->ferr;
	c->http_status = o->http_status;
	c->seconds = o->seconds;
	if (o->ans.err == OCSP_OK && o->ans.has_next_update)
		c->next_update = o->ans.next_update;
	pthread_mutex_lock(&ocsp_mu);
	for (pp = &ocsp_buckets[b]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key, c->key) == 0) {
			struct ocsp_cached *old = *pp;

			*pp = old->next;
			ocsp_cached_free(old);
			ocsp_count--;
			break;
		}
	c->next = ocsp_buckets[b];
	ocsp_buckets[b] = c;
	ocsp_count++;
	ocsp_cache_trim_locked();
	pthread_mutex_unlock(&ocsp_mu);
}

static char *ocsp_key(const char *url, const char *proxy, OCSP_CERTID *id)
{
	unsigned char *der = NULL;
	int n = i2d_OCSP_CERTID(id, &der);
	char *key, *p;

	if (n <= 0)
		return NULL;
	key = xmalloc(strlen(url) + (proxy ? strlen(proxy) : 0) + 2 * (size_t)n + 3);
	if (key) {
		p = key + sprintf(key, "%s\x1f%s\x1f", url, proxy ? proxy : "");
		for (int i = 0; i < n; i++)
			p += sprintf(p, "%02x", der[i]);
	}
	OPENSSL_free(der);
	return key;
}

static const struct metric_desc M_REVOKED = {
	"pki_cert_revoked",
	"Whether the certificate is revoked (1) or not (0), by source: crl "
	"(its CRL distribution points, with delta CRLs) or ocsp (its AIA "
	"responder, else a verified stapled response). Absent when unknown.",
	METRIC_GAUGE};
static const struct metric_desc M_UNKNOWN = {
	"pki_cert_revocation_unknown",
	"1 when the revocation status of a certificate could not be "
	"determined from this source, with the reason.",
	METRIC_GAUGE};
static const struct metric_desc M_O_SUCCESS = {
	"pki_ocsp_request_success",
	"Whether the OCSP responder (or stapled response) gave a status for "
	"the certificate (1) or not (0).",
	METRIC_GAUGE};
static const struct metric_desc M_O_FAILURE = {
	"pki_ocsp_failure_info",
	"Why no OCSP status was obtained; value 1, only on failure.",
	METRIC_GAUGE};
static const struct metric_desc M_O_DURATION = {
	"pki_ocsp_duration_seconds", "How long the OCSP request took.",
	METRIC_GAUGE};
static const struct metric_desc M_O_HTTP = {
	"pki_ocsp_http_status",
	"HTTP status of the OCSP request (0: no HTTP answer).", METRIC_GAUGE};
static const struct metric_desc M_O_RESP_STATUS = {
	"pki_ocsp_response_status",
	"OCSPResponseStatus (RFC 6960): 0 successful, 1 malformedRequest, 2 "
	"internalError, 3 tryLater, 5 sigRequired, 6 unauthorized.",
	METRIC_GAUGE};
static const struct metric_desc M_O_CERT_STATUS = {
	"pki_ocsp_cert_status",
	"The certificate's status in the OCSP answer: good, revoked or "
	"unknown; one series per status, 0/1.",
	METRIC_GAUGE};
static const struct metric_desc M_O_THIS = {
	"pki_ocsp_this_update_timestamp_seconds",
	"thisUpdate of the OCSP answer.", METRIC_GAUGE};
static const struct metric_desc M_O_NEXT = {
	"pki_ocsp_next_update_timestamp_seconds",
	"nextUpdate of the OCSP answer (absent when the responder gives "
	"none).",
	METRIC_GAUGE};
static const struct metric_desc M_O_REVOKED_AT = {
	"pki_ocsp_revocation_timestamp_seconds",
	"When the certificate was revoked, per the OCSP answer.",
	METRIC_GAUGE};
static const struct metric_desc M_O_SIG = {
	"pki_ocsp_signature_valid",
	"Whether the answer is signed by the issuer or a responder it "
	"authorised.",
	METRIC_GAUGE};
static const struct metric_desc M_O_SIGNER = {
	"pki_ocsp_responder_cert_not_after_timestamp_seconds",
	"notAfter of the certificate that signed the OCSP answer (AD CS "
	"Online Responder certificates live for about two weeks).",
	METRIC_GAUGE};
static const struct metric_desc M_O_CACHE = {
	"pki_ocsp_from_cache",
	"1 when the responder's answer was reused from the cache (asked less "
	"than min_interval ago and still before its nextUpdate).",
	METRIC_GAUGE};
static const struct metric_desc M_O_STAPLED = {
	"pki_ocsp_stapled",
	"Whether the server stapled an OCSP response when asked (1) or not "
	"(0). Without one, no stapled status is reported.",
	METRIC_GAUGE};

struct revoc *revoc_new(struct probe_run *run, const struct revoc_cfg *rc)
{
	struct revoc *r = xcalloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->run = run;
	r->rc = rc;
	r->deadline = run->deadline - REVOC_MARGIN_NS;
	loop_timer_init(&r->later, NULL, r);
	loop_timer_init(&r->budget, NULL, r);
	return r;
}

static void check_done(struct revoc *r)
{
	if (!r->going || r->pending || r->notified)
		return;
	r->notified = true;
	loop_timer_cancel(r->run->loop, &r->budget);
	loop_timer_cancel(r->run->loop, &r->later);
	if (r->cb)
		r->cb(r->arg);
}

static bool http_url(const char *u)
{
	return strncasecmp(u, "http://", 7) == 0 ||
	       strncasecmp(u, "https://", 8) == 0;
}

static void on_crl(void *arg, struct crl_get *g);

/* The run's get for `url`, started once. */
static struct rv_crl *crl_need(struct revoc *r, const char *url, X509 *hint,
			       struct rv_crl *base)
{
	STACK_OF(X509) *hints = NULL;
	struct rv_crl *c;
	char err[128];

	for (size_t i = 0; i < r->ncrls; i++)
		if (strcmp(r->crls[i]->url, url) == 0)
			return r->crls[i];
	if (!crl_url_ok(url, err, sizeof(err)) ||
	    xgrow((void **)&r->crls, &r->capcrls, r->ncrls + 1,
		  sizeof(*r->crls)))
		return NULL;
	c = xcalloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->r = r;
	c->base = base;
	c->url = xstrdup(url);
	if (hint && X509_up_ref(hint))
		c->hint = hint;
	if (hint) {
		hints = sk_X509_new_null();
		if (hints)
			sk_X509_push(hints, hint);
	}
	r->crls[r->ncrls++] = c;
	if (!c->url || crl_get_start(r->run, &r->rc->fc, url, hints, r->deadline,
				     on_crl, c, &c->g) == 0)
		r->pending += c->g ? 1 : 0;
	sk_X509_free(hints);	/* the get took its own references */
	return c;
}

static void on_crl(void *arg, struct crl_get *g)
{
	struct rv_crl *c = arg;
	struct revoc *r = c->r;
	const struct crl_data *d = g->snap.data;

	r->pending--;
	if (!r->notified && !c->base && d && !d->info.is_delta &&
	    r->rc->fc.follow_delta) {
		for (size_t i = 0; i < d->info.nfreshest; i++) {
			struct rv_crl *dc =
				crl_need(r, d->info.freshest[i], c->hint, c);

			if (dc && dc->g && dc->g->entry && d->info.has_number)
				crl_cache_base_seen(dc->g->entry, d->info.number);
		}
	}
	check_done(r);
}

static void on_ocsp(void *arg, struct fetch_result *res)
{
	struct rv_ocsp *o = arg;
	struct revoc *r = o->r;

	o->done = true;
	o->ferr = res->err;
	o->http_status = res->http_status;
	o->seconds = res->seconds;
	if (res->err == FETCH_OK)
		ocsp_answer_parse(res->body, res->len, &o->q, o->q.id, o->issuer,
				  &o->ans);
	/* a nonce that does not match is not worth keeping; nor is a
	 * timeout, which says more about the tls run's leftover budget
	 * than about the responder (the next scrape asks again) */
	if (o->key && o->ans.err != OCSP_ERR_NONCE &&
	    res->err != FETCH_ERR_TIMEOUT)
		ocsp_cache_put(o, res->err == FETCH_OK ? res->body : NULL,
			       res->err == FETCH_OK ? res->len : 0);
	r->pending--;
	check_done(r);
}

static const char *effective_proxy(const struct revoc *r)
{
	if (r->rc->fc.proxy_set)
		return r->rc->fc.proxy;
	return r->run->config ? r->run->config->global.proxy : NULL;
}

/* The query for (responder, certificate), shared by every address that
 * serves the same certificate. */
static struct rv_ocsp *ocsp_need(struct revoc *r, const char *url, X509 *cert,
				 X509 *issuer)
{
	struct fetcher *f = probe_fetcher(r->run);
	struct rv_ocsp *o;
	struct fetch_opts opt;
	int64_t left = r->deadline - loop_now();

	for (size_t i = 0; i < r->nocsps; i++) {
		OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), cert, issuer);
		bool same = id && strcmp(r->ocsps[i]->url, url) == 0 &&
			    OCSP_id_cmp(id, r->ocsps[i]->q.id) == 0;

		OCSP_CERTID_free(id);
		if (same)
			return r->ocsps[i];
	}
	if (!f || xgrow((void **)&r->ocsps, &r->capocsps, r->nocsps + 1,
			sizeof(*r->ocsps)))
		return NULL;
	o = xcalloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->r = r;
	o->url = xstrdup(url);
	if (!o->url || ocsp_query_init(&o->q, cert, issuer, r->rc->ocsp_nonce) ||
	    !X509_up_ref(issuer)) {
		ocsp_query_cleanup(&o->q);
		xfree(o->url);
		xfree(o);
		return NULL;
	}
	o->issuer = issuer;
	r->ocsps[r->nocsps++] = o;
	o->key = ocsp_key(url, effective_proxy(r), o->q.id);
	if (o->key) {
		unsigned char *der;
		size_t len;

		if (ocsp_cache_get(o->key, r->rc->fc.policy.min_interval, o,
				   &der, &len)) {
			/* the nonce was checked when it was fetched */
			if (o->ferr == FETCH_OK)
				ocsp_answer_parse(der, len, NULL, o->q.id, issuer,
						  &o->ans);
			xfree(der);
			o->done = true;
			o->cached = true;
			return o;
		}
	}
	memset(&opt, 0, sizeof(opt));
	opt.url = url;
	opt.proxy = effective_proxy(r);
	opt.no_proxy = r->rc->fc.no_proxy;
	opt.proxy_user = r->rc->fc.proxy_user;
	opt.proxy_password = r->rc->fc.proxy_password;
	opt.ca_file = r->rc->fc.ca_file;
	opt.post = o->q.der;
	opt.post_len = o->q.len;
	opt.content_type = "application/ocsp-request";
	opt.max_bytes = OCSP_MAX_BYTES;
	opt.timeout_ms = left > 1000000 ? left / 1000000 : 1;
	if (fetch_start(f, &opt, on_ocsp, o, &o->fh)) {
		o->done = true;
		o->ferr = FETCH_ERR_INTERNAL;
	} else {
		r->pending++;
	}
	return o;
}

int revoc_add(struct revoc *r, const char *address, int position, X509 *cert,
	      X509 *issuer)
{
	struct x509_facts f;
	struct rv_item *it;

	if (X509_self_signed(cert, 0) == 1)
		return 0;	/* a trust anchor: nothing revokes it */
	if (xgrow((void **)&r->items, &r->capitems, r->nitems + 1,
		  sizeof(*r->items)))
		return -ENOMEM;
	if (x509_facts_init(&f, cert))
		return -ENOMEM;
	it = &r->items[r->nitems];
	memset(it, 0, sizeof(*it));
	snprintf(it->address, sizeof(it->address), "%s", address);
	it->position = position;
	snprintf(it->subject_cn, sizeof(it->subject_cn), "%s", f.subject_cn);
	snprintf(it->issuer_cn, sizeof(it->issuer_cn), "%s", f.issuer_cn);
	snprintf(it->serial, sizeof(it->serial), "%s", f.serial);
	if (!X509_up_ref(cert)) {
		x509_facts_cleanup(&f);
		return -ENOMEM;
	}
	it->cert = cert;
	if (issuer && X509_up_ref(issuer))
		it->issuer = issuer;
	r->nitems++;
	it->has_cdp = f.cdp[0] != '\0';
	if (r->rc->check & REVOC_CHECK_CRL) {
		const char *s = f.cdp;

		while (*s && it->ncdp < REVOC_CDP_MAX) {
			size_t n = strcspn(s, " ");
			char *url = xstrndup(s, n);
			struct rv_crl *c = url ? crl_need(r, url, issuer, NULL)
					       : NULL;

			if (c)
				it->cdp[it->ncdp++] = c;
			xfree(url);
			s += n;
			s += strspn(s, " ");
		}
	}
	if ((r->rc->check & REVOC_CHECK_OCSP) && it->issuer) {
		const char *s = f.ocsp;

		/* the first http(s) responder, as clients use it */
		while (*s) {
			size_t n = strcspn(s, " ");
			char *url = xstrndup(s, n);

			if (url && http_url(url)) {
				it->has_ocsp_url = true;
				it->oq = ocsp_need(r, url, cert, it->issuer);
				xfree(url);
				break;
			}
			xfree(url);
			s += n;
			s += strspn(s, " ");
		}
	} else if (r->rc->check & REVOC_CHECK_OCSP) {
		it->has_ocsp_url = f.ocsp[0] != '\0';
	}
	x509_facts_cleanup(&f);
	return 0;
}

int revoc_add_staple(struct revoc *r, const char *address,
		     const unsigned char *der, size_t len)
{
	struct rv_staple *s;

	if (xgrow((void **)&r->staples, &r->capstaples, r->nstaples + 1,
		  sizeof(*r->staples)))
		return -ENOMEM;
	s = &r->staples[r->nstaples];
	memset(s, 0, sizeof(*s));
	snprintf(s->address, sizeof(s->address), "%s", address);
	if (der && len) {
		s->der = xmalloc(len);
		if (!s->der)
			return -ENOMEM;
		memcpy(s->der, der, len);
		s->len = len;
	}
	r->nstaples++;
	return 0;
}

static void on_later(struct loop_timer *t)
{
	check_done(t->arg);
}

/* The run's deadline is near: stop waiting, report what there is. */
static void on_budget(struct loop_timer *t)
{
	struct revoc *r = t->arg;
	/* name what actually ran out: the module timeout or the scrape's */
	const char *why = r->run->deadline_is_scrape ? "scrape_deadline"
						     : "timeout";

	for (size_t i = 0; i < r->nocsps; i++) {
		struct rv_ocsp *o = r->ocsps[i];

		if (!o->done) {
			fetch_cancel(&o->fh);
			o->done = true;
			o->cut = why;
		}
	}
	for (size_t i = 0; i < r->ncrls; i++)
		if (r->crls[i]->g)
			crl_get_settle(r->crls[i]->g, why);
	r->pending = 0;
	check_done(r);
}

void revoc_go(struct revoc *r, revoc_done_cb cb, void *arg)
{
	r->cb = cb;
	r->arg = arg;
	r->going = true;
	r->later.cb = on_later;
	r->budget.cb = on_budget;
	loop_timer_set(r->run->loop, &r->budget,
		       r->deadline > loop_now() ? r->deadline : loop_now());
	if (r->pending == 0)
		loop_timer_set(r->run->loop, &r->later, loop_now());
}

/* ---- the verdicts ---- */

#define LABELS(it)                                                          \
	"module", probe_module_name(r->run), "target",                      \
		probe_target_name(r->run), "address", (it)->address,        \
		"position", pos, "subject_cn", (it)->subject_cn, "issuer_cn", \
		(it)->issuer_cn, "serial", (it)->serial

static bool crl_usable(const struct crl_data *d, const X509 *cert,
		       int64_t now, const char **why)
{
	const struct crl_info *i = &d->info;

	if (X509_NAME_cmp(i->issuer_name, X509_get_issuer_name(cert)) != 0 &&
	    !i->indirect) {
		*why = "crl_issuer_mismatch";
		return false;
	}
	if (i->has_next_update && i->next_update < now) {
		*why = "crl_expired";
		return false;
	}
	if (i->sig == CRL_SIG_INVALID) {
		*why = "crl_signature_invalid";
		return false;
	}
	if (i->unknown_critical) {
		*why = "crl_unknown_critical_extension";
		return false;
	}
	return true;
}

/* 1 revoked, 0 not, -1 unknown (with *why). The first CDP whose CRL is
 * usable decides, as a client going down the list would; a usable delta
 * the base names has the last word on a serial. */
static int crl_verdict(const struct revoc *r, const struct rv_item *it,
		       const char **why)
{
	int64_t now = (int64_t)time(NULL);
	const char *first_why = NULL;

	if (!it->has_cdp) {
		*why = "no_cdp";
		return -1;
	}
	for (size_t k = 0; k < it->ncdp; k++) {
		const struct rv_crl *c = it->cdp[k];
		const struct crl_data *d = c->g ? c->g->snap.data : NULL;
		const char *w = NULL;
		bool removed = false;
		int revoked;

		if (!c->g)
			w = "crl_unavailable";
		else if (c->g->skipped)
			w = "crl_skipped";
		else if (!d)
			w = "crl_unavailable";
		else if (d->info.is_delta)
			w = "crl_is_delta";
		else
			crl_usable(d, it->cert, now, &w);
		if (w) {
			if (!first_why)
				first_why = w;
			continue;
		}
		revoked = crl_lookup(&d->info, X509_get0_serialNumber(it->cert),
				     X509_get_issuer_name(it->cert), &removed) &&
			  !removed;
		for (size_t j = 0; j < r->ncrls; j++) {
			const struct rv_crl *dc = r->crls[j];
			const struct crl_data *dd =
				dc->base == c && dc->g ? dc->g->snap.data : NULL;
			const char *dw;

			if (!dd || !dd->info.is_delta ||
			    !crl_usable(dd, it->cert, now, &dw) ||
			    !d->info.has_number ||
			    crl_number_cmp(d->info.number,
					   dd->info.base_number) < 0)
				continue;
			if (crl_lookup(&dd->info, X509_get0_serialNumber(it->cert),
				       X509_get_issuer_name(it->cert), &removed))
				revoked = !removed;
		}
		return revoked;
	}
	*why = first_why ? first_why : "crl_unavailable";
	return -1;
}

/* OCSP samples of one answer; returns 1/0/-1 like crl_verdict. */
static int ocsp_emit(struct revoc *r, const struct rv_item *it,
		     const char *responder, const char *source,
		     const struct ocsp_answer *a, const char *fail,
		     bool attempted, long http_status, double seconds,
		     int cached, const char **why)
{
	struct expo_set *out = r->run->out;
	uint32_t o = r->run->order;
	char pos[12];
	bool ok = !fail && a->err == OCSP_OK;

	snprintf(pos, sizeof(pos), "%d", it->position);
	expo_add(out, &M_O_SUCCESS, o, ok, LABELS(it), "responder", responder,
		 "source", source, NULL);
	if (!ok)
		expo_add(out, &M_O_FAILURE, o, 1, LABELS(it), "responder",
			 responder, "source", source, "reason",
			 fail ? fail : ocsp_err_str(a->err), NULL);
	if (cached >= 0)
		expo_add(out, &M_O_CACHE, o, cached, LABELS(it), "responder",
			 responder, "source", source, NULL);
	if (attempted) {
		expo_add(out, &M_O_DURATION, o, seconds, LABELS(it),
			 "responder", responder, "source", source, NULL);
		expo_add(out, &M_O_HTTP, o, (double)http_status, LABELS(it),
			 "responder", responder, "source", source, NULL);
	}
	if (!fail && a->response_status >= 0)
		expo_add(out, &M_O_RESP_STATUS, o, a->response_status,
			 LABELS(it), "responder", responder, "source", source,
			 NULL);
	if (!fail && a->has_signer)
		expo_add(out, &M_O_SIGNER, o, (double)a->signer_not_after,
			 LABELS(it), "responder", responder, "source", source,
			 NULL);
	if (!fail && it->issuer && a->err != OCSP_ERR_MALFORMED &&
	    a->err != OCSP_ERR_STATUS && a->err != OCSP_ERR_NOT_BASIC)
		expo_add(out, &M_O_SIG, o, a->signature_valid, LABELS(it),
			 "responder", responder, "source", source, NULL);
	if (!ok) {
		*why = fail ? fail : ocsp_err_str(a->err);
		return -1;
	}
	for (int s = 0; s < OCSP_CERT__COUNT; s++)
		expo_add(out, &M_O_CERT_STATUS, o, (int)a->status == s,
			 LABELS(it), "responder", responder, "source", source,
			 "status", ocsp_cert_status_str(s), NULL);
	expo_add(out, &M_O_THIS, o, (double)a->this_update, LABELS(it),
		 "responder", responder, "source", source, NULL);
	if (a->has_next_update)
		expo_add(out, &M_O_NEXT, o, (double)a->next_update, LABELS(it),
			 "responder", responder, "source", source, NULL);
	if (a->has_revoked_at)
		expo_add(out, &M_O_REVOKED_AT, o, (double)a->revoked_at,
			 LABELS(it), "responder", responder, "source", source,
			 NULL);
	if (!a->signature_valid) {
		*why = it->issuer ? "signature_invalid" : "no_issuer";
		return -1;
	}
	if (a->status == OCSP_CERT_UNKNOWN) {
		*why = "status_unknown";
		return -1;
	}
	return a->status == OCSP_CERT_REVOKED;
}

static const char *ocsp_fail(const struct rv_ocsp *q)
{
	if (q->cut)
		return q->cut;
	if (!q->done)
		return "not_finished";
	if (q->ferr != FETCH_OK)
		return fetch_err_str(q->ferr);
	return NULL;
}

static const struct rv_staple *staple_of(const struct revoc *r,
					 const char *address)
{
	for (size_t i = 0; i < r->nstaples; i++)
		if (strcmp(r->staples[i].address, address) == 0)
			return &r->staples[i];
	return NULL;
}

static void emit_verdict(struct revoc *r, const struct rv_item *it,
			 const char *source, int v, const char *why)
{
	uint32_t o = r->run->order;
	char pos[12];

	snprintf(pos, sizeof(pos), "%d", it->position);
	if (v >= 0)
		expo_add(r->run->out, &M_REVOKED, o, v, LABELS(it), "source",
			 source, NULL);
	else
		expo_add(r->run->out, &M_UNKNOWN, o, 1, LABELS(it), "source",
			 source, "reason", why, NULL);
}

static void report_item(struct revoc *r, const struct rv_item *it)
{
	const char *why = NULL;
	int v;

	if (r->rc->check & REVOC_CHECK_CRL) {
		v = crl_verdict(r, it, &why);
		emit_verdict(r, it, "crl", v, why);
	}
	if (!(r->rc->check & REVOC_CHECK_OCSP))
		return;
	v = -1;
	why = !it->has_ocsp_url ? "no_ocsp_url"
	      : !it->issuer	? "no_issuer"
				: "ocsp_unavailable";
	if (it->oq) {
		const char *f = ocsp_fail(it->oq);

		v = ocsp_emit(r, it, it->oq->url, "responder", &it->oq->ans, f,
			      it->oq->done && !it->oq->cut,
			      it->oq->http_status, it->oq->seconds,
			      it->oq->cached, &why);
	}
	if (it->position == 0 && r->rc->staple) {
		const struct rv_staple *s = staple_of(r, it->address);

		if (s && s->der) {
			struct ocsp_answer a;
			OCSP_CERTID *id = it->issuer
						  ? OCSP_cert_to_id(EVP_sha1(),
								    it->cert,
								    it->issuer)
						  : NULL;
			const char *sw = NULL;
			int sv;

			ocsp_answer_parse(s->der, s->len, NULL, id, it->issuer,
					  &a);
			OCSP_CERTID_free(id);
			sv = ocsp_emit(r, it, "", "stapled", &a, NULL, false, 0,
				       0, -1, &sw);
			/* a verified staple stands in for a silent responder;
			 * no staple never reads as good */
			if (v < 0 && sv >= 0)
				v = sv;
		}
	}
	emit_verdict(r, it, "ocsp", v, why);
}

void revoc_report(struct revoc *r, enum probe_fail why)
{
	const char *cut = why == PROBE_FAIL_DEADLINE ? "scrape_deadline"
						     : "timeout";
	const char *mod = probe_module_name(r->run);

	loop_timer_cancel(r->run->loop, &r->budget);
	loop_timer_cancel(r->run->loop, &r->later);
	for (size_t i = 0; i < r->nocsps; i++) {
		struct rv_ocsp *o = r->ocsps[i];

		if (!o->done) {
			fetch_cancel(&o->fh);
			o->done = true;
			o->cut = cut;
		}
	}
	for (size_t i = 0; i < r->ncrls; i++) {
		struct rv_crl *c = r->crls[i];
		const struct crl_data *bd;

		if (!c->g)
			continue;
		crl_get_settle(c->g, cut);
		bd = c->base && c->base->g ? c->base->g->snap.data : NULL;
		crl_report(r->run, mod, c->g,
			   bd && bd->info.has_number ? bd->info.number : NULL);
	}
	for (size_t i = 0; i < r->nstaples; i++)
		expo_add(r->run->out, &M_O_STAPLED, r->run->order,
			 r->staples[i].der != NULL, "module", mod, "target",
			 probe_target_name(r->run), "address",
			 r->staples[i].address, NULL);
	for (size_t i = 0; i < r->nitems; i++)
		report_item(r, &r->items[i]);
}

void revoc_free(struct revoc *r)
{
	if (!r)
		return;
	loop_timer_cancel(r->run->loop, &r->budget);
	loop_timer_cancel(r->run->loop, &r->later);
	for (size_t i = 0; i < r->ncrls; i++) {
		crl_get_free(r->crls[i]->g);
		X509_free(r->crls[i]->hint);
		xfree(r->crls[i]->url);
		xfree(r->crls[i]);
	}
	for (size_t i = 0; i < r->nocsps; i++) {
		fetch_cancel(&r->ocsps[i]->fh);
		ocsp_query_cleanup(&r->ocsps[i]->q);
		X509_free(r->ocsps[i]->issuer);
		xfree(r->ocsps[i]->key);
		xfree(r->ocsps[i]->url);
		xfree(r->ocsps[i]);
	}
	for (size_t i = 0; i < r->nitems; i++) {
		X509_free(r->items[i].cert);
		X509_free(r->items[i].issuer);
	}
	for (size_t i = 0; i < r->nstaples; i++)
		xfree(r->staples[i].der);
	xfree(r->items);
	xfree(r->crls);
	xfree(r->ocsps);
	xfree(r->staples);
	xfree(r);
}
