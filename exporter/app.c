#include "app.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "events/events.h"
#include "log.h"
#include "probes/dns/dns.h"
#include "xalloc.h"

#ifndef PKI_VERSION
#define PKI_VERSION "0.0.0"
#endif
#ifndef PKI_REVISION
#define PKI_REVISION "unknown"
#endif

static const struct metric_desc M_BUILD = {
	"pki_exporter_build_info",
	"Build and library versions of pki_exporter, value 1.", METRIC_GAUGE};
static const struct metric_desc M_RELOAD_OK = {
	"pki_exporter_config_last_reload_successful",
	"Whether the last configuration load or reload succeeded (1) or not "
	"(0).",
	METRIC_GAUGE};
static const struct metric_desc M_RELOAD_TS = {
	"pki_exporter_config_last_reload_success_timestamp_seconds",
	"When the configuration was last loaded successfully, Unix time.",
	METRIC_GAUGE};
static const struct metric_desc M_TARGETS = {
	"pki_exporter_targets",
	"Number of configured targets per module.", METRIC_GAUGE};
static const struct metric_desc M_TFILE = {
	"pki_exporter_targets_file_rows",
	"Rows of each targets_file at the last load: taken as targets, or "
	"skipped as malformed (see the log for line numbers).",
	METRIC_GAUGE};
static const struct metric_desc M_CPU = {
	"process_cpu_seconds_total",
	"Total user and system CPU time spent in seconds.", METRIC_COUNTER};
static const struct metric_desc M_RSS = {
	"process_resident_memory_bytes", "Resident memory size in bytes.",
	METRIC_GAUGE};
static const struct metric_desc M_VSZ = {
	"process_virtual_memory_bytes", "Virtual memory size in bytes.",
	METRIC_GAUGE};
static const struct metric_desc M_FDS = {
	"process_open_fds", "Number of open file descriptors.", METRIC_GAUGE};
static const struct metric_desc M_MAXFDS = {
	"process_max_fds", "Maximum number of open file descriptors.",
	METRIC_GAUGE};
static const struct metric_desc M_START = {
	"process_start_time_seconds",
	"Start time of the process since unix epoch in seconds.",
	METRIC_GAUGE};

const char *app_version(void)
{
	return PKI_VERSION;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Process start time from /proc: boot time + starttime ticks, the way the
 * official client libraries compute it. */
static double proc_start_time(void)
{
	char line[256];
	double btime = 0;
	unsigned long long start = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "btime %lf", &btime) == 1)
				break;
		fclose(f);
	}
	f = fopen("/proc/self/stat", "r");
	if (f) {
		char buf[1024];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		char *p;

		buf[n] = '\0';
		fclose(f);
		p = strrchr(buf, ')');	/* comm may hold spaces */
		if (p)
			sscanf(p + 2,
			       "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			       "%*u %*u %*d %*d %*d %*d %*d %*d %llu",
			       &start);
	}
	return btime + (double)start / (double)sysconf(_SC_CLK_TCK);
}

int app_init(struct app *a, const char *config_file)
{
	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->reload_lock, NULL);
	a->config_file = xstrdup(config_file);
	a->start_time = proc_start_time();
	return a->config_file ? 0 : -ENOMEM;
}

void app_cleanup(struct app *a)
{
	events_stop(a->events);	/* before the config it borrows goes */
	a->events = NULL;
	app_put(a, a->cfg);
	a->cfg = NULL;
	xfree(a->config_file);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->reload_lock);
}

struct config *app_get(struct app *a)
{
	struct config *c;

	pthread_mutex_lock(&a->lock);
	c = a->cfg;
	if (c)
		c->refs++;
	pthread_mutex_unlock(&a->lock);
	return c;
}

void app_put(struct app *a, struct config *cfg)
{
	bool last;

	if (!cfg)
		return;
	pthread_mutex_lock(&a->lock);
	last = --cfg->refs == 0;
	pthread_mutex_unlock(&a->lock);
	if (last)
		config_free(cfg);
}

/* Start the events subsystem with the first configuration and switch it
 * on every later one. It borrows cfg->events until the next switch, so
 * this runs before the previous config can be freed. */
static void app_events(struct app *a, const struct config *cfg)
{
	struct events *ev;

	pthread_mutex_lock(&a->lock);
	ev = a->events;
	pthread_mutex_unlock(&a->lock);
	if (!ev) {
		ev = events_start(cfg->events);
		if (!ev) {
			log_err("events", "cannot start the events subsystem");
			return;
		}
		pthread_mutex_lock(&a->lock);
		a->events = ev;
		pthread_mutex_unlock(&a->lock);
	} else if (events_reconfigure(ev, cfg->events)) {
		log_err("events", "reconfiguration incomplete (out of memory "
				  "or no thread): some inputs or rules are off");
	}
}

