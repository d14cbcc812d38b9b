#include "tls.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "exporter/config.h"
#include "exporter/log.h"
#include "exporter/xalloc.h"
#include "probes/dns/dns.h"
#include "probes/x509/x509.h"
#include "probes/x509/x509_metrics.h"

#define TLS_ADDR_MAX 16		/* addresses probed per target */

struct tls_module {
	SSL_CTX *ctx;		/* one per module: trust store loaded once */
	bool every_address;
	int family;		/* AF_UNSPEC, AF_INET or AF_INET6 */
	char *server_name;
	char *ca_file;
	char *client_cert;
	char *client_key;
};

struct tls_target {
	char host[256];
	unsigned port;
	bool is_ip;
	struct sockaddr_storage ip;	/* when is_ip */
	socklen_t iplen;
};

struct tls_conn {
	struct tls_probe *p;
	struct loop_io io;
	int fd;
	SSL *ssl;
	struct sockaddr_storage sa;
	socklen_t salen;
	char address[INET6_ADDRSTRLEN + 8];
	enum probe_stage stage;
	enum probe_fail fail;
	bool finished;
	bool handshake_ok;
	char version[16];
	char cipher[64];
	long verify;		/* X509_V_OK or an X509_V_ERR_* */
	STACK_OF(X509) *sent;	/* as the server sent them, owned */
};

struct tls_probe {
	struct probe_run *run;
	const struct tls_module *m;
	const struct tls_target *t;
	struct dns_query *q;
	struct tls_conn conns[TLS_ADDR_MAX];
	size_t nconns;		/* addresses known */
	size_t next;		/* next address to start (sequential mode) */
	size_t active;		/* connections in flight */
};

static const struct metric_desc M_HANDSHAKE = {
	"pki_tls_handshake_success",
	"Whether the TLS handshake with this address completed (1) or not (0).",
	METRIC_GAUGE};
static const struct metric_desc M_VERSION = {
	"pki_tls_version_info",
	"Negotiated TLS version and cipher suite, value 1.", METRIC_GAUGE};
static const struct metric_desc M_VERIFIED = {
	"pki_tls_chain_verified",
	"Whether the chain the server sent verifies against the module's trust "
	"anchors (1) or not (0); certificates are reported either way.",
	METRIC_GAUGE};
static const struct metric_desc M_VERIFIED_INFO = {
	"pki_tls_chain_verified_info",
	"OpenSSL's verification result for the chain: code is the "
	"X509_V_ERR number, reason its text; value 1.",
	METRIC_GAUGE};
static const struct metric_desc M_ADDR_FAIL = {
	"pki_tls_failure_info",
	"Why the probe of this address failed: stage reached and reason; "
	"value 1.",
	METRIC_GAUGE};

/* ---- configuration ---- */

int tls_split_hostport(const char *s, char *host, size_t hostlen,
		       unsigned *port, char *err, size_t errlen)
{
	const char *p, *hend;
	char *end;
	long v;

	if (s[0] == '[') {
		hend = strchr(s, ']');
		if (!hend || hend[1] != ':') {
			snprintf(err, errlen, "expected [ipv6]:port");
			return -EINVAL;
		}
		p = hend + 2;
		s++;
	} else {
		hend = strrchr(s, ':');
		if (!hend) {
			snprintf(err, errlen, "missing port (host:port)");
			return -EINVAL;
		}
		if (memchr(s, ':', (size_t)(hend - s))) {
			snprintf(err, errlen,
				 "an IPv6 address needs brackets: [addr]:port");
			return -EINVAL;
		}
		p = hend + 1;
	}
	if ((size_t)(hend - s) == 0 || (size_t)(hend - s) >= hostlen) {
		snprintf(err, errlen, "host is empty or too long");
		return -EINVAL;
	}
	memcpy(host, s, (size_t)(hend - s));
	host[hend - s] = '\0';
	errno = 0;
	v = strtol(p, &end, 10);
	if (!*p || *end || errno || v < 1 || v > 65535) {
		snprintf(err, errlen, "port must be 1-65535");
		return -EINVAL;
	}
	for (const char *c = host; *c; c++) {
		if ((unsigned char)*c <= ' ' || *c == '/' || *c == '"' ||
		    *c == '\\') {
			snprintf(err, errlen, "invalid character in host");
			return -EINVAL;
		}
	}
	*port = (unsigned)v;
	return 0;
}

