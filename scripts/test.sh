#!/bin/sh
# Run every test: unit tests (cmocka) and integration tests (the real binary
# against nginx, dnsmasq and Prometheus on loopback), first on the release
# build, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
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
