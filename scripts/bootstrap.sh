#!/bin/sh
# README's first command: install dependencies, build, run the demo.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec scripts/demo.sh "$@"
