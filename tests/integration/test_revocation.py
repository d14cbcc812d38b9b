#!/usr/bin/env python3
"""Integration tests of revocation (issue #4): CRLs fetched the way servers
fetch them, their freshness, OCSP, and whether probed certificates are revoked.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_revocation.py

Everything runs on 127.0.0.1, in processes tracked by PID:
  * a PKI made with `openssl ca`: root -> issuing CA -> leaves (good, revoked
    in the base CRL, revoked after it so only in the delta CRL, and one the
    CA database never saw); a base CRL with Freshest CRL, a delta CRL with a
    critical Delta CRL Indicator, an expired CRL, a CRL with a broken
    signature; exact dates chosen here and asserted;
  * a CRL web server (in this process) that answers 403 to any request under
    /proxied/ that did not come through the proxy (no Via header), and serves
    an HTML error page, a truncated CRL, an endless body, a slow answer;
  * tinyproxy twice: open, and one that wants credentials (407);
  * slapd with the CRLs in a cRLDistributionPoint entry (LDAP CDP);
  * `openssl ocsp` as the OCSP responder (good, revoked, unknown), fed each
    POSTed request by the web server (`openssl ocsp -port` would listen on
    every interface, not just loopback);
  * nginx serving the leaves, one of them stapling an OCSP response;
  * the exporter.
"""

import http.server
import os
import shutil
import socketserver
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
OPENSSL = h.OPENSSL

FIX = None


def setUpModule():
    global FIX
    h.exporter_binary()
    for tool in (TINYPROXY, h.SLAPD, SLAPADD, h.NGINX):
        if not os.path.exists(tool):
            raise unittest.SkipTest("%s is not installed (scripts/install-deps.sh)" % tool)
    FIX = Fixture()
    try:
        FIX.start()
    except BaseException:
        FIX.stop()
        raise


def tearDownModule():
    if FIX:
        FIX.stop()


# ---------------------------------------------------------------------------
# the PKI
# ---------------------------------------------------------------------------

def lint(tc, text):
    rc, out = h.promtool_check_metrics(text)
    tc.assertEqual(rc, 0, out)


def gtime(ts):
    return h.openssl_time(ts)


class Cert:
    """What harness.NginxRunner needs of a certificate: .pem() and .key."""

    def __init__(self, cert, key, serial=None):
        self.cert = cert
        self.key = key
        self.serial = serial

    def pem(self):
        with open(self.cert) as f:
            return f.read()


CA_CNF = """
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = {database}
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
crlnumber = {dir}/crlnumber
default_md = sha256
policy = pol
unique_subject = no
copy_extensions = none
[ pol ]
commonName = supplied
[ ext_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:{root_crl}
[ ext_leaf ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, IP:127.0.0.1
crlDistributionPoints = URI:{issuing_crl}
authorityInfoAccess = OCSP;URI:{ocsp_url}
[ ext_ocsp ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
[ crl_root ]
authorityKeyIdentifier = keyid
[ crl_base ]
authorityKeyIdentifier = keyid
freshestCRL = URI:{delta_crl}
[ crl_delta ]
authorityKeyIdentifier = keyid
2.5.29.27 = critical, DER:{delta_indicator}
[ crl_plain ]
authorityKeyIdentifier = keyid
"""


