/* The tls probe's revocation check (module key `revocation:`): the glue
 * between a finished run's chains and probes/crl/revoc.h. Kept apart from
 * tls.c, which only calls the tls_revoc_* hooks declared in tls_int.h. */
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "exporter/xalloc.h"
#include "probes/crl/crl_cache.h"
#include "probes/crl/revoc.h"
#include "probes/ocsp/ocsp.h"
#include "probes/tls/tls_int.h"

int tls_revoc_parse(const struct cfg_node *n, const struct config *cfg,
		    struct tls_module *m, struct errbuf *eb)
{
	revoc_cfg_free(m->revocation);
	m->revocation = NULL;
	return revoc_cfg_parse(n, cfg, &m->revocation, eb);
}

void tls_revoc_cfg_free(struct tls_module *m)
{
	revoc_cfg_free(m->revocation);
	m->revocation = NULL;
}

void tls_revoc_prepare(struct tls_conn *c)
{
	const struct revoc_cfg *rc = c->p->m->revocation;

	if (rc && rc->staple)
		SSL_set_tlsext_status_type(c->ssl, TLSEXT_STATUSTYPE_ocsp);
}

void tls_revoc_collect(struct tls_conn *c)
{
	const struct revoc_cfg *rc = c->p->m->revocation;
	const unsigned char *der = NULL;
	long n;

	if (!rc || !rc->staple || c->staple)
		return;
	n = SSL_get_tlsext_status_ocsp_resp(c->ssl, &der);
	if (n <= 0 || !der || (unsigned long)n > OCSP_MAX_BYTES)
		return;
	c->staple = xmalloc((size_t)n);
	if (!c->staple)
		return;
	memcpy(c->staple, der, (size_t)n);
	c->staple_len = (size_t)n;
}

/* The issuer of sent[i]: its successor in the verified chain, else any
 * certificate the server sent that issued it. */
static X509 *find_issuer(const struct tls_conn *c, int i)
{
	X509 *x = sk_X509_value(c->sent, i);
	int nv = sk_X509_num(c->verified);

	for (int j = 0; j + 1 < nv; j++)
		if (X509_cmp(sk_X509_value(c->verified, j), x) == 0)
			return sk_X509_value(c->verified, j + 1);
	for (int j = 0; j < sk_X509_num(c->sent); j++)
		if (j != i && X509_check_issued(sk_X509_value(c->sent, j), x) ==
				      X509_V_OK)
			return sk_X509_value(c->sent, j);
	for (int j = 0; j < nv; j++)
		if (X509_check_issued(sk_X509_value(c->verified, j), x) ==
		    X509_V_OK)
			return sk_X509_value(c->verified, j);
	return NULL;
}

/* CA certificates seen go to the pool the crl probe verifies with. */
static void pool_cas(STACK_OF(X509) *sk)
{
	for (int i = 0; i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);

		if (X509_check_ca(x))
			crl_issuers_add(x);
	}
}

bool tls_revoc_begin(struct tls_probe *p, void (*done)(void *arg))
{
	const struct revoc_cfg *rc = p->m->revocation;
	struct revoc *r;
	size_t added = 0;

	if (p->revoc)
		return false;
	/* every run's trusted CA certificates, revocation or not: the crl
	 * probe verifies CRL signatures with them. Only verified chains: a
	 * CA certificate a server merely sent could be anybody's, and with
	 * it a forged CRL would read as validly signed. */
	for (size_t k = 0; k < p->nconns; k++)
		pool_cas(p->conns[k].verified);
	if (!rc)
		return false;
	r = revoc_new(p->run, rc);
	if (!r)
		return false;
	for (size_t k = 0; k < p->nconns; k++) {
		struct tls_conn *c = &p->conns[k];

		if (!c->started || c->superseded || !c->sent)
			continue;
		for (int i = 0; i < sk_X509_num(c->sent); i++)
			if (revoc_add(r, c->address, i, sk_X509_value(c->sent, i),
				      find_issuer(c, i)) == 0)
				added++;
		if (rc->staple && c->handshake_ok &&
		    revoc_add_staple(r, c->address, c->staple,
				     c->staple_len) == 0)
			added++;
	}
	if (!added) {
		revoc_free(r);
		return false;
	}
	p->revoc = r;
	if (p->run->stage < PROBE_STAGE_FETCH)
		p->run->stage = PROBE_STAGE_FETCH;
	revoc_go(r, done, p);
	return true;
}

void tls_revoc_report(struct tls_probe *p, enum probe_fail why)
{
	if (p->revoc)
		revoc_report(p->revoc, why);
}

void tls_revoc_free(struct tls_probe *p)
{
	revoc_free(p->revoc);
	p->revoc = NULL;
	for (size_t k = 0; k < p->nconns; k++) {
		xfree(p->conns[k].staple);
		p->conns[k].staple = NULL;
	}
}
