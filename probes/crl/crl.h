/* The crl probe: a target is a CRL URL (http, https, ldap, file); it is
 * fetched the way servers fetch it (proxy, LDAP bind, byte and time caps),
 * parsed, checked, cached, and reported with its freshness. A base CRL's
 * Freshest CRL (its delta) is fetched and reported too. See
 * probes/crl/README.md for the metrics and the parsing policy. */
#ifndef PKI_CRL_PROBE_H
#define PKI_CRL_PROBE_H

#include <stdbool.h>

#include "probes/crl/crl_get.h"
#include "probes/probe.h"

extern const struct probe_ops crl_probe_ops;

/* Write the pki_crl_* samples of a finished (or settled) get, labelled
 * with `module`, unless this scrape already reported (module, url).
 * `base_number`: the CRL number of the base that named this delta, or
 * NULL. */
void crl_report(struct probe_run *run, const char *module,
		const struct crl_get *g, const char *base_number);

/* Did the get give a CRL (fetched now, or cached and good), or was it
 * deliberately skipped? */
bool crl_get_ok(const struct crl_get *g);

/* The probe failure a failed get stands for. */
enum probe_fail crl_get_fail(const struct crl_get *g,
			     const struct probe_run *run);

#endif
