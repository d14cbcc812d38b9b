#include "crl_get.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exporter/buf.h"
#include "exporter/config.h"
#include "exporter/log.h"
#include "exporter/xalloc.h"
#include "probes/file/file.h"
#include "probes/probe.h"
#include "probes/x509/x509_load.h"

#define FETCH_MARGIN_NS 50000000LL	/* end a fetch before its run's deadline */

/* ---- configuration ---- */

void crl_fetch_cfg_init(struct crl_fetch_cfg *fc)
{
	memset(fc, 0, sizeof(*fc));
	fc->max_bytes = FETCH_DEFAULT_MAX_BYTES;
	fc->policy.min_interval = 300;
	fc->policy.max_interval = 3600;
	fc->follow_delta = true;
}

void crl_fetch_cfg_cleanup(struct crl_fetch_cfg *fc)
{
	xfree(fc->proxy);
	xfree(fc->no_proxy);
	xfree(fc->proxy_user);
	file_password_free(fc->proxy_password);
	xfree(fc->ca_file);
	xfree(fc->issuer_file);
	sk_X509_pop_free(fc->issuers, X509_free);
	xfree(fc->ldap_server);
	xfree(fc->ldap_bind_dn);
	file_password_free(fc->ldap_password);
	memset(fc, 0, sizeof(*fc));
}

int crl_size_parse(const char *s, size_t *out)
{
	static const struct {
		const char *unit;
		unsigned long long mul;
	} units[] = {
		{"", 1},	   {"B", 1},
		{"KiB", 1ULL << 10}, {"MiB", 1ULL << 20}, {"GiB", 1ULL << 30},
		{"kB", 1000},	   {"KB", 1000},	{"MB", 1000000},
		{"GB", 1000000000},
	};
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > SIZE_MAX / units[i].mul)
			return -ERANGE;
		*out = (size_t)(v * units[i].mul);
		return 0;
	}
	return -EINVAL;
}

static bool scheme_is(const char *url, const char *scheme)
{
	size_t n = strlen(scheme);

	return strncasecmp(url, scheme, n) == 0 && url[n] == ':' &&
	       url[n + 1] == '/' && url[n + 2] == '/';
}

bool crl_url_ok(const char *url, char *err, size_t errlen)
{
	if (!(scheme_is(url, "http") || scheme_is(url, "https") ||
	      scheme_is(url, "ldap") || scheme_is(url, "ldaps") ||
	      scheme_is(url, "file"))) {
		snprintf(err, errlen,
			 "expected an http://, https://, ldap:// or file:// URL");
		return false;
	}
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			snprintf(err, errlen,
				 "spaces and control characters must be "
				 "percent-encoded (%%20)");
			return false;
		}
	if (strlen(url) > 4096) {
		snprintf(err, errlen, "URL longer than 4096 bytes");
		return false;
	}
	return true;
}

static int get_password_file(const struct cfg_node *n,
			     const struct config *cfg, struct errbuf *eb,
			     char **out)
{
	char *path = NULL;
	int rc;

	if (cfg_get_path(n, cfg, eb, &path))
		return -EINVAL;
	file_password_free(*out);
	*out = NULL;
	rc = file_password_read(path, out);
	if (rc)
		errbuf_add(eb, n, "cannot read password file '%s': %s", path,
			   rc == -EFBIG ? "too long" : strerror(-rc));
	xfree(path);
	return rc ? -EINVAL : 0;
}

static int get_secret(const struct cfg_node *n, struct errbuf *eb, char **out)
{
	char *s = NULL;

	if (cfg_get_string(n, eb, &s))
		return -EINVAL;
	file_password_free(*out);
	*out = s;
	return 0;
}

