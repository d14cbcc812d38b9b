/* The `events:` configuration: inputs, rules (inline and rules_file),
 * limits. Every error is reported as file:line:col, all of them, and
 * unknown keys are errors, like the rest of the configuration. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "events/events_int.h"
#include "exporter/xalloc.h"

#define EV_RULES_FILE_MAX (4 * 1024 * 1024)

/* ---- freeing ---- */

static void globs_free(struct ev_glob *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		xfree(g[i].pat);
	xfree(g);
}

static void regex_cleanup(struct ev_regex *r)
{
	xfree(r->src);
	pcre2_code_free(r->code);
	r->src = NULL;
	r->code = NULL;
}

static void matcher_cleanup(struct ev_matcher *m)
{
	xfree(m->ids);
	globs_free(m->sources, m->nsources);
	globs_free(m->channels, m->nchannels);
	globs_free(m->hosts, m->nhosts);
	globs_free(m->levels, m->nlevels);
	for (size_t i = 0; i < m->nmessages; i++)
		regex_cleanup(&m->messages[i]);
	xfree(m->messages);
	memset(m, 0, sizeof(*m));
}

static void rule_cleanup(struct ev_rule *r)
{
	xfree(r->name);
	matcher_cleanup(&r->m);
	for (size_t i = 0; i < r->nany; i++)
		matcher_cleanup(&r->any[i]);
	xfree(r->any);
	for (size_t i = 0; i < r->nexcl; i++)
		matcher_cleanup(&r->excl[i]);
	xfree(r->excl);
	for (size_t i = 0; i < r->nlabels; i++) {
		xfree(r->labels[i].name);
		xfree(r->labels[i].value);
	}
	xfree(r->labels);
	memset(r, 0, sizeof(*r));
}

static void input_cleanup(struct ev_input_cfg *in)
{
	xfree(in->name);
	xfree(in->key);
	xfree(in->path);
	xfree(in->state_file);
	regex_cleanup(&in->pattern);
}

void events_cfg_free(struct events_cfg *ec)
{
	if (!ec)
		return;
	for (size_t i = 0; i < ec->ninputs; i++)
		input_cleanup(&ec->inputs[i]);
	xfree(ec->inputs);
	for (size_t i = 0; i < ec->nrules; i++)
		rule_cleanup(&ec->rules[i]);
	xfree(ec->rules);
	xfree(ec->state_file);
	xfree(ec);
}

/* ---- small readers ---- */

/* 65536, 64KiB, 64K, 1MiB, 1M (binary multiples). */
static int parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
		{"", 1},
		{"B", 1},
		{"K", 1024},
		{"KB", 1024},
		{"KiB", 1024},
		{"M", 1024 * 1024},
		{"MB", 1024 * 1024},
		{"MiB", 1024 * 1024},
	};
	uint64_t v = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	while (isdigit((unsigned char)*s)) {
		if (v > UINT32_MAX)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s++ - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].suffix) == 0) {
			*out = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

static int get_size(const struct cfg_node *n, struct errbuf *eb,
		    uint64_t min, uint64_t max, size_t *out)
{
	const char *s = cfg_scalar(n);
	uint64_t v;

	if (parse_size(s, &v)) {
		errbuf_add(eb, n, "expected a size such as 65536 or 64KiB, "
				  "got '%s'",
			   s ? s : "(not a scalar)");
		return -EINVAL;
	}
	if (v < min || v > max) {
		errbuf_add(eb, n, "%llu bytes is out of range [%llu, %llu]",
			   (unsigned long long)v, (unsigned long long)min,
			   (unsigned long long)max);
		return -EINVAL;
	}
	*out = (size_t)v;
	return 0;
}

static const char *const format_names[] = {
	[EV_FMT_AUTO] = "auto",		[EV_FMT_JSON] = "json",
	[EV_FMT_SNARE] = "snare",	[EV_FMT_PLAIN] = "plain",
	[EV_FMT_RFC5424] = "rfc5424", [EV_FMT_RFC3164] = "rfc3164",
};

static int get_format(const struct cfg_node *n, struct errbuf *eb,
		      enum ev_format *out)
{
	const char *s = cfg_scalar(n);
	size_t nf = sizeof(format_names) / sizeof(*format_names);

	for (size_t i = 0; s && i < nf; i++) {
		if (strcmp(s, format_names[i]) == 0) {
			*out = (enum ev_format)i;
			return 0;
		}
	}
	errbuf_add(eb, n, "format must be auto, json, snare, plain, rfc5424 "
			  "or rfc3164, got '%s'",
		   s ? s : "(not a scalar)");
	return -EINVAL;
}

/* ---- inputs ---- */

/* "udp://127.0.0.1:5514", "tcp://[::1]:6514", "udp://:5514". Numeric
 * addresses only: a config load never waits for DNS. */
static int parse_listen(const char *url, struct ev_input_cfg *in,
			char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 2], port[8], canon[INET6_ADDRSTRLEN];
	const char *rest, *colon;
	struct addrinfo hints, *res = NULL;
	size_t hl;
	int rc;

	if (strncmp(url, "udp://", 6) == 0) {
		in->kind = EV_IN_UDP;
	} else if (strncmp(url, "tcp://", 6) == 0) {
		in->kind = EV_IN_TCP;
	} else {
		snprintf(err, errlen, "syslog: expected udp://ADDRESS:PORT or "
				      "tcp://ADDRESS:PORT, got '%s'",
			 url);
		return -EINVAL;
	}
	rest = url + 6;
	if (*rest == '[') {
		const char *end = strchr(rest, ']');

		if (!end || end[1] != ':')
			goto bad;
		hl = (size_t)(end - rest - 1);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, rest + 1, hl);
		host[hl] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(rest, ':');
		if (!colon)
			goto bad;
		hl = (size_t)(colon - rest);
		if (hl >= sizeof(host) || memchr(rest, ':', hl))
			goto bad;
		memcpy(host, rest, hl);
		host[hl] = '\0';
	}
	{
		char *end;
		long p = strtol(colon + 1, &end, 10);

		if (!colon[1] || *end || p < 1 || p > 65535)
			goto bad;
		snprintf(port, sizeof(port), "%ld", p);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = in->kind == EV_IN_UDP ? SOCK_DGRAM : SOCK_STREAM;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc || !res || res->ai_addrlen > sizeof(in->addr)) {
		if (res)
			freeaddrinfo(res);
		goto bad;
	}
	memcpy(&in->addr, res->ai_addr, res->ai_addrlen);
	in->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (getnameinfo((struct sockaddr *)&in->addr, in->addrlen, canon,
			sizeof(canon), NULL, 0, NI_NUMERICHOST))
		goto bad;
	xfree(in->key);
	in->key = xasprintf("%s://%s%s%s:%s",
			    in->kind == EV_IN_UDP ? "udp" : "tcp",
			    in->addr.ss_family == AF_INET6 ? "[" : "", canon,
			    in->addr.ss_family == AF_INET6 ? "]" : "", port);
	if (!in->key) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
