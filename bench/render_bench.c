/* Rendering cost of a large /metrics body: fills an expo_set (the one
 * exporter/expo.c renders every scrape) with the series a tls scrape of
 * N targets produces (26 per target, the families, label sets and value
 * kinds of probes/tls/tls_report.c and probes/x509/x509_metrics.c, labels
 * of realistic length) and times expo_render() over it, like
 * exporter/http.c does at the end of a scrape.
 *
 * Prints one JSON object: series, body_bytes, fill_s (expo_add of all the
 * series: probe work, not rendering), render_s and render_cpu_s (median
 * of the repeats), render_ns_per_series.
 *
 * Build (bench/tls_scrape.py --render-bench does it):
 *   cc -O2 -I. -o render_bench bench/render_bench.c build/libpkicore.a \
 *      $(pkg-config --libs openssl libcurl libcares libmicrohttpd \
 *        yaml-0.1 gnutls libcrypt jansson libpcre2-8) -lpthread -lm
 * Run: render_bench [SERIES] [REPEATS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exporter/buf.h"
#include "exporter/expo.h"

#define PER_TARGET 26

static const struct metric_desc
	HANDSHAKE = {"pki_tls_handshake_success",
		     "Whether the TLS handshake with this address completed "
		     "(1) or not (0).",
		     METRIC_GAUGE},
	VERSION = {"pki_tls_version_info",
		   "Negotiated TLS version and cipher suite, value 1.",
		   METRIC_GAUGE},
	VERIFIED = {"pki_tls_chain_verified",
		    "Whether the chain the server sent verifies against the "
		    "module's trust anchors (1) or not (0).",
		    METRIC_GAUGE},
	VERIFIED_INFO = {"pki_tls_chain_verified_info",
			 "OpenSSL's verification result for the chain, value 1.",
			 METRIC_GAUGE},
	COMPLETE = {"pki_tls_chain_complete",
		    "Whether the certificates the server sent reach a trust "
		    "anchor without fetching anything.",
		    METRIC_GAUGE},
	HOSTNAME = {"pki_tls_hostname_match",
		    "Whether the leaf certificate matches the name probed.",
		    METRIC_GAUGE},
	EKU = {"pki_tls_server_auth_eku",
	       "Whether the leaf certificate may be used for TLS servers.",
	       METRIC_GAUGE},
	CERT_REQ = {"pki_tls_client_cert_requested",
		    "Whether the server asked for a client certificate.",
		    METRIC_GAUGE},
	CA_NAMES = {"pki_tls_client_ca_names",
		    "CA names the server listed in its client-certificate "
		    "request.",
		    METRIC_GAUGE},
	CA_BYTES = {"pki_tls_client_ca_names_bytes",
		    "Sum of the DER sizes of those CA names.", METRIC_GAUGE},
	VCHAIN = {"pki_tls_verified_chain_not_after_timestamp_seconds",
		  "notAfter of each certificate of the verified chain.",
		  METRIC_GAUGE},
	CERT_INFO = {"pki_cert_info",
		     "Facts about a certificate (sent by a server, or found in a "
		     "store or file), value 1.",
		     METRIC_GAUGE},
	NOT_BEFORE = {"pki_cert_not_before_timestamp_seconds",
		      "Start of the certificate's validity.", METRIC_GAUGE},
	NOT_AFTER = {"pki_cert_not_after_timestamp_seconds",
		     "End of the certificate's validity.", METRIC_GAUGE},
	WEAK_SIG = {"pki_cert_weak_signature",
		    "Whether the certificate is signed with a weak hash.",
		    METRIC_GAUGE},
	WEAK_KEY = {"pki_cert_weak_key",
		    "Whether the certificate's key is too small.", METRIC_GAUGE},
	SUCCESS = {"pki_probe_success",
		   "Whether the probe of this target succeeded.", METRIC_GAUGE},
	DURATION = {"pki_probe_duration_seconds",
		    "How long the probe of this target took.", METRIC_GAUGE};

static double now(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The 26 series of one target. */
static void add_target(struct expo_set *s, unsigned i)
{
	const char *m = "tls_connect";
	char t[32], cn[64], serial[40], sha1[41], sha256[65], sans[96], pos[4];
	uint32_t o = i;

	snprintf(t, sizeof(t), "10.%u.%u.%u:443", (i >> 16) & 255,
		 (i >> 8) & 255, i & 255);
	expo_add(s, &HANDSHAKE, o, 1, "module", m, "target", t, "address", t,
		 NULL);
	expo_add(s, &VERSION, o, 1, "module", m, "target", t, "address", t,
		 "version", "TLSv1.3", "cipher", "TLS_AES_256_GCM_SHA384", NULL);
	expo_add(s, &VERIFIED, o, 1, "module", m, "target", t, "address", t,
		 NULL);
	expo_add(s, &VERIFIED_INFO, o, 1, "module", m, "target", t, "address",
		 t, "code", "0", "reason", "ok", NULL);
	expo_add(s, &COMPLETE, o, 1, "module", m, "target", t, "address", t,
		 NULL);
	expo_add(s, &HOSTNAME, o, 1, "module", m, "target", t, "address", t,
		 NULL);
	expo_add(s, &EKU, o, 1, "module", m, "target", t, "address", t, NULL);
	expo_add(s, &CERT_REQ, o, 0, "module", m, "target", t, "address", t,
		 NULL);
	expo_add(s, &CA_NAMES, o, 0, "module", m, "target", t, "address", t,
		 NULL);
	expo_add(s, &CA_BYTES, o, 0, "module", m, "target", t, "address", t,
		 NULL);
	for (int p = 0; p < 3; p++) {
		snprintf(pos, sizeof(pos), "%d", p);
		expo_add(s, &VCHAIN, o, 1795310382.0 + 86400.0 * 397 * p,
			 "module", m, "target", t, "address", t, "position",
			 pos, NULL);
	}
	for (int p = 0; p < 2; p++) {
		snprintf(pos, sizeof(pos), "%d", p);
		snprintf(cn, sizeof(cn), p ? "bench intermediate CA"
					   : "leaf%05u.bench.test", i);
		snprintf(serial, sizeof(serial), "%X", 0x100000 + i * 2 + p);
		snprintf(sha1, sizeof(sha1), "%08x%032x", i * 2654435761u, p);
		snprintf(sha256, sizeof(sha256), "%08x%056x", i * 40503u, p);
		snprintf(sans, sizeof(sans), "IP:%s,DNS:leaf%05u.bench.test",
			 t, i);
		expo_add(s, &CERT_INFO, o, 1, "module", m, "target", t,
			 "address", t, "position", pos, "subject_cn", cn,
			 "issuer_cn", p ? "bench root CA" : "bench intermediate CA",
			 "serial", serial, "sig_alg", "ecdsa-with-SHA256",
			 "key_type", "EC", "key_bits", "256", "sha1", sha1,
			 "sha256", sha256, "sans", p ? "" : sans, NULL);
		expo_add(s, &NOT_BEFORE, o, 1763774382.0 + p, "module", m,
			 "target", t, "address", t, "position", pos, NULL);
		expo_add(s, &NOT_AFTER, o, 1798074382.0 + p, "module", m,
			 "target", t, "address", t, "position", pos, NULL);
		expo_add(s, &WEAK_SIG, o, 0, "module", m, "target", t,
			 "address", t, "position", pos, NULL);
		expo_add(s, &WEAK_KEY, o, 0, "module", m, "target", t,
			 "address", t, "position", pos, NULL);
	}
	expo_add(s, &SUCCESS, o, 1, "module", m, "target", t, NULL);
	expo_add(s, &DURATION, o, 0.001234567 * (i % 97 + 1), "module", m,
		 "target", t, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	size_t series = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	unsigned targets = (unsigned)((series + PER_TARGET - 1) / PER_TARGET);
	double wall[64], cpu[64], fill = 0;
	size_t bytes = 0;

	if (reps < 1 || reps > 64)
		return 2;
	for (int r = 0; r < reps; r++) {
		struct expo_set set;
		struct buf out;
		double t0, c0;

		expo_set_init(&set, (size_t)1 << 30);
		t0 = now(CLOCK_MONOTONIC);
		for (unsigned i = 0; i < targets; i++)
			add_target(&set, i);
		fill += now(CLOCK_MONOTONIC) - t0;
		buf_init(&out, (size_t)1 << 30);
		t0 = now(CLOCK_MONOTONIC);
		c0 = now(CLOCK_PROCESS_CPUTIME_ID);
		if (expo_render(&set, &out))
			return 1;
		wall[r] = now(CLOCK_MONOTONIC) - t0;
		cpu[r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
		bytes = out.len;
		buf_cleanup(&out);
		expo_set_cleanup(&set);
	}
	qsort(wall, (size_t)reps, sizeof(double), cmp_double);
	qsort(cpu, (size_t)reps, sizeof(double), cmp_double);
	printf("{\"series\": %u, \"body_bytes\": %zu, \"fill_s\": %.6f, "
	       "\"render_s\": %.6f, \"render_cpu_s\": %.6f, "
	       "\"render_ns_per_series\": %.1f, \"repeats\": %d}\n",
	       targets * PER_TARGET, bytes, fill / reps, wall[reps / 2],
	       cpu[reps / 2], 1e9 * wall[reps / 2] / (targets * PER_TARGET),
	       reps);
	return 0;
}