static void tls_cfg_free(void *p)
{
	struct tls_module *m = p;

	if (!m)
		return;
	SSL_CTX_free(m->ctx);
	xfree(m->server_name);
	xfree(m->ca_file);
	xfree(m->client_cert);
	xfree(m->client_key);
	xfree(m);
}

/* The first OpenSSL error as text, for config messages. */
static const char *ssl_errstr(char *dst, size_t len)
{
	unsigned long e = ERR_get_error();

	if (!e)
		snprintf(dst, len, "unknown error");
	else
		ERR_error_string_n(e, dst, len);
	ERR_clear_error();
	return dst;
}

static int tls_parse_tls_block(const struct cfg_node *n,
			       const struct config *cfg, struct tls_module *m,
			       struct errbuf *eb)
{
	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "tls: expected a mapping");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;

		cfg_map_pair(n, i, &p);
		if (strcmp(p.key, "ca_file") == 0)
			cfg_get_path(&p.vnode, cfg, eb, &m->ca_file);
		else if (strcmp(p.key, "client_cert") == 0)
			cfg_get_path(&p.vnode, cfg, eb, &m->client_cert);
		else if (strcmp(p.key, "client_key") == 0)
			cfg_get_path(&p.vnode, cfg, eb, &m->client_key);
		else if (strcmp(p.key, "server_name") == 0)
			cfg_get_string(&p.vnode, eb, &m->server_name);
		else
			errbuf_add(eb, &p.knode, "tls: unknown key '%s'",
				   p.key);
	}
	return 0;
}

static int tls_make_ctx(const struct cfg_node *at, struct tls_module *m,
			struct errbuf *eb)
{
	char e[256];

