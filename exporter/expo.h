/* The metric set of one scrape and its rendering in the Prometheus text
 * format 0.0.4. All escaping lives here.
 *
 * Probes append samples with expo_add(); labels are escaped once, at add
 * time. Rendering groups each family (HELP, TYPE, then its samples), orders
 * families by name and samples by (order, insertion), so the output is
 * stable whatever order concurrent probes finished in. */
#ifndef PKI_EXPO_H
#define PKI_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum metric_type {
	METRIC_GAUGE = 0,
	METRIC_COUNTER,
};

/* Static description of a family; probes keep these as file-level consts. */
struct metric_desc {
	const char *name;
	const char *help;
	enum metric_type type;
};

struct expo_sample {
	uint32_t order;	/* caller's sort key: target index in the config */
	uint32_t seq;	/* insertion sequence, breaks ties */
	const char *labels;	/* "{a=\"b\"}" or "", in its family's chunks */
	double value;
};

/* Label strings are packed into chunks owned by their family and freed
 * with it. One malloc per sample kept each string in the 256- or 512-byte
 * buffer it was escaped into: 7.3 MB for the 3.5 MB of labels of 1,000
 * TLS targets. */
struct expo_chunk;

struct expo_family {
	const struct metric_desc *desc;
	struct expo_sample *samples;
	size_t n, cap;
	struct expo_chunk *chunks;	/* the first is the one being filled */
};

struct expo_set {
	struct expo_family *fams;
	size_t nfam, capfam;
	size_t bytes;	/* label bytes held, bounded by max_bytes */
	size_t max_bytes;
	uint32_t seq;
	int err;	/* sticky first error */
	struct buf scratch;	/* one label set while it is escaped */
};

const char *metric_type_str(enum metric_type t);

void expo_set_init(struct expo_set *set, size_t max_bytes);
void expo_set_cleanup(struct expo_set *set);

/* Append one sample. The variadic part is name/value string pairs ended
 * by NULL; NULL values are rendered as "". Returns 0 or -ENOMEM/-E2BIG
 * (the error also sticks in set->err). */
int expo_add(struct expo_set *set, const struct metric_desc *desc,
	     uint32_t order, double value, ...) __attribute__((sentinel));
int expo_addv(struct expo_set *set, const struct metric_desc *desc,
	      uint32_t order, double value, size_t nlabels,
	      const char *const *names, const char *const *values);

/* Move every sample of `src` into `dst` (src is left empty). */
int expo_merge(struct expo_set *dst, struct expo_set *src);

/* Render the whole set as text format 0.0.4 into `out`. The samples are
 * consumed (each family freed once written); the set stays valid and
 * empty. */
int expo_render(struct expo_set *set, struct buf *out);

/* The same text, read piece by piece (an HTTP body that never exists in
 * one piece): about `chunk` bytes are rendered at a time, always whole
 * lines, and handed out by expo_stream_read in whatever sizes the reader
 * asks for. The bytes are those of expo_render, and the set is spent the
 * same way as it is read. */
struct expo_stream {
	struct expo_set *set;	/* borrowed; must outlive the stream */
	struct buf pending;	/* rendered, not yet read */
	size_t off;		/* read position in pending */
	size_t chunk;
	size_t fam, sample;	/* next to render */
	bool sorted;		/* families put in order */
	bool head;		/* HELP and TYPE of fams[fam] written */
	int err;		/* sticky */
};

/* Cannot fail; nothing is rendered before the first read. */
void expo_stream_init(struct expo_stream *st, struct expo_set *set,
		      size_t chunk);
void expo_stream_cleanup(struct expo_stream *st);
/* Copy up to max (> 0) bytes of the text to dst and set *n to how many;
 * *n = 0 means the end. Returns 0, the set's sticky error, or -ENOMEM/
 * -E2BIG from rendering; an error sticks and no more text follows. */
int expo_stream_read(struct expo_stream *st, char *dst, size_t max,
		     size_t *n);

/* Escaping helpers, exposed for tests and other renderers. Label values:
 * \ " LF become \\ \" \n; invalid UTF-8 becomes U+FFFD. HELP: \ and LF. */
int expo_escape_label_value(struct buf *out, const char *s);
int expo_escape_help(struct buf *out, const char *s);
/* Whether s[0..n) is valid UTF-8 (no overlongs, surrogates or code points
 * beyond U+10FFFF). */
bool expo_utf8_valid(const char *s, size_t n);
/* Shortest text that reads back as the same double; NaN, +Inf, -Inf. */
void expo_format_value(char *dst, size_t len, double v);

#endif