static void parse_ldap(const struct cfg_node *n, const struct config *cfg,
		       struct crl_fetch_cfg *fc, struct errbuf *eb)
{
	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "ldap: expected a mapping");
		return;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;

		cfg_map_pair(n, i, &p);
		if (strcmp(p.key, "server") == 0) {
			char err[128];

			if (cfg_get_string(&p.vnode, eb, &fc->ldap_server) == 0 &&
			    (!(scheme_is(fc->ldap_server, "ldap") ||
			       scheme_is(fc->ldap_server, "ldaps")) ||
			     !crl_url_ok(fc->ldap_server, err, sizeof(err))))
				errbuf_add(eb, &p.vnode,
					   "ldap.server must be ldap://host[:port] "
					   "or ldaps://host[:port]");
		} else if (strcmp(p.key, "bind_dn") == 0) {
			cfg_get_string(&p.vnode, eb, &fc->ldap_bind_dn);
		} else if (strcmp(p.key, "password_file") == 0) {
			get_password_file(&p.vnode, cfg, eb, &fc->ldap_password);
		} else if (strcmp(p.key, "password") == 0) {
			get_secret(&p.vnode, eb, &fc->ldap_password);
		} else if (strcmp(p.key, "anonymous") == 0) {
			cfg_get_bool(&p.vnode, eb, &fc->ldap_anonymous);
		} else {
			errbuf_add(eb, &p.knode, "ldap: unknown key '%s'", p.key);
		}
	}
}

int crl_fetch_cfg_key(const struct cfg_pair *p, const struct config *cfg,
		      struct crl_fetch_cfg *fc, struct errbuf *eb)
{
	const char *s = cfg_scalar(&p->vnode);
	double d;

	if (strcmp(p->key, "proxy") == 0) {
		if (cfg_get_string(&p->vnode, eb, &fc->proxy) == 0) {
			fc->proxy_set = true;
			if (*fc->proxy && !strstr(fc->proxy, "://"))
				errbuf_add(eb, &p->vnode,
					   "proxy must be a URL such as "
					   "http://proxy.corp.example:3128 (or \"\" "
					   "for none)");
		}
	} else if (strcmp(p->key, "no_proxy") == 0) {
		char **v = NULL;
		size_t n = 0;
		struct buf b;

		if (cfg_get_strings(&p->vnode, eb, &v, &n))
			return 1;
		buf_init(&b, 16384);
		for (size_t k = 0; k < n; k++) {
			if (k)
				buf_putc(&b, ',');
			buf_puts(&b, v[k]);
		}
		cfg_strings_free(v, n);
		xfree(fc->no_proxy);
		fc->no_proxy = buf_steal(&b, NULL);
		buf_cleanup(&b);
	} else if (strcmp(p->key, "proxy_user") == 0) {
		cfg_get_string(&p->vnode, eb, &fc->proxy_user);
	} else if (strcmp(p->key, "proxy_password") == 0) {
		get_secret(&p->vnode, eb, &fc->proxy_password);
	} else if (strcmp(p->key, "proxy_password_file") == 0) {
		get_password_file(&p->vnode, cfg, eb, &fc->proxy_password);
	} else if (strcmp(p->key, "ca_file") == 0) {
		cfg_get_path(&p->vnode, cfg, eb, &fc->ca_file);
	} else if (strcmp(p->key, "issuer_file") == 0) {
		cfg_get_path(&p->vnode, cfg, eb, &fc->issuer_file);
	} else if (strcmp(p->key, "max_bytes") == 0) {
		if (!s || crl_size_parse(s, &fc->max_bytes) ||
		    fc->max_bytes < 1024 || fc->max_bytes > (1ULL << 30))
			errbuf_add(eb, &p->vnode,
				   "max_bytes must be a size from 1KiB to 1GiB "
				   "(e.g. 64MiB)");
	} else if (strcmp(p->key, "min_interval") == 0) {
		if (cfg_get_duration(&p->vnode, eb, &d) == 0)
			fc->policy.min_interval = d;
	} else if (strcmp(p->key, "max_interval") == 0) {
		if (cfg_get_duration(&p->vnode, eb, &d) == 0)
			fc->policy.max_interval = d;
	} else if (strcmp(p->key, "follow_delta") == 0) {
		cfg_get_bool(&p->vnode, eb, &fc->follow_delta);
	} else if (strcmp(p->key, "ldap") == 0) {
		parse_ldap(&p->vnode, cfg, fc, eb);
	} else {
		return 0;
	}
	return 1;
}

