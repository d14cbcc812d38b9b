#include "ocsp.h"

#include <errno.h>
#include <string.h>

#include <openssl/err.h>

#include "exporter/xalloc.h"
#include "probes/x509/x509.h"

const char *ocsp_err_str(enum ocsp_err e)
{
	static const char *const names[OCSP_ERR__COUNT] = {
		[OCSP_OK] = "ok",
		[OCSP_ERR_MALFORMED] = "malformed",
		[OCSP_ERR_STATUS] = "response_status",
		[OCSP_ERR_NOT_BASIC] = "not_basic",
		[OCSP_ERR_NO_ANSWER] = "no_answer_for_certificate",
		[OCSP_ERR_NONCE] = "nonce_mismatch",
		[OCSP_ERR_NOMEM] = "out_of_memory",
	};

	if (e < 0 || e >= OCSP_ERR__COUNT || !names[e])
		return "unknown";
	return names[e];
}

const char *ocsp_cert_status_str(enum ocsp_cert_status s)
{
	switch (s) {
	case OCSP_CERT_GOOD:
		return "good";
	case OCSP_CERT_REVOKED:
		return "revoked";
	default:
		return "unknown";
	}
}

int ocsp_query_init(struct ocsp_query *q, X509 *cert, X509 *issuer,
		    bool nonce)
{
	OCSP_CERTID *id;
	unsigned char *p;
	int n;

	memset(q, 0, sizeof(*q));
	q->req = OCSP_REQUEST_new();
	/* SHA-1 CertID: the one every responder, AD CS included, knows */
	q->id = OCSP_cert_to_id(EVP_sha1(), cert, issuer);
	id = q->id ? OCSP_CERTID_dup(q->id) : NULL;
	if (!q->req || !id || !OCSP_request_add0_id(q->req, id)) {
		OCSP_CERTID_free(id);
		goto nomem;
	}
	if (nonce && !OCSP_request_add1_nonce(q->req, NULL, -1))
		goto nomem;
	n = i2d_OCSP_REQUEST(q->req, NULL);
	if (n <= 0)
		goto nomem;
	q->der = xmalloc((size_t)n);
	if (!q->der)
		goto nomem;
	p = q->der;
	i2d_OCSP_REQUEST(q->req, &p);
	q->len = (size_t)n;
	return 0;
nomem:
	ERR_clear_error();
	ocsp_query_cleanup(q);
	return -ENOMEM;
}

void ocsp_query_cleanup(struct ocsp_query *q)
{
	OCSP_REQUEST_free(q->req);
	OCSP_CERTID_free(q->id);
	xfree(q->der);
	memset(q, 0, sizeof(*q));
}

static void signer_facts(OCSP_BASICRESP *bs, X509 *issuer,
			 struct ocsp_answer *a)
{
	STACK_OF(X509) *extra = sk_X509_new_null();
	X509 *signer = NULL;

	if (extra && issuer)
		sk_X509_push(extra, issuer);
	if (OCSP_resp_get0_signer(bs, &signer, extra) == 1 && signer &&
	    x509_time_to_unix(X509_get0_notAfter(signer),
			      &a->signer_not_after) == 0) {
		a->has_signer = true;
		x509_name_cn(X509_get_subject_name(signer), a->signer_cn,
			     sizeof(a->signer_cn));
	}
	sk_X509_free(extra);
}

/* Signed by the issuer itself, or by a responder certificate the issuer
 * issued with EKU OCSPSigning (RFC 6960 4.2.2.2): OCSP_basic_verify with
 * the issuer as the only trust anchor. */
static bool verify(OCSP_BASICRESP *bs, X509 *issuer)
{
	X509_STORE *st = X509_STORE_new();
	STACK_OF(X509) *certs = sk_X509_new_null();
	bool ok = false;

	if (st && certs && X509_STORE_add_cert(st, issuer) &&
	    sk_X509_push(certs, issuer))
		ok = OCSP_basic_verify(bs, certs, st, OCSP_PARTIAL_CHAIN) > 0;
	sk_X509_free(certs);
	X509_STORE_free(st);
	ERR_clear_error();
	return ok;
}

void ocsp_answer_parse(const unsigned char *der, size_t len,
		       const struct ocsp_query *q, OCSP_CERTID *id,
		       X509 *issuer, struct ocsp_answer *a)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
	int status = -1, reason = -1;

	memset(a, 0, sizeof(*a));
	a->response_status = -1;
	a->reason = -1;
	a->status = OCSP_CERT_UNKNOWN;
	ERR_clear_error();
	if (len == 0 || len > OCSP_MAX_BYTES ||
	    !(resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) ||
	    p != der + len) {
		a->err = OCSP_ERR_MALFORMED;
		goto out;
	}
	a->response_status = OCSP_response_status(resp);
	if (a->response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		a->err = OCSP_ERR_STATUS;
		goto out;
	}
	bs = OCSP_response_get1_basic(resp);
	if (!bs) {
		a->err = OCSP_ERR_NOT_BASIC;
		goto out;
	}
	signer_facts(bs, issuer, a);
	if (issuer)
		a->signature_valid = verify(bs, issuer);
	if (!id || OCSP_resp_find_status(bs, id, &status, &reason, &rev,
					 &thisupd, &nextupd) != 1) {
		a->err = OCSP_ERR_NO_ANSWER;
		goto out;
	}
	/* 0: both have a nonce and they differ. A responder that leaves
	 * the nonce out (3) is allowed, as pre-produced answers do. */
	if (q && OCSP_check_nonce(q->req, bs) == 0) {
		a->err = OCSP_ERR_NONCE;
		goto out;
	}
	a->status = status == V_OCSP_CERTSTATUS_GOOD	? OCSP_CERT_GOOD
		    : status == V_OCSP_CERTSTATUS_REVOKED ? OCSP_CERT_REVOKED
							  : OCSP_CERT_UNKNOWN;
	a->reason = reason;
	if (thisupd)
		x509_time_to_unix(thisupd, &a->this_update);
	if (nextupd && x509_time_to_unix(nextupd, &a->next_update) == 0)
		a->has_next_update = true;
	if (rev && x509_time_to_unix(rev, &a->revoked_at) == 0)
		a->has_revoked_at = true;
	a->err = OCSP_OK;
out:
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
}
