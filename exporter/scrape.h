/* The scrape engine: runs a set of targets concurrently on one event loop,
 * at most `concurrency` at a time, and ends by the deadline whatever the
 * probes do. One scrape owns its loop, its resolvers and its samples. */
#ifndef PKI_SCRAPE_H
#define PKI_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "expo.h"

#define SCRAPE_MAX_KINDS 8

struct scrape_stats {
	double duration;	/* seconds, whole scrape */
	struct {
		const char *probe;	/* probe kind name */
		double seconds;	/* until its last run ended */
	} kinds[SCRAPE_MAX_KINDS];
	size_t nkinds;
	size_t started, finished, cancelled, queued_out;
};

/* Run `n` targets of `cfg` (indexes into cfg->targets) and append their
 * samples to `out`. `deadline` is an absolute loop_now() time. `obs`
 * (may be NULL) sees each run as it ends. Returns 0
 * or -ENOMEM/-errno for engine failures (probe failures are data). */
struct probe_observer;

int scrape_run(const struct config *cfg, const size_t *targets, size_t n,
	       int64_t deadline, struct expo_set *out,
	       struct scrape_stats *stats, const struct probe_observer *obs);

/* Samples describing the scrape itself (pki_exporter_scrape_*). */
void scrape_stats_emit(const struct scrape_stats *st, struct expo_set *out);

#endif
