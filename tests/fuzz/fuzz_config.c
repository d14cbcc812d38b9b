/* libFuzzer: the configuration parser (YAML -> struct config), every error
 * path included. Paths in the input are relative to the current directory
 * (run.sh runs in a scratch directory). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/config.h"
#include "exporter/log.h"
#include "probes/dns/dns.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set(LOG_LVL_ERROR + 1, LOG_FMT_LOGFMT);	/* quiet */
	/* a tls module without ca_file loads the system trust store (~150
	 * certificates) at every load: an empty one keeps runs fast */
	setenv("SSL_CERT_FILE", "/dev/null", 1);
	setenv("SSL_CERT_DIR", "/nonexistent", 1);
	dns_global_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	struct errbuf eb;
	int rc;

	if (size > 64 * 1024)
		return -1;	/* the parser is linear; keep runs fast */
	errbuf_init(&eb, NULL);
	rc = config_load_text("fuzz.yml", (const char *)data, size, &cfg, &eb);
	if (rc == 0) {
		/* the look-ups a scrape and /probe do on a loaded config */
		for (size_t i = 0; i < cfg->ntargets && i < 64; i++) {
			const struct cfg_target *t = &cfg->targets[i];

			if (config_target(cfg, t->module->name, t->name) == NULL)
				__builtin_trap();	/* a loaded target is found */
		}
		(void)config_module(cfg, "");
		config_free(cfg);
	} else if (cfg != NULL || eb.count == 0) {
		__builtin_trap();	/* a failure always says why */
	}
	(void)errbuf_str(&eb);
	errbuf_cleanup(&eb);
	return 0;
}
