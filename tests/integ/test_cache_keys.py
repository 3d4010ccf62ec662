"""Cache keys end to end (security issue defects 3, 12 and 13): Host syntax
is checked (400), a key names the site that answered, names that RFC 9110
§4.2.3 makes equal are one object for lookups and purges alike, and keys
longer than 511 bytes are reachable by every purge kind."""
import socket
import time

from conftest import Origin
from test_admin import admin


def page(name, tags=None):
    def route(h):
        body = ("%s %s\n" % (name, h.path)).encode()
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=300")
        if tags:
            h.send_header("Surrogate-Key", tags)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return route


def start(outposts, origin, tmp_path, named_port=None):
    """A catch-all site on <origin>; with <named_port>, also named.test."""
    sock = str(tmp_path / "admin.sock")
    op = outposts(origin.port, tmp_path / "cache", top={"admin_socket": sock})
    if named_port:
        add_named(op, named_port)
    return op.start(), sock


def add_named(op, port):
    conf = op.args[op.args.index("-c") + 1]
    with open(conf, "a") as f:
        f.write("  - host: named.test\n    origin: http://127.0.0.1:%d\n" % port)


def raw(op, data, timeout=5):
    s = socket.create_connection(("127.0.0.1", op.port), timeout=timeout)
    s.sendall(data)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and b"\r\n\r\n" not in out:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def get(op, target, host, headers=None):
    r, body = op.request(target, headers=dict({"Host": host}, **(headers or {})))
    return r, body


def hit(r):
    return "hit" in (r.getheader("Cache-Status") or "")


BAD_HOSTS = [
    b"victim.com/a", b"victim.com/", b"/", b"a?b", b"a#b", b"user@victim.com",
    b"u:p@victim.com", b"a b", b"victim.com:8o", b"victim.com:80:80", b"[::1",
    b"a\"b", b"a<b>", b"a\\b", b"victim.com:65536", b"a%zz", b"a{b}",
]


