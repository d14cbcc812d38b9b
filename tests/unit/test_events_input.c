/* The running subsystem: tailed files (start at end, partial lines,
 * rotation by rename and by truncation, over-long lines, the state file
 * across restarts, also when the file rotated meanwhile), syslog over TCP
 * (newline and octet-counting framing, limits) and UDP, and reloads that
 * keep counts, connections and read positions. Real files and loopback
 * sockets; each wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#include "events/events.h"
#include "exporter/config.h"
#include "exporter/expo.h"
#include "exporter/xalloc.h"

static char dir[] = "/tmp/pki-events-input-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return tu_mkdir(dir);
}

static int teardown(void **state)
{
	(void)state;
	return tu_rmdir(dir);
}

static char *path_of(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void append(const char *name, const char *text)
{
	char *p = path_of(name);
	FILE *f = fopen(p, "a");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	xfree(p);
}

static struct config *load(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static struct config *load(const char *fmt, ...)
{
	char *yaml, *path = path_of("c.yml");
	struct config *cfg = NULL;
	struct errbuf eb;
	va_list ap;
	FILE *f;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	yaml = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(yaml, (size_t)n + 1, fmt, ap);
	va_end(ap);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(yaml, f);
	fclose(f);
	errbuf_init(&eb, NULL);
	if (config_load(path, &cfg, &eb))
		fail_msg("%s\n%s", errbuf_str(&eb), yaml);
	errbuf_cleanup(&eb);
	xfree(yaml);
	xfree(path);
	return cfg;
}

static char *render(struct events *ev)
{
	struct expo_set set;
	struct buf out;

	expo_set_init(&set, 1 << 22);
	events_emit(ev, &set);
	buf_init(&out, 1 << 22);
	assert_int_equal(expo_render(&set, &out), 0);
	expo_set_cleanup(&set);
	return buf_steal(&out, NULL);
}

/* Value of the sample whose line starts with `series` + " ", or -1. */
static double value(struct events *ev, const char *series)
{
	char *text = render(ev), *p = text;
	size_t n = strlen(series);
	double v = -1;

	while (p && *p) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	xfree(text);
	return v;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Wait up to 5 s for series to equal want; fail with the exposition. */
static void wait_value(struct events *ev, const char *series, double want)
{
	double v = -1;

	for (int i = 0; i < 500; i++) {
		v = value(ev, series);
		if (v == want)
			return;
		sleep_ms(10);
	}
	{
		char *text = render(ev);

		fail_msg("%s = %g, want %g\n%s", series, v, want, text);
	}
}

/* The value stays as it is for a while (nothing counted twice). */
static void stays(struct events *ev, const char *series, double want)
{
	sleep_ms(150);
	assert_true(value(ev, series) == want);
}

#define TOTAL(rule, host, id)                                                \
	"pki_events_total{rule=\"" rule "\",host=\"" host                   \
	"\",source=\"S\",event_id=\"" id "\",level=\"warning\"}"

static const char *json_line(int id, const char *host)
{
	static char b[256];

	snprintf(b, sizeof(b),
		 "{\"EventID\":%d,\"Hostname\":\"%s\",\"SourceName\":\"S\","
		 "\"Severity\":\"WARNING\",\"Message\":\"m\"}\n",
		 id, host);
	return b;
}

#define FILE_CFG                                                             \
	"events:\n"                                                          \
	"  poll_interval: 20ms\n"                                            \
	"  rotate_wait: 300ms\n"                                             \
	"  state_file: state.json\n"                                         \
	"  inputs:\n"                                                        \
	"    - { file: %s, name: f, format: %s }\n"                          \
	"  rules:\n"                                                         \
	"    - { name: all }\n"

static void test_file_tail(void **state)
{
	char *p = path_of("tail.log");
	struct config *cfg;
	struct events *ev;
	char big[100 * 1024];

	(void)state;
	append("tail.log", json_line(1, "old"));	/* before start: skipped */
	append("tail.log", "partial line without newl");
	cfg = load(FILE_CFG, p, "json");
	ev = events_start(cfg->events);
	assert_non_null(ev);
	wait_value(ev, "pki_events_input_up{input=\"f\"}", 1);
	stays(ev, "pki_events_input_lines_total{input=\"f\"}", 0);
	/* the rest of the partial line: a parse error (it was not ours) */
	append("tail.log", "ine\n");
	wait_value(ev, "pki_events_parse_errors_total{input=\"f\"}", 1);
	append("tail.log", json_line(1, "a"));
	append("tail.log", json_line(1, "a"));
	append("tail.log", json_line(2, "b"));
	wait_value(ev, TOTAL("all", "a", "1"), 2);
	wait_value(ev, TOTAL("all", "b", "2"), 1);
	/* a line arriving in two writes counts once, when complete */
	append("tail.log", "{\"EventID\":3,\"Hostname\":\"c\",");
	stays(ev, "pki_events_input_lines_total{input=\"f\"}", 4);
	append("tail.log", "\"SourceName\":\"S\",\"Severity\":\"warning\"}\n");
	wait_value(ev, TOTAL("all", "c", "3"), 1);
	/* an over-long line is dropped, the next one counts */
	memset(big, 'x', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	append("tail.log", big);
	append("tail.log", json_line(4, "d"));
	wait_value(ev, TOTAL("all", "d", "4"), 1);
	wait_value(ev, "pki_events_dropped_total{input=\"f\",reason="
		       "\"line_too_long\"}",
		   1);
	wait_value(ev, "pki_events_input_lines_total{input=\"f\"}", 7);
	/* blank lines are nothing */
	append("tail.log", "\n\r\n\n");
	stays(ev, "pki_events_input_lines_total{input=\"f\"}", 7);
	events_stop(ev);
	config_free(cfg);
	xfree(p);
}

static void test_file_rotation(void **state)
{
	char *p = path_of("rot.log"), *p1 = path_of("rot.log.1");
	struct config *cfg;
	struct events *ev;
	FILE *writer;

	(void)state;
	append("rot.log", "");
	cfg = load(FILE_CFG, p, "auto");
	ev = events_start(cfg->events);
	wait_value(ev, "pki_events_input_up{input=\"f\"}", 1);
	/* a writer that keeps its file open across the rename */
	writer = fopen(p, "a");
	assert_non_null(writer);
	setvbuf(writer, NULL, _IONBF, 0);
	for (int i = 0; i < 10; i++)
		fputs(json_line(1, "h"), writer);
	wait_value(ev, TOTAL("all", "h", "1"), 10);
	/* rename mid-stream; the writer goes on for a bit, then the new
	 * file appears */
	assert_int_equal(rename(p, p1), 0);
	for (int i = 0; i < 5; i++)
		fputs(json_line(1, "h"), writer);
	append("rot.log", json_line(2, "h"));
	for (int i = 0; i < 5; i++)
		fputs(json_line(1, "h"), writer);
	fclose(writer);
	append("rot.log", json_line(2, "h"));
	wait_value(ev, TOTAL("all", "h", "1"), 20);
	wait_value(ev, TOTAL("all", "h", "2"), 2);
	stays(ev, TOTAL("all", "h", "1"), 20);
	/* again, with nothing written in between */
	unlink(p1);
	assert_int_equal(rename(p, p1), 0);
	append("rot.log", json_line(2, "h"));
	wait_value(ev, TOTAL("all", "h", "2"), 3);
	/* truncation (copytruncate): from the start again */
	sleep_ms(100);
	assert_int_equal(truncate(p, 0), 0);
	sleep_ms(100);
	append("rot.log", json_line(3, "h"));
	wait_value(ev, TOTAL("all", "h", "3"), 1);
	/* truncated and refilled beyond the old size before a poll: the
	 * fingerprint of the first bytes shows it */
	events_stop(ev);
	ev = events_start(cfg->events);
	wait_value(ev, "pki_events_input_up{input=\"f\"}", 1);
	{
		char *text = xstrdup("");
		int fd;

		for (int i = 0; i < 4; i++) {
			char *t = xasprintf("%s%s", text, json_line(5, "z"));

			xfree(text);
			text = t;
		}
		fd = open(p, O_WRONLY | O_TRUNC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, text, strlen(text)),
				 (ssize_t)strlen(text));
		close(fd);
		xfree(text);
	}
	wait_value(ev, TOTAL("all", "z", "5"), 4);
	events_stop(ev);
	config_free(cfg);
	xfree(p);
	xfree(p1);
}

static void test_file_restart(void **state)
{
	char *p = path_of("st.log"), *p1 = path_of("st.log.1");
	char *sf = path_of("state.json");
	struct config *cfg;
	struct events *ev;
	struct stat sb;

	(void)state;
	unlink(sf);
	append("st.log", json_line(9, "before"));
	cfg = load(FILE_CFG, p, "json");
	ev = events_start(cfg->events);
	wait_value(ev, "pki_events_input_up{input=\"f\"}", 1);
	for (int i = 0; i < 5; i++)
		append("st.log", json_line(1, "r"));
	wait_value(ev, TOTAL("all", "r", "1"), 5);
	append("st.log", "{\"EventID\":1,");	/* half a line */
	sleep_ms(100);
	events_stop(ev);
	assert_int_equal(stat(sf, &sb), 0);

	/* while stopped: the half line completes, more lines come */
	append("st.log", "\"Hostname\":\"r\",\"SourceName\":\"S\",\"Severity\":"
			 "\"warning\"}\n");
	for (int i = 0; i < 3; i++)
		append("st.log", json_line(1, "r"));
	ev = events_start(cfg->events);
	/* exactly the 4 lines after the saved position: none twice, none
	 * skipped */
	wait_value(ev, TOTAL("all", "r", "1"), 4);
	stays(ev, TOTAL("all", "r", "1"), 4);
	assert_true(value(ev, TOTAL("all", "before", "9")) == -1);
	events_stop(ev);

	/* stopped, the file goes on, is rotated, a new one starts */
	for (int i = 0; i < 2; i++)
		append("st.log", json_line(1, "r"));
	assert_int_equal(rename(p, p1), 0);
	for (int i = 0; i < 3; i++)
		append("st.log", json_line(2, "r"));
	ev = events_start(cfg->events);
	wait_value(ev, TOTAL("all", "r", "1"), 2);	/* from st.log.1 */
	wait_value(ev, TOTAL("all", "r", "2"), 3);	/* the new st.log */
	stays(ev, TOTAL("all", "r", "2"), 3);
	events_stop(ev);

	/* truncated while stopped: from the start */
	assert_int_equal(truncate(p, 0), 0);
	append("st.log", json_line(3, "r"));
	ev = events_start(cfg->events);
	wait_value(ev, TOTAL("all", "r", "3"), 1);
	events_stop(ev);
	config_free(cfg);

	/* a broken state file is ignored (start_at applies) */
	append("state.json", "{not json");
	cfg = load(FILE_CFG, p, "json");
	ev = events_start(cfg->events);
	wait_value(ev, "pki_events_input_up{input=\"f\"}", 1);
	append("st.log", json_line(4, "r"));
	wait_value(ev, TOTAL("all", "r", "4"), 1);
	assert_true(value(ev, TOTAL("all", "r", "3")) == -1);
	events_stop(ev);
	config_free(cfg);
	xfree(p);
	xfree(p1);
	xfree(sf);
}

static void test_file_beginning_missing(void **state)
{
	char *p = path_of("late.log");
	struct config *cfg;
	struct events *ev;

	(void)state;
	cfg = load("events:\n  poll_interval: 20ms\n  inputs:\n"
		   "    - { file: %s, name: f, start_at: beginning }\n"
		   "  rules: [ { name: all } ]\n",
		   p);
	ev = events_start(cfg->events);
	/* not there yet: down, then read from its first byte */
	wait_value(ev, "pki_events_input_up{input=\"f\"}", 0);
	append("late.log", json_line(1, "x"));
	append("late.log", json_line(1, "x"));
	wait_value(ev, TOTAL("all", "x", "1"), 2);
	wait_value(ev, "pki_events_input_up{input=\"f\"}", 1);
	events_stop(ev);
	config_free(cfg);
	xfree(p);
}

/* ---- sockets ---- */

static int free_port(int type)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, type, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int tcp_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 100; i++) {
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		sleep_ms(10);
	}
	fail_msg("cannot connect to %d", port);
	return -1;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

