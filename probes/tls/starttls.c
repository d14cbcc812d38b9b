/* STARTTLS for SMTP, IMAP, POP3, FTP, LDAP and XMPP on a non-blocking fd.
 *
 * The one rule that shapes everything here: after the server's last
 * plaintext reply, the next byte on the socket belongs to the TLS
 * handshake, so we must never read past that reply. Text protocols are
 * read by peeking (MSG_PEEK) for the end of the unit (a line; for XMPP,
 * the '>' that closes a tag) and then consuming exactly that many bytes;
 * LDAP is read by its BER length. Nothing is buffered beyond the current
 * unit, so there is nothing to hand over to OpenSSL afterwards.
 *
 * Every unit is capped at UNIT_MAX and all plaintext at TOTAL_MAX, so a
 * server that talks forever costs bounded memory and ends in a reason. */
#include "starttls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "exporter/xalloc.h"

#define UNIT_MAX 8192		/* one line / XMPP tag / LDAP message */
#define TOTAL_MAX 65536		/* all plaintext read before TLS */
#define OUT_MAX 512		/* longest command: the XMPP stream header */
#define ERR_MAX 200		/* starttls_error(), NUL included */
#define EXCERPT_MAX 64		/* server bytes quoted in a reason */
#define HOST_MAX 255

enum phase {
	PH_GREETING = 0,	/* SMTP/FTP/IMAP/POP3 banner */
	PH_EHLO,		/* SMTP: the EHLO reply (capabilities) */
	PH_REPLY,		/* the reply to the STARTTLS command itself */
	PH_FEATURES,		/* XMPP: stream header and features */
	PH_PROCEED,		/* XMPP: <starttls/> sent, until <proceed> */
	PH_PROCEED_END,		/* XMPP: </proceed> after <proceed> */
	PH_STREAM_ERROR,	/* XMPP: the condition inside <stream:error> */
	PH_DONE,
	PH_FAILED,
};

struct starttls {
	enum starttls_proto proto;
	enum phase phase;
	char host[HOST_MAX + 1];
	bool host_ok;

	/* pending command; flushed before anything is read */
	char out[OUT_MAX];
	size_t outlen, outoff;

	/* the unit being read, NUL-terminated when complete */
	char unit[UNIT_MAX + 1];
	size_t unitlen;
	size_t total;		/* plaintext bytes consumed so far */

	int ml_code;		/* FTP: code of an open multi-line reply */
	bool has_starttls;	/* SMTP: seen in the EHLO reply */

	/* XMPP: where the scanner is inside the markup, kept across
	 * partial reads so a '>' inside a quoted attribute value does not
	 * end a tag */
	bool in_tag;
	char quote;

	/* LDAP: bytes wanted in unit[], and whether that is the whole
	 * message yet or only its header */
	size_t want;
	bool len_known;

	char err[ERR_MAX];
};

static const char *const proto_names[] = {
	[STARTTLS_NONE] = "none", [STARTTLS_SMTP] = "smtp",
	[STARTTLS_IMAP] = "imap", [STARTTLS_POP3] = "pop3",
	[STARTTLS_FTP] = "ftp",	  [STARTTLS_LDAP] = "ldap",
	[STARTTLS_XMPP] = "xmpp",
};

#define NPROTO (sizeof(proto_names) / sizeof(proto_names[0]))

/* RFC 4511 4.14.1: LDAPMessage { messageID 1, extendedReq [APPLICATION 23]
 * { requestName [0] "1.3.6.1.4.1.1466.20037" } }. */
static const unsigned char ldap_starttls_req[] = {
	0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16,
	'1', '.', '3', '.', '6', '.', '1', '.', '4', '.', '1', '.',
	'1', '4', '6', '6', '.', '2', '0', '0', '3', '7',
};

