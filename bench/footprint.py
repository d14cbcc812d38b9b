#!/usr/bin/env python3
"""Footprint of pki_exporter: stripped binary size, start-to-ready time,
idle RSS and what it is made of. Standard library only; see bench/README.md
("Footprint").

  * binary: `strip` of a copy (size of the file), `size` sections, shared
    libraries it loads (ldd);
  * start to ready: exec of the exporter to the first `GET /-/ready` that
    answers 200, polled every millisecond on loopback; K starts (default 20),
    median and spread; every process stopped by PID;
  * idle RSS: one more start, 1 s after ready: VmRSS, RssAnon/RssFile,
    Pss from /proc/PID/smaps_rollup, and RSS per mapping (smaps) summed by
    file: which shared libraries and how much anonymous memory.

The configuration is a realistic small one: a tls module with a CA file, a
crl module, one target each (nothing is probed while idle: probes run per
scrape).
"""

import argparse
import atexit
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_scrape as tb  # noqa: E402

log = tb.log


def write_config(d):
    tb.run_openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=footprint CA"], d, 60)
    cfg = os.path.join(d, "pki_exporter.yml")
    with open(cfg, "w") as f:
        f.write("""\
modules:
  tls_connect:
    prober: tls
    timeout: 5s
    tls: {ca_file: %(d)s/ca.pem}
  crl:
    prober: crl
    issuer_file: %(d)s/ca.pem
targets:
  - module: tls_connect
    targets: ["127.0.0.1:9"]
  - module: crl
    targets: ["http://127.0.0.1:9/ca.crl"]
""" % {"d": d})
    return cfg


def ready_once(exe, cfg, d, timeout):
    port = tb.free_port()
    errf = open(os.path.join(d, "exporter.log"), "ab")
    t0 = time.perf_counter()
    p = subprocess.Popen([exe, "--config.file=" + cfg, "--web.listen-address=127.0.0.1:%d" % port,
                          "--log.level=warn"], stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, cwd=d)
    tb._procs.append(("pki_exporter", p))
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/-/ready")
            st = c.getresponse().status
            c.close()
            if st == 200:
                return p, port, time.perf_counter() - t0
        except OSError:
            pass
        if p.poll() is not None:
            raise RuntimeError("exporter exited with %s" % p.returncode)
        if time.monotonic() > deadline:
            raise RuntimeError("not ready within %ss" % timeout)
        time.sleep(0.001)


