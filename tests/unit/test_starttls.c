/* STARTTLS exchanges against a scripted peer: a thread on the other end of
 * a socketpair sends and expects exact bytes while the test drives
 * starttls_step() with poll(), as the tls probe's event loop would. The
 * peer writes each protocol's final reply together with bytes that stand
 * in for the TLS handshake; those must still be in the socket after
 * STARTTLS_DONE. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "exporter/xalloc.h"
#include "probes/tls/starttls.h"

#define TIMEOUT_MS 5000

/* ---- the scripted peer ---- */

enum act_kind {
	A_SEND = 0,	/* write the bytes in one send() */
	A_SEND_SLOW,	/* one byte per send(), with a pause between */
	A_EXPECT,	/* read exactly len bytes; they must match */
	A_SKIP,		/* read and drop peer.skip bytes */
	A_CLOSE,	/* hang up here */
};

struct act {
	enum act_kind kind;
	const char *data;
	size_t len;
};

#define SEND(s) {A_SEND, (s), sizeof(s) - 1}
#define SLOW(s) {A_SEND_SLOW, (s), sizeof(s) - 1}
#define EXPECT(s) {A_EXPECT, (s), sizeof(s) - 1}
#define CLOSE {A_CLOSE, NULL, 0}

struct peer {
	int fd;
	const struct act *acts;
	size_t nacts;
	size_t skip;
	char err[512];	/* first mismatch, asserted by the main thread */
};

