#!/usr/bin/env python3
"""Event ingestion benchmark: pki_exporter vs Debian's mtail, same file, same run.

Both read one file of NXLog-style JSON lines (the fields and order of
shared/corpus/events/nxlog-im_msvistalog.jsonl, 40 hosts, 24 event kinds, ~26 %
of the lines matching no rule) from its first byte and count them with 20
equivalent first-match rules. Reported per tool: wall time, CPU time,
lines/second (wall) and lines/second/core (lines / CPU seconds), and peak RSS.
The counts of both are compared rule by rule.

  pki_exporter: `events:` with one file input (format json: every line goes
      through jansson), start_at: beginning, match: first, 20 rules. Runs as
      the daemon; done when pki_events_input_lines_total reaches the line
      count. CPU and peak RSS (VmHWM) from /proc, the whole process (HTTP
      server, config load and scrapes included).
  mtail: --one_shot over the same file with an mtail program of 20 rules in
      an if/else chain (first match) on fields taken from the line by one
      regex (mtail has no JSON parser). CPU and peak RSS from wait4().

Usage: bench/events_ingest.py [--lines 500000] [--exporter build/pki_exporter]
       [--mtail mtail] [--json out.json] [--keep-tmp]
Python 3 standard library only. Loopback only; every process it starts is
stopped by PID.
"""

import argparse
import json
import os
import random
import re
import shutil
import statistics
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)

# (name, event_id or (lo, hi), source regex or None, message regex or None)
# in order: the first that matches counts (both tools).
RULES = [
    ("fabric_crl_offline", 4097, None,
     r"0x80092013|revocation list offline|0x1000040|chain trust status is in error"),
    ("fabric_4097", 4097, None, None),
    ("lync_startup_delayed", 32174, None, None),
    ("lync_33019", 33019, None, None),
    ("schannel_fatal_alert", 36888, "^Schannel$", None),
    ("schannel_no_common_cipher", 36874, "^Schannel$", None),
    ("schannel_ca_list_truncated", 36885, "^Schannel$", None),
    ("schannel_other", (36870, 36887), "^Schannel$", None),
    ("lync_sip_cert_expiring", 32178, None, r"certificate .* will expire"),
    ("lync_sip_tls_failed", 14428, None, r"TLS outgoing connection failures"),
    ("lync_sip_stack", 14352, None, None),
    ("lync_sip_peer_unreachable", 14501, None, r"(?i)unable to resolve"),
    ("lync_routing", 14517, None, None),
    ("lync_replication", 2095, "^LS Replica", None),
    ("certsvc_crl_publish_failed", 74, "CertificationAuthority", r"(?i)publish"),
    ("certsvc_expired_crl", 80, "CertificationAuthority", None),
    ("crypt32_root_update_failed", 11, "^Microsoft-Windows-CAPI2$", r"(?i)failed"),
    ("crypt32_chain_failed", (4107, 4108), None, None),
    ("autoenroll_failed", 6, "AutoEnrollment", None),
    ("iis_schannel_bind", 15021, None, r"(?i)certificate"),
]