bad:
	snprintf(err, errlen, "syslog: '%s' is not PROTOCOL://ADDRESS:PORT "
			      "with a numeric address (e.g. "
			      "udp://127.0.0.1:5514, tcp://[::]:6514)",
		 url);
	return -EINVAL;
}

/* Map the pattern's named groups to event fields; unknown names are
 * refused (a typo would silently leave a field empty). */
static int pattern_groups(const struct cfg_node *at, struct ev_input_cfg *in,
			  struct errbuf *eb)
{
	uint32_t count = 0, size = 0;
	PCRE2_SPTR table = NULL;
	int rc = 0;

	for (int f = 0; f < EV_F_MAX; f++)
		in->groups[f] = -1;
	pcre2_pattern_info(in->pattern.code, PCRE2_INFO_NAMECOUNT, &count);
	pcre2_pattern_info(in->pattern.code, PCRE2_INFO_NAMEENTRYSIZE, &size);
	pcre2_pattern_info(in->pattern.code, PCRE2_INFO_NAMETABLE, &table);
	for (uint32_t i = 0; i < count && table; i++) {
		const unsigned char *e = table + (size_t)i * size;
		int g = (e[0] << 8) | e[1];
		const char *name = (const char *)e + 2;
		bool known = false;

		for (int f = 0; f < EV_F_MAX; f++) {
			if (strcmp(name, ev_field_str((enum ev_field)f)) == 0) {
				in->groups[f] = g;
				known = true;
			}
		}
		if (!known) {
			errbuf_add(eb, at,
				   "pattern: unknown group name '%s' (known: "
				   "host, source, channel, level, event_id, "
				   "message)",
				   name);
			rc = -EINVAL;
		}
	}
	return rc;
}

static int parse_input(const struct cfg_node *n, const struct config *cfg,
		       const struct events_cfg *ec, struct ev_input_cfg *in,
		       struct errbuf *eb)
{
	struct cfg_node src = {0}, framing = {0}, pattern = {0}, start = {0};
	struct cfg_node conns = {0}, fmt = {0};
	bool have_syslog = false, have_file = false;
	char *url = NULL;
	unsigned before = eb->count;
	int rc = 0;

