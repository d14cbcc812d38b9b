#!/usr/bin/env python3
"""Endpoint checks for UC estates (issue #3): SRV discovery, every address of
a pool name, chain health, mutual TLS, partner CSV lists, IPv6 and the
`pki_exporter check` report.

Run:  PKI_EXPORTER=build/pki_exporter python3 tests/integration/test_endpoints.py
      (skips, with a message, when PKI_EXPORTER is unset)

Everything runs on loopback: a PKI made with the openssl CLI at test time,
one nginx serving TLS on 127.0.0.1, 127.0.0.2-5, a random 127.x.y.z:5061 and
[::1], two `openssl s_server` (a server that rejects a handshake without a
client certificate, which nginx never does), and one authoritative-only
dnsmasq serving the SRV records and names below. Every value asserted was
generated here (dates, serials, DER sizes); nothing could pass without the
feature.

DNS (dnsmasq on 127.0.0.1:<free port>):
  _sipfederationtls._tcp.partner.test  SRV 10 60 sip1.partner.test:P_SIP1
                                       SRV 10 40 sip2.partner.test:P_SIP2
                                       SRV 20  0 pool.partner.test:P_POOL
  _sip._tls.partner.test               SRV  5 100 sip1.partner.test:P_SIP1
                                       SRV 10  0 gone.partner.test:P_SIP1 (NXDOMAIN)
  _sip._tls.partner2.test              SRV 10 10 sip2.partner.test:P_SIP2
  _sipinternaltls._tcp.partner2.test   SRV  0  0 sip1.partner.test:P_SIP1
  sip1.partner.test  A 127.0.0.1        sip2.partner.test  A 127.0.0.5
  pool.partner.test  A 127.0.0.2, 127.0.0.3, 127.0.0.4 (3 servers, 3 certs;
                     the one on .3 expires in 3 days)
  v6.partner.test    A 127.0.0.1, AAAA ::1 (a different certificate on each)
  dir5061.partner.test  A 127.R.R.R (random, listening on 5061)
  *.hn.test, *.check.test names -> 127.0.0.1
"""

import csv
import io
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DAY = 86400
FIX = None

ROOT_CN = "Endpoints Test Root CA"
INTER_CN = "Endpoints Test Intermediate CA"
POOL_IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
SIP2_IP = "127.0.0.5"
N_CLIENT_CAS = 150

# Weak certificates: generated with `openssl ca ... -md sha1` / `-md md5`
# (harness PKI(md=...); the same as `openssl x509 -req -sha1` / `-md5`:
# OpenSSL 3 still signs with them) and `openssl genpkey -algorithm RSA
# -pkeyopt rsa_keygen_bits:1024`. OpenSSL 3 (Debian 12) refuses, at its
# default security level (2 on Debian), to even load such a certificate
# ("ca md too weak" for SHA-1/MD5, "ee key too small" for RSA-1024): nginx
# would not start. Security level 0 (`@SECLEVEL=0` in nginx's ssl_ciphers)
# lets nginx load and serve them; the exporter handshakes at level 0
# (probes/tls/README.md), so it sees and reports them instead of refusing.
WEAK_OK = "ssl_ciphers DEFAULT:@SECLEVEL=0;"


def free_loopback_5061():
    """A random 127.x.y.z where 5061 is free (the DIR default port), so that
    parallel runs of this suite do not collide."""
    for _ in range(50):
        ip = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 254),
                               random.randint(2, 254))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((ip, 5061))
            return ip
        except OSError:
            continue
        finally:
            s.close()
    raise h.HarnessError("no loopback address with port 5061 free")


