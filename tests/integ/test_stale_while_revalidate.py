"""stale-while-revalidate across workers: many concurrent requests for a
stale object are answered at once, and the origin sees one request."""
import threading
import time


def test_one_background_request_for_many_clients(origin, outposts, tmp_path):
    calls = []

    def swr(h):
        calls.append(time.monotonic())
        if len(calls) > 1:
            time.sleep(2.0)  # a slow revalidation nobody should wait for
        body = ("version %d" % len(calls)).encode()
        h.send_response(200)
        # version 1 goes stale at once; later ones stay fresh for the final check
        h.send_header("Cache-Control", "max-age=1, stale-while-revalidate=60"
                      if len(calls) == 1 else "max-age=60")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    origin.routes["/swr"] = swr
    op = outposts(origin.port, tmp_path / "cache").start()  # two workers
    assert op.request("/swr")[1] == b"version 1"
    time.sleep(1.5)

    results = []

    def client():
        for _ in range(5):
            start = time.monotonic()
            r, body = op.request("/swr")
            results.append((r.status, body, time.monotonic() - start))
    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 100
    assert all(status == 200 for status, _, _ in results)
    assert all(body == b"version 1" for _, body, _ in results)
    assert max(elapsed for _, _, elapsed in results) < 1.5, "a client waited for the origin"
    time.sleep(2.5)
    r, body = op.request("/swr")
    assert body == b"version 2"
    assert len(calls) == 2, "the origin saw %d requests" % len(calls)
