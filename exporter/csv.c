#include "csv.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xalloc.h"

const char *partner_type_str(enum partner_type t)
{
	switch (t) {
	case PARTNER_FED:
		return "FED";
	case PARTNER_SIP:
		return "SIP";
	case PARTNER_SIPINT:
		return "SIPINT";
	case PARTNER_DIR:
		return "DIR";
	}
	return "?";
}

int csv_record(const char **pp, const char *end, char fields[][CSV_MAX_FIELD],
	       int max, unsigned *lines, const char **err)
{
	const char *p = *pp;
	int nf = 0;

	for (;;) {
		char tmp[CSV_MAX_FIELD];
		size_t len = 0;
		bool quoted = false, overflow = false;

		/* leading blanks before a quote are tolerated */
		while (p < end && (*p == ' ' || *p == '\t') && p + 1 < end &&
		       p[1] == '"')
			p++;
		if (p < end && *p == '"') {
			quoted = true;
			p++;
			for (;;) {
				if (p >= end) {
					*err = "unterminated quoted field";
					*pp = end;
					return -EINVAL;
				}
				if (*p == '"') {
					if (p + 1 < end && p[1] == '"') {
						p += 2;
						if (len < sizeof(tmp) - 1)
							tmp[len++] = '"';
						else
							overflow = true;
						continue;
					}
					p++;
					break;
				}
				if (*p == '\n')
					(*lines)++;
				if (len < sizeof(tmp) - 1)
					tmp[len++] = *p;
				else
					overflow = true;
				p++;
			}
		}
		/* unquoted text (or text after a closing quote) up to , or EOL */
		while (p < end && *p != ',' && *p != '\n' && *p != '\r') {
			if (len < sizeof(tmp) - 1)
				tmp[len++] = *p;
			else
				overflow = true;
			p++;
		}
		tmp[len] = '\0';
		(void)quoted;
		if (overflow) {
			*err = "field too long";
			while (p < end && *p != '\n')
				p++;
			if (p < end) {
				p++;
				(*lines)++;
			}
			*pp = p;
			return -EINVAL;
		}
		if (nf < max)
			memcpy(fields[nf], tmp, len + 1);
		nf++;
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		/* end of record: CRLF, LF, lone CR or end of data */
		if (p < end && *p == '\r')
			p++;
		if (p < end && *p == '\n')
			p++;
		(*lines)++;
		*pp = p;
		return nf;
	}
}

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
}

/* A DNS name or IP literal as it may appear in the Domain column. */
static bool domain_ok(const char *d)
{
	size_t n = strlen(d);

	if (n == 0 || n > 253)
		return false;
	for (const char *c = d; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.' &&
		    *c != '_' && *c != ':' && *c != '[' && *c != ']')
			return false;
	return true;
}

static int row_target(char f[][CSV_MAX_FIELD], int nf, enum partner_type *tp,
		      char **target, const char **err)
{
	static const struct {
		const char *name;
		enum partner_type t;
		const char *srv;
	} types[] = {
		{"FED", PARTNER_FED, "_sipfederationtls._tcp."},
		{"SIP", PARTNER_SIP, "_sip._tls."},
		{"SIPINT", PARTNER_SIPINT, "_sipinternaltls._tcp."},
		{"DIR", PARTNER_DIR, NULL},
	};
	const char *domain = f[0], *type = nf > 1 ? f[1] : "",
		   *port = nf > 2 ? f[2] : "";
	size_t k;

	if (nf > 3) {
		/* a trailing comma or empty columns are fine, data is not */
		for (int i = 3; i < nf && i < 8; i++)
			if (f[i][0]) {
				*err = "more than 3 columns";
				return -EINVAL;
			}
	}
	if (!domain_ok(domain)) {
		*err = domain[0] ? "invalid domain" : "empty domain";
		return -EINVAL;
	}
	for (k = 0; k < sizeof(types) / sizeof(types[0]); k++)
		if (strcasecmp(type, types[k].name) == 0)
			break;
	if (k == sizeof(types) / sizeof(types[0])) {
		*err = "type must be FED, SIP, SIPINT or DIR";
		return -EINVAL;
	}
	*tp = types[k].t;
	if (port[0]) {
		char *e;
		long v = strtol(port, &e, 10);

		if (*e || v < 1 || v > 65535) {
			*err = "port must be 1-65535";
			return -EINVAL;
		}
	}
	if (types[k].srv) {
		/* SRV records give the ports; a Port column is ignored */
		*target = xasprintf("%s%s", types[k].srv, domain);
	} else {
		/* DIR without a port: SIP over TLS */
		*target = xasprintf("%s:%s", domain, port[0] ? port : "5061");
	}
	return *target ? 0 : -ENOMEM;
}

