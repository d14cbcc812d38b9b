#!/usr/bin/env python3
"""Spreading /probe over exporter replicas (issue #8, item 8).

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_hashmod.py

Two exporter replicas (the same configuration) and a real Prometheus on
127.0.0.1. Prometheus has one job per replica with the blackbox-style
relabelling README.md documents ("Spreading /probe over replicas"): the
target becomes `__param_target` and `instance`, `hashmod` of the target
with modulus 2 picks a shard, the job keeps its own shard and sends the
scrape to its replica. The test asserts that every target is probed by
exactly the replica its hash names (the hash is recomputed here the way
Prometheus does it), that all succeed, and that when one replica stops its
targets show up as down (not lost) and are probed again once it is back on
the same port.
"""

import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

N_TARGETS = 12
MODULUS = 2


def prom_hashmod(value, modulus):
    """Prometheus' hashmod: MD5 of the joined source labels, the low 8
    bytes as a big-endian integer, modulo the modulus."""
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % modulus


def shard_job(replica_addr, shard, module="web"):
    """The scrape config of one replica: the one README.md documents."""
    return {
        "job_name": "pki_probe_%d" % shard,
        "metrics_path": "/probe",
        "params": {"module": [module]},
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"source_labels": ["__param_target"], "modulus": MODULUS,
             "target_label": "__tmp_shard", "action": "hashmod"},
            {"source_labels": ["__tmp_shard"], "regex": str(shard), "action": "keep"},
            {"target_label": "__address__", "replacement": replica_addr},
        ],
    }