int crl_fetch_cfg_finish(struct crl_fetch_cfg *fc, const struct cfg_node *at,
			 struct errbuf *eb)
{
	struct x509_loaded l;

	if (fc->policy.max_interval < fc->policy.min_interval)
		fc->policy.max_interval = fc->policy.min_interval;
	if (fc->ldap_password && !fc->ldap_bind_dn) {
		errbuf_add(eb, at, "ldap: a password needs a bind_dn");
		return -EINVAL;
	}
	if (!fc->issuer_file)
		return 0;
	memset(&l, 0, sizeof(l));
	if (x509_load_file(fc->issuer_file, NULL, 0, &l)) {
		x509_loaded_cleanup(&l);
		errbuf_add(eb, at, "out of memory");
		return -ENOMEM;
	}
	if (l.err != X509_LOAD_OK || sk_X509_num(l.certs) == 0) {
		errbuf_add(eb, at, "issuer_file '%s': %s", fc->issuer_file,
			   l.err != X509_LOAD_OK ? x509_load_err_str(l.err)
						 : "no certificate in it");
		x509_loaded_cleanup(&l);
		return -EINVAL;
	}
	fc->issuers = l.certs;
	l.certs = NULL;
	x509_loaded_cleanup(&l);
	return 0;
}

/* ---- one get ---- */

static void get_step(struct crl_get *g);

static void get_finish(struct crl_get *g)
{
	g->done = true;
	loop_timer_set(g->run->loop, &g->later, loop_now());
}

static void on_later(struct loop_timer *t)
{
	struct crl_get *g = t->arg;

	if (g->cb)
		g->cb(g->arg, g);
}

/* One eventfd per event loop for all of that loop's gets that wait on
 * another scrape's fetch: the cache writes it when an entry's fetch ends,
 * and the loop then steps each waiting get the cache let go. Refcounted by
 * the gets, so it lives exactly as long as its loop uses it, and a
 * thousand runs waiting for one CRL cost one descriptor. */
struct crl_hub {
	struct loop *loop;
	int efd;
	struct loop_io io;
	int refs;
	struct crl_get *waiting;	/* linked by hub_next */
	struct crl_hub *next;
};

static pthread_mutex_t hubs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct crl_hub *hubs;

static void hub_wake(struct loop_io *io, uint32_t events)
{
	struct crl_hub *hb = io->arg;
	struct crl_get *list = hb->waiting, *ready = NULL;
	uint64_t v;

	(void)events;
	if (read(hb->efd, &v, sizeof(v)) == -1)
		v = 0;	/* EAGAIN: a spurious wake-up, look anyway */
	hb->waiting = NULL;
	while (list) {
		struct crl_get *g = list;

		list = g->hub_next;
		if (crl_cache_waiting(&g->w)) {
			g->hub_next = hb->waiting;
			hb->waiting = g;
		} else {
			g->in_hub = false;
			g->hub_next = ready;
			ready = g;
		}
	}
	while (ready) {	/* get_step never frees a get */
		struct crl_get *g = ready;

		ready = g->hub_next;
		g->hub_next = NULL;
		g->waited = true;
		get_step(g);
	}
}

static struct crl_hub *hub_get(struct loop *l)
{
	struct crl_hub *hb;

