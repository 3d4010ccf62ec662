"""The fault matrix: every way an origin can fail, under three cache states
(cold miss, stale copy present, ten coalesced waiters), the TLS faults of an
https origin among them. What must hold:
nothing truncated is ever stored; the stale copy is served for every failure
before the first response byte; every waiter is released; nobody waits longer
than the configured timeout + 1 s; and a failure after bytes were sent closes
the connection, never a clean short body."""
import http.client
import socket
import ssl
import threading
import time

import pytest

from conftest import free_port
from test_coalescing import herd
from tlsutil import CA

TIMEOUT = 0.5  # connect, first byte and between bytes, as configured below
SITE = {"connect_timeout": "500ms", "first_byte_timeout": "500ms",
        "between_bytes_timeout": "500ms"}

GOOD = b"good copy\n"


class FaultOrigin:
    """A raw origin on loopback: GOOD (max-age=1) until `fault` is set, then
    that fault for every request."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.fault = None
        self.requests = 0
        self.lock = threading.Lock()
        self.closed = False
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            while True:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = c.recv(65536)
                    if not more:
                        return
                    data += more
                with self.lock:
                    self.requests += 1
                if not self.answer(c, self.fault):
                    return
        except OSError:
            pass
        finally:
            c.close()

    @staticmethod
    def reset(c):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()

    def answer(self, c, fault):
        """Returns whether the connection stays usable."""
        ok_head = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nETag: \"g\"\r\n"
        if fault is None:
            c.sendall(ok_head + b"Content-Length: %d\r\n\r\n" % len(GOOD) + GOOD)
            return True
        if fault == "reset-before-headers":
            self.reset(c)
            return False
        if fault == "reset-mid-body":
            c.sendall(ok_head + b"Content-Length: 100000\r\n\r\n" + b"x" * 5000)
            time.sleep(0.1)
            self.reset(c)
            return False
        if fault == "truncated-chunked":
            c.sendall(ok_head + b"Transfer-Encoding: chunked\r\n\r\n1000\r\n" + b"x" * 4096 +
                      b"\r\n")
            time.sleep(0.1)
            c.shutdown(socket.SHUT_WR)  # a clean close, without the last chunk
            return False
        if fault == "slow-headers":
            time.sleep(TIMEOUT + 1.5)
            return False
        if fault == "slow-body":
            c.sendall(ok_head + b"Content-Length: 10000\r\n\r\n" + b"x" * 100)
            time.sleep(TIMEOUT + 1.5)
            return False
        if fault in ("500", "502", "503", "504"):
            body = b"origin error\n"
            c.sendall(b"HTTP/1.1 %s Oops\r\nContent-Length: %d\r\n\r\n" % (fault.encode(),
                                                                          len(body)) + body)
            return True
        if fault == "garbage":
            c.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            return False
        if fault == "oversized-headers":
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
            return False
        if fault == "content-length-longer":
            c.sendall(ok_head + b"Content-Length: 1000\r\n\r\n" + b"x" * 500)
            time.sleep(0.1)
            c.shutdown(socket.SHUT_WR)
            return False
        raise AssertionError(fault)

    def stop(self):
        """Gone: the listener and the connections the node pooled."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


PRE_HEAD = {  # fault -> status a client gets without a stale copy
    "connect-refused": 502, "connect-timeout": 504, "reset-before-headers": 502,
    "slow-headers": 504, "500": 500, "502": 502, "503": 503, "504": 504, "garbage": 502,
    "oversized-headers": 502,
}
# connect failures and timeouts count toward the origin's circuit breaker
HEALTH = {"connect-refused", "connect-timeout", "slow-headers"}
MID_BODY = ["reset-mid-body", "truncated-chunked", "slow-body", "content-length-longer"]


