"""stale-if-error when the origin is gone: the stored copy is served at once."""
import time

from test_coalescing import slow_page


def test_refused_origin_serves_stale_without_waiting(origin, outposts, tmp_path):
    def short(h):
        body = b"last good copy"
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=1")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    origin.routes["/short"] = short
    op = outposts(origin.port, tmp_path / "cache").start()
    r, body = op.request("/short")
    assert r.status == 200
    origin.stop()  # connections are refused from now on
    time.sleep(1.5)
    start = time.monotonic()
    r, body = op.request("/short")
    elapsed = time.monotonic() - start
    assert r.status == 200
    assert body == b"last good copy"
    status = r.getheader("Cache-Status")
    assert "fwd=stale" in status and "origin unreachable" in status, status
    assert elapsed < 1.0, "waited %.2fs for an origin that refuses" % elapsed


def test_refused_origin_without_a_copy_is_502(origin, outposts, tmp_path):
    op = outposts(origin.port, tmp_path / "cache").start()
    origin.stop()
    r, body = op.request("/never-seen", headers={"Accept": "text/html"})
    assert r.status == 502
    assert b"502 Bad Gateway" in body


def test_hanging_origin_gives_stale_after_the_stall_timeout(origin, outposts, tmp_path):
    """The origin accepts and does not answer: requests holding a stale copy
    get it after origin_stall_timeout, not after first_byte_timeout; once the
    origin counts as stalled, new ones get theirs at once; the fetch goes on
    and refreshes the store when the origin finally answers."""
    import threading
    state = {"version": b"v1", "hang": 0.0}

    def page(h):
        time.sleep(state["hang"])
        body = state["version"] + h.path.encode()
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=1")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    origin.routes["/k1"] = origin.routes["/k2"] = page
    op = outposts(origin.port, tmp_path / "cache", site={
        "origin_stall_timeout": "500ms", "first_byte_timeout": "10s"}).start()
    for k in ("/k1", "/k2"):
        assert op.request(k)[1] == b"v1" + k.encode()
    time.sleep(1.3)
    state.update(version=b"v2", hang=2.5)
    results = []

    def one():
        start = time.monotonic()
        r, body = op.request("/k1")
        results.append((r.status, body, r.getheader("Cache-Status"), time.monotonic() - start))
    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(results) == 10
    for status, body, cs, took in results:
        assert status == 200 and body == b"v1/k1", (status, body)
        assert "fwd=stale" in cs, cs
        assert 0.4 < took < 1.5, "answered after %.2fs" % took
    # the origin has sent nothing for over 500 ms with a request out: stalled
    start = time.monotonic()
    r, body = op.request("/k2")
    took = time.monotonic() - start
    assert body == b"v1/k2" and "origin stalled" in r.getheader("Cache-Status")
    assert took < 0.25, "waited %.2fs for a stalled origin" % took
    assert origin.hits["/k1"] == 2  # the waiters shared one revalidation
    time.sleep(2.5)  # the hanging fetch ends and refreshes the store
    r, body = op.request("/k1")
    assert body == b"v2/k1", body


def test_a_slow_body_is_not_a_stalled_origin(origin, outposts, tmp_path):
    """An origin that answered and is still sending a long body is working:
    while it trickles, a stale object is revalidated at the origin, not
    served as if the origin had stalled."""
    import threading

    def trickle(h):
        h.send_response(200)
        h.send_header("Cache-Control", "no-store")
        h.send_header("Content-Length", "6")
        h.end_headers()
        for b in b"slowly":
            h.wfile.write(bytes([b]))
            h.wfile.flush()
            time.sleep(0.4)

    origin.routes["/big"] = trickle
    origin.routes["/obj"] = slow_page(0, b"ok", cc="max-age=1")
    op = outposts(origin.port, tmp_path / "cache", workers=1,
                  site={"origin_stall_timeout": "500ms"}).start()
    assert op.request("/obj")[1] == b"ok"
    time.sleep(1.2)  # /obj is stale
    got = []
    slow = threading.Thread(target=lambda: got.append(op.request("/big", timeout=10)[1]))
    slow.start()
    time.sleep(1.2)  # the head came long ago; body bytes still arrive
    r, body = op.request("/obj")
    assert body == b"ok" and "fwd-status=200" in r.getheader("Cache-Status"), \
        r.getheader("Cache-Status")
    slow.join(10)
    assert got == [b"slowly"]
    assert origin.hits["/obj"] == 2