	m->ctx = SSL_CTX_new(TLS_client_method());
	if (!m->ctx) {
		errbuf_add(eb, at, "tls: cannot create SSL context: %s",
			   ssl_errstr(e, sizeof(e)));
		return -ENOMEM;
	}
	/* Level 0 and every protocol version: the point is to *see* weak
	 * certificates and old servers and report them, not to refuse
	 * them. Verification results are reported, never enforced. */
	SSL_CTX_set_security_level(m->ctx, 0);
	SSL_CTX_set_min_proto_version(m->ctx, 0);
	SSL_CTX_set_verify(m->ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(m->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(m->ctx, SSL_OP_NO_TICKET);
	if (m->ca_file) {
		if (!SSL_CTX_load_verify_locations(m->ctx, m->ca_file, NULL)) {
			errbuf_add(eb, at, "tls: cannot load ca_file '%s': %s",
				   m->ca_file, ssl_errstr(e, sizeof(e)));
			return -EINVAL;
		}
	} else if (!SSL_CTX_set_default_verify_paths(m->ctx)) {
		errbuf_add(eb, at, "tls: cannot load the system trust store: %s",
			   ssl_errstr(e, sizeof(e)));
		return -EINVAL;
	}
	if (!m->client_cert != !m->client_key) {
		errbuf_add(eb, at, "tls: client_cert and client_key go together");
		return -EINVAL;
	}
	if (m->client_cert) {
		if (SSL_CTX_use_certificate_chain_file(m->ctx, m->client_cert) != 1) {
			errbuf_add(eb, at, "tls: cannot load client_cert '%s': %s",
				   m->client_cert, ssl_errstr(e, sizeof(e)));
			return -EINVAL;
		}
		if (SSL_CTX_use_PrivateKey_file(m->ctx, m->client_key,
						SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(m->ctx) != 1) {
			errbuf_add(eb, at, "tls: cannot use client_key '%s': %s",
				   m->client_key, ssl_errstr(e, sizeof(e)));
			return -EINVAL;
		}
	}
	return 0;
}

static int tls_parse(const struct cfg_node *n, const struct config *cfg,
		     void **cfgp, struct errbuf *eb)
{
	struct tls_module *m = xcalloc(1, sizeof(*m));
	unsigned before = eb->count;
	const struct cfg_node *tls_at = n;
	struct cfg_node tls_node = {0};

	if (!m)
		return -ENOMEM;
	m->family = AF_UNSPEC;
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;

		cfg_map_pair(n, i, &p);
		if (strcmp(p.key, "prober") == 0 ||
		    strcmp(p.key, "timeout") == 0) {
			continue;	/* handled by config.c */
		} else if (strcmp(p.key, "every_address") == 0) {
			cfg_get_bool(&p.vnode, eb, &m->every_address);
		} else if (strcmp(p.key, "ip_protocol") == 0) {
			const char *s = cfg_scalar(&p.vnode);

			if (s && strcmp(s, "ip4") == 0)
				m->family = AF_INET;
			else if (s && strcmp(s, "ip6") == 0)
				m->family = AF_INET6;
			else if (s && strcmp(s, "any") == 0)
				m->family = AF_UNSPEC;
			else
				errbuf_add(eb, &p.vnode,
					   "ip_protocol must be ip4, ip6 or any");
		} else if (strcmp(p.key, "tls") == 0) {
			tls_node = p.vnode;
			tls_at = &tls_node;
			tls_parse_tls_block(&p.vnode, cfg, m, eb);
		} else {
			errbuf_add(eb, &p.knode,
				   "module: unknown key '%s' for prober tls",
				   p.key);
		}
	}
	if (eb->count == before)
		tls_make_ctx(tls_at, m, eb);
	if (eb->count != before) {
		tls_cfg_free(m);
		return -EINVAL;
	}
	*cfgp = m;
	return 0;
}

static int tls_parse_target(const void *cfg, const char *s, void **tp,
			    char *err, size_t errlen)
{
	struct tls_target *t = xcalloc(1, sizeof(*t));
	struct sockaddr_in *s4;
	struct sockaddr_in6 *s6;

	(void)cfg;
	if (!t)
		return -ENOMEM;
	if (tls_split_hostport(s, t->host, sizeof(t->host), &t->port, err,
			       errlen)) {
		xfree(t);
		return -EINVAL;
	}
	s4 = (struct sockaddr_in *)&t->ip;
	s6 = (struct sockaddr_in6 *)&t->ip;
	if (inet_pton(AF_INET, t->host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)t->port);
		t->iplen = sizeof(*s4);
		t->is_ip = true;
	} else if (inet_pton(AF_INET6, t->host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)t->port);
		t->iplen = sizeof(*s6);
		t->is_ip = true;
	} else if (s[0] == '[') {
		snprintf(err, errlen, "not an IPv6 address inside []");
		xfree(t);
		return -EINVAL;
	}
	*tp = t;
	return 0;
}

static void tls_target_free(void *tp)
{
	xfree(tp);
}

/* ---- the run ---- */

static void conn_step(struct tls_conn *c);
static void probe_next(struct tls_probe *p);

static void conn_close(struct tls_conn *c)
{
	loop_io_del(c->p->run->loop, &c->io);
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static void format_address(struct tls_conn *c)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (c->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (void *)&c->sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(c->address, sizeof(c->address), "[%s]:%u", ip,
			 ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (void *)&c->sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(c->address, sizeof(c->address), "%s:%u", ip,
			 ntohs(s4->sin_port));
	}
}

static void probe_finish_if_idle(struct tls_probe *p);

/* One address is done (good or bad). */
static void conn_end(struct tls_conn *c, enum probe_fail fail)
{
	struct tls_probe *p = c->p;

	if (c->finished)
		return;
	c->finished = true;
	c->fail = fail;
	if (fail == PROBE_OK)
		c->stage = PROBE_STAGE_DONE;
	conn_close(c);
	p->active--;
	probe_finish_if_idle(p);
}

static enum probe_fail errno_fail(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return PROBE_FAIL_REFUSED;
	case ENETUNREACH:
	case EHOSTUNREACH:
	case EADDRNOTAVAIL:
		return PROBE_FAIL_UNREACHABLE;
	case ECONNRESET:
	case EPIPE:
		return PROBE_FAIL_RESET;
	case ETIMEDOUT:
		return PROBE_FAIL_TIMEOUT;
	default:
		return PROBE_FAIL_CONNECT;
	}
}

