/* The tls probe: configuration and the per-address state machine
 * (resolve [SRV, then A/AAAA] -> connect -> [STARTTLS] -> handshake).
 * What a finished run reports lives in tls_report.c. */
#include "tls.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "exporter/config.h"
#include "exporter/xalloc.h"
#include "probes/dns/dns.h"
#include "probes/tls/tls_int.h"

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

/* "_service._proto" as in an SRV name. */
static bool srv_label_ok(const char *s)
{
	const char *dot = strchr(s, '.');

	return s[0] == '_' && dot && dot[1] == '_' && dot[2] &&
	       !strchr(dot + 1, '.') && strlen(s) < 64;
}

static bool dns_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' ||
		      *s == '_'))
			return false;
	return true;
}

static void tls_cfg_free(void *p)
{
	struct tls_module *m = p;

	if (!m)
		return;
	tls_verify_cache_free(m);
	for (unsigned k = 0; k < m->nctx; k++)
		SSL_CTX_free(m->ctx[k]);
	SSL_CTX_free(m->base);
	X509_STORE_free(m->roots);
	xfree(m->srv);
	xfree(m->dns_csv);
	xfree(m->server_name);
	xfree(m->ca_file);
	xfree(m->client_cert);
	xfree(m->client_key);
	tls_revoc_cfg_free(m);
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

/* On a client, OpenSSL calls this when the server sends a
 * CertificateRequest: note it and the CA names it lists (the list
 * Windows servers build from their trusted roots). */
static int on_cert_request(SSL *ssl, void *arg)
{
	struct tls_conn *c = SSL_get_app_data(ssl);
	const STACK_OF(X509_NAME) *names = SSL_get0_peer_CA_list(ssl);

	(void)arg;
	if (!c)
		return 1;
	c->cert_requested = true;
	c->ca_names = 0;
	c->ca_names_bytes = 0;
	for (int i = 0; i < sk_X509_NAME_num(names); i++) {
		int n = i2d_X509_NAME(sk_X509_NAME_value(names, i), NULL);

		c->ca_names++;
		if (n > 0)
			c->ca_names_bytes += (size_t)n;
	}
	return 1;
}

/* A store of just the self-signed certificates of ca_file, when ca_file
 * also holds intermediates (otherwise chain completeness needs no second
 * verification). */
static int make_roots(struct tls_module *m, struct errbuf *eb,
		      const struct cfg_node *at)
{
	STACK_OF(X509_INFO) *infos;
	X509_STORE *roots = NULL;
	BIO *bio;
	int others = 0;

	bio = BIO_new_file(m->ca_file, "r");
	if (!bio)
		return 0;	/* reported when the context loads it */
	infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!infos)
		return 0;
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509 *x = sk_X509_INFO_value(infos, i)->x509;

		if (x && X509_self_signed(x, 0) != 1)
			others++;
	}
	if (others) {
		roots = X509_STORE_new();
		if (!roots) {
			errbuf_add(eb, at, "out of memory");
			sk_X509_INFO_pop_free(infos, X509_INFO_free);
			return -ENOMEM;
		}
		for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
			X509 *x = sk_X509_INFO_value(infos, i)->x509;

			if (x && X509_self_signed(x, 0) == 1)
				X509_STORE_add_cert(roots, x);
		}
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	m->roots = roots;
	return 0;
}

/* One SSL context with the module's settings, in library context lib. */
static SSL_CTX *ctx_new(const struct cfg_node *at, OSSL_LIB_CTX *lib,
			struct errbuf *eb)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(lib, NULL, TLS_client_method());
	char e[256];

	if (!ctx) {
		errbuf_add(eb, at, "tls: cannot create SSL context: %s",
			   ssl_errstr(e, sizeof(e)));
		return NULL;
	}
	/* Level 0 and every protocol version: the point is to *see* weak
	 * certificates and old servers and report them, not to refuse
	 * them. Verification results are reported, never enforced. */
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/* A probe mostly waits for the peer: no 2 x 17 KiB of record
	 * buffers held while it does. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_cert_cb(ctx, on_cert_request, NULL);
	return ctx;
}

/* The trust store and client credentials, read once into m->base (in the
 * default library context: the shard contexts cannot read PEM keys). */
