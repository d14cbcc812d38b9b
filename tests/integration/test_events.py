#!/usr/bin/env python3
"""Integration tests of the events subsystem (issue #5), the real binary on loopback.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_events.py
      (skips, with a message, when PKI_EXPORTER is unset; the corpus is read
      from $PKI_CORPUS or ../shared/corpus next to the source tree)

The forwarded-event corpus (NXLog JSON, Winlogbeat, Snare, RFC 5424, RFC 3164)
goes to a running exporter that uses the shipped default rules: over UDP, over
TCP with newline and with octet-counting framing (also from many senders at
once), and appended to tailed files that are rotated mid-stream by rename and
by truncation. Every step asserts the exact change of every pki_events_total
series (per rule, host, source, event id and level): nothing lost, nothing
counted twice. Then: a restart in the middle of a file, malformed input,
`promtool check metrics`, a reload, and a real Prometheus computing rate().
"""

import collections
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SRC = os.environ.get("PKI_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CORPUS = os.environ.get("PKI_CORPUS") or os.path.join(SRC, "..", "shared", "corpus")
EVENTS = os.path.join(CORPUS, "events")
RULES = os.path.join(SRC, "events", "default-rules.yml")

FE, EDGE = "fe01.contoso.test", "edge01.contoso.test"
WF, LUS, LCLA = "Microsoft-WindowsFabric", "LS User Services", "LS Centralized Logging Agent"
CRL, LYNC, L33019 = "fabric_crl_offline", "lync_startup_delayed", "lync_33019"
S88, S74, S85 = "schannel_fatal_alert", "schannel_no_common_cipher", "schannel_ca_list_truncated"
ERR = "parse error"
NONE = "unmatched"

# What each corpus line must count with the default rules (MANIFEST.md):
# (rule, host, source, event_id, level), or ERR / NONE.
EXPECT = {
    "nxlog-im_msvistalog.jsonl": [
        (CRL, FE, WF, "4097", "warning"), (CRL, FE, WF, "4097", "warning"),
        (LYNC, FE, LUS, "32174", "warning"), (L33019, FE, LCLA, "33019", "error"),
        (S88, EDGE, "Schannel", "36888", "error"), (S74, EDGE, "Schannel", "36874", "error"),
        (S85, FE, "Schannel", "36885", "warning"), ERR],
    "winlogbeat-8.ndjson": [
        (CRL, FE, WF, "4097", "warning"), (CRL, FE, WF, "4097", "warning"),
        (LYNC, FE, LUS, "32174", "warning"), (S88, EDGE, "Schannel", "36888", "error"),
        (S74, EDGE, "Schannel", "36874", "error"), (S85, FE, "Schannel", "36885", "warning")],
    "snare-over-syslog.log": [
        (CRL, FE, WF, "4097", "warning"), (CRL, FE, WF, "4097", "warning"),
        (LYNC, FE, LUS, "32174", "warning"), (S88, EDGE, "Schannel", "36888", "error"),
        (S74, EDGE, "Schannel", "36874", "error"), (CRL, FE, WF, "4097", "warning")],
    "rfc5424.log": [
        (CRL, FE, WF, "4097", "warning"), (CRL, FE, WF, "4097", "warning"),
        (LYNC, FE, LUS, "32174", "warning"), (L33019, FE, LCLA, "33019", "error"),
        (S88, EDGE, "Schannel", "36888", "error"),
        (S74, EDGE, "Schannel", "", "error"),           # no SD: no event id
        (S85, FE, "Schannel", "36885", "warning")],
    "rfc3164.log": [                                     # no event ids in BSD syslog
        (CRL, "fe01", WF, "", "warning"), (CRL, "fe01", WF, "", "warning"),
        (LYNC, "fe01", LUS, "", "warning"), (S88, "edge01", "Schannel", "", "error"),
        (S74, "edge01", "Schannel", "", "error"), (S85, "fe01", "Schannel", "", "warning"),
        NONE],
}
LABELS = ("rule", "host", "source", "event_id", "level")


def corpus_lines(name):
    with open(os.path.join(EVENTS, name), "rb") as f:
        return [l for l in f.read().split(b"\n") if l]


def expected(name, times=1, lines=None):
    """Counter of the label tuples the lines of `name` count (times over)."""
    c = collections.Counter()
    exp = EXPECT[name]
    for i in (range(len(exp)) if lines is None else lines):
        if isinstance(exp[i], tuple):
            c[exp[i]] += times
    return c


def n_errors(name, lines=None):
    exp = EXPECT[name]
    return sum(1 for i in (range(len(exp)) if lines is None else lines) if exp[i] == ERR)


def totals(m):
    """{(rule, host, source, event_id, level): value} of pki_events_total."""
    out = {}
    for labels, v in m.find("pki_events_total"):
        out[tuple(labels.get(k, "") for k in LABELS)] = v
    return out


def per_input(m, name, inp):
    vals = m.find(name, input=inp)
    return vals[0][1] if vals else None


def setUpModule():
    h.exporter_binary()
    if not os.path.isdir(EVENTS):
        raise unittest.SkipTest("corpus not found at %s (set PKI_CORPUS)" % EVENTS)


class EventsCase(unittest.TestCase):
    """One exporter with every input; each test checks the exact delta it
    causes, so the tests do not depend on each other's order."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.TempDir("pki-events-")
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.dir = cls.tmp.path
        cls.udp = h.free_udp_tcp_port()
        cls.tcp = h.free_port()
        cls.tcp_octet = h.free_port()
        cls.files = {n: os.path.join(cls.dir, n) for n in
                     ("rot.jsonl", "trunc.log", "snare.log", "bsd.log", "plain.log", "big.log")}
        for p in cls.files.values():
            open(p, "wb").close()
        cls.exp = h.Exporter(cls.dir, cls.config())
        cls.addClassCleanup(cls.exp.stop)
        cls.exp.start()
        cls.wait_up()

    @classmethod
    def config(cls, extra_rule=""):
        f = cls.files
        return """
events:
  state_file: events.state
  poll_interval: 100ms
  rotate_wait: 1s
  rules_file: %(rules)s
  rules:
%(extra)s    - name: plain_rule
      source: plainsrc
  inputs:
    - { syslog: "udp://127.0.0.1:%(udp)d", name: udp }
    - { syslog: "tcp://127.0.0.1:%(tcp)d", name: tcp, max_connections: 64 }
    - { syslog: "tcp://127.0.0.1:%(tcpo)d", name: tcp_octet, framing: octet_counting }
    - { file: %(rot)s, name: rot, format: json }
    - { file: %(trunc)s, name: trunc, format: rfc5424 }
    - { file: %(snare)s, name: snare, format: snare }
    - { file: %(bsd)s, name: bsd, format: rfc3164 }
    - { file: %(big)s, name: big }
    - file: %(plain)s
      name: plain
      format: plain
      pattern: '^(?<host>\\S+) (?<source>\\S+) (?<event_id>\\d+) (?<level>\\w+) (?<message>.*)$'
""" % {"rules": RULES, "udp": cls.udp, "tcp": cls.tcp, "tcpo": cls.tcp_octet,
       "rot": f["rot.jsonl"], "trunc": f["trunc.log"], "snare": f["snare.log"],
       "bsd": f["bsd.log"], "plain": f["plain.log"], "big": f["big.log"],
       "extra": extra_rule}

    @classmethod
    def wait_up(cls):
        def up():
            m = cls.scrape()
            ups = m.find("pki_events_input_up")
            return len(ups) == 9 and all(v == 1 for _, v in ups)
        h.wait_until(up, 15, interval=0.1, what="every events input up")

    @classmethod
    def scrape(cls):
        r = cls.exp.get("/metrics")
        if r.status != 200:
            raise AssertionError("GET /metrics -> %d" % r.status)
        return h.Metrics(r.text)

    def wait_delta(self, before, want, errors=None, timeout=15.0):
        """Wait until pki_events_total moved by exactly `want` (a Counter of
        label tuples) from `before`, and stays there; errors: {input: n}."""
        want = {k: v for k, v in want.items() if v}
        last = {}

        def reached():
            m = self.scrape()
            now = totals(m)
            delta = {k: now.get(k, 0) - before["totals"].get(k, 0)
                     for k in set(now) | set(before["totals"])}
            delta = {k: v for k, v in delta.items() if v}
            last["delta"] = delta
            if delta != want:
                return False
            for inp, n in (errors or {}).items():
                if per_input(m, "pki_events_parse_errors_total", inp) - \
                        before["errors"].get(inp, 0) != n:
                    return False
            return True
        try:
            h.wait_until(reached, timeout, interval=0.1, what="the expected counts")
        except h.HarnessError:
            extra = {k: v for k, v in last.get("delta", {}).items() if want.get(k) != v}
            missing = {k: v for k, v in want.items() if last.get("delta", {}).get(k) != v}
            self.fail("pki_events_total moved by\n  %r\nwanted\n  %r\ndiffering: got %r, "
                      "want %r\n%s" % (last.get("delta"), want, extra, missing,
                                       self.exp.log_tail(20)))
        # and nothing more arrives (no line counted twice)
        time.sleep(0.4)
        self.assertTrue(reached(), "counts moved on after reaching the target: %r"
                        % last.get("delta"))

    def snap(self):
        m = self.scrape()
        errs = {l["input"]: v for l, v in m.find("pki_events_parse_errors_total")}
        lines = {l["input"]: v for l, v in m.find("pki_events_input_lines_total")}
        drops = {(l["input"], l["reason"]): v for l, v in m.find("pki_events_dropped_total")}
        return {"totals": totals(m), "errors": errs, "lines": lines, "drops": drops}

    # -- syslog -------------------------------------------------------------

    def test_udp_every_format(self):
        before = self.snap()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        want = collections.Counter()
        errs = 0
        for name in EXPECT:
            for line in corpus_lines(name):
                s.sendto(line, ("127.0.0.1", self.udp))
                time.sleep(0.001)    # loopback UDP: no drops from a burst
            want += expected(name)
            errs += n_errors(name)
        s.close()
        self.wait_delta(before, want, {"udp": errs})
        after = self.snap()
        self.assertEqual(after["lines"]["udp"] - before["lines"]["udp"],
                         sum(len(corpus_lines(n)) for n in EXPECT))

    def send_tcp(self, port, payload):
        c = socket.create_connection(("127.0.0.1", port))
        # odd-sized writes: frames split across reads
        for i in range(0, len(payload), 777):
            c.sendall(payload[i:i + 777])
        c.close()

    def test_tcp_newline_framing(self):
        before = self.snap()
        want = collections.Counter()
        for name in EXPECT:
            self.send_tcp(self.tcp, b"\n".join(corpus_lines(name)) + b"\n")
            want += expected(name)
        self.wait_delta(before, want, {"tcp": sum(n_errors(n) for n in EXPECT)})

    def test_tcp_octet_counting(self):
        before = self.snap()
        want = collections.Counter()
        for port in (self.tcp, self.tcp_octet):   # auto-detected, and forced
            for name in EXPECT:
                payload = b"".join(b"%d %s" % (len(l), l) for l in corpus_lines(name))
                self.send_tcp(port, payload)
                want += expected(name)
        self.wait_delta(before, want, {"tcp_octet": sum(n_errors(n) for n in EXPECT)})

    def test_tcp_many_senders(self):
        before = self.snap()
        payload = b"\n".join(corpus_lines("winlogbeat-8.ndjson")) + b"\n"
        senders, rounds = 24, 10
        barrier = threading.Barrier(senders)
        failures = []

        def send():
            try:
                c = socket.create_connection(("127.0.0.1", self.tcp))
                barrier.wait(10)
                for _ in range(rounds):
                    c.sendall(payload)
                c.close()
            except Exception as e:  # noqa: BLE001
                failures.append(e)
        ts = [threading.Thread(target=send) for _ in range(senders)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(failures, [])
        self.wait_delta(before, expected("winlogbeat-8.ndjson", senders * rounds))

    # -- files ----------------------------------------------------------------

    def test_file_rotation_by_rename(self):
        path = self.files["rot.jsonl"]
        lines = corpus_lines("nxlog-im_msvistalog.jsonl")
        before = self.snap()
        w = open(path, "ab", buffering=0)          # the shipper's open file
        for l in lines[:3]:
            w.write(l + b"\n")
        self.wait_delta(before, expected("nxlog-im_msvistalog.jsonl", lines=range(3)))
        before = self.snap()
        os.rename(path, path + ".1")                  # logrotate moves it...
        for l in lines[3:5]:
            w.write(l + b"\n")                        # ...the shipper writes on
        with open(path, "ab") as nw:                  # the new file appears
            for l in lines[5:]:
                nw.write(l + b"\n")
        w.write(lines[0][:40])                        # a half line, completed
        w.write(lines[0][40:] + b"\n")                # before the shipper reopens
        w.close()
        want = expected("nxlog-im_msvistalog.jsonl", lines=range(3, 8))
        want += expected("nxlog-im_msvistalog.jsonl", lines=[0])
        self.wait_delta(before, want, {"rot": 1})
        # and a second rotation, with nothing in between
        before = self.snap()
        os.replace(path, path + ".1")
        with open(path, "ab") as nw:
            for l in lines[:2]:
                nw.write(l + b"\n")
        self.wait_delta(before, expected("nxlog-im_msvistalog.jsonl", lines=range(2)))

    def test_file_rotation_by_truncation(self):
        path = self.files["trunc.log"]
        lines = corpus_lines("rfc5424.log")
        before = self.snap()
        with open(path, "ab") as f:
            for l in lines[:4]:
                f.write(l + b"\n")
        self.wait_delta(before, expected("rfc5424.log", lines=range(4)))
        before = self.snap()
        # copytruncate: copy, truncate in place, the writer goes on at 0
        with open(path, "rb") as src, open(path + ".1", "wb") as dst:
            dst.write(src.read())
        with open(path, "r+b") as f:
            f.truncate(0)
        time.sleep(0.5)
        with open(path, "ab") as f:
            for l in lines[4:]:
                f.write(l + b"\n")
        self.wait_delta(before, expected("rfc5424.log", lines=range(4, 7)))

    def test_file_snare_and_bsd(self):
        before = self.snap()
        want = collections.Counter()
        for key, name in (("snare.log", "snare-over-syslog.log"), ("bsd.log", "rfc3164.log")):
            with open(self.files[key], "ab") as f:
                for l in corpus_lines(name):
                    f.write(l + b"\n")
            want += expected(name)
        self.wait_delta(before, want, {"snare": 0, "bsd": 0})

    def test_file_plain_pattern(self):
        before = self.snap()
        with open(self.files["plain.log"], "ab") as f:
            f.write(b"SRV01 plainsrc 1234 Error something broke\n")
            f.write(b"SRV01 plainsrc 1234 Error again\n")
            f.write(b"this line does not match the pattern\n")
        want = collections.Counter({("plain_rule", "srv01", "plainsrc", "1234", "error"): 2})
        self.wait_delta(before, want, {"plain": 1})

    # -- malformed input ------------------------------------------------------

    def test_malformed_input_and_escaping(self):
        before = self.snap()
        weird = 'we"ird\nhost\\x'
        c = socket.create_connection(("127.0.0.1", self.tcp))
        c.sendall(b'{"EventID":4097,"Hostname":\n')                  # broken JSON
        c.sendall(b"<12>Jan  8 09:12:44 h " + b"A" * (1024 * 1024) + b"\n")  # 1 MiB line
        c.sendall(b'{"EventID":36888,"SourceName":"Schannel","Hostname":"we\\"ird\\nhost\\\\x",'
                  b'"Message":"A fatal alert was generated \\"q\\"\\nline two"}\n')
        c.sendall(b"<11>Jan  8 09:15:02 inv\xff\xfeutf8 Schannel[784]: A fatal alert was generated\n")
        c.sendall(b'{"Hostname":"x\xff"}\n')                           # invalid UTF-8 in JSON
        c.sendall(b"<11>Jan  8 09:15:02 nul\x00host Schannel[784]: A fatal alert was generated\x00!\n")
        c.close()
        with open(self.files["big.log"], "ab") as f:
            f.write(b"x" * (1024 * 1024) + b"\n")
            f.write(b"\x00\x00\x00\n")
            f.write(b'{"EventID":36888,"SourceName":"Schannel","Hostname":"after-big",'
                    b'"Message":"A fatal alert was generated"}\n')
        want = collections.Counter({
            (S88, weird, "Schannel", "36888", ""): 1,
            (S88, "inv\ufffd\ufffdutf8", "Schannel", "", "error"): 1,
            (S88, "nul", "Schannel", "", "error"): 1,
            (S88, "after-big", "Schannel", "36888", ""): 1,
        })
        self.wait_delta(before, want, {"tcp": 2, "big": 0})
        after = self.snap()
        self.assertEqual(after["drops"][("tcp", "line_too_long")]
                         - before["drops"][("tcp", "line_too_long")], 1)
        self.assertEqual(after["drops"][("big", "line_too_long")]
                         - before["drops"][("big", "line_too_long")], 1)
        r = self.exp.get("/metrics")
        rc, out = h.promtool_check_metrics(r.text)
        self.assertEqual((rc, out), (0, ""), out)
        self.assertIn('host="we\\"ird\\nhost\\\\x"', r.text)
        self.assertTrue(self.exp.proc.alive())

    def test_promtool_check_metrics_is_silent(self):
        r = self.exp.get("/metrics")
        rc, out = h.promtool_check_metrics(r.text)
        self.assertEqual(out, "", "promtool check metrics complained:\n" + out)
        self.assertEqual(rc, 0)
        for fam in ("pki_events_total", "pki_events_input_lines_total",
                    "pki_events_parse_errors_total", "pki_events_dropped_total"):
            self.assertIn("# TYPE %s counter" % fam, r.text)
        self.assertIn("# TYPE pki_events_last_timestamp_seconds gauge", r.text)

    def test_zz_reload_keeps_counts(self):
        before = self.snap()
        self.assertTrue(before["totals"])
        c = socket.create_connection(("127.0.0.1", self.tcp))
        self.exp.write_config(self.config(extra_rule="    - { name: added, event_id: 424242 }\n"))
        r = self.exp.reload_http()
        self.assertEqual(r.status, 200, r.text)
        self.wait_up()
        m = self.scrape()
        self.assertEqual(totals(m), before["totals"])       # nothing lost, nothing reset
        # the connection opened before the reload still works
        c.sendall(b'{"EventID":424242,"Hostname":"after-reload"}\n')
        c.close()
        self.wait_delta(before, collections.Counter(
            {("added", "after-reload", "", "424242", ""): 1}))


class RestartMidFile(unittest.TestCase):
    """The exporter stops in the middle of a file and starts again: the
    lines written meanwhile are counted once, none twice, none skipped."""

    def test_restart_mid_file(self):
        tmp = h.TempDir("pki-events-restart-")
        self.addCleanup(tmp.cleanup)
        path = tmp.join("events.jsonl")
        lines = corpus_lines("winlogbeat-8.ndjson")
        with open(path, "wb") as f:
            f.write(lines[0] + b"\n")          # before the first start: not counted
        cfg = """
events:
  state_file: positions.json
  poll_interval: 100ms
  rules_file: %s
  inputs: [ { file: %s, name: f } ]
""" % (RULES, path)
        exp = h.Exporter(tmp.path, cfg)
        self.addCleanup(exp.stop)
        exp.start()

        def count(m):
            return {k: v for k, v in totals(m).items()}

        def wait_counts(want):
            want = {k: v for k, v in want.items() if v}
            h.wait_until(lambda: count(exp.scrape()[0]) == want, 15, interval=0.1,
                         what="counts %r (have %r)" % (want, count(exp.scrape()[0])))
            time.sleep(0.4)
            self.assertEqual(count(exp.scrape()[0]), want)

        h.wait_until(lambda: exp.scrape()[0].value("pki_events_input_up", input="f") == 1,
                     10, what="file input up")
        with open(path, "ab") as f:
            for l in lines[:3]:
                f.write(l + b"\n")
            f.write(lines[3][:50])             # the shipper is mid-line
        wait_counts(expected("winlogbeat-8.ndjson", lines=range(3)))
        self.assertEqual(exp.stop(), 0)        # SIGTERM: positions saved

        with open(path, "ab") as f:            # written while it is down
            f.write(lines[3][50:] + b"\n")
            for l in lines[4:]:
                f.write(l + b"\n")
        exp.start()
        wait_counts(expected("winlogbeat-8.ndjson", lines=range(3, 6)))

        # down again; the file is rotated meanwhile
        self.assertEqual(exp.stop(), 0)
        with open(path, "ab") as f:
            f.write(lines[0] + b"\n")
        os.rename(path, path + ".1")
        with open(path, "wb") as f:
            f.write(lines[1] + b"\n")
            f.write(lines[2] + b"\n")
        exp.start()
        wait_counts(expected("winlogbeat-8.ndjson", lines=[0, 1, 2]))


class ThroughPrometheus(unittest.TestCase):
    """A real Prometheus scrapes while events flow: rate() is above zero."""

    def test_rate(self):
        tmp = h.TempDir("pki-events-prom-")
        self.addCleanup(tmp.cleanup)
        port = h.free_udp_tcp_port()
        exp = h.Exporter(tmp.path, """
events:
  rules_file: %s
  inputs: [ { syslog: "udp://127.0.0.1:%d", name: udp } ]
""" % (RULES, port))
        self.addCleanup(exp.stop)
        exp.start()
        prom = h.PrometheusRunner(tmp.join("prom"), ["127.0.0.1:%d" % exp.port],
                                  scrape_interval="1s", scrape_timeout="1s")
        self.addCleanup(prom.stop)
        prom.start()
        stop = threading.Event()
        line = corpus_lines("nxlog-im_msvistalog.jsonl")[1]

        def flood():   # 4097 "CRL offline", 20 a second, bounded to 60 s
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t_end = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < t_end:
                s.sendto(line, ("127.0.0.1", port))
                time.sleep(0.05)
            s.close()
        t = threading.Thread(target=flood)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(stop.set)
        expr = 'rate(pki_events_total{rule="fabric_crl_offline",event_id="4097"}[5s])'
        res = h.wait_until(lambda: [r for r in prom.query_now(expr) if r[1] > 0], 40,
                           interval=0.5, what="a non-zero %s" % expr)
        labels, v = res[0]
        self.assertEqual(labels["host"], FE)
        self.assertEqual(labels["source"], WF)
        self.assertEqual(labels["level"], "warning")
        self.assertGreater(v, 1.0)      # about 20/s
        self.assertLess(v, 100.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
