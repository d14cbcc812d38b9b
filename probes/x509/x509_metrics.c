#include "x509_metrics.h"

#include <stdio.h>

const struct metric_desc x509_m_not_after = {
	"pki_cert_not_after_timestamp_seconds",
	"Certificate notAfter as Unix time: for tls every certificate the "
	"server sent (position 0 = leaf), for store and file every certificate "
	"of a file (position = index within the file).",
	METRIC_GAUGE};
const struct metric_desc x509_m_not_before = {
	"pki_cert_not_before_timestamp_seconds",
	"Certificate notBefore as Unix time.", METRIC_GAUGE};
const struct metric_desc x509_m_cert_info = {
	"pki_cert_info",
	"Facts about a certificate (sent by a server, or found in a store or "
	"file), value 1.",
	METRIC_GAUGE};

static const struct metric_desc M_WEAK_SIG = {
	"pki_cert_weak_signature",
	"1 when a certificate below the trust anchor is signed with MD5 or "
	"SHA-1 (or MD2/MD4).",
	METRIC_GAUGE};
static const struct metric_desc M_WEAK_KEY = {
	"pki_cert_weak_key",
	"1 when a certificate's key is RSA/DSA under 2048 bits or EC under 224.",
	METRIC_GAUGE};

void x509_emit_facts(struct expo_set *out, uint32_t order, const char *mod,
		     const char *tgt, const char *address, int pos,
		     const struct x509_facts *f)
{
	char posbuf[16], bits[16];

	snprintf(posbuf, sizeof(posbuf), "%d", pos);
	snprintf(bits, sizeof(bits), "%d", f->key_bits);
	if (f->dates_ok) {
		expo_add(out, &x509_m_not_after, order, (double)f->not_after,
			 "module", mod, "target", tgt, "address", address,
			 "position", posbuf, "subject_cn", f->subject_cn,
			 "issuer_cn", f->issuer_cn, "serial", f->serial, NULL);
		expo_add(out, &x509_m_not_before, order, (double)f->not_before,
			 "module", mod, "target", tgt, "address", address,
			 "position", posbuf, "subject_cn", f->subject_cn,
			 "issuer_cn", f->issuer_cn, "serial", f->serial, NULL);
	}
	expo_add(out, &x509_m_cert_info, order, 1, "module", mod, "target",
		 tgt, "address", address, "position", posbuf, "subject_cn",
		 f->subject_cn, "issuer_cn", f->issuer_cn, "serial", f->serial,
		 "sig_alg", f->sig_alg, "key_type", f->key_type, "key_bits",
		 bits, "sha1", f->sha1, "sha256", f->sha256, "sans", f->sans,
		 NULL);
	/* a trust anchor's self-signature is never checked, so a SHA-1 root
	 * is harmless; below it, it is not */
	expo_add(out, &M_WEAK_SIG, order, f->weak_signature && !f->self_signed,
		 "module", mod, "target", tgt, "address", address, "position",
		 posbuf, "subject_cn", f->subject_cn, "issuer_cn", f->issuer_cn,
		 "serial", f->serial, NULL);
	expo_add(out, &M_WEAK_KEY, order, f->weak_key, "module", mod, "target",
		 tgt, "address", address, "position", posbuf, "subject_cn",
		 f->subject_cn, "issuer_cn", f->issuer_cn, "serial", f->serial,
		 NULL);
}

void x509_emit_cert(struct expo_set *out, uint32_t order, const char *mod,
		    const char *tgt, const char *address, int pos, X509 *x)
{
	struct x509_facts f;

	if (x509_facts_init(&f, x))
		return;
	x509_emit_facts(out, order, mod, tgt, address, pos, &f);
	x509_facts_cleanup(&f);
}