static int load_base(const struct cfg_node *at, struct tls_module *m,
		     struct errbuf *eb)
{
	char e[256];

	m->base = ctx_new(at, NULL, eb);
	if (!m->base)
		return -ENOMEM;
	if (m->ca_file) {
		if (!SSL_CTX_load_verify_locations(m->base, m->ca_file, NULL)) {
			errbuf_add(eb, at, "tls: cannot load ca_file '%s': %s",
				   m->ca_file, ssl_errstr(e, sizeof(e)));
			return -EINVAL;
		}
		if (make_roots(m, eb, at))
			return -ENOMEM;
	} else if (!SSL_CTX_set_default_verify_paths(m->base)) {
		errbuf_add(eb, at, "tls: cannot load the system trust store: %s",
			   ssl_errstr(e, sizeof(e)));
		return -EINVAL;
	}
	if (!m->client_cert)
		return 0;
	if (SSL_CTX_use_certificate_chain_file(m->base, m->client_cert) != 1) {
		errbuf_add(eb, at, "tls: cannot load client_cert '%s': %s",
			   m->client_cert, ssl_errstr(e, sizeof(e)));
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(m->base, m->client_key,
					SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(m->base) != 1) {
		errbuf_add(eb, at, "tls: cannot use client_key '%s': %s",
			   m->client_key, ssl_errstr(e, sizeof(e)));
		return -EINVAL;
	}
	return 0;
}

/* The module's SSL contexts: one per scrape shard, each in the shard's
 * library context (probes/libctx.c), sharing the trust store and client
 * credentials of m->base. */
static int tls_make_ctx(const struct cfg_node *at, struct tls_module *m,
			struct errbuf *eb)
{
	unsigned n = libctx_shards();
	int rc;

