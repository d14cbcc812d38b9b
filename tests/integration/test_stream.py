#!/usr/bin/env python3
"""Streamed scrape bodies (exporter/http.c serve_scrape): /metrics and
/probe are rendered while they are sent, so they have no Content-Length.
HTTP/1.1 gets chunked encoding (and keeps the connection), HTTP/1.0 a body
that ends with the connection, HEAD the headers alone; a client that goes
away mid-body costs nothing.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_stream.py

The targets are files that do not exist, with 1 KiB paths: each fails at
once and costs ~15 KiB of text, so 400 of them make a ~6 MB body, more
than loopback socket buffers take in (~2 MB), and the exporter is still
writing when a client leaves.
"""

import http.client
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

N_TARGETS = 400


def series_keys(text):
    """Every series (name and labels) of an exposition, without values."""
    return set(h.parse_metrics(text).keys())


class Stream(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        h.exporter_binary()
        d = h.TempDir("pki-stream-")
        cls.addClassCleanup(d.cleanup)
        base = "/nonexistent/" + ("d" * 200 + "/") * 4
        cls.targets = [base + "%05d.pem" % i for i in range(N_TARGETS)]
        cfg = h.exporter_config(modules={"files": {"prober": "file"}},
                                targets=[("files", cls.targets)])
        cls.exp = h.Exporter(d.path, cfg)
        cls.addClassCleanup(cls.exp.stop)
        cls.exp.start()

    def raw(self, request, rcvbuf=None, limit=None):
        """(status, headers text, raw body) of one request written as is;
        reads until the server closes, or `limit` bytes."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(30)
        try:
            s.connect(("127.0.0.1", self.exp.port))
            s.sendall(request)
            data = b""
            while limit is None or len(data) < limit:
                c = s.recv(65536)
                if not c:
                    break
                data += c
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), head.decode("latin-1"), body

    def assertEveryTarget(self, text):
        m = h.Metrics(text)
        got = {l["target"] for l, _ in m.find("pki_probe_success")}
        self.assertEqual(got, set(self.targets))

    def test_http11_is_chunked(self):
        st, head, body = self.raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
        self.assertEqual(st, 200)
        self.assertRegex(head, r"(?im)^transfer-encoding: chunked\r?$")
        self.assertNotRegex(head, r"(?im)^content-length:")
        self.assertRegex(head, r"(?im)^content-type: text/plain; version=0\.0\.4")
        text = h.dechunk(body).decode()
        self.assertGreater(len(text), 4 * 1024 * 1024)
        self.assertTrue(text.endswith("\n"))
        self.assertEveryTarget(text)
        rc, out = h.promtool_check_metrics(text)
        self.assertEqual(rc, 0, out)

    def test_http10_ends_with_the_connection(self):
        st, head, body = self.raw(b"GET /metrics HTTP/1.0\r\n\r\n")
        self.assertEqual(st, 200)
        self.assertNotRegex(head, r"(?im)^transfer-encoding:")
        self.assertNotRegex(head, r"(?im)^content-length:")
        text = body.decode()
        self.assertEveryTarget(text)
        _, r = self.exp.scrape()
        self.assertEqual(series_keys(text), series_keys(r.text))

    def test_two_scrapes_on_one_connection(self):
        """The chunked body ends where it should: the next response on the
        same connection reads cleanly."""
        c = http.client.HTTPConnection("127.0.0.1", self.exp.port, timeout=30)
        try:
            for _ in range(2):
                c.request("GET", "/metrics")
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEveryTarget(r.read().decode())
        finally:
            c.close()

    def test_head_has_no_body(self):
        """HEAD: the headers alone, with the length a GET's body has
        (rendered and counted), and nothing after them."""
        st, head, body = self.raw(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
        self.assertEqual(st, 200)
        self.assertRegex(head, r"(?im)^content-type: text/plain; version=0\.0\.4")
        self.assertNotRegex(head, r"(?im)^transfer-encoding:")
        n = int(re.search(r"(?im)^content-length: (\d+)\r?$", head).group(1))
        _, r = self.exp.scrape()
        # values (durations, RSS) change the length a little between scrapes
        self.assertAlmostEqual(n, len(r.body), delta=len(r.body) // 100)
        self.assertEqual(body, b"")

    def test_head_then_get_on_one_connection(self):
        c = http.client.HTTPConnection("127.0.0.1", self.exp.port, timeout=30)
        try:
            for method in ("HEAD", "GET", "HEAD", "GET"):
                c.request(method, "/metrics")
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                body = r.read()
                if method == "GET":
                    self.assertEveryTarget(body.decode())
                else:
                    self.assertEqual(body, b"")
        finally:
            c.close()

    def test_probe_is_streamed_too(self):
        q = "/probe?module=files&target=" + self.targets[7]
        st, head, body = self.raw(b"GET " + q.encode() + b" HTTP/1.1\r\n"
                                  b"Host: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(st, 200)
        self.assertRegex(head, r"(?im)^transfer-encoding: chunked\r?$")
        m = h.Metrics(h.dechunk(body).decode())
        self.assertEqual([l["target"] for l, _ in m.find("pki_probe_success")],
                         [self.targets[7]])

    def test_clients_leaving_mid_body(self):
        """Clients that read the first bytes and go: the exporter frees
        each body (ASan/valgrind builds check that), closes the sockets and
        answers the next scrape in full."""
        pid = self.exp.proc.pid
        before = h.open_fds(pid)
        for _ in range(8):
            st, _, body = self.raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                                   rcvbuf=4096, limit=1024)
            self.assertEqual(st, 200)
            time.sleep(0.2)     # the exporter fills the socket and waits
        h.wait_until(lambda: h.open_fds(pid) <= before, 10,
                     what="the left connections closed")
        self.assertEqual(self.exp.get("/-/healthy").status, 200)
        _, r = self.exp.scrape()
        self.assertEveryTarget(r.text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