class TestHashmodReplicas(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        h.exporter_binary()
        cls.tmp = h.TempDir("pki-hashmod-")
        cls.addClassCleanup(cls.tmp.cleanup)
        pki = h.PKI(cls.tmp.join("pki"))
        cls.root = pki.root_ca(key="ec")
        leaf = pki.leaf(cls.root, "leaf", "shard.test", sans=["IP:127.0.0.1"])
        cls.nginx = h.NginxRunner(cls.tmp.join("nginx"))
        cls.addClassCleanup(cls.nginx.stop)
        ports = [cls.nginx.add(leaf) for _ in range(N_TARGETS)]
        # ports are random: make sure every shard has targets (12 in one
        # shard has odds of 1 in 2048; a few more endpoints settle it)
        while (len({prom_hashmod("127.0.0.1:%d" % p, MODULUS) for p in ports}) < MODULUS
               and len(ports) < 4 * N_TARGETS):
            ports.append(cls.nginx.add(leaf))
        cls.nginx.start()
        cls.targets = ["127.0.0.1:%d" % p for p in ports]
        cls.shard = {t: prom_hashmod(t, MODULUS) for t in cls.targets}
        cfg = h.exporter_config(
            global_={"scrape_timeout": "10s"},
            modules={"web": {"prober": "tls", "timeout": "5s",
                             "tls": {"ca_file": cls.root.cert}}},
            targets=[("web", cls.targets)])
        cls.replicas = []
        for i in range(MODULUS):
            e = h.Exporter(cls.tmp.join("replica%d" % i), cfg, name="replica%d" % i)
            cls.addClassCleanup(e.stop)
            e.start()
            cls.replicas.append(e)
        jobs = []
        for i, e in enumerate(cls.replicas):
            job = shard_job("127.0.0.1:%d" % e.port, i)
            job["static_configs"] = [{"targets": cls.targets}]
            jobs.append(job)
        cls.prom = h.PrometheusRunner(cls.tmp.join("prometheus"), [], scrape_interval="1s",
                                      scrape_timeout="1s", scrape_configs=jobs)
        cls.addClassCleanup(cls.prom.stop)
        cls.prom.start()

    def up_by_instance(self):
        """{instance: [(job, value)]} of the probe jobs' `up`."""
        out = {}
        for labels, v in self.prom.query_now('up{job=~"pki_probe_.*"}'):
            out.setdefault(labels["instance"], []).append((labels["job"], v))
        return out

    def wait_all_up(self, timeout=30.0, since=None):
        """Until every target is up in exactly its own shard's job (and, with
        `since`, has a pki_probe_success sample newer than that)."""
        def ok():
            up = self.up_by_instance()
            if set(up) != set(self.targets):
                return False
            if not all(v == [("pki_probe_%d" % self.shard[t], 1.0)] for t, v in up.items()):
                return False
            if since is not None:
                ts = self.prom.query_now('timestamp(pki_probe_success{job=~"pki_probe_.*"})')
                fresh = {l["instance"] for l, v in ts if v > since}
                return fresh == set(self.targets)
            return True
        try:
            h.wait_until(ok, timeout, interval=0.5, what="every target up in its shard")
        except h.HarnessError as e:
            self.fail("%s\nup: %r\nprometheus targets: %r"
                      % (e, self.up_by_instance(), self.prom.target_health()))

    def test_1_both_shards_are_used(self):
        # the fixture is only meaningful if the hash splits the targets
        self.assertEqual(set(self.shard.values()), set(range(MODULUS)), self.shard)

    def test_2_every_target_probed_by_exactly_its_replica(self):
        self.wait_all_up()
        up = self.up_by_instance()
        self.assertEqual(sorted(up), sorted(self.targets))
        for t in self.targets:
            self.assertEqual(up[t], [("pki_probe_%d" % self.shard[t], 1.0)], t)
        # the probe result, once per target, from its replica (polled: a
        # probe cut by a loaded machine's scrape budget reads 0 for a second)
        want = {t: [("pki_probe_%d" % self.shard[t], t, 1.0)] for t in self.targets}

        def by_target(res):
            seen = {}
            for labels, v in res:
                seen.setdefault(labels["target"], []).append(
                    (labels["job"], labels["instance"], v))
            return seen
        res = self.prom.query_until('pki_probe_success{job=~"pki_probe_.*"}',
                                    lambda r: by_target(r) == want,
                                    what="every target's success from its replica")
        self.assertEqual(by_target(res), want)
        # and Prometheus' own view: one active target per configured target
        active = self.prom.api("/api/v1/targets")["activeTargets"]
        by_target = {}
        for a in active:
            if a["labels"]["job"].startswith("pki_probe_"):
                by_target.setdefault(a["labels"]["instance"], []).append(a["scrapeUrl"])
        for t in self.targets:
            urls = by_target.get(t, [])
            self.assertEqual(len(urls), 1, (t, urls))
            self.assertIn("127.0.0.1:%d/probe" % self.replicas[self.shard[t]].port, urls[0])

    def test_3_replica_restart_loses_nothing(self):
        self.wait_all_up()
        victim_shard = 1
        victim = self.replicas[victim_shard]
        port = victim.port
        mine = [t for t in self.targets if self.shard[t] == victim_shard]
        others = [t for t in self.targets if self.shard[t] != victim_shard]
        victim.stop()
        stopped = time.time()

        # its targets go down (visible, alertable), the other shard is untouched
        def victims_down():
            up = self.up_by_instance()
            return (set(up) == set(self.targets)
                    and all(up[t] == [("pki_probe_%d" % victim_shard, 0.0)] for t in mine)
                    and all(up[t] == [("pki_probe_%d" % self.shard[t], 1.0)] for t in others))
        # (no target vanished, the victims are down, the others up: all at once)
        try:
            h.wait_until(victims_down, 20, interval=0.5,
                         what="the stopped replica's targets down, the others up")
        except h.HarnessError as e:
            self.fail("%s\nup: %r" % (e, self.up_by_instance()))
        # the other replica keeps probing its shard: each of its targets gets
        # a sample newer than the stop. Waited for, not read once: the victims
        # can all be down before every other target's next scrape (each target
        # has its own offset in the 1 s interval), which made a one-shot read
        # flaky in CI.
        def others_fresh():
            ts = self.prom.query_now('timestamp(pki_probe_success{job="pki_probe_%d"})'
                                     % (1 - victim_shard))
            return {l["instance"] for l, v in ts if v > stopped} == set(others)
        h.wait_until(others_fresh, 10, interval=0.5,
                     what="the other replica kept probing its shard")

        # back on the same port: every target probed again, by the same replica
        victim.start(port=port)
        restarted = time.time()
        self.assertEqual(victim.port, port)
        self.wait_all_up(timeout=30, since=restarted)
        expr = 'pki_probe_success{job=~"pki_probe_.*"} == 1'
        res = self.prom.query_until(
            expr, lambda r: sorted(l["target"] for l, _ in r) == sorted(self.targets),
            what="every target succeeding again")
        self.assertEqual(sorted(l["target"] for l, _ in res), sorted(self.targets))


if __name__ == "__main__":
    unittest.main(verbosity=2)
