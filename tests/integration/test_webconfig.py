#!/usr/bin/env python3
"""--web.config.file: TLS for the exporter's own endpoint, client
certificates and bcrypt basic auth, each refused correctly (issue #8 item 1).

Run: PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_webconfig.py
"""
import base64
import crypt  # noqa: deprecated in 3.11 but present; libcrypt does the bcrypt
import http.client
import os
import socket
import ssl
import sys
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)


def bcrypt_hash(password):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))


class WebConfigBase(unittest.TestCase):
    web_yaml = None  # set by subclasses: (pki, dir) -> text

    @classmethod
    def setUpClass(cls):
        if not os.environ.get("PKI_EXPORTER"):
            raise unittest.SkipTest("PKI_EXPORTER not set")
        cls.tmp = h.TempDir()
        d = cls.tmp.path
        cls.pki = h.PKI(os.path.join(d, "pki"))
        cls.root = cls.pki.root_ca(cn="Web Root")
        cls.server = cls.pki.leaf(cls.root, "server", "localhost",
                                  sans=["DNS:localhost", "IP:127.0.0.1"])
        cls.client = cls.pki.leaf(cls.root, "client", "prometheus-client")
        other_root = cls.pki.root_ca(name="other", cn="Untrusted Root")
        cls.stranger = cls.pki.leaf(other_root, "stranger", "stranger")
        with open(os.path.join(d, "pki_exporter.yml"), "w") as f:
            f.write("modules: { m: { prober: tls } }\ntargets: []\n")
        with open(os.path.join(d, "web.yml"), "w") as f:
            f.write(cls.web_yaml())
        cls.port = h.free_port()
        cls.proc = h.start_process(
            [h.exporter_binary(), "--config.file=" + os.path.join(d, "pki_exporter.yml"),
             "--web.config.file=" + os.path.join(d, "web.yml"),
             "--web.listen-address=127.0.0.1:%d" % cls.port], "exporter", d)
        h.wait_port(cls.port, timeout=10, proc=cls.proc)

    @classmethod
    def tearDownClass(cls):
        proc = getattr(cls, "proc", None)
        if proc:
            rc = proc.stop()
            # ASan builds report leaks through the exit status
            assert rc == 0, "exporter exit status %s:\n%s" % (rc, proc.log_tail())
        if getattr(cls, "tmp", None):
            cls.tmp.cleanup()

    def ctx(self, cert=None):
        c = ssl.create_default_context(cafile=self.root.cert)
        if cert:
            c.load_cert_chain(cert.cert, cert.key)
        return c

    def get(self, path="/metrics", user=None, password=None, cert=None):
        conn = http.client.HTTPSConnection("localhost", self.port, timeout=10,
                                           context=self.ctx(cert))
        headers = {}
        if user is not None:
            tok = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            headers["Authorization"] = "Basic " + tok
        try:
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            return r.status, r.getheader("WWW-Authenticate"), r.read().decode()
        finally:
            conn.close()


