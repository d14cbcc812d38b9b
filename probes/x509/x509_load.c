#include "x509_load.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>

#include "exporter/xalloc.h"

/* A PKCS#12 MAC iteration count above this is refused as unrecognised:
 * deriving the key would stall the scrape (OpenSSL writes 2048, Windows
 * 2000; a hostile file can ask for 2^31). */
#define P12_MAX_ITER 1000000

const char *x509_load_err_str(enum x509_load_err e)
{
	static const char *const names[X509_LOAD__COUNT] = {
		[X509_LOAD_OK] = "ok",
		[X509_LOAD_NOT_FOUND] = "not_found",
		[X509_LOAD_PERMISSION] = "permission_denied",
		[X509_LOAD_UNRECOGNISED] = "unrecognised_format",
		[X509_LOAD_BAD_PASSWORD] = "bad_password",
		[X509_LOAD_TOO_LARGE] = "too_large",
		[X509_LOAD_READ_ERROR] = "read_error",
	};

	if (e < 0 || e >= X509_LOAD__COUNT)
		return "unknown";
	return names[e];
}

const char *x509_load_format_str(enum x509_load_format f)
{
	switch (f) {
	case X509_FMT_NONE:
		return "none";
	case X509_FMT_PEM:
		return "pem";
	case X509_FMT_DER:
		return "der";
	case X509_FMT_PKCS7:
		return "pkcs7";
	case X509_FMT_PKCS12:
		return "pkcs12";
	case X509_FMT_CRL:
		return "crl";
	}
	return "unknown";
}

enum x509_load_err x509_load_errno(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
		return X509_LOAD_NOT_FOUND;
	case EACCES:
	case EPERM:
		return X509_LOAD_PERMISSION;
	case EFBIG:
		return X509_LOAD_TOO_LARGE;
	default:
		return X509_LOAD_READ_ERROR;
	}
}

void x509_loaded_cleanup(struct x509_loaded *l)
{
	sk_X509_pop_free(l->certs, X509_free);
	l->certs = NULL;
}

/* Take ownership of x into the list; -ENOMEM frees it. */
static int push_cert(struct x509_loaded *l, X509 *x)
{
	if (!sk_X509_push(l->certs, x)) {
		X509_free(x);
		return -ENOMEM;
	}
	return 0;
}

/* The certificates of a signed PKCS#7 (a .p7b is a degenerate SignedData:
 * certificates, no signers). Returns 0, -EINVAL (not signed data) or
 * -ENOMEM. */
static int p7_certs(PKCS7 *p7, struct x509_loaded *l)
{
	STACK_OF(X509) *c = NULL;

	if (!p7->d.ptr)
		return -EINVAL;
	switch (OBJ_obj2nid(p7->type)) {
	case NID_pkcs7_signed:
		c = p7->d.sign->cert;
		break;
	case NID_pkcs7_signedAndEnveloped:
		c = p7->d.signed_and_enveloped->cert;
		break;
	default:
		return -EINVAL;
	}
	for (int i = 0; i < sk_X509_num(c); i++) {
		X509 *x = sk_X509_value(c, i);

		if (!X509_up_ref(x) || push_cert(l, x))
			return -ENOMEM;
	}
	return 0;
}

