/* JSON lines as the Windows shippers write them (cJSON).
 *
 * NXLog im_msvistalog + to_json(): flat EventID (number), SourceName,
 * Channel, Severity / EventType, Hostname, Message.
 * Winlogbeat (ECS): winlog.event_id (a string in 8.x, a number in 7.x),
 * winlog.provider_name, winlog.channel, log.level, host.name, message;
 * event.code / event.provider / winlog.computer_name as fallbacks, and the
 * flat 7.x aliases (event_id, source_name, log_name, computer_name).
 *
 * Why cJSON here (jansson still reads the state file, state.c): parsing
 * is nearly all of the ingest CPU, and on these lines (~710 bytes, 22
 * fields) cJSON takes 1.3 us where jansson takes 7 us (bench/README.md).
 * jansson's strictness is kept where cJSON is lenient: invalid UTF-8, an
 * escaped NUL and anything after the value make the line a parse error,
 * and of repeated keys the last counts. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cJSON.h>
#include <jansson.h>

#include "events/events_int.h"
#include "exporter/expo.h"
#include "exporter/xalloc.h"

/* cJSON allocates every value and key of a line separately. While one
 * line is parsed its allocations come from a per-thread bump arena that
 * the next line reuses; frees of arena memory are no-ops, and a tree that
 * fits the arena is dropped without walking it. Anything bigger than what
 * is left goes to the heap (the tree is then freed node by node). */
#define JSON_ARENA_BYTES (256 * 1024)

static __thread struct {
	char *base;
	size_t used;
	bool active;
	bool spilled;	/* this parse also used the heap */
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
	if (arena.active)
		arena.spilled = true;
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
	cJSON_Hooks h = {json_xmalloc, json_xfree};

	cJSON_InitHooks(&h);
	json_set_alloc_funcs(xmalloc, xfree);
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

void ev_json_release(void *root, bool spilled)
{
	/* an arena-only tree is gone when the arena is reused */
	if (root && spilled)
		cJSON_Delete(root);
}

/* The member named k; of repeated names the last, as jansson reads them. */
static cJSON *member(const cJSON *obj, const char *k)
{
	cJSON *found = NULL;

	if (!cJSON_IsObject(obj))
		return NULL;
	for (cJSON *c = obj->child; c; c = c->next)
		if (c->string && strcmp(c->string, k) == 0)
			found = c;
	return found;
}

/* An escaped NUL ("\u0000" after an odd run of backslashes): jansson
 * refused those, and cJSON would cut the string there. */
static bool has_escaped_nul(const char *s, size_t n)
{
	const char *p = s, *end = s + n;

	while ((p = memchr(p, 'u', (size_t)(end - p))) != NULL) {
		size_t bs = 0;

		while (p - bs > s && p[-(ptrdiff_t)bs - 1] == '\\')
			bs++;
		if ((bs & 1) && end - p >= 5 && memcmp(p, "u0000", 5) == 0)
			return true;
		p++;
	}
	return false;
}

/* root.a or root.a.b for a path of at most two levels ("winlog.channel"). */
static cJSON *lookup(const cJSON *root, const char *path)
{
	const char *dot = strchr(path, '.');
	char a[32];
	size_t n;

	if (!dot)
		return member(root, path);
	n = (size_t)(dot - path);
	if (n >= sizeof(a))
		return NULL;
	memcpy(a, path, n);
	a[n] = '\0';
	return member(member(root, a), dot + 1);
}

/* The first of the candidate paths holding a non-empty string. */
static const char *get_str(const cJSON *root, const char *const *paths,
			   size_t *len)
{
	for (; *paths; paths++) {
		cJSON *v = lookup(root, *paths);

		if (cJSON_IsString(v) && v->valuestring[0]) {
			if (len)
				*len = strlen(v->valuestring);
			return v->valuestring;
		}
	}
	return NULL;
}

/* An event id given as a JSON integer or as a decimal string. */
static bool get_id(const cJSON *root, const char *const *paths,
		   uint32_t *out)
{
	for (; *paths; paths++) {
		cJSON *v = lookup(root, *paths);

		/* a whole number (jansson's integers; cJSON keeps doubles,
		 * exact up to 2^53) */
		if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble)) {
			double d = v->valuedouble;

			if (d >= 0 && d <= (double)UINT32_MAX) {
				*out = (uint32_t)d;
				return true;
			}
			return false;
		}
		if (cJSON_IsString(v))
			return ev_parse_id(v->valuestring, strlen(v->valuestring),
					   out);
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
	const char *end = NULL, *s;
	cJSON *root;
	bool wb;
	size_t n = 0;

	ev_json_init();
	/* the previous line's tree lives in the arena: gone before reuse */
	ev_parser_reset(p);
	if (!expo_utf8_valid(line, len) || has_escaped_nul(line, len))
		return -EINVAL;
	if (!arena.base)
		arena.base = xmalloc(JSON_ARENA_BYTES);	/* NULL: heap only */
	arena.used = 0;
	arena.spilled = false;
	arena.active = true;
	root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	arena.active = false;
	if (!root)
		return -EINVAL;
	p->root = root;	/* released by ev_parser_reset */
	p->root_spilled = arena.spilled;
	while (end < line + len && (*end == ' ' || *end == '\t' ||
				     *end == '\r' || *end == '\n'))
		end++;
	if (end != line + len || !cJSON_IsObject(root))
		return -EINVAL;
	wb = cJSON_IsObject(member(root, "winlog"));
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
