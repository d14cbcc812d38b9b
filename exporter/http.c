#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "buf.h"
#include "check.h"
#include "log.h"
#include "loop.h"
#include "scrape.h"
#include "xalloc.h"

/* cap on the label bytes of one scrape, and so on its body */
#define HTTP_MAX_BODY ((size_t)512 * 1024 * 1024)
#define HTTP_SCRAPE_MARGIN 0.5	/* seconds kept for rendering and I/O */
#define HTTP_MAX_PARAM 1024
/* rendered per MHD read of a scrape body (MHD keeps as much again) */
#define HTTP_BODY_CHUNK ((size_t)64 * 1024)

struct http {
	struct MHD_Daemon *d;
	struct app *app;
	struct web_config *wc;	/* may be NULL: plain HTTP, no auth */
	int fd;
};

static const char CT_TEXT[] = "text/plain; version=0.0.4; charset=utf-8";
static const char CT_PLAIN[] = "text/plain; charset=utf-8";
static const char CT_HTML[] = "text/html; charset=utf-8";

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status,
			       const char *ctype, char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	/* the body is ours until MHD frees it */
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		xfree(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status,
				    const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status,
				    const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	size_t len;
	char *body;

	buf_init(&b, 1024 * 1024);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	body = buf_steal(&b, &len);
	if (!body)
		return MHD_NO;
	return respond(c, status, CT_PLAIN, body, len);
}

/* Seconds a scrape may take given the Prometheus header (may be NULL)
 * and the configured scrape_timeout (tests/integration/test_core.py
 * TestScrapeDeadline drives it through real headers). */
static double http_scrape_budget(const char *header, double configured)
{
	double t = configured;

	if (header) {
		char *end;
		double h = strtod(header, &end);

		if (end != header && isfinite(h) && h > 0) {
			/* like blackbox_exporter: keep a margin so the answer
			 * arrives before Prometheus gives up */
			h = h > 2 * HTTP_SCRAPE_MARGIN ? h - HTTP_SCRAPE_MARGIN
						       : h * 0.75;
			if (h < t)
				t = h;
		}
	}
	return t;
}

/* A /metrics or /probe body, rendered while MHD sends it: the text of
 * 10,000 targets is 43 MB, and held whole next to the samples it came
 * from it doubled the peak RSS of a scrape. MHD owns it from
 * MHD_create_response_from_callback on and frees it with body_free once
 * the response is done, also when the client went away mid-body. */
struct scrape_body {
	struct expo_set set;
	struct expo_stream st;
};

static void body_free(void *cls)
{
	struct scrape_body *b = cls;

	expo_stream_cleanup(&b->st);
	expo_set_cleanup(&b->set);
	xfree(b);
#ifdef __GLIBC__
	/* give the scrape's freed memory back: glibc keeps it in the
	 * threads' arenas otherwise (50 parallel scrapes of 1,000 targets:
	 * 1.6 GiB resident afterwards without this, 0.23 GiB with it) */
	malloc_trim(0);
#endif
}

