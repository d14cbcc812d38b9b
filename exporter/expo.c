#include "expo.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define EXPO_MAX_LABELS 32
/* Label chunks grow from MIN to MAX bytes: a family of one sample wastes
 * little, a family of thousands costs one malloc per ~100 samples, and at
 * most one MAX chunk per family and shard is part empty. */
#define EXPO_CHUNK_MIN 512
#define EXPO_CHUNK_MAX 16384

struct expo_chunk {
	struct expo_chunk *next;
	size_t used, size;	/* of data */
	char data[];
};

const char *metric_type_str(enum metric_type t)
{
	switch (t) {
	case METRIC_GAUGE:
		return "gauge";
	case METRIC_COUNTER:
		return "counter";
	}
	return "untyped";
}

void expo_set_init(struct expo_set *set, size_t max_bytes)
{
	memset(set, 0, sizeof(*set));
	set->max_bytes = max_bytes;
	buf_init(&set->scratch, max_bytes);
}

/* Drop a family's samples and the chunks their labels live in; the family
 * stays, empty. */
static void family_spent(struct expo_family *f)
{
	struct expo_chunk *c = f->chunks, *next;

	for (; c; c = next) {
		next = c->next;
		xfree(c);
	}
	f->chunks = NULL;
	xfree(f->samples);
	f->samples = NULL;
	f->n = 0;
	f->cap = 0;
}

void expo_set_cleanup(struct expo_set *set)
{
	for (size_t i = 0; i < set->nfam; i++)
		family_spent(&set->fams[i]);
	xfree(set->fams);
	buf_cleanup(&set->scratch);
	expo_set_init(set, set->max_bytes);
}

/* Room for n bytes in f's chunks, or NULL when out of memory. */
static char *family_alloc(struct expo_family *f, size_t n)
{
	struct expo_chunk *c = f->chunks;
	size_t size;
	bool own;
	char *p;

	if (c && c->size - c->used >= n) {
		p = c->data + c->used;
		c->used += n;
		return p;
	}
	size = c ? 2 * (c->size + sizeof(*c)) : EXPO_CHUNK_MIN;
	if (size > EXPO_CHUNK_MAX)
		size = EXPO_CHUNK_MAX;
	size -= sizeof(*c);
	own = size < n;
	if (own)
		size = n;
	c = xmalloc(sizeof(*c) + size);
	if (!c)
		return NULL;
	c->used = n;
	c->size = size;
	if (f->chunks && own) {
		/* a label set bigger than a chunk gets its own, behind the
		 * one being filled, whose free room stays usable */
		c->next = f->chunks->next;
		f->chunks->next = c;
	} else {
		c->next = f->chunks;
		f->chunks = c;
	}
	return c->data;
}

static struct expo_family *family_get(struct expo_set *set,
				      const struct metric_desc *desc)
{
	struct expo_family *f;

	/* Few families per scrape (tens): a linear scan on the descriptor
	 * pointer beats hashing names. */
	for (size_t i = set->nfam; i > 0; i--)
		if (set->fams[i - 1].desc == desc)
			return &set->fams[i - 1];
	if (xgrow((void **)&set->fams, &set->capfam, set->nfam + 1,
		  sizeof(*set->fams)))
		return NULL;
	f = &set->fams[set->nfam++];
	memset(f, 0, sizeof(*f));
	f->desc = desc;
	return f;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid or cut
 * short by the end of the avail bytes. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return avail >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (avail < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0;	/* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0;	/* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (avail < 4 || (s[1] & 0xc0) != 0x80 ||
		    (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0;
		if (c == 0xf4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

bool expo_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	while (p < end) {
		size_t k;

		if (*p < 0x80) {	/* ASCII runs: the common case */
			p++;
			continue;
		}
		k = utf8_seq_len(p, (size_t)(end - p));
		if (!k)
			return false;
		p += k;
	}
	return true;
}