	if (!m->client_cert != !m->client_key) {
		errbuf_add(eb, at, "tls: client_cert and client_key go together");
		return -EINVAL;
	}
	rc = load_base(at, m, eb);
	if (rc)
		return rc;
	for (unsigned k = 0; k < n; k++) {
		OSSL_LIB_CTX *lib = libctx_for_shard(k);
		STACK_OF(X509) *chain = NULL;
		SSL_CTX *ctx;

		if (!lib)
			break;	/* the shards from here on share the last */
		ctx = ctx_new(at, lib, eb);
		if (!ctx)
			return -ENOMEM;
		m->ctx[m->nctx++] = ctx;
		SSL_CTX_set1_cert_store(ctx, SSL_CTX_get_cert_store(m->base));
		if (m->client_cert &&
		    (!SSL_CTX_get0_chain_certs(m->base, &chain) ||
		     SSL_CTX_use_cert_and_key(ctx,
					      SSL_CTX_get0_certificate(m->base),
					      SSL_CTX_get0_privatekey(m->base),
					      chain, 1) != 1)) {
			errbuf_add(eb, at, "tls: cannot use client_cert '%s'",
				   m->client_cert);
			return -EINVAL;
		}
	}
	if (tls_verify_cache_install(m)) {
		errbuf_add(eb, at, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* The SSL context for a run: its shard's, or the base one when no shard
 * context could be made. */
static SSL_CTX *ctx_for(const struct tls_probe *p)
{
	const struct tls_module *m = p->m;

	if (!m->nctx)
		return m->base;
	return m->ctx[p->run->shard < m->nctx ? p->run->shard : m->nctx - 1];
}

static void parse_module_key(const struct cfg_pair *p,
			     const struct config *cfg, struct tls_module *m,
			     struct cfg_node *tls_node, struct errbuf *eb)
{
	const char *s = cfg_scalar(&p->vnode);

	if (strcmp(p->key, "every_address") == 0) {
		cfg_get_bool(&p->vnode, eb, &m->every_address);
	} else if (strcmp(p->key, "ip_protocol") == 0) {
		if (s && strcmp(s, "ip4") == 0)
			m->family = AF_INET;
		else if (s && strcmp(s, "ip6") == 0)
			m->family = AF_INET6;
		else if (s && strcmp(s, "any") == 0)
			m->family = AF_UNSPEC;
		else
			errbuf_add(eb, &p->vnode,
				   "ip_protocol must be ip4, ip6 or any");
	} else if (strcmp(p->key, "srv") == 0) {
		if (cfg_get_string(&p->vnode, eb, &m->srv) == 0 &&
		    !srv_label_ok(m->srv))
			errbuf_add(eb, &p->vnode,
				   "srv must look like _service._proto "
				   "(e.g. _sipfederationtls._tcp)");
	} else if (strcmp(p->key, "starttls") == 0) {
		if (!s || starttls_proto_parse(s, &m->starttls))
			errbuf_add(eb, &p->vnode,
				   "starttls must be smtp, imap, pop3, ftp, "
				   "ldap or xmpp");
	} else if (strcmp(p->key, "dns_servers") == 0) {
		char **v = NULL;
		size_t n = 0;

		cfg_get_dns_servers(&p->vnode, eb, &v, &n, &m->dns_csv);
		cfg_strings_free(v, n);
	} else if (strcmp(p->key, "tls") == 0) {
		*tls_node = p->vnode;
		tls_parse_tls_block(&p->vnode, cfg, m, eb);
	} else if (strcmp(p->key, "revocation") == 0) {
		tls_revoc_parse(&p->vnode, cfg, m, eb);	/* tls_revoc.c */
	} else {
		errbuf_add(eb, &p->knode,
			   "module: unknown key '%s' for prober tls", p->key);
	}
}

static int tls_parse(const struct cfg_node *n, const struct config *cfg,
		     void **cfgp, struct errbuf *eb)
{
	struct tls_module *m = xcalloc(1, sizeof(*m));
	unsigned before = eb->count;
	struct cfg_node tls_node = {0};

	if (!m)
		return -ENOMEM;
	m->family = AF_UNSPEC;
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;

		cfg_map_pair(n, i, &p);
		if (cfg_module_common_key(p.key))
			continue;	/* handled by config.c */
		parse_module_key(&p, cfg, m, &tls_node, eb);
	}
	if (eb->count == before)
		tls_make_ctx(tls_node.node ? &tls_node : n, m, eb);
	if (eb->count != before) {
		tls_cfg_free(m);
		return -EINVAL;
	}
	*cfgp = m;
	return 0;
}

/* Targets: "host:port", "[v6]:port", an SRV name "_svc._proto.domain",
 * or a bare domain when the module sets srv. */
static int tls_parse_target(const void *cfg, const char *s, void **tp,
			    char *err, size_t errlen)
{
	const struct tls_module *m = cfg;
	struct tls_target *t = xcalloc(1, sizeof(*t));
	struct sockaddr_in *s4;
	struct sockaddr_in6 *s6;

	if (!t)
		return -ENOMEM;
	if (s[0] == '_' || (m->srv && !strchr(s, ':'))) {
		if (!dns_name_ok(s) || (s[0] == '_' && !strstr(s, "._"))) {
			snprintf(err, errlen, "not a valid domain or SRV name");
			xfree(t);
			return -EINVAL;
		}
		if (s[0] == '_')
			snprintf(t->srv_name, sizeof(t->srv_name), "%s", s);
		else
			snprintf(t->srv_name, sizeof(t->srv_name), "%s.%s",
				 m->srv, s);
		*tp = t;
		return 0;
	}
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
	} else if (!dns_name_ok(t->host)) {
		snprintf(err, errlen, "not a valid host name");
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
static void host_next(struct tls_host *h);
static void probe_finish_if_idle(struct tls_probe *p);

static void conn_close(struct tls_conn *c)
{
	loop_timer_cancel(c->p->run->loop, &c->verdict);
	loop_timer_cancel(c->p->run->loop, &c->connect_timer);
	loop_io_del(c->p->run->loop, &c->io);
	if (c->ssl) {
		SSL_set_app_data(c->ssl, NULL);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	starttls_free(c->st);
	c->st = NULL;
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

/* One address is done (good or bad). In sequential mode a connection
 * failure moves on to the host's next address instead. */
static void conn_end(struct tls_conn *c, enum probe_fail fail)
{
	struct tls_probe *p = c->p;
	struct tls_host *h = c->h;

	if (c->finished)
		return;
	c->finished = true;
	c->fail = fail;
	if (fail == PROBE_OK)
		c->stage = PROBE_STAGE_DONE;
	conn_close(c);
	p->active--;
	if (fail != PROBE_OK && c->stage == PROBE_STAGE_CONNECT &&
	    !p->m->every_address && h->next < h->first + h->n) {
		c->superseded = true;
		host_next(h);
		return;
	}
	probe_finish_if_idle(p);
}

static void conn_on_io(struct loop_io *io, uint32_t events)
{
	(void)events;
	conn_step(io->arg);
}

static int conn_arm(struct tls_conn *c, uint32_t ev)
{
	struct loop *l = c->p->run->loop;

	if (c->io.fd < 0)
		return loop_io_add(l, &c->io, c->fd, ev);
	return loop_io_mod(l, &c->io, ev);
}

static STACK_OF(X509) *chain_dup(STACK_OF(X509) *chain)
{
	STACK_OF(X509) *out;

	if (!chain)
		return NULL;
	out = sk_X509_new_null();
	for (int i = 0; out && i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);

		if (X509_up_ref(x) && !sk_X509_push(out, x))
			X509_free(x);
	}
	return out;
}

static void conn_collect(struct tls_conn *c)
{
	const char *v = SSL_get_version(c->ssl);
	const char *ci = SSL_get_cipher_name(c->ssl);

	snprintf(c->version, sizeof(c->version), "%s", v ? v : "");
	snprintf(c->cipher, sizeof(c->cipher), "%s", ci ? ci : "");
	c->verify = SSL_get_verify_result(c->ssl);
	/* on the client side the peer chain starts with the leaf, in the
	 * order the server sent them */
	if (!c->sent)
		c->sent = chain_dup(SSL_get_peer_cert_chain(c->ssl));
	if (!c->verified && c->verify == X509_V_OK)
		c->verified = chain_dup(SSL_get0_verified_chain(c->ssl));
	tls_revoc_collect(c);	/* the stapled OCSP response, if asked */
}

static enum probe_fail ssl_fail(int ret, int err)
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
		/* OpenSSL 3 reports a peer that hangs up mid-handshake as an
		 * SSL error, not a syscall EOF */
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
			return PROBE_FAIL_EOF;
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
			return PROBE_FAIL_TLS_ALERT;
		return PROBE_FAIL_TLS;
	default:
		return PROBE_FAIL_TLS;
	}
}

/* How long a TLS 1.3 server that asked for a client certificate gets to
 * say no after our Finished (it normally answers at once: an alert, or a
 * session ticket meaning yes). */
#define TLS_VERDICT_NS (500 * 1000000LL)

static void conn_accepted(struct tls_conn *c)
{
	c->handshake_ok = true;
	/* best effort close_notify, never waited for */
	ERR_clear_error();
	SSL_shutdown(c->ssl);
	conn_end(c, PROBE_OK);
}

static void on_verdict_timeout(struct loop_timer *t)
{
	struct tls_conn *c = t->arg;

	if (!c->finished)
		conn_accepted(c);	/* the server said nothing: no rejection */
}

/* TLS 1.3 moves the client's certificate after the client's Finished: our
 * handshake "succeeds" before the server has looked at it, and a server
 * that requires one rejects us with an alert afterwards. Read once to see
 * which it is. */
static void conn_verdict(struct tls_conn *c)
{
	char byte;
	int ret, err;

	ERR_clear_error();
	ret = SSL_read(c->ssl, &byte, 1);
	err = ret > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, ret);
	if (ret > 0 || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		/* data or a session ticket: the server went on with us */
		conn_accepted(c);
		return;
	}
	c->handshake_ok = false;
	conn_end(c, ssl_fail(ret, err));
	ERR_clear_error();
}

static void conn_handshake(struct tls_conn *c)
{
	int ret, err;

	if (c->awaiting_verdict) {
		conn_verdict(c);
		return;
	}
	ERR_clear_error();
	ret = SSL_do_handshake(c->ssl);
	if (ret == 1) {
		conn_collect(c);
		if (c->cert_requested && SSL_version(c->ssl) == TLS1_3_VERSION) {
			c->awaiting_verdict = true;
			loop_timer_init(&c->verdict, on_verdict_timeout, c);
			if (loop_timer_set(c->p->run->loop, &c->verdict,
					   loop_now() + TLS_VERDICT_NS) ||
			    conn_arm(c, EPOLLIN))
				conn_end(c, PROBE_FAIL_INTERNAL);
			return;
		}
		conn_accepted(c);
		return;
	}
	err = SSL_get_error(c->ssl, ret);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		if (conn_arm(c, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT))
			conn_end(c, PROBE_FAIL_INTERNAL);
		return;
	}
	/* A failed handshake may still have shown us certificates (e.g.
	 * the server rejected our missing client certificate after
	 * sending its own): keep them. */
	if (SSL_get_peer_cert_chain(c->ssl))
		conn_collect(c);
	conn_end(c, ssl_fail(ret, err));
	ERR_clear_error();
}

static void conn_begin_tls(struct tls_conn *c)
{
	struct tls_probe *p = c->p;
	const char *sni;

	c->stage = PROBE_STAGE_HANDSHAKE;
	if (p->run->stage < PROBE_STAGE_HANDSHAKE)
		p->run->stage = PROBE_STAGE_HANDSHAKE;
	c->ssl = SSL_new(ctx_for(p));
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
		conn_end(c, PROBE_FAIL_INTERNAL);
		return;
	}
	SSL_set_app_data(c->ssl, c);
	SSL_set_connect_state(c->ssl);
	tls_revoc_prepare(c);	/* ask for a stapled OCSP response */
	sni = p->m->server_name ? p->m->server_name : c->h->name;
	if (!(p->t->is_ip && !c->h->from_srv && !p->m->server_name))
		SSL_set_tlsext_host_name(c->ssl, sni);
	conn_handshake(c);
}

