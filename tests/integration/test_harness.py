#!/usr/bin/env python3
"""Self-check of the integration harness fixtures (no exporter needed).

Run: python3 tests/integration/test_harness.py
"""

import http.server
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

FIX = None


def setUpModule():
    global FIX
    FIX = h.CoreFixture().start()


def tearDownModule():
    if FIX:
        FIX.stop()


def s_client_chain(port, servername=None, cafile=None):
    """(list of PEM certs the server sent, s_client output)."""
    argv = [h.OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-showcerts"]
    if servername:
        argv += ["-servername", servername]
    else:
        argv += ["-noservername"]
    if cafile:
        argv += ["-CAfile", cafile]
    cp = subprocess.run(argv, input="", capture_output=True, text=True, timeout=20)
    out = cp.stdout
    pems = []
    start = "-----BEGIN CERTIFICATE-----"
    end = "-----END CERTIFICATE-----"
    i = 0
    while True:
        a = out.find(start, i)
        if a < 0:
            break
        b = out.find(end, a) + len(end)
        pems.append(out[a:b] + "\n")
        i = b
    return pems, out


def norm_pem(p):
    return "".join(p.split())


class TestPKI(unittest.TestCase):
    def test_dates_and_serial_are_exact(self):
        v = FIX.valid
        self.assertTrue(v.serial.startswith("0A"), v.serial)
        d = ssl._ssl._test_decode_cert(v.cert)
        self.assertEqual(d["serialNumber"], v.serial)
        self.assertEqual(ssl.cert_time_to_seconds(d["notAfter"]), v.not_after)
        self.assertEqual(ssl.cert_time_to_seconds(d["notBefore"]), v.not_before)
        self.assertLess(v.not_before, time.time())
        self.assertGreater(v.not_after, time.time() + 399 * 86400)
        self.assertLess(FIX.expired.not_after, time.time() - 29 * 86400)

    def test_chain_verifies_with_openssl(self):
        cp = h.run([h.OPENSSL, "verify", "-CAfile", FIX.root.cert, "-untrusted",
                    FIX.inter.cert, FIX.valid.cert], check=False)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        cp = h.run([h.OPENSSL, "verify", "-CAfile", FIX.root.cert, "-untrusted",
                    FIX.inter.cert, FIX.expired.cert], check=False)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("certificate has expired", cp.stdout + cp.stderr)
        cp = h.run([h.OPENSSL, "verify", "-CAfile", FIX.root.cert, FIX.untrusted.cert],
                   check=False)
        self.assertNotEqual(cp.returncode, 0)

    def test_facts(self):
        self.assertEqual(FIX.valid.key_type, "EC")
        self.assertEqual(FIX.valid.key_bits, 256)
        self.assertEqual(FIX.valid.sig_alg, "ecdsa-with-SHA256")
        self.assertEqual(FIX.valid.sans, "DNS:valid.test,DNS:www.valid.test,IP:127.0.0.1")
        self.assertEqual(FIX.inter.sig_alg, "sha256WithRSAEncryption")
        self.assertEqual(FIX.untrusted.key_type, "RSA")
        self.assertEqual(FIX.untrusted.key_bits, 3072)
        self.assertEqual(len(FIX.valid.sha256), 64)
        self.assertEqual(len(FIX.valid.sha1), 40)
        self.assertEqual(FIX.valid.issuer_cn, "PKI Test Intermediate CA")

    def test_special_subjects_round_trip(self):
        for ci, cn in ((FIX.escape, h.ESCAPE_CN), (FIX.newline, h.NEWLINE_CN)):
            d = ssl._ssl._test_decode_cert(ci.cert)
            self.assertEqual(dict(x[0] for x in d["subject"])["commonName"], cn)


class TestNginx(unittest.TestCase):
    def handshake(self, port, server_name=None, cafile=None):
        ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
        if cafile:
            ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=server_name) as t:
                return t.version(), t.cipher()[0], t.getpeercert(binary_form=True)

    def test_valid_chain_sent_and_verifies(self):
        ver, cipher, _ = self.handshake(FIX.p_valid, cafile=FIX.root.cert)
        self.assertEqual(ver, "TLSv1.3")
        self.assertEqual(cipher, "TLS_AES_128_GCM_SHA256")
        pems, _ = s_client_chain(FIX.p_valid)
        self.assertEqual([norm_pem(p) for p in pems],
                         [norm_pem(FIX.valid.pem()), norm_pem(FIX.inter.pem())])

    def test_expired_is_tls12(self):
        ver, cipher, _ = self.handshake(FIX.p_expired)
        self.assertEqual(ver, "TLSv1.2")
        self.assertEqual(cipher, "ECDHE-RSA-AES256-GCM-SHA384")

    def test_untrusted_single_cert(self):
        pems, _ = s_client_chain(FIX.p_untrusted)
        self.assertEqual([norm_pem(p) for p in pems], [norm_pem(FIX.untrusted.pem())])

    def test_sni(self):
        pems, _ = s_client_chain(FIX.p_sni, servername=FIX.GOOD_NAME)
        self.assertEqual(norm_pem(pems[0]), norm_pem(FIX.good.pem()))
        pems, _ = s_client_chain(FIX.p_sni)
        self.assertEqual(norm_pem(pems[0]), norm_pem(FIX.sni_default.pem()))


