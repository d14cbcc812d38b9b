/* Tailed files.
 *
 * Polled every poll_interval and woken early by inotify on the file's
 * directory. Each poll reads what was appended and counts complete lines;
 * a trailing partial line waits for its newline.
 *
 * Rotation by rename (logrotate's default, NXLog's file_cycle): when the
 * path names another inode, or none, the old file is read to its end and
 * kept open for rotate_wait in case its writer has not reopened yet; the
 * new file is read from its first byte.
 * Rotation by truncation (copytruncate): the file got shorter than the
 * read position, or its first bytes changed (the fingerprint), so it is
 * read again from the start.
 *
 * Without saved state the first open starts at the end (start_at: end,
 * the default) or the beginning. With a state file, the position of the
 * first uncounted line (inode, offset, fingerprint) is restored: the same
 * file continues there; a rotated one is found again by its inode in the
 * same directory and drained first. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events/runtime.h"
#include "exporter/log.h"
#include "exporter/xalloc.h"

#define EV_FP_BYTES 256
#define EV_READ_BUDGET (8 * 1024 * 1024)	/* per file per poll */
#define EV_DIR_SCAN_MAX 10000

static uint64_t fp_hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

/* Fingerprint of the first n bytes of fd; false on a short read. */
static bool fp_of(int fd, uint32_t n, uint64_t *out)
{
	char b[EV_FP_BYTES];
	ssize_t r;

	if (n == 0 || n > sizeof(b))
		return false;
	do
		r = pread(fd, b, n, 0);
	while (r == -1 && errno == EINTR);
	if (r != (ssize_t)n)
		return false;
	*out = fp_hash(b, n);
	return true;
}

static void reader_reset(struct ev_reader *r)
{
	r->fd = -1;
	r->dev = r->ino = 0;
	r->pos = r->line_start = 0;
	r->len = 0;
	r->discard = false;
	r->fp = 0;
	r->fplen = 0;
	memset(&r->mtime, 0, sizeof(r->mtime));
	r->idle_since = 0;
}

static void reader_close(struct ev_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	xfree(r->buf);
	r->buf = NULL;
	r->cap = 0;
	reader_reset(r);
}

static size_t reader_cap(const struct ev_in *in)
{
	return in->cfg->max_line + 2;
}

/* Open path for reading at offset (which must be a line start). */
static int reader_open(struct ev_in *in, struct ev_reader *r,
		       const char *path, uint64_t offset)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd == -1)
		return -errno;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		int err = S_ISREG(sb.st_mode) ? errno : EINVAL;

		close(fd);
		return -err;
	}
	if (!r->buf) {
		r->cap = reader_cap(in);
		r->buf = xmalloc(r->cap);
		if (!r->buf) {
			close(fd);
			r->cap = 0;
			return -ENOMEM;
		}
	}
	r->fd = fd;
	r->dev = (uint64_t)sb.st_dev;
	r->ino = (uint64_t)sb.st_ino;
	r->pos = r->line_start = offset;
	r->len = 0;
	r->discard = false;
	r->fplen = 0;
	r->mtime = sb.st_mtim;
	if (sb.st_size > 0) {
		r->fplen = sb.st_size < EV_FP_BYTES ? (uint32_t)sb.st_size
						    : EV_FP_BYTES;
		if (!fp_of(fd, r->fplen, &r->fp))
			r->fplen = 0;
	}
	return 0;
}

/* Count the complete lines in r->buf, keep the partial one. */
static void reader_scan(struct ev_in *in, struct ev_reader *r)
{
	size_t off = 0;

	while (off < r->len) {
		char *p = r->buf + off;
		size_t avail = r->len - off;
		char *lf = memchr(p, '\n', avail);

		if (!lf) {
			if (!r->discard && avail > in->cfg->max_line) {
				ev_drop(in, EV_DROP_LINE_TOO_LONG, true);
				r->discard = true;
			}
			if (r->discard)
				off = r->len;
			break;
		}
		if (r->discard)
			r->discard = false;	/* counted when it began */
		else
			ev_line(in, p, (size_t)(lf - p), NULL);
		off += (size_t)(lf - p) + 1;
		r->line_start = r->pos - (r->len - off);
	}
	if (off) {
		memmove(r->buf, r->buf + off, r->len - off);
		r->len -= off;
	}
}