class PKI:
    BASE_NUMBER = 0x29      # 41, as in the AD CS sample corpus
    DELTA_NUMBER = 0x2A

    def __init__(self, d, http_port):
        self.d = d
        self.http = "http://127.0.0.1:%d" % http_port
        self.ocsp_url = "http://127.0.0.1:%d/ocsp" % http_port
        self.now = h.utc_now()
        # exact CRL dates (asserted against the exporter's output)
        self.base_this = self.now - 3600
        self.base_next = self.now + 7 * 86400
        self.delta_this = self.now - 1800
        self.delta_next = self.now + 86400
        self.expired_this = self.now - 10 * 86400
        self.expired_next = self.now - 3 * 86400
        self.root_this = self.now - 7200
        self.root_next = self.now + 180 * 86400

    def run(self, *argv):
        return h.run([OPENSSL] + list(argv))

    def ca_dir(self, name):
        d = os.path.join(self.d, "ca-" + name)
        os.makedirs(os.path.join(d, "newcerts"), exist_ok=True)
        open(os.path.join(d, "index.txt"), "a").close()
        return d

    def cnf(self, name, database=None):
        d = self.ca_dir(name)
        path = os.path.join(d, "ca%s.cnf" % ("-" + os.path.basename(database) if database else ""))
        with open(path, "w") as f:
            f.write(CA_CNF.format(
                dir=d, database=database or os.path.join(d, "index.txt"),
                root_crl=self.http + "/proxied/root.crl",
                issuing_crl=self.http + "/proxied/issuing.crl",
                delta_crl=self.http + "/proxied/issuing+.crl",
                ocsp_url=self.ocsp_url,
                delta_indicator="02:01:%02X" % self.BASE_NUMBER))
        return path

    def key(self, name):
        p = os.path.join(self.d, name + ".key")
        self.run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p)
        return p

    def sign(self, ca, name, cn, ext, serial, issuer=None, selfsign=False):
        key = self.key(name)
        csr = os.path.join(self.d, name + ".csr")
        out = os.path.join(self.d, name + ".pem")
        self.run("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr)
        with open(os.path.join(self.ca_dir(ca), "serial"), "w") as f:
            f.write("%X\n" % serial if serial > 15 else "0%X\n" % serial)
        argv = ["ca", "-batch", "-config", self.cnf(ca), "-notext", "-in", csr,
                "-out", out, "-extensions", ext,
                "-startdate", gtime(self.now - 86400),
                "-enddate", gtime(self.now + 365 * 86400)]
        if selfsign:
            argv += ["-selfsign", "-keyfile", key]
        else:
            argv += ["-cert", issuer.cert, "-keyfile", issuer.key]
        self.run(*argv)
        return Cert(out, key, serial)

    def gencrl(self, ca, issuer, out, ext, this, nxt, database=None):
        pem = out + ".pem"
        self.run("ca", "-batch", "-config", self.cnf(ca, database), "-gencrl",
                 "-cert", issuer.cert, "-keyfile", issuer.key, "-crlexts", ext,
                 "-crl_lastupdate", gtime(this), "-crl_nextupdate", gtime(nxt),
                 "-out", pem)
        self.run("crl", "-in", pem, "-outform", "DER", "-out", out)
        with open(out, "rb") as f:
            return f.read()

    def build(self):
        with open(os.path.join(self.ca_dir("root"), "crlnumber"), "w") as f:
            f.write("01\n")
        with open(os.path.join(self.ca_dir("issuing"), "crlnumber"), "w") as f:
            f.write("%02X\n" % self.BASE_NUMBER)
        self.root = self.sign("root", "root", "Revocation Test Root", "ext_ca", 1,
                              selfsign=True)
        self.issuing = self.sign("root", "issuing", "Revocation Test Issuing CA",
                                 "ext_ca", 2, issuer=self.root)
        self.ocsp_signer = self.sign("issuing", "ocsp", "Revocation Test OCSP",
                                     "ext_ocsp", 0x3000, issuer=self.issuing)
        self.good = self.sign("issuing", "good", "good.test", "ext_leaf", 0x1001,
                              issuer=self.issuing)
        self.revoked = self.sign("issuing", "revoked", "revoked.test", "ext_leaf",
                                 0x1002, issuer=self.issuing)
        self.late = self.sign("issuing", "late", "late.test", "ext_leaf", 0x1003,
                              issuer=self.issuing)
        # a certificate the CA database never recorded: OCSP says unknown
        self.stranger = self.stranger_cert()
        bundle = os.path.join(self.d, "issuers.pem")
        with open(bundle, "w") as f:
            f.write(self.issuing.pem() + self.root.pem())
        self.issuers = bundle

        self.root_crl = self.gencrl("root", self.root, os.path.join(self.d, "root.crl"),
                                    "crl_root", self.root_this, self.root_next)
        idx = os.path.join(self.ca_dir("issuing"), "index.txt")
        self.run("ca", "-config", self.cnf("issuing"), "-revoke", self.revoked.cert,
                 "-crl_reason", "keyCompromise", "-cert", self.issuing.cert,
                 "-keyfile", self.issuing.key)
        with open(idx) as f:
            before_late = f.read()
        self.base_crl = self.gencrl("issuing", self.issuing,
                                    os.path.join(self.d, "issuing.crl"), "crl_base",
                                    self.base_this, self.base_next)
        # revoked after the base was published: only the delta lists it
        self.run("ca", "-config", self.cnf("issuing"), "-revoke", self.late.cert,
                 "-crl_reason", "superseded", "-cert", self.issuing.cert,
                 "-keyfile", self.issuing.key)
        with open(idx) as f:
            after = f.read()
        delta_db = os.path.join(self.ca_dir("issuing"), "index-delta.txt")
        with open(delta_db, "w") as f:
            f.write("".join(line for line in after.splitlines(True)
                            if line not in before_late.splitlines(True)))
        with open(delta_db + ".attr", "w") as f:
            f.write("unique_subject = no\n")
        self.delta_crl = self.gencrl("issuing", self.issuing,
                                     os.path.join(self.d, "issuing+.crl"), "crl_delta",
                                     self.delta_this, self.delta_next, database=delta_db)
        self.expired_crl = self.gencrl("issuing", self.issuing,
                                       os.path.join(self.d, "expired.crl"), "crl_plain",
                                       self.expired_this, self.expired_next)
        # an older base (number 39) naming the same delta, which needs 41
        numfile = os.path.join(self.ca_dir("issuing"), "crlnumber")
        with open(numfile) as f:
            saved = f.read()
        with open(numfile, "w") as f:
            f.write("27\n")
        self.old_base_crl = self.gencrl("issuing", self.issuing,
                                        os.path.join(self.d, "oldbase.crl"), "crl_base",
                                        self.base_this - 86400, self.base_next)
        with open(numfile, "w") as f:
            f.write(saved)
        bad = bytearray(self.base_crl)
        bad[-5] ^= 0x5A              # inside the signature value
        self.badsig_crl = bytes(bad)
        self.index = idx

    def stranger_cert(self):
        key = self.key("stranger")
        csr = os.path.join(self.d, "stranger.csr")
        out = os.path.join(self.d, "stranger.pem")
        self.run("req", "-new", "-key", key, "-subj", "/CN=stranger.test", "-out", csr)
        self.run("x509", "-req", "-in", csr, "-CA", self.issuing.cert, "-CAkey",
                 self.issuing.key, "-set_serial", "0x2004", "-days", "30",
                 "-extfile", self.cnf("issuing"), "-extensions", "ext_leaf", "-out", out)
        return Cert(out, key, 0x2004)


# ---------------------------------------------------------------------------
# the CRL web server
# ---------------------------------------------------------------------------

class CRLServer:
    """Serves CRLs on 127.0.0.1; counts requests per path."""

    def __init__(self, port, ocsp=None, tls=None):
        self.port = port
        self.tls = tls           # (chain file, key file): serve HTTPS
        self.ocsp = ocsp         # callable: request DER -> response DER
        self.files = {}          # path -> bytes
        self.counts = {}
        self.conditional = {}    # path -> [If-None-Match values seen]
        self.flaky_fail = False
        self.lock = threading.Lock()
        self.httpd = None

    def start(self):
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, code, body, ctype="application/pkix-crl", extra=()):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                path = urllib.parse.urlsplit(self.path).path
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(min(n, 65536))
                with srv.lock:
                    srv.counts[path] = srv.counts.get(path, 0) + 1
                if path != "/ocsp" or not srv.ocsp:
                    return self.send(404, b"no", "text/plain")
                return self.send(200, srv.ocsp(body), "application/ocsp-response")

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                with srv.lock:
                    srv.counts[path] = srv.counts.get(path, 0) + 1
                    if "If-None-Match" in self.headers:
                        srv.conditional.setdefault(path, []).append(
                            self.headers["If-None-Match"])
                if path.startswith("/proxied/") and "Via" not in self.headers:
                    return self.send(403, b"<html><body>direct access refused: "
                                          b"use the proxy</body></html>", "text/html")
                name = path.rsplit("/", 1)[-1]
                if name == "html.crl":
                    return self.send(200, b"<!DOCTYPE html><html><head><title>ERROR: "
                                          b"The requested URL could not be retrieved"
                                          b"</title></head></html>\n", "text/html")
                if name == "endless.crl":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/pkix-crl")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"\x30" * 65536
                    try:
                        for _ in range(4096):   # 256 MiB at most
                            self.wfile.write(chunk)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if name == "slow.crl":
                    time.sleep(20)
                    return self.send(200, srv.files["issuing.crl"])
                if name == "slowcrl.crl":
                    time.sleep(1.5)
                    return self.send(200, srv.files["issuing.crl"])
                if name == "flaky.crl" and srv.flaky_fail:
                    return self.send(500, b"<html>internal error</html>", "text/html")
                if name == "etag.crl":
                    if self.headers.get("If-None-Match") == '"crl-41"':
                        self.send_response(304)
                        self.send_header("ETag", '"crl-41"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    return self.send(200, srv.files["issuing.crl"],
                                     extra=[("ETag", '"crl-41"')])
                if name in ("flaky.crl",):
                    return self.send(200, srv.files["issuing.crl"])
                body = srv.files.get(name)
                if body is None:
                    return self.send(404, b"<html>not found</html>", "text/html")
                return self.send(200, body)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", self.port), Handler)
        if self.tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        t.start()
        return self

    def count(self, path):
        with self.lock:
            return self.counts.get(path, 0)

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