static void conn_starttls(struct tls_conn *c)
{
	enum starttls_status s = starttls_step(c->st, c->fd);

	switch (s) {
	case STARTTLS_DONE:
		starttls_free(c->st);
		c->st = NULL;
		conn_begin_tls(c);
		return;
	case STARTTLS_WANT_READ:
	case STARTTLS_WANT_WRITE:
		if (conn_arm(c, s == STARTTLS_WANT_READ ? EPOLLIN : EPOLLOUT))
			conn_end(c, PROBE_FAIL_INTERNAL);
		return;
	case STARTTLS_FAILED:
		snprintf(c->starttls_err, sizeof(c->starttls_err), "%s",
			 starttls_error(c->st));
		conn_end(c, PROBE_FAIL_STARTTLS);
		return;
	}
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
			conn_end(c, errno_fail(soerr));
			return;
		}
		loop_timer_cancel(p->run->loop, &c->connect_timer);
		if (p->m->starttls != STARTTLS_NONE) {
			c->stage = PROBE_STAGE_STARTTLS;
			if (p->run->stage < PROBE_STAGE_STARTTLS)
				p->run->stage = PROBE_STAGE_STARTTLS;
			c->st = starttls_new(p->m->starttls, c->h->name);
			if (!c->st) {
				conn_end(c, PROBE_FAIL_INTERNAL);
				return;
			}
		} else {
			conn_begin_tls(c);
			return;
		}
	}
	if (c->stage == PROBE_STAGE_STARTTLS) {
		conn_starttls(c);
		return;
	}
	conn_handshake(c);
}

