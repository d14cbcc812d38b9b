/* OpenSSL library contexts for the TLS handshakes of the scrape shards.
 *
 * Why not just OpenSSL's default context: profiled on OpenSSL 3.0 (Debian
 * 12), a probe's client handshake spends a third of its CPU decoding the
 * two certificates the server sends. d2i_X509 hands each public key to
 * OSSL_DECODER_CTX_new_for_pkey, which enumerates every decoder of every
 * provider in the library context and matches names under read-write
 * locks: 65 us, ~2,360 lock pairs and ~1,000 mallocs per certificate
 * (OpenSSL 3.1+ caches this; 3.0 does not). Two things are done here,
 * both measured in bench/README.md:
 *
 * 1. Each shard gets its own context. Two shards on one context bounce
 *    those locks' cache lines between the cores (bench/floor.c, 2
 *    threads: 0.48 ms CPU per handshake on one context, 0.43 ms on one
 *    each; 1 thread: 0.39 ms).
 *
 * 2. Those contexts do not load the default provider directly but a thin
 *    wrapper around it ("pki-tls" below): every operation is the default
 *    provider's own, except that the decoders offered are only those
 *    reading a SubjectPublicKeyInfo (12 of 40), which is all a handshake
 *    decodes. The enumeration shrinks with them: 38 us and ~820 lock
 *    pairs per certificate. Nothing is reimplemented; the algorithms run
 *    with the default provider's own context, loaded into a hidden
 *    library context per wrapper.
 *
 * Private keys and PEM files need the decoders left out, so modules load
 * their trust store and client credentials in the default context and
 * hand them to the shard contexts (probes/tls/tls.c). */
#include "probes/libctx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/provider.h>

#include "exporter/xalloc.h"

#define WRAP_NAME "pki-tls"

/* One wrapper instance: the default provider in a hidden context, and
 * the decoders passed on. The core hands our functions the provider
 * context we returned from init, which is the default provider's (its
 * algorithms need it), so instances are found by that pointer. */
struct wrap {
	OSSL_LIB_CTX *hidden;
	OSSL_PROVIDER *def;
	void *provctx;
	OSSL_ALGORITHM *decoders;	/* ended by a NULL name */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static OSSL_LIB_CTX *ctxs[LIBCTX_MAX];
static OSSL_PROVIDER *provs[LIBCTX_MAX];
static bool registered;

/* Written at a wrapper's init (before the core can call it) and teardown;
 * read on every query, which OpenSSL 3.0 makes for each certificate it
 * decodes: atomics, not a lock all shards would share. */
static struct wrap *_Atomic wraps[LIBCTX_MAX];

static struct wrap *wrap_find(void *provctx)
{
	for (size_t i = 0; i < LIBCTX_MAX; i++) {
		struct wrap *w = atomic_load_explicit(&wraps[i],
						      memory_order_acquire);

		if (w && w->provctx == provctx)
			return w;
	}
	return NULL;
}

static const OSSL_ALGORITHM *wrap_query(void *provctx, int op, int *no_cache)
{
	struct wrap *w = wrap_find(provctx);

	if (!w)
		return NULL;
	if (op == OSSL_OP_DECODER) {
		*no_cache = 0;
		return w->decoders;
	}
	return OSSL_PROVIDER_query_operation(w->def, op, no_cache);
}

static void wrap_unquery(void *provctx, int op, const OSSL_ALGORITHM *algs)
{
	struct wrap *w = wrap_find(provctx);

	if (w && op != OSSL_OP_DECODER)
		OSSL_PROVIDER_unquery_operation(w->def, op, algs);
}

static const OSSL_PARAM *wrap_gettable_params(void *provctx)
{
	struct wrap *w = wrap_find(provctx);

	return w ? OSSL_PROVIDER_gettable_params(w->def) : NULL;
}

static int wrap_get_params(void *provctx, OSSL_PARAM params[])
{
	struct wrap *w = wrap_find(provctx);

	return w ? OSSL_PROVIDER_get_params(w->def, params) : 0;
}

/* TLS-GROUP and TLS-SIGALG: what libssl offers the server. */
static int wrap_get_capabilities(void *provctx, const char *capability,
				 OSSL_CALLBACK *cb, void *arg)
{
	struct wrap *w = wrap_find(provctx);

	return w ? OSSL_PROVIDER_get_capabilities(w->def, capability, cb, arg)
		 : 0;
}

static void wrap_free(struct wrap *w)
{
	if (!w)
		return;
	if (w->def)
		OSSL_PROVIDER_unload(w->def);
	OSSL_LIB_CTX_free(w->hidden);
	xfree(w->decoders);
	xfree(w);
}

static void wrap_teardown(void *provctx)
{
	for (size_t i = 0; i < LIBCTX_MAX; i++) {
		struct wrap *w = atomic_load_explicit(&wraps[i],
						      memory_order_acquire);

		if (w && w->provctx == provctx &&
		    atomic_compare_exchange_strong(&wraps[i], &w, NULL)) {
			wrap_free(w);
			return;
		}
	}
}

static const OSSL_DISPATCH wrap_dispatch[] = {
	{OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))wrap_query},
	{OSSL_FUNC_PROVIDER_UNQUERY_OPERATION, (void (*)(void))wrap_unquery},
	{OSSL_FUNC_PROVIDER_GETTABLE_PARAMS,
	 (void (*)(void))wrap_gettable_params},
	{OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))wrap_get_params},
	{OSSL_FUNC_PROVIDER_GET_CAPABILITIES,
	 (void (*)(void))wrap_get_capabilities},
	{OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))wrap_teardown},
	{0, NULL},
};