# (event_id, source, channel, level, message); the last ones match nothing
EVENTS = [
    (4097, "Microsoft-WindowsFabric", "Microsoft-WindowsFabric/Admin", "WARNING",
     "SecurityContextSsl: cert chain trust status is in error: 0x1000040"),
    (4097, "Microsoft-WindowsFabric", "Microsoft-WindowsFabric/Admin", "WARNING",
     "SecurityContextSsl: ignore error 0x80092013:certificate revocation list offline"),
    (4097, "Microsoft-WindowsFabric", "Microsoft-WindowsFabric/Admin", "WARNING",
     "SecurityContextSsl: lease agent reported a transient condition"),
    (32174, "LS User Services", "Lync Server", "WARNING",
     "Server startup is being delayed because fabric pool manager has not finished initial "
     "placement of users.\\r\\nCurrently waiting for routing group: "
     "{63BB8586-A9D8-5AF2-83FF-B5CE680594C0}."),
    (33019, "LS Centralized Logging Agent", "Lync Server", "ERROR",
     "SYNTHETIC PLACEHOLDER TEXT for Lync/S4B event 33019."),
    (36888, "Schannel", "System", "ERROR",
     "A fatal alert was generated and sent to the remote endpoint. This may result in "
     "termination of the connection. The TLS protocol defined fatal error code is 40. The "
     "Windows SChannel error state is 1205."),
    (36874, "Schannel", "System", "ERROR",
     "An TLS 1.2 connection request was received from a remote client application, but none "
     "of the cipher suites supported by the client application are supported by the server."),
    (36885, "Schannel", "System", "WARNING",
     "When asking for client authentication, this server sends a list of trusted certificate "
     "authorities to the client. This list has thus been truncated."),
    (36882, "Schannel", "System", "ERROR",
     "The certificate received from the remote server was issued by an untrusted certificate "
     "authority."),
    (32178, "LS User Services", "Lync Server", "WARNING",
     "The certificate used by the front end will expire in 14 days."),
    (14428, "LS Protocol Stack", "Lync Server", "ERROR",
     "TLS outgoing connection failures. Over the past 25 minutes, Lync Server has experienced "
     "TLS outgoing connection failures 12 time(s)."),
    (14352, "LS Protocol Stack", "Lync Server", "WARNING",
     "Failed to route to Exchange Server."),
    (14501, "LS Protocol Stack", "Lync Server", "ERROR",
     "Unable to resolve DNS SRV record for the federated partner."),
    (14517, "LS Protocol Stack", "Lync Server", "ERROR",
     "The server configuration validation mechanism detected some serious problems."),
    (2095, "LS Replica Replicator Agent", "Lync Server", "ERROR",
     "Replica Replicator Agent on the Central Management Store failed to replicate."),
    (74, "Microsoft-Windows-CertificationAuthority", "Application", "ERROR",
     "Active Directory Certificate Services could not publish a Delta CRL for key 0."),
    (80, "Microsoft-Windows-CertificationAuthority", "Application", "WARNING",
     "Active Directory Certificate Services could not process the expired CRL."),
    (11, "Microsoft-Windows-CAPI2", "Application", "ERROR",
     "Failed extract of third-party root list from auto update cab."),
    (4107, "Microsoft-Windows-CAPI2", "Application", "ERROR",
     "Failed extract of third-party root list from auto update cab at: <http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/authrootstl.cab>"),
    (6, "Microsoft-Windows-CertificateServicesClient-AutoEnrollment", "Application", "ERROR",
     "Automatic certificate enrollment for local system failed to enroll for a Machine."),
    (15021, "HttpEvent", "System", "ERROR",
     "An error occurred while using SSL configuration for endpoint 0.0.0.0:443. The "
     "certificate could not be found."),
    # unmatched: every rule is tried
    (7036, "Service Control Manager", "System", "INFO",
     "The Windows Update service entered the running state."),
    (1014, "Microsoft-Windows-DNS-Client", "System", "WARNING",
     "Name resolution for the name wpad timed out after none of the configured DNS servers "
     "responded."),
    (10016, "Microsoft-Windows-DistributedCOM", "System", "WARNING",
     "The application-specific permission settings do not grant Local Activation permission."),
]
WEIGHTS = [12, 12, 3, 5, 2, 6, 5, 3, 2, 2, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 10, 8, 6]

