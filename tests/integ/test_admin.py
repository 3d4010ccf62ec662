"""The admin API on its Unix socket: purges by URL, prefix, tag and host,
soft purges, durability across kill -9, the race with an in-flight fetch,
socket permissions, malformed requests, stats, metrics, health and drain."""
import grp
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import Outpost


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def admin(sock, method, path, body=None):
    c = UnixHTTPConnection(sock)
    c.request(method, path, body=json.dumps(body) if isinstance(body, dict) else body)
    r = c.getresponse()
    data = r.read()
    c.close()
    ctype = r.getheader("Content-Type") or ""
    return r.status, json.loads(data) if ctype.startswith("application/json") else data


def tagged(tags, cc="max-age=300", header="Surrogate-Key"):
    def route(h):
        body = ("page %s\n" % h.path).encode()
        h.send_response(200)
        h.send_header("Cache-Control", cc)
        if tags:
            h.send_header(header, tags)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return route


def start(outposts, origin, tmp_path, sock=None, **kw):
    sock = sock or str(tmp_path / "admin.sock")
    top = dict(kw.pop("top", {}), admin_socket=sock)
    op = outposts(origin.port, tmp_path / "cache", top=top, **kw).start()
    return op, sock


def cached(op, path):
    """Ask twice, return whether the second answer was a hit."""
    op.request(path)
    for _ in range(50):
        r, _ = op.request(path)
        if "hit" in (r.getheader("Cache-Status") or ""):
            return True
        time.sleep(0.05)
    return False


def is_hit(op, path):
    r, _ = op.request(path)
    return "hit" in (r.getheader("Cache-Status") or "")


def test_purges_by_url_prefix_tag_and_host(origin, outposts, tmp_path):
    origin.routes["/news/1"] = tagged("news front")
    origin.routes["/news/2"] = tagged("news,sport", header="Cache-Tag")
    origin.routes["/sport/1"] = tagged("sport")
    origin.routes["/about"] = tagged(None)
    op, sock = start(outposts, origin, tmp_path)
    for p in ("/news/1", "/news/2", "/sport/1", "/about", "/about?x=1"):
        assert cached(op, p), p
    base = "http://127.0.0.1:%d" % op.port
    st, res = admin(sock, "POST", "/purge", {"url": base + "/about"})
    assert st == 200 and res["purged"] == 1 and res["seq"] == 1, res
    assert not is_hit(op, "/about")  # the very next request
    assert is_hit(op, "/about?x=1")
    st, res = admin(sock, "POST", "/purge", {"tag": "sport"})
    assert st == 200 and res["purged"] == 2, res
    assert not is_hit(op, "/news/2") and not is_hit(op, "/sport/1")
    assert is_hit(op, "/news/1")
    st, res = admin(sock, "POST", "/purge", {"prefix": base + "/news/"})
    assert res["purged"] == 2, res  # /news/1, and /news/2 cached again above
    assert not is_hit(op, "/news/1")
    assert cached(op, "/sport/1")
    st, res = admin(sock, "POST", "/purge", {"host": "127.0.0.1:%d" % op.port})
    assert st == 200 and res["purged"] >= 3 and res["seq"] == 4, res
    assert not is_hit(op, "/sport/1")
    st, health = admin(sock, "GET", "/health")
    assert st == 200 and health["purge_seq"] == 4


def test_soft_purge_keeps_the_copy_for_an_outage(origin, outposts, tmp_path):
    origin.routes["/page"] = tagged("t")
    op, sock = start(outposts, origin, tmp_path)
    assert cached(op, "/page")
    st, res = admin(sock, "POST", "/purge", {"tag": "t", "soft": True})
    assert st == 200 and res == {"purged": 1, "seq": 1, "soft": True}
    origin.stop()
    r, body = op.request("/page")
    assert r.status == 200 and body == b"page /page\n"
    assert "fwd=stale" in r.getheader("Cache-Status")


