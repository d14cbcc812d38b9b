/* Asynchronous name resolution with c-ares on a scrape's event loop.
 *
 * One struct dns wraps one c-ares channel (one server list); its sockets
 * are watched by the loop and its timeouts driven by a loop timer, so a
 * lookup never blocks and always ends. */
#ifndef PKI_DNS_H
#define PKI_DNS_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct dns;
struct dns_query;
struct ares_addrinfo;

/* status is an ARES_* code; ai (may be NULL) is owned by the callee's
 * caller: it is freed right after the callback returns. */
typedef void (*dns_cb)(void *arg, int status,
		       const struct ares_addrinfo *ai);

/* Call once per process before any dns_new(). */
int dns_global_init(void);
void dns_global_cleanup(void);
const char *dns_version(void);

/* servers: c-ares CSV ("127.0.0.1:53,[::1]:5353") or NULL for the system
 * resolver. */
int dns_new(struct loop *l, const char *servers, struct dns **out);
void dns_free(struct dns *d);

/* Look up A and/or AAAA (family AF_UNSPEC, AF_INET, AF_INET6). *handle is
 * set to the pending query and reset to NULL just before the callback
 * runs (which may happen before dns_resolve returns, e.g. from
 * /etc/hosts). Returns 0 or -ENOMEM. */
int dns_resolve(struct dns *d, const char *name, int family, dns_cb cb,
		void *arg, struct dns_query **handle);
#define DNS_SRV_MAX 32	/* records kept from one SRV answer */

struct dns_srv {
	char host[256];
	unsigned port, priority, weight;
};

/* recs sorted by priority, then weight (highest first); valid during the
 * callback only. */
typedef void (*dns_srv_cb)(void *arg, int status, const struct dns_srv *recs,
			   size_t n);

/* Look up the SRV records of `name` (e.g. _sip._tls.example.com). Same
 * handle rules as dns_resolve. */
int dns_resolve_srv(struct dns *d, const char *name, dns_srv_cb cb,
		    void *arg, struct dns_query **handle);

/* The callback will not run; *handle is set to NULL. No-op on NULL. */
void dns_cancel(struct dns_query **handle);

#endif
