/* OCSP (RFC 6960) requests and responses for one certificate, with OpenSSL:
 * building the request (nonce optional), and reading an answer (from a
 * responder, or stapled in a TLS handshake) into the facts the exporter
 * reports. Pure functions; the transport is probes/http/fetch.h. */
#ifndef PKI_OCSP_H
#define PKI_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#define OCSP_MAX_BYTES (256u * 1024)	/* cap on a response */

/* Why an answer gives no certificate status (the `reason` label). */
enum ocsp_err {
	OCSP_OK = 0,
	OCSP_ERR_MALFORMED,	/* not a DER OCSPResponse */
	OCSP_ERR_STATUS,	/* responseStatus other than successful */
	OCSP_ERR_NOT_BASIC,	/* no BasicOCSPResponse inside */
	OCSP_ERR_NO_ANSWER,	/* nothing about our certificate in it */
	OCSP_ERR_NONCE,		/* the nonce came back different */
	OCSP_ERR_NOMEM,
	OCSP_ERR__COUNT,
};

const char *ocsp_err_str(enum ocsp_err e);

enum ocsp_cert_status {
	OCSP_CERT_GOOD = 0,
	OCSP_CERT_REVOKED,
	OCSP_CERT_UNKNOWN,
	OCSP_CERT__COUNT,
};

const char *ocsp_cert_status_str(enum ocsp_cert_status s);

/* A request for one certificate; owns its OpenSSL objects. */
struct ocsp_query {
	OCSP_REQUEST *req;
	OCSP_CERTID *id;	/* to find our answer */
	unsigned char *der;	/* the encoded request (xfree) */
	size_t len;
};

/* Build a request for `cert` issued by `issuer`. Returns 0 or -ENOMEM. */
int ocsp_query_init(struct ocsp_query *q, X509 *cert, X509 *issuer,
		    bool nonce);
void ocsp_query_cleanup(struct ocsp_query *q);

struct ocsp_answer {
	enum ocsp_err err;
	int response_status;	/* OCSPResponseStatus, -1 if unreadable */
	enum ocsp_cert_status status;	/* valid when err == OCSP_OK */
	int reason;		/* CRLReason of a revocation, -1 none */
	int64_t this_update;
	int64_t next_update;
	bool has_next_update;
	int64_t revoked_at;
	bool has_revoked_at;
	bool signature_valid;	/* signed by the issuer or a responder
				   it authorised (EKU OCSPSigning) */
	bool has_signer;
	int64_t signer_not_after;
	char signer_cn[256];
};

/* Read an OCSPResponse (`len` bytes) for the certificate `id` names.
 * `q` (may be NULL: a stapled answer) is checked for the nonce. The
 * signature is checked against `issuer` (may be NULL: not checked).
 * Fills *a; a->err says whether there is a status. */
void ocsp_answer_parse(const unsigned char *der, size_t len,
		       const struct ocsp_query *q, OCSP_CERTID *id,
		       X509 *issuer, struct ocsp_answer *a);

#endif
