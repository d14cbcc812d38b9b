#!/usr/bin/env python3
"""STARTTLS against real servers: exim4 (SMTP) and slapd (LDAP) on 127.0.0.1.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_starttls_servers.py
      (skips, with a message, when PKI_EXPORTER is unset)

Each server runs twice: once offering STARTTLS with a leaf signed by a test
root, once without TLS configured. The exporter probes all four with
`prober: tls` modules that set `starttls:`; the TLS servers must give the
leaf's exact notAfter, the others a failure at stage "starttls". The
servers alone (no exporter) are checked with `openssl s_client -starttls`,
so a broken fixture is told apart from a broken exporter.

Needs root and the Debian packages exim4-daemon-light and slapd
(scripts/install-deps.sh installs them; neither service is started or
configured system-wide: each server here runs from a temp dir).
"""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

FIX = None


class StarttlsFixture:
    """PKI + exim (TLS and plain) + slapd (TLS and plain)."""

    def __init__(self):
        self.tmp = h.TempDir("pki-starttls-")
        self.dir = self.tmp.path
        self.servers = []

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        for b, pkg in ((h.EXIM, "exim4-daemon-light"), (h.SLAPD, "slapd")):
            if not os.access(b, os.X_OK):
                raise h.HarnessError("%s not found: apt-get install %s "
                                     "(scripts/install-deps.sh)" % (b, pkg))
        now = h.utc_now()
        pki = self.pki = h.PKI(self.join("pki"))
        self.root = pki.root_ca(cn="STARTTLS Test Root", key="rsa:2048")
        # odd seconds so that rounding shows
        self.mail = pki.leaf(self.root, "mail", "mail.test",
                             sans=["DNS:mail.test", "IP:127.0.0.1"], key="ec",
                             not_before=now - 86400 + 7,
                             not_after=now + 77 * 86400 + 13)
        self.ldap = pki.leaf(self.root, "ldap", "ldap.test",
                             sans=["DNS:ldap.test", "IP:127.0.0.1"],
                             key="rsa:2048", not_before=now - 86400 + 3,
                             not_after=now + 55 * 86400 + 29)
        self.smtp_tls = self._add(h.EximRunner(self.join("exim-tls"), self.mail))
        self.smtp_plain = self._add(h.EximRunner(self.join("exim-plain")))
        self.ldap_tls = self._add(h.SlapdRunner(self.join("slapd-tls"), self.ldap))
        self.ldap_plain = self._add(h.SlapdRunner(self.join("slapd-plain")))

    def _add(self, server):
        self.servers.append(server)
        return server.start()

    def join(self, *p):
        return os.path.join(self.dir, *p)

    def stop(self):
        for s in self.servers:
            try:
                s.stop()
            except Exception:  # noqa: BLE001 - best effort teardown
                pass
        self.servers = []
        self.tmp.cleanup()


def setUpModule():
    global FIX
    h.exporter_binary()          # SkipTest with a clear message if unset
    FIX = StarttlsFixture().start()


def tearDownModule():
    if FIX:
        FIX.stop()


def s_client(proto, port, ca_file):
    """openssl s_client -starttls; (returncode, combined output)."""
    cp = subprocess.run(
        [h.OPENSSL, "s_client", "-starttls", proto, "-connect",
         "127.0.0.1:%d" % port, "-CAfile", ca_file, "-verify_return_error",
         "-brief"],
        input=b"", capture_output=True, timeout=30)
    return cp.returncode, (cp.stdout + cp.stderr).decode("utf-8", "replace")


class TestServers(unittest.TestCase):
    """The fixture on its own, checked with the openssl CLI."""

    def test_exim_offers_starttls(self):
        rc, out = s_client("smtp", FIX.smtp_tls.port, FIX.root.cert)
        self.assertEqual(rc, 0, out)
        self.assertIn("mail.test", out)

    def test_exim_plain_does_not(self):
        rc, out = s_client("smtp", FIX.smtp_plain.port, FIX.root.cert)
        self.assertNotEqual(rc, 0, out)

    def test_slapd_starttls(self):
        rc, out = s_client("ldap", FIX.ldap_tls.port, FIX.root.cert)
        self.assertEqual(rc, 0, out)
        self.assertIn("ldap.test", out)


