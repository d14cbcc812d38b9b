/* The events subsystem: its thread, the line path (parse, match, count)
 * and the life cycle (start, reconfigure, stop, emit).
 *
 * One thread runs one epoll loop (exporter/loop.c) with the syslog
 * sockets, an inotify descriptor for the tailed files' directories, an
 * eventfd through which other threads ask for a reconfiguration or the
 * stop, and one periodic tick (file polling, bind retries, saving file
 * positions). Counting takes the store's lock once per line; scrapes copy
 * the counters under the same lock and format them outside it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "events/runtime.h"
#include "exporter/log.h"
#include "exporter/xalloc.h"

double ev_wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the line path ---- */

void ev_line(struct ev_in *in, char *line, size_t len, const char *peer)
{
	struct events *ev = in->ev;
	const struct events_cfg *ec = ev->cfg;
	struct ev_event e;
	size_t nhit = 0;
	double now;
	int rc;

	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (len == 0)
		return;	/* blank lines are not events, nor errors */
	line[len] = '\0';
	rc = ev_parse_line(in->cfg, &in->parser, line, len, peer, &e);
	if (rc == 0 && ev->md)
		nhit = ev_rules_match(ec, &e, ev->md, ev->hits);
	now = nhit ? ev_wall_now() : 0;
	pthread_mutex_lock(ev_store_lock(ev->store));
	if (in->st) {
		in->st->lines++;
		if (rc)
			in->st->parse_errors++;
		else if (!nhit)
			in->st->unmatched++;
	}
	for (size_t i = 0; i < nhit; i++)
		ev_store_count(ev->store, ev->groups[ev->hits[i]], in->st, &e,
			       now);
	pthread_mutex_unlock(ev_store_lock(ev->store));
	ev_parser_reset(&in->parser);
	if (rc) {
		int64_t t = loop_now();

		/* at most one line a second in the log per input */
		if (t - in->last_err_log >= 1000000000LL) {
			in->last_err_log = t;
			log_debug("events", "%s: cannot parse as %s: %.200s",
				  in->cfg->name,
				  ev_format_str(in->cfg->format), line);
		}
	}
}

void ev_drop(struct ev_in *in, enum ev_drop d, bool line)
{
	pthread_mutex_lock(ev_store_lock(in->ev->store));
	if (in->st) {
		in->st->dropped[d]++;
		if (line)
			in->st->lines++;
	}
	pthread_mutex_unlock(ev_store_lock(in->ev->store));
}

void ev_set_up(struct ev_in *in, bool up)
{
	pthread_mutex_lock(ev_store_lock(in->ev->store));
	if (in->st)
		in->st->up = up;
	pthread_mutex_unlock(ev_store_lock(in->ev->store));
}

/* ---- inputs ---- */

static struct ev_in *input_new(struct events *ev,
			       const struct ev_input_cfg *ic,
			       struct ev_instat *st)
{
	struct ev_in *in = xcalloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->ev = ev;
	in->cfg = ic;
	in->st = st;
	in->fd = -1;
	ev_parser_init(&in->parser);
	ev_file_init(in);
	return in;
}

static void input_free(struct ev_in *in)
{
	if (!in)
		return;
	if (in->cfg->kind == EV_IN_FILE)
		ev_file_close(in);
	else
		ev_syslog_close(in);
	ev_parser_cleanup(&in->parser);
	xfree(in);
}

/* ---- file positions ---- */

/* Write every state file the file inputs use. */
static void save_state(struct events *ev)
{
	struct ev_state_entry *e;

	if (!ev->dirty)
		return;
	e = xcalloc(ev->nins ? ev->nins : 1, sizeof(*e));
	if (!e)
		return;	/* stays dirty: tried again on the next tick */
	ev->dirty = false;
	for (size_t i = 0; i < ev->nins; i++) {
		const char *sf = ev->ins[i]->cfg->state_file;
		size_t n = 0;
		bool done = false;
		int rc;

		if (ev->ins[i]->cfg->kind != EV_IN_FILE || !sf)
			continue;
		/* inputs sharing this file, once per file */
		for (size_t k = 0; k < i && !done; k++)
			done = ev->ins[k]->cfg->kind == EV_IN_FILE &&
			       ev->ins[k]->cfg->state_file &&
			       strcmp(ev->ins[k]->cfg->state_file, sf) == 0;
		if (done)
			continue;
		for (size_t k = i; k < ev->nins; k++) {
			const struct ev_in *o = ev->ins[k];

			if (o->cfg->kind != EV_IN_FILE || !o->cfg->state_file ||
			    strcmp(o->cfg->state_file, sf) != 0)
				continue;
			e[n].path = o->cfg->path;
			e[n].npos = o->started ? ev_file_positions(o, e[n].pos)
					       : 0;
			if (!o->started) {
				/* not opened yet: keep what the file had */
				int r = ev_state_load(sf, o->cfg->path,
						      e[n].pos);

				if (r < 0)
					continue;
				e[n].npos = (size_t)r;
			}
			n++;
		}
		rc = ev_state_save(sf, e, n);
		if (rc) {
			ev->dirty = true;
			log_warn("events", "cannot write state file %s: %s", sf,
				 strerror(-rc));
		}
	}
	xfree(e);
}