	pthread_mutex_lock(&hubs_mu);
	for (hb = hubs; hb; hb = hb->next)
		if (hb->loop == l)
			break;
	if (!hb) {
		hb = xcalloc(1, sizeof(*hb));
		if (hb) {
			hb->loop = l;
			hb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			loop_io_init(&hb->io, hub_wake, hb);
			if (hb->efd == -1 ||
			    loop_io_add(l, &hb->io, hb->efd, EPOLLIN)) {
				if (hb->efd >= 0)
					close(hb->efd);
				xfree(hb);
				hb = NULL;
			}
		}
		if (hb) {
			hb->next = hubs;
			hubs = hb;
		}
	}
	if (hb)
		hb->refs++;
	pthread_mutex_unlock(&hubs_mu);
	return hb;
}

static void hub_put(struct crl_hub *hb)
{
	struct crl_hub **pp;

	if (!hb)
		return;
	pthread_mutex_lock(&hubs_mu);
	if (--hb->refs == 0) {
		for (pp = &hubs; *pp && *pp != hb; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = hb->next;
		loop_io_del(hb->loop, &hb->io);
		close(hb->efd);
		xfree(hb);
	}
	pthread_mutex_unlock(&hubs_mu);
}

/* Out of the cache's queue and the hub's list (the hub itself stays). */
static void waiter_close(struct crl_get *g)
{
	if (g->entry)
		crl_cache_unwait(g->entry, &g->w);
	if (g->in_hub) {
		struct crl_get **pp = &g->hub->waiting;

		while (*pp && *pp != g)
			pp = &(*pp)->hub_next;
		if (*pp)
			*pp = g->hub_next;
		g->in_hub = false;
		g->hub_next = NULL;
	}
}

/* The issuer candidates for a signature check: the caller's hints, the
 * module's issuer_file, and the CA certificates the tls probe has seen. */
static STACK_OF(X509) *issuer_candidates(const struct crl_get *g)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	if (!sk)
		return NULL;
	for (int k = 0; k < 2; k++) {
		STACK_OF(X509) *src = k == 0 ? g->hints : g->fc->issuers;

		for (int i = 0; i < sk_X509_num(src); i++) {
			X509 *x = sk_X509_value(src, i);

			if (X509_up_ref(x) && !sk_X509_push(sk, x))
				X509_free(x);
		}
	}
	crl_issuers_all(sk);
	return sk;
}

/* Parse a body into a cache-ready crl_data (NULL and *perr on failure). */
static struct crl_data *parse_body(const struct crl_get *g,
				   const unsigned char *body, size_t len,
				   bool ldap, enum crl_parse_err *perr)
{
	unsigned char *der = NULL;
	size_t derlen = 0;
	struct crl_data *d;
	STACK_OF(X509) *iss;
	int64_t t0;

	if (ldap) {
		*perr = crl_ldap_unwrap(body, len, &der, &derlen);
		if (*perr)
			return NULL;
		body = der;
		len = derlen;
	}
	d = xcalloc(1, sizeof(*d));
	iss = d ? issuer_candidates(g) : NULL;
	if (!d || !iss) {
		*perr = CRL_PARSE_NOMEM;
		xfree(d);
		xfree(der);
		return NULL;
	}
	t0 = loop_now();
	*perr = crl_parse(body, len, iss, &d->info);
	sk_X509_pop_free(iss, X509_free);
	xfree(der);
	if (*perr) {
		crl_info_cleanup(&d->info);
		xfree(d);
		return NULL;
	}
	/* what the cache keeps per CRL (bench/crl_bench.py reads this) */
	log_debug("crl", "%s: %zu bytes, %zu entries, index %zu bytes "
		  "(width %zu, %zu odd), parsed in %.3f s",
		  g->fetch_url, d->info.bytes, d->info.entries,
		  crl_index_bytes(&d->info.index), d->info.index.width,
		  d->info.index.nodd, (double)(loop_now() - t0) / 1e9);
	d->refs = 1;
	d->fetched = (int64_t)time(NULL);
	return d;
}