int expo_escape_label_value(struct buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t run = 0, n;

		/* copy the longest stretch that needs no escaping at once */
		while (p[run] && p[run] != '\\' && p[run] != '"' &&
		       p[run] != '\n' && p[run] < 0x80)
			run++;
		if (run) {
			buf_append(out, p, run);
			p += run;
			continue;
		}
		switch (*p) {
		case '\\':
			buf_puts(out, "\\\\");
			p++;
			continue;
		case '"':
			buf_puts(out, "\\\"");
			p++;
			continue;
		case '\n':
			buf_puts(out, "\\n");
			p++;
			continue;
		}
		n = utf8_seq_len(p, 4);	/* NUL-terminated: stops at the NUL */
		if (n == 0) {
			buf_puts(out, "\xef\xbf\xbd");	/* U+FFFD */
			p++;
		} else {
			buf_append(out, p, n);
			p += n;
		}
	}
	return out->err;
}

int expo_escape_help(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(out, "\\\\");
		else if (*s == '\n')
			buf_puts(out, "\\n");
		else
			buf_putc(out, *s);
	}
	return out->err;
}

void expo_format_value(char *dst, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(dst, len, "NaN");
	} else if (isinf(v)) {
		snprintf(dst, len, v > 0 ? "+Inf" : "-Inf");
	} else if (fabs(v) < 1e15 && v == (double)(long long)v) {
		snprintf(dst, len, "%lld", (long long)v);
	} else {
		/* shortest of %.15g..%.17g that reads back exactly */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(dst, len, "%.*g", prec, v);
			if (strtod(dst, NULL) == v)
				break;
		}
	}
}

static int set_fail(struct expo_set *set, int err)
{
	if (!set->err)
		set->err = err;
	return err;
}

int expo_addv(struct expo_set *set, const struct metric_desc *desc,
	      uint32_t order, double value, size_t nlabels,
	      const char *const *names, const char *const *values)
{
	struct expo_family *f;
	struct expo_sample *s;
	struct buf *lb = &set->scratch;
	char *labels;

	if (set->err)
		return set->err;
	f = family_get(set, desc);
	if (!f || xgrow((void **)&f->samples, &f->cap, f->n + 1,
			sizeof(*f->samples)))
		return set_fail(set, -ENOMEM);

	/* the scratch buffer keeps its memory from sample to sample; only
	 * its cap follows what the set may still take */
	buf_reset(lb);
	lb->max = set->bytes < set->max_bytes ? set->max_bytes - set->bytes : 0;
	for (size_t i = 0; i < nlabels; i++) {
		buf_putc(lb, i == 0 ? '{' : ',');
		buf_puts(lb, names[i]);
		buf_puts(lb, "=\"");
		expo_escape_label_value(lb, values[i] ? values[i] : "");
		buf_putc(lb, '"');
	}
	if (nlabels)
		buf_putc(lb, '}');
	if (lb->err)
		return set_fail(set, lb->err);

	labels = family_alloc(f, lb->len + 1);
	if (!labels)
		return set_fail(set, -ENOMEM);
	if (lb->len)
		memcpy(labels, lb->data, lb->len);
	labels[lb->len] = '\0';
	set->bytes += lb->len + 64;
	s = &f->samples[f->n];
	s->labels = labels;
	s->order = order;
	s->seq = set->seq++;
	s->value = value;
	f->n++;
	return 0;
}

int expo_add(struct expo_set *set, const struct metric_desc *desc,
	     uint32_t order, double value, ...)
{
	const char *names[EXPO_MAX_LABELS], *values[EXPO_MAX_LABELS];
	size_t n = 0;
	const char *name;
	va_list ap;

	va_start(ap, value);
	while ((name = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);

		if (n < EXPO_MAX_LABELS) {
			names[n] = name;
			values[n] = val;
			n++;
		}
	}
	va_end(ap);
	return expo_addv(set, desc, order, value, n, names, values);
}

int expo_merge(struct expo_set *dst, struct expo_set *src)
{
	if (src->bytes > dst->max_bytes - (dst->bytes < dst->max_bytes ?
					   dst->bytes : dst->max_bytes)) {
		expo_set_cleanup(src);
		return set_fail(dst, -E2BIG);
	}
	for (size_t i = 0; i < src->nfam; i++) {
		struct expo_family *sf = &src->fams[i];
		struct expo_family *df = family_get(dst, sf->desc);

		if (!df || xgrow((void **)&df->samples, &df->cap,
				 df->n + sf->n, sizeof(*df->samples)))
			return set_fail(dst, -ENOMEM);
		for (size_t j = 0; j < sf->n; j++) {
			df->samples[df->n] = sf->samples[j];
			df->samples[df->n].seq = dst->seq++;
			df->n++;
		}
		sf->n = 0;
		/* on success, the labels' chunks are owned by df: put behind
		 * df's first, which stays the one being filled */
		if (sf->chunks) {
			struct expo_chunk *last = sf->chunks;

			while (last->next)
				last = last->next;
			if (df->chunks) {
				last->next = df->chunks->next;
				df->chunks->next = sf->chunks;
			} else {
				df->chunks = sf->chunks;
			}
			sf->chunks = NULL;
		}
	}
	dst->bytes += src->bytes;
	if (src->err)
		set_fail(dst, src->err);
	expo_set_cleanup(src);
	return dst->err;
}