/* ---- the tick ---- */

static void tick_arm(struct events *ev, int64_t delay)
{
	loop_timer_set(&ev->loop, &ev->tick, loop_now() + delay);
}

static void on_tick(struct loop_timer *t)
{
	struct events *ev = t->arg;
	int64_t now = loop_now();

	if (!ev->cfg)
		return;
	ev->budget_left = false;
	for (size_t i = 0; i < ev->nins; i++) {
		struct ev_in *in = ev->ins[i];

		if (in->cfg->kind == EV_IN_FILE)
			ev_file_poll(in, now);
		else if (in->fd < 0 && in->retry_at && now >= in->retry_at)
			ev_syslog_open(in);
	}
	if (now >= ev->next_save) {
		save_state(ev);
		ev->next_save = now + (int64_t)(ev->cfg->state_interval * 1e9);
	}
	tick_arm(ev, ev->budget_left ? 0
				     : (int64_t)(ev->cfg->poll_interval * 1e9));
}

/* ---- inotify: wake up early for the tailed files ---- */

static void watch_dirs(struct events *ev)
{
	if (ev->inofd < 0)
		return;
	for (size_t i = 0; i < ev->nins; i++) {
		struct ev_in *in = ev->ins[i];
		char *dir, *slash;

		if (in->cfg->kind != EV_IN_FILE || in->wd >= 0)
			continue;
		dir = xstrdup(in->cfg->path);
		if (!dir)
			continue;
		slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		in->wd = inotify_add_watch(ev->inofd, slash ? dir : ".",
					   IN_MODIFY | IN_CREATE |
						   IN_MOVED_TO | IN_MOVED_FROM |
						   IN_DELETE | IN_CLOSE_WRITE |
						   IN_ATTRIB);
		xfree(dir);
	}
}

static void on_inotify(struct loop_io *io, uint32_t events)
{
	struct events *ev = io->arg;
	char b[16384]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;

	(void)events;
	for (;;) {
		ssize_t n = read(ev->inofd, b, sizeof(b));

		if (n <= 0)
			break;
		for (char *p = b; p < b + n;) {
			const struct inotify_event *ie = (const void *)p;

			for (size_t i = 0; i < ev->nins; i++) {
				struct ev_in *in = ev->ins[i];

				if (in->cfg->kind == EV_IN_FILE &&
				    (ie->wd == in->wd ||
				     (ie->mask & IN_Q_OVERFLOW))) {
					in->poll_now = true;
					any = true;
				}
			}
			p += sizeof(*ie) + ie->len;
		}
	}
	if (!any || !ev->cfg)
		return;
	ev->budget_left = false;
	for (size_t i = 0; i < ev->nins; i++)
		if (ev->ins[i]->poll_now)
			ev_file_poll(ev->ins[i], loop_now());
	if (ev->budget_left)
		tick_arm(ev, 0);	/* a burst: read on without waiting */
}

/* ---- reconfiguration (on the thread) ---- */

/* Switch to nc. Inputs with the same kind and address/path are kept
 * (sockets, connections, read positions), the others closed or opened;
 * the counters follow rule and input names. On failure the subsystem
 * runs with what could be set up, never with the old configuration. */
