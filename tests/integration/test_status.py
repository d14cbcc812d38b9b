#!/usr/bin/env python3
"""/status in a real browser: headless Chromium loads the page and the rows
are read from the DOM it built (issue #8 item 9). With PKI_SCREENSHOT=FILE
the test also saves a screenshot (docs/status.png in the README comes from
here).

Run: PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_status.py
"""
import html.parser
import math
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


class RowParser(html.parser.HTMLParser):
    """Rows of <table id="status"> as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell = [], None, None
        self.in_table = False

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == "status":
            self.in_table = True
        elif self.in_table and tag == "tr":
            self.row = {"class": dict(attrs).get("class"), "cells": []}
        elif self.row is not None and tag == "td":
            self.cell = []
        elif self.cell is not None and tag == "li" and self.cell:
            self.cell.append(" | ")

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row["cells"].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if self.row["cells"]:
                self.rows.append(self.row)
            self.row = None
        elif tag == "table":
            self.in_table = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


class TestStatusPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.environ.get("PKI_EXPORTER"):
            raise unittest.SkipTest("PKI_EXPORTER not set")
        if not CHROMIUM:
            raise AssertionError("chromium is not installed (scripts/install-deps.sh installs it)")
        cls.tmp = h.TempDir()
        d = cls.tmp.path
        pki = h.PKI(os.path.join(d, "pki"))
        now = h.utc_now()
        cls.root = pki.root_ca(cn="Status Root")
        inter = pki.intermediate_ca(cls.root, cn="Status Issuing CA")
        cdp = ["crlDistributionPoints = URI:http://pki.status.test/CertEnroll/issuing.crl"]
        cls.good = pki.leaf(inter, "good", "good.test", sans=["DNS:good.test", "IP:127.0.0.1"],
                            not_after=now + 200 * 86400 + 3600, extra_ext=cdp)
        cls.soon = pki.leaf(inter, "soon", "soon.test", sans=["DNS:soon.test", "IP:127.0.0.1"],
                            not_after=now + 3 * 86400 + 3600, extra_ext=cdp)
        cls.later = pki.leaf(inter, "later", "later.test", sans=["DNS:later.test", "IP:127.0.0.1"],
                             not_after=now + 60 * 86400 + 3600, extra_ext=cdp)
        ng = h.NginxRunner(os.path.join(d, "nginx"))
        cls.p_good = ng.add(cls.good, chain=[inter])
        cls.p_soon = ng.add(cls.soon, chain=[inter])
        cls.p_later = ng.add(cls.later, chain=[inter])
        cls.nginx = ng.start()
        cls.p_closed = h.free_port()
        cfg = h.exporter_config(
            {"web": {"prober": "tls", "timeout": "3s", "tls": {"ca_file": cls.root.cert}}},
            [("web", ["127.0.0.1:%d" % p for p in
                      (cls.p_good, cls.p_soon, cls.p_later, cls.p_closed)])])
        cls.exp = h.Exporter(os.path.join(d, "exp"), cfg).start()

    @classmethod
    def tearDownClass(cls):
        for name in ("exp", "nginx"):
            obj = getattr(cls, name, None)
            if obj:
                obj.stop()
        if getattr(cls, "tmp", None):
            cls.tmp.cleanup()

    def chromium(self, *args):
        profile = os.path.join(self.tmp.path, "chromium-profile")
        cp = h.run([CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile] + list(args),
                   check=False, timeout=90)
        return cp

    def test_rows_in_the_browser(self):
        cp = self.chromium("--dump-dom", self.exp.url("/status"))
        self.assertIn('<table id="status">', cp.stdout, cp.stderr[-2000:])
        p = RowParser()
        p.feed(cp.stdout)
        rows = [(r["class"], r["cells"]) for r in p.rows]
        self.assertEqual(len(rows), 4, rows)
        # failures first: the closed port, then the leaf expiring in 3 days
        # (both PROBLEM; the one without a certificate sorts last of them),
        # then the fine ones by soonest expiry
        self.assertEqual([r[0] for r in rows], ["PROBLEM", "PROBLEM", "OK", "OK"])
        by_target = {r[1][1]: r for r in rows}
        t_soon = "127.0.0.1:%d" % self.p_soon
        t_closed = "127.0.0.1:%d" % self.p_closed
        self.assertEqual(rows[0][1][1], t_soon)
        self.assertEqual(rows[1][1][1], t_closed)
        self.assertEqual([r[1][1] for r in rows[2:]],
                         ["127.0.0.1:%d" % self.p_later, "127.0.0.1:%d" % self.p_good])
        now = time.time()
        for cert, port in ((self.soon, self.p_soon), (self.later, self.p_later),
                           (self.good, self.p_good)):
            cells = by_target["127.0.0.1:%d" % port][1]
            self.assertEqual(cells[3], cert.subject_cn)
            self.assertEqual(cells[4], "Status Issuing CA")
            self.assertEqual(cells[5], time.strftime("%Y-%m-%d %H:%M:%SZ",
                                                     time.gmtime(cert.not_after)))
            self.assertEqual(int(cells[6]), math.floor((cert.not_after - now) / 86400))
        self.assertIn("expires in 3 days", by_target[t_soon][1][7])
        self.assertIn("connection_refused", by_target[t_closed][1][7])
        self.assertIn("chain verified", by_target["127.0.0.1:%d" % self.p_good][1][7])

    def test_screenshot(self):
        out = os.environ.get("PKI_SCREENSHOT") or os.path.join(self.tmp.path, "status.png")
        self.chromium("--screenshot=" + out, "--window-size=1400,420",
                      "--hide-scrollbars", self.exp.url("/status"))
        with open(out, "rb") as f:
            head = f.read(8)
        self.assertEqual(head, b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(out), 5000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
