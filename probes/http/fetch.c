#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "exporter/buf.h"
#include "exporter/loop.h"
#include "exporter/xalloc.h"

#define FETCH_HEADER_MAX 8192	/* one response header line we look at */

struct fetch_sock {
	struct loop_io io;
	struct fetcher *f;
	struct fetch_sock *next;
};

struct fetcher {
	struct loop *loop;
	CURLM *multi;
	struct loop_timer timer;
	/* Socket records live until fetcher_free, like dns.c's: curl may
	 * drop a socket while events for it are queued in this batch. */
	struct fetch_sock *socks;
	struct fetch *fetches;	/* pending, doubly linked */
	size_t npending;
};

struct fetch {
	struct fetcher *f;
	struct fetch *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	unsigned char *post;
	struct buf body;
	bool too_large;
	bool via_proxy;
	bool conditional;
	bool is_http;
	bool is_ldap;
	char etag[256];
	char last_modified[128];
	char content_type[128];
	char errbuf[CURL_ERROR_SIZE];
	int64_t t0;
	fetch_cb cb;
	void *arg;
	struct fetch **handle;
};

const char *fetch_err_str(enum fetch_err e)
{
	static const char *const names[FETCH_ERR__COUNT] = {
		[FETCH_OK] = "ok",
		[FETCH_ERR_TIMEOUT] = "timeout",
		[FETCH_ERR_TOO_LARGE] = "too_large",
		[FETCH_ERR_HTTP_STATUS] = "http_status",
		[FETCH_ERR_DNS] = "dns_error",
		[FETCH_ERR_CONNECT] = "connect_error",
		[FETCH_ERR_PROXY] = "proxy_error",
		[FETCH_ERR_PROXY_AUTH] = "proxy_auth_required",
		[FETCH_ERR_TLS] = "tls_error",
		[FETCH_ERR_TRUNCATED] = "truncated",
		[FETCH_ERR_PROTOCOL] = "protocol_error",
		[FETCH_ERR_RESET] = "connection_reset",
		[FETCH_ERR_LDAP] = "ldap_error",
		[FETCH_ERR_LDAP_AUTH] = "ldap_bind_failed",
		[FETCH_ERR_NOT_FOUND] = "not_found",
		[FETCH_ERR_PERMISSION] = "permission_denied",
		[FETCH_ERR_FILE] = "file_error",
		[FETCH_ERR_UNSUPPORTED] = "unsupported",
		[FETCH_ERR_INTERNAL] = "internal_error",
	};

	if (e < 0 || e >= FETCH_ERR__COUNT || !names[e])
		return "unknown";
	return names[e];
}

/* ---- curl <-> loop ---- */

static void fetcher_drain(struct fetcher *f);

static void fetcher_on_timer(struct loop_timer *t)
{
	struct fetcher *f = t->arg;
	int running;

	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	fetcher_drain(f);
}

static void fetcher_on_io(struct loop_io *io, uint32_t events)
{
	struct fetch_sock *s = io->arg;
	struct fetcher *f = s->f;
	int mask = 0, running;

	if (events & EPOLLIN)
		mask |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		mask |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		mask |= CURL_CSELECT_ERR;
	curl_multi_socket_action(f->multi, io->fd, mask, &running);
	fetcher_drain(f);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arm the loop timer; calling curl from
 * in here is not allowed. 0 ms means "as soon as possible". */
static int fetcher_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct fetcher *f = userp;

	(void)multi;
	if (timeout_ms < 0) {
		loop_timer_cancel(f->loop, &f->timer);
		return 0;
	}
	return loop_timer_set(f->loop, &f->timer,
			      loop_now() + (int64_t)timeout_ms * 1000000LL)
		       ? -1
		       : 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch exactly the direction curl asks for. */
static int fetcher_socket_cb(CURL *easy, curl_socket_t fd, int what,
			     void *userp, void *socketp)
{
	struct fetcher *f = userp;
	struct fetch_sock *s = socketp;
	uint32_t ev = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s)
			loop_io_del(f->loop, &s->io);
		curl_multi_assign(f->multi, fd, NULL);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= EPOLLOUT;
	if (s && s->io.fd == fd)
		return loop_io_mod(f->loop, &s->io, ev) ? -1 : 0;
	/* a fresh record every time, never one freed earlier in this epoll
	 * batch: a stale event would reach another transfer's socket */
	s = xcalloc(1, sizeof(*s));
	if (!s)
		return -1;	/* curl fails the transfer */
	s->f = f;
	s->next = f->socks;
	f->socks = s;
	loop_io_init(&s->io, fetcher_on_io, s);
	if (loop_io_add(f->loop, &s->io, fd, ev))
		return -1;
	curl_multi_assign(f->multi, fd, s);
	return 0;
}