# ---------------------------------------------------------------------------
# tinyproxy, slapd, openssl ocsp
# ---------------------------------------------------------------------------

class Tinyproxy:
    def __init__(self, d, auth=None):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.port = h.free_port()
        self.auth = auth
        self.proc = None

    def start(self):
        conf = os.path.join(self.d, "tinyproxy.conf")
        lines = ["Port %d" % self.port, "Listen 127.0.0.1", "Timeout 30",
                 "MaxClients 64", "Allow 127.0.0.1", "LogLevel Info"]
        if self.auth:
            lines.append("BasicAuth %s %s" % self.auth)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = h.start_process([TINYPROXY, "-d", "-c", conf], "tinyproxy", self.d)
        h.wait_port(self.port, 10, self.proc)
        return self

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None


class Slapd:
    SUFFIX = "dc=contoso,dc=test"
    ADMIN = "cn=admin,dc=contoso,dc=test"
    PASSWORD = "ldap-s3cret"

    def __init__(self, d, base_der, delta_der):
        self.d = d
        os.makedirs(os.path.join(d, "db"), exist_ok=True)
        self.port = h.free_port()
        self.base = base_der
        self.delta = delta_der
        self.proc = None

    def start(self):
        import base64
        conf = os.path.join(self.d, "slapd.conf")
        with open(conf, "w") as f:
            f.write("include /etc/ldap/schema/core.schema\n"
                    "pidfile %s/slapd.pid\nargsfile %s/slapd.args\n"
                    "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
                    "database mdb\nsuffix \"%s\"\nrootdn \"%s\"\nrootpw %s\n"
                    "directory %s/db\n"
                    "access to * by dn.exact=\"%s\" read by * none\n"
                    % (self.d, self.d, self.SUFFIX, self.ADMIN, self.PASSWORD,
                       self.d, self.ADMIN))
        ldif = os.path.join(self.d, "data.ldif")
        with open(ldif, "w") as f:
            f.write("dn: %s\nobjectClass: dcObject\nobjectClass: organization\n"
                    "o: contoso\ndc: contoso\n\n" % self.SUFFIX)
            f.write("dn: cn=Issuing CA1,%s\nobjectClass: cRLDistributionPoint\n"
                    "cn: Issuing CA1\ncertificateRevocationList;binary:: %s\n"
                    "deltaRevocationList;binary:: %s\n\n"
                    % (self.SUFFIX, base64.b64encode(self.base).decode(),
                       base64.b64encode(self.delta).decode()))
        h.run([SLAPADD, "-f", conf, "-l", ldif])
        self.proc = h.start_process([h.SLAPD, "-d", "0", "-h",
                                     "ldap://127.0.0.1:%d/" % self.port, "-f", conf],
                                    "slapd", self.d)
        h.wait_port(self.port, 10, self.proc)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None


class OCSPResponder:
    """`openssl ocsp` answering one request at a time from the CA database
    (index.txt): V = good, R = revoked, absent = unknown; signed by a
    delegated responder certificate (EKU OCSPSigning)."""

    def __init__(self, d, pki):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.pki = pki
        self.lock = threading.Lock()
        self.n = 0

    def answer(self, req_der):
        p = self.pki
        with self.lock:
            self.n += 1
            req = os.path.join(self.d, "req%d.der" % self.n)
            resp = os.path.join(self.d, "resp%d.der" % self.n)
            with open(req, "wb") as f:
                f.write(req_der)
            h.run([OPENSSL, "ocsp", "-index", p.index, "-CA", p.issuing.cert,
                   "-rsigner", p.ocsp_signer.cert, "-rkey", p.ocsp_signer.key,
                   "-ndays", "1", "-reqin", req, "-respout", resp])
            with open(resp, "rb") as f:
                return f.read()


