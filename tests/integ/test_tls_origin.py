"""https origins: verification on by default (against the site's origin_ca),
SNI and the name check from the origin or host_header, pooled and resumed
connections, the TLS faults (expired or wrong-name certificates, plaintext,
a handshake that never ends, a reset in it) as origin errors with their own
Cache-Status detail, and the stale and coalescing cases over TLS."""
import http.client
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import OUTPOST, Origin, free_port
from test_coalescing import herd, slow_page
from tlsutil import CA


@pytest.fixture
def ca(tmp_path):
    return CA(tmp_path / "pki")


class TLSOrigin(Origin):
    """The scripted origin over TLS with <cert>; records each connection's
    SNI."""

    def __init__(self, cert, port=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        self.snis = []
        ctx.sni_callback = lambda sock, name, c: self.snis.append(name)
        super().__init__(port=port, tls=ctx)



def node(outposts, origin_port, tmp_path, ca, workers=2, top=None, **site):
    conf = {"origin": "https://127.0.0.1:%d" % origin_port, "origin_ca": ca.crt}
    conf.update(site)
    if conf["origin_ca"] is None:
        del conf["origin_ca"]
    return outposts(origin_port, tmp_path / "cache", site=conf, workers=workers,
                    top=top).start()


def cache_status(r):
    return r.getheader("Cache-Status") or ""


def test_https_origin_verified_pooled_and_resumed(outposts, tmp_path, ca):
    cert = ca.leaf("origin", "origin.internal")
    o = TLSOrigin(cert)
    try:
        resumed = []

        def closing(h):  # every answer ends its connection: the next one resumes
            resumed.append(h.connection.session_reused)
            body = b"fresh %s" % h.path.encode()
            h.send_response(200)
            h.send_header("Cache-Control", "no-store")
            h.send_header("Content-Length", str(len(body)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body)
            h.close_connection = True
        o.routes["/close"] = closing
        op = node(outposts, o.port, tmp_path, ca, host_header="origin.internal:8443", workers=1)
        r, body = op.request("/a")
        assert r.status == 200 and body == b"page /a\n", cache_status(r)
        assert o.snis[0] == "origin.internal"  # host_header's host, port dropped
        for i in range(20):
            r, body = op.request("/p%d" % i)
            assert r.status == 200
        assert len(o.conns) <= 2, "pooled connections were not reused"
        for i in range(5):
            r, body = op.request("/close")
            assert body == b"fresh /close"
        assert resumed.count(True) >= 4, resumed
    finally:
        o.stop()


def test_certificate_failures_are_origin_errors(outposts, tmp_path, ca):
    ip = "IP:127.0.0.1"
    other_ca = CA(tmp_path / "other-pki")
    cases = [  # each wrong in one way only; the log says which
        (ca.leaf("expired", "x", san=ip, start="20200101000000Z", end="20200201000000Z"),
         "certificate has expired"),
        (ca.leaf("wrong", "other.test"), "IP address mismatch"),
        (other_ca.leaf("stranger", "x", san=ip), "unable to get local issuer certificate"),
    ]
    for cert, reason in cases:
        o = TLSOrigin(cert)
        try:
            op = node(outposts, o.port, tmp_path, ca, workers=1)
            r, body = op.request("/x", headers={"Accept": "text/html"})
            assert r.status == 502, (cert, r.status)
            assert 'detail="certificate verify failed"' in cache_status(r), cache_status(r)
            assert b"certificate failed verification" in body
            assert o.hits == {}
            op.stop()
            log = "".join(op.log)
            assert "TLS handshake failed" in log and reason in log, log
        finally:
            o.stop()
    # the IP address an origin is named by is checked as one: a DNS name
    # "127.0.0.1" does not prove it, an IP address entry does
    for san, status in (("DNS:127.0.0.1", 502), ("IP:127.0.0.1", 200)):
        o = TLSOrigin(ca.leaf("ip", "127.0.0.1", san=san))
        try:
            op = node(outposts, o.port, tmp_path, ca, workers=1)
            r, _ = op.request("/ip")
            assert r.status == status, san
            assert o.snis == [None]  # no SNI for an address (RFC 6066 §3)
            op.stop()
        finally:
            o.stop()


def test_verification_can_be_turned_off(outposts, tmp_path, ca):
    o = TLSOrigin(CA(tmp_path / "elsewhere").leaf("any", "whatever.test"))
    try:
        op = node(outposts, o.port, tmp_path, ca, origin_ca=None, origin_tls_verify="false")
        r, body = op.request("/v")
        assert r.status == 200 and body == b"page /v\n"
    finally:
        o.stop()


class RawOrigin:
    """A TCP origin with a scripted misbehaviour: 'plain' answers HTTP in
    plaintext, 'silent' accepts and says nothing, 'reset' reads the
    ClientHello and resets, 'notify' answers it with close_notify."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.stopping = False
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "plain":
                s.recv(4096)
                s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                s.close()
            elif self.mode == "silent":
                self.held.append(s)
            elif self.mode == "notify":
                s.recv(4096)
                s.sendall(b"\x15\x03\x03\x00\x02\x01\x00")  # close_notify, no ServerHello
                s.close()
            else:
                s.recv(4096)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()

    def stop(self):
        self.stopping = True
        self.sock.close()
        for s in self.held:
            s.close()


@pytest.mark.parametrize("mode,status,detail", [
    ("plain", 502, "origin speaks plain HTTP"),
    ("silent", 504, "handshake timeout"),
    ("reset", 502, "TLS handshake failed"),
    ("notify", 502, "TLS handshake failed"),
])
def test_tls_faults(outposts, tmp_path, ca, mode, status, detail):
    o = RawOrigin(mode)
    access = tmp_path / "access.log"
    try:
        op = node(outposts, o.port, tmp_path, ca, connect_timeout="500ms", workers=1,
                  top={"access_log": str(access)})
        start = time.monotonic()
        r, body = op.request("/f", headers={"Accept": "text/plain"})
        assert r.status == status, (r.status, body)
        assert 'detail="%s"' % detail in cache_status(r), cache_status(r)
        assert time.monotonic() - start < 3
        if mode == "plain":
            assert b"the origin speaks plain HTTP, not TLS" in body
        for _ in range(40):  # the access log is written off the loop
            if access.exists() and "detail='%s'" % detail in access.read_text():
                break
            time.sleep(0.05)
        assert "detail='%s'" % detail in access.read_text()
    finally:
        o.stop()


def test_stale_if_error_covers_tls_failures(outposts, tmp_path, ca):
    good = ca.leaf("good", "origin.internal")
    port = free_port()
    o = TLSOrigin(good, port=port)
    o.routes["/s"] = slow_page(0, b"last good copy", cc="max-age=1")
    op = node(outposts, port, tmp_path, ca, host_header="origin.internal", workers=1)
    try:
        r, body = op.request("/s")
        assert r.status == 200, cache_status(r)
    finally:
        o.stop()
    # the origin comes back with an expired certificate
    bad = TLSOrigin(ca.leaf("bad", "origin.internal", start="20200101000000Z",
                            end="20200201000000Z"), port=port)
    try:
        time.sleep(1.2)
        r, body = op.request("/s")
        assert r.status == 200 and body == b"last good copy"
        cs = cache_status(r)
        assert "fwd=stale" in cs and "certificate verify failed" in cs, cs
    finally:
        bad.stop()


def test_coalescing_over_tls(outposts, tmp_path, ca):
    o = TLSOrigin(ca.leaf("origin", "origin.internal"))
    try:
        o.routes["/hot"] = slow_page(0.5)
        op = node(outposts, o.port, tmp_path, ca, host_header="origin.internal")
        res = herd(op, "/hot", 50)
        assert all(st == 200 and body == b"the shared page\n" for st, _, body, _ in res), res[:3]
        assert o.hits["/hot"] == 1
    finally:
        o.stop()


def test_config_check_names_a_bad_origin_ca(tmp_path):
    conf = tmp_path / "o.yaml"
    conf.write_text("sites:\n  - origin: https://127.0.0.1:9\n    origin_ca: /nonexistent/ca.pem\n")
    r = subprocess.run([OUTPOST, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "sites[0].origin_ca: origin_ca /nonexistent/ca.pem" in r.stderr, r.stderr
    conf.write_text("sites:\n  - origin: http://127.0.0.1:9\n    origin_ca: /x.pem\n")
    r = subprocess.run([OUTPOST, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1 and "no https:// origin uses it" in r.stderr


def test_health_checks_speak_tls(outposts, tmp_path, ca):
    good = TLSOrigin(ca.leaf("good", "origin.internal"))
    try:
        node(outposts, good.port, tmp_path, ca, host_header="origin.internal",
             health_check_path="/health", health_check_interval="200ms")
        for _ in range(50):
            if good.hits.get("/health", 0) >= 2:
                break
            time.sleep(0.1)
        assert good.hits.get("/health", 0) >= 2
        assert good.snis[0] == "origin.internal"
    finally:
        good.stop()
    bad = TLSOrigin(ca.leaf("bad", "someone.else"))
    (tmp_path / "b").mkdir()
    try:
        op = node(outposts, bad.port, tmp_path / "b", ca, host_header="origin.internal",
                  health_check_path="/health", health_check_interval="200ms")
        for _ in range(50):
            log = "".join(op.log)
            if "health check failed" in log:
                break
            time.sleep(0.1)
        assert "health check failed 2 times (TLS: the origin's certificate failed " \
               "verification (hostname mismatch)); no requests go to it" in log, log
        assert bad.hits == {}
    finally:
        bad.stop()


def test_close_delimited_body_needs_close_notify(outposts, tmp_path, ca):
    """A body that ends with the connection is whole only if the origin said
    so with close_notify (RFC 9112 §9.8): a bare TCP close may be anyone's
    cut, and a truncated object must not be stored."""
    crt, key = ca.leaf("cd", "origin.internal")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(crt, key)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    served = []

    def serve():
        for _ in range(8):  # bounded
            try:
                raw, _ = lsock.accept()
            except OSError:
                return
            try:
                s = sctx.wrap_socket(raw, server_side=True)
                req = s.recv(65536)
                path = req.split(b" ")[1].decode()
                served.append(path)
                s.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\nConnection: close"
                          b"\r\n\r\n" + b"b" * 500)
                if path.startswith("/clean"):
                    s.unwrap().close()  # close_notify, then the close
                else:
                    os.close(s.detach())  # the TCP close alone
            except (OSError, ssl.SSLError, IndexError):
                raw.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        op = node(outposts, port, tmp_path, ca, host_header="origin.internal", workers=1)
        for path in ("/cut", "/clean"):
            r, body = op.request(path)
            if path == "/clean":
                assert r.status == 200 and body == b"b" * 500
                assert "stored" in cache_status(r)
            else:
                assert "stored" not in cache_status(r), cache_status(r)
        # the cut one was not stored: asking again goes to the origin
        r, _ = op.request("/cut")
        assert served.count("/cut") == 2, served
        r, body = op.request("/clean")
        assert "hit" in cache_status(r) and served.count("/clean") == 1
    finally:
        lsock.close()


def test_quick_start_with_an_https_origin(tmp_path, ca):
    o = TLSOrigin(ca.leaf("q", "x", san="IP:127.0.0.1"))
    port = free_port()
    p = subprocess.Popen([OUTPOST, "--listen", "127.0.0.1:%d" % port,
                          "--origin", "https://127.0.0.1:%d" % o.port, "--origin-ca", ca.crt,
                          "--cache-dir", str(tmp_path / "qcache"), "--workers", "1"],
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while "ready" not in p.stderr.readline():
            assert p.poll() is None and time.monotonic() < deadline
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/q")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"page /q\n"
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
        o.stop()