static void conn_on_io(struct loop_io *io, uint32_t events)
{
	struct tls_conn *c = io->arg;

	(void)events;
	conn_step(c);
}

static int conn_arm(struct tls_conn *c, uint32_t ev)
{
	struct loop *l = c->p->run->loop;

	if (c->io.fd < 0)
		return loop_io_add(l, &c->io, c->fd, ev);
	return loop_io_mod(l, &c->io, ev);
}

static void conn_collect(struct tls_conn *c)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c->ssl);
	const char *v = SSL_get_version(c->ssl);
	const char *ci = SSL_get_cipher_name(c->ssl);

	snprintf(c->version, sizeof(c->version), "%s", v ? v : "");
	snprintf(c->cipher, sizeof(c->cipher), "%s", ci ? ci : "");
	c->verify = SSL_get_verify_result(c->ssl);
	/* The client side's peer chain includes the leaf first, in the
	 * order the server sent them. */
	if (chain) {
		c->sent = sk_X509_new_null();
		for (int i = 0; c->sent && i < sk_X509_num(chain); i++) {
			X509 *x = sk_X509_value(chain, i);

			if (X509_up_ref(x) && !sk_X509_push(c->sent, x))
				X509_free(x);
		}
	}
}

static enum probe_fail ssl_fail(struct tls_conn *c, int ret, int err)
{
	unsigned long e;

	switch (err) {
	case SSL_ERROR_ZERO_RETURN:
		return PROBE_FAIL_EOF;
	case SSL_ERROR_SYSCALL:
		if (ret == 0 || errno == 0)
			return PROBE_FAIL_EOF;
		return errno_fail(errno);
	case SSL_ERROR_SSL:
		e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
			return PROBE_FAIL_TLS_ALERT;
		(void)c;
		return PROBE_FAIL_TLS;
	default:
		return PROBE_FAIL_TLS;
	}
}

static void conn_handshake(struct tls_conn *c)
{
	int ret, err;

	ERR_clear_error();
	ret = SSL_do_handshake(c->ssl);
	if (ret == 1) {
		c->handshake_ok = true;
		conn_collect(c);
		/* best effort close_notify, never waited for */
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		conn_end(c, PROBE_OK);
		return;
	}
	err = SSL_get_error(c->ssl, ret);
	if (err == SSL_ERROR_WANT_READ) {
		if (conn_arm(c, EPOLLIN))
			conn_end(c, PROBE_FAIL_INTERNAL);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		if (conn_arm(c, EPOLLOUT))
			conn_end(c, PROBE_FAIL_INTERNAL);
		return;
	}
	/* A failed handshake may still have shown us certificates (e.g.
	 * the server rejected our missing client certificate after
	 * sending its own): keep them. */
	if (SSL_get_peer_cert_chain(c->ssl))
		conn_collect(c);
	conn_end(c, ssl_fail(c, ret, err));
	ERR_clear_error();
}

static void conn_step(struct tls_conn *c)
{
	struct tls_probe *p = c->p;

	if (c->finished)
		return;
	if (c->stage == PROBE_STAGE_CONNECT) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
			soerr = errno;
		if (soerr == EINPROGRESS)
			return;
		if (soerr) {
			enum probe_fail f = errno_fail(soerr);

			/* sequential mode: a refused address is not the
			 * answer yet if another address is left */
			if (!p->m->every_address && p->next < p->nconns) {
				c->finished = true;
				c->fail = f;
				conn_close(c);
				p->active--;
				probe_next(p);
				return;
			}
			conn_end(c, f);
			return;
		}
		c->stage = PROBE_STAGE_HANDSHAKE;
		if (p->run->stage < PROBE_STAGE_HANDSHAKE)
			p->run->stage = PROBE_STAGE_HANDSHAKE;
		c->ssl = SSL_new(p->m->ctx);
		if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
			conn_end(c, PROBE_FAIL_INTERNAL);
			return;
		}
		SSL_set_connect_state(c->ssl);
		{
			const char *sni = p->m->server_name
						  ? p->m->server_name
						  : (p->t->is_ip ? NULL
								 : p->t->host);

			if (sni)
				SSL_set_tlsext_host_name(c->ssl, sni);
		}
	}
	conn_handshake(c);
}