static void on_fetched(void *arg, struct fetch_result *res)
{
	struct crl_get *g = arg;
	enum crl_parse_err perr = CRL_PARSE_OK;
	struct crl_data *d = NULL;

	g->holds_fetch = false;
	if (res->err == FETCH_ERR_TIMEOUT && g->budget_limited) {
		/* cut short by what was left of the caller's run (a tls run
		 * that spent its time on the handshake), not by the CDP's own
		 * slowness: no fact about the URL, so nothing is cached and
		 * the next run fetches again */
		crl_cache_abort(g->entry);
		g->cut = "timeout";
		crl_snapshot_cleanup(&g->snap);
		crl_cache_snapshot(g->entry, &g->snap);
		get_finish(g);
		return;
	}
	if (res->err == FETCH_OK && !res->not_modified)
		d = parse_body(g, res->body, res->len,
			       strncasecmp(g->fetch_url, "ldap", 4) == 0, &perr);
	crl_cache_finish(g->entry, &g->fc->policy, res->err, perr,
			 res->http_status, res->seconds, res->not_modified, d,
			 res->etag, res->last_modified);
	g->fetched = true;
	crl_cache_snapshot(g->entry, &g->snap);
	get_finish(g);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* file:///path or file://localhost/path -> "/path", percent-decoded. */
static char *file_path(const char *url)
{
	const char *p = url + strlen("file://");
	char *out, *o;

	if (strncasecmp(p, "localhost/", 10) == 0)
		p += 9;
	if (*p != '/')
		return NULL;	/* file://host/share: somebody else's disk */
	out = o = xmalloc(strlen(p) + 1);
	if (!out)
		return NULL;
	for (; *p && *p != '?' && *p != '#'; p++) {
		if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			*o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	if (strlen(out) != (size_t)(o - out)) {	/* a %00 inside */
		xfree(out);
		return NULL;
	}
	return out;
}

static enum fetch_err errno_err(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return FETCH_ERR_NOT_FOUND;
	case EACCES:
	case EPERM:
		return FETCH_ERR_PERMISSION;
	default:
		return FETCH_ERR_FILE;
	}
}

/* A local file, read at once: regular files only (never blocks on a FIFO
 * or device), at most max_bytes. */
static void get_file(struct crl_get *g)
{
	int64_t t0 = loop_now();
	enum fetch_err ferr = FETCH_OK;
	enum crl_parse_err perr = CRL_PARSE_OK;
	struct crl_data *d = NULL;
	char *path = file_path(g->fetch_url);
	struct buf b;
	struct stat st;
	int fd = -1;

	buf_init(&b, g->fc->max_bytes);
	if (!path) {
		ferr = FETCH_ERR_NOT_FOUND;
		goto out;
	}
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		ferr = errno_err(errno);
		goto out;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		ferr = FETCH_ERR_FILE;
		goto out;
	}
	if ((uint64_t)st.st_size > g->fc->max_bytes) {
		ferr = FETCH_ERR_TOO_LARGE;
		goto out;
	}
	for (;;) {
		char chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			ferr = errno_err(errno);
			break;
		}
		if (n == 0)
			break;
		if (buf_append(&b, chunk, (size_t)n)) {
			ferr = b.err == -E2BIG ? FETCH_ERR_TOO_LARGE
					       : FETCH_ERR_INTERNAL;
			break;
		}
	}
	if (ferr == FETCH_OK)
		d = parse_body(g, (const unsigned char *)(b.data ? b.data : ""),
			       b.len, false, &perr);
out:
	if (fd >= 0)
		close(fd);
	buf_cleanup(&b);
	xfree(path);
	crl_cache_finish(g->entry, &g->fc->policy, ferr, perr, 0,
			 loop_seconds(loop_now() - t0), false, d, NULL, NULL);
	g->fetched = true;
	crl_cache_snapshot(g->entry, &g->snap);
	get_finish(g);
}