	in->format = EV_FMT_AUTO;
	in->framing = EV_FRAME_AUTO;
	in->max_line = ec->max_line;
	in->max_connections = ec->max_connections;
	for (int f = 0; f < EV_F_MAX; f++)
		in->groups[f] = -1;
	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "events.inputs: each input must be a mapping "
				  "with 'syslog' or 'file'");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;
		uint64_t u;

		cfg_map_pair(n, i, &p);
		if (strcmp(p.key, "syslog") == 0) {
			have_syslog = true;
			src = p.vnode;
			if (cfg_get_string(&p.vnode, eb, &url) == -ENOMEM)
				rc = -ENOMEM;
		} else if (strcmp(p.key, "file") == 0) {
			have_file = true;
			src = p.vnode;
			if (cfg_get_path(&p.vnode, cfg, eb, &in->path) ==
			    -ENOMEM)
				rc = -ENOMEM;
		} else if (strcmp(p.key, "name") == 0) {
			if (cfg_get_string(&p.vnode, eb, &in->name) == -ENOMEM)
				rc = -ENOMEM;
		} else if (strcmp(p.key, "format") == 0) {
			fmt = p.vnode;
			get_format(&p.vnode, eb, &in->format);
		} else if (strcmp(p.key, "framing") == 0) {
			const char *s = cfg_scalar(&p.vnode);

			framing = p.vnode;
			if (s && strcmp(s, "auto") == 0)
				in->framing = EV_FRAME_AUTO;
			else if (s && strcmp(s, "newline") == 0)
				in->framing = EV_FRAME_NEWLINE;
			else if (s && strcmp(s, "octet_counting") == 0)
				in->framing = EV_FRAME_OCTET;
			else
				errbuf_add(eb, &p.vnode,
					   "framing must be auto, newline or "
					   "octet_counting");
		} else if (strcmp(p.key, "pattern") == 0) {
			const char *s = cfg_scalar(&p.vnode);
			char err[300];

			pattern = p.vnode;
			if (!s) {
				errbuf_add(eb, &p.vnode,
					   "pattern: expected a regex string");
				continue;
			}
			in->pattern.src = xstrdup(s);
			if (!in->pattern.src) {
				rc = -ENOMEM;
				continue;
			}
			in->pattern.code =
				ev_regex_compile(s, err, sizeof(err));
			if (!in->pattern.code)
				errbuf_add(eb, &p.vnode, "pattern: %s", err);
			else
				pattern_groups(&p.vnode, in, eb);
		} else if (strcmp(p.key, "start_at") == 0) {
			const char *s = cfg_scalar(&p.vnode);

			start = p.vnode;
			if (s && strcmp(s, "beginning") == 0)
				in->from_beginning = true;
			else if (s && strcmp(s, "end") == 0)
				in->from_beginning = false;
			else
				errbuf_add(eb, &p.vnode,
					   "start_at must be beginning or end");
		} else if (strcmp(p.key, "state_file") == 0) {
			start = start.node ? start : p.vnode;
			if (cfg_get_path(&p.vnode, cfg, eb, &in->state_file) ==
			    -ENOMEM)
				rc = -ENOMEM;
		} else if (strcmp(p.key, "max_line_bytes") == 0) {
			get_size(&p.vnode, eb, 256, EV_MAX_MAX_LINE,
				 &in->max_line);
		} else if (strcmp(p.key, "max_connections") == 0) {
			conns = p.vnode;
			if (cfg_get_uint(&p.vnode, eb, 1, 65536, &u) == 0)
				in->max_connections = (unsigned)u;
		} else {
			errbuf_add(eb, &p.knode,
				   "events.inputs: unknown key '%s'", p.key);
		}
	}
	if (have_syslog == have_file) {
		errbuf_add(eb, n, "events.inputs: each input needs exactly one "
				  "of 'syslog' and 'file'");
	} else if (have_syslog && url) {
		char err[256];
		int r = parse_listen(url, in, err, sizeof(err));

		if (r == -ENOMEM)
			rc = r;
		else if (r)
			errbuf_add(eb, &src, "%s", err);
		if (!in->name && !(in->name = xstrdup(url)))
			rc = -ENOMEM;
	} else if (have_file && in->path) {
		in->kind = EV_IN_FILE;
		in->key = xasprintf("file:%s", in->path);
		if (!in->key)
			rc = -ENOMEM;
		if (!in->name && !(in->name = xstrdup(in->path)))
			rc = -ENOMEM;
		if (!in->state_file && ec->state_file &&
		    !(in->state_file = xstrdup(ec->state_file)))
			rc = -ENOMEM;
	}
	if (in->format == EV_FMT_PLAIN && !pattern.node)
		errbuf_add(eb, fmt.node ? &fmt : n,
			   "format plain needs a 'pattern' with named groups");
	if (pattern.node && in->format != EV_FMT_PLAIN)
		errbuf_add(eb, &pattern, "'pattern' is only used with format "
					 "plain");
	if (have_syslog && !have_file && start.node)
		errbuf_add(eb, &start, "start_at and state_file are for file "
				       "inputs");
	if (framing.node && (have_file || in->kind == EV_IN_UDP))
		errbuf_add(eb, &framing, "framing is for syslog tcp:// inputs");
	if (conns.node && (have_file || in->kind == EV_IN_UDP))
		errbuf_add(eb, &conns, "max_connections is for syslog tcp:// "
				       "inputs");
	xfree(url);
	if (rc)
		return rc;
	return eb->count == before ? 0 : -EINVAL;
}