LINE = ('{"EventTime":"2025-01-08 09:%02d:%02d","Hostname":"%s","Keywords":"0x8000000000000000",'
        '"EventType":"%s","SeverityValue":3,"Severity":"%s","EventID":%d,"SourceName":"%s",'
        '"ProviderGuid":"{1F678132-5938-4686-9FDC-C8FF68F15C85}","Version":0,"TaskValue":0,'
        '"OpcodeValue":0,"RecordNumber":%d,"ProcessID":784,"ThreadID":3920,"Channel":"%s",'
        '"Domain":"NT AUTHORITY","AccountName":"SYSTEM","UserID":"S-1-5-18","AccountType":"User",'
        '"Message":"%s","Opcode":"Info","EventReceivedTime":"2025-01-08 09:%02d:%02d",'
        '"SourceModuleName":"eventlog","SourceModuleType":"im_msvistalog"}\n')


def rule_match(rule, ev):
    name, ids, src, msg = rule
    eid, source, _, _, message = ev
    if isinstance(ids, tuple):
        if not ids[0] <= eid <= ids[1]:
            return False
    elif eid != ids:
        return False
    if src and not re.search(src, source, re.I):
        return False
    if msg and not re.search(msg, message.replace("\\r\\n", "\r\n")):
        return False
    return True


def first_rule(ev):
    for r in RULES:
        if rule_match(r, ev):
            return r[0]
    return None


