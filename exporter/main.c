/* pki_exporter: flags, startup, signals. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "app.h"
#include "check.h"
#include "config.h"
#include "http.h"
#include "webcfg.h"
#include "log.h"
#include "probes/dns/dns.h"

struct flags {
	const char *config_file;
	const char *listen;
	const char *log_level;
	const char *log_format;
	const char *web_config;
	bool check;
	bool version;
	bool help;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pki_exporter [flags]\n"
		"\n"
		"Prometheus exporter for PKI health: TLS endpoint certificates "
		"and chains,\nCRLs and revocation, trust stores and certificate "
		"files, PKI events.\n"
		"\n"
		"Flags:\n"
		"  --config.file=FILE          configuration file "
		"(default: pki_exporter.yml)\n"
		"  --web.listen-address=ADDR   address to listen on "
		"(default: :9879)\n"
		"  --log.level=LEVEL           debug, info, warn or error "
		"(default: info)\n"
		"  --log.format=FORMAT         logfmt or json (default: "
		"logfmt)\n"
		"  --web.config.file=FILE      TLS and basic auth for this "
		"endpoint (exporter-toolkit format)\n"
		"  --config.check              validate the configuration "
		"and exit (0 valid, 1 invalid)\n"
		"  --version                   print version and exit\n"
		"  -h, --help                  show this help\n"
		"\n"
		"  pki_exporter check --help   one-shot report for a person\n"
		"\n"
		"Signals: SIGHUP reloads the configuration; SIGTERM and "
		"SIGINT stop.\n");
}

/* Accepts --name=value and --name value. Returns 0, or -EINVAL after
 * printing what is wrong. */
static int parse_flags(int argc, char **argv, struct flags *fl)
{
	static const struct {
		const char *name;
		size_t off;
	} valued[] = {
		{"config.file", offsetof(struct flags, config_file)},
		{"web.listen-address", offsetof(struct flags, listen)},
		{"log.level", offsetof(struct flags, log_level)},
		{"log.format", offsetof(struct flags, log_format)},
		{"web.config.file", offsetof(struct flags, web_config)},
	};

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		size_t nlen;
		bool found = false;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fl->help = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(stderr, "pki_exporter: unexpected argument '%s'\n", a);
			return -EINVAL;
		}
		a += 2;
		if (strcmp(a, "version") == 0) {
			fl->version = true;
			continue;
		}
		if (strcmp(a, "config.check") == 0) {
			fl->check = true;
			continue;
		}
		val = strchr(a, '=');
		nlen = val ? (size_t)(val - a) : strlen(a);
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
			if (strlen(valued[k].name) != nlen ||
			    strncmp(a, valued[k].name, nlen) != 0)
				continue;
			if (val) {
				val++;
			} else if (i + 1 < argc) {
				val = argv[++i];
			} else {
				fprintf(stderr,
					"pki_exporter: flag --%s needs a value\n",
					valued[k].name);
				return -EINVAL;
			}
			*(const char **)((char *)fl + valued[k].off) = val;
			found = true;
		}
		if (!found) {
			fprintf(stderr, "pki_exporter: unknown flag '--%.*s' "
					"(see --help)\n",
				(int)nlen, a);
			return -EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct flags fl = {
		.config_file = "pki_exporter.yml",
		.listen = ":9879",
		.log_level = "info",
		.log_format = "logfmt",
	};
	enum log_level lvl;
	enum log_format fmt;
	struct errbuf eb;
	struct app app;
	struct http *http = NULL;
	struct web_config *wc = NULL;
	sigset_t sigs;
	int rc, sig;

	if (argc > 1 && strcmp(argv[1], "check") == 0) {
		if (dns_global_init() || curl_global_init(CURL_GLOBAL_DEFAULT))
			return 2;
		rc = check_main(argc - 1, argv + 1);
		curl_global_cleanup();
		dns_global_cleanup();
		return rc;
	}
	if (parse_flags(argc, argv, &fl))
		return 2;
	if (fl.help) {
		usage(stdout);
		return 0;
	}
	if (fl.version) {
		printf("pki_exporter %s (%s, libcurl %s, c-ares %s)\n",
		       app_version(), OpenSSL_version(OPENSSL_VERSION),
		       curl_version_info(CURLVERSION_NOW)->version,
		       dns_version());
		return 0;
	}
	if (log_level_parse(fl.log_level, &lvl)) {
		fprintf(stderr, "pki_exporter: --log.level must be debug, info, "
				"warn or error\n");
		return 2;
	}
	if (log_format_parse(fl.log_format, &fmt)) {
		fprintf(stderr,
			"pki_exporter: --log.format must be logfmt or json\n");
		return 2;
	}
	log_set(lvl, fmt);
	if (dns_global_init() || curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_err("main", "library initialisation failed");
		return 1;
	}

	if (fl.check) {
		struct config *cfg = NULL;

		errbuf_init(&eb, NULL);
		rc = config_load(fl.config_file, &cfg, &eb);
		if (rc) {
			fputs(errbuf_str(&eb), stderr);
			fprintf(stderr, "%s: %u error%s\n", fl.config_file,
				eb.count, eb.count == 1 ? "" : "s");
		} else {
			if (cfg->warnings)
				fprintf(stderr, "warning: %s", cfg->warnings);
			printf("%s: OK, %zu modules, %zu targets\n",
			       fl.config_file, cfg->nmodules, cfg->ntargets);
		}
		errbuf_cleanup(&eb);
		config_free(cfg);
		curl_global_cleanup();
		dns_global_cleanup();
		return rc ? 1 : 0;
	}

	/* Every probe holds a socket and concurrent scrapes add up: use the
	 * hard limit on open files, as Go programs (blackbox_exporter) do. */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}

	/* Block the signals in every thread; this one waits for them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (app_init(&app, fl.config_file)) {
		log_err("main", "out of memory");
		return 1;
	}
	errbuf_init(&eb, NULL);
	if (app_reload(&app, &eb)) {
		fputs(errbuf_str(&eb), stderr);
		log_err("config", "cannot load %s (%u error%s)", fl.config_file,
			eb.count, eb.count == 1 ? "" : "s");
		errbuf_cleanup(&eb);
		app_cleanup(&app);
		return 1;
	}
	errbuf_cleanup(&eb);

	if (fl.web_config) {
		errbuf_init(&eb, NULL);
		if (webcfg_load(fl.web_config, &wc, &eb)) {
			fputs(errbuf_str(&eb), stderr);
			log_err("http", "cannot load --web.config.file %s",
				fl.web_config);
			errbuf_cleanup(&eb);
			app_cleanup(&app);
			return 1;
		}
		errbuf_cleanup(&eb);
	}
	rc = http_start(&app, fl.listen, wc, &http);
	if (rc) {
		log_err("http", "cannot listen on %s: %s", fl.listen,
			strerror(-rc));
		webcfg_free(wc);
		app_cleanup(&app);
		return 1;
	}
	log_info("main", "pki_exporter %s listening on %s", app_version(),
		 fl.listen);

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			errbuf_init(&eb, NULL);
			if (app_reload(&app, &eb))
				log_err("config",
					"reload failed, keeping the running "
					"configuration:\n%s",
					errbuf_str(&eb));
			errbuf_cleanup(&eb);
			continue;
		}
		log_info("main", "received %s, shutting down",
			 sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
	http_stop(http);	/* waits for in-flight requests */
	webcfg_free(wc);
	app_cleanup(&app);
	curl_global_cleanup();
	dns_global_cleanup();
	return 0;
}
