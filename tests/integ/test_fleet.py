"""The fleet's purges through a real nats-server with JetStream, started here
on a free loopback port: a purge accepted by one node is applied by every
node; a node killed with -9 while purges go on replays them before it serves
anything from its store; a record on the stream that is no purge is counted
and skipped; with NATS down a purge fails clearly and the nodes keep
serving."""
import json
import shutil
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port
from test_admin import admin

# every node serves the same site: one URL, one cache key on each
HOST = "www.fleet.test"


def url(path):
    return "http://%s%s" % (HOST, path)


def get(op, path):
    return op.request(path, headers={"Host": HOST})


def wait_for_hit(op, path, tries=100):
    for _ in range(tries):
        r, _ = get(op, path)
        if "hit" in (r.getheader("Cache-Status") or ""):
            return
        time.sleep(0.05)
    raise AssertionError("no hit for %s" % path)


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


class Nats:
    """One nats-server with JetStream, files under <d>, stopped by its pid."""

    def __init__(self, d):
        self.dir = d
        self.port = free_port()
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen(
            ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(self.dir), "-n", "test-%d" % self.port],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        wait_port(self.port)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)

    def publish_raw(self, subject, *payloads):
        """Bare core-NATS publishes (the protocol's PUB), as anyone on the
        bus could send, then PING/PONG so they are processed."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        f = s.makefile("rb")
        assert f.readline().startswith(b"INFO ")
        s.sendall(b'CONNECT {"verbose":false}\r\n' + b"".join(
            b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(p), p) for p in payloads)
            + b"PING\r\n")
        while True:
            line = f.readline()
            assert line, "NATS closed the connection"
            if line.startswith(b"PONG"):
                break
            assert not line.startswith(b"-ERR"), line
        s.close()


@pytest.fixture
def nats(tmp_path):
    n = Nats(tmp_path / "nats").start()
    yield n
    n.stop()


def fleet_node(outposts, origin, tmp_path, name, nats_port, **top):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    sock = str(d / "admin.sock")
    fleet = "{node: %s, region: r1, nats: [127.0.0.1:%d], publish_timeout: 2s}" % (name, nats_port)
    op = outposts(origin.port, d / "cache", workers=1,
                  top=dict(top, admin_socket=sock, fleet=fleet, purge_allow="127.0.0.1/32"))
    op.sock = sock
    return op


def fleet_stats(op):
    status, body = admin(op.sock, "GET", "/stats")
    assert status == 200, body
    return body["fleet"]


def wait_caught_up(op, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fleet_stats(op)["caught_up"]:
            return
        time.sleep(0.05)
    raise AssertionError("never caught up: %r" % fleet_stats(op))


def wait_applied(op, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = fleet_stats(op)
        if st["applied"] + st["duplicates"] >= n:
            return st
        time.sleep(0.02)
    raise AssertionError("%d purges not applied: %r" % (n, fleet_stats(op)))


def from_origin(op, origin, path):
    """Did a request for <path> reach the origin?"""
    before = origin.hits.get(path, 0)
    r, _ = get(op, path)
    assert r.status == 200
    return origin.hits.get(path, 0) > before


def test_purge_reaches_every_node(nats, origin, outposts, tmp_path):
    a = fleet_node(outposts, origin, tmp_path, "a", nats.port).start()
    b = fleet_node(outposts, origin, tmp_path, "b", nats.port).start()
    for op in (a, b):
        wait_caught_up(op)
        for path in ("/x", "/y"):
            get(op, path)
            wait_for_hit(op, path)
    status, body = admin(a.sock, "POST", "/purge", {"url": url("/x")})
    assert status == 200, body
    assert body["fleet_seq"] >= 1
    for op in (a, b):
        wait_applied(op, 1)
        assert from_origin(op, origin, "/x")
        assert not from_origin(op, origin, "/y")
    # the same purge, delivered again, changes nothing (store unit tests
    # cover that); a second purge is a second sequence
    status, body2 = admin(b.sock, "POST", "/purge", {"url": url("/y")})
    assert status == 200 and body2["fleet_seq"] == body["fleet_seq"] + 1, body2
    for op in (a, b):
        wait_applied(op, 2)
        assert from_origin(op, origin, "/y")
    # --local: this node alone, on purpose
    for op in (a, b):
        wait_for_hit(op, "/x")
    status, body = admin(a.sock, "POST", "/purge", {"url": url("/x"), "local": True})
    assert status == 200 and "fleet_seq" not in body, body
    assert from_origin(a, origin, "/x")
    assert not from_origin(b, origin, "/x")
    # PURGE on the data port goes to the fleet too
    r, data = b.request("/x", method="PURGE", headers={"Host": HOST})
    assert r.status == 200 and json.loads(data)["fleet_seq"] == body2["fleet_seq"] + 1, data
    for op in (a, b):
        wait_applied(op, 3)
        assert from_origin(op, origin, "/x")
    status, text = admin(a.sock, "GET", "/metrics")
    assert b"outpost_fleet_purges_applied_total 3\n" in text, text
    assert b"outpost_fleet_purges_published_total 1\n" in text, text
    assert b"outpost_fleet_caught_up 1\n" in text, text


def test_node_killed_replays_before_serving(nats, origin, outposts, tmp_path):
    a = fleet_node(outposts, origin, tmp_path, "a", nats.port).start()
    b = fleet_node(outposts, origin, tmp_path, "b", nats.port).start()
    paths = ["/k%d" % i for i in range(20)]
    for op in (a, b):
        wait_caught_up(op)
        for p in paths:
            get(op, p)
    for p in paths:
        wait_for_hit(b, p)
    b.kill9()
    for p in paths[:10]:
        status, body = admin(a.sock, "POST", "/purge", {"url": url(p)})
        assert status == 200, body
    b2 = fleet_node(outposts, origin, tmp_path, "b", nats.port)
    b2.port = b.port
    b2.args = b.args
    b2.start()
    # at once, before it can have replayed: nothing purged comes from its store
    for p in paths[:10]:
        assert from_origin(b2, origin, p), p
    wait_caught_up(b2)
    for p in paths[10:]:
        assert not from_origin(b2, origin, p), p


def test_invalid_records_are_skipped(nats, origin, outposts, tmp_path):
    a = fleet_node(outposts, origin, tmp_path, "a", nats.port).start()
    wait_caught_up(a)
    get(a, "/z")
    wait_for_hit(a, "/z")
    for junk in (b"not json", b'{"v":2,"node":"x","kind":"url","pattern":"http://h/"}',
                 b'{"v":1,"node":"x","kind":"url","pattern":"HTTP://H/"}', b"\x00\xff" * 100):
        nats.publish_raw("outpost.purge.OUTPOST_PURGES", junk)
    status, body = admin(a.sock, "POST", "/purge", {"url": url("/z")})
    assert status == 200, body
    st = wait_applied(a, 1)
    assert st["invalid"] == 4, st
    assert from_origin(a, origin, "/z")


def test_nats_down_purges_fail_and_serving_goes_on(nats, origin, outposts, tmp_path):
    a = fleet_node(outposts, origin, tmp_path, "a", nats.port).start()
    wait_caught_up(a)
    get(a, "/w")
    wait_for_hit(a, "/w")
    nats.stop()
    deadline = time.monotonic() + 10
    while fleet_stats(a)["connected"] and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    status, body = admin(a.sock, "POST", "/purge", {"url": url("/w")})
    assert status == 503, body
    assert "fleet" in body["error"] and "NATS" in body["error"], body
    assert time.monotonic() - t0 < 5
    assert not from_origin(a, origin, "/w")  # not purged, and still served
    st = fleet_stats(a)
    assert not st["connected"] and st["publish_failures"] >= 1, st
    nats.start()  # same port and store: the stream is still there
    deadline = time.monotonic() + 15
    while not fleet_stats(a)["connected"] and time.monotonic() < deadline:
        time.sleep(0.1)
    status, body = admin(a.sock, "POST", "/purge", {"url": url("/w")})
    assert status == 200, body
    wait_applied(a, 1)
    assert from_origin(a, origin, "/w")


def test_no_nats_at_start_nothing_from_the_store(origin, outposts, tmp_path):
    nats = Nats(tmp_path / "nats")  # its port, nothing listening yet
    a = fleet_node(outposts, origin, tmp_path, "a", nats.port).start()
    status, body = admin(a.sock, "GET", "/health")
    assert status == 503 and body["status"] == "catching-up", body
    # it serves, from the origin: without the stream it cannot know what
    # was purged
    for _ in range(3):
        assert from_origin(a, origin, "/v")
    status, body = admin(a.sock, "POST", "/purge", {"url": url("/v")})
    assert status == 503 and "not connected to NATS" in body["error"], body
    try:
        nats.start()
        wait_caught_up(a)
        status, body = admin(a.sock, "GET", "/health")
        assert status == 200 and body["status"] == "ready", body
        get(a, "/v")
        wait_for_hit(a, "/v")
    finally:
        nats.stop()


def test_stream_made_again_numbers_anew(nats, origin, outposts, tmp_path):
    """A new JetStream (an empty store: a new cluster, a deleted stream)
    numbers purges from 1 again; they are new purges, not redeliveries."""
    a = fleet_node(outposts, origin, tmp_path, "a", nats.port).start()
    wait_caught_up(a)
    get(a, "/s")
    wait_for_hit(a, "/s")
    status, body = admin(a.sock, "POST", "/purge", {"url": url("/s")})
    assert status == 200 and body["fleet_seq"] == 1, body
    wait_applied(a, 1)
    get(a, "/s")
    wait_for_hit(a, "/s")
    nats.stop()
    shutil.rmtree(nats.dir)
    nats.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the node makes the stream again
        status, body = admin(a.sock, "POST", "/purge", {"url": url("/s")})
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200 and body["fleet_seq"] == 1, body
    st = wait_applied(a, 2, timeout=20)
    assert st["applied"] == 2 and st["duplicates"] == 0, st
    assert from_origin(a, origin, "/s")


def test_killed_mid_batch_waits_for_unacked_purges(nats, origin, outposts, tmp_path):
    """Killed while applying a batch: the purges it had fetched but not acked
    come again only after the consumer's AckWait; the node is not caught up,
    and serves nothing from its store, until they have."""
    b = fleet_node(outposts, origin, tmp_path, "b", nats.port).start()
    wait_caught_up(b)
    paths = ["/m%d" % i for i in range(300)]
    for p in paths:
        get(b, p)
    wait_for_hit(b, paths[-1])
    nats.publish_raw("outpost.purge.OUTPOST_PURGES", *[
        json.dumps({"v": 1, "node": "x", "kind": "url", "pattern": url(p),
                    "soft": False}).encode() for p in paths])
    deadline = time.monotonic() + 20
    while fleet_stats(b)["applied"] < 50 and time.monotonic() < deadline:
        time.sleep(0.005)
    b.kill9()
    b2 = fleet_node(outposts, origin, tmp_path, "b", nats.port)
    b2.port = b.port
    b2.args = b.args
    b2.start()
    wait_caught_up(b2, timeout=30)
    served = [p for p in paths if not from_origin(b2, origin, p)]
    assert served == [], "purged, yet served from the store: %r" % served[:10]
