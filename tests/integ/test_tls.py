"""TLS termination: certificates by SNI, the no-SNI policy, RSA beside ECDSA,
resumption across workers, reload under load, the scheme in the cache key,
https_redirect, handshake limits and the errors a bad certificate gives."""
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings

import pytest

from conftest import OUTPOST, Outpost, free_port
from test_admin import admin
from test_coalescing import slow_page
from tlsutil import CA, https_get, peer_cn, tls_connect


@pytest.fixture
def ca(tmp_path):
    return CA(tmp_path / "pki")


def tls_node(outposts, origin, tmp_path, ca, top=None, site=None, workers=2, certs=None):
    """A node with listen_tls and the default certificate for localhost."""
    crt, key = certs or ca.leaf("default", "localhost")
    tls_port = free_port()
    conf = {"listen_tls": "127.0.0.1:%d" % tls_port, "tls_cert": crt, "tls_key": key,
            "admin_socket": str(tmp_path / "admin.sock")}
    conf.update(top or {})
    op = outposts(origin.port, tmp_path / "cache", top=conf, site=site or {}, workers=workers)
    op.tls_port = tls_port
    op.sock = conf["admin_socket"]
    return op.start()


def metrics(op):
    _, stats = admin(op.sock, "GET", "/stats")
    return stats["counters"]


def test_https_hits_and_the_scheme_is_in_the_key(origin, outposts, tmp_path, ca):
    seen = []

    def page(h):
        seen.append(h.headers.get("X-Forwarded-Proto"))
        body = b"scheme page\n"
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=300")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    origin.routes["/p"] = page
    op = tls_node(outposts, origin, tmp_path, ca)
    ctx = ca.context()
    st, hdrs, body = https_get(ctx, op.tls_port, "/p")
    assert (st, body) == (200, b"scheme page\n")
    _, stats = admin(op.sock, "GET", "/stats")
    assert 29 * 86400 < stats["tls"]["cert_expires_in_s"] <= 30 * 86400
    for _ in range(50):
        st, hdrs, body = https_get(ctx, op.tls_port, "/p")
        if "hit" in hdrs.get("cache-status", ""):
            break
        time.sleep(0.05)
    assert "hit" in hdrs["cache-status"] and body == b"scheme page\n"
    # a large hit goes out whole (windows of the stored body, sealed as they go)
    large = bytes(range(256)) * (32 << 10)  # 8 MiB
    origin.routes["/large"] = slow_page(0, large)
    for _ in range(3):
        st, hdrs, body = https_get(ctx, op.tls_port, "/large")
        assert st == 200 and body == large, hdrs
    assert "hit" in hdrs["cache-status"]
    # RFC 9110 §4.2: http://localhost/p is another resource
    r, data = op.request("/p", headers={"Host": "localhost"})
    assert "miss" in r.getheader("Cache-Status") and data == b"scheme page\n"
    assert seen == ["https", "http"]
    # a plain request cannot name an https target (nor the reverse)
    r, _ = op.request("https://localhost/p")
    assert r.status == 400
    st, _, _ = https_get(ctx, op.tls_port, "http://localhost/p")
    assert st == 400
    c = metrics(op)
    assert c["tls_handshakes_tls13_total"] >= 3  # one per connection above


def test_schemes_share_cache_when_the_site_says_so(origin, outposts, tmp_path, ca):
    op = tls_node(outposts, origin, tmp_path, ca, site={"schemes_share_cache": "true"})
    ctx = ca.context()
    https_get(ctx, op.tls_port, "/shared")
    for _ in range(50):
        r, data = op.request("/shared", headers={"Host": "localhost"})
        if "hit" in (r.getheader("Cache-Status") or ""):
            break
        time.sleep(0.05)
    assert "hit" in r.getheader("Cache-Status")
    assert origin.hits["/shared"] == 1


