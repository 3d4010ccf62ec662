"""Origin bodies are streamed to the client as they arrive; objects over
max_object_size are passed through and not stored."""
import socket
import time


def test_first_bytes_arrive_before_the_origin_finishes(origin, outposts, tmp_path):
    def trickle(h):
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Cache-Control", "max-age=60")
        h.end_headers()
        h.wfile.write(b"5\r\nfirst\r\n")
        h.wfile.flush()
        time.sleep(1.5)
        h.wfile.write(b"6\r\nsecond\r\n0\r\n\r\n")
    origin.routes["/trickle"] = trickle
    op = outposts(origin.port, tmp_path / "cache").start()
    s = socket.create_connection(("127.0.0.1", op.port), timeout=5)
    start = time.monotonic()
    s.sendall(b"GET /trickle HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    while b"first" not in got:
        chunk = s.recv(4096)
        assert chunk, "closed early"
        got += chunk
    first = time.monotonic() - start
    while not got.endswith(b"0\r\n\r\n"):
        chunk = s.recv(4096)
        assert chunk, "closed early"
        got += chunk
    total = time.monotonic() - start
    s.close()
    assert first < 1.0, "first bytes took %.2fs: the body was buffered" % first
    assert total >= 1.4
    assert b"second" in got


def test_large_object_streams_and_is_not_stored(origin, outposts, tmp_path):
    big = b"x" * (3 * 1024 * 1024)

    def large(h):
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=60")
        h.send_header("Content-Length", str(len(big)))
        h.end_headers()
        h.wfile.write(big)
    origin.routes["/large"] = large
    op = outposts(origin.port, tmp_path / "cache")
    op.args += []  # the quick start has no max_object_size flag: use a config file
    conf = tmp_path / "op.yaml"
    conf.write_text("listen: 127.0.0.1:%d\ncache_dir: %s\nmax_object_size: 1m\nworkers: 1\n"
                    "sites:\n  - origin: http://127.0.0.1:%d\n"
                    % (op.port, tmp_path / "cache", origin.port))
    op.args = [op.args[0], "-c", str(conf)]
    op.start()
    r, body = op.request("/large")
    assert r.status == 200
    assert body == big
    assert 'detail="too large"' in r.getheader("Cache-Status")
    time.sleep(0.3)
    r, body = op.request("/large")
    assert body == big
    assert origin.hits["/large"] == 2
