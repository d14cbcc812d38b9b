#!/usr/bin/env python3
"""Without every_address, the addresses of a pool name are tried in turn: an
address that silently drops SYNs (a stale DNS record behind a firewall) must
get only its share of the module timeout, so the healthy address after it is
still probed (review finding: the whole budget used to go to the first).

Run: PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_pool_fallback.py
"""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def blackhole(ip, port):
    """A listener whose accept queue is full: Linux drops further SYNs, so a
    connect() to it neither succeeds nor is refused."""
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((ip, port))
    lst.listen(0)
    fill = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((ip, port))
        except BlockingIOError:
            pass
        fill.append(s)
    time.sleep(0.2)
    return [lst] + fill


class TestPoolFallback(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.environ.get("PKI_EXPORTER"):
            raise unittest.SkipTest("PKI_EXPORTER not set")
        cls.tmp = h.TempDir()
        d = cls.tmp.path
        cls.port = h.free_port()
        cls.dns = h.DnsmasqRunner(os.path.join(d, "dns"), {}, extra_args=[
            "--host-record=pool.fallback.test,127.0.0.2",
            "--host-record=pool.fallback.test,127.0.0.3"]).start()
        # dnsmasq rotates the two answers, so successive scrapes meet the
        # silent address first and second in turn
        cls.first_ip, cls.good_ip = "127.0.0.2", "127.0.0.3"
        # one address drops SYNs, the other serves TLS
        cls.hole = blackhole(cls.first_ip, cls.port)
        pki = h.PKI(os.path.join(d, "pki"))
        root = pki.root_ca(cn="Fallback Root")
        cls.leaf = pki.leaf(root, "pool", "pool.fallback.test",
                            sans=["DNS:pool.fallback.test"])
        cls.nginx = h.NginxRunner(os.path.join(d, "nginx"))
        cls.nginx.add(cls.leaf, port=cls.port, host=cls.good_ip)
        cls.nginx.start()
        cfg = h.exporter_config(
            {"seq": {"prober": "tls", "timeout": "4s", "tls": {"ca_file": root.cert}}},
            [("seq", ["pool.fallback.test:%d" % cls.port])],
            {"dns_servers": ["127.0.0.1:%d" % cls.dns.port]})
        cls.exp = h.Exporter(os.path.join(d, "exp"), cfg).start()

    @classmethod
    def tearDownClass(cls):
        for name in ("exp", "nginx", "dns"):
            obj = getattr(cls, name, None)
            if obj:
                obj.stop()
        for s in getattr(cls, "hole", []):
            s.close()
        if getattr(cls, "tmp", None):
            cls.tmp.cleanup()

    def test_healthy_address_after_a_silent_one(self):
        target = "pool.fallback.test:%d" % self.port
        good = "%s:%d" % (self.good_ip, self.port)
        took = []
        for _ in range(3):
            t0 = time.time()
            m, _ = self.exp.scrape(scrape_timeout=8)
            took.append(time.time() - t0)
            self.assertEqual(m.value("pki_probe_success", module="seq", target=target),
                             1.0, m.excerpt())
            self.assertEqual(m.value("pki_tls_handshake_success", module="seq",
                                     target=target, address=good), 1.0)
            self.assertEqual(m.value("pki_cert_not_after_timestamp_seconds", module="seq",
                                     target=target, address=good, position="0"),
                             float(self.leaf.not_after))
        # when the silent address came first it got about half of the 4 s
        # budget (two addresses), not all of it
        self.assertTrue(any(1.5 < t < 3.5 for t in took), took)
        self.assertTrue(all(t < 3.5 for t in took), took)


if __name__ == "__main__":
    unittest.main(verbosity=2)
