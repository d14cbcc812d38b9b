/* The libcurl fetcher on an event loop, against a small HTTP server run by
 * this test on 127.0.0.1 (one thread per connection): bodies, conditional
 * GET, byte cap, timeout, truncation, HTTP errors and a proxy that wants
 * credentials. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "exporter/loop.h"
#include "exporter/xalloc.h"
#include "probes/http/fetch.h"

static int lfd = -1;
static unsigned port;
static pthread_t acceptor;
static int requests_seen;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void reply(int fd, const char *status, const char *extra,
		  const char *body)
{
	char head[1024];

	snprintf(head, sizeof(head),
		 "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
		 "%s\r\n",
		 status, strlen(body), extra);
	send_all(fd, head, strlen(head));
	send_all(fd, body, strlen(body));
}

static void *serve_one(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[8192];
	size_t n = 0;
	char method[16], target[2048];

	while (n < sizeof(req) - 1) {
		ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);

		if (r <= 0)
			break;
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[n] = '\0';
	pthread_mutex_lock(&mu);
	requests_seen++;
	pthread_mutex_unlock(&mu);
	if (sscanf(req, "%15s %2047s", method, target) != 2) {
		close(fd);
		return NULL;
	}
	/* through a proxy the request target is the absolute URL */
	if (strncmp(target, "http://", 7) == 0) {
		if (!strstr(req, "Proxy-Authorization: Basic "))
			reply(fd, "407 Proxy Authentication Required",
			      "Proxy-Authenticate: Basic realm=\"t\"\r\n",
			      "auth please");
		else
			reply(fd, "200 OK", "", "via-proxy");
	} else if (strcmp(target, "/ok") == 0) {
		reply(fd, "200 OK",
		      "ETag: \"v1\"\r\nLast-Modified: Wed, 01 Jan 2025 "
		      "00:00:00 GMT\r\nContent-Type: application/pkix-crl\r\n",
		      "hello");
	} else if (strcmp(target, "/etag") == 0) {
		if (strstr(req, "If-None-Match: \"v1\""))
			reply(fd, "304 Not Modified", "", "");
		else
			reply(fd, "200 OK", "ETag: \"v1\"\r\n", "fresh");
	} else if (strcmp(target, "/post") == 0) {
		reply(fd, "200 OK", "",
		      strcmp(method, "POST") == 0 ? "posted" : "not a post");
	} else if (strcmp(target, "/big") == 0) {
		const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 100000000"
				"\r\n\r\n";

		send_all(fd, h, strlen(h));
	} else if (strcmp(target, "/endless") == 0) {
		const char *h = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
		char chunk[4096];

		memset(chunk, 'x', sizeof(chunk));
		send_all(fd, h, strlen(h));
		for (int i = 0; i < 4096; i++)	/* 16 MiB at most */
			if (send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) <= 0)
				break;
	} else if (strcmp(target, "/trunc") == 0) {
		const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
				"\r\n0123456789";

		send_all(fd, h, strlen(h));
	} else if (strcmp(target, "/slow") == 0) {
		sleep(2);
	} else {
		reply(fd, "404 Not Found", "", "<html>nope</html>");
	}
	close(fd);
	return NULL;
}

static void *accept_loop(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd == -1) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (pthread_create(&t, NULL, serve_one, (void *)(intptr_t)fd))
			close(fd);
		else
			pthread_detach(t);
	}
}

static int setup(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd == -1 || bind(lfd, (void *)&sa, sizeof(sa)) ||
	    listen(lfd, 64) || getsockname(lfd, (void *)&sa, &len))
		return -1;
	port = ntohs(sa.sin_port);
	return pthread_create(&acceptor, NULL, accept_loop, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(acceptor, NULL);
	curl_global_cleanup();
	return 0;
}

struct outcome {
	bool done;
	struct fetch_result res;
	char body[64];
};

static void on_done(void *arg, struct fetch_result *res)
{
	struct outcome *o = arg;

	o->done = true;
	o->res = *res;
	o->res.body = NULL;
	snprintf(o->body, sizeof(o->body), "%.*s",
		 (int)(res->len < 63 ? res->len : 63),
		 res->body ? (const char *)res->body : "");
}

/* Fetch one URL on a fresh loop and wait (at most 5 s) for the result. */
static void fetch_one(struct fetch_opts *o, struct outcome *out)
{
	struct loop l;
	struct fetcher *f;
	struct fetch *h;
	int64_t end = loop_now() + 5000000000LL;

	memset(out, 0, sizeof(*out));
	assert_int_equal(loop_init(&l), 0);
	assert_int_equal(fetcher_new(&l, &f), 0);
	if (!o->timeout_ms)
		o->timeout_ms = 3000;
	assert_int_equal(fetch_start(f, o, on_done, out, &h), 0);
	assert_non_null(h);
	assert_false(out->done);	/* never from inside fetch_start */
	while (!out->done && loop_now() < end)
		loop_run_once(&l, end);
	assert_true(out->done);
	assert_null(h);
	assert_int_equal(fetcher_pending(f), 0);
	fetcher_free(f);
	loop_cleanup(&l);
}

static char *url(const char *path)
{
	static char u[256];

	snprintf(u, sizeof(u), "http://127.0.0.1:%u%s", port, path);
	return u;
}