static ssize_t body_read(void *cls, uint64_t pos, char *dst, size_t max)
{
	struct scrape_body *b = cls;
	size_t n;
	int rc;

	(void)pos;	/* the response is never reused: reads are in order */
	rc = expo_stream_read(&b->st, dst, max, &n);
	if (rc) {
		/* the status line is gone: cutting the body short is how a
		 * chunked response says it failed */
		log_err("http", "rendering failed: %s", strerror(-rc));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

/* Render the body only to count it, for HEAD: the Content-Length a GET
 * gets is what a HEAD answers (RFC 9110 9.3.2), as it was before bodies
 * were streamed. Also, MHD 0.9.75 writes the last chunk ("0\r\n\r\n") of
 * a chunked HEAD response, which a client that keeps the connection would
 * take for the start of the next response. The set is spent. */
static int body_length(struct scrape_body *b, uint64_t *len)
{
	char sink[16384];
	size_t n;
	int rc;

	*len = 0;
	do {
		rc = expo_stream_read(&b->st, sink, sizeof(sink), &n);
		*len += n;
	} while (rc == 0 && n);
	expo_stream_cleanup(&b->st);
	return rc;
}

static enum MHD_Result serve_scrape(struct http *h, struct MHD_Connection *c,
				    struct config *cfg, const size_t *idx,
				    size_t n, bool self, bool head)
{
	const char *hdr = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, "X-Prometheus-Scrape-Timeout-Seconds");
	double budget = http_scrape_budget(hdr, cfg->global.scrape_timeout);
	struct scrape_stats st;
	uint64_t size = MHD_SIZE_UNKNOWN;
	struct scrape_body *b;
	struct MHD_Response *r;
	enum MHD_Result ret;
	int rc;

	b = xcalloc(1, sizeof(*b));
	if (!b)
		return MHD_NO;
	expo_set_init(&b->set, HTTP_MAX_BODY);
	expo_stream_init(&b->st, &b->set, HTTP_BODY_CHUNK);
	rc = scrape_run(cfg, idx, n, loop_now() + (int64_t)(budget * 1e9),
			&b->set, &st, NULL);
	if (rc == 0 && self) {
		scrape_stats_emit(&st, &b->set);
		app_emit_self(h->app, &b->set);
	}
	/* a failed expo_add is the last error a GET can still answer with
	 * a 500; a HEAD renders all, so any error */
	if (rc == 0)
		rc = b->set.err;
	if (rc == 0 && head)
		rc = body_length(b, &size);
	if (rc) {
		body_free(b);
		log_err("http", "scrape failed: %s", strerror(-rc));
		return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "scrape failed: %s\n", strerror(-rc));
	}
	/* a GET has no Content-Length: HTTP/1.1 gets chunked encoding,
	 * HTTP/1.0 the end of the connection */
	r = MHD_create_response_from_callback(size, HTTP_BODY_CHUNK, body_read,
					      b, body_free);
	if (!r) {
		body_free(b);
		return MHD_NO;
	}
	/* on success, b is owned by r */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_TEXT);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result serve_metrics(struct http *h, struct MHD_Connection *c,
				    bool head)
{
	struct config *cfg = app_get(h->app);
	size_t *idx;
	enum MHD_Result ret;

	if (!cfg)
		return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "no configuration loaded\n");
	idx = xcalloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*idx));
	if (!idx) {
		app_put(h->app, cfg);
		return MHD_NO;
	}
	for (size_t i = 0; i < cfg->ntargets; i++)
		idx[i] = i;
	ret = serve_scrape(h, c, cfg, idx, cfg->ntargets, true, head);
	xfree(idx);
	app_put(h->app, cfg);
	return ret;
}

/* n bytes as decoded by MHD: a %00 inside shows as a NUL before n */
static bool param_ok(const char *s, size_t n)
{
	if (n == 0 || n > HTTP_MAX_PARAM)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

struct probe_args {
	const char *mod, *tgt;
	size_t mod_len, tgt_len;
	unsigned nmod, ntgt;
};

static enum MHD_Result probe_arg(void *cls, enum MHD_ValueKind kind,
				 const char *key, size_t key_size,
				 const char *value, size_t value_size)
{
	struct probe_args *a = cls;

	(void)kind;
	if (key_size == 6 && memcmp(key, "module", 6) == 0) {
		a->nmod++;
		a->mod = value;
		a->mod_len = value ? value_size : 0;
	} else if (key_size == 6 && memcmp(key, "target", 6) == 0) {
		a->ntgt++;
		a->tgt = value;
		a->tgt_len = value ? value_size : 0;
	}
	return MHD_YES;
}

/* A target the module's allow_targets admits (blackbox style: targets from
 * Prometheus' service discovery): parsed as a configured one, probed in a
 * view of the configuration holding just it, freed when the body is
 * rendered (the body never points into the configuration). */
static enum MHD_Result serve_adhoc(struct http *h, struct MHD_Connection *c,
				   const struct config *cfg,
				   const struct cfg_module *m, const char *tgt,
				   bool head)
{
	struct cfg_target t;
	struct config view;
	size_t idx = 0;
	char err[256] = "";
	enum MHD_Result ret;

	switch (config_adhoc_target(m, tgt, &t, err, sizeof(err))) {
	case 0:
		break;
	case -EPERM:
		config_adhoc_target_free(&t);
		return respond_text(c, MHD_HTTP_FORBIDDEN,
				    "target is not configured for this "
				    "module, nor matched by its "
				    "allow_targets\n");
	case -EINVAL:
		config_adhoc_target_free(&t);
		return respond_text(c, MHD_HTTP_BAD_REQUEST,
				    "target is not valid for this module: "
				    "%s\n",
				    err);
	default:
		config_adhoc_target_free(&t);
		return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "out of memory\n");
	}
	view = *cfg;
	view.targets = &t;
	view.ntargets = 1;
	ret = serve_scrape(h, c, &view, &idx, 1, false, head);
	config_adhoc_target_free(&t);
	return ret;
}

