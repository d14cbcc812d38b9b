/* OpenSSL library contexts per scrape shard (see libctx.c). */
#ifndef PKI_LIBCTX_H
#define PKI_LIBCTX_H

#include <openssl/types.h>

#define LIBCTX_MAX 8	/* scrape shards at most (exporter/scrape.c) */

/* How many shards a scrape may use on this machine: one per core, at
 * most LIBCTX_MAX. */
unsigned libctx_shards(void);

/* The library context for shard k: NULL (OpenSSL's default context) for
 * shard 0, a private one created on first use for the others; NULL also
 * when one cannot be made (the default context works, only slower). */
OSSL_LIB_CTX *libctx_for_shard(unsigned k);

/* Free the private contexts (registered with atexit on first use, so
 * it runs before OpenSSL's own exit handler). */
void libctx_cleanup(void);

#endif
