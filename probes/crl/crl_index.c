#include "crl_index.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/xalloc.h"

#define ODD_OVERHEAD sizeof(struct crl_serial)

struct crl_index_build {
	size_t hist[CRL_INDEX_WIDTH_MAX + 1];	/* plain candidates by length */
	uint32_t first[CRL_INDEX_WIDTH_MAX + 1][256];	/* ... and first byte */
	size_t next[256], end[256];	/* pass 2: the buckets of byte 0 */
	size_t long_bytes;	/* bytes of candidates over the maximum width */
	size_t odd_bytes;	/* bytes of entries that are odd anyway */
	size_t odd_count;
};

void crl_index_init(struct crl_index *ix)
{
	memset(ix, 0, sizeof(*ix));
}

void crl_index_cleanup(struct crl_index *ix)
{
	xfree(ix->plain);
	xfree(ix->odd);
	xfree(ix->odd_blob);
	xfree(ix->build);
	memset(ix, 0, sizeof(*ix));
}

static bool is_plain_kind(uint8_t flags, uint8_t issuer)
{
	return flags == 0 && issuer == 0;
}

void crl_index_count(struct crl_index *ix, const struct crl_index_entry *e)
{
	struct crl_index_build *b = ix->build;

	if (!b && !ix->build_oom) {
		b = ix->build = xcalloc(1, sizeof(*b));
		ix->build_oom = !b;
	}
	if (!b)
		return;	/* crl_index_alloc says so */
	if (!is_plain_kind(e->flags, e->issuer)) {
		b->odd_count++;
		b->odd_bytes += e->len;
	} else if (e->len > CRL_INDEX_WIDTH_MAX) {
		b->odd_count++;
		b->long_bytes += e->len;
	} else {
		b->hist[e->len]++;
		b->first[e->len][e->bytes[0]]++;
	}
}

int crl_index_alloc(struct crl_index *ix)
{
	struct crl_index_build *b = ix->build;
	size_t best = 0, best_cost = (size_t)-1, below = 0, n = 0, at = 0;

	if (ix->build_oom)
		return -ENOMEM;
	if (!b)
		return 0;	/* no entries */
	/* cost(w) = w * (candidates of length <= w)
	 *         + (8 + length) * (longer candidates) */
	for (size_t w = 0; w <= CRL_INDEX_WIDTH_MAX; w++) {
		size_t cost, above_bytes = 0, above = 0;

		below += b->hist[w];
		for (size_t l = w + 1; l <= CRL_INDEX_WIDTH_MAX; l++) {
			above += b->hist[l];
			above_bytes += b->hist[l] * l;
		}
		cost = w * below + above * ODD_OVERHEAD + above_bytes;
		if (cost < best_cost) {
			best_cost = cost;
			best = w;
			n = below;
		}
	}
	ix->width = n ? best : 0;
	ix->plain_cap = n;
	ix->odd_cap = b->odd_count;
	ix->blob_cap = b->odd_bytes + b->long_bytes;
	for (size_t l = best + 1; l <= CRL_INDEX_WIDTH_MAX; l++) {
		ix->odd_cap += b->hist[l];
		ix->blob_cap += b->hist[l] * l;
	}
	/* byte 0 of a padded entry: 0 when shorter than the width */
	for (unsigned c = 0; c < 256; c++) {
		size_t cnt = n ? b->first[ix->width][c] : 0;

		if (c == 0)
			for (size_t l = 1; l < ix->width; l++)
				cnt += b->hist[l];
		b->next[c] = at;
		at += cnt;
		b->end[c] = at;
	}
	if (ix->plain_cap) {
		ix->plain = xmalloc(ix->plain_cap * ix->width);
		if (!ix->plain)
			return -ENOMEM;
	}
	if (ix->odd_cap) {
		ix->odd = xcalloc(ix->odd_cap, sizeof(*ix->odd));
		ix->odd_blob = xmalloc(ix->blob_cap ? ix->blob_cap : 1);
		if (!ix->odd || !ix->odd_blob)
			return -ENOMEM;
	}
	return 0;
}