# ---------------------------------------------------------------------------
# the fixture
# ---------------------------------------------------------------------------

class Fixture:
    def __init__(self):
        self.tmp = h.TempDir("pki-rev-")
        self.d = self.tmp.path
        self.parts = []

    def start(self):
        http_port = h.free_port()
        self.pki = PKI(os.path.join(self.d, "pki"), http_port)
        os.makedirs(self.pki.d, exist_ok=True)
        self.pki.build()
        p = self.pki
        self.ocsp = OCSPResponder(os.path.join(self.d, "ocsp"), p)

        self.web = CRLServer(http_port, self.ocsp.answer).start()
        self.parts.append(self.web)
        self.web.files.update({
            "root.crl": p.root_crl, "issuing.crl": p.base_crl,
            "issuing+.crl": p.delta_crl, "expired.crl": p.expired_crl,
            "badsig.crl": p.badsig_crl, "oldbase.crl": p.old_base_crl, "trunc.crl": p.base_crl[:len(p.base_crl) // 2],
        })
        # the same CRLs over HTTPS (the good leaf's certificate, with its
        # intermediate), reached through the proxy with CONNECT
        chain = os.path.join(self.d, "https-chain.pem")
        with open(chain, "w") as f:
            f.write(p.good.pem() + p.issuing.pem())
        self.https = CRLServer(h.free_port(), tls=(chain, p.good.key)).start()
        self.parts.append(self.https)
        self.https.files.update(self.web.files)
        self.proxy = Tinyproxy(os.path.join(self.d, "proxy")).start()
        self.parts.append(self.proxy)
        self.authproxy = Tinyproxy(os.path.join(self.d, "authproxy"),
                                   auth=("crluser", "pr0xy-pass")).start()
        self.parts.append(self.authproxy)
        self.slapd = Slapd(os.path.join(self.d, "slapd"), p.base_crl, p.delta_crl).start()
        self.parts.append(self.slapd)
        # a stapled answer for the good leaf, from the same responder
        staple = os.path.join(self.d, "good.ocsp.der")
        req = os.path.join(self.d, "good.ocsp-req.der")
        h.run([OPENSSL, "ocsp", "-issuer", p.issuing.cert, "-cert", p.good.cert,
               "-no_nonce", "-reqout", req])
        with open(req, "rb") as f:
            answer = self.ocsp.answer(f.read())
        with open(staple, "wb") as f:
            f.write(answer)
        self.nginx = h.NginxRunner(os.path.join(self.d, "nginx"))
        self.port_good = self.nginx.add(p.good, chain=[p.issuing], directives=[
            "ssl_stapling on;", "ssl_stapling_file %s;" % staple])
        self.port_revoked = self.nginx.add(p.revoked, chain=[p.issuing])
        self.port_late = self.nginx.add(p.late, chain=[p.issuing])
        self.port_stranger = self.nginx.add(p.stranger, chain=[p.issuing])
        self.nginx.start()
        self.parts.append(self.nginx)

        pwdir = os.path.join(self.d, "secrets")
        os.makedirs(pwdir, exist_ok=True)
        ldap_pw = os.path.join(pwdir, "ldap.pw")
        proxy_pw = os.path.join(pwdir, "proxy.pw")
        with open(ldap_pw, "w") as f:
            f.write(Slapd.PASSWORD + "\n")
        with open(proxy_pw, "w") as f:
            f.write("pr0xy-pass\n")
        ldap_server = "ldap://127.0.0.1:%d" % self.slapd.port
        self.ldap_url = ("ldap://127.0.0.1:%d/cn=Issuing%%20CA1,%s?certificateRevocationList"
                         "?base?objectClass=cRLDistributionPoint"
                         % (self.slapd.port, Slapd.SUFFIX))
        self.ldap_domain_url = ("ldap:///cn=Issuing%%20CA1,%s?deltaRevocationList?base"
                                "?objectClass=cRLDistributionPoint" % Slapd.SUFFIX)
        u = lambda path: "http://127.0.0.1:%d%s" % (http_port, path)  # noqa: E731
        self.https_url = "https://127.0.0.1:%d/issuing.crl" % self.https.port
        self.u = u
        modules = {
            "crl_proxy": {"prober": "crl", "timeout": "5s", "proxy": self.proxy.url(),
                          "issuer_file": p.issuers},
            # fetch settings of its own (max_bytes), so its cache entries see
            # only the old base (entries are per URL and way of fetching)
            "crl_oldbase": {"prober": "crl", "timeout": "5s", "proxy": self.proxy.url(),
                            "issuer_file": p.issuers, "max_bytes": "32MiB"},
            "crl_direct": {"prober": "crl", "timeout": "2s", "max_bytes": "256KiB",
                           "issuer_file": p.issuers},
            "crl_auth_none": {"prober": "crl", "timeout": "5s",
                              "proxy": self.authproxy.url()},
            "crl_auth": {"prober": "crl", "timeout": "5s", "proxy": self.authproxy.url(),
                         "proxy_user": "crluser", "proxy_password_file": proxy_pw,
                         "issuer_file": p.issuers},
            # LDAP never goes through the HTTP proxy; the base's delta
            # (an http URL under /proxied/) does
            "crl_ldap": {"prober": "crl", "timeout": "5s", "issuer_file": p.issuers,
                         "proxy": self.proxy.url(),
                         "ldap": {"server": ldap_server, "bind_dn": Slapd.ADMIN,
                                  "password_file": ldap_pw}},
            "crl_ldap_anon": {"prober": "crl", "timeout": "5s"},
            "crl_once": {"prober": "crl", "timeout": "6s", "min_interval": "5m"},
            "crl_again": {"prober": "crl", "timeout": "5s", "min_interval": "0s",
                          "max_interval": "0s"},
            "crl_https": {"prober": "crl", "timeout": "5s", "proxy": self.proxy.url(),
                          "ca_file": p.root.cert, "follow_delta": False,
                          "min_interval": "0s", "max_interval": "0s"},
            "crl_https_untrusted": {"prober": "crl", "timeout": "5s",
                                    "proxy": self.proxy.url()},
            "tls_rev": {"prober": "tls", "timeout": "8s", "tls": {"ca_file": p.root.cert},
                        "revocation": {"check": "both", "proxy": self.proxy.url()}},
            "tls_crl_direct": {"prober": "tls", "timeout": "8s",
                               "tls": {"ca_file": p.root.cert}, "revocation": "crl"},
        }
        targets = [
            ("crl_proxy", [u("/proxied/issuing.crl"), u("/proxied/expired.crl"),
                           u("/proxied/badsig.crl"), u("/proxied/root.crl")]),
            ("crl_oldbase", [u("/proxied/oldbase.crl")]),
            ("crl_direct", [u("/proxied/issuing.crl"), u("/html.crl"), u("/trunc.crl"),
                            u("/endless.crl"), u("/slow.crl"), u("/issuing+.crl")]),
            ("crl_auth_none", [u("/issuing.crl")]),
            ("crl_auth", [u("/issuing.crl")]),
            ("crl_ldap", [self.ldap_url, self.ldap_domain_url]),
            ("crl_ldap_anon", [self.ldap_url]),
            ("crl_once", [u("/slowcrl.crl")]),
            ("crl_https", [self.https_url]),
            ("crl_https_untrusted", [self.https_url]),
            ("crl_again", [u("/flaky.crl"), u("/etag.crl")]),
            ("tls_rev", ["127.0.0.1:%d" % port for port in
                         (self.port_good, self.port_revoked, self.port_late,
                          self.port_stranger)]),
            ("tls_crl_direct", ["127.0.0.1:%d" % self.port_good]),
        ]
        cfg = h.exporter_config(modules, targets, global_={"scrape_timeout": "20s"})
        self.exporter = h.Exporter(os.path.join(self.d, "exporter"), cfg)
        self.exporter.start()
        self.parts.append(self.exporter)
        return self

    def probe(self, module, target):
        t0 = time.monotonic()
        m, _res = self.exporter.probe(module, target)
        return m, time.monotonic() - t0

    def stop(self):
        for part in reversed(self.parts):
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        self.parts = []
        self.tmp.cleanup()


# ---------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------

ISSUING_DN = "CN=Revocation Test Issuing CA"
ROOT_DN = "CN=Revocation Test Root"


class CRLThroughProxy(unittest.TestCase):
    """Fetch success through the proxy, failure without it; exact facts."""

    def test_base_and_delta_through_proxy(self):
        p = FIX.pki
        url = FIX.u("/proxied/issuing.crl")
        delta = FIX.u("/proxied/issuing+.crl")
        m, _ = FIX.probe("crl_proxy", url)
        lab = {"module": "crl_proxy", "url": url}
        self.assertEqual(m.value("pki_probe_success", module="crl_proxy", target=url), 1)
        self.assertEqual(m.value("pki_crl_fetch_success", issuer=ISSUING_DN, **lab), 1)
        self.assertEqual(m.value("pki_crl_http_status", **lab), 200)
        self.assertEqual(m.value("pki_crl_this_update_timestamp_seconds", **lab), p.base_this)
        self.assertEqual(m.value("pki_crl_next_update_timestamp_seconds", **lab), p.base_next)
        self.assertEqual(m.value("pki_crl_number", **lab), 41)
        self.assertEqual(m.value("pki_crl_entries", **lab), 1)
        self.assertEqual(m.value("pki_crl_is_delta", **lab), 0)
        self.assertEqual(m.value("pki_crl_signature_valid", **lab), 1)
        self.assertEqual(m.value("pki_crl_bytes", **lab), len(p.base_crl))
        self.assertEqual(m.value("pki_crl_delta_url_info", delta_url=delta, **lab), 1)
        last = m.value("pki_crl_last_success_timestamp_seconds", **lab)
        self.assertLessEqual(abs(last - time.time()), 30)
        # the delta its Freshest CRL names, fetched the same way
        dl = {"module": "crl_proxy", "url": delta}
        self.assertEqual(m.value("pki_crl_fetch_success", **dl), 1)
        self.assertEqual(m.value("pki_crl_is_delta", **dl), 1)
        self.assertEqual(m.value("pki_crl_number", **dl), 42)
        self.assertEqual(m.value("pki_crl_delta_base_number", **dl), 41)
        self.assertEqual(m.value("pki_crl_entries", **dl), 1)
        self.assertEqual(m.value("pki_crl_this_update_timestamp_seconds", **dl), p.delta_this)
        self.assertEqual(m.value("pki_crl_next_update_timestamp_seconds", **dl), p.delta_next)
        self.assertEqual(m.value("pki_crl_signature_valid", **dl), 1)
        self.assertEqual(m.value("pki_crl_delta_base", state="ok", **dl), 1)
        self.assertEqual(m.value("pki_crl_delta_base", state="missing", **dl), 0)
        lint(self, m.text)

    def test_direct_is_refused(self):
        url = FIX.u("/proxied/issuing.crl")
        m, _ = FIX.probe("crl_direct", url)
        lab = {"module": "crl_direct", "url": url}
        self.assertEqual(m.value("pki_probe_success", module="crl_direct", target=url), 0)
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 0)
        self.assertEqual(m.value("pki_crl_http_status", **lab), 403)
        self.assertEqual(m.value("pki_crl_fetch_failure_info", reason="http_status", **lab), 1)
        self.assertEqual(m.value("pki_probe_failure_info", module="crl_direct", target=url,
                                 stage="fetch", reason="http_error"), 1)
        self.assertEqual(m.find("pki_crl_this_update_timestamp_seconds", **lab), [])

    def test_expired_crl(self):
        p = FIX.pki
        url = FIX.u("/proxied/expired.crl")
        m, _ = FIX.probe("crl_proxy", url)
        lab = {"module": "crl_proxy", "url": url}
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 1)
        self.assertEqual(m.value("pki_crl_next_update_timestamp_seconds", **lab),
                         p.expired_next)
        self.assertLess(m.value("pki_crl_next_update_timestamp_seconds", **lab), time.time())
        self.assertEqual(m.value("pki_crl_this_update_timestamp_seconds", **lab),
                         p.expired_this)

    def test_bad_signature(self):
        url = FIX.u("/proxied/badsig.crl")
        m, _ = FIX.probe("crl_proxy", url)
        lab = {"module": "crl_proxy", "url": url}
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 1)
        self.assertEqual(m.value("pki_crl_signature_valid", **lab), 0)

    def test_root_crl(self):
        p = FIX.pki
        url = FIX.u("/proxied/root.crl")
        m, _ = FIX.probe("crl_proxy", url)
        lab = {"module": "crl_proxy", "url": url, "issuer": ROOT_DN}
        self.assertEqual(m.value("pki_crl_this_update_timestamp_seconds", **lab), p.root_this)
        self.assertEqual(m.value("pki_crl_next_update_timestamp_seconds", **lab), p.root_next)
        self.assertEqual(m.value("pki_crl_entries", **lab), 0)
        self.assertEqual(m.value("pki_crl_signature_valid", **lab), 1)

    def test_delta_with_an_older_base(self):
        url = FIX.u("/proxied/oldbase.crl")
        delta = FIX.u("/proxied/issuing+.crl")
        m, _ = FIX.probe("crl_oldbase", url)
        self.assertEqual(m.value("pki_crl_number", module="crl_oldbase", url=url), 39)
        dl = {"module": "crl_oldbase", "url": delta}
        self.assertEqual(m.value("pki_crl_delta_base_number", **dl), 41)
        self.assertEqual(m.value("pki_crl_delta_base", state="too_old", **dl), 1)
        self.assertEqual(m.value("pki_crl_delta_base", state="ok", **dl), 0)

    def test_standalone_delta_has_no_base(self):
        url = FIX.u("/issuing+.crl")
        m, _ = FIX.probe("crl_direct", url)
        lab = {"module": "crl_direct", "url": url}
        self.assertEqual(m.value("pki_crl_is_delta", **lab), 1)
        self.assertEqual(m.value("pki_crl_delta_base", state="missing", **lab), 1)
        self.assertEqual(m.value("pki_crl_delta_base", state="ok", **lab), 0)


