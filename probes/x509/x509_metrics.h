/* The per-certificate metric families shared by every probe that reports
 * certificates (tls, store, file): one descriptor object per family, so the
 * samples of different probes land in the same family of a scrape. */
#ifndef PKI_X509_METRICS_H
#define PKI_X509_METRICS_H

#include <stdint.h>
#include <openssl/x509.h>

#include "exporter/expo.h"
#include "probes/x509/x509.h"

extern const struct metric_desc x509_m_not_after;
extern const struct metric_desc x509_m_not_before;
extern const struct metric_desc x509_m_cert_info;

/* Add pki_cert_not_after/not_before_timestamp_seconds (when the dates
 * parsed) and pki_cert_info for one certificate described by `f`, labelled
 * module, target, address, position, subject_cn, issuer_cn, serial (+ the
 * pki_cert_info facts). Errors stick in out->err. */
void x509_emit_facts(struct expo_set *out, uint32_t order, const char *module,
		     const char *target, const char *address, int position,
		     const struct x509_facts *f);

/* The same from a certificate; nothing is added if its facts cannot be
 * computed (out of memory). */
void x509_emit_cert(struct expo_set *out, uint32_t order, const char *module,
		    const char *target, const char *address, int position,
		    X509 *x);

#endif
