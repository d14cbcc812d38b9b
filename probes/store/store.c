#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/x509.h>

#include "exporter/config.h"
#include "exporter/loop.h"
#include "exporter/xalloc.h"
#include "probes/file/file.h"
#include "probes/x509/x509_metrics.h"

#define STORE_SUBJECT_MAX 1024	/* bytes of a subject kept for reports */

struct store_module {
	char *dir;		/* the config file's directory, or NULL */
	enum store_role role;
	uint64_t max_certificates;
	uint64_t max_ca_names_bytes;
};

struct store_target {
	char *path;	/* absolute when the config has a directory */
};

static const struct metric_desc M_CERTS = {
	"pki_store_certificates",
	"Certificates in the store (duplicates included).", METRIC_GAUGE};
static const struct metric_desc M_MISPLACED = {
	"pki_store_misplaced_certificates",
	"Certificates that do not belong in a store of this role, by reason "
	"(0 when none).",
	METRIC_GAUGE};
static const struct metric_desc M_CA_NAMES = {
	"pki_store_ca_names_bytes",
	"Sum of the DER-encoded subject names of the store's distinct CA "
	"certificates: the CA names list Windows Schannel caps at 16 KiB.",
	METRIC_GAUGE};
static const struct metric_desc M_OVER = {
	"pki_store_over_limit",
	"Whether the store is over the module's limit (1) or not (0): "
	"certificates vs max_certificates, ca_names_bytes vs "
	"max_ca_names_bytes.",
	METRIC_GAUGE};
static const struct metric_desc M_LIMIT = {
	"pki_store_limit",
	"The module's limit for the store: max_certificates (count) or "
	"max_ca_names_bytes (bytes), so dashboards can draw it.",
	METRIC_GAUGE};
static const struct metric_desc M_UNHASHED = {
	"pki_store_unhashed_files",
	"Files in an OpenSSL hashed directory that no <hash>.N link reaches: "
	"OpenSSL does not see them and they are not counted.",
	METRIC_GAUGE};

const char *store_role_str(enum store_role r)
{
	switch (r) {
	case STORE_ROLE_ROOT:
		return "root";
	case STORE_ROLE_INTERMEDIATE:
		return "intermediate";
	case STORE_ROLE_PERSONAL:
		return "personal";
	}
	return "unknown";
}

int store_role_parse(const char *s, enum store_role *out)
{
	if (!s)
		return -EINVAL;
	if (strcmp(s, "root") == 0)
		*out = STORE_ROLE_ROOT;
	else if (strcmp(s, "intermediate") == 0)
		*out = STORE_ROLE_INTERMEDIATE;
	else if (strcmp(s, "personal") == 0)
		*out = STORE_ROLE_PERSONAL;
	else
		return -EINVAL;
	return 0;
}

const char *store_reason_str(enum store_reason r)
{
	static const char *const names[STORE_REASON__COUNT] = {
		[STORE_NOT_SELF_SIGNED] = "not_self_signed",
		[STORE_SELF_SIGNED] = "self_signed",
		[STORE_PRIVATE_KEY_PRESENT] = "private_key_present",
		[STORE_MISSING_PRIVATE_KEY] = "missing_private_key",
		[STORE_DUPLICATE] = "duplicate",
		[STORE_EXPIRED] = "expired",
		[STORE_NOT_CA] = "not_ca",
	};

	if (r < 0 || r >= STORE_REASON__COUNT)
		return "unknown";
	return names[r];
}

/* ---- scanning ---- */

void store_scan_cleanup(struct store_scan *s)
{
	for (size_t i = 0; i < s->ncerts; i++) {
		xfree(s->certs[i].subject);
		x509_facts_cleanup(&s->certs[i].f);
	}
	for (size_t i = 0; i < s->nfiles; i++)
		xfree(s->files[i].path);
	xfree(s->certs);
	xfree(s->files);
	s->certs = NULL;
	s->files = NULL;
	s->ncerts = s->nfiles = 0;
}

/* Is `name` an OpenSSL hashed-directory entry: 8 hex digits, a dot, a
 * number (certificates) or 'r' and a number (CRLs)? */