def blackhole():
    """A port whose SYNs are dropped: a listener with a full backlog."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", s.getsockname()[1]))
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.2)
    return s, fillers


@pytest.fixture
def fault_origin():
    o = FaultOrigin()
    yield o
    o.stop()


def point_at(outposts, tmp_path, origin_port, proxy_port=None):
    return outposts(origin_port, tmp_path / "cache", site=SITE, port=proxy_port).start()


def one(op, path):
    start = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", op.port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, dict(r.getheaders()), body, time.monotonic() - start
    except (http.client.HTTPException, OSError) as e:
        return None, {}, e, time.monotonic() - start


def expect_failure(fault, results, stale):
    for status, headers, body, elapsed in results:
        assert elapsed < TIMEOUT + 1.0 + 0.5, "%s: answered after %.2fs" % (fault, elapsed)
        if fault in MID_BODY:
            if stale and status == 200 and body == GOOD:
                continue  # the failure came before any byte reached this client
            assert status is None, "%s: a clean answer %r %r" % (fault, status, body[:40])
        elif stale:
            assert status == 200 and body == GOOD, "%s: %r %r" % (fault, status, body[:60])
            assert "fwd=stale" in headers.get("Cache-Status", "")
        elif status == 503 and fault in HEALTH and b"failing" in body:
            # enough failures in a row opened the circuit: 503 at once
            assert headers.get("Retry-After") == "5"
        else:
            assert status == PRE_HEAD[fault], "%s: %r %r" % (fault, status, body[:60])
            assert body, "an error page is never blank"


FAULTS = list(PRE_HEAD) + MID_BODY


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_matrix(fault, fault_origin, outposts, tmp_path):
    # connect-refused and connect-timeout need the node pointed at a dead port
    holders = []
    if fault == "connect-refused":
        origin_port = free_port()
    elif fault == "connect-timeout":
        s, fillers = blackhole()
        holders.extend([s] + fillers)
        origin_port = s.getsockname()[1]
    else:
        origin_port = fault_origin.port
        fault_origin.fault = fault
    op = point_at(outposts, tmp_path, origin_port)
    try:
        # cold
        expect_failure(fault, [one(op, "/cold")], stale=False)
        # ten coalesced waiters on a cold key: every one released
        expect_failure(fault, herd(op, "/herd", 10), stale=False)
        if fault in ("connect-refused", "connect-timeout"):
            return  # no origin ever answered: the stale state is tested below
        # stale copy present
        fault_origin.fault = None
        for path in ("/stale", "/stale-herd"):
            r = one(op, path)
            assert r[0] == 200 and r[2] == GOOD
        time.sleep(1.2)
        fault_origin.fault = fault
        expect_failure(fault, [one(op, "/stale")], stale=True)
        expect_failure(fault, herd(op, "/stale-herd", 10), stale=True)
        # nothing truncated was stored: a healthy origin is asked again, and
        # what is served is whole
        fault_origin.fault = None
        for path in ("/cold", "/herd"):
            r = one(op, path)
            assert r[0] == 200 and r[2] == GOOD, (path, r)
    finally:
        for h in holders:
            h.close()


def test_stale_on_connect_failures(outposts, tmp_path):
    """connect refused and connect timeout with a stale copy: the origin
    answered once, then its port goes dead (refused) or black (timeout)."""
    for fault in ("connect-refused", "connect-timeout"):
        origin = FaultOrigin()
        op = outposts(origin.port, tmp_path / ("cache-" + fault), site=SITE).start()
        for path in ("/s", "/h"):
            assert one(op, path)[2] == GOOD
        time.sleep(1.2)
        origin.stop()
        holders = []
        if fault == "connect-timeout":
            # take over the port with a listener that drops SYNs
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", origin.port))
            s.listen(0)
            for _ in range(4):
                f = socket.socket()
                f.setblocking(False)
                try:
                    f.connect(("127.0.0.1", origin.port))
                except BlockingIOError:
                    pass
                holders.append(f)
            holders.append(s)
            time.sleep(0.2)
        try:
            expect_failure(fault, [one(op, "/s")], stale=True)
            expect_failure(fault, herd(op, "/h", 10), stale=True)
        finally:
            for h in holders:
                h.close()
        op.stop()


def test_unresolvable_origin_name_is_a_clear_start_error(tmp_path):
    import subprocess
    from conftest import OUTPOST
    r = subprocess.run([OUTPOST, "--listen", "127.0.0.1:%d" % free_port(), "--origin",
                        "http://no-such-host.invalid:80", "--cache-dir", str(tmp_path / "c")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 5
    assert "no-such-host.invalid" in r.stderr


# ---- the TLS faults of an https origin ----------------------------------------

TLS_FAULTS = {  # fault -> status a client gets without a stale copy
    "tls-expired": 502, "tls-wrong-name": 502, "tls-handshake-stalls": 504,
    "tls-reset-in-handshake": 502,
}
PRE_HEAD.update(TLS_FAULTS)  # after FAULTS: the plain matrix has no TLS origin
HEALTH.update(TLS_FAULTS)  # a failed handshake counts toward the circuit like a failed connect


class TLSFaultOrigin(FaultOrigin):
    """FaultOrigin over TLS: GOOD with a valid certificate until `fault` is
    set, then a certificate that is expired or names another host, a
    handshake that never ends, or a reset after the ClientHello."""

    def __init__(self, certs):
        self.ctx = {}
        for name, (crt, key) in certs.items():
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            c.load_cert_chain(crt, key)
            self.ctx[name] = c
        super().__init__()

    def serve(self, c):
        fault = self.fault
        try:
            if fault == "tls-handshake-stalls":
                time.sleep(TIMEOUT + 1.5)  # says nothing; the node gives up first
                c.close()
                return
            if fault == "tls-reset-in-handshake":
                c.recv(4096)
                self.reset(c)
                return
            s = self.ctx.get(fault, self.ctx["good"]).wrap_socket(c, server_side=True)
        except OSError:  # ssl.SSLError too: the node refused the certificate
            c.close()
            return
        super().serve(s)

    def answer(self, c, fault):
        # the origin came back with the fault: connections from before it
        # end, so each request makes a new handshake
        return False if fault in TLS_FAULTS else super().answer(c, fault)


@pytest.mark.parametrize("fault", list(TLS_FAULTS))
def test_tls_fault_matrix(fault, outposts, tmp_path):
    ca = CA(tmp_path / "pki")
    ip = "IP:127.0.0.1"
    origin = TLSFaultOrigin({
        "good": ca.leaf("good", "x", san=ip),
        "tls-expired": ca.leaf("expired", "x", san=ip, start="20200101000000Z",
                               end="20200201000000Z"),
        "tls-wrong-name": ca.leaf("wrong", "other.test"),
    })
    site = dict(SITE, origin="https://127.0.0.1:%d" % origin.port, origin_ca=ca.crt)
    op = outposts(origin.port, tmp_path / "cache", site=site).start()
    try:
        origin.fault = fault
        expect_failure(fault, [one(op, "/cold")], stale=False)
        expect_failure(fault, herd(op, "/herd", 10), stale=False)
        origin.fault = None
        for path in ("/stale", "/stale-herd"):
            r = one(op, path)
            assert r[0] == 200 and r[2] == GOOD, r
        time.sleep(1.2)
        origin.fault = fault
        r = one(op, "/stale")
        expect_failure(fault, [r], stale=True)
        expect_failure(fault, herd(op, "/stale-herd", 10), stale=True)
        origin.fault = None
        for path in ("/cold", "/herd"):
            r = one(op, path)
            assert r[0] == 200 and r[2] == GOOD, (path, r)
    finally:
        origin.stop()