int crl_index_put(struct crl_index *ix, const struct crl_index_entry *e)
{
	struct crl_index_build *b = ix->build;
	const unsigned char *p = e->bytes;
	size_t len = e->len;
	struct crl_serial *s;

	if (!b)
		return -EINVAL;
	while (len > 1 && p[0] == 0) {
		p++;
		len--;
	}
	if (is_plain_kind(e->flags, e->issuer) && len <= ix->width) {
		unsigned c = len < ix->width ? 0 : p[0];
		unsigned char *slot;

		if (b->next[c] == b->end[c])
			return -EINVAL;
		slot = ix->plain + b->next[c]++ * ix->width;
		memset(slot, 0, ix->width - len);
		memcpy(slot + ix->width - len, p, len);
		ix->n++;
		return 0;
	}
	if (len > UINT16_MAX)	/* as long as a look-up compares */
		len = UINT16_MAX;
	if (ix->nodd == ix->odd_cap || len > ix->blob_cap - ix->blob_len)
		return -EINVAL;
	s = &ix->odd[ix->nodd++];
	s->off = (uint32_t)ix->blob_len;
	s->len = (uint16_t)len;
	s->flags = e->flags;
	s->issuer = e->issuer;
	memcpy(ix->odd_blob + ix->blob_len, p, len);
	ix->blob_len += len;
	return 0;
}

/* ---- sorting the plain array: MSD radix sort in place ---- */

/* Records are short and of one width: compare and copy them 8 bytes at a
 * time (memcmp/memcpy with a variable size are calls, and were half of
 * the parse time of a 1,000,000-entry CRL). */