def generate(path, n, seed=7):
    rnd = random.Random(seed)
    hosts = ["fe%02d.contoso.test" % i for i in range(1, 41)]
    expect = {}
    kinds = rnd.choices(range(len(EVENTS)), WEIGHTS, k=n)
    per_kind = [first_rule(e) for e in EVENTS]
    size = 0
    with open(path, "w", buffering=1 << 20) as f:
        for i, k in enumerate(kinds):
            eid, src, chan, lvl, msg = EVENTS[k]
            m, s = (i // 60) % 60, i % 60
            line = LINE % (m, s, hosts[i % 40], lvl, lvl, eid, src, 100000 + i, chan, msg, m, s)
            f.write(line)
            size += len(line)
            r = per_kind[k]
            if r:
                expect[r] = expect.get(r, 0) + 1
    return size, expect


def yaml_str(s):
    return json.dumps(s)


def regex_to_glob(src):
    """The exporter's source condition is a glob (no case); the sources
    here are plain names: ^x$ exact, ^x prefix, x substring."""
    g = src[1:] if src.startswith("^") else "*" + src
    return g[:-1] if g.endswith("$") else g + "*"


def exporter_config(data):
    out = ["events:", "  match: first", "  inputs:",
           "    - { file: %s, name: bench, format: json, start_at: beginning }" % yaml_str(data),
           "  rules:"]
    for name, ids, src, msg in RULES:
        parts = ["name: %s" % name]
        parts.append("event_id: %s" % (yaml_str("%d-%d" % ids) if isinstance(ids, tuple) else ids))
        if src:
            parts.append("source: %s" % yaml_str(regex_to_glob(src)))
        if msg:
            parts.append("message: %s" % yaml_str(msg))
        out.append("    - { %s }" % ", ".join(parts))
    return "\n".join(out) + "\n"


def src_regex_in_line(src):
    """^x$ / ^x / x as a regex for the quoted SourceName value."""
    a = "" if src.startswith("^") else '[^"]*'
    b = "" if src.endswith("$") else '[^"]*'
    return a + src.strip("^$") + b


def inline_flags(msg):
    """(?i)x -> (?i:x): the pattern sits inside a larger one."""
    return "(?i:%s)" % msg[4:] if msg.startswith("(?i)") else "(?:%s)" % msg


def mtail_program():
    out = ["counter pki_events_total by rule, host, source, event_id", "",
           '/"Hostname":"(?P<host>[^"]*)".*"EventID":(?P<id>\\d+),"SourceName":"(?P<src>[^"]*)"'
           '.*"Message":"(?P<msg>[^"]*)"/ {']
    depth = 1
    for name, ids, src, msg in RULES:
        conds = []
        if isinstance(ids, tuple):
            conds.append("$id >= %d && $id <= %d" % ids)
        else:
            conds.append("$id == %d" % ids)
        if src and msg:
            # mtail allows one regex per condition (both on the line), and
            # a bare regex only first
            conds.insert(0, '/"SourceName":"%s".*"Message":"[^"]*%s/'
                         % (src_regex_in_line(src), inline_flags(msg).replace("/", "\\/")))
        elif src:
            conds.append("$src =~ /%s/" % src)
        elif msg:
            conds.append("$msg =~ /%s/" % msg.replace("/", "\\/"))
        pad = "  " * depth
        out.append("%s%s {" % (pad, " && ".join(conds)))
        out.append('%s  pki_events_total["%s"][$host][$src][$id]++' % (pad, name))
        out.append("%s} else {" % pad)
        depth += 1
    for d in range(depth - 1, 0, -1):
        out.append("%s}" % ("  " * d))
    out.append("}")
    return "\n".join(out) + "\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def proc_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode("utf-8", "replace")


def run_exporter(binary, workdir, data, nlines, timeout):
    cfg = os.path.join(workdir, "exporter.yml")
    with open(cfg, "w") as f:
        f.write(exporter_config(data))
    port = free_port()
    log = open(os.path.join(workdir, "exporter.log"), "wb")
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "--config.file=" + cfg,
                          "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                         stdout=log, stderr=log, start_new_session=True)
    try:
        text = ""
        done = None
        pat = re.compile(r'^pki_events_input_lines_total\{input="bench"\} (\d+)', re.M)
        while time.monotonic() - t0 < timeout:
            if p.poll() is not None:
                raise RuntimeError("pki_exporter exited (%s), see %s" % (p.returncode, log.name))
            try:
                text = scrape(port)
            except OSError:
                time.sleep(0.05)
                continue
            m = pat.search(text)
            if m and int(m.group(1)) >= nlines:
                done = time.monotonic()
                break
            time.sleep(0.05)
        if done is None:
            raise RuntimeError("pki_exporter did not finish in %ds" % timeout)
        cpu = proc_cpu(p.pid)
        hwm = proc_hwm(p.pid)
        counts = {}
        for m in re.finditer(r'^pki_events_total\{rule="([^"]+)"[^}]*\} (\S+)', text, re.M):
            counts[m.group(1)] = counts.get(m.group(1), 0) + int(float(m.group(2)))
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        log.close()
    return {"wall_s": done - t0, "cpu_s": cpu, "peak_rss_bytes": hwm, "counts": counts}


def run_mtail(binary, workdir, data, timeout):
    progs = os.path.join(workdir, "progs")
    os.makedirs(progs, exist_ok=True)
    with open(os.path.join(progs, "pki.mtail"), "w") as f:
        f.write(mtail_program())
    out_path = os.path.join(workdir, "mtail.out")
    out = open(out_path, "wb")
    err = open(os.path.join(workdir, "mtail.log"), "wb")
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "--progs", progs, "--logs", data, "--one_shot",
                          "--one_shot_format", "prometheus", "--address", "127.0.0.1",
                          "--port", str(free_port()), "--logtostderr"],
                         stdout=out, stderr=err, start_new_session=True)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.kill(p.pid, signal.SIGKILL)
            os.wait4(p.pid, 0)
            raise RuntimeError("mtail did not finish in %ds" % timeout)
        time.sleep(0.02)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.close()
    err.close()
    if p.returncode != 0:
        raise RuntimeError("mtail failed (%d), see %s" % (p.returncode, err.name))
    counts = {}
    with open(out_path) as f:
        for line in f:
            m = re.match(r'^pki_events_total\{.*rule="([^"]+)".*\} (\S+)', line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + int(float(m.group(2)))
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_rss_bytes": ru.ru_maxrss * 1024, "counts": counts}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=500000)
    ap.add_argument("--exporter", default=os.environ.get("PKI_EXPORTER")
                    or os.path.join(SRC, "build", "pki_exporter"))
    ap.add_argument("--mtail", default=shutil.which("mtail") or "mtail")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--json")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each tool, alternating which goes first; medians")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="pki-bench-events-")
    try:
        data = os.path.join(work, "events.jsonl")
        t = time.monotonic()
        size, expect = generate(data, args.lines)
        print("generated %d lines, %.1f MiB (%.0f bytes/line) in %.1fs; %d lines match a rule"
              % (args.lines, size / 2**20, size / args.lines, time.monotonic() - t,
                 sum(expect.values())))
        ncpu = os.cpu_count()
        results = {"lines": args.lines, "bytes": size, "rules": len(RULES), "cpus": ncpu,
                   "expected": expect}
        # a warm page cache for both
        with open(data, "rb") as f:
            while f.read(1 << 22):
                pass
        ok = True
        runs = []
        for k in range(args.repeat):	# alternate who goes first
            rr = {}
            for tool in (("pki_exporter", "mtail") if k % 2 == 0 else ("mtail", "pki_exporter")):
                if tool == "pki_exporter":
                    rr[tool] = run_exporter(args.exporter, work, data, args.lines, args.timeout)
                else:
                    rr[tool] = run_mtail(args.mtail, work, data, args.timeout)
            for tool in ("pki_exporter", "mtail"):
                r = rr[tool]
                r["lines_per_s"] = args.lines / r["wall_s"]
                r["lines_per_s_per_core"] = args.lines / r["cpu_s"] if r["cpu_s"] else 0
                r["exact"] = r["counts"] == expect
                if not r["exact"]:
                    ok = False
                    print("%s run %d: counts DIFFER\n   got  %r\n   want %r"
                          % (tool, k + 1, r["counts"], expect))
            m = rr["mtail"]["lines_per_s_per_core"]
            rr["ratio_per_core"] = rr["pki_exporter"]["lines_per_s_per_core"] / m if m else 0
            rr["ratio_rss"] = rr["pki_exporter"]["peak_rss_bytes"] / rr["mtail"]["peak_rss_bytes"]
            runs.append(rr)
        results["runs"] = runs
        med = lambda tool, key: statistics.median(r[tool][key] for r in runs)
        print()
        print("%-13s %9s %8s %12s %15s %10s %s" % ("tool", "wall s", "CPU s", "lines/s",
                                                   "lines/s/core", "peak RSS", "counts"))
        for tool in ("pki_exporter", "mtail"):
            results[tool] = {key: med(tool, key) for key in ("wall_s", "cpu_s", "lines_per_s",
                                                              "lines_per_s_per_core", "peak_rss_bytes")}
            results[tool]["exact"] = all(r[tool]["exact"] for r in runs)
            r = results[tool]
            print("%-13s %9.2f %8.2f %12.0f %15.0f %7.1f MiB %s"
                  % (tool, r["wall_s"], r["cpu_s"], r["lines_per_s"], r["lines_per_s_per_core"],
                     r["peak_rss_bytes"] / 2**20, "exact" if r["exact"] else "DIFFER"))
        results["ratio_per_core"] = statistics.median(r["ratio_per_core"] for r in runs)
        results["ratio_rss"] = statistics.median(r["ratio_rss"] for r in runs)
        print("\nmedians of %d run(s); ours/mtail lines per second per core: %.2fx (per run: %s; "
              "target >= 3x), peak RSS %.2fx (target <= 0.5x)"
              % (len(runs), results["ratio_per_core"],
                 ", ".join("%.2fx" % r["ratio_per_core"] for r in runs), results["ratio_rss"]))
        print("\n%d CPUs; pki_exporter: whole process (daemon, HTTP, config), one ingest "
              "thread, JSON parsed by cJSON;\nmtail: --one_shot, fields taken by regex."
              % ncpu)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        return 0 if ok else 2
    finally:
        if args.keep_tmp:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