static int apply(struct events *ev, const struct events_cfg *nc)
{
	size_t nr = nc ? nc->nrules : 0, ni = nc ? nc->ninputs : 0;
	struct ev_group **groups = xcalloc(nr ? nr : 1, sizeof(*groups));
	struct ev_instat **instats = xcalloc(ni ? ni : 1, sizeof(*instats));
	size_t *hits = xcalloc(nr ? nr : 1, sizeof(*hits));
	struct ev_in **ins = xcalloc(ni ? ni : 1, sizeof(*ins));
	pcre2_match_data *md = pcre2_match_data_create(1, ev_pcre2_gctx());
	int rc = 0;

	if (!groups || !instats || !hits || !ins || !md) {
		rc = -ENOMEM;
		nc = NULL;
		nr = ni = 0;
	}
	/* positions of files about to close */
	save_state(ev);
	/* the store may free the statistics of inputs that go: kept ones
	 * get theirs back below */
	for (size_t i = 0; i < ev->nins; i++)
		ev->ins[i]->st = NULL;
	pthread_mutex_lock(ev_store_lock(ev->store));
	if (ev_store_configure(ev->store, nc, groups, instats))
		rc = -ENOMEM;
	pthread_mutex_unlock(ev_store_lock(ev->store));

	for (size_t i = 0; i < ev->nins; i++)
		ev->ins[i]->keep = false;
	for (size_t k = 0; k < ni; k++) {
		const struct ev_input_cfg *ic = &nc->inputs[k];
		struct ev_in *in = NULL;

		for (size_t i = 0; i < ev->nins && !in; i++)
			if (!ev->ins[i]->keep &&
			    strcmp(ev->ins[i]->cfg->key, ic->key) == 0)
				in = ev->ins[i];
		if (in) {
			in->keep = true;
			in->cfg = ic;
			in->st = instats[k];
			if (ic->kind == EV_IN_FILE)
				ev_file_reconfigured(in);
			else
				ev_syslog_reconfigured(in);
		} else {
			in = input_new(ev, ic, instats[k]);
			if (!in) {
				rc = -ENOMEM;
				continue;
			}
			in->keep = true;
		}
		ins[k] = in;
	}
	/* close what the new configuration does not have */
	for (size_t i = 0; i < ev->nins; i++) {
		if (ev->ins[i]->keep)
			continue;
		if (ev->ins[i]->wd >= 0 && ev->inofd >= 0) {
			bool shared = false;

			for (size_t k = 0; k < ni && !shared; k++)
				shared = ins[k] && ins[k]->wd == ev->ins[i]->wd;
			if (!shared)
				inotify_rm_watch(ev->inofd, ev->ins[i]->wd);
		}
		input_free(ev->ins[i]);
	}
	xfree(ev->ins);
	xfree(ev->groups);
	xfree(ev->hits);
	pcre2_match_data_free(ev->md);
	ev->ins = ins;
	ev->groups = groups;
	ev->hits = hits;
	ev->md = md;
	ev->nins = 0;
	for (size_t k = 0; k < ni; k++) {
		if (!ins[k])
			continue;
		ins[k]->keep = false;
		ev->ins[ev->nins++] = ins[k];
	}
	ev->cfg = nc;
	xfree(instats);

	/* open the new ones; new files are read on the first tick */
	for (size_t i = 0; i < ev->nins; i++)
		if (ev->ins[i]->cfg->kind != EV_IN_FILE)
			ev_syslog_open(ev->ins[i]);
		else
			ev_file_poll(ev->ins[i], loop_now());
	watch_dirs(ev);
	ev->dirty = true;
	save_state(ev);
	if (nc)
		tick_arm(ev, (int64_t)(nc->poll_interval * 1e9));
	else
		loop_timer_cancel(&ev->loop, &ev->tick);
	return rc;
}

/* ---- the thread ---- */

/* A reconfiguration closes and frees inputs whose loop_io may still have
 * events queued in the current epoll batch: so the wake-up only notes the
 * request, and handle_wake() runs between batches. */
