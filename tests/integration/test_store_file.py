#!/usr/bin/env python3
"""Integration tests of the store and file probes (issue #6), against
probes/store/README.md and probes/file/README.md.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_store_file.py

Stores and certificate files are made with the openssl CLI at test time
(tests/fixtures/make_stores.sh); expected counts are those the script
documents, and CA-name byte sizes come from an independent DER reader
(tests/fixtures/der_subjects.py). Debian's /etc/ssl/certs is read as a root
store as a sanity check.
"""

import glob
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
SYSTEM_STORE = "/etc/ssl/certs"

REASONS = ["not_self_signed", "self_signed", "private_key_present",
           "missing_private_key", "duplicate", "expired", "not_ca"]
READ_ERRORS = ["not_found", "permission_denied", "unrecognised_format",
               "bad_password", "too_large", "read_error"]

EXP = None
FX = None       # fixtures directory
M = None        # Metrics of one scrape
TEXT = None


def der_subjects(*args):
    out = subprocess.run([sys.executable, os.path.join(FIXTURES, "der_subjects.py")] + list(args),
                         check=True, capture_output=True, text=True).stdout
    n, b = out.split()
    return int(n), int(b)


def hash_link_targets(d):
    """Distinct files reached by OpenSSL <hash>.N links of a directory."""
    names = [n for n in os.listdir(d) if re.fullmatch(r"[0-9a-f]{8}\.[0-9]+", n)]
    return sorted({os.path.realpath(os.path.join(d, n)) for n in names})


def setUpModule():
    global EXP, FX, M, TEXT
    h.exporter_binary()
    t = h.TempDir("pki-store-it-")
    d = t.path
    FX = os.path.join(d, "fx")
    os.makedirs(FX)
    subprocess.run(["sh", os.path.join(FIXTURES, "make_stores.sh"), FX], check=True)
    modules = {
        "roots": {"prober": "store", "role": "root"},
        "inters": {"prober": "store", "role": "intermediate"},
        "personal": {"prober": "store", "role": "personal", "max_certificates": 5,
                     "max_ca_names_bytes": 10},
        "system": {"prober": "store", "role": "root"},
        "files": {"prober": "file"},
        "p12": {"prober": "file", "password_file": "fx/files/password.txt"},
    }
    targets = [
        ("roots", [FX + "/root", FX + "/many", FX + "/bundle.pem", FX + "/nonexistent",
                   "fx/clean"]),
        ("inters", [FX + "/inter"]),
        ("personal", [FX + "/personal"]),
        ("system", [SYSTEM_STORE]),
        ("files", [FX + "/files/*.pem", FX + "/files/leaf.der", FX + "/nomatch/*.crt",
                   FX + "/files/nonexistent.pem"]),
        ("p12", ["fx/files/pass.p12", "fx/files/nopass.p12"]),
    ]
    EXP = h.Exporter(d, h.exporter_config(modules, targets, {"scrape_timeout": "20s"}))
    EXP.start()
    r = EXP.get("/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics -> %d: %s" % (r.status, r.text[:2000]))
    TEXT = r.text
    M = h.Metrics(TEXT)


def tearDownModule():
    if EXP:
        EXP.stop()


class Base(unittest.TestCase):
    def v(self, name, **labels):
        return M.value(name, **labels)

    def assertMisplaced(self, module, target, expected):
        got = {r: self.v("pki_store_misplaced_certificates", module=module, target=target,
                         reason=r) for r in REASONS}
        want = {r: float(expected.get(r, 0)) for r in REASONS}
        self.assertEqual(got, want)

    def assertFailed(self, module, target, reason):
        self.assertEqual(self.v("pki_probe_success", module=module, target=target), 0.0)
        labels, _ = M.one("pki_probe_failure_info", module=module, target=target)
        self.assertEqual(labels["reason"], reason)

    def assertReadError(self, module, target, file, reason):
        """reason None: all reasons 0."""
        got = {r: self.v("pki_file_read_errors", module=module, target=target, file=file,
                         reason=r) for r in READ_ERRORS}
        want = {r: 1.0 if r == reason else 0.0 for r in READ_ERRORS}
        self.assertEqual(got, want, file)