static void on_connect_timeout(struct loop_timer *t)
{
	struct tls_conn *c = t->arg;

	/* a silently dropped SYN: conn_end moves on to the next address */
	if (!c->finished && c->stage == PROBE_STAGE_CONNECT)
		conn_end(c, PROBE_FAIL_TIMEOUT);
}

/* Without every_address the addresses of a host are tried in turn; one
 * that drops SYNs must not eat the whole budget of the ones after it. */
static void arm_connect_timer(struct tls_conn *c)
{
	struct tls_probe *p = c->p;
	struct tls_host *h = c->h;
	size_t left = h->first + h->n - h->next + 1;	/* this one included */
	int64_t now = loop_now(), budget;

	if (p->m->every_address || left <= 1 || p->run->deadline <= now)
		return;
	budget = (p->run->deadline - now) / (int64_t)left;
	loop_timer_set(p->run->loop, &c->connect_timer, now + budget);
}

static void conn_start(struct tls_conn *c)
{
	struct tls_probe *p = c->p;
	int one = 1;

	c->started = true;
	c->stage = PROBE_STAGE_CONNECT;
	p->active++;
	c->fd = socket(c->sa.ss_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_end(c, PROBE_FAIL_INTERNAL);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&c->sa, c->salen) == -1 &&
	    errno != EINPROGRESS) {
		conn_end(c, errno_fail(errno));
		return;
	}
	if (conn_arm(c, EPOLLOUT)) {
		conn_end(c, PROBE_FAIL_INTERNAL);
		return;
	}
	arm_connect_timer(c);
}

