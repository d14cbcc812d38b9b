#include "dns.h"

#include <ares.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "exporter/loop.h"
#include "exporter/xalloc.h"

struct dns_sock {
	struct loop_io io;
	struct dns *d;
	struct dns_sock *next;
};

struct dns {
	struct loop *loop;
	ares_channel ch;
	struct loop_timer timer;
	/* Socket records live until dns_free: c-ares may close a socket
	 * while events for it are still queued in the current batch. */
	struct dns_sock *socks;
};

struct dns_query {
	dns_cb cb;
	dns_srv_cb srv_cb;
	void *arg;
	struct dns_query **handle;	/* the caller's pointer to us */
};

int dns_global_init(void)
{
	return ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS ? 0 : -EIO;
}

void dns_global_cleanup(void)
{
	ares_library_cleanup();
}

const char *dns_version(void)
{
	return ares_version(NULL);
}

static void dns_rearm(struct dns *d)
{
	struct timeval tv, *tvp;

	tvp = ares_timeout(d->ch, NULL, &tv);
	if (!tvp) {
		loop_timer_cancel(d->loop, &d->timer);
		return;
	}
	loop_timer_set(d->loop, &d->timer,
		       loop_now() + (int64_t)tvp->tv_sec * 1000000000LL +
			       (int64_t)tvp->tv_usec * 1000);
}

static void dns_on_timer(struct loop_timer *t)
{
	struct dns *d = t->arg;

	/* with no fds this only processes timeouts; without it lookups
	 * against a silent server would never end */
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(d);
}

static void dns_on_io(struct loop_io *io, uint32_t events)
{
	struct dns_sock *s = io->arg;
	struct dns *d = s->d;
	int fd = io->fd;

	ares_process_fd(d->ch,
			(events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? fd
								   : ARES_SOCKET_BAD,
			(events & EPOLLOUT) ? fd : ARES_SOCKET_BAD);
	dns_rearm(d);
}

static void dns_sock_state(void *data, ares_socket_t fd, int readable,
			   int writable)
{
	struct dns *d = data;
	struct dns_sock *s;
	uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);

	for (s = d->socks; s; s = s->next)
		if (s->io.fd == fd)
			break;
	if (!ev) {
		if (s)
			loop_io_del(d->loop, &s->io);
		return;
	}
	if (s) {
		loop_io_mod(d->loop, &s->io, ev);
		return;
	}
	/* a fresh record every time: an event still queued in this batch for
	 * a closed socket must not reach a new one through a reused record
	 * (a scrape opens only a handful of resolver sockets) */
	s = xcalloc(1, sizeof(*s));
	if (!s)
		return;	/* the lookup then times out */
	s->d = d;
	s->next = d->socks;
	d->socks = s;
	loop_io_init(&s->io, dns_on_io, s);
	loop_io_add(d->loop, &s->io, fd, ev);
}

int dns_new(struct loop *l, const char *servers, struct dns **out)
{
	struct ares_options opts;
	struct dns *d;
	int rc;

	d = xcalloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->loop = l;
	loop_timer_init(&d->timer, dns_on_timer, d);
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = d;
	/* Per-try timeout and tries: the probe's own deadline bounds the
	 * whole lookup; these only pace retransmissions. */
	opts.timeout = 1000;
	opts.tries = 3;
	rc = ares_init_options(&d->ch, &opts,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
				       ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		xfree(d);
		return rc == ARES_ENOMEM ? -ENOMEM : -EIO;
	}
	if (servers && ares_set_servers_ports_csv(d->ch, servers) != ARES_SUCCESS) {
		ares_destroy(d->ch);
		xfree(d);
		return -EINVAL;
	}
	*out = d;
	return 0;
}

void dns_free(struct dns *d)
{
	struct dns_sock *s, *next;

	if (!d)
		return;
	/* runs every pending callback with ARES_EDESTRUCTION; cancelled
	 * queries just free themselves */
	ares_destroy(d->ch);
	loop_timer_cancel(d->loop, &d->timer);
	for (s = d->socks; s; s = next) {
		next = s->next;
		loop_io_del(d->loop, &s->io);
		xfree(s);
	}
	xfree(d);
}

static void dns_on_addrinfo(void *arg, int status, int timeouts,
			    struct ares_addrinfo *ai)
{
	struct dns_query *q = arg;

	(void)timeouts;
	if (q->handle)
		*q->handle = NULL;
	if (q->cb)
		q->cb(q->arg, status, ai);
	if (ai)
		ares_freeaddrinfo(ai);
	xfree(q);
}

int dns_resolve(struct dns *d, const char *name, int family, dns_cb cb,
		void *arg, struct dns_query **handle)
{
	struct ares_addrinfo_hints hints;
	struct dns_query *q = xcalloc(1, sizeof(*q));

	*handle = NULL;
	if (!q)
		return -ENOMEM;
	q->cb = cb;
	q->arg = arg;
	q->handle = handle;
	*handle = q;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	ares_getaddrinfo(d->ch, name, NULL, &hints, dns_on_addrinfo, q);
	dns_rearm(d);
	return 0;
}

void dns_cancel(struct dns_query **handle)
{
	struct dns_query *q = *handle;

	if (!q)
		return;
	q->cb = NULL;
	q->srv_cb = NULL;
	q->handle = NULL;
	*handle = NULL;
}

static int cmp_srv(const void *a, const void *b)
{
	const struct dns_srv *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	if (x->weight != y->weight)
		return x->weight > y->weight ? -1 : 1;
	return strcmp(x->host, y->host);
}

static void dns_on_srv(void *arg, int status, int timeouts,
		       unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct ares_srv_reply *reply = NULL;
	struct dns_srv recs[DNS_SRV_MAX];
	size_t n = 0;

	(void)timeouts;
	if (q->handle)
		*q->handle = NULL;
	if (status == ARES_SUCCESS)
		status = ares_parse_srv_reply(abuf, alen, &reply);
	for (struct ares_srv_reply *r = reply; r && n < DNS_SRV_MAX;
	     r = r->next) {
		/* "." as target means "no service here" (RFC 2782) */
		if (!r->host || !r->host[0] || strcmp(r->host, ".") == 0)
			continue;
		snprintf(recs[n].host, sizeof(recs[n].host), "%s", r->host);
		recs[n].port = r->port;
		recs[n].priority = r->priority;
		recs[n].weight = r->weight;
		n++;
	}
	if (reply)
		ares_free_data(reply);
	if (status == ARES_SUCCESS && n == 0)
		status = ARES_ENODATA;
	qsort(recs, n, sizeof(recs[0]), cmp_srv);
	if (q->srv_cb)
		q->srv_cb(q->arg, status, recs, n);
	xfree(q);
}

int dns_resolve_srv(struct dns *d, const char *name, dns_srv_cb cb,
		    void *arg, struct dns_query **handle)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	*handle = NULL;
	if (!q)
		return -ENOMEM;
	q->srv_cb = cb;
	q->arg = arg;
	q->handle = handle;
	*handle = q;
	ares_query(d->ch, name, 1 /* C_IN */, 33 /* T_SRV */, dns_on_srv, q);
	dns_rearm(d);
	return 0;
}
