#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "csv.h"
#include "events/events.h"
#include "probes/probe.h"
#include "xalloc.h"

#define CFG_MAX_ERRORS_BYTES (64 * 1024)
#define CFG_MAX_FILE_BYTES (16 * 1024 * 1024)

/* ---- errors ---- */

void errbuf_init(struct errbuf *eb, const char *file)
{
	buf_init(&eb->b, CFG_MAX_ERRORS_BYTES);
	eb->count = 0;
	eb->file = file;
}

void errbuf_cleanup(struct errbuf *eb)
{
	buf_cleanup(&eb->b);
	eb->count = 0;
}

static void errbuf_vadd(struct errbuf *eb, unsigned long line,
			unsigned long col, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

static void errbuf_vadd(struct errbuf *eb, unsigned long line,
			unsigned long col, const char *fmt, va_list ap)
{
	eb->count++;
	if (line)
		buf_printf(&eb->b, "%s:%lu:%lu: ", eb->file ? eb->file : "-",
			   line, col);
	else
		buf_printf(&eb->b, "%s: ", eb->file ? eb->file : "-");
	buf_vprintf(&eb->b, fmt, ap);
	buf_putc(&eb->b, '\n');
}

void errbuf_add(struct errbuf *eb, const struct cfg_node *node,
		const char *fmt, ...)
{
	unsigned long line = 0, col = 0;
	va_list ap;

	if (node && node->node) {
		const yaml_node_t *n = node->node;

		line = n->start_mark.line + 1;
		col = n->start_mark.column + 1;
	}
	va_start(ap, fmt);
	errbuf_vadd(eb, line, col, fmt, ap);
	va_end(ap);
}

static void errbuf_at(struct errbuf *eb, unsigned long line,
		      unsigned long col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void errbuf_at(struct errbuf *eb, unsigned long line,
		      unsigned long col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errbuf_vadd(eb, line, col, fmt, ap);
	va_end(ap);
}

const char *errbuf_str(const struct errbuf *eb)
{
	return eb->b.data ? eb->b.data : "";
}

/* ---- node access ---- */

static yaml_node_t *ynode(const struct cfg_node *n)
{
	return n->node;
}

bool cfg_is_map(const struct cfg_node *n)
{
	return n->node && ynode(n)->type == YAML_MAPPING_NODE;
}

bool cfg_is_seq(const struct cfg_node *n)
{
	return n->node && ynode(n)->type == YAML_SEQUENCE_NODE;
}

bool cfg_is_scalar(const struct cfg_node *n)
{
	return n->node && ynode(n)->type == YAML_SCALAR_NODE;
}

const char *cfg_scalar(const struct cfg_node *n)
{
	if (!cfg_is_scalar(n))
		return NULL;
	return (const char *)ynode(n)->data.scalar.value;
}

size_t cfg_len(const struct cfg_node *n)
{
	yaml_node_t *y = ynode(n);

	if (!y)
		return 0;
	if (y->type == YAML_MAPPING_NODE)
		return (size_t)(y->data.mapping.pairs.top -
				y->data.mapping.pairs.start);
	if (y->type == YAML_SEQUENCE_NODE)
		return (size_t)(y->data.sequence.items.top -
				y->data.sequence.items.start);
	return 0;
}

void cfg_map_pair(const struct cfg_node *map, size_t i, struct cfg_pair *p)
{
	yaml_node_pair_t *pair = &ynode(map)->data.mapping.pairs.start[i];

	p->knode.doc = map->doc;
	p->knode.node = yaml_document_get_node(map->doc, pair->key);
	p->vnode.doc = map->doc;
	p->vnode.node = yaml_document_get_node(map->doc, pair->value);
	p->key = cfg_scalar(&p->knode);
	if (!p->key)
		p->key = "";
}

void cfg_seq_item(const struct cfg_node *seq, size_t i, struct cfg_node *out)
{
	yaml_node_item_t item = ynode(seq)->data.sequence.items.start[i];

	out->doc = seq->doc;
	out->node = yaml_document_get_node(seq->doc, item);
}

/* A scalar written as `~`, `null` or nothing, plain (unquoted). */
static bool cfg_is_null(const struct cfg_node *n)
{
	const yaml_node_t *y = ynode(n);
	const char *s;

	if (!y || y->type != YAML_SCALAR_NODE ||
	    y->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = (const char *)y->data.scalar.value;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

int cfg_get_string(const struct cfg_node *n, struct errbuf *eb, char **out)
{
	const char *s = cfg_scalar(n);

	if (!s || cfg_is_null(n)) {
		errbuf_add(eb, n, "expected a string");
		return -EINVAL;
	}
	xfree(*out);
	*out = xstrdup(s);
	if (!*out) {
		errbuf_add(eb, n, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int cfg_get_bool(const struct cfg_node *n, struct errbuf *eb, bool *out)
{
	const char *s = cfg_scalar(n);

	if (s && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 ||
		  strcmp(s, "yes") == 0)) {
		*out = true;
		return 0;
	}
	if (s && (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
		  strcmp(s, "no") == 0)) {
		*out = false;
		return 0;
	}
	errbuf_add(eb, n, "expected true or false, got '%s'", s ? s : "(not a scalar)");
	return -EINVAL;
}

int cfg_get_uint(const struct cfg_node *n, struct errbuf *eb, uint64_t min,
		 uint64_t max, uint64_t *out)
{
	const char *s = cfg_scalar(n);
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+') {
		errbuf_add(eb, n, "expected a non-negative integer");
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end) {
		errbuf_add(eb, n, "expected a non-negative integer, got '%s'", s);
		return -EINVAL;
	}
	if (v < min || v > max) {
		errbuf_add(eb, n, "%llu is out of range [%llu, %llu]", v,
			   (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Prometheus duration syntax: one or more <number><unit> with units in
 * descending order y w d h m s ms. */
int duration_parse(const char *s, double *out)
{
	static const struct {
		const char *unit;
		double secs;
	} units[] = {
		{"y", 365 * 86400.0}, {"w", 7 * 86400.0}, {"d", 86400.0},
		{"h", 3600.0},	      {"ms", 0.001},	  {"m", 60.0},
		{"s", 1.0},
	};
	double total = 0;
	int last = -1;

	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	while (*s) {
		unsigned long long v = 0;
		int ui = -1, rank;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		while (*s >= '0' && *s <= '9') {
			if (v > 1000000000ULL)
				return -ERANGE;
			v = v * 10 + (unsigned)(*s++ - '0');
		}
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t len = strlen(units[i].unit);

			if (strncmp(s, units[i].unit, len) == 0) {
				ui = (int)i;
				s += len;
				break;
			}
		}
		if (ui < 0)
			return -EINVAL;
		/* order: y w d h m s ms */
		rank = ui == 4 ? 6 : (ui > 4 ? ui - 1 : ui);
		if (rank <= last)
			return -EINVAL;
		last = rank;
		total += (double)v * units[ui].secs;
	}
	/* every duration ends up in int64 nanoseconds somewhere: keep far
	 * below the 292 years that hold */
	if (total > DURATION_MAX)
		return -ERANGE;
	*out = total;
	return 0;
}

int cfg_get_duration(const struct cfg_node *n, struct errbuf *eb, double *out)
{
	const char *s = cfg_scalar(n);

	int rc = s ? duration_parse(s, out) : -EINVAL;

	if (rc == -ERANGE) {
		errbuf_add(eb, n, "duration '%s' is longer than 10 years", s);
		return -EINVAL;
	}
	if (rc) {
		errbuf_add(eb, n,
			   "invalid duration '%s' (use e.g. 500ms, 10s, 1m30s)",
			   s ? s : "(not a scalar)");
		return -EINVAL;
	}
	return 0;
}

char *cfg_path_join(const char *dir, const char *path)
{
	if (path[0] == '/' || !dir)
		return xstrdup(path);
	return xasprintf("%s/%s", dir, path);
}

int cfg_target_path(const char *dir, const char *s, char **out, char *err,
		    size_t errlen)
{
	if (!*s) {
		snprintf(err, errlen, "empty path");
		return -EINVAL;
	}
	*out = cfg_path_join(dir, s);
	return *out ? 0 : -ENOMEM;
}

int cfg_get_path(const struct cfg_node *n, const struct config *cfg,
		 struct errbuf *eb, char **out)
{
	char *s = NULL;

	if (cfg_get_string(n, eb, &s))
		return -EINVAL;
	xfree(*out);
	*out = cfg_path_join(cfg->dir, s);
	xfree(s);
	return *out ? 0 : -ENOMEM;
}

void cfg_strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		xfree(v[i]);
	xfree(v);
}

int cfg_get_strings(const struct cfg_node *n, struct errbuf *eb,
		    char ***out, size_t *count)
{
	size_t len, cap = 0, k = 0;
	char **v = NULL;
	int rc = 0;

	if (cfg_is_scalar(n)) {
		char *s = NULL;

		if (cfg_get_string(n, eb, &s))
			return -EINVAL;
		v = xcalloc(1, sizeof(*v));
		if (!v) {
			xfree(s);
			return -ENOMEM;
		}
		v[0] = s;
		cfg_strings_free(*out, *count);
		*out = v;
		*count = 1;
		return 0;
	}
	if (!cfg_is_seq(n)) {
		errbuf_add(eb, n, "expected a list of strings");
		return -EINVAL;
	}
	len = cfg_len(n);
	if (len && xgrow((void **)&v, &cap, len, sizeof(*v)))
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		struct cfg_node item;
		char *s = NULL;

		cfg_seq_item(n, i, &item);
		if (cfg_get_string(&item, eb, &s)) {
			rc = -EINVAL;
			continue;
		}
		v[k++] = s;
	}
	if (rc) {
		cfg_strings_free(v, k);
		return rc;
	}
	cfg_strings_free(*out, *count);
	*out = v;
	*count = k;
	return 0;
}

/* ---- the document ---- */

static void global_defaults(struct cfg_global *g)
{
	memset(g, 0, sizeof(*g));
	g->scrape_timeout = 10;
	g->concurrency = 256;
	g->max_inflight = 1024;
}

/* "ip", "ip:port" or "[v6]:port" -> c-ares CSV form; -EINVAL if bad. */
static int dns_server_check(const char *s)
{
	char host[64];
	unsigned char tmp[16];
	const char *port = NULL;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || (size_t)(end - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		if (end[1] == ':')
			port = end + 2;
		else if (end[1])
			return -EINVAL;
		if (inet_pton(AF_INET6, host, tmp) != 1)
			return -EINVAL;
	} else {
		const char *colon = strchr(s, ':');
		size_t hl = colon ? (size_t)(colon - s) : strlen(s);

		if (colon && strchr(colon + 1, ':')) {
			/* bare IPv6 without a port */
			return inet_pton(AF_INET6, s, tmp) == 1 ? 0 : -EINVAL;
		}
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (colon)
			port = colon + 1;
		if (inet_pton(AF_INET, host, tmp) != 1)
			return -EINVAL;
	}
	if (port) {
		char *end;
		long p = strtol(port, &end, 10);

		if (!*port || *end || p < 1 || p > 65535)
			return -EINVAL;
	}
	return 0;
}

int cfg_get_dns_servers(const struct cfg_node *n, struct errbuf *eb,
			char ***list, size_t *count, char **csv)
{
	struct buf b;
	int bad = 0;

	if (cfg_get_strings(n, eb, list, count))
		return -EINVAL;
	for (size_t k = 0; k < *count; k++) {
		struct cfg_node at = *n;

		if (cfg_is_seq(n))
			cfg_seq_item(n, k, &at);
		if (dns_server_check((*list)[k])) {
			errbuf_add(eb, &at,
				   "dns_servers: '%s' is not an IP address "
				   "with an optional port",
				   (*list)[k]);
			bad = 1;
		}
	}
	xfree(*csv);	/* a duplicate key */
	*csv = NULL;	/* none: the system's resolver configuration */
	if (*count == 0)
		return bad ? -EINVAL : 0;
	buf_init(&b, 4096);
	for (size_t k = 0; k < *count; k++) {
		if (k)
			buf_putc(&b, ',');
		buf_puts(&b, (*list)[k]);
	}
	*csv = buf_steal(&b, NULL);
	return bad ? -EINVAL : 0;
}

bool cfg_module_common_key(const char *key)
{
	return strcmp(key, "prober") == 0 || strcmp(key, "timeout") == 0 ||
	       strcmp(key, "allow_targets") == 0;
}

static void allow_free(struct cfg_module *m)
{
	for (size_t i = 0; i < m->nallow; i++)
		pcre2_code_free(m->allow[i]);
	xfree(m->allow);
	m->allow = NULL;
	m->nallow = 0;
}

/* `allow_targets:` PCRE2 patterns, each matched against the whole target
 * (anchored at both ends, so `.*\.corp\.example:443` cannot be
 * satisfied by a prefix). Compiled at load: a bad pattern is a config error
 * with its line and PCRE2's reason. */
static int parse_allow(const struct cfg_node *v, struct cfg_module *m,
		       struct errbuf *eb)
{
	char **pat = NULL;
	size_t n = 0;
	int rc = 0;

	allow_free(m);	/* a duplicate key is reported elsewhere */
	if (cfg_get_strings(v, eb, &pat, &n))
		return -EINVAL;
	m->allow = xcalloc(n ? n : 1, sizeof(*m->allow));
	if (!m->allow) {
		cfg_strings_free(pat, n);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++) {
		struct cfg_node at = *v;
		PCRE2_SIZE off;
		int ec;
		pcre2_code *re;

		if (cfg_is_seq(v))
			cfg_seq_item(v, k, &at);
		re = pcre2_compile((PCRE2_SPTR)pat[k], PCRE2_ZERO_TERMINATED,
				   PCRE2_ANCHORED | PCRE2_ENDANCHORED, &ec,
				   &off, NULL);
		if (!re) {
			PCRE2_UCHAR msg[256];

			pcre2_get_error_message(ec, msg, sizeof(msg));
			errbuf_add(eb, &at,
				   "allow_targets: '%s': %s at offset %zu",
				   pat[k], (const char *)msg, (size_t)off);
			rc = -EINVAL;
			continue;
		}
		m->allow[m->nallow++] = re;
	}
	cfg_strings_free(pat, n);
	return rc;
}

bool config_allowed(const struct cfg_module *m, const char *target)
{
	pcre2_match_context *mc;
	bool ok = false;

	if (!m->nallow)
		return false;
	/* bounded backtracking: a pattern written carelessly must not turn
	 * a request into a CPU sink; hitting a limit is a refusal */
	mc = pcre2_match_context_create(NULL);
	if (!mc)
		return false;
	pcre2_set_match_limit(mc, 100000);
	pcre2_set_depth_limit(mc, 1000);
	for (size_t i = 0; i < m->nallow && !ok; i++) {
		pcre2_match_data *md =
			pcre2_match_data_create_from_pattern(m->allow[i], NULL);

		if (!md)
			break;
		ok = pcre2_match(m->allow[i], (PCRE2_SPTR)target,
				 strlen(target), 0, 0, md, mc) >= 0;
		pcre2_match_data_free(md);
	}
	pcre2_match_context_free(mc);
	return ok;
}

int config_adhoc_target(const struct cfg_module *m, const char *name,
			struct cfg_target *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!config_allowed(m, name))
		return -EPERM;
	if (m->ops->parse_target(m->pcfg, name, &out->tcfg, err, errlen))
		return -EINVAL;
	out->module = m;
	out->name = xstrdup(name);
	if (!out->name) {
		m->ops->target_free(out->tcfg);
		out->tcfg = NULL;
		out->module = NULL;
		return -ENOMEM;
	}
	return 0;
}

void config_adhoc_target_free(struct cfg_target *t)
{
	if (t->module)
		t->module->ops->target_free(t->tcfg);
	xfree(t->name);
	memset(t, 0, sizeof(*t));
}

static int parse_global(const struct cfg_node *n, struct config *cfg,
			struct errbuf *eb)
{
	struct cfg_global *g = &cfg->global;

	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "global: expected a mapping");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;
		uint64_t u;

		cfg_map_pair(n, i, &p);
		if (strcmp(p.key, "scrape_timeout") == 0) {
			if (cfg_get_duration(&p.vnode, eb, &g->scrape_timeout) ==
				    0 &&
			    g->scrape_timeout <= 0)
				errbuf_add(eb, &p.vnode,
					   "scrape_timeout must be positive");
		} else if (strcmp(p.key, "concurrency") == 0) {
			if (cfg_get_uint(&p.vnode, eb, 1, 65536, &u) == 0)
				g->concurrency = (unsigned)u;
		} else if (strcmp(p.key, "max_inflight") == 0) {
			if (cfg_get_uint(&p.vnode, eb, 1, 1048576, &u) == 0)
				g->max_inflight = (unsigned)u;
		} else if (strcmp(p.key, "dns_servers") == 0) {
			cfg_strings_free(g->dns_servers, g->ndns);
			g->dns_servers = NULL;
			g->ndns = 0;
			cfg_get_dns_servers(&p.vnode, eb, &g->dns_servers,
					    &g->ndns, &g->dns_csv);
		} else if (strcmp(p.key, "proxy") == 0) {
			cfg_get_string(&p.vnode, eb, &g->proxy);
		} else {
			errbuf_add(eb, &p.knode, "global: unknown key '%s'",
				   p.key);
		}
	}
	return 0;
}

static int parse_modules(const struct cfg_node *n, struct config *cfg,
			 struct errbuf *eb)
{
	size_t len, cap = 0;

	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "modules: expected a mapping of name to module");
		return -EINVAL;
	}
	len = cfg_len(n);
	/* a second `modules:` key (reported as a duplicate) appends: room
	 * for what the first one added too */
	if (len && xgrow((void **)&cfg->modules, &cap, cfg->nmodules + len,
			 sizeof(*cfg->modules)))
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		struct cfg_module *m = &cfg->modules[cfg->nmodules];
		struct cfg_pair p;
		const struct cfg_node *mn;
		bool have_prober = false;

		cfg_map_pair(n, i, &p);
		mn = &p.vnode;
		memset(m, 0, sizeof(*m));
		if (!*p.key) {
			errbuf_add(eb, &p.knode, "modules: module name must be a non-empty string");
			continue;
		}
		if (config_module(cfg, p.key)) {
			/* a repeated key is reported by check_duplicate_keys */
			if (config_module(cfg, p.key)->from_stores)
				errbuf_add(eb, &p.knode, "module '%s' is already "
							 "a name in stores:",
					   p.key);
			continue;
		}
		if (!cfg_is_map(mn)) {
			errbuf_add(eb, mn, "module '%s': expected a mapping",
				   p.key);
			continue;
		}
		m->timeout = 0;
		for (size_t k = 0; k < cfg_len(mn); k++) {
			struct cfg_pair q;

			cfg_map_pair(mn, k, &q);
			if (strcmp(q.key, "prober") == 0) {
				const char *s = cfg_scalar(&q.vnode);

				have_prober = true;
				m->ops = s ? probe_find(s) : NULL;
				if (!m->ops) {
					char known[128];

					probe_names(known, sizeof(known));
					errbuf_add(eb, &q.vnode,
						   "module '%s': unknown prober "
						   "'%s' (known: %s)",
						   p.key, s ? s : "", known);
				}
			} else if (strcmp(q.key, "timeout") == 0) {
				if (cfg_get_duration(&q.vnode, eb,
						     &m->timeout) == 0 &&
				    m->timeout <= 0)
					errbuf_add(eb, &q.vnode,
						   "timeout must be positive");
			}
		}
		if (!have_prober) {
			errbuf_add(eb, mn, "module '%s': missing 'prober'",
				   p.key);
			continue;
		}
		if (!m->ops)
			continue;
		if (m->timeout <= 0)
			m->timeout = cfg->global.scrape_timeout;
		if (m->ops->parse(mn, cfg, &m->pcfg, eb))
			continue;
		for (size_t k = 0; k < cfg_len(mn); k++) {
			struct cfg_pair q;

			cfg_map_pair(mn, k, &q);
			if (strcmp(q.key, "allow_targets") == 0 &&
			    parse_allow(&q.vnode, m, eb) == -ENOMEM) {
				allow_free(m);
				m->ops->cfg_free(m->pcfg);
				return -ENOMEM;
			}
		}
		m->name = xstrdup(p.key);
		if (!m->name) {
			allow_free(m);
			m->ops->cfg_free(m->pcfg);
			return -ENOMEM;
		}
		cfg->nmodules++;
	}
	return 0;
}