/* Start the host's next address: all of them with every_address. */
static void host_next(struct tls_host *h)
{
	struct tls_probe *p = h->p;

	while (h->next < h->first + h->n) {
		conn_start(&p->conns[h->next++]);
		if (p->run->done || !p->m->every_address)
			return;
	}
	probe_finish_if_idle(p);
}

/* Every lookup is back: lay out one connection per distinct address and
 * start them. */
static void probe_connect(struct tls_probe *p)
{
	size_t total = 0, k = 0;

	for (size_t i = 0; i < p->nhosts; i++)
		total += p->hosts[i].naddrs;
	if (total == 0) {
		enum probe_fail f = PROBE_FAIL_NODATA;

		for (size_t i = 0; i < p->nhosts; i++)
			if (p->hosts[i].fail != PROBE_OK) {
				f = p->hosts[i].fail;
				break;
			}
		p->run->stage = PROBE_STAGE_RESOLVE;
		for (size_t i = 0; i < p->nhosts; i++)
			tls_report_host(p->run, &p->hosts[i]);
		probe_done(p->run, f);
		return;
	}
	/* the connections never move once started: their loop_io is
	 * registered with epoll */
	p->conns = xcalloc(total, sizeof(*p->conns));
	if (!p->conns) {
		probe_done(p->run, PROBE_FAIL_INTERNAL);
		return;
	}
	for (size_t i = 0; i < p->nhosts; i++) {
		struct tls_host *h = &p->hosts[i];

		h->first = k;
		for (size_t a = 0; a < h->naddrs; a++) {
			struct tls_conn *c = &p->conns[k];
			bool dup = false;

			/* two SRV records naming one address:port would give
			 * two identical series; probe it once */
			for (size_t j = 0; j < k && !dup; j++)
				dup = p->conns[j].salen == h->addrlens[a] &&
				      memcmp(&p->conns[j].sa, &h->addrs[a],
					     h->addrlens[a]) == 0;
			if (dup)
				continue;
			c->p = p;
			c->h = h;
			c->fd = -1;
			loop_io_init(&c->io, conn_on_io, c);
			loop_timer_init(&c->verdict, on_verdict_timeout, c);
			loop_timer_init(&c->connect_timer, on_connect_timeout, c);
			memcpy(&c->sa, &h->addrs[a], h->addrlens[a]);
			c->salen = h->addrlens[a];
			format_address(c);
			k++;
		}
		h->n = k - h->first;
		h->next = h->first;
	}
	p->nconns = k;
	if (p->run->stage < PROBE_STAGE_CONNECT)
		p->run->stage = PROBE_STAGE_CONNECT;
	/* a connection refused at once must not end the run before the
	 * other hosts got their turn */
	p->starting = true;
	for (size_t i = 0; i < p->nhosts && !p->run->done; i++)
		if (p->hosts[i].n)
			host_next(&p->hosts[i]);
	p->starting = false;
	probe_finish_if_idle(p);
}

static void host_add_addr(struct tls_host *h, const struct sockaddr *sa,
			  socklen_t len)
{
	if (h->naddrs >= TLS_ADDRS_MAX || len > sizeof(h->addrs[0]))
		return;
	for (size_t i = 0; i < h->naddrs; i++)
		if (h->addrlens[i] == len &&
		    memcmp(&h->addrs[i], sa, len) == 0)
			return;	/* c-ares may repeat an address */
	memcpy(&h->addrs[h->naddrs], sa, len);
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&h->addrs[h->naddrs])->sin_port =
			htons((uint16_t)h->port);
	else
		((struct sockaddr_in6 *)&h->addrs[h->naddrs])->sin6_port =
			htons((uint16_t)h->port);
	h->addrlens[h->naddrs++] = len;
}

