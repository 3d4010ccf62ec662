"""Hits stream from the store with bounded memory per connection: clients
that never read a 16 MiB object (whole, 16 overlapping ranges, or 16 separate
ranges) do not make the node hold copies of it, a reader that reads later
gets exactly the stored bytes, and a reader mid-body of an object that is
replaced or purged never gets bytes of another object (its connection closes
short instead)."""
import hashlib
import os
import random
import socket
import time

import pytest
from conftest import wait_for_hit

SIZE = 16 * 1024 * 1024
# The README's ceiling is 256 KiB of body per connection: 8 stalled
# connections may add a few MiB, never a copy of the object.
RSS_GROWTH_MAX = 64 * 1024 * 1024


@pytest.fixture(autouse=True)
def small_asan_quarantine(monkeypatch):
    """Under AddressSanitizer freed blocks wait in a quarantine (256 MiB by
    default) before they are unmapped, which RSS would count as held; a
    small one keeps the figures those of the node itself. No effect on a
    build without ASan."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "quarantine_size_mb=1")


def body_v(version):
    return random.Random(version).randbytes(SIZE)


def serve(bodies):
    def route(h):
        body = bodies[h.path]
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=300")
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
    return route


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def slow_client(port, path, headers=""):
    """A connection with a tiny receive buffer that sends one request and
    reads nothing yet."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    # the Host http.client sends, so the cache key is the one op.request stored
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
               % (path, port, headers)).encode())
    return s


def read_response(s, limit_s=60):
    """Read one response with Content-Length: (status, headers, body, whole)."""
    deadline = time.monotonic() + limit_s
    data = b""
    while b"\r\n\r\n" not in data:
        assert time.monotonic() < deadline
        chunk = s.recv(65536)
        assert chunk, "closed before the head"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        fields[k.strip().lower()] = v.strip()
    length = int(fields["content-length"])
    parts = [body]
    got = len(body)
    while got < length and time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    body = b"".join(parts)
    return status, fields, body, len(body) == length


def multipart_parts(ctype, body):
    boundary = ctype.split("boundary=", 1)[1].encode()
    out = []
    for piece in body.split(b"--" + boundary)[1:]:
        if piece.startswith(b"--"):
            break
        head, data = piece[2:].split(b"\r\n\r\n", 1)
        rng = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-range:")]
        span = rng[0].split(b" ")[-1].split(b"/")[0].split(b"-")
        out.append((int(span[0]), int(span[1]), data[:-2] if data.endswith(b"\r\n") else data))
    return out


OVERLAPPING = "Range: bytes=" + ",".join(["0-"] * 16) + "\r\n"
SEPARATE = [(i * 1024 * 1024, i * 1024 * 1024 + 999_999) for i in range(16)]
SEPARATE_HDR = "Range: bytes=" + ",".join("%d-%d" % r for r in SEPARATE) + "\r\n"


def warm(op, path, body):
    """Stored and committed, and read once from LMDB, so that the baseline
    RSS has the object's pages of the map in it."""
    r, data = op.request(path)
    assert data == body
    wait_for_hit(op, path)
    time.sleep(0.5)
    r, data = op.request(path)
    assert "hit" in r.getheader("Cache-Status") and data == body
    time.sleep(0.3)


def test_slow_readers_of_a_large_object_hold_no_copy(origin, outposts, tmp_path):
    big = body_v(1)
    want = hashlib.sha256(big).hexdigest()
    origin.routes["/big"] = serve({"/big": big})
    op = outposts(origin.port, tmp_path / "cache", workers=1).start()
    warm(op, "/big", big)
    base = rss(op.proc.pid)

    clients = []
    try:
        for _ in range(3):
            clients.append(("overlap", slow_client(op.port, "/big", OVERLAPPING)))
        for _ in range(3):
            clients.append(("whole", slow_client(op.port, "/big")))
        for _ in range(2):
            clients.append(("separate", slow_client(op.port, "/big", SEPARATE_HDR)))
        peak = base
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            peak = max(peak, rss(op.proc.pid))
            time.sleep(0.05)
        growth = peak - base
        print("VmRSS baseline %.1f MiB, peak %.1f MiB, growth %.1f MiB with 8 stalled readers"
              % (base / 2**20, peak / 2**20, growth / 2**20))
        assert growth < RSS_GROWTH_MAX, "RSS grew by %.1f MiB" % (growth / 2**20)

        # now every one of them reads: exactly the stored bytes
        for kind, s in clients:
            status, fields, body, whole = read_response(s)
            assert whole, kind
            assert "hit" in fields["cache-status"], kind
            if kind == "whole":
                assert status == 200
                assert hashlib.sha256(body).hexdigest() == want
            elif kind == "overlap":
                assert status == 206
                assert fields["content-range"] == "bytes 0-%d/%d" % (SIZE - 1, SIZE)
                assert hashlib.sha256(body).hexdigest() == want
            else:
                assert status == 206
                parts = multipart_parts(fields["content-type"], body)
                assert [(a, b) for a, b, _ in parts] == SEPARATE
                for a, b, data in parts:
                    assert data == big[a:b + 1]
    finally:
        for _, s in clients:
            s.close()