/* SPEC §4's shorthand: `stores: [ {name, path, role, ...} ]` is a store
 * module called `name` with the one target `path`. The modules are made
 * here, with the other modules; the targets later (add_store_targets). */
static int parse_stores(const struct cfg_node *n, struct config *cfg,
			struct errbuf *eb)
{
	const struct probe_ops *ops = probe_find("store");
	size_t cap = 0;

	if (!cfg_is_seq(n)) {
		errbuf_add(eb, n, "stores: expected a list of {name, path, role}");
		return -EINVAL;
	}
	if (cfg_len(n) && xgrow((void **)&cfg->modules, &cap,
				cfg->nmodules + cfg_len(n),
				sizeof(*cfg->modules)))
		return -ENOMEM;
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_module *m = &cfg->modules[cfg->nmodules];
		struct cfg_node e;
		const char *name = NULL;
		bool have_path = false;
		int rc;

		cfg_seq_item(n, i, &e);
		if (!cfg_is_map(&e)) {
			errbuf_add(eb, &e, "stores: each entry must be a mapping "
					   "with name, path and role");
			continue;
		}
		for (size_t k = 0; k < cfg_len(&e); k++) {
			struct cfg_pair p;

			cfg_map_pair(&e, k, &p);
			if (strcmp(p.key, "name") == 0)
				name = cfg_scalar(&p.vnode);
			else if (strcmp(p.key, "path") == 0)
				have_path = cfg_scalar(&p.vnode) != NULL;
			else if (strcmp(p.key, "prober") == 0)
				errbuf_add(eb, &p.knode, "stores: an entry is a "
							 "store; no 'prober'");
		}
		if (!name || !*name || !have_path) {
			errbuf_add(eb, &e, "stores: an entry needs 'name' and 'path'");
			continue;
		}
		if (config_module(cfg, name)) {
			errbuf_add(eb, &e, "stores: '%s' is already a module name",
				   name);
			continue;
		}
		memset(m, 0, sizeof(*m));
		m->ops = ops;
		m->timeout = cfg->global.scrape_timeout;
		cfg->in_stores = true;
		rc = ops->parse(&e, cfg, &m->pcfg, eb);
		cfg->in_stores = false;
		if (rc == -ENOMEM)
			return rc;
		if (rc)
			continue;
		m->name = xstrdup(name);
		if (!m->name) {
			ops->cfg_free(m->pcfg);
			return -ENOMEM;
		}
		m->from_stores = true;
		cfg->nmodules++;
	}
	return 0;
}