/* Read from r until the end of the file or the budget; returns bytes
 * read. */
static size_t reader_read(struct ev_in *in, struct ev_reader *r,
			  size_t budget)
{
	size_t total = 0;

	while (r->fd >= 0 && total < budget) {
		size_t space = r->cap - 1 - r->len;
		ssize_t n;

		if (space == 0) {
			/* a partial line of cap - 1 > max_line bytes */
			reader_scan(in, r);
			space = r->cap - 1 - r->len;
			if (space == 0)
				break;
		}
		n = pread(r->fd, r->buf + r->len, space, (off_t)r->pos);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == -1)
				log_warn_errno("events", "%s: read",
					       in->cfg->name);
			break;
		}
		r->pos += (uint64_t)n;
		r->len += (size_t)n;
		total += (size_t)n;
		reader_scan(in, r);
	}
	if (total)
		in->ev->dirty = true;
	if (total >= budget)
		in->ev->budget_left = true;
	return total;
}

/* A rotated file is finished: its last line needs no newline. */
static void reader_finish(struct ev_in *in, struct ev_reader *r)
{
	if (r->fd < 0)
		return;
	reader_read(in, r, (size_t)-1 / 2);
	if (r->len && !r->discard)
		ev_line(in, r->buf, r->len, NULL);
	log_debug("events", "%s: done with rotated file (inode %llu)",
		  in->cfg->name, (unsigned long long)r->ino);
	reader_close(r);
	in->ev->dirty = true;
}

/* Truncated (shorter than our position) or rewritten (first bytes
 * differ): start again from the top. */
static void check_truncation(struct ev_in *in, struct ev_reader *r)
{
	struct stat sb;
	bool again = false;

	if (fstat(r->fd, &sb) == -1)
		return;
	if ((uint64_t)sb.st_size < r->pos) {
		again = true;
	} else if (sb.st_mtim.tv_sec != r->mtime.tv_sec ||
		   sb.st_mtim.tv_nsec != r->mtime.tv_nsec) {
		uint64_t fp;

		r->mtime = sb.st_mtim;
		if (r->fplen && fp_of(r->fd, r->fplen, &fp) && fp != r->fp)
			again = true;
		else if (r->fplen < EV_FP_BYTES && sb.st_size > r->fplen) {
			uint32_t n = sb.st_size < EV_FP_BYTES
					     ? (uint32_t)sb.st_size
					     : EV_FP_BYTES;

			if (fp_of(r->fd, n, &fp)) {
				r->fp = fp;
				r->fplen = n;
			}
		} else if (!r->fplen && sb.st_size > 0) {
			uint32_t n = sb.st_size < EV_FP_BYTES
					     ? (uint32_t)sb.st_size
					     : EV_FP_BYTES;

			if (fp_of(r->fd, n, &r->fp))
				r->fplen = n;
		}
	}
	if (!again)
		return;
	log_info("events", "%s: %s was truncated, reading it from the start",
		 in->cfg->name, in->cfg->path);
	r->pos = r->line_start = 0;
	r->len = 0;
	r->discard = false;
	r->fplen = 0;
	if (sb.st_size > 0) {
		r->fplen = sb.st_size < EV_FP_BYTES ? (uint32_t)sb.st_size
						    : EV_FP_BYTES;
		if (!fp_of(r->fd, r->fplen, &r->fp))
			r->fplen = 0;
	}
	in->ev->dirty = true;
}

/* The offset just after the last newline before size (start_at: end
 * must not start in the middle of a line). */
