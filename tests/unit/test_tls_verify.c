/* The tls probe's chain-verification cache (probes/tls/tls_verify.c):
 * hits for the same certificates in new objects, the verified chain it
 * rebuilds, cached failures, capacity for many distinct chains, expiry at
 * certificate edges and the TTL, and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "exporter/xalloc.h"
#include "probes/tls/tls_int.h"

static EVP_PKEY *key;	/* one key for every certificate: fast */
static X509 *root, *inter, *other_ca;
static X509_STORE *store;
static time_t t0;

static X509_NAME *cn(const char *s)
{
	X509_NAME *n = X509_NAME_new();

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
				   (const unsigned char *)s, -1, -1, 0);
	return n;
}

static X509 *make_cert(const char *subject, X509 *issuer, long serial,
		       bool ca, long lifetime)
{
	X509 *x = X509_new();
	X509_NAME *n = cn(subject);
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, &t0);
	X509_time_adj_ex(X509_getm_notAfter(x), 0, lifetime, &t0);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
				  ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

/* A copy decoded anew: the same certificate in another object, as the
 * next handshake would have it. */
static X509 *redecode(X509 *x)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int len = i2d_X509(x, &der);
	X509 *y;

	assert_true(len > 0);
	p = der;
	y = d2i_X509(NULL, &p, len);
	OPENSSL_free(der);
	assert_non_null(y);
	return y;
}

/* Verify leaf + the given intermediates, as libssl sets it up: the leaf
 * and the whole sent chain as untrusted. *chain_out: the verified chain
 * (up-ref'd copy) when asked. */
static int verify(struct tls_verify_cache *vc, X509 *leaf, X509 *i1, X509 *i2,
		  time_t now, long *err, STACK_OF(X509) **chain_out)
{
	STACK_OF(X509) *sent = sk_X509_new_null();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	sk_X509_push(sent, leaf);
	if (i1)
		sk_X509_push(sent, i1);
	if (i2)
		sk_X509_push(sent, i2);
	assert_true(X509_STORE_CTX_init(ctx, store, leaf, sent));
	ok = tls_verify_chain(vc, ctx, now);
	*err = X509_STORE_CTX_get_error(ctx);
	if (chain_out)
		*chain_out = X509_STORE_CTX_get1_chain(ctx);
	X509_STORE_CTX_free(ctx);
	sk_X509_free(sent);
	return ok;
}

static int setup(void **state)
{
	(void)state;
	t0 = time(NULL);
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	root = make_cert("Test Root", NULL, 1, true, 86400 * 365);
	inter = make_cert("Test Intermediate", root, 2, true, 86400 * 365);
	other_ca = make_cert("Other CA", NULL, 3, true, 86400 * 365);
	store = X509_STORE_new();
	X509_STORE_add_cert(store, root);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	X509_STORE_free(store);
	X509_free(root);
	X509_free(inter);
	X509_free(other_ca);
	EVP_PKEY_free(key);
	return 0;
}

static void stats(struct tls_verify_cache *vc, unsigned long *h,
		  unsigned long *m)
{
	size_t n;

	tls_verify_cache_stats(vc, h, m, &n);
}

static void test_hit_rebuilds_chain(void **state)
{
	struct tls_verify_cache *vc = tls_verify_cache_new();
	X509 *leaf = make_cert("leaf.example", inter, 100, false, 86400);
	X509 *leaf2 = redecode(leaf), *inter2 = redecode(inter);
	STACK_OF(X509) *chain;
	unsigned long h, m;
	long err;

	(void)state;
	assert_non_null(vc);
	assert_int_equal(verify(vc, leaf, inter, NULL, t0, &err, &chain), 1);
	assert_int_equal(err, X509_V_OK);
	assert_int_equal(sk_X509_num(chain), 3);
	sk_X509_pop_free(chain, X509_free);
	stats(vc, &h, &m);
	assert_int_equal(h, 0);
	assert_int_equal(m, 1);
	/* the same certificates, new objects: a hit whose chain is made of
	 * this handshake's objects, then the store's anchor */
	assert_int_equal(verify(vc, leaf2, inter2, NULL, t0 + 1, &err, &chain),
			 1);
	assert_int_equal(err, X509_V_OK);
	stats(vc, &h, &m);
	assert_int_equal(h, 1);
	assert_int_equal(m, 1);
	assert_int_equal(sk_X509_num(chain), 3);
	assert_ptr_equal(sk_X509_value(chain, 0), leaf2);
	assert_ptr_equal(sk_X509_value(chain, 1), inter2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 2), root), 0);
	sk_X509_pop_free(chain, X509_free);
	/* another sent chain (an extra certificate) is another entry */
	assert_int_equal(verify(vc, leaf2, inter2, other_ca, t0 + 1, &err, NULL),
			 1);
	stats(vc, &h, &m);
	assert_int_equal(m, 2);
	tls_verify_cache_destroy(vc);
	X509_free(leaf);
	X509_free(leaf2);
	X509_free(inter2);
}