def write_sites_conf(path, port, tls_port, cache, origin_port, default, sites, extra=""):
    with open(path, "w") as f:
        f.write("listen: 127.0.0.1:%d\nlisten_tls: 127.0.0.1:%d\ncache_dir: %s\nworkers: 2\n"
                % (port, tls_port, cache))
        if default:
            f.write("tls_cert: %s\ntls_key: %s\n" % default)
        f.write(extra)
        f.write("sites:\n")
        for host, certs, keys in sites:
            f.write("  - host: %s\n    origin: http://127.0.0.1:%d\n" % (host, origin_port))
            if certs:
                f.write("    tls_cert: [%s]\n    tls_key: [%s]\n"
                        % (", ".join(certs), ", ".join(keys)))


def start_conf(conf, log=None):
    p = subprocess.Popen([OUTPOST, "-c", conf], stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "ready" in line:
            threading.Thread(target=lambda: [lines.append(x) for x in p.stderr],
                             daemon=True).start()
            return p, lines
    p.kill()
    raise RuntimeError("not ready: %s" % "".join(lines))


def stop(p):
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=15) == 0


def test_sni_picks_the_site_certificate_rsa_beside_ecdsa(origin, tmp_path, ca):
    default = ca.leaf("default", "localhost")
    a = ca.leaf("a", "a.test")
    b_ec = ca.leaf("b-ec", "b.test")
    b_rsa = ca.leaf("b-rsa", "b.test", rsa=True)
    port, tls_port = free_port(), free_port()
    conf = str(tmp_path / "sni.yaml")
    write_sites_conf(conf, port, tls_port, tmp_path / "cache", origin.port, default,
                     [("a.test", [a[0]], [a[1]]),
                      ("b.test", [b_rsa[0], b_ec[0]], [b_rsa[1], b_ec[1]]),
                      ("\"*\"", None, None)])
    p, _ = start_conf(conf)
    try:
        ctx = ca.context()
        for sni, cn in (("a.test", "a.test"), ("A.Test", "a.test"), ("b.test", "b.test")):
            s = tls_connect(ctx, tls_port, sni)
            assert peer_cn(s) == cn
            s.close()
        # a name without a certificate of its own, and no SNI at all: the default
        loose = ca.context(sni_check=False)
        for sni in ("other.test", None):
            s = tls_connect(loose, tls_port, sni)
            assert peer_cn(s) == "localhost"
            s.close()
        # each key type to the client that can use it (openssl s_client says)
        for sigalgs, bits in (("rsa_pss_rsae_sha256", "2048"), ("ecdsa_secp256r1_sha256", "256")):
            out = subprocess.run(
                ["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls_port,
                 "-servername", "b.test", "-sigalgs", sigalgs, "-CAfile", ca.crt,
                 "-verify_return_error", "-verify_hostname", "b.test"],
                input="", capture_output=True, text=True, timeout=20).stdout
            assert "Server public key is %s bit" % bits in out, out
            assert "Verify return code: 0 (ok)" in out
        # the site answers over its certificate
        st, _, body = https_get(ctx, tls_port, "/x", sni="a.test")
        assert st == 200 and body == b"page /x\n"
        # a connection made for a.test's certificate serves a.test alone
        # (RFC 9110 §15.5.20); one on the default certificate any site
        st, _, _ = https_get(ctx, tls_port, "/x", sni="a.test", host="b.test")
        assert st == 421
        st, _, body = https_get(loose, tls_port, "/y", sni="other.test", host="a.test")
        assert st == 200 and body == b"page /y\n"
    finally:
        stop(p)


def test_unknown_sni_can_be_refused(origin, tmp_path, ca):
    a = ca.leaf("a", "a.test")
    port, tls_port = free_port(), free_port()
    conf = str(tmp_path / "reject.yaml")
    write_sites_conf(conf, port, tls_port, tmp_path / "cache", origin.port, None,
                     [("a.test", [a[0]], [a[1]])], extra="tls_unknown_sni: reject\n")
    p, _ = start_conf(conf)
    try:
        loose = ca.context(sni_check=False)
        for sni in ("other.test", None):
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                tls_connect(loose, tls_port, sni)
        s = tls_connect(ca.context(), tls_port, "a.test")
        assert peer_cn(s) == "a.test"
        s.close()
    finally:
        stop(p)


