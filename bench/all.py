#!/usr/bin/env python3
"""Every benchmark of issue 9 in one go, and one table of its targets.

Runs, one after the other (never two at once, so they do not share the
cores), each with --json into a work dir:

  tls       bench/tls_scrape.py --targets 1000 --repeat R            (ECDSA)
  mix       bench/tls_scrape.py --targets 1000 --repeat R --mix      (half RSA)
  scaling   bench/tls_scrape.py --scaling --targets 10000 --repeat R
  render    bench/tls_scrape.py --targets 4000 --repeat 1 --render-bench
            --skip-blackbox --skip-floor                             (100,000 series)
  crl       bench/crl_bench.py --repeat R                            (1,000,000 entries)
  events    bench/events_ingest.py --lines 200000 --repeat R
  footprint bench/footprint.py

then prints one table: every target of issue 9, the figure measured (a
ratio against the peer or floor measured in the same run where the target
is one), and met / NOT MET. Each benchmark keeps its own output (in the
work dir, `<name>.log`); `--json FILE` writes the table and every
benchmark's JSON. Standard library only.

    bench/all.py                      # R = 3, ~6 minutes on 2 cores
    bench/all.py --repeat 1 --only tls,crl,footprint
    bench/all.py --json /tmp/all.json --keep-tmp

Exit status: 0 when every benchmark ran (whatever the verdicts), 1 when
one could not run or failed its own checks (its log is named).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ("tls", "mix", "scaling", "render", "crl", "events", "footprint")


def commands(r, j):
    """Argument vectors per benchmark; j(name) is its JSON path."""
    tls = [sys.executable, os.path.join(HERE, "tls_scrape.py")]
    return {
        "tls": tls + ["--targets", "1000", "--repeat", str(r), "--json", j("tls")],
        "mix": tls + ["--targets", "1000", "--repeat", str(r), "--mix", "--json", j("mix")],
        "scaling": tls + ["--scaling", "--targets", "10000", "--repeat", str(max(r, 1)), "--json", j("scaling")],
        "render": tls + ["--targets", "4000", "--repeat", "1", "--render-bench", "--skip-blackbox",
                         "--skip-floor", "--json", j("render")],
        "crl": [sys.executable, os.path.join(HERE, "crl_bench.py"), "--repeat", str(r), "--json", j("crl")],
        "events": [sys.executable, os.path.join(HERE, "events_ingest.py"), "--lines", "200000",
                   "--repeat", str(r), "--json", j("events")],
        "footprint": [sys.executable, os.path.join(HERE, "footprint.py"), "--json", j("footprint")],
    }


def dig(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def row(rows, what, figure, value, limit, le=True):
    """One target: value against limit (value <= limit when le)."""
    if value is None:
        rows.append((what, "not measured", "-"))
        return
    met = value <= limit if le else value >= limit
    rows.append((what, figure, "met" if met else "NOT MET"))


def verdicts(res):
    rows = []
    t = res.get("tls")
    if t:
        r = dig(t, "ratios", "ours warm / blackbox") or {}
        m = dig(t, "median", "ours warm") or {}
        row(rows, "TLS 1,000 ECDSA: CPU/target vs blackbox (<= 0.8x)",
            "%.3fx (%.3f vs %.3f ms)" % (r.get("cpu_per_target", 0), m.get("cpu_ms_per_target", 0),
                                          dig(t, "median", "blackbox", "cpu_ms_per_target") or 0),
            r.get("cpu_per_target"), 0.8)
        f = dig(t, "ratios", "ours warm / floor", "cpu_per_target")
        row(rows, "TLS 1,000 ECDSA: CPU/handshake vs the floor (<= 1.05x)", "%.3fx" % (f or 0), f, 1.05)
        row(rows, "TLS 1,000 ECDSA: wall vs blackbox (<= 0.9x)", "%.3fx" % (r.get("wall") or 0),
            r.get("wall"), 0.9)
        row(rows, "TLS 1,000 ECDSA: peak RSS (<= 12 MB)",
            "%.1f MiB (%.2fx blackbox)" % (m.get("peak_rss_mb") or 0, r.get("rss") or 0),
            (m.get("peak_rss_mb") or 0) * 1.048576, 12)
        c = dig(t, "ratios", "ours cold / blackbox", "cpu_per_target")
        rows.append(("TLS 1,000 ECDSA: first (cold) scrape, CPU vs blackbox", "%.3fx" % (c or 0),
                     "(reported)"))
    t = res.get("mix")
    if t:
        r = dig(t, "ratios", "ours warm / blackbox", "cpu_per_target")
        row(rows, "TLS 1,000 half RSA: CPU/target vs blackbox (<= 0.8x)", "%.3fx" % (r or 0), r, 0.8)
        f = dig(t, "ratios", "ours warm / floor", "cpu_per_target")
        row(rows, "TLS 1,000 half RSA: CPU/handshake vs the floor (<= 1.05x)", "%.3fx" % (f or 0), f, 1.05)
    s = dig(res.get("scaling"), "scaling", "median")
    if s:
        for side in ("ours warm", "ours cold"):
            v = dig(s, side, "ratio", "cpu_s")
            row(rows, "scaling: CPU of 10,000 / 1,000 targets, %s (<= 10.5x)" % side,
                "%.2fx (paired %.2fx)" % (v or 0, dig(s, side, "paired_ratio", "cpu_s") or 0), v, 10.5)
    rb = dig(res.get("render"), "render")
    if rb:
        row(rows, "render %d series: share of the scrape (< 5 %%)" % rb["series"],
            "%.2f %% (%.1f ms)" % (100 * rb["share_of_scrape_wall"], 1000 * rb["render_s"]),
            rb["share_of_scrape_wall"], 0.05)
    c = dig(res.get("crl"), "median")
    if c:
        row(rows, "CRL 1,000,000 entries: wall vs openssl crl (<= 0.25x)", "%.3fx" % c["wall_ratio"],
            c["wall_ratio"], 0.25)
        row(rows, "CRL: peak RSS vs the file (<= 2x)", "%.2fx" % c["rss_over_file"], c["rss_over_file"], 2)
        b = dig(c, "ours", "index_bytes_per_entry")
        row(rows, "CRL: kept per entry (<= 20 bytes)", "%.1f bytes" % (b or 0), b, 20)
        runs = dig(res.get("crl"), "runs") or []
        warm = [sum((dig(r, "ours", "warm", "requests") or {}).values()) for r in runs]
        reval = [dig(r, "ours", "revalidate", "requests") or {} for r in runs]
        rows.append(("CRL: warm scrape downloads nothing; after max_interval a conditional GET",
                     "requests when warm %s; after max_interval %s" % (warm, reval),
                     "met" if runs and not any(warm) and all(set(x) == {"304"} for x in reval)
                     else "NOT MET"))
    e = res.get("events")
    if e:
        row(rows, "events: lines/s/core vs mtail (>= 3x)", "%.2fx" % e["ratio_per_core"],
            e["ratio_per_core"], 3, le=False)
        row(rows, "events: peak RSS vs mtail (<= 0.5x)", "%.2fx" % e["ratio_rss"], e["ratio_rss"], 0.5)
    f = res.get("footprint")
    if f:
        idle = f["idle"]["VmRSS_kb"] / 1024.0
        ref = dig(f, "reference", "openssl_client", "VmRSS_kb")
        row(rows, "footprint: idle RSS (<= 4 MB)",
            "%.1f MiB (least OpenSSL client at rest: %s; blackbox: %s)"
            % (idle, "%.1f MiB" % (ref / 1024.0) if ref else "-",
               "%.1f MiB" % (dig(f, "reference", "blackbox", "VmRSS_kb") / 1024.0)
               if dig(f, "reference", "blackbox", "VmRSS_kb") else "-"),
            idle * 1.048576, 4)
        row(rows, "footprint: start to ready (<= 50 ms)", "%.1f ms" % (1000 * f["ready_s"]["median"]),
            f["ready_s"]["median"], 0.05)
        rows.append(("footprint: stripped binary", "%.0f KiB" % (f["binary"]["stripped_bytes"] / 1024.0),
                     "(reported)"))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs per benchmark (medians); default 3")
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(NAMES))
    ap.add_argument("--timeout", type=int, default=1800, help="hard limit per benchmark, seconds")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    only = args.only.split(",") if args.only else list(NAMES)
    bad = [n for n in only if n not in NAMES]
    if bad:
        ap.error("unknown benchmark(s): %s" % ", ".join(bad))
    work = tempfile.mkdtemp(prefix="pki_bench_all.")
    cmds = commands(args.repeat, lambda n: os.path.join(work, n + ".json"))
    res, failed = {}, []
    try:
        for name in only:
            logp = os.path.join(work, name + ".log")
            t0 = time.monotonic()
            print("[all] %s: %s" % (name, " ".join(cmds[name][1:])), flush=True)
            with open(logp, "wb") as lf:
                try:
                    rc = subprocess.run(cmds[name], stdout=lf, stderr=subprocess.STDOUT,
                                        timeout=args.timeout).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
            print("[all] %s: exit %s after %.0f s" % (name, rc, time.monotonic() - t0), flush=True)
            try:
                with open(os.path.join(work, name + ".json")) as f:
                    res[name] = json.load(f)
            except (OSError, ValueError):
                pass
            if rc != 0 or name not in res:
                failed.append(name)
        rows = verdicts(res)
        w = max(len(r[0]) for r in rows) if rows else 10
        print()
        print("| %-*s | %s | %s |" % (w, "target (issue 9)", "measured (same-run ratios)", "verdict"))
        print("|%s|---|---|" % ("-" * (w + 2)))
        for what, fig, v in rows:
            print("| %-*s | %s | %s |" % (w, what, fig, v))
        if failed:
            print("\nfailed or incomplete: %s (logs in %s)" % (", ".join(failed), work))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"verdicts": rows, "failed": failed, "results": res}, f, indent=1)
    finally:
        if args.keep_tmp or failed:
            print("work dir kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