static enum MHD_Result serve_probe(struct http *h, struct MHD_Connection *c,
				  bool head)
{
	struct probe_args a = {NULL, NULL, 0, 0, 0, 0};
	const char *mod, *tgt;
	const struct cfg_target *t;
	struct config *cfg;
	enum MHD_Result ret;
	size_t idx;

	MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, probe_arg, &a);
	mod = a.mod;
	tgt = a.tgt;
	if (!mod || !tgt)
		return respond_text(c, MHD_HTTP_BAD_REQUEST,
				    "parameters 'module' and 'target' are "
				    "required\n");
	/* a second value is ambiguous (which one would a proxy in front
	 * have checked?): refused, not guessed */
	if (a.nmod > 1 || a.ntgt > 1)
		return respond_text(c, MHD_HTTP_BAD_REQUEST,
				    "'module' and 'target' must each be given "
				    "once\n");
	if (!param_ok(mod, a.mod_len) || !param_ok(tgt, a.tgt_len))
		return respond_text(c, MHD_HTTP_BAD_REQUEST,
				    "'module' and 'target' must be 1-%d "
				    "printable bytes\n",
				    HTTP_MAX_PARAM);
	cfg = app_get(h->app);
	if (!cfg)
		return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "no configuration loaded\n");
	if (!config_module(cfg, mod)) {
		app_put(h->app, cfg);
		return respond_text(c, MHD_HTTP_BAD_REQUEST,
				    "unknown module\n");
	}
	/* only configured or allow-listed targets: /probe must not become
	 * a scanner */
	t = config_target(cfg, mod, tgt);
	if (t) {
		idx = (size_t)(t - cfg->targets);
		ret = serve_scrape(h, c, cfg, &idx, 1, false, head);
	} else {
		ret = serve_adhoc(h, c, cfg, config_module(cfg, mod), tgt,
				  head);
	}
	app_put(h->app, cfg);
	return ret;
}

static enum MHD_Result serve_reload(struct http *h, struct MHD_Connection *c)
{
	struct errbuf eb;
	enum MHD_Result ret;

	errbuf_init(&eb, NULL);
	if (app_reload(h->app, &eb) == 0) {
		errbuf_cleanup(&eb);
		return respond_text(c, MHD_HTTP_OK, "configuration reloaded\n");
	}
	log_err("config", "reload failed, keeping the running configuration:"
			  "\n%s", errbuf_str(&eb));
	ret = respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
			   "reload failed, keeping the running configuration:"
			   "\n%s",
			   errbuf_str(&eb));
	errbuf_cleanup(&eb);
	return ret;
}

/* /status probes now (a page for a person, not for a scraper): at most one
 * at a time, and a page younger than STATUS_CACHE_SECS is served again. */
#define STATUS_CACHE_SECS 15
static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;
static char *status_page;
static size_t status_len;
static int64_t status_when;

static enum MHD_Result serve_status(struct http *h, struct MHD_Connection *c)
{
	struct config *cfg;
	char *copy = NULL;
	size_t len = 0;

	pthread_mutex_lock(&status_lock);
	if (!status_page ||
	    loop_now() - status_when > (int64_t)STATUS_CACHE_SECS * 1000000000) {
		cfg = app_get(h->app);
		if (cfg) {
			char *page = check_status_html(
				cfg, cfg->global.scrape_timeout, &len);

			if (page) {
				xfree(status_page);
				status_page = page;
				status_len = len;
				status_when = loop_now();
			}
			app_put(h->app, cfg);
		}
	}
	if (status_page) {
		copy = xmalloc(status_len + 1);
		if (copy) {
			memcpy(copy, status_page, status_len + 1);
			len = status_len;
		}
	}
	pthread_mutex_unlock(&status_lock);
	if (!copy)
		return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "no status available\n");
	return respond(c, MHD_HTTP_OK, CT_HTML, copy, len);
}

