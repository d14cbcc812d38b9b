#!/usr/bin/env python3
"""Integration tests of the pki_exporter core (issue #2), against README.md and docs/metrics.md.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_core.py
      (skips, with a message, when PKI_EXPORTER is unset)

Everything runs on 127.0.0.1: a PKI made with openssl at test time, one nginx
with several TLS endpoints, a silent TCP server, an authoritative-only dnsmasq,
the exporter, and a real Prometheus scraping it.
"""

import os
import re
import shutil
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

FIX = None

TLS12_CIPHER_NAMES = {"ECDHE-RSA-AES256-GCM-SHA384",              # OpenSSL name
                      "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}    # IANA name


def setUpModule():
    global FIX
    h.exporter_binary()          # SkipTest with a clear message if unset
    FIX = h.CoreFixture().start()


def tearDownModule():
    if FIX:
        FIX.stop()


def web_module(ca_file, timeout="5s"):
    return {"prober": "tls", "timeout": timeout, "tls": {"ca_file": ca_file}}


class ExporterCase(unittest.TestCase):
    """Base: helpers to start exporters that are stopped after the class."""

    @classmethod
    def new_dir(cls):
        t = h.TempDir("pki-exp-")
        cls.addClassCleanup(t.cleanup)
        return t.path

    @classmethod
    def start_exporter(cls, config_text, directory=None, **kw):
        d = directory or cls.new_dir()
        exp = h.Exporter(d, config_text, **kw)
        cls.addClassCleanup(exp.stop)
        exp.start()
        return exp

    def assertValue(self, m, name, expected, **labels):
        v = m.value(name, **labels)
        self.assertEqual(v, expected, "%s%r = %r, expected %r" % (name, labels, v, expected))

    def assertSuccess(self, m, module, target, expected):
        self.assertValue(m, "pki_probe_success", expected, module=module, target=target)

    @classmethod
    def scrape_raw(cls, exp, **kw):
        """Scrape without parsing: a malformed exposition then fails the tests
        that read it (and promtool's test shows why), not the whole class."""
        h_ = {}
        if "scrape_timeout" in kw:
            h_["X-Prometheus-Scrape-Timeout-Seconds"] = str(kw["scrape_timeout"])
        r = exp.get("/metrics", headers=h_)
        if r.status != 200:
            raise AssertionError("GET /metrics -> %d: %s" % (r.status, r.text[:2000]))
        return r

    @property
    def m(self):
        """The class's shared scrape (self.r), parsed."""
        cls = type(self)
        if getattr(cls, "_parsed", None) is None:
            try:
                cls._parsed = h.Metrics(cls.r.text)
            except h.ParseError as e:
                raise AssertionError("exposition does not parse: %s\n%s" % (e, cls.r.text[:3000]))
        return cls._parsed


# ---------------------------------------------------------------------------
# 1. a real Prometheus scrapes the exporter
# ---------------------------------------------------------------------------

class TestThroughPrometheus(ExporterCase):
    """valid chain / expired leaf / untrusted self-signed, read back from
    Prometheus' HTTP API."""

    @classmethod
    def setUpClass(cls):
        d = cls.new_dir()
        # relative ca_file: must be resolved against the config file's directory
        shutil.copy(FIX.root.cert, os.path.join(d, "root.pem"))
        cls.T_valid = FIX.t(FIX.p_valid)
        cls.T_expired = FIX.t(FIX.p_expired)
        cls.T_untrusted = FIX.t(FIX.p_untrusted)
        cls.T_escape = FIX.t(FIX.p_escape)
        cfg = h.exporter_config(
            global_={"scrape_timeout": "10s"},
            modules={"web": web_module("root.pem")},
            targets=[("web", [cls.T_valid, cls.T_expired, cls.T_untrusted, cls.T_escape])])
        cls.exp = cls.start_exporter(cfg, directory=d, cwd="/")
        pdir = cls.new_dir()
        # 2 s: a 1.5 s budget for the four probes even under ASan on a loaded
        # machine (at 1 s the budget is 0.75 s and one cut probe reads 0)
        cls.prom = h.PrometheusRunner(pdir, ["127.0.0.1:%d" % cls.exp.port],
                                      scrape_interval="2s", scrape_timeout="2s")
        cls.addClassCleanup(cls.prom.stop)
        cls.prom.start()

    def q1(self, metric, **labels):
        return self.prom.query_one(metric + h.promql_labels(**labels))

    def test_scrape_is_up(self):
        _, v = self.q1("up", job="pki")
        self.assertEqual(v, 1.0, self.prom.target_health())

    def test_valid_leaf_not_after_exact_and_serial(self):
        labels, v = self.q1("pki_cert_not_after_timestamp_seconds",
                            target=self.T_valid, position="0")
        self.assertEqual(int(v), FIX.valid.not_after)
        self.assertEqual(v, float(FIX.valid.not_after))
        self.assertEqual(labels["serial"], FIX.valid.serial)   # e.g. "0A..." (leading zero kept)
        self.assertEqual(labels["subject_cn"], "valid.test")
        self.assertEqual(labels["issuer_cn"], FIX.inter.subject_cn)
        self.assertEqual(labels["module"], "web")
        self.assertEqual(labels["address"], self.T_valid)

    def test_valid_leaf_not_before_exact(self):
        labels, v = self.q1("pki_cert_not_before_timestamp_seconds",
                            target=self.T_valid, position="0")
        self.assertEqual(v, float(FIX.valid.not_before))
        self.assertEqual(labels["serial"], FIX.valid.serial)

    def test_valid_chain_verified_and_position_1_is_intermediate(self):
        _, v = self.q1("pki_tls_chain_verified", target=self.T_valid)
        self.assertEqual(v, 1.0)
        labels, _ = self.q1("pki_tls_chain_verified_info", target=self.T_valid)
        self.assertEqual((labels["code"], labels["reason"]), ("0", "ok"))
        labels, v = self.q1("pki_cert_not_after_timestamp_seconds",
                            target=self.T_valid, position="1")
        self.assertEqual(labels["subject_cn"], FIX.inter.subject_cn)
        self.assertEqual(labels["issuer_cn"], FIX.root.subject_cn)
        self.assertEqual(labels["serial"], FIX.inter.serial)
        self.assertEqual(v, float(FIX.inter.not_after))
        # the server sent exactly leaf + intermediate
        positions = sorted(l["position"] for l, _ in self.prom.query(
            "pki_cert_not_after_timestamp_seconds" + h.promql_labels(target=self.T_valid)))
        self.assertEqual(positions, ["0", "1"])

    def test_expired_leaf(self):
        labels, v = self.q1("pki_cert_not_after_timestamp_seconds",
                            target=self.T_expired, position="0")
        self.assertLess(v, time.time())
        self.assertEqual(v, float(FIX.expired.not_after))
        self.assertEqual(labels["serial"], FIX.expired.serial)
        _, v = self.q1("pki_tls_chain_verified", target=self.T_expired)
        self.assertEqual(v, 0.0)
        labels, _ = self.q1("pki_tls_chain_verified_info", target=self.T_expired)
        self.assertEqual(labels["code"], "10")          # X509_V_ERR_CERT_HAS_EXPIRED
        self.assertIn("expired", labels["reason"])

    def test_untrusted_self_signed(self):
        _, v = self.q1("pki_tls_chain_verified", target=self.T_untrusted)
        self.assertEqual(v, 0.0)
        labels, _ = self.q1("pki_tls_chain_verified_info", target=self.T_untrusted)
        self.assertEqual(labels["code"], "18")          # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        labels, v = self.q1("pki_cert_not_after_timestamp_seconds",
                            target=self.T_untrusted, position="0")
        self.assertEqual(v, float(FIX.untrusted.not_after))
        self.assertEqual(labels["serial"], FIX.untrusted.serial)
        self.assertEqual(labels["subject_cn"], "untrusted.test")
        self.assertEqual(labels["issuer_cn"], "untrusted.test")
        _, v = self.q1("pki_cert_not_before_timestamp_seconds",
                       target=self.T_untrusted, position="0")
        self.assertEqual(v, float(FIX.untrusted.not_before))

    def test_tls_version_info(self):
        labels, v = self.q1("pki_tls_version_info", target=self.T_valid)
        self.assertEqual(v, 1.0)
        self.assertEqual(labels["version"], "TLSv1.3")
        self.assertEqual(labels["cipher"], "TLS_AES_128_GCM_SHA256")
        self.assertEqual(labels["address"], self.T_valid)
        labels, _ = self.q1("pki_tls_version_info", target=self.T_expired)
        self.assertEqual(labels["version"], "TLSv1.2")
        self.assertIn(labels["cipher"], TLS12_CIPHER_NAMES)

    def test_probe_success_for_all(self):
        ts = (self.T_valid, self.T_expired, self.T_untrusted, self.T_escape)
        # polled (the latest scrape decides; a failure that stays, fails)
        res = self.prom.query_until(
            'pki_probe_success{job="pki",module="web"} == 1',
            lambda r: sorted(l["target"] for l, _ in r) == sorted(ts),
            what="every target's probe succeeding")
        self.assertEqual(sorted(l["target"] for l, _ in res), sorted(ts))
        for t in ts:
            _, v = self.q1("pki_tls_handshake_success", target=t, address=t)
            self.assertEqual(v, 1.0, t)
        res = self.prom.query_until('pki_probe_failure_info{job="pki"}', lambda r: r == [],
                                    what="no probe failure")
        self.assertEqual(res, [])

    def test_escaped_subject_survives_prometheus(self):
        labels, v = self.q1("pki_cert_not_after_timestamp_seconds",
                            target=self.T_escape, position="0")
        self.assertEqual(labels["subject_cn"], h.ESCAPE_CN)
        self.assertEqual(v, float(FIX.escape.not_after))
        # and a PromQL match on the exact value finds it
        labels, _ = self.q1("pki_cert_not_after_timestamp_seconds", subject_cn=h.ESCAPE_CN)
        self.assertEqual(labels["target"], self.T_escape)


