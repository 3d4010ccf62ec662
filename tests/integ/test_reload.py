"""Config reload (admin API, outpostctl and SIGHUP): a new config is checked
whole and taken by every worker without dropping a connection; requests under
way finish on the config they began with; a bad config is refused with its
errors and the old one stays."""
import os
import signal
import threading
import time

from conftest import Origin
from test_admin import admin
from test_outpostctl import ctl


def named(name, delay=0.0):
    def route(h):
        time.sleep(delay)
        body = name.encode()
        h.send_response(200)
        h.send_header("Cache-Control", "no-store")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return route


def conf_path(op):
    return op.args[op.args.index("-c") + 1]


def rewrite(op, origin_port, extra_top="", extra_site=""):
    """The same config with another origin (and extra lines)."""
    path = conf_path(op)
    lines = open(path).read().splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith("    origin: "):
            line = "    origin: http://127.0.0.1:%d\n" % origin_port
        if line.startswith("sites:"):
            out.append(extra_top)
        out.append(line)
    out.append(extra_site)
    with open(path, "w") as f:
        f.write("".join(out))


def wait_log(op, words, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if words in "".join(op.log):
            return True
        time.sleep(0.05)
    return False


def test_reload_moves_new_requests_and_finishes_old_ones(origin, outposts, tmp_path):
    b = Origin()
    try:
        origin.default = named("A")
        origin.routes["/slow"] = named("A-slow", delay=1.0)
        b.default = named("B")
        sock = str(tmp_path / "admin.sock")
        op = outposts(origin.port, tmp_path / "cache", top={"admin_socket": sock}).start()
        assert op.request("/x")[1] == b"A"
        slow = []
        t = threading.Thread(target=lambda: slow.append(op.request("/slow")))
        t.start()
        time.sleep(0.3)  # under way on configuration 1
        rewrite(op, b.port)
        st, res = admin(sock, "POST", "/reload")
        assert st == 200 and res == {"reloaded": True, "generation": 2}
        for i in range(10):
            r, body = op.request("/y%d" % i)
            assert r.status == 200 and body == b"B", (i, body)
        t.join(10)
        assert slow[0][0].status == 200 and slow[0][1] == b"A-slow"
        assert wait_log(op, "configuration 1 released by every worker")
        # outpostctl, then SIGHUP, back to A
        rewrite(op, origin.port)
        assert ctl(sock, "reload") == (0, "reloaded: configuration 3\n", "")
        assert op.request("/z")[1] == b"A"
        rewrite(op, b.port)
        os.kill(op.proc.pid, signal.SIGHUP)
        assert wait_log(op, "configuration 4 loaded")
        assert op.request("/w")[1] == b"B"
        st, stats = admin(sock, "GET", "/stats")  # per-site counters live on over reloads
        assert stats["sites"]["*"]["requests"] == 14 and stats["sites"]["*"]["origin_2xx"] == 14
    finally:
        b.stop()


def test_bad_config_is_refused_and_the_old_one_stays(origin, outposts, tmp_path):
    origin.default = named("A")
    sock = str(tmp_path / "admin.sock")
    op = outposts(origin.port, tmp_path / "cache", top={"admin_socket": sock}).start()
    path = conf_path(op)
    good = open(path).read()
    with open(path, "w") as f:
        f.write(good + "    connect_timeout: soon\n    colour: blue\n")
    st, res = admin(sock, "POST", "/reload")
    assert st == 400 and "old one stays" in res["error"]
    assert any("connect_timeout: expected a duration" in e for e in res["errors"]), res
    assert any("colour: unknown key" in e for e in res["errors"]), res
    code, _, err = ctl(sock, "reload")
    assert code == 1 and "colour: unknown key" in err
    with open(path, "w") as f:
        f.write(good.replace("listen: 127.0.0.1:%d" % op.port, "listen: 127.0.0.1:1"))
    st, res = admin(sock, "POST", "/reload")
    assert st == 400 and any("listen: changing it needs a restart" in e for e in res["errors"])
    with open(path, "w") as f:
        f.write(good.replace("origin: http://127.0.0.1", "origin: http://no-such-name.invalid"))
    st, res = admin(sock, "POST", "/reload")
    assert st == 400 and any("does not resolve" in e for e in res["errors"]), res
    os.kill(op.proc.pid, signal.SIGHUP)  # refused too, and logged
    assert wait_log(op, "SIGHUP: the new configuration was refused")
    assert op.request("/still")[1] == b"A"
    st, health = admin(sock, "GET", "/health")
    assert st == 200


def test_reload_under_load_fails_no_request(origin, outposts, tmp_path):
    b = Origin()
    try:
        origin.default = named("A")
        b.default = named("B")
        sock = str(tmp_path / "admin.sock")
        op = outposts(origin.port, tmp_path / "cache", top={"admin_socket": sock}).start()
        failures, done = [], []
        stop = threading.Event()

        def client(k):
            n = 0
            while not stop.is_set() and n < 2000:
                try:
                    r, body = op.request("/load/%d/%d" % (k, n))
                    if r.status != 200 or body not in (b"A", b"B"):
                        failures.append((r.status, body))
                except OSError as e:
                    failures.append(repr(e))
                n += 1
            done.append(n)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for i in range(10):
            rewrite(op, b.port if i % 2 == 0 else origin.port)
            st, res = admin(sock, "POST", "/reload")
            assert st == 200, res
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
        assert failures == []
        assert sum(done) > 100
        assert wait_log(op, "configuration 10 released by every worker")
    finally:
        b.stop()
