#!/bin/sh
# Build the libFuzzer targets (clang, ASan+UBSan) and run each for a
# bounded time. Exit status: 0 when no target crashed, leaked, timed out
# or ran out of memory; 1 otherwise (the input is kept, see below); 2 when
# the build failed.
#
#   tests/fuzz/run.sh [SECONDS]      # per target, default 20
#
# Environment:
#   PKI_FUZZ_BUILD    build directory (default: <source>/build-fuzz)
#   PKI_CORPUS        the shared corpus (default: <source>/../shared/corpus)
#   PKI_FUZZ_TARGETS  space-separated subset (default: every built target)
#   PKI_FUZZ_KEEP=1   keep the scratch directory (grown corpora)
#
# Seeds: tests/fuzz/seeds/<target>/ (checked in; a crash input found here
# is fixed and then added there as a regression seed) plus, at run time,
# certificates and CRLs from the shared corpus. Crash inputs go to
# <build>/fuzz-artifacts/<target>-crash-<sha1>.
set -eu

SECS=${1:-20}
case $SECS in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${PKI_FUZZ_BUILD:-$SRC/build-fuzz}
CORPUS=${PKI_CORPUS:-$SRC/../shared/corpus}
SEEDS=$SRC/tests/fuzz/seeds
ART=$BUILD/fuzz-artifacts
JOBS=$(nproc 2>/dev/null || echo 2)

if ! command -v clang >/dev/null 2>&1; then
	echo "run.sh: clang is required (apt-get install clang)" >&2
	exit 2
fi
echo "== build ($BUILD)"
mkdir -p "$BUILD"
if ! CC=clang cmake -S "$SRC" -B "$BUILD" -DPKI_FUZZ=ON -DPKI_TESTS=OFF \
	-DPKI_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/cmake.log" 2>&1; then
	cat "$BUILD/cmake.log" >&2
	exit 2
fi
if ! cmake --build "$BUILD" -j "$JOBS" >"$BUILD/build.log" 2>&1; then
	tail -50 "$BUILD/build.log" >&2
	exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pki-fuzz.XXXXXX")
cleanup() {
	if [ "${PKI_FUZZ_KEEP:-0}" = 1 ]; then
		echo "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$ART" "$WORK/scratch"

# Run-time seeds from the shared corpus (read-only there): every
# certificate as it is and as DER; CRLs under 64 KiB (the big ones only
# slow each iteration down).
mkdir -p "$WORK/seed-x509" "$WORK/seed-crl"
if [ -d "$CORPUS/certs" ]; then
	k=0
	find "$CORPUS/certs" -type f | while IFS= read -r f; do
		k=$((k + 1))
		cp "$f" "$WORK/seed-x509/raw$k"
		openssl x509 -in "$f" -outform DER -out "$WORK/seed-x509/der$k" \
			2>/dev/null || rm -f "$WORK/seed-x509/der$k"
	done
fi
if [ -d "$CORPUS/crl" ]; then
	k=0
	find "$CORPUS/crl" -type f -size -64k | while IFS= read -r f; do
		k=$((k + 1))
		cp "$f" "$WORK/seed-crl/c$k"
	done
fi

targets=${PKI_FUZZ_TARGETS:-}
if [ -z "$targets" ]; then
	for t in config csv expo x509 crl events; do
		[ -x "$BUILD/tests/fuzz/fuzz_$t" ] && targets="$targets $t"
	done
fi

failed=""
for t in $targets; do
	bin=$BUILD/tests/fuzz/fuzz_$t
	if [ ! -x "$bin" ]; then
		echo "== $t: not built" >&2
		failed="$failed $t"
		continue
	fi
	mkdir -p "$WORK/corpus-$t"
	extra=""
	[ -d "$SEEDS/$t" ] && extra="$SEEDS/$t"
	case $t in
	x509) extra="$extra $WORK/seed-x509" ;;
	crl) extra="$extra $WORK/seed-crl" ;;
	esac
	echo "== $t: ${SECS}s"
	# the first directory receives new inputs; the seeds stay untouched.
	# -timeout: one input taking 10 s is a bug (a hang), not slowness.
	# stdin from /dev/null: nothing may block on a terminal.
	rc=0
	(cd "$WORK/scratch" &&
		ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			"$bin" -max_total_time="$SECS" -timeout=10 \
			-rss_limit_mb=2048 -max_len=65536 \
			-artifact_prefix="$ART/$t-" -print_final_stats=1 \
			"$WORK/corpus-$t" $extra </dev/null \
			>"$WORK/$t.log" 2>&1) || rc=$?
	grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ +DONE)' \
		"$WORK/$t.log" | tr '\n' ' ' || true
	echo
	if [ "$rc" -ne 0 ]; then
		echo "== $t: FAILED (exit $rc); log tail:" >&2
		tail -60 "$WORK/$t.log" >&2
		ls -1 "$ART"/"$t"-* 2>/dev/null >&2 || true
		failed="$failed $t"
	fi
done

if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed (inputs in $ART)" >&2
	exit 1
fi
echo "fuzz: ok ($targets, ${SECS}s each)"