# ---------------------------------------------------------------------------
# 2. direct scrapes: silent endpoint, DNS, promtool, facts, HTTP API
# ---------------------------------------------------------------------------

class TestDirectScrape(ExporterCase):

    @classmethod
    def setUpClass(cls):
        cls.T_valid = FIX.t(FIX.p_valid)
        cls.T_expired = FIX.t(FIX.p_expired)
        cls.T_untrusted = FIX.t(FIX.p_untrusted)
        cls.T_silent = FIX.t(FIX.silent.port)
        cls.T_nx = FIX.t(FIX.p_valid, FIX.NX_NAME)
        cls.T_good = FIX.t(FIX.p_sni, FIX.GOOD_NAME)
        cls.T_refused = FIX.t(h.free_port())        # nobody listens there
        cfg = h.exporter_config(
            global_={"scrape_timeout": "10s",
                     "dns_servers": ["127.0.0.1:%d" % FIX.dns.port]},
            modules={"web": web_module(FIX.root.cert),
                     "slow": web_module(FIX.root.cert, timeout="2s")},
            targets=[("web", [cls.T_valid, cls.T_expired, cls.T_untrusted, cls.T_nx,
                              cls.T_good, cls.T_refused]),
                     ("slow", [cls.T_silent])])
        cls.start_wall = time.time()
        cls.exp = cls.start_exporter(cfg)
        # one full scrape, shared by the read-only tests below
        cls._parsed = None
        cls.r = cls.scrape_raw(cls.exp, scrape_timeout=5)

    # -- the exposition as a whole ------------------------------------------
    def test_promtool_check_metrics_is_silent(self):
        rc, out = h.promtool_check_metrics(self.r.text)
        self.assertEqual(out, "", "promtool check metrics complained:\n" + out)
        self.assertEqual(rc, 0)

    def test_content_type(self):
        ct = {k.lower(): v for k, v in self.r.headers.items()}.get("content-type", "")
        self.assertTrue(ct.startswith("text/plain"), ct)
        self.assertIn("version=0.0.4", ct)

    def test_exporter_self_metrics(self):
        labels, v = self.m.one("pki_exporter_build_info")
        self.assertEqual(v, 1.0)
        for k in ("version", "revision", "openssl", "libcurl", "cares", "libmicrohttpd"):
            self.assertIn(k, labels)
        self.assertRegex(labels["openssl"], r"3\.\d+\.\d+")
        self.assertValue(self.m, "pki_exporter_config_last_reload_successful", 1.0)
        ts = self.m.value("pki_exporter_config_last_reload_success_timestamp_seconds")
        self.assertTrue(self.start_wall - 2 <= ts <= time.time() + 1, ts)
        st = self.m.value("process_start_time_seconds")
        self.assertTrue(self.start_wall - 2 <= st <= time.time() + 1, st)
        self.assertGreater(self.m.value("process_open_fds"), 0)
        self.assertGreater(self.m.value("process_resident_memory_bytes"), 0)
        self.assertTrue(self.m.find("pki_exporter_scrape_duration_seconds"),
                        "no pki_exporter_scrape_duration_seconds")

    def test_cert_info_facts(self):
        labels, v = self.m.one("pki_cert_info", target=self.T_valid, position="0")
        self.assertEqual(v, 1.0)
        want = {"subject_cn": "valid.test", "issuer_cn": FIX.inter.subject_cn,
                "serial": FIX.valid.serial, "sig_alg": "ecdsa-with-SHA256",
                "key_type": "EC", "key_bits": "256", "sha1": FIX.valid.sha1,
                "sha256": FIX.valid.sha256,
                "sans": "DNS:valid.test,DNS:www.valid.test,IP:127.0.0.1",
                "address": self.T_valid, "module": "web"}
        self.assertEqual({k: labels.get(k) for k in want}, want)
        labels, _ = self.m.one("pki_cert_info", target=self.T_valid, position="1")
        want = {"subject_cn": FIX.inter.subject_cn, "sig_alg": "sha256WithRSAEncryption",
                "key_type": "EC", "key_bits": "256", "sha256": FIX.inter.sha256}
        self.assertEqual({k: labels.get(k) for k in want}, want)
        labels, _ = self.m.one("pki_cert_info", target=self.T_untrusted, position="0")
        want = {"sig_alg": "sha256WithRSAEncryption", "key_type": "RSA", "key_bits": "3072",
                "sha1": FIX.untrusted.sha1, "sans": "DNS:untrusted.test"}
        self.assertEqual({k: labels.get(k) for k in want}, want)

    # -- silent endpoint -------------------------------------------------------
    def test_silent_endpoint_times_out_alone(self):
        self.assertSuccess(self.m, "slow", self.T_silent, 0.0)
        fails = self.m.find("pki_probe_failure_info", target=self.T_silent)
        self.assertEqual(len(fails), 1, fails)
        labels, v = fails[0]
        self.assertEqual((labels["stage"], labels["reason"], v), ("handshake", "timeout", 1.0))
        d = self.m.value("pki_probe_duration_seconds", module="slow", target=self.T_silent)
        self.assertTrue(1.8 <= d <= 3.0, "silent probe duration %r, module timeout 2s" % d)
        self.assertLess(self.r.elapsed, 4.0,
                        "scrape took %.2fs with scrape timeout header 5" % self.r.elapsed)
        self.assertGreaterEqual(self.r.elapsed, 1.8)
        for t in (self.T_valid, self.T_expired, self.T_untrusted, self.T_good):
            self.assertSuccess(self.m, "web", t, 1.0)
        self.assertEqual(self.m.find("pki_cert_not_after_timestamp_seconds",
                                     target=self.T_silent), [])

    def test_refused_port_fails_at_connect(self):
        self.assertSuccess(self.m, "web", self.T_refused, 0.0)
        fails = self.m.find("pki_probe_failure_info", target=self.T_refused)
        self.assertEqual(len(fails), 1, fails)
        self.assertEqual(fails[0][0]["stage"], "connect")
        self.assertIn("refused", fails[0][0]["reason"])
        self.assertValue(self.m, "pki_tls_handshake_success", 0.0, target=self.T_refused,
                         address=self.T_refused)

    # -- DNS -------------------------------------------------------------------
    def test_unresolvable_name_fails_only_its_probe(self):
        self.assertSuccess(self.m, "web", self.T_nx, 0.0)
        fails = self.m.find("pki_probe_failure_info", target=self.T_nx)
        self.assertEqual(len(fails), 1, fails)
        labels, v = fails[0]
        self.assertEqual((labels["stage"], labels["reason"], v), ("resolve", "nxdomain", 1.0))
        self.assertEqual(self.m.find("pki_cert_not_after_timestamp_seconds",
                                     target=self.T_nx), [])
        # the same endpoint by IP works in the same scrape
        self.assertSuccess(self.m, "web", self.T_valid, 1.0)

    def test_resolved_name_works_with_sni(self):
        self.assertSuccess(self.m, "web", self.T_good, 1.0)
        self.assertEqual(self.m.find("pki_probe_failure_info", target=self.T_good), [])
        labels, v = self.m.one("pki_cert_not_after_timestamp_seconds",
                               target=self.T_good, position="0")
        # nginx sends good.test's cert only when the SNI is good.test
        self.assertEqual(labels["subject_cn"], FIX.GOOD_NAME,
                         "wrong certificate: SNI was not %s" % FIX.GOOD_NAME)
        self.assertEqual(labels["serial"], FIX.good.serial)
        self.assertEqual(labels["address"], FIX.t(FIX.p_sni))
        self.assertEqual(v, float(FIX.good.not_after))
        self.assertValue(self.m, "pki_tls_chain_verified", 1.0, target=self.T_good)

    # -- /probe and HTTP errors -------------------------------------------------
    def test_probe_returns_only_that_target(self):
        m, r = self.exp.probe("web", self.T_valid, scrape_timeout=5)
        self.assertLess(r.elapsed, 1.9, "/probe seems to have run the silent target too")
        self.assertValue(m, "pki_probe_success", 1.0, module="web", target=self.T_valid)
        targets = {l["target"] for (n, ls) in m.series for l in [dict(ls)] if "target" in l}
        self.assertEqual(targets, {self.T_valid})
        modules = {l["module"] for (n, ls) in m.series for l in [dict(ls)] if "module" in l}
        self.assertEqual(modules, {"web"})
        _, v = m.one("pki_cert_not_after_timestamp_seconds", target=self.T_valid, position="0")
        self.assertEqual(v, float(FIX.valid.not_after))
        rc, out = h.promtool_check_metrics(r.text)
        self.assertEqual((rc, out), (0, ""))

    def test_probe_of_failing_target(self):
        m, _ = self.exp.probe("web", self.T_nx)
        self.assertValue(m, "pki_probe_success", 0.0, module="web", target=self.T_nx)
        self.assertEqual(m.one("pki_probe_failure_info", target=self.T_nx)[0]["stage"], "resolve")

    def test_probe_unknown_target_is_403(self):
        for q in ("module=web&target=127.0.0.1:1",                       # not configured
                  "module=slow&target=" + self.T_valid):                 # wrong module
            r = self.exp.get("/probe?" + q)
            self.assertEqual(r.status, 403, "%s -> %d %s" % (q, r.status, r.text[:200]))

    def test_probe_unknown_module_is_400(self):
        # an unknown module is a bad request (as in blackbox_exporter); a
        # known module with a target it does not list is 403
        q = "module=nosuch&target=" + self.T_valid
        r = self.exp.get("/probe?" + q)
        self.assertEqual(r.status, 400, "%s -> %d %s" % (q, r.status, r.text[:200]))
        self.assertIn("unknown module", r.text)

    def test_probe_missing_params_is_400(self):
        for q in ("", "?module=web", "?target=" + self.T_valid):
            r = self.exp.get("/probe" + q)
            self.assertEqual(r.status, 400, "/probe%s -> %d %s" % (q, r.status, r.text[:200]))

    def test_unknown_path_is_404(self):
        for p in ("/nosuch", "/metrics/x", "/-/nosuch"):
            self.assertEqual(self.exp.get(p).status, 404, p)

    def test_post_metrics_is_405(self):
        r = self.exp.request("/metrics", method="POST", data=b"x=1")
        self.assertEqual(r.status, 405)

    def test_health_ready_landing(self):
        for p in ("/-/healthy", "/-/ready", "/"):
            r = self.exp.get(p)
            self.assertEqual(r.status, 200, p)
        self.assertIn("/metrics", self.exp.get("/").text)


