#!/usr/bin/env python3
"""global.max_inflight caps probes in flight across all scrapes: with a cap
of 2 and six targets that never answer (1 s module timeout each), one
scrape needs three waves; two concurrent scrapes share the cap; what is
still queued at the deadline reports stage "queued".

Run: PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_inflight.py
"""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


class TestInflightCap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.environ.get("PKI_EXPORTER"):
            raise unittest.SkipTest("PKI_EXPORTER not set")
        cls.tmp = h.TempDir()
        cls.silent = h.SilentServer()
        cls.silent.start()
        # six distinct targets on the one silent listener (127.0.0.x)
        cls.targets = ["127.0.0.%d:%d" % (i, cls.silent.port) for i in range(1, 2)]
        servers = [h.SilentServer() for _ in range(5)]
        for s in servers:
            s.start()
        cls.servers = servers
        cls.targets += ["127.0.0.1:%d" % s.port for s in servers]
        cfg = h.exporter_config({"m": {"prober": "tls", "timeout": "1s"}},
                                [("m", cls.targets)],
                                {"max_inflight": 2, "scrape_timeout": "10s"})
        cls.exp = h.Exporter(os.path.join(cls.tmp.path, "exp"), cfg).start()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "exp", None):
            cls.exp.stop()
        for s in [getattr(cls, "silent", None)] + list(getattr(cls, "servers", [])):
            if s:
                s.stop()
        if getattr(cls, "tmp", None):
            cls.tmp.cleanup()

    def test_one_scrape_runs_in_waves(self):
        t0 = time.time()
        m, _ = self.exp.scrape(scrape_timeout=10)
        took = time.time() - t0
        # 6 probes, 2 at a time, 1 s each: about 3 s (not 1 s)
        self.assertGreater(took, 2.8, took)
        self.assertLess(took, 4.5, took)
        for t in self.targets:
            labels, _ = m.one("pki_probe_failure_info", module="m", target=t)
            self.assertEqual((labels["stage"], labels["reason"]), ("handshake", "timeout"))
        self.assertEqual(m.value("pki_exporter_probes_in_flight"), 0.0)

    def test_queued_at_the_deadline(self):
        # 1.8 s budget (header 2.3 s minus 0.5 s): the first wave ends at
        # 1 s, the second is cut at 1.8 s, the last two never get a slot
        # (the third wave could start at 2 s at the earliest: 0.8 s of slack
        # either way for a loaded machine's timers)
        m, _ = self.exp.scrape(scrape_timeout=2.3)
        stages = sorted(m.one("pki_probe_failure_info", module="m", target=t)[0]["stage"]
                        for t in self.targets)
        self.assertEqual(stages.count("queued"), 2, stages)
        self.assertEqual(stages.count("handshake"), 4, stages)
        self.assertEqual(m.value("pki_exporter_scrape_probes", outcome="not_started"), 2.0)

    def test_two_scrapes_share_the_cap(self):
        took = []
        t0 = time.monotonic()   # one start for both: a late second request
                                # still ends after the twelfth probe

        def one():
            self.exp.scrape(scrape_timeout=10)
            took.append(time.monotonic() - t0)
        threads = [threading.Thread(target=one) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        # 12 probes through 2 slots: about 6 s for the later one
        self.assertEqual(len(took), 2)
        self.assertGreater(max(took), 5.5, took)


if __name__ == "__main__":
    unittest.main(verbosity=2)
