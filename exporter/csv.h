/* Partner lists: the CSV files UC admins keep for federation checks,
 * header "Domain,Type,Port", rows like "contoso.com,FED," — read the way
 * spreadsheets write them (UTF-8 BOM, CRLF, quoted fields, trailing
 * commas). Hand-written because the format is tiny and libcsv is not a
 * Debian -dev package; RFC 4180 quoting rules. */
#ifndef PKI_CSV_H
#define PKI_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define CSV_MAX_BYTES (16 * 1024 * 1024)
#define CSV_MAX_FIELD 1024

enum partner_type {
	PARTNER_FED = 0,	/* _sipfederationtls._tcp.<domain> */
	PARTNER_SIP,		/* _sip._tls.<domain> */
	PARTNER_SIPINT,		/* _sipinternaltls._tcp.<domain> */
	PARTNER_DIR,		/* <domain>:<port> directly */
};

struct partner_row {
	unsigned line;		/* 1-based line in the file */
	enum partner_type type;
	char *target;		/* the probe target string, owned */
	char *domain;		/* the row as written, owned */
	char *port;		/* "" when empty, owned */
};

const char *partner_type_str(enum partner_type t);

/* Split one CSV record starting at *p (which is advanced past it and its
 * line end) into at most `max` fields (copied, NUL-terminated, each at most
 * CSV_MAX_FIELD-1 bytes, into fields[i]). Returns the field count, or
 * -EINVAL with a reason in err for an unterminated quote or an over-long
 * field. *lines is increased by the line ends consumed (quoted fields may
 * span lines). */
int csv_record(const char **p, const char *end, char fields[][CSV_MAX_FIELD],
	       int max, unsigned *lines, const char **err);

/* Read a partner list. Good rows go to *rows (owned; free with
 * partner_rows_free); each malformed row is described in `skipped` as
 * "file:line: reason\n" and left out. Returns 0, or -errno when the file
 * itself cannot be read (reason in `skipped`). */
int partners_load(const char *path, struct partner_row **rows, size_t *n,
		  struct buf *skipped, unsigned *nskipped);
void partner_rows_free(struct partner_row *rows, size_t n);

#endif