int partners_load(const char *path, struct partner_row **rowsp, size_t *np,
		  struct buf *skipped, unsigned *nskipped)
{
	char fields[8][CSV_MAX_FIELD];
	struct partner_row *rows = NULL;
	size_t n = 0, cap = 0, len = 0;
	unsigned line = 1;
	struct buf text;
	char chunk[8192];
	const char *p, *end;
	FILE *f;
	size_t got;
	bool header = true;
	int rc = 0;

	*rowsp = NULL;
	*np = 0;
	*nskipped = 0;
	f = fopen(path, "rb");
	if (!f) {
		rc = -errno;
		buf_printf(skipped, "%s: cannot open: %s\n", path, strerror(errno));
		return rc;
	}
	buf_init(&text, CSV_MAX_BYTES);
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(&text, chunk, got))
			break;
	fclose(f);
	if (text.err) {
		rc = text.err;
		buf_printf(skipped, "%s: %s\n", path,
			   rc == -E2BIG ? "file larger than 16 MiB"
					: "out of memory");
		buf_cleanup(&text);
		return rc;
	}
	p = text.data ? text.data : "";
	len = text.len;
	end = p + len;
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;	/* UTF-8 byte-order mark, as Excel writes it */

	while (p < end) {
		unsigned at = line;
		const char *err = NULL;
		char *target = NULL;
		enum partner_type t;
		int nf = csv_record(&p, end, fields, 8, &line, &err);

		if (nf < 0) {
			buf_printf(skipped, "%s:%u: %s\n", path, at, err);
			(*nskipped)++;
			continue;
		}
		for (int i = 0; i < nf && i < 8; i++)
			trim(fields[i]);
		if (nf == 1 && fields[0][0] == '\0')
			continue;	/* blank line */
		if (fields[0][0] == '#')
			continue;	/* comment */
		if (header) {
			header = false;
			if (strcasecmp(fields[0], "Domain") == 0)
				continue;
		}
		rc = row_target(fields, nf, &t, &target, &err);
		if (rc == -ENOMEM)
			goto nomem;
		if (rc) {
			buf_printf(skipped, "%s:%u: %s\n", path, at, err);
			(*nskipped)++;
			rc = 0;
			continue;
		}
		if (xgrow((void **)&rows, &cap, n + 1, sizeof(*rows))) {
			xfree(target);
			goto nomem;
		}
		rows[n].line = at;
		rows[n].type = t;
		rows[n].target = target;
		rows[n].domain = xstrdup(fields[0]);
		rows[n].port = xstrdup(nf > 2 ? fields[2] : "");
		n++;
		if (!rows[n - 1].domain || !rows[n - 1].port)
			goto nomem;
	}
	buf_cleanup(&text);
	*rowsp = rows;
	*np = n;
	return 0;
nomem:
	buf_cleanup(&text);
	partner_rows_free(rows, n);
	return -ENOMEM;
}

void partner_rows_free(struct partner_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		xfree(rows[i].target);
		xfree(rows[i].domain);
		xfree(rows[i].port);
	}
	xfree(rows);
}
