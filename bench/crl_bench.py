#!/usr/bin/env python3
"""CRL benchmark: a 1,000,000-entry CRL through pki_exporter vs `openssl crl`.

Standard library only (reuses the process/proc helpers of tls_scrape.py).
See bench/README.md ("CRL benchmark") for what is measured and how.

Outline:
  * fixtures (every run): an RSA-2048 CA (openssl req), then a real
    CertificateList of N entries: the tbsCertList is written by this script
    (16 random bytes per serial, half of the entries with a reasonCode, a CRL
    Number), signed with `openssl dgst -sha256 -sign`, and checked with
    `openssl crl -verify -CAfile` before anything is measured;
  * nginx serves it on a free loopback port (access log: one line per
    request with its status, so downloads can be counted);
  * per repeat, in the same run:
      - `openssl crl -inform DER -noout -nextupdate` (and with -verify):
        wall, CPU and peak RSS from wait4();
      - a fresh pki_exporter with one crl module (issuer_file = the CA):
        cold /metrics scrape (fetch over HTTP, signature verified, index
        built): wall, exporter CPU (/proc/PID/stat), peak RSS (VmHWM, reset
        before the scrape) and the index size the exporter logs;
        warm scrape right after (cache, must cost no request);
        a scrape after max_interval (a conditional GET, must be a 304).
  * a table (medians) on stdout, optionally JSON.
"""

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls_scrape as tb  # noqa: E402  (process and /proc helpers)

log = tb.log


# --------------------------------------------------------------------------
# the CRL
# --------------------------------------------------------------------------

def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def der_int(b):
    b = b.lstrip(b"\0") or b"\0"
    if b[0] & 0x80:
        b = b"\0" + b
    return tlv(0x02, b)


SHA256_RSA = tlv(0x30, tlv(0x06, bytes.fromhex("2a864886f70d01010b")) + b"\x05\x00")


def ca_name_der(d, timeout):
    """The CA's subject, DER, from its certificate (the CRL's issuer)."""
    der = tb.run_openssl(["x509", "-in", "ca.pem", "-outform", "DER"], d, timeout)
    # Certificate -> tbsCertificate -> [0] version, serial, sigalg, issuer,
    # validity, subject: walk the first levels
    def read(buf, off):
        tag = buf[off]
        ln = buf[off + 1]
        hdr = 2
        if ln & 0x80:
            k = ln & 0x7f
            ln = int.from_bytes(buf[off + 2:off + 2 + k], "big")
            hdr += k
        return tag, off + hdr, ln, off + hdr + ln
    _, c, _, _ = read(der, 0)              # Certificate
    _, c, _, _ = read(der, c)              # tbsCertificate contents
    fields = []
    while len(fields) < 6:
        tag, cs, ln, end = read(der, c)
        fields.append(der[c:end])
        c = end
    # [0] version, serial, signature, issuer, validity, subject
    return fields[5]


def build_crl(d, n, timeout):
    """Writes ca.key, ca.pem, big.crl (DER). Returns (path, bytes, seconds)."""
    t0 = time.monotonic()
    tb.run_openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                    "-out", "ca.pem", "-days", "30", "-subj", "/O=pki_exporter bench/CN=Bench CRL CA",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d, timeout)
    issuer = ca_name_der(d, timeout)
    now = time.gmtime()
    this = time.strftime("%y%m%d%H%M%SZ", now).encode()
    nxt = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 7 * 86400)).encode()
    date = tlv(0x17, b"250101000000Z")
    reasons = [tlv(0x30, tlv(0x30, tlv(0x06, b"\x55\x1d\x15") + tlv(0x04, tlv(0x0a, bytes([r])))))
               for r in (1, 4, 5)]     # keyCompromise, superseded, cessationOfOperation
    rnd = os.urandom(16 * n)
    ents = []
    for i in range(n):
        body = der_int(rnd[16 * i:16 * i + 16]) + date
        if i & 1:
            body += reasons[i % 3]
        ents.append(tlv(0x30, body))
    revoked = tlv(0x30, b"".join(ents))
    del ents, rnd
    exts = tlv(0xa0, tlv(0x30, tlv(0x30, tlv(0x06, b"\x55\x1d\x14") + tlv(0x04, der_int(b"\x2a")))))
    tbs = tlv(0x30, der_int(b"\x01") + SHA256_RSA + issuer + tlv(0x17, this) + tlv(0x17, nxt)
              + revoked + exts)
    del revoked
    with open(os.path.join(d, "tbs.der"), "wb") as f:
        f.write(tbs)
    tb.run_openssl(["dgst", "-sha256", "-sign", "ca.key", "-out", "tbs.sig", "tbs.der"], d, timeout)
    with open(os.path.join(d, "tbs.sig"), "rb") as f:
        sig = f.read()
    crl = tlv(0x30, tbs + SHA256_RSA + tlv(0x03, b"\x00" + sig))
    os.unlink(os.path.join(d, "tbs.der"))
    www = os.path.join(d, "www")
    os.makedirs(www, exist_ok=True)
    path = os.path.join(www, "big.crl")
    with open(path, "wb") as f:
        f.write(crl)
    r = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-CAfile",
                        os.path.join(d, "ca.pem"), "-verify"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0 or "verify OK" not in out:
        raise RuntimeError("openssl crl -verify does not accept the generated CRL: %s" % out[-500:])
    return path, len(crl), time.monotonic() - t0


