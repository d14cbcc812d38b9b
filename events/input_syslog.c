/* Syslog listeners: UDP (one message per datagram) and TCP (RFC 6587:
 * octet counting "LEN SP MSG" or newline-terminated, chosen per frame
 * with framing: auto), many senders at once.
 *
 * Limits: a message longer than max_line_bytes is dropped and counted
 * (line_too_long); an input accepts at most max_connections connections,
 * the ones beyond are closed at once (connection_limit). A listener that
 * cannot bind is retried every few seconds. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "events/runtime.h"
#include "exporter/log.h"
#include "exporter/xalloc.h"

#define EV_RETRY_NS (3 * 1000000000LL)
#define EV_UDP_BATCH 64
#define EV_ACCEPT_BATCH 64
#define EV_READS_PER_WAKE 16
#define EV_OCTET_HDR 16	/* room for "LEN " in front of a frame */

static void peer_str(const struct sockaddr *sa, socklen_t len, char *out,
		     size_t cap)
{
	if (getnameinfo(sa, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST))
		out[0] = '\0';
	else if (strncmp(out, "::ffff:", 7) == 0 && strchr(out, '.'))
		memmove(out, out + 7, strlen(out + 7) + 1);
}

/* ---- UDP ---- */

static void udp_readable(struct loop_io *io, uint32_t events)
{
	struct ev_in *in = io->arg;

	(void)events;
	for (int i = 0; i < EV_UDP_BATCH; i++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		char peer[INET6_ADDRSTRLEN];
		ssize_t n;

		/* MSG_TRUNC: the real size even when it did not fit */
		n = recvfrom(in->fd, in->dgram, in->dgram_cap - 1, MSG_TRUNC,
			     (struct sockaddr *)&from, &flen);
		if (n == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				log_debug("events", "%s: recvfrom: %s",
					  in->cfg->name, strerror(errno));
			return;
		}
		if ((size_t)n > in->cfg->max_line ||
		    (size_t)n >= in->dgram_cap) {
			ev_drop(in, EV_DROP_LINE_TOO_LONG, true);
			continue;
		}
		peer_str((struct sockaddr *)&from, flen, peer, sizeof(peer));
		ev_line(in, in->dgram, (size_t)n, peer[0] ? peer : NULL);
	}
}

/* ---- TCP connections ---- */

void ev_conn_free(struct ev_conn *c)
{
	if (!c)
		return;
	xfree(c->buf);
	xfree(c);
}

static void conn_close(struct ev_conn *c)
{
	struct ev_in *in = c->in;
	struct events *ev = in->ev;

	loop_io_del(&ev->loop, &c->io);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		in->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	in->nconns--;
	/* epoll may still hold an event for it in this batch */
	c->next = ev->dead;
	ev->dead = c;
	pthread_mutex_lock(ev_store_lock(ev->store));
	if (in->st)
		in->st->connections = in->nconns;
	pthread_mutex_unlock(ev_store_lock(ev->store));
}

/* Hand one message to the parser. The byte after it may belong to the
 * next frame: ev_line writes a NUL there, so it is saved and put back. */
static void frame(struct ev_conn *c, char *p, size_t n)
{
	char saved = p[n];

	ev_line(c->in, p, n, c->peer[0] ? c->peer : NULL);
	p[n] = saved;
}

/* Cut complete frames out of c->buf. Returns false when the stream
 * cannot be followed any more (the connection is closed). */
static bool frames(struct ev_conn *c, bool eof)
{
	const struct ev_input_cfg *ic = c->in->cfg;
	size_t off = 0;
	bool ok = true;

	while (off < c->len) {
		char *p = c->buf + off, *lf;
		size_t avail = c->len - off;

		if (c->skip) {
			size_t k = avail < c->skip ? avail : (size_t)c->skip;

			c->skip -= k;
			off += k;
			continue;
		}
		if (c->discard) {
			lf = memchr(p, '\n', avail);
			if (!lf) {
				off = c->len;
				break;
			}
			off += (size_t)(lf - p) + 1;
			c->discard = false;
			continue;
		}
		if (ic->framing != EV_FRAME_NEWLINE && *p >= '1' && *p <= '9') {
			uint64_t v = 0;
			size_t i = 0;

			while (i < avail && i < 10 && p[i] >= '0' &&
			       p[i] <= '9')
				v = v * 10 + (uint64_t)(p[i++] - '0');
			if (i == avail && i < 10 && !eof)
				break;	/* the length is still arriving */
			if (i < avail && p[i] == ' ') {
				size_t body = avail - i - 1;

				if (v > ic->max_line) {
					ev_drop(c->in, EV_DROP_LINE_TOO_LONG,
						true);
					c->skip = v;
					off += i + 1;
					continue;
				}
				if (body < v) {
					if (!eof)
						break;
					/* cut short by the sender */
					ev_drop(c->in, EV_DROP_INVALID_FRAME,
						true);
					off = c->len;
					break;
				}
				frame(c, p + i + 1, (size_t)v);
				off += i + 1 + (size_t)v;
				continue;
			}
		}
		if (ic->framing == EV_FRAME_OCTET) {
			ev_drop(c->in, EV_DROP_INVALID_FRAME, false);
			ok = false;
			off = c->len;
			break;
		}
		lf = memchr(p, '\n', avail);
		if (lf) {
			frame(c, p, (size_t)(lf - p));
			off += (size_t)(lf - p) + 1;
			continue;
		}
		if (avail > ic->max_line) {
			ev_drop(c->in, EV_DROP_LINE_TOO_LONG, true);
			c->discard = true;
			off = c->len;
			break;
		}
		if (eof) {
			/* the last message needs no trailer */
			frame(c, p, avail);
			off = c->len;
		}
		break;
	}
	if (off) {
		memmove(c->buf, c->buf + off, c->len - off);
		c->len -= off;
	}
	return ok;
}