class ExpositionTest(Base):
    def test_promtool_check_metrics_is_silent(self):
        rc, out = h.promtool_check_metrics(TEXT)
        self.assertEqual((rc, out), (0, ""), "promtool check metrics complained:\n" + out)

    def test_every_reason_always_present(self):
        for mod, tgt in [("roots", FX + "/root"), ("inters", FX + "/inter"),
                         ("personal", FX + "/personal"), ("roots", "fx/clean")]:
            for r in REASONS:
                M.one("pki_store_misplaced_certificates", module=mod, target=tgt, reason=r)

    def test_shared_cert_families(self):
        # one family for every probe: one HELP/TYPE block
        self.assertEqual(TEXT.count("# TYPE pki_cert_not_after_timestamp_seconds gauge"), 1)
        self.assertEqual(TEXT.count("# TYPE pki_cert_info gauge"), 1)


class RootStoreTest(Base):
    T = property(lambda self: FX + "/root")

    def test_counts_and_reasons(self):
        self.assertEqual(self.v("pki_store_certificates", module="roots", target=self.T,
                                role="root"), 7.0)
        # the SPEC's label for the store
        self.assertEqual(self.v("pki_store_certificates", store=self.T, role="root"), 7.0)
        self.assertEqual(self.v("pki_store_misplaced_certificates", store=self.T,
                                reason="duplicate"), 1.0)
        self.assertMisplaced("roots", self.T, {"not_self_signed": 1, "private_key_present": 2,
                                                "duplicate": 1, "expired": 1, "not_ca": 1})

    def test_ca_names_bytes(self):
        files = ["good1.crt", "good2.pem", "inter.crt", "leafself.crt", "with-key.pem",
                 "good1-copy.pem", "expired.crt"]
        n, b = der_subjects("--ca-only", "--unique", *[os.path.join(self.T, f) for f in files])
        self.assertEqual(n, 5)
        self.assertEqual(self.v("pki_store_ca_names_bytes", module="roots", target=self.T),
                         float(b))
        self.assertEqual(self.v("pki_store_over_limit", module="roots", target=self.T,
                                limit="certificates"), 0.0)
        self.assertEqual(self.v("pki_store_limit", module="roots", target=self.T,
                                limit="certificates"), 100.0)
        self.assertEqual(self.v("pki_store_limit", module="personal", limit="ca_names_bytes"),
                         10.0)
        self.assertEqual(self.v("pki_store_over_limit", module="roots", target=self.T,
                                limit="ca_names_bytes"), 0.0)

    def test_unreadable_file_fails_only_itself(self):
        self.assertReadError("roots", self.T, self.T + "/garbage.pem", "unrecognised_format")
        self.assertFailed("roots", self.T, "file_error")
        # good files are not listed in the read errors of a store
        self.assertEqual(M.find("pki_file_read_errors", module="roots", target=self.T,
                                file=self.T + "/good2.pem"), [])

    def test_per_certificate_series(self):
        labels, v = M.one("pki_cert_not_after_timestamp_seconds", module="roots",
                          target=self.T, address=self.T + "/inter.crt", position="0")
        self.assertEqual(labels["subject_cn"], "Test Intermediate")
        self.assertEqual(labels["issuer_cn"], "Good Root 1")
        out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in",
                              self.T + "/inter.crt"], check=True, capture_output=True,
                             text=True).stdout.strip()
        self.assertEqual(v, float(h._parse_rfc822_openssl(out.split("=", 1)[1])))
        info, _ = M.one("pki_cert_info", module="roots", target=self.T,
                        address=self.T + "/inter.crt", position="0")
        self.assertEqual((info["sig_alg"], info["key_type"], info["key_bits"]),
                         ("ecdsa-with-SHA256", "EC", "256"))
        self.assertEqual(len(M.find("pki_cert_info", module="roots", target=self.T)), 7)

    def test_expired_root_is_in_the_past(self):
        _, v = M.one("pki_cert_not_after_timestamp_seconds", module="roots", target=self.T,
                     address=self.T + "/expired.crt")
        self.assertLess(v, time.time())


class CheckStoreCommandTest(Base):
    """`pki_exporter check --store DIR --role R`: the person's view."""

    def test_root_store_report(self):
        cp = h.run_exporter_cli(["check", "--store", FX + "/root", "--role", "root"])
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        out = cp.stdout
        self.assertIn("misplaced: not_self_signed=1 self_signed=0 private_key_present=2 "
                      "missing_private_key=0 duplicate=1 expired=1 not_ca=1", out)
        self.assertEqual(out.count("  MISPLACED "), 6, out)
        self.assertIn("certificates: 7 (limit 100)", out)
        self.assertTrue(out.rstrip().endswith("result: NOT CLEAN"), out)

    def test_clean_store_and_usage(self):
        cp = h.run_exporter_cli(["check", "--store", FX + "/clean", "--role", "root"])
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertNotIn("MISPLACED", cp.stdout)
        cp = h.run_exporter_cli(["check", "--store", FX + "/clean"])
        self.assertEqual(cp.returncode, 2)
        self.assertIn("--store needs --role", cp.stderr)