static const char *effective_proxy(const struct crl_get *g)
{
	if (g->fc->proxy_set)
		return g->fc->proxy;
	return g->run->config ? g->run->config->global.proxy : NULL;
}

static void get_fetch(struct crl_get *g, char *etag, char *lastmod)
{
	struct fetcher *f = probe_fetcher(g->run);
	struct fetch_opts o;
	int64_t left = g->deadline - loop_now() - FETCH_MARGIN_NS;
	int rc = -ENOMEM;

	memset(&o, 0, sizeof(o));
	o.url = g->fetch_url;
	o.proxy = effective_proxy(g);
	o.no_proxy = g->fc->no_proxy;
	o.proxy_user = g->fc->proxy_user;
	o.proxy_password = g->fc->proxy_password;
	o.ca_file = g->fc->ca_file;
	o.user = g->fc->ldap_bind_dn;
	o.password = g->fc->ldap_password;
	o.etag = etag;
	o.last_modified = lastmod;
	o.max_bytes = g->fc->max_bytes;
	/* curl's LDAP output is base64: 4/3 the size, plus the DN line */
	if (strncasecmp(g->fetch_url, "ldap", 4) == 0)
		o.max_bytes = o.max_bytes / 3 * 4 + 4096;
	o.timeout_ms = left > 1000000 ? left / 1000000 : 1;
	/* less than the module's whole timeout is left for this fetch */
	g->budget_limited = left + FETCH_MARGIN_NS <
			    (int64_t)(g->run->module->timeout * 1e9) - 100000000LL;
	if (f)
		rc = fetch_start(f, &o, on_fetched, g, &g->fh);
	xfree(etag);
	xfree(lastmod);
	if (rc) {
		g->holds_fetch = false;
		crl_cache_finish(g->entry, &g->fc->policy,
				 rc == -EINVAL ? FETCH_ERR_UNSUPPORTED
					       : FETCH_ERR_INTERNAL,
				 CRL_PARSE_OK, 0, 0, false, NULL, NULL, NULL);
		crl_cache_snapshot(g->entry, &g->snap);
		get_finish(g);
	}
}

static void get_step(struct crl_get *g)
{
	char *etag = NULL, *lastmod = NULL;
	enum crl_begin b;

	/* without a hub there is no waiting: the cache answers at once */
	if (!g->hub)
		g->hub = hub_get(g->run->loop);
	g->w.efd = g->hub ? g->hub->efd : -1;
	b = crl_cache_begin(g->entry, &g->fc->policy, g->hub ? &g->w : NULL,
			    &g->snap, &etag, &lastmod);
	switch (b) {
	case CRL_BEGIN_CACHED:
		waiter_close(g);
		get_finish(g);
		return;
	case CRL_BEGIN_WAIT:
		if (!g->in_hub) {
			g->in_hub = true;
			g->hub_next = g->hub->waiting;
			g->hub->waiting = g;
		}
		return;
	case CRL_BEGIN_FETCH:
		waiter_close(g);
		g->holds_fetch = true;
		if (strncasecmp(g->fetch_url, "file:", 5) == 0) {
			xfree(etag);
			xfree(lastmod);
			get_file(g);
			g->holds_fetch = false;
			return;
		}
		get_fetch(g, etag, lastmod);
		return;
	}
}

/* The cache key: everything that can change what a fetch gives. */
static char *make_key(const struct crl_get *g)
{
	const struct crl_fetch_cfg *fc = g->fc;
	const char *proxy = effective_proxy(g);

	return xasprintf("%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%zu\x1f%s",
			 g->fetch_url, proxy ? proxy : "",
			 fc->no_proxy ? fc->no_proxy : "",
			 fc->proxy_user ? fc->proxy_user : "",
			 fc->ldap_bind_dn ? fc->ldap_bind_dn : "",
			 fc->ca_file ? fc->ca_file : "", fc->max_bytes,
			 fc->issuer_file ? fc->issuer_file : "");
}

