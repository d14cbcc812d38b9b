/* The store probe: a directory (plain, or OpenSSL hashed) or a bundle file
 * acting as a trust store with a role (root, intermediate, personal):
 * certificate count, misplaced certificates by reason, the size of the CA
 * names a server would send, limits, and every certificate's expiry.
 * Synchronous: file I/O only. See probes/store/README.md. */
#ifndef PKI_STORE_PROBE_H
#define PKI_STORE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "probes/probe.h"
#include "probes/x509/x509.h"
#include "probes/x509/x509_load.h"

/* Windows figures (docs ADCS.md §5): keep LocalMachine\Root under ~100
 * certificates; Schannel caps the CA names list at 16 KiB. */
#define STORE_DEFAULT_MAX_CERTIFICATES 100
#define STORE_DEFAULT_MAX_CA_NAMES_BYTES 16384
#define STORE_MAX_FILES 10000	/* directory entries looked at */
#define STORE_MAX_CERTS 10000	/* certificates kept per store */

extern const struct probe_ops store_probe_ops;

enum store_role {
	STORE_ROLE_ROOT = 0,
	STORE_ROLE_INTERMEDIATE,
	STORE_ROLE_PERSONAL,
};

const char *store_role_str(enum store_role r);
/* "root" | "intermediate" | "personal"; -EINVAL otherwise. */
int store_role_parse(const char *s, enum store_role *out);

/* Why a certificate does not belong where it is. */
enum store_reason {
	STORE_NOT_SELF_SIGNED = 0,	/* in a root store */
	STORE_SELF_SIGNED,		/* in an intermediate store */
	STORE_PRIVATE_KEY_PRESENT,	/* root, intermediate: key in file */
	STORE_MISSING_PRIVATE_KEY,	/* personal: no key for the cert */
	STORE_DUPLICATE,		/* same SHA-256 as an earlier one */
	STORE_EXPIRED,
	STORE_NOT_CA,			/* root/intermediate: not a CA */
	STORE_REASON__COUNT,
};

const char *store_reason_str(enum store_reason r);

/* One file of the store that was read (or failed). */
struct store_file {
	char *path;		/* owned */
	enum x509_load_err err;
	int ncerts;
	bool has_key;
	bool key_only;		/* a private key and no certificate */
};

struct store_cert {
	const char *file;	/* borrowed from the store_file */
	int position;		/* index within the file */
	char *subject;		/* RFC 2253, owned */
	size_t subject_der_len;	/* DER-encoded subject name */
	uint32_t reasons;	/* bit (1 << enum store_reason) */
	struct x509_facts f;
};

struct store_scan {
	enum store_role role;
	enum probe_fail fail;	/* of the store as a whole */
	bool hashed;		/* an OpenSSL hashed directory */
	bool truncated;		/* a STORE_MAX_* cap was hit */
	size_t unhashed;	/* hashed dir: files no hash link reaches */
	struct store_file *files;
	size_t nfiles, capfiles;
	struct store_cert *certs;
	size_t ncerts, capcerts;
	uint64_t misplaced[STORE_REASON__COUNT];
	uint64_t ca_names_bytes;	/* distinct CA certificates' subjects */
	size_t unreadable;	/* files with err != OK */
	int64_t deadline;	/* monotonic ns; 0 = none */
	bool cut;		/* the deadline came before the last file */
};

/* Read the store at `path` with `role`, judging expiry at `now` (Unix
 * seconds), stopping between files at `deadline` (loop_now() time, 0 for
 * none: the reads are synchronous, and a slow share must not hold the
 * scrape). Fills `s` (always call store_scan_cleanup). Returns 0 (the
 * outcome, good or bad, is in s->fail and the counts) or -ENOMEM. */
int store_scan(const char *path, enum store_role role, int64_t now,
	       int64_t deadline, struct store_scan *s);
void store_scan_cleanup(struct store_scan *s);

/* For a person cleaning a store (`pki_exporter check --store DIR --role
 * R`): print each misplaced certificate (file, subject, reason), files that
 * could not be read, and the count and CA-names bytes against the default
 * limits to `out`. Returns 0 when the store is clean, 1 when it is not (or
 * cannot be read), 2 when `role` is not a role. */
int store_check_report(const char *path, const char *role, FILE *out);

#endif