int fetcher_new(struct loop *l, struct fetcher **out)
{
	struct fetcher *f = xcalloc(1, sizeof(*f));

	*out = NULL;
	if (!f)
		return -ENOMEM;
	f->loop = l;
	loop_timer_init(&f->timer, fetcher_on_timer, f);
	f->multi = curl_multi_init();
	if (!f->multi) {
		xfree(f);
		return -ENOMEM;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, fetcher_socket_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, fetcher_timer_cb);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	*out = f;
	return 0;
}

static void fetch_unlink(struct fetch *ft)
{
	struct fetcher *f = ft->f;

	if (ft->prev)
		ft->prev->next = ft->next;
	else
		f->fetches = ft->next;
	if (ft->next)
		ft->next->prev = ft->prev;
	ft->prev = ft->next = NULL;
	f->npending--;
}

static void fetch_destroy(struct fetch *ft)
{
	if (ft->easy) {
		curl_multi_remove_handle(ft->f->multi, ft->easy);
		curl_easy_cleanup(ft->easy);
	}
	curl_slist_free_all(ft->headers);
	buf_cleanup(&ft->body);
	xfree(ft->post);
	xfree(ft);
}

void fetcher_free(struct fetcher *f)
{
	struct fetch_sock *s, *next;

	if (!f)
		return;
	while (f->fetches) {
		struct fetch *ft = f->fetches;

		fetch_unlink(ft);
		if (ft->handle)
			*ft->handle = NULL;
		fetch_destroy(ft);
	}
	/* no more callbacks into a loop that is going away */
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, NULL);
	curl_multi_cleanup(f->multi);
	loop_timer_cancel(f->loop, &f->timer);
	for (s = f->socks; s; s = next) {
		next = s->next;
		loop_io_del(f->loop, &s->io);
		xfree(s);
	}
	xfree(f);
}

size_t fetcher_pending(const struct fetcher *f)
{
	return f ? f->npending : 0;
}

/* ---- one transfer ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct fetch *ft = arg;
	size_t len = size * n;

	if (buf_append(&ft->body, p, len)) {
		ft->too_large = ft->body.err == -E2BIG;
		return 0;	/* curl aborts with CURLE_WRITE_ERROR */
	}
	return len;
}

/* Copy a header's value, trimmed, into dst. */
static void header_value(char *dst, size_t len, const char *v, size_t n)
{
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' ||
		     v[n - 1] == '\t'))
		n--;
	if (n >= len) {
		dst[0] = '\0';	/* a validator cut short is no validator */
		return;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct fetch *ft = arg;
	size_t len = size * n;

	if (len > FETCH_HEADER_MAX)
		return len;	/* not one we want; curl bounds lines itself */
	/* a new status line (redirect, 100 Continue): forget the last one's */
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		ft->etag[0] = ft->last_modified[0] = ft->content_type[0] = '\0';
		return len;
	}
	if (len > 5 && strncasecmp(p, "ETag:", 5) == 0)
		header_value(ft->etag, sizeof(ft->etag), p + 5, len - 5);
	else if (len > 14 && strncasecmp(p, "Last-Modified:", 14) == 0)
		header_value(ft->last_modified, sizeof(ft->last_modified),
			     p + 14, len - 14);
	else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0)
		header_value(ft->content_type, sizeof(ft->content_type),
			     p + 13, len - 13);
	return len;
}

static bool scheme_is(const char *url, const char *scheme)
{
	size_t n = strlen(scheme);

	return strncasecmp(url, scheme, n) == 0 && url[n] == ':';
}