def ipv6_loopback_ok():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def sanitizer_report(text):
    """True when ASan/LSan/UBSan printed a report."""
    return any(s in text for s in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer"))


def days_left(not_after, now):
    """What `check` prints: whole days from now, rounded down."""
    return math.floor((not_after - now) / DAY)


def fmt_utc(ts):
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


class EndpointsFixture:
    """PKI, nginx, s_server x2, dnsmasq. See the module docstring."""

    def __init__(self):
        self.tmp = h.TempDir("pki-endpoints-")
        self.dir = self.tmp.path
        self.nginx = None
        self.dns = None
        self.sservers = []

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        now = self.now = h.utc_now()
        self.have_v6 = ipv6_loopback_ok()
        pki = self.pki = h.PKI(os.path.join(self.dir, "pki"))
        self.root = pki.root_ca(cn=ROOT_CN, key="rsa:2048")
        # dates half a day off midnight-aligned multiples, odd seconds: days
        # left are the same whenever within the next 12 hours
        self.inter = pki.intermediate_ca(
            self.root, cn=INTER_CN, key="ec",
            not_before=now - 20 * DAY + 11, not_after=now + 1500 * DAY + 43200 + 5)
        self.root_file = self.root.cert
        self.bundle = pki.chain_file("bundle", [self.root, self.inter])
        ngx = self.nginx = h.NginxRunner(os.path.join(self.dir, "nginx"))
        names = {}
        dns_args = []

        def leaf(name, cn, sans, **kw):
            kw.setdefault("not_before", now - 2 * DAY + random.randint(1, 999))
            kw.setdefault("not_after", now + random.randint(60, 300) * DAY
                          + 43200 + random.randint(1, 999))
            return pki.leaf(kw.pop("issuer", self.inter), name, cn, sans=sans, **kw)

        # -- 1. SRV discovery and a pool name --------------------------------
        self.sip1 = leaf("sip1", "sip1.partner.test", ["DNS:sip1.partner.test"])
        self.sip2 = leaf("sip2", "sip2.partner.test", ["DNS:sip2.partner.test"])
        self.p_sip1 = ngx.add(self.sip1, chain=[self.inter])
        self.p_sip2 = ngx.add(self.sip2, chain=[self.inter], host=SIP2_IP)
        self.pool = []
        self.p_pool = h.free_port()
        for i, ip in enumerate(POOL_IPS):
            na = (now + 3 * DAY + 7 * 3600 + 13) if i == 1 else \
                (now + (100 + 50 * i) * DAY + 43200 + 7 * i)
            c = leaf("pool%d" % i, "pool.partner.test", ["DNS:pool.partner.test"],
                     not_after=na, key="rsa:2048" if i == 2 else "ec")
            self.pool.append(c)
            ngx.add(c, chain=[self.inter], port=self.p_pool, host=ip)
        self.srv_fed = [("sip1.partner.test", self.p_sip1, 10, 60),
                        ("sip2.partner.test", self.p_sip2, 10, 40),
                        ("pool.partner.test", self.p_pool, 20, 0)]
        self.srv_sip = [("sip1.partner.test", self.p_sip1, 5, 100),
                        ("gone.partner.test", self.p_sip1, 10, 0)]
        for svc, recs in (("_sipfederationtls._tcp.partner.test", self.srv_fed),
                          ("_sip._tls.partner.test", self.srv_sip),
                          ("_sip._tls.partner2.test",
                           [("sip2.partner.test", self.p_sip2, 10, 10)]),
                          ("_sipinternaltls._tcp.partner2.test",
                           [("sip1.partner.test", self.p_sip1, 0, 0)])):
            for host, port, prio, weight in recs:
                dns_args.append("--srv-host=%s,%s,%d,%d,%d" % (svc, host, port, prio, weight))
        dns_args += ["--host-record=sip1.partner.test,127.0.0.1",
                     "--host-record=sip2.partner.test,%s" % SIP2_IP]
        dns_args += ["--host-record=pool.partner.test,%s" % ip for ip in POOL_IPS]

        # -- 8. IPv6: one name, A and AAAA, a different certificate on each
        self.p_v6 = h.free_port()
        self.v6_on4 = leaf("v6-on4", "v6.partner.test",
                           ["DNS:v6.partner.test", "IP:127.0.0.1"])
        ngx.add(self.v6_on4, chain=[self.inter], port=self.p_v6)
        if self.have_v6:
            self.v6_on6 = leaf("v6-on6", "v6.partner.test",
                               ["DNS:v6.partner.test", "IP:::1"])
            ngx.add(self.v6_on6, chain=[self.inter], port=self.p_v6, host="::1")
            dns_args.append("--host-record=v6.partner.test,127.0.0.1,::1")
        else:
            dns_args.append("--host-record=v6.partner.test,127.0.0.1")

        # -- 6. DIR row with an empty port: 5061 on a random loopback address
        self.ip_5061 = free_loopback_5061()
        self.dir5061 = leaf("dir5061", "dir5061.partner.test", ["DNS:dir5061.partner.test"])
        ngx.add(self.dir5061, chain=[self.inter], port=5061, host=self.ip_5061)
        dns_args.append("--host-record=dir5061.partner.test,%s" % self.ip_5061)

        # -- 2. chain completeness
        self.full = leaf("chain-full", "full.chain.test",
                         ["DNS:full.chain.test", "IP:127.0.0.1"])
        self.nointer = leaf("chain-nointer", "nointer.chain.test", ["DNS:nointer.chain.test"])
        self.p_full = ngx.add(self.full, chain=[self.inter])
        self.p_nointer = ngx.add(self.nointer)          # intermediate not sent
        # a root nobody trusts here: its leaf + intermediate sent in full
        self.other_root = pki.root_ca(name="other-root", cn="Partner Private Root CA",
                                      key="ec")
        self.other_inter = pki.intermediate_ca(self.other_root, name="other-inter",
                                               cn="Partner Private Issuing CA")
        self.other = leaf("chain-other", "other.chain.test", ["DNS:other.chain.test"],
                          issuer=self.other_inter)
        self.p_other = ngx.add(self.other, chain=[self.other_inter])
        self.p_other_leafonly = ngx.add(self.other)
        # three tiers (root -> policy CA -> issuing CA -> leaf): the server
        # sends leaf + issuing CA, the policy CA is only in the trust store
        self.policy_ca = pki.intermediate_ca(self.root, name="policy-ca",
                                             cn="PKI Test Policy CA")
        self.issuing_ca = pki.intermediate_ca(self.policy_ca, name="issuing-ca",
                                              cn="PKI Test Issuing CA")
        self.tier3 = leaf("chain-tier3", "tier3.chain.test", ["DNS:tier3.chain.test"],
                          issuer=self.issuing_ca)
        self.p_tier3 = ngx.add(self.tier3, chain=[self.issuing_ca])
        self.p_tier3_full = ngx.add(self.tier3, chain=[self.issuing_ca, self.policy_ca])
        self.tier3_bundle = pki.chain_file("tier3-bundle", [self.root, self.policy_ca])

        # -- 3. weak signatures and keys (leaves signed by the RSA root)
        self.w_sha1 = leaf("w-sha1", "sha1.weak.test", ["DNS:sha1.weak.test"],
                           issuer=self.root, key="rsa:2048", md="sha1")
        self.w_md5 = leaf("w-md5", "md5.weak.test", ["DNS:md5.weak.test"],
                          issuer=self.root, key="rsa:2048", md="md5")
        self.w_sha256 = leaf("w-sha256", "sha256.weak.test", ["DNS:sha256.weak.test"],
                             issuer=self.root, key="rsa:2048")
        self.w_rsa1024 = leaf("w-rsa1024", "rsa1024.weak.test", ["DNS:rsa1024.weak.test"],
                              issuer=self.root, key="rsa:1024")
        # a SHA-1-signed intermediate below the root, sent by the server
        self.inter_sha1 = pki.intermediate_ca(self.root, name="inter-sha1",
                                              cn="Legacy SHA1 Intermediate CA",
                                              key="rsa:2048", md="sha1")
        self.w_under_sha1 = leaf("w-under-sha1", "under.weak.test", ["DNS:under.weak.test"],
                                 issuer=self.inter_sha1, key="rsa:2048")
        # a SHA-1 self-signed root the server sends along: a trust anchor's
        # own signature is never checked, so it is not flagged
        self.root_sha1 = pki.root_ca(name="root-sha1", cn="Legacy SHA1 Root CA",
                                     key="rsa:2048", md="sha1")
        self.w_sha1root = leaf("w-sha1root", "sha1root.weak.test", ["DNS:sha1root.weak.test"],
                               issuer=self.root_sha1, key="rsa:2048")
        self.weak_ports = {}
        for c, chain in ((self.w_sha1, []), (self.w_md5, []), (self.w_sha256, []),
                         (self.w_rsa1024, []), (self.w_under_sha1, [self.inter_sha1]),
                         (self.w_sha1root, [self.root_sha1])):
            self.weak_ports[c.name] = ngx.add(c, chain=chain, directives=[WEAK_OK])

        # -- 4. mutual TLS
        self.cas_file = os.path.join(self.dir, "client-cas.pem")
        self.client_cas = self._client_cas(self.cas_file, N_CLIENT_CAS)
        self.mtls = leaf("mtls", "mtls.test", ["DNS:mtls.test", "IP:127.0.0.1"])
        opt = ["ssl_verify_client optional;", "ssl_client_certificate %s;" % self.cas_file,
               "ssl_verify_depth 2;"]
        self.p_opt12 = ngx.add(self.mtls, chain=[self.inter], protocols="TLSv1.2",
                               directives=opt)
        self.p_opt13 = ngx.add(self.mtls, chain=[self.inter], protocols="TLSv1.3",
                               directives=opt)
        # the client certificate the exporter presents: issued by the root
        self.client = pki.leaf(self.root, "probe-client", "probe-client.test", key="ec",
                               eku="clientAuth")
        self.p_on = ngx.add(self.mtls, chain=[self.inter], directives=[
            "ssl_verify_client on;", "ssl_client_certificate %s;" % self.root_file])
        for proto in ("tls1_2", "tls1_3"):
            s = h.SServerRunner(os.path.join(self.dir, "sserver-" + proto), self.mtls,
                                chain=[self.inter], name="s_server_" + proto,
                                args=["-" + proto, "-Verify", "1",
                                      "-CAfile", self.root_file])
            self.sservers.append(s)
        self.ss12, self.ss13 = self.sservers

        # -- 5. hostname match and EKU (names resolve to 127.0.0.1)
        self.hn_wrong = leaf("hn-wrong", "wrong.hn.test", ["DNS:other.hn.test"])
        self.hn_cnonly = leaf("hn-cnonly", "cnonly.hn.test", [])
        self.hn_wild = leaf("hn-wild", "wild.hn.test", ["DNS:*.wild.hn.test"])
        self.hn_clientonly = leaf("hn-clientonly", "clientonly.hn.test",
                                  ["DNS:clientonly.hn.test"], eku="clientAuth")
        self.hn_noeku = leaf("hn-noeku", "noeku.hn.test", ["DNS:noeku.hn.test"], eku="")
        self.hn_ports = {c.name: ngx.add(c, chain=[self.inter])
                         for c in (self.hn_wrong, self.hn_cnonly, self.hn_wild,
                                   self.hn_clientonly, self.hn_noeku)}
        for n in ("wrong.hn.test", "other.hn.test", "cnonly.hn.test", "alias.hn.test",
                  "a.wild.hn.test", "clientonly.hn.test", "noeku.hn.test"):
            names[n] = "127.0.0.1"

        # -- 7. `check`: TLS 1.3 with one pinned cipher suite, exact text
        cdp = ["crlDistributionPoints = URI:http://crl.check.test/inter.crl"]
        aia = ["authorityInfoAccess = OCSP;URI:http://ocsp.check.test/,"
               "caIssuers;URI:http://aia.check.test/inter.crt"]
        self.c_good = leaf("c-good", "good.check.test", ["DNS:good.check.test"],
                           not_before=now - 10 * DAY + 1,
                           not_after=now + 200 * DAY + 43200 + 1, extra_ext=cdp + aia)
        self.c_nocdp = leaf("c-nocdp", "nocdp.check.test", ["DNS:nocdp.check.test"],
                            not_before=now - 10 * DAY + 2,
                            not_after=now + 90 * DAY + 43200 + 2)
        self.c_bad = leaf("c-bad", "bad.check.test", ["DNS:bad.check.test"],
                          not_before=now - 10 * DAY + 3,
                          not_after=now + 5 * DAY + 43200 + 3, extra_ext=cdp)
        tls13 = dict(protocols="TLSv1.3", ciphersuites="TLS_AES_128_GCM_SHA256")
        self.p_cgood = ngx.add(self.c_good, chain=[self.inter], **tls13)
        self.p_cnocdp = ngx.add(self.c_nocdp, chain=[self.inter], **tls13)
        self.p_cbad = ngx.add(self.c_bad, **tls13)      # intermediate not sent
        for n in ("good.check.test", "nocdp.check.test", "bad.check.test"):
            names[n] = "127.0.0.1"

        ngx.start()
        for s in self.sservers:
            s.start()
        self.dns = h.DnsmasqRunner(os.path.join(self.dir, "dnsmasq"), names,
                                   extra_args=dns_args).start()
        self.dns_addr = "127.0.0.1:%d" % self.dns.port
        # a resolver address nobody answers on (global dns_servers of the
        # SRV test, to prove the module's own dns_servers are used)
        self.dead_dns = "127.0.0.1:%d" % h.free_udp_tcp_port()

    def _client_cas(self, path, n):
        """n self-signed CA certificates with distinct subjects of varying
        length (one shared key: only the names matter), in one PEM file."""
        key = self.pki.make_key("client-cas", "ec")
        d = os.path.join(self.dir, "client-cas")
        os.makedirs(d)
        pems = []
        for i in range(n):
            out = os.path.join(d, "ca%03d.pem" % i)
            subj = "/C=DE/O=Partner Organisation %03d%s/OU=Trusted Roots/CN=Client CA %03d" % (
                i, " " + "x" * (i % 37) if i % 3 else "", i)
            h.run([h.OPENSSL, "req", "-x509", "-new", "-key", key, "-subj", subj,
                   "-days", "30", "-out", out,
                   "-addext", "basicConstraints=critical,CA:true"])
            with open(out) as f:
                pems.append(f.read())
        with open(path, "w") as f:
            f.write("".join(pems))
        return pems

    def stop(self):
        for s in self.sservers:
            try:
                s.stop()
            except Exception:
                pass
        for what in ("nginx", "dns"):
            obj = getattr(self, what, None)
            if obj is not None:
                try:
                    obj.stop()
                except Exception:
                    pass
                setattr(self, what, None)
        self.tmp.cleanup()


def setUpModule():
    global FIX
    h.exporter_binary()          # SkipTest with a clear message if unset
    FIX = EndpointsFixture().start()


def tearDownModule():
    if FIX:
        FIX.stop()


def t(port, host="127.0.0.1"):
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


class ExporterCase(unittest.TestCase):
    """Base: one exporter per class, scraped once in setUpClass (cls.m)."""

    GLOBAL = None

    @classmethod
    def new_dir(cls):
        tmp = h.TempDir("pki-endp-")
        cls.addClassCleanup(tmp.cleanup)
        return tmp.path

    @classmethod
    def start_exporter(cls, modules, targets, global_=None, directory=None, raw=None):
        d = directory or cls.new_dir()
        text = raw if raw is not None else h.exporter_config(
            modules=modules, targets=targets, global_=global_)
        exp = h.Exporter(d, text)
        cls.addClassCleanup(exp.stop)
        if "_exporters" not in cls.__dict__:
            cls._exporters = []
        cls._exporters.append(exp)
        exp.start()
        return exp

    @classmethod
    def tearDownClass(cls):
        """Stop the class's exporters: exit 0 and no sanitizer report (the
        suite also runs against the ASan/UBSan build)."""
        problems = []
        for exp in cls.__dict__.get("_exporters", []):
            proc = exp.proc
            if proc is None:
                continue
            rc = exp.stop()
            exp.proc = None             # stopped once, by PID
            _, err = proc.output()
            if rc != 0 or sanitizer_report(err):
                problems.append("exporter rc=%s\n%s" % (rc, err[-6000:]))
        if problems:
            raise AssertionError("\n\n".join(problems))

    @classmethod
    def scrape(cls, exp):
        m, r = exp.scrape(scrape_timeout=25)
        return m

    def assertValue(self, m, name, expected, **labels):
        v = m.value(name, **labels)
        self.assertEqual(v, expected, "%s%r = %r, expected %r" % (name, labels, v, expected))

    def addresses(self, m, module, target):
        return {l["address"] for l, _ in m.find("pki_tls_handshake_success",
                                                  module=module, target=target)}


def tls_module(ca_file=None, every_address=False, timeout="5s", **extra):
    mod = {"prober": "tls", "timeout": timeout}
    if every_address:
        mod["every_address"] = True
    mod.update(extra)
    tls = dict(mod.pop("tls", {}))
    if ca_file:
        tls["ca_file"] = ca_file
    if tls:
        mod["tls"] = tls
    return mod


# ---------------------------------------------------------------------------
# 1. SRV discovery + every address of a pool name
# ---------------------------------------------------------------------------

class TestSrvAndEveryAddress(ExporterCase):
    """`srv:` module with its own dns_servers (the global ones are dead):
    every SRV record probed, every address of pool.partner.test on its own
    with its own certificate and exact dates."""

    @classmethod
    def setUpClass(cls):
        cls.T_pool = "pool.partner.test:%d" % FIX.p_pool
        cls.exp = cls.start_exporter(
            global_={"scrape_timeout": "20s", "dns_servers": [FIX.dead_dns]},
            modules={
                "fed": tls_module(FIX.root_file, every_address=True,
                                  srv="_sipfederationtls._tcp",
                                  dns_servers=[FIX.dns_addr]),
                "pool": tls_module(FIX.root_file, every_address=True,
                                   dns_servers=[FIX.dns_addr]),
                # without every_address: addresses tried in turn, one reported
                "first": tls_module(FIX.root_file, dns_servers=[FIX.dns_addr]),
                # same target, global (dead) resolver: must fail to resolve
                "globaldns": tls_module(FIX.root_file, every_address=True,
                                        timeout="3s"),
            },
            targets=[("fed", ["partner.test"]),
                     ("pool", [cls.T_pool, "_sip._tls.partner.test"]),
                     ("first", [cls.T_pool]),
                     ("globaldns", [cls.T_pool])])
        cls.m = cls.scrape(cls.exp)

    def expected_fed_addresses(self):
        """address -> certificate, for every SRV record of partner.test."""
        exp = {t(FIX.p_sip1): FIX.sip1, t(FIX.p_sip2, SIP2_IP): FIX.sip2}
        for ip, c in zip(POOL_IPS, FIX.pool):
            exp[t(FIX.p_pool, ip)] = c
        return exp

    def test_every_srv_record_reported(self):
        recs = {(l["host"], int(l["port"]), int(l["priority"]), int(l["weight"]))
                for l, v in self.m.find("pki_tls_srv_record_info", module="fed",
                                        target="partner.test") if v == 1.0}
        self.assertEqual(recs, set(FIX.srv_fed))
        for host, port, _, _ in FIX.srv_fed:
            self.assertValue(self.m, "pki_tls_srv_host_resolved", 1.0, module="fed",
                             target="partner.test", host=host, port=str(port))

    def test_every_srv_host_and_address_probed(self):
        exp = self.expected_fed_addresses()
        self.assertEqual(self.addresses(self.m, "fed", "partner.test"), set(exp))
        for addr, cert in exp.items():
            self.assertValue(self.m, "pki_tls_handshake_success", 1.0, module="fed",
                             target="partner.test", address=addr)
            labels, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="fed",
                                   target="partner.test", address=addr, position="0")
            self.assertEqual(v, float(cert.not_after), addr)
            self.assertEqual(labels["serial"], cert.serial, addr)
            self.assertEqual(labels["subject_cn"], cert.subject_cn, addr)
            _, v = self.m.one("pki_cert_not_before_timestamp_seconds", module="fed",
                              target="partner.test", address=addr, position="0")
            self.assertEqual(v, float(cert.not_before), addr)
            # the SRV record's host is the name checked (and sent as SNI)
            self.assertValue(self.m, "pki_tls_hostname_match", 1.0, module="fed",
                             target="partner.test", address=addr)
        self.assertValue(self.m, "pki_probe_success", 1.0, module="fed", target="partner.test")

    def test_pool_every_address_own_dates(self):
        addrs = [t(FIX.p_pool, ip) for ip in POOL_IPS]
        self.assertEqual(self.addresses(self.m, "pool", self.T_pool), set(addrs))
        seen = set()
        for addr, cert in zip(addrs, FIX.pool):
            _, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="pool",
                              target=self.T_pool, address=addr, position="0")
            self.assertEqual(v, float(cert.not_after), addr)
            seen.add(v)
            labels, _ = self.m.one("pki_cert_info", module="pool", target=self.T_pool,
                                   address=addr, position="0")
            self.assertEqual(labels["sha256"], cert.sha256, addr)
            self.assertEqual(labels["key_type"], cert.key_type, addr)
            self.assertValue(self.m, "pki_tls_hostname_match", 1.0, module="pool",
                             target=self.T_pool, address=addr)
        self.assertEqual(len(seen), 3, "each pool server has its own notAfter")
        # the stale one: expires in ~3 days, and it is the .3 server
        stale = t(FIX.p_pool, POOL_IPS[1])
        _, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="pool",
                          target=self.T_pool, address=stale, position="0")
        self.assertLess(v - time.time(), 4 * DAY)
        self.assertGreater(v - time.time(), 3 * DAY)
        self.assertValue(self.m, "pki_probe_success", 1.0, module="pool", target=self.T_pool)
        # no SRV info for a plain host:port target
        self.assertEqual(self.m.find("pki_tls_srv_record_info", target=self.T_pool), [])

    def test_srv_name_target_with_unresolvable_host(self):
        T = "_sip._tls.partner.test"
        recs = {(l["host"], int(l["port"]), int(l["priority"]), int(l["weight"]))
                for l, _ in self.m.find("pki_tls_srv_record_info", module="pool", target=T)}
        self.assertEqual(recs, set(FIX.srv_sip))
        self.assertValue(self.m, "pki_tls_srv_host_resolved", 1.0, module="pool", target=T,
                         host="sip1.partner.test", port=str(FIX.p_sip1))
        self.assertValue(self.m, "pki_tls_srv_host_resolved", 0.0, module="pool", target=T,
                         host="gone.partner.test", port=str(FIX.p_sip1))
        # the host that resolves is still probed and reported
        self.assertEqual(self.addresses(self.m, "pool", T), {t(FIX.p_sip1)})
        _, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="pool", target=T,
                          address=t(FIX.p_sip1), position="0")
        self.assertEqual(v, float(FIX.sip1.not_after))
        self.assertValue(self.m, "pki_probe_success", 0.0, module="pool", target=T)

    def test_without_every_address_one_address(self):
        addrs = self.addresses(self.m, "first", self.T_pool)
        self.assertEqual(len(addrs), 1, addrs)
        (addr,) = addrs
        cert = dict(zip((t(FIX.p_pool, ip) for ip in POOL_IPS), FIX.pool))[addr]
        _, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="first",
                          target=self.T_pool, position="0")
        self.assertEqual(v, float(cert.not_after))

    def test_module_dns_servers_override_global(self):
        # the global resolver answers nothing: the module without its own
        # dns_servers cannot resolve the same name the others did
        self.assertValue(self.m, "pki_probe_success", 0.0, module="globaldns",
                         target=self.T_pool)
        fails = self.m.find("pki_probe_failure_info", module="globaldns", target=self.T_pool)
        self.assertEqual(len(fails), 1, fails)
        self.assertEqual(fails[0][0]["stage"], "resolve", fails)
        self.assertEqual(self.m.find("pki_tls_handshake_success", module="globaldns"), [])