def smaps_by_file(pid):
    out = {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and ":" not in parts[0]:
                name = parts[5] if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                out[name] = out.get(name, 0) + int(parts[1])
    return out


def rollup(pid):
    r = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                r[parts[0][:-1]] = int(parts[1])
    return r


def references(d, args):
    """Idle RSS of reference processes, measured in the same run."""
    ref = {}
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rss_floor.c")
    exe = os.path.join(d, "rss_floor")
    r = subprocess.run(["cc", "-O2", "-o", exe, src, "-lssl", "-lcrypto"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        log("rss_floor.c did not build: %s" % r.stdout.decode(errors="replace")[-500:])
    else:
        for key, argv in (("empty", [exe]), ("openssl_client", [exe, os.path.join(d, "ca.pem")])):
            out = subprocess.run(argv, stdout=subprocess.PIPE, timeout=30, check=True).stdout
            ref[key] = json.loads(out)
    bb = shutil.which("prometheus-blackbox-exporter")
    if bb and not args.skip_blackbox:
        cfg = os.path.join(d, "blackbox.yml")
        with open(cfg, "w") as f:
            f.write("modules:\n  tls_connect:\n    prober: tcp\n    timeout: 5s\n    tcp:\n"
                    "      tls: true\n      tls_config:\n        ca_file: %s\n" % os.path.join(d, "ca.pem"))
        port = tb.free_port()
        errf = open(os.path.join(d, "blackbox.log"), "ab")
        p = tb.spawn("blackbox", [bb, "--config.file=" + cfg, "--web.listen-address=127.0.0.1:%d" % port,
                                  "--log.level=warn"], stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, cwd=d)
        try:
            tb.wait_http_ok("blackbox", p, port, ["/-/healthy", "/"], time.monotonic() + 30,
                            os.path.join(d, "blackbox.log"))
            time.sleep(1.0)
            ref["blackbox"] = {k + "_kb": tb.proc_status_kb(p.pid, k) for k in ("VmRSS", "RssAnon", "RssFile")}
        finally:
            tb.stop_proc("blackbox", p)
    return ref


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exporter", default=os.environ.get("PKI_EXPORTER", "/work/main/build/pki_exporter"))
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--skip-blackbox", action="store_true", help="no blackbox_exporter reference row")
    args = ap.parse_args()
    atexit.register(tb.cleanup)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, tb._on_signal)
    d = tempfile.mkdtemp(prefix="pki_footprint.")
    res = {}
    try:
        cfg = write_config(d)
        # binary
        stripped = os.path.join(d, "pki_exporter.stripped")
        shutil.copy(args.exporter, stripped)
        subprocess.run(["strip", stripped], check=True)
        sz = subprocess.run(["size", stripped], stdout=subprocess.PIPE, check=True).stdout.decode().split("\n")[1]
        text, data, bss = (int(x) for x in sz.split()[:3])
        libs = [l.split()[0] for l in subprocess.run(["ldd", args.exporter], stdout=subprocess.PIPE,
                                                      check=True).stdout.decode().splitlines() if "=>" in l]
        res["binary"] = {"unstripped_bytes": os.path.getsize(args.exporter),
                         "stripped_bytes": os.path.getsize(stripped), "text": text, "data": data, "bss": bss,
                         "shared_libraries": len(libs)}
        # start to ready
        times = []
        for _ in range(args.starts):
            p, port, t = ready_once(args.exporter, cfg, d, 10)
            times.append(t)
            tb.stop_proc("pki_exporter", p)
        times.sort()
        res["ready_s"] = {"median": statistics.median(times), "min": times[0], "max": times[-1],
                          "p90": times[int(0.9 * (len(times) - 1))], "n": len(times)}
        # idle
        p, port, _ = ready_once(args.exporter, cfg, d, 10)
        time.sleep(1.0)
        roll = rollup(p.pid)
        byfile = smaps_by_file(p.pid)
        res["idle"] = {"VmRSS_kb": tb.proc_status_kb(p.pid, "VmRSS"),
                       "RssAnon_kb": tb.proc_status_kb(p.pid, "RssAnon"),
                       "RssFile_kb": tb.proc_status_kb(p.pid, "RssFile"),
                       "Pss_kb": roll.get("Pss"), "Pss_Anon_kb": roll.get("Pss_Anon"),
                       "Pss_File_kb": roll.get("Pss_File"), "Private_Dirty_kb": roll.get("Private_Dirty"),
                       "Shared_Clean_kb": roll.get("Shared_Clean"),
                       "threads": tb.proc_status_kb(p.pid, "Threads"),
                       "by_mapping_kb": dict(sorted(byfile.items(), key=lambda kv: -kv[1])[:15])}
        tb.stop_proc("pki_exporter", p)
        res["reference"] = references(d, args)
        b, r, i = res["binary"], res["ready_s"], res["idle"]
        print()
        print("| what | figure | target |")
        print("|---|---|---|")
        print("| stripped binary | %.0f KiB (text %.0f KiB, data %.0f KiB, bss %.0f KiB); %d shared libraries "
              "loaded | reported |" % (b["stripped_bytes"] / 1024.0, b["text"] / 1024.0, b["data"] / 1024.0,
                                       b["bss"] / 1024.0, b["shared_libraries"]))
        print("| start to ready (exec to /-/ready 200) | median %.1f ms (min %.1f, p90 %.1f, max %.1f; %d starts) "
              "| <= 50 ms |" % (1000 * r["median"], 1000 * r["min"], 1000 * r["p90"], 1000 * r["max"], r["n"]))
        print("| idle RSS | %.1f MiB VmRSS = %.1f MiB file-backed + %.1f MiB anonymous; PSS %.1f MiB | <= 4 MiB |"
              % (i["VmRSS_kb"] / 1024.0, i["RssFile_kb"] / 1024.0, i["RssAnon_kb"] / 1024.0,
                 i["Pss_kb"] / 1024.0))
        ref = res["reference"]
        for key, what in (("empty", "bench/rss_floor.c before any OpenSSL call (libssl and libcrypto mapped, not initialised)"),
                          ("openssl_client", "the least TLS client at rest (bench/rss_floor.c: OpenSSL "
                                             "initialised, one client SSL_CTX, the same CA file)"),
                          ("blackbox", "prometheus-blackbox-exporter, 1 s after /-/healthy (one tls module)")):
            v = ref.get(key)
            if v:
                print("| reference: %s | %.1f MiB VmRSS = %.1f MiB file-backed + %.1f MiB anonymous | |"
                      % (what, v["VmRSS_kb"] / 1024.0, v["RssFile_kb"] / 1024.0, v["RssAnon_kb"] / 1024.0))
        print()
        print("idle RSS by mapping (KiB): " + ", ".join("%s %d" % (os.path.basename(k) or k, v)
                                                    for k, v in i["by_mapping_kb"].items()))
    finally:
        tb.cleanup()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