int app_reload(struct app *a, struct errbuf *eb)
{
	struct config *cfg, *old;
	int rc;

	pthread_mutex_lock(&a->reload_lock);
	rc = config_load(a->config_file, &cfg, eb);
	if (rc) {
		pthread_mutex_lock(&a->lock);
		a->last_reload_ok = false;
		pthread_mutex_unlock(&a->lock);
		pthread_mutex_unlock(&a->reload_lock);
		return rc;
	}
	pthread_mutex_lock(&a->lock);
	old = a->cfg;
	a->cfg = cfg;
	a->last_reload_ok = true;
	a->last_reload_success = wall_now();
	pthread_mutex_unlock(&a->lock);
	app_events(a, cfg);
	app_put(a, old);	/* freed once the last scrape lets go */
	pthread_mutex_unlock(&a->reload_lock);
	log_info("config", "loaded %s: %zu modules, %zu targets",
		 a->config_file, cfg->nmodules, cfg->ntargets);
	if (cfg->warnings)
		log_warn("config", "skipped:\n%s", cfg->warnings);
	return 0;
}

static void emit_process(struct app *a, struct expo_set *out)
{
	struct rlimit rl;
	struct dirent *de;
	DIR *d;
	FILE *f;
	long fds = 0;
	double ticks = (double)sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);

	f = fopen("/proc/self/stat", "r");
	if (f) {
		char buf[1024], *p;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		unsigned long ut = 0, st = 0, vsz = 0;
		long rss = 0;

		buf[n] = '\0';
		fclose(f);
		p = strrchr(buf, ')');
		if (p && sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
				"%lu %lu %*d %*d %*d %*d %*d %*d %*u %lu %ld",
				&ut, &st, &vsz, &rss) == 4) {
			expo_add(out, &M_CPU, 0, (double)(ut + st) / ticks,
				 NULL);
			expo_add(out, &M_RSS, 0, (double)rss * (double)page,
				 NULL);
			expo_add(out, &M_VSZ, 0, (double)vsz, NULL);
		}
	}
	d = opendir("/proc/self/fd");
	if (d) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				fds++;
		closedir(d);
		expo_add(out, &M_FDS, 0, (double)(fds - 1), NULL); /* the DIR */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		expo_add(out, &M_MAXFDS, 0, (double)rl.rlim_cur, NULL);
	expo_add(out, &M_START, 0, a->start_time, NULL);
}

void app_emit_self(struct app *a, struct expo_set *out)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	struct events *ev;
	bool ok;
	double ts;
	struct config *cfg;

	expo_add(out, &M_BUILD, 0, 1, "version", PKI_VERSION, "revision",
		 PKI_REVISION, "openssl", OpenSSL_version(OPENSSL_VERSION_STRING),
		 "libcurl", cv ? cv->version : "", "cares", dns_version(),
		 "libmicrohttpd", MHD_get_version(), NULL);
	pthread_mutex_lock(&a->lock);
	ok = a->last_reload_ok;
	ts = a->last_reload_success;
	pthread_mutex_unlock(&a->lock);
	expo_add(out, &M_RELOAD_OK, 0, ok, NULL);
	expo_add(out, &M_RELOAD_TS, 0, ts, NULL);
	pthread_mutex_lock(&a->lock);
	ev = a->events;
	pthread_mutex_unlock(&a->lock);
	events_emit(ev, out);
	cfg = app_get(a);
	if (cfg) {
		for (size_t m = 0; m < cfg->nmodules; m++)
			expo_add(out, &M_TARGETS, 0,
				 (double)cfg->modules[m].ntargets, "module",
				 cfg->modules[m].name, NULL);
		for (size_t i = 0; i < cfg->ntfiles; i++) {
			const struct cfg_targets_file *tf = &cfg->tfiles[i];
			const char *mod = tf->module ? tf->module->name : "";

			expo_add(out, &M_TFILE, 0, tf->rows, "file", tf->path,
				 "module", mod, "status", "ok", NULL);
			expo_add(out, &M_TFILE, 0, tf->skipped, "file",
				 tf->path, "module", mod, "status", "skipped",
				 NULL);
		}
		app_put(a, cfg);
	}
	emit_process(a, out);
}
