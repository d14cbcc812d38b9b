/* The process-wide CRL cache: one entry per (URL, way of fetching it),
 * shared by every scrape thread under one mutex.
 *
 * An entry keeps the last good CRL (its facts and sorted serials, never the
 * X509_CRL), the validators for a conditional GET, the outcome of the last
 * attempt, and when the next fetch is due: never sooner than min_interval
 * after the last attempt, at the latest max_interval after it, and as soon
 * as allowed once Next CRL Publish or nextUpdate is reached.
 *
 * Single flight: crl_cache_begin() makes exactly one caller the fetcher of
 * an entry; the others either take the cached result or register a waiter
 * (an eventfd their own loop watches) that is signalled when the fetcher
 * finishes or gives up. */
#ifndef PKI_CRL_CACHE_H
#define PKI_CRL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "probes/crl/crl_parse.h"
#include "probes/http/fetch.h"

/* A good CRL, immutable once published; reference counted. */
struct crl_data {
	int refs;		/* under the cache mutex */
	struct crl_info info;
	int64_t fetched;	/* wall seconds: first fetched */
};

void crl_data_unref(struct crl_data *d);

struct crl_entry;

struct crl_waiter {
	int efd;		/* eventfd written on wake-up (may be shared) */
	bool queued;		/* in an entry's list (under the mutex) */
	struct crl_waiter *next;
};

/* What a caller may report about an entry, copied under the mutex. */
struct crl_snapshot {
	bool attempted;		/* a fetch of this entry has ended */
	bool ok;		/* ... and it gave a good CRL (200 or 304) */
	enum fetch_err ferr;	/* why not, when !ok */
	enum crl_parse_err perr;
	long http_status;
	double duration;	/* of the last attempt, seconds */
	bool not_modified;	/* the last attempt was a 304 */
	int64_t last_success;	/* wall seconds, 0 = never */
	int64_t last_attempt;	/* wall seconds */
	struct crl_data *data;	/* last good CRL, a reference; may be NULL */
	char base_seen[CRL_NUMBER_MAX];	/* for a delta: the number of the
					   newest base that named it, "" */
};

void crl_snapshot_cleanup(struct crl_snapshot *s);
const char *crl_snapshot_reason(const struct crl_snapshot *s);

struct crl_policy {
	double min_interval;	/* seconds */
	double max_interval;
};

enum crl_begin {
	CRL_BEGIN_CACHED = 0,	/* no fetch due: use the snapshot */
	CRL_BEGIN_FETCH,	/* you fetch now; end with finish or abort */
	CRL_BEGIN_WAIT,		/* another caller fetches: wait on w->efd */
};

/* The entry for `key` (created if needed; entries live as long as the
 * process, or until evicted after a day unused). NULL on ENOMEM. */
struct crl_entry *crl_cache_entry(const char *key);

/* Decide for one caller (see enum crl_begin). On FETCH, *etag / *lastmod
 * receive copies of the validators (xfree them). On CACHED, *snap is
 * filled. On WAIT, w is queued. `force` fetches even within min_interval
 * (never used by probes; for tests). */
enum crl_begin crl_cache_begin(struct crl_entry *e, const struct crl_policy *p,
			       struct crl_waiter *w, struct crl_snapshot *snap,
			       char **etag, char **lastmod);

/* The fetcher's outcome. `data` (may be NULL) is handed over, with one
 * reference; on a 304 pass NULL and not_modified. Wakes the waiters. */
void crl_cache_finish(struct crl_entry *e, const struct crl_policy *p,
		      enum fetch_err ferr, enum crl_parse_err perr,
		      long http_status, double duration, bool not_modified,
		      struct crl_data *data, const char *etag,
		      const char *lastmod);

/* The fetcher gave up without an outcome (its scrape ended): nothing is
 * recorded, and the waiters wake to try themselves. */
void crl_cache_abort(struct crl_entry *e);

/* Is w still queued (its fetcher not done yet)? */
bool crl_cache_waiting(const struct crl_waiter *w);

/* Take w out of the entry's queue if it is still there. */
void crl_cache_unwait(struct crl_entry *e, struct crl_waiter *w);

void crl_cache_snapshot(struct crl_entry *e, struct crl_snapshot *snap);

/* A base CRL numbered `number` names this (delta) entry in its Freshest
 * CRL: remember the highest such number. */
void crl_cache_base_seen(struct crl_entry *e, const char *number);

/* Compare two decimal integers as numbers (-1, 0, 1). */
int crl_number_cmp(const char *a, const char *b);

/* Issuer certificates seen (by the tls probe), for verifying CRLs whose
 * module names no issuer_file. Bounded; the oldest goes first. */
void crl_issuers_add(X509 *ca);
/* Up-ref'ed copies of every pooled certificate pushed onto sk. */
void crl_issuers_all(STACK_OF(X509) *sk);

/* Drop everything (tests; process end). */
void crl_cache_reset(void);

#endif