# ---------------------------------------------------------------------------
# 3. the scrape deadline
# ---------------------------------------------------------------------------

class TestScrapeDeadline(ExporterCase):

    @classmethod
    def setUpClass(cls):
        cls.T_valid = FIX.t(FIX.p_valid)
        cls.T_silent = FIX.t(FIX.silent.port)
        modules = {"web": web_module(FIX.root.cert),
                   "slow10": web_module(FIX.root.cert, timeout="10s")}
        targets = [("web", [cls.T_valid]), ("slow10", [cls.T_silent])]
        cls.exp10 = cls.start_exporter(h.exporter_config(
            global_={"scrape_timeout": "10s"}, modules=modules, targets=targets))
        cls.exp2 = cls.start_exporter(h.exporter_config(
            global_={"scrape_timeout": "2s"}, modules=modules, targets=targets))

    def check(self, m):
        self.assertValue(m, "pki_probe_success", 0.0, module="slow10", target=self.T_silent)
        fails = m.find("pki_probe_failure_info", target=self.T_silent)
        self.assertEqual(len(fails), 1, fails)
        self.assertEqual(fails[0][0]["stage"], "handshake")
        self.assertValue(m, "pki_probe_success", 1.0, module="web", target=self.T_valid)

    # The tight bound is the exporter's own: the silent probe is cut at the
    # budget (header - 0.5 s, or the global timeout), to within 0.2 s. The
    # reply as the client sees it also carries connecting, rendering and the
    # scheduling of a loaded (ASan) machine: bounded by header + 0.5 s, far
    # below the 10 s a missing deadline would take.
    def silent_duration(self, m):
        return m.value("pki_probe_duration_seconds", module="slow10", target=self.T_silent)

    def test_header_bounds_the_scrape(self):
        m, r = self.exp10.scrape(scrape_timeout=2)
        self.check(m)
        d = self.silent_duration(m)
        self.assertGreater(d, 1.4)
        self.assertLess(d, 1.7, "probe cut at %.2fs with header 2 (budget 1.5s)" % d)
        self.assertLess(r.elapsed, 2.5, "scrape with header 2 took %.2fs" % r.elapsed)
        self.assertGreater(r.elapsed, 0.9)

    def test_fractional_header(self):
        m, r = self.exp10.scrape(scrape_timeout="1.5")
        self.check(m)
        d = self.silent_duration(m)
        self.assertLess(d, 1.2, "probe cut at %.2fs with header 1.5 (budget 1.0s)" % d)
        self.assertLess(r.elapsed, 2.0, "scrape with header 1.5 took %.2fs" % r.elapsed)

    def test_global_scrape_timeout_bounds_the_scrape(self):
        m, r = self.exp2.scrape()          # no header: global.scrape_timeout 2s
        self.check(m)
        d = self.silent_duration(m)
        self.assertGreater(d, 1.4)
        self.assertLess(d, 2.2, "probe cut at %.2fs with scrape_timeout 2s" % d)
        self.assertLess(r.elapsed, 2.6, "scrape took %.2fs with scrape_timeout 2s" % r.elapsed)
        self.assertGreater(r.elapsed, 0.9)
        # min(global 2s, header 10 - 0.5) = 2s
        m, r = self.exp2.scrape(scrape_timeout=10)
        self.check(m)
        d = self.silent_duration(m)
        self.assertLess(d, 2.2, "probe cut at %.2fs (global 2s, header 10)" % d)
        self.assertLess(r.elapsed, 2.6, "scrape took %.2fs (global 2s, header 10)" % r.elapsed)