/* ---- rules ---- */

static int push_glob(struct ev_glob **v, size_t *n, char *pat)
{
	size_t cap = *n;

	if (xgrow((void **)v, &cap, *n + 1, sizeof(**v)))
		return -ENOMEM;
	(*v)[*n].pat = pat;
	(*v)[*n].wild = strpbrk(pat, "*?[") != NULL;
	(*n)++;
	return 0;
}

/* A list of globs (a scalar is a one-item list). Levels are normalised
 * like the events' levels ("WARNING", "warn" -> "warning"). */
static int get_globs(const struct cfg_node *n, struct errbuf *eb,
		     bool level, struct ev_glob **out, size_t *nout)
{
	char **v = NULL;
	size_t cnt = 0;
	int rc;

	rc = cfg_get_strings(n, eb, &v, &cnt);
	if (rc)
		return rc;
	for (size_t i = 0; i < cnt; i++) {
		char *s = v[i];

		v[i] = NULL;
		if (!*s) {
			errbuf_add(eb, n, "empty string in a match list");
			xfree(s);
			continue;
		}
		if (level && !strpbrk(s, "*?[")) {
			char tmp[EV_LEVEL_MAX + 1];
			const char *norm = ev_level_norm(s, strlen(s), tmp,
							 sizeof(tmp));
			char *c = xstrdup(norm ? norm : s);

			xfree(s);
			s = c;
			if (!s) {
				rc = -ENOMEM;
				continue;
			}
		}
		if (push_glob(out, nout, s)) {
			xfree(s);
			rc = -ENOMEM;
		}
	}
	cfg_strings_free(v, cnt);
	return rc;
}

static int parse_id_item(const struct cfg_node *n, struct errbuf *eb,
			 struct ev_idrange *r)
{
	const char *s = cfg_scalar(n);
	const char *dash = s ? strchr(s, '-') : NULL;
	uint32_t lo, hi;

	if (s && !dash && ev_parse_id(s, strlen(s), &lo)) {
		r->lo = r->hi = lo;
		return 0;
	}
	if (s && dash && ev_parse_id(s, (size_t)(dash - s), &lo) &&
	    ev_parse_id(dash + 1, strlen(dash + 1), &hi) && lo <= hi) {
		r->lo = lo;
		r->hi = hi;
		return 0;
	}
	errbuf_add(eb, n, "event_id: expected an id (4097) or a range "
			  "(36870-36888), got '%s'",
		   s ? s : "(not a scalar)");
	return -EINVAL;
}

static int get_ids(const struct cfg_node *n, struct errbuf *eb,
		   struct ev_matcher *m)
{
	size_t cnt = cfg_is_seq(n) ? cfg_len(n) : 1, cap = m->nids;
	int rc = 0;

	if (!cfg_is_seq(n) && !cfg_is_scalar(n)) {
		errbuf_add(eb, n,
			   "event_id: expected an id, a range or a list");
		return -EINVAL;
	}
	if (cfg_is_seq(n) && cnt == 0) {
		errbuf_add(eb, n, "event_id: empty list");
		return -EINVAL;
	}
	if (xgrow((void **)&m->ids, &cap, m->nids + cnt, sizeof(*m->ids)))
		return -ENOMEM;
	for (size_t i = 0; i < cnt; i++) {
		struct cfg_node item = *n;

		if (cfg_is_seq(n))
			cfg_seq_item(n, i, &item);
		if (parse_id_item(&item, eb, &m->ids[m->nids]))
			rc = -EINVAL;
		else
			m->nids++;
	}
	return rc;
}

static int get_regexes(const struct cfg_node *n, struct errbuf *eb,
		       struct ev_matcher *m)
{
	size_t cnt = cfg_is_seq(n) ? cfg_len(n) : 1, cap = m->nmessages;
	int rc = 0;

	if (!cfg_is_seq(n) && !cfg_is_scalar(n)) {
		errbuf_add(eb, n, "message: expected a regex or a list");
		return -EINVAL;
	}
	if (xgrow((void **)&m->messages, &cap, m->nmessages + cnt,
		  sizeof(*m->messages)))
		return -ENOMEM;
	for (size_t i = 0; i < cnt; i++) {
		struct cfg_node item = *n;
		struct ev_regex *re = &m->messages[m->nmessages];
		const char *s;
		char err[300];

		if (cfg_is_seq(n))
			cfg_seq_item(n, i, &item);
		s = cfg_scalar(&item);
		if (!s || !*s) {
			errbuf_add(eb, &item, "message: expected a non-empty "
					      "regex string");
			rc = rc ? rc : -EINVAL;
			continue;
		}
		re->src = xstrdup(s);
		if (!re->src)
			return -ENOMEM;
		re->code = ev_regex_compile(s, err, sizeof(err));
		if (!re->code) {
			errbuf_add(eb, &item, "message: %s", err);
			xfree(re->src);
			re->src = NULL;
			rc = rc ? rc : -EINVAL;
			continue;
		}
		m->nmessages++;
	}
	return rc;
}