class TestBasicAuthOverTLS(WebConfigBase):
    @classmethod
    def web_yaml(cls):
        return ("tls_server_config:\n  cert_file: pki/server.pem\n"
                "  key_file: pki/server.key\n  min_version: TLS12\n"
                "basic_auth_users:\n  prom: '%s'\n  other: '%s'\n"
                % (bcrypt_hash("s3cret"), bcrypt_hash("another")))

    def test_right_password(self):
        status, _, body = self.get(user="prom", password="s3cret")
        self.assertEqual(status, 200)
        self.assertIn("pki_exporter_build_info", body)
        # a second time (answered from the bcrypt cache) too
        self.assertEqual(self.get(user="prom", password="s3cret")[0], 200)

    def test_missing_auth_is_401_with_challenge(self):
        status, challenge, _ = self.get()
        self.assertEqual(status, 401)
        self.assertIn('Basic realm="pki_exporter"', challenge or "")

    def test_wrong_password_and_user(self):
        self.assertEqual(self.get(user="prom", password="S3cret")[0], 401)
        self.assertEqual(self.get(user="prom", password="")[0], 401)
        self.assertEqual(self.get(user="nobody", password="s3cret")[0], 401)
        # one user's password does not open another's account
        self.assertEqual(self.get(user="prom", password="another")[0], 401)
        self.assertEqual(self.get(user="other", password="another")[0], 200)

    def test_every_path_is_protected(self):
        for path in ("/", "/-/healthy", "/-/ready", "/probe?module=m&target=x:1"):
            self.assertEqual(self.get(path)[0], 401, path)

    def test_plain_http_to_the_tls_port_fails(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            r.read()
            raise AssertionError("plain HTTP got an HTTP answer: %d" % r.status)

    def test_old_tls_refused(self):
        # TLS 1.2 is accepted (min_version: TLS12), 1.0/1.1 are not
        c12 = self.ctx()
        c12.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            with c12.wrap_socket(s, server_hostname="localhost") as t:
                self.assertEqual(t.version(), "TLSv1.2")
        c = self.ctx()
        c.minimum_version = ssl.TLSVersion.TLSv1
        c.maximum_version = ssl.TLSVersion.TLSv1_1
        c.set_ciphers("DEFAULT:@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            with self.assertRaises(ssl.SSLError):
                with c.wrap_socket(s, server_hostname="localhost"):
                    pass


class TestClientCertificates(WebConfigBase):
    @classmethod
    def web_yaml(cls):
        return ("tls_server_config:\n  cert_file: pki/server.pem\n"
                "  key_file: pki/server.key\n  client_ca_file: pki/root.pem\n"
                "  client_auth_type: RequireAndVerifyClientCert\n")

    def test_trusted_client_cert(self):
        status, _, body = self.get(cert=self.client)
        self.assertEqual(status, 200)
        self.assertIn("pki_exporter_build_info", body)

    def test_no_client_cert_refused(self):
        try:
            status = self.get()[0]
        except (ssl.SSLError, ConnectionError):
            return  # refused in the handshake: fine too
        self.assertEqual(status, 403)

    def test_untrusted_client_cert_refused(self):
        try:
            status = self.get(cert=self.stranger)[0]
        except (ssl.SSLError, ConnectionError):
            return
        self.assertEqual(status, 403)


class TestBadWebConfig(unittest.TestCase):
    def test_errors_named_and_exit_1(self):
        if not os.environ.get("PKI_EXPORTER"):
            self.skipTest("PKI_EXPORTER not set")
        tmp = h.TempDir()
        try:
            cfg = tmp.join("c.yml")
            with open(cfg, "w") as f:
                f.write("modules: { m: { prober: tls } }\n")
            web = tmp.join("web.yml")
            with open(web, "w") as f:
                f.write("tls_server_config:\n  cert_file: /nonexistent.pem\n"
                        "  key_file: /nonexistent.key\n  min_version: TLS99\n"
                        "basic_auth_users:\n  prom: plaintext\nbogus: 1\n")
            cp = h.run_exporter_cli(["--config.file=" + cfg, "--web.config.file=" + web,
                                     "--web.listen-address=127.0.0.1:%d" % h.free_port()],
                                    timeout=20)
            self.assertEqual(cp.returncode, 1)
            err = cp.stderr if isinstance(cp.stderr, str) else cp.stderr.decode()
            self.assertIn(web + ":2:14: cannot open '/nonexistent.pem'", err)
            self.assertIn(web + ":4:16: min_version must be", err)
            self.assertIn(web + ":6:9: user 'prom': expected a bcrypt hash", err)
            self.assertIn(web + ":7:1: unknown key 'bogus'", err)
            # client certificates need CAs to name: refused at load, not
            # by a 403 on every request
            with open(web, "w") as f:
                f.write("tls_server_config:\n  cert_file: /nonexistent.pem\n"
                        "  key_file: /nonexistent.key\n"
                        "  client_auth_type: RequireAnyClientCert\n")
            cp = h.run_exporter_cli(["--config.file=" + cfg, "--web.config.file=" + web,
                                     "--web.listen-address=127.0.0.1:%d" % h.free_port()],
                                    timeout=20)
            self.assertEqual(cp.returncode, 1)
            err = cp.stderr if isinstance(cp.stderr, str) else cp.stderr.decode()
            self.assertIn(web + ":2:3: client_auth_type RequireAnyClientCert needs "
                          "client_ca_file", err)
        finally:
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2, warnings="ignore")
