"""Start-up errors and their exit codes; graceful stop finishes in-flight
responses."""
import os
import signal
import socket
import subprocess
import threading
import time

from conftest import OUTPOST, free_port


def run(args, timeout=10):
    return subprocess.run([OUTPOST, *args], capture_output=True, text=True, timeout=timeout)


def test_config_check_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("listen: 127.0.0.1:1\nsites:\n  - origin: http://127.0.0.1:2\n")
    assert run(["-t", "-c", str(good)]).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: 127.0.0.1:1\nsurprise: 1\nsites:\n  - origin: http://x\n")
    r = run(["-t", "-c", str(bad)])
    assert r.returncode == 1
    assert "bad.yaml:2:1: surprise: unknown key" in r.stderr
    assert run(["--bogus"]).returncode == 2
    assert run([]).returncode == 2


def test_address_in_use_exits_3(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = run(["--listen", "127.0.0.1:%d" % port, "--origin", "http://127.0.0.1:9",
                 "--cache-dir", str(tmp_path / "c")])
        assert r.returncode == 3
        assert "cannot listen" in r.stderr
    finally:
        s.close()


def test_unusable_cache_dir_exits_4(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run(["--listen", "127.0.0.1:%d" % free_port(), "--origin", "http://127.0.0.1:9",
             "--cache-dir", str(blocker / "sub")])
    assert r.returncode == 4


def test_unresolvable_origin_exits_5(tmp_path):
    r = run(["--listen", "127.0.0.1:%d" % free_port(), "--origin", "http://no-such-host.invalid",
             "--cache-dir", str(tmp_path / "c")])
    assert r.returncode == 5
    assert "cannot resolve" in r.stderr


def test_sigterm_finishes_in_flight_response(origin, outposts, tmp_path):
    def slow(h):
        time.sleep(1.0)
        body = b"slow but complete"
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    origin.routes["/slow"] = slow
    op = outposts(origin.port, tmp_path / "cache").start()
    result = {}

    def fetch():
        result["r"] = op.request("/slow")
    t = threading.Thread(target=fetch)
    t.start()
    time.sleep(0.3)
    os.kill(op.proc.pid, signal.SIGTERM)
    t.join(10)
    r, body = result["r"]
    assert r.status == 200
    assert body == b"slow but complete"
    assert op.proc.wait(timeout=10) == 0
