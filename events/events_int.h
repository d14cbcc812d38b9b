/* Internals of the events subsystem, shared by its files and unit tests.
 * Nothing outside events/ (and tests/unit/test_events_*.c) includes this. */
#ifndef PKI_EVENTS_INT_H
#define PKI_EVENTS_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "events/events.h"
#include "exporter/buf.h"

#define EV_DEFAULT_MAX_LINE (64 * 1024)
#define EV_MAX_MAX_LINE (16 * 1024 * 1024)
#define EV_DEFAULT_MAX_CONNS 256
#define EV_DEFAULT_MAX_SERIES 1000
#define EV_OTHER "__other__"
#define EV_HOST_MAX 255
#define EV_LEVEL_MAX 31

/* ---- configuration ---- */

enum ev_format {
	EV_FMT_AUTO = 0,
	EV_FMT_JSON,
	EV_FMT_SNARE,
	EV_FMT_PLAIN,
	EV_FMT_RFC5424,
	EV_FMT_RFC3164,
};
const char *ev_format_str(enum ev_format f);

enum ev_input_kind {
	EV_IN_UDP = 0,
	EV_IN_TCP,
	EV_IN_FILE,
};

enum ev_framing {
	EV_FRAME_AUTO = 0,
	EV_FRAME_NEWLINE,
	EV_FRAME_OCTET,
};

enum ev_match_mode {
	EV_MATCH_FIRST = 0,
	EV_MATCH_ALL,
};

/* Reasons of pki_events_dropped_total, all exported (0 included). */
enum ev_drop {
	EV_DROP_LINE_TOO_LONG = 0,
	EV_DROP_CARDINALITY,
	EV_DROP_CONNECTION_LIMIT,
	EV_DROP_INVALID_FRAME,
	EV_DROP_MAX,
};
const char *ev_drop_str(enum ev_drop d);

/* Fields a plain-text pattern may capture by name. */
enum ev_field {
	EV_F_HOST = 0,
	EV_F_SOURCE,
	EV_F_CHANNEL,
	EV_F_LEVEL,
	EV_F_EVENT_ID,
	EV_F_MESSAGE,
	EV_F_MAX,
};
const char *ev_field_str(enum ev_field f);

struct ev_regex {
	char *src;
	pcre2_code *code;
};

struct ev_idrange {
	uint32_t lo, hi;
};

/* A case-insensitive string with optional * and ? wildcards. */
struct ev_glob {
	char *pat;
	bool wild;
};

/* All given fields must match; within a field any listed value may. */
struct ev_matcher {
	struct ev_idrange *ids;
	size_t nids;
	struct ev_glob *sources, *channels, *hosts, *levels;
	size_t nsources, nchannels, nhosts, nlevels;
	struct ev_regex *messages;
	size_t nmessages;
};

struct ev_label {
	char *name, *value;
};

struct ev_rule {
	char *name;
	struct ev_matcher m;	/* all of it */
	struct ev_matcher *any;	/* one of them, when nany > 0 */
	size_t nany;
	struct ev_matcher *excl;	/* none of them */
	size_t nexcl;
	struct ev_label *labels;	/* static labels */
	size_t nlabels;
	unsigned max_series;
};

struct ev_input_cfg {
	char *name;		/* the `input` label */
	enum ev_input_kind kind;
	char *key;		/* kind + address or path: the identity */
	struct sockaddr_storage addr;	/* syslog */
	socklen_t addrlen;
	char *path;		/* file */
	enum ev_format format;
	enum ev_framing framing;
	struct ev_regex pattern;	/* format plain */
	int groups[EV_F_MAX];	/* capture group of each field, or -1 */
	bool from_beginning;	/* start_at: beginning */
	char *state_file;	/* NULL: positions are not persisted */
	size_t max_line;
	unsigned max_connections;
};

struct events_cfg {
	enum ev_match_mode match;
	unsigned max_series;
	char *state_file;
	size_t max_line;
	unsigned max_connections;
	double poll_interval;	/* seconds */
	double rotate_wait;
	double state_interval;
	struct ev_input_cfg *inputs;
	size_t ninputs;
	struct ev_rule *rules;
	size_t nrules;
};

/* Shared PCRE2 contexts: allocation through xalloc, bounded matching. */
pcre2_general_context *ev_pcre2_gctx(void);
pcre2_match_context *ev_pcre2_mctx(void);
/* Compile src (UTF, invalid UTF tolerated, JIT when available). On error
 * returns NULL and writes the reason to err. */
pcre2_code *ev_regex_compile(const char *src, char *err, size_t errlen);
/* Route cJSON's allocations through the line arena and jansson's (the
 * state file) through xalloc (once per process). */
void ev_json_init(void);
/* Free a parsed line's tree (parse_json.c). */
void ev_json_release(void *root, bool spilled);
/* Free the calling thread's JSON arena (at the end of the events thread). */
void ev_json_thread_cleanup(void);

