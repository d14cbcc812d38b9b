#!/bin/sh
# Start the bundled demo: generate a small PKI (root -> intermediate ->
# leaves) with the openssl CLI, serve it from openssl s_server on loopback
# (a good chain, a leaf that expires in 5 days, a self-signed one), and run
# the exporter on pki_exporter.yml in the foreground. No network needed.
# Then: curl -s localhost:9879/metrics
set -eu
cd "$(dirname "$0")/.."
DEMO=${DEMO_DIR:-build/demo}
mkdir -p "$DEMO"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

ossl() { openssl "$@" 2>/dev/null; }

if [ ! -s "$DEMO/root.pem" ]; then
	cat >"$DEMO/ext.cnf" <<'EXT'
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[leaf]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EXT
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$DEMO/root.key" -out "$DEMO/root.pem" -days 3650 \
		-subj "/CN=Demo Root CA" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign"
	ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$DEMO/int.key" -out "$DEMO/int.csr" -subj "/CN=Demo Issuing CA1"
	ossl x509 -req -in "$DEMO/int.csr" -CA "$DEMO/root.pem" -CAkey "$DEMO/root.key" \
		-CAcreateserial -days 1825 -extfile "$DEMO/ext.cnf" -extensions ca \
		-out "$DEMO/int.pem"
	for leaf in good:397 soon:5; do
		name=${leaf%%:*}; days=${leaf#*:}
		ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$DEMO/$name.key" -out "$DEMO/$name.csr" \
			-subj "/CN=localhost/O=Demo $name"
		ossl x509 -req -in "$DEMO/$name.csr" -CA "$DEMO/int.pem" -CAkey "$DEMO/int.key" \
			-CAcreateserial -days "$days" -extfile "$DEMO/ext.cnf" -extensions leaf \
			-out "$DEMO/$name.crt"
	done
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$DEMO/self.key" -out "$DEMO/self.pem" -days 90 \
		-subj "/CN=selfsigned.localhost"
fi

serve() { # port cert key [chain]
	openssl s_server -accept "127.0.0.1:$1" -cert "$2" -key "$3" \
		${4:+-cert_chain "$4"} -www -quiet </dev/null >/dev/null 2>&1 &
	PIDS="$PIDS $!"
}
serve 9443 "$DEMO/good.crt" "$DEMO/good.key" "$DEMO/int.pem"
serve 9444 "$DEMO/soon.crt" "$DEMO/soon.key" "$DEMO/int.pem"
serve 9445 "$DEMO/self.pem" "$DEMO/self.key"

echo "demo endpoints on 127.0.0.1:9443-9445; exporter on http://localhost:9879/metrics"
./build/pki_exporter --config.file=pki_exporter.yml "$@" &
EXPORTER=$!
PIDS="$PIDS $EXPORTER"
wait "$EXPORTER"