static bool hash_name(const char *name, bool *is_crl)
{
	const char *p = name + 8;

	for (int i = 0; i < 8; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	if (*p++ != '.')
		return false;
	*is_crl = *p == 'r';
	if (*is_crl)
		p++;
	if (!*p)
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Is there a "<basename>.key" beside `path` (foo.pem -> foo.key)? */
static bool key_beside(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');
	size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - path)
						     : strlen(path);
	char *k = xasprintf("%.*s.key", (int)stem, path);
	struct stat st;
	bool ok;

	if (!k)
		return false;
	ok = stat(k, &st) == 0 && S_ISREG(st.st_mode);
	xfree(k);
	return ok;
}

static char *subject_str(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *s;
	long n;

	if (!b)
		return NULL;
	X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
	n = BIO_get_mem_data(b, &data);
	if (n < 0)
		n = 0;
	if (n > STORE_SUBJECT_MAX)
		n = STORE_SUBJECT_MAX;
	s = xstrndup(data ? data : "", (size_t)n);
	BIO_free(b);
	return s;
}

/* Judge one certificate by the store's role (duplicates come later). */
static uint32_t judge(enum store_role role, const struct store_file *sf,
		      const struct store_cert *c, bool key_nearby, int64_t now)
{
	uint32_t r = 0;

	if (c->f.dates_ok && c->f.not_after < now)
		r |= 1u << STORE_EXPIRED;
	switch (role) {
	case STORE_ROLE_ROOT:
		if (!c->f.self_signed)
			r |= 1u << STORE_NOT_SELF_SIGNED;
		if (!c->f.is_ca)
			r |= 1u << STORE_NOT_CA;
		if (sf->has_key)
			r |= 1u << STORE_PRIVATE_KEY_PRESENT;
		break;
	case STORE_ROLE_INTERMEDIATE:
		if (c->f.self_signed)
			r |= 1u << STORE_SELF_SIGNED;
		if (!c->f.is_ca)
			r |= 1u << STORE_NOT_CA;
		if (sf->has_key)
			r |= 1u << STORE_PRIVATE_KEY_PRESENT;
		break;
	case STORE_ROLE_PERSONAL:
		/* the first certificate of a file is the one the key
		 * belongs to; the rest is its chain */
		if (c->position == 0 && !sf->has_key && !key_nearby)
			r |= 1u << STORE_MISSING_PRIVATE_KEY;
		break;
	}
	return r;
}

/* Read one file of the store. Returns 0 or -ENOMEM. */
static int scan_file(struct store_scan *s, const char *path, int64_t now)
{
	struct store_file *sf;
	struct x509_loaded l;
	bool key_nearby = false;
	int n, rc = 0;

	if (s->nfiles == STORE_MAX_FILES) {
		s->truncated = true;
		return 0;
	}
	if (xgrow((void **)&s->files, &s->capfiles, s->nfiles + 1,
		  sizeof(*s->files)))
		return -ENOMEM;
	sf = &s->files[s->nfiles];
	memset(sf, 0, sizeof(*sf));
	sf->path = xstrdup(path);
	if (!sf->path)
		return -ENOMEM;
	s->nfiles++;
	if (x509_load_file(path, NULL, 0, &l)) {
		x509_loaded_cleanup(&l);
		return -ENOMEM;
	}
	n = sk_X509_num(l.certs);
	sf->err = l.err;
	sf->has_key = l.has_key;
	sf->key_only = n == 0 && l.has_key;
	if (sf->err == X509_LOAD_OK && n == 0 && !l.has_key &&
	    l.format != X509_FMT_CRL)
		sf->err = X509_LOAD_UNRECOGNISED;
	if (sf->err != X509_LOAD_OK)
		s->unreadable++;
	if (sf->key_only && s->role != STORE_ROLE_PERSONAL)
		s->misplaced[STORE_PRIVATE_KEY_PRESENT]++;
	if (s->role == STORE_ROLE_PERSONAL && n > 0 && !l.has_key)
		key_nearby = key_beside(path);
	for (int i = 0; i < n && rc == 0; i++) {
		X509 *x = sk_X509_value(l.certs, i);
		struct store_cert *c;
		int dl;

		if (s->ncerts == STORE_MAX_CERTS) {
			s->truncated = true;
			break;
		}
		if (xgrow((void **)&s->certs, &s->capcerts, s->ncerts + 1,
			  sizeof(*s->certs))) {
			rc = -ENOMEM;
			break;
		}
		c = &s->certs[s->ncerts];
		memset(c, 0, sizeof(*c));
		if (x509_facts_init(&c->f, x)) {
			rc = -ENOMEM;
			break;
		}
		c->subject = subject_str(x);
		if (!c->subject) {
			x509_facts_cleanup(&c->f);
			rc = -ENOMEM;
			break;
		}
		s->ncerts++;
		sf->ncerts++;
		c->file = sf->path;
		c->position = i;
		dl = i2d_X509_NAME(X509_get_subject_name(x), NULL);
		c->subject_der_len = dl > 0 ? (size_t)dl : 0;
		c->reasons = judge(s->role, sf, c, key_nearby, now);
	}
	x509_loaded_cleanup(&l);
	return rc;
}

/* A directory entry, as found by the first pass. */
struct dent {
	char *name;
	dev_t dev;
	ino_t ino;
	bool hash;		/* a <hash>.N certificate link */
	bool use;		/* read it (the group's representative) */
};

static int dent_by_inode(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int dent_by_name(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static enum probe_fail fail_of_errno(int err)
{
	switch (x509_load_errno(err)) {
	case X509_LOAD_NOT_FOUND:
		return PROBE_FAIL_NOT_FOUND;
	case X509_LOAD_PERMISSION:
		return PROBE_FAIL_PERMISSION;
	default:
		return PROBE_FAIL_FILE;
	}
}

/* A file that could not even be stat()ed (a dangling link): recorded as a
 * failed file of the store. */
static int note_bad_entry(struct store_scan *s, const char *path, int err)
{
	struct store_file *sf;

	if (s->nfiles == STORE_MAX_FILES) {
		s->truncated = true;
		return 0;
	}
	if (xgrow((void **)&s->files, &s->capfiles, s->nfiles + 1,
		  sizeof(*s->files)))
		return -ENOMEM;
	sf = &s->files[s->nfiles];
	memset(sf, 0, sizeof(*sf));
	sf->path = xstrdup(path);
	if (!sf->path)
		return -ENOMEM;
	sf->err = x509_load_errno(err);
	s->nfiles++;
	s->unreadable++;
	return 0;
}

/* Every file of a directory once: names that are links to the same file
 * (foo.pem and its <hash>.0) are one group, read once under its most
 * readable name. In a hashed directory only groups that a <hash>.N link
 * reaches are read, as OpenSSL would see them. */
static int scan_dir(struct store_scan *s, const char *path, int64_t now)
{
	struct dent *ents = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	d = opendir(path);
	if (!d) {
		s->fail = fail_of_errno(errno);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char *full;
		bool crl = false, hash;

		if (de->d_name[0] == '.')
			continue;	/* ., .., hidden files */
		hash = hash_name(de->d_name, &crl);
		if (hash && crl)
			continue;	/* <hash>.rN: a CRL */
		if (s->role == STORE_ROLE_PERSONAL &&
		    has_suffix(de->d_name, ".key"))
			continue;	/* the keys of personal certs */
		if (n == STORE_MAX_FILES) {
			s->truncated = true;
			break;
		}
		full = xasprintf("%s/%s", path, de->d_name);
		if (!full) {
			rc = -ENOMEM;
			break;
		}
		if (stat(full, &st) == -1) {
			rc = note_bad_entry(s, full, errno);
			xfree(full);
			if (rc)
				break;
			continue;
		}
		xfree(full);
		if (S_ISDIR(st.st_mode))
			continue;	/* not recursed: e.g. certs/java */
		if (xgrow((void **)&ents, &cap, n + 1, sizeof(*ents))) {
			rc = -ENOMEM;
			break;
		}
		ents[n].name = xstrdup(de->d_name);
		if (!ents[n].name) {
			rc = -ENOMEM;
			break;
		}
		ents[n].dev = st.st_dev;
		ents[n].ino = st.st_ino;
		ents[n].hash = hash;
		ents[n].use = false;
		if (hash)
			s->hashed = true;
		n++;
	}
	closedir(d);
	if (rc)
		goto out;

	/* group by inode; pick each group's representative */
	if (n)
		qsort(ents, n, sizeof(*ents), dent_by_inode);
	for (size_t i = 0; i < n;) {
		size_t j = i, rep = n;
		bool any_hash = false;

		for (; j < n && ents[j].dev == ents[i].dev &&
		       ents[j].ino == ents[i].ino;
		     j++) {
			any_hash |= ents[j].hash;
			/* sorted by name within the group: the first
			 * non-hash name is the readable one */
			if (!ents[j].hash && rep == n)
				rep = j;
		}
		if (rep == n)
			rep = i;
		if (s->hashed && !any_hash)
			s->unhashed++;
		else
			ents[rep].use = true;
		i = j;
	}
	if (n)
		qsort(ents, n, sizeof(*ents), dent_by_name);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *full;

		if (!ents[i].use)
			continue;
		if (s->deadline && loop_now() >= s->deadline) {
			s->cut = true;
			break;
		}
		full = xasprintf("%s/%s", path, ents[i].name);
		if (!full) {
			rc = -ENOMEM;
			break;
		}
		rc = scan_file(s, full, now);
		xfree(full);
	}
out:
	for (size_t i = 0; i < n; i++)
		xfree(ents[i].name);
	xfree(ents);
	return rc;
}

static int cert_by_sha256(const void *a, const void *b)
{
	const struct store_cert *const *x = a, *const *y = b;
	int c = strcmp((*x)->f.sha256, (*y)->f.sha256);

	if (c)
		return c;
	return *x < *y ? -1 : *x > *y;	/* earlier in the store first */
}

/* Mark every copy after the first of a certificate as a duplicate, and
 * add up the CA names of the distinct CA certificates. */
static int finish(struct store_scan *s)
{
	struct store_cert **v;

	if (s->ncerts == 0)
		return 0;
	v = xcalloc(s->ncerts, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < s->ncerts; i++)
		v[i] = &s->certs[i];
	qsort(v, s->ncerts, sizeof(*v), cert_by_sha256);
	for (size_t i = 0; i < s->ncerts; i++) {
		bool dup = i > 0 &&
			   strcmp(v[i]->f.sha256, v[i - 1]->f.sha256) == 0;

		if (dup)
			v[i]->reasons |= 1u << STORE_DUPLICATE;
		else if (v[i]->f.is_ca)
			s->ca_names_bytes += v[i]->subject_der_len;
	}
	xfree(v);
	for (size_t i = 0; i < s->ncerts; i++)
		for (int r = 0; r < STORE_REASON__COUNT; r++)
			if (s->certs[i].reasons & (1u << r))
				s->misplaced[r]++;
	return 0;
}

int store_scan(const char *path, enum store_role role, int64_t now,
	       int64_t deadline, struct store_scan *s)
{
	struct stat st;
	int rc;

	memset(s, 0, sizeof(*s));
	s->role = role;
	s->deadline = deadline;
	if (stat(path, &st) == -1) {
		s->fail = fail_of_errno(errno);
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		rc = scan_dir(s, path, now);
	else
		rc = scan_file(s, path, now);	/* a bundle */
	if (rc)
		return rc;
	rc = finish(s);
	if (rc)
		return rc;
	if (s->fail == PROBE_OK && (s->unreadable || s->truncated))
		s->fail = PROBE_FAIL_FILE;
	return 0;
}

/* ---- configuration ---- */

static void store_cfg_free(void *p)
{
	struct store_module *m = p;

	if (!m)
		return;
	xfree(m->dir);
	xfree(m);
}

static int store_parse(const struct cfg_node *n, const struct config *cfg,
		       void **cfgp, struct errbuf *eb)
{
	struct store_module *m = xcalloc(1, sizeof(*m));
	unsigned before = eb->count;
	bool have_role = false;

	if (!m)
		return -ENOMEM;
	m->max_certificates = STORE_DEFAULT_MAX_CERTIFICATES;
	m->max_ca_names_bytes = STORE_DEFAULT_MAX_CA_NAMES_BYTES;
	if (cfg->dir) {
		m->dir = xstrdup(cfg->dir);
		if (!m->dir) {
			store_cfg_free(m);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;

		cfg_map_pair(n, i, &p);
		if (cfg_module_common_key(p.key) ||
		    (cfg->in_stores && (strcmp(p.key, "name") == 0 ||
					strcmp(p.key, "path") == 0))) {
			continue;	/* handled by config.c */
		} else if (strcmp(p.key, "role") == 0) {
			if (store_role_parse(cfg_scalar(&p.vnode), &m->role))
				errbuf_add(eb, &p.vnode,
					   "role must be root, intermediate "
					   "or personal");
			else
				have_role = true;
		} else if (strcmp(p.key, "max_certificates") == 0) {
			cfg_get_uint(&p.vnode, eb, 1, 1000000,
				     &m->max_certificates);
		} else if (strcmp(p.key, "max_ca_names_bytes") == 0) {
			cfg_get_uint(&p.vnode, eb, 1, UINT64_C(1) << 32,
				     &m->max_ca_names_bytes);
		} else {
			errbuf_add(eb, &p.knode,
				   "module: unknown key '%s' for prober store",
				   p.key);
		}
	}
	if (!have_role && eb->count == before)
		errbuf_add(eb, n,
			   "prober store needs a role: root, intermediate or "
			   "personal");
	if (eb->count != before) {
		store_cfg_free(m);
		return -EINVAL;
	}
	*cfgp = m;
	return 0;
}

static int store_parse_target(const void *cfg, const char *s, void **tp,
			      char *err, size_t errlen)
{
	const struct store_module *m = cfg;
	struct store_target *t;
	char *path;
	int rc = cfg_target_path(m->dir, s, &path, err, errlen);

	if (rc)
		return rc;
	t = xcalloc(1, sizeof(*t));
	if (!t) {
		xfree(path);
		return -ENOMEM;
	}
	t->path = path;
	*tp = t;
	return 0;
}

static void store_target_free(void *tp)
{
	struct store_target *t = tp;

	if (!t)
		return;
	xfree(t->path);
	xfree(t);
}

/* ---- the run ---- */

static void emit(struct probe_run *run, const struct store_module *m,
		 const struct store_scan *s)
{
	const char *mod = probe_module_name(run), *tgt = probe_target_name(run);
	struct expo_set *out = run->out;

	/* `store` (the path, as SPEC and the dashboards name it) repeats
	 * `target` so that both the generic probe labels and the store
	 * contract hold on every store family */

	expo_add(out, &M_CERTS, run->order, (double)s->ncerts, "module", mod,
		 "target", tgt, "store", tgt, "role", store_role_str(m->role), NULL);
	for (int r = 0; r < STORE_REASON__COUNT; r++)
		expo_add(out, &M_MISPLACED, run->order, (double)s->misplaced[r],
			 "module", mod, "target", tgt, "store", tgt, "reason",
			 store_reason_str(r), NULL);
	expo_add(out, &M_CA_NAMES, run->order, (double)s->ca_names_bytes,
		 "module", mod, "target", tgt, "store", tgt, NULL);
	expo_add(out, &M_OVER, run->order,
		 s->ncerts > m->max_certificates ? 1 : 0, "module", mod,
		 "target", tgt, "store", tgt, "limit", "certificates", NULL);
	expo_add(out, &M_OVER, run->order,
		 s->ca_names_bytes > m->max_ca_names_bytes ? 1 : 0, "module",
		 mod, "target", tgt, "store", tgt, "limit", "ca_names_bytes", NULL);
	expo_add(out, &M_LIMIT, run->order, (double)m->max_certificates,
		 "module", mod, "target", tgt, "store", tgt, "limit",
		 "certificates", NULL);
	expo_add(out, &M_LIMIT, run->order, (double)m->max_ca_names_bytes,
		 "module", mod, "target", tgt, "store", tgt, "limit",
		 "ca_names_bytes", NULL);
	expo_add(out, &M_UNHASHED, run->order, (double)s->unhashed, "module",
		 mod, "target", tgt, "store", tgt, NULL);
	for (size_t i = 0; i < s->nfiles; i++)
		if (s->files[i].err != X509_LOAD_OK)
			file_emit_read_errors(out, run->order, mod, tgt,
					      s->files[i].path,
					      s->files[i].err);
	for (size_t i = 0; i < s->ncerts; i++)
		x509_emit_facts(out, run->order, mod, tgt, s->certs[i].file,
				s->certs[i].position, &s->certs[i].f);
}

static int store_start(struct probe_run *run)
{
	const struct store_module *m = probe_module_cfg(run);
	const struct store_target *t = probe_target_cfg(run);
	struct store_scan s;
	int rc;

	run->priv = NULL;
	run->stage = PROBE_STAGE_DONE;
	rc = store_scan(t->path, m->role, (int64_t)time(NULL), run->deadline, &s);
	if (rc) {
		store_scan_cleanup(&s);
		return rc;	/* the engine ends the run: internal_error */
	}
	if (s.cut && s.fail == PROBE_OK)
		s.fail = run->deadline_is_scrape ? PROBE_FAIL_DEADLINE
						 : PROBE_FAIL_TIMEOUT;
	/* a store that could not be opened has no counts to show; one cut
	 * short shows what was read */
	if (s.fail == PROBE_OK || s.fail == PROBE_FAIL_FILE || s.cut)
		emit(run, m, &s);
	probe_done(run, s.fail);
	store_scan_cleanup(&s);
	return 0;
}

static void store_cancel(struct probe_run *run, enum probe_fail why)
{
	/* start() always ends the run itself; nothing can be in flight */
	probe_done(run, why);
}

static void store_release(struct probe_run *run)
{
	run->priv = NULL;
}

const struct probe_ops store_probe_ops = {
	.name = "store",
	.parse = store_parse,
	.cfg_free = store_cfg_free,
	.parse_target = store_parse_target,
	.target_free = store_target_free,
	.start = store_start,
	.cancel = store_cancel,
	.release = store_release,
};

/* ---- check ---- */

int store_check_report(const char *path, const char *role_s, FILE *out)
{
	struct store_scan s;
	enum store_role role;
	uint64_t misplaced = 0;
	bool over_count, over_bytes, clean;
	int rc;

	if (store_role_parse(role_s, &role)) {
		fprintf(out,
			"%s: role must be root, intermediate or personal\n",
			role_s ? role_s : "(none)");
		return 2;
	}
	rc = store_scan(path, role, (int64_t)time(NULL), 0, &s);
	if (rc) {
		fprintf(out, "%s: out of memory\n", path);
		store_scan_cleanup(&s);
		return 1;
	}
	if (s.fail != PROBE_OK && s.fail != PROBE_FAIL_FILE) {
		fprintf(out, "%s: cannot read the store: %s\n", path,
			probe_fail_str(s.fail));
		store_scan_cleanup(&s);
		return 1;
	}
	fprintf(out, "store %s (role %s%s)\n", path, store_role_str(role),
		s.hashed ? ", OpenSSL hashed directory" : "");
	for (size_t i = 0; i < s.ncerts; i++) {
		const struct store_cert *c = &s.certs[i];

		for (int r = 0; r < STORE_REASON__COUNT; r++)
			if (c->reasons & (1u << r))
				fprintf(out, "  MISPLACED %s [%d] %s: %s\n",
					c->file, c->position,
					c->subject[0] ? c->subject
						      : "(empty subject)",
					store_reason_str(r));
	}
	for (size_t i = 0; i < s.nfiles; i++) {
		const struct store_file *f = &s.files[i];

		if (f->key_only && role != STORE_ROLE_PERSONAL)
			fprintf(out, "  MISPLACED %s: (private key only): %s\n",
				f->path,
				store_reason_str(STORE_PRIVATE_KEY_PRESENT));
		if (f->err != X509_LOAD_OK)
			fprintf(out, "  UNREADABLE %s: %s\n", f->path,
				x509_load_err_str(f->err));
	}
	if (s.truncated)
		fprintf(out, "  TRUNCATED: more than %d files or certificates; "
			"only the first were read\n", STORE_MAX_FILES);
	over_count = s.ncerts > STORE_DEFAULT_MAX_CERTIFICATES;
	over_bytes = s.ca_names_bytes > STORE_DEFAULT_MAX_CA_NAMES_BYTES;
	fprintf(out, "certificates: %zu (limit %d)%s\n", s.ncerts,
		STORE_DEFAULT_MAX_CERTIFICATES,
		over_count ? " OVER LIMIT" : "");
	fprintf(out, "CA names: %llu bytes (limit %d)%s\n",
		(unsigned long long)s.ca_names_bytes,
		STORE_DEFAULT_MAX_CA_NAMES_BYTES,
		over_bytes ? " OVER LIMIT" : "");
	if (s.unhashed)
		fprintf(out, "files no hash link reaches (not counted): %zu\n",
			s.unhashed);
	fprintf(out, "misplaced:");
	for (int r = 0; r < STORE_REASON__COUNT; r++) {
		fprintf(out, " %s=%llu", store_reason_str(r),
			(unsigned long long)s.misplaced[r]);
		misplaced += s.misplaced[r];
	}
	fprintf(out, "\n");
	/* the limits are about what Schannel sends from the Root store */
	clean = misplaced == 0 && s.unreadable == 0 && !s.truncated &&
		(role != STORE_ROLE_ROOT || (!over_count && !over_bytes));
	fprintf(out, "result: %s\n", clean ? "clean" : "NOT CLEAN");
	store_scan_cleanup(&s);
	return clean ? 0 : 1;
}
