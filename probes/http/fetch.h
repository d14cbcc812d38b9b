/* Bounded URL fetches (HTTP, HTTPS, LDAP) with libcurl's multi *socket*
 * interface on a scrape's event loop.
 *
 * One struct fetcher wraps one CURLM bound to one loop (one scrape shard):
 * curl's sockets are watched by the loop (CURLMOPT_SOCKETFUNCTION), its
 * timeouts driven by a loop timer (CURLMOPT_TIMERFUNCTION), and finished
 * transfers are drained with curl_multi_info_read after every
 * curl_multi_socket_action (curl/curl docs/examples/ephiperfifo.c). A fetch
 * never blocks, always ends by its timeout, and never holds more than
 * max_bytes of body. */
#ifndef PKI_FETCH_H
#define PKI_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct fetcher;
struct fetch;

/* Why a fetch failed: a bounded set, rendered as the `reason` label. */
enum fetch_err {
	FETCH_OK = 0,
	FETCH_ERR_TIMEOUT,
	FETCH_ERR_TOO_LARGE,	/* body (or Content-Length) over max_bytes */
	FETCH_ERR_HTTP_STATUS,	/* an answer other than 200 (or 304) */
	FETCH_ERR_DNS,
	FETCH_ERR_CONNECT,	/* refused, unreachable */
	FETCH_ERR_PROXY,	/* the proxy could not be reached or refused */
	FETCH_ERR_PROXY_AUTH,	/* the proxy answered 407 */
	FETCH_ERR_TLS,
	FETCH_ERR_TRUNCATED,	/* connection closed before the whole body */
	FETCH_ERR_PROTOCOL,	/* garbled or empty answer */
	FETCH_ERR_RESET,	/* the connection was reset */
	FETCH_ERR_LDAP,		/* LDAP search failed */
	FETCH_ERR_LDAP_AUTH,	/* LDAP bind refused */
	FETCH_ERR_NOT_FOUND,	/* LDAP object or file not there */
	FETCH_ERR_PERMISSION,	/* file:// not readable */
	FETCH_ERR_FILE,		/* file:// not a regular file, I/O error */
	FETCH_ERR_UNSUPPORTED,	/* scheme this build cannot fetch */
	FETCH_ERR_INTERNAL,
	FETCH_ERR__COUNT,
};

const char *fetch_err_str(enum fetch_err e);

struct fetch_opts {
	const char *url;
	/* "http://host:port" or NULL for none; the environment (http_proxy,
	 * no_proxy) is never consulted, so a fetch goes exactly the way the
	 * configuration says. Not used for ldap:// URLs. */
	const char *proxy;
	const char *no_proxy;	/* curl's list: "a.example,.corp,10.0.0.1" */
	const char *proxy_user, *proxy_password;
	const char *user, *password;	/* LDAP bind DN and password */
	const char *ca_file;	/* trust anchors for https, NULL = system */
	/* Conditional GET: sent as If-None-Match / If-Modified-Since. */
	const char *etag, *last_modified;
	/* A POST body (OCSP); NULL for GET. Copied. */
	const void *post;
	size_t post_len;
	const char *content_type;
	size_t max_bytes;	/* 0: FETCH_DEFAULT_MAX_BYTES */
	int64_t timeout_ms;	/* whole transfer, >= 1 */
};

#define FETCH_DEFAULT_MAX_BYTES (64u * 1024 * 1024)

struct fetch_result {
	enum fetch_err err;
	long http_status;	/* final HTTP status, 0 when none */
	long connect_status;	/* the proxy's answer to CONNECT, 0 if none */
	bool not_modified;	/* 304 to a conditional GET (err = OK) */
	unsigned char *body;	/* owned by the result: steal it (and set
				   to NULL) or it is freed after the cb */
	size_t len;
	char etag[256];		/* validators of a 200, "" when absent */
	char last_modified[128];
	char content_type[128];
	double seconds;		/* how long the fetch took */
	char detail[256];	/* curl's message, for logs only */
};

/* Called once per fetch (never from inside fetch_start), from the loop. */
typedef void (*fetch_cb)(void *arg, struct fetch_result *res);

/* A fetcher on loop `l`. Returns 0 or -ENOMEM. */
int fetcher_new(struct loop *l, struct fetcher **out);
/* Abort every pending fetch (their callbacks do not run) and free. */
void fetcher_free(struct fetcher *f);

/* Start a fetch. *handle is set to the pending fetch and reset to NULL
 * just before the callback runs. Returns 0, -EINVAL (bad options) or
 * -ENOMEM; on error the callback never runs. */
int fetch_start(struct fetcher *f, const struct fetch_opts *o, fetch_cb cb,
		void *arg, struct fetch **handle);

/* Abort: the callback will not run; *handle becomes NULL. No-op on NULL. */
void fetch_cancel(struct fetch **handle);

/* Fetches not finished yet (for tests). */
size_t fetcher_pending(const struct fetcher *f);

#endif