/* Open-addressing set of target indexes keyed by (module, name), used
 * during one load so that duplicate detection stays linear with tens of
 * thousands of targets. Slots hold index + 1; 0 is empty. */
struct target_set {
	size_t *slots;
	size_t cap, n;
};

static size_t target_hash(const struct cfg_module *m, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)m;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ULL;
	return (size_t)h;
}

/* The slot where (m, name) is or would go. */
static size_t *target_slot(const struct target_set *ts,
			   const struct config *cfg,
			   const struct cfg_module *m, const char *name)
{
	size_t i = target_hash(m, name) & (ts->cap - 1);

	for (; ts->slots[i]; i = (i + 1) & (ts->cap - 1)) {
		const struct cfg_target *t = &cfg->targets[ts->slots[i] - 1];

		if (t->module == m && strcmp(t->name, name) == 0)
			break;
	}
	return &ts->slots[i];
}

static int target_set_grow(struct target_set *ts, const struct config *cfg)
{
	struct target_set bigger;

	if (2 * (ts->n + 1) <= ts->cap)
		return 0;
	bigger.cap = ts->cap ? 2 * ts->cap : 64;
	bigger.n = ts->n;
	bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t k = 0; k < ts->cap; k++) {
		const struct cfg_target *t;

		if (!ts->slots[k])
			continue;
		t = &cfg->targets[ts->slots[k] - 1];
		*target_slot(&bigger, cfg, t->module, t->name) = ts->slots[k];
	}
	xfree(ts->slots);
	*ts = bigger;
	return 0;
}

