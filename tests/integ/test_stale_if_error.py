"""stale-if-error when the origin is gone: the stored copy is served at once."""
import time


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