/* One matcher key; returns 1 if key is not a matcher key, else 0 or a
 * negative error. */
static int matcher_key(const struct cfg_pair *p, struct errbuf *eb,
		       struct ev_matcher *m)
{
	if (strcmp(p->key, "event_id") == 0)
		return get_ids(&p->vnode, eb, m);
	if (strcmp(p->key, "source") == 0)
		return get_globs(&p->vnode, eb, false, &m->sources,
				 &m->nsources);
	if (strcmp(p->key, "channel") == 0)
		return get_globs(&p->vnode, eb, false, &m->channels,
				 &m->nchannels);
	if (strcmp(p->key, "host") == 0)
		return get_globs(&p->vnode, eb, false, &m->hosts, &m->nhosts);
	if (strcmp(p->key, "level") == 0)
		return get_globs(&p->vnode, eb, true, &m->levels, &m->nlevels);
	if (strcmp(p->key, "message") == 0)
		return get_regexes(&p->vnode, eb, m);
	return 1;
}

static int parse_matcher(const struct cfg_node *n, const char *what,
			 struct errbuf *eb, struct ev_matcher *m)
{
	int rc = 0;

	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "%s: expected a mapping of conditions", what);
		return -EINVAL;
	}
	if (cfg_len(n) == 0) {
		errbuf_add(eb, n, "%s: no conditions", what);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;
		int r;

		cfg_map_pair(n, i, &p);
		r = matcher_key(&p, eb, m);
		if (r == 1) {
			errbuf_add(eb, &p.knode,
				   "%s: unknown key '%s' (conditions: "
				   "event_id, source, channel, level, host, "
				   "message)",
				   what, p.key);
			r = -EINVAL;
		}
		if (r == -ENOMEM)
			return r;
		if (r)
			rc = r;
	}
	return rc;
}

/* A mapping or a list of mappings. */
static int parse_matchers(const struct cfg_node *n, const char *what,
			  struct errbuf *eb, struct ev_matcher **out,
			  size_t *nout)
{
	size_t cnt = cfg_is_seq(n) ? cfg_len(n) : 1, cap = 0;
	int rc = 0;

	if (cfg_is_seq(n) && cnt == 0) {
		errbuf_add(eb, n, "%s: empty list", what);
		return -EINVAL;
	}
	if (xgrow((void **)out, &cap, cnt, sizeof(**out)))
		return -ENOMEM;
	memset(*out, 0, cnt * sizeof(**out));
	for (size_t i = 0; i < cnt; i++) {
		struct cfg_node item = *n;
		int r;

		if (cfg_is_seq(n))
			cfg_seq_item(n, i, &item);
		r = parse_matcher(&item, what, eb, &(*out)[*nout]);
		(*nout)++;	/* partial matchers are freed with the rule */
		if (r == -ENOMEM)
			return r;
		if (r)
			rc = r;
	}
	return rc;
}

static bool label_name_ok(const char *s)
{
	static const char *const reserved[] = {"rule", "host", "source",
					       "event_id", "level"};

	if (!(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	if (s[0] == '_' && s[1] == '_')
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			return false;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++)
		if (strcmp(s, reserved[i]) == 0)
			return false;
	return true;
}

static int parse_labels(const struct cfg_node *n, struct errbuf *eb,
			struct ev_rule *r)
{
	size_t cap = 0;
	int rc = 0;

	if (!cfg_is_map(n)) {
		errbuf_add(eb, n,
			   "labels: expected a mapping of name to value");
		return -EINVAL;
	}
	if (cfg_len(n) > 16) {
		errbuf_add(eb, n, "labels: at most 16 labels per rule");
		return -EINVAL;
	}
	if (cfg_len(n) &&
	    xgrow((void **)&r->labels, &cap, cfg_len(n), sizeof(*r->labels)))
		return -ENOMEM;
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;
		const char *v;

		cfg_map_pair(n, i, &p);
		v = cfg_scalar(&p.vnode);
		if (!label_name_ok(p.key)) {
			errbuf_add(eb, &p.knode,
				   "labels: '%s' is not a valid label name "
				   "(or is one of rule, host, source, "
				   "event_id, level)",
				   p.key);
			rc = -EINVAL;
			continue;
		}
		if (!v) {
			errbuf_add(eb, &p.vnode, "labels: expected a string");
			rc = -EINVAL;
			continue;
		}
		r->labels[r->nlabels].name = xstrdup(p.key);
		r->labels[r->nlabels].value = xstrdup(v);
		r->nlabels++;
		if (!r->labels[r->nlabels - 1].name ||
		    !r->labels[r->nlabels - 1].value)
			return -ENOMEM;
	}
	return rc;
}