# ---------------------------------------------------------------------------
# 8. IPv6
# ---------------------------------------------------------------------------

class TestIPv6(ExporterCase):

    @classmethod
    def setUpClass(cls):
        if not FIX.have_v6:
            raise unittest.SkipTest("no IPv6 loopback (::1) here")
        cls.T6 = t(FIX.p_v6, "::1")
        cls.T_name = "v6.partner.test:%d" % FIX.p_v6
        cls.exp = cls.start_exporter(
            modules={"web": tls_module(FIX.root_file),
                     "every": tls_module(FIX.root_file, every_address=True,
                                         dns_servers=[FIX.dns_addr]),
                     "only6": tls_module(FIX.root_file, ip_protocol="ip6",
                                         dns_servers=[FIX.dns_addr])},
            targets=[("web", [cls.T6]), ("every", [cls.T_name]),
                     ("only6", [cls.T_name])])
        cls.m = cls.scrape(cls.exp)

    def test_v6_literal_target(self):
        self.assertValue(self.m, "pki_probe_success", 1.0, module="web", target=self.T6)
        self.assertEqual(self.addresses(self.m, "web", self.T6), {self.T6})
        labels, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="web",
                               target=self.T6, address=self.T6, position="0")
        self.assertEqual(v, float(FIX.v6_on6.not_after))
        self.assertEqual(labels["serial"], FIX.v6_on6.serial)
        labels, _ = self.m.one("pki_cert_info", module="web", target=self.T6, position="0")
        self.assertEqual(labels["sans"], "DNS:v6.partner.test,IP:::1")
        # an IP literal is matched against the IP SANs
        self.assertValue(self.m, "pki_tls_hostname_match", 1.0, module="web", target=self.T6)
        self.assertValue(self.m, "pki_tls_chain_verified", 1.0, module="web", target=self.T6)

    def test_a_and_aaaa_each_probed(self):
        want = {t(FIX.p_v6): FIX.v6_on4, t(FIX.p_v6, "::1"): FIX.v6_on6}
        self.assertEqual(self.addresses(self.m, "every", self.T_name), set(want))
        for addr, cert in want.items():
            _, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="every",
                              target=self.T_name, address=addr, position="0")
            self.assertEqual(v, float(cert.not_after), addr)
            self.assertValue(self.m, "pki_tls_hostname_match", 1.0, module="every",
                             target=self.T_name, address=addr)

    def test_ip_protocol_ip6(self):
        self.assertEqual(self.addresses(self.m, "only6", self.T_name), {t(FIX.p_v6, "::1")})
        _, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="only6",
                          target=self.T_name, position="0")
        self.assertEqual(v, float(FIX.v6_on6.not_after))


