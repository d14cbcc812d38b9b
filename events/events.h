/* Event-rate counters from forwarded Windows events (issue #5).
 *
 * A self-contained subsystem: syslog listeners (UDP, TCP) and tailed files
 * feed lines to parsers (NXLog/Winlogbeat JSON, Snare, RFC 5424, RFC 3164,
 * plain text with a PCRE2 pattern); rules turn parsed events into counters
 * that every /metrics scrape reads. It runs on a thread of its own, all
 * the time, not per scrape.
 *
 * Life cycle, driven by exporter/app.c:
 *
 *   events_parse()        at config load, for the top-level `events:` key
 *   events_start()        after the first successful load
 *   events_reconfigure()  after every successful reload: inputs whose kind
 *                         and address/path stay keep their sockets, TCP
 *                         connections and read positions; counters keyed by
 *                         rule name + labels survive
 *   events_emit()         from a scrape thread: appends pki_events_*
 *   events_stop()         at exit: saves file positions, joins the thread
 *
 * The running subsystem borrows the events_cfg it was given: the caller
 * keeps it alive until the next events_reconfigure() or events_stop()
 * returns (both wait until the thread has let go of it). */
#ifndef PKI_EVENTS_H
#define PKI_EVENTS_H

#include "exporter/config.h"
#include "exporter/expo.h"

struct events_cfg;
struct events;

/* Parse the `events:` mapping at n. Every problem goes to eb as
 * file:line:col (unknown keys are errors); rules_file paths are relative
 * to cfg->dir. On success *out is a new events_cfg owned by the caller
 * (free with events_cfg_free; one already there is freed first); on
 * failure *out is left alone. Returns 0, -EINVAL or -ENOMEM. */
int events_parse(const struct cfg_node *n, const struct config *cfg,
		 struct events_cfg **out, struct errbuf *eb);
void events_cfg_free(struct events_cfg *ec);

/* Start the subsystem with ec (may be NULL: nothing configured yet; the
 * thread starts with the first non-NULL configuration). Returns NULL only
 * when out of memory. Problems with inputs (a port in use, a missing file)
 * are logged, retried, and shown as pki_events_input_up 0. */
struct events *events_start(const struct events_cfg *ec);

/* Switch to ec (may be NULL: stop every input, drop every series). Blocks
 * until the ingest thread has switched; the previous events_cfg is unused
 * afterwards. Returns 0 or -ENOMEM / -errno (thread creation). */
int events_reconfigure(struct events *ev, const struct events_cfg *ec);

/* Stop inputs, save file positions, join the thread, free everything.
 * events_stop(NULL) does nothing. */
void events_stop(struct events *ev);

/* Append the pki_events_* samples to out. Copies the counters under a
 * short lock and formats them after releasing it. ev may be NULL. */
void events_emit(struct events *ev, struct expo_set *out);

#endif