static inline int rec_cmp(const unsigned char *a, const unsigned char *b,
			  size_t from, size_t w)
{
	size_t i = from;

	for (; i + 8 <= w; i += 8) {
		uint64_t x, y;

		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			return be64toh(x) < be64toh(y) ? -1 : 1;
	}
	for (; i < w; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

static inline void rec_copy(unsigned char *dst, const unsigned char *src,
			    size_t w)
{
	size_t i = 0;

	for (; i + 8 <= w; i += 8)
		memcpy(dst + i, src + i, 8);
	for (; i < w; i++)
		dst[i] = src[i];
}

static void insertion_sort(unsigned char *base, size_t n, size_t w, size_t d)
{
	unsigned char t[CRL_INDEX_WIDTH_MAX];

	for (size_t i = 1; i < n; i++) {
		unsigned char *x = base + i * w;
		size_t j = i;

		if (rec_cmp(x - w, x, d, w) <= 0)
			continue;
		rec_copy(t, x, w);
		while (j > 0 && rec_cmp(base + (j - 1) * w, t, d, w) > 0) {
			rec_copy(base + j * w, base + (j - 1) * w, w);
			j--;
		}
		rec_copy(base + j * w, t, w);
	}
}

/* American flag sort (McIlroy, Bostic, McIlroy 1993): bucket by byte d,
 * permuting records in place, then each bucket by byte d + 1. No extra
 * memory but 2 KiB of counters per level (at most `width` levels): a
 * million random 16-byte serials take two levels, then small buckets are
 * finished by insertion. */
static void radix_sort(unsigned char *base, size_t n, size_t w, size_t d)
{
	uint32_t count[256], next[256];

	for (;;) {
		uint32_t s = 0;

		if (n < 24) {
			insertion_sort(base, n, w, d);
			return;
		}
		if (d == w)
			return;
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[base[i * w + d]]++;
		if (count[base[d]] == n) {	/* one bucket: next byte */
			d++;
			continue;
		}
		for (unsigned b = 0; b < 256; b++) {
			next[b] = s;
			s += count[b];
		}
		s = 0;
		for (unsigned b = 0; b < 256; b++) {
			uint32_t end = s + count[b];

			while (next[b] < end) {
				unsigned char *r = base + (size_t)next[b] * w;
				unsigned c = r[d];
				unsigned char t[CRL_INDEX_WIDTH_MAX];
				unsigned char *o;

				if (c == b) {
					next[b]++;
					continue;
				}
				o = base + (size_t)next[c]++ * w;
				rec_copy(t, r, w);
				rec_copy(r, o, w);
				rec_copy(o, t, w);
			}
			s = end;
		}
		s = 0;
		for (unsigned b = 0; b < 256; b++) {
			if (count[b] > 1)
				radix_sort(base + (size_t)s * w, count[b], w,
					   d + 1);
			s += count[b];
		}
		return;
	}
}

static int cmp_odd(const void *a, const void *b, void *arg)
{
	const struct crl_serial *x = a, *y = b;
	const unsigned char *blob = arg;
	int c;

	if ((x->flags & CRL_SERIAL_NEGATIVE) != (y->flags & CRL_SERIAL_NEGATIVE))
		return (x->flags & CRL_SERIAL_NEGATIVE) ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	c = memcmp(blob + x->off, blob + y->off, x->len);
	if (c)
		return c;
	if (x->issuer != y->issuer)
		return (int)x->issuer - (int)y->issuer;
	return (int)x->flags - (int)y->flags;
}

int crl_index_finish(struct crl_index *ix)
{
	struct crl_index_build *b = ix->build;
	size_t w = ix->width;

	if (ix->n != ix->plain_cap || ix->nodd != ix->odd_cap)
		return -EINVAL;
	for (unsigned c = 0; b && ix->n && c < 256; c++) {
		size_t start = c ? b->end[c - 1] : 0, cnt = b->end[c] - start;
		unsigned char *base = ix->plain + start * w;
		bool sorted = true;

		/* a CA that numbers serially lists them in order: no work */
		for (size_t i = 1; i < cnt && sorted; i++)
			sorted = rec_cmp(base + (i - 1) * w, base + i * w, 1, w) <= 0;
		if (!sorted)
			radix_sort(base, cnt, w, 1);
	}
	if (ix->nodd > 1)
		qsort_r(ix->odd, ix->nodd, sizeof(*ix->odd), cmp_odd,
			ix->odd_blob);
	xfree(ix->build);
	ix->build = NULL;
	return 0;
}

size_t crl_index_size(const struct crl_index *ix)
{
	return ix->n + ix->nodd;
}

size_t crl_index_bytes(const struct crl_index *ix)
{
	return ix->plain_cap * ix->width + ix->odd_cap * sizeof(*ix->odd) +
	       ix->blob_cap;
}

void crl_index_at(const struct crl_index *ix, size_t i,
		  struct crl_index_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (i < ix->n) {
		const unsigned char *p = ix->plain + i * ix->width;
		size_t len = ix->width;

		while (len > 1 && p[0] == 0) {
			p++;
			len--;
		}
		e->bytes = p;
		e->len = len;
		return;
	}
	i -= ix->n;
	if (i < ix->nodd) {
		const struct crl_serial *s = &ix->odd[i];

		e->bytes = ix->odd_blob + s->off;
		e->len = s->len;
		e->flags = s->flags;
		e->issuer = s->issuer;
	}
}

int crl_index_find(const struct crl_index *ix, const unsigned char *bytes,
		   size_t len, bool negative, uint8_t issuer, bool *removed)
{
	uint8_t neg = negative ? CRL_SERIAL_NEGATIVE : 0;
	size_t lo = 0, hi = ix->n;

	*removed = false;
	while (len > 1 && bytes[0] == 0) {
		bytes++;
		len--;
	}
	if (!negative && issuer == 0 && len <= ix->width && ix->n) {
		unsigned char key[CRL_INDEX_WIDTH_MAX];
		size_t w = ix->width;

		memset(key, 0, w - len);
		memcpy(key + w - len, bytes, len);
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c = rec_cmp(ix->plain + mid * w, key, 0, w);

			if (c == 0)
				return 1;
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	/* odd entries: lower bound of the serial, then scan its issuers */
	lo = 0;
	hi = ix->nodd;
	if (len > UINT16_MAX)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct crl_serial *s = &ix->odd[mid];
		int c;

		if ((s->flags & CRL_SERIAL_NEGATIVE) != neg)
			c = (s->flags & CRL_SERIAL_NEGATIVE) ? -1 : 1;
		else if (s->len != len)
			c = s->len < len ? -1 : 1;
		else
			c = memcmp(ix->odd_blob + s->off, bytes, len);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < ix->nodd; i++) {
		const struct crl_serial *s = &ix->odd[i];

		if ((s->flags & CRL_SERIAL_NEGATIVE) != neg || s->len != len ||
		    memcmp(ix->odd_blob + s->off, bytes, len) != 0)
			break;
		if (s->issuer == issuer) {
			/* flags sort last: a plain listing comes first */
			*removed = (s->flags & CRL_SERIAL_REMOVE) != 0;
			return 1;
		}
	}
	return 0;
}
