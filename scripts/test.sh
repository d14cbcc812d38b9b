#!/bin/sh
# Run every test: unit tests (cmocka) and integration tests (the real binary
# against nginx, dnsmasq, exim, slapd, tinyproxy, Prometheus and Chromium on
# loopback) plus a valgrind leak check, first on the release build, then
# again under AddressSanitizer + UndefinedBehaviorSanitizer; then each
# libFuzzer target for a bounded time (FUZZ_SECONDS, default 10; 0 skips).
set -eu
cd "$(dirname "$0")/.."
JOBS=$(nproc)

echo "== release build"
BUILD_DIR=build scripts/build.sh
(cd build && ctest --output-on-failure -j"$JOBS")

echo "== ASan/UBSan build"
BUILD_DIR=build-asan scripts/build.sh -DPKI_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$JOBS")

FUZZ_SECONDS=${FUZZ_SECONDS:-10}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
	echo "== libFuzzer, ${FUZZ_SECONDS}s per target"
	PKI_FUZZ_BUILD="$PWD/build-fuzz" tests/fuzz/run.sh "$FUZZ_SECONDS"
fi