static enum MHD_Result serve_landing(struct MHD_Connection *c)
{
	char *body = xasprintf(
		"<!DOCTYPE html>\n<html><head><title>pki_exporter</title></head>"
		"<body><h1>pki_exporter %s</h1>"
		"<p>Prometheus exporter for PKI health: TLS endpoint "
		"certificates and chains, CRLs and revocation, trust stores "
		"and certificate files, PKI events from Windows logs.</p><ul>"
		"<li><a href=\"metrics\">/metrics</a>: every configured "
		"target</li>"
		"<li>/probe?module=&amp;target=: one configured (or "
		"allow_targets) target</li>"
		"<li><a href=\"status\">/status</a>: every endpoint, failures "
		"and the soonest expiry first</li>"
		"<li><a href=\"-/healthy\">/-/healthy</a>, "
		"<a href=\"-/ready\">/-/ready</a></li>"
		"<li>POST /-/reload: reload the configuration</li>"
		"</ul></body></html>\n",
		app_version());

	if (!body)
		return MHD_NO;
	return respond(c, MHD_HTTP_OK, CT_HTML, body, strlen(body));
}

/* The TLS layer asked for a client certificate when client_ca_file is
 * set; what is required of it is checked here, per request. */
static bool client_cert_ok(const struct web_config *wc,
			   struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;
	unsigned int n = 0, status = 0;
	bool given;

	if (!wc->tls || wc->client_auth == WEB_CLIENT_NONE ||
	    wc->client_auth == WEB_CLIENT_REQUEST)
		return true;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return false;
	given = gnutls_certificate_get_peers(ci->tls_session, &n) && n > 0;
	if (!given)
		return wc->client_auth == WEB_CLIENT_VERIFY_IF_GIVEN;
	if (wc->client_auth == WEB_CLIENT_REQUIRE_ANY)
		return true;
	return gnutls_certificate_verify_peers2(ci->tls_session, &status) ==
		       GNUTLS_E_SUCCESS &&
	       status == 0;
}

static bool basic_auth_ok(struct web_config *wc, struct MHD_Connection *c,
			  enum MHD_Result *ret)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(c, &pass);
	bool ok = user && pass && webcfg_check_user(wc, user, pass);
	struct MHD_Response *r;
	static const char body[] = "Unauthorized\n";

	if (user)
		MHD_free(user);
	if (pass)
		MHD_free(pass);
	if (ok)
		return true;
	r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
					    MHD_RESPMEM_PERSISTENT);
	*ret = r ? MHD_queue_basic_auth_fail_response(c, "pki_exporter", r)
		 : MHD_NO;
	if (r)
		MHD_destroy_response(r);
	return false;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
			       const char *url, const char *method,
			       const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	bool head = strcmp(method, "HEAD") == 0;
	bool get = strcmp(method, "GET") == 0 || head;
	bool post = strcmp(method, "POST") == 0;

	(void)version;
	(void)upload;
	if (*con_cls == NULL) {
		*con_cls = h;	/* first call: headers only */
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;	/* a reload takes no body: drop it */
		return MHD_YES;
	}
	if (h->wc) {
		enum MHD_Result r;

		if (!client_cert_ok(h->wc, c))
			return respond_text(c, MHD_HTTP_FORBIDDEN,
					    "a valid client certificate is "
					    "required\n");
		if (h->wc->nusers && !basic_auth_ok(h->wc, c, &r))
			return r;
	}

	if (strcmp(url, "/-/reload") == 0) {
		if (!post && strcmp(method, "PUT") != 0)
			return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
					    "use POST\n");
		return serve_reload(h, c);
	}
	if (strcmp(url, "/metrics") != 0 && strcmp(url, "/probe") != 0 &&
	    strcmp(url, "/") != 0 && strcmp(url, "/-/healthy") != 0 &&
	    strcmp(url, "/status") != 0 &&
	    strcmp(url, "/-/ready") != 0)
		return respond_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
	if (!get)
		return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "method not allowed\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, c, head);
	if (strcmp(url, "/probe") == 0)
		return serve_probe(h, c, head);
	if (strcmp(url, "/status") == 0)
		return serve_status(h, c);
	if (strcmp(url, "/-/healthy") == 0)
		return respond_text(c, MHD_HTTP_OK, "Healthy.\n");
	if (strcmp(url, "/-/ready") == 0) {
		struct config *cfg = app_get(h->app);

		app_put(h->app, cfg);
		if (!cfg)
			return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
					    "not ready\n");
		return respond_text(c, MHD_HTTP_OK, "Ready.\n");
	}
	return serve_landing(c);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http", "%s", msg);
}

