/* One OpenSSL library context per scrape shard.
 *
 * Why: OpenSSL 3.0 fetches every algorithm and builds a decoder chain for
 * every certificate a server sends by walking its library context's
 * stores under read-write locks (~1,700 lock pairs per handshake, see
 * bench/README.md). Two shards handshaking at once on one context bounce
 * those locks' cache lines between the cores: measured with bench/floor.c,
 * 2 threads on one context cost 0.48 ms CPU per handshake, on one context
 * each 0.43 ms (1 thread: 0.39 ms). Each shard therefore makes its
 * SSL_CTXs in its own context. Shard 0 keeps the default context, which
 * everything else in the process (CRLs, OCSP, stores, the web server)
 * uses too. */
#include "probes/libctx.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/crypto.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static OSSL_LIB_CTX *ctxs[LIBCTX_MAX];
static bool registered;

unsigned libctx_shards(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 1)
		return 1;
	return cpus > LIBCTX_MAX ? LIBCTX_MAX : (unsigned)cpus;
}

OSSL_LIB_CTX *libctx_for_shard(unsigned k)
{
	OSSL_LIB_CTX *c;

	if (k == 0 || k >= LIBCTX_MAX)
		return NULL;
	pthread_mutex_lock(&mu);
	if (!ctxs[k])
		ctxs[k] = OSSL_LIB_CTX_new();	/* default provider on first fetch */
	/* after OpenSSL registered its exit handler: ours runs first */
	if (ctxs[k] && !registered)
		registered = atexit(libctx_cleanup) == 0;
	c = ctxs[k];
	pthread_mutex_unlock(&mu);
	return c;
}

void libctx_cleanup(void)
{
	pthread_mutex_lock(&mu);
	for (unsigned k = 0; k < LIBCTX_MAX; k++) {
		OSSL_LIB_CTX_free(ctxs[k]);
		ctxs[k] = NULL;
	}
	pthread_mutex_unlock(&mu);
}
