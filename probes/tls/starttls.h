/* STARTTLS: the plaintext exchange that upgrades a connection to TLS for
 * SMTP, IMAP, POP3, FTP, LDAP and XMPP, driven on a non-blocking socket by
 * the tls probe's event loop. Never blocks; every read is bounded. */
#ifndef PKI_STARTTLS_H
#define PKI_STARTTLS_H

#include <stddef.h>

enum starttls_proto {
	STARTTLS_NONE = 0,
	STARTTLS_SMTP,
	STARTTLS_IMAP,
	STARTTLS_POP3,
	STARTTLS_FTP,
	STARTTLS_LDAP,
	STARTTLS_XMPP,
};

enum starttls_status {
	STARTTLS_DONE = 0,	/* the next byte on the wire is TLS */
	STARTTLS_WANT_READ,	/* call again when the fd is readable */
	STARTTLS_WANT_WRITE,	/* call again when the fd is writable */
	STARTTLS_FAILED,	/* see starttls_error() */
};

struct starttls;

/* "smtp", "imap", "pop3", "ftp", "ldap", "xmpp" -> proto; -EINVAL else. */
int starttls_proto_parse(const char *s, enum starttls_proto *out);
const char *starttls_proto_str(enum starttls_proto p);

/* host: the name to announce (EHLO argument, XMPP to=). NULL on ENOMEM. */
struct starttls *starttls_new(enum starttls_proto p, const char *host);
void starttls_free(struct starttls *st);

/* Advance the exchange on the connected non-blocking fd. Reads never
 * consume bytes past the server's final plaintext reply, so the TLS
 * handshake can start on the same fd. */
enum starttls_status starttls_step(struct starttls *st, int fd);

/* A short, bounded reason after STARTTLS_FAILED, e.g. "smtp: server does
 * not offer STARTTLS" or "ldap: resultCode 2". */
const char *starttls_error(const struct starttls *st);

#endif
