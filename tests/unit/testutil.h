/* Helpers shared by the cmocka tests: a scratch directory per test file,
 * files written into it, and shell commands whose output a test compares
 * (the openssl CLI as the independent witness). Include after cmocka.h. */
#ifndef PKI_TESTUTIL_H
#define PKI_TESTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