static enum fetch_err map_curl(const struct fetch *ft, CURLcode rc,
			       long connect_status)
{
	if (ft->too_large || rc == CURLE_FILESIZE_EXCEEDED)
		return FETCH_ERR_TOO_LARGE;
	if (connect_status == 407)
		return FETCH_ERR_PROXY_AUTH;
	if (connect_status && (connect_status < 200 || connect_status > 299))
		return FETCH_ERR_PROXY;
	switch (rc) {
	case CURLE_OK:
		return FETCH_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return FETCH_ERR_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return FETCH_ERR_DNS;
	case CURLE_COULDNT_RESOLVE_PROXY:
#if LIBCURL_VERSION_NUM >= 0x074900
	case CURLE_PROXY:
#endif
		return FETCH_ERR_PROXY;
	case CURLE_COULDNT_CONNECT:
		return ft->via_proxy ? FETCH_ERR_PROXY : FETCH_ERR_CONNECT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return FETCH_ERR_TLS;
	case CURLE_PARTIAL_FILE:
		return FETCH_ERR_TRUNCATED;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		/* "Recv failure: Connection reset by peer" */
		if (strstr(ft->errbuf, "reset"))
			return FETCH_ERR_RESET;
		return FETCH_ERR_PROTOCOL;
	case CURLE_GOT_NOTHING:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_TOO_MANY_REDIRECTS:
		return FETCH_ERR_PROTOCOL;
	case CURLE_LDAP_CANNOT_BIND:
	case CURLE_LOGIN_DENIED:
		return FETCH_ERR_LDAP_AUTH;
	case CURLE_LDAP_SEARCH_FAILED:
		/* "LDAP remote: No such object" */
		return strstr(ft->errbuf, "No such object") ? FETCH_ERR_NOT_FOUND
							   : FETCH_ERR_LDAP;
	case CURLE_LDAP_INVALID_URL:
		return FETCH_ERR_LDAP;
	case CURLE_REMOTE_FILE_NOT_FOUND:
		return FETCH_ERR_NOT_FOUND;
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* also what curl says of an answer that is not HTTP at all
		 * ("Received HTTP/0.9 when not allowed"): the server's
		 * fault, not a scheme this build lacks */
		if (strstr(ft->errbuf, "HTTP/0.9"))
			return FETCH_ERR_PROTOCOL;
		return FETCH_ERR_UNSUPPORTED;
	case CURLE_NOT_BUILT_IN:
		return FETCH_ERR_UNSUPPORTED;
	default:
		return FETCH_ERR_INTERNAL;
	}
}

/* A transfer is over: fill the result, run the callback, free. */
static void fetch_complete(struct fetch *ft, CURLcode rc)
{
	struct fetch_result res;
	long status = 0, cstatus = 0;

	memset(&res, 0, sizeof(res));
	curl_easy_getinfo(ft->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(ft->easy, CURLINFO_HTTP_CONNECTCODE, &cstatus);
	res.http_status = ft->is_http ? status : 0;
	res.connect_status = cstatus;
	res.err = map_curl(ft, rc, cstatus);
	if (res.err == FETCH_OK && ft->is_http) {
		if (status == 304 && ft->conditional)
			res.not_modified = true;
		else if (status == 407)
			res.err = FETCH_ERR_PROXY_AUTH;
		else if (status != 200)
			res.err = FETCH_ERR_HTTP_STATUS;
	}
	if (res.err == FETCH_OK && ft->is_ldap && ft->body.len == 0)
		res.err = FETCH_ERR_NOT_FOUND;	/* no such entry/attribute */
	if (res.err == FETCH_OK && !res.not_modified) {
		res.len = ft->body.len;
		res.body = (unsigned char *)buf_steal(&ft->body, NULL);
		if (!res.body) {
			/* an empty body: hand out an empty string anyway */
			res.body = xcalloc(1, 1);
			if (!res.body)
				res.err = FETCH_ERR_INTERNAL;
		}
		snprintf(res.etag, sizeof(res.etag), "%s", ft->etag);
		snprintf(res.last_modified, sizeof(res.last_modified), "%s",
			 ft->last_modified);
	}
	snprintf(res.content_type, sizeof(res.content_type), "%s",
		 ft->content_type);
	snprintf(res.detail, sizeof(res.detail), "%s",
		 ft->errbuf[0] ? ft->errbuf
			       : (rc != CURLE_OK ? curl_easy_strerror(rc) : ""));
	res.seconds = loop_seconds(loop_now() - ft->t0);

	fetch_unlink(ft);
	if (ft->handle)
		*ft->handle = NULL;
	if (ft->cb)
		ft->cb(ft->arg, &res);
	xfree(res.body);
	fetch_destroy(ft);
}

static void fetcher_drain(struct fetcher *f)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left))) {
		struct fetch *ft = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				  (char **)&ft);
		if (ft)
			fetch_complete(ft, msg->data.result);
	}
}

static int add_header(struct fetch *ft, const char *name, const char *v)
{
	char line[512];
	struct curl_slist *l;

	if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, v) >=
	    sizeof(line))
		return 0;	/* an absurd validator is just not sent */
	l = curl_slist_append(ft->headers, line);
	if (!l)
		return -ENOMEM;
	ft->headers = l;
	return 0;
}

/* A header value must not smuggle a second header in. */
static bool header_safe(const char *v)
{
	return v && *v && !strpbrk(v, "\r\n");
}

