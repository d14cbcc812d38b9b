/* The file probe: certificates on disk (PEM, DER, PKCS#7, PKCS#12), their
 * expiry and facts, one target being a path or a glob. Synchronous: file
 * I/O only. See probes/file/README.md for its metrics. */
#ifndef PKI_FILE_PROBE_H
#define PKI_FILE_PROBE_H

#include <stdint.h>

#include "exporter/expo.h"
#include "probes/probe.h"
#include "probes/x509/x509_load.h"

#define FILE_MAX_FILES 4096	/* files read per target (glob matches) */
#define FILE_PASSWORD_MAX 1024	/* bytes of a password_file */

extern const struct probe_ops file_probe_ops;

/* pki_file_read_errors, shared with the store probe. */
extern const struct metric_desc file_m_read_errors;

/* Add pki_file_read_errors{module,target,file,reason} for every reason but
 * "ok": 1 for `err`, 0 for the others. */
void file_emit_read_errors(struct expo_set *out, uint32_t order,
			   const char *module, const char *target,
			   const char *file, enum x509_load_err err);

/* Read a password file: its first line, without the line end. Returns 0,
 * -ENOMEM, or -errno / -EFBIG (longer than FILE_PASSWORD_MAX). On success
 * *out is a heap string the caller frees with file_password_free(). */
int file_password_read(const char *path, char **out);
void file_password_free(char *pw);

#endif