# ---------------------------------------------------------------------------
# 2. chain completeness
# ---------------------------------------------------------------------------

class TestChainComplete(ExporterCase):

    @classmethod
    def setUpClass(cls):
        cls.T_full = t(FIX.p_full)
        cls.T_nointer = t(FIX.p_nointer)
        cls.T_other, cls.T_other_leaf = t(FIX.p_other), t(FIX.p_other_leafonly)
        cls.T_tier3, cls.T_tier3_full = t(FIX.p_tier3), t(FIX.p_tier3_full)
        cls.exp = cls.start_exporter(
            modules={"bundle": tls_module(FIX.bundle),        # root + intermediate
                     "rootonly": tls_module(FIX.root_file),
                     "tier3": tls_module(FIX.tier3_bundle)},  # root + policy CA
            targets=[("bundle", [cls.T_full, cls.T_nointer, cls.T_other]),
                     ("rootonly", [cls.T_full, cls.T_nointer, cls.T_other,
                                   cls.T_other_leaf]),
                     ("tier3", [cls.T_tier3, cls.T_tier3_full])])
        cls.m = cls.scrape(cls.exp)

    def test_missing_intermediate_verifies_with_bundle_but_is_incomplete(self):
        self.assertValue(self.m, "pki_tls_chain_verified", 1.0, module="bundle",
                         target=self.T_nointer)
        self.assertValue(self.m, "pki_tls_chain_complete", 0.0, module="bundle",
                         target=self.T_nointer)
        # only the leaf was sent
        self.assertEqual([l["position"] for l, _ in self.m.find(
            "pki_cert_not_after_timestamp_seconds", module="bundle", target=self.T_nointer)],
            ["0"])
        # the verified chain includes what the server did not send
        got = {l["position"]: (l["subject_cn"], l["serial"], v) for l, v in self.m.find(
            "pki_tls_verified_chain_not_after_timestamp_seconds", module="bundle",
            target=self.T_nointer)}
        self.assertEqual(got, {
            "0": ("nointer.chain.test", FIX.nointer.serial, float(FIX.nointer.not_after)),
            "1": (INTER_CN, FIX.inter.serial, float(FIX.inter.not_after)),
            "2": (ROOT_CN, FIX.root.serial, float(FIX.root.not_after))})

    def test_full_chain_is_complete(self):
        for mod in ("bundle", "rootonly"):
            self.assertValue(self.m, "pki_tls_chain_verified", 1.0, module=mod,
                             target=self.T_full)
            self.assertValue(self.m, "pki_tls_chain_complete", 1.0, module=mod,
                             target=self.T_full)
        positions = sorted(l["position"] for l, _ in self.m.find(
            "pki_cert_not_after_timestamp_seconds", module="rootonly", target=self.T_full))
        self.assertEqual(positions, ["0", "1"])

    def test_missing_intermediate_with_root_only(self):
        self.assertValue(self.m, "pki_tls_chain_verified", 0.0, module="rootonly",
                         target=self.T_nointer)
        self.assertValue(self.m, "pki_tls_chain_complete", 0.0, module="rootonly",
                         target=self.T_nointer)
        labels, _ = self.m.one("pki_tls_chain_verified_info", module="rootonly",
                               target=self.T_nointer)
        self.assertIn(labels["code"], ("20", "21"))  # unable to get local issuer / verify first
        self.assertEqual(self.m.find("pki_tls_verified_chain_not_after_timestamp_seconds",
                                     module="rootonly", target=self.T_nointer), [])

    def test_untrusted_root_with_full_chain_is_complete(self):
        # leaf + intermediate sent, the root is nobody's here: the chain
        # does not verify (code 20) but nothing is missing from what the
        # server sends, with a roots-only store and with a bundle alike
        for mod in ("rootonly", "bundle"):
            self.assertValue(self.m, "pki_tls_chain_verified", 0.0, module=mod,
                             target=self.T_other)
            labels, _ = self.m.one("pki_tls_chain_verified_info", module=mod,
                                   target=self.T_other)
            self.assertEqual(labels["code"], "20")
            self.assertValue(self.m, "pki_tls_chain_complete", 1.0, module=mod,
                             target=self.T_other)
        # its leaf alone: the issuing CA is not sent
        self.assertValue(self.m, "pki_tls_chain_complete", 0.0, module="rootonly",
                         target=self.T_other_leaf)

    def test_middle_intermediate_missing(self):
        # the policy CA is in the trust store but not sent: verifies,
        # incomplete; sent in full: complete
        self.assertValue(self.m, "pki_tls_chain_verified", 1.0, module="tier3",
                         target=self.T_tier3)
        self.assertValue(self.m, "pki_tls_chain_complete", 0.0, module="tier3",
                         target=self.T_tier3)
        self.assertValue(self.m, "pki_tls_chain_verified", 1.0, module="tier3",
                         target=self.T_tier3_full)
        self.assertValue(self.m, "pki_tls_chain_complete", 1.0, module="tier3",
                         target=self.T_tier3_full)


# ---------------------------------------------------------------------------
# 3. weak signatures and keys
# ---------------------------------------------------------------------------

