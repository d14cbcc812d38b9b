/* Helpers shared by the cmocka tests: a scratch directory per test file,
 * files written into it, and shell commands whose output a test compares
 * (the openssl CLI as the independent witness). Include after cmocka.h. */
#ifndef PKI_TESTUTIL_H
#define PKI_TESTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/config.h"
#include "exporter/xalloc.h"

/* Make the scratch directory from a "/tmp/...-XXXXXX" template. */
static __attribute__((unused)) int tu_mkdir(char *tmpl)
{
	return mkdtemp(tmpl) ? 0 : -1;
}

static __attribute__((unused)) int tu_rmdir(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write `text` to dir/name; returns the path (caller frees). */
static __attribute__((unused)) char *tu_write_file(const char *dir,
						   const char *name,
						   const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Run a shell command; its stdout without the trailing newline (caller
 * frees). A failing command fails the test. */
static __attribute__((unused, format(printf, 1, 2))) char *
tu_run(const char *fmt, ...)
{
	char cmd[4096], out[16384];
	va_list ap;
	FILE *p;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	if (pclose(p) != 0)
		fail_msg("command failed: %s", cmd);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return xstrdup(out);
}

/* Load yaml as dir/c.yml. Success: NULL, no errors, the config in *cfgp
 * (or freed when cfgp is NULL). Failure: the error text (caller frees),
 * no config. */
static __attribute__((unused)) char *tu_load_config(const char *dir,
						    const char *yaml,
						    struct config **cfgp)
{
	char *path = tu_write_file(dir, "c.yml", yaml);
	struct config *cfg = NULL;
	struct errbuf eb;
	char *errs = NULL;

	errbuf_init(&eb, NULL);
	if (config_load(path, &cfg, &eb)) {
		assert_null(cfg);
		assert_true(eb.count > 0);
		errs = xstrdup(errbuf_str(&eb));
	} else {
		assert_int_equal(eb.count, 0);
	}
	errbuf_cleanup(&eb);
	if (cfgp)
		*cfgp = cfg;
	else
		config_free(cfg);
	xfree(path);
	return errs;
}

#endif