def read_some(s, n, limit_s=10):
    deadline = time.monotonic() + limit_s
    data = b""
    while len(data) < n and time.monotonic() < deadline:
        chunk = s.recv(min(65536, n - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def read_to_end(s, have, limit_s=30):
    """Read until the body (after <have>, which holds the head) is whole or
    the connection closes."""
    deadline = time.monotonic() + limit_s
    parts = [have]
    got = len(have.split(b"\r\n\r\n", 1)[1])
    while got < SIZE and time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def check_cut_short(s, v1, headers):
    """After the change, the reader gets a prefix of v1 and then the
    connection closes: never a byte of another object."""
    head, body = read_to_end(s, headers).split(b"\r\n\r\n", 1)
    assert b" 200 " in head.split(b"\r\n")[0]
    assert body == v1[:len(body)], "bytes of another object"
    assert len(body) < SIZE, "the whole purged or replaced object was still sent"


def test_object_replaced_mid_body(origin, outposts, tmp_path):
    v1, v2 = body_v(1), body_v(2)
    bodies = {"/swap": v1}
    origin.routes["/swap"] = serve(bodies)
    op = outposts(origin.port, tmp_path / "cache", workers=1).start()
    op.request("/swap")
    wait_for_hit(op, "/swap")
    s = slow_client(op.port, "/swap")
    try:
        first = read_some(s, 64 * 1024)
        assert len(first) == 64 * 1024
        bodies["/swap"] = v2
        r, data = op.request("/swap", headers={"Cache-Control": "no-cache"})
        assert data == v2
        for _ in range(100):  # until the store has committed v2
            r, data = op.request("/swap")
            if "hit" in r.getheader("Cache-Status") and data == v2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("v2 never became a hit")
        check_cut_short(s, v1, first)
    finally:
        s.close()


def test_object_purged_mid_body(origin, outposts, tmp_path):
    v1 = body_v(1)
    origin.routes["/gone"] = serve({"/gone": v1})
    op = outposts(origin.port, tmp_path / "cache", workers=1,
                  top={"purge_allow": "\"127.0.0.0/8\""}).start()
    op.request("/gone")
    wait_for_hit(op, "/gone")
    s = slow_client(op.port, "/gone")
    try:
        first = read_some(s, 64 * 1024)
        assert len(first) == 64 * 1024
        r, _ = op.request("/gone", method="PURGE")
        assert r.status == 200
        check_cut_short(s, v1, first)
    finally:
        s.close()


def test_slow_readers_of_a_stale_object_hold_no_copy(origin, outposts, tmp_path):
    """Stale-while-revalidate: six stalled readers of a stale 16 MiB object
    hold windows, not copies; the background revalidation's 304 freshens the
    object under them without cutting them short (the body, and so its id,
    is the same)."""
    big = body_v(3)
    want = hashlib.sha256(big).hexdigest()
    conditional = []

    def route(h):
        fields = [("Cache-Control", "max-age=2, stale-while-revalidate=60"),
                  ("ETag", '"v1"'), ("Content-Type", "application/octet-stream")]
        if h.headers.get("If-None-Match") == '"v1"':
            conditional.append(time.monotonic())
            time.sleep(1.0)  # every reader below gets the stale copy first
            h.send_response(304)
            h.send_header("Cache-Control", "max-age=60")  # fresh from here on
            h.send_header("ETag", '"v1"')
            h.end_headers()
            return
        h.send_response(200)
        for k, v in fields:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(big)))
        h.end_headers()
        h.wfile.write(big)
    origin.routes["/stale"] = route
    op = outposts(origin.port, tmp_path / "cache", workers=1).start()
    warm(op, "/stale", big)
    time.sleep(2.5)  # stale now, within stale-while-revalidate
    base = rss(op.proc.pid)
    clients = []
    try:
        for _ in range(3):
            clients.append(("whole", slow_client(op.port, "/stale")))
        for _ in range(3):
            clients.append(("separate", slow_client(op.port, "/stale", SEPARATE_HDR)))
        peak = base
        end = time.monotonic() + 2.5  # past the 304 and its commit
        while time.monotonic() < end:
            peak = max(peak, rss(op.proc.pid))
            time.sleep(0.05)
        growth = peak - base
        print("VmRSS baseline %.1f MiB, peak %.1f MiB, growth %.1f MiB with 6 stalled stale readers"
              % (base / 2**20, peak / 2**20, growth / 2**20))
        assert len(conditional) == 1, "one background revalidation"
        assert growth < RSS_GROWTH_MAX, "RSS grew by %.1f MiB" % (growth / 2**20)
        r, _ = op.request("/stale")
        assert "hit" in r.getheader("Cache-Status")  # freshened by the 304
        for kind, s in clients:
            status, fields, body, whole = read_response(s)
            assert whole, kind
            assert "stale-while-revalidate" in fields["cache-status"], kind
            if kind == "whole":
                assert status == 200
                assert hashlib.sha256(body).hexdigest() == want
            else:
                assert status == 206
                parts = multipart_parts(fields["content-type"], body)
                assert [(a, b) for a, b, _ in parts] == SEPARATE
                for a, b, data in parts:
                    assert data == big[a:b + 1]
    finally:
        for _, s in clients:
            s.close()
