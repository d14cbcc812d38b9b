#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "exporter/config.h"
#include "exporter/loop.h"
#include "exporter/xalloc.h"
#include "probes/x509/x509_metrics.h"

struct file_module {
	char *dir;		/* the config file's directory, or NULL */
	char *password;		/* from password_file, or NULL; owned */
};

struct file_target {
	char *pattern;	/* absolute (or relative to the cwd when the
			   config has no directory) */
	bool is_glob;
};

const struct metric_desc file_m_read_errors = {
	"pki_file_read_errors",
	"Whether this certificate file could not be read (1) for this reason, "
	"0 for the other reasons.",
	METRIC_GAUGE};
static const struct metric_desc M_CERTS = {
	"pki_file_certificates",
	"Certificates read from this file.", METRIC_GAUGE};

void file_emit_read_errors(struct expo_set *out, uint32_t order,
			   const char *mod, const char *tgt, const char *file,
			   enum x509_load_err err)
{
	for (int e = X509_LOAD_OK + 1; e < X509_LOAD__COUNT; e++)
		expo_add(out, &file_m_read_errors, order, (int)err == e ? 1 : 0,
			 "module", mod, "target", tgt, "file", file, "reason",
			 x509_load_err_str(e), NULL);
}

void file_password_free(char *pw)
{
	if (!pw)
		return;
	OPENSSL_cleanse(pw, strlen(pw));
	xfree(pw);
}

