/* Reference points for the idle RSS of bench/footprint.py: what a process
 * costs before it does anything (no argument: libc, libssl and libcrypto
 * mapped, OpenSSL not initialised), and what the least TLS
 * client costs once it is ready to probe: OpenSSL initialised, one client
 * SSL_CTX with a trust store of CAFILE (as a tls module at rest).
 * Prints VmRSS, RssAnon and RssFile in KiB as one JSON object.
 *
 * Build: cc -O2 -o rss_floor bench/rss_floor.c -lssl -lcrypto
 * Run:   rss_floor [CAFILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

static long status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	size_t n = strlen(key);

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			kb = strtol(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	SSL_CTX *ctx = NULL;

	if (argc > 1) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (!ctx || SSL_CTX_load_verify_locations(ctx, argv[1], NULL) != 1) {
			fprintf(stderr, "rss_floor: cannot load %s\n", argv[1]);
			return 1;
		}
	}
	printf("{\"VmRSS_kb\": %ld, \"RssAnon_kb\": %ld, \"RssFile_kb\": %ld}\n",
	       status_kb("VmRSS"), status_kb("RssAnon"), status_kb("RssFile"));
	SSL_CTX_free(ctx);
	return 0;
}