/* Set the error unless one is already recorded (the first one wins). */
static void set_err(struct x509_loaded *l, enum x509_load_err e)
{
	if (l->err == X509_LOAD_OK)
		l->err = e;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One decoded PEM block. Returns 0 or -ENOMEM; an undecodable block marks
 * the file unrecognised and is skipped. */
static int pem_block(const char *name, const unsigned char *d, long dl,
		     struct x509_loaded *l, bool *p7, bool *crl)
{
	const unsigned char *p = d;

	if (strcmp(name, PEM_STRING_X509) == 0 ||
	    strcmp(name, PEM_STRING_X509_OLD) == 0 ||
	    strcmp(name, PEM_STRING_X509_TRUSTED) == 0) {
		X509 *x = strcmp(name, PEM_STRING_X509_TRUSTED) == 0
				  ? d2i_X509_AUX(NULL, &p, dl)
				  : d2i_X509(NULL, &p, dl);

		if (!x) {
			set_err(l, X509_LOAD_UNRECOGNISED);
			return 0;
		}
		return push_cert(l, x);
	}
	if (strcmp(name, PEM_STRING_PKCS7) == 0 ||
	    strcmp(name, PEM_STRING_PKCS7_SIGNED) == 0 ||
	    strcmp(name, PEM_STRING_CMS) == 0) {
		PKCS7 *p7s = d2i_PKCS7(NULL, &p, dl);
		int rc;

		if (!p7s) {
			set_err(l, X509_LOAD_UNRECOGNISED);
			return 0;
		}
		rc = p7_certs(p7s, l);
		PKCS7_free(p7s);
		if (rc == -EINVAL)
			set_err(l, X509_LOAD_UNRECOGNISED);
		*p7 = true;
		return rc == -ENOMEM ? rc : 0;
	}
	if (ends_with(name, "PRIVATE KEY")) {
		l->has_key = true;
		return 0;
	}
	if (strcmp(name, PEM_STRING_X509_CRL) == 0)
		*crl = true;
	return 0;	/* requests, parameters, public keys: not ours */
}

/* Every PEM block of the buffer; text around them is skipped. Returns 0 or
 * -ENOMEM; sets *found when at least one block was read. */
static int load_pem(const unsigned char *data, size_t len,
		    struct x509_loaded *l, bool *found)
{
	BIO *bio;
	bool p7 = false, crl = false, bad = false;
	size_t blocks = 0;
	int rc = 0;

	*found = false;
	if (len > INT_MAX)
		return 0;
	bio = BIO_new_mem_buf(data, (int)len);
	if (!bio)
		return -ENOMEM;
	for (;;) {
		char *name = NULL, *hdr = NULL;
		unsigned char *d = NULL;
		long dl = 0;
		unsigned long e;

		size_t before = BIO_ctrl_pending(bio);

		ERR_clear_error();
		if (!PEM_read_bio(bio, &name, &hdr, &d, &dl)) {
			e = ERR_peek_last_error();
			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
				break;	/* no more blocks */
			if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) {
				rc = -ENOMEM;
				break;
			}
			/* a broken block: note it, go on with the next
			 * one (each call consumes input, so this ends) */
			bad = true;
			if (BIO_eof(bio) || BIO_ctrl_pending(bio) == before)
				break;
			continue;
		}
		blocks++;
		rc = pem_block(name, d, dl, l, &p7, &crl);
		OPENSSL_free(name);
		OPENSSL_free(hdr);
		OPENSSL_clear_free(d, (size_t)dl);
		if (rc)
			break;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (rc)
		return rc;
	if (blocks == 0 && !bad)
		return 0;
	*found = true;
	if (bad)
		set_err(l, X509_LOAD_UNRECOGNISED);
	if (sk_X509_num(l->certs) > 0)
		l->format = p7 ? X509_FMT_PKCS7 : X509_FMT_PEM;
	else if (crl && !l->has_key)
		l->format = X509_FMT_CRL;
	else
		l->format = X509_FMT_PEM;
	if (sk_X509_num(l->certs) == 0 && !l->has_key && !crl)
		set_err(l, X509_LOAD_UNRECOGNISED);
	return 0;
}

/* OpenSSL 3 moved the RC2-40 and DES ciphers of old PKCS#12 files (the
 * default of Windows exports before Server 2016/2019, `openssl pkcs12
 * -legacy`) to its legacy provider. It is loaded into a library context of
 * our own, used only to decrypt those files, so the rest of the process
 * (TLS handshakes above all) keeps the default algorithm set. Created once,
 * kept for the life of the process; NULL when the provider is missing. */
static OSSL_LIB_CTX *legacy_ctx;
static pthread_once_t legacy_once = PTHREAD_ONCE_INIT;

static void legacy_init(void)
{
	OSSL_LIB_CTX *c = OSSL_LIB_CTX_new();

	if (!c)
		return;
	if (!OSSL_PROVIDER_load(c, "default") ||
	    !OSSL_PROVIDER_load(c, "legacy")) {
		OSSL_LIB_CTX_free(c);
		ERR_clear_error();
		return;
	}
	legacy_ctx = c;
}

/* Walk the safes of a PKCS#12 by hand, decrypting with the legacy context:
 * the certificates in file order, and whether a key bag is present.
 * Returns 0 (-EINVAL: could not be read) or -ENOMEM. */
static int p12_walk(PKCS12 *p12, const char *pass, struct x509_loaded *l)
{
	STACK_OF(PKCS7) *safes;
	int rc = 0;

	pthread_once(&legacy_once, legacy_init);
	if (!legacy_ctx)
		return -EINVAL;
	safes = PKCS12_unpack_authsafes(p12);
	if (!safes)
		return -EINVAL;
	for (int i = 0; rc == 0 && i < sk_PKCS7_num(safes); i++) {
		PKCS7 *p7 = sk_PKCS7_value(safes, i);
		STACK_OF(PKCS12_SAFEBAG) *bags = NULL;

		switch (OBJ_obj2nid(p7->type)) {
		case NID_pkcs7_data:
			bags = PKCS12_unpack_p7data(p7);
			break;
		case NID_pkcs7_encrypted:
			if (p7->d.encrypted && p7->d.encrypted->enc_data)
				bags = PKCS12_item_decrypt_d2i_ex(
					p7->d.encrypted->enc_data->algorithm,
					ASN1_ITEM_rptr(PKCS12_SAFEBAGS), pass,
					-1, p7->d.encrypted->enc_data->enc_data,
					1, legacy_ctx, NULL);
			break;
		default:
			break;
		}
		if (!bags) {
			rc = -EINVAL;
			break;
		}
		for (int k = 0; rc == 0 && k < sk_PKCS12_SAFEBAG_num(bags);
		     k++) {
			const PKCS12_SAFEBAG *bag =
				sk_PKCS12_SAFEBAG_value(bags, k);
			X509 *x;

			switch (PKCS12_SAFEBAG_get_nid(bag)) {
			case NID_certBag:
				if (PKCS12_SAFEBAG_get_bag_nid(bag) !=
				    NID_x509Certificate)
					break;
				x = PKCS12_SAFEBAG_get1_cert(bag);
				if (!x)
					rc = -EINVAL;
				else
					rc = push_cert(l, x);
				break;
			case NID_keyBag:
			case NID_pkcs8ShroudedKeyBag:
				l->has_key = true;
				break;
			default:
				break;	/* CRL, secret, nested bags */
			}
		}
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	}
	sk_PKCS7_pop_free(safes, PKCS7_free);
	return rc;
}

static int load_p12(PKCS12 *p12, const char *password, struct x509_loaded *l)
{
	const ASN1_INTEGER *iter = NULL;
	const char *pass = password;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *ca = NULL;
	int64_t it = 1;
	int rc = 0;

	l->format = X509_FMT_PKCS12;
	if (PKCS12_mac_present(p12)) {
		PKCS12_get0_mac(NULL, NULL, NULL, &iter, p12);
		if (iter && (!ASN1_INTEGER_get_int64(&it, iter) || it < 1 ||
			     it > P12_MAX_ITER)) {
			set_err(l, X509_LOAD_UNRECOGNISED);
			return 0;
		}
		/* a module's password also covers unprotected files of
		 * the same glob: fall back to none */
		if (password && PKCS12_verify_mac(p12, password, -1)) {
			pass = password;
		} else if (PKCS12_verify_mac(p12, NULL, 0)) {
			pass = NULL;
		} else if (PKCS12_verify_mac(p12, "", 0)) {
			pass = "";
		} else {
			set_err(l, X509_LOAD_BAD_PASSWORD);
			return 0;
		}
	}
	if (!PKCS12_parse(p12, pass, &pkey, &cert, &ca)) {
		/* the MAC verified, so this is the content: most often
		 * RC2-40 bags, which need the legacy provider */
		ERR_clear_error();
		l->has_key = false;
		rc = p12_walk(p12, pass, l);
		if (rc == -EINVAL) {
			sk_X509_pop_free(l->certs, X509_free);
			l->certs = sk_X509_new_null();
			l->has_key = false;
			if (!l->certs)
				return -ENOMEM;
			set_err(l, X509_LOAD_UNRECOGNISED);
			return 0;
		}
		if (rc == 0 && sk_X509_num(l->certs) == 0 && !l->has_key)
			set_err(l, X509_LOAD_UNRECOGNISED);
		return rc;
	}
	l->has_key = pkey != NULL;
	EVP_PKEY_free(pkey);
	if (cert && push_cert(l, cert))
		rc = -ENOMEM;
	while (rc == 0 && sk_X509_num(ca) > 0)
		rc = push_cert(l, sk_X509_shift(ca));
	sk_X509_pop_free(ca, X509_free);
	if (rc == 0 && sk_X509_num(l->certs) == 0 && !l->has_key)
		set_err(l, X509_LOAD_UNRECOGNISED);
	return rc;
}

static bool only_padding(const unsigned char *p, const unsigned char *end)
{
	for (; p < end; p++)
		if (*p != 0 && *p != ' ' && *p != '\t' && *p != '\r' &&
		    *p != '\n')
			return false;
	return true;
}

/* DER: one or more concatenated certificates, a PKCS#7, a PKCS#12 or a
 * CRL. Returns 0 or -ENOMEM; *found when the bytes were one of those. */
static int load_der(const unsigned char *data, size_t len, const char *password,
		    struct x509_loaded *l, bool *found)
{
	const unsigned char *p = data, *end = data + len;
	X509 *x;
	PKCS7 *p7;
	PKCS12 *p12;
	X509_CRL *crl;
	int rc;

	*found = false;
	if (len > LONG_MAX)
		return 0;
	x = d2i_X509(NULL, &p, (long)len);
	if (x) {
		*found = true;
		l->format = X509_FMT_DER;
		if (push_cert(l, x))
			return -ENOMEM;
		while (p < end && !only_padding(p, end)) {
			x = d2i_X509(NULL, &p, (long)(end - p));
			if (!x) {
				set_err(l, X509_LOAD_UNRECOGNISED);
				break;
			}
			if (push_cert(l, x))
				return -ENOMEM;
		}
		return 0;
	}
	p = data;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	if (p7) {
		*found = true;
		l->format = X509_FMT_PKCS7;
		rc = p7_certs(p7, l);
		PKCS7_free(p7);
		if (rc == -EINVAL)
			set_err(l, X509_LOAD_UNRECOGNISED);
		return rc == -ENOMEM ? rc : 0;
	}
	p = data;
	p12 = d2i_PKCS12(NULL, &p, (long)len);
	if (p12) {
		*found = true;
		rc = load_p12(p12, password, l);
		PKCS12_free(p12);
		return rc;
	}
	p = data;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	if (crl) {
		*found = true;
		l->format = X509_FMT_CRL;
		X509_CRL_free(crl);
	}
	return 0;
}

int x509_load_mem(const unsigned char *data, size_t len, const char *password,
		  struct x509_loaded *out)
{
	bool found = false;
	int rc;

	memset(out, 0, sizeof(*out));
	out->certs = sk_X509_new_null();
	if (!out->certs)
		return -ENOMEM;
	/* DER starts with a SEQUENCE tag (0x30, also the digit '0', so a
	 * PEM file with a preamble can start like that too: fall back) */
	if (len > 0 && data[0] == 0x30) {
		rc = load_der(data, len, password, out, &found);
		if (rc || found)
			goto out;
	}
	rc = load_pem(data, len, out, &found);
	if (rc == 0 && !found)
		set_err(out, X509_LOAD_UNRECOGNISED);
out:
	ERR_clear_error();
	return rc;
}

int x509_load_file(const char *path, const char *password, size_t max_bytes,
		   struct x509_loaded *out)
{
	unsigned char *buf = NULL;
	size_t len = 0, cap;
	struct stat st;
	int fd, rc = 0;

	if (max_bytes == 0)
		max_bytes = X509_LOAD_MAX_BYTES;
	memset(out, 0, sizeof(*out));
	/* O_NONBLOCK: a FIFO put in place of a file must not hang the
	 * scrape; it is refused below as not a regular file */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		out->err = x509_load_errno(errno);
		goto out;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		out->err = X509_LOAD_READ_ERROR;
		goto out;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		out->err = X509_LOAD_TOO_LARGE;
		goto out;
	}
	/* the file may grow while we read: read to EOF, capped */
	cap = (size_t)st.st_size + 1;
	buf = xmalloc(cap);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			void *nb;
			size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1
							      : cap * 2;

			if (cap >= max_bytes + 1) {
				out->err = X509_LOAD_TOO_LARGE;
				goto out;
			}
			nb = xrealloc(buf, ncap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			out->err = X509_LOAD_READ_ERROR;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max_bytes) {
		out->err = X509_LOAD_TOO_LARGE;
		goto out;
	}
	close(fd);
	fd = -1;
	rc = x509_load_mem(buf, len, password, out);
out:
	if (fd != -1)
		close(fd);
	if (buf) {
		/* the file may hold a private key */
		OPENSSL_cleanse(buf, len);
		xfree(buf);
	}
	if (!out->certs && rc == 0) {
		/* failed before parsing: still hand back an empty list */
		out->certs = sk_X509_new_null();
		if (!out->certs)
			rc = -ENOMEM;
	}
	return rc;
}
