/* OpenSSL library contexts for the TLS handshakes of each scrape shard
 * (see libctx.c for why). */
#ifndef PKI_LIBCTX_H
#define PKI_LIBCTX_H

#include <openssl/types.h>

#define LIBCTX_MAX 8	/* scrape shards at most (exporter/scrape.c) */

/* How many shards a scrape may use on this machine: one per core, at
 * most LIBCTX_MAX. */
unsigned libctx_shards(void);

/* The library context for the TLS handshakes of shard k, created on
 * first use: the default provider behind a wrapper that offers only the
 * decoders a handshake needs. NULL when one cannot be made (then the
 * default context serves, only slower). Private keys and PEM files cannot
 * be read in it: load those in the default context. */
OSSL_LIB_CTX *libctx_for_shard(unsigned k);

/* Free the private contexts (registered with atexit on first use, so
 * it runs before OpenSSL's own exit handler). */
void libctx_cleanup(void);

#endif