static void conn_start(struct tls_conn *c)
{
	struct tls_probe *p = c->p;
	int one = 1;

	c->stage = PROBE_STAGE_CONNECT;
	p->active++;
	format_address(c);
	c->fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (c->fd == -1) {
		conn_end(c, PROBE_FAIL_INTERNAL);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&c->sa, c->salen) == -1 &&
	    errno != EINPROGRESS) {
		c->stage = PROBE_STAGE_CONNECT;
		conn_end(c, errno_fail(errno));
		return;
	}
	if (conn_arm(c, EPOLLOUT))
		conn_end(c, PROBE_FAIL_INTERNAL);
}

/* Start the next address(es): all of them when every_address is on,
 * otherwise one at a time. */
static void probe_next(struct tls_probe *p)
{
	if (p->run->stage < PROBE_STAGE_CONNECT)
		p->run->stage = PROBE_STAGE_CONNECT;
	do {
		struct tls_conn *c;

		if (p->next >= p->nconns)
			break;
		c = &p->conns[p->next++];
		conn_start(c);
		if (p->run->done)
			return;
	} while (p->m->every_address);
	probe_finish_if_idle(p);
}

static void add_address(struct tls_probe *p, const struct sockaddr *sa,
			socklen_t len)
{
	struct tls_conn *c;

	if (p->nconns >= TLS_ADDR_MAX || len > sizeof(c->sa))
		return;
	for (size_t i = 0; i < p->nconns; i++)
		if (p->conns[i].salen == len &&
		    memcmp(&p->conns[i].sa, sa, len) == 0)
			return;	/* c-ares may repeat an address */
	c = &p->conns[p->nconns++];
	memcpy(&c->sa, sa, len);
	c->salen = len;
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&c->sa)->sin_port = htons((uint16_t)p->t->port);
	else
		((struct sockaddr_in6 *)&c->sa)->sin6_port = htons((uint16_t)p->t->port);
}

static void on_resolved(void *arg, int status, const struct ares_addrinfo *ai)
{
	struct tls_probe *p = arg;

	if (status != ARES_SUCCESS) {
		probe_done(p->run, status == ARES_ENOTFOUND ? PROBE_FAIL_NXDOMAIN
				   : status == ARES_ENODATA ? PROBE_FAIL_NODATA
				   : status == ARES_ETIMEOUT ? PROBE_FAIL_TIMEOUT
							     : PROBE_FAIL_DNS);
		return;
	}
	for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n;
	     n = n->ai_next)
		if (n->ai_family == AF_INET || n->ai_family == AF_INET6)
			add_address(p, n->ai_addr, n->ai_addrlen);
	if (p->nconns == 0) {
		probe_done(p->run, PROBE_FAIL_NODATA);
		return;
	}
	probe_next(p);
}

static int tls_start(struct probe_run *run)
{
	const struct tls_module *m = probe_module_cfg(run);
	const struct tls_target *t = probe_target_cfg(run);
	struct tls_probe *p = xcalloc(1, sizeof(*p));
	struct dns *d;

	if (!p)
		return -ENOMEM;
	p->run = run;
	p->m = m;
	p->t = t;
	for (size_t i = 0; i < TLS_ADDR_MAX; i++) {
		p->conns[i].p = p;
		p->conns[i].fd = -1;
		loop_io_init(&p->conns[i].io, conn_on_io, &p->conns[i]);
	}
	run->priv = p;
	if (t->is_ip) {
		add_address(p, (const struct sockaddr *)&t->ip, t->iplen);
		probe_next(p);
		return 0;
	}
	run->stage = PROBE_STAGE_RESOLVE;
	d = probe_dns(run, run->config->global.dns_csv);
	if (!d)
		return -ENOMEM;
	return dns_resolve(d, t->host, m->family, on_resolved, p, &p->q);
}