# --------------------------------------------------------------------------
# nginx serving it
# --------------------------------------------------------------------------

def start_http(nginx_bin, d, deadline):
    port = tb.free_port()
    conf = """\
user root;
worker_processes 1;
pid %(d)s/nginx.pid;
events { worker_connections 64; }
http {
    log_format hits '$status $request_method $body_bytes_sent';
    access_log %(d)s/access.log hits;
    sendfile on;
    default_type application/pkix-crl;
    server {
        listen 127.0.0.1:%(port)d;
        root %(d)s/www;
    }
}
""" % {"d": d, "port": port}
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    p, workers = tb.start_nginx(nginx_bin, d, [port], deadline)
    return port, p, workers


def hits(d):
    """Requests nginx served, by status."""
    out = {}
    try:
        with open(os.path.join(d, "access.log")) as f:
            for line in f:
                st = line.split()[0]
                out[st] = out.get(st, 0) + 1
    except OSError:
        pass
    return out


def hits_delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


# --------------------------------------------------------------------------
# phases
# --------------------------------------------------------------------------

def run_openssl_crl(path, ca, verify, timeout):
    """One `openssl crl` run. CPU and peak RSS come from GNU time, whose
    child openssl is: a child of this (large) Python process would report
    our RSS as its ru_maxrss, which Linux carries over exec."""
    argv = ["openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-nextupdate"]
    if verify:
        argv += ["-CAfile", ca, "-verify"]
    argv = ["/usr/bin/time", "-f", "TIME %M %U %S"] + argv
    t0 = time.perf_counter()
    p = tb.spawn("openssl crl", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        tb.stop_proc("openssl crl", p, signal.SIGKILL)
        raise RuntimeError("openssl crl timed out")
    wall = time.perf_counter() - t0
    out = out.decode(errors="replace")
    err = err.decode(errors="replace")
    m = re.search(r"^TIME (\d+) ([0-9.]+) ([0-9.]+)$", err, re.M)
    if p.returncode != 0 or not m or "nextUpdate=" not in out or (verify and "verify OK" not in err + out):
        raise RuntimeError("openssl crl failed: %s %s" % (out[-300:], err[-300:]))
    return {"wall_s": wall, "cpu_s": float(m.group(2)) + float(m.group(3)),
            "peak_rss_mb": int(m.group(1)) / 1024.0}


def sample(body, name):
    m = re.search(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), body, re.M)
    return float(m.group(2)) if m else None


def scrape(port, timeout):
    t0 = time.perf_counter()
    st, body = tb.http_get(port, "/metrics", timeout)
    return st, body.decode(errors="replace"), time.perf_counter() - t0


