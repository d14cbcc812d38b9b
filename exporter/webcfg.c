#include "webcfg.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "buf.h"
#include "xalloc.h"

#define WEB_AUTH_CACHE 64
#define WEB_AUTH_CACHE_SECS 300
#define WEB_MAX_FILE (1024 * 1024)

static struct {
	pthread_mutex_t lock;
	unsigned char key[WEB_AUTH_CACHE][32];
	time_t when[WEB_AUTH_CACHE];
	size_t next;
} auth_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char *slurp(const char *path, struct errbuf *eb,
		   const struct cfg_node *at)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
	size_t n;

	if (!f) {
		errbuf_add(eb, at, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	buf_init(&b, WEB_MAX_FILE);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(&b, chunk, n))
			break;
	fclose(f);
	if (b.err || b.len == 0) {
		errbuf_add(eb, at, "cannot read '%s'%s", path,
			   b.len == 0 && !b.err ? ": empty file" : "");
		buf_cleanup(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

static const char *const client_auth_names[] = {
	"NoClientCert", "RequestClientCert", "RequireAnyClientCert",
	"VerifyClientCertIfGiven", "RequireAndVerifyClientCert"};

static int tls_version(const char *s, const char **gnutls)
{
	static const struct {
		const char *name, *prio;
	} v[] = {
		{"TLS10", "+VERS-TLS1.0:+VERS-TLS1.1:+VERS-TLS1.2:+VERS-TLS1.3"},
		{"TLS11", "+VERS-TLS1.1:+VERS-TLS1.2:+VERS-TLS1.3"},
		{"TLS12", "+VERS-TLS1.2:+VERS-TLS1.3"},
		{"TLS13", "+VERS-TLS1.3"},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (strcmp(s, v[i].name) == 0) {
			*gnutls = v[i].prio;
			return 0;
		}
	return -EINVAL;
}

static void parse_tls(const struct cfg_node *n, struct web_config *wc,
		      const char *dir, struct errbuf *eb)
{
	struct cfg_node cert_at = {0}, key_at = {0}, ca_at = {0};
	char *cert = NULL, *key = NULL, *ca = NULL;
	const char *vers = "+VERS-TLS1.2:+VERS-TLS1.3";

	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "tls_server_config: expected a mapping");
		return;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;
		const char *s;

		cfg_map_pair(n, i, &p);
		s = cfg_scalar(&p.vnode);
		if (strcmp(p.key, "cert_file") == 0) {
			cfg_get_string(&p.vnode, eb, &cert);
			cert_at = p.vnode;
		} else if (strcmp(p.key, "key_file") == 0) {
			cfg_get_string(&p.vnode, eb, &key);
			key_at = p.vnode;
		} else if (strcmp(p.key, "client_ca_file") == 0) {
			cfg_get_string(&p.vnode, eb, &ca);
			ca_at = p.vnode;
		} else if (strcmp(p.key, "client_auth_type") == 0) {
			size_t k;

			for (k = 0; s && k < 5; k++)
				if (strcmp(s, client_auth_names[k]) == 0)
					break;
			if (!s || k == 5)
				errbuf_add(eb, &p.vnode,
					   "client_auth_type must be one of "
					   "NoClientCert, RequestClientCert, "
					   "RequireAnyClientCert, "
					   "VerifyClientCertIfGiven, "
					   "RequireAndVerifyClientCert");
			else
				wc->client_auth = (enum web_client_auth)k;
		} else if (strcmp(p.key, "min_version") == 0) {
			if (!s || tls_version(s, &vers))
				errbuf_add(eb, &p.vnode,
					   "min_version must be TLS10, TLS11, "
					   "TLS12 or TLS13");
		} else if (strcmp(p.key, "cipher_suites") == 0 ||
			   strcmp(p.key, "curve_preferences") == 0 ||
			   strcmp(p.key, "prefer_server_cipher_suites") == 0 ||
			   strcmp(p.key, "max_version") == 0) {
			errbuf_add(eb, &p.knode,
				   "%s is not supported by pki_exporter (the "
				   "TLS library's defaults apply)",
				   p.key);
		} else {
			errbuf_add(eb, &p.knode,
				   "tls_server_config: unknown key '%s'", p.key);
		}
	}
	if (!cert || !key) {
		errbuf_add(eb, n, "tls_server_config needs cert_file and key_file");
	} else {
		char *pc = cfg_path_join(dir, cert);
		char *pk = cfg_path_join(dir, key);

		if (pc)
			wc->cert_pem = slurp(pc, eb, &cert_at);
		if (pk)
			wc->key_pem = slurp(pk, eb, &key_at);
		xfree(pc);
		xfree(pk);
	}
	if (ca) {
		char *p = cfg_path_join(dir, ca);

		if (p)
			wc->client_ca_pem = slurp(p, eb, &ca_at);
		xfree(p);
	} else if (wc->client_auth != WEB_CLIENT_NONE) {
		/* GnuTLS (through libmicrohttpd) only asks clients for a
		 * certificate when it has CAs to name */
		errbuf_add(eb, n, "client_auth_type %s needs client_ca_file",
			   client_auth_names[wc->client_auth]);
	}
	wc->priorities = xasprintf("NORMAL:-VERS-ALL:%s", vers);
	wc->tls = true;
	xfree(cert);
	xfree(key);
	xfree(ca);
}

static void parse_users(const struct cfg_node *n, struct web_config *wc,
			struct errbuf *eb)
{
	size_t cap = 0;

	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "basic_auth_users: expected a mapping of user "
				  "to bcrypt hash");
		return;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;
		const char *h;

		cfg_map_pair(n, i, &p);
		h = cfg_scalar(&p.vnode);
		if (!h || strncmp(h, "$2", 2) != 0 || strlen(h) != 60) {
			errbuf_add(eb, &p.vnode,
				   "user '%s': expected a bcrypt hash ($2y$...)",
				   p.key);
			continue;
		}
		if (!*p.key || strchr(p.key, ':')) {
			errbuf_add(eb, &p.knode, "invalid user name '%s'", p.key);
			continue;
		}
		if (xgrow((void **)&wc->users, &cap, wc->nusers + 1,
			  sizeof(*wc->users)))
			return;
		wc->users[wc->nusers].name = xstrdup(p.key);
		wc->users[wc->nusers].hash = xstrdup(h);
		wc->nusers++;
	}
}

