/* libFuzzer: the event-line parsers (events/parse*.c) through
 * ev_parse_line: NXLog/Winlogbeat JSON, Snare, RFC 5424, RFC 3164 and the
 * auto-detection. The first input byte picks the format, the rest is the
 * line. Every string of a parsed event must be a readable C string (ASan
 * checks the reads) and the host fit its buffer. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "events/events_int.h"
#include "exporter/xalloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                             \
	do {                                                                 \
		if (!(c))                                                    \
			__builtin_trap();                                    \
	} while (0)

static struct ev_parser parser;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ev_json_init();
	ev_parser_init(&parser);
	return 0;
}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum ev_format formats[] = {
		EV_FMT_AUTO, EV_FMT_JSON, EV_FMT_SNARE, EV_FMT_RFC5424,
		EV_FMT_RFC3164,
	};
	struct ev_input_cfg in;
	struct ev_event ev;
	char *line;
	size_t len;
	int rc;

	if (size < 1 || size > 256 * 1024)
		return -1;
	memset(&in, 0, sizeof(in));
	in.format = formats[data[0] % (sizeof(formats) / sizeof(formats[0]))];
	len = size - 1;
	/* the contract: line[len] is a writable byte */
	line = xmalloc(len + 1);
	if (!line)
		return 0;
	memcpy(line, data + 1, len);
	line[len] = '\0';
	rc = ev_parse_line(&in, &parser, line, len, "192.0.2.1", &ev);
	CHECK(rc == 0 || rc < 0);
	if (rc == 0) {
		CHECK(slen(ev.host) <= EV_HOST_MAX);
		(void)slen(ev.source);
		(void)slen(ev.channel);
		CHECK(slen(ev.level) <= EV_LEVEL_MAX);
		if (ev.message && ev.message_len)
			CHECK(memchr(ev.message, ev.message[ev.message_len - 1],
				     ev.message_len) != NULL);
	}
	ev_parser_reset(&parser);
	xfree(line);
	return 0;
}