class HTTPS(unittest.TestCase):
    def test_https_through_connect(self):
        url = FIX.https_url
        before = FIX.https.count("/issuing.crl")
        m, _ = FIX.probe("crl_https", url)
        lab = {"module": "crl_https", "url": url}
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 1, m.excerpt())
        self.assertEqual(m.value("pki_crl_number", **lab), 41)
        self.assertEqual(m.value("pki_crl_this_update_timestamp_seconds", **lab),
                         FIX.pki.base_this)
        self.assertEqual(FIX.https.count("/issuing.crl") - before, 1)

    def test_https_untrusted_server(self):
        url = FIX.https_url
        m, _ = FIX.probe("crl_https_untrusted", url)
        lab = {"module": "crl_https_untrusted", "url": url}
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 0)
        self.assertEqual(m.value("pki_crl_fetch_failure_info", reason="tls_error", **lab), 1)


class CleanFailures(unittest.TestCase):
    """Each failure is clean, with its reason, and the scrape is on time."""

    def check(self, path, reason, probe_reason, max_seconds=3.5):
        url = FIX.u(path)
        m, took = FIX.probe("crl_direct", url)
        lab = {"module": "crl_direct", "url": url}
        self.assertEqual(m.value("pki_probe_success", module="crl_direct", target=url), 0)
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 0)
        self.assertEqual(m.value("pki_crl_fetch_failure_info", reason=reason, **lab), 1,
                         m.excerpt())
        self.assertEqual(m.value("pki_probe_failure_info", module="crl_direct", target=url,
                                 stage="fetch", reason=probe_reason), 1)
        self.assertLess(took, max_seconds)
        return m, took

    def test_html_error_page(self):
        self.check("/html.crl", "html_page", "malformed")

    def test_truncated(self):
        self.check("/trunc.crl", "truncated", "malformed")

    def test_endless_body_hits_the_cap(self):
        m, _ = self.check("/endless.crl", "too_large", "too_large")
        self.assertEqual(m.value("pki_crl_http_status", module="crl_direct",
                                 url=FIX.u("/endless.crl")), 200)

    def test_slow_server_hits_the_timeout(self):
        _m, took = self.check("/slow.crl", "timeout", "timeout")
        self.assertGreater(took, 1.5)   # the module timeout is 2s

    def test_proxy_wants_credentials(self):
        url = FIX.u("/issuing.crl")
        m, _ = FIX.probe("crl_auth_none", url)
        lab = {"module": "crl_auth_none", "url": url}
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 0)
        self.assertEqual(m.value("pki_crl_http_status", **lab), 407)
        self.assertEqual(m.value("pki_crl_fetch_failure_info",
                                 reason="proxy_auth_required", **lab), 1)
        self.assertEqual(m.value("pki_probe_failure_info", module="crl_auth_none",
                                 target=url, stage="fetch", reason="proxy_error"), 1)
        m, _ = FIX.probe("crl_auth", url)
        self.assertEqual(m.value("pki_crl_fetch_success", module="crl_auth", url=url), 1)
        self.assertEqual(m.value("pki_crl_number", module="crl_auth", url=url), 41)

    def test_whole_scrape_on_time(self):
        t0 = time.monotonic()
        m, res = FIX.exporter.scrape(scrape_timeout=15)
        took = time.monotonic() - t0
        self.assertEqual(res.status, 200)
        self.assertLess(took, 9)
        lint(self, m.text)