class ManyRootsTest(Base):
    T = property(lambda self: FX + "/many")

    def test_150_roots(self):
        self.assertEqual(self.v("pki_store_certificates", module="roots", target=self.T,
                                role="root"), 150.0)
        n, b = der_subjects("--ca-only", *sorted(glob.glob(self.T + "/*.pem")))
        self.assertEqual(n, 150)
        self.assertEqual(self.v("pki_store_ca_names_bytes", module="roots", target=self.T),
                         float(b))
        self.assertEqual(self.v("pki_store_over_limit", module="roots", target=self.T,
                                limit="certificates"), 1.0)
        self.assertEqual(self.v("pki_store_over_limit", module="roots", target=self.T,
                                limit="ca_names_bytes"), 1.0 if b > 16384 else 0.0)
        self.assertMisplaced("roots", self.T, {})
        self.assertEqual(self.v("pki_probe_success", module="roots", target=self.T), 1.0)
        self.assertEqual(len(M.find("pki_cert_not_after_timestamp_seconds", module="roots",
                                    target=self.T)), 150)


class OtherStoresTest(Base):
    def test_bundle(self):
        t = FX + "/bundle.pem"
        self.assertEqual(self.v("pki_store_certificates", module="roots", target=t,
                                role="root"), 3.0)
        self.assertMisplaced("roots", t, {"not_self_signed": 1})
        for pos, cn in enumerate(["Good Root 1", "Good Root 2", "Test Intermediate"]):
            labels, _ = M.one("pki_cert_info", module="roots", target=t, address=t,
                              position=str(pos))
            self.assertEqual(labels["subject_cn"], cn)

    def test_missing_store(self):
        t = FX + "/nonexistent"
        self.assertFailed("roots", t, "not_found")
        self.assertEqual(M.find("pki_store_certificates", target=t), [])

    def test_relative_path_is_relative_to_the_config(self):
        self.assertEqual(self.v("pki_store_certificates", module="roots", target="fx/clean",
                                role="root"), 2.0)
        self.assertEqual(self.v("pki_probe_success", module="roots", target="fx/clean"), 1.0)
        labels, _ = M.one("pki_cert_info", module="roots", target="fx/clean",
                          subject_cn="Good Root 1")
        self.assertEqual(labels["address"], os.path.join(EXP.dir, "fx/clean/good1.crt"))

    def test_intermediate(self):
        t = FX + "/inter"
        self.assertEqual(self.v("pki_store_certificates", module="inters", target=t,
                                role="intermediate"), 4.0)
        self.assertMisplaced("inters", t, {"self_signed": 1, "private_key_present": 1,
                                           "not_ca": 1})
        self.assertEqual(self.v("pki_probe_success", module="inters", target=t), 1.0)

    def test_personal(self):
        t = FX + "/personal"
        self.assertEqual(self.v("pki_store_certificates", module="personal", target=t,
                                role="personal"), 8.0)
        self.assertMisplaced("personal", t, {"missing_private_key": 3, "duplicate": 1,
                                             "expired": 1})
        # the module's own limits
        self.assertEqual(self.v("pki_store_over_limit", module="personal", target=t,
                                limit="certificates"), 1.0)
        self.assertEqual(self.v("pki_store_over_limit", module="personal", target=t,
                                limit="ca_names_bytes"), 1.0)


