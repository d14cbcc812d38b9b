/* One epoll event loop with timers, owned by one thread (a scrape).
 *
 * File descriptors are watched through a struct loop_io embedded in the
 * caller's state; timers are struct loop_timer kept in a binary heap. Time
 * is CLOCK_MONOTONIC in nanoseconds. Nothing here allocates per event. */
#ifndef PKI_LOOP_H
#define PKI_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct loop_io;
struct loop_timer;

typedef void (*loop_io_cb)(struct loop_io *io, uint32_t events);
typedef void (*loop_timer_cb)(struct loop_timer *t);

struct loop_io {
	int fd;		/* -1 when not registered */
	uint32_t events;
	loop_io_cb cb;
	void *arg;
};

struct loop_timer {
	int64_t when;	/* absolute monotonic ns */
	size_t heap_idx;	/* (size_t)-1 when not armed */
	loop_timer_cb cb;
	void *arg;
};

struct loop {
	int epfd;
	struct loop_timer **heap;
	size_t nheap, capheap;
	size_t nio;	/* registered fds */
	bool stop;
};

int64_t loop_now(void);	/* monotonic ns */
double loop_seconds(int64_t ns);

int loop_init(struct loop *l);
void loop_cleanup(struct loop *l);

void loop_io_init(struct loop_io *io, loop_io_cb cb, void *arg);
/* Watch io->fd = fd for `events` (EPOLLIN/EPOLLOUT). */
int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events);
int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events);
/* Stop watching; io->fd becomes -1. The fd itself is not closed. Events
 * already collected for it in this iteration are dropped. */
void loop_io_del(struct loop *l, struct loop_io *io);

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg);
int loop_timer_set(struct loop *l, struct loop_timer *t, int64_t when);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
bool loop_timer_armed(const struct loop_timer *t);

/* Run one iteration: wait for events or the next timer (at most until
 * `limit`, an absolute time, or forever if limit < 0), dispatch them.
 * Returns the number of callbacks run, or -errno. */
int loop_run_once(struct loop *l, int64_t limit);

#endif