static uint64_t last_line_start(int fd, uint64_t size, size_t max)
{
	char b[4096];
	uint64_t end = size;

	while (end > 0 && size - end < max) {
		size_t n = end < sizeof(b) ? (size_t)end : sizeof(b);
		ssize_t r = pread(fd, b, n, (off_t)(end - n));

		if (r != (ssize_t)n)
			break;
		for (size_t i = n; i > 0; i--)
			if (b[i - 1] == '\n')
				return end - n + i;
		end -= n;
	}
	return end == 0 ? 0 : size;
}

/* A rotated file of ours, found again by inode next to path. */
static int find_rotated(const char *path, const struct ev_pos *p,
			char *out, size_t cap)
{
	char *d = xstrdup(path), *b = xstrdup(path);
	const char *dir, *base;
	struct dirent *de;
	DIR *dh;
	int rc = -ENOENT, scanned = 0;

	if (!d || !b) {
		xfree(d);
		xfree(b);
		return -ENOMEM;
	}
	dir = dirname(d);
	base = basename(b);
	dh = opendir(dir);
	while (dh && (de = readdir(dh)) != NULL &&
	       scanned++ < EV_DIR_SCAN_MAX) {
		struct stat sb;

		if (strncmp(de->d_name, base, strlen(base)) != 0)
			continue;
		if (snprintf(out, cap, "%s/%s", dir, de->d_name) >= (int)cap)
			continue;
		if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    (uint64_t)sb.st_ino == p->ino &&
		    (uint64_t)sb.st_dev == p->dev) {
			rc = 0;
			break;
		}
	}
	if (dh)
		closedir(dh);
	xfree(d);
	xfree(b);
	return rc;
}

/* Does the saved position still describe the file open in r? */
static bool pos_matches(const struct ev_reader *r, const struct ev_pos *p)
{
	struct stat sb;
	uint64_t fp;

	if (r->ino != p->ino || r->dev != p->dev)
		return false;
	if (fstat(r->fd, &sb) == -1 || (uint64_t)sb.st_size < p->offset)
		return false;
	if (p->fplen && (!fp_of(r->fd, p->fplen, &fp) || fp != p->fp))
		return false;
	return true;
}

/* First poll: restore from the state file or apply start_at. */
static void file_start(struct ev_in *in)
{
	const struct ev_input_cfg *ic = in->cfg;
	struct ev_pos pos[EV_POS_MAX];
	int npos = ev_state_load(ic->state_file, ic->path, pos);
	bool used[EV_POS_MAX] = {false, false};
	struct stat sb;

	if (reader_open(in, &in->cur, ic->path, 0) == 0) {
		int k = -1;

		for (int i = 0; i < npos; i++)
			if (pos_matches(&in->cur, &pos[i]))
				k = i;
		if (k >= 0) {
			used[k] = true;
			in->cur.pos = in->cur.line_start = pos[k].offset;
			log_info("events", "%s: resuming %s at offset %llu",
				 ic->name, ic->path,
				 (unsigned long long)pos[k].offset);
		} else if (npos < 0 && !ic->from_beginning &&
			   fstat(in->cur.fd, &sb) == 0) {
			in->cur.pos = in->cur.line_start = last_line_start(
				in->cur.fd, (uint64_t)sb.st_size, ic->max_line);
		}
		/* else: a file that appeared since the state was saved, or
		 * start_at: beginning: from its first byte */
	}
	/* a rotated file that was still being read when we stopped */
	for (int i = 0; i < npos; i++) {
		char path[4096];

		if (used[i] || in->old.fd >= 0)
			continue;
		if (find_rotated(ic->path, &pos[i], path, sizeof(path)) != 0)
			continue;
		if (reader_open(in, &in->old, path, pos[i].offset) == 0 &&
		    !pos_matches(&in->old, &pos[i])) {
			reader_close(&in->old);
			continue;
		}
		log_info("events", "%s: reading the rest of rotated file %s "
				   "from offset %llu",
			 ic->name, path, (unsigned long long)pos[i].offset);
		in->old.idle_since = loop_now();
	}
	in->started = true;
	ev_set_up(in, in->cur.fd >= 0);
}