def test_bad_hosts_get_400(origin, outposts, tmp_path):
    op, _ = start(outposts, origin, tmp_path)
    for h in BAD_HOSTS:
        resp = raw(op, b"GET /b HTTP/1.1\r\nHost: " + h + b"\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 400"), (h, resp[:80])
    for t in (b"http://u@h/b", b"http://h:x/b", b"http:///b"):
        resp = raw(op, b"GET " + t + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 400"), (t, resp[:80])
    assert sum(origin.hits.values()) == 0
    # what the gate lets through still works
    for h in ("h.test", "H.TEST:80", "h.test:", "[::1]:80", "127.0.0.1:1"):
        r, _ = get(op, "/ok", h)
        assert r.status == 200, h


def test_host_with_a_path_cannot_fill_a_named_sites_url(origin, outposts, tmp_path):
    """Host: named.test/a + GET /b went to the catch-all and was stored as
    http://named.test/a/b: the named site then served the catch-all's page."""
    named = Origin()
    try:
        origin.default = page("catch-all")
        named.default = page("named")
        op, _ = start(outposts, origin, tmp_path, named_port=named.port)
        resp = raw(op, b"GET /b HTTP/1.1\r\nHost: named.test/a\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 400"), resp[:80]
        r, body = get(op, "/a/b", "named.test")
        assert body == b"named /a/b\n" and not hit(r), (body, r.getheader("Cache-Status"))
    finally:
        named.stop()


def test_a_key_names_the_site_that_answered(origin, outposts, tmp_path):
    """The catch-all stored /p for named.test; a reload gives named.test a
    site of its own, which must not serve the catch-all's copy. A URL purge
    still reaches both sites' objects."""
    named = Origin()
    try:
        origin.default = page("catch-all")
        named.default = page("named")
        op, sock = start(outposts, origin, tmp_path)
        for _ in range(50):
            r, body = get(op, "/p", "named.test")
            if hit(r):
                break
            time.sleep(0.05)
        assert hit(r) and body == b"catch-all /p\n"
        add_named(op, named.port)
        st, res = admin(sock, "POST", "/reload")
        assert st == 200 and res["reloaded"], res
        r, body = get(op, "/p", "named.test")
        assert body == b"named /p\n" and not hit(r), (body, r.getheader("Cache-Status"))
        for _ in range(50):
            r, body = get(op, "/p", "named.test")
            if hit(r):
                break
            time.sleep(0.05)
        assert hit(r) and body == b"named /p\n"
        want = ["http://named.test/p *", "http://named.test/p named.test"]
        for _ in range(50):  # inspect sees what the writer committed
            st, res = admin(sock, "GET", "/inspect?url=http%3A%2F%2Fnamed.test%2Fp")
            if st == 200 and sorted(v["key"] for v in res["variants"]) == want:
                break
            time.sleep(0.05)
        assert sorted(v["key"] for v in res["variants"]) == want, res
        st, res = admin(sock, "POST", "/purge", {"url": "http://NAMED.test:80/p"})
        assert st == 200 and res["purged"] == 2, res
        r, body = get(op, "/p", "named.test")
        assert not hit(r) and body == b"named /p\n"
    finally:
        named.stop()


def warm(op, target, host):
    for _ in range(50):
        r, _ = get(op, target, host)
        if hit(r):
            return
        time.sleep(0.05)
    raise AssertionError("no hit for %s %s" % (host, target))


def test_equal_names_are_one_object(origin, outposts, tmp_path):
    op, sock = start(outposts, origin, tmp_path)
    warm(op, "/x", "h.test")
    # RFC 9110 §4.2.3: scheme and host case, default and empty port
    for target, host in (("/x", "H.Test"), ("/x", "h.test:80"), ("/x", "h.test:"),
                         ("HTTP://H.TEST:80/x", "h.test"), ("http://h.test/x", "h.test:80"),
                         ("/x", "h.test:0080")):
        r, _ = get(op, target, host)
        assert hit(r), (target, host, r.getheader("Cache-Status"))
    # percent-encoded unreserved characters are the characters
    warm(op, "/~a-b", "h.test")
    r, _ = get(op, "/%7Ea%2db", "h.test")
    assert hit(r), r.getheader("Cache-Status")
    assert "/%7Ea%2db" not in origin.hits
    # %2F is not /, another port and a trailing dot are other names, the
    # query is kept as sent
    warm(op, "/a/b", "h.test")
    for target, host in (("/a%2Fb", "h.test"), ("/x", "h.test:8080"), ("/x", "h.test."),
                         ("/x?", "h.test")):
        r, _ = get(op, target, host)
        assert not hit(r), (target, host)
    # purges name objects the same way
    st, res = admin(sock, "POST", "/purge", {"url": "https://h.test/x"})
    assert st == 200 and res["purged"] == 0, res  # https is another origin
    st, res = admin(sock, "POST", "/purge", {"url": "HTTP://H.TEST:80/x"})
    assert st == 200 and res["purged"] == 1, res
    assert not hit(get(op, "/x", "h.test")[0])
    st, res = admin(sock, "POST", "/purge", {"url": "http://h.test:/%7ea-b"})
    assert st == 200 and res["purged"] == 1, res
    st, res = admin(sock, "POST", "/purge", {"host": "H.TEST:8080"})
    assert st == 200 and res["purged"] == 1, res
    st, res = admin(sock, "POST", "/purge", {"host": "h.test/x"})
    assert st == 400, res


def test_long_keys_are_reachable_by_every_purge(origin, outposts, tmp_path):
    origin.default = page("o", tags="long-tag")
    op, sock = start(outposts, origin, tmp_path)
    path = "/long-" + "a" * 700
    url = "http://h.test" + path
    cases = [
        {"url": url},
        {"prefix": "http://h.test/long-"},
        {"prefix": url[:600]},
        {"tag": "long-tag"},
        {"host": "h.test"},
        {"host": "*"},
    ]
    for body in cases:
        warm(op, path, "h.test")
        st, res = admin(sock, "POST", "/purge", body)
        assert st == 200 and res["purged"] == 1, (body, res)
        r, _ = get(op, path, "h.test")
        assert not hit(r), body
    warm(op, path, "h.test")
    st, res = admin(sock, "POST", "/purge", {"prefix": "http://h.test/long-", "soft": True})
    assert st == 200 and res["purged"] == 1 and res["soft"], res
    n = origin.hits[path]
    r, _ = get(op, path, "h.test")
    assert origin.hits[path] == n + 1  # stale: asked the origin again
