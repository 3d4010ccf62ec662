"""The pool of idle origin connections: kept for origin_idle_timeout, and let
go a second before the origin's own Keep-Alive timeout, so that no request is
sent into the origin's close (a PUT or POST caught by that could not be sent
again, and would be a 502)."""
import time

from conftest import Origin


def route(keep_alive=None):
    def answer(h):
        h.send_response(200)
        h.send_header("Cache-Control", "private")  # every request reaches the origin
        if keep_alive is not None:
            h.send_header("Keep-Alive", keep_alive)
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")
    return answer


def reconnects(op, origin, path, idle):
    """Does a request for <path>, sent <idle> seconds after the answer to the
    one before it, reach the origin on a new connection?"""
    r, _ = op.request(path)
    assert r.status == 200
    before = len(origin.conns)
    time.sleep(idle)
    r, _ = op.request(path)
    assert r.status == 200
    return len(origin.conns) > before


def test_keep_alive_timeout_shortens_the_pool(origin, outposts, tmp_path):
    origin.routes["/plain"] = route()
    origin.routes["/hinted"] = route("timeout=2, max=100")
    origin.routes["/short"] = route("timeout=1")
    op = outposts(origin.port, tmp_path / "c", workers=1).start()
    # no hint: the connection is pooled for 30 s and reused
    assert not reconnects(op, origin, "/plain", 1.4)
    # "timeout=2": pooled for 1 s, so after 1.4 s a new connection
    assert reconnects(op, origin, "/hinted", 1.4)
    # ... and within that second still reused
    assert not reconnects(op, origin, "/hinted", 0.3)
    # "timeout=1": half of it
    assert reconnects(op, origin, "/short", 0.7)
    assert not reconnects(op, origin, "/short", 0.1)


def test_origin_idle_timeout(origin, outposts, tmp_path):
    origin.routes["/plain"] = route()
    origin.routes["/long"] = route("timeout=60")
    op = outposts(origin.port, tmp_path / "c", workers=1,
                  site={"origin_idle_timeout": "500ms"}).start()
    assert reconnects(op, origin, "/plain", 0.8)
    # an origin that keeps connections longer does not lengthen our limit
    assert reconnects(op, origin, "/long", 0.8)
    assert not reconnects(op, origin, "/plain", 0.1)