def module(proto, ca_file):
    return {"prober": "tls", "timeout": "5s", "starttls": proto,
            "tls": {"ca_file": ca_file}}


class TestExporterStarttls(unittest.TestCase):
    """The exporter's tls probe with `starttls:` against the real servers."""

    @classmethod
    def setUpClass(cls):
        d = h.TempDir("pki-starttls-exp-")
        cls.addClassCleanup(d.cleanup)
        t = "127.0.0.1:%d"
        cls.T_smtp = t % FIX.smtp_tls.port
        cls.T_smtp_plain = t % FIX.smtp_plain.port
        cls.T_ldap = t % FIX.ldap_tls.port
        cls.T_ldap_plain = t % FIX.ldap_plain.port
        cfg = h.exporter_config(
            {"smtp": module("smtp", FIX.root.cert),
             "ldap": module("ldap", FIX.root.cert)},
            [("smtp", [cls.T_smtp, cls.T_smtp_plain]),
             ("ldap", [cls.T_ldap, cls.T_ldap_plain])])
        cfg_path = os.path.join(d.path, "check.yml")
        with open(cfg_path, "w") as f:
            f.write(cfg)
        # a clear message while the tls module does not know `starttls:`
        cp = h.run_exporter_cli(["--config.check", "--config.file=" + cfg_path])
        if cp.returncode != 0:
            raise AssertionError("the exporter rejects a tls module with "
                                 "`starttls:`:\n%s%s" % (cp.stdout, cp.stderr))
        cls.exp = h.Exporter(d.path, cfg)
        cls.addClassCleanup(cls.exp.stop)
        cls.exp.start()
        cls.m, r = cls.exp.scrape(scrape_timeout=20)
        cls.text = r.text

    def assertValue(self, name, expected, **labels):
        v = self.m.value(name, **labels)
        self.assertEqual(v, expected, "%s%r = %r, expected %r\n%s"
                         % (name, labels, v, expected, self.exp.log_tail()))

    def check_good(self, mod, target, leaf):
        self.assertValue("pki_probe_success", 1.0, module=mod, target=target)
        self.assertValue("pki_tls_handshake_success", 1.0, module=mod,
                         target=target)
        self.assertEqual(self.m.find("pki_tls_starttls_error_info",
                                     target=target), [])
        labels, v = self.m.one("pki_cert_not_after_timestamp_seconds",
                               module=mod, target=target, position="0")
        self.assertEqual(v, float(leaf.not_after))
        self.assertEqual(labels["subject_cn"], leaf.subject_cn)
        self.assertEqual(labels["serial"], leaf.serial)
        # the chain the server sent verifies: nothing of the plaintext
        # exchange leaked into the handshake
        self.assertValue("pki_tls_chain_verified", 1.0, module=mod,
                         target=target)

    def check_refused(self, mod, target, error):
        self.assertValue("pki_probe_success", 0.0, module=mod, target=target)
        labels, _ = self.m.one("pki_probe_failure_info", module=mod,
                               target=target)
        self.assertEqual(labels["stage"], "starttls", labels)
        labels, _ = self.m.one("pki_tls_failure_info", module=mod,
                               target=target)
        self.assertEqual((labels["stage"], labels["reason"]),
                         ("starttls", "starttls_failed"), labels)
        # the reason from starttls_error(), as the server gave it
        labels, _ = self.m.one("pki_tls_starttls_error_info", module=mod,
                               target=target)
        self.assertEqual(labels["error"], error)
        self.assertEqual(self.m.find("pki_cert_not_after_timestamp_seconds",
                                     target=target), [])

    def test_smtp(self):
        self.check_good("smtp", self.T_smtp, FIX.mail)

    def test_smtp_without_starttls(self):
        self.check_refused("smtp", self.T_smtp_plain,
                           "smtp: server does not offer STARTTLS")

    def test_ldap(self):
        self.check_good("ldap", self.T_ldap, FIX.ldap)

    def test_ldap_without_tls(self):
        self.check_refused("ldap", self.T_ldap_plain,
                           "ldap: resultCode 2: unsupported extended operation")

    def test_exposition_lints(self):
        rc, out = h.promtool_check_metrics(self.text)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