class LDAP(unittest.TestCase):
    def test_ldap_cdp_with_bind(self):
        p = FIX.pki
        url = FIX.ldap_url
        m, _ = FIX.probe("crl_ldap", url)
        lab = {"module": "crl_ldap", "url": url}
        self.assertEqual(m.value("pki_probe_success", module="crl_ldap", target=url), 1,
                         m.excerpt())
        self.assertEqual(m.value("pki_crl_fetch_success", issuer=ISSUING_DN, **lab), 1)
        self.assertEqual(m.value("pki_crl_number", **lab), 41)
        self.assertEqual(m.value("pki_crl_this_update_timestamp_seconds", **lab), p.base_this)
        self.assertEqual(m.value("pki_crl_next_update_timestamp_seconds", **lab), p.base_next)
        self.assertEqual(m.value("pki_crl_entries", **lab), 1)
        self.assertEqual(m.value("pki_crl_signature_valid", **lab), 1)

    def test_ldap_domain_url_uses_configured_server(self):
        p = FIX.pki
        url = FIX.ldap_domain_url
        m, _ = FIX.probe("crl_ldap", url)
        lab = {"module": "crl_ldap", "url": url}
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 1, m.excerpt())
        self.assertEqual(m.value("pki_crl_number", **lab), 42)
        self.assertEqual(m.value("pki_crl_is_delta", **lab), 1)
        self.assertEqual(m.value("pki_crl_this_update_timestamp_seconds", **lab), p.delta_this)

    def test_ldap_without_credentials_is_skipped_not_down(self):
        url = FIX.ldap_url
        m, _ = FIX.probe("crl_ldap_anon", url)
        self.assertEqual(m.value("pki_probe_success", module="crl_ldap_anon", target=url), 1)
        self.assertEqual(m.value("pki_crl_fetch_skipped", module="crl_ldap_anon", url=url,
                                 reason="ldap_no_credentials"), 1)
        self.assertEqual(m.find("pki_crl_fetch_success", url=url), [])