static int fetch_setup(struct fetch *ft, const struct fetch_opts *o)
{
	CURL *e = ft->easy;
	long tmo = o->timeout_ms > 0 ? (long)o->timeout_ms : 1;
	size_t max = o->max_bytes ? o->max_bytes : FETCH_DEFAULT_MAX_BYTES;
	bool ok = true;

	ft->is_http = scheme_is(o->url, "http") || scheme_is(o->url, "https");
	ft->is_ldap = scheme_is(o->url, "ldap") || scheme_is(o->url, "ldaps");
	if (!ft->is_http && !ft->is_ldap)
		return -EINVAL;
	buf_init(&ft->body, max);

#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
	SET(CURLOPT_URL, o->url);
	SET(CURLOPT_PRIVATE, (char *)ft);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https,ldap,ldaps");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS, 5L);
	SET(CURLOPT_TIMEOUT_MS, tmo);
	SET(CURLOPT_CONNECTTIMEOUT_MS, tmo);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, ft);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, ft);
	SET(CURLOPT_ERRORBUFFER, ft->errbuf);
	SET(CURLOPT_USERAGENT, "pki_exporter/" PKI_VERSION);
	SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	/* never the environment's proxy: exactly what the config says */
	ft->via_proxy = o->proxy && *o->proxy && ft->is_http;
	SET(CURLOPT_PROXY, ft->via_proxy ? o->proxy : "");
	SET(CURLOPT_NOPROXY, o->no_proxy ? o->no_proxy : "");
	if (ft->via_proxy && o->proxy_user) {
		SET(CURLOPT_PROXYUSERNAME, o->proxy_user);
		SET(CURLOPT_PROXYPASSWORD,
		    o->proxy_password ? o->proxy_password : "");
		SET(CURLOPT_PROXYAUTH, (long)CURLAUTH_ANY);
	}
	if (ft->is_ldap && o->user) {
		SET(CURLOPT_USERNAME, o->user);
		SET(CURLOPT_PASSWORD, o->password ? o->password : "");
	}
	if (o->ca_file)
		SET(CURLOPT_CAINFO, o->ca_file);
	if (ft->is_http && header_safe(o->etag)) {
		ok = ok && add_header(ft, "If-None-Match", o->etag) == 0;
		ft->conditional = true;
	}
	if (ft->is_http && header_safe(o->last_modified)) {
		ok = ok && add_header(ft, "If-Modified-Since",
				      o->last_modified) == 0;
		ft->conditional = true;
	}
	if (o->post) {
		ft->post = xmalloc(o->post_len ? o->post_len : 1);
		if (!ft->post)
			return -ENOMEM;
		memcpy(ft->post, o->post, o->post_len);
		SET(CURLOPT_POSTFIELDS, ft->post);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->post_len);
		if (header_safe(o->content_type))
			ok = ok && add_header(ft, "Content-Type",
					      o->content_type) == 0;
	}
	if (ft->headers)
		SET(CURLOPT_HTTPHEADER, ft->headers);
#undef SET
	return ok ? 0 : -ENOMEM;
}

int fetch_start(struct fetcher *f, const struct fetch_opts *o, fetch_cb cb,
		void *arg, struct fetch **handle)
{
	struct fetch *ft;
	int rc;

	*handle = NULL;
	if (!o->url)
		return -EINVAL;
	ft = xcalloc(1, sizeof(*ft));
	if (!ft)
		return -ENOMEM;
	ft->f = f;
	ft->cb = cb;
	ft->arg = arg;
	ft->t0 = loop_now();
	buf_init(&ft->body, 0);
	ft->easy = curl_easy_init();
	if (!ft->easy) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = fetch_setup(ft, o);
	if (rc)
		goto fail;
	if (curl_multi_add_handle(f->multi, ft->easy) != CURLM_OK) {
		rc = -ENOMEM;
		goto fail;
	}
	ft->next = f->fetches;
	if (f->fetches)
		f->fetches->prev = ft;
	f->fetches = ft;
	f->npending++;
	ft->handle = handle;
	*handle = ft;
	return 0;
fail:
	if (ft->easy)
		curl_easy_cleanup(ft->easy);
	ft->easy = NULL;
	fetch_destroy(ft);
	return rc;
}

void fetch_cancel(struct fetch **handle)
{
	struct fetch *ft = handle ? *handle : NULL;

	if (!ft)
		return;
	*handle = NULL;
	ft->handle = NULL;
	fetch_unlink(ft);
	fetch_destroy(ft);
}