static void on_wake(struct loop_io *io, uint32_t events)
{
	struct events *ev = io->arg;
	uint64_t v;

	(void)events;
	while (read(ev->wakefd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	ev->wake_pending = true;
}

static void handle_wake(struct events *ev)
{
	const struct events_cfg *want;
	uint64_t v, req;
	bool stop;

	ev->wake_pending = false;
	pthread_mutex_lock(&ev->ctl);
	stop = ev->stop;
	want = ev->want;
	req = ev->req;
	pthread_mutex_unlock(&ev->ctl);
	if (stop || req == ev->done)
		return;
	v = (uint64_t)apply(ev, want);
	pthread_mutex_lock(&ev->ctl);
	ev->result = (int)v;
	ev->done = req;
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->ctl);
}

static void free_dead(struct events *ev)
{
	while (ev->dead) {
		struct ev_conn *c = ev->dead;

		ev->dead = c->next;
		ev_conn_free(c);
	}
}

static void *thread_main(void *arg)
{
	struct events *ev = arg;
	sigset_t all;

	/* signals belong to the main thread (sigwait) */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/* made here, not in events_start: an exporter without `events:`
	 * holds no inotify instance (a per-user limit, 128 by default) */
	ev->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ev->inofd >= 0) {
		loop_io_init(&ev->ino_io, on_inotify, ev);
		if (loop_io_add(&ev->loop, &ev->ino_io, ev->inofd, EPOLLIN)) {
			close(ev->inofd);
			ev->inofd = -1;
		}
	} else {
		log_info("events", "inotify unavailable (%s): polling files "
				   "only",
			 strerror(errno));
	}
	handle_wake(ev);
	for (;;) {
		bool stop;

		pthread_mutex_lock(&ev->ctl);
		stop = ev->stop;
		pthread_mutex_unlock(&ev->ctl);
		if (stop)
			break;
		if (loop_run_once(&ev->loop, -1) < 0)
			usleep(10000);
		free_dead(ev);
		if (ev->wake_pending) {	/* after the batch: see on_wake */
			handle_wake(ev);
			free_dead(ev);
		}
	}
	/* last positions, then close everything */
	ev->dirty = true;
	save_state(ev);
	apply(ev, NULL);
	free_dead(ev);
	ev_json_thread_cleanup();
	/* nobody waits for a switch any more */
	pthread_mutex_lock(&ev->ctl);
	ev->done = ev->req;
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->ctl);
	return NULL;
}

/* ---- the interface ---- */

struct events *events_start(const struct events_cfg *ec)
{
	struct events *ev = xcalloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	ev_json_init();
	pthread_mutex_init(&ev->ctl, NULL);
	pthread_cond_init(&ev->cond, NULL);
	ev->wakefd = ev->inofd = -1;
	ev->loop.epfd = -1;
	ev->store = ev_store_new();
	if (!ev->store)
		goto fail;
	if (loop_init(&ev->loop))
		goto fail;
	ev->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ev->wakefd == -1)
		goto fail;
	loop_io_init(&ev->wake_io, on_wake, ev);
	if (loop_io_add(&ev->loop, &ev->wake_io, ev->wakefd, EPOLLIN))
		goto fail;
	loop_timer_init(&ev->tick, on_tick, ev);
	if (ec && events_reconfigure(ev, ec) == -ENOMEM) {
		events_stop(ev);
		return NULL;
	}
	return ev;
fail:
	events_stop(ev);
	return NULL;
}

int events_reconfigure(struct events *ev, const struct events_cfg *ec)
{
	uint64_t one = 1, req;
	int rc;

	if (!ev)
		return -EINVAL;
	pthread_mutex_lock(&ev->ctl);
	ev->want = ec;
	req = ++ev->req;
	if (!ev->running) {
		if (!ec) {
			/* nothing runs, nothing to switch */
			ev->done = req;
			pthread_mutex_unlock(&ev->ctl);
			return 0;
		}
		rc = pthread_create(&ev->thread, NULL, thread_main, ev);
		if (rc) {
			ev->done = req;
			pthread_mutex_unlock(&ev->ctl);
			log_err("events", "cannot start the events thread: %s",
				strerror(rc));
			return -rc;
		}
		ev->running = true;
	} else if (write(ev->wakefd, &one, sizeof(one)) != sizeof(one)) {
		/* the counter is far from overflowing: cannot happen */
	}
	while (ev->done < req)
		pthread_cond_wait(&ev->cond, &ev->ctl);
	rc = ev->result;
	pthread_mutex_unlock(&ev->ctl);
	return rc;
}

void events_stop(struct events *ev)
{
	uint64_t one = 1;

	if (!ev)
		return;
	pthread_mutex_lock(&ev->ctl);
	ev->stop = true;
	pthread_mutex_unlock(&ev->ctl);
	if (ev->running) {
		if (write(ev->wakefd, &one, sizeof(one)) != sizeof(one)) {
			/* see events_reconfigure */
		}
		pthread_join(ev->thread, NULL);
		ev->running = false;
	}
	if (ev->inofd >= 0)
		close(ev->inofd);
	if (ev->wakefd >= 0)
		close(ev->wakefd);
	if (ev->loop.epfd >= 0)
		loop_cleanup(&ev->loop);
	xfree(ev->ins);
	xfree(ev->groups);
	xfree(ev->hits);
	pcre2_match_data_free(ev->md);
	ev_store_free(ev->store);
	pthread_cond_destroy(&ev->cond);
	pthread_mutex_destroy(&ev->ctl);
	xfree(ev);
}

void events_emit(struct events *ev, struct expo_set *out)
{
	if (!ev || !ev->store)
		return;
	ev_store_emit(ev->store, out);
}
