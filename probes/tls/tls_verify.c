/* Chain verification cached by chain fingerprint, per module.
 *
 * OpenSSL verifies the server's chain during every handshake, even with
 * SSL_VERIFY_NONE; with 1,000 endpoints behind one intermediate that is the
 * same two signature checks 1,000 times per scrape (about a seventh of the
 * probe's CPU, measured with perf). The module's SSL_CTX holds one trust
 * store for its whole life (a reload builds a new module), so the answer
 * for a given chain only changes with time: an entry lives until the
 * earliest notAfter/notBefore edge of its chain or TLS_VERIFY_TTL, whichever
 * comes first. The handshake itself is never skipped or resumed.
 *
 * The table is a hash table that grows with the number of distinct chains
 * (up to TLS_VERIFY_MAX entries per module): a fixed table of 1,024 slots
 * kept only ~60% of 1,000 chains from one scrape to the next, and almost
 * none of 10,000. An entry keeps no certificate the server sent: the
 * verified chain is rebuilt on a hit from the certificates of the current
 * handshake (same fingerprint, same certificates) by their positions, plus
 * the few the trust store supplied (the anchor), held by reference. So an
 * entry is ~100 bytes, not a leaf certificate's ~3 KB. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "exporter/xalloc.h"
#include "probes/tls/tls_int.h"
#include "probes/x509/x509.h"

#define TLS_VERIFY_TTL 300	/* seconds */
#define TLS_VERIFY_MAX_CHAIN 10	/* certificates the server sent */
#define TLS_VERIFY_HELD 3	/* chain certificates from the trust store */
#define TLS_VERIFY_MAX (1 << 17)	/* entries per module */
#define TLS_VERIFY_MIN_BUCKETS 256

#define FROM_HELD 64		/* from[i] >= FROM_HELD: held[from - 64] */

struct verify_entry {
	struct verify_entry *next;
	unsigned char key[20];	/* SHA-1 over the chain's SHA-1s */
	uint8_t len;		/* certificates in the resulting chain */
	uint8_t from[TLS_VERIFY_MAX_CHAIN + TLS_VERIFY_HELD];
				/* index among those sent, or FROM_HELD + k */
	long error;		/* X509_V_OK or the X509_V_ERR_* */
	time_t expires;
	X509 *held[TLS_VERIFY_HELD];	/* up-ref'd */
};

struct tls_verify_cache {
	pthread_mutex_t lock;
	EVP_MD *sha1;		/* fetched once: no implicit fetch per probe */
	struct verify_entry **buckets;
	size_t nbuckets, count;
	time_t next_sweep;
	unsigned long hits, misses;
};

static void entry_free(struct verify_entry *e)
{
	for (size_t i = 0; i < TLS_VERIFY_HELD; i++)
		X509_free(e->held[i]);
	xfree(e);
}

/* Fingerprint of the certificates the server sent (leaf first), in order.
 * OpenSSL keeps each certificate's SHA-1 from parsing, so this costs one
 * small hash. */