def run_ours(args, d, http_port, crl_bytes, n, rep):
    url = "http://127.0.0.1:%d/big.crl" % http_port
    cfg = os.path.join(d, "pki_exporter.yml")
    with open(cfg, "w") as f:
        f.write("""\
global:
  scrape_timeout: 120s
modules:
  crl_big:
    prober: crl
    timeout: 60s
    issuer_file: %(ca)s
    max_bytes: 256MiB
    min_interval: 1s
    max_interval: %(maxi)ds
targets:
  - module: crl_big
    targets: ["%(url)s"]
""" % {"ca": os.path.join(d, "ca.pem"), "url": url, "maxi": args.max_interval})
    port = tb.free_port()
    errp = os.path.join(d, "exporter-%d.log" % rep)
    errf = open(errp, "wb")
    p = tb.spawn("pki_exporter", [args.exporter, "--config.file=" + cfg,
                                  "--web.listen-address=127.0.0.1:%d" % port, "--log.level=debug"],
                 stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, cwd=d)
    res = {}
    try:
        tb.wait_http_ok("pki_exporter", p, port, ["/-/ready"], time.monotonic() + 30, errp)
        time.sleep(0.3)
        idle = tb.proc_status_kb(p.pid, "VmRSS")
        res["idle_rss_mb"] = idle / 1024.0
        # cold: fetch, verify, index
        h0 = hits(d)
        reset_ok = tb.reset_hwm(p.pid)
        c0 = tb.proc_cpu_seconds(p.pid)
        st, body, wall = scrape(port, args.phase_timeout)
        c1 = tb.proc_cpu_seconds(p.pid)
        hwm = tb.proc_status_kb(p.pid, "VmHWM")
        after = tb.proc_status_kb(p.pid, "VmRSS")
        if st != 200:
            raise RuntimeError("cold scrape: HTTP %d" % st)
        entries = sample(body, "pki_crl_entries")
        sigok = sample(body, "pki_crl_signature_valid")
        fetch_ok = sample(body, "pki_crl_fetch_success")
        if entries != n or sigok != 1 or fetch_ok != 1:
            raise RuntimeError("cold scrape: entries=%s signature_valid=%s fetch_success=%s"
                               % (entries, sigok, fetch_ok))
        with open(errp, errors="replace") as f:
            m = re.findall(r"(\d+) bytes, (\d+) entries, index (\d+) bytes \(width (\d+), (\d+) odd\), "
                           r"parsed in ([0-9.]+) s", f.read())
        if not m:
            raise RuntimeError("no index line in the exporter log (debug level)")
        ib = int(m[-1][2])
        res["cold"] = {"wall_s": wall, "cpu_s": c1 - c0, "peak_rss_mb": hwm / 1024.0,
                       "peak_delta_mb": (hwm - idle) / 1024.0, "rss_after_mb": after / 1024.0,
                       "hwm_reset": reset_ok, "downloads": hits_delta(h0, hits(d)),
                       "index_bytes": ib, "index_bytes_per_entry": ib / float(n),
                       "index_width": int(m[-1][3]), "index_odd": int(m[-1][4]),
                       "parse_s": float(m[-1][5])}
        # warm: within min_interval, the cache answers; no request at all
        h0 = hits(d)
        c0 = tb.proc_cpu_seconds(p.pid)
        st, body, wall = scrape(port, args.phase_timeout)
        c1 = tb.proc_cpu_seconds(p.pid)
        time.sleep(0.2)   # nginx writes its log line after the response
        res["warm"] = {"wall_s": wall, "cpu_s": c1 - c0, "requests": hits_delta(h0, hits(d)),
                       "from_cache": sample(body, "pki_crl_from_cache")}
        # after max_interval: a conditional GET, answered 304
        time.sleep(args.max_interval + 0.5)
        h0 = hits(d)
        c0 = tb.proc_cpu_seconds(p.pid)
        st, body, wall = scrape(port, args.phase_timeout)
        c1 = tb.proc_cpu_seconds(p.pid)
        time.sleep(0.2)
        res["revalidate"] = {"wall_s": wall, "cpu_s": c1 - c0, "requests": hits_delta(h0, hits(d)),
                             "entries": sample(body, "pki_crl_entries")}
    finally:
        res["exit"] = tb.stop_proc("pki_exporter", p)
        errf.close()
    return res


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1000000, help="revoked entries (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=3, help="measurements, medians reported (default 3)")
    ap.add_argument("--exporter", default=os.environ.get("PKI_EXPORTER", "/work/main/build/pki_exporter"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--max-interval", type=int, default=3,
                    help="module max_interval, seconds: the revalidation scrape waits this long")
    ap.add_argument("--phase-timeout", type=float, default=120.0)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--workdir", help="parent for the temp dir (default $TMPDIR)")
    args = ap.parse_args()
    if not os.access(args.exporter, os.X_OK):
        ap.error("exporter %s not executable" % args.exporter)

    atexit.register(tb.cleanup)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, tb._on_signal)
    d = tempfile.mkdtemp(prefix="pki_crl_bench.", dir=args.workdir)
    result = {"entries": args.entries, "runs": []}
    rc = 0
    try:
        log("generating a %d-entry CRL in %s" % (args.entries, d))
        path, size, gen_s = build_crl(d, args.entries, 600)
        result.update(crl_bytes=size, generate_s=gen_s)
        log("CRL: %.1f MB, generated and verified by openssl in %.1f s" % (size / 1e6, gen_s))
        port, ngx, workers = start_http(args.nginx, d, time.monotonic() + 30)
        for rep in range(args.repeat):
            run = {"openssl": run_openssl_crl(path, os.path.join(d, "ca.pem"), False, args.phase_timeout),
                   "openssl_verify": run_openssl_crl(path, os.path.join(d, "ca.pem"), True,
                                                     args.phase_timeout),
                   "ours": run_ours(args, d, port, size, args.entries, rep)}
            result["runs"].append(run)
            log("run %d: openssl %.3f s, ours cold %.3f s, warm requests %s, revalidate %s"
                % (rep + 1, run["openssl"]["wall_s"], run["ours"]["cold"]["wall_s"],
                   run["ours"]["warm"]["requests"], run["ours"]["revalidate"]["requests"]))
        runs = result["runs"]
        m = {
            "openssl": {k: med([r["openssl"][k] for r in runs]) for k in ("wall_s", "cpu_s", "peak_rss_mb")},
            "openssl_verify": {k: med([r["openssl_verify"][k] for r in runs])
                               for k in ("wall_s", "cpu_s", "peak_rss_mb")},
            "ours": {k: med([r["ours"]["cold"][k] for r in runs])
                     for k in ("wall_s", "cpu_s", "peak_rss_mb", "peak_delta_mb", "rss_after_mb",
                               "index_bytes_per_entry", "parse_s")},
            "idle_rss_mb": med([r["ours"]["idle_rss_mb"] for r in runs]),
        }
        ratios = [r["ours"]["cold"]["wall_s"] / r["openssl"]["wall_s"] for r in runs]
        m["wall_ratio"] = med(ratios)
        m["rss_over_file"] = m["ours"]["peak_rss_mb"] * 1048576 / size
        warm_req = [sum(r["ours"]["warm"]["requests"].values()) for r in runs]
        reval = [r["ours"]["revalidate"]["requests"] for r in runs]
        result["median"] = m
        mb = size / 1048576.0
        print()
        print("CRL: %d entries, %.1f MiB DER (%.1f bytes/entry); %d run(s), medians"
              % (args.entries, mb, size / float(args.entries), len(runs)))
        print("| what | wall s | CPU s | peak RSS MiB | vs target |")
        print("|---|---|---|---|---|")
        o, ov, u = m["openssl"], m["openssl_verify"], m["ours"]
        print("| `openssl crl -inform DER -noout -nextupdate` | %.3f | %.2f | %.1f | |"
              % (o["wall_s"], o["cpu_s"], o["peak_rss_mb"]))
        print("| `openssl crl ... -CAfile ca.pem -verify` | %.3f | %.2f | %.1f | |"
              % (ov["wall_s"], ov["cpu_s"], ov["peak_rss_mb"]))
        print("| pki_exporter, cold /metrics (HTTP fetch + verify + index) | %.3f | %.2f | %.1f "
              "(idle %.1f, +%.1f) | wall %.3fx openssl (target <= 0.25x); peak %.2fx file (target <= 2x) |"
              % (u["wall_s"], u["cpu_s"], u["peak_rss_mb"], m["idle_rss_mb"], u["peak_delta_mb"],
                 m["wall_ratio"], m["rss_over_file"]))
        print("| index kept per entry | | | | %.2f bytes (target <= 20); RSS after the scrape %.1f MiB |"
              % (u["index_bytes_per_entry"], u["rss_after_mb"]))
        print("| warm scrape (cached, unchanged) | %.3f | %.2f | | requests to the CRL server: %s |"
              % (med([r["ours"]["warm"]["wall_s"] for r in runs]),
                 med([r["ours"]["warm"]["cpu_s"] for r in runs]), warm_req))
        print("| scrape after max_interval | %.3f | %.2f | | requests: %s |"
              % (med([r["ours"]["revalidate"]["wall_s"] for r in runs]),
                 med([r["ours"]["revalidate"]["cpu_s"] for r in runs]), reval))
        print("(crl_parse alone, from the exporter's log: %.3f s)" % u["parse_s"])
        if any(warm_req) or any(set(x) - {"304"} for x in reval):
            tb.banner("a warm scrape downloaded the CRL (expected: no request, then a 304)")
            rc = 2
    except Exception as e:
        tb.banner("benchmark aborted: %s: %s" % (type(e).__name__, e))
        result["error"] = "%s: %s" % (type(e).__name__, e)
        rc = 1
    finally:
        tb.cleanup()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2, sort_keys=True)
        if args.keep_tmp:
            log("kept %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
