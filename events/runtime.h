/* The running events subsystem: its thread, loop and inputs. Internal to
 * events/ (events.c, input_syslog.c, input_file.c). */
#ifndef PKI_EVENTS_RUNTIME_H
#define PKI_EVENTS_RUNTIME_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "events/events_int.h"
#include "exporter/loop.h"

struct ev_in;

/* One TCP syslog connection. */
struct ev_conn {
	struct ev_conn *next, *prev;
	struct ev_in *in;
	struct loop_io io;
	int fd;
	char *buf;		/* cap bytes; one is always kept spare */
	size_t len, cap;
	uint64_t skip;		/* bytes of a too long frame to skip */
	bool discard;		/* newline framing: drop up to the LF */
	char peer[INET6_ADDRSTRLEN];
};

/* One open file being read. */
struct ev_reader {
	int fd;			/* -1 when closed */
	uint64_t dev, ino;
	uint64_t pos;		/* file offset after the bytes in buf */
	uint64_t line_start;	/* offset where the pending line starts */
	char *buf;
	size_t len, cap;
	bool discard;		/* inside an over-long line */
	uint64_t fp;		/* fingerprint of the first fplen bytes */
	uint32_t fplen;
	struct timespec mtime;	/* at the last fingerprint check */
	int64_t idle_since;	/* a rotated file: last time it gave data */
};

struct ev_in {
	struct events *ev;
	const struct ev_input_cfg *cfg;
	struct ev_instat *st;	/* in the store, under its lock */
	struct ev_parser parser;
	bool keep;		/* reconfigure bookkeeping */
	/* syslog */
	int fd;
	struct loop_io io;
	int64_t retry_at;	/* monotonic ns; 0 = none pending */
	char *dgram;
	size_t dgram_cap;
	struct ev_conn *conns;
	unsigned nconns;
	int bind_errno;		/* last bind failure logged */
	/* file */
	struct ev_reader cur, old;
	bool started;
	bool poll_now;		/* inotify said something happened */
	int wd;			/* inotify watch of its directory, -1 */
	int64_t last_err_log;
	int open_errno;		/* last open failure logged */
};

struct events {
	pthread_t thread;
	bool running;
	pthread_mutex_t ctl;	/* guards the request fields below */
	pthread_cond_t cond;
	const struct events_cfg *want;
	bool stop;
	uint64_t req, done;
	int result;

	/* owned by the ingest thread */
	struct loop loop;
	int wakefd;
	struct loop_io wake_io;
	int inofd;
	struct loop_io ino_io;
	struct loop_timer tick;
	const struct events_cfg *cfg;
	struct ev_group **groups;	/* per rule of cfg */
	size_t *hits;
	pcre2_match_data *md;
	struct ev_in **ins;
	size_t nins;
	struct ev_conn *dead;	/* closed in this iteration, freed after */
	bool wake_pending;	/* a reconfiguration waits for the batch end */
	int64_t next_save;
	bool dirty;		/* file positions changed since saved */
	bool budget_left;	/* a file had more to read than one tick */

	struct ev_store *store;	/* shared with scrapes; own lock */
};

/* events.c */
void ev_line(struct ev_in *in, char *line, size_t len, const char *peer);
void ev_drop(struct ev_in *in, enum ev_drop d, bool line);
void ev_set_up(struct ev_in *in, bool up);
double ev_wall_now(void);

/* input_syslog.c */
void ev_syslog_open(struct ev_in *in);
void ev_syslog_close(struct ev_in *in);
/* after in->cfg changed (same address): follow the new limits */
void ev_syslog_reconfigured(struct ev_in *in);
void ev_conn_free(struct ev_conn *c);

/* input_file.c */
void ev_file_init(struct ev_in *in);
void ev_file_poll(struct ev_in *in, int64_t now);
void ev_file_close(struct ev_in *in);
void ev_file_reconfigured(struct ev_in *in);
/* this input's positions, for the state file */
size_t ev_file_positions(const struct ev_in *in, struct ev_pos *out);

#endif