static int chain_key(struct tls_verify_cache *vc, X509_STORE_CTX *ctx,
		     unsigned char out[20])
{
	STACK_OF(X509) *un = X509_STORE_CTX_get0_untrusted(ctx);
	unsigned char buf[20 * TLS_VERIFY_MAX_CHAIN];
	unsigned int len, outlen;
	int n = sk_X509_num(un);

	if (!X509_STORE_CTX_get0_cert(ctx) || n < 1 || n > TLS_VERIFY_MAX_CHAIN ||
	    X509_STORE_CTX_get0_cert(ctx) != sk_X509_value(un, 0))
		return -1;
	for (int i = 0; i < n; i++)
		if (!X509_digest(sk_X509_value(un, i), vc->sha1, buf + 20 * i,
				 &len) ||
		    len != 20)
			return -1;
	if (!EVP_Digest(buf, (size_t)n * 20, out, &outlen, vc->sha1, NULL) ||
	    outlen != 20)
		return -1;
	return 0;
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

static size_t bucket_of(const struct tls_verify_cache *vc,
			const unsigned char key[20])
{
	size_t h;

	memcpy(&h, key, sizeof(h));
	return h & (vc->nbuckets - 1);
}

/* Double the buckets when there are as many entries (dropping expired
 * ones on the way), and sweep expired entries now and then once at the
 * cap. Under the lock. */
static void maintain(struct tls_verify_cache *vc, time_t now)
{
	bool grow = vc->count >= vc->nbuckets &&
		    vc->nbuckets < 2 * TLS_VERIFY_MAX;
	bool sweep = vc->count >= TLS_VERIFY_MAX && now >= vc->next_sweep;
	struct verify_entry **nb, *all = NULL;
	size_t n;

	if (!grow && !sweep)
		return;
	if (sweep)
		vc->next_sweep = now + 10;
	for (size_t i = 0; i < vc->nbuckets; i++) {
		while (vc->buckets[i]) {
			struct verify_entry *e = vc->buckets[i];

			vc->buckets[i] = e->next;
			if (now >= e->expires) {
				entry_free(e);
				vc->count--;
			} else {
				e->next = all;
				all = e;
			}
		}
	}
	n = vc->nbuckets;
	while (n < 2 * TLS_VERIFY_MAX && vc->count >= n / 2)
		n *= 2;
	nb = n != vc->nbuckets ? xcalloc(n, sizeof(*nb)) : NULL;
	if (nb) {
		xfree(vc->buckets);
		vc->buckets = nb;
		vc->nbuckets = n;
	}
	while (all) {
		struct verify_entry *e = all;
		size_t b = bucket_of(vc, e->key);

		all = e->next;
		e->next = vc->buckets[b];
		vc->buckets[b] = e;
	}
}

/* The chain of a hit: the certificates of this handshake at the recorded
 * positions, and the held ones. */
static STACK_OF(X509) *rebuild(const struct verify_entry *e,
			       X509_STORE_CTX *ctx)
{
	STACK_OF(X509) *un = X509_STORE_CTX_get0_untrusted(ctx);
	STACK_OF(X509) *sk = sk_X509_new_reserve(NULL, e->len);

	for (size_t i = 0; sk && i < e->len; i++) {
		X509 *x = e->from[i] >= FROM_HELD
				  ? e->held[e->from[i] - FROM_HELD]
				  : sk_X509_value(un, e->from[i]);

		if (!x || !X509_up_ref(x)) {
			sk_X509_pop_free(sk, X509_free);
			return NULL;
		}
		sk_X509_push(sk, x);
	}
	return sk;
}

/* A new entry for `chain` (the result of X509_verify_cert), or NULL when
 * it cannot be described by positions (too long, too many certificates
 * from the store) or on ENOMEM. */
static struct verify_entry *describe(X509_STORE_CTX *ctx,
				     STACK_OF(X509) *chain, long error,
				     time_t now)
{
	STACK_OF(X509) *un = X509_STORE_CTX_get0_untrusted(ctx);
	int n = sk_X509_num(chain), nheld = 0;
	struct verify_entry *e;

	if (n < 1 || n > TLS_VERIFY_MAX_CHAIN + TLS_VERIFY_HELD)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->len = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);
		int k;

		for (k = 0; k < sk_X509_num(un); k++)
			if (sk_X509_value(un, k) == x)
				break;
		if (k < sk_X509_num(un)) {
			e->from[i] = (uint8_t)k;
			continue;
		}
		if (nheld == TLS_VERIFY_HELD || !X509_up_ref(x)) {
			entry_free(e);
			return NULL;
		}
		e->held[nheld] = x;
		e->from[i] = (uint8_t)(FROM_HELD + nheld++);
	}
	e->error = error;
	e->expires = chain_expiry(chain, now);
	return e;
}

