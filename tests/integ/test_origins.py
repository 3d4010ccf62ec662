"""Several origins per site: weighted round robin, a failed connect retried
once on another origin, active health checks that take an origin out and
bring it back, and origin names re-resolved while the node runs."""
import os
import subprocess
import time

import pytest

from conftest import Origin, free_port


def named(name, cc="private"):
    """A route answering with the origin's name, not shareable by default so
    that every request reaches an origin."""
    def route(h):
        body = name.encode()
        h.send_response(200)
        h.send_header("Cache-Control", cc)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return route


def status_route(code):
    def route(h):
        h.send_response(code)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return route


def hang_route(seconds):
    def route(h):
        time.sleep(seconds)
        h.send_response(200)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return route


@pytest.fixture
def second_origin():
    o = Origin()
    yield o
    o.stop()


def origins_list(*entries):
    return "[" + ", ".join('"%s"' % e for e in entries) + "]"


def test_weighted_round_robin(origin, second_origin, outposts, tmp_path):
    origin.default = named("A")
    second_origin.default = named("B")
    op = outposts(origin.port, tmp_path / "c", workers=1, site={
        "origin": origins_list("http://127.0.0.1:%d weight=3" % origin.port,
                               "http://127.0.0.1:%d" % second_origin.port)}).start()
    seen = {"A": 0, "B": 0}
    for i in range(40):
        r, body = op.request("/p%d" % i)
        assert r.status == 200
        seen[body.decode()] += 1
    assert seen == {"A": 30, "B": 10}


def test_failed_connect_goes_once_to_another_origin(origin, outposts, tmp_path):
    origin.default = named("live")
    dead = free_port()  # nothing listens there: connections are refused
    op = outposts(origin.port, tmp_path / "c", workers=1, site={
        "origin": origins_list("http://127.0.0.1:%d" % dead, "http://127.0.0.1:%d" % origin.port),
        "origin_fail_threshold": 0}).start()
    # round robin starts with the dead origin: a POST is not retried elsewhere
    r, body = op.request("/form", method="POST", body=b"x=1")
    assert r.status == 502, body
    r, body = op.request("/form", method="POST", body=b"x=1")
    assert r.status == 200 and body == b"live"
    # every GET that meets the dead origin is sent on to the live one
    for i in range(10):
        r, body = op.request("/g%d" % i)
        assert r.status == 200 and body == b"live", (i, r.status, body)
    assert sum(v for k, v in origin.hits.items() if k.startswith("/g")) == 10
    assert "trying http://127.0.0.1:%d" % origin.port in "".join(op.log)


def wait_until(pred, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_health_checks_take_an_origin_out_and_bring_it_back(origin, second_origin, outposts,
                                                            tmp_path):
    origin.default = named("A")
    second_origin.default = named("B")
    origin.routes["/health"] = status_route(503)
    second_origin.routes["/health"] = status_route(200)
    op = outposts(origin.port, tmp_path / "c", workers=2, site={
        "origin": origins_list("http://127.0.0.1:%d" % origin.port,
                               "http://127.0.0.1:%d" % second_origin.port),
        "health_check_path": "/health", "health_check_interval": "100ms",
        "health_check_fall": 2, "health_check_rise": 2}).start()
    assert wait_until(lambda: "no requests go to it" in "".join(op.log), 3), "".join(op.log)
    before = sum(v for k, v in origin.hits.items() if k != "/health")
    for i in range(20):
        r, body = op.request("/out%d" % i)
        assert r.status == 200 and body == b"B"
    assert sum(v for k, v in origin.hits.items() if k != "/health") == before
    assert origin.hits["/health"] >= 2
    origin.routes["/health"] = status_route(204)
    assert wait_until(lambda: "back in use" in "".join(op.log), 3), "".join(op.log)
    seen = set()
    for i in range(20):
        r, body = op.request("/in%d" % i)
        assert r.status == 200
        seen.add(body)
    assert seen == {b"A", b"B"}


def test_origin_known_down_gets_no_wait(origin, outposts, tmp_path):
    """Every origin fails its health checks: stale copies and 503s go out at
    once instead of waiting for a request timeout the node knows is coming."""
    origin.routes["/page"] = named("v1", cc="max-age=1")
    origin.routes["/health"] = status_route(200)
    op = outposts(origin.port, tmp_path / "c", site={
        "health_check_path": "/health", "health_check_interval": "100ms",
        "health_check_timeout": "200ms", "health_check_fall": 2,
        "first_byte_timeout": "10s"}).start()
    r, body = op.request("/page")
    assert r.status == 200 and body == b"v1"
    time.sleep(1.2)
    hang = hang_route(8)  # the origin hangs: checks and requests get no answer
    origin.routes["/health"] = hang
    origin.routes["/page"] = hang
    assert wait_until(lambda: "no requests go to it" in "".join(op.log), 3), "".join(op.log)
    start = time.monotonic()
    r, body = op.request("/page")
    assert r.status == 200 and body == b"v1"
    assert "fwd=stale" in r.getheader("Cache-Status")
    r, body = op.request("/cold", headers={"Accept": "text/html"})
    elapsed = time.monotonic() - start
    assert r.status == 503 and r.getheader("Retry-After"), (r.status, body)
    assert elapsed < 0.5, "waited %.2fs for an origin known to be down" % elapsed
    assert origin.hits.get("/cold") is None


def can_unshare():
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not can_unshare(), reason="needs unshare --mount (root) to give the node "
                    "its own /etc/hosts")
def test_origin_name_is_resolved_again(outposts, tmp_path):
    """The node runs in its own mount namespace with its own /etc/hosts, which
    the test rewrites in place (a bind mount follows the inode)."""
    port = free_port()
    a, b = Origin("127.0.0.2", port), Origin("127.0.0.3", port)
    try:
        a.default, b.default = named("A"), named("B")
        hosts = tmp_path / "hosts"
        hosts.write_text("127.0.0.2 origin.outpost.test\n")
        wrap = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
                str(hosts)]
        op = outposts(0, tmp_path / "c", wrap=wrap, site={
            "origin": "http://origin.outpost.test:%d" % port,
            "origin_resolve_interval": "100ms"}).start()
        r, body = op.request("/x")
        assert body == b"A"
        with open(hosts, "r+") as f:  # same inode
            f.write("127.0.0.3 origin.outpost.test\n")
        assert wait_until(lambda: "now resolves to 127.0.0.3" in "".join(op.log), 3), \
            "".join(op.log)
        for i in range(6):
            r, body = op.request("/y%d" % i)
            assert r.status == 200 and body == b"B", (i, body)
        with open(hosts, "r+") as f:  # the name no longer resolves
            f.truncate(0)
            f.write("# nothing\n")
        assert wait_until(lambda: "keeping its last address" in "".join(op.log), 3), \
            "".join(op.log)
        for i in range(3):
            r, body = op.request("/z%d" % i)
            assert r.status == 200 and body == b"B"
    finally:
        a.stop()
        b.stop()