/* The decoders a handshake needs: DER SubjectPublicKeyInfo to a key. */
static bool decoder_kept(const OSSL_ALGORITHM *a)
{
	return a->property_definition &&
	       strstr(a->property_definition,
		      "structure=SubjectPublicKeyInfo") != NULL;
}

static int wrap_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
		     const OSSL_DISPATCH **out, void **provctx)
{
	const OSSL_ALGORITHM *all;
	struct wrap *w;
	size_t n = 0, k = 0, slot;
	int no_cache = 0;

	(void)handle;
	(void)in;
	w = xcalloc(1, sizeof(*w));
	if (!w)
		return 0;
	w->hidden = OSSL_LIB_CTX_new();
	w->def = w->hidden ? OSSL_PROVIDER_load(w->hidden, "default") : NULL;
	w->provctx = w->def ? OSSL_PROVIDER_get0_provider_ctx(w->def) : NULL;
	all = w->def ? OSSL_PROVIDER_query_operation(w->def, OSSL_OP_DECODER,
						     &no_cache)
		     : NULL;
	if (!w->provctx || !all)
		goto fail;
	while (all[n].algorithm_names)
		n++;
	w->decoders = xcalloc(n + 1, sizeof(*w->decoders));
	if (!w->decoders) {
		OSSL_PROVIDER_unquery_operation(w->def, OSSL_OP_DECODER, all);
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if (decoder_kept(&all[i]))
			w->decoders[k++] = all[i];
	/* the entries stay valid: the default provider is built in, its
	 * tables are static */
	OSSL_PROVIDER_unquery_operation(w->def, OSSL_OP_DECODER, all);
	if (k == 0)	/* not the default provider we know: do not guess */
		goto fail;
	for (slot = 0; slot < LIBCTX_MAX; slot++) {
		struct wrap *none = NULL;

		if (atomic_compare_exchange_strong(&wraps[slot], &none, w))
			break;
	}
	if (slot == LIBCTX_MAX)
		goto fail;
	*out = wrap_dispatch;
	*provctx = w->provctx;
	return 1;
fail:
	wrap_free(w);
	return 0;
}

/* A context with the wrapper loaded into ctxs[k], provs[k]. */
static void wrapped_new(unsigned k)
{
	OSSL_LIB_CTX *c = OSSL_LIB_CTX_new();
	OSSL_PROVIDER *p = NULL;

	if (c && OSSL_PROVIDER_add_builtin(c, WRAP_NAME, wrap_init))
		p = OSSL_PROVIDER_load(c, WRAP_NAME);
	if (!p) {
		OSSL_LIB_CTX_free(c);
		return;
	}
	ctxs[k] = c;
	provs[k] = p;
}

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

	if (k >= LIBCTX_MAX)
		return NULL;
	pthread_mutex_lock(&mu);
	if (!ctxs[k])
		wrapped_new(k);
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
		if (provs[k])
			OSSL_PROVIDER_unload(provs[k]);	/* tears it down */
		OSSL_LIB_CTX_free(ctxs[k]);
		ctxs[k] = NULL;
		provs[k] = NULL;
	}
	pthread_mutex_unlock(&mu);
}
