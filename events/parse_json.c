/* JSON lines as the Windows shippers write them (jansson).
 *
 * NXLog im_msvistalog + to_json(): flat EventID (number), SourceName,
 * Channel, Severity / EventType, Hostname, Message.
 * Winlogbeat (ECS): winlog.event_id (a string in 8.x, a number in 7.x),
 * winlog.provider_name, winlog.channel, log.level, host.name, message;
 * event.code / event.provider / winlog.computer_name as fallbacks, and the
 * flat 7.x aliases (event_id, source_name, log_name, computer_name). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "events/events_int.h"
#include "exporter/xalloc.h"

/* jansson allocates every value and key of a line separately, and malloc
 * plus free were a quarter of the ingest CPU (perf, bench/events_ingest.py).
 * While one line is parsed its allocations come from a per-thread bump
 * arena that the next line reuses; frees of arena memory are no-ops.
 * Anything bigger than what is left, and every allocation outside a
 * parse, goes to the heap as before. Only the events thread parses. */
#define JSON_ARENA_BYTES (256 * 1024)

static __thread struct {
	char *base;
	size_t used;
	bool active;
} arena;

static void *json_xmalloc(size_t n)
{
	if (arena.active && arena.base) {
		size_t need = (n + 15) & ~(size_t)15;

		if (need >= n && arena.used + need <= JSON_ARENA_BYTES) {
			void *p = arena.base + arena.used;

			arena.used += need;
			return p;
		}
	}
	return xmalloc(n);
}

static void json_xfree(void *p)
{
	const char *c = p;

	if (arena.base && c >= arena.base && c < arena.base + JSON_ARENA_BYTES)
		return;	/* reclaimed when the next line starts */
	xfree(p);
}

static pthread_once_t json_once = PTHREAD_ONCE_INIT;

static void json_init_once(void)
{
	json_set_alloc_funcs(json_xmalloc, json_xfree);
}

/* The calling thread is done parsing: give its arena back. */
void ev_json_thread_cleanup(void)
{
	xfree(arena.base);
	arena.base = NULL;
	arena.used = 0;
}

void ev_json_init(void)
{
	pthread_once(&json_once, json_init_once);
}

/* obj.a.b... for a dotted path of at most two levels. */
static json_t *get_path(json_t *obj, const char *a, const char *b)
{
	json_t *v = json_object_get(obj, a);

	if (v && b)
		v = json_is_object(v) ? json_object_get(v, b) : NULL;
	return v;
}

/* The first of the candidate paths holding a non-empty string. */
static const char *get_str(json_t *root, const char *const *paths,
			   size_t *len)
{
	for (; *paths; paths++) {
		char a[32];
		const char *dot = strchr(*paths, '.');
		json_t *v;

		if (dot) {
			size_t n = (size_t)(dot - *paths);

			memcpy(a, *paths, n);
			a[n] = '\0';
			v = get_path(root, a, dot + 1);
		} else {
			v = get_path(root, *paths, NULL);
		}
		if (json_is_string(v) && json_string_length(v)) {
			if (len)
				*len = json_string_length(v);
			return json_string_value(v);
		}
	}
	return NULL;
}

/* An event id given as a JSON integer or as a decimal string. */
static bool get_id(json_t *root, const char *const *paths, uint32_t *out)
{
	for (; *paths; paths++) {
		char a[32];
		const char *dot = strchr(*paths, '.');
		json_t *v;

		if (dot) {
			size_t n = (size_t)(dot - *paths);

			memcpy(a, *paths, n);
			a[n] = '\0';
			v = get_path(root, a, dot + 1);
		} else {
			v = get_path(root, *paths, NULL);
		}
		if (json_is_integer(v)) {
			json_int_t i = json_integer_value(v);

			if (i >= 0 && i <= (json_int_t)UINT32_MAX) {
				*out = (uint32_t)i;
				return true;
			}
			return false;
		}
		if (json_is_string(v))
			return ev_parse_id(json_string_value(v),
					   json_string_length(v), out);
	}
	return false;
}

static const char *const WB_ID[] = {"winlog.event_id", "event.code", NULL};
static const char *const WB_SOURCE[] = {"winlog.provider_name",
					"event.provider", NULL};
static const char *const WB_CHANNEL[] = {"winlog.channel", NULL};
static const char *const WB_LEVEL[] = {"log.level", NULL};
static const char *const WB_HOST[] = {"host.name", "winlog.computer_name",
				      "agent.hostname", NULL};
static const char *const WB_MSG[] = {"message", NULL};

static const char *const NX_ID[] = {"EventID", "event_id", NULL};
static const char *const NX_SOURCE[] = {"SourceName", "source_name",
					"ProviderName", NULL};
static const char *const NX_CHANNEL[] = {"Channel", "log_name", NULL};
static const char *const NX_LEVEL[] = {"Severity", "EventType", "level",
				       NULL};
static const char *const NX_HOST[] = {"Hostname", "computer_name", "host",
				      NULL};
static const char *const NX_MSG[] = {"Message", "message", NULL};

int ev_parse_json(struct ev_parser *p, const char *line, size_t len,
		  struct ev_event *ev)
{
	json_error_t err;
	json_t *root;
	bool wb;
	const char *s;
	size_t n = 0;

	ev_json_init();
	/* the previous line's tree lives in the arena: gone before reuse */
	ev_parser_reset(p);
	if (!arena.base)
		arena.base = xmalloc(JSON_ARENA_BYTES);	/* NULL: heap only */
	arena.used = 0;
	arena.active = true;
	/* rejects invalid UTF-8 and \u0000 (JSON_ALLOW_NUL not given) */
	root = json_loadb(line, len, 0, &err);
	arena.active = false;
	if (!root)
		return -EINVAL;
	p->root = root;	/* released by ev_parser_reset */
	if (!json_is_object(root))
		return -EINVAL;
	wb = json_is_object(json_object_get(root, "winlog"));
	ev->has_id = get_id(root, wb ? WB_ID : NX_ID, &ev->event_id);
	ev->source = get_str(root, wb ? WB_SOURCE : NX_SOURCE, NULL);
	ev->channel = get_str(root, wb ? WB_CHANNEL : NX_CHANNEL, NULL);
	s = get_str(root, wb ? WB_LEVEL : NX_LEVEL, &n);
	if (s)
		ev->level = ev_level_norm(s, n, p->level, sizeof(p->level));
	s = get_str(root, wb ? WB_HOST : NX_HOST, &n);
	if (s)
		ev_set_host(p, ev, s, n);
	s = get_str(root, wb ? WB_MSG : NX_MSG, &n);
	if (s) {
		ev->message = s;
		ev->message_len = n;
	}
	return 0;
}