struct parse_ctx {
	struct web_config *wc;
	const char *dir;
};

static int parse_root(const struct cfg_node *root, void *arg, struct errbuf *eb)
{
	struct parse_ctx *ctx = arg;

	for (size_t i = 0; i < cfg_len(root); i++) {
		struct cfg_pair p;

		cfg_map_pair(root, i, &p);
		if (strcmp(p.key, "tls_server_config") == 0)
			parse_tls(&p.vnode, ctx->wc, ctx->dir, eb);
		else if (strcmp(p.key, "basic_auth_users") == 0)
			parse_users(&p.vnode, ctx->wc, eb);
		else if (strcmp(p.key, "http_server_config") == 0)
			errbuf_add(eb, &p.knode,
				   "http_server_config is not supported by "
				   "pki_exporter");
		else
			errbuf_add(eb, &p.knode, "unknown key '%s'", p.key);
	}
	return 0;
}

int webcfg_load(const char *file, struct web_config **out, struct errbuf *eb)
{
	struct web_config *wc = xcalloc(1, sizeof(*wc));
	struct parse_ctx ctx = {wc, NULL};
	char *dir, *slash;
	int rc;

	*out = NULL;
	if (!wc)
		return -ENOMEM;
	dir = xstrdup(file);
	if (!dir) {
		xfree(wc);
		return -ENOMEM;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	ctx.dir = dir;
	rc = cfg_parse_file(file, parse_root, &ctx, eb);
	xfree(dir);
	if (rc) {
		webcfg_free(wc);
		return rc;
	}
	*out = wc;
	return 0;
}

void webcfg_free(struct web_config *wc)
{
	if (!wc)
		return;
	if (wc->key_pem) {
		OPENSSL_cleanse(wc->key_pem, strlen(wc->key_pem));
		xfree(wc->key_pem);
	}
	xfree(wc->cert_pem);
	xfree(wc->client_ca_pem);
	xfree(wc->priorities);
	for (size_t i = 0; i < wc->nusers; i++) {
		xfree(wc->users[i].name);
		xfree(wc->users[i].hash);
	}
	xfree(wc->users);
	xfree(wc);
}

static void cache_key(const char *user, const char *pw, const char *hash,
		      unsigned char out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 32;

	memset(out, 0, 32);
	if (!ctx)
		return;
	/* the stored hash is part of the key: a changed password file
	 * invalidates what was remembered */
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, user, strlen(user) + 1);
	EVP_DigestUpdate(ctx, pw, strlen(pw) + 1);
	EVP_DigestUpdate(ctx, hash, strlen(hash));
	EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
}

bool webcfg_check_user(struct web_config *wc, const char *user,
		       const char *password)
{
	const struct web_user *u = NULL;
	struct crypt_data *cd;
	unsigned char key[32];
	time_t now = time(NULL);
	const char *got;
	bool ok = false;

	for (size_t i = 0; i < wc->nusers; i++)
		if (strcmp(wc->users[i].name, user) == 0)
			u = &wc->users[i];
	if (!u || strlen(password) > 1024)
		return false;
	cache_key(user, password, u->hash, key);
	pthread_mutex_lock(&auth_cache.lock);
	for (size_t i = 0; i < WEB_AUTH_CACHE && !ok; i++)
		ok = now - auth_cache.when[i] < WEB_AUTH_CACHE_SECS &&
		     CRYPTO_memcmp(auth_cache.key[i], key, 32) == 0;
	pthread_mutex_unlock(&auth_cache.lock);
	if (ok)
		return true;

	cd = xcalloc(1, sizeof(*cd));	/* large: not on the stack */
	if (!cd)
		return false;
	got = crypt_r(password, u->hash, cd);
	ok = got && strlen(got) == strlen(u->hash) &&
	     CRYPTO_memcmp(got, u->hash, strlen(u->hash)) == 0;
	OPENSSL_cleanse(cd, sizeof(*cd));
	xfree(cd);
	if (ok) {
		pthread_mutex_lock(&auth_cache.lock);
		memcpy(auth_cache.key[auth_cache.next], key, 32);
		auth_cache.when[auth_cache.next] = now;
		auth_cache.next = (auth_cache.next + 1) % WEB_AUTH_CACHE;
		pthread_mutex_unlock(&auth_cache.lock);
	}
	return ok;
}