/* ---- one parsed event ---- */

/* Strings are NUL-terminated and borrowed from the line, the JSON tree or
 * the parser's scratch; valid until ev_parser_reset(). NULL = absent. */
struct ev_event {
	const char *host, *source, *channel, *level;
	const char *message;
	size_t message_len;
	uint32_t event_id;
	bool has_id;
};

struct ev_parser {
	void *root;		/* the JSON line's tree (parse_json.c) */
	bool root_spilled;	/* ... partly on the heap */
	pcre2_match_data *md;	/* for a plain pattern */
	const pcre2_code *md_code;	/* the pattern md was made for */
	char host[EV_HOST_MAX + 1];
	char level[EV_LEVEL_MAX + 1];
	char fields[EV_F_MAX][EV_HOST_MAX + 1];
};

void ev_parser_init(struct ev_parser *p);
void ev_parser_reset(struct ev_parser *p);
void ev_parser_cleanup(struct ev_parser *p);

/* Parse one line (without its line terminator; line[len] must be a
 * writable byte, the parsers may write NULs inside the line). peer is the
 * sender's address, the host of last resort (may be NULL). Returns 0 or
 * -EINVAL for a line the format cannot read. */
int ev_parse_line(const struct ev_input_cfg *in, struct ev_parser *p,
		  char *line, size_t len, const char *peer,
		  struct ev_event *ev);

/* The individual formats (parse_*.c); same contract. */
int ev_parse_json(struct ev_parser *p, const char *line, size_t len,
		  struct ev_event *ev);
int ev_parse_snare(struct ev_parser *p, char *line, size_t len,
		   struct ev_event *ev);
int ev_parse_syslog(struct ev_parser *p, char *line, size_t len,
		    enum ev_format want, struct ev_event *ev);
int ev_parse_plain(const struct ev_input_cfg *in, struct ev_parser *p,
		   char *line, size_t len, struct ev_event *ev);

/* Helpers shared by the parsers. */
const char *ev_level_norm(const char *s, size_t n, char *scratch,
			  size_t cap);
const char *ev_level_from_syslog(int severity);
bool ev_parse_id(const char *s, size_t n, uint32_t *out);
void ev_set_host(struct ev_parser *p, struct ev_event *ev, const char *s,
		 size_t n);

/* ---- rules ---- */

/* Does rule r count ev? md: match data with at least one pair. */
bool ev_rule_match(const struct ev_rule *r, const struct ev_event *ev,
		   pcre2_match_data *md);
bool ev_glob_match(const struct ev_glob *g, const char *s);
/* The rules that count ev, in configuration order: all of them, or only
 * the first with match: first. hits has room for ec->nrules indexes;
 * returns how many were written. */
size_t ev_rules_match(const struct events_cfg *ec, const struct ev_event *ev,
		      pcre2_match_data *md, size_t *hits);

/* ---- counters ---- */

struct ev_group;
struct ev_instat;

struct ev_store;
struct ev_store *ev_store_new(void);
void ev_store_free(struct ev_store *st);
pthread_mutex_t *ev_store_lock(struct ev_store *st);
/* Under the lock: make the groups and input stats match ec (kept by name,
 * others dropped). groups[i] / instats[i] receive the objects for rule i /
 * input i (arrays sized by the caller), NULL for those that could not be
 * made. Returns 0 or -ENOMEM; no group refers to an older configuration
 * afterwards, whatever the result. */
int ev_store_configure(struct ev_store *st, const struct events_cfg *ec,
		       struct ev_group **groups, struct ev_instat **instats);
/* Under the lock: one event counted by group g, from input in. */
void ev_store_count(struct ev_store *st, struct ev_group *g,
		    struct ev_instat *in, const struct ev_event *ev,
		    double now);

struct ev_instat {
	char *name;
	uint64_t lines, parse_errors, unmatched;
	uint64_t dropped[EV_DROP_MAX];
	bool up;
	bool tcp;		/* exports pki_events_input_connections */
	unsigned connections;
	bool live;
	unsigned order;
};

/* Copy every sample under the lock, format them after it. */
void ev_store_emit(struct ev_store *st, struct expo_set *out);

/* ---- state file (file read positions) ---- */

struct ev_pos {
	uint64_t dev, ino;
	uint64_t offset;
	uint64_t fp;		/* FNV-1a of the first fplen bytes */
	uint32_t fplen;
};

#define EV_POS_MAX 2	/* the current file and one rotated one */

/* Positions of path in state_file: how many (0..EV_POS_MAX), or -1 when
 * the file does not know path (or cannot be read). */
int ev_state_load(const char *state_file, const char *path,
		  struct ev_pos *out);

struct ev_state_entry {
	const char *path;
	struct ev_pos pos[EV_POS_MAX];
	size_t npos;
};
/* Replace state_file atomically (temp file, fsync, rename). */
int ev_state_save(const char *state_file, const struct ev_state_entry *e,
		  size_t n);

#endif