/* Why an URL is not fetched at all, or NULL; sets fetch_url otherwise. */
static const char *plan(struct crl_get *g)
{
	const struct crl_fetch_cfg *fc = g->fc;
	const char *u = g->url;

	if (scheme_is(u, "ldap") || scheme_is(u, "ldaps")) {
		const char *rest = strchr(u, ':') + 3;

		if (!fc->ldap_bind_dn && !fc->ldap_anonymous)
			return "ldap_no_credentials";
		if (*rest == '/') {	/* ldap:///...: "my domain" */
			size_t n;

			if (!fc->ldap_server)
				return "ldap_no_server";
			n = strlen(fc->ldap_server);
			while (n && fc->ldap_server[n - 1] == '/')
				n--;
			g->fetch_url = xasprintf("%.*s%s", (int)n,
						 fc->ldap_server, rest);
		} else {
			g->fetch_url = xstrdup(u);
		}
		return NULL;
	}
	if (scheme_is(u, "file")) {
		char *p = file_path(u);

		if (!p)
			return "file_remote";
		xfree(p);
		g->fetch_url = xstrdup(u);
		return NULL;
	}
	if (scheme_is(u, "http") || scheme_is(u, "https")) {
		g->fetch_url = xstrdup(u);
		return NULL;
	}
	return "unsupported_scheme";
}

int crl_get_start(struct probe_run *run, const struct crl_fetch_cfg *fc,
		  const char *url, STACK_OF(X509) *hints, int64_t deadline,
		  crl_get_cb cb, void *arg, struct crl_get **out)
{
	struct crl_get *g = xcalloc(1, sizeof(*g));

	*out = NULL;
	if (!g)
		return -ENOMEM;
	g->run = run;
	g->fc = fc;
	g->deadline = deadline;
	g->cb = cb;
	g->arg = arg;
	g->w.efd = -1;
	loop_timer_init(&g->later, on_later, g);
	g->url = xstrdup(url);
	g->hints = sk_X509_new_null();
	if (!g->url || !g->hints)
		goto nomem;
	for (int i = 0; i < sk_X509_num(hints); i++) {
		X509 *x = sk_X509_value(hints, i);

		if (X509_up_ref(x) && !sk_X509_push(g->hints, x))
			X509_free(x);
	}
	g->skipped = plan(g);
	if (g->skipped) {
		get_finish(g);
		*out = g;
		return 0;
	}
	if (!g->fetch_url)
		goto nomem;
	g->key = make_key(g);
	g->entry = g->key ? crl_cache_entry(g->key) : NULL;
	if (!g->entry)
		goto nomem;
	*out = g;
	get_step(g);
	return 0;
nomem:
	crl_get_free(g);
	return -ENOMEM;
}

void crl_get_settle(struct crl_get *g, const char *why)
{
	if (g->done || !g->entry)
		return;
	/* stop: no callback after this, the cache moves on without us */
	fetch_cancel(&g->fh);
	if (g->holds_fetch)
		crl_cache_abort(g->entry);
	g->holds_fetch = false;
	waiter_close(g);
	loop_timer_cancel(g->run->loop, &g->later);
	g->done = true;
	g->cut = why;
	crl_snapshot_cleanup(&g->snap);
	crl_cache_snapshot(g->entry, &g->snap);
}

void crl_get_free(struct crl_get *g)
{
	if (!g)
		return;
	fetch_cancel(&g->fh);
	if (g->holds_fetch && g->entry)
		crl_cache_abort(g->entry);
	if (g->run) {
		loop_timer_cancel(g->run->loop, &g->later);
		waiter_close(g);
		hub_put(g->hub);
	}
	crl_snapshot_cleanup(&g->snap);
	sk_X509_pop_free(g->hints, X509_free);
	xfree(g->url);
	xfree(g->fetch_url);
	xfree(g->key);
	xfree(g);
}
