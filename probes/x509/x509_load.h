/* Certificates from a file on disk, whatever the usual encoding: PEM (one
 * or many blocks, any text before, between or after them), DER, PKCS#7
 * (PEM or DER, "certs-only" .p7b/.p7c) and PKCS#12 (.pfx/.p12, without a
 * password or with one given). Used by the store and file probes.
 *
 * Reads are bounded (max_bytes) and a malformed file only ever yields an
 * error code for that file: never a crash, never a partial read that looks
 * complete. */
#ifndef PKI_X509_LOAD_H
#define PKI_X509_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/x509.h>

/* the default per-file cap */
#define X509_LOAD_MAX_BYTES (16u * 1024 * 1024)

/* Why a file could not be read: a bounded set, rendered as `reason`. */
enum x509_load_err {
	X509_LOAD_OK = 0,
	X509_LOAD_NOT_FOUND,
	X509_LOAD_PERMISSION,		/* permission_denied */
	X509_LOAD_UNRECOGNISED,	/* no certificate in a known format */
	X509_LOAD_BAD_PASSWORD,		/* PKCS#12 MAC does not verify */
	X509_LOAD_TOO_LARGE,
	X509_LOAD_READ_ERROR,		/* I/O error, not a regular file */
	X509_LOAD__COUNT,
};

const char *x509_load_err_str(enum x509_load_err e);

enum x509_load_format {
	X509_FMT_NONE = 0,
	X509_FMT_PEM,
	X509_FMT_DER,
	X509_FMT_PKCS7,
	X509_FMT_PKCS12,
	X509_FMT_CRL,	/* a CRL: recognised, holds no certificate */
};

const char *x509_load_format_str(enum x509_load_format f);

struct x509_loaded {
	STACK_OF(X509) *certs;	/* owned; file order (PKCS#12: the
				   certificate of the key first) */
	bool has_key;		/* a private key is in the file (a PEM
				   "... PRIVATE KEY" block or a PKCS#12 key) */
	enum x509_load_format format;
	enum x509_load_err err;	/* OK, or why the file (or a part of it)
				   failed; certs holds what could be read */
};

/* Parse `len` bytes. `password` is for PKCS#12 (NULL: none, which also
 * accepts an empty password). Fills `out` (call x509_loaded_cleanup after
 * any return). Returns 0, or -ENOMEM. */
int x509_load_mem(const unsigned char *data, size_t len, const char *password,
		  struct x509_loaded *out);

/* Read and parse the file at `path`, at most max_bytes (0: the default cap).
 * Only regular files are read; FIFOs and devices give READ_ERROR without
 * blocking. Returns 0 (outcome in out->err) or -ENOMEM. */
int x509_load_file(const char *path, const char *password, size_t max_bytes,
		   struct x509_loaded *out);

void x509_loaded_cleanup(struct x509_loaded *l);

/* Map an errno from open/stat to a load error. */
enum x509_load_err x509_load_errno(int err);

#endif