static int add_target(struct config *cfg, size_t *cap,
		      struct target_set *seen, const struct cfg_module *m,
		      const char *name, const struct cfg_node *at,
		      struct errbuf *eb)
{
	struct cfg_target *t;
	size_t *slot;
	char err[256] = "";

	if (seen && target_set_grow(seen, cfg))
		return -ENOMEM;
	slot = seen ? target_slot(seen, cfg, m, name) : NULL;
	if (slot && *slot) {
		errbuf_add(eb, at, "target '%s' is listed twice for module '%s'",
			   name, m->name);
		return -EINVAL;
	}
	if (xgrow((void **)&cfg->targets, cap, cfg->ntargets + 1,
		  sizeof(*cfg->targets)))
		return -ENOMEM;
	t = &cfg->targets[cfg->ntargets];
	memset(t, 0, sizeof(*t));
	if (m->ops->parse_target(m->pcfg, name, &t->tcfg, err, sizeof(err))) {
		errbuf_add(eb, at, "target '%s': %s", name, err);
		return -EINVAL;
	}
	t->module = m;
	t->name = xstrdup(name);
	if (!t->name) {
		m->ops->target_free(t->tcfg);
		return -ENOMEM;
	}
	cfg->ntargets++;
	((struct cfg_module *)m)->ntargets++;	/* modules are ours here */
	if (slot) {
		*slot = cfg->ntargets;
		seen->n++;
	}
	return 0;
}