static void test_ok_and_validators(void **state)
{
	struct fetch_opts o = {0};
	struct outcome r;

	(void)state;
	o.url = url("/ok");
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_OK);
	assert_int_equal(r.res.http_status, 200);
	assert_string_equal(r.body, "hello");
	assert_int_equal(r.res.len, 5);
	assert_string_equal(r.res.etag, "\"v1\"");
	assert_string_equal(r.res.last_modified,
			    "Wed, 01 Jan 2025 00:00:00 GMT");
	assert_string_equal(r.res.content_type, "application/pkix-crl");
	assert_false(r.res.not_modified);
}

static void test_conditional(void **state)
{
	struct fetch_opts o = {0};
	struct outcome r;

	(void)state;
	o.url = url("/etag");
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_OK);
	assert_string_equal(r.body, "fresh");
	o.etag = "\"v1\"";
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_OK);
	assert_true(r.res.not_modified);
	assert_int_equal(r.res.http_status, 304);
	/* a validator with a line break is never sent */
	o.etag = "\"v1\"\r\nX-Evil: 1";
	fetch_one(&o, &r);
	assert_false(r.res.not_modified);
}

static void test_post(void **state)
{
	struct fetch_opts o = {0};
	struct outcome r;

	(void)state;
	o.url = url("/post");
	o.post = "\x30\x03\x02\x01\x00";
	o.post_len = 5;
	o.content_type = "application/ocsp-request";
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_OK);
	assert_string_equal(r.body, "posted");
}

static void test_limits(void **state)
{
	struct fetch_opts o = {0};
	struct outcome r;
	int64_t t0;

	(void)state;
	o.max_bytes = 1000;
	o.url = url("/big");	/* Content-Length over the cap */
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_ERR_TOO_LARGE);
	o.url = url("/endless");	/* no length, body never ends */
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_ERR_TOO_LARGE);
	o.max_bytes = 0;
	o.url = url("/trunc");
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_ERR_TRUNCATED);
	o.url = url("/missing");
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_ERR_HTTP_STATUS);
	assert_int_equal(r.res.http_status, 404);
	o.url = url("/slow");
	o.timeout_ms = 300;
	t0 = loop_now();
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_ERR_TIMEOUT);
	assert_true(loop_now() - t0 < 1500000000LL);
	assert_true(r.res.seconds >= 0.25 && r.res.seconds < 1.5);
}

static void test_connect_refused(void **state)
{
	struct fetch_opts o = {0};
	struct outcome r;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	char u[128];

	(void)state;
	/* a port that was just free and has no listener */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (void *)&sa, sizeof(sa)), 0);
	getsockname(s, (void *)&sa, &len);
	close(s);
	snprintf(u, sizeof(u), "http://127.0.0.1:%u/x", ntohs(sa.sin_port));
	o.url = u;
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_ERR_CONNECT);
	/* the same port as a proxy: the proxy is what failed */
	o.url = "http://crl.invalid/x.crl";
	{
		char p[64];

		snprintf(p, sizeof(p), "http://127.0.0.1:%u",
			 ntohs(sa.sin_port));
		o.proxy = p;
		fetch_one(&o, &r);
	}
	assert_int_equal(r.res.err, FETCH_ERR_PROXY);
}

static void test_proxy_auth(void **state)
{
	struct fetch_opts o = {0};
	struct outcome r;
	char p[64];

	(void)state;
	snprintf(p, sizeof(p), "http://127.0.0.1:%u", port);
	o.url = "http://crl.example.invalid/ca.crl";
	o.proxy = p;
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_ERR_PROXY_AUTH);
	assert_int_equal(r.res.http_status, 407);
	o.proxy_user = "u";
	o.proxy_password = "p";
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_OK);
	assert_string_equal(r.body, "via-proxy");
	/* no_proxy: straight to the server, which then sees a plain GET */
	o.url = url("/ok");
	o.proxy_user = NULL;
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_ERR_PROXY_AUTH);
	o.no_proxy = "127.0.0.1";
	fetch_one(&o, &r);
	assert_int_equal(r.res.err, FETCH_OK);
	assert_string_equal(r.body, "hello");
}

static void test_bad_opts_and_cancel(void **state)
{
	struct loop l;
	struct fetcher *f;
	struct fetch *h1, *h2;
	struct fetch_opts o = {0};
	struct outcome r1, r2;
	int64_t end;

	(void)state;
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	assert_int_equal(loop_init(&l), 0);
	assert_int_equal(fetcher_new(&l, &f), 0);
	o.url = "gopher://127.0.0.1/x";
	o.timeout_ms = 1000;
	assert_int_equal(fetch_start(f, &o, on_done, &r1, &h1), -EINVAL);
	assert_null(h1);
	o.url = url("/slow");
	assert_int_equal(fetch_start(f, &o, on_done, &r1, &h1), 0);
	o.url = url("/ok");
	assert_int_equal(fetch_start(f, &o, on_done, &r2, &h2), 0);
	assert_int_equal(fetcher_pending(f), 2);
	fetch_cancel(&h1);
	assert_null(h1);
	fetch_cancel(&h1);	/* no-op */
	end = loop_now() + 3000000000LL;
	while (!r2.done && loop_now() < end)
		loop_run_once(&l, end);
	assert_true(r2.done);
	assert_false(r1.done);
	/* freeing with a fetch in flight: its callback never runs */
	o.url = url("/slow");
	assert_int_equal(fetch_start(f, &o, on_done, &r1, &h1), 0);
	fetcher_free(f);
	assert_null(h1);
	assert_false(r1.done);
	loop_cleanup(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok_and_validators),
		cmocka_unit_test(test_conditional),
		cmocka_unit_test(test_post),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_proxy_auth),
		cmocka_unit_test(test_bad_opts_and_cancel),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
