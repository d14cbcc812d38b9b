#!/usr/bin/env python3
"""TLS scrape benchmark: pki_exporter /metrics vs prometheus-blackbox-exporter /probe.

Standard library only. See bench/README.md for what is measured and how.

Outline (per run):
  * fixtures (once): root CA -> intermediate CA -> N leaf certs, built with the
    openssl CLI in a temp dir;
  * one nginx (once) with N TLS 1.3 server blocks on consecutive free loopback ports;
  * for each repeat:
      - pki_exporter: fresh process, wait for /-/ready, first /metrics scrape
        ("cold"), second /metrics scrape ("warm");
      - blackbox exporter: fresh process, N /probe requests at concurrency C
        from Python threads;
    for every phase: wall time, CPU seconds of the measured server process
    (utime+stime from /proc/PID/stat), peak RSS (VmHWM, reset per phase via
    /proc/PID/clear_refs when the kernel allows it), plus nginx and client CPU.
  * a table (medians over repeats) on stdout, optionally JSON.

With --scaling the repeats are instead rounds of M (--scaling-small, default
N/10) vs N targets against the same nginx, in alternating order (M then N,
N then M, ...): a fresh pki_exporter per size (cold + warm) and the floor
(no verification) per size; the table gives CPU, peak RSS and wall at both
sizes and CPU(N)/CPU(M) against 1.05 x N/M, so load drift between runs
cannot fake a non-linearity (JSON: "scaling").
"""

import argparse
import atexit
import concurrent.futures
import errno
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"

# --------------------------------------------------------------------------
# process bookkeeping: everything we start is recorded by PID and killed at exit
# --------------------------------------------------------------------------

_procs = []          # list of (name, Popen)
_extra_pids = []     # (name, pid) we did not spawn directly but own (nginx workers)
_cleanup_done = False


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def banner(msg):
    line = "!" * 78
    sys.stderr.write("\n%s\n!!! %s\n%s\n\n" % (line, msg, line))
    sys.stderr.flush()


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        state = st[st.rindex(")") + 2]
        return state != "Z"
    except (OSError, ValueError, IndexError):
        return False


def spawn(name, argv, **kw):
    log("start %s: %s" % (name, " ".join(argv)))
    p = subprocess.Popen(argv, **kw)
    _procs.append((name, p))
    return p


