#!/usr/bin/env python3
"""/probe for targets that are not in the configuration but admitted by the
module's `allow_targets` patterns: the blackbox_exporter workflow, where
Prometheus' service discovery (here: a file_sd file) owns the target list.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_probe_allow.py

An exporter with no tls or crl targets at all, two modules with
allow_targets, three nginx endpoints with certificates of known dates, a
CRL on a loopback HTTP server, and a real Prometheus scraping /probe through
the README's relabelling from a file_sd file. Asserted: the exact notAfter
and serial of every endpoint and the CRL number through Prometheus' API;
that anything the patterns do not match (another port range, a prefix or
suffix of an allowed name, another module) is refused with 403 without
being contacted; that an admitted but malformed target is a 400 naming the
reason; and that a reload that changes the patterns takes effect.
"""

import json
import os
import socket
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DAY = 86400


class CountingListener:
    """A TCP listener that only counts connections (a target that must
    never be contacted)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", h.free_port()))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def accepted(self):
        n = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except BlockingIOError:
                return n
            c.close()
            n += 1

    def close(self):
        self.sock.close()


class TestProbeAllowTargets(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        h.exporter_binary()
        cls.tmp = h.TempDir("pki-allow-")
        cls.addClassCleanup(cls.tmp.cleanup)
        pki = h.PKI(cls.tmp.join("pki"))
        now = h.utc_now()
        cls.root = pki.root_ca(key="ec")
        cls.leaves = []
        cls.nginx = h.NginxRunner(cls.tmp.join("nginx"))
        cls.addClassCleanup(cls.nginx.stop)
        ports = []
        for i, days in enumerate((17, 45, 400)):
            leaf = pki.leaf(cls.root, "sd%d" % i, "sd%d.allow.test" % i,
                            sans=["IP:127.0.0.1"],
                            not_after=now + days * DAY + 1000 + i)
            cls.leaves.append(leaf)
            ports.append(cls.nginx.add(leaf))
        cls.nginx.start()
        cls.targets = ["127.0.0.1:%d" % p for p in ports]
        cls.by_target = dict(zip(cls.targets, cls.leaves))

        # a CRL with a number we choose, on a loopback HTTP server
        issuer = h.CRLIssuer(pki, cls.root)
        cls.web = h.HTTPFileServer().start()
        cls.addClassCleanup(cls.web.stop)
        cls.crl_number = 4711
        cls.web.files["/pki/Root.crl"] = issuer.crl(now - DAY, now + 6 * DAY, cls.crl_number)
        cls.crl_url = cls.web.url("/pki/Root.crl")

        # never to be contacted: a port outside the allowed pattern
        cls.bystander = CountingListener()
        cls.addClassCleanup(cls.bystander.close)

        cls.cfg_text = cls.config(r"127\.0\.0\.1:\d+")
        cls.exp = h.Exporter(cls.tmp.join("exporter"), cls.cfg_text)
        cls.addClassCleanup(cls.exp.stop)
        cls.exp.start()

        # Prometheus: file_sd owns the targets, the README's relabelling
        sd = cls.tmp.join("sd.json")
        with open(sd, "w") as f:
            json.dump([{"targets": cls.targets}], f)
        sd_crl = cls.tmp.join("sd-crl.json")
        with open(sd_crl, "w") as f:
            json.dump([{"targets": [cls.crl_url]}], f)
        relabel = [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": "127.0.0.1:%d" % cls.exp.port},
        ]
        jobs = [
            {"job_name": "sd_tls", "metrics_path": "/probe", "params": {"module": ["web"]},
             "file_sd_configs": [{"files": [sd]}], "relabel_configs": relabel},
            {"job_name": "sd_crl", "metrics_path": "/probe", "params": {"module": ["crl"]},
             "file_sd_configs": [{"files": [sd_crl]}], "relabel_configs": relabel},
        ]
        cls.prom = h.PrometheusRunner(cls.tmp.join("prometheus"), [], scrape_interval="2s",
                                      scrape_timeout="2s", scrape_configs=jobs)
        cls.addClassCleanup(cls.prom.stop)
        cls.prom.start()

    @classmethod
    def config(cls, tls_pattern):
        """No tls or crl targets at all: only the patterns admit them."""
        return h.exporter_config(
            global_={"scrape_timeout": "10s"},
            modules={
                "web": {"prober": "tls", "timeout": "3s",
                        "tls": {"ca_file": cls.root.cert},
                        "allow_targets": [tls_pattern]},
                "crl": {"prober": "crl", "timeout": "3s",
                        "allow_targets": [r"http://127\.0\.0\.1:%d/pki/[A-Za-z]+\.crl"
                                          % cls.web.port]},
                "closed": {"prober": "tls", "timeout": "3s"},
            },
            targets=[])

    def get_probe(self, module, target):
        q = urllib.parse.urlencode({"module": module, "target": target})
        return self.exp.get("/probe?" + q, timeout=15)

    def test_1_prometheus_sd_targets_report_exact_dates(self):
        expr = 'pki_cert_not_after_timestamp_seconds{job="sd_tls",position="0"}'
        res = self.prom.query_until(
            expr, lambda r: sorted(l["target"] for l, _ in r) == sorted(self.targets),
            what="a notAfter for every file_sd target")
        for labels, v in res:
            leaf = self.by_target[labels["target"]]
            self.assertEqual(int(v), leaf.not_after, labels)
            self.assertEqual(labels["serial"], leaf.serial, labels)
            self.assertEqual(labels["instance"], labels["target"])
        res = self.prom.query_until('pki_probe_success{job="sd_tls"} == 1',
                                    lambda r: len(r) == len(self.targets))
        self.assertEqual(len(res), 3)

    def test_2_crl_through_allow_targets(self):
        res = self.prom.query_until('pki_crl_number{job="sd_crl"}', lambda r: len(r) == 1,
                                    what="the CRL number")
        labels, v = res[0]
        self.assertEqual(v, float(self.crl_number))
        self.assertEqual(labels["url"], self.crl_url)
        # another path on the same server: the pattern wants letters only
        r = self.get_probe("crl", self.web.url("/pki/Root2.crl"))
        self.assertEqual(r.status, 403, r.text)
        self.assertEqual(self.web.requests.get("/pki/Root2.crl", 0), 0)

    def test_3_not_matched_is_refused_and_never_contacted(self):
        before = self.bystander.accepted()
        self.assertEqual(before, 0)
        for module, target in (
                ("web", "localhost:%d" % self.bystander.port),          # not the IP form
                ("web", "127.0.0.1:%d " % self.bystander.port),         # suffix
                ("web", "x127.0.0.1:%d" % self.bystander.port),         # prefix
                ("closed", "127.0.0.1:%d" % self.bystander.port),       # no allow_targets
                ("crl", "http://127.0.0.1:%d/pki/Root.crl" % self.bystander.port)):
            with self.subTest(module=module, target=target):
                r = self.get_probe(module, target)
                self.assertEqual(r.status, 403, r.text)
                self.assertIn("not configured for this module", r.text)
        time.sleep(0.2)
        self.assertEqual(self.bystander.accepted(), 0, "a refused target was contacted")

    def test_4_admitted_but_malformed_is_a_400_with_the_reason(self):
        # matches \d+ but is no port
        r = self.get_probe("web", "127.0.0.1:99999")
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("not valid for this module", r.text)
        self.assertIn("port", r.text)

    def test_5_direct_probe_body(self):
        t = self.targets[0]
        m, r = self.exp.probe("web", t, scrape_timeout=5)
        self.assertEqual(m.value("pki_probe_success", module="web", target=t), 1.0)
        self.assertEqual(int(m.value("pki_cert_not_after_timestamp_seconds", module="web",
                                     target=t, position="0")),
                         self.by_target[t].not_after)
        rc, out = h.promtool_check_metrics(r.text)
        self.assertEqual((rc, out.strip()), (0, ""), out)
        # only that target's series, as for a configured one
        self.assertEqual({l["target"] for l, _ in m.find("pki_probe_success")}, {t})

    def test_6_reload_changes_the_patterns(self):
        t = self.targets[1]
        self.assertEqual(self.get_probe("web", t).status, 200)
        # only the first endpoint's port is admitted now
        self.exp.write_config(self.config(r"127\.0\.0\.1:%s" % self.targets[0].split(":")[1]))
        r = self.exp.reload_http()
        self.assertEqual(r.status, 200, r.text)
        try:
            self.assertEqual(self.get_probe("web", t).status, 403)
            self.assertEqual(self.get_probe("web", self.targets[0]).status, 200)
            # a broken pattern: the reload fails, the running patterns stay
            with open(self.exp.config_path) as f:
                text = f.read()
            self.exp.write_config(text.replace(
                self.targets[0].split(":")[1], "(" + self.targets[0].split(":")[1], 1))
            r = self.exp.reload_http()
            self.assertEqual(r.status, 500, r.text)
            self.assertIn("allow_targets", r.text)
            self.assertIn("missing closing parenthesis", r.text)
            self.assertEqual(self.get_probe("web", self.targets[0]).status, 200)
            self.assertEqual(self.get_probe("web", t).status, 403)
        finally:
            self.exp.write_config(self.cfg_text)
            self.assertEqual(self.exp.reload_http().status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
