/* Capped growing byte buffer (after curl's dynbuf): every append checks the
 * cap, and a failed append frees the contents so a half-written body never
 * escapes. buf_init cannot fail. */
#ifndef PKI_BUF_H
#define PKI_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;	/* NUL-terminated while len > 0 */
	size_t len;
	size_t cap;
	size_t max;	/* hard limit on len */
	int err;	/* sticky: -ENOMEM or -E2BIG after a failed append */
};

void buf_init(struct buf *b, size_t max);
void buf_cleanup(struct buf *b);
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Hand the contents to the caller (who frees with xfree); buffer is reset. */
char *buf_steal(struct buf *b, size_t *len);

#endif