/* Parse the listen address and bind a socket for MHD. */
static int listen_socket(const char *addr, int *fdp)
{
	char host[256] = "", port[16];
	const char *colon;
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1, rc, one = 1, zero = 0;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':' || (size_t)(end - addr) >= sizeof(host))
			return -EINVAL;
		memcpy(host, addr + 1, (size_t)(end - addr - 1));
		host[end - addr - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= sizeof(host))
			return -EINVAL;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
	}
	if (snprintf(port, sizeof(port), "%s", colon + 1) >= (int)sizeof(port) ||
	    !port[0])
		return -EINVAL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_family = host[0] ? AF_UNSPEC : AF_INET6;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0 && !host[0]) {
		hints.ai_family = AF_INET;
		rc = getaddrinfo(NULL, port, &hints, &res);
	}
	if (rc != 0)
		return -EINVAL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6 && !host[0])
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
				   sizeof(zero));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		rc = errno;
		close(fd);
		fd = -1;
		errno = rc;
	}
	freeaddrinfo(res);
	if (fd == -1)
		return -errno;
	*fdp = fd;
	return 0;
}

int http_start(struct app *a, const char *addr, struct web_config *wc,
	       struct http **out)
{
	struct http *h = xcalloc(1, sizeof(*h));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG |
			 /* poll(), not select(): while scrapes hold sockets,
			  * a new connection's fd is often >= FD_SETSIZE (1024),
			  * and with select() MHD closes it unanswered (a reset
			  * for the scrape, /-/healthy or /-/ready) */
			 MHD_USE_POLL |
			 /* a connection thread that ends wakes the daemon
			  * thread, which closes its socket at once; without it
			  * finished connections keep their fd until the next
			  * request arrives (45 fds after 50 parallel scrapes) */
			 MHD_USE_ITC;
	struct MHD_OptionItem tls_opts[5];
	size_t k = 0;
	int rc;

	if (!h)
		return -ENOMEM;
	h->app = a;
	h->wc = wc;
	rc = listen_socket(addr, &h->fd);
	if (rc) {
		xfree(h);
		return rc;
	}
	if (wc && wc->tls) {
		flags |= MHD_USE_TLS;
		tls_opts[k++] = (struct MHD_OptionItem){
			MHD_OPTION_HTTPS_MEM_CERT, 0, wc->cert_pem};
		tls_opts[k++] = (struct MHD_OptionItem){
			MHD_OPTION_HTTPS_MEM_KEY, 0, wc->key_pem};
		tls_opts[k++] = (struct MHD_OptionItem){
			MHD_OPTION_HTTPS_PRIORITIES, 0, wc->priorities};
		if (wc->client_ca_pem)
			tls_opts[k++] = (struct MHD_OptionItem){
				MHD_OPTION_HTTPS_MEM_TRUST, 0,
				wc->client_ca_pem};
	}
	tls_opts[k] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	/* A thread per connection: each scrape blocks its own thread on its
	 * own event loop, so a slow scrape never delays /-/healthy. */
	h->d = MHD_start_daemon(
		flags, 0, NULL, NULL, handler, h, MHD_OPTION_LISTEN_SOCKET,
		h->fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_ARRAY,
		tls_opts, MHD_OPTION_END);
	if (!h->d) {
		close(h->fd);
		xfree(h);
		return -EIO;
	}
	*out = h;
	return 0;
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);	/* also closes the listen socket */
	xfree(h);
}