class TestWeakCertificates(ExporterCase):

    @classmethod
    def setUpClass(cls):
        cls.T = {n: t(p) for n, p in FIX.weak_ports.items()}
        cls.exp = cls.start_exporter(
            modules={"web": tls_module(FIX.root_file)},
            targets=[("web", sorted(cls.T.values()))])
        cls.m = cls.scrape(cls.exp)

    def flag(self, metric, name, position="0"):
        return self.m.value(metric, module="web", target=self.T[name], position=position)

    def test_generated_as_intended(self):
        self.assertEqual(FIX.w_sha1.sig_alg, "sha1WithRSAEncryption")
        self.assertEqual(FIX.w_md5.sig_alg, "md5WithRSAEncryption")
        self.assertEqual(FIX.w_rsa1024.key_bits, 1024)

    def test_all_handshakes_succeed(self):
        for name, target in self.T.items():
            self.assertValue(self.m, "pki_tls_handshake_success", 1.0, module="web",
                             target=target)

    def test_sha1_and_md5_leaf_flagged(self):
        self.assertEqual(self.flag("pki_cert_weak_signature", "w-sha1"), 1.0)
        self.assertEqual(self.flag("pki_cert_weak_signature", "w-md5"), 1.0)
        self.assertEqual(self.flag("pki_cert_weak_signature", "w-sha256"), 0.0)
        self.assertEqual(self.flag("pki_cert_weak_signature", "w-rsa1024"), 0.0)
        for name, alg in (("w-sha1", "sha1WithRSAEncryption"),
                          ("w-md5", "md5WithRSAEncryption"),
                          ("w-sha256", "sha256WithRSAEncryption")):
            labels, _ = self.m.one("pki_cert_info", module="web", target=self.T[name],
                                   position="0")
            self.assertEqual(labels["sig_alg"], alg)
        labels, _ = self.m.one("pki_cert_weak_signature", module="web",
                               target=self.T["w-md5"], position="0")
        self.assertEqual((labels["subject_cn"], labels["serial"]),
                         ("md5.weak.test", FIX.w_md5.serial))

    def test_sha1_intermediate_flagged_sha1_root_not(self):
        self.assertEqual(self.flag("pki_cert_weak_signature", "w-under-sha1", "0"), 0.0)
        self.assertEqual(self.flag("pki_cert_weak_signature", "w-under-sha1", "1"), 1.0)
        labels, _ = self.m.one("pki_cert_weak_signature", module="web",
                               target=self.T["w-under-sha1"], position="1")
        self.assertEqual(labels["subject_cn"], "Legacy SHA1 Intermediate CA")
        # self-signed SHA-1 root sent by the server: its signature is never checked
        self.assertEqual(self.flag("pki_cert_weak_signature", "w-sha1root", "1"), 0.0)
        labels, _ = self.m.one("pki_cert_info", module="web", target=self.T["w-sha1root"],
                               position="1")
        self.assertEqual(labels["sig_alg"], "sha1WithRSAEncryption")

    def test_rsa1024_weak_key(self):
        self.assertEqual(self.flag("pki_cert_weak_key", "w-rsa1024"), 1.0)
        for name in ("w-sha1", "w-md5", "w-sha256"):
            self.assertEqual(self.flag("pki_cert_weak_key", name), 0.0, name)
        labels, _ = self.m.one("pki_cert_info", module="web", target=self.T["w-rsa1024"],
                               position="0")
        self.assertEqual((labels["key_type"], labels["key_bits"]), ("RSA", "1024"))


# ---------------------------------------------------------------------------
# 4. mutual TLS
# ---------------------------------------------------------------------------

class TestMutualTLS(ExporterCase):

    @classmethod
    def setUpClass(cls):
        cls.T_opt12, cls.T_opt13 = t(FIX.p_opt12), t(FIX.p_opt13)
        cls.T_on = t(FIX.p_on)
        cls.T_ss12, cls.T_ss13 = t(FIX.ss12.port), t(FIX.ss13.port)
        cls.T_plain = t(FIX.p_full)
        client = {"client_cert": FIX.client.cert, "client_key": FIX.client.key}
        cls.exp = cls.start_exporter(
            modules={"nocert": tls_module(FIX.root_file),
                     "withcert": tls_module(FIX.root_file, tls=client)},
            targets=[("nocert", [cls.T_opt12, cls.T_opt13, cls.T_on, cls.T_ss12,
                                 cls.T_ss13, cls.T_plain]),
                     ("withcert", [cls.T_on, cls.T_ss12, cls.T_ss13])])
        cls.m = cls.scrape(cls.exp)

    def expected_ca_names(self):
        ders = h.pem_certs_der(FIX.cas_file)
        subjects = [h.der_cert_subject(d) for d in ders]
        return len(set(subjects)), sum(len(s) for s in subjects)

    def test_150_ca_names_count_and_bytes(self):
        n, nbytes = self.expected_ca_names()
        self.assertEqual(n, N_CLIENT_CAS)
        # sanity of the independent computation: > 8 KiB, names differ in size
        self.assertGreater(nbytes, 8192)
        for target in (self.T_opt12, self.T_opt13):
            self.assertValue(self.m, "pki_tls_handshake_success", 1.0, module="nocert",
                             target=target)
            self.assertValue(self.m, "pki_tls_client_cert_requested", 1.0, module="nocert",
                             target=target)
            self.assertValue(self.m, "pki_tls_client_ca_names", float(N_CLIENT_CAS),
                             module="nocert", target=target)
            self.assertValue(self.m, "pki_tls_client_ca_names_bytes", float(nbytes),
                             module="nocert", target=target)
        labels, _ = self.m.one("pki_tls_version_info", module="nocert", target=self.T_opt12)
        self.assertEqual(labels["version"], "TLSv1.2")
        labels, _ = self.m.one("pki_tls_version_info", module="nocert", target=self.T_opt13)
        self.assertEqual(labels["version"], "TLSv1.3")

    def test_no_request_from_plain_server(self):
        self.assertValue(self.m, "pki_tls_client_cert_requested", 0.0, module="nocert",
                         target=self.T_plain)
        self.assertValue(self.m, "pki_tls_client_ca_names", 0.0, module="nocert",
                         target=self.T_plain)
        self.assertValue(self.m, "pki_tls_client_ca_names_bytes", 0.0, module="nocert",
                         target=self.T_plain)

    def test_nginx_verify_on_lists_its_client_ca(self):
        # nginx `ssl_verify_client on` never fails the handshake (it answers
        # 400 at the HTTP layer): the handshake completes with and without
        # a client certificate; the request lists the one client CA.
        root_name = h.der_cert_subject(h.pem_certs_der(FIX.root_file)[0])
        for mod in ("nocert", "withcert"):
            self.assertValue(self.m, "pki_tls_handshake_success", 1.0, module=mod,
                             target=self.T_on)
            self.assertValue(self.m, "pki_tls_client_cert_requested", 1.0, module=mod,
                             target=self.T_on)
            self.assertValue(self.m, "pki_tls_client_ca_names", 1.0, module=mod,
                             target=self.T_on)
            self.assertValue(self.m, "pki_tls_client_ca_names_bytes", float(len(root_name)),
                             module=mod, target=self.T_on)

    def test_required_client_cert_tls12(self):
        self.assertValue(self.m, "pki_tls_handshake_success", 1.0, module="withcert",
                         target=self.T_ss12)
        self.assertValue(self.m, "pki_probe_success", 1.0, module="withcert",
                         target=self.T_ss12)
        self.assertValue(self.m, "pki_tls_handshake_success", 0.0, module="nocert",
                         target=self.T_ss12)
        self.assertValue(self.m, "pki_probe_success", 0.0, module="nocert",
                         target=self.T_ss12)
        labels, _ = self.m.one("pki_tls_failure_info", module="nocert", target=self.T_ss12)
        self.assertEqual((labels["stage"], labels["reason"]), ("handshake", "tls_alert"))
        self.assert_ca_names_of_refusal(self.T_ss12)

    def assert_ca_names_of_refusal(self, target):
        # refused for want of a client certificate, the server has still
        # sent its request and CA list (s_server -CAfile: the one root):
        # reported, so an oversized list is seen exactly when it bites
        root_name = h.der_cert_subject(h.pem_certs_der(FIX.root_file)[0])
        self.assertValue(self.m, "pki_tls_client_cert_requested", 1.0, module="nocert",
                         target=target)
        self.assertValue(self.m, "pki_tls_client_ca_names", 1.0, module="nocert",
                         target=target)
        self.assertValue(self.m, "pki_tls_client_ca_names_bytes", float(len(root_name)),
                         module="nocert", target=target)
        # and no version for a handshake that did not complete
        self.assertEqual(self.m.find("pki_tls_version_info", module="nocert", target=target),
                         [])

    def test_required_client_cert_tls13_with_cert(self):
        self.assertValue(self.m, "pki_tls_handshake_success", 1.0, module="withcert",
                         target=self.T_ss13)
        labels, _ = self.m.one("pki_tls_version_info", module="withcert", target=self.T_ss13)
        self.assertEqual(labels["version"], "TLSv1.3")

    # TLS 1.3 moves the client certificate after the client's Finished: the
    # client-side handshake "succeeds" before the server rejects a missing
    # certificate (alert 116 "certificate required"). The probe reads once
    # after the handshake when a certificate was requested, so the
    # rejection is seen.
    def test_required_client_cert_tls13_without_cert(self):
        self.assertValue(self.m, "pki_tls_handshake_success", 0.0, module="nocert",
                         target=self.T_ss13)
        self.assertValue(self.m, "pki_probe_success", 0.0, module="nocert",
                         target=self.T_ss13)
        labels, _ = self.m.one("pki_tls_failure_info", module="nocert", target=self.T_ss13)
        self.assertEqual((labels["stage"], labels["reason"]), ("handshake", "tls_alert"))
        self.assert_ca_names_of_refusal(self.T_ss13)


