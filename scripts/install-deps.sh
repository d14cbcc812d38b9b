#!/bin/sh
# Install everything pki_exporter needs to build, run and test on Debian 12.
# Used by README's first command, by .ci/run and by the Dockerfile.
#   scripts/install-deps.sh          build + runtime + test dependencies
#   scripts/install-deps.sh --runtime  only what the binary needs at run time
set -eu
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

RUNTIME="libmicrohttpd12 libssl3 libcurl4 libc-ares2 libyaml-0-2 ca-certificates curl \
libjansson4 libcjson1 libpcre2-8-0"
BUILD="build-essential cmake pkg-config git libmicrohttpd-dev libssl-dev \
libcurl4-openssl-dev libc-ares-dev libyaml-dev libcmocka-dev libpcre2-dev \
libgnutls28-dev libcrypt-dev clang libclang-rt-14-dev libjansson-dev \
libcjson-dev"
# Real servers for the integration tests and the demo (exim4 and slapd for
# STARTTLS; each runs from a temp config, never as a system service), the
# peers for the benchmarks (mtail for bench/events_ingest.py), and
# promtool/prometheus for the end-to-end checks; tinyproxy is the HTTP proxy
# CRL/OCSP fetches go through in test_revocation.py, slapd (+ ldap-utils)
# serves its LDAP CDPs.
TEST="openssl python3 curl nginx-light dnsmasq-base prometheus \
prometheus-blackbox-exporter valgrind procps exim4-daemon-light slapd \
chromium mtail \
tinyproxy-bin ldap-utils"

if [ "${1:-}" = "--runtime" ]; then
	PKGS="$RUNTIME"
else
	PKGS="$RUNTIME $BUILD $TEST"
fi

# policy-rc.d: packages like nginx and prometheus must not start system
# services on install (in containers and CI there is no init to own them).
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $PKGS