int starttls_proto_parse(const char *s, enum starttls_proto *out)
{
	if (!s)
		return -EINVAL;
	for (size_t i = STARTTLS_SMTP; i < NPROTO; i++) {
		if (strcmp(s, proto_names[i]) == 0) {
			*out = (enum starttls_proto)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *starttls_proto_str(enum starttls_proto p)
{
	if ((size_t)p >= NPROTO)
		return "unknown";
	return proto_names[p];
}

/* ---- reasons ---- */

/* Copy at most EXCERPT_MAX bytes of server text into dst as printable
 * ASCII: reasons end up in labels and logs, where a raw CR, ESC or NUL
 * from a hostile server must not go. */
static void excerpt(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t i;

	if (n > EXCERPT_MAX)
		n = EXCERPT_MAX;
	for (i = 0; i < n && i + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (dstlen)
		dst[i] = '\0';
}

/* Set the reason ("<proto>: ...") and enter PH_FAILED; always -1 so
 * callers can `return fail(...)`. */
static int fail(struct starttls *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(struct starttls *st, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(st->err, sizeof(st->err), "%s: ",
		     starttls_proto_str(st->proto));
	if (n < 0 || (size_t)n >= sizeof(st->err))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(st->err + n, sizeof(st->err) - (size_t)n, fmt, ap);
	va_end(ap);
	/* strerror() text and the host are already clean, but the reason
	 * is an output: make the guarantee in one place */
	for (char *c = st->err; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	st->phase = PH_FAILED;
	return -1;
}

/* "unexpected reply to EHLO: 554 5.7.1 go away" */
static int fail_reply(struct starttls *st, const char *what)
{
	char ex[EXCERPT_MAX + 1];

	excerpt(ex, sizeof(ex), st->unit, st->unitlen);
	if (!what)
		return fail(st, "unexpected greeting: %s", ex);
	return fail(st, "unexpected reply to %s: %s", what, ex);
}

/* ---- construction ---- */

/* The announced name goes verbatim into a command line (EHLO) or an XML
 * attribute (to=''), so only characters that can break neither are let
 * through; anything else is refused rather than escaped. */
static bool host_usable(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_' || c == ':' || c == '%'))
			return false;
	}
	return true;
}

/* Queue a command: it goes out before anything more is read. */
static int queue(struct starttls *st, const void *p, size_t n)
{
	if (n > sizeof(st->out))
		return fail(st, "command too long");
	memcpy(st->out, p, n);
	st->outlen = n;
	st->outoff = 0;
	return 0;
}

static int queuef(struct starttls *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int queuef(struct starttls *st, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(st->out, sizeof(st->out), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(st->out))
		return fail(st, "command too long");
	st->outlen = (size_t)n;
	st->outoff = 0;
	return 0;
}

/* RFC 5321 4.1.3: an address in EHLO is a bracketed literal. */
static int queue_ehlo(struct starttls *st)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, st->host, a) == 1)
		return queuef(st, "EHLO [%s]\r\n", st->host);
	if (inet_pton(AF_INET6, st->host, a) == 1)
		return queuef(st, "EHLO [IPv6:%s]\r\n", st->host);
	return queuef(st, "EHLO %s\r\n", st->host);
}

/* host may be NULL ("localhost" is announced). An unusable host is not an
 * allocation failure: the first starttls_step() reports it. */
struct starttls *starttls_new(enum starttls_proto p, const char *host)
{
	struct starttls *st;

	st = xcalloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->proto = p;
	st->phase = PH_GREETING;
	if (!host || !*host)
		host = "localhost";
	st->host_ok = host_usable(host);
	if (st->host_ok)
		snprintf(st->host, sizeof(st->host), "%s", host);

	switch (p) {
	case STARTTLS_SMTP:
	case STARTTLS_IMAP:
	case STARTTLS_POP3:
	case STARTTLS_FTP:
		/* the server speaks first */
		break;
	case STARTTLS_LDAP:
		queue(st, ldap_starttls_req, sizeof(ldap_starttls_req));
		st->phase = PH_REPLY;
		st->want = 2;	/* tag and first length octet */
		break;
	case STARTTLS_XMPP:
		if (!st->host_ok)
			break;
		queuef(st,
		       "<?xml version='1.0'?><stream:stream "
		       "xmlns='jabber:client' "
		       "xmlns:stream='http://etherx.jabber.org/streams' "
		       "to='%s' version='1.0'>",
		       st->host);
		st->phase = PH_FEATURES;
		break;
	default:
		fail(st, "unsupported protocol");
		return st;
	}
	/* LDAP never sends the name */
	if (!st->host_ok && p != STARTTLS_LDAP)
		fail(st, "host name not usable in %s",
		     p == STARTTLS_XMPP ? "the stream header" : "a command");
	return st;
}

void starttls_free(struct starttls *st)
{
	xfree(st);
}

const char *starttls_error(const struct starttls *st)
{
	if (!st || st->phase != PH_FAILED)
		return "";
	return st->err;
}

/* ---- I/O ---- */

/* Send what is queued. 0: all sent; 1: the socket is full; -1: failed. */
static int flush(struct starttls *st, int fd)
{
	while (st->outoff < st->outlen) {
		ssize_t n = send(fd, st->out + st->outoff,
				 st->outlen - st->outoff, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			/* the same event as EOF on recv, seen from the
			 * other side: report it the same way */
			if (errno == EPIPE)
				return fail(st, "server closed the connection");
			return fail(st, "send: %s", strerror(errno));
		}
		st->outoff += (size_t)n;
	}
	st->outlen = st->outoff = 0;
	return 0;
}

/* recv() that retries EINTR. >0: bytes; 0: would block; -1: failed
 * (EOF included: a server that hangs up mid-exchange is a failure). */
static ssize_t rd(struct starttls *st, int fd, void *p, size_t n, int flags)
{
	ssize_t r;

	do
		r = recv(fd, p, n, flags);
	while (r == -1 && errno == EINTR);
	if (r > 0)
		return r;
	if (r == 0)
		return fail(st, "server closed the connection");
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	return fail(st, "recv: %s", strerror(errno));
}

/* Where the current unit ends within p[0..n): the index just past its
 * terminator, or 0 if it does not end there. Advances the XMPP scanner
 * state in *in_tag / *quote. */
static size_t unit_end(const struct starttls *st, bool *in_tag, char *quote,
		       const char *p, size_t n)
{
	const char *nl;

	if (st->proto != STARTTLS_XMPP) {
		nl = memchr(p, '\n', n);
		return nl ? (size_t)(nl - p) + 1 : 0;
	}
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (!*in_tag) {
			if (c == '<')
				*in_tag = true;
		} else if (*quote) {
			if (c == *quote)
				*quote = '\0';
		} else if (c == '\'' || c == '"') {
			*quote = c;
		} else if (c == '>') {
			*in_tag = false;
			return i + 1;
		}
	}
	return 0;
}

/* Read one line (one tag for XMPP) into st->unit without consuming a
 * byte past its end. 1: complete; 0: would block; -1: failed. */
static int read_unit(struct starttls *st, int fd)
{
	for (;;) {
		size_t room = UNIT_MAX - st->unitlen, k, got;
		char *at = st->unit + st->unitlen;
		bool in_tag = st->in_tag;
		char quote = st->quote;
		ssize_t n;

		if (room > TOTAL_MAX - st->total)
			room = TOTAL_MAX - st->total;
		if (room == 0) {
			if (st->unitlen == UNIT_MAX)
				return fail(st, "%s longer than %d bytes",
					    st->proto == STARTTLS_XMPP
						    ? "element"
						    : "line",
					    UNIT_MAX);
			return fail(st, "more than %d bytes before TLS",
				    TOTAL_MAX);
		}
		n = rd(st, fd, at, room, MSG_PEEK);
		if (n <= 0)
			return (int)n;
		k = unit_end(st, &in_tag, &quote, at, (size_t)n);
		/* no terminator yet: everything peeked is still this unit,
		 * so taking it is safe and keeps a level-triggered poll
		 * from spinning on bytes we refuse to consume */
		n = rd(st, fd, at, k ? k : (size_t)n, 0);
		if (n <= 0)
			return (int)n;
		got = (size_t)n;
		/* rescan what was really consumed: recv may return less
		 * than it peeked */
		k = unit_end(st, &st->in_tag, &st->quote, at, got);
		st->unitlen += got;
		st->total += got;
		if (k) {
			st->unit[st->unitlen] = '\0';
			return 1;
		}
	}
}

/* ---- SMTP and FTP: three-digit replies ---- */

/* "250-text", "250 text" or "250": code and whether more lines follow.
 * -1 if the line is not shaped like that. */
static int reply_code(const char *l, size_t n, int *code, bool *more)
{
	if (n < 3 || l[0] < '0' || l[0] > '9' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9')
		return -1;
	if (n > 3 && l[3] != ' ' && l[3] != '-')
		return -1;
	*code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	*more = n > 3 && l[3] == '-';
	return 0;
}

/* One line of a reply that must carry `expect`. *final is set on its last
 * line. SMTP (RFC 5321 4.2.1) repeats the code on every line; FTP (RFC
 * 959 4.2) only on the first and last, with free text between, and may
 * send 1yz preliminary replies before the real one. */
static int reply_line(struct starttls *st, int expect, const char *what,
		      bool *final)
{
	const char *l = st->unit;
	size_t n = st->unitlen;
	bool more;
	int code;

	*final = false;
	if (st->proto == STARTTLS_FTP && st->ml_code) {
		if (reply_code(l, n, &code, &more) == 0 && !more &&
		    code == st->ml_code) {
			st->ml_code = 0;
			*final = true;
		}
		return 0;
	}
	if (reply_code(l, n, &code, &more) == -1)
		return fail_reply(st, what);
	if (st->proto == STARTTLS_FTP && code >= 100 && code < 200)
		return 0;	/* "120 ready in 5 minutes": keep waiting */
	if (code != expect)
		return fail_reply(st, what);
	if (more) {
		if (st->proto == STARTTLS_FTP)
			st->ml_code = code;
		return 0;
	}
	*final = true;
	return 0;
}

/* The EHLO keyword of a 250 line ("250-STARTTLS", "250 starttls"). */
static bool smtp_is_starttls(const char *l, size_t n)
{
	const char *kw = l + 4;
	size_t kn;

	if (n <= 4)
		return false;
	while (*kw == ' ')
		kw++;
	kn = strcspn(kw, " ");
	return kn == 8 && strncasecmp(kw, "STARTTLS", 8) == 0;
}

static int smtp_line(struct starttls *st)
{
	bool final;

	switch (st->phase) {
	case PH_GREETING:
		if (reply_line(st, 220, NULL, &final))
			return -1;
		if (!final)
			return 0;
		st->phase = PH_EHLO;
		return queue_ehlo(st);
	case PH_EHLO:
		if (reply_line(st, 250, "EHLO", &final))
			return -1;
		if (smtp_is_starttls(st->unit, st->unitlen))
			st->has_starttls = true;
		if (!final)
			return 0;
		if (!st->has_starttls)
			return fail(st, "server does not offer STARTTLS");
		st->phase = PH_REPLY;
		return queuef(st, "STARTTLS\r\n");
	case PH_REPLY:
		if (reply_line(st, 220, "STARTTLS", &final))
			return -1;
		if (final)
			st->phase = PH_DONE;
		return 0;
	default:
		return fail(st, "internal state error");
	}
}

static int ftp_line(struct starttls *st)
{
	bool final;

	switch (st->phase) {
	case PH_GREETING:
		if (reply_line(st, 220, NULL, &final))
			return -1;
		if (!final)
			return 0;
		st->phase = PH_REPLY;
		return queuef(st, "AUTH TLS\r\n");
	case PH_REPLY:
		if (reply_line(st, 234, "AUTH TLS", &final))
			return -1;
		if (final)
			st->phase = PH_DONE;
		return 0;
	default:
		return fail(st, "internal state error");
	}
}

/* ---- IMAP and POP3 ---- */

/* l starts with word (case-insensitive) followed by a space or the end. */
static bool starts_word(const char *l, const char *word)
{
	size_t n = strlen(word);

	return strncasecmp(l, word, n) == 0 && (l[n] == ' ' || l[n] == '\0');
}

static int imap_line(struct starttls *st)
{
	const char *l = st->unit;

	switch (st->phase) {
	case PH_GREETING:
		/* RFC 9051 7.1.4: PREAUTH means no STARTTLS; BYE is a no */
		if (strncmp(l, "* ", 2) != 0 || !starts_word(l + 2, "OK"))
			return fail_reply(st, NULL);
		st->phase = PH_REPLY;
		return queuef(st, "a001 STARTTLS\r\n");
	case PH_REPLY:
		if (strncmp(l, "* ", 2) == 0 && !starts_word(l + 2, "BYE"))
			return 0;	/* untagged data, e.g. CAPABILITY */
		if (strncmp(l, "a001 ", 5) == 0 && starts_word(l + 5, "OK")) {
			st->phase = PH_DONE;
			return 0;
		}
		return fail_reply(st, "STARTTLS");
	default:
		return fail(st, "internal state error");
	}
}

static int pop3_line(struct starttls *st)
{
	switch (st->phase) {
	case PH_GREETING:
		if (!starts_word(st->unit, "+OK"))
			return fail_reply(st, NULL);
		st->phase = PH_REPLY;
		return queuef(st, "STLS\r\n");
	case PH_REPLY:
		if (!starts_word(st->unit, "+OK"))
			return fail_reply(st, "STLS");
		st->phase = PH_DONE;
		return 0;
	default:
		return fail(st, "internal state error");
	}
}

/* ---- XMPP (RFC 6120 5.4.2) ---- */

/* The element name of the first start tag in the unit, for reasons. */
static void xmpp_tag_name(const struct starttls *st, char *dst, size_t len)
{
	const char *lt = strchr(st->unit, '<');
	size_t n;

	if (!lt || len == 0) {
		if (len)
			dst[0] = '\0';
		return;
	}
	lt++;
	n = strcspn(lt, " \t\r\n/>");
	excerpt(dst, len, lt, n);
}

/* The unit (which always ends in '>') closes an empty element: "<a/>". */
static bool self_closed(const struct starttls *st)
{
	return st->unitlen >= 2 && st->unit[st->unitlen - 2] == '/';
}

static int xmpp_unit(struct starttls *st)
{
	const char *u = st->unit;
	char name[EXCERPT_MAX + 1];

	switch (st->phase) {
	case PH_STREAM_ERROR:
		xmpp_tag_name(st, name, sizeof(name));
		return fail(st, "stream error: %s",
			    name[0] && name[0] != '/' ? name : "(none)");
	case PH_PROCEED_END:
		if (!strstr(u, "</proceed"))
			return fail_reply(st, "starttls");
		st->phase = PH_DONE;
		return 0;
	case PH_FEATURES:
	case PH_PROCEED:
		break;
	default:
		return fail(st, "internal state error");
	}
	if (strstr(u, "<stream:error")) {
		if (self_closed(st))
			return fail(st, "stream error");
		st->phase = PH_STREAM_ERROR;
		return 0;
	}
	if (strstr(u, "</stream:stream"))
		return fail(st, "server closed the stream");
	if (st->phase == PH_PROCEED) {
		/* the rest of the features comes first and is skipped */
		if (strstr(u, "<proceed")) {
			/* a self-closed <proceed/> ends the plaintext here;
			 * <proceed ...></proceed> one tag later */
			st->phase = self_closed(st) ? PH_DONE : PH_PROCEED_END;
			return 0;
		}
		if (strstr(u, "<failure"))
			return fail(st, "server refused STARTTLS");
		return 0;
	}
	/* Sent as soon as it is offered: the server reads it only after
	 * its own </stream:features>, and waiting for that would mean
	 * recognising every prefix a server may give the features. */
	if (strstr(u, "<starttls")) {
		st->phase = PH_PROCEED;
		return queuef(st, "<starttls "
				  "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	}
	if (strstr(u, "</stream:features") ||
	    (strstr(u, "<stream:features") && self_closed(st)))
		return fail(st, "server does not offer STARTTLS");
	return 0;
}

/* ---- LDAP (RFC 4511 4.14) ---- */

/* One BER TLV from (*p, *n) (single-octet tags, definite lengths of up to
 * four octets, which covers everything an LDAP server sends). */
static int ber_next(const unsigned char **p, size_t *n, unsigned *tag,
		    const unsigned char **val, size_t *vlen)
{
	size_t len, off = 2;
	const unsigned char *b = *p;

	if (*n < 2 || (b[0] & 0x1f) == 0x1f)
		return -1;
	len = b[1];
	if (len & 0x80) {
		size_t nb = len & 0x7f;

		if (nb == 0 || nb > 4 || *n < 2 + nb)
			return -1;
		len = 0;
		for (size_t i = 0; i < nb; i++)
			len = (len << 8) | b[2 + i];
		off += nb;
	}
	if (len > *n - off)
		return -1;
	*tag = b[0];
	*val = b + off;
	*vlen = len;
	*p += off + len;
	*n -= off + len;
	return 0;
}

/* An INTEGER/ENUMERATED of at most four octets, sign-extended. */
static int ber_int(const unsigned char *v, size_t n, long *out)
{
	long x;

	if (n == 0 || n > 4)
		return -1;
	x = (v[0] & 0x80) ? -1 : 0;
	for (size_t i = 0; i < n; i++)
		x = (long)(((unsigned long)x << 8) | v[i]);
	*out = x;
	return 0;
}

static int ldap_message(struct starttls *st)
{
	const unsigned char *p = (const unsigned char *)st->unit, *v, *op;
	const unsigned char *diag = NULL;
	size_t n = st->unitlen, vn, opn, diagn = 0;
	unsigned tag;
	long msgid, result;
	char ex[EXCERPT_MAX + 1];

	/* LDAPMessage ::= SEQUENCE { messageID, protocolOp, controls } */
	if (ber_next(&p, &n, &tag, &v, &vn) || tag != 0x30)
		return fail(st, "malformed response");
	p = v;
	n = vn;
	if (ber_next(&p, &n, &tag, &v, &vn) || tag != 0x02 ||
	    ber_int(v, vn, &msgid))
		return fail(st, "malformed messageID");
	if (ber_next(&p, &n, &tag, &op, &opn))
		return fail(st, "malformed response");
	/* ExtendedResponse ::= [APPLICATION 24] SEQUENCE { resultCode,
	 * matchedDN, diagnosticMessage, ... } */
	if (tag != 0x78)
		return fail(st, "unexpected response (tag 0x%02x)", tag);
	if (ber_next(&op, &opn, &tag, &v, &vn) || tag != 0x0a ||
	    ber_int(v, vn, &result))
		return fail(st, "malformed resultCode");
	if (ber_next(&op, &opn, &tag, &v, &vn) == 0 && tag == 0x04 &&
	    ber_next(&op, &opn, &tag, &v, &vn) == 0 && tag == 0x04) {
		diag = v;
		diagn = vn;
	}
	excerpt(ex, sizeof(ex), (const char *)diag, diag ? diagn : 0);
	/* messageID 0 is an unsolicited notification (4.4.1): the server
	 * is hanging up on us */
	if (msgid == 0)
		return fail(st, "notice of disconnection, resultCode %ld%s%s",
			    result, ex[0] ? ": " : "", ex);
	if (msgid != 1)
		return fail(st, "unexpected messageID %ld", msgid);
	if (result != 0)
		return fail(st, "resultCode %ld%s%s", result,
			    ex[0] ? ": " : "", ex);
	st->phase = PH_DONE;
	return 0;
}

/* Having read st->want bytes: 1 if that is the whole message, 0 if more
 * are wanted now that the length is known, -1 on a bad header. */
static int ldap_header(struct starttls *st)
{
	const unsigned char *u = (const unsigned char *)st->unit;
	size_t len, nb;

	if (st->len_known)
		return 1;
	if (u[0] != 0x30)
		return fail(st, "not an LDAP message (first byte 0x%02x)",
			    u[0]);
	if (!(u[1] & 0x80)) {
		len = u[1];
	} else {
		/* 0x80 alone is the indefinite form, which LDAP forbids
		 * (RFC 4511 5.1) */
		nb = u[1] & 0x7f;
		if (nb == 0 || nb > 4)
			return fail(st, "unsupported BER length");
		if (st->unitlen < 2 + nb) {
			st->want = 2 + nb;
			return 0;
		}
		len = 0;
		for (size_t i = 0; i < nb; i++)
			len = (len << 8) | u[2 + i];
	}
	if (len > UNIT_MAX - st->unitlen)
		return fail(st, "response longer than %d bytes", UNIT_MAX);
	st->want = st->unitlen + len;
	st->len_known = true;
	return st->want == st->unitlen;
}

/* Read exactly one BER-framed LDAPMessage: first the tag and length,
 * then exactly the length announced, so nothing past it is consumed. */
static int ldap_read(struct starttls *st, int fd)
{
	for (;;) {
		ssize_t n;
		int rc;

		if (st->unitlen == st->want) {
			rc = ldap_header(st);
			if (rc)
				return rc;
			continue;
		}
		n = rd(st, fd, st->unit + st->unitlen, st->want - st->unitlen,
		       0);
		if (n <= 0)
			return (int)n;
		st->unitlen += (size_t)n;
		st->total += (size_t)n;
	}
}

/* ---- the driver ---- */

static int on_unit(struct starttls *st)
{
	if (st->proto == STARTTLS_LDAP)
		return ldap_message(st);
	if (st->proto == STARTTLS_XMPP)
		return xmpp_unit(st);
	/* text protocols: the terminator is not part of the line */
	while (st->unitlen &&
	       (st->unit[st->unitlen - 1] == '\n' ||
		st->unit[st->unitlen - 1] == '\r'))
		st->unit[--st->unitlen] = '\0';
	switch (st->proto) {
	case STARTTLS_SMTP:
		return smtp_line(st);
	case STARTTLS_FTP:
		return ftp_line(st);
	case STARTTLS_IMAP:
		return imap_line(st);
	case STARTTLS_POP3:
		return pop3_line(st);
	default:
		return fail(st, "unsupported protocol");
	}
}

/* Runs the exchange as far as the socket allows: send what is queued,
 * then read and act on one unit at a time, until the socket would block
 * or the last reply is in. */
enum starttls_status starttls_step(struct starttls *st, int fd)
{
	int rc;

	for (;;) {
		if (st->phase == PH_DONE)
			return STARTTLS_DONE;
		if (st->phase == PH_FAILED)
			return STARTTLS_FAILED;
		rc = flush(st, fd);
		if (rc > 0)
			return STARTTLS_WANT_WRITE;
		if (rc < 0)
			return STARTTLS_FAILED;
		if (st->proto == STARTTLS_LDAP)
			rc = ldap_read(st, fd);
		else
			rc = read_unit(st, fd);
		if (rc == 0)
			return STARTTLS_WANT_READ;
		if (rc < 0)
			return STARTTLS_FAILED;
		on_unit(st);
		st->unitlen = 0;
		st->unit[0] = '\0';
	}
}