# ---------------------------------------------------------------------------
# 5. hostname match and Server Authentication EKU
# ---------------------------------------------------------------------------

class TestHostnameAndEku(ExporterCase):

    @classmethod
    def setUpClass(cls):
        p = FIX.hn_ports
        cls.T = {
            "san_mismatch": "wrong.hn.test:%d" % p["hn-wrong"],    # CN matches, SAN does not
            "san_other": "other.hn.test:%d" % p["hn-wrong"],       # the SAN
            "cn_only": "cnonly.hn.test:%d" % p["hn-cnonly"],
            "cn_only_alias": "alias.hn.test:%d" % p["hn-cnonly"],
            "wildcard": "a.wild.hn.test:%d" % p["hn-wild"],
            "client_only": "clientonly.hn.test:%d" % p["hn-clientonly"],
            "no_eku": "noeku.hn.test:%d" % p["hn-noeku"],
            "ip_san": t(FIX.p_full),                                # IP:127.0.0.1 in SAN
            "ip_nosan": t(p["hn-wrong"]),
        }
        cls.T_override = t(p["hn-wrong"])
        cls.exp = cls.start_exporter(
            modules={"web": tls_module(FIX.root_file, dns_servers=[FIX.dns_addr]),
                     "named": tls_module(FIX.root_file,
                                         tls={"server_name": "other.hn.test"})},
            targets=[("web", sorted(cls.T.values())), ("named", [cls.T_override])])
        cls.m = cls.scrape(cls.exp)

    def match(self, key, module="web"):
        target = self.T[key] if module == "web" else self.T_override
        self.assertValue(self.m, "pki_tls_handshake_success", 1.0, module=module,
                         target=target)
        return self.m.value("pki_tls_hostname_match", module=module, target=target)

    def test_san_not_matching(self):
        self.assertEqual(self.match("san_mismatch"), 0.0)   # the CN is not used with DNS SANs
        self.assertEqual(self.match("san_other"), 1.0)

    def test_cn_only_certificate(self):
        labels, _ = self.m.one("pki_cert_info", module="web", target=self.T["cn_only"],
                               position="0")
        self.assertEqual(labels["sans"], "")
        self.assertEqual(self.match("cn_only"), 1.0)
        self.assertEqual(self.match("cn_only_alias"), 0.0)

    def test_wildcard(self):
        self.assertEqual(self.match("wildcard"), 1.0)

    def test_ip_targets(self):
        self.assertEqual(self.match("ip_san"), 1.0)
        self.assertEqual(self.match("ip_nosan"), 0.0)

    def test_server_name_override(self):
        self.assertEqual(self.match(None, module="named"), 1.0)

    def test_server_auth_eku(self):
        want = {"client_only": 0.0, "no_eku": 1.0, "san_other": 1.0, "cn_only": 1.0}
        for key, v in want.items():
            self.assertValue(self.m, "pki_tls_server_auth_eku", v, module="web",
                             target=self.T[key])
        self.assertEqual(self.match("client_only"), 1.0)


class TestCertUrls(ExporterCase):
    """CDP and AIA URLs of each certificate sent (the revocation probes
    follow them)."""

    @classmethod
    def setUpClass(cls):
        cls.T_good, cls.T_nocdp = t(FIX.p_cgood), t(FIX.p_cnocdp)
        cls.exp = cls.start_exporter(modules={"web": tls_module(FIX.root_file)},
                                     targets=[("web", [cls.T_good, cls.T_nocdp])])
        cls.m = cls.scrape(cls.exp)

    def test_cdp_and_aia(self):
        got = sorted((l["position"], l["kind"], l["url"], l["serial"]) for l, v in
                     self.m.find("pki_cert_url_info", module="web", target=self.T_good)
                     if v == 1.0)
        s = FIX.c_good.serial
        self.assertEqual(got, [("0", "ca_issuers", "http://aia.check.test/inter.crt", s),
                               ("0", "cdp", "http://crl.check.test/inter.crl", s),
                               ("0", "ocsp", "http://ocsp.check.test/", s)])
        self.assertEqual(self.m.find("pki_cert_url_info", module="web", target=self.T_nocdp),
                         [])


# ---------------------------------------------------------------------------
# 6. partner CSV lists
# ---------------------------------------------------------------------------

def partners_csv(p_sip1):
    """The bytes of a spreadsheet-made partner list, and what it means.

    Returns (data, {target: [(address, cert)]}, bad_line)."""
    lines = [
        "\ufeffDomain,Type,Port",                       # 1: BOM + header
        "partner.test,FED,,",                           # 2: empty port + trailing comma
        '"partner2.test","SIP",""',                     # 3: quoted, empty quoted port
        "partner2.test,SIPINT,,",                       # 4
        "partner3.test,XMPP,5269",                      # 5: bad type
        '"sip1.partner.test","DIR","%d"' % p_sip1,      # 6: quoted DIR with port
        "dir5061.partner.test,DIR,,",                   # 7: DIR, empty port -> 5061
        "",                                             # 8: blank line
    ]
    data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    fed = {t(FIX.p_sip1): FIX.sip1, t(FIX.p_sip2, SIP2_IP): FIX.sip2}
    fed.update({t(FIX.p_pool, ip): c for ip, c in zip(POOL_IPS, FIX.pool)})
    want = {
        "_sipfederationtls._tcp.partner.test": fed,
        "_sip._tls.partner2.test": {t(FIX.p_sip2, SIP2_IP): FIX.sip2},
        "_sipinternaltls._tcp.partner2.test": {t(FIX.p_sip1): FIX.sip1},
        "sip1.partner.test:%d" % p_sip1: {t(FIX.p_sip1): FIX.sip1},
        "dir5061.partner.test:5061": {t(5061, FIX.ip_5061): FIX.dir5061},
    }
    return data, want, 5


