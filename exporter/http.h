/* The HTTP front end on libmicrohttpd: /metrics, /probe, landing page,
 * health, readiness and reload. Each request runs on an MHD thread, and a
 * scrape gets an event loop of its own (exporter/scrape.c). */
#ifndef PKI_HTTP_H
#define PKI_HTTP_H

#include "app.h"
#include "webcfg.h"

struct http;

/* addr: "host:port", "[v6]:port" or ":port" (all interfaces). wc (may be
 * NULL) is borrowed for the server's lifetime. */
int http_start(struct app *a, const char *addr, struct web_config *wc,
	       struct http **out);
void http_stop(struct http *h);

#endif
