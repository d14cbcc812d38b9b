"""Integration-test harness for pki_exporter (Python 3 standard library only).

Reusable pieces, imported by tests/integration/test_*.py:

  * free_port(), TempDir, Proc/start_process/stop_process: child processes are
    tracked by PID and always killed (tearDown helpers + atexit + SIGTERM).
    Nothing here ever kills by process name.
  * PKI: root CA, intermediate CA, leaf and self-signed certificates made with
    the openssl CLI at test time (`openssl ca` with -startdate/-enddate, so
    dates and serials are exact), facts read back from `openssl x509`.
  * NginxRunner: one nginx serving N TLS server blocks on 127.0.0.1.
  * SilentServer: accepts TCP connections and never says a word.
  * DnsmasqRunner: an authoritative-only dnsmasq on 127.0.0.1:<port>; chosen
    names resolve, everything else is NXDOMAIN (it never forwards).
  * Exporter: runs $PKI_EXPORTER with a generated YAML config, scrape helpers.
  * parse_metrics(): a strict Prometheus text-format 0.0.4 parser.
  * PrometheusRunner: a real Prometheus scraping the exporter, query() helper;
    rule_files= loads rule files (rules(), alerts(), query_raw()).
  * CRLIssuer: CRLs (exact dates and numbers, Microsoft Next CRL Publish,
    Freshest CRL, Delta CRL Indicator) and OCSP answers of a PKI CA;
    HTTPFileServer: a loopback HTTP server for them (GET files, POST
    handlers, forced error statuses).
  * EximRunner, SlapdRunner: SMTP and LDAP servers offering STARTTLS (or
    not), each from a config in its own temp dir, in the foreground.
  * promtool_check_metrics().

Environment:
  PKI_EXPORTER      path to the exporter binary (tests needing it skip if unset)
  PKI_TEST_KEEP=1   keep temporary directories (for debugging)
"""

import atexit
import calendar
import datetime as _dt
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

OPENSSL = shutil.which("openssl") or "openssl"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
EXIM = shutil.which("exim4") or "/usr/sbin/exim4"
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"

KEEP = os.environ.get("PKI_TEST_KEEP") == "1"


class HarnessError(Exception):
    pass


# ---------------------------------------------------------------------------
# ports, temp dirs
# ---------------------------------------------------------------------------

_handed_out_ports = set()
_port_rng = random.SystemRandom()
_port_lock_fd = None


