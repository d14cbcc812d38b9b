/* The tls probe: resolve, connect, handshake, and report every certificate
 * the server sent. See probes/tls/README.md for its metrics. */
#ifndef PKI_TLS_PROBE_H
#define PKI_TLS_PROBE_H

#include "probes/probe.h"

extern const struct probe_ops tls_probe_ops;

/* Split "host:port" / "[v6]:port" into parts. Returns 0 or -EINVAL with a
 * short reason in err. */
int tls_split_hostport(const char *s, char *host, size_t hostlen,
		       unsigned *port, char *err, size_t errlen);

#endif