static int parse_rule(const struct cfg_node *n, const struct events_cfg *ec,
		      struct ev_rule *r, struct errbuf *eb)
{
	unsigned before = eb->count;
	bool have_name = false;

	r->max_series = ec->max_series;
	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "rules: each rule must be a mapping with a "
				  "'name'");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_pair p;
		uint64_t u;
		int rc = 0;

		cfg_map_pair(n, i, &p);
		if (strcmp(p.key, "name") == 0) {
			have_name = true;
			rc = cfg_get_string(&p.vnode, eb, &r->name);
			if (rc == 0 && !*r->name)
				errbuf_add(eb, &p.vnode, "rule name is empty");
		} else if (strcmp(p.key, "description") == 0) {
			if (!cfg_scalar(&p.vnode))
				errbuf_add(eb, &p.vnode,
					   "description: expected a string");
		} else if (strcmp(p.key, "any") == 0) {
			if (!cfg_is_seq(&p.vnode))
				errbuf_add(eb, &p.vnode,
					   "any: expected a list of condition "
					   "mappings");
			else
				rc = parse_matchers(&p.vnode, "any", eb,
						    &r->any, &r->nany);
		} else if (strcmp(p.key, "exclude") == 0) {
			rc = parse_matchers(&p.vnode, "exclude", eb, &r->excl,
					    &r->nexcl);
		} else if (strcmp(p.key, "labels") == 0) {
			rc = parse_labels(&p.vnode, eb, r);
		} else if (strcmp(p.key, "max_series") == 0) {
			if (cfg_get_uint(&p.vnode, eb, 1, 1000000, &u) == 0)
				r->max_series = (unsigned)u;
		} else {
			rc = matcher_key(&p, eb, &r->m);
			if (rc == 1) {
				errbuf_add(eb, &p.knode,
					   "rules: unknown key '%s'", p.key);
				rc = -EINVAL;
			}
		}
		if (rc == -ENOMEM)
			return rc;
	}
	if (!have_name)
		errbuf_add(eb, n, "rules: rule has no 'name'");
	return eb->count == before ? 0 : -EINVAL;
}

static int parse_rules(const struct cfg_node *n, struct events_cfg *ec,
		       size_t *cap, struct errbuf *eb)
{
	if (!cfg_is_seq(n)) {
		errbuf_add(eb, n, "rules: expected a list of rules");
		return -EINVAL;
	}
	if (xgrow((void **)&ec->rules, cap, ec->nrules + cfg_len(n),
		  sizeof(*ec->rules)))
		return -ENOMEM;
	for (size_t i = 0; i < cfg_len(n); i++) {
		struct cfg_node item;
		struct ev_rule *r = &ec->rules[ec->nrules];
		int rc;

		cfg_seq_item(n, i, &item);
		memset(r, 0, sizeof(*r));
		rc = parse_rule(&item, ec, r, eb);
		if (rc == 0) {
			for (size_t k = 0; k < ec->nrules; k++) {
				if (strcmp(ec->rules[k].name, r->name) == 0) {
					errbuf_add(eb, &item,
						   "rules: a rule named '%s' "
						   "is already defined",
						   r->name);
					rc = -EINVAL;
					break;
				}
			}
		}
		if (rc) {
			rule_cleanup(r);
			if (rc == -ENOMEM)
				return rc;
			continue;
		}
		ec->nrules++;
	}
	return 0;
}

/* libyaml accepts repeated keys silently; our schema refuses them. */
static void dup_keys(const struct cfg_node *n, struct errbuf *eb, int depth)
{
	if (depth > 64)
		return;
	if (cfg_is_map(n)) {
		for (size_t i = 0; i < cfg_len(n); i++) {
			struct cfg_pair a;

			cfg_map_pair(n, i, &a);
			for (size_t j = 0; j < i; j++) {
				struct cfg_pair b;

				cfg_map_pair(n, j, &b);
				if (*a.key && strcmp(a.key, b.key) == 0) {
					errbuf_add(eb, &a.knode,
						   "duplicate key '%s'", a.key);
					break;
				}
			}
			dup_keys(&a.vnode, eb, depth + 1);
		}
	} else if (cfg_is_seq(n)) {
		for (size_t i = 0; i < cfg_len(n); i++) {
			struct cfg_node item;

			cfg_seq_item(n, i, &item);
			dup_keys(&item, eb, depth + 1);
		}
	}
}