static void send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

static void test_tcp(void **state)
{
	int port = free_port(SOCK_STREAM);
	struct config *cfg;
	struct events *ev;
	char *frame, *big;
	int a, b, c;

	(void)state;
	cfg = load("events:\n  inputs:\n"
		   "    - { syslog: 'tcp://127.0.0.1:%d', name: t, "
		   "max_connections: 2, max_line_bytes: 1KiB }\n"
		   "  rules: [ { name: all } ]\n",
		   port);
	ev = events_start(cfg->events);
	wait_value(ev, "pki_events_input_up{input=\"t\"}", 1);
	a = tcp_connect(port);
	b = tcp_connect(port);
	wait_value(ev, "pki_events_input_connections{input=\"t\"}", 2);
	/* a third connection is over the limit */
	c = tcp_connect(port);
	wait_value(ev, "pki_events_dropped_total{input=\"t\",reason="
		       "\"connection_limit\"}",
		   1);
	close(c);
	/* newline framing, split in odd places, CRLF */
	send_str(a, "<12>Jan  8 09:12:44 h1 S: one\r\n<12>Jan  8 0");
	send_str(a, "9:12:44 h1 S: two\n");
	/* octet counting, several frames in one write, one split */
	frame = xasprintf("%zu %s%zu %s%zu %.10s",
			  strlen("<12>Jan  8 09:12:44 h2 S: x"),
			  "<12>Jan  8 09:12:44 h2 S: x",
			  strlen("<12>Jan  8 09:12:44 h2 S: y\nz"),
			  "<12>Jan  8 09:12:44 h2 S: y\nz",
			  strlen("<12>Jan  8 09:12:44 h2 S: w"),
			  "<12>Jan  8 09:12:44 h2 S: w");
	send_all(b, frame, strlen(frame));
	xfree(frame);
	sleep_ms(30);
	send_str(b, " 09:12:44 h2 S: w");
	wait_value(ev, "pki_events_total{rule=\"all\",host=\"h1\",source=\"S\","
		       "event_id=\"\",level=\"warning\"}",
		   2);
	wait_value(ev, "pki_events_total{rule=\"all\",host=\"h2\",source=\"S\","
		       "event_id=\"\",level=\"warning\"}",
		   3);
	/* an octet frame over the limit is skipped whole, the stream goes
	 * on; so is a newline line over the limit */
	big = xmalloc(5000);
	memset(big, 'q', 4999);
	big[4999] = '\0';
	frame = xasprintf("4999 %s%zu %s", big,
			  strlen("<12>Jan  8 09:12:44 h3 S: ok"),
			  "<12>Jan  8 09:12:44 h3 S: ok");
	send_all(b, frame, strlen(frame));
	xfree(frame);
	send_all(a, big, 4999);
	send_str(a, "\n<12>Jan  8 09:12:44 h3 S: ok2\n");
	wait_value(ev, "pki_events_total{rule=\"all\",host=\"h3\",source=\"S\","
		       "event_id=\"\",level=\"warning\"}",
		   2);
	wait_value(ev, "pki_events_dropped_total{input=\"t\",reason="
		       "\"line_too_long\"}",
		   2);
	/* the last message of a connection needs no newline */
	send_str(a, "<12>Jan  8 09:12:44 h4 S: last");
	close(a);
	close(b);
	wait_value(ev, "pki_events_total{rule=\"all\",host=\"h4\",source=\"S\","
		       "event_id=\"\",level=\"warning\"}",
		   1);
	wait_value(ev, "pki_events_input_connections{input=\"t\"}", 0);
	xfree(big);
	events_stop(ev);
	config_free(cfg);
}