def test_resumption_across_workers(origin, outposts, tmp_path, ca):
    op = tls_node(outposts, origin, tmp_path, ca, workers=4)
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx = ca.context(max_version=version)
        first = tls_connect(ctx, op.tls_port, "localhost")
        https_get(ctx, op.tls_port, "/r", conn=first)  # TLS 1.3: the ticket came
        session = first.session
        first.close()
        workers = set()
        for _ in range(40):
            s = tls_connect(ctx, op.tls_port, "localhost", session=session)
            assert s.session_reused, version
            # a request the node answers itself names the worker that took it
            st, hdrs, _ = https_get(ctx, op.tls_port, "http://localhost/", conn=s)
            assert st == 400
            workers.add(hdrs["x-request-id"].split("-")[0])
            s.close()
        assert len(workers) >= 2, workers
    c = metrics(op)
    assert c["tls_resumed_total"] >= 80
    assert c["tls_handshakes_tls12_total"] >= 40 and c["tls_handshakes_tls13_total"] >= 40


def test_reload_swaps_certificates_under_load(origin, outposts, tmp_path, ca):
    crt, key = ca.leaf("default", "localhost")
    op = tls_node(outposts, origin, tmp_path, ca, certs=(crt, key))
    ctx = ca.context()
    held = tls_connect(ctx, op.tls_port, "localhost")  # made before, used after
    assert https_get(ctx, op.tls_port, "/held", conn=held)[0] == 200
    old_serial = held.getpeercert()["serialNumber"]
    failures, serials, stop_at = [], set(), [False]

    def load():
        n = 0
        while not stop_at[0] and n < 2000:
            n += 1
            try:
                s = tls_connect(ctx, op.tls_port, "localhost")
                serials.add(s.getpeercert()["serialNumber"])
                st, _, _ = https_get(ctx, op.tls_port, "/load%d" % (n % 5), conn=s)
                if st != 200:
                    failures.append(st)
                s.close()
            except Exception as e:  # any failure is the test's failure
                failures.append(repr(e))
    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    new_crt, new_key = ca.leaf("renewed", "localhost")
    os.replace(new_crt, crt)
    os.replace(new_key, key)
    os.kill(op.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    new_serial = None
    while time.monotonic() < deadline:
        s = tls_connect(ctx, op.tls_port, "localhost")
        serial = s.getpeercert()["serialNumber"]
        s.close()
        if serial != old_serial:
            new_serial = serial
            break
        time.sleep(0.1)
    time.sleep(0.3)
    stop_at[0] = True
    for t in threads:
        t.join(timeout=30)
    assert new_serial is not None, "the new certificate never served"
    assert failures == []
    assert old_serial in serials and new_serial in serials
    # the connection from before the reload still works on its session
    assert https_get(ctx, op.tls_port, "/held", conn=held)[0] == 200
    held.close()
    # a reload with a broken key is refused, and the node serves on
    with open(key, "w") as f:
        f.write("not a key\n")
    os.kill(op.proc.pid, signal.SIGHUP)
    for _ in range(50):
        log = "".join(op.log)
        if "was refused" in log:
            break
        time.sleep(0.05)
    assert "new configuration was refused" in log and "tls_cert: private key %s" % key in log
    assert https_get(ctx, op.tls_port, "/after")[0] == 200


def partial_hello(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")  # a ClientHello that never ends
    return s


def closed_within(s, seconds):
    s.settimeout(seconds)
    try:
        return s.recv(100) == b""
    except (socket.timeout, ConnectionResetError):
        return False
    finally:
        s.close()


def test_handshake_timeout_and_cap(origin, outposts, tmp_path, ca):
    op = tls_node(outposts, origin, tmp_path, ca, workers=1,
                  top={"tls_handshake_timeout": "500ms", "tls_max_handshakes": 2})
    ctx = ca.context()
    established = tls_connect(ctx, op.tls_port, "localhost")
    slow = [partial_hello(op.tls_port) for _ in range(2)]
    time.sleep(0.1)
    # at the cap: the next connection is refused at once; the established one
    # is served all along
    third = socket.create_connection(("127.0.0.1", op.tls_port), timeout=10)
    assert closed_within(third, 0.4)
    assert https_get(ctx, op.tls_port, "/e", conn=established)[0] == 200
    # the stalled handshakes end at their deadline
    for s in slow:
        assert closed_within(s, 3)
    assert https_get(ctx, op.tls_port, "/e")[0] == 200  # room again
    established.close()
    c = metrics(op)
    assert c["tls_handshakes_timeout_total"] == 2
    assert c["tls_handshakes_refused_total"] == 1


def test_protocol_errors_are_counted(origin, outposts, tmp_path, ca):
    op = tls_node(outposts, origin, tmp_path, ca)
    # plain HTTP to the TLS port
    s = socket.create_connection(("127.0.0.1", op.tls_port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = s.recv(100)
    assert not data.startswith(b"HTTP/")
    s.close()
    # TLS 1.1, and an ALPN list without http/1.1
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        tls_connect(old, op.tls_port, "localhost")
    h2 = ca.context()
    h2.set_alpn_protocols(["h2"])
    with pytest.raises(ssl.SSLError, match="no application protocol"):
        tls_connect(h2, op.tls_port, "localhost")
    h1 = ca.context()
    h1.set_alpn_protocols(["h2", "http/1.1"])
    s = tls_connect(h1, op.tls_port, "localhost")
    assert s.selected_alpn_protocol() == "http/1.1"
    s.close()
    time.sleep(0.2)
    assert metrics(op)["tls_handshakes_protocol_total"] >= 3


def test_https_redirect(origin, outposts, tmp_path, ca):
    op = tls_node(outposts, origin, tmp_path, ca, site={"https_redirect": "true"})
    r, body = op.request("/a/b?c=1", headers={"Host": "Localhost:%d" % op.port})
    assert r.status == 308
    assert r.getheader("Location") == "https://Localhost:%d/a/b?c=1" % op.tls_port
    r, _ = op.request("/x", method="POST", body=b"12345", headers={"Host": "[::1]"})
    assert r.status == 308 and r.getheader("Location") == "https://[::1]:%d/x" % op.tls_port
    assert origin.hits == {}
    st, _, body = https_get(ca.context(), op.tls_port, "/a/b?c=1")
    assert st == 200 and body == b"page /a/b?c=1\n"


def test_config_check_names_the_certificate_problem(tmp_path, ca):
    expired = ca.leaf("expired", "localhost", start="20200101000000Z", end="20200201000000Z")
    good = ca.leaf("good", "localhost")
    other = ca.leaf("other", "localhost")
    cases = [
        ((expired[0], expired[1]), "expired on 2020-02-01 00:00:00 UTC"),
        ((good[0], other[1]), "mismatch"),
        ((good[0], "/nonexistent/k.pem"), "private key /nonexistent/k.pem"),
        (("/nonexistent/c.pem", good[1]), "certificate /nonexistent/c.pem: cannot open"),
    ]
    for (crt, key), want in cases:
        conf = tmp_path / "check.yaml"
        conf.write_text("listen_tls: 127.0.0.1:8443\ntls_cert: %s\ntls_key: %s\n"
                        "sites:\n  - origin: http://127.0.0.1:9\n" % (crt, key))
        r = subprocess.run([OUTPOST, "-t", "-c", str(conf)], capture_output=True, text=True)
        assert r.returncode == 1, r.stdout
        assert want in r.stderr and str(conf) in r.stderr, r.stderr
    # a key others can read is worth a warning, not a refusal
    os.chmod(good[1], 0o644)
    conf.write_text("listen_tls: 127.0.0.1:8443\ntls_cert: %s\ntls_key: %s\n"
                    "sites:\n  - origin: http://127.0.0.1:9\n" % good)
    r = subprocess.run([OUTPOST, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 0
    assert "can be read by others" in r.stderr and good[1] in r.stderr


def test_quick_start_flags(origin, tmp_path, ca):
    crt, key = ca.leaf("q", "localhost")
    port, tls_port = free_port(), free_port()
    p = subprocess.Popen([OUTPOST, "--listen", "127.0.0.1:%d" % port,
                          "--listen-tls", "127.0.0.1:%d" % tls_port, "--tls-cert", crt,
                          "--tls-key", key, "--origin", "http://127.0.0.1:%d" % origin.port,
                          "--cache-dir", str(tmp_path / "qcache"), "--workers", "1"],
                         stderr=subprocess.PIPE, text=True)
    try:
        while "ready" not in p.stderr.readline():
            assert p.poll() is None
        st, _, body = https_get(ca.context(), tls_port, "/q")
        assert st == 200 and body == b"page /q\n"
    finally:
        stop(p)


def test_close_notify_ends_the_connection(origin, outposts, tmp_path, ca):
    op = tls_node(outposts, origin, tmp_path, ca)
    ctx = ca.context()
    # idle: our close_notify gets the node's, and the connection ends at once
    s = tls_connect(ctx, op.tls_port, "localhost")
    start = time.monotonic()
    raw = s.unwrap()  # sends close_notify, waits for the node's
    raw.settimeout(3)
    assert raw.recv(10) == b""
    assert time.monotonic() - start < 2
    raw.close()
    # a request and close_notify in one go: the answer still comes, then the end
    sock = socket.create_connection(("127.0.0.1", op.tls_port), timeout=5)
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="localhost")
    for _ in range(20):  # the handshake, bounded
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outg.read())
            inc.write(sock.recv(65536))
    obj.write(b"GET /last HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        obj.unwrap()  # our close_notify, right behind the request
    except ssl.SSLWantReadError:
        pass
    sock.sendall(outg.read())
    got = b""
    for _ in range(50):
        data = sock.recv(65536)
        if not data:
            break
        inc.write(data)
        try:
            while True:
                got += obj.read(65536)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
    assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"page /last\n"), got
    assert b"Connection: close" in got
    sock.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_keyupdate_flood_from_a_client_that_does_not_read(origin, outposts, tmp_path, ca,
                                                           monkeypatch):
    """Each KeyUpdate(update_requested) makes the node send a record: a
    client that never reads must not grow its queue, and the send deadline
    runs from when the write began, not from the client's last bytes."""
    # AddressSanitizer keeps freed blocks in a 256 MiB quarantine: RSS would
    # measure it, not the node
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "quarantine_size_mb=1")
    origin.routes["/big"] = slow_page(0, b"x" * (8 << 20))
    op = tls_node(outposts, origin, tmp_path, ca, top={"send_timeout": "2s"}, workers=1)
    assert https_get(ca.context(), op.tls_port, "/big")[0] == 200  # stored
    before = rss_kib(op.proc.pid)
    flood = os.path.join(os.path.dirname(OUTPOST), "tests", "tls_keyupdate_flood")
    run = subprocess.run([flood, str(op.tls_port), "20", "/big"], capture_output=True, text=True,
                         timeout=60)
    out = run.stdout
    assert out.startswith("closed after"), (out, run.stderr[-2000:])
    assert float(out.split()[2]) < 8, out  # send_timeout, with room for a slow machine
    grown = rss_kib(op.proc.pid) - before
    assert grown < 64 * 1024, "RSS grew %d KiB" % grown


def test_a_record_trickled_a_byte_at_a_time_meets_the_head_deadline(origin, outposts, tmp_path,
                                                                    ca):
    op = tls_node(outposts, origin, tmp_path, ca,
                  top={"header_timeout": "1s", "idle_timeout": "30s"})
    sock = socket.create_connection(("127.0.0.1", op.tls_port), timeout=10)
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ca.context().wrap_bio(inc, outg, server_hostname="localhost")
    for _ in range(20):  # the handshake, bounded
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outg.read())
            inc.write(sock.recv(65536))
    sock.sendall(outg.read())
    obj.write(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
    record = outg.read()  # one record: no plaintext reaches the node before its end
    start = time.monotonic()
    closed = False
    for i in range(len(record) - 1):
        try:
            sock.sendall(record[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.2)
        if time.monotonic() - start > 6:
            break
    if not closed:
        sock.settimeout(3)
        try:  # the node's close_notify, then its FIN (no answer can come)
            for _ in range(10):
                if sock.recv(100) == b"":
                    closed = True
                    break
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
    assert closed and time.monotonic() - start < 6, "held %.1f s" % (time.monotonic() - start)
    sock.close()
