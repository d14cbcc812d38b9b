/* Internal state of the tls probe, shared by tls.c (configuration and the
 * connection state machine) and tls_report.c (what a finished run
 * reports). Not for other probes. */
#ifndef PKI_TLS_INT_H
#define PKI_TLS_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>

#include "probes/libctx.h"
#include "probes/probe.h"
#include "probes/tls/starttls.h"

#define TLS_HOSTS_MAX 16	/* SRV records probed per target */
#define TLS_ADDRS_MAX 16	/* addresses per host */

struct tls_module {
	/* Trust store and client credentials, loaded once in the default
	 * library context; the handshakes run in ctx[shard], one per scrape
	 * shard in its own library context (probes/libctx.c), sharing them. */
	SSL_CTX *base;
	SSL_CTX *ctx[LIBCTX_MAX];
	unsigned nctx;
	/* Self-signed anchors only, to tell whether a chain is complete as
	 * sent; NULL when the verification store holds nothing else. */
	X509_STORE *roots;
	struct tls_verify_cache *verify_cache;	/* tls_verify.c */
	bool every_address;
	int family;		/* AF_UNSPEC, AF_INET or AF_INET6 */
	enum starttls_proto starttls;
	char *srv;		/* service label, "_sipfederationtls._tcp" */
	char *dns_csv;		/* module DNS servers (c-ares form) or NULL */
	char *server_name;
	char *ca_file;
	char *client_cert;
	char *client_key;
	struct revoc_cfg *revocation;	/* `revocation:`, or NULL */
};

struct tls_target {
	char host[256];		/* name or IP literal (not for SRV) */
	unsigned port;
	bool is_ip;
	struct sockaddr_storage ip;	/* when is_ip */
	socklen_t iplen;
	char srv_name[320];	/* full SRV name to discover, or "" */
};

/* One name to connect to: the target's host, or one SRV record. */
struct tls_host {
	struct tls_probe *p;
	char name[256];
	unsigned port, priority, weight;
	bool from_srv;
	struct dns_query *q;
	bool retried;		/* asked again once, on a private resolver */
	struct sockaddr_storage addrs[TLS_ADDRS_MAX];
	socklen_t addrlens[TLS_ADDRS_MAX];
	size_t naddrs;
	enum probe_fail fail;	/* resolution failed */
	size_t first, n;	/* its connections: p->conns[first, first+n) */
	size_t next;		/* next connection to start */
};

struct tls_conn {
	struct tls_probe *p;
	struct tls_host *h;
	struct loop_io io;
	int fd;
	SSL *ssl;
	struct starttls *st;
	struct sockaddr_storage sa;
	socklen_t salen;
	char address[INET6_ADDRSTRLEN + 8];
	enum probe_stage stage;
	enum probe_fail fail;
	bool started, finished;
	bool superseded;	/* a later address of its host was tried */
	bool handshake_ok;
	char version[16];
	char cipher[64];
	char starttls_err[200];
	long verify;		/* X509_V_OK or an X509_V_ERR_* */
	bool cert_requested;	/* the server sent a CertificateRequest */
	bool awaiting_verdict;	/* TLS 1.3: handshake done on our side, the
				   server may still reject our certificate */
	struct loop_timer verdict;
	struct loop_timer connect_timer;	/* sequential mode: give the
						   next address its turn */
	unsigned ca_names;	/* CA names in it */
	size_t ca_names_bytes;	/* their DER size, summed */
	STACK_OF(X509) *sent;	/* as the server sent them, owned */
	STACK_OF(X509) *verified;	/* the verified chain, owned */
	unsigned char *staple;	/* stapled OCSP response, owned (revocation) */
	size_t staple_len;
};

struct tls_probe {
	struct probe_run *run;
	const struct tls_module *m;
	const struct tls_target *t;
	struct dns_query *srvq;
	struct dns *private_dns;	/* for a retry, see on_host_resolved */
	struct tls_host *hosts;	/* nhosts of them: 1, or one per SRV record
				 * (at most TLS_HOSTS_MAX); ~2.4 KiB each */
	size_t nhosts;
	size_t pending;		/* host lookups in flight */
	struct tls_conn *conns;
	size_t nconns;
	size_t active;		/* connections in flight */
	bool starting;		/* probe_connect is still starting hosts */
	struct revoc *revoc;	/* the revocation check, once started */
};

/* tls_revoc.c: revocation of the chains a run saw (module `revocation:`,
 * probes/crl/revoc.h). tls.c calls these hooks and nothing else of it. */
struct revoc_cfg;
struct revoc;
struct cfg_node;
struct config;
struct errbuf;
int tls_revoc_parse(const struct cfg_node *n, const struct config *cfg,
		    struct tls_module *m, struct errbuf *eb);
void tls_revoc_cfg_free(struct tls_module *m);
/* Before the handshake: ask for a stapled OCSP response. */
void tls_revoc_prepare(struct tls_conn *c);
/* After it: keep the stapled response. */
void tls_revoc_collect(struct tls_conn *c);
/* Every connection is done: pool the CA certificates seen (the crl probe
 * verifies CRLs with them), then start checking; `done(p)` runs when the
 * check is over. false: nothing to check, report now. */
bool tls_revoc_begin(struct tls_probe *p, void (*done)(void *p));
/* Write the revocation samples (cutting off what still runs). */
void tls_revoc_report(struct tls_probe *p, enum probe_fail why);
void tls_revoc_free(struct tls_probe *p);

/* tls_verify.c: chain verification results cached by chain fingerprint
 * for the module's lifetime (its trust store never changes). */
int tls_verify_cache_install(struct tls_module *m);
void tls_verify_cache_free(struct tls_module *m);
struct tls_verify_cache *tls_verify_cache_new(void);
void tls_verify_cache_destroy(struct tls_verify_cache *vc);
/* What the installed callback does (exposed for tests): verify the chain
 * of `ctx` (initialised by libssl: the leaf, and everything the server
 * sent as untrusted) or answer from the cache; `now` in wall seconds.
 * Returns like X509_verify_cert. */
int tls_verify_chain(struct tls_verify_cache *vc, X509_STORE_CTX *ctx,
		     time_t now);
void tls_verify_cache_stats(const struct tls_verify_cache *vc,
			    unsigned long *hits, unsigned long *misses,
			    size_t *entries);

/* tls_report.c: write every sample of a finished run. */
void tls_report_host(struct probe_run *run, const struct tls_host *h);
void tls_report_conn(struct probe_run *run, const struct tls_conn *c);
/* 1 when the certificates sent reach a self-signed anchor without
 * fetching anything, 0 when an issuer is missing, -1 on ENOMEM. */
int tls_chain_complete(const struct tls_conn *c);

#endif