static char *slurp(const char *path, size_t *len, int *err)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[8192];
	size_t n;

	*err = 0;
	if (!f) {
		*err = errno;
		return NULL;
	}
	buf_init(&b, EV_RULES_FILE_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(&b, chunk, n))
			break;
	if (ferror(f) || b.err) {
		*err = b.err == -E2BIG ? EFBIG : b.err ? ENOMEM : EIO;
		fclose(f);
		buf_cleanup(&b);
		return NULL;
	}
	fclose(f);
	return buf_steal(&b, len);
}

/* A rules file: a mapping with one key `rules`, or the list itself.
 * Errors are reported against that file's own lines. */
static int load_rules_file(const char *path, const struct cfg_node *at,
			   struct events_cfg *ec, size_t *cap,
			   struct errbuf *eb)
{
	const char *saved = eb->file;
	yaml_parser_t parser;
	yaml_document_t doc;
	struct cfg_node root, list = {0};
	size_t len = 0;
	int err, rc = 0;
	char *text = slurp(path, &len, &err);

	if (!text) {
		errbuf_add(eb, at, "rules_file %s: %s", path, strerror(err));
		return err == ENOMEM ? -ENOMEM : -EINVAL;
	}
	eb->file = path;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		struct cfg_node none = {0};

		(void)none;
		eb->count++;
		buf_printf(&eb->b, "%s:%lu:%lu: YAML: %s\n", path,
			   (unsigned long)parser.problem_mark.line + 1,
			   (unsigned long)parser.problem_mark.column + 1,
			   parser.problem ? parser.problem : "syntax error");
		yaml_parser_delete(&parser);
		xfree(text);
		eb->file = saved;
		return -EINVAL;
	}
	yaml_parser_delete(&parser);
	root.doc = &doc;
	root.node = yaml_document_get_root_node(&doc);
	if (!root.node) {
		errbuf_add(eb, NULL, "empty rules file");
		rc = -EINVAL;
		goto out;
	}
	dup_keys(&root, eb, 0);
	if (cfg_is_seq(&root)) {
		list = root;
	} else if (cfg_is_map(&root)) {
		for (size_t i = 0; i < cfg_len(&root); i++) {
			struct cfg_pair p;

			cfg_map_pair(&root, i, &p);
			if (strcmp(p.key, "rules") == 0)
				list = p.vnode;
			else
				errbuf_add(eb, &p.knode,
					   "unknown key '%s' (a rules file has "
					   "'rules:')",
					   p.key);
		}
		if (!list.node)
			errbuf_add(eb, &root, "no 'rules:' list");
	} else {
		errbuf_add(eb, &root, "expected 'rules:' and a list of rules");
	}
	if (list.node)
		rc = parse_rules(&list, ec, cap, eb);
out:
	yaml_document_delete(&doc);
	xfree(text);
	eb->file = saved;
	return rc;
}

/* ---- the events mapping ---- */

int events_parse(const struct cfg_node *n, const struct config *cfg,
		 struct events_cfg **out, struct errbuf *eb)
{
	struct cfg_node inputs = {0}, rules = {0}, rules_file = {0};
	struct events_cfg *ec;
	unsigned before = eb->count;
	size_t rcap = 0;
	int rc = 0;

	ev_json_init();
	if (!cfg_is_map(n)) {
		errbuf_add(eb, n, "events: expected a mapping (inputs, rules, "
				  "...)");
		return -EINVAL;
	}
	ec = xcalloc(1, sizeof(*ec));
	if (!ec)
		return -ENOMEM;
	ec->match = EV_MATCH_FIRST;
	ec->max_series = EV_DEFAULT_MAX_SERIES;
	ec->max_line = EV_DEFAULT_MAX_LINE;
	ec->max_connections = EV_DEFAULT_MAX_CONNS;
	ec->poll_interval = 0.25;
	ec->rotate_wait = 5;
	ec->state_interval = 1;

