#!/usr/bin/env python3
"""Safe /probe (issue #8, item 2): the exporter probes only what it is
configured to probe, and refuses odd parameters with 400 and a reason.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_safe_probe.py

Requests are written byte for byte on a socket (urllib would re-encode
them). The configured targets are closed loopback ports: a probe of one
answers 200 (with its failure) at once.
"""

import os
import re
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

MAX_PARAM = 1024     # bytes, exporter/http.c HTTP_MAX_PARAM


class SafeProbe(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        h.exporter_binary()
        d = h.TempDir("pki-safeprobe-")
        cls.addClassCleanup(d.cleanup)
        cls.A = "127.0.0.1:%d" % h.free_port()      # nobody listens: fast failures
        cls.B = "127.0.0.1:%d" % h.free_port()
        # exactly 1024 bytes: a path (a host name stops at 253)
        base = "/nonexistent/" + ("d" * 200 + "/") * 4
        cls.long_target = base + "f" * (MAX_PARAM - len(base) - 4) + ".pem"
        cls.glob = os.path.join(d.path, "certs", "*.pem")
        os.makedirs(os.path.dirname(cls.glob))
        cfg = h.exporter_config(
            modules={"web": {"prober": "tls", "timeout": "1s"},
                     "other": {"prober": "tls", "timeout": "1s"},
                     "files": {"prober": "file"}},
            targets=[("web", [cls.A]), ("other", [cls.B]),
                     ("files", [cls.glob, cls.long_target])])
        cls.exp = h.Exporter(d.path, cfg)
        cls.addClassCleanup(cls.exp.stop)
        cls.exp.start()

    def raw(self, target_bytes, method=b"GET", extra_headers=b""):
        """(status or None, headers text, body) of one raw HTTP/1.1 request."""
        s = socket.create_connection(("127.0.0.1", self.exp.port), timeout=15)
        try:
            s.sendall(method + b" " + target_bytes + b" HTTP/1.1\r\nHost: x\r\n"
                      + extra_headers + b"Connection: close\r\n\r\n")
            data = b""
            while len(data) < 4 * 1024 * 1024:
                c = s.recv(65536)
                if not c:
                    break
                data += c
        finally:
            s.close()
        if not data:
            return None, "", b""
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if re.search(rb"(?im)^transfer-encoding:\s*chunked\s*$", head):
            body = h.dechunk(body)     # scrape bodies are streamed
        return status, head.decode("latin-1"), body

    def probe(self, query):
        return self.raw(b"/probe?" + query)

    def assertRefused(self, query, status, reason_part):
        st, head, body = self.probe(query)
        self.assertEqual(st, status, "%r -> %s %r" % (query[:120], st, body[:200]))
        self.assertIn(reason_part, body.decode("utf-8", "replace"), query[:120])
        self.assertRegex(head, r"(?i)content-type: text/plain")
        # refused requests never reach a probe: nothing resembling metrics
        self.assertNotIn(b"pki_probe_success", body)

    def assertProbed(self, query, target):
        st, _, body = self.probe(query)
        self.assertEqual(st, 200, "%r -> %s %r" % (query, st, body[:200]))
        m = h.Metrics(body.decode())
        self.assertEqual({l["target"] for l, _ in m.find("pki_probe_success")}, {target})

    # -- only configured targets --------------------------------------------

    def test_configured_target_is_probed(self):
        self.assertProbed(b"module=web&target=" + self.A.encode(), self.A)
        self.assertProbed(b"module=other&target=" + self.B.encode(), self.B)

    def test_percent_encoded_configured_target_is_the_same_target(self):
        self.assertProbed(b"module=web&target=" + self.A.replace(":", "%3A").encode(), self.A)

    def test_unconfigured_target_is_403(self):
        for t in (b"127.0.0.1:22", b"10.0.0.1:443", b"localhost:443", b"example.com:443",
                  b"169.254.169.254:80", b"[::1]:443"):
            with self.subTest(target=t):
                self.assertRefused(b"module=web&target=" + t, 403, "not configured")

    def test_target_of_another_module_is_403(self):
        self.assertRefused(b"module=web&target=" + self.B.encode(), 403, "not configured")
        self.assertRefused(b"module=other&target=" + self.A.encode(), 403, "not configured")

    def test_near_miss_spellings_are_403(self):
        host, port = self.A.split(":")
        for t in (self.A + " ", " " + self.A, self.A + "+", self.A + "0", host + ":0" + port,
                  "[%s]:%s" % (host, port), "127.000.000.001:" + port,
                  self.A + "/", self.A + "%20", self.A + "%"):
            with self.subTest(target=t):
                self.assertRefused(b"module=web&target=" + t.encode().replace(b" ", b"%20"),
                                   403, "not configured")

    def test_no_pattern_expansion(self):
        # the file module's glob is configured; a path it would match is not
        inside = os.path.join(os.path.dirname(self.glob), "a.pem")
        self.assertRefused(b"module=files&target=" + inside.encode(), 403, "not configured")
        self.assertRefused(b"module=files&target=/etc/shadow", 403, "not configured")
        st, _, body = self.probe(b"module=files&target=" + self.glob.encode())
        self.assertEqual(st, 200, body[:200])

    # -- odd parameters: 400 with a reason ------------------------------------

    def test_unknown_module_is_400(self):
        for mod in (b"nope", b"WEB", b"web%20", b"web.", b"../web"):
            with self.subTest(module=mod):
                self.assertRefused(b"module=" + mod + b"&target=" + self.A.encode(), 400,
                                   "unknown module")

    def test_missing_params_are_400(self):
        for q in (b"", b"module=web", b"target=" + self.A.encode(), b"module&target",
                  b"=web&=x", b"modul=web&target=x", b"Module=web&Target=" + self.A.encode()):
            with self.subTest(query=q):
                self.assertRefused(q, 400, "required")

    def test_empty_params_are_400(self):
        for q in (b"module=&target=" + self.A.encode(), b"module=web&target="):
            with self.subTest(query=q):
                self.assertRefused(q, 400, "printable bytes")

    def test_over_long_params_are_400(self):
        self.assertRefused(b"module=web&target=" + b"a" * (MAX_PARAM + 1), 400, "1-1024")
        self.assertRefused(b"module=" + b"m" * (MAX_PARAM + 1) + b"&target=x", 400, "1-1024")
        # percent-encoded: the limit is on the decoded bytes
        self.assertRefused(b"module=web&target=" + b"%41" * (MAX_PARAM + 1), 400, "1-1024")

    def test_exactly_the_limit_is_accepted(self):
        self.assertEqual(len(self.long_target), MAX_PARAM)
        self.assertProbed(b"module=files&target=" + self.long_target.encode(), self.long_target)
        self.assertRefused(b"module=files&target=" + self.long_target.encode() + b"x", 400,
                           "1-1024")

    def test_control_bytes_are_400(self):
        for b in list(range(0x00, 0x20)) + [0x7F]:
            enc = b"%%%02X" % b
            with self.subTest(byte=b):
                # in the middle, at the end, and in the module name
                self.assertRefused(b"module=web&target=127.0.0.1" + enc + b":1", 400,
                                   "printable bytes")
                self.assertRefused(b"module=web&target=" + self.A.encode() + enc, 400,
                                   "printable bytes")
                self.assertRefused(b"module=web" + enc + b"&target=" + self.A.encode(), 400,
                                   "printable bytes")

    def test_repeated_params_are_400(self):
        A, B = self.A.encode(), self.B.encode()
        for q in (b"module=web&module=other&target=" + A,
                  b"module=web&target=" + A + b"&target=" + B,
                  b"module=web&target=" + A + b"&target=" + A):
            with self.subTest(query=q):
                self.assertRefused(q, 400, "once")

    def test_invalid_utf8_target_is_403_not_a_crash(self):
        self.assertRefused(b"module=web&target=%FF%FE%C0%AF", 403, "not configured")

    def test_bad_percent_escapes(self):
        for q in (b"module=web&target=%", b"module=web&target=%zz", b"module=web&target=%4"):
            with self.subTest(query=q):
                st, _, _ = self.probe(q)
                self.assertIn(st, (400, 403))

    def test_other_methods_are_405(self):
        for m in (b"POST", b"PUT", b"DELETE"):
            with self.subTest(method=m):
                st, _, _ = self.raw(b"/probe?module=web&target=" + self.A.encode(), method=m,
                                    extra_headers=b"Content-Length: 0\r\n")
                self.assertEqual(st, 405)

    def test_huge_request_line_refused_and_process_survives(self):
        st, _, _ = self.probe(b"module=web&target=" + b"x" * 40000)
        self.assertEqual(st, 414)
        # hundreds of parameters run libmicrohttpd's per-connection pool dry:
        # it closes the connection (its 431 does not fit the pool either)
        st, _, _ = self.probe(b"module=web&target=" + self.A.encode() + b"&"
                              + b"&".join(b"p%d=1" % i for i in range(2000)))
        self.assertIn(st, (None, 400, 414, 431))
        self.assertTrue(self.exp.proc.alive())
        self.assertEqual(self.exp.get("/-/healthy", timeout=5).status, 200)

    def test_metrics_ignores_query_parameters(self):
        st, _, body = self.raw(b"/metrics?module=web&target=169.254.169.254:80")
        self.assertEqual(st, 200)
        self.assertNotIn(b"169.254.169.254", body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