static void peer_errf(struct peer *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

static int read_exact(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct timeval tv = {TIMEOUT_MS / 1000, 0};
	char buf[4096];

	setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (size_t i = 0; i < p->nacts; i++) {
		const struct act *a = &p->acts[i];
		char *got;

		switch (a->kind) {
		case A_SEND:
			/* may fail once the client gave up: not a mismatch */
			for (size_t off = 0; off < a->len;) {
				ssize_t r = send(p->fd, a->data + off,
						 a->len - off, MSG_NOSIGNAL);

				if (r <= 0)
					goto out;
				off += (size_t)r;
			}
			break;
		case A_SEND_SLOW:
			for (size_t off = 0; off < a->len; off++) {
				if (send(p->fd, a->data + off, 1,
					 MSG_NOSIGNAL) != 1)
					goto out;
				usleep(200);
			}
			break;
		case A_EXPECT:
			got = calloc(1, a->len + 1);
			if (!got || read_exact(p->fd, got, a->len)) {
				peer_errf(p, "step %zu: expected %zu bytes, "
					  "got EOF/timeout", i, a->len);
				free(got);
				goto out;
			}
			if (memcmp(got, a->data, a->len) != 0)
				peer_errf(p, "step %zu: expected '%.*s', got "
					  "'%.*s'", i, (int)a->len, a->data,
					  (int)a->len, got);
			free(got);
			if (p->err[0])
				goto out;
			break;
		case A_SKIP:
			usleep(50 * 1000);	/* let the client block */
			for (size_t left = p->skip; left;) {
				size_t n = left < sizeof(buf) ? left
							      : sizeof(buf);

				if (read_exact(p->fd, buf, n)) {
					peer_errf(p, "step %zu: skip", i);
					goto out;
				}
				left -= n;
			}
			break;
		case A_CLOSE:
			goto out;
		}
	}
	/* hold the connection until the client is done with it, so that
	 * "extra bytes still there" is not confused with EOF */
	while (recv(p->fd, buf, sizeof(buf), 0) > 0)
		;
out:
	close(p->fd);
	return NULL;
}

/* ---- the client side ---- */

struct result {
	enum starttls_status status;
	char reason[256];
	unsigned want_writes;
	char left[256];		/* still in the socket after DONE */
	size_t leftlen;
};

/* A reason must be short and free of control characters whatever the
 * server sent. */
static void assert_reason_clean(const char *r)
{
	assert_true(strlen(r) < 200);
	for (const char *c = r; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			fail_msg("control byte 0x%02x in reason '%s'",
				 (unsigned char)*c, r);
}

/* Before the exchange, fill the client's send buffer so its first send
 * would block; returns how many bytes the peer must skip. */
static size_t fill_sendbuf(int fd)
{
	static char junk[4096];
	size_t total = 0;

	for (;;) {
		ssize_t r = send(fd, junk, sizeof(junk), MSG_DONTWAIT);

		if (r <= 0)
			break;
		total += (size_t)r;
	}
	return total;
}

static void run(enum starttls_proto proto, const char *host,
		const struct act *acts, size_t nacts, bool fill,
		struct result *res)
{
	struct peer peer = {0};
	struct starttls *st;
	pthread_t th;
	int sv[2];
	time_t start = time(NULL);

	memset(res, 0, sizeof(*res));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* the peer blocks, the client never does */
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	if (fill)
		peer.skip = fill_sendbuf(sv[0]);
	peer.fd = sv[1];
	peer.acts = acts;
	peer.nacts = nacts;
	assert_int_equal(pthread_create(&th, NULL, peer_main, &peer), 0);

	st = starttls_new(proto, host);
	assert_non_null(st);
	for (;;) {
		struct pollfd pfd = {.fd = sv[0]};
		enum starttls_status s = starttls_step(st, sv[0]);

		if (s == STARTTLS_DONE || s == STARTTLS_FAILED) {
			res->status = s;
			break;
		}
		if (s == STARTTLS_WANT_WRITE)
			res->want_writes++;
		pfd.events = s == STARTTLS_WANT_READ ? POLLIN : POLLOUT;
		if (poll(&pfd, 1, TIMEOUT_MS) != 1)
			fail_msg("client stuck waiting (%s)", peer.err);
		if (time(NULL) - start > 10)
			fail_msg("exchange takes too long");
	}
	snprintf(res->reason, sizeof(res->reason), "%s", starttls_error(st));
	assert_reason_clean(res->reason);
	/* stepping again repeats the answer */
	assert_int_equal(starttls_step(st, sv[0]), res->status);
	starttls_free(st);
	if (res->status == STARTTLS_DONE) {
		/* the peer sent the extra bytes with its final reply, in
		 * the same send(): they are in the socket already */
		ssize_t n = recv(sv[0], res->left, sizeof(res->left) - 1,
				 MSG_DONTWAIT);

		res->leftlen = n > 0 ? (size_t)n : 0;
	}
	close(sv[0]);
	pthread_join(th, NULL);
	if (peer.err[0])
		fail_msg("peer: %s", peer.err);
}

#define RUN(proto, host, acts, res) \
	run((proto), (host), (acts), sizeof(acts) / sizeof((acts)[0]), false, \
	    (res))

/* What stands in for the server's first TLS bytes. */
#define TLS_BYTES "\x16\x03\x01\x00\x05hello"

static void assert_done_with_extra(const struct result *r)
{
	if (r->status != STARTTLS_DONE)
		fail_msg("expected DONE, got %d: %s", r->status, r->reason);
	assert_string_equal(r->reason, "");
	assert_int_equal(r->leftlen, sizeof(TLS_BYTES) - 1);
	assert_memory_equal(r->left, TLS_BYTES, sizeof(TLS_BYTES) - 1);
}

static void assert_failed(const struct result *r, const char *reason)
{
	if (r->status != STARTTLS_FAILED)
		fail_msg("expected FAILED (%s), got %d", reason, r->status);
	assert_string_equal(r->reason, reason);
}

/* ---- names ---- */

static void test_proto_names(void **state)
{
	static const char *names[] = {"smtp", "imap", "pop3",
				      "ftp",  "ldap", "xmpp"};
	enum starttls_proto p;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(starttls_proto_parse(names[i], &p), 0);
		assert_string_equal(starttls_proto_str(p), names[i]);
	}
	assert_int_equal(starttls_proto_parse("SMTP", &p), -EINVAL);
	assert_int_equal(starttls_proto_parse("none", &p), -EINVAL);
	assert_int_equal(starttls_proto_parse("", &p), -EINVAL);
	assert_int_equal(starttls_proto_parse(NULL, &p), -EINVAL);
	assert_string_equal(starttls_proto_str(STARTTLS_NONE), "none");
	assert_string_equal(starttls_proto_str((enum starttls_proto)99),
			    "unknown");
}

static void test_new_enomem(void **state)
{
	struct starttls *st;

	(void)state;
	xalloc_fail_after(1);
	st = starttls_new(STARTTLS_SMTP, "a.test");
	xalloc_fail_after(0);
	assert_null(st);
	starttls_free(NULL);
}

/* A name that could smuggle a command or break the XML is refused
 * before anything is sent. */
static void test_bad_host(void **state)
{
	static const struct act none[] = {CLOSE};
	struct result r;

	(void)state;
	RUN(STARTTLS_SMTP, "a.test\r\nRSET", none, &r);
	assert_failed(&r, "smtp: host name not usable in a command");
	RUN(STARTTLS_XMPP, "a'b", none, &r);
	assert_failed(&r, "xmpp: host name not usable in the stream header");
	RUN(STARTTLS_NONE, "a.test", none, &r);
	assert_failed(&r, "none: unsupported protocol");
}

/* ---- SMTP ---- */

static void test_smtp_good(void **state)
{
	static const struct act acts[] = {
		SEND("220-mail.test ESMTP\r\n220-more banner\r\n220 ready\r\n"),
		EXPECT("EHLO client.test\r\n"),
		SEND("250-mail.test hello\r\n250-PIPELINING\r\n"
		     "250-starttls\r\n250 8BITMIME\r\n"),
		EXPECT("STARTTLS\r\n"),
		SEND("220 2.0.0 Ready to start TLS\r\n" TLS_BYTES),
	};
	struct result r;

	(void)state;
	RUN(STARTTLS_SMTP, "client.test", acts, &r);
	assert_done_with_extra(&r);
}

/* Every reply arrives a byte at a time. */
static void test_smtp_slow(void **state)
{
	static const struct act acts[] = {
		SLOW("220 mail.test ESMTP\r\n"),
		EXPECT("EHLO localhost\r\n"),
		SLOW("250-mail.test\r\n250 STARTTLS\r\n"),
		EXPECT("STARTTLS\r\n"),
		SEND("220 go ahead\n" TLS_BYTES),
	};
	struct result r;

	(void)state;
	RUN(STARTTLS_SMTP, NULL, acts, &r);
	assert_done_with_extra(&r);
}

static void test_smtp_ip_literal(void **state)
{
	static const struct act v4[] = {
		SEND("220 x\r\n"), EXPECT("EHLO [127.0.0.1]\r\n"), CLOSE};
	static const struct act v6[] = {
		SEND("220 x\r\n"), EXPECT("EHLO [IPv6:::1]\r\n"), CLOSE};
	struct result r;

	(void)state;
	RUN(STARTTLS_SMTP, "127.0.0.1", v4, &r);
	assert_failed(&r, "smtp: server closed the connection");
	RUN(STARTTLS_SMTP, "::1", v6, &r);
	assert_failed(&r, "smtp: server closed the connection");
}

static void test_smtp_no_starttls(void **state)
{
	/* neither XSTARTTLS nor STARTTLSX is the keyword */
	static const struct act acts[] = {
		SEND("220 mail.test\r\n"),
		EXPECT("EHLO c.test\r\n"),
		SEND("250-mail.test\r\n250-XSTARTTLS\r\n250-SIZE 1000\r\n"
		     "250 STARTTLSX\r\n"),
	};
	struct result r;

	(void)state;
	RUN(STARTTLS_SMTP, "c.test", acts, &r);
	assert_failed(&r, "smtp: server does not offer STARTTLS");
}

static void test_smtp_bad_codes(void **state)
{
	static const struct act greet[] = {
		SEND("554 5.3.2 no service here\r\n")};
	static const struct act ehlo[] = {
		SEND("220 x\r\n"), EXPECT("EHLO c.test\r\n"),
		SEND("250-x\r\n550 5.7.1 go away\r\n")};
	static const struct act refused[] = {
		SEND("220 x\r\n"), EXPECT("EHLO c.test\r\n"),
		SEND("250 STARTTLS\r\n"), EXPECT("STARTTLS\r\n"),
		SEND("454 4.7.0 TLS not available\r\n")};
	static const struct act malformed[] = {SEND("22 short\r\n")};
	struct result r;

	(void)state;
	RUN(STARTTLS_SMTP, "c.test", greet, &r);
	assert_failed(&r,
		      "smtp: unexpected greeting: 554 5.3.2 no service here");
	RUN(STARTTLS_SMTP, "c.test", ehlo, &r);
	assert_failed(&r, "smtp: unexpected reply to EHLO: 550 5.7.1 go away");
	RUN(STARTTLS_SMTP, "c.test", refused, &r);
	assert_failed(&r, "smtp: unexpected reply to STARTTLS: "
			  "454 4.7.0 TLS not available");
	RUN(STARTTLS_SMTP, "c.test", malformed, &r);
	assert_failed(&r, "smtp: unexpected greeting: 22 short");
}

/* Control bytes are replaced, long garbage is cut to 64 bytes. */
static void test_smtp_garbage(void **state)
{
	static const struct act ctl[] = {
		SEND("\x1b[31m220\x00" "evil\x7f\r\n")};
	static const struct act http[] = {
		SEND("HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n")};
	char line[600], want[200];
	struct act longgarbage[1];
	struct result r;

	(void)state;
	RUN(STARTTLS_SMTP, "c.test", ctl, &r);
	assert_failed(&r, "smtp: unexpected greeting: ?[31m220?evil?");
	RUN(STARTTLS_SMTP, "c.test", http, &r);
	assert_failed(&r,
		      "smtp: unexpected greeting: HTTP/1.1 400 Bad Request");

	memset(line, 'g', sizeof(line));
	memcpy(line, "999 ", 4);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	longgarbage[0] = (struct act){A_SEND, line, sizeof(line)};
	run(STARTTLS_SMTP, "c.test", longgarbage, 1, false, &r);
	snprintf(want, sizeof(want), "smtp: unexpected greeting: 999 %.60s",
		 line + 4);
	assert_failed(&r, want);
}

static void test_smtp_eof(void **state)
{
	static const struct act greet[] = {SEND("220-first line\r\n"), CLOSE};
	static const struct act mid[] = {
		SEND("220 x\r\n"), EXPECT("EHLO c.test\r\n"),
		SEND("250-x\r\n250-STARTTLS\r\n250-par"), CLOSE};
	static const struct act silent[] = {CLOSE};
	struct result r;

	(void)state;
	RUN(STARTTLS_SMTP, "c.test", greet, &r);
	assert_failed(&r, "smtp: server closed the connection");
	RUN(STARTTLS_SMTP, "c.test", mid, &r);
	assert_failed(&r, "smtp: server closed the connection");
	RUN(STARTTLS_SMTP, "c.test", silent, &r);
	assert_failed(&r, "smtp: server closed the connection");
}

/* A line of exactly 8192 bytes (terminator included) is fine, one byte
 * more is not. */
static void test_smtp_long_line(void **state)
{
	static char ok[8192], big[9000];
	struct act okacts[] = {
		{A_SEND, ok, sizeof(ok)},
		EXPECT("EHLO c.test\r\n"),
		CLOSE,
	};
	struct act bigacts[] = {{A_SEND, big, sizeof(big)}};
	struct result r;

	(void)state;
	memset(ok, 'x', sizeof(ok));
	memcpy(ok, "220 ", 4);
	memcpy(ok + sizeof(ok) - 2, "\r\n", 2);
	run(STARTTLS_SMTP, "c.test", okacts, 3, false, &r);
	assert_failed(&r, "smtp: server closed the connection");

	memset(big, 'x', sizeof(big));
	memcpy(big, "220 ", 4);
	memcpy(big + sizeof(big) - 2, "\r\n", 2);
	run(STARTTLS_SMTP, "c.test", bigacts, 1, false, &r);
	assert_failed(&r, "smtp: line longer than 8192 bytes");
}

/* A banner that never ends: 64 KiB of plaintext is all we take. */
static void test_smtp_total_cap(void **state)
{
	static char banner[100 * 1000];
	struct act acts[1] = {{A_SEND, banner, sizeof(banner)}};
	struct result r;

	(void)state;
	for (size_t i = 0; i < sizeof(banner); i += 1000) {
		memset(banner + i, 'b', 1000);
		memcpy(banner + i, "220-", 4);
		memcpy(banner + i + 998, "\r\n", 2);
	}
	run(STARTTLS_SMTP, "c.test", acts, 1, false, &r);
	assert_failed(&r, "smtp: more than 65536 bytes before TLS");
}

/* ---- FTP ---- */

static void test_ftp_good(void **state)
{
	/* a preliminary 120, then a multi-line 220 whose middle lines are
	 * free text (RFC 959 4.2) */
	static const struct act acts[] = {
		SEND("120 ready in a moment\r\n"),
		SEND("220-Welcome\r\n free text\r\n230 not the end\r\n"
		     "220-still not\r\n220 ready\r\n"),
		EXPECT("AUTH TLS\r\n"),
		SEND("234 AUTH TLS ok\r\n" TLS_BYTES),
	};
	struct result r;

	(void)state;
	RUN(STARTTLS_FTP, "ftp.test", acts, &r);
	assert_done_with_extra(&r);
}

static void test_ftp_refused(void **state)
{
	static const struct act acts[] = {
		SEND("220 ftp\r\n"), EXPECT("AUTH TLS\r\n"),
		SEND("530 Please login with USER and PASS.\r\n")};
	static const struct act eof[] = {
		SEND("220-ftp\r\nmore\r\n"), CLOSE};
	struct result r;

	(void)state;
	RUN(STARTTLS_FTP, "ftp.test", acts, &r);
	assert_failed(&r, "ftp: unexpected reply to AUTH TLS: "
			  "530 Please login with USER and PASS.");
	RUN(STARTTLS_FTP, "ftp.test", eof, &r);
	assert_failed(&r, "ftp: server closed the connection");
}

/* ---- IMAP ---- */

static void test_imap_good(void **state)
{
	static const struct act acts[] = {
		SEND("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
		EXPECT("a001 STARTTLS\r\n"),
		SEND("* CAPABILITY IMAP4rev1 STARTTLS\r\n"
		     "a001 OK Begin TLS negotiation now\r\n" TLS_BYTES),
	};
	struct result r;

	(void)state;
	RUN(STARTTLS_IMAP, "imap.test", acts, &r);
	assert_done_with_extra(&r);
}

static void test_imap_bad(void **state)
{
	static const struct act bad[] = {
		SEND("* OK ready\r\n"), EXPECT("a001 STARTTLS\r\n"),
		SEND("a001 BAD unknown command\r\n")};
	static const struct act preauth[] = {SEND("* PREAUTH logged in\r\n")};
	static const struct act bye[] = {
		SEND("* ok ready\r\n"), EXPECT("a001 STARTTLS\r\n"),
		SEND("* BYE shutting down\r\n")};
	static const struct act eof[] = {
		SEND("* OK ready\r\n"), EXPECT("a001 STARTTLS\r\n"),
		SEND("* CAPABILITY x\r\n"), CLOSE};
	struct result r;

	(void)state;
	RUN(STARTTLS_IMAP, "imap.test", bad, &r);
	assert_failed(&r, "imap: unexpected reply to STARTTLS: "
			  "a001 BAD unknown command");
	RUN(STARTTLS_IMAP, "imap.test", preauth, &r);
	assert_failed(&r, "imap: unexpected greeting: * PREAUTH logged in");
	RUN(STARTTLS_IMAP, "imap.test", bye, &r);
	assert_failed(&r, "imap: unexpected reply to STARTTLS: "
			  "* BYE shutting down");
	RUN(STARTTLS_IMAP, "imap.test", eof, &r);
	assert_failed(&r, "imap: server closed the connection");
}

/* ---- POP3 ---- */

static void test_pop3_good(void **state)
{
	static const struct act acts[] = {
		SEND("+OK POP3 ready\r\n"),
		EXPECT("STLS\r\n"),
		SEND("+OK Begin TLS\r\n" TLS_BYTES),
	};
	struct result r;

	(void)state;
	RUN(STARTTLS_POP3, "pop.test", acts, &r);
	assert_done_with_extra(&r);
}

static void test_pop3_bad(void **state)
{
	static const struct act err[] = {
		SEND("+OK\r\n"), EXPECT("STLS\r\n"),
		SEND("-ERR command not recognized\r\n")};
	static const struct act greet[] = {SEND("-ERR busy\r\n")};
	static const struct act eof[] = {
		SEND("+OK hi\r\n"), EXPECT("STLS\r\n"), CLOSE};
	struct result r;

	(void)state;
	RUN(STARTTLS_POP3, "pop.test", err, &r);
	assert_failed(&r, "pop3: unexpected reply to STLS: "
			  "-ERR command not recognized");
	RUN(STARTTLS_POP3, "pop.test", greet, &r);
	assert_failed(&r, "pop3: unexpected greeting: -ERR busy");
	RUN(STARTTLS_POP3, "pop.test", eof, &r);
	assert_failed(&r, "pop3: server closed the connection");
}

/* ---- LDAP ---- */

#define LDAP_REQ                                                        \
	"\x30\x1d\x02\x01\x01\x77\x18\x80\x16"                           \
	"1.3.6.1.4.1.1466.20037"

static void test_ldap_good(void **state)
{
	static const struct act acts[] = {
		EXPECT(LDAP_REQ),
		SEND("\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00"
		     TLS_BYTES),
	};
	/* long-form length and a responseName, as OpenLDAP sends it */
	static const struct act longform[] = {
		EXPECT(LDAP_REQ),
		SEND("\x30\x81\x24\x02\x01\x01\x78\x1f\x0a\x01\x00\x04\x00"
		     "\x04\x00\x8a\x16"
		     "1.3.6.1.4.1.1466.20037" TLS_BYTES),
	};
	struct result r;

	(void)state;
	RUN(STARTTLS_LDAP, "ldap.test", acts, &r);
	assert_done_with_extra(&r);
	RUN(STARTTLS_LDAP, "ldap.test", longform, &r);
	assert_done_with_extra(&r);
}

/* The request cannot go out at once: WANT_WRITE, then it does. */
static void test_ldap_want_write(void **state)
{
	static const struct act acts[] = {
		{A_SKIP, NULL, 0},
		EXPECT(LDAP_REQ),
		SEND("\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00"
		     TLS_BYTES),
	};
	struct result r;

	(void)state;
	run(STARTTLS_LDAP, "ldap.test", acts, 3, true, &r);
	assert_done_with_extra(&r);
	assert_true(r.want_writes > 0);
}

static void test_ldap_result_codes(void **state)
{
	static const struct act proto_err[] = {
		EXPECT(LDAP_REQ),
		SEND("\x30\x2a\x02\x01\x01\x78\x25\x0a\x01\x02\x04\x00"
		     "\x04\x1e" "unsupported extended operation")};
	static const struct act unavail[] = {
		EXPECT(LDAP_REQ),
		SEND("\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x34"
		     "\x04\x00\x04\x00")};
	static const struct act notice[] = {
		EXPECT(LDAP_REQ),
		SEND("\x30\x0c\x02\x01\x00\x78\x07\x0a\x01\x34"
		     "\x04\x00\x04\x00")};
	static const struct act wrong_op[] = {
		EXPECT(LDAP_REQ),
		SEND("\x30\x0c\x02\x01\x01\x65\x07\x0a\x01\x00"
		     "\x04\x00\x04\x00")};
	static const struct act wrong_id[] = {
		EXPECT(LDAP_REQ),
		SEND("\x30\x0c\x02\x01\x07\x78\x07\x0a\x01\x00"
		     "\x04\x00\x04\x00")};
	struct result r;

	(void)state;
	RUN(STARTTLS_LDAP, "ldap.test", proto_err, &r);
	assert_failed(&r, "ldap: resultCode 2: unsupported extended operation");
	RUN(STARTTLS_LDAP, "ldap.test", unavail, &r);
	assert_failed(&r, "ldap: resultCode 52");
	RUN(STARTTLS_LDAP, "ldap.test", notice, &r);
	assert_failed(&r, "ldap: notice of disconnection, resultCode 52");
	RUN(STARTTLS_LDAP, "ldap.test", wrong_op, &r);
	assert_failed(&r, "ldap: unexpected response (tag 0x65)");
	RUN(STARTTLS_LDAP, "ldap.test", wrong_id, &r);
	assert_failed(&r, "ldap: unexpected messageID 7");
}

static void test_ldap_garbage(void **state)
{
	static const struct act eof_body[] = {
		EXPECT(LDAP_REQ), SEND("\x30\x0c\x02\x01\x01"), CLOSE};
	static const struct act eof_len[] = {
		EXPECT(LDAP_REQ), SEND("\x30\x82\x01"), CLOSE};
	static const struct act http[] = {
		EXPECT(LDAP_REQ), SEND("HTTP/1.1 400 Bad Request\r\n\r\n")};
	static const struct act huge[] = {
		EXPECT(LDAP_REQ), SEND("\x30\x84\x00\x01\x00\x00")};
	static const struct act indefinite[] = {
		EXPECT(LDAP_REQ), SEND("\x30\x80\x02\x01\x01")};
	static const struct act bad_inner[] = {
		EXPECT(LDAP_REQ), SEND("\x30\x05\x02\x09\x01\x78\x00")};
	struct result r;

	(void)state;
	RUN(STARTTLS_LDAP, "ldap.test", eof_body, &r);
	assert_failed(&r, "ldap: server closed the connection");
	RUN(STARTTLS_LDAP, "ldap.test", eof_len, &r);
	assert_failed(&r, "ldap: server closed the connection");
	RUN(STARTTLS_LDAP, "ldap.test", http, &r);
	assert_failed(&r, "ldap: not an LDAP message (first byte 0x48)");
	RUN(STARTTLS_LDAP, "ldap.test", huge, &r);
	assert_failed(&r, "ldap: response longer than 8192 bytes");
	RUN(STARTTLS_LDAP, "ldap.test", indefinite, &r);
	assert_failed(&r, "ldap: unsupported BER length");
	RUN(STARTTLS_LDAP, "ldap.test", bad_inner, &r);
	assert_failed(&r, "ldap: malformed messageID");
}

/* ---- XMPP ---- */

#define XMPP_HDR(host)                                                  \
	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "     \
	"xmlns:stream='http://etherx.jabber.org/streams' to='" host     \
	"' version='1.0'>"
#define XMPP_STARTTLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define XMPP_SERVER_HDR                                                 \
	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "     \
	"xmlns:stream='http://etherx.jabber.org/streams' id='s1' "       \
	"from='xmpp.test' version='1.0' xml:lang='en'>"

static void test_xmpp_good(void **state)
{
	static const struct act acts[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		SEND(XMPP_SERVER_HDR
		     "<stream:features><starttls "
		     "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
		     "</starttls><mechanisms "
		     "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>"
		     "PLAIN</mechanism></mechanisms></stream:features>"),
		EXPECT(XMPP_STARTTLS),
		SEND("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
		     TLS_BYTES),
	};
	/* '>' inside quoted attribute values, features split across
	 * writes, and a <proceed></proceed> with an end tag */
	static const struct act odd[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		SLOW("<?xml version=\"1.0\"?><stream:stream id='a>b' "
		     "from=\"x>y\" version='1.0'><stream:features>"),
		SEND("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
		EXPECT(XMPP_STARTTLS),
		SEND("</stream:features>"),
		SEND("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls' "
		     "note='1>0'></proceed>" TLS_BYTES),
	};
	struct result r;

	(void)state;
	RUN(STARTTLS_XMPP, "xmpp.test", acts, &r);
	assert_done_with_extra(&r);
	RUN(STARTTLS_XMPP, "xmpp.test", odd, &r);
	assert_done_with_extra(&r);
}

static void test_xmpp_failures(void **state)
{
	static const struct act none[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		SEND(XMPP_SERVER_HDR "<stream:features><mechanisms "
				     "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
				     "<mechanism>PLAIN</mechanism></mechanisms>"
				     "</stream:features>")};
	static const struct act empty[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		SEND(XMPP_SERVER_HDR "<stream:features/>")};
	static const struct act refused[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		SEND(XMPP_SERVER_HDR "<stream:features><starttls "
				     "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
				     "</stream:features>"),
		EXPECT(XMPP_STARTTLS),
		SEND("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
		     "</stream:stream>")};
	static const struct act stream_error[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		SEND(XMPP_SERVER_HDR
		     "<stream:error><host-unknown "
		     "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
		     "</stream:error></stream:stream>")};
	static const struct act closed[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		SEND(XMPP_SERVER_HDR "</stream:stream>")};
	static const struct act eof[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		SEND(XMPP_SERVER_HDR "<stream:feat"), CLOSE};
	struct result r;

	(void)state;
	RUN(STARTTLS_XMPP, "xmpp.test", none, &r);
	assert_failed(&r, "xmpp: server does not offer STARTTLS");
	RUN(STARTTLS_XMPP, "xmpp.test", empty, &r);
	assert_failed(&r, "xmpp: server does not offer STARTTLS");
	RUN(STARTTLS_XMPP, "xmpp.test", refused, &r);
	assert_failed(&r, "xmpp: server refused STARTTLS");
	RUN(STARTTLS_XMPP, "xmpp.test", stream_error, &r);
	assert_failed(&r, "xmpp: stream error: host-unknown");
	RUN(STARTTLS_XMPP, "xmpp.test", closed, &r);
	assert_failed(&r, "xmpp: server closed the stream");
	RUN(STARTTLS_XMPP, "xmpp.test", eof, &r);
	assert_failed(&r, "xmpp: server closed the connection");
}

static void test_xmpp_long_element(void **state)
{
	static char big[9000];
	struct act acts[] = {
		EXPECT(XMPP_HDR("xmpp.test")),
		{A_SEND, big, sizeof(big)},
	};
	struct result r;

	(void)state;
	memset(big, 'a', sizeof(big));
	memcpy(big, "<x y='", 6);
	memcpy(big + sizeof(big) - 2, "'>", 2);
	run(STARTTLS_XMPP, "xmpp.test", acts, 2, false, &r);
	assert_failed(&r, "xmpp: element longer than 8192 bytes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proto_names),
		cmocka_unit_test(test_new_enomem),
		cmocka_unit_test(test_bad_host),
		cmocka_unit_test(test_smtp_good),
		cmocka_unit_test(test_smtp_slow),
		cmocka_unit_test(test_smtp_ip_literal),
		cmocka_unit_test(test_smtp_no_starttls),
		cmocka_unit_test(test_smtp_bad_codes),
		cmocka_unit_test(test_smtp_garbage),
		cmocka_unit_test(test_smtp_eof),
		cmocka_unit_test(test_smtp_long_line),
		cmocka_unit_test(test_smtp_total_cap),
		cmocka_unit_test(test_ftp_good),
		cmocka_unit_test(test_ftp_refused),
		cmocka_unit_test(test_imap_good),
		cmocka_unit_test(test_imap_bad),
		cmocka_unit_test(test_pop3_good),
		cmocka_unit_test(test_pop3_bad),
		cmocka_unit_test(test_ldap_good),
		cmocka_unit_test(test_ldap_want_write),
		cmocka_unit_test(test_ldap_result_codes),
		cmocka_unit_test(test_ldap_garbage),
		cmocka_unit_test(test_xmpp_good),
		cmocka_unit_test(test_xmpp_failures),
		cmocka_unit_test(test_xmpp_long_element),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
