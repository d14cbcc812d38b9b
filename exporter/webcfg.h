/* --web.config.file: TLS and basic authentication for the exporter's own
 * endpoint, in the format of the Prometheus exporter toolkit:
 *
 *   tls_server_config:
 *     cert_file: server.crt
 *     key_file: server.key
 *     client_ca_file: clients-ca.crt
 *     client_auth_type: RequireAndVerifyClientCert
 *     min_version: TLS12
 *   basic_auth_users:
 *     prometheus: $2y$10$...        # bcrypt, checked with libcrypt
 */
#ifndef PKI_WEBCFG_H
#define PKI_WEBCFG_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum web_client_auth {
	WEB_CLIENT_NONE = 0,		/* NoClientCert */
	WEB_CLIENT_REQUEST,		/* RequestClientCert */
	WEB_CLIENT_REQUIRE_ANY,		/* RequireAnyClientCert */
	WEB_CLIENT_VERIFY_IF_GIVEN,	/* VerifyClientCertIfGiven */
	WEB_CLIENT_REQUIRE_VERIFY,	/* RequireAndVerifyClientCert */
};

struct web_user {
	char *name;
	char *hash;		/* bcrypt ($2a$, $2b$, $2y$) */
};

struct web_config {
	bool tls;
	char *cert_pem;		/* file contents, for MHD */
	char *key_pem;
	char *client_ca_pem;	/* NULL when no client CA */
	enum web_client_auth client_auth;
	char *priorities;	/* GnuTLS priority string from min/max_version */
	struct web_user *users;
	size_t nusers;
};

/* Load and check `file`; every error in eb (file:line:col). */
int webcfg_load(const char *file, struct web_config **out, struct errbuf *eb);
void webcfg_free(struct web_config *wc);

/* Whether user/password is allowed. bcrypt is slow on purpose, so good
 * answers are remembered (by a SHA-256 of user and password, never the
 * password itself) for a while. Thread-safe. */
bool webcfg_check_user(struct web_config *wc, const char *user,
		       const char *password);

#endif