static int cmp_family(const void *a, const void *b)
{
	const struct expo_family *fa = a, *fb = b;

	return strcmp(fa->desc->name, fb->desc->name);
}

static int cmp_sample(const void *a, const void *b)
{
	const struct expo_sample *sa = a, *sb = b;

	if (sa->order != sb->order)
		return sa->order < sb->order ? -1 : 1;
	if (sa->seq != sb->seq)
		return sa->seq < sb->seq ? -1 : 1;
	return 0;
}

/* Append whole lines of the text to `out` from where `st` stands until
 * out holds at least `want` bytes or the set is spent. expo_render and
 * expo_stream_read both go through here, so their bytes cannot differ. */
static int render_some(struct expo_stream *st, struct buf *out, size_t want)
{
	struct expo_set *set = st->set;
	char val[64];

	if (set->err)
		return set->err;
	if (!st->sorted) {
		if (set->nfam)
			qsort(set->fams, set->nfam, sizeof(*set->fams),
			      cmp_family);
		st->sorted = true;
	}
	while (st->fam < set->nfam && out->len < want && !out->err) {
		struct expo_family *f = &set->fams[st->fam];
		struct expo_sample *s;

		if (st->sample == f->n) {
			/* written, the family goes at once: a scrape that
			 * streams its body gives memory back as it is read
			 * (an empty family gets no HELP or TYPE either) */
			family_spent(f);
			st->fam++;
			st->sample = 0;
			st->head = false;
			continue;
		}
		if (!st->head) {
			qsort(f->samples, f->n, sizeof(*f->samples),
			      cmp_sample);
			buf_printf(out, "# HELP %s ", f->desc->name);
			expo_escape_help(out, f->desc->help);
			buf_printf(out, "\n# TYPE %s %s\n", f->desc->name,
				   metric_type_str(f->desc->type));
			st->head = true;
			continue;
		}
		s = &f->samples[st->sample++];
		expo_format_value(val, sizeof(val), s->value);
		buf_puts(out, f->desc->name);
		buf_puts(out, s->labels);
		buf_putc(out, ' ');
		buf_puts(out, val);
		buf_putc(out, '\n');
	}
	return out->err;
}

int expo_render(struct expo_set *set, struct buf *out)
{
	struct expo_stream st;
	int rc;

	expo_stream_init(&st, set, 0);
	rc = render_some(&st, out, SIZE_MAX);
	expo_stream_cleanup(&st);
	return rc;
}

void expo_stream_init(struct expo_stream *st, struct expo_set *set,
		      size_t chunk)
{
	memset(st, 0, sizeof(*st));
	st->set = set;
	st->chunk = chunk ? chunk : 1;
	/* a render stops after the line that reaches `chunk`, and no line
	 * is longer than the labels the set's own cap lets in */
	buf_init(&st->pending, set->max_bytes > SIZE_MAX / 2 - st->chunk
				       ? SIZE_MAX / 2
				       : set->max_bytes + st->chunk + 4096);
}

void expo_stream_cleanup(struct expo_stream *st)
{
	buf_cleanup(&st->pending);
	st->off = 0;
}

int expo_stream_read(struct expo_stream *st, char *dst, size_t max,
		     size_t *n)
{
	size_t k;

	*n = 0;
	if (st->err)
		return st->err;
	if (st->off == st->pending.len) {
		buf_reset(&st->pending);
		st->off = 0;
		st->err = render_some(st, &st->pending, st->chunk);
		if (st->err) {
			buf_cleanup(&st->pending);
			return st->err;
		}
	}
	k = st->pending.len - st->off;
	if (k > max)
		k = max;
	if (k)
		memcpy(dst, st->pending.data + st->off, k);
	st->off += k;
	*n = k;
	return 0;
}
