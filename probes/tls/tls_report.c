/* What a tls run reports: per address, the handshake, the certificates
 * sent and the verified chain, with the chain-health facts UC estates need
 * (hostname match, Server Authentication EKU, weak signatures, complete
 * chain, CA names of a client-certificate request). */
#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "exporter/expo.h"
#include "probes/tls/tls_int.h"
#include "probes/x509/x509.h"
#include "probes/x509/x509_metrics.h"

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
static const struct metric_desc M_COMPLETE = {
	"pki_tls_chain_complete",
	"Whether the certificates the server sent reach a trust anchor without "
	"fetching anything (1), or an intermediate is missing (0).",
	METRIC_GAUGE};
static const struct metric_desc M_HOSTNAME = {
	"pki_tls_hostname_match",
	"Whether the leaf certificate matches the name probed (SANs; the CN "
	"only when there is no DNS SAN).",
	METRIC_GAUGE};
static const struct metric_desc M_SERVER_AUTH = {
	"pki_tls_server_auth_eku",
	"Whether the leaf certificate may be used for TLS servers (EKU "
	"serverAuth, anyExtendedKeyUsage, or no EKU).",
	METRIC_GAUGE};
static const struct metric_desc M_URL = {
	"pki_cert_url_info",
	"CRL distribution point and AIA URLs of a certificate (kind cdp, ocsp "
	"or ca_issuers), value 1.",
	METRIC_GAUGE};
static const struct metric_desc M_VCHAIN_NOT_AFTER = {
	"pki_tls_verified_chain_not_after_timestamp_seconds",
	"notAfter of each certificate of the verified chain, including the "
	"trust anchor the server did not send (position 0 = leaf).",
	METRIC_GAUGE};
static const struct metric_desc M_CERT_REQ = {
	"pki_tls_client_cert_requested",
	"Whether the server asked for a client certificate.", METRIC_GAUGE};
static const struct metric_desc M_CA_NAMES = {
	"pki_tls_client_ca_names",
	"CA names the server listed in its client-certificate request.",
	METRIC_GAUGE};
static const struct metric_desc M_CA_BYTES = {
	"pki_tls_client_ca_names_bytes",
	"Sum of the DER sizes of those CA names (Windows truncates the list "
	"past 16 KiB).",
	METRIC_GAUGE};
static const struct metric_desc M_ADDR_FAIL = {
	"pki_tls_failure_info",
	"Why the probe of this address failed: stage reached and reason; "
	"value 1.",
	METRIC_GAUGE};
static const struct metric_desc M_STARTTLS_ERR = {
	"pki_tls_starttls_error_info",
	"What went wrong in the STARTTLS exchange, value 1.", METRIC_GAUGE};
static const struct metric_desc M_SRV = {
	"pki_tls_srv_record_info",
	"An SRV record found for the target, value 1; every record is probed.",
	METRIC_GAUGE};
static const struct metric_desc M_SRV_FAIL = {
	"pki_tls_srv_host_resolved",
	"Whether the host of an SRV record resolved to an address.",
	METRIC_GAUGE};

void tls_report_host(struct probe_run *run, const struct tls_host *h)
{
	char port[8], prio[12], weight[12];

	if (!h->from_srv)
		return;
	snprintf(port, sizeof(port), "%u", h->port);
	snprintf(prio, sizeof(prio), "%u", h->priority);
	snprintf(weight, sizeof(weight), "%u", h->weight);
	expo_add(run->out, &M_SRV, run->order, 1, "module",
		 probe_module_name(run), "target", probe_target_name(run),
		 "host", h->name, "port", port, "priority", prio, "weight",
		 weight, NULL);
	/* priority and weight too: two records may name one host:port */
	expo_add(run->out, &M_SRV_FAIL, run->order, h->fail == PROBE_OK,
		 "module", probe_module_name(run), "target",
		 probe_target_name(run), "host", h->name, "port", port,
		 "priority", prio, "weight", weight, NULL);
}

/* The name the leaf must match: the module's override, else the host
 * probed (an SRV record's host for discovered servers). */
static int hostname_match(const struct tls_conn *c, X509 *leaf)
{
	const struct tls_module *m = c->p->m;
	const char *name = m->server_name ? m->server_name : c->h->name;

	if (!m->server_name && c->p->t->is_ip && !c->h->from_srv)
		return X509_check_ip_asc(leaf, name, 0) == 1;
	return X509_check_host(leaf, name, 0, 0, NULL) == 1;
}

