#!/bin/sh
# The exporter under valgrind through a real scrape workload on loopback
# (TLS endpoints good and failing, DNS, files, a store, a partner list,
# /probe, /status, reload by SIGHUP and by HTTP, SIGTERM); fails on any
# valgrind error or definite leak (valgrind --error-exitcode=99).
#
#   tests/valgrind.sh [path/to/pki_exporter]     # default: build/pki_exporter
#
# Use a build without sanitizers (ASan and valgrind do not mix). Takes about
# a minute. Environment: PKI_VALGRIND_LOG=FILE keeps valgrind's log,
# PKI_VALGRIND_SUPP=FILE adds a suppressions file, PKI_TEST_KEEP=1 keeps the
# temporary directory. Needs valgrind, openssl, nginx (Debian packages).
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-${PKI_EXPORTER:-$SRC/build/pki_exporter}}
if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
	exit 2
fi
if nm -D "$BIN" 2>/dev/null | grep -q __asan_init; then
	echo "valgrind.sh: $BIN is built with AddressSanitizer; use a plain build" >&2
	exit 2
fi
PKI_EXPORTER=$BIN exec python3 "$SRC/tests/valgrind_workload.py"
