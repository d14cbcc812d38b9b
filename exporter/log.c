#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"

enum log_level log_level = LOG_LVL_INFO;
static enum log_format log_fmt = LOG_FMT_LOGFMT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *log_level_str(enum log_level level)
{
	if (level < LOG_LVL_DEBUG || level > LOG_LVL_ERROR)
		return "unknown";
	return level_names[level];
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = LOG_LVL_DEBUG; i <= LOG_LVL_ERROR; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "logfmt") == 0)
		*out = LOG_FMT_LOGFMT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FMT_JSON;
	else
		return -EINVAL;
	return 0;
}

void log_set(enum log_level level, enum log_format fmt)
{
	log_level = level;
	log_fmt = fmt;
}

/* Quote a value for logfmt or JSON: both accept "..." with \" \\ \n \t;
 * other control bytes become \u00XX (JSON) so a message cannot split a
 * record in two. */
static void put_quoted(struct buf *b, const char *s)
{
	buf_putc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf_putc(b, '\\');
			buf_putc(b, (char)c);
		} else if (c == '\n') {
			buf_puts(b, "\\n");
		} else if (c == '\t') {
			buf_puts(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(b, "\\u%04x", c);
		} else {
			buf_putc(b, (char)c);
		}
	}
	buf_putc(b, '"');
}

void log_write(enum log_level level, const char *module, int errnum,
	       const char *fmt, ...)
{
	int saved = errno;
	char ts[40], msg[2048];
	struct timespec now;
	struct tm tm;
	struct buf b;
	va_list ap;
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03ldZ",
		 now.tv_nsec / 1000000L);

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	if (errnum) {
		size_t len = strlen(msg);

		snprintf(msg + len, sizeof(msg) - len, ": %s",
			 strerror(errnum));
	}

	buf_init(&b, 16384);
	if (log_fmt == LOG_FMT_JSON) {
		buf_puts(&b, "{\"ts\":\"");
		buf_puts(&b, ts);
		buf_puts(&b, "\",\"level\":\"");
		buf_puts(&b, log_level_str(level));
		buf_puts(&b, "\",\"module\":");
		put_quoted(&b, module);
		buf_puts(&b, ",\"msg\":");
		put_quoted(&b, msg);
		buf_puts(&b, "}\n");
	} else {
		buf_printf(&b, "ts=%s level=%s module=%s msg=", ts,
			   log_level_str(level), module);
		put_quoted(&b, msg);
		buf_putc(&b, '\n');
	}
	if (b.data)
		fputs(b.data, stderr);	/* one write per record */
	buf_cleanup(&b);
	errno = saved;
}