def test_soft_purge_revalidates(origin, outposts, tmp_path):
    origin.routes["/page"] = tagged("t")
    op, sock = start(outposts, origin, tmp_path)
    assert cached(op, "/page")
    before = origin.hits["/page"]
    admin(sock, "POST", "/purge", {"url": "http://127.0.0.1:%d/page" % op.port, "soft": True})
    r, _ = op.request("/page")
    assert origin.hits["/page"] == before + 1  # asked the origin again
    assert r.status == 200


def test_purge_survives_kill9(origin, outposts, tmp_path):
    op, sock = start(outposts, origin, tmp_path)
    for i in range(20):
        assert cached(op, "/k%d" % i)
    st, res = admin(sock, "POST", "/purge", {"host": "*"})
    assert st == 200 and res["purged"] == 20
    op.kill9()  # right after the acknowledgement
    op2 = outposts(origin.port, tmp_path / "cache", port=op.port,
                   top={"admin_socket": sock}).start()
    hits_before = dict(origin.hits)
    for i in range(20):
        r, _ = op2.request("/k%d" % i)
        assert "hit" not in r.getheader("Cache-Status"), i
    assert all(origin.hits["/k%d" % i] == hits_before["/k%d" % i] + 1 for i in range(20))
    st, health = admin(sock, "GET", "/health")  # a stale socket file was replaced
    assert st == 200 and health["purge_seq"] == 1


def test_response_fetched_before_a_purge_is_not_cached(origin, outposts, tmp_path):
    def slow(h):
        time.sleep(1.0)
        tagged(None)(h)
    origin.routes["/slow"] = slow
    op, sock = start(outposts, origin, tmp_path)
    done = []
    t = threading.Thread(target=lambda: done.append(op.request("/slow")))
    t.start()
    time.sleep(0.3)  # the fetch is under way
    st, res = admin(sock, "POST", "/purge", {"url": "http://127.0.0.1:%d/slow" % op.port})
    assert st == 200
    t.join(10)
    assert done and done[0][0].status == 200  # its own client still gets it
    time.sleep(0.3)
    r, _ = op.request("/slow")
    assert "hit" not in r.getheader("Cache-Status")
    assert origin.hits["/slow"] == 2