static bool is_issuer_err(long err)
{
	return err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	       err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT;
}

static bool was_sent(const struct tls_conn *c, X509 *x)
{
	for (int i = 0; i < sk_X509_num(c->sent); i++)
		if (X509_cmp(sk_X509_value(c->sent, i), x) == 0)
			return true;
	return false;
}

/* Does the trust store hold an issuer of x (then not a self-signed one:
 * x was verified against the anchors alone and found none)? */
static bool store_has_issuer(X509_STORE *store, X509 *x)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *issuer = NULL;
	bool found;

	if (!ctx || !X509_STORE_CTX_init(ctx, store, x, NULL)) {
		X509_STORE_CTX_free(ctx);
		return false;
	}
	found = X509_STORE_CTX_get1_issuer(&issuer, ctx, x) == 1;
	X509_free(issuer);
	X509_STORE_CTX_free(ctx);
	return found;
}

/* Complete as sent: the certificates the server sent lead from its leaf to
 * a self-signed anchor, or up to a CA certificate whose issuer is nowhere
 * (neither sent nor in the trust store). The latter is an unknown root,
 * which servers need not send: whether it is trusted is
 * pki_tls_chain_verified's business, and calling it a missing
 * intermediate would send the admin to fix the wrong thing. Incomplete:
 * the leaf's own issuer was not sent, or the top of what was sent is
 * issued by an intermediate of the trust store (the server should send
 * it). Expiry does not count here. 1, 0, or -1 when it cannot tell. */
int tls_chain_complete(const struct tls_conn *c)
{
	const struct tls_module *m = c->p->m;
	X509_STORE *all = SSL_CTX_get_cert_store(m->base);
	X509_STORE_CTX *ctx;
	X509 *leaf = sk_X509_value(c->sent, 0), *top;
	int err, ok, complete;

	/* a trust store of roots only: the verification already done is the
	 * same walk, and only a missing issuer needs a closer look */
	if (!m->roots && !is_issuer_err(c->verify))
		return 1;
	ctx = X509_STORE_CTX_new();
	if (!ctx || !X509_STORE_CTX_init(ctx, m->roots ? m->roots : all, leaf,
					 c->sent)) {
		X509_STORE_CTX_free(ctx);
		return -1;
	}
	X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx),
				    X509_V_FLAG_NO_CHECK_TIME);
	ok = X509_verify_cert(ctx);
	err = X509_STORE_CTX_get_error(ctx);
	if (ok == 1 || !is_issuer_err(err)) {
		X509_STORE_CTX_free(ctx);
		return 1;
	}
	/* the certificate whose issuer is missing */
	top = X509_STORE_CTX_get_current_cert(ctx);
	if (!top || X509_cmp(top, leaf) == 0 || !was_sent(c, top))
		complete = 0;
	else
		complete = !(m->roots && store_has_issuer(all, top));
	X509_STORE_CTX_free(ctx);
	return complete;
}

static void emit_urls(struct probe_run *run, const char *address,
		      const char *pos, const struct x509_facts *f)
{
	const struct {
		const char *kind, *list;
	} kinds[] = {{"cdp", f->cdp}, {"ocsp", f->ocsp},
		     {"ca_issuers", f->ca_issuers}};

	for (size_t k = 0; k < 3; k++) {
		const char *s = kinds[k].list;

		while (s && *s) {
			size_t n = strcspn(s, " ");
			char url[1024];

			snprintf(url, sizeof(url), "%.*s", (int)n, s);
			expo_add(run->out, &M_URL, run->order, 1, "module",
				 probe_module_name(run), "target",
				 probe_target_name(run), "address", address,
				 "position", pos, "serial", f->serial, "kind",
				 kinds[k].kind, "url", url, NULL);
			s += n;
			s += strspn(s, " ");
		}
	}
}

static void emit_sent(struct probe_run *run, const struct tls_conn *c)
{
	const char *mod = probe_module_name(run), *tgt = probe_target_name(run);

	for (int i = 0; i < sk_X509_num(c->sent); i++) {
		X509 *x = sk_X509_value(c->sent, i);
		struct x509_facts f;
		char pos[12];

		if (x509_facts_init(&f, x))
			continue;
		snprintf(pos, sizeof(pos), "%d", i);
		/* dates, facts, weak signature and key */
		x509_emit_facts(run->out, run->order, mod, tgt, c->address, i,
				&f);
		emit_urls(run, c->address, pos, &f);
		if (i == 0)
			expo_add(run->out, &M_SERVER_AUTH, run->order,
				 f.server_auth, "module", mod, "target", tgt,
				 "address", c->address, NULL);
		x509_facts_cleanup(&f);
	}
}