def _port_lock():
    """One lock file for every test process on this machine; a port is
    reserved by a POSIX record lock on its byte (released when the process
    ends). None if the file cannot be opened (then only in-process)."""
    global _port_lock_fd
    if _port_lock_fd is None:
        try:
            _port_lock_fd = os.open(os.path.join(tempfile.gettempdir(), "pki-it-ports.lock"),
                                    os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            _port_lock_fd = -1
    return _port_lock_fd if _port_lock_fd >= 0 else None


def _port_span():
    """Ports below the kernel's ephemeral range: no outgoing connection of any
    process is given one as its source port, so a port handed out here stays
    free until the test binds it (or stays refused if nobody ever does)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    top = min(lo, 65536) - 1
    return (10000, top) if top >= 15000 else (1024, top)


def free_port():
    """A TCP port on 127.0.0.1 that is free and reserved for this process.

    Never returns the same port twice within one test process, nor a port
    another test process (ctest -j) holds: each is locked in a shared lock
    file for the life of the process. A port that must stay unused (a
    "connection refused" target) therefore stays unused."""
    lo, hi = _port_span()
    fd = _port_lock()
    for _ in range(500):
        port = _port_rng.randint(lo, hi)
        if port in _handed_out_ports:
            continue
        if fd is not None:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port, os.SEEK_SET)
            except OSError:
                continue        # another test process holds it
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            if fd is not None:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, port, os.SEEK_SET)
            continue
        finally:
            s.close()
        _handed_out_ports.add(port)
        return port
    raise HarnessError("could not find a free port")


def dechunk(data):
    """The body of a chunked HTTP/1.1 response; fails on a cut one."""
    body = b""
    while True:
        size, sep, data = data.partition(b"\r\n")
        if not sep:
            raise ValueError("chunked body cut short")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            return body
        if len(data) < n + 2 or data[n:n + 2] != b"\r\n":
            raise ValueError("chunked body cut short")
        body += data[:n]
        data = data[n + 2:]


def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (for DNS)."""
    for _ in range(50):
        port = free_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    raise HarnessError("could not find a free UDP+TCP port")


class TempDir:
    """Context manager (or plain object with .cleanup()) for a temp dir."""

    def __init__(self, prefix="pki-it-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        _tempdirs.append(self)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def cleanup(self):
        if KEEP:
            return
        shutil.rmtree(self.path, ignore_errors=True)


_tempdirs = []


# ---------------------------------------------------------------------------
# child processes, tracked by PID
# ---------------------------------------------------------------------------

_procs = {}  # pid -> Proc
_procs_lock = threading.Lock()


class Proc:
    """A child started in its own session (pgid == pid), output to files."""

    def __init__(self, argv, name, logdir, env=None, cwd=None):
        self.argv = list(argv)
        self.name = name
        os.makedirs(logdir, exist_ok=True)
        self.stdout_path = os.path.join(logdir, name + ".stdout")
        self.stderr_path = os.path.join(logdir, name + ".stderr")
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=self._err, env=env, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        with _procs_lock:
            _procs[self.pid] = self

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signal the process by PID; SIGKILL its process group (which we
        created, pgid == pid) if it does not exit in time. Returns the exit
        code (negative = killed by signal)."""
        rc = self.popen.poll()
        if rc is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            rc = self.wait(timeout)
        if rc is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            rc = self.wait(5)
        else:
            # leader gone; make sure children it left in our group are gone
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        with _procs_lock:
            _procs.pop(self.pid, None)
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:
                pass
        return rc

    def output(self):
        """(stdout, stderr) written so far, as text."""
        res = []
        for p in (self.stdout_path, self.stderr_path):
            try:
                with open(p, "rb") as f:
                    res.append(f.read().decode("utf-8", "replace"))
            except OSError:
                res.append("")
        return tuple(res)

    def log_tail(self, n=40):
        out, err = self.output()
        lines = (out + err).splitlines()
        return "\n".join(lines[-n:])


def start_process(argv, name, logdir, env=None, cwd=None):
    return Proc(argv, name, logdir, env=env, cwd=cwd)


def stop_all_processes():
    with _procs_lock:
        procs = list(_procs.values())
    for p in procs:
        try:
            p.stop(timeout=3)
        except Exception:
            pass


def _cleanup_at_exit():
    stop_all_processes()
    for t in list(_tempdirs):
        t.cleanup()


atexit.register(_cleanup_at_exit)


def _on_sigterm(signum, frame):
    # turn SIGTERM into a normal exit so atexit runs and children die
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        pass


def run(argv, check=True, input=None, timeout=60, cwd=None, env=None):
    """Run a short command, return CompletedProcess (text)."""
    cp = subprocess.run(argv, input=input, capture_output=True, text=True,
                        timeout=timeout, cwd=cwd, env=env)
    if check and cp.returncode != 0:
        raise HarnessError("command failed (%d): %s\nstdout: %s\nstderr: %s"
                           % (cp.returncode, " ".join(argv), cp.stdout, cp.stderr))
    return cp


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value; return it or raise."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %.1fs waiting for %s%s"
                               % (timeout, what,
                                  (" (last error: %r)" % last_exc) if last_exc else ""))
        time.sleep(interval)


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, timeout=10.0, proc=None, host="127.0.0.1"):
    def ok():
        if proc is not None and not proc.alive():
            raise HarnessError("%s exited early (rc=%s):\n%s"
                               % (proc.name, proc.returncode(), proc.log_tail()))
        return port_accepts(port, host)
    wait_until(ok, timeout, what="%s:%d to accept" % (host, port))


# ---------------------------------------------------------------------------
# PKI with the openssl CLI
# ---------------------------------------------------------------------------

def utc_now():
    return int(time.time())


def openssl_time(ts):
    """Unix seconds -> the GeneralizedTime form `openssl ca -startdate` takes."""
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return d.strftime("%Y%m%d%H%M%SZ")


def _parse_iso_openssl(s):
    # `-dateopt iso_8601` prints e.g. "2050-12-31 23:59:58Z"
    d = _dt.datetime.strptime(s.strip(), "%Y-%m-%d %H:%M:%SZ")
    return calendar.timegm(d.timetuple())


def _parse_rfc822_openssl(s):
    # default form, e.g. "Dec 31 23:59:58 2050 GMT"
    d = _dt.datetime.strptime(s.strip(), "%b %d %H:%M:%S %Y GMT")
    return calendar.timegm(d.timetuple())


def subj_escape(value):
    """Escape a value for `openssl req -subj` ('\\' escapes the next char)."""
    return "".join("\\" + c if c in "\\/+=" else c for c in value)


class CertInfo:
    """Paths and facts of one certificate, read back from openssl."""

    def __init__(self, **kw):
        self.name = None
        self.cert = None          # PEM path
        self.key = None           # PEM path
        self.subject_cn = None    # the CN we asked for (raw string)
        self.issuer_cn = None
        self.not_before = None    # Unix seconds (read back)
        self.not_after = None     # Unix seconds (read back)
        self.serial = None        # as `openssl x509 -noout -serial` prints it
        self.sha1 = None          # lowercase hex, no colons
        self.sha256 = None
        self.sig_alg = None       # e.g. sha256WithRSAEncryption
        self.key_type = None      # RSA | EC | ED25519
        self.key_bits = None      # int
        self.sans = None          # "DNS:a,IP:127.0.0.1" (order as in cert) or ""
        self.issuer = None        # CertInfo of issuer (None if self-signed)
        self.__dict__.update(kw)

    def pem(self):
        with open(self.cert) as f:
            return f.read()

    def __repr__(self):
        return "<CertInfo %s CN=%r serial=%s nb=%s na=%s>" % (
            self.name, self.subject_cn, self.serial, self.not_before, self.not_after)


def read_cert_facts(cert_path):
    """Facts of a PEM certificate as openssl prints them."""
    cp = run([OPENSSL, "x509", "-in", cert_path, "-noout", "-serial",
              "-startdate", "-enddate", "-dateopt", "iso_8601"])
    facts = {}
    for line in cp.stdout.splitlines():
        k, _, v = line.partition("=")
        if k == "serial":
            facts["serial"] = v.strip()
        elif k == "notBefore":
            facts["not_before"] = _parse_iso_openssl(v)
        elif k == "notAfter":
            facts["not_after"] = _parse_iso_openssl(v)
    # cross-check with the default (rfc_822) date form
    cp2 = run([OPENSSL, "x509", "-in", cert_path, "-noout", "-startdate", "-enddate"])
    for line in cp2.stdout.splitlines():
        k, _, v = line.partition("=")
        key = {"notBefore": "not_before", "notAfter": "not_after"}.get(k)
        if key and _parse_rfc822_openssl(v) != facts[key]:
            raise HarnessError("date forms disagree for %s" % cert_path)
    for alg in ("sha1", "sha256"):
        cp = run([OPENSSL, "x509", "-in", cert_path, "-noout", "-fingerprint", "-" + alg])
        fp = cp.stdout.strip().split("=", 1)[1]
        facts[alg] = fp.replace(":", "").lower()
    text = run([OPENSSL, "x509", "-in", cert_path, "-noout", "-text"]).stdout
    m = re.search(r"^\s*Signature Algorithm:\s*(\S+)", text, re.M)
    facts["sig_alg"] = m.group(1) if m else None
    m = re.search(r"Public Key Algorithm:\s*(\S+)", text)
    alg = m.group(1) if m else ""
    facts["key_type"] = {"rsaEncryption": "RSA", "id-ecPublicKey": "EC",
                         "ED25519": "ED25519"}.get(alg, alg)
    m = re.search(r"Public-Key:\s*\((\d+) bit\)", text)
    facts["key_bits"] = int(m.group(1)) if m else None
    m = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.+)\n", text)
    if m:
        parts = [p.strip() for p in m.group(1).split(",")]
        norm = []
        for p in parts:
            if p.startswith("IP Address:"):
                p = "IP:" + p[len("IP Address:"):]
            norm.append(p)
        facts["sans"] = ",".join(norm)
    else:
        facts["sans"] = ""
    return facts


def pem_certs_der(path):
    """The DER bytes of every certificate in a PEM file, in file order."""
    import base64
    with open(path) as f:
        text = f.read()
    return [base64.b64decode("".join(m.group(1).split()))
            for m in re.finditer(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----",
                                 text, re.S)]


def der_tlv(data, off=0):
    """One DER TLV at data[off]: (tag, header_len, content_len); DER only
    (definite lengths), single-byte tags."""
    tag = data[off]
    ln = data[off + 1]
    if ln < 0x80:
        return tag, 2, ln
    n = ln & 0x7F
    if n == 0 or n > 4:
        raise ValueError("not DER: length form 0x%02x at %d" % (ln, off))
    return tag, 2 + n, int.from_bytes(data[off + 2:off + 2 + n], "big")


def der_cert_subject(der):
    """The DER encoding (whole TLV) of a certificate's subject Name, found
    with a minimal ASN.1 walk: Certificate SEQUENCE { tbsCertificate
    SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
    validity, subject, ... } }."""
    tag, hl, _ = der_tlv(der, 0)
    if tag != 0x30:
        raise ValueError("not a certificate")
    off = hl                                  # into Certificate
    tag, hl, _ = der_tlv(der, off)
    if tag != 0x30:
        raise ValueError("no tbsCertificate")
    off += hl                                 # into tbsCertificate
    fields = []
    for _ in range(6):
        tag, hl, ln = der_tlv(der, off)
        fields.append((tag, off, hl + ln))
        off += hl + ln
    if fields[0][0] == 0xA0:                  # explicit version present
        fields = fields[1:]
    tag, start, size = fields[4]              # serial, sigalg, issuer, validity, subject
    if tag != 0x30:
        raise ValueError("subject is not a SEQUENCE")
    return der[start:start + size]


_CA_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
default_days = 30
[ policy_any ]
commonName = optional
[ ext_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ ext_root ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[ ext_leaf ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,keyEncipherment
{leaf_eku}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
{san}
{extra}
[ ext_self ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,keyEncipherment
{self_eku}
subjectKeyIdentifier = hash
{san}
{extra}
"""


def _eku_line(eku):
    return "extendedKeyUsage = " + eku if eku else ""


class PKI:
    """Makes keys and certificates in `directory` with the openssl CLI."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.certs = {}

    # -- keys ---------------------------------------------------------------
    def make_key(self, name, key="ec"):
        """key: 'ec' / 'ec:P-256' / 'ec:P-384' / 'rsa' / 'rsa:3072' / 'ed25519'."""
        path = os.path.join(self.dir, name + ".key")
        kind, _, param = key.partition(":")
        if kind == "ec":
            argv = [OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:" + (param or "P-256")]
        elif kind == "rsa":
            argv = [OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:" + (param or "2048")]
        elif kind == "ed25519":
            argv = [OPENSSL, "genpkey", "-algorithm", "ED25519"]
        else:
            raise ValueError(key)
        run(argv + ["-out", path])
        os.chmod(path, 0o600)
        return path

    # -- the signing machinery ---------------------------------------------
    def _ca_dir(self, issuer_name):
        d = os.path.join(self.dir, "ca-" + issuer_name)
        if not os.path.isdir(d):
            os.makedirs(os.path.join(d, "newcerts"))
            open(os.path.join(d, "index.txt"), "w").close()
        return d

    def _sign(self, name, cn, key_path, issuer, extensions, sans,
              not_before, not_after, serial, subject_extra="", md=None,
              eku=None, extra_ext=()):
        """md: digest for the signature (`openssl ca -md`, e.g. "sha1",
        "md5"; default sha256). eku: extendedKeyUsage value of ext_leaf /
        ext_self (None = the section's default, "" = no EKU extension).
        extra_ext: more extension lines, e.g.
        "crlDistributionPoints = URI:http://crl.test/x.crl"."""
        csr = os.path.join(self.dir, name + ".csr")
        subj = "/CN=" + subj_escape(cn) + subject_extra
        run([OPENSSL, "req", "-new", "-utf8", "-key", key_path, "-subj", subj,
             "-out", csr])
        ca_dir = self._ca_dir(issuer.name if issuer else name)
        san_line = ""
        if sans:
            san_line = "subjectAltName = " + ",".join(sans)
        cnf = os.path.join(ca_dir, "ca-%s.cnf" % name)
        with open(cnf, "w") as f:
            f.write(_CA_CNF.format(
                dir=ca_dir, san=san_line, extra="\n".join(extra_ext),
                leaf_eku=_eku_line("serverAuth,clientAuth" if eku is None else eku),
                self_eku=_eku_line("serverAuth" if eku is None else eku)))
        if serial is None:
            serial = "%02X%s" % (random.randint(0x10, 0x7F),
                                 "".join("%02X" % random.randint(0, 255) for _ in range(15)))
        with open(os.path.join(ca_dir, "serial"), "w") as f:
            f.write(serial + "\n")
        out = os.path.join(self.dir, name + ".pem")
        argv = [OPENSSL, "ca", "-batch", "-config", cnf, "-notext", "-preserveDN",
                "-utf8", "-in", csr, "-out", out,
                "-startdate", openssl_time(not_before),
                "-enddate", openssl_time(not_after),
                "-extfile", cnf, "-extensions", extensions]
        if md:
            argv += ["-md", md]
        if issuer is None:
            argv += ["-selfsign", "-keyfile", key_path]
        else:
            argv += ["-cert", issuer.cert, "-keyfile", issuer.key]
        run(argv)
        facts = read_cert_facts(out)
        ci = CertInfo(name=name, cert=out, key=key_path, subject_cn=cn,
                      issuer_cn=(issuer.subject_cn if issuer else cn),
                      issuer=issuer, **facts)
        if ci.serial.lstrip("0") != serial.upper().lstrip("0"):
            raise HarnessError("serial mismatch %s vs %s" % (ci.serial, serial))
        if ci.not_before != not_before or ci.not_after != not_after:
            raise HarnessError("dates not as requested for %s" % name)
        self.certs[name] = ci
        return ci

    # -- public makers --------------------------------------------------------
    def root_ca(self, name="root", cn="PKI Test Root CA", key="rsa",
                not_before=None, not_after=None, serial=None, md=None):
        now = utc_now()
        nb = now - 30 * 86400 if not_before is None else not_before
        na = now + 3650 * 86400 if not_after is None else not_after
        k = self.make_key(name, key)
        return self._sign(name, cn, k, None, "ext_root", None, nb, na, serial, md=md)

    def intermediate_ca(self, issuer, name="intermediate", cn="PKI Test Intermediate CA",
                        key="ec", not_before=None, not_after=None, serial=None, md=None):
        now = utc_now()
        nb = now - 20 * 86400 if not_before is None else not_before
        na = now + 1825 * 86400 if not_after is None else not_after
        k = self.make_key(name, key)
        return self._sign(name, cn, k, issuer, "ext_ca", None, nb, na, serial, md=md)

    def leaf(self, issuer, name, cn, sans=(), key="ec", not_before=None,
             not_after=None, serial=None, md=None, eku=None, extra_ext=()):
        """A server certificate signed by `issuer`.
        sans: e.g. ["DNS:a.test", "IP:127.0.0.1"] (empty: no SAN extension).
        md, eku, extra_ext: see _sign (EKU default serverAuth,clientAuth)."""
        now = utc_now()
        nb = now - 86400 if not_before is None else not_before
        na = now + 90 * 86400 if not_after is None else not_after
        k = self.make_key(name, key)
        return self._sign(name, cn, k, issuer, "ext_leaf", list(sans), nb, na, serial,
                          md=md, eku=eku, extra_ext=extra_ext)

    def self_signed(self, name, cn, sans=(), key="ec", not_before=None,
                    not_after=None, serial=None, md=None, eku=None, extra_ext=()):
        now = utc_now()
        nb = now - 86400 if not_before is None else not_before
        na = now + 365 * 86400 if not_after is None else not_after
        k = self.make_key(name, key)
        return self._sign(name, cn, k, None, "ext_self", list(sans), nb, na, serial,
                          md=md, eku=eku, extra_ext=extra_ext)

    def chain_file(self, name, certs):
        """Concatenate PEMs (leaf first) into one file, return its path."""
        return self.chain_file_at(os.path.join(self.dir, name + ".chain.pem"), certs)

    @staticmethod
    def chain_file_at(path, certs):
        """Concatenate the PEMs of `certs` into `path`, return it."""
        with open(path, "w") as f:
            for c in certs:
                f.write(c.pem())
        return path


# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------

class TLSServer:
    """One nginx server block. `chain` = the certificates sent after the leaf.

    host: the listen address ("127.0.0.1", any 127.x.y.z, or "::1").
    directives: extra nginx lines for the server block, e.g.
    ["ssl_verify_client optional;", "ssl_client_certificate /x/cas.pem;"]."""

    def __init__(self, cert, chain=(), port=None, server_name=None,
                 protocols="TLSv1.2 TLSv1.3", ciphersuites=None, ciphers=None,
                 host="127.0.0.1", directives=()):
        self.cert = cert
        self.chain = list(chain)
        self.port = port
        self.server_name = server_name
        self.protocols = protocols
        self.ciphersuites = ciphersuites
        self.ciphers = ciphers
        self.host = host
        self.directives = list(directives)

    def listen_addr(self):
        return "[%s]:%d" % (self.host, self.port) if ":" in self.host \
            else "%s:%d" % (self.host, self.port)


class NginxRunner:
    """One nginx process serving several TLS server blocks on 127.0.0.1
    (or other loopback addresses: add(..., host="127.0.0.2" / "::1")).

    add() returns the port; several blocks may share a port (SNI): the first
    block on a host:port is its default_server."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.servers = []
        self.proc = None

    def add(self, cert, chain=(), port=None, server_name=None, **kw):
        if port is None:
            port = free_port()
        self.servers.append(TLSServer(cert, chain, port, server_name, **kw))
        return port

    def _conf(self):
        d = self.dir
        lines = [
            "worker_processes 1;",
            "user root;",
            "pid %s/nginx.pid;" % d,
            "error_log %s/error.log info;" % d,
            "events { worker_connections 512; }",
            "http {",
            "  access_log off;",
            "  client_body_temp_path %s/tmp/body;" % d,
            "  proxy_temp_path %s/tmp/proxy;" % d,
            "  fastcgi_temp_path %s/tmp/fastcgi;" % d,
            "  uwsgi_temp_path %s/tmp/uwsgi;" % d,
            "  scgi_temp_path %s/tmp/scgi;" % d,
        ]
        seen_ports = set()
        for i, s in enumerate(self.servers):
            chain_path = os.path.join(d, "srv%d.crt" % i)
            with open(chain_path, "w") as f:
                f.write(s.cert.pem())
                for c in s.chain:
                    f.write(c.pem())
            default = (s.host, s.port) not in seen_ports
            seen_ports.add((s.host, s.port))
            lines.append("  server {")
            lines.append("    listen %s ssl%s;" % (s.listen_addr(), " default_server" if default else ""))
            lines.append("    server_name %s;" % (s.server_name or '""'))
            lines.append("    ssl_certificate %s;" % chain_path)
            lines.append("    ssl_certificate_key %s;" % s.cert.key)
            lines.append("    ssl_protocols %s;" % s.protocols)
            if s.ciphers:
                lines.append("    ssl_ciphers %s;" % s.ciphers)
            if s.ciphersuites:
                lines.append("    ssl_conf_command Ciphersuites %s;" % s.ciphersuites)
            for d_ in s.directives:
                lines.append("    " + d_)
            lines.append('    location / { return 200 "ok\\n"; }')
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def start(self, timeout=10.0):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self._conf())
        argv = [NGINX, "-p", self.dir + "/", "-c", conf, "-e",
                os.path.join(self.dir, "error.log"), "-g", "daemon off;"]
        self.proc = start_process(argv, "nginx", self.dir)
        try:
            for host, port in sorted({(s.host, s.port) for s in self.servers}):
                wait_port(port, timeout, self.proc, host=host)
        except HarnessError as e:
            raise HarnessError("%s\nnginx error.log:\n%s" % (e, self.error_log()))
        return self

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc:
            self.proc.stop(signal.SIGTERM)
            self.proc = None


# ---------------------------------------------------------------------------
# a TCP server that accepts and never speaks
# ---------------------------------------------------------------------------

class SilentServer:
    """Listens on 127.0.0.1:port, accepts, holds connections open, sends
    nothing. Runs as a daemon thread in the test process."""

    def __init__(self, port=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.conns = []
        self.accepted = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True,
                                       name="silent-%d" % self.port)

    def start(self):
        self.thread.start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.conns.append(c)
            self.accepted += 1

    def stop(self):
        self._stop.set()
        self.thread.join(2)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


# ---------------------------------------------------------------------------
# openssl s_server: for what nginx cannot do at the TLS layer
# ---------------------------------------------------------------------------

class SServerRunner:
    """`openssl s_server -www` on host:port (one connection at a time).

    nginx never fails a handshake over a client certificate (its verify
    callback accepts everything and `ssl_verify_client on` answers 400 at the
    HTTP layer), so a server that *rejects* a missing client certificate in
    the handshake is s_server with args=["-Verify", "1", "-CAfile", ca].
    args: more s_server options (e.g. "-tls1_2", "-tls1_3")."""

    def __init__(self, directory, cert, chain=(), port=None, host="127.0.0.1",
                 args=(), name="s_server"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = cert
        self.chain = list(chain)
        self.port = port or free_port()
        self.host = host
        self.args = list(args)
        self.name = name
        self.proc = None

    def start(self, timeout=10.0):
        argv = [OPENSSL, "s_server", "-www", "-quiet",
                "-accept", ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port),
                "-cert", self.cert.cert, "-key", self.cert.key]
        if self.chain:
            argv += ["-cert_chain", PKI.chain_file_at(os.path.join(self.dir, self.name + ".chain.pem"),
                                                      self.chain)]
        argv += self.args
        self.proc = start_process(argv, self.name, self.dir)
        wait_port(self.port, timeout, self.proc, host=self.host)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop(signal.SIGTERM)
            self.proc = None


# ---------------------------------------------------------------------------
# dnsmasq
# ---------------------------------------------------------------------------

class DnsmasqRunner:
    """Authoritative-only dnsmasq on 127.0.0.1:port.

    names: {"good.test": "127.0.0.1", ...}. Every other name is NXDOMAIN
    (address=/#/ with no address); nothing is ever forwarded (no-resolv, no
    server= lines, no /etc/hosts, no config file).

    extra_args: more dnsmasq options for local data, e.g.
    "--srv-host=_sip._tls.a.test,sip.a.test,5061,10,50" or
    "--host-record=pool.a.test,127.0.0.2" (repeat it for several
    addresses; "--host-record=n.test,127.0.0.1,::1" gives A and AAAA)."""

    def __init__(self, directory, names, port=None, extra_args=()):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.names = dict(names)
        self.port = port or free_udp_tcp_port()
        self.extra_args = list(extra_args)
        self.proc = None

    def start(self, timeout=10.0):
        argv = [DNSMASQ, "--keep-in-foreground", "--conf-file", "--no-resolv",
                "--no-hosts", "--no-poll", "--pid-file", "--log-facility=-",
                "--log-queries", "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces",
                "--user=root", "--address=/#/"]
        for n, ip in sorted(self.names.items()):
            argv.append("--address=/%s/%s" % (n, ip))
        argv += self.extra_args
        self.proc = start_process(argv, "dnsmasq", self.dir)

        def answering():
            if not self.proc.alive():
                raise HarnessError("dnsmasq exited:\n" + self.proc.log_tail())
            return dns_query("probe.invalid", self.port, timeout=0.3) is not None
        wait_until(answering, timeout, what="dnsmasq to answer")
        return self

    def stop(self):
        if self.proc:
            self.proc.stop(signal.SIGTERM)
            self.proc = None


def dns_query(name, port, qtype=1, server="127.0.0.1", timeout=1.0):
    """Minimal DNS client (UDP). Returns (rcode, [answers]) where answers are
    dotted IPv4 strings for A, IPv6 text for AAAA, raw bytes otherwise; or None
    on timeout."""
    qid = random.randint(0, 0xFFFF)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (server, port))
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            return None
    finally:
        s.close()
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    if rid != qid:
        return None
    rcode = flags & 0xF
    off = 12

    def skip_name(off):
        while True:
            ln = data[off]
            if ln == 0:
                return off + 1
            if ln & 0xC0 == 0xC0:
                return off + 2
            off += 1 + ln
    for _ in range(qd):
        off = skip_name(off) + 4
    answers = []
    for _ in range(an):
        off = skip_name(off)
        atype, _, _, rdlen = struct.unpack(">HHIH", data[off:off + 10])
        off += 10
        rdata = data[off:off + rdlen]
        off += rdlen
        if atype == 1:
            answers.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif atype == 28:
            answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
        else:
            answers.append(rdata)
    return rcode, answers


