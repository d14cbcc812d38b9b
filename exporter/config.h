/* Configuration: YAML (libyaml) parsed once into plain structs, validated,
 * then read-only. A reload builds a new struct config and swaps it in;
 * scrapes hold a reference for as long as they run. */
#ifndef PKI_CONFIG_H
#define PKI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct probe_ops;
struct cfg_node;
struct config;
struct events_cfg;

/* Errors gathered as "file:line:col: reason\n" lines. */
struct errbuf {
	struct buf b;
	unsigned count;
	const char *file;
};

void errbuf_init(struct errbuf *eb, const char *file);
void errbuf_cleanup(struct errbuf *eb);
/* Record an error at a YAML node (node may be NULL: no position). */
void errbuf_add(struct errbuf *eb, const struct cfg_node *node,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *errbuf_str(const struct errbuf *eb);

/* A borrowed view of one YAML node, valid during parsing only. */
struct cfg_node {
	void *doc;	/* yaml_document_t */
	void *node;	/* yaml_node_t */
};

struct cfg_pair {
	const char *key;
	struct cfg_node knode, vnode;
};

bool cfg_is_map(const struct cfg_node *n);
bool cfg_is_seq(const struct cfg_node *n);
bool cfg_is_scalar(const struct cfg_node *n);
const char *cfg_scalar(const struct cfg_node *n);
size_t cfg_len(const struct cfg_node *n);	/* pairs or items */
/* Key/value pair i of a mapping (keys that are not scalars give ""). */
void cfg_map_pair(const struct cfg_node *map, size_t i, struct cfg_pair *p);
void cfg_seq_item(const struct cfg_node *seq, size_t i, struct cfg_node *out);

/* Typed readers: each reports a positioned error and returns -EINVAL. */
int cfg_get_string(const struct cfg_node *n, struct errbuf *eb, char **out);
int cfg_get_bool(const struct cfg_node *n, struct errbuf *eb, bool *out);
int cfg_get_uint(const struct cfg_node *n, struct errbuf *eb, uint64_t min,
		 uint64_t max, uint64_t *out);
/* Prometheus durations: 1h30m, 5s, 250ms, 1d, 1w. */
int cfg_get_duration(const struct cfg_node *n, struct errbuf *eb,
		     double *out);
/* A path, made absolute relative to the config file's directory. */
int cfg_get_path(const struct cfg_node *n, const struct config *cfg,
		 struct errbuf *eb, char **out);
/* `path` made absolute against `dir` (NULL dir: left as is); a fresh
 * string, NULL when out of memory. */
char *cfg_path_join(const char *dir, const char *path);
/* A path target (file and store probes): *out = s joined to dir; -EINVAL
 * with the reason in err when s is empty, -ENOMEM. */
int cfg_target_path(const char *dir, const char *s, char **out, char *err,
		    size_t errlen);

/* Module keys config.c handles for every prober (prober, timeout,
 * allow_targets): a probe's parse skips them. */
bool cfg_module_common_key(const char *key);

/* A list of strings (a scalar counts as a one-item list). */
int cfg_get_strings(const struct cfg_node *n, struct errbuf *eb,
		    char ***out, size_t *count);
void cfg_strings_free(char **v, size_t n);
/* `dns_servers:` (global or a module's): a list of IP addresses with an
 * optional port ("192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53"),
 * each checked (errors at the item's line); *list and *count as
 * cfg_get_strings, *csv (freed first) the c-ares CSV form, NULL for an
 * empty list. 0 or -EINVAL. */
int cfg_get_dns_servers(const struct cfg_node *n, struct errbuf *eb,
			char ***list, size_t *count, char **csv);

#define DURATION_MAX (10 * 365 * 86400.0)	/* seconds */

/* Returns 0, -EINVAL (syntax) or -ERANGE (over DURATION_MAX). */
int duration_parse(const char *s, double *out);

/* Parse any YAML file of ours (the web configuration, rule files) with
 * the same error reporting: fn gets the root mapping. Returns 0 or
 * -EINVAL with every problem in eb. */
int cfg_parse_file(const char *file,
		   int (*fn)(const struct cfg_node *root, void *arg,
			     struct errbuf *eb),
		   void *arg, struct errbuf *eb);

struct cfg_global {
	double scrape_timeout;	/* seconds */
	unsigned concurrency;
	unsigned max_inflight;	/* probes in flight across all scrapes */
	char **dns_servers;
	size_t ndns;
	char *dns_csv;		/* c-ares form of dns_servers, or NULL */
	char *proxy;
};

struct cfg_module {
	char *name;
	const struct probe_ops *ops;
	double timeout;		/* seconds */
	/* `allow_targets:` compiled (pcre2_code *): unconfigured targets
	 * /probe may run with this module; see config_allowed() */
	void **allow;
	size_t nallow;
	bool from_stores;	/* made from a `stores:` entry */
	size_t ntargets;	/* targets of this module, counted at load */
	void *pcfg;		/* owned, freed by ops->cfg_free */
};

struct cfg_target {
	const struct cfg_module *module;
	char *name;
	void *tcfg;		/* owned, freed by ops->target_free */
};

/* A targets_file: after a (re)load, how many rows it gave. */
struct cfg_targets_file {
	char *path;
	const struct cfg_module *module;
	unsigned rows;		/* targets taken */
	unsigned skipped;	/* malformed rows left out */
};

struct config {
	int refs;		/* guarded by the holder's lock */
	char *warnings;		/* non-fatal problems ("file:line: why\n"),
				   e.g. skipped CSV rows; owned, may be NULL */
	struct cfg_targets_file *tfiles;
	size_t ntfiles;
	char *file;
	char *dir;		/* directory of file, for relative paths */
	struct cfg_global global;
	struct cfg_module *modules;
	size_t nmodules;
	struct cfg_target *targets;
	size_t ntargets;
	size_t captargets;
	/* while a `stores:` entry is parsed as a store module: its `name`
	 * and `path` keys belong to config.c (SPEC §4's shorthand) */
	bool in_stores;
	struct events_cfg *events;	/* `events:`, or NULL; owned */
};

/* Load and validate `file`. On success *out is a new config (refs = 1).
 * On failure every problem is in `eb` and -EINVAL is returned. */
int config_load(const char *file, struct config **out, struct errbuf *eb);
/* The same from text in memory; `name` stands for the file in messages
 * and relative paths are relative to the current directory. */
int config_load_text(const char *name, const char *text, size_t len,
		     struct config **out, struct errbuf *eb);
void config_free(struct config *cfg);

/* Add one target to a loaded config (for the check command); the reason
 * of a refusal goes to err. No duplicate check. */
int config_add_target(struct config *cfg, const char *module,
		      const char *target, char *err, size_t errlen);

const struct cfg_module *config_module(const struct config *cfg,
				       const char *name);
const struct cfg_target *config_target(const struct config *cfg,
				       const char *module, const char *target);

/* Does one of the module's `allow_targets` patterns match the whole
 * target? (false without patterns, and when a pattern hits PCRE2's match
 * limits) */
bool config_allowed(const struct cfg_module *m, const char *target);
/* A target outside the configuration, for /probe: allowed by m's
 * allow_targets and parsed as a configured one would be. 0, -EPERM (not
 * allowed), -EINVAL (the parser's reason in err) or -ENOMEM. Release with
 * config_adhoc_target_free (also after a failure). */
int config_adhoc_target(const struct cfg_module *m, const char *name,
			struct cfg_target *out, char *err, size_t errlen);
void config_adhoc_target_free(struct cfg_target *t);

#endif
