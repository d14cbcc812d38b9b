#!/bin/sh
# Wrapper for bench/tls_scrape.py. Usage: bench/run.sh [--targets 1000] [--repeat 3] [other options, see --help]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
exec "$PY" "$here/tls_scrape.py" "$@"