static enum probe_fail ares_fail(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
		return PROBE_FAIL_NXDOMAIN;
	case ARES_ENODATA:
		return PROBE_FAIL_NODATA;
	case ARES_ETIMEOUT:
		return PROBE_FAIL_TIMEOUT;
	default:
		return PROBE_FAIL_DNS;
	}
}

static void on_host_resolved(void *arg, int status,
			     const struct ares_addrinfo *ai)
{
	struct tls_host *h = arg;
	struct tls_probe *p = h->p;

	/* c-ares 1.18 resets a whole server connection when one *other*
	 * answer is broken (a truncated UDP reply, then a short TCP one),
	 * ending every lookup in flight on that channel with ECONNREFUSED.
	 * Ask once more on a resolver of this run's own, which no other
	 * target's broken answer can reach. */
	if (status == ARES_ECONNREFUSED && !h->retried && !p->run->done) {
		const char *servers = p->m->dns_csv
					      ? p->m->dns_csv
					      : p->run->config->global.dns_csv;

		h->retried = true;
		if ((p->private_dns ||
		     dns_new(p->run->loop, servers, &p->private_dns) == 0) &&
		    dns_resolve(p->private_dns, h->name, p->m->family,
				on_host_resolved, h, &h->q) == 0)
			return;
	}
	if (status != ARES_SUCCESS)
		h->fail = ares_fail(status);
	for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n;
	     n = n->ai_next)
		if (n->ai_family == AF_INET || n->ai_family == AF_INET6)
			host_add_addr(h, n->ai_addr, n->ai_addrlen);
	if (status == ARES_SUCCESS && h->naddrs == 0)
		h->fail = PROBE_FAIL_NODATA;
	if (--p->pending == 0 && !p->run->done)
		probe_connect(p);
}

static struct dns *probe_resolver(struct tls_probe *p)
{
	return probe_dns(p->run, p->m->dns_csv ? p->m->dns_csv
					       : p->run->config->global.dns_csv);
}

/* Resolve every host; an IP literal needs no lookup. */
static void resolve_hosts(struct tls_probe *p)
{
	struct dns *d = NULL;

	p->pending = p->nhosts + 1;	/* +1: the loop below holds one */
	for (size_t i = 0; i < p->nhosts && !p->run->done; i++) {
		struct tls_host *h = &p->hosts[i];
		struct sockaddr_storage ss;
		struct sockaddr_in *s4 = (void *)&ss;
		struct sockaddr_in6 *s6 = (void *)&ss;

		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, h->name, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			host_add_addr(h, (void *)s4, sizeof(*s4));
			p->pending--;
			continue;
		}
		if (inet_pton(AF_INET6, h->name, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			host_add_addr(h, (void *)s6, sizeof(*s6));
			p->pending--;
			continue;
		}
		if (!d)
			d = probe_resolver(p);
		if (!d || dns_resolve(d, h->name, p->m->family,
				      on_host_resolved, h, &h->q)) {
			h->fail = PROBE_FAIL_INTERNAL;
			p->pending--;
		}
	}
	if (--p->pending == 0 && !p->run->done)
		probe_connect(p);
}

