/* The shard library contexts (probes/libctx.c): the wrapped default
 * provider decodes the public key of every certificate type a server can
 * send, handshakes of every kind complete in it (TLS 1.3 and 1.2, ECDHE,
 * DHE, RSA key exchange, RSA/ECDSA/EdDSA servers, a client certificate
 * loaded in the default context), and it really is the trimmed provider:
 * it offers only the decoders of a SubjectPublicKeyInfo. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "probes/libctx.h"

struct keyspec {
	const char *name;	/* EVP_PKEY_Q_keygen type */
	const char *param;	/* curve, or NULL */
	size_t bits;		/* RSA/DSA, or 0 */
	bool digest;		/* signed with SHA-256 (not EdDSA) */
};

static const struct keyspec keys[] = {
	{"RSA", NULL, 2048, true},
	{"RSA-PSS", NULL, 2048, true},
	{"EC", "P-256", 0, true},
	{"EC", "P-384", 0, true},
	{"ED25519", NULL, 0, false},
	{"ED448", NULL, 0, false},
	{"DSA", NULL, 2048, true},
};

static EVP_PKEY *keygen(const struct keyspec *k)
{
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *c;

	if (strcmp(k->name, "DSA") == 0) {	/* Q_keygen cannot make DSA */
		EVP_PKEY *params = NULL;

		c = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL);
		assert_non_null(c);
		assert_int_equal(EVP_PKEY_paramgen_init(c), 1);
		assert_int_equal(EVP_PKEY_CTX_set_dsa_paramgen_bits(c, 2048), 1);
		assert_int_equal(EVP_PKEY_paramgen(c, &params), 1);
		EVP_PKEY_CTX_free(c);
		c = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
		assert_int_equal(EVP_PKEY_keygen_init(c), 1);
		assert_int_equal(EVP_PKEY_keygen(c, &pk), 1);
		EVP_PKEY_CTX_free(c);
		EVP_PKEY_free(params);
	} else if (strcmp(k->name, "RSA-PSS") == 0) {
		c = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
		assert_non_null(c);
		assert_int_equal(EVP_PKEY_keygen_init(c), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(c,
								  (int)k->bits),
				 1);
		assert_int_equal(EVP_PKEY_keygen(c, &pk), 1);
		EVP_PKEY_CTX_free(c);
	} else if (k->param) {
		pk = EVP_PKEY_Q_keygen(NULL, NULL, k->name, k->param);
	} else if (k->bits) {
		pk = EVP_PKEY_Q_keygen(NULL, NULL, k->name, k->bits);
	} else {
		pk = EVP_PKEY_Q_keygen(NULL, NULL, k->name);
	}
	assert_non_null(pk);
	return pk;
}

static X509 *self_signed(EVP_PKEY *pk, bool digest, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_get_subject_name(x);

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, pk);
	assert_true(X509_sign(x, pk, digest ? EVP_sha256() : NULL) > 0);
	return x;
}

static size_t der_of_pubkey(EVP_PKEY *pk, unsigned char **der)
{
	int n = i2d_PUBKEY(pk, der);

	assert_true(n > 0);
	return (size_t)n;
}

static void test_contexts(void **state)
{
	(void)state;
	assert_true(libctx_shards() >= 1);
	assert_true(libctx_shards() <= LIBCTX_MAX);
	assert_non_null(libctx_for_shard(0));
	assert_non_null(libctx_for_shard(1));
	assert_ptr_not_equal(libctx_for_shard(0), libctx_for_shard(1));
	assert_ptr_equal(libctx_for_shard(1), libctx_for_shard(1));
	assert_null(libctx_for_shard(LIBCTX_MAX));
}

/* Every key type a certificate can carry decodes in the shard context to
 * the same key, and signatures check across the two contexts. */
static void test_decode_every_key_type(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		EVP_PKEY *pk = keygen(&keys[i]);
		X509 *x = self_signed(pk, keys[i].digest, keys[i].name);
		unsigned char *der = NULL, *a = NULL, *b = NULL;
		int len = i2d_X509(x, &der);
		size_t la, lb;

		for (unsigned s = 0; s < 2; s++) {
			const unsigned char *p = der;
			X509 *y = X509_new_ex(libctx_for_shard(s), NULL);
			EVP_PKEY *yk;

			assert_non_null(d2i_X509(&y, &p, len));
			yk = X509_get0_pubkey(y);
			if (!yk)
				fail_msg("%s: no public key in the shard context",
					 keys[i].name);
			assert_int_equal(EVP_PKEY_get_bits(yk),
					 EVP_PKEY_get_bits(pk));
			la = der_of_pubkey(pk, &a);
			lb = der_of_pubkey(yk, &b);
			assert_int_equal(la, lb);
			assert_memory_equal(a, b, la);
			OPENSSL_free(a);
			OPENSSL_free(b);
			a = b = NULL;
			/* in the shard context, and with the default one's key */
			assert_int_equal(X509_verify(y, yk), 1);
			assert_int_equal(X509_verify(y, pk), 1);
			X509_free(y);
		}
		OPENSSL_free(der);
		X509_free(x);
		EVP_PKEY_free(pk);
	}
}

/* The wrapper offers exactly the default provider's SubjectPublicKeyInfo
 * decoders, and fewer than it has in all (what makes decoding cheaper). */
struct count {
	size_t all, spki;
};

static void count_decoder(OSSL_DECODER *d, void *arg)
{
	struct count *c = arg;
	const char *props = OSSL_DECODER_get0_properties(d);

	c->all++;
	if (props && strstr(props, "structure=SubjectPublicKeyInfo"))
		c->spki++;
}

