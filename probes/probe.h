/* The probe interface. Every probe kind (tls, crl, ...) is a struct
 * probe_ops; the scrape engine calls start() for each target on the
 * scrape's event loop, and the probe ends each run exactly once with
 * probe_done(). A probe sees only its probe_run, never HTTP or config
 * globals. */
#ifndef PKI_PROBE_H
#define PKI_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exporter/expo.h"
#include "exporter/loop.h"

struct cfg_node;
struct cfg_module;
struct cfg_target;
struct config;
struct errbuf;
struct dns;

/* How far a run got. The order matters: later stages are larger. */
enum probe_stage {
	PROBE_STAGE_QUEUED = 0,
	PROBE_STAGE_RESOLVE,
	PROBE_STAGE_CONNECT,
	PROBE_STAGE_STARTTLS,
	PROBE_STAGE_HANDSHAKE,
	PROBE_STAGE_FETCH,	/* crl/ocsp: the HTTP/LDAP transfer */
	PROBE_STAGE_DONE,
};

/* Why a run failed: a bounded set, rendered as the `reason` label. */
enum probe_fail {
	PROBE_OK = 0,
	PROBE_FAIL_TIMEOUT,
	PROBE_FAIL_DEADLINE,	/* scrape deadline hit before the module timeout */
	PROBE_FAIL_NXDOMAIN,
	PROBE_FAIL_NODATA,	/* name exists, no address of the wanted family */
	PROBE_FAIL_DNS,
	PROBE_FAIL_REFUSED,
	PROBE_FAIL_UNREACHABLE,
	PROBE_FAIL_CONNECT,
	PROBE_FAIL_RESET,
	PROBE_FAIL_EOF,		/* peer closed during the handshake */
	PROBE_FAIL_STARTTLS,	/* the plaintext upgrade failed */
	PROBE_FAIL_TLS_ALERT,
	PROBE_FAIL_TLS,
	PROBE_FAIL_INTERNAL,
	PROBE_FAIL_NOT_FOUND,	/* store/file: no such path, glob matched nothing */
	PROBE_FAIL_PERMISSION,	/* store/file: the path cannot be opened */
	PROBE_FAIL_FILE,	/* store/file: a file could not be read or parsed */
	PROBE_FAIL_HTTP,	/* crl: an HTTP status other than 200 */
	PROBE_FAIL_TOO_LARGE,	/* crl: the body went over max_bytes */
	PROBE_FAIL_MALFORMED,	/* crl: what came back is not a valid CRL */
	PROBE_FAIL_PROXY,	/* crl: the proxy failed or wants credentials */
	PROBE_FAIL__COUNT,
};

const char *probe_stage_str(enum probe_stage s);
const char *probe_fail_str(enum probe_fail f);

/* Someone who wants a probe's own result, not just its samples (the check
 * command): called when a run ends, with run->priv still alive. May be
 * called from any scrape thread. */
struct probe_run;

struct probe_observer {
	void (*fn)(void *arg, const struct probe_run *run);
	void *arg;
};

struct probe_run {
	struct loop *loop;
	struct expo_set *out;	/* where samples go (the scrape's set) */
	const struct config *config;
	const struct cfg_module *module;
	const struct cfg_target *target;
	uint32_t order;		/* sort key for the samples */
	int64_t start;		/* monotonic ns */
	int64_t deadline;	/* min(module timeout, scrape deadline) */
	bool deadline_is_scrape;
	enum probe_stage stage;	/* kept up to date by the probe */
	enum probe_fail fail;
	bool done;
	void *priv;		/* the probe's own state */
	const struct probe_observer *observer;	/* may be NULL */
	unsigned shard;		/* which scrape thread runs it (0..): for
				 * per-thread state, probes/libctx.c */
	struct scrape *scrape;	/* engine-private */
	struct loop_timer timer;	/* engine-private: the deadline */
	struct probe_run *next;	/* engine-private: queue link */
};

struct probe_ops {
	const char *name;	/* "tls": the `prober:` value */
	/* Parse the module mapping (keys other than prober/timeout). */
	int (*parse)(const struct cfg_node *module, const struct config *cfg,
		     void **cfgp, struct errbuf *eb);
	void (*cfg_free)(void *cfg);
	/* Parse one target string; on error fill `err` (a short reason). */
	int (*parse_target)(const void *cfg, const char *target, void **tp,
			    char *err, size_t errlen);
	void (*target_free)(void *tp);
	/* Start a run. Never blocks; returns 0, or -errno after which the
	 * engine ends the run as an internal failure. */
	int (*start)(struct probe_run *run);
	/* The deadline hit: release sockets and end the run with
	 * probe_done(). Never called on a finished run. */
	void (*cancel)(struct probe_run *run, enum probe_fail why);
	/* Free run->priv; called after the event batch that ended it. */
	void (*release)(struct probe_run *run);
};

/* End a run: writes pki_probe_success, pki_probe_duration_seconds and,
 * on failure, pki_probe_failure_info, then hands the run back to the
 * engine. Exactly once per run. */
void probe_done(struct probe_run *run, enum probe_fail fail);

/* The resolver for this scrape and server list (NULL = system), created on
 * first use and shared by all runs of the scrape. */
struct dns *probe_dns(struct probe_run *run, const char *servers);

/* The URL fetcher (libcurl multi, probes/http/fetch.h) of this scrape
 * shard, created on first use and shared by all its runs; NULL on ENOMEM. */
struct fetcher;
struct fetcher *probe_fetcher(struct probe_run *run);

/* Claim `key` for this scrape: true for the first run (of any shard) that
 * claims it, false afterwards and on ENOMEM. For facts reported once per
 * scrape although several targets lead to them (a CRL URL they share). */
bool probe_claim(struct probe_run *run, const char *key);

const struct probe_ops *probe_find(const char *name);
/* "tls, store, file, crl": the known prober names, for messages. */
void probe_names(char *dst, size_t len);

/* Common label helpers: module and target names of a run. */
const char *probe_module_name(const struct probe_run *run);
const char *probe_target_name(const struct probe_run *run);
const void *probe_module_cfg(const struct probe_run *run);
const void *probe_target_cfg(const struct probe_run *run);

#endif
