/* The state file: where each tailed file was read up to, so that a
 * restart neither counts a line twice nor skips one.
 *
 *   {"version": 1, "files": {"/var/log/x.json": [
 *       {"dev": 2049, "inode": 1234, "offset": 5678,
 *        "fingerprint": "a1b2...", "fingerprint_bytes": 256}, ...]}}
 *
 * One entry for the file being read, and one for a rotated file still
 * being drained. The offset is the start of the first line not yet
 * counted. The file is replaced atomically: a temporary file in the same
 * directory, fsync, rename. */
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events/events_int.h"
#include "exporter/log.h"
#include "exporter/xalloc.h"

#define STATE_MAX_BYTES (4 * 1024 * 1024)

static json_t *load(const char *state_file)
{
	json_error_t err;
	json_t *root;

	struct stat sb;

	ev_json_init();
	if (stat(state_file, &sb) == -1)
		return NULL;
	if (sb.st_size > STATE_MAX_BYTES) {
		log_warn("events", "state file %s is larger than %d bytes: "
				   "starting without it",
			 state_file, STATE_MAX_BYTES);
		return NULL;
	}
	root = json_load_file(state_file, 0, &err);
	if (!root) {
		log_warn("events", "state file %s unreadable (%s, line %d): "
				   "starting without it",
			 state_file, err.text, err.line);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

static uint64_t get_u64(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (uint64_t)json_integer_value(v);
	return 0;
}

int ev_state_load(const char *state_file, const char *path,
		  struct ev_pos *out)
{
	json_t *root, *list;
	size_t n = 0;

	if (!state_file)
		return -1;
	root = load(state_file);
	if (!root)
		return -1;
	list = json_object_get(json_object_get(root, "files"), path);
	if (!json_is_array(list)) {
		json_decref(root);
		return -1;
	}
	for (size_t i = 0; i < json_array_size(list) && n < EV_POS_MAX; i++) {
		json_t *e = json_array_get(list, i);
		const char *fp;

		if (!json_is_object(e))
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		out[n].dev = get_u64(e, "dev");
		out[n].ino = get_u64(e, "inode");
		out[n].offset = get_u64(e, "offset");
		out[n].fplen = (uint32_t)get_u64(e, "fingerprint_bytes");
		fp = json_string_value(json_object_get(e, "fingerprint"));
		if (fp)
			out[n].fp = strtoull(fp, NULL, 16);
		if (out[n].ino)
			n++;
	}
	json_decref(root);
	return (int)n;
}

static int set_u64(json_t *o, const char *k, uint64_t v)
{
	return json_object_set_new(o, k, json_integer((json_int_t)v));
}

int ev_state_save(const char *state_file, const struct ev_state_entry *e,
		  size_t n)
{
	json_t *root = json_object(), *files = json_object();
	char *text = NULL, *tmp = NULL;
	int fd = -1, rc = -ENOMEM;
	size_t len;

	ev_json_init();
	if (!root || !files || json_object_set_new(root, "version",
						   json_integer(1)) ||
	    json_object_set(root, "files", files))
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_t *list = json_array();

		if (!list || json_object_set_new(files, e[i].path, list))
			goto out;
		for (size_t k = 0; k < e[i].npos; k++) {
			const struct ev_pos *p = &e[i].pos[k];
			char fp[17];
			json_t *o = json_object();

			snprintf(fp, sizeof(fp), "%016" PRIx64, p->fp);
			if (!o || json_array_append_new(list, o) ||
			    set_u64(o, "dev", p->dev) ||
			    set_u64(o, "inode", p->ino) ||
			    set_u64(o, "offset", p->offset) ||
			    json_object_set_new(o, "fingerprint",
						json_string(fp)) ||
			    set_u64(o, "fingerprint_bytes", p->fplen))
				goto out;
		}
	}
	text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	tmp = xasprintf("%s.tmp.%ld", state_file, (long)getpid());
	if (!text || !tmp)
		goto out;
	len = strlen(text);
	if (len > STATE_MAX_BYTES) {
		rc = -E2BIG;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		rc = -errno;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, text + off, len - off);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w == -1 ? -errno : -EIO;
			goto out;
		}
		off += (size_t)w;
	}
	if (write(fd, "\n", 1) != 1) {
		rc = -EIO;
		goto out;
	}
	if (fsync(fd) == -1) {
		rc = -errno;
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, state_file) == -1) {
		rc = -errno;
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc && tmp)
		unlink(tmp);
	xfree(tmp);
	xfree(text);	/* json_dumps allocates with our (xalloc) free */
	json_decref(files);
	json_decref(root);
	return rc;
}