# ---------------------------------------------------------------------------
# 4. --config.check
# ---------------------------------------------------------------------------

GOOD_CONFIG = """\
global:
  scrape_timeout: 10s
  concurrency: 16
modules:
  web:
    prober: tls
    timeout: 5s
    tls:
      ca_file: root.pem
targets:
  - module: web
    targets: ["127.0.0.1:1", "[::1]:2"]
"""

# errors on lines 2 (bad duration), 7 (bad duration), 8 (unknown key)
BROKEN_CONFIG = """\
global:
  scrape_timeout: 10parsecs
  concurrency: 16
modules:
  web:
    prober: tls
    timeout: 5 seconds
    bogus_key: 1
    tls:
      ca_file: root.pem
targets:
  - module: web
    targets: ["127.0.0.1:1"]
"""


def error_lines(stderr, path):
    """{line: [(col, reason)]} from 'PATH:LINE:COL: reason' lines."""
    out = {}
    for l in stderr.splitlines():
        m = re.match(re.escape(path) + r":(\d+):(\d+): (.+)$", l)
        if m:
            out.setdefault(int(m.group(1)), []).append((int(m.group(2)), m.group(3)))
    return out


class TestConfigCheck(ExporterCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = cls.new_dir()
        shutil.copy(FIX.root.cert, os.path.join(cls.dir, "root.pem"))

    def write(self, name, text):
        p = os.path.join(self.dir, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_good_config_exits_0(self):
        p = self.write("good.yml", GOOD_CONFIG)
        cp = h.run_exporter_cli(["--config.check", "--config.file=" + p], cwd="/")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(error_lines(cp.stderr, p), {})
        # --flag value form
        cp = h.run_exporter_cli(["--config.file", p, "--config.check"], cwd="/")
        self.assertEqual(cp.returncode, 0, cp.stderr)

    def test_broken_config_reports_every_error(self):
        p = self.write("broken.yml", BROKEN_CONFIG)
        cp = h.run_exporter_cli(["--config.check", "--config.file", p], cwd="/")
        self.assertEqual(cp.returncode, 1, "rc=%d stderr=%s" % (cp.returncode, cp.stderr))
        errs = error_lines(cp.stderr, p)
        self.assertTrue({2, 7, 8} <= set(errs),
                        "expected %s:LINE:COL errors on lines 2, 7, 8; stderr:\n%s"
                        % (p, cp.stderr))
        self.assertIn(5, [c for c, _ in errs[8]], "unknown key bogus_key is at 8:5")
        self.assertTrue(any(c in (3, 19) for c, _ in errs[2]), errs[2])
        self.assertTrue(any(c in (5, 14) for c, _ in errs[7]), errs[7])
        self.assertIn("bogus_key", " ".join(r for _, r in errs[8]))

    def test_yaml_syntax_error(self):
        p = self.write("syntax.yml", 'global:\n  scrape_timeout: 10s\ntargets: ["a:1"\n')
        cp = h.run_exporter_cli(["--config.check", "--config.file=" + p], cwd="/")
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertTrue(error_lines(cp.stderr, p), cp.stderr)

    def test_missing_file(self):
        p = os.path.join(self.dir, "does-not-exist.yml")
        cp = h.run_exporter_cli(["--config.check", "--config.file=" + p], cwd="/")
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertIn(p, cp.stderr)


# ---------------------------------------------------------------------------
# 5. reload (SIGHUP and POST /-/reload), graceful exit
# ---------------------------------------------------------------------------

class TestReload(ExporterCase):

    def cfg(self, targets, broken=False):
        text = h.exporter_config(modules={"web": web_module("root.pem")},
                                 targets=[("web", targets)])
        if broken:
            text = text.replace("    prober:", "    no_such_key: 1\n    prober:", 1)
            assert "no_such_key" in text
        return text

    def reload_ok(self, m):
        return m.value("pki_exporter_config_last_reload_successful")

    def test_reload_cycle(self):
        d = self.new_dir()
        shutil.copy(FIX.root.cert, os.path.join(d, "root.pem"))
        T_valid, T_untr, T_exp = (FIX.t(FIX.p_valid), FIX.t(FIX.p_untrusted),
                                  FIX.t(FIX.p_expired))
        exp = self.start_exporter(self.cfg([T_valid]), directory=d, flag_style="space")
        m, _ = exp.scrape()
        self.assertEqual(self.reload_ok(m), 1.0)
        self.assertValue(m, "pki_probe_success", 1.0, target=T_valid)

        # broken config + SIGHUP: old config keeps running, reload_successful 0
        exp.write_config(self.cfg([T_valid, T_untr], broken=True))
        exp.reload_signal()
        h.wait_until(lambda: self.reload_ok(exp.scrape()[0]) == 0.0, 5,
                     what="reload_successful 0 after SIGHUP with a broken config")
        m, _ = exp.scrape()
        self.assertValue(m, "pki_probe_success", 1.0, target=T_valid)
        self.assertEqual(m.find("pki_probe_success", target=T_untr), [])
        self.assertTrue(exp.proc.alive())

        # broken config + POST /-/reload: 500 with an error text
        r = exp.reload_http()
        self.assertEqual(r.status, 500, r.text)
        self.assertTrue(r.text.strip(), "500 without an error text")
        m, _ = exp.scrape()
        self.assertEqual(self.reload_ok(m), 0.0)
        self.assertValue(m, "pki_probe_success", 1.0, target=T_valid)
        self.assertEqual(exp.get("/probe?module=web&target=" + T_untr).status, 403)

        # good config with a new target + SIGHUP
        before = time.time()
        exp.write_config(self.cfg([T_valid, T_untr]))
        exp.reload_signal()
        h.wait_until(lambda: self.reload_ok(exp.scrape()[0]) == 1.0, 5,
                     what="reload_successful 1 after SIGHUP with a good config")
        m, _ = exp.scrape()
        self.assertValue(m, "pki_probe_success", 1.0, target=T_untr)
        self.assertValue(m, "pki_probe_success", 1.0, target=T_valid)
        ts = m.value("pki_exporter_config_last_reload_success_timestamp_seconds")
        self.assertGreaterEqual(ts, before - 1)

        # good config replacing the targets + POST /-/reload: 200, applied at once
        exp.write_config(self.cfg([T_valid, T_exp]))
        r = exp.reload_http()
        self.assertEqual(r.status, 200, r.text)
        m, _ = exp.scrape()
        self.assertEqual(self.reload_ok(m), 1.0)
        self.assertValue(m, "pki_probe_success", 1.0, target=T_exp)
        self.assertEqual(m.find("pki_probe_success", target=T_untr), [])
        self.assertEqual(exp.get("/probe?module=web&target=" + T_untr).status, 403)
        self.assertEqual(exp.get("/probe?module=web&target=" + T_exp).status, 200)

    def test_sigterm_exits_0(self):
        exp = self.start_exporter(self.cfg([FIX.t(FIX.p_valid)]).replace(
            '"root.pem"', '"%s"' % FIX.root.cert))
        t0 = time.monotonic()
        rc = exp.stop(signal.SIGTERM, timeout=5)
        self.assertEqual(rc, 0, exp.log_tail())
        self.assertLess(time.monotonic() - t0, 5)

    def test_version_flag(self):
        cp = h.run_exporter_cli(["--version"])
        self.assertEqual(cp.returncode, 0)
        self.assertTrue((cp.stdout + cp.stderr).strip())


# ---------------------------------------------------------------------------
# 6. label escaping end to end
# ---------------------------------------------------------------------------

class TestLabelEscaping(ExporterCase):

    @classmethod
    def setUpClass(cls):
        cls.T_escape = FIX.t(FIX.p_escape)
        cls.T_newline = FIX.t(FIX.p_newline)
        cls.exp = cls.start_exporter(h.exporter_config(
            modules={"plain": {"prober": "tls", "timeout": "5s"}},
            targets=[("plain", [cls.T_escape, cls.T_newline])]))
        cls._parsed = None
        cls.r = cls.scrape_raw(cls.exp, scrape_timeout=5)

    def test_promtool_accepts_exposition(self):
        rc, out = h.promtool_check_metrics(self.r.text)
        self.assertEqual(out, "", out)
        self.assertEqual(rc, 0)

    def test_quote_and_backslash_in_subject_cn(self):
        labels, v = self.m.one("pki_cert_not_after_timestamp_seconds",
                               target=self.T_escape, position="0")
        self.assertEqual(labels["subject_cn"], h.ESCAPE_CN)
        self.assertEqual(labels["issuer_cn"], h.ESCAPE_CN)
        self.assertEqual(v, float(FIX.escape.not_after))
        # the exact escaped form is in the text: \" for ", \\ for \ (and a
        # literal backslash-n stays \\n, distinct from a newline)
        self.assertIn('subject_cn="we\\"ird \\\\back\\\\slash, {x=\\"y\\"} \\\\n"', self.r.text)
        labels, _ = self.m.one("pki_cert_info", target=self.T_escape, position="0")
        self.assertEqual(labels["subject_cn"], h.ESCAPE_CN)

    def test_newline_in_subject_cn(self):
        labels, v = self.m.one("pki_cert_not_after_timestamp_seconds",
                               target=self.T_newline, position="0")
        self.assertEqual(labels["subject_cn"], h.NEWLINE_CN)
        self.assertIn('subject_cn="line one\\nline two"', self.r.text)
        self.assertEqual(v, float(FIX.newline.not_after))


if __name__ == "__main__":
    unittest.main(verbosity=2)
