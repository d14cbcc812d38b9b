#include "loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#define LOOP_MAX_EVENTS 256
#define HEAP_NONE ((size_t)-1)

int64_t loop_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double loop_seconds(int64_t ns)
{
	return (double)ns / 1e9;
}

int loop_init(struct loop *l)
{
	memset(l, 0, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd == -1)
		return -errno;
	return 0;
}

void loop_cleanup(struct loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	xfree(l->heap);
	memset(l, 0, sizeof(*l));
	l->epfd = -1;
}

void loop_io_init(struct loop_io *io, loop_io_cb cb, void *arg)
{
	io->fd = -1;
	io->events = 0;
	io->cb = cb;
	io->arg = arg;
}

int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};

	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		return -errno;
	io->fd = fd;
	io->events = events;
	l->nio++;
	return 0;
}

int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};

	if (io->fd < 0)
		return -EBADF;
	if (io->events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) == -1)
		return -errno;
	io->events = events;
	return 0;
}

void loop_io_del(struct loop *l, struct loop_io *io)
{
	if (io->fd < 0)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->fd = -1;
	io->events = 0;
	l->nio--;
}

/* --- timers: a binary min-heap on `when` --- */

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg)
{
	t->when = 0;
	t->heap_idx = HEAP_NONE;
	t->cb = cb;
	t->arg = arg;
}

bool loop_timer_armed(const struct loop_timer *t)
{
	return t->heap_idx != HEAP_NONE;
}

static void heap_swap(struct loop *l, size_t a, size_t b)
{
	struct loop_timer *t = l->heap[a];

	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->heap_idx = a;
	l->heap[b]->heap_idx = b;
}

static void heap_up(struct loop *l, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (l->heap[p]->when <= l->heap[i]->when)
			break;
		heap_swap(l, p, i);
		i = p;
	}
}

static void heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;

		if (c < l->nheap && l->heap[c]->when < l->heap[m]->when)
			m = c;
		if (c + 1 < l->nheap && l->heap[c + 1]->when < l->heap[m]->when)
			m = c + 1;
		if (m == i)
			break;
		heap_swap(l, i, m);
		i = m;
	}
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	size_t i = t->heap_idx;

	if (i == HEAP_NONE)
		return;
	t->heap_idx = HEAP_NONE;
	l->nheap--;
	if (i == l->nheap)
		return;
	l->heap[i] = l->heap[l->nheap];
	l->heap[i]->heap_idx = i;
	heap_down(l, i);
	heap_up(l, i);
}

int loop_timer_set(struct loop *l, struct loop_timer *t, int64_t when)
{
	loop_timer_cancel(l, t);
	if (xgrow((void **)&l->heap, &l->capheap, l->nheap + 1,
		  sizeof(*l->heap)))
		return -ENOMEM;
	t->when = when;
	t->heap_idx = l->nheap;
	l->heap[l->nheap++] = t;
	heap_up(l, t->heap_idx);
	return 0;
}

int loop_run_once(struct loop *l, int64_t limit)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int64_t now = loop_now(), wake = limit;
	int timeout_ms, n, ran = 0;

	if (l->nheap && (wake < 0 || l->heap[0]->when < wake))
		wake = l->heap[0]->when;
	if (wake < 0) {
		timeout_ms = -1;
	} else if (wake <= now) {
		timeout_ms = 0;
	} else {
		/* round up so a timer never fires early and spins */
		int64_t ms = (wake - now + 999999) / 1000000;

		timeout_ms = ms > 60000 ? 60000 : (int)ms;
	}

	n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
	if (n == -1) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		struct loop_io *io = evs[i].data.ptr;

		/* deregistered by an earlier callback of this batch; the
		 * owner defers freeing to after the batch (see scrape.c) */
		if (io->fd < 0)
			continue;
		io->cb(io, evs[i].events);
		ran++;
	}

	now = loop_now();
	while (l->nheap && l->heap[0]->when <= now) {
		struct loop_timer *t = l->heap[0];

		loop_timer_cancel(l, t);
		t->cb(t);
		ran++;
	}
	return ran;
}