static void conn_readable(struct loop_io *io, uint32_t events)
{
	struct ev_conn *c = io->arg;

	(void)events;
	for (int i = 0; i < EV_READS_PER_WAKE; i++) {
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - 1 - c->len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			frames(c, true);
			conn_close(c);
			return;
		}
		if (n == 0) {
			frames(c, true);
			conn_close(c);
			return;
		}
		c->len += (size_t)n;
		if (!frames(c, false)) {
			conn_close(c);
			return;
		}
	}
}

static size_t conn_cap(const struct ev_input_cfg *ic)
{
	return ic->max_line + EV_OCTET_HDR + 1;
}

static void tcp_acceptable(struct loop_io *io, uint32_t events)
{
	struct ev_in *in = io->arg;
	struct events *ev = in->ev;

	(void)events;
	for (int i = 0; i < EV_ACCEPT_BATCH; i++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		struct ev_conn *c;
		int fd = accept4(in->fd, (struct sockaddr *)&from, &flen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn_errno("events", "%s: accept",
					       in->cfg->name);
			return;
		}
		if (in->nconns >= in->cfg->max_connections) {
			close(fd);
			ev_drop(in, EV_DROP_CONNECTION_LIMIT, false);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		if (c) {
			c->cap = conn_cap(in->cfg);
			c->buf = xmalloc(c->cap);
		}
		if (!c || !c->buf) {
			ev_conn_free(c);
			close(fd);
			continue;
		}
		c->in = in;
		c->fd = fd;
		peer_str((struct sockaddr *)&from, flen, c->peer,
			 sizeof(c->peer));
		loop_io_init(&c->io, conn_readable, c);
		if (loop_io_add(&ev->loop, &c->io, fd, EPOLLIN)) {
			close(fd);
			ev_conn_free(c);
			continue;
		}
		c->next = in->conns;
		if (in->conns)
			in->conns->prev = c;
		in->conns = c;
		in->nconns++;
		pthread_mutex_lock(ev_store_lock(ev->store));
		if (in->st)
			in->st->connections = in->nconns;
		pthread_mutex_unlock(ev_store_lock(ev->store));
	}
}

/* ---- listeners ---- */

void ev_syslog_open(struct ev_in *in)
{
	const struct ev_input_cfg *ic = in->cfg;
	struct events *ev = in->ev;
	bool udp = ic->kind == EV_IN_UDP;
	int fd, one = 1, err;

	if (in->fd >= 0)
		return;
	if (udp && !in->dgram) {
		/* the largest UDP payload, or a larger line limit */
		in->dgram_cap =
			(ic->max_line > 65535 ? ic->max_line : 65535) + 1;
		in->dgram = xmalloc(in->dgram_cap);
		if (!in->dgram) {
			in->retry_at = loop_now() + EV_RETRY_NS;
			return;
		}
	}
	fd = socket(ic->addr.ss_family,
		    (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK |
			    SOCK_CLOEXEC,
		    0);
	if (fd == -1)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (udp) {
		int sz = 4 * 1024 * 1024;

		/* bursts of events arrive faster than one wake-up */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	if (bind(fd, (const struct sockaddr *)&ic->addr, ic->addrlen) == -1)
		goto fail;
	if (!udp && listen(fd, 128) == -1)
		goto fail;
	loop_io_init(&in->io, udp ? udp_readable : tcp_acceptable, in);
	if (loop_io_add(&ev->loop, &in->io, fd, EPOLLIN))
		goto fail;
	in->fd = fd;
	in->retry_at = 0;
	if (in->bind_errno)
		log_info("events", "%s: listening on %s", ic->name, ic->key);
	else
		log_debug("events", "%s: listening on %s", ic->name, ic->key);
	in->bind_errno = 0;
	ev_set_up(in, true);
	return;
fail:
	err = errno;
	if (fd >= 0)
		close(fd);
	if (err != in->bind_errno)
		log_err("events", "%s: cannot listen on %s: %s (retrying)",
			ic->name, ic->key, strerror(err));
	in->bind_errno = err;
	in->retry_at = loop_now() + EV_RETRY_NS;
	ev_set_up(in, false);
}

void ev_syslog_close(struct ev_in *in)
{
	while (in->conns)
		conn_close(in->conns);
	if (in->fd >= 0) {
		loop_io_del(&in->ev->loop, &in->io);
		close(in->fd);
		in->fd = -1;
	}
	xfree(in->dgram);
	in->dgram = NULL;
	in->dgram_cap = 0;
	ev_set_up(in, false);
}

void ev_syslog_reconfigured(struct ev_in *in)
{
	const struct ev_input_cfg *ic = in->cfg;
	size_t cap = conn_cap(ic);

	if (ic->kind == EV_IN_UDP) {
		size_t want = (ic->max_line > 65535 ? ic->max_line : 65535) + 1;

		if (want != in->dgram_cap) {
			char *p = xrealloc(in->dgram, want);

			if (p) {
				in->dgram = p;
				in->dgram_cap = want;
			}
		}
		return;
	}
	for (struct ev_conn *c = in->conns; c; c = c->next) {
		char *p;

		if (c->cap == cap)
			continue;
		if (c->len > cap - 1) {
			/* the pending partial line is already too long */
			ev_drop(in, EV_DROP_LINE_TOO_LONG, true);
			c->len = 0;
			c->discard = true;
		}
		p = xrealloc(c->buf, cap);
		if (p) {
			c->buf = p;
			c->cap = cap;
		}
	}
	ev_set_up(in, in->fd >= 0);
}