int tls_verify_chain(struct tls_verify_cache *vc, X509_STORE_CTX *ctx,
		     time_t now)
{
	unsigned char key[20];
	struct verify_entry *e, **pp;
	STACK_OF(X509) *chain = NULL;
	long error = 0;
	bool hit = false;
	size_t b;
	int ok;

	if (chain_key(vc, ctx, key))
		return X509_verify_cert(ctx);
	pthread_mutex_lock(&vc->lock);
	b = bucket_of(vc, key);
	for (e = vc->buckets[b]; e; e = e->next)
		if (memcmp(e->key, key, sizeof(key)) == 0)
			break;
	if (e && now < e->expires) {
		chain = rebuild(e, ctx);
		hit = chain != NULL;
		error = e->error;
	}
	if (hit)
		vc->hits++;
	else
		vc->misses++;
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
	e = ok >= 0 && chain ? describe(ctx, chain, error, now) : NULL;
	sk_X509_pop_free(chain, X509_free);
	if (!e)	/* internal trouble or an odd chain: do not remember */
		return ok;
	memcpy(e->key, key, sizeof(key));
	pthread_mutex_lock(&vc->lock);
	maintain(vc, now);
	b = bucket_of(vc, key);
	for (pp = &vc->buckets[b]; *pp; pp = &(*pp)->next)
		if (memcmp((*pp)->key, key, sizeof(key)) == 0)
			break;
	if (*pp) {			/* expired, or raced: replace */
		e->next = (*pp)->next;
		entry_free(*pp);
		*pp = e;
	} else if (vc->count < TLS_VERIFY_MAX) {
		e->next = vc->buckets[b];
		vc->buckets[b] = e;
		vc->count++;
	} else {
		entry_free(e);		/* full of live entries */
	}
	pthread_mutex_unlock(&vc->lock);
	return ok;
}

void tls_verify_cache_stats(const struct tls_verify_cache *vc,
			    unsigned long *hits, unsigned long *misses,
			    size_t *entries)
{
	pthread_mutex_lock((pthread_mutex_t *)&vc->lock);
	*hits = vc->hits;
	*misses = vc->misses;
	*entries = vc->count;
	pthread_mutex_unlock((pthread_mutex_t *)&vc->lock);
}

static int verify_cb(X509_STORE_CTX *ctx, void *arg)
{
	return tls_verify_chain(arg, ctx, time(NULL));
}

struct tls_verify_cache *tls_verify_cache_new(void)
{
	struct tls_verify_cache *vc = xcalloc(1, sizeof(*vc));

	if (!vc)
		return NULL;
	vc->nbuckets = TLS_VERIFY_MIN_BUCKETS;
	vc->buckets = xcalloc(vc->nbuckets, sizeof(*vc->buckets));
	vc->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	if (!vc->buckets || !vc->sha1) {
		EVP_MD_free(vc->sha1);
		xfree(vc->buckets);
		xfree(vc);
		return NULL;
	}
	pthread_mutex_init(&vc->lock, NULL);
	return vc;
}

void tls_verify_cache_destroy(struct tls_verify_cache *vc)
{
	if (!vc)
		return;
	for (size_t i = 0; i < vc->nbuckets; i++) {
		while (vc->buckets[i]) {
			struct verify_entry *e = vc->buckets[i];

			vc->buckets[i] = e->next;
			entry_free(e);
		}
	}
	xfree(vc->buckets);
	EVP_MD_free(vc->sha1);
	pthread_mutex_destroy(&vc->lock);
	xfree(vc);
}

int tls_verify_cache_install(struct tls_module *m)
{
	struct tls_verify_cache *vc = tls_verify_cache_new();

	if (!vc)
		return -ENOMEM;
	m->verify_cache = vc;
	SSL_CTX_set_cert_verify_callback(m->base, verify_cb, vc);
	for (unsigned k = 0; k < m->nctx; k++)
		SSL_CTX_set_cert_verify_callback(m->ctx[k], verify_cb, vc);
	return 0;
}

void tls_verify_cache_free(struct tls_module *m)
{
	tls_verify_cache_destroy(m->verify_cache);
	m->verify_cache = NULL;
}
