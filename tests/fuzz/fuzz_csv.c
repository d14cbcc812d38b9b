/* libFuzzer: the partner-list CSV reader. csv_record() on the raw bytes,
 * then partners_load() on the same bytes through a memfd (no file on disk,
 * no cleanup). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exporter/buf.h"
#include "exporter/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char memfd_path[64];

static void check_records(const char *p, const char *end)
{
	char fields[8][CSV_MAX_FIELD];
	unsigned lines = 1;

	while (p < end) {
		const char *before = p, *err = NULL;
		int nf = csv_record(&p, end, fields, 8, &lines, &err);

		if (p <= before || p > end)
			__builtin_trap();	/* always makes progress */
		if (nf < 0 && !err)
			__builtin_trap();	/* an error has a reason */
		for (int i = 0; i < nf && i < 8; i++)
			if (strnlen(fields[i], CSV_MAX_FIELD) >= CSV_MAX_FIELD)
				__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct partner_row *rows = NULL;
	size_t n = 0;
	unsigned nskipped = 0;
	struct buf skipped;
	int rc;

	if (size > 256 * 1024)
		return -1;
	check_records((const char *)data, (const char *)data + size);

	if (memfd < 0) {
		memfd = memfd_create("fuzz_csv", MFD_CLOEXEC);
		if (memfd < 0)
			return 0;
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d",
			 memfd);
	}
	if (ftruncate(memfd, 0) || pwrite(memfd, data, size, 0) != (ssize_t)size)
		return 0;
	buf_init(&skipped, 1 << 24);
	rc = partners_load(memfd_path, &rows, &n, &skipped, &nskipped);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			if (!rows[i].target || !rows[i].domain || !rows[i].port ||
			    !rows[i].target[0] || rows[i].line == 0)
				__builtin_trap();
			(void)partner_type_str(rows[i].type);
		}
		/* every skipped row is described on its own line */
		if (nskipped && (!skipped.data || !skipped.len))
			__builtin_trap();
	}
	partner_rows_free(rows, n);
	buf_cleanup(&skipped);
	return 0;
}
