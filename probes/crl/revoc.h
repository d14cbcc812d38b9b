/* Revocation of the certificates a probe saw (the tls probe's chains):
 * every CRL distribution point becomes a CRL fetch (through the shared
 * cache; deduplicated within the run and, for reporting, within the
 * scrape), every AIA OCSP responder is asked, and a stapled OCSP response
 * is read; each certificate then gets pki_cert_revoked per source.
 *
 * Independent of the tls probe's internals: it is handed certificates (with
 * their address and position labels) and answers through a callback. */
#ifndef PKI_REVOC_H
#define PKI_REVOC_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

#include "probes/crl/crl_get.h"
#include "probes/probe.h"

#define REVOC_CHECK_CRL 1u
#define REVOC_CHECK_OCSP 2u

struct revoc_cfg {
	unsigned check;		/* REVOC_CHECK_* bits; 0 = off */
	bool staple;		/* ask for a stapled OCSP response */
	bool ocsp_nonce;	/* send a nonce to responders */
	struct crl_fetch_cfg fc;	/* how CRLs and OCSP are fetched */
};

/* `revocation: crl|ocsp|both|none`, or a mapping with `check:` and the
 * fetch settings of a crl module (proxy, no_proxy, ldap, ...) plus
 * ocsp_nonce and staple. *out is NULL for "none". Returns 0 or -EINVAL. */
int revoc_cfg_parse(const struct cfg_node *n, const struct config *cfg,
		    struct revoc_cfg **out, struct errbuf *eb);
void revoc_cfg_free(struct revoc_cfg *rc);

struct revoc;
typedef void (*revoc_done_cb)(void *arg);

/* A check for `run`; add certificates, then go. NULL on ENOMEM. */
struct revoc *revoc_new(struct probe_run *run, const struct revoc_cfg *rc);

/* One certificate to check, labelled by address and position (as in
 * pki_cert_*). `issuer` (may be NULL) is needed for OCSP and to verify
 * CRL signatures. Both are up-ref'ed. Returns 0 or -ENOMEM. */
int revoc_add(struct revoc *r, const char *address, int position, X509 *cert,
	      X509 *issuer);

/* The OCSP response the server at `address` stapled (der may be NULL:
 * none), when one was asked for. Copied. */
int revoc_add_staple(struct revoc *r, const char *address,
		     const unsigned char *der, size_t len);

/* Start every fetch; cb runs once from the loop when all are done (or the
 * run's deadline is near), never from inside this call. */
void revoc_go(struct revoc *r, revoc_done_cb cb, void *arg);

/* Write the samples (pki_cert_revoked, pki_crl_*, pki_ocsp_*). Anything
 * still running is cut off and reported with `why` as its reason. */
void revoc_report(struct revoc *r, enum probe_fail why);

void revoc_free(struct revoc *r);

#endif