static void on_srv(void *arg, int status, const struct dns_srv *recs,
		   size_t n)
{
	struct tls_probe *p = arg;

	if (status != ARES_SUCCESS) {
		probe_done(p->run, ares_fail(status));
		return;
	}
	if (n > TLS_HOSTS_MAX)
		n = TLS_HOSTS_MAX;
	p->hosts = xcalloc(n ? n : 1, sizeof(*p->hosts));
	if (!p->hosts) {
		probe_done(p->run, PROBE_FAIL_INTERNAL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct tls_host *h = &p->hosts[p->nhosts++];

		h->p = p;
		h->from_srv = true;
		snprintf(h->name, sizeof(h->name), "%s", recs[i].host);
		h->port = recs[i].port;
		h->priority = recs[i].priority;
		h->weight = recs[i].weight;
	}
	resolve_hosts(p);
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
	run->priv = p;
	if (t->srv_name[0]) {
		run->stage = PROBE_STAGE_RESOLVE;
		d = probe_resolver(p);
		if (!d)
			return -ENOMEM;
		return dns_resolve_srv(d, t->srv_name, on_srv, p, &p->srvq);
	}
	p->hosts = xcalloc(1, sizeof(*p->hosts));
	if (!p->hosts)
		return -ENOMEM;
	p->nhosts = 1;
	p->hosts[0].p = p;
	snprintf(p->hosts[0].name, sizeof(p->hosts[0].name), "%s", t->host);
	p->hosts[0].port = t->port;
	if (!t->is_ip)
		run->stage = PROBE_STAGE_RESOLVE;
	resolve_hosts(p);
	return 0;
}

/* Write the samples of every address that got somewhere, and end the run
 * with the first failure (success needs every address). */
static void probe_report(struct tls_probe *p, enum probe_fail override)
{
	struct probe_run *run = p->run;
	enum probe_fail fail = PROBE_OK;
	enum probe_stage stage = PROBE_STAGE_DONE;

	for (size_t i = 0; i < p->nhosts; i++) {
		tls_report_host(run, &p->hosts[i]);
		if (p->hosts[i].fail != PROBE_OK && fail == PROBE_OK) {
			fail = p->hosts[i].fail;
			stage = PROBE_STAGE_RESOLVE;
		}
	}
	for (size_t i = 0; i < p->nconns; i++) {
		struct tls_conn *c = &p->conns[i];

		if (!c->started || c->superseded)
			continue;
		if (!c->finished) {	/* cut off by the deadline */
			c->finished = true;
			c->fail = override;
			conn_close(c);
		}
		tls_report_conn(run, c);
		if (c->fail != PROBE_OK && fail == PROBE_OK) {
			fail = c->fail;
			stage = c->stage;
		}
	}
	if (override != PROBE_OK && fail == PROBE_OK)
		fail = override;
	tls_revoc_report(p, override);	/* pki_cert_revoked, pki_crl_*, ... */
	run->stage = stage;
	probe_done(run, fail);
}

/* The revocation check of a finished run is over (tls_revoc.c). */
static void revoc_done(void *arg)
{
	probe_report(arg, PROBE_OK);
}

static void probe_finish_if_idle(struct tls_probe *p)
{
	if (p->run->done || p->active > 0 || !p->conns || p->starting)
		return;
	/* every_address starts a host's connections in one go: one that
	 * failed at once must not end the run before the others started */
	for (size_t i = 0; i < p->nhosts; i++)
		if (p->m->every_address &&
		    p->hosts[i].next < p->hosts[i].first + p->hosts[i].n)
			return;
	/* with `revocation:`, check the chains first (tls_revoc.c) */
	if (p->revoc || tls_revoc_begin(p, revoc_done))
		return;
	probe_report(p, PROBE_OK);
}

static void tls_cancel(struct probe_run *run, enum probe_fail why)
{
	struct tls_probe *p = run->priv;

	if (!p) {
		probe_done(run, why);
		return;
	}
	dns_cancel(&p->srvq);
	for (size_t i = 0; i < p->nhosts; i++)
		dns_cancel(&p->hosts[i].q);
	if (!p->conns) {	/* still resolving */
		for (size_t i = 0; i < p->nhosts; i++)
			tls_report_host(run, &p->hosts[i]);
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
	dns_cancel(&p->srvq);
	for (size_t i = 0; i < p->nhosts; i++)
		dns_cancel(&p->hosts[i].q);
	tls_revoc_free(p);
	for (size_t i = 0; i < p->nconns; i++) {
		conn_close(&p->conns[i]);
		sk_X509_pop_free(p->conns[i].sent, X509_free);
		sk_X509_pop_free(p->conns[i].verified, X509_free);
	}
	xfree(p->conns);
	xfree(p->hosts);
	dns_free(p->private_dns);	/* its queries were cancelled above */
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
