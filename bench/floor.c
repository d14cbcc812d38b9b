/* The TLS handshake floor: the least a client can spend per full TLS
 * handshake with OpenSSL 3, for bench/tls_scrape.py to hold pki_exporter
 * against.
 *
 * One SSL_CTX for the whole run, blocking sockets, T threads (default 2),
 * N full handshakes spread round-robin over a range of loopback ports; no
 * session reuse (cache off, no tickets), a close_notify after each
 * handshake, as pki_exporter does. With --verify CAFILE the chain is
 * verified against that file on every handshake (OpenSSL's own
 * X509_verify_cert, nothing cached); without it no verification runs at
 * all (the verify callback accepts at once, no chain is built).
 *
 * Prints one JSON object: handshakes, ok, wall_s, cpu_s (utime+stime of
 * the process, getrusage), cpu_ms_per_handshake, peak_rss_mb (VmHWM of
 * /proc/self/status: ru_maxrss would include the RSS of the process that
 * forked us, which Linux carries over exec).
 *
 * Build: cc -O2 -o floor bench/floor.c -lssl -lcrypto -lpthread
 * Run:   floor [--verify CAFILE] [--threads 2] [--handshakes 1000]
 *              [--timeout 10] 127.0.0.1 FIRST_PORT PORT_COUNT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static unsigned first_port, nports, nthreads = 2, timeout_s = 10;
static unsigned long total = 1000;
static atomic_ulong next_hs, ok_hs, failed_hs;

static int accept_all(X509_STORE_CTX *sctx, void *arg)
{
	(void)sctx;
	(void)arg;
	return 1;
}

static int one_handshake(unsigned long i)
{
	struct sockaddr_in a = addr;
	struct timeval tv = {.tv_sec = timeout_s};
	int fd, one = 1, ok = 0;
	SSL *ssl;

	a.sin_port = htons((unsigned short)(first_port + i % nports));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1) {
		close(fd);
		return 0;
	}
	ssl = SSL_new(ctx);
	if (ssl && SSL_set_fd(ssl, fd) == 1) {
		ERR_clear_error();
		ok = SSL_connect(ssl) == 1;
		if (ok && SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE)
			ok = SSL_get_verify_result(ssl) == X509_V_OK;
		if (ok)
			SSL_shutdown(ssl);	/* close_notify, not waited for */
	}
	SSL_free(ssl);
	ERR_clear_error();
	close(fd);
	return ok;
}

static void *worker(void *arg)
{
	unsigned long i;

	(void)arg;
	while ((i = atomic_fetch_add(&next_hs, 1)) < total) {
		if (one_handshake(i))
			atomic_fetch_add(&ok_hs, 1);
		else
			atomic_fetch_add(&failed_hs, 1);
	}
	return NULL;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(const struct rusage *r)
{
	return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec / 1e6 +
	       (double)r->ru_stime.tv_sec + (double)r->ru_stime.tv_usec / 1e6;
}

static double peak_rss_mb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtod(line + 6, NULL);
	if (f)
		fclose(f);
	return kb / 1024.0;
}

static void usage(void)
{
	fprintf(stderr, "usage: floor [--verify CAFILE] [--threads T] "
			"[--handshakes N] [--timeout S] HOST FIRST_PORT "
			"PORT_COUNT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cafile = NULL;
	pthread_t th[64];
	struct rusage r0, r1;
	double t0, t1;
	int i;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--verify") == 0)
			cafile = argv[i + 1];
		else if (strcmp(argv[i], "--threads") == 0)
			nthreads = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--handshakes") == 0)
			total = strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--timeout") == 0)
			timeout_s = (unsigned)atoi(argv[i + 1]);
		else
			usage();
	}
	if (argc - i != 3 || nthreads < 1 || nthreads > 64)
		usage();
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[i], &addr.sin_addr) != 1)
		usage();
	first_port = (unsigned)atoi(argv[i + 1]);
	nports = (unsigned)atoi(argv[i + 2]);
	if (nports < 1)
		usage();

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return 1;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (cafile) {
		if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
			fprintf(stderr, "floor: cannot load %s\n", cafile);
			return 1;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_cert_verify_callback(ctx, accept_all, NULL);
	}

	getrusage(RUSAGE_SELF, &r0);
	t0 = now();
	for (unsigned k = 0; k < nthreads; k++)
		if (pthread_create(&th[k], NULL, worker, NULL) != 0)
			return 1;
	for (unsigned k = 0; k < nthreads; k++)
		pthread_join(th[k], NULL);
	t1 = now();
	getrusage(RUSAGE_SELF, &r1);

	printf("{\"handshakes\": %lu, \"ok\": %lu, \"failed\": %lu, "
	       "\"verify\": %s, \"threads\": %u, \"wall_s\": %.6f, "
	       "\"cpu_s\": %.6f, \"cpu_ms_per_handshake\": %.6f, "
	       "\"peak_rss_mb\": %.2f}\n",
	       total, (unsigned long)ok_hs, (unsigned long)failed_hs,
	       cafile ? "true" : "false", nthreads, t1 - t0,
	       cpu(&r1) - cpu(&r0), 1000.0 * (cpu(&r1) - cpu(&r0)) / (double)total,
	       peak_rss_mb());
	SSL_CTX_free(ctx);
	return ok_hs == total ? 0 : 3;
}
