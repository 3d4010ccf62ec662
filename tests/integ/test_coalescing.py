"""Request coalescing across workers: concurrent misses for one object make
one origin request, waiters read the bytes as they arrive, unshareable
answers release them, and every waiter gets an answer."""
import http.client
import socket
import threading
import time

from conftest import wait_for_hit


def herd(op, path, n, headers=None, timeout=10, stagger=0.0):
    """n clients at once (each on its own connection); returns a list of
    (status, headers, body or exception, elapsed) in no particular order."""
    out = []
    lock = threading.Lock()
    gate = threading.Barrier(n)

    def one(i):
        gate.wait()
        if stagger:
            time.sleep(stagger * i)
        start = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", op.port, timeout=timeout)
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            res = (r.status, dict(r.getheaders()), body, time.monotonic() - start)
            c.close()
        except (http.client.HTTPException, OSError) as e:
            res = (None, {}, e, time.monotonic() - start)
        with lock:
            out.append(res)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    assert len(out) == n, "a client never finished"
    return out


def slow_page(delay, body=b"the shared page\n", cc="max-age=300", status=200, headers=()):
    def route(h):
        time.sleep(delay)
        h.send_response(status)
        h.send_header("Cache-Control", cc)
        for name, value in headers:
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return route


def test_herd_makes_one_origin_request(origin, outposts, tmp_path):
    origin.routes["/hot"] = slow_page(0.5)
    op = outposts(origin.port, tmp_path / "cache").start()  # two workers
    res = herd(op, "/hot", 100)
    assert all(status == 200 for status, _, _, _ in res)
    assert all(body == b"the shared page\n" for _, _, body, _ in res)
    assert origin.hits["/hot"] == 1, "the origin saw %d requests" % origin.hits["/hot"]
    statuses = [h.get("Cache-Status", "") for _, h, _, _ in res]
    leaders = [s for s in statuses if "collapsed" not in s and "hit" not in s]
    assert len(leaders) == 1 and "fwd=uri-miss; fwd-status=200; stored" in leaders[0]
    assert sum("collapsed" in s for s in statuses) >= 90  # the rest arrived while it ran
    assert max(e for _, _, _, e in res) < 0.5 + 1.0
    r, body = op.request("/hot")
    assert "hit" in r.getheader("Cache-Status") and body == b"the shared page\n"


def test_waiters_read_while_the_origin_writes(origin, outposts, tmp_path):
    release = threading.Event()

    def chunked(h):
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=300")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.write(b"6\r\nfirst \r\n")
        h.wfile.flush()
        release.wait(5)
        h.wfile.write(b"6\r\nsecond\r\n0\r\n\r\n")
    origin.routes["/stream"] = chunked
    op = outposts(origin.port, tmp_path / "cache").start()

    def first_bytes(sock):
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % op.port)
        data = b""
        while b"first " not in data:
            more = sock.recv(4096)
            assert more, "closed before the first chunk"
            data += more
        return data

    socks = [socket.create_connection(("127.0.0.1", op.port), timeout=5) for _ in range(4)]
    try:
        heads = [first_bytes(s) for s in socks[:3]]  # the body is still being written
        late = first_bytes(socks[3])  # joins mid-body: reads from the start
        assert b"collapsed" in late
        release.set()
        for s, data in zip(socks[:4], heads + [late]):
            while not data.endswith(b"0\r\n\r\n"):
                more = s.recv(4096)
                assert more, "closed before the end"
                data += more
            assert b"first " in data and b"second" in data
    finally:
        release.set()
        for s in socks:
            s.close()
    assert origin.hits["/stream"] == 1
    r, body = wait_for_hit(op, "/stream")  # the same key as the raw requests
    assert body == b"first second" and origin.hits["/stream"] == 1


def test_unshareable_answer_releases_waiters_then_never_queues(origin, outposts, tmp_path):
    origin.routes["/private"] = slow_page(0.5, cc="private")
    op = outposts(origin.port, tmp_path / "cache").start()
    # eight: what the origin's concurrency limit starts at, even if every
    # request lands on one worker
    res = herd(op, "/private", 8)
    assert all(status == 200 for status, _, _, _ in res)
    # the leader's fetch answered it; each released waiter fetched its own
    assert origin.hits["/private"] == 8
    # the hit-for-miss marker: the next herd goes to the origin in parallel
    start = time.monotonic()
    res = herd(op, "/private", 8)
    took = time.monotonic() - start
    assert all(status == 200 for status, _, _, _ in res)
    assert origin.hits["/private"] == 16
    # one origin delay, where waiting behind a leader would take two
    assert took < 0.5 * 1.7, "requests for an uncacheable URL were serialized (%.2fs)" % took


def test_fetch_goes_on_when_the_leader_leaves(origin, outposts, tmp_path):
    origin.routes["/slow"] = slow_page(0.8)
    op = outposts(origin.port, tmp_path / "cache").start()
    s = socket.create_connection(("127.0.0.1", op.port), timeout=5)
    s.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % op.port)
    time.sleep(0.2)
    s.close()  # the leading client is gone
    res = herd(op, "/slow", 5)
    assert all(status == 200 and body == b"the shared page\n" for status, _, body, _ in res)
    assert origin.hits["/slow"] == 1
    assert "hit" in op.request("/slow")[0].getheader("Cache-Status")


