#!/bin/sh
# Configure and build. BUILD_DIR (default build) and extra cmake args:
#   scripts/build.sh                      release build in build/
#   BUILD_DIR=build-asan scripts/build.sh -DPKI_SANITIZE=ON
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPKI_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