int file_password_read(const char *path, char **out)
{
	char buf[FILE_PASSWORD_MAX + 2];
	size_t len = 0;
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return -errno;
	while (len < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (rc == 0) {
		/* the first line only: `echo secret > file` adds a LF */
		len = strcspn(buf, "\r\n");
		if (len > FILE_PASSWORD_MAX)
			rc = -EFBIG;
	}
	if (rc == 0) {
		*out = xstrndup(buf, len);
		if (!*out)
			rc = -ENOMEM;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

/* ---- configuration ---- */

static void file_cfg_free(void *p)
{
	struct file_module *m = p;

	if (!m)
		return;
	xfree(m->dir);
	file_password_free(m->password);
	xfree(m);
}

static int file_parse(const struct cfg_node *n, const struct config *cfg,
		      void **cfgp, struct errbuf *eb)
{
	struct file_module *m = xcalloc(1, sizeof(*m));
	unsigned before = eb->count;

	if (!m)
		return -ENOMEM;
	if (cfg->dir) {
		m->dir = xstrdup(cfg->dir);
		if (!m->dir) {
			file_cfg_free(m);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;

		cfg_map_pair(n, i, &p);
		if (cfg_module_common_key(p.key)) {
			continue;	/* handled by config.c */
		} else if (strcmp(p.key, "password_file") == 0) {
			char *path = NULL;
			int rc;

			if (cfg_get_path(&p.vnode, cfg, eb, &path))
				continue;
			file_password_free(m->password);
			m->password = NULL;
			rc = file_password_read(path, &m->password);
			if (rc == -EFBIG)
				errbuf_add(eb, &p.vnode,
					   "password_file '%s': longer than %d "
					   "bytes", path, FILE_PASSWORD_MAX);
			else if (rc)
				errbuf_add(eb, &p.vnode,
					   "password_file '%s': %s", path,
					   strerror(-rc));
			xfree(path);
		} else {
			errbuf_add(eb, &p.knode,
				   "module: unknown key '%s' for prober file",
				   p.key);
		}
	}
	if (eb->count != before) {
		file_cfg_free(m);
		return -EINVAL;
	}
	*cfgp = m;
	return 0;
}

static int file_parse_target(const void *cfg, const char *s, void **tp,
			     char *err, size_t errlen)
{
	const struct file_module *m = cfg;
	struct file_target *t;
	char *path;
	int rc = cfg_target_path(m->dir, s, &path, err, errlen);

	if (rc)
		return rc;
	t = xcalloc(1, sizeof(*t));
	if (!t) {
		xfree(path);
		return -ENOMEM;
	}
	t->pattern = path;
	t->is_glob = strpbrk(s, "*?[") != NULL;
	*tp = t;
	return 0;
}

static void file_target_free(void *tp)
{
	struct file_target *t = tp;

	if (!t)
		return;
	xfree(t->pattern);
	xfree(t);
}

/* ---- the run ---- */

/* Read one file and add its samples; *errp is the file's outcome.
 * Returns 0 or -ENOMEM. */
static int file_one(struct probe_run *run, const struct file_module *m,
		    const char *path, enum x509_load_err *errp)
{
	const char *mod = probe_module_name(run), *tgt = probe_target_name(run);
	struct x509_loaded l;
	enum x509_load_err err;
	int n;

	if (x509_load_file(path, m->password, 0, &l)) {
		x509_loaded_cleanup(&l);
		return -ENOMEM;
	}
	n = sk_X509_num(l.certs);
	err = l.err;
	/* a key or a CRL alone is not a certificate file */
	if (err == X509_LOAD_OK && n == 0)
		err = X509_LOAD_UNRECOGNISED;
	expo_add(run->out, &M_CERTS, run->order, n, "module", mod, "target",
		 tgt, "file", path, NULL);
	file_emit_read_errors(run->out, run->order, mod, tgt, path, err);
	for (int i = 0; i < n; i++)
		x509_emit_cert(run->out, run->order, mod, tgt, path, i,
			       sk_X509_value(l.certs, i));
	x509_loaded_cleanup(&l);
	*errp = err;
	return 0;
}

static enum probe_fail fail_of(enum x509_load_err e)
{
	switch (e) {
	case X509_LOAD_OK:
		return PROBE_OK;
	case X509_LOAD_NOT_FOUND:
		return PROBE_FAIL_NOT_FOUND;
	case X509_LOAD_PERMISSION:
		return PROBE_FAIL_PERMISSION;
	default:
		return PROBE_FAIL_FILE;
	}
}

static int file_start(struct probe_run *run)
{
	const struct file_module *m = probe_module_cfg(run);
	const struct file_target *t = probe_target_cfg(run);
	enum probe_fail fail = PROBE_OK;
	enum x509_load_err e = X509_LOAD_OK;
	glob_t g;
	size_t nread = 0;
	int rc;

	run->priv = NULL;
	run->stage = PROBE_STAGE_DONE;
	if (!t->is_glob) {
		if (file_one(run, m, t->pattern, &e))
			return -ENOMEM;	/* the engine ends the run */
		probe_done(run, fail_of(e));
		return 0;
	}
	memset(&g, 0, sizeof(g));
	/* GLOB_MARK: directories come back with a trailing '/' and are
	 * skipped; matches are sorted, so the output order is stable */
	rc = glob(t->pattern, GLOB_MARK, NULL, &g);
	if (rc == GLOB_NOSPACE) {
		globfree(&g);
		return -ENOMEM;
	}
	for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
		const char *path = g.gl_pathv[i];
		size_t len = strlen(path);

		if (len && path[len - 1] == '/')
			continue;
		if (nread == FILE_MAX_FILES) {
			/* reported, not silently cut */
			fail = PROBE_FAIL_FILE;
			break;
		}
		/* reads are synchronous: a slow share (or thousands of
		 * PKCS#12 files) must still end at the deadline */
		if (loop_now() >= run->deadline) {
			fail = run->deadline_is_scrape ? PROBE_FAIL_DEADLINE
						       : PROBE_FAIL_TIMEOUT;
			break;
		}
		nread++;
		if (file_one(run, m, path, &e)) {
			globfree(&g);
			return -ENOMEM;
		}
		if (e != X509_LOAD_OK && fail == PROBE_OK)
			fail = PROBE_FAIL_FILE;
	}
	globfree(&g);
	if (nread == 0)
		fail = PROBE_FAIL_NOT_FOUND;
	probe_done(run, fail);
	return 0;
}

static void file_cancel(struct probe_run *run, enum probe_fail why)
{
	/* start() always ends the run itself; nothing can be in flight */
	probe_done(run, why);
}

static void file_release(struct probe_run *run)
{
	run->priv = NULL;
}

const struct probe_ops file_probe_ops = {
	.name = "file",
	.parse = file_parse,
	.cfg_free = file_cfg_free,
	.parse_target = file_parse_target,
	.target_free = file_target_free,
	.start = file_start,
	.cancel = file_cancel,
	.release = file_release,
};