class Cache(unittest.TestCase):
    def test_concurrent_scrapes_fetch_once(self):
        url = FIX.u("/slowcrl.crl")
        before = FIX.web.count("/slowcrl.crl")
        results = []

        def scrape():
            results.append(FIX.probe("crl_once", url)[0])
        threads = [threading.Thread(target=scrape) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 2)
        for m in results:
            self.assertEqual(m.value("pki_crl_fetch_success", module="crl_once", url=url), 1)
            self.assertEqual(m.value("pki_crl_number", module="crl_once", url=url), 41)
        self.assertEqual(FIX.web.count("/slowcrl.crl") - before, 1)
        # within min_interval: the cached result, no fetch at all
        m, took = FIX.probe("crl_once", url)
        self.assertEqual(m.value("pki_crl_from_cache", module="crl_once", url=url), 1)
        self.assertEqual(m.value("pki_crl_fetch_success", module="crl_once", url=url), 1)
        self.assertEqual(FIX.web.count("/slowcrl.crl") - before, 1)
        self.assertLess(took, 1.4)   # a real fetch sleeps 1.5 s in the server

    def test_failed_fetch_keeps_last_good_dates(self):
        p = FIX.pki
        url = FIX.u("/flaky.crl")
        lab = {"module": "crl_again", "url": url}
        FIX.web.flaky_fail = False
        m, _ = FIX.probe("crl_again", url)
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 1)
        good = m.value("pki_crl_last_success_timestamp_seconds", **lab)
        time.sleep(1.1)
        FIX.web.flaky_fail = True
        try:
            m, _ = FIX.probe("crl_again", url)
        finally:
            FIX.web.flaky_fail = False
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 0)
        self.assertEqual(m.value("pki_crl_http_status", **lab), 500)
        self.assertEqual(m.value("pki_crl_last_success_timestamp_seconds", **lab), good)
        self.assertEqual(m.value("pki_crl_next_update_timestamp_seconds", **lab), p.base_next)
        self.assertEqual(m.value("pki_crl_number", **lab), 41)

    def test_conditional_get(self):
        url = FIX.u("/etag.crl")
        lab = {"module": "crl_again", "url": url}
        m, _ = FIX.probe("crl_again", url)
        self.assertEqual(m.value("pki_crl_http_status", **lab), 200)
        m, _ = FIX.probe("crl_again", url)
        self.assertEqual(m.value("pki_crl_http_status", **lab), 304)
        self.assertEqual(m.value("pki_crl_fetch_success", **lab), 1)
        self.assertEqual(m.value("pki_crl_number", **lab), 41)
        self.assertIn('"crl-41"', FIX.web.conditional.get("/etag.crl", []))