# ---------------------------------------------------------------------------
# STARTTLS servers: exim (SMTP) and slapd (LDAP)
# ---------------------------------------------------------------------------

def _tls_files(directory, cert, chain):
    """Copy cert (+ chain, leaf first) and key into directory; (crt, key)."""
    crt = os.path.join(directory, "server.crt")
    key = os.path.join(directory, "server.key")
    with open(crt, "w") as f:
        f.write(cert.pem())
        for c in chain:
            f.write(c.pem())
    shutil.copyfile(cert.key, key)
    os.chmod(key, 0o600)
    return crt, key


class EximRunner:
    """An exim4 SMTP daemon in the foreground on 127.0.0.1:port, with its own
    config, spool and logs in `directory` (nothing under /etc or /var).

    cert: a CertInfo to offer STARTTLS with (chain: sent after it); None
    means no STARTTLS in the EHLO reply. It never accepts mail (no ACLs):
    it exists to be probed. Needs root: exim keeps root for a -C config only
    when root runs it, and exim_user = root keeps the files readable."""

    def __init__(self, directory, cert=None, chain=(), port=None,
                 hostname="mail.test"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = cert
        self.chain = list(chain)
        self.port = port or free_port()
        self.hostname = hostname
        self.proc = None

    def _conf(self):
        d = self.dir
        lines = [
            "primary_hostname = %s" % self.hostname,
            "daemon_smtp_ports = %d" % self.port,
            "local_interfaces = 127.0.0.1",
            "spool_directory = %s/spool" % d,
            "log_file_path = %s/log/%%slog" % d,
            "pid_file_path = %s/exim.pid" % d,
            # exim 4.96 binds a notifier socket named after the spool
            # directory; none is needed for a daemon that only answers
            "notifier_socket =",
            "keep_environment =",
            "exim_user = root",
            "exim_group = root",
            "host_lookup =",
            "rfc1413_hosts =",
        ]
        if self.cert:
            crt, key = _tls_files(d, self.cert, self.chain)
            lines += ["tls_advertise_hosts = *",
                      "tls_certificate = " + crt,
                      "tls_privatekey = " + key]
        else:
            lines.append("tls_advertise_hosts =")
        return "\n".join(lines) + "\n"

    def start(self, timeout=10.0):
        for sub in ("spool", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        conf = os.path.join(self.dir, "exim.conf")
        with open(conf, "w") as f:
            f.write(self._conf())
        self.proc = start_process([EXIM, "-bdf", "-C", conf], "exim", self.dir)
        try:
            wait_port(self.port, timeout, self.proc)
        except HarnessError as e:
            raise HarnessError("%s\nexim mainlog/paniclog:\n%s" % (e, self.log()))
        return self

    def log(self):
        out = []
        for name in ("mainlog", "paniclog", "rejectlog"):
            try:
                with open(os.path.join(self.dir, "log", name)) as f:
                    out.append(f.read()[-3000:])
            except OSError:
                pass
        return "\n".join(out)

    def stop(self):
        if self.proc:
            self.proc.stop(signal.SIGTERM)
            self.proc = None


class SlapdRunner:
    """OpenLDAP slapd in the foreground (-d) on ldap://127.0.0.1:port/ with a
    slapd.conf in `directory` and no database: enough to answer StartTLS.

    cert: a CertInfo for TLSCertificateFile (chain: appended to it); None
    leaves TLS unconfigured, and slapd then refuses StartTLS."""

    def __init__(self, directory, cert=None, chain=(), port=None):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = cert
        self.chain = list(chain)
        self.port = port or free_port()
        self.proc = None

    def _conf(self):
        d = self.dir
        lines = ["pidfile %s/slapd.pid" % d, "argsfile %s/slapd.args" % d]
        if self.cert:
            crt, key = _tls_files(d, self.cert, self.chain)
            lines += ["TLSCertificateFile " + crt,
                      "TLSCertificateKeyFile " + key]
        return "\n".join(lines) + "\n"

    def start(self, timeout=10.0):
        conf = os.path.join(self.dir, "slapd.conf")
        with open(conf, "w") as f:
            f.write(self._conf())
        # -d keeps slapd in the foreground; 256 (stats) logs connections
        argv = [SLAPD, "-d", "256", "-h", "ldap://127.0.0.1:%d/" % self.port,
                "-f", conf]
        self.proc = start_process(argv, "slapd", self.dir)
        wait_port(self.port, timeout, self.proc)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop(signal.SIGTERM)
            self.proc = None


# ---------------------------------------------------------------------------
# YAML emitter (enough for exporter / prometheus configs)
# ---------------------------------------------------------------------------

def _yaml_scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 1).split("\n")
                first = inner[0].lstrip()
                out.append("%s- %s" % (pad, first))
                out.extend(inner[1:])
            elif isinstance(v, list):
                out.append("%s- %s" % (pad, json.dumps(v)))
            else:
                out.append("%s- %s" % (pad, _yaml_scalar(v)))
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def exporter_config(modules, targets, global_=None):
    """modules: {name: {...}}; targets: [(module, [t1, t2]), ...]."""
    cfg = {}
    if global_:
        cfg["global"] = global_
    cfg["modules"] = modules
    cfg["targets"] = [{"module": m, "targets": list(ts)} for m, ts in targets]
    return to_yaml(cfg) + "\n"


# ---------------------------------------------------------------------------
# Prometheus text format parser
# ---------------------------------------------------------------------------

class ParseError(ValueError):
    pass


_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _parse_value(s):
    if s in ("+Inf", "Inf"):
        return float("inf")
    if s == "-Inf":
        return float("-inf")
    if s == "NaN":
        return float("nan")
    try:
        return float(s)
    except ValueError:
        raise ParseError("bad value %r" % s)


def parse_metrics(text, strict=True):
    """Parse text format 0.0.4 into {(name, frozenset(labels.items())): value}.

    Label values are unescaped (\\\\ -> \\, \\" -> ", \\n -> newline); any other
    escape, a malformed line or a duplicate series raises ParseError."""
    result = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.strip() == "":
            continue
        if line.startswith("#"):
            continue
        m = _NAME_RE.match(line)
        if not m:
            raise ParseError("line %d: no metric name: %r" % (lineno, line))
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            i += 1
            while True:
                while i < len(line) and line[i] in " \t":
                    i += 1
                if i < len(line) and line[i] == "}":
                    i += 1
                    break
                lm = _LABEL_RE.match(line, i)
                if not lm:
                    raise ParseError("line %d: bad label name at %d: %r" % (lineno, i, line))
                lname = lm.group(0)
                i = lm.end()
                while i < len(line) and line[i] in " \t":
                    i += 1
                if line[i:i + 2] != '="':
                    raise ParseError("line %d: expected =\" after %s: %r" % (lineno, lname, line))
                i += 2
                val = []
                while True:
                    if i >= len(line):
                        raise ParseError("line %d: unterminated label value" % lineno)
                    c = line[i]
                    if c == "\\":
                        if i + 1 >= len(line):
                            raise ParseError("line %d: dangling backslash" % lineno)
                        e = line[i + 1]
                        if e == "\\":
                            val.append("\\")
                        elif e == '"':
                            val.append('"')
                        elif e == "n":
                            val.append("\n")
                        else:
                            raise ParseError("line %d: invalid escape \\%s" % (lineno, e))
                        i += 2
                    elif c == '"':
                        i += 1
                        break
                    else:
                        val.append(c)
                        i += 1
                if lname in labels:
                    raise ParseError("line %d: duplicate label %s" % (lineno, lname))
                labels[lname] = "".join(val)
                while i < len(line) and line[i] in " \t":
                    i += 1
                if i < len(line) and line[i] == ",":
                    i += 1
                    continue
                if i < len(line) and line[i] == "}":
                    i += 1
                    break
                raise ParseError("line %d: expected , or } at %d: %r" % (lineno, i, line))
        rest = line[i:]
        if not rest or rest[0] not in " \t":
            raise ParseError("line %d: expected space before value: %r" % (lineno, line))
        parts = rest.split()
        if len(parts) not in (1, 2):
            raise ParseError("line %d: bad value/timestamp: %r" % (lineno, line))
        value = _parse_value(parts[0])
        if len(parts) == 2 and not re.fullmatch(r"-?\d+", parts[1]):
            raise ParseError("line %d: bad timestamp: %r" % (lineno, line))
        key = (name, frozenset(labels.items()))
        if strict and key in result:
            raise ParseError("line %d: duplicate series %s%r" % (lineno, name, labels))
        result[key] = value
    return result


class Metrics:
    """Convenience view over parse_metrics() output."""

    def __init__(self, text):
        self.text = text
        self.series = parse_metrics(text)

    def find(self, name, **labels):
        """[(labels_dict, value)] of series `name` whose labels include `labels`."""
        out = []
        for (n, ls), v in self.series.items():
            if n != name:
                continue
            d = dict(ls)
            if all(d.get(k) == val for k, val in labels.items()):
                out.append((d, v))
        return out

    def one(self, name, **labels):
        found = self.find(name, **labels)
        if len(found) != 1:
            raise AssertionError("expected exactly one %s%r, found %d: %r\n--- exposition ---\n%s"
                                 % (name, labels, len(found), found, self.excerpt()))
        return found[0]

    def value(self, name, **labels):
        return self.one(name, **labels)[1]

    def names(self):
        return {n for (n, _) in self.series}

    def excerpt(self, limit=6000):
        return self.text if len(self.text) <= limit else self.text[:limit] + "\n...[cut]"


# ---------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------

class HTTPResult:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def http_request(url, method="GET", headers=None, data=None, timeout=30.0):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            return HTTPResult(r.status, dict(r.headers), body, time.monotonic() - t0)
    except urllib.error.HTTPError as e:
        body = e.read()
        return HTTPResult(e.code, dict(e.headers or {}), body, time.monotonic() - t0)


# ---------------------------------------------------------------------------
# the exporter
# ---------------------------------------------------------------------------

def exporter_binary():
    """Path of the exporter binary from $PKI_EXPORTER, or raise SkipTest."""
    b = os.environ.get("PKI_EXPORTER")
    if not b:
        raise unittest.SkipTest("PKI_EXPORTER is not set: set it to the pki_exporter "
                                "binary (e.g. build/pki_exporter) to run these tests")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise unittest.SkipTest("PKI_EXPORTER=%s is not an executable file" % b)
    return os.path.abspath(b)


class Exporter:
    """Runs the exporter on 127.0.0.1:<free port> with a config file in `directory`.

    flag_style 'equals' passes --flag=value, 'space' passes --flag value."""

    def __init__(self, directory, config_text, name="exporter", extra_args=(),
                 flag_style="equals", cwd="/", wrapper=()):
        """wrapper: argv put in front of the binary (e.g. valgrind and its
        options)."""
        self.bin = exporter_binary()
        self.wrapper = list(wrapper)
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.name = name
        self.config_path = os.path.join(directory, name + ".yml")
        self.write_config(config_text)
        self.extra_args = list(extra_args)
        self.flag_style = flag_style
        self.cwd = cwd
        self.port = None
        self.proc = None

    def write_config(self, text):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def _flag(self, k, v):
        return ["%s=%s" % (k, v)] if self.flag_style == "equals" else [k, v]

    def start(self, timeout=15.0, port=None):
        """port: listen on that port (a restart on the same address; the
        port may take a moment to be free again); default a free one."""
        last = None
        for _attempt in range(3):
            self.port = port or free_port()
            argv = self.wrapper + [self.bin] + self._flag("--config.file", self.config_path) \
                + self._flag("--web.listen-address", "127.0.0.1:%d" % self.port) \
                + self._flag("--log.level", "debug") + self.extra_args
            self.proc = start_process(argv, self.name, self.dir, cwd=self.cwd)
            try:
                self.wait_ready(timeout)
                return self
            except HarnessError as e:
                last = e
                if self.proc.alive():
                    raise
                self.proc.stop()
                if "address already in use" not in self.proc.log_tail().lower():
                    raise
                if port:
                    time.sleep(1.0)
        raise last

    def wait_ready(self, timeout=15.0):
        def ready():
            if not self.proc.alive():
                raise HarnessError("exporter exited early (rc=%s):\n%s"
                                   % (self.proc.returncode(), self.proc.log_tail()))
            try:
                return self.get("/-/ready", timeout=1).status == 200
            except OSError:
                return False
        wait_until(ready, timeout, interval=0.05, what="exporter /-/ready")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, headers=None, timeout=30.0):
        return http_request(self.url(path), headers=headers, timeout=timeout)

    def request(self, path, method="GET", headers=None, data=None, timeout=30.0):
        return http_request(self.url(path), method=method, headers=headers,
                            data=data, timeout=timeout)

    def scrape(self, path="/metrics", scrape_timeout=None, headers=None, timeout=30.0):
        """GET path; returns (Metrics, HTTPResult). Raises if status != 200."""
        h = dict(headers or {})
        if scrape_timeout is not None:
            h["X-Prometheus-Scrape-Timeout-Seconds"] = str(scrape_timeout)
        r = self.get(path, headers=h, timeout=timeout)
        if r.status != 200:
            raise AssertionError("GET %s -> %d: %s\n%s" % (path, r.status, r.text[:2000],
                                                           self.proc.log_tail()))
        return Metrics(r.text), r

    def probe(self, module, target, **kw):
        q = urllib.parse.urlencode({"module": module, "target": target})
        return self.scrape("/probe?" + q, **kw)

    def reload_signal(self):
        self.proc.send_signal(signal.SIGHUP)

    def reload_http(self):
        return self.request("/-/reload", method="POST", data=b"")

    def log_tail(self, n=60):
        return self.proc.log_tail(n) if self.proc else ""

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if self.proc:
            rc = self.proc.stop(sig, timeout)
            return rc
        return None