static void emit_verified(struct probe_run *run, const struct tls_conn *c)
{
	const char *mod = probe_module_name(run), *tgt = probe_target_name(run);

	for (int i = 0; c->verified && i < sk_X509_num(c->verified); i++) {
		X509 *x = sk_X509_value(c->verified, i);
		char pos[12], serial[132], subj[256], iss[256];
		int64_t na;

		if (x509_time_to_unix(X509_get0_notAfter(x), &na))
			continue;
		snprintf(pos, sizeof(pos), "%d", i);
		x509_name_cn(X509_get_subject_name(x), subj, sizeof(subj));
		x509_name_cn(X509_get_issuer_name(x), iss, sizeof(iss));
		x509_serial_hex(X509_get0_serialNumber(x), serial,
				sizeof(serial));
		expo_add(run->out, &M_VCHAIN_NOT_AFTER, run->order, (double)na,
			 "module", mod, "target", tgt, "address", c->address,
			 "position", pos, "subject_cn", subj, "issuer_cn", iss,
			 "serial", serial, NULL);
	}
}

void tls_report_conn(struct probe_run *run, const struct tls_conn *c)
{
	const char *mod = probe_module_name(run), *tgt = probe_target_name(run);
	char code[16];
	int complete;

	expo_add(run->out, &M_HANDSHAKE, run->order, c->handshake_ok, "module",
		 mod, "target", tgt, "address", c->address, NULL);
	if (!c->handshake_ok)
		expo_add(run->out, &M_ADDR_FAIL, run->order, 1, "module", mod,
			 "target", tgt, "address", c->address, "stage",
			 probe_stage_str(c->stage), "reason",
			 probe_fail_str(c->fail), NULL);
	if (c->starttls_err[0])
		expo_add(run->out, &M_STARTTLS_ERR, run->order, 1, "module",
			 mod, "target", tgt, "address", c->address, "error",
			 c->starttls_err, NULL);
	if (c->handshake_ok)
		expo_add(run->out, &M_VERSION, run->order, 1, "module", mod,
			 "target", tgt, "address", c->address, "version",
			 c->version, "cipher", c->cipher, NULL);
	/* Known once the handshake got that far: a server that demands a
	 * client certificate and refuses us has still sent its list of CA
	 * names, and that is when an oversized list matters most. */
	if (c->handshake_ok || c->cert_requested) {
		expo_add(run->out, &M_CERT_REQ, run->order, c->cert_requested,
			 "module", mod, "target", tgt, "address", c->address,
			 NULL);
		expo_add(run->out, &M_CA_NAMES, run->order, c->ca_names,
			 "module", mod, "target", tgt, "address", c->address,
			 NULL);
		expo_add(run->out, &M_CA_BYTES, run->order,
			 (double)c->ca_names_bytes, "module", mod, "target", tgt,
			 "address", c->address, NULL);
	}
	if (!c->sent || sk_X509_num(c->sent) == 0)
		return;
	emit_sent(run, c);
	emit_verified(run, c);
	expo_add(run->out, &M_HOSTNAME, run->order,
		 hostname_match(c, sk_X509_value(c->sent, 0)), "module", mod,
		 "target", tgt, "address", c->address, NULL);
	snprintf(code, sizeof(code), "%ld", c->verify);
	expo_add(run->out, &M_VERIFIED, run->order, c->verify == X509_V_OK,
		 "module", mod, "target", tgt, "address", c->address, NULL);
	expo_add(run->out, &M_VERIFIED_INFO, run->order, 1, "module", mod,
		 "target", tgt, "address", c->address, "code", code, "reason",
		 c->verify == X509_V_OK
			 ? "ok"
			 : X509_verify_cert_error_string(c->verify),
		 NULL);
	complete = tls_chain_complete(c);
	if (complete >= 0)
		expo_add(run->out, &M_COMPLETE, run->order, complete, "module",
			 mod, "target", tgt, "address", c->address, NULL);
}