class TestPartnerCsv(ExporterCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = cls.new_dir()
        cls.data, cls.want, cls.bad_line = partners_csv(FIX.p_sip1)
        cls.csv_path = os.path.join(cls.dir, "partners.csv")
        with open(cls.csv_path, "wb") as f:
            f.write(cls.data)
        cfg = h.to_yaml({
            "modules": {"partners": tls_module(FIX.root_file, every_address=True,
                                               dns_servers=[FIX.dns_addr])},
            "targets": [{"module": "partners", "targets_file": "partners.csv"}]}) + "\n"
        cls.exp = cls.start_exporter(None, None, directory=cls.dir, raw=cfg)
        cls.m = cls.scrape(cls.exp)

    def test_fixture_bytes(self):
        self.assertTrue(self.data.startswith(b"\xef\xbb\xbfDomain,Type,Port\r\n"))
        self.assertNotIn(b"\n", self.data.replace(b"\r\n", b""))

    def test_every_good_row_probed(self):
        got = {l["target"] for l, _ in self.m.find("pki_probe_success", module="partners")}
        self.assertEqual(got, set(self.want))
        self.assertValue(self.m, "pki_exporter_targets", float(len(self.want)),
                         module="partners")
        for target, addrs in self.want.items():
            self.assertValue(self.m, "pki_probe_success", 1.0, module="partners",
                             target=target)
            self.assertEqual(self.addresses(self.m, "partners", target), set(addrs), target)
            for addr, cert in addrs.items():
                _, v = self.m.one("pki_cert_not_after_timestamp_seconds", module="partners",
                                  target=target, address=addr, position="0")
                self.assertEqual(v, float(cert.not_after), (target, addr))

    def test_row_counts(self):
        rows = {l["status"]: (l["file"], v) for l, v in self.m.find(
            "pki_exporter_targets_file_rows", module="partners")}
        self.assertEqual(set(rows), {"ok", "skipped"})
        self.assertEqual(rows["ok"][1], float(len(self.want)))
        self.assertEqual(rows["skipped"][1], 1.0)
        self.assertEqual(os.path.realpath(rows["ok"][0]), os.path.realpath(self.csv_path))

    def test_bad_row_named_in_log(self):
        _, err = self.exp.proc.output()
        needle = "partners.csv:%d:" % self.bad_line
        self.assertIn(needle, err, "the skipped row's file:line is not in the log:\n" + err)
        # named once, and no other line is
        named = set(re.findall(r"partners\.csv:(\d+):", err))
        self.assertEqual(named, {str(self.bad_line)}, err)


class TestPartnerCsvReload(ExporterCase):
    """The file is read again on reload."""

    def test_reload_rereads_file(self):
        d = self.new_dir()
        data, want, _ = partners_csv(FIX.p_sip1)
        path = os.path.join(d, "partners.csv")
        with open(path, "wb") as f:
            f.write(data)
        cfg = h.to_yaml({
            "modules": {"partners": tls_module(FIX.root_file, every_address=True,
                                               dns_servers=[FIX.dns_addr])},
            "targets": [{"module": "partners", "targets_file": "partners.csv"}]}) + "\n"
        exp = self.start_exporter(None, None, directory=d, raw=cfg)
        m = self.scrape(exp)
        self.assertValue(m, "pki_exporter_targets", float(len(want)), module="partners")
        # fix the bad row (now a DIR row for the pool name), drop the FED row
        text = data.decode("utf-8")
        text = text.replace("partner3.test,XMPP,5269",
                            "pool.partner.test,DIR,%d" % FIX.p_pool)
        text = text.replace("partner.test,FED,,\r\n", "")
        with open(path, "wb") as f:
            f.write(text.encode("utf-8"))
        r = exp.reload_http()
        self.assertEqual(r.status, 200, r.text)
        m = self.scrape(exp)
        want2 = set(want) - {"_sipfederationtls._tcp.partner.test"}
        want2.add("pool.partner.test:%d" % FIX.p_pool)
        got = {l["target"] for l, _ in m.find("pki_probe_success", module="partners")}
        self.assertEqual(got, want2)
        rows = {l["status"]: v for l, v in m.find("pki_exporter_targets_file_rows",
                                                  module="partners")}
        self.assertEqual(rows, {"ok": float(len(want2)), "skipped": 0.0})
        self.assertEqual(self.addresses(m, "partners", "pool.partner.test:%d" % FIX.p_pool),
                         {t(FIX.p_pool, ip) for ip in POOL_IPS})


# ---------------------------------------------------------------------------
# 7. `pki_exporter check`
# ---------------------------------------------------------------------------

class TestCheckCommand(ExporterCase):
    """The report for people, asserted line by line, in its three formats."""

    @classmethod
    def setUpClass(cls):
        cls.T_good = "good.check.test:%d" % FIX.p_cgood
        cls.T_nocdp = "nocdp.check.test:%d" % FIX.p_cnocdp
        cls.T_bad = "bad.check.test:%d" % FIX.p_cbad
        cls.base = ["check", "--ca-file", FIX.root_file, "--dns-server", FIX.dns_addr,
                    "--timeout", "5s"]

    def run_check(self, *args):
        """Run `pki_exporter check`; stdout/stderr decoded as is (CRLF kept)."""
        t0 = time.time()
        cp = subprocess.run([h.exporter_binary()] + self.base + list(args),
                            capture_output=True, timeout=60)
        t1 = time.time()
        cp.stdout = cp.stdout.decode("utf-8")
        cp.stderr = cp.stderr.decode("utf-8", "replace")
        self.assertFalse(sanitizer_report(cp.stderr), cp.stderr)
        return cp, t0, t1

    def days(self, cert, t0, t1):
        d0, d1 = days_left(cert.not_after, t0), days_left(cert.not_after, t1)
        self.assertEqual(d0, d1, "day boundary crossed during the run")
        return d0

    def cert_lines(self, pos, cert, issuer_cn, t0, t1, sig_alg, key, cdp=None):
        out = ["   [%d] %s  issuer %s  serial %s" % (pos, cert.subject_cn, issuer_cn,
                                                    cert.serial),
               "       not after %s (%d days)  %s  %s" % (
                   fmt_utc(cert.not_after), self.days(cert, t0, t1), sig_alg, key)]
        if pos == 0 and cert.sans:
            out.append("       SANs " + cert.sans)
        if cdp:
            out.append("       CDP " + cdp)
        return out

    def endpoint_lines(self, target, port, name, t0, t1):
        cdp = "http://crl.check.test/inter.crl"
        inter = self.cert_lines(1, FIX.inter, ROOT_CN, t0, t1, "sha256WithRSAEncryption",
                                "EC 256")
        head = ["== " + target, "-- 127.0.0.1:%d (%s)" % (port, name),
                "   TLSv1.3 TLS_AES_128_GCM_SHA256"]
        if name == "good.check.test":
            c = FIX.c_good
            return head + self.cert_lines(0, c, INTER_CN, t0, t1, "ecdsa-with-SHA256",
                                          "EC 256", cdp) + inter + [
                "   OK   Common Name match found",
                "   OK   FQDN is in SAN list",
                "   OK   expires in %d days" % self.days(c, t0, t1),
                "   OK   chain verified",
                "=> OK", ""]
        if name == "nocdp.check.test":
            c = FIX.c_nocdp
            return head + self.cert_lines(0, c, INTER_CN, t0, t1, "ecdsa-with-SHA256",
                                          "EC 256") + inter + [
                "   OK   Common Name match found",
                "   OK   FQDN is in SAN list",
                "   OK   expires in %d days" % self.days(c, t0, t1),
                "   WARN no CRL distribution point",
                "   OK   chain verified",
                "=> WARN", ""]
        c = FIX.c_bad
        return head + self.cert_lines(0, c, INTER_CN, t0, t1, "ecdsa-with-SHA256",
                                      "EC 256", cdp) + [
            "   OK   Common Name match found",
            "   OK   FQDN is in SAN list",
            "   FAIL expires in %d days" % self.days(c, t0, t1),
            "   FAIL server did not send its intermediate certificate",
            "=> PROBLEM", ""]

    def test_untrusted_root_is_named_not_a_missing_intermediate(self):
        # leaf + intermediate of a root the --ca-file does not hold
        cp, _, _ = self.run_check("127.0.0.1:%d" % FIX.p_other)
        self.assertEqual(cp.returncode, 1, cp.stdout)
        lines = cp.stdout.splitlines()
        self.assertIn("   FAIL untrusted root", lines, cp.stdout)
        self.assertNotIn("   FAIL server did not send its intermediate certificate", lines,
                         cp.stdout)
        # the leaf alone: that one is missing its intermediate
        cp, _, _ = self.run_check("127.0.0.1:%d" % FIX.p_other_leafonly)
        self.assertIn("   FAIL server did not send its intermediate certificate",
                      cp.stdout.splitlines(), cp.stdout)

    def test_fixture_days(self):
        now = time.time()
        self.assertEqual(days_left(FIX.c_good.not_after, now), 200)
        self.assertEqual(days_left(FIX.c_nocdp.not_after, now), 90)
        self.assertEqual(days_left(FIX.c_bad.not_after, now), 5)

    def test_clean_run_text_exit_0(self):
        cp, t0, t1 = self.run_check(self.T_good, self.T_nocdp)
        want = (self.endpoint_lines(self.T_good, FIX.p_cgood, "good.check.test", t0, t1)
                + self.endpoint_lines(self.T_nocdp, FIX.p_cnocdp, "nocdp.check.test", t0, t1)
                + ["2 endpoints checked, 0 with problems"])
        self.assertEqual(cp.stdout.split("\n"), want + [""],
                         "stdout:\n%s\nstderr:\n%s" % (cp.stdout, cp.stderr))
        self.assertEqual(cp.returncode, 0, cp.stderr)   # a WARN alone passes

    def test_problem_run_text_exit_1(self):
        cp, t0, t1 = self.run_check(self.T_good, self.T_bad)
        want = (self.endpoint_lines(self.T_good, FIX.p_cgood, "good.check.test", t0, t1)
                + self.endpoint_lines(self.T_bad, FIX.p_cbad, "bad.check.test", t0, t1)
                + ["2 endpoints checked, 1 with problems"])
        self.assertEqual(cp.stdout.split("\n"), want + [""],
                         "stdout:\n%s\nstderr:\n%s" % (cp.stdout, cp.stderr))
        self.assertEqual(cp.returncode, 1, cp.stderr)

    def test_problem_run_csv(self):
        cp, t0, t1 = self.run_check("--format", "csv", self.T_good, self.T_bad)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertTrue(cp.stdout.endswith("\r\n"))
        self.assertNotIn("\n", cp.stdout.replace("\r\n", ""), "every line ends in CRLF")
        rows = list(csv.reader(io.StringIO(cp.stdout, newline="")))
        g, b = FIX.c_good, FIX.c_bad
        self.assertEqual(rows, [
            ["Domain", "Type", "Port", "Target", "Address", "Subject", "Issuer", "Serial",
             "NotAfter", "DaysLeft", "Result", "Comments"],
            ["", "", "", self.T_good, "127.0.0.1:%d" % FIX.p_cgood, "good.check.test",
             INTER_CN, g.serial, fmt_utc(g.not_after), str(self.days(g, t0, t1)), "OK",
             "Common Name match found; FQDN is in SAN list; expires in %d days; "
             "chain verified" % self.days(g, t0, t1)],
            ["", "", "", self.T_bad, "127.0.0.1:%d" % FIX.p_cbad, "bad.check.test",
             INTER_CN, b.serial, fmt_utc(b.not_after), str(self.days(b, t0, t1)), "PROBLEM",
             "Common Name match found; FQDN is in SAN list; expires in %d days; "
             "server did not send its intermediate certificate" % self.days(b, t0, t1)],
        ])

    def test_option_forms_and_usage_errors(self):
        # --opt=value as the main flags take it: the same report
        a, _, _ = self.run_check("--format", "csv", self.T_good)
        b, _, _ = self.run_check("--format=csv", self.T_good)
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual((b.returncode, b.stdout.splitlines()[0]),
                         (0, a.stdout.splitlines()[0]))
        self.assertEqual(len(b.stdout.splitlines()), 2, b.stdout)
        self.assertIn(self.T_good, b.stdout)
        for args, msg in ((["--bogus", self.T_good], "unknown option '--bogus'"),
                          (["--format"], "option '--format' needs a value"),
                          (["--warn-days", "soon", self.T_good],
                           "--warn-days must be a number of days")):
            with self.subTest(args=args):
                cp = subprocess.run([h.exporter_binary(), "check"] + args,
                                    capture_output=True, timeout=30)
                self.assertEqual(cp.returncode, 2, cp.stderr)
                self.assertIn(msg, cp.stderr.decode())
                self.assertEqual(cp.stdout, b"")

    def test_problem_run_json(self):
        cp, t0, t1 = self.run_check("--format", "json", self.T_good, self.T_bad)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        doc = json.loads(cp.stdout)
        self.assertEqual([d["target"] for d in doc], [self.T_good, self.T_bad])
        good, bad = doc
        self.assertEqual((good["result"], good["success"], good["srv"]), ("OK", True, []))
        self.assertEqual((bad["result"], bad["success"]), ("PROBLEM", True))
        self.assertEqual(len(good["addresses"]), 1)
        a = good["addresses"][0]
        self.assertEqual((a["address"], a["name"], a["handshake"], a["result"]),
                         ("127.0.0.1:%d" % FIX.p_cgood, "good.check.test", True, "OK"))
        self.assertEqual(a["certificates"], [
            {"subject_cn": "good.check.test", "issuer_cn": INTER_CN,
             "serial": FIX.c_good.serial, "not_after": FIX.c_good.not_after,
             "days_left": self.days(FIX.c_good, t0, t1), "sig_alg": "ecdsa-with-SHA256",
             "sha256": FIX.c_good.sha256},
            {"subject_cn": INTER_CN, "issuer_cn": ROOT_CN, "serial": FIX.inter.serial,
             "not_after": FIX.inter.not_after, "days_left": self.days(FIX.inter, t0, t1),
             "sig_alg": "sha256WithRSAEncryption", "sha256": FIX.inter.sha256}])
        self.assertEqual([(c["level"], c["text"]) for c in a["comments"]], [
            ("OK", "Common Name match found"), ("OK", "FQDN is in SAN list"),
            ("OK", "expires in %d days" % self.days(FIX.c_good, t0, t1)),
            ("OK", "chain verified")])
        a = bad["addresses"][0]
        self.assertEqual((a["address"], a["result"]),
                         ("127.0.0.1:%d" % FIX.p_cbad, "PROBLEM"))
        self.assertEqual([c["sha256"] for c in a["certificates"]], [FIX.c_bad.sha256])
        self.assertEqual([(c["level"], c["text"]) for c in a["comments"]], [
            ("OK", "Common Name match found"), ("OK", "FQDN is in SAN list"),
            ("FAIL", "expires in %d days" % self.days(FIX.c_bad, t0, t1)),
            ("FAIL", "server did not send its intermediate certificate")])

    def test_csv_input_with_bad_row(self):
        d = self.new_dir()
        path = os.path.join(d, "partners.csv")
        with open(path, "wb") as f:
            f.write(("\ufeffDomain,Type,Port\r\n"
                     "good.check.test,DIR,%d,\r\n"
                     "bad row with spaces,DIR,1\r\n"
                     '"nocdp.check.test","DIR","%d"\r\n' % (FIX.p_cgood, FIX.p_cnocdp)
                     ).encode("utf-8"))
        cp, t0, t1 = self.run_check("--csv", path)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("%s:3: invalid domain" % path, cp.stderr)
        lines = cp.stdout.split("\n")
        self.assertEqual(lines[0], "== %s (DIR good.check.test)" % self.T_good)
        self.assertIn("== %s (DIR nocdp.check.test)" % self.T_nocdp, lines)
        self.assertEqual(lines[-2:], ["2 endpoints checked, 0 with problems", ""])

    def test_bare_domain_is_a_federation_partner(self):
        """`check partner.test` = _sipfederationtls._tcp.partner.test: every
        SRV record listed, every address of every host checked; the pool
        server whose certificate expires in 3 days makes it a problem."""
        cp, t0, t1 = self.run_check("partner.test")
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        lines = cp.stdout.split("\n")
        self.assertEqual(lines[0], "== _sipfederationtls._tcp.partner.test")
        srv = [l for l in lines if l.startswith("   SRV ")]
        self.assertEqual(sorted(srv), sorted(
            "   SRV %s:%d priority %d weight %d" % r for r in FIX.srv_fed))
        addr_lines = [l for l in lines if l.startswith("-- ")]
        want = {"-- %s (sip1.partner.test)" % t(FIX.p_sip1),
                "-- %s (sip2.partner.test)" % t(FIX.p_sip2, SIP2_IP)}
        want |= {"-- %s (pool.partner.test)" % t(FIX.p_pool, ip) for ip in POOL_IPS}
        self.assertEqual(sorted(addr_lines), sorted(want))
        # the comments of the stale pool server (127.0.0.3)
        i = lines.index("-- %s (pool.partner.test)" % t(FIX.p_pool, POOL_IPS[1]))
        block = lines[i + 1:]
        block = block[:next(k for k, l in enumerate(block) if l.startswith(("-- ", "=> ")))]
        stale = FIX.pool[1]
        self.assertIn("       not after %s (%d days)  ecdsa-with-SHA256  EC 256"
                      % (fmt_utc(stale.not_after), self.days(stale, t0, t1)), block)
        self.assertIn("   FAIL expires in %d days" % self.days(stale, t0, t1), block)
        self.assertEqual(self.days(stale, t0, t1), 3)
        self.assertEqual(lines[-4:], ["=> PROBLEM", "", "1 endpoint checked, 1 with problems", ""])
        # JSON: the SRV records with their priority and weight
        cp, _, _ = self.run_check("--format", "json", "partner.test")
        doc = json.loads(cp.stdout)
        self.assertEqual(sorted((r["host"], r["port"], r["priority"], r["weight"])
                                for r in doc[0]["srv"]), sorted(FIX.srv_fed))

    def test_client_ca_list_limit(self):
        """150 CA names over 16 KiB in the CertificateRequest is the Schannel
        failure: a problem; one name is only noted."""
        subjects = [h.der_cert_subject(d) for d in h.pem_certs_der(FIX.cas_file)]
        nbytes = sum(len(x) for x in subjects)
        root_bytes = len(h.der_cert_subject(h.pem_certs_der(FIX.root_file)[0]))
        self.assertGreater(nbytes, 16384, "fixture: the 150 names must exceed 16 KiB")
        cp, _, _ = self.run_check(t(FIX.p_opt12), t(FIX.p_on))
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        lines = cp.stdout.split("\n")
        i_on = lines.index("== " + t(FIX.p_on))
        self.assertIn("   FAIL server requests a client certificate (%d CA names, %d bytes)"
                      % (N_CLIENT_CAS, nbytes), lines[:i_on])
        self.assertIn("   OK   server requests a client certificate (1 CA names, %d bytes)"
                      % root_bytes, lines[i_on:])
        self.assertEqual(lines[-2], "2 endpoints checked, 1 with problems")

    def test_srv_host_that_does_not_resolve(self):
        cp, _, _ = self.run_check("_sip._tls.partner.test")
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        lines = cp.stdout.split("\n")
        self.assertEqual(lines[:4], [
            "== _sip._tls.partner.test",
            "   SRV sip1.partner.test:%d priority 5 weight 100" % FIX.p_sip1,
            "   SRV gone.partner.test:%d priority 10 weight 0 (does not resolve)" % FIX.p_sip1,
            "-- %s (sip1.partner.test)" % t(FIX.p_sip1)])
        self.assertEqual(lines[-4:], ["=> PROBLEM", "", "1 endpoint checked, 1 with problems", ""])

    def test_warn_days(self):
        cp, t0, t1 = self.run_check("--warn-days", "3", self.T_bad)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)   # the intermediate
        self.assertIn("   OK   expires in %d days" % self.days(FIX.c_bad, t0, t1),
                      cp.stdout.split("\n"))

    def test_unresolvable_target(self):
        cp, _, _ = self.run_check("nx.check.test:443")
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertEqual(cp.stdout.split("\n"), [
            "== nx.check.test:443",
            "   FAIL probe failed at resolve: nxdomain",
            "=> PROBLEM", "",
            "1 endpoint checked, 1 with problems", ""])


if __name__ == "__main__":
    unittest.main(verbosity=2)