def run_exporter_cli(args, timeout=30, cwd=None):
    """Run the exporter binary with args (one-shot); CompletedProcess."""
    return run([exporter_binary()] + list(args), check=False, timeout=timeout, cwd=cwd)


# ---------------------------------------------------------------------------
# promtool
# ---------------------------------------------------------------------------

def promtool_check_metrics(text):
    """Feed an exposition to `promtool check metrics`; (rc, combined output)."""
    cp = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode("utf-8"),
                        capture_output=True, timeout=60)
    return cp.returncode, (cp.stdout + cp.stderr).decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------

class PrometheusRunner:
    """A real Prometheus scraping `targets` ("127.0.0.1:port") on /metrics.

    Prometheus requires scrape_timeout <= scrape_interval; the exporter gets
    X-Prometheus-Scrape-Timeout-Seconds = scrape_timeout."""

    def __init__(self, directory, targets, scrape_interval="1s", scrape_timeout="1s",
                 metrics_path="/metrics", job="pki", scrape_configs=None, rule_files=(),
                 evaluation_interval=None):
        """scrape_configs: a list of Prometheus scrape_config dicts used
        instead of the one job built from targets/metrics_path/job (e.g.
        /probe jobs with relabel_configs). rule_files: paths of rule files
        to load (`rule_files:`), evaluated every evaluation_interval
        (default: the scrape interval); see rules() and alerts()."""
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.scrape_timeout = scrape_timeout
        self.metrics_path = metrics_path
        self.job = job
        self.scrape_configs = scrape_configs
        self.rule_files = [os.path.abspath(f) for f in rule_files]
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.port = None
        self.proc = None

    def start(self, timeout=30.0, port=None):
        """port: listen there (a restart keeping the address); default a
        free one."""
        cfg = {
            "global": {"scrape_interval": self.scrape_interval,
                       "scrape_timeout": self.scrape_timeout,
                       "evaluation_interval": self.evaluation_interval},
            "scrape_configs": self.scrape_configs or [{
                "job_name": self.job,
                "metrics_path": self.metrics_path,
                "static_configs": [{"targets": self.targets}],
            }],
        }
        if self.rule_files:
            cfg["rule_files"] = self.rule_files
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write(to_yaml(cfg) + "\n")
        self.port = port or free_port()
        argv = [PROMETHEUS, "--config.file=" + conf,
                "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                "--web.listen-address=127.0.0.1:%d" % self.port,
                "--log.level=warn"]
        self.proc = start_process(argv, "prometheus", self.dir, cwd=self.dir)

        def ready():
            if not self.proc.alive():
                raise HarnessError("prometheus exited:\n" + self.proc.log_tail())
            try:
                return http_request(self.api_url("/-/ready"), timeout=1).status == 200
            except OSError:
                return False
        wait_until(ready, timeout, interval=0.1, what="prometheus /-/ready")
        return self

    def api_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def api(self, path, **params):
        url = self.api_url(path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        r = http_request(url, timeout=10)
        doc = json.loads(r.body.decode())
        if doc.get("status") != "success":
            raise HarnessError("prometheus %s: %s" % (path, doc))
        return doc["data"]

    def query_now(self, expr):
        """Instant query; [(labels_dict, float_value)] (vector results)."""
        data = self.api("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query(self, expr, timeout=20.0):
        """Instant query, retried until it returns a non-empty result."""
        try:
            return wait_until(lambda: self.query_now(expr), timeout, interval=0.25,
                              what="a result for %s" % expr)
        except HarnessError as e:
            raise AssertionError("%s\nprometheus targets: %s" % (e, self.target_health()))

    def query_until(self, expr, pred, timeout=20.0, what=None):
        """Instant query, retried until pred(result) holds; the result.

        For assertions on values: a one-shot read right after waiting for
        something else can land on a scrape that is still in flight or was
        cut by a loaded machine. A feature that is broken never satisfies
        pred, so the test still fails (with the last result shown)."""
        last = [None]

        def ok():
            last[0] = self.query_now(expr)
            return pred(last[0])
        try:
            wait_until(ok, timeout, interval=0.25, what=what or "%s to hold" % expr)
        except HarnessError as e:
            raise AssertionError("%s\nlast result: %r\nprometheus targets: %s"
                                 % (e, last[0], self.target_health()))
        return last[0]

    def query_raw(self, expr, time_=None):
        """Instant query without retries: the API's whole answer (a dict
        with status, data or errorType/error), HTTP errors included."""
        params = {"query": expr}
        if time_ is not None:
            params["time"] = "%.3f" % time_
        url = self.api_url("/api/v1/query") + "?" + urllib.parse.urlencode(params)
        r = http_request(url, timeout=15)
        try:
            return json.loads(r.body.decode())
        except ValueError:
            return {"status": "error", "error": "HTTP %d: %r" % (r.status, r.body[:300])}

    def query_range_raw(self, expr, start, end, step):
        """Range query without retries: the API's whole answer."""
        params = {"query": expr, "start": "%.3f" % start, "end": "%.3f" % end,
                  "step": str(step)}
        url = self.api_url("/api/v1/query_range") + "?" + urllib.parse.urlencode(params)
        r = http_request(url, timeout=15)
        try:
            return json.loads(r.body.decode())
        except ValueError:
            return {"status": "error", "error": "HTTP %d: %r" % (r.status, r.body[:300])}

    def rules(self):
        """Every loaded rule: [(group name, rule dict of /api/v1/rules)]."""
        data = self.api("/api/v1/rules")
        return [(g["name"], r) for g in data["groups"] for r in g["rules"]]

    def alerts(self):
        """Active (pending and firing) alerts of /api/v1/alerts."""
        return self.api("/api/v1/alerts")["alerts"]

    def query_one(self, expr, timeout=20.0):
        res = self.query(expr, timeout)
        if len(res) != 1:
            raise AssertionError("expected one series for %s, got %r" % (expr, res))
        return res[0]

    def target_health(self):
        try:
            data = self.api("/api/v1/targets")
            return [(t["scrapeUrl"], t["health"], t.get("lastError"))
                    for t in data["activeTargets"]]
        except Exception as e:  # noqa: BLE001
            return "unavailable: %r" % e

    def stop(self):
        if self.proc:
            self.proc.stop(signal.SIGTERM, timeout=10)
            self.proc = None


def promql_labels(**labels):
    """{k="v",...} with PromQL string escaping."""
    return "{" + ",".join('%s=%s' % (k, json.dumps(v)) for k, v in labels.items()) + "}"


# ---------------------------------------------------------------------------
# the shared fixture of the core tests
# ---------------------------------------------------------------------------

ESCAPE_CN = 'we"ird \\back\\slash, {x="y"} \\n'   # literal quote, backslashes, "\n" as 2 chars
NEWLINE_CN = "line one\nline two"                 # a real newline


class CoreFixture:
    """PKI + one nginx with several TLS endpoints + a silent TCP server +
    dnsmasq, all on 127.0.0.1. Attributes after start():

      root, inter               CAs (root RSA-2048, intermediate EC P-256)
      valid   / p_valid         EC leaf by inter, sent with inter; TLSv1.3 only,
                                ciphersuite TLS_AES_128_GCM_SHA256
      expired / p_expired       RSA leaf by inter, expired 30 days ago, sent
                                with inter; TLSv1.2 only
      untrusted / p_untrusted   self-signed RSA-3072 leaf
      good / p_sni              leaf for good.test (by inter) served only to SNI
                                good.test; other names get `sni_default`
      escape / p_escape         self-signed, CN = ESCAPE_CN
      newline / p_newline       self-signed, CN = NEWLINE_CN
      silent                    SilentServer (silent.port)
      dns                       DnsmasqRunner: good.test -> 127.0.0.1, rest NXDOMAIN
    """

    GOOD_NAME = "good.test"
    NX_NAME = "nx.test"

    def __init__(self, directory=None):
        self.tmp = TempDir("pki-core-") if directory is None else None
        self.dir = directory or self.tmp.path
        self.nginx = None
        self.silent = None
        self.dns = None

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        now = utc_now()
        pki = self.pki = PKI(os.path.join(self.dir, "pki"))
        self.root = pki.root_ca(cn="PKI Test Root CA", key="rsa:2048")
        self.inter = pki.intermediate_ca(self.root, cn="PKI Test Intermediate CA", key="ec")
        # odd seconds so that rounding/truncation shows
        self.valid = pki.leaf(
            self.inter, "valid", "valid.test",
            sans=["DNS:valid.test", "DNS:www.valid.test", "IP:127.0.0.1"], key="ec",
            not_before=now - 3 * 86400 + 17, not_after=now + 400 * 86400 + 23,
            serial="0A" + "".join("%02X" % random.randint(0, 255) for _ in range(15)))
        self.expired = pki.leaf(
            self.inter, "expired", "expired.test", sans=["DNS:expired.test"], key="rsa:2048",
            not_before=now - 400 * 86400 + 5, not_after=now - 30 * 86400 + 11)
        self.untrusted = pki.self_signed(
            "untrusted", "untrusted.test", sans=["DNS:untrusted.test"], key="rsa:3072",
            not_before=now - 10 * 86400 + 3, not_after=now + 200 * 86400 + 7)
        self.good = pki.leaf(self.inter, "good", self.GOOD_NAME, sans=["DNS:" + self.GOOD_NAME],
                             key="ec")
        self.sni_default = pki.self_signed("sni_default", "sni-default.test",
                                           sans=["DNS:sni-default.test"], key="ec")
        self.escape = pki.self_signed("escape", ESCAPE_CN, key="ec")
        self.newline = pki.self_signed("newline", NEWLINE_CN, key="ec")

        ngx = self.nginx = NginxRunner(os.path.join(self.dir, "nginx"))
        self.p_valid = ngx.add(self.valid, chain=[self.inter], protocols="TLSv1.3",
                               ciphersuites="TLS_AES_128_GCM_SHA256")
        self.p_expired = ngx.add(self.expired, chain=[self.inter], protocols="TLSv1.2",
                                 ciphers="ECDHE-RSA-AES256-GCM-SHA384")
        self.p_untrusted = ngx.add(self.untrusted)
        self.p_sni = ngx.add(self.sni_default)
        ngx.add(self.good, chain=[self.inter], port=self.p_sni, server_name=self.GOOD_NAME)
        self.p_escape = ngx.add(self.escape)
        self.p_newline = ngx.add(self.newline)
        ngx.start()

        self.silent = SilentServer().start()
        self.dns = DnsmasqRunner(os.path.join(self.dir, "dnsmasq"),
                                 {self.GOOD_NAME: "127.0.0.1"}).start()

    def t(self, port, host="127.0.0.1"):
        """A target string host:port."""
        return "%s:%d" % (host, port)

    def stop(self):
        for what in ("nginx", "dns", "silent"):
            obj = getattr(self, what, None)
            if obj is not None:
                try:
                    obj.stop()
                except Exception:
                    pass
                setattr(self, what, None)
        if self.tmp:
            self.tmp.cleanup()


# ---------------------------------------------------------------------------
# misbehaving servers: scripted TCP peers and a DNS server with bad answers
# ---------------------------------------------------------------------------

def open_fds(pid):
    """Number of open file descriptors of a process (Linux /proc)."""
    return len(os.listdir("/proc/%d/fd" % pid))


def read_some(conn, n=16384, timeout=2.0):
    """Whatever the peer sends within `timeout` (b"" on timeout or EOF)."""
    conn.settimeout(timeout)
    try:
        return conn.recv(n)
    except (socket.timeout, OSError):
        return b""


class ScriptedTCPServer:
    """A TCP server on 127.0.0.1:<free port> whose every connection runs
    handler(conn, server) in its own daemon thread. Handlers must end by
    themselves (bounded loops) and should check server.stopping, an Event set
    by stop(). stop() closes the listener and every connection and joins the
    threads (bounded). Counts: accepted."""

    def __init__(self, handler, name="scripted", host="127.0.0.1", port=None):
        self.handler = handler
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port or 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.accepted = 0
        self.errors = []
        self._conns = []
        self._threads = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="%s-%d" % (name, self.port))

    def start(self):
        self._thread.start()
        return self

    def _run(self, conn):
        try:
            self.handler(conn, self)
        except OSError:
            pass            # the peer went away: expected with hostile peers
        except Exception as e:  # noqa: BLE001 - reported through .errors
            self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _loop(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            with self._lock:
                self.accepted += 1
                self._conns.append(c)
                self._threads.append(t)
            t.start()

    def stop(self):
        self.stopping.set()
        self._thread.join(2)
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(2)


def _dns_name(data, off):
    """(dotted name, offset after it) of an uncompressed question name."""
    labels = []
    while True:
        ln = data[off]
        off += 1
        if ln == 0:
            return ".".join(labels), off
        if ln & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(data[off:off + ln].decode("ascii", "replace"))
        off += ln


class FakeDnsServer:
    """A DNS server on 127.0.0.1:<port> (UDP and TCP) answering each name as
    told. behaviours: {name: b} with b one of
      ("A", "1.2.3.4")   an A record (AAAA queries get NOERROR, no data)
      ("A", "1.2.3.4", 1.5)  the same, sent 1.5 s late (UDP only)
      "nxdomain"         rcode 3
      "servfail"         rcode 2
      "refused"          rcode 5
      "drop"             no answer at all
      "truncated"        UDP: TC bit and no answers; TCP: a length prefix
                         longer than what follows, then close
      "garbage"          the query id, then bytes that are no DNS message
    Names not listed are NXDOMAIN. queries: [(proto, name, qtype)]."""

    def __init__(self, behaviours, port=None):
        self.behaviours = {k.lower().rstrip("."): v for k, v in behaviours.items()}
        self.port = port or free_udp_tcp_port()
        self.queries = []
        self.stopping = threading.Event()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # room for a burst (a scrape resolving 1,000 names at once): root
        # may go past net.core.rmem_max, others get what the kernel allows
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            try:
                if opt is not None:
                    self.udp.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
                    break
            except OSError:
                continue
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.2)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(64)
        self.tcp.settimeout(0.2)
        self._threads = [threading.Thread(target=self._udp_loop, daemon=True),
                         threading.Thread(target=self._tcp_loop, daemon=True)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def _answer(self, query, proto):
        """The reply bytes for a query, or None (drop)."""
        if len(query) < 12:
            return None
        qid, flags, qd = struct.unpack(">HHH", query[:6])
        if qd != 1:
            return None
        name, off = _dns_name(query, 12)
        qtype, _qclass = struct.unpack(">HH", query[off:off + 4])
        question = query[12:off + 4]
        self.queries.append((proto, name.lower(), qtype))
        b = self.behaviours.get(name.lower().rstrip("."), "nxdomain")
        rd = flags & 0x0100

        def msg(rcode, answers=b"", ancount=0, tc=False):
            f = 0x8000 | 0x0400 | rd | 0x0080 | rcode | (0x0200 if tc else 0)
            return struct.pack(">HHHHHH", qid, f, 1, ancount, 0, 0) + question + answers

        if b == "drop":
            return None
        if b == "nxdomain":
            return msg(3)
        if b == "servfail":
            return msg(2)
        if b == "refused":
            return msg(5)
        if b == "garbage":
            return struct.pack(">H", qid) + b"\xff" * 5 + b"garbage\x00\x01" * 3
        if b == "truncated":
            return msg(0, tc=True) if proto == "udp" else b"TRUNCATED"
        if isinstance(b, tuple) and b[0] == "A":
            if qtype != 1:
                return msg(0)
            rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(b[1])
            return msg(0, rr, 1)
        return msg(3)

    def _delay(self, query):
        """Seconds to hold the answer to this query back (0: none)."""
        try:
            name, _ = _dns_name(query, 12)
        except (ValueError, IndexError):
            return 0
        b = self.behaviours.get(name.lower().rstrip("."))
        return b[2] if isinstance(b, tuple) and len(b) > 2 else 0

    def _send_later(self, reply, peer, delay):
        if self.stopping.wait(delay):
            return
        try:
            self.udp.sendto(reply, peer)
        except OSError:
            pass

    def _udp_loop(self):
        while not self.stopping.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                reply = self._answer(data, "udp")
            except (ValueError, IndexError, struct.error):
                continue
            if reply is None:
                continue
            delay = self._delay(data)
            if delay:
                threading.Thread(target=self._send_later, args=(reply, peer, delay),
                                 daemon=True).start()
                continue
            try:
                self.udp.sendto(reply, peer)
            except OSError:
                pass

    def _tcp_one(self, c):
        try:
            c.settimeout(2)
            hdr = c.recv(2)
            if len(hdr) < 2:
                return
            n = struct.unpack(">H", hdr)[0]
            data = b""
            while len(data) < n:
                chunk = c.recv(n - len(data))
                if not chunk:
                    return
                data += chunk
            reply = self._answer(data, "tcp")
            if reply is None:
                return
            if reply == b"TRUNCATED":
                # promise 512 bytes, deliver 12, hang up
                c.sendall(struct.pack(">H", 512) + data[:2] + b"\x80\x00" + b"\x00" * 8)
                return
            c.sendall(struct.pack(">H", len(reply)) + reply)
        except (OSError, ValueError, IndexError, struct.error):
            pass
        finally:
            c.close()

    def _tcp_loop(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self._tcp_one, args=(c,), daemon=True).start()

    def stop(self):
        self.stopping.set()
        for t in self._threads:
            t.join(2)
        for s in (self.udp, self.tcp):
            try:
                s.close()
            except OSError:
                pass


# ---------------------------------------------------------------------------
# CRLs and OCSP answers of a PKI() CA, and a loopback HTTP server for them
# ---------------------------------------------------------------------------

_CRL_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
crlnumber = {dir}/crlnumber
default_md = sha256
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = optional
[ crl_ext ]
authorityKeyIdentifier = keyid:always
{extra}
"""


def der_utctime_hex(ts):
    """`DER:` value of an ASN.1 UTCTime for openssl extension configs."""
    s = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%y%m%d%H%M%SZ").encode()
    return ":".join("%02X" % b for b in b"\x17" + bytes([len(s)]) + s)


def der_integer_hex(n):
    """`DER:` value of a non-negative ASN.1 INTEGER."""
    body = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")
    return ":".join("%02X" % b for b in b"\x02" + bytes([len(body)]) + body)


class CRLIssuer:
    """CRLs and OCSP answers of a CA made by PKI (root_ca/intermediate_ca):
    its `openssl ca` database already lists what it signed.

      revoke(cert)        mark a certificate revoked in the database
      crl(...)            a DER CRL with exact dates and number, optional
                          Microsoft Next CRL Publish (1.3.6.1.4.1.311.21.4),
                          Freshest CRL (a base naming its delta) or Delta CRL
                          Indicator (a delta of base number N)
      ocsp_answer(req)    an OCSP response (openssl ocsp, signed by the CA)
                          for a DER request: good / revoked / unknown
    """

    def __init__(self, pki, ca):
        self.pki = pki
        self.ca = ca
        self.dir = pki._ca_dir(ca.name)
        self.lock = threading.Lock()
        self.n = 0

    def _cnf(self, extra_lines=()):
        path = os.path.join(self.dir, "crl-%d.cnf" % random.randint(0, 1 << 30))
        with open(path, "w") as f:
            f.write(_CRL_CNF.format(dir=self.dir, extra="\n".join(extra_lines)))
        return path

    def revoke(self, cert, reason="keyCompromise"):
        run([OPENSSL, "ca", "-config", self._cnf(), "-revoke", cert.cert, "-crl_reason", reason,
             "-cert", self.ca.cert, "-keyfile", self.ca.key])

    def crl(self, this_update, next_update, number, next_publish=None, freshest=None,
            delta_of=None):
        """DER bytes of a CRL. next_publish: Unix time of Microsoft Next
        CRL Publish; freshest: the delta CRL URL a base names; delta_of:
        the base CRL number this delta needs (Delta CRL Indicator)."""
        extra = []
        if freshest:
            extra.append("freshestCRL = URI:" + freshest)
        if delta_of is not None:
            extra.append("2.5.29.27 = critical, DER:" + der_integer_hex(delta_of))
        if next_publish is not None:
            extra.append("1.3.6.1.4.1.311.21.4 = DER:" + der_utctime_hex(next_publish))
        with self.lock:
            self.n += 1
            with open(os.path.join(self.dir, "crlnumber"), "w") as f:
                f.write("%02X\n" % number if number > 0xF else "0%X\n" % number)
            pem = os.path.join(self.dir, "crl%d.pem" % self.n)
            der = os.path.join(self.dir, "crl%d.der" % self.n)
            run([OPENSSL, "ca", "-batch", "-config", self._cnf(extra), "-gencrl",
                 "-cert", self.ca.cert, "-keyfile", self.ca.key, "-crlexts", "crl_ext",
                 "-crl_lastupdate", openssl_time(this_update),
                 "-crl_nextupdate", openssl_time(next_update), "-out", pem])
            run([OPENSSL, "crl", "-in", pem, "-outform", "DER", "-out", der])
            with open(der, "rb") as f:
                return f.read()

    def ocsp_answer(self, req_der):
        with self.lock:
            self.n += 1
            req = os.path.join(self.dir, "ocsp-req%d.der" % self.n)
            resp = os.path.join(self.dir, "ocsp-resp%d.der" % self.n)
            with open(req, "wb") as f:
                f.write(req_der)
            run([OPENSSL, "ocsp", "-index", os.path.join(self.dir, "index.txt"),
                 "-CA", self.ca.cert, "-rsigner", self.ca.cert, "-rkey", self.ca.key,
                 "-ndays", "1", "-reqin", req, "-respout", resp])
            with open(resp, "rb") as f:
                return f.read()


class HTTPFileServer:
    """A loopback HTTP/1.1 server in this process (daemon threads).

      files   {path: bytes}      GET answers 200 with the bytes
      posts   {path: callable}   POST answers 200 with callable(body)
      status  {path: code}       GET/POST answer this status (an HTML body)
    Anything else is 404. Every attribute may be changed while it runs.
    requests: {path: count}."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.files, self.posts, self.status = {}, {}, {}
        self.requests = {}
        self.lock = threading.Lock()
        self.httpd = None

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def start(self):
        import http.server
        import socketserver
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code, body, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _answer(self, body=None):
                path = urllib.parse.urlsplit(self.path).path
                with srv.lock:
                    srv.requests[path] = srv.requests.get(path, 0) + 1
                    code = srv.status.get(path)
                    data = srv.files.get(path)
                    post = srv.posts.get(path)
                if code:
                    return self._send(code, b"<html><body>error %d</body></html>" % code,
                                      "text/html")
                if body is not None and post:
                    return self._send(200, post(body), "application/ocsp-response")
                if body is None and data is not None:
                    return self._send(200, data, "application/pkix-crl")
                return self._send(404, b"<html><body>not found</body></html>", "text/html")

            def do_GET(self):
                self._answer()

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self._answer(self.rfile.read(min(n, 1 << 20)))

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True,
                         name="http-%d" % self.port).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