static void emit_conn(struct probe_run *run, const struct tls_conn *c)
{
	const char *mod = probe_module_name(run), *tgt = probe_target_name(run);
	char code[16];

	expo_add(run->out, &M_HANDSHAKE, run->order, c->handshake_ok ? 1 : 0,
		 "module", mod, "target", tgt, "address", c->address, NULL);
	if (!c->handshake_ok)
		expo_add(run->out, &M_ADDR_FAIL, run->order, 1, "module", mod,
			 "target", tgt, "address", c->address, "stage",
			 probe_stage_str(c->stage), "reason",
			 probe_fail_str(c->fail), NULL);
	if (c->handshake_ok)
		expo_add(run->out, &M_VERSION, run->order, 1, "module", mod,
			 "target", tgt, "address", c->address, "version",
			 c->version, "cipher", c->cipher, NULL);
	if (!c->sent)
		return;
	for (int i = 0; i < sk_X509_num(c->sent); i++)
		x509_emit_cert(run->out, run->order, mod, tgt, c->address, i,
			       sk_X509_value(c->sent, i));
	snprintf(code, sizeof(code), "%ld", c->verify);
	expo_add(run->out, &M_VERIFIED, run->order, c->verify == X509_V_OK,
		 "module", mod, "target", tgt, "address", c->address, NULL);
	expo_add(run->out, &M_VERIFIED_INFO, run->order, 1, "module", mod,
		 "target", tgt, "address", c->address, "code", code, "reason",
		 c->verify == X509_V_OK
			 ? "ok"
			 : X509_verify_cert_error_string(c->verify),
		 NULL);
}

/* Write the samples of every address that got somewhere, and end the run
 * with the worst result. */
static void probe_report(struct tls_probe *p, enum probe_fail override)
{
	struct probe_run *run = p->run;
	enum probe_fail fail = PROBE_OK;
	enum probe_stage stage = PROBE_STAGE_DONE;
	size_t first = 0;

	/* sequential mode reports the address that gave the answer; earlier
	 * refused ones are not part of it */
	if (!p->m->every_address && p->next > 0)
		first = p->next - 1;
	for (size_t i = first; i < p->next; i++) {
		struct tls_conn *c = &p->conns[i];

		if (!c->finished) {	/* cut off by the deadline */
			c->finished = true;
			c->fail = override;
			conn_close(c);
		}
		emit_conn(run, c);
		if (c->fail != PROBE_OK && fail == PROBE_OK) {
			fail = c->fail;
			stage = c->stage;
		}
	}
	if (override != PROBE_OK && fail == PROBE_OK)
		fail = override;
	if (stage < run->stage)
		run->stage = stage;
	probe_done(run, fail);
}

static void probe_finish_if_idle(struct tls_probe *p)
{
	if (p->run->done || p->active > 0)
		return;
	/* every_address starts all connections in one go: one that failed
	 * at once must not end the run before the others started */
	if (p->m->every_address && p->next < p->nconns)
		return;
	p->run->stage = PROBE_STAGE_DONE;
	probe_report(p, PROBE_OK);
}

static void tls_cancel(struct probe_run *run, enum probe_fail why)
{
	struct tls_probe *p = run->priv;

	if (!p) {
		probe_done(run, why);
		return;
	}
	dns_cancel(&p->q);
	if (p->nconns == 0) {
		probe_done(run, why);
		return;
	}
	probe_report(p, why);
}

static void tls_release(struct probe_run *run)
{
	struct tls_probe *p = run->priv;

	if (!p)
		return;
	dns_cancel(&p->q);
	for (size_t i = 0; i < p->nconns; i++) {
		conn_close(&p->conns[i]);
		sk_X509_pop_free(p->conns[i].sent, X509_free);
	}
	xfree(p);
	run->priv = NULL;
}

const struct probe_ops tls_probe_ops = {
	.name = "tls",
	.parse = tls_parse,
	.cfg_free = tls_cfg_free,
	.parse_target = tls_parse_target,
	.target_free = tls_target_free,
	.start = tls_start,
	.cancel = tls_cancel,
	.release = tls_release,
};
