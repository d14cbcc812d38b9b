/* Logging in logfmt or JSON to stderr. The level is checked before the
 * arguments are formatted (the macros test log_level first). */
#ifndef PKI_LOG_H
#define PKI_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LVL_DEBUG = 0,
	LOG_LVL_INFO,
	LOG_LVL_WARN,
	LOG_LVL_ERROR,
};

enum log_format {
	LOG_FMT_LOGFMT = 0,
	LOG_FMT_JSON,
};

extern enum log_level log_level;

int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);
void log_set(enum log_level level, enum log_format fmt);
const char *log_level_str(enum log_level level);

/* Emit one record; `module` names the subsystem ("http", "config"...). */
void log_write(enum log_level level, const char *module, int errnum,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_at(lvl, mod, errnum, ...)                                        \
	do {                                                                 \
		if ((lvl) >= log_level)                                      \
			log_write((lvl), (mod), (errnum), __VA_ARGS__);      \
	} while (0)

#define log_debug(mod, ...) log_at(LOG_LVL_DEBUG, mod, 0, __VA_ARGS__)
#define log_info(mod, ...) log_at(LOG_LVL_INFO, mod, 0, __VA_ARGS__)
#define log_warn(mod, ...) log_at(LOG_LVL_WARN, mod, 0, __VA_ARGS__)
#define log_err(mod, ...) log_at(LOG_LVL_ERROR, mod, 0, __VA_ARGS__)
/* The _errno variants append strerror(errno) and leave errno unchanged. */
#define log_warn_errno(mod, ...) log_at(LOG_LVL_WARN, mod, errno, __VA_ARGS__)
#define log_err_errno(mod, ...) log_at(LOG_LVL_ERROR, mod, errno, __VA_ARGS__)

#endif