void ev_file_init(struct ev_in *in)
{
	reader_reset(&in->cur);
	reader_reset(&in->old);
	in->cur.buf = in->old.buf = NULL;
	in->cur.cap = in->old.cap = 0;
	in->wd = -1;
}

void ev_file_poll(struct ev_in *in, int64_t now)
{
	const struct ev_input_cfg *ic = in->cfg;
	struct events *ev = in->ev;
	struct stat sb;
	int64_t wait = (int64_t)(ev->cfg->rotate_wait * 1e9);

	in->poll_now = false;
	if (!in->started)
		file_start(in);
	if (in->old.fd >= 0) {
		if (reader_read(in, &in->old, EV_READ_BUDGET))
			in->old.idle_since = now;
		else if (now - in->old.idle_since >= wait)
			reader_finish(in, &in->old);
	}
	if (in->cur.fd < 0) {
		/* created since: a new file, read from its first byte */
		int rc = reader_open(in, &in->cur, ic->path, 0);

		if (rc == 0) {
			log_info("events", "%s: opened %s", ic->name, ic->path);
			in->open_errno = 0;
			ev_set_up(in, true);
			ev->dirty = true;
		} else if (-rc != in->open_errno) {
			/* once per kind of failure, not once per poll */
			in->open_errno = -rc;
			if (rc == -ENOENT)
				log_info("events", "%s: waiting for %s", ic->name,
					 ic->path);
			else
				log_warn("events", "%s: cannot open %s: %s",
					 ic->name, ic->path, strerror(-rc));
		}
	}
	if (in->cur.fd < 0)
		return;
	check_truncation(in, &in->cur);
	reader_read(in, &in->cur, EV_READ_BUDGET);
	if (stat(ic->path, &sb) == 0 && (uint64_t)sb.st_ino == in->cur.ino &&
	    (uint64_t)sb.st_dev == in->cur.dev)
		return;
	/* renamed away (or deleted): finish what its writer wrote, keep it
	 * for rotate_wait, and follow the path to the new file */
	reader_read(in, &in->cur, (size_t)-1 / 2);
	if (in->old.fd >= 0)
		reader_finish(in, &in->old);
	xfree(in->old.buf);
	in->old = in->cur;
	in->old.idle_since = now;
	reader_reset(&in->cur);
	in->cur.buf = NULL;
	in->cur.cap = 0;
	ev->dirty = true;
	log_info("events", "%s: %s was rotated", ic->name, ic->path);
	if (wait == 0)
		reader_finish(in, &in->old);
	if (reader_open(in, &in->cur, ic->path, 0) == 0)
		reader_read(in, &in->cur, EV_READ_BUDGET);
	ev_set_up(in, in->cur.fd >= 0);
}

void ev_file_close(struct ev_in *in)
{
	reader_close(&in->cur);
	reader_close(&in->old);
	in->started = false;
	ev_set_up(in, false);
}

void ev_file_reconfigured(struct ev_in *in)
{
	struct ev_reader *rs[2] = {&in->cur, &in->old};
	size_t cap = reader_cap(in);

	for (int i = 0; i < 2; i++) {
		struct ev_reader *r = rs[i];
		char *p;

		if (!r->buf || r->cap == cap)
			continue;
		if (r->len > cap - 1) {
			ev_drop(in, EV_DROP_LINE_TOO_LONG, true);
			r->len = 0;
			r->discard = true;
		}
		p = xrealloc(r->buf, cap);
		if (p) {
			r->buf = p;
			r->cap = cap;
		}
	}
	ev_set_up(in, in->cur.fd >= 0);
}

size_t ev_file_positions(const struct ev_in *in, struct ev_pos *out)
{
	const struct ev_reader *rs[2] = {&in->cur, &in->old};
	size_t n = 0;

	for (int i = 0; i < 2; i++) {
		const struct ev_reader *r = rs[i];

		if (r->fd < 0)
			continue;
		out[n].dev = r->dev;
		out[n].ino = r->ino;
		out[n].offset = r->line_start;
		out[n].fp = r->fp;
		out[n].fplen = r->fplen;
		n++;
	}
	return n;
}
