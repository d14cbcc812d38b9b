/* Chain verification cached by chain fingerprint, per module.
 *
 * OpenSSL verifies the server's chain during every handshake, even with
 * SSL_VERIFY_NONE; with 1,000 endpoints behind one intermediate that is the
 * same two signature checks 1,000 times per scrape (about a seventh of the
 * probe's CPU, measured with perf). The module's SSL_CTX holds one trust
 * store for its whole life (a reload builds a new module), so the answer
 * for a given chain only changes with time: an entry lives until the
 * earliest notAfter/notBefore edge of its chain or TLS_VERIFY_TTL, whichever
 * comes first. The handshake itself is never skipped or resumed. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "exporter/xalloc.h"
#include "probes/tls/tls_int.h"
#include "probes/x509/x509.h"

#define TLS_VERIFY_SLOTS 1024	/* power of two */
#define TLS_VERIFY_TTL 300	/* seconds */
#define TLS_VERIFY_MAX_CHAIN 10

struct verify_entry {
	unsigned char key[20];	/* SHA-1 over the chain's SHA-1s */
	bool used;
	long error;		/* X509_V_OK or the X509_V_ERR_* */
	STACK_OF(X509) *chain;	/* the verified (or partial) chain */
	time_t expires;
};

struct tls_verify_cache {
	pthread_mutex_t lock;
	struct verify_entry slots[TLS_VERIFY_SLOTS];
	unsigned long hits, misses;
};

/* Fingerprint of leaf + untrusted certificates in order. OpenSSL keeps each
 * certificate's SHA-1 from parsing, so this costs one small hash. */
static int chain_key(X509_STORE_CTX *ctx, unsigned char out[20])
{
	X509 *leaf = X509_STORE_CTX_get0_cert(ctx);
	STACK_OF(X509) *un = X509_STORE_CTX_get0_untrusted(ctx);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int len;
	int n = sk_X509_num(un), ok;

	if (!md || !leaf || n > TLS_VERIFY_MAX_CHAIN) {
		EVP_MD_CTX_free(md);
		return -1;
	}
	ok = EVP_DigestInit_ex(md, EVP_sha1(), NULL);
	for (int i = -1; ok && i < n; i++) {
		X509 *x = i < 0 ? leaf : sk_X509_value(un, i);

		/* X509_digest returns the SHA-1 cached at parse time */
		ok = X509_digest(x, EVP_sha1(), h, &len) &&
		     EVP_DigestUpdate(md, h, len);
	}
	ok = ok && EVP_DigestFinal_ex(md, out, &len);
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* When the verification result of this chain could change by itself. */
static time_t chain_expiry(STACK_OF(X509) *chain, time_t now)
{
	time_t until = now + TLS_VERIFY_TTL;

	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		int64_t t;

		if (x509_time_to_unix(X509_get0_notAfter(x), &t) == 0 && t > now &&
		    t < until)
			until = (time_t)t;
		if (x509_time_to_unix(X509_get0_notBefore(x), &t) == 0 && t > now &&
		    t < until)
			until = (time_t)t;
	}
	return until;
}

static int verify_cb(X509_STORE_CTX *ctx, void *arg)
{
	struct tls_verify_cache *vc = arg;
	unsigned char key[20];
	struct verify_entry *e;
	STACK_OF(X509) *chain = NULL;
	time_t now = time(NULL);
	long error = 0;
	bool hit = false;
	int ok;

	if (chain_key(ctx, key))
		return X509_verify_cert(ctx);
	e = &vc->slots[(key[0] | key[1] << 8) & (TLS_VERIFY_SLOTS - 1)];
	pthread_mutex_lock(&vc->lock);
	if (e->used && memcmp(e->key, key, sizeof(key)) == 0 && now < e->expires) {
		hit = true;
		error = e->error;
		chain = X509_chain_up_ref(e->chain);
		vc->hits++;
	} else {
		vc->misses++;
	}
	pthread_mutex_unlock(&vc->lock);
	if (hit) {
		/* what ssl_verify_cert_chain reads back: the error and the
		 * chain (SSL_get_verify_result, SSL_get0_verified_chain) */
		X509_STORE_CTX_set0_verified_chain(ctx, chain);
		X509_STORE_CTX_set_error(ctx, (int)error);
		return error == X509_V_OK;
	}

	ok = X509_verify_cert(ctx);
	chain = X509_STORE_CTX_get1_chain(ctx);
	error = X509_STORE_CTX_get_error(ctx);
	if (ok < 0 || !chain) {	/* internal trouble: do not remember */
		sk_X509_pop_free(chain, X509_free);
		return ok;
	}
	pthread_mutex_lock(&vc->lock);
	sk_X509_pop_free(e->chain, X509_free);
	memcpy(e->key, key, sizeof(key));
	e->used = true;
	e->error = error;
	e->chain = chain;
	e->expires = chain_expiry(chain, now);
	pthread_mutex_unlock(&vc->lock);
	return ok;
}

int tls_verify_cache_install(struct tls_module *m)
{
	struct tls_verify_cache *vc = xcalloc(1, sizeof(*vc));

	if (!vc)
		return -ENOMEM;
	pthread_mutex_init(&vc->lock, NULL);
	m->verify_cache = vc;
	SSL_CTX_set_cert_verify_callback(m->ctx, verify_cb, vc);
	return 0;
}

void tls_verify_cache_free(struct tls_module *m)
{
	struct tls_verify_cache *vc = m->verify_cache;

	if (!vc)
		return;
	for (size_t i = 0; i < TLS_VERIFY_SLOTS; i++)
		sk_X509_pop_free(vc->slots[i].chain, X509_free);
	pthread_mutex_destroy(&vc->lock);
	xfree(vc);
	m->verify_cache = NULL;
}