static void test_failure_is_cached(void **state)
{
	struct tls_verify_cache *vc = tls_verify_cache_new();
	X509 *stray = make_cert("stray.example", other_ca, 101, false, 86400);
	X509 *stray2 = redecode(stray);
	STACK_OF(X509) *chain;
	unsigned long h, m;
	long err;

	(void)state;
	assert_int_equal(verify(vc, stray, NULL, NULL, t0, &err, NULL), 0);
	assert_int_equal(err, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	assert_int_equal(verify(vc, stray2, NULL, NULL, t0, &err, &chain), 0);
	assert_int_equal(err, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	assert_int_equal(sk_X509_num(chain), 1);
	assert_ptr_equal(sk_X509_value(chain, 0), stray2);
	sk_X509_pop_free(chain, X509_free);
	stats(vc, &h, &m);
	assert_int_equal(h, 1);
	tls_verify_cache_destroy(vc);
	X509_free(stray);
	X509_free(stray2);
}

/* 5,000 distinct chains (five scrapes of 1,000 targets' worth): the second
 * round is all hits, where 1,024 fixed slots kept about 60%. */
static void test_capacity(void **state)
{
	enum { N = 5000 };
	struct tls_verify_cache *vc = tls_verify_cache_new();
	X509 **leaves = calloc(N, sizeof(*leaves));
	unsigned long h, m;
	long err;

	(void)state;
	for (int i = 0; i < N; i++)
		leaves[i] = make_cert("many.example", inter, 1000 + i, false,
				      86400);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < N; i++)
			assert_int_equal(verify(vc, leaves[i], inter, NULL,
						t0 + round, &err, NULL),
					 1);
	stats(vc, &h, &m);
	assert_int_equal(m, N);
	assert_int_equal(h, N);
	for (int i = 0; i < N; i++)
		X509_free(leaves[i]);
	free(leaves);
	tls_verify_cache_destroy(vc);
}

/* An entry lives until the earliest edge of its chain, at most the TTL. */
static void test_expiry(void **state)
{
	struct tls_verify_cache *vc = tls_verify_cache_new();
	X509 *soon = make_cert("soon.example", inter, 200, false, 120);
	X509 *later = make_cert("later.example", inter, 201, false, 86400);
	unsigned long h, m;
	long err;

	(void)state;
	assert_int_equal(verify(vc, soon, inter, NULL, t0, &err, NULL), 1);
	assert_int_equal(verify(vc, soon, inter, NULL, t0 + 100, &err, NULL), 1);
	stats(vc, &h, &m);
	assert_int_equal(h, 1);
	/* past its notAfter (t0 + 120): asked again (the real clock still
	 * says valid, so it verifies) */
	assert_int_equal(verify(vc, soon, inter, NULL, t0 + 121, &err, NULL), 1);
	stats(vc, &h, &m);
	assert_int_equal(h, 1);
	assert_int_equal(m, 2);
	assert_int_equal(verify(vc, later, inter, NULL, t0, &err, NULL), 1);
	assert_int_equal(verify(vc, later, inter, NULL, t0 + 299, &err, NULL),
			 1);
	assert_int_equal(verify(vc, later, inter, NULL, t0 + 301, &err, NULL),
			 1);
	stats(vc, &h, &m);
	assert_int_equal(h, 2);
	assert_int_equal(m, 4);
	tls_verify_cache_destroy(vc);
	X509_free(soon);
	X509_free(later);
}

/* Out of memory while remembering: the answer is still right. */
static void test_alloc_failure(void **state)
{
	struct tls_verify_cache *vc = tls_verify_cache_new();
	X509 *leaf = make_cert("oom.example", inter, 300, false, 86400);
	unsigned long h, m;
	long err;

	(void)state;
	xalloc_fail_after(1);
	assert_int_equal(verify(vc, leaf, inter, NULL, t0, &err, NULL), 1);
	xalloc_fail_after(0);
	assert_int_equal(err, X509_V_OK);
	assert_int_equal(verify(vc, leaf, inter, NULL, t0, &err, NULL), 1);
	stats(vc, &h, &m);
	assert_int_equal(h, 0);	/* nothing was remembered the first time */
	assert_int_equal(m, 2);
	tls_verify_cache_destroy(vc);
	X509_free(leaf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_rebuilds_chain),
		cmocka_unit_test(test_failure_is_cached),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
