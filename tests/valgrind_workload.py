#!/usr/bin/env python3
"""The exporter under valgrind through a real workload (run by
tests/valgrind.sh, which documents the environment).

Loopback only: a PKI made with openssl, one nginx (a good chain, an expired
leaf, a self-signed one), a silent peer, a closed port, a DNS server (one
good name, one NXDOMAIN), a partner CSV list, a file and a store target.
The exporter is started as
  valgrind --leak-check=full --errors-for-leak-kinds=definite
           --error-exitcode=99 ... pki_exporter ...
and goes through: /metrics (twice), /probe (good, failing, 403, 400),
/status, /-/healthy, /-/ready, SIGHUP with a changed configuration,
POST /-/reload of a broken one (kept the running one), /metrics again,
then SIGTERM. Exit status: 0 clean; 1 valgrind reported errors or definite
leaks (or the exporter misbehaved); 2 the workload itself failed.
"""

import os
import re
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))
import harness as h  # noqa: E402

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"


def log(msg):
    sys.stderr.write("[valgrind %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    h.exporter_binary()
    tmp = h.TempDir("pki-valgrind-")
    d = tmp.path
    nginx = dns = silent = exp = None
    vlog = os.path.join(d, "valgrind.log")
    result = 2
    try:
        pki = h.PKI(os.path.join(d, "pki"))
        root = pki.root_ca(key="ec")
        inter = pki.intermediate_ca(root)
        good = pki.leaf(inter, "good", "good.test", sans=["DNS:good.test", "IP:127.0.0.1"],
                        extra_ext=["crlDistributionPoints = URI:http://crl.test/i.crl",
                                   "authorityInfoAccess = OCSP;URI:http://ocsp.test"])
        now = h.utc_now()
        expired = pki.leaf(inter, "expired", "expired.test", sans=["IP:127.0.0.1"],
                           not_before=now - 90 * 86400, not_after=now - 86400)
        selfs = pki.self_signed("self", "self.test", key="rsa:2048")
        nginx = h.NginxRunner(os.path.join(d, "nginx"))
        p_good = nginx.add(good, chain=[inter])
        p_exp = nginx.add(expired, chain=[inter])
        p_self = nginx.add(selfs)
        nginx.start()
        silent = h.SilentServer().start()
        corpus = os.environ.get("PKI_CORPUS") or os.path.join(HERE, "..", "..", "shared",
                                                              "corpus")
        crl_file = os.path.join(corpus, "crl", "adcs", "CA SINPE - PERSONA JURIDICA v2.crl")
        crl_html = os.path.join(d, "html.crl")
        with open(crl_html, "w") as f:
            f.write("<html><body>proxy error</body></html>\n")
        syslog_port = h.free_port()
        dns = h.FakeDnsServer({"good.test": ("A", "127.0.0.1")}).start()
        closed = h.free_port()

        store = os.path.join(d, "store")
        os.makedirs(store)
        shutil.copy(root.cert, os.path.join(store, "root.pem"))
        shutil.copy(inter.cert, os.path.join(store, "inter.pem"))
        csv = os.path.join(d, "partners.csv")
        with open(csv, "w") as f:
            f.write("Domain,Type,Port\r\n127.0.0.1,DIR,%d\r\nbad domain!,FED,\r\n" % p_good)

        have_crl = probe_kind_exists("crl")
        have_events = probe_events_exists()

        def config(extra_targets=()):
            mod = {"prober": "tls", "timeout": "10s", "tls": {"ca_file": root.cert}}
            extra_mods, extra_tg = {}, []
            if have_crl:
                extra_mods["crl"] = {"prober": "crl", "timeout": "5s", "follow_delta": False}
                extra_tg = [("crl", ["file://" + crl_html.replace(" ", "%20")]
                             + (["file://" + crl_file.replace(" ", "%20")]
                                if os.path.exists(crl_file) else []))]
            text = h.exporter_config(
                global_={"scrape_timeout": "60s", "concurrency": 8},
                modules={"web": mod,
                         "named": dict(mod, dns_servers=["127.0.0.1:%d" % dns.port]),
                         "quick": {"prober": "tls", "timeout": "3s"},
                         "files": {"prober": "file"},
                         "roots": {"prober": "store", "role": "intermediate"}},
                targets=[("web", ["127.0.0.1:%d" % p for p in (p_good, p_exp, p_self)]
                          + list(extra_targets)),
                         ("named", ["good.test:%d" % p_good, "nx.test:443"]),
                         ("quick", ["127.0.0.1:%d" % silent.port, "127.0.0.1:%d" % closed]),
                         ("files", [good.cert, os.path.join(d, "missing.pem")]),
                         ("roots", [store])] + extra_tg)
            text = text.replace("modules:\n", "modules:\n" + "".join(
                "  %s:\n%s\n" % (k, h.to_yaml(v, 2)) for k, v in extra_mods.items()), 1)
            text += "  - module: web\n    targets_file: %s\n" % csv
            if have_events:
                text += ("events:\n  rules:\n    - {name: schannel, source: Schannel}\n"
                         "  inputs:\n    - {syslog: \"tcp://127.0.0.1:%d\", name: tcp}\n"
                         % syslog_port)
            return text

        wrapper = [VALGRIND, "--leak-check=full", "--errors-for-leak-kinds=definite",
                   "--show-leak-kinds=definite", "--error-exitcode=99",
                   "--num-callers=30", "--log-file=" + vlog]
        supp = os.environ.get("PKI_VALGRIND_SUPP")
        if supp:
            wrapper.append("--suppressions=" + supp)
        exp = h.Exporter(os.path.join(d, "exp"), config(), wrapper=wrapper)
        t0 = time.monotonic()
        exp.start(timeout=120)
        log("exporter ready under valgrind after %.1fs" % (time.monotonic() - t0))

        # -- the workload -------------------------------------------------
        for i in range(2):
            m, r = exp.scrape(timeout=180)
            check(m.value("pki_probe_success", module="web",
                          target="127.0.0.1:%d" % p_good) == 1, "good target failed")
            check(m.value("pki_probe_success", module="named", target="nx.test:443") == 0,
                  "nx target succeeded")
            log("scrape %d: %d bytes" % (i + 1, len(r.body)))
        m, _ = exp.probe("web", "127.0.0.1:%d" % p_exp, timeout=120)
        check(m.value("pki_probe_success", module="web", target="127.0.0.1:%d" % p_exp) == 1,
              "probe of the expired leaf")
        m, _ = exp.probe("quick", "127.0.0.1:%d" % closed, timeout=120)
        check(m.value("pki_probe_success", module="quick",
                      target="127.0.0.1:%d" % closed) == 0, "closed port")
        check(exp.get("/probe?module=web&target=10.0.0.1:443").status == 403, "403")
        check(exp.get("/probe?module=web&target=a%00b").status == 400, "400 NUL")
        check(exp.get("/probe?module=nope&target=x").status == 400, "400 module")
        check(exp.get("/status", timeout=180).status == 200, "/status")
        check(exp.get("/-/healthy").status == 200, "healthy")
        check(exp.get("/-/ready").status == 200, "ready")
        check(exp.get("/nope").status == 404, "404")
        if have_events:
            import socket
            c = socket.create_connection(("127.0.0.1", syslog_port), timeout=10)
            c.sendall(b"<11>Jan  8 09:15:02 h1 Schannel[784]: A fatal alert\n"
                      + b"x" * 200000 + b"\n\x00\xff\n"
                      + b"<11>Jan  8 09:15:02 h2 Schannel[784]: A fatal alert\n")
            c.close()
            h.wait_until(lambda: "h2" in exp.get("/metrics", timeout=180).text, 60,
                         interval=0.5, what="the syslog lines counted")

        # reload by signal with one more target, then a broken file by HTTP
        exp.write_config(config(["127.0.0.1:%d" % closed]))
        exp.reload_signal()
        h.wait_until(lambda: exp.get("/probe?module=web&target=127.0.0.1:%d" % closed,
                                     timeout=120).status == 200,
                     120, interval=0.5, what="SIGHUP reload")
        exp.write_config("modules: [\n")
        r = exp.reload_http()
        check(r.status == 500, "broken reload -> %d" % r.status)
        m, _ = exp.scrape(timeout=180)
        check(m.value("pki_exporter_config_last_reload_successful") == 0, "reload status")
        log("workload done, SIGTERM")
        rc = exp.stop(signal.SIGTERM, timeout=120)
        exp = None
        result = verdict(rc, summarize(vlog))
    except Exception as e:  # noqa: BLE001
        log("workload failed: %s: %s" % (type(e).__name__, e))
        if exp is not None:
            log("exporter log tail:\n" + exp.log_tail(30))
            exp.stop(signal.SIGTERM, timeout=60)
        summarize(vlog)
        result = 2
    finally:
        for x in (nginx, dns, silent):
            if x is not None:
                try:
                    x.stop()
                except Exception:
                    pass
        keep = os.environ.get("PKI_VALGRIND_LOG")
        if keep and os.path.exists(vlog):
            shutil.copy(vlog, keep)
        tmp.cleanup()
    return result


def _config_check(text):
    tmp = h.TempDir("pki-valgrind-cc-")
    try:
        p = tmp.join("c.yml")
        with open(p, "w") as f:
            f.write(text)
        return h.run_exporter_cli(["--config.check", "--config.file=" + p]).returncode == 0
    finally:
        tmp.cleanup()


def probe_kind_exists(kind):
    return _config_check("modules:\n  m: {prober: %s}\n" % kind)


def probe_events_exists():
    return _config_check("events: {}\n")


def summarize(vlog):
    """Log valgrind's leak and error summary; return the whole log text."""
    try:
        with open(vlog) as f:
            text = f.read()
    except OSError:
        log("no valgrind log")
        return ""
    for key in ("definitely lost", "indirectly lost", "possibly lost", "still reachable"):
        m = re.search(r"%s: ([\d,]+) bytes in ([\d,]+) blocks" % key, text)
        if m:
            log("%-16s %s bytes in %s blocks" % (key + ":", m.group(1), m.group(2)))
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    if m:
        log("ERROR SUMMARY: %s errors" % m.group(1))
    return text


def verdict(rc, text):
    if rc == 99:
        log("valgrind: errors or definite leaks (exit 99); the records:")
        # valgrind prefixes every line with ==PID==; a record ends at a
        # blank ==PID== line
        records, cur = [], []
        for line in text.splitlines():
            body = re.sub(r"^==\d+== ?", "", line)
            if body.strip() == "":
                if cur:
                    records.append("\n".join(cur))
                cur = []
            else:
                cur.append(body)
        bad = [r for r in records if "definitely lost in loss record" in r
               or r.startswith(("Invalid", "Conditional jump", "Use of uninitialised",
                                "Syscall param", "Mismatched", "Source and destination"))]
        sys.stderr.write("\n\n".join(bad[:20]) + "\n")
        return 1
    if rc != 0:
        log("exporter exited %s after SIGTERM" % rc)
        sys.stderr.write(text[-4000:] + "\n")
        return 1
    log("valgrind: clean (exit 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