def test_mid_body_failure_closes_waiters_and_stores_nothing(origin, outposts, tmp_path):
    state = {"broken": True}

    def cut(h):
        if not state["broken"]:
            return slow_page(0, b"whole\n")(h)
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=300")
        h.send_header("Transfer-Encoding", "chunked")  # nothing but the end marks the end
        h.end_headers()
        h.wfile.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        h.wfile.flush()
        time.sleep(0.5)  # the waiters get these bytes first
        h.connection.shutdown(socket.SHUT_RDWR)
        h.close_connection = True
    origin.routes["/cut"] = cut
    op = outposts(origin.port, tmp_path / "cache").start()
    res = herd(op, "/cut", 8)
    # each saw the head and part of the body, then the connection closed: never
    # a clean short body
    assert all(isinstance(body, (http.client.IncompleteRead, OSError))
               for _, _, body, _ in res), [(type(b), b) for _, _, b, _ in res]
    assert max(e for _, _, _, e in res) < 3  # closed at once, not at a timeout
    assert origin.hits["/cut"] == 1
    state["broken"] = False
    r, body = op.request("/cut")
    assert body == b"whole\n" and "fwd=uri-miss" in r.getheader("Cache-Status")
    assert origin.hits["/cut"] == 2  # nothing truncated was stored


def test_waiter_cap_answers_503_at_once(origin, outposts, tmp_path):
    origin.routes["/capped"] = slow_page(1.0)
    op = outposts(origin.port, tmp_path / "cache", site={"coalesce_max_waiters": 3}).start()
    res = herd(op, "/capped", 10)
    ok = [r for r in res if r[0] == 200]
    busy = [r for r in res if r[0] == 503]
    assert len(ok) == 4 and len(busy) == 6  # the leader's request and three waiters
    for _, headers, body, elapsed in busy:
        assert headers.get("Retry-After") == "5"
        assert b"503" in body and b"waiting" in body
        assert elapsed < 0.6  # not after the origin's answer
    assert origin.hits["/capped"] == 1


def test_wait_deadline_gives_stale_or_503(origin, outposts, tmp_path):
    calls = []

    def page(h):
        calls.append(1)
        if len(calls) > 1:
            time.sleep(1.5)  # a slow revalidation
        body = ("version %d" % len(calls)).encode()
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=1")
        h.send_header("ETag", '"v%d"' % len(calls))
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    origin.routes["/page"] = page
    origin.routes["/cold"] = slow_page(1.5)
    op = outposts(origin.port, tmp_path / "cache", site={"coalesce_timeout": "300ms"}).start()
    # cold: nothing to serve, so 503 with Retry-After once the deadline passes
    res = herd(op, "/cold", 5)
    for status, headers, _, elapsed in res:
        assert status == 503 and headers.get("Retry-After") == "5"
        assert 0.25 < elapsed < 0.3 + 1.0
    # the fetch went on and stored its answer for the next requests
    time.sleep(1.5)
    assert "hit" in op.request("/cold")[0].getheader("Cache-Status")
    assert origin.hits["/cold"] == 1
    # stale copy present: the waiters get it at the deadline
    assert op.request("/page")[1] == b"version 1"
    time.sleep(1.2)
    res = herd(op, "/page", 5)
    for status, headers, body, elapsed in res:
        assert status == 200 and body == b"version 1"
        assert "fwd=stale" in headers["Cache-Status"] and "origin slow" in headers["Cache-Status"]
        assert elapsed < 0.3 + 1.0
    assert len(calls) == 2  # one revalidation for all of them


def test_origin_error_is_not_retried_by_every_waiter(origin, outposts, tmp_path):
    # a 500: one origin request for the whole herd
    origin.routes["/broken"] = slow_page(0.4, b"origin broken\n", cc="no-store", status=500)
    # a lone bare 503 may be that page's own answer: passed on, not retried
    origin.routes["/gone"] = slow_page(0.4, b"origin overloaded\n", cc="no-store", status=503)
    # a 503 with Retry-After sheds load: the one shared request is retried
    # four times (Retry-After: 0 says at once), never once per waiter
    origin.routes["/down"] = slow_page(0.4, b"origin overloaded\n", cc="no-store", status=503,
                                       headers=[("Retry-After", "0")])
    op = outposts(origin.port, tmp_path / "cache").start()
    for path, status, tries in (("/broken", 500, 1), ("/gone", 503, 1), ("/down", 503, 5)):
        res = herd(op, path, 10)
        assert all(s == status for s, _, _, _ in res)
        bodies = [body for _, _, body, _ in res]
        own = ("origin %s\n" % ("broken" if status == 500 else "overloaded")).encode()
        assert bodies.count(own) == 1  # the leader got the origin's own answer
        for _, headers, body, _ in res:
            if body != own:
                assert b"the origin answered %d" % status in body
                assert (headers.get("Retry-After") == "5") == (status == 503)
        assert origin.hits[path] == tries


def test_storable_5xx_never_replaces_a_stale_copy_for_waiters(origin, outposts, tmp_path):
    calls = []

    def page(h):
        calls.append(1)
        if len(calls) == 1:
            return slow_page(0, b"good\n", cc="max-age=1")(h)
        # an error page the origin even says may be cached
        return slow_page(0.3, b"oops\n", cc="max-age=60", status=503)(h)
    origin.routes["/p"] = page
    op = outposts(origin.port, tmp_path / "cache").start()
    assert op.request("/p")[1] == b"good\n"
    time.sleep(1.2)
    res = herd(op, "/p", 5)
    for status, headers, body, _ in res:
        assert status == 200 and body == b"good\n", (status, body)
        assert "fwd=stale" in headers["Cache-Status"]