@pytest.fixture
def open_dir():
    """A directory another user can reach (pytest's tmp_path is root's only)."""
    d = tempfile.mkdtemp(prefix="outpost-admin-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(sock, request, expect):
    """Connect as uid/gid 65534 in a child; 0 when the answer starts with
    <expect>, else 1, or 10 + errno on a socket error."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            if request:
                s.sendall(request)
            code = 0 if s.recv(4096).startswith(expect) else 1
        except OSError as e:
            code = 10 + (e.errno or 0) % 100
        os._exit(code)
    return os.waitpid(pid, 0)[1] >> 8


def test_socket_permissions(origin, outposts, tmp_path, open_dir):
    op, sock = start(outposts, origin, tmp_path, sock=os.path.join(open_dir, "admin.sock"))
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    os.chmod(sock, 0o666)  # past the file mode: the peer check still refuses
    # refused peers are answered at once, before any request (sending one
    # could race the close)
    assert as_nobody(sock, None, b"HTTP/1.1 403") == 0
    assert "refused uid 65534" in "".join(op.log)


def test_admin_group_lets_members_in(origin, outposts, tmp_path, open_dir):
    group = grp.getgrgid(65534).gr_name
    op, sock = start(outposts, origin, tmp_path, sock=os.path.join(open_dir, "admin.sock"),
                     top={"admin_group": group})
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    assert os.stat(sock).st_gid == 65534
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    assert as_nobody(sock, request, b"HTTP/1.1 200") == 0


def raw(sock, data, read=True):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(data)
    out = b""
    while read:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_malformed_admin_requests(origin, outposts, tmp_path):
    op, sock = start(outposts, origin, tmp_path)
    cases = [
        ("POST", "/purge", "{nope", 400, "expected a JSON object"),
        ("POST", "/purge", "[1]", 400, "not an object"),
        ("POST", "/purge", {"url": "x", "tag": "y"}, 400, "exactly one"),
        ("POST", "/purge", {}, 400, "exactly one"),
        ("POST", "/purge", {"tag": "a b"}, 400, "no spaces"),
        ("POST", "/purge", {"tag": ""}, 400, "1 to 256"),
        ("POST", "/purge", {"url": "ftp://x/"}, 400, "http://"),
        ("POST", "/purge", {"url": "http:///x"}, 400, "needs a host"),
        ("POST", "/purge", {"url": "http://h/a", "soft": "yes"}, 400, "soft"),
        ("POST", "/purge", {"url": "http://h/a", "local": "yes"}, 400, "local must be true or false"),
        ("POST", "/purge", {"url": "http://h/a", "local": 1}, 400, "local must be true or false"),
        ("POST", "/purge", {"url": "http://h/a", "local": None}, 400, "local must be true or false"),
        ("POST", "/purge", {"url": "http://h/a", "colour": 1}, 400, "unknown field"),
        ("POST", "/purge", {"url": 7}, 400, "string"),
        ("POST", "/purge", '{"url": "http://h/", "url": "http://h/"}', 400, "duplicate"),
        ("GET", "/purge", None, 405, "POST"),
        ("POST", "/stats", None, 405, "GET"),
        ("GET", "/nope", None, 404, "no such endpoint"),
        ("GET", "/inspect", None, 400, "give ?url="),
        ("GET", "/inspect?url=", None, 400, "give ?url="),
        ("GET", "/inspect?url=ftp%3A%2F%2Fx", None, 400, "http://"),
        ("GET", "/inspect?url=http%3A%2F%2Fh%2F%00", None, 400, "control character"),
    ]
    for method, path, body, status, words in cases:
        st, res = admin(sock, method, path, body)
        assert st == status, (method, path, body, st, res)
        assert words in res["error"], (body, res)
    assert raw(sock, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    big = b"POST /purge HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    assert raw(sock, big).startswith(b"HTTP/1.1 413")
    assert raw(sock, b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\n").startswith(b"HTTP/1.1 4")
    chunked = (b"POST /purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"ffff\r\n" + b"x" * 65535 + b"\r\nffff\r\n" + b"x" * 65535 + b"\r\n0\r\n\r\n")
    assert raw(sock, chunked).startswith(b"HTTP/1.1 413")
    raw(sock, b"POST /purge HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{", read=False)
    # two requests on one connection, answered in order
    two = raw(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n")
    assert two.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 404" in two
    st, health = admin(sock, "GET", "/health")
    assert st == 200 and health["status"] == "ready"
    r, _ = op.request("/still-serving")
    assert r.status == 200


def test_stats_metrics_and_drain(origin, outposts, tmp_path):
    op, sock = start(outposts, origin, tmp_path)
    assert cached(op, "/s")
    for _ in range(50):  # a hit may come from a write not yet committed, and a
        # request is counted just after its last byte is written
        st, stats = admin(sock, "GET", "/stats")
        if stats["store"]["objects"] == 1 and stats["sites"]["*"]["requests"] >= 2:
            break
        time.sleep(0.05)
    assert st == 200
    assert stats["counters"]["cache_hits_total"] >= 1
    assert stats["counters"]["requests_total"] >= 2
    assert stats["store"]["objects"] == 1
    site = stats["sites"]["*"]
    assert site["requests"] >= 2 and site["hits"] >= 1 and site["misses"] == 1
    assert site["origin_2xx"] == 1 and site["responses_5xx"] == 0
    st, text = admin(sock, "GET", "/metrics")
    lines = text.decode().splitlines()
    assert any(line.startswith("outpost_cache_hits_total ") for line in lines)
    assert "# TYPE outpost_store_objects gauge" in lines
    assert any(line.startswith('outpost_site_hits_total{site="*"} ') for line in lines)
    for line in lines:  # the exposition format: comments or "name value"
        assert line.startswith("# ") or (len(line.split()) == 2 and line.split()[1].isdigit())
    st, res = admin(sock, "POST", "/drain")
    assert st == 200 and res["status"] == "draining"
    st, _ = admin(sock, "GET", "/health")
    assert st == 503
    r, _ = op.request("/s")  # the listeners keep serving
    assert r.status == 200
    st, res = admin(sock, "POST", "/undrain")
    st, _ = admin(sock, "GET", "/health")
    assert st == 200


def test_a_live_socket_is_not_taken_over(origin, outposts, tmp_path):
    op, sock = start(outposts, origin, tmp_path)
    second = Outpost(origin.port, tmp_path / "cache2", top={"admin_socket": sock})
    p = subprocess.run(second.args, capture_output=True, text=True, timeout=20)
    assert p.returncode == 3, p.stderr
    assert "another node answers on it" in p.stderr
    st, _ = admin(sock, "GET", "/health")
    assert st == 200


def test_requests_after_a_purge_do_not_join_a_fetch_from_before(origin, outposts, tmp_path):
    n = {"hits": 0}

    def versioned(h):
        n["hits"] += 1
        body = b"v%d" % n["hits"]
        time.sleep(1.0)
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=300")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    origin.routes["/v"] = versioned
    op, sock = start(outposts, origin, tmp_path, workers=1)
    out = {}

    def get(name):
        out[name] = op.request("/v")[1]
    a = threading.Thread(target=get, args=("a",))
    a.start()
    time.sleep(0.3)  # A's fetch is under way
    st, _ = admin(sock, "POST", "/purge", {"url": "http://127.0.0.1:%d/v" % op.port})
    assert st == 200
    b = threading.Thread(target=get, args=("b",))
    b.start()  # after the purge: must not share A's fetch
    a.join(10)
    b.join(10)
    assert out == {"a": b"v1", "b": b"v2"}
    time.sleep(0.3)
    r, body = op.request("/v")
    assert body == b"v2" and "hit" in r.getheader("Cache-Status")


def test_purge_method_on_the_data_port(origin, outposts, tmp_path):
    op = outposts(origin.port, tmp_path / "c1", top={"purge_allow": "\"10.0.0.0/8, 127.0.0.0/8\""}
                  ).start()
    assert cached(op, "/a")
    r, body = op.request("/a", method="PURGE")
    assert r.status == 200 and json.loads(body) == {"purged": 1, "seq": 1, "soft": False}
    assert not is_hit(op, "/a")
    assert cached(op, "/a")
    r, body = op.request("/a", method="PURGE", headers={"Soft-Purge": "1"})
    assert json.loads(body)["soft"] is True
    r, _ = op.request("/a")
    assert "fwd=stale" in r.getheader("Cache-Status")  # revalidated, not a hit
    # from outside purge_allow: refused, nothing purged
    op2 = outposts(origin.port, tmp_path / "c2", top={"purge_allow": "10.0.0.0/8"}).start()
    assert cached(op2, "/b")
    r, body = op2.request("/b", method="PURGE", headers={"Accept": "text/plain"})
    assert r.status == 403 and b"not allowed" in body
    assert is_hit(op2, "/b")
    for _ in range(40):  # the node's stderr is read by a thread of its own
        if "PURGE from 127.0.0.1 refused" in "".join(op2.log):
            break
        time.sleep(0.05)
    assert "PURGE from 127.0.0.1 refused" in "".join(op2.log)
    # off by default: PURGE is just another method, passed to the origin
    op3 = outposts(origin.port, tmp_path / "c3").start()
    assert cached(op3, "/c")
    r, _ = op3.request("/c", method="PURGE")
    assert r.status == 501  # the test origin does not know PURGE
    assert is_hit(op3, "/c")