/* A CSV partner list (exporter/csv.h) as targets of module m. Malformed
 * rows are skipped and noted in cfg->warnings, never fatal: a spreadsheet
 * typo must not take the whole configuration down. */
static int load_targets_file(struct config *cfg, size_t *cap,
			     struct target_set *seen,
			     const struct cfg_module *m,
			     const struct cfg_node *at, struct errbuf *eb)
{
	struct cfg_targets_file *tf;
	struct partner_row *rows = NULL;
	struct buf skipped;
	size_t n = 0, ntf = cfg->ntfiles;
	unsigned nskipped = 0;
	char *path = NULL;
	int rc;

	if (cfg_get_path(at, cfg, eb, &path))
		return -EINVAL;
	for (size_t i = 0; i < cfg->ntfiles; i++)
		if (cfg->tfiles[i].module == m &&
		    strcmp(cfg->tfiles[i].path, path) == 0) {
			errbuf_add(eb, at, "targets_file '%s' is listed twice "
					   "for this module", path);
			xfree(path);
			return -EINVAL;
		}
	buf_init(&skipped, 64 * 1024);
	rc = partners_load(path, &rows, &n, &skipped, &nskipped);
	if (rc) {
		if (skipped.len && skipped.data[skipped.len - 1] == '\n')
			skipped.data[--skipped.len] = '\0';
		errbuf_add(eb, at, "targets_file: %s",
			   skipped.len ? skipped.data : "cannot read");
		buf_cleanup(&skipped);
		xfree(path);
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	if (xgrow((void **)&cfg->tfiles, &ntf, cfg->ntfiles + 1,
		  sizeof(*cfg->tfiles))) {
		rc = -ENOMEM;
		goto out;
	}
	tf = &cfg->tfiles[cfg->ntfiles++];
	memset(tf, 0, sizeof(*tf));
	tf->path = path;
	path = NULL;
	tf->module = m;
	tf->skipped = nskipped;
	for (size_t i = 0; m && i < n; i++) {
		struct errbuf rowerr;

		/* a row that is not a valid target (or a duplicate) is
		 * skipped like a malformed one */
		errbuf_init(&rowerr, NULL);
		rc = add_target(cfg, cap, seen, m, rows[i].target, NULL,
				&rowerr);
		if (rc == -ENOMEM) {
			errbuf_cleanup(&rowerr);
			goto out;
		}
		if (rc) {
			/* rowerr has no file or position ("-: reason\n"):
			 * put the CSV's own in front */
			buf_printf(&skipped, "%s:%u: %s", tf->path,
				   rows[i].line, errbuf_str(&rowerr) + 3);
			tf->skipped++;
		} else {
			tf->rows++;
		}
		errbuf_cleanup(&rowerr);
	}
	rc = 0;
	if (skipped.len) {
		char *w = xasprintf("%s%s", cfg->warnings ? cfg->warnings : "",
				    skipped.data);

		if (!w) {
			rc = -ENOMEM;
			goto out;
		}
		xfree(cfg->warnings);
		cfg->warnings = w;
	}
out:
	buf_cleanup(&skipped);
	partner_rows_free(rows, n);
	xfree(path);
	return rc;
}

static int parse_targets(const struct cfg_node *n, struct config *cfg,
			 struct errbuf *eb)
{
	struct target_set seen = {0};
	size_t *cap = &cfg->captargets;
	int rc = 0;

	if (!cfg_is_seq(n)) {
		errbuf_add(eb, n, "targets: expected a list of {module, targets}");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_node g, tl = {0}, tf = {0};
		const struct cfg_module *m = NULL;
		bool have_module = false;

		cfg_seq_item(n, i, &g);
		if (!cfg_is_map(&g)) {
			errbuf_add(eb, &g, "targets: each entry must be a mapping with 'module' and 'targets'");
			continue;
		}
		for (size_t k = 0; k < cfg_len(&g); k++) {
			struct cfg_pair p;

			cfg_map_pair(&g, k, &p);
			if (strcmp(p.key, "module") == 0) {
				const char *s = cfg_scalar(&p.vnode);

				have_module = true;
				m = s ? config_module(cfg, s) : NULL;
				if (!m)
					errbuf_add(eb, &p.vnode,
						   "unknown module '%s'",
						   s ? s : "");
			} else if (strcmp(p.key, "targets") == 0) {
				tl = p.vnode;
			} else if (strcmp(p.key, "targets_file") == 0) {
				tf = p.vnode;
			} else {
				errbuf_add(eb, &p.knode,
					   "targets: unknown key '%s'", p.key);
			}
		}
		if (!have_module)
			errbuf_add(eb, &g, "targets: entry has no 'module'");
		if (tf.node) {
			rc = load_targets_file(cfg, cap, &seen, m, &tf, eb);
			if (rc == -ENOMEM)
				goto out;
			rc = 0;
		}
		if (!tl.node) {
			if (!tf.node)
				errbuf_add(eb, &g, "targets: entry has neither "
						   "'targets' nor 'targets_file'");
			continue;
		}
		if (!cfg_is_seq(&tl)) {
			errbuf_add(eb, &tl, "targets: expected a list of strings");
			continue;
		}
		for (size_t k = 0; k < cfg_len(&tl); k++) {
			struct cfg_node item;
			const char *s;

			cfg_seq_item(&tl, k, &item);
			s = cfg_scalar(&item);
			if (!s || !*s) {
				errbuf_add(eb, &item, "target must be a non-empty string");
				continue;
			}
			if (m && add_target(cfg, cap, &seen, m, s, &item, eb) ==
					 -ENOMEM) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
out:
	xfree(seen.slots);
	return rc;
}

static char *read_file(const char *path, size_t *len, struct errbuf *eb)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[8192];
	size_t n;

	if (!f) {
		errbuf_add(eb, NULL, "cannot open: %s", strerror(errno));
		return NULL;
	}
	buf_init(&b, CFG_MAX_FILE_BYTES);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(&b, chunk, n))
			break;
	if (ferror(f) || b.err) {
		errbuf_add(eb, NULL, "cannot read: %s",
			   b.err == -E2BIG ? "file too large" : strerror(errno));
		fclose(f);
		buf_cleanup(&b);
		return NULL;
	}
	fclose(f);
	return buf_steal(&b, len);
}

/* Repeated keys are errors in our schema (YAML 1.2 says they are
 * invalid, but libyaml accepts them silently). */
static void check_duplicate_keys(yaml_document_t *doc, yaml_node_t *y,
				 struct errbuf *eb, int depth)
{
	struct cfg_node n = {doc, y};

	if (!y || depth > 64)
		return;
	if (y->type == YAML_MAPPING_NODE) {
		size_t len = cfg_len(&n);

		for (size_t i = 0; i < len; i++) {
			struct cfg_pair a;

			cfg_map_pair(&n, i, &a);
			for (size_t j = 0; j < i; j++) {
				struct cfg_pair b;

				cfg_map_pair(&n, j, &b);
				if (*a.key && strcmp(a.key, b.key) == 0) {
					errbuf_add(eb, &a.knode,
						   "duplicate key '%s'", a.key);
					break;
				}
			}
			check_duplicate_keys(doc, a.vnode.node, eb, depth + 1);
		}
	} else if (y->type == YAML_SEQUENCE_NODE) {
		for (size_t i = 0; i < cfg_len(&n); i++) {
			struct cfg_node item;

			cfg_seq_item(&n, i, &item);
			check_duplicate_keys(doc, item.node, eb, depth + 1);
		}
	}
}

/* The `path` of each `stores:` entry whose module parse_stores made. */
static int add_store_targets(const struct cfg_node *n, struct config *cfg,
			     struct errbuf *eb)
{
	for (size_t i = 0; cfg_is_seq(n) && i < cfg_len(n); i++) {
		const struct cfg_module *m = NULL;
		struct cfg_node e, at = {0};
		const char *path = NULL;
		int rc;

		cfg_seq_item(n, i, &e);
		for (size_t k = 0; cfg_is_map(&e) && k < cfg_len(&e); k++) {
			struct cfg_pair p;

			cfg_map_pair(&e, k, &p);
			if (strcmp(p.key, "name") == 0 && cfg_scalar(&p.vnode))
				m = config_module(cfg, cfg_scalar(&p.vnode));
			else if (strcmp(p.key, "path") == 0) {
				path = cfg_scalar(&p.vnode);
				at = p.vnode;
			}
		}
		if (!m || !path || strcmp(m->ops->name, "store") != 0)
			continue;	/* reported by parse_stores */
		rc = add_target(cfg, &cfg->captargets, NULL, m, path, &at, eb);
		if (rc == -ENOMEM)
			return rc;
	}
	return 0;
}

int config_load(const char *file, struct config **out, struct errbuf *eb)
{
	size_t len = 0;
	char *text;
	int rc;

	*out = NULL;
	eb->file = file;
	text = read_file(file, &len, eb);
	if (!text)
		return -EINVAL;
	rc = config_load_text(file, text, len, out, eb);
	xfree(text);
	return rc;
}

int config_add_target(struct config *cfg, const char *module,
		      const char *target, char *err, size_t errlen)
{
	const struct cfg_module *m = config_module(cfg, module);
	struct errbuf eb;
	int rc;

	if (!m) {
		snprintf(err, errlen, "unknown module '%s'", module);
		return -EINVAL;
	}
	errbuf_init(&eb, NULL);
	rc = add_target(cfg, &cfg->captargets, NULL, m, target, NULL, &eb);
	/* eb holds "-: reason\n" (no file, no position) */
	snprintf(err, errlen, "%s", eb.b.len > 3 ? errbuf_str(&eb) + 3 : "");
	err[strcspn(err, "\n")] = '\0';
	errbuf_cleanup(&eb);
	return rc;
}

int config_load_text(const char *file, const char *text, size_t len,
		     struct config **out, struct errbuf *eb)
{
	struct config *cfg = NULL;
	yaml_parser_t parser;
	yaml_document_t doc;
	bool have_doc = false;
	char *tmp;
	struct cfg_node root;
	int rc = -EINVAL;
	unsigned before = eb->count;

	*out = NULL;
	eb->file = file;

	cfg = xcalloc(1, sizeof(*cfg));
	if (!cfg)
		goto nomem;
	cfg->refs = 1;
	global_defaults(&cfg->global);
	cfg->file = xstrdup(file);
	tmp = xstrdup(file);
	if (!cfg->file || !tmp) {
		xfree(tmp);
		goto nomem;
	}
	cfg->dir = xstrdup(dirname(tmp));
	xfree(tmp);
	if (!cfg->dir)
		goto nomem;

	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		errbuf_at(eb, parser.problem_mark.line + 1,
			  parser.problem_mark.column + 1, "YAML: %s%s%s",
			  parser.problem ? parser.problem : "syntax error",
			  parser.context ? " " : "",
			  parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		goto out;
	}
	yaml_parser_delete(&parser);
	have_doc = true;

	root.doc = &doc;
	root.node = yaml_document_get_root_node(&doc);
	if (!root.node) {
		errbuf_add(eb, NULL, "empty configuration");
		goto out;
	}
	if (!cfg_is_map(&root)) {
		errbuf_add(eb, &root, "the top level must be a mapping");
		goto out;
	}
	check_duplicate_keys(&doc, root.node, eb, 0);

	/* global first: modules inherit its defaults */
	for (size_t i = 0; i < cfg_len(&root); i++) {
		struct cfg_pair p;

		cfg_map_pair(&root, i, &p);
		if (strcmp(p.key, "global") == 0 &&
		    parse_global(&p.vnode, cfg, eb) == -ENOMEM)
			goto nomem;
	}
	for (size_t i = 0; i < cfg_len(&root); i++) {
		struct cfg_pair p;

		cfg_map_pair(&root, i, &p);
		if (strcmp(p.key, "modules") == 0 &&
		    parse_modules(&p.vnode, cfg, eb) == -ENOMEM)
			goto nomem;
		if (strcmp(p.key, "stores") == 0 &&
		    parse_stores(&p.vnode, cfg, eb) == -ENOMEM)
			goto nomem;
	}
	for (size_t i = 0; i < cfg_len(&root); i++) {
		struct cfg_pair p;

		cfg_map_pair(&root, i, &p);
		if (strcmp(p.key, "global") == 0 ||
		    strcmp(p.key, "modules") == 0)
			continue;
		if (strcmp(p.key, "stores") == 0) {
			if (add_store_targets(&p.vnode, cfg, eb) == -ENOMEM)
				goto nomem;
			continue;
		}
		if (strcmp(p.key, "targets") == 0) {
			if (parse_targets(&p.vnode, cfg, eb) == -ENOMEM)
				goto nomem;
		} else if (strcmp(p.key, "events") == 0) {
			if (events_parse(&p.vnode, cfg, &cfg->events, eb) ==
			    -ENOMEM)
				goto nomem;
		} else {
			errbuf_add(eb, &p.knode, "unknown top-level key '%s'",
				   p.key);
		}
	}
	rc = eb->count == before ? 0 : -EINVAL;
	goto out;
nomem:
	errbuf_add(eb, NULL, "out of memory");
	rc = -ENOMEM;
out:
	if (have_doc)
		yaml_document_delete(&doc);
	if (rc) {
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->ntargets; i++) {
		struct cfg_target *t = &cfg->targets[i];

		t->module->ops->target_free(t->tcfg);
		xfree(t->name);
	}
	xfree(cfg->targets);
	for (size_t i = 0; i < cfg->nmodules; i++) {
		cfg->modules[i].ops->cfg_free(cfg->modules[i].pcfg);
		allow_free(&cfg->modules[i]);
		xfree(cfg->modules[i].name);
	}
	xfree(cfg->modules);
	for (size_t i = 0; i < cfg->ntfiles; i++)
		xfree(cfg->tfiles[i].path);
	xfree(cfg->tfiles);
	xfree(cfg->warnings);
	cfg_strings_free(cfg->global.dns_servers, cfg->global.ndns);
	xfree(cfg->global.dns_csv);
	xfree(cfg->global.proxy);
	events_cfg_free(cfg->events);
	xfree(cfg->file);
	xfree(cfg->dir);
	xfree(cfg);
}

const struct cfg_module *config_module(const struct config *cfg,
				       const char *name)
{
	for (size_t i = 0; i < cfg->nmodules; i++)
		if (strcmp(cfg->modules[i].name, name) == 0)
			return &cfg->modules[i];
	return NULL;
}

const struct cfg_target *config_target(const struct config *cfg,
				       const char *module, const char *target)
{
	/* linear: used at load time (duplicates) and by /probe; fine for
	 * thousands of targets per load, revisit with an index if needed */
	for (size_t i = 0; i < cfg->ntargets; i++)
		if (strcmp(cfg->targets[i].module->name, module) == 0 &&
		    strcmp(cfg->targets[i].name, target) == 0)
			return &cfg->targets[i];
	return NULL;
}

int cfg_parse_file(const char *file,
		   int (*fn)(const struct cfg_node *root, void *arg,
			     struct errbuf *eb),
		   void *arg, struct errbuf *eb)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct cfg_node root;
	size_t len = 0;
	char *text;
	unsigned before = eb->count;
	int rc = -EINVAL;

	eb->file = file;
	text = read_file(file, &len, eb);
	if (!text)
		return -EINVAL;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		errbuf_at(eb, parser.problem_mark.line + 1,
			  parser.problem_mark.column + 1, "YAML: %s",
			  parser.problem ? parser.problem : "syntax error");
		yaml_parser_delete(&parser);
		xfree(text);
		return -EINVAL;
	}
	yaml_parser_delete(&parser);
	root.doc = &doc;
	root.node = yaml_document_get_root_node(&doc);
	if (!root.node) {
		errbuf_add(eb, NULL, "empty file");
	} else if (!cfg_is_map(&root)) {
		errbuf_add(eb, &root, "the top level must be a mapping");
	} else {
		check_duplicate_keys(&doc, root.node, eb, 0);
		rc = fn(&root, arg, eb);
	}
	if (eb->count != before && rc == 0)
		rc = -EINVAL;
	yaml_document_delete(&doc);
	xfree(text);
	return rc;
}