static void test_tcp_octet_only(void **state)
{
	int port = free_port(SOCK_STREAM);
	struct config *cfg;
	struct events *ev;
	int a;

	(void)state;
	cfg = load("events:\n  inputs:\n"
		   "    - { syslog: 'tcp://127.0.0.1:%d', name: t, framing: "
		   "octet_counting }\n"
		   "  rules: [ { name: all } ]\n",
		   port);
	ev = events_start(cfg->events);
	wait_value(ev, "pki_events_input_up{input=\"t\"}", 1);
	a = tcp_connect(port);
	send_str(a, "5 <1>hi");
	send_str(a, "garbage\n");	/* not a frame: the stream is lost */
	wait_value(ev, "pki_events_dropped_total{input=\"t\",reason="
		       "\"invalid_frame\"}",
		   1);
	wait_value(ev, "pki_events_input_lines_total{input=\"t\"}", 1);
	wait_value(ev, "pki_events_input_connections{input=\"t\"}", 0);
	close(a);
	events_stop(ev);
	config_free(cfg);
}

static void test_udp_and_reload(void **state)
{
	int uport = free_port(SOCK_DGRAM), tport = free_port(SOCK_STREAM);
	struct sockaddr_in to = {.sin_family = AF_INET};
	struct config *cfg, *cfg2;
	struct events *ev;
	int u = socket(AF_INET, SOCK_DGRAM, 0), t;
	char big[2000];

	(void)state;
	to.sin_port = htons((uint16_t)uport);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cfg = load("events:\n  inputs:\n"
		   "    - { syslog: 'udp://127.0.0.1:%d', name: u, "
		   "max_line_bytes: 1KiB }\n"
		   "    - { syslog: 'tcp://127.0.0.1:%d', name: t }\n"
		   "  rules: [ { name: r1, source: S }, { name: gone } ]\n",
		   uport, tport);
	ev = events_start(cfg->events);
	wait_value(ev, "pki_events_input_up{input=\"u\"}", 1);
	for (int i = 0; i < 5; i++)
		sendto(u, json_line(7, "udp"), strlen(json_line(7, "udp")), 0,
		       (struct sockaddr *)&to, sizeof(to));
	memset(big, 'x', sizeof(big));
	sendto(u, big, sizeof(big), 0, (struct sockaddr *)&to, sizeof(to));
	wait_value(ev, TOTAL("r1", "udp", "7"), 5);
	wait_value(ev, "pki_events_dropped_total{input=\"u\",reason="
		       "\"line_too_long\"}",
		   1);
	t = tcp_connect(tport);
	send_all(t, json_line(8, "tcp"), strlen(json_line(8, "tcp")));
	wait_value(ev, TOTAL("r1", "tcp", "8"), 1);

	/* reload: same addresses, another limit, a new rule in front, one
	 * rule removed: counts of r1 stay, the TCP connection stays */
	cfg2 = load("events:\n  match: all\n  inputs:\n"
		    "    - { syslog: 'udp://127.0.0.1:%d', name: u }\n"
		    "    - { syslog: 'tcp://127.0.0.1:%d', name: t, "
		    "max_line_bytes: 2KiB }\n"
		    "  rules: [ { name: first, event_id: 8 }, { name: r1, "
		    "source: S } ]\n",
		    uport, tport);
	assert_int_equal(events_reconfigure(ev, cfg2->events), 0);
	config_free(cfg);
	assert_true(value(ev, TOTAL("r1", "udp", "7")) == 5);
	assert_true(value(ev, "pki_events_input_connections{input=\"t\"}") ==
		    1);
	send_all(t, json_line(8, "tcp"), strlen(json_line(8, "tcp")));
	wait_value(ev, TOTAL("r1", "tcp", "8"), 2);
	wait_value(ev, TOTAL("first", "tcp", "8"), 1);
	{
		char *text = render(ev);

		assert_null(strstr(text, "rule=\"gone\""));
		xfree(text);
	}
	/* the UDP input kept its counters and its socket */
	sendto(u, big, sizeof(big), 0, (struct sockaddr *)&to, sizeof(to));
	sendto(u, json_line(7, "udp"), strlen(json_line(7, "udp")), 0,
	       (struct sockaddr *)&to, sizeof(to));
	wait_value(ev, TOTAL("r1", "udp", "7"), 6);
	/* 2000 bytes fit the default 64 KiB limit now */
	wait_value(ev, "pki_events_parse_errors_total{input=\"u\"}", 0);
	wait_value(ev, "pki_events_unmatched_total{input=\"u\"}", 1);

	/* reload to nothing: everything stops, nothing is exported */
	assert_int_equal(events_reconfigure(ev, NULL), 0);
	{
		char *text = render(ev);

		assert_string_equal(text, "");
		xfree(text);
	}
	config_free(cfg2);
	close(t);
	close(u);
	events_stop(ev);
}