static void test_trimmed(void **state)
{
	struct count def = {0, 0}, shard = {0, 0};

	(void)state;
	OSSL_DECODER_do_all_provided(NULL, count_decoder, &def);
	OSSL_DECODER_do_all_provided(libctx_for_shard(0), count_decoder,
				     &shard);
	assert_true(def.spki > 0);
	assert_true(def.all > def.spki);
	assert_int_equal(shard.all, def.spki);
	assert_int_equal(shard.spki, def.spki);
}

/* Drive both ends over a BIO pair until the handshake ends. */
static bool handshake(SSL *cli, SSL *srv)
{
	int rc = 0, rs = 0;

	for (int i = 0; i < 100 && (rc != 1 || rs != 1); i++) {
		if (rc != 1) {
			rc = SSL_do_handshake(cli);
			if (rc != 1 && SSL_get_error(cli, rc) != SSL_ERROR_WANT_READ)
				return false;
		}
		if (rs != 1) {
			rs = SSL_do_handshake(srv);
			if (rs != 1 && SSL_get_error(srv, rs) != SSL_ERROR_WANT_READ)
				return false;
		}
	}
	return rc == 1 && rs == 1;
}

struct hs_case {
	int key;		/* index into keys[] */
	int version;		/* TLS1_3_VERSION or TLS1_2_VERSION */
	const char *ciphers;	/* TLS 1.2 cipher list, or NULL */
	bool client_cert;
};

static const struct hs_case hs_cases[] = {
	{2, TLS1_3_VERSION, NULL, false},	/* ECDSA P-256 */
	{0, TLS1_3_VERSION, NULL, false},	/* RSA (PSS signatures) */
	{4, TLS1_3_VERSION, NULL, false},	/* Ed25519 */
	{5, TLS1_3_VERSION, NULL, false},	/* Ed448 */
	{1, TLS1_3_VERSION, NULL, false},	/* RSA-PSS key */
	{6, TLS1_2_VERSION, "DHE-DSS-AES128-SHA", false},	/* DSA */
	{2, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", false},
	{0, TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", false},
	{0, TLS1_2_VERSION, "DHE-RSA-AES128-GCM-SHA256", false},
	{0, TLS1_2_VERSION, "AES128-SHA", false},	/* RSA key exchange */
	{2, TLS1_3_VERSION, NULL, true},
	{0, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256", true},
};

/* The server takes any client certificate: self-signed here. */
static int accept_any(X509_STORE_CTX *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	return 1;
}

static void run_case(const struct hs_case *c)
{
	EVP_PKEY *skey = keygen(&keys[c->key]);
	X509 *scert = self_signed(skey, keys[c->key].digest, "server");
	EVP_PKEY *ckey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *ccert = self_signed(ckey, true, "client");
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new_ex(libctx_for_shard(1), NULL,
				       TLS_client_method());
	SSL *srv, *cli;
	BIO *b1, *b2;
	X509 *peer;

	assert_non_null(sctx);
	assert_non_null(cctx);
	SSL_CTX_set_security_level(sctx, 0);
	SSL_CTX_set_security_level(cctx, 0);
	assert_int_equal(SSL_CTX_use_certificate(sctx, scert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, skey), 1);
	SSL_CTX_set_min_proto_version(sctx, c->version);
	SSL_CTX_set_max_proto_version(sctx, c->version);
	if (c->ciphers) {
		assert_int_equal(SSL_CTX_set_cipher_list(sctx, c->ciphers), 1);
		assert_int_equal(SSL_CTX_set_cipher_list(cctx, c->ciphers), 1);
	}
	SSL_CTX_set_dh_auto(sctx, 1);
	if (c->client_cert) {
		/* the key lives in the default context, as in tls.c */
		SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_cert_verify_callback(sctx, accept_any, NULL);
		assert_int_equal(SSL_CTX_use_cert_and_key(cctx, ccert, ckey,
							  NULL, 1), 1);
	}
	srv = SSL_new(sctx);
	cli = SSL_new(cctx);
	assert_int_equal(BIO_new_bio_pair(&b1, 0, &b2, 0), 1);
	SSL_set_bio(cli, b1, b1);
	SSL_set_bio(srv, b2, b2);
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	if (!handshake(cli, srv)) {
		char e[256];

		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		fail_msg("%s %s %s: handshake failed: %s", keys[c->key].name,
			 c->version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2",
			 c->ciphers ? c->ciphers : "", e);
	}
	assert_int_equal(SSL_version(cli), c->version);
	peer = SSL_get0_peer_certificate(cli);
	assert_non_null(peer);
	assert_int_equal(X509_cmp(peer, scert), 0);
	assert_non_null(X509_get0_pubkey(peer));
	if (c->client_cert) {
		peer = SSL_get0_peer_certificate(srv);
		assert_non_null(peer);
		assert_int_equal(X509_cmp(peer, ccert), 0);
	}
	SSL_free(cli);
	SSL_free(srv);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	X509_free(ccert);
	X509_free(scert);
	EVP_PKEY_free(ckey);
	EVP_PKEY_free(skey);
}

static void test_handshakes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hs_cases) / sizeof(hs_cases[0]); i++)
		run_case(&hs_cases[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_contexts),
		cmocka_unit_test(test_decode_every_key_type),
		cmocka_unit_test(test_trimmed),
		cmocka_unit_test(test_handshakes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
