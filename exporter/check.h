/* `pki_exporter check`: a one-shot report for a person, per endpoint and
 * address, with the comments UC admins look for. */
#ifndef PKI_CHECK_H
#define PKI_CHECK_H

#include <stddef.h>

/* argv[0] is "check". Returns the process exit status: 0 when every
 * endpoint is fine, 1 when any has a problem, 2 for usage errors. */
int check_main(int argc, char **argv);

struct config;

/* /status: probe every tls target of cfg now (within budget seconds) and
 * render the check judgement as an HTML page, failures first, then the
 * soonest expiry. Returns a heap string (xfree) or NULL. */
char *check_status_html(const struct config *cfg, double budget, size_t *len);

#endif
