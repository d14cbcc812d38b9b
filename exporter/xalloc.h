/* Allocation wrappers: every allocation in the exporter goes through here so
 * that tests can make the Nth call fail (see xalloc_fail_after). They return
 * NULL on failure like malloc; callers handle it. */
#ifndef PKI_XALLOC_H
#define PKI_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grow an array to hold at least `need` elements of `size`; doubles. On
 * failure the old array is left untouched and -ENOMEM returned. */
int xgrow(void **arr, size_t *cap, size_t need, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string, NULL on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xfree(void *p);

/* Test hook: the n-th allocation from now (1-based) and every later one
 * fail; n = 0 turns failure injection off. Not thread-safe by design. */
void xalloc_fail_after(unsigned long n);

#endif