	for (size_t i = 0; i < cfg_len(n) && rc != -ENOMEM; i++) {
		struct cfg_pair p;
		uint64_t u;
		double d;

		cfg_map_pair(n, i, &p);
		if (strcmp(p.key, "inputs") == 0) {
			inputs = p.vnode;
		} else if (strcmp(p.key, "rules") == 0) {
			rules = p.vnode;
		} else if (strcmp(p.key, "rules_file") == 0) {
			rules_file = p.vnode;
		} else if (strcmp(p.key, "match") == 0) {
			const char *s = cfg_scalar(&p.vnode);

			if (s && strcmp(s, "first") == 0)
				ec->match = EV_MATCH_FIRST;
			else if (s && strcmp(s, "all") == 0)
				ec->match = EV_MATCH_ALL;
			else
				errbuf_add(eb, &p.vnode,
					   "match must be first or all");
		} else if (strcmp(p.key, "max_series") == 0) {
			if (cfg_get_uint(&p.vnode, eb, 1, 1000000, &u) == 0)
				ec->max_series = (unsigned)u;
		} else if (strcmp(p.key, "state_file") == 0) {
			rc = cfg_get_path(&p.vnode, cfg, eb, &ec->state_file);
		} else if (strcmp(p.key, "poll_interval") == 0) {
			if (cfg_get_duration(&p.vnode, eb, &d) == 0) {
				if (d < 0.01 || d > 60)
					errbuf_add(eb, &p.vnode,
						   "poll_interval must be "
						   "between 10ms and 1m");
				else
					ec->poll_interval = d;
			}
		} else if (strcmp(p.key, "rotate_wait") == 0) {
			if (cfg_get_duration(&p.vnode, eb, &d) == 0) {
				if (d > 3600)
					errbuf_add(eb, &p.vnode,
						   "rotate_wait is at most 1h");
				else
					ec->rotate_wait = d;
			}
		} else if (strcmp(p.key, "limits") == 0) {
			if (!cfg_is_map(&p.vnode)) {
				errbuf_add(eb, &p.vnode,
					   "limits: expected a mapping");
				continue;
			}
			for (size_t k = 0; k < cfg_len(&p.vnode); k++) {
				struct cfg_pair q;

				cfg_map_pair(&p.vnode, k, &q);
				if (strcmp(q.key, "max_line_bytes") == 0) {
					get_size(&q.vnode, eb, 256,
						 EV_MAX_MAX_LINE,
						 &ec->max_line);
				} else if (strcmp(q.key, "max_connections") ==
					   0) {
					if (cfg_get_uint(&q.vnode, eb, 1, 65536,
							 &u) == 0)
						ec->max_connections =
							(unsigned)u;
				} else {
					errbuf_add(eb, &q.knode,
						   "events.limits: unknown key "
						   "'%s'",
						   q.key);
				}
			}
		} else {
			errbuf_add(eb, &p.knode, "events: unknown key '%s'",
				   p.key);
		}
	}
	if (rc == -ENOMEM)
		goto out;
	rc = 0;

	if (inputs.node && !cfg_is_seq(&inputs)) {
		errbuf_add(eb, &inputs, "events.inputs: expected a list");
	} else if (inputs.node && cfg_len(&inputs)) {
		size_t len = cfg_len(&inputs);

		ec->inputs = xcalloc(len, sizeof(*ec->inputs));
		if (!ec->inputs) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < len; i++) {
			struct cfg_node item;
			struct ev_input_cfg *in = &ec->inputs[ec->ninputs];

			cfg_seq_item(&inputs, i, &item);
			rc = parse_input(&item, cfg, ec, in, eb);
			ec->ninputs++;	/* freed with ec even if broken */
			if (rc == -ENOMEM)
				goto out;
			if (rc)
				continue;
			for (size_t k = 0; k + 1 < ec->ninputs; k++) {
				const struct ev_input_cfg *o = &ec->inputs[k];

				if (o->name && strcmp(o->name, in->name) == 0)
					errbuf_add(eb, &item,
						   "events.inputs: the name "
						   "'%s' is used twice",
						   in->name);
				else if (o->key && strcmp(o->key, in->key) == 0)
					errbuf_add(eb, &item,
						   "events.inputs: %s is "
						   "listed twice",
						   in->key);
			}
		}
		rc = 0;
	}

	/* inline rules first: with match: first they take precedence over
	 * the rules of a shared rules file */
	if (rules.node) {
		rc = parse_rules(&rules, ec, &rcap, eb);
		if (rc == -ENOMEM)
			goto out;
	}
	if (rules_file.node) {
		char **files = NULL;
		size_t nf = 0;

		rc = cfg_get_strings(&rules_file, eb, &files, &nf);
		if (rc == -ENOMEM)
			goto out;
		for (size_t i = 0; i < nf && rc != -ENOMEM; i++) {
			struct cfg_node at = rules_file;
			char *path = files[i][0] == '/' || !cfg->dir
					     ? xstrdup(files[i])
					     : xasprintf("%s/%s", cfg->dir,
							 files[i]);

			if (cfg_is_seq(&rules_file))
				cfg_seq_item(&rules_file, i, &at);
			if (!path) {
				rc = -ENOMEM;
				break;
			}
			rc = load_rules_file(path, &at, ec, &rcap, eb);
			xfree(path);
		}
		cfg_strings_free(files, nf);
		if (rc == -ENOMEM)
			goto out;
	}
	rc = eb->count == before ? 0 : -EINVAL;
out:
	if (rc) {
		if (rc == -ENOMEM)
			errbuf_add(eb, n, "events: out of memory");
		events_cfg_free(ec);
		return rc;
	}
	/* a repeated `events:` key (reported as a duplicate) replaces */
	events_cfg_free(*out);
	*out = ec;
	return 0;
}