def stop_proc(name, p, sig=signal.SIGTERM, grace=10.0):
    """Stop one process we started, by PID. Returns its exit code (or None)."""
    if p.poll() is not None:
        return p.returncode
    try:
        os.kill(p.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log("%s (pid %d) did not exit after %s in %.0fs, SIGKILL" % (name, p.pid, sig, grace))
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            return p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


def cleanup():
    global _cleanup_done
    if _cleanup_done:
        return
    _cleanup_done = True
    for name, p in reversed(_procs):
        if p.poll() is None:
            stop_proc(name, p)
    for name, pid in _extra_pids:
        if pid_alive(pid):
            log("killing leftover %s pid %d" % (name, pid))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _on_signal(signum, frame):
    log("got signal %d, stopping and cleaning up" % signum)
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------

def proc_cpu_seconds(pid):
    """utime+stime of a process (all its threads), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime = field 14, stime = field 15
    return (int(fields[11]) + int(fields[12])) / float(CLK_TCK)


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def reset_hwm(pid):
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def children_of(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            if int(st[st.rindex(")") + 2:].split()[1]) == ppid:
                out.append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_sum(pids):
    tot = 0.0
    for pid in pids:
        try:
            tot += proc_cpu_seconds(pid)
        except OSError:
            pass
    return tot


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------
# ports
# --------------------------------------------------------------------------

def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
            return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def find_port_range(n, base=None):
    """First run of n consecutive free loopback ports, below the ephemeral range if possible."""
    eph_lo, eph_hi = ephemeral_range()
    if base:
        windows = [(base, 65536)]
    else:
        windows = [(20000, eph_lo), (1025, eph_lo), (eph_hi + 1, 65536)]
    for start, limit in windows:
        run_start = start
        for p in range(start, limit):
            if not port_free(p):
                run_start = p + 1
            elif p - run_start + 1 == n:
                if run_start <= eph_hi and p >= eph_lo:
                    log("warning: target ports %d-%d overlap the ephemeral range %d-%d"
                        % (run_start, p, eph_lo, eph_hi))
                return run_start
    raise RuntimeError("no run of %d consecutive free loopback ports found" % n)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[v3_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_int]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_leaf_ec]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_leaf_rsa]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def run_openssl(args, cwd, timeout):
    r = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed (%d): %s" % (" ".join(args), r.returncode,
                                                            r.stderr.decode(errors="replace")[-2000:]))
    return r.stdout


def genkey(kind, path, cwd, timeout):
    if kind == "ec":
        run_openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", path], cwd, timeout)
    else:
        run_openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                     "-out", path], cwd, timeout)


def leaf_kind(i, key_type):
    if key_type == "ecdsa":
        return "ec"
    if key_type == "rsa":
        return "rsa"
    return "ec" if i % 2 == 0 else "rsa"   # mix: alternate, half/half


def build_fixtures(d, n, key_type, distinct_keys, jobs, deadline):
    """Returns list of dicts {i, kind, chain, key}."""
    t0 = time.monotonic()

    def left():
        rem = deadline - time.monotonic()
        if rem <= 0:
            raise RuntimeError("fixture phase timed out")
        return rem

    with open(os.path.join(d, "bench.cnf"), "w") as f:
        f.write(OPENSSL_CNF)
    os.makedirs(os.path.join(d, "certs"), exist_ok=True)
    os.makedirs(os.path.join(d, "keys"), exist_ok=True)
    cnf = ["-config", "bench.cnf"]
    # root CA (ECDSA P-256, self-signed)
    genkey("ec", "root.key", d, left())
    run_openssl(["req", "-new", "-x509"] + cnf + ["-extensions", "v3_root", "-key", "root.key",
                "-subj", "/O=pki_exporter bench/CN=bench root CA", "-days", "3650",
                "-set_serial", "0x01", "-sha256", "-out", "root.pem"], d, left())
    # intermediate CA (ECDSA P-256) signed by root
    genkey("ec", "int.key", d, left())
    run_openssl(["req", "-new", "-x509"] + cnf + ["-extensions", "v3_int", "-key", "int.key",
                "-subj", "/O=pki_exporter bench/CN=bench intermediate CA", "-days", "1825",
                "-set_serial", "0x02", "-sha256", "-CA", "root.pem", "-CAkey", "root.key",
                "-out", "int.pem"], d, left())
    with open(os.path.join(d, "int.pem")) as f:
        int_pem = f.read()

    kinds = [leaf_kind(i, key_type) for i in range(n)]
    shared = {}
    if not distinct_keys:
        for kind in sorted(set(kinds)):
            path = "keys/shared-%s.key" % kind
            genkey(kind, path, d, left())
            shared[kind] = path

    leaves = []

    def one(i):
        kind = kinds[i]
        if distinct_keys:
            key = "keys/leaf%05d.key" % i
            genkey(kind, key, d, left())
        else:
            key = shared[kind]
        cert = "certs/leaf%05d.pem" % i
        run_openssl(["req", "-new", "-x509"] + cnf + [
            "-extensions", "v3_leaf_%s" % kind, "-key", key,
            "-subj", "/O=pki_exporter bench/CN=leaf%05d.bench.test" % i,
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:leaf%05d.bench.test" % i,
            "-days", "397", "-sha256", "-set_serial", "0x%X" % (0x100000 + i),
            "-CA", "int.pem", "-CAkey", "int.key", "-out", cert], d, left())
        chain = "certs/leaf%05d.chain.pem" % i
        with open(os.path.join(d, cert)) as f:
            leaf_pem = f.read()
        with open(os.path.join(d, chain), "w") as f:
            f.write(leaf_pem + int_pem)
        return {"i": i, "kind": kind, "chain": os.path.join(d, chain), "key": os.path.join(d, key)}

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = [ex.submit(one, i) for i in range(n)]
        for fu in futs:
            leaves.append(fu.result(timeout=max(0.1, left())))
    # sanity: verify one leaf chain with the CLI
    run_openssl(["verify", "-CAfile", "root.pem", "-untrusted", "int.pem",
                 os.path.relpath(leaves[0]["chain"], d)], d, left())
    log("fixtures: %d leaf certs (%s, %s keys) in %.1fs with %d parallel openssl jobs"
        % (n, key_type, "distinct" if distinct_keys else "shared", time.monotonic() - t0, jobs))
    return leaves


# --------------------------------------------------------------------------
# nginx
# --------------------------------------------------------------------------

def write_nginx_conf(d, leaves, port_lo):
    n = len(leaves)
    want = 2 * n + 16384
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < want:
        # nginx (even as root) cannot exceed our hard limit if CAP_SYS_RESOURCE is missing
        want = hard
        if hard < n + 1024:
            log("warning: RLIMIT_NOFILE hard limit %d is tight for %d listening sockets" % (hard, n))
    lines = [
        "user root;",
        "worker_processes auto;",
        "worker_rlimit_nofile %d;" % want,
        "pid %s/nginx.pid;" % d,
        "error_log %s/nginx-error.log warn;" % d,
        "events { worker_connections %d; }" % (n + 8192),
        "http {",
        "  access_log off;",
        "  client_body_temp_path %s/tmp/body;" % d,
        "  proxy_temp_path %s/tmp/proxy;" % d,
        "  fastcgi_temp_path %s/tmp/fastcgi;" % d,
        "  uwsgi_temp_path %s/tmp/uwsgi;" % d,
        "  scgi_temp_path %s/tmp/scgi;" % d,
        "  ssl_protocols TLSv1.3;",
        "  keepalive_timeout 5s;",
    ]
    for k, leaf in enumerate(leaves):
        lines.append("  server { listen %s:%d ssl; ssl_certificate %s; ssl_certificate_key %s; "
                     "return 200 \"ok\\n\"; }" % (LOOPBACK, port_lo + k, leaf["chain"], leaf["key"]))
    lines.append("}")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start_nginx(nginx_bin, d, ports, deadline):
    conf = os.path.join(d, "nginx.conf")
    errf = open(os.path.join(d, "nginx-stderr.log"), "wb")
    p = spawn("nginx", [nginx_bin, "-p", d + "/", "-e", os.path.join(d, "nginx-error.log"),
                        "-c", conf, "-g", "daemon off;"],
              stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, cwd=d)
    pending = list(ports)
    while pending:
        if p.poll() is not None:
            raise RuntimeError("nginx exited with %s: %s" % (p.returncode, tail(os.path.join(d, "nginx-error.log"))
                                                             + tail(os.path.join(d, "nginx-stderr.log"))))
        if time.monotonic() > deadline:
            raise RuntimeError("nginx: %d of %d ports still not accepting at deadline" % (len(pending), len(ports)))
        i = 0
        while i < len(pending):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect((LOOPBACK, pending[i]))
            except OSError:
                break
            finally:
                s.close()
            i += 1
        pending = pending[i:]
        if pending:
            time.sleep(0.2)
    # workers (children of the nginx master we started)
    workers = []
    for _ in range(50):
        workers = children_of(p.pid)
        if workers:
            break
        time.sleep(0.1)
    for w in workers:
        _extra_pids.append(("nginx worker", w))
    return p, workers


def tls_sanity(ports, root_pem, sample=5):
    """Handshake with a few ports using Python's ssl, verifying the chain against root.pem."""
    ctx = ssl.create_default_context(cafile=root_pem)
    ctx.check_hostname = True
    picks = sorted(set([ports[0], ports[-1]] + random.sample(ports, min(sample, len(ports)))))
    for port in picks:
        with socket.create_connection((LOOPBACK, port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=LOOPBACK) as s:
                if s.version() != "TLSv1.3":
                    raise RuntimeError("port %d negotiated %s, expected TLSv1.3" % (port, s.version()))
                cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
                want = "leaf%05d.bench.test" % (port - ports[0])
                if cn != want:
                    raise RuntimeError("port %d serves CN=%s, expected %s" % (port, cn, want))
    log("TLS sanity check ok on %d ports (TLSv1.3, chain verifies against root.pem)" % len(picks))


def tail(path, nbytes=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------

def http_get(port, path, timeout, headers=None):
    c = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_http_ok(name, proc, port, paths, deadline, stderr_path):
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited early with code %s; stderr tail:\n%s"
                               % (name, proc.returncode, tail(stderr_path)))
        for path in paths:
            try:
                st, _ = http_get(port, path, 2)
                if st == 200:
                    return path
                last = "%s -> HTTP %d" % (path, st)
            except OSError as e:
                last = "%s -> %s" % (path, e)
        time.sleep(0.1)
    raise RuntimeError("%s not ready before deadline (last: %s); stderr tail:\n%s"
                       % (name, last, tail(stderr_path)))


# --------------------------------------------------------------------------
# measurement helpers
# --------------------------------------------------------------------------

class Phase:
    """Snapshot CPU of the server process, nginx and this client; VmHWM after."""

    def __init__(self, pid, nginx_pids):
        self.pid = pid
        self.nginx_pids = nginx_pids

    def __enter__(self):
        self.hwm_pre = proc_status_kb(self.pid, "VmHWM")   # peak since start / last reset
        self.hwm_reset = reset_hwm(self.pid)
        self.rss0 = proc_status_kb(self.pid, "VmRSS")
        self.cpu0 = proc_cpu_seconds(self.pid)
        self.ngx0 = cpu_sum(self.nginx_pids)
        self.cli0 = self_cpu()
        self.max_threads = proc_status_kb(self.pid, "Threads")
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self):
        # thread count of the server process, every 50 ms (informational)
        while not self._stop.wait(0.05):
            try:
                t = proc_status_kb(self.pid, "Threads")
            except OSError:
                return
            if t is not None and (self.max_threads is None or t > self.max_threads):
                self.max_threads = t

    def finish(self):
        self.wall = time.perf_counter() - self.t0
        self._stop.set()
        self.cpu = proc_cpu_seconds(self.pid) - self.cpu0
        self.ngx = cpu_sum(self.nginx_pids) - self.ngx0
        self.cli = self_cpu() - self.cli0
        self.hwm = proc_status_kb(self.pid, "VmHWM")
        self.rss1 = proc_status_kb(self.pid, "VmRSS")

    def __exit__(self, *a):
        return False

    def result(self, n):
        return {
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "cpu_ms_per_target": 1000.0 * self.cpu / n,
            "peak_rss_mb": self.hwm / 1024.0 if self.hwm is not None else None,
            "peak_is_phase_local": self.hwm_reset,
            "rss_before_mb": self.rss0 / 1024.0 if self.rss0 is not None else None,
            "rss_after_mb": self.rss1 / 1024.0 if self.rss1 is not None else None,
            "nginx_cpu_s": self.ngx,
            "client_cpu_s": self.cli,
            "max_threads_sampled": self.max_threads,
        }


LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_samples(body, name):
    """Yield (labels dict, value string) for every sample of metric `name`."""
    prefix = name + "{"
    for line in body.splitlines():
        if line.startswith(prefix):
            close = line.rfind("}")
            labels = dict(LABEL_RE.findall(line[len(prefix):close]))
            rest = line[close + 1:].split()
            yield labels, (rest[0] if rest else "")
        elif line.startswith(name + " "):
            rest = line[len(name):].split()
            yield {}, (rest[0] if rest else "")


def check_ours_body(status, body, expected_targets):
    text = body.decode("utf-8", errors="replace")
    exp = set(expected_targets)
    ok_targets = set()
    seen = {}
    for labels, val in parse_samples(text, "pki_probe_success"):
        t = labels.get("target")
        seen[t] = seen.get(t, 0) + 1
        if val == "1" and t in exp:
            ok_targets.add(t)
    failures = {}
    for labels, val in parse_samples(text, "pki_probe_failure_info"):
        k = "%s/%s" % (labels.get("stage"), labels.get("reason"))
        failures[k] = failures.get(k, 0) + 1
    verified = sum(1 for _, v in parse_samples(text, "pki_tls_chain_verified") if v == "1")
    versions = {}
    for labels, _ in parse_samples(text, "pki_tls_version_info"):
        k = "%s %s" % (labels.get("version"), labels.get("cipher"))
        versions[k] = versions.get(k, 0) + 1
    certinfo = sum(1 for _ in parse_samples(text, "pki_cert_info"))
    durations = sorted(float(v) for _, v in parse_samples(text, "pki_probe_duration_seconds")
                       if _isfloat(v))
    dup = sum(1 for t, c in seen.items() if c > 1)
    missing = len(exp - set(seen))
    return {
        "http_status": status,
        "body_bytes": len(body),
        "series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "probe_success_1": len(ok_targets),
        "probe_success_series": sum(seen.values()),
        "targets_missing": missing,
        "targets_duplicated": dup,
        "chain_verified_1": verified,
        "cert_info_series": certinfo,
        "tls_versions": versions,
        "failure_reasons": failures,
        "probe_duration_p50_s": pct(durations, 50),
        "probe_duration_p99_s": pct(durations, 99),
        "probe_duration_max_s": durations[-1] if durations else None,
        "ok": status == 200 and len(ok_targets) == len(exp) and missing == 0,
    }


def _isfloat(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


# --------------------------------------------------------------------------
# phases
# --------------------------------------------------------------------------

def write_ours_config(d, targets, args, root_pem):
    lines = [
        "# generated by bench/tls_scrape.py",
        "global:",
        "  scrape_timeout: %ds" % args.scrape_timeout,
        "  concurrency: %d" % args.concurrency,
        "modules:",
        "  tls_connect:",
        "    prober: tls",
        "    timeout: %ds" % args.probe_timeout,
        "    tls:",
        "      ca_file: %s" % root_pem,
        "targets:",
        "  - module: tls_connect",
        "    targets:",
    ]
    for t in targets:
        lines.append('      - "%s"' % t)
    path = os.path.join(d, "pki_exporter.yml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class _Child:
    """The exporter running under `perf record`: measured and stopped by its
    own PID (perf, its parent, then writes the profile and exits)."""

    def __init__(self, perf, pid):
        self.perf = perf
        self.pid = pid

    def poll(self):
        return None if pid_alive(self.pid) else (self.perf.poll() if self.perf.poll() is not None else 0)

    @property
    def returncode(self):
        return self.perf.returncode


def start_under_perf(argv, out_path, errf, cwd, deadline):
    perf = spawn("perf record", ["perf", "record", "--call-graph", "dwarf", "-F", "997", "-o", out_path,
                                 "--"] + argv, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, cwd=cwd)
    while time.monotonic() < deadline:
        kids = children_of(perf.pid)
        if kids:
            _extra_pids.append(("pki_exporter under perf", kids[0]))
            return perf, _Child(perf, kids[0])
        if perf.poll() is not None:
            raise RuntimeError("perf record exited with %s" % perf.returncode)
        time.sleep(0.05)
    raise RuntimeError("perf record did not start the exporter")


def stop_under_perf(perf, child):
    try:
        os.kill(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    return stop_proc("perf record", perf, signal.SIGINT, grace=120.0)


def run_ours(args, d, targets, nginx_pids, rep):
    n = len(targets)
    cfg = write_ours_config(d, targets, args, os.path.join(d, "root.pem"))
    port = free_port()
    errp = os.path.join(d, "pki_exporter-%s.log" % rep)
    errf = open(errp, "wb")
    argv = [args.exporter, "--config.file=%s" % cfg, "--web.listen-address=%s:%d" % (LOOPBACK, port)]
    if args.exporter_log_level:
        argv.append("--log.level=%s" % args.exporter_log_level)
    perf = None
    if args.perf_record:
        path = args.perf_record if args.repeat == 1 else "%s.%d" % (args.perf_record, rep)
        perf, p = start_under_perf(argv, os.path.abspath(path), errf, d, time.monotonic() + 30)
        log("pki_exporter pid %d runs under perf record (pid %d) -> %s" % (p.pid, perf.pid, path))
    else:
        p = spawn("pki_exporter", argv, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, cwd=d)
    out = {"port": port}
    try:
        t_start = time.monotonic()
        wait_http_ok("pki_exporter", p, port, ["/-/ready"], t_start + args.ready_timeout, errp)
        out["ready_after_s"] = time.monotonic() - t_start
        time.sleep(0.5)
        out["idle_rss_mb"] = proc_status_kb(p.pid, "VmRSS") / 1024.0
        out["idle_cpu_s"] = proc_cpu_seconds(p.pid)
        out["cpu_s_until_ready"] = out["idle_cpu_s"]
        out["startup_vmhwm_mb"] = proc_status_kb(p.pid, "VmHWM") / 1024.0
        cum_kb = 0
        for phase in ("cold", "warm"):
            with Phase(p.pid, nginx_pids) as ph:
                try:
                    status, body = http_get(port, "/metrics", args.phase_timeout)
                except (OSError, http.client.HTTPException) as e:
                    ph.finish()
                    res = ph.result(n)
                    res.update({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})
                    if p.poll() is not None:
                        res["error"] += " (exporter exited with %s)" % p.returncode
                    out[phase] = res
                    banner("pki_exporter %s scrape FAILED: %s\nstderr tail:\n%s" % (phase, res["error"], tail(errp)))
                    break
                ph.finish()
            res = ph.result(n)
            chk = check_ours_body(status, body, targets)
            res.update(chk)
            cum_kb = max([cum_kb] + [v for v in (ph.hwm_pre, ph.hwm) if v is not None])
            res["cumulative_vmhwm_mb"] = cum_kb / 1024.0   # max over the process lifetime so far
            out[phase] = res
            if args.save_bodies:
                with open(os.path.join(d, "metrics-%s-%s.txt" % (phase, rep)), "wb") as f:
                    f.write(body)
            if not chk["ok"]:
                banner("pki_exporter %s scrape: HTTP %s, pki_probe_success 1 for %d of %d targets "
                       "(series %d, missing %d); failure reasons: %s"
                       % (phase, status, chk["probe_success_1"], n, chk["probe_success_series"],
                          chk["targets_missing"], chk["failure_reasons"]))
            log("ours %s: wall %ss cpu %ss hwm %sMiB threads<=%s success %d/%d"
                % (phase, fmt(res["wall_s"], ".3f"), fmt(res["cpu_s"], ".3f"), fmt(res["peak_rss_mb"], ".1f"),
                   res["max_threads_sampled"], chk["probe_success_1"], n))
            time.sleep(args.settle)
    finally:
        already = p.poll() is not None
        rc = stop_under_perf(perf, p) if perf else stop_proc("pki_exporter", p)
        out["exit_code"] = rc
        out["exited_before_sigterm"] = already
        if not already and rc != 0:
            log("note: pki_exporter exited with %s after SIGTERM (README: SIGTERM is a graceful exit 0)" % rc)
        errf.close()
    return out


# --------------------------------------------------------------------------
# the floor: bench/floor.c, a minimal OpenSSL 3 client
# --------------------------------------------------------------------------

def build_floor(d):
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.c")
    exe = os.path.join(d, "floor")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("no C compiler (cc) for bench/floor.c")
    r = subprocess.run([cc, "-O2", "-o", exe, src, "-lssl", "-lcrypto", "-lpthread"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("building floor.c failed: %s" % r.stdout.decode(errors="replace")[-2000:])
    return exe


def run_floor(args, d, exe, ports, nginx_pids, verify):
    """N handshakes over the same ports; CPU of the floor process itself."""
    n = len(ports)
    argv = [exe, "--threads", str(args.floor_threads), "--handshakes", str(n),
            "--timeout", str(args.probe_timeout)]
    if verify:
        argv += ["--verify", os.path.join(d, "root.pem")]
    argv += [LOOPBACK, str(ports[0]), str(n)]
    ngx0 = cpu_sum(nginx_pids)
    t0 = time.perf_counter()
    p = spawn("floor", argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        outb, errb = p.communicate(timeout=args.phase_timeout)
    except subprocess.TimeoutExpired:
        stop_proc("floor", p, signal.SIGKILL)
        raise RuntimeError("floor timed out")
    wall = time.perf_counter() - t0
    ngx = cpu_sum(nginx_pids) - ngx0
    try:
        res = json.loads(outb.decode())
    except ValueError:
        raise RuntimeError("floor: rc %s, output %r %r" % (p.returncode, outb[-300:], errb[-300:]))
    res.update({"cpu_ms_per_target": res["cpu_ms_per_handshake"], "nginx_cpu_s": ngx,
                "client_cpu_s": 0.0, "process_wall_s": wall, "probe_success_1": res["ok"],
                "ok": res["ok"] == n})
    log("floor%s: wall %.3fs cpu %.3fs = %.3f ms/handshake, ok %d/%d"
        % (" +verify" if verify else "", res["wall_s"], res["cpu_s"], res["cpu_ms_per_handshake"],
           res["probe_success_1"], n))
    return res


def build_render_bench(d, pkicore):
    """bench/render_bench.c against the library the exporter is built from."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "render_bench.c")
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = os.path.join(d, "render_bench")
    libs = subprocess.run(["pkg-config", "--libs", "openssl", "libcurl", "libcares", "libmicrohttpd",
                           "yaml-0.1", "gnutls", "libcrypt", "jansson", "libpcre2-8"],
                          stdout=subprocess.PIPE, check=True).stdout.decode().split()
    r = subprocess.run([shutil.which("cc") or "cc", "-O2", "-I", top, "-o", exe, src, pkicore] + libs
                       + ["-lpthread", "-lm"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("building render_bench.c failed: %s" % r.stdout.decode(errors="replace")[-2000:])
    return exe


def run_render_bench(exe, series):
    r = subprocess.run([exe, str(series), "5"], stdout=subprocess.PIPE, timeout=300, check=True)
    return json.loads(r.stdout.decode())


def write_bb_config(d, args, root_pem):
    path = os.path.join(d, "blackbox.yml")
    with open(path, "w") as f:
        f.write("modules:\n"
                "  tls_connect:\n"
                "    prober: tcp\n"
                "    timeout: %ds\n"
                "    tcp:\n"
                "      tls: true\n"
                "      tls_config:\n"
                "        ca_file: %s\n" % (args.probe_timeout, root_pem))
    return path


def drive_blackbox(port, targets, concurrency, deadline):
    """N /probe requests at `concurrency` from threads, keep-alive per thread."""
    lock = threading.Lock()
    idx = [0]
    results = [None] * len(targets)
    go = threading.Event()

    def worker():
        conn = None
        go.wait()
        while True:
            with lock:
                i = idx[0]
                if i >= len(targets):
                    break
                idx[0] += 1
            path = "/probe?module=tls_connect&target=%s" % targets[i]
            t0 = time.perf_counter()
            err = None
            body = b""
            status = None
            for attempt in (1, 2):
                rem = deadline - time.monotonic()
                if rem <= 0:
                    err = "phase deadline"
                    break
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=min(rem, 60))
                    conn.timeout = min(rem, 60)
                    if conn.sock is not None:
                        conn.sock.settimeout(conn.timeout)
                    conn.request("GET", path)
                    r = conn.getresponse()
                    body = r.read()
                    status = r.status
                    if r.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    err = None
                    break
                except (OSError, http.client.HTTPException) as e:
                    err = "%s: %s" % (type(e).__name__, e)
                    if conn is not None:
                        conn.close()
                    conn = None
                    # a stale keep-alive connection: retry once on a new one
            results[i] = (status, body, time.perf_counter() - t0, err)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    return threads, go, results


def run_blackbox(args, d, targets, nginx_pids, rep):
    n = len(targets)
    cfg = write_bb_config(d, args, os.path.join(d, "root.pem"))
    port = free_port()
    errp = os.path.join(d, "blackbox-%s.log" % rep)
    errf = open(errp, "wb")
    p = spawn("blackbox", [args.blackbox, "--config.file=%s" % cfg,
                           "--web.listen-address=%s:%d" % (LOOPBACK, port), "--log.level=warn"],
              stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, cwd=d)
    out = {"port": port}
    try:
        t_start = time.monotonic()
        wait_http_ok("blackbox", p, port, ["/-/healthy", "/"], t_start + args.ready_timeout, errp)
        out["ready_after_s"] = time.monotonic() - t_start
        time.sleep(0.5)
        out["idle_rss_mb"] = proc_status_kb(p.pid, "VmRSS") / 1024.0
        out["idle_cpu_s"] = proc_cpu_seconds(p.pid)
        deadline = time.monotonic() + args.phase_timeout
        threads, go, results = drive_blackbox(port, targets, args.concurrency, deadline)
        with Phase(p.pid, nginx_pids) as ph:
            go.set()
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()) + 1.0)
            ph.finish()
        timed_out = any(t.is_alive() for t in threads)
        res = ph.result(n)
        ok = 0
        fails = {}
        lat = []
        durs = []
        versions = {}
        first_bad = None
        for i, r in enumerate(results):
            if r is None:
                fails["not run (deadline)"] = fails.get("not run (deadline)", 0) + 1
                continue
            status, body, dt, err = r
            lat.append(dt)
            text = body.decode("utf-8", errors="replace")
            if err is None and status == 200 and re.search(r"^probe_success 1$", text, re.M):
                ok += 1
            else:
                k = err or ("HTTP %s, probe_success != 1" % status)
                fails[k] = fails.get(k, 0) + 1
                if first_bad is None:
                    first_bad = "%s -> %s\n%s" % (targets[i], k, text[-1500:])
            m = re.search(r"^probe_duration_seconds (\S+)$", text, re.M)
            if m and _isfloat(m.group(1)):
                durs.append(float(m.group(1)))
            for labels, _ in parse_samples(text, "probe_tls_version_info"):
                v = labels.get("version")
                versions[v] = versions.get(v, 0) + 1
        lat.sort()
        durs.sort()
        res.update({
            "probe_success_1": ok,
            "failure_reasons": fails,
            "timed_out": timed_out,
            "tls_versions": versions,
            "request_latency_p50_s": pct(lat, 50),
            "request_latency_p99_s": pct(lat, 99),
            "probe_duration_p50_s": pct(durs, 50),
            "probe_duration_p99_s": pct(durs, 99),
            "ok": ok == n and not timed_out,
        })
        res["cumulative_vmhwm_mb"] = max(v for v in (ph.hwm_pre, ph.hwm, 0) if v is not None) / 1024.0
        out["probe"] = res
        if not res["ok"]:
            banner("blackbox: probe_success 1 for %d of %d targets; %s\nfirst bad response: %s"
                   % (ok, n, fails, first_bad))
        log("blackbox: wall %ss cpu %ss hwm %sMiB threads<=%s success %d/%d"
            % (fmt(res["wall_s"], ".3f"), fmt(res["cpu_s"], ".3f"), fmt(res["peak_rss_mb"], ".1f"),
               res["max_threads_sampled"], ok, n))
    finally:
        out["exited_before_sigterm"] = p.poll() is not None
        out["exit_code"] = stop_proc("blackbox", p)
        errf.close()
    return out


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

ROWS = [("ours cold", "ours", "cold"), ("ours warm", "ours", "warm"), ("blackbox", "blackbox", "probe"),
        ("floor", "floor", "noverify"), ("floor +verify", "floor", "verify")]
METRICS = ["wall_s", "cpu_s", "cpu_ms_per_target", "peak_rss_mb", "nginx_cpu_s", "client_cpu_s"]


def median_of(runs, side, phase, metric):
    vals = []
    for r in runs:
        v = (r.get(side) or {}).get(phase, {}).get(metric)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals.append(v)
    return statistics.median(vals) if vals else None


def median_idle(runs, side):
    vals = [r[side]["idle_rss_mb"] for r in runs if r.get(side) and "idle_rss_mb" in r[side]]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def summarize(runs, n):
    med = {}
    for label, side, phase in ROWS:
        row = {m: median_of(runs, side, phase, m) for m in METRICS}
        oks = [(r.get(side) or {}).get(phase, {}).get("ok") for r in runs]
        row["ok_runs"] = sum(1 for o in oks if o)
        row["runs"] = sum(1 for o in oks if o is not None)
        row["idle_rss_mb"] = median_idle(runs, side)
        row["probe_success_1_min"] = min([(r.get(side) or {}).get(phase, {}).get("probe_success_1", 0)
                                          for r in runs if (r.get(side) or {}).get(phase)] or [None]) \
            if row["runs"] else None
        med[label] = row
    ratios = {}
    bb = med["blackbox"]
    for label in ("ours cold", "ours warm"):
        o = med[label]
        rr = {}
        for key, m in (("wall", "wall_s"), ("cpu_per_target", "cpu_ms_per_target"), ("rss", "peak_rss_mb")):
            if o.get(m) is not None and bb.get(m):
                rr[key] = o[m] / bb[m]
            else:
                rr[key] = None
        ratios["%s / blackbox" % label] = rr
    for label in ("ours cold", "ours warm"):
        for fl in ("floor", "floor +verify"):
            o, f = med[label], med[fl]
            if o.get("cpu_ms_per_target") is not None and f.get("cpu_ms_per_target"):
                ratios["%s / %s" % (label, fl)] = {
                    "cpu_per_target": o["cpu_ms_per_target"] / f["cpu_ms_per_target"]}
    return med, ratios


def print_table(med, ratios, n, repeat, concurrency, phase_local):
    out = sys.stdout
    out.write("\n%d loopback TLS 1.3 targets, concurrency %d, median of %d run(s)\n" % (n, concurrency, repeat))
    hdr = "%-22s %9s %9s %10s %12s %10s %9s %9s %9s" % (
        "", "wall s", "CPU s", "CPU ms/tgt", "peak RSS MB", "idle RSS", "nginx CPU", "clientCPU", "ok/N")
    out.write(hdr + "\n" + "-" * len(hdr) + "\n")
    for label, _, _ in ROWS:
        r = med[label]
        okn = "%s/%d" % (fmt(r.get("probe_success_1_min"), "d"), n) if r["runs"] else "-"
        if r["runs"] and r["ok_runs"] != r["runs"]:
            okn += "!"
        out.write("%-22s %9s %9s %10s %12s %10s %9s %9s %9s\n" % (
            label, fmt(r["wall_s"], ".3f"), fmt(r["cpu_s"], ".3f"), fmt(r["cpu_ms_per_target"], ".3f"),
            fmt(r["peak_rss_mb"], ".1f"), fmt(r["idle_rss_mb"], ".1f"), fmt(r["nginx_cpu_s"], ".3f"),
            fmt(r["client_cpu_s"], ".3f"), okn))
    out.write("-" * len(hdr) + "\n")
    for label, rr in ratios.items():
        if "floor" in label:
            out.write("%-22s CPU/handshake x%s  (%s)\n" % (
                "ratio " + label.split(" / ")[0], fmt(rr["cpu_per_target"], ".3f"), label.split(" / ")[1]))
            continue
        out.write("%-22s wall x%s   CPU/target x%s   peak RSS x%s\n" % (
            "ratio " + label.replace(" / blackbox", "/bb"), fmt(rr["wall"], ".3f"),
            fmt(rr["cpu_per_target"], ".3f"), fmt(rr["rss"], ".3f")))
    out.write("(MB = MiB. CPU = utime+stime of the measured server process from /proc/PID/stat. "
              "peak RSS = VmHWM %s. idle RSS = VmRSS after ready, before the first phase. "
              "nginx CPU = master+workers during the phase; clientCPU = this Python driver.)\n"
              % ("reset at the start of each phase (clear_refs 5)" if phase_local
                 else "cumulative since process start (reset not supported here)"))
    out.flush()


# --------------------------------------------------------------------------
# --scaling: M vs N targets, interleaved within one run
# --------------------------------------------------------------------------

SCALING_ROWS = [("ours cold", "ours", "cold"), ("ours warm", "ours", "warm"),
                ("blackbox", "blackbox", "probe"), ("floor", "floor", None)]
SCALING_METRICS = [("cpu_s", "CPU s", ".3f", 1000.0, "ms", ".3f"),
                   ("peak_rss_mb", "peak RSS MiB", ".1f", 1024.0, "KiB", ".1f"),
                   ("wall_s", "wall s", ".3f", 1000.0, "ms", ".3f")]
SCALING_KEYS = [m[0] for m in SCALING_METRICS] + ["nginx_cpu_s"]   # medians and ratios kept in the JSON


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def scaling_phase(run, side, phase):
    """The result dict of one measured phase of one size, or None."""
    r = run.get(side)
    if not isinstance(r, dict):
        return None
    if phase is None:
        return r
    r = r.get(phase)
    return r if isinstance(r, dict) else None


def scaling_round(args, d, sides, order, targets, ports, nginx_pids, floor_exe, rnd):
    """One round: every side at both sizes, in `order` (a list of (size key, count)),
    the two sizes of one side back to back. Returns {size key: {side: result}}."""
    out = {key: {} for key, _ in order}
    for side in sides:
        for key, count in order:
            tag = "%d-%s%d" % (rnd, key, count)
            log("--- round %d: %s with %d targets ---" % (rnd, side, count))
            res = None
            try:
                if side == "ours":
                    res = run_ours(args, d, targets[:count], nginx_pids, tag)
                elif side == "blackbox":
                    res = run_blackbox(args, d, targets[:count], nginx_pids, tag)
                else:
                    res = run_floor(args, d, floor_exe, ports[:count], nginx_pids, False)
            except RuntimeError as e:
                banner("%s phase with %d targets failed: %s" % (side, count, e))
                res = {"error": str(e)}
                if side == "floor":
                    res["ok"] = False
            res["loadavg_after"] = loadavg()
            out[key][side] = res
            time.sleep(args.settle)
    return out


def run_scaling(args, d, targets, ports, nginx_pids, ngx, floor_exe, small):
    n = len(targets)
    sides = []
    if not args.skip_ours:
        sides.append("ours")
    if args.scaling_blackbox and not args.skip_blackbox:
        sides.append("blackbox")
    if floor_exe:
        sides.append("floor")
    sc = {
        "small": small,
        "large": n,
        "targets_ratio": n / float(small),
        "cpu_ratio_limit": 1.05 * n / float(small),
        "rounds_planned": args.repeat,
        "sides": sides,
        "loadavg_start": loadavg(),
        "rounds": [],
    }
    log("scaling: %d vs %d targets, %d round(s), sides %s, load average %s"
        % (small, n, args.repeat, sides, sc["loadavg_start"]))
    for rnd in range(1, args.repeat + 1):
        order = [("small", small), ("large", n)]
        if rnd % 2 == 0:
            order.reverse()
        log("=== scaling round %d/%d: %s ===" % (rnd, args.repeat, " then ".join("%d" % c for _, c in order)))
        rec = {"round": rnd, "order": [c for _, c in order], "loadavg_start": loadavg()}
        rec.update(scaling_round(args, d, sides, order, targets, ports, nginx_pids, floor_exe, rnd))
        rec["loadavg_end"] = loadavg()
        sc["rounds"].append(rec)
        if ngx.poll() is not None:
            raise RuntimeError("nginx died during the run (code %s): %s"
                               % (ngx.returncode, tail(os.path.join(d, "nginx-error.log"))))
    sc["loadavg_end"] = loadavg()
    return sc


def summarize_scaling(sc):
    rounds = sc["rounds"]
    sizes = {"small": sc["small"], "large": sc["large"]}
    med = {}
    for label, side, phase in SCALING_ROWS:
        if side not in sc["sides"]:
            continue
        row = {}
        for key, count in sizes.items():
            cell = {}
            for metric in SCALING_KEYS:
                vals = []
                for r in rounds:
                    v = (scaling_phase(r.get(key, {}), side, phase) or {}).get(metric)
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        vals.append(v)
                cell[metric] = statistics.median(vals) if vals else None
            oks = [(scaling_phase(r.get(key, {}), side, phase) or {}).get("ok") for r in rounds]
            cell["targets"] = count
            cell["cpu_ms_per_target"] = 1000.0 * cell["cpu_s"] / count if cell["cpu_s"] is not None else None
            cell["ok_runs"] = sum(1 for o in oks if o)
            cell["runs"] = len(rounds)
            cell["probe_success_1_min"] = min([(scaling_phase(r.get(key, {}), side, phase) or {})
                                               .get("probe_success_1", 0) for r in rounds] or [None])
            row[key] = cell
        ratio, paired, per_round = {}, {}, {}
        for metric in SCALING_KEYS:
            s, l = row["small"][metric], row["large"][metric]
            ratio[metric] = l / s if s and l is not None else None
            rr = []
            for r in rounds:
                a = (scaling_phase(r.get("small", {}), side, phase) or {}).get(metric)
                b = (scaling_phase(r.get("large", {}), side, phase) or {}).get(metric)
                rr.append(b / a if isinstance(a, (int, float)) and a and isinstance(b, (int, float)) else None)
            per_round[metric] = rr
            vals = [x for x in rr if x is not None]
            paired[metric] = statistics.median(vals) if vals else None
        row["ratio"] = ratio                    # median at N / median at M
        row["paired_ratio"] = paired            # median over rounds of (N / M) of that round
        row["per_round_ratio"] = per_round
        row["cpu_ratio_met"] = ratio["cpu_s"] <= sc["cpu_ratio_limit"] if ratio["cpu_s"] is not None else None
        med[label] = row
    return med


def print_scaling_table(sc, med, concurrency, phase_local):
    out = sys.stdout
    m, n, lim = sc["small"], sc["large"], sc["cpu_ratio_limit"]
    orders = ", ".join("%s" % ("S-L" if r["order"][0] == m else "L-S") for r in sc["rounds"])
    out.write("\nScaling: %d -> %d loopback TLS 1.3 targets (x%.2f), concurrency %d, one nginx, "
              "medians of %d round(s) (%s; S = %d, L = %d)\n"
              % (m, n, sc["targets_ratio"], concurrency, len(sc["rounds"]), orders, m, n))

    def la(v):
        return " ".join("%.2f" % x for x in v) if v else "-"

    out.write("load average (1/5/15 min): %s at start, %s at end\n" % (la(sc["loadavg_start"]), la(sc["loadavg_end"])))
    hdr = "%-10s %-13s %9s %9s %12s %12s %8s %10s %9s %8s" % (
        "", "", "@%d" % m, "@%d" % n, "/tgt @%d" % m, "/tgt @%d" % n, "N/M", "paired N/M",
        "<=x%.2f" % lim, "ok M,N")
    out.write(hdr + "\n" + "-" * len(hdr) + "\n")
    for label, _, _ in SCALING_ROWS:
        row = med.get(label)
        if row is None:
            continue
        for k, (metric, name, spec, unit_mul, unit, tspec) in enumerate(SCALING_METRICS):
            s, l = row["small"][metric], row["large"][metric]
            r = row["ratio"][metric]
            okn = ""
            if k == 0:
                okn = "%d/%d,%d/%d" % (row["small"]["ok_runs"], row["small"]["runs"],
                                       row["large"]["ok_runs"], row["large"]["runs"])
                if row["small"]["ok_runs"] != row["small"]["runs"] or row["large"]["ok_runs"] != row["large"]["runs"]:
                    okn += "!"
            out.write("%-10s %-13s %9s %9s %12s %12s %8s %10s %9s %8s\n" % (
                label if k == 0 else "", name, fmt(s, spec), fmt(l, spec),
                fmt(unit_mul * s / m, tspec) + " " + unit if s is not None else "-",
                fmt(unit_mul * l / n, tspec) + " " + unit if l is not None else "-",
                "x" + fmt(r, ".2f") if r is not None else "-",
                "x" + fmt(row["paired_ratio"][metric], ".2f") if row["paired_ratio"][metric] is not None else "-",
                ("yes" if r <= lim else "NO") if r is not None else "-", okn))
    out.write("-" * len(hdr) + "\n")
    for label, _, _ in SCALING_ROWS:
        row = med.get(label)
        if row is None or row["ratio"]["cpu_s"] is None:
            continue
        out.write("%-10s CPU(%d)/CPU(%d) = x%.2f (paired x%s): %s (target <= 1.05 x %d/%d = x%.2f)\n"
                  % (label, n, m, row["ratio"]["cpu_s"], fmt(row["paired_ratio"]["cpu_s"], ".2f"),
                     "met" if row["cpu_ratio_met"] else "NOT met", n, m, lim))
    out.write("(@M/@N = median over rounds with the first M / all N targets; N/M = ratio of those "
              "medians; paired N/M = median over rounds of that round's N/M (both sizes measured back to back). "
              "CPU = utime+stime of the measured process (/proc/PID/stat; floor: its own getrusage); "
              "peak RSS = VmHWM %s (floor: VmHWM of its fresh process). The target is for CPU; RSS and wall "
              "are shown against the same limit for context.)\n"
              % ("reset at the start of each phase (clear_refs 5)" if phase_local
                 else "cumulative since process start (reset not supported here)"))
    out.flush()


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def raise_nofile(n):
    want = 2 * n + 16384
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
    except (OSError, ValueError):
        nr_open = 1048576
    new_hard = hard
    if hard != resource.RLIM_INFINITY and hard < want and os.geteuid() == 0:
        new_hard = min(nr_open, want)
    new_soft = min(new_hard, max(soft, want)) if new_hard != resource.RLIM_INFINITY else max(soft, want)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, new_hard))
    except (ValueError, OSError) as e:
        log("note: could not raise RLIMIT_NOFILE to %d (%s); using soft=hard" % (want, e))
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def file_sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_version(argv):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return r.stdout.decode(errors="replace").strip().splitlines()[0] if r.stdout else "rc=%d" % r.returncode
    except (OSError, subprocess.TimeoutExpired, IndexError) as e:
        return "unavailable: %s" % e


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=None,
                    help="number of TLS endpoints (default 1000; 10000 with --scaling)")
    ap.add_argument("--key-type", choices=["ecdsa", "rsa", "mix"], default="ecdsa",
                    help="leaf keys: ECDSA P-256 (default), RSA-2048, or mix (alternating, half/half)")
    ap.add_argument("--mix", action="store_const", const="mix", dest="key_type",
                    help="shorthand for --key-type mix")
    ap.add_argument("--distinct-keys", action="store_true",
                    help="one private key per leaf (slow for RSA); default: one shared key per key type")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel openssl processes")
    ap.add_argument("--concurrency", type=int, default=64,
                    help="pki_exporter global.concurrency and blackbox client concurrency (default 64)")
    ap.add_argument("--exporter", default="/work/main/build/pki_exporter")
    ap.add_argument("--exporter-log-level", default="warn", help="--log.level for pki_exporter ('' = omit)")
    ap.add_argument("--blackbox", default=shutil.which("prometheus-blackbox-exporter")
                    or "/usr/bin/prometheus-blackbox-exporter")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--repeat", type=int, default=None,
                    help="run the measurement K times, report medians (default 1; 3 with --scaling)")
    ap.add_argument("--json", metavar="FILE", help="write results as JSON")
    ap.add_argument("--probe-timeout", type=int, default=10, help="module timeout, seconds (default 10)")
    ap.add_argument("--scrape-timeout", type=int, default=120,
                    help="pki_exporter global.scrape_timeout, seconds (default 120)")
    ap.add_argument("--phase-timeout", type=float, default=300.0, help="hard limit per phase, seconds")
    ap.add_argument("--setup-timeout", type=float, default=900.0, help="hard limit for fixtures, seconds")
    ap.add_argument("--ready-timeout", type=float, default=60.0, help="limit for an exporter to become ready")
    ap.add_argument("--port-base", type=int, default=0, help="first target port (default: auto)")
    ap.add_argument("--settle", type=float, default=1.0, help="pause between phases, seconds")
    ap.add_argument("--skip-ours", action="store_true", help="only the blackbox half")
    ap.add_argument("--skip-blackbox", action="store_true", help="only the pki_exporter half")
    ap.add_argument("--skip-floor", action="store_true", help="do not run bench/floor.c")
    ap.add_argument("--render-bench", action="store_true",
                    help="also time expo_render() of as many series as the warm scrape returned "
                         "(bench/render_bench.c, linked with --pkicore) and print its share of the scrape")
    ap.add_argument("--pkicore", default="/work/main/build/libpkicore.a",
                    help="the library for --render-bench (default /work/main/build/libpkicore.a)")
    ap.add_argument("--floor-threads", type=int, default=2, help="threads of the floor client (default 2)")
    ap.add_argument("--perf-record", metavar="FILE",
                    help="run pki_exporter under `perf record --call-graph dwarf` (FILE, FILE.K per repeat); "
                         "its CPU figures are then inflated by the sampling")
    ap.add_argument("--scaling", action="store_true",
                    help="scaling mode: M vs N (--targets) targets against one nginx, in --repeat rounds of "
                         "alternating order (M then N, N then M, ...): pki_exporter cold+warm and the floor "
                         "(no verification) at both sizes; prints CPU(N)/CPU(M) against 1.05 x N/M")
    ap.add_argument("--scaling-small", type=int, metavar="M",
                    help="the smaller size for --scaling (default N/10): the first M targets")
    ap.add_argument("--scaling-blackbox", action="store_true",
                    help="with --scaling, also measure the blackbox exporter at both sizes")
    ap.add_argument("--save-bodies", action="store_true", help="keep the /metrics bodies in the work dir")
    ap.add_argument("--keep-tmp", action="store_true", help="do not delete the work dir")
    ap.add_argument("--workdir", help="parent for the temp dir (default $TMPDIR)")
    args = ap.parse_args()

    if args.targets is None:
        args.targets = 10000 if args.scaling else 1000
    if args.repeat is None:
        args.repeat = 3 if args.scaling else 1
    n = args.targets
    if n < 1 or args.concurrency < 1 or args.repeat < 1:
        ap.error("--targets, --concurrency, --repeat must be >= 1")
    if args.scaling:
        if args.scaling_small is None:
            args.scaling_small = max(1, n // 10)
        if not 1 <= args.scaling_small < n:
            ap.error("--scaling-small must be >= 1 and < --targets")
        if args.perf_record or args.render_bench:
            ap.error("--perf-record and --render-bench do not go with --scaling")
        if args.skip_ours and args.skip_floor and not args.scaling_blackbox:
            ap.error("--scaling with --skip-ours and --skip-floor measures nothing")
    elif args.scaling_small is not None or args.scaling_blackbox:
        ap.error("--scaling-small and --scaling-blackbox need --scaling")
    if not args.skip_ours and not os.access(args.exporter, os.X_OK):
        ap.error("exporter binary %s not found/executable (use --skip-ours for the blackbox half only)"
                 % args.exporter)

    atexit.register(cleanup)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)

    lim = raise_nofile(n)
    d = tempfile.mkdtemp(prefix="pki_bench.", dir=args.workdir)
    log("work dir %s (RLIMIT_NOFILE %s)" % (d, lim))
    result = {
        "config": {k: v for k, v in vars(args).items()},
        "env": {
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "openssl": tool_version(["openssl", "version"]),
            "nginx": tool_version([args.nginx, "-v"]),
            "blackbox": tool_version([args.blackbox, "--version"]),
            "pki_exporter": None if args.skip_ours else tool_version([args.exporter, "--version"]),
            "pki_exporter_sha256": None if args.skip_ours else file_sha256(args.exporter),
            "pki_exporter_mtime": None if args.skip_ours else time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.localtime(os.stat(args.exporter).st_mtime)),
        },
        "runs": [],
    }
    load0 = loadavg()
    rc = 0
    phase_local = True
    try:
        if args.scaling and not args.skip_ours:
            # one binary for every round, even if build/pki_exporter is rebuilt meanwhile
            snap = os.path.join(d, "pki_exporter")
            shutil.copy2(args.exporter, snap)
            result["env"]["pki_exporter_sha256"] = file_sha256(snap)
            result["env"]["pki_exporter_snapshot_of"] = args.exporter
            args.exporter = snap
        t0 = time.monotonic()
        leaves = build_fixtures(d, n, args.key_type, args.distinct_keys, max(1, args.jobs),
                                time.monotonic() + args.setup_timeout)
        result["fixtures_s"] = time.monotonic() - t0
        port_lo = find_port_range(n, args.port_base or None)
        ports = list(range(port_lo, port_lo + n))
        targets = ["%s:%d" % (LOOPBACK, p) for p in ports]
        log("target ports %d-%d" % (ports[0], ports[-1]))
        write_nginx_conf(d, leaves, port_lo)
        t0 = time.monotonic()
        ngx, workers = start_nginx(args.nginx, d, ports, time.monotonic() + max(120.0, n / 50.0))
        result["nginx_start_s"] = time.monotonic() - t0
        log("nginx pid %d, workers %s, all %d ports accepting after %.1fs"
            % (ngx.pid, workers, n, result["nginx_start_s"]))
        tls_sanity(ports, os.path.join(d, "root.pem"))
        nginx_pids = [ngx.pid] + workers
        floor_exe = None if args.skip_floor else build_floor(d)

        if args.scaling:
            sc = run_scaling(args, d, targets, ports, nginx_pids, ngx, floor_exe, args.scaling_small)
            sc["loadavg_before_fixtures"] = load0
            for r in sc["rounds"]:
                for key in ("small", "large"):
                    for ph in ((r[key].get("ours") or {}).values(), (r[key].get("blackbox") or {}).values()):
                        for x in ph:
                            if isinstance(x, dict) and x.get("peak_is_phase_local") is False:
                                phase_local = False
            sc["median"] = summarize_scaling(sc)
            result["scaling"] = sc
            print_scaling_table(sc, sc["median"], args.concurrency, phase_local)
            all_ok = True
            for label, row in sc["median"].items():
                for key in ("small", "large"):
                    c = row[key]
                    if c["ok_runs"] != c["runs"]:
                        all_ok = False
                        banner("FAILURE: %s with %d targets ok in %d of %d round(s) (see messages above / JSON)"
                               % (label, sc[key], c["ok_runs"], c["runs"]))
            result["ok"] = all_ok
            rc = 0 if all_ok else 2
            err_tail = tail(os.path.join(d, "nginx-error.log"), 1000).strip()
            if err_tail:
                log("nginx error.log tail:\n" + err_tail)
            return rc

        for rep in range(args.repeat):
            log("=== run %d/%d ===" % (rep + 1, args.repeat))
            run = {}
            if not args.skip_ours:
                try:
                    run["ours"] = run_ours(args, d, targets, nginx_pids, rep)
                except RuntimeError as e:
                    banner("pki_exporter phase failed: %s" % e)
                    run["ours"] = {"error": str(e)}
                time.sleep(args.settle)
            if not args.skip_blackbox:
                try:
                    run["blackbox"] = run_blackbox(args, d, targets, nginx_pids, rep)
                except RuntimeError as e:
                    banner("blackbox phase failed: %s" % e)
                    run["blackbox"] = {"error": str(e)}
                time.sleep(args.settle)
            if floor_exe:
                run["floor"] = {}
                for ph, verify in (("noverify", False), ("verify", True)):
                    try:
                        run["floor"][ph] = run_floor(args, d, floor_exe, ports, nginx_pids, verify)
                    except RuntimeError as e:
                        banner("floor phase failed: %s" % e)
                        run["floor"][ph] = {"error": str(e), "ok": False}
                    time.sleep(args.settle)
            for side in ("ours", "blackbox"):
                for ph in (run.get(side) or {}).values():
                    if isinstance(ph, dict) and ph.get("peak_is_phase_local") is False:
                        phase_local = False
            result["runs"].append(run)
            if ngx.poll() is not None:
                raise RuntimeError("nginx died during the run (code %s): %s"
                                   % (ngx.returncode, tail(os.path.join(d, "nginx-error.log"))))

        med, ratios = summarize(result["runs"], n)
        result["median"] = med
        result["ratios"] = ratios
        print_table(med, ratios, n, args.repeat, args.concurrency, phase_local)
        if args.render_bench and not args.skip_ours:
            series = [((r.get("ours") or {}).get("warm") or {}).get("series") for r in result["runs"]]
            series = [x for x in series if x]
            if series:
                rb = run_render_bench(build_render_bench(d, args.pkicore), max(series))
                warm = med["ours warm"]
                rb["scrape_wall_s"] = warm["wall_s"]
                rb["scrape_cpu_s"] = warm["cpu_s"]
                rb["share_of_scrape_wall"] = rb["render_s"] / warm["wall_s"] if warm["wall_s"] else None
                result["render"] = rb
                sys.stdout.write("render: %d series (%.1f MiB) in %.1f ms wall / %.1f ms CPU = %.2f%% of the "
                                 "warm scrape's %.3f s wall (target < 5%%); filling the set took %.1f ms\n"
                                 % (rb["series"], rb["body_bytes"] / 1048576.0, 1000 * rb["render_s"],
                                    1000 * rb["render_cpu_s"], 100 * rb["share_of_scrape_wall"],
                                    warm["wall_s"], 1000 * rb["fill_s"]))
        all_ok = True
        for label, side, phase in ROWS:
            if (side == "ours" and args.skip_ours) or (side == "blackbox" and args.skip_blackbox) \
                    or (side == "floor" and args.skip_floor):
                continue
            r = med[label]
            if r["runs"] != args.repeat or r["ok_runs"] != r["runs"]:
                all_ok = False
                banner("FAILURE: %s ok in %d of %d run(s) (see messages above / JSON)"
                       % (label, r["ok_runs"], args.repeat))
        result["ok"] = all_ok
        rc = 0 if all_ok else 2
        err_tail = tail(os.path.join(d, "nginx-error.log"), 1000).strip()
        if err_tail:
            log("nginx error.log tail:\n" + err_tail)
    except Exception as e:  # report, clean up, non-zero exit
        banner("benchmark aborted: %s: %s" % (type(e).__name__, e))
        result["ok"] = False
        result["error"] = "%s: %s" % (type(e).__name__, e)
        rc = 1
    finally:
        cleanup()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2, sort_keys=True)
            log("wrote %s" % args.json)
        if args.keep_tmp:
            log("kept work dir %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
