/* Process-wide state: the current configuration (swapped on reload, held
 * by reference during scrapes), reload status and start time. */
#ifndef PKI_APP_H
#define PKI_APP_H

#include <pthread.h>
#include <stdbool.h>

#include "config.h"
#include "expo.h"

struct events;

struct app {
	pthread_mutex_t lock;	/* guards cfg and the refcounts */
	pthread_mutex_t reload_lock;	/* one reload at a time */
	struct config *cfg;
	char *config_file;
	bool last_reload_ok;
	double last_reload_success;	/* Unix seconds */
	double start_time;
	struct events *events;	/* events/ subsystem; set under lock */
};

int app_init(struct app *a, const char *config_file);
void app_cleanup(struct app *a);

/* Take a reference to the current config; give it back with app_put. */
struct config *app_get(struct app *a);
void app_put(struct app *a, struct config *cfg);

/* Load config_file again; on success swap it in. On failure the old
 * config stays and the errors are in eb. Returns 0 or -EINVAL. */
int app_reload(struct app *a, struct errbuf *eb);

/* Exporter self metrics: build info, reload status, process_*. */
void app_emit_self(struct app *a, struct expo_set *out);

const char *app_version(void);

#endif