class FollowingCertificates(unittest.TestCase):
    """revocation: both on a tls module: the chains' CDPs and OCSP."""

    def cert_labels(self, port, position="0"):
        return {"module": "tls_rev", "target": "127.0.0.1:%d" % port,
                "position": position}

    def probe(self, port):
        m, took = FIX.probe("tls_rev", "127.0.0.1:%d" % port)
        self.assertEqual(m.value("pki_probe_success", module="tls_rev",
                                 target="127.0.0.1:%d" % port), 1, m.excerpt())
        return m

    def test_good_leaf(self):
        p = FIX.pki
        m = self.probe(FIX.port_good)
        lab = self.cert_labels(FIX.port_good)
        self.assertEqual(m.value("pki_cert_revoked", source="crl", **lab), 0)
        self.assertEqual(m.value("pki_cert_revoked", source="ocsp", **lab), 0)
        self.assertEqual(m.value("pki_ocsp_cert_status", source="responder",
                                 status="good", **lab), 1)
        self.assertEqual(m.value("pki_ocsp_signature_valid", source="responder", **lab), 1)
        self.assertEqual(m.value("pki_ocsp_response_status", source="responder", **lab), 0)
        na = m.value("pki_ocsp_responder_cert_not_after_timestamp_seconds",
                     source="responder", **lab)
        self.assertEqual(na, p.now + 365 * 86400)
        # the stapled answer, reported separately
        self.assertEqual(m.value("pki_ocsp_stapled", module="tls_rev",
                                 target="127.0.0.1:%d" % FIX.port_good), 1)
        self.assertEqual(m.value("pki_ocsp_cert_status", source="stapled",
                                 status="good", **lab), 1)
        # the intermediate: the root's CRL, through the proxy too
        lab1 = self.cert_labels(FIX.port_good, "1")
        self.assertEqual(m.value("pki_cert_revoked", source="crl", **lab1), 0)
        self.assertEqual(m.value("pki_cert_revocation_unknown", source="ocsp",
                                 reason="no_ocsp_url", **lab1), 1)
        # every CDP became a crl target, reported once, with its delta
        base = FIX.u("/proxied/issuing.crl")
        self.assertEqual(m.value("pki_crl_fetch_success", module="tls_rev", url=base), 1)
        self.assertEqual(m.value("pki_crl_number", module="tls_rev", url=base), 41)
        self.assertEqual(m.value("pki_crl_number", module="tls_rev",
                                 url=FIX.u("/proxied/issuing+.crl")), 42)
        self.assertEqual(m.value("pki_crl_fetch_success", module="tls_rev",
                                 url=FIX.u("/proxied/root.crl")), 1)

    def test_revoked_leaf(self):
        m = self.probe(FIX.port_revoked)
        lab = self.cert_labels(FIX.port_revoked)
        self.assertEqual(m.value("pki_cert_revoked", source="crl", **lab), 1)
        self.assertEqual(m.value("pki_cert_revoked", source="ocsp", **lab), 1)
        self.assertEqual(m.value("pki_ocsp_cert_status", source="responder",
                                 status="revoked", **lab), 1)
        self.assertEqual(m.find("pki_ocsp_revocation_timestamp_seconds", **lab)[0][1] > 0,
                         True)
        # no staple asked of this server was given: never "good"
        self.assertEqual(m.value("pki_ocsp_stapled", module="tls_rev",
                                 target="127.0.0.1:%d" % FIX.port_revoked), 0)
        self.assertEqual(m.find("pki_ocsp_cert_status", source="stapled", **lab), [])

    def test_responder_not_asked_again_within_min_interval(self):
        self.probe(FIX.port_revoked)
        asked = FIX.web.count("/ocsp")
        m = self.probe(FIX.port_revoked)
        lab = self.cert_labels(FIX.port_revoked)
        self.assertEqual(FIX.web.count("/ocsp"), asked)
        self.assertEqual(m.value("pki_ocsp_from_cache", source="responder", **lab), 1)
        self.assertEqual(m.value("pki_cert_revoked", source="ocsp", **lab), 1)

    def test_revoked_after_base_only_in_delta(self):
        m = self.probe(FIX.port_late)
        lab = self.cert_labels(FIX.port_late)
        self.assertEqual(m.value("pki_cert_revoked", source="crl", **lab), 1)
        self.assertEqual(m.value("pki_cert_revoked", source="ocsp", **lab), 1)

    def test_unknown_to_the_responder(self):
        m = self.probe(FIX.port_stranger)
        lab = self.cert_labels(FIX.port_stranger)
        self.assertEqual(m.value("pki_ocsp_cert_status", source="responder",
                                 status="unknown", **lab), 1)
        self.assertEqual(m.value("pki_cert_revocation_unknown", source="ocsp",
                                 reason="status_unknown", **lab), 1)
        self.assertEqual(m.find("pki_cert_revoked", source="ocsp", **lab), [])
        self.assertEqual(m.value("pki_cert_revoked", source="crl", **lab), 0)

    def test_without_the_proxy_revocation_is_unknown(self):
        m, _ = FIX.probe("tls_crl_direct", "127.0.0.1:%d" % FIX.port_good)
        lab = {"module": "tls_crl_direct", "target": "127.0.0.1:%d" % FIX.port_good,
               "position": "0"}
        self.assertEqual(m.value("pki_probe_success", module="tls_crl_direct",
                                 target=lab["target"]), 1)
        self.assertEqual(m.value("pki_cert_revocation_unknown", source="crl",
                                 reason="crl_unavailable", **lab), 1)
        self.assertEqual(m.value("pki_crl_http_status", module="tls_crl_direct",
                                 url=FIX.u("/proxied/issuing.crl")), 403)

    def test_scrape_reports_each_crl_once(self):
        m, res = FIX.exporter.scrape(scrape_timeout=15)
        self.assertEqual(res.status, 200)
        # four tls targets share one CDP: one series (parse_metrics is
        # strict about duplicates), and the exposition is valid
        self.assertEqual(len(m.find("pki_crl_fetch_success", module="tls_rev",
                                    url=FIX.u("/proxied/issuing.crl"))), 1)
        self.assertEqual(len(m.find("pki_cert_revoked", module="tls_rev", source="crl",
                                    position="0")), 4)
        lint(self, m.text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
