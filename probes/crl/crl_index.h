/* The revoked serial numbers of one CRL, kept for look-ups in about as
 * many bytes as the serials themselves (a 1,000,000-entry CRL with 16-byte
 * serials: 16 MB, where an X509_CRL holds ~380 MB).
 *
 * Layout. Almost every entry is *plain*: a non-negative serial of at most
 * `width` bytes (its magnitude, without leading zeros), listed for the CRL
 * issuer itself, not a removeFromCRL. Plain entries are stored as
 * `width`-byte big-endian numbers, left-padded with zeros, back to back in
 * one sorted array: n * width bytes and nothing else, no pointers and no
 * lengths, because zero padding makes memcmp order the numeric order.
 * Every other entry is *odd* (negative, longer than width, listed for
 * another issuer by an indirect CRL, or a removeFromCRL):
 * an 8-byte struct crl_serial (offset and length into one arena of serial
 * bytes, flags, issuer), sorted too. `width` is chosen after counting the
 * serial lengths, as the one that makes the whole smallest, so one
 * over-long serial among a million short ones costs 8 + its length, not a
 * million padded slots.
 *
 * Building takes two passes over the entries: crl_index_count() for each,
 * crl_index_alloc(), crl_index_put() for each again (same values),
 * crl_index_finish(). Nothing is allocated per entry. Pass 1 also counts
 * the first byte of the padded plain entries, so pass 2 drops each one
 * into its first-byte bucket and the sort starts at the second byte: the
 * first radix pass over the whole array (random writes over n * width
 * bytes) is never made. */
#ifndef PKI_CRL_INDEX_H
#define PKI_CRL_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRL_INDEX_WIDTH_MAX 32	/* longer serials are always odd */

#define CRL_SERIAL_NEGATIVE 1
#define CRL_SERIAL_REMOVE 2	/* reasonCode removeFromCRL (delta CRLs) */

/* One odd serial: bytes of the magnitude (no leading zeros) at
 * odd_blob + off. */
struct crl_serial {
	uint32_t off;
	uint16_t len;
	uint8_t flags;
	uint8_t issuer;	/* 0 = the CRL issuer, k = entry_issuers[k - 1] */
};

struct crl_index_build;	/* crl_index.c: counts between the passes */

struct crl_index {
	size_t n;		/* plain entries */
	size_t width;		/* bytes per plain entry, 0 when n == 0 */
	unsigned char *plain;	/* n * width bytes, sorted */
	size_t nodd;
	struct crl_serial *odd;	/* sorted by sign, length, bytes, issuer,
				   flags */
	unsigned char *odd_blob;
	size_t plain_cap, odd_cap, blob_cap, blob_len;
	struct crl_index_build *build;	/* while building, owned */
	bool build_oom;
};

/* An entry as the builder sees it and as crl_index_at() returns it. */
struct crl_index_entry {
	const unsigned char *bytes;	/* magnitude, no leading zeros */
	size_t len;			/* >= 1 */
	uint8_t flags;
	uint8_t issuer;
};

void crl_index_init(struct crl_index *ix);
void crl_index_cleanup(struct crl_index *ix);

/* Pass 1: one call per entry. The bytes are a magnitude without leading
 * zeros (a zero serial is one 0 byte); only the first is looked at. */
void crl_index_count(struct crl_index *ix, const struct crl_index_entry *e);
/* Between the passes: choose the width and allocate. 0 or -ENOMEM. */
int crl_index_alloc(struct crl_index *ix);
/* Pass 2: the same entries again, in any order. 0, or -EINVAL when they
 * do not match what pass 1 counted (a bug, never a property of a CRL). */
int crl_index_put(struct crl_index *ix, const struct crl_index_entry *e);
/* After pass 2: sort. 0, or -EINVAL when pass 2 put fewer entries. */
int crl_index_finish(struct crl_index *ix);

/* Entries held (plain and odd). */
size_t crl_index_size(const struct crl_index *ix);
/* Heap bytes the index keeps (arrays; not the struct itself). */
size_t crl_index_bytes(const struct crl_index *ix);
/* The i-th entry (plain ones first, each part in sorted order). The bytes
 * of a plain entry point into the index; valid while it lives. */
void crl_index_at(const struct crl_index *ix, size_t i,
		  struct crl_index_entry *e);

/* Is (serial, issuer) listed? 1 yes (*removed: it is a removeFromCRL
 * entry), 0 no. A plain listing wins over a removeFromCRL one of the same
 * serial and issuer. `bytes`: magnitude, leading zeros allowed. */
int crl_index_find(const struct crl_index *ix, const unsigned char *bytes,
		   size_t len, bool negative, uint8_t issuer, bool *removed);

#endif