/* Bind failures are retried; the input shows down until then. */
static void test_bind_retry(void **state)
{
	int port = free_port(SOCK_STREAM);
	struct sockaddr_in a = {.sin_family = AF_INET};
	int blocker = socket(AF_INET, SOCK_STREAM, 0);
	struct config *cfg;
	struct events *ev;

	(void)state;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(blocker, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(blocker, 1), 0);
	cfg = load("events:\n  poll_interval: 50ms\n  inputs:\n"
		   "    - { syslog: 'tcp://127.0.0.1:%d', name: t }\n",
		   port);
	ev = events_start(cfg->events);
	assert_non_null(ev);
	assert_true(value(ev, "pki_events_input_up{input=\"t\"}") == 0);
	close(blocker);
	for (int i = 0; i < 600 && value(ev, "pki_events_input_up{input=\"t\"}")
				    != 1;
	     i++)
		sleep_ms(10);
	assert_true(value(ev, "pki_events_input_up{input=\"t\"}") == 1);
	events_stop(ev);
	config_free(cfg);
	/* and the life cycle without any configuration */
	ev = events_start(NULL);
	assert_non_null(ev);
	{
		char *text = render(ev);

		assert_string_equal(text, "");
		xfree(text);
	}
	events_stop(ev);
	events_stop(NULL);
	events_emit(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_tail),
		cmocka_unit_test(test_file_rotation),
		cmocka_unit_test(test_file_restart),
		cmocka_unit_test(test_file_beginning_missing),
		cmocka_unit_test(test_tcp),
		cmocka_unit_test(test_tcp_octet_only),
		cmocka_unit_test(test_udp_and_reload),
		cmocka_unit_test(test_bind_retry),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