class TestSilentAndDNS(unittest.TestCase):
    def test_silent_never_speaks(self):
        with socket.create_connection(("127.0.0.1", FIX.silent.port), timeout=2) as s:
            s.settimeout(0.5)
            s.sendall(b"\x16\x03\x01\x00\x05hello")
            with self.assertRaises(socket.timeout):
                s.recv(10)

    def test_dnsmasq(self):
        self.assertEqual(h.dns_query(FIX.GOOD_NAME, FIX.dns.port), (0, ["127.0.0.1"]))
        self.assertEqual(h.dns_query(FIX.NX_NAME, FIX.dns.port)[0], 3)   # NXDOMAIN
        self.assertEqual(h.dns_query("example.com", FIX.dns.port)[0], 3)
        rc, ans = h.dns_query(FIX.GOOD_NAME, FIX.dns.port, qtype=28)     # AAAA
        self.assertEqual(ans, [])


class TestParser(unittest.TestCase):
    def test_escapes(self):
        txt = ('# HELP m help \\\\ text\n# TYPE m gauge\n'
               'm{a="x\\"y",b="back\\\\slash",c="nl\\nx",d=""} 1.5\n'
               'm 2\nm_inf{a="1"} +Inf 1700000000000\n')
        s = h.parse_metrics(txt)
        self.assertEqual(s[("m", frozenset({"a": 'x"y', "b": "back\\slash", "c": "nl\nx",
                                            "d": ""}.items()))], 1.5)
        self.assertEqual(s[("m", frozenset())], 2.0)
        self.assertEqual(s[("m_inf", frozenset({"a": "1"}.items()))], float("inf"))

    def test_rejects_malformed(self):
        for bad in ('m{a="x} 1\n', 'm{a="\\q"} 1\n', 'm{a=x} 1\n', "m\n", 'm 1\nm 2\n',
                    'm{a="1"}1\n', 'm{a="1",a="2"} 1\n'):
            with self.assertRaises(h.ParseError, msg=bad):
                h.parse_metrics(bad)

    def test_promtool(self):
        rc, out = h.promtool_check_metrics('# HELP x_total a\n# TYPE x_total counter\nx_total 1\n')
        self.assertEqual((rc, out), (0, ""))
        rc, out = h.promtool_check_metrics('x{a="\n')
        self.assertNotEqual(rc, 0)


class TestPrometheus(unittest.TestCase):
    def test_scrapes_and_queries(self):
        body = ('# HELP t_value a value\n# TYPE t_value gauge\n'
                't_value{who="a \\"q\\" \\\\ b"} 1893456007\n').encode()
        seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        tmp = h.TempDir()
        prom = h.PrometheusRunner(tmp.path, ["127.0.0.1:%d" % srv.server_port])
        try:
            prom.start()
            labels, v = prom.query_one('t_value{who="a \\"q\\" \\\\ b"}')
            self.assertEqual(v, 1893456007.0)
            self.assertEqual(labels["who"], 'a "q" \\ b')
            self.assertEqual(seen[0], "1")
        finally:
            prom.stop()
            srv.shutdown()
            srv.server_close()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
