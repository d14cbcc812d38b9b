/* Getting one CRL for a probe run: through the process-wide cache (at most
 * one fetch per URL at a time, none sooner than min_interval), by HTTP(S)
 * or LDAP on the run's loop (probes/http/fetch.h), or from a local file.
 * Used by the crl probe (its targets and their Freshest CRL) and by the
 * tls probe's revocation check (every CDP of the chains it saw).
 *
 * The fetch settings (struct crl_fetch_cfg) are parsed by the same code for
 * a crl module and for a tls module's `revocation:` block. */
#ifndef PKI_CRL_GET_H
#define PKI_CRL_GET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "exporter/loop.h"
#include "probes/crl/crl_cache.h"

struct probe_run;
struct config;
struct cfg_pair;
struct cfg_node;
struct errbuf;

struct crl_fetch_cfg {
	char *proxy;		/* see proxy_set */
	bool proxy_set;		/* `proxy:` given ("" = none); else global */
	char *no_proxy;
	char *proxy_user;
	char *proxy_password;	/* from proxy_password or _file */
	char *ca_file;		/* for https CDPs */
	size_t max_bytes;
	struct crl_policy policy;
	char *issuer_file;
	STACK_OF(X509) *issuers;	/* from issuer_file, owned */
	char *ldap_server;	/* for ldap:/// (no host): ldap://dc:389 */
	char *ldap_bind_dn;
	char *ldap_password;	/* from ldap.password_file */
	bool ldap_anonymous;
	bool follow_delta;	/* fetch the Freshest CRL of a base too */
};

void crl_fetch_cfg_init(struct crl_fetch_cfg *fc);
void crl_fetch_cfg_cleanup(struct crl_fetch_cfg *fc);
/* One module key: 1 if it is a fetch setting (errors, if any, are in eb),
 * 0 if the key is not one. */
int crl_fetch_cfg_key(const struct cfg_pair *p, const struct config *cfg,
		      struct crl_fetch_cfg *fc, struct errbuf *eb);
/* After all keys: load issuer_file, check combinations. `at` positions
 * errors. Returns 0 or -EINVAL/-ENOMEM. */
int crl_fetch_cfg_finish(struct crl_fetch_cfg *fc, const struct cfg_node *at,
			 struct errbuf *eb);

/* Sizes: 1048576, 512KiB, 64MiB, 1GiB, 10MB (powers of 1000 for kB/MB/GB). */
int crl_size_parse(const char *s, size_t *out);

/* Is this a CRL URL the exporter understands? Fills err on refusal. */
bool crl_url_ok(const char *url, char *err, size_t errlen);

struct crl_get;
struct crl_hub;
typedef void (*crl_get_cb)(void *arg, struct crl_get *g);

struct crl_get {
	struct probe_run *run;
	const struct crl_fetch_cfg *fc;
	char *url;		/* as named (the label) */
	char *fetch_url;	/* with ldap_server filled in */
	char *key;		/* cache key */
	struct crl_entry *entry;	/* NULL when skipped */
	STACK_OF(X509) *hints;	/* issuer candidates, owned */
	int64_t deadline;	/* monotonic ns */
	bool done;
	const char *skipped;	/* why nothing was fetched, or NULL */
	bool fetched;		/* this get did the transfer itself */
	bool waited;		/* it waited for another scrape's fetch */
	const char *cut;	/* set by crl_get_settle: cut off, and why */
	struct crl_snapshot snap;	/* valid once done (unless skipped) */
	/* in flight */
	struct fetch *fh;
	bool holds_fetch;	/* this get is the entry's fetcher */
	bool budget_limited;	/* its fetch got less than the module timeout */
	struct crl_waiter w;
	struct crl_hub *hub;	/* this loop's wake-up descriptor */
	struct crl_get *hub_next;
	bool in_hub;
	struct loop_timer later;
	crl_get_cb cb;
	void *arg;
};

/* Start getting `url` for `run` before `deadline`. `hints` (may be NULL)
 * are certificates that may have issued the CRL (up-ref'ed, not taken).
 * cb runs once, from the loop, never from inside this call; *out is set
 * on success. Returns 0 or -ENOMEM. */
int crl_get_start(struct probe_run *run, const struct crl_fetch_cfg *fc,
		  const char *url, STACK_OF(X509) *hints, int64_t deadline,
		  crl_get_cb cb, void *arg, struct crl_get **out);

/* Stop (if still running: the cache is told, waiters move on) and free. */
void crl_get_free(struct crl_get *g);

/* The deadline cut a get short: stop it (its callback will not run) and
 * make its snapshot the cache's current state, so that the last good CRL
 * is still reported, with `why` ("timeout", "scrape_deadline") as the
 * reason this scrape has no fetch. No-op on a finished get. */
void crl_get_settle(struct crl_get *g, const char *why);

#endif