class SystemStoreTest(Base):
    """Debian's /etc/ssl/certs as a root store: what OpenSSL sees through its
    hash links, each file once."""

    def setUp(self):
        if not os.path.isdir(SYSTEM_STORE) or not hash_link_targets(SYSTEM_STORE):
            self.skipTest("no hashed %s here" % SYSTEM_STORE)

    def test_counts_match_an_independent_reading(self):
        files = hash_link_targets(SYSTEM_STORE)
        n_all, _ = der_subjects("--unique", *files)
        n_ca, b = der_subjects("--ca-only", "--unique", *files)
        count = self.v("pki_store_certificates", module="system", target=SYSTEM_STORE,
                       role="root")
        nbytes = self.v("pki_store_ca_names_bytes", module="system", target=SYSTEM_STORE)
        expired = sum(1 for f in files if subprocess.run(
            ["openssl", "x509", "-noout", "-checkend", "0", "-in", f],
            capture_output=True).returncode != 0)
        mis = {r: self.v("pki_store_misplaced_certificates", module="system",
                         target=SYSTEM_STORE, reason=r) for r in REASONS}
        sys.stderr.write("\n%s: %d certificates, CA names %d bytes, misplaced %r, "
                         "unhashed files %d\n" % (
                             SYSTEM_STORE, count, nbytes,
                             {k: int(v) for k, v in mis.items() if v},
                             self.v("pki_store_unhashed_files", module="system",
                                    target=SYSTEM_STORE)))
        self.assertEqual(count, float(n_all))
        self.assertEqual(count, float(len(files)))
        self.assertEqual(nbytes, float(b))
        self.assertEqual(mis["expired"], float(expired))
        self.assertEqual(mis["not_ca"], float(n_all - n_ca))
        for r in ("not_self_signed", "self_signed", "private_key_present",
                  "missing_private_key", "duplicate"):
            self.assertEqual(mis[r], 0.0, r)
        self.assertEqual(self.v("pki_probe_success", module="system", target=SYSTEM_STORE), 1.0)


class FileProbeTest(Base):
    G = property(lambda self: FX + "/files/*.pem")

    def f(self, name):
        return FX + "/files/" + name

    def test_glob_files(self):
        want = {"chain.pem": (3, None), "empty.pem": (0, "unrecognised_format"),
                "fifo.pem": (0, "read_error"), "huge.pem": (0, "too_large"),
                "key-only.pem": (0, "unrecognised_format"), "leaf.pem": (1, None),
                "preamble.pem": (1, None), "truncated.pem": (0, "unrecognised_format"),
                "with-key.pem": (1, None)}
        got = {os.path.basename(l["file"]) for l, _ in
               M.find("pki_file_certificates", module="files", target=self.G)}
        self.assertEqual(got, set(want))
        for name, (n, reason) in want.items():
            self.assertEqual(self.v("pki_file_certificates", module="files", target=self.G,
                                    file=self.f(name)), float(n), name)
            self.assertReadError("files", self.G, self.f(name), reason)
        self.assertFailed("files", self.G, "file_error")

    def test_chain_positions(self):
        for pos, cn in enumerate(["a.leaf.test", "Test Intermediate", "Good Root 1"]):
            labels, _ = M.one("pki_cert_not_after_timestamp_seconds", module="files",
                              target=self.G, address=self.f("chain.pem"), position=str(pos))
            self.assertEqual(labels["subject_cn"], cn)

    def test_der_file(self):
        t = self.f("leaf.der")
        self.assertEqual(self.v("pki_probe_success", module="files", target=t), 1.0)
        self.assertEqual(self.v("pki_file_certificates", module="files", target=t, file=t), 1.0)
        self.assertReadError("files", t, t, None)
        labels, _ = M.one("pki_cert_info", module="files", target=t, address=t, position="0")
        self.assertEqual(labels["subject_cn"], "a.leaf.test")
        self.assertEqual(labels["sans"], "")

    def test_glob_matching_nothing(self):
        t = FX + "/nomatch/*.crt"
        self.assertFailed("files", t, "not_found")
        self.assertEqual(M.find("pki_file_read_errors", target=t), [])

    def test_missing_plain_path(self):
        t = self.f("nonexistent.pem")
        self.assertFailed("files", t, "not_found")
        self.assertReadError("files", t, t, "not_found")

    def test_pkcs12_with_password_file(self):
        for t in ("fx/files/pass.p12", "fx/files/nopass.p12"):
            path = os.path.join(EXP.dir, t)
            self.assertEqual(self.v("pki_probe_success", module="p12", target=t), 1.0)
            self.assertEqual(self.v("pki_file_certificates", module="p12", target=t,
                                    file=path), 2.0)
            labels, _ = M.one("pki_cert_info", module="p12", target=t, position="0")
            self.assertEqual(labels["subject_cn"], "a.leaf.test")

    def test_probe_endpoint(self):
        r = EXP.get("/probe?module=files&target=" + h.urllib.parse.quote(self.f("leaf.der")))
        self.assertEqual(r.status, 200)
        m = h.Metrics(r.text)
        self.assertEqual(m.value("pki_probe_success", module="files"), 1.0)
        self.assertEqual(len(m.find("pki_cert_info")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
