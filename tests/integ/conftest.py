"""Shared fixtures for the integration tier: a scripted origin that counts its
requests, and the real outpost binary started and stopped by its pid."""
import http.client
import http.server
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

OUTPOST = os.environ.get("OUTPOST_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "outpost")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Origin:
    """An HTTP/1.1 origin on loopback. `routes` maps a path to a function
    (handler) -> None that writes the response; every request is counted."""

    def __init__(self, host="127.0.0.1", port=None, tls=None):
        """<tls>: an ssl.SSLContext (server side) to speak HTTPS with; each
        connection's handshake then runs in its own handler thread."""
        self.host = host
        self.port = port or free_port()
        self.routes = {}
        self.hits = {}
        self.lock = threading.Lock()
        self.conns = []
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                origin.conns.append(self.connection)

            def do_GET(self):
                with origin.lock:
                    origin.hits[self.path] = origin.hits.get(self.path, 0) + 1
                route = origin.routes.get(self.path, origin.default)
                route(self)

            do_HEAD = do_GET

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, self.port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def default(h):
        body = ("page %s\n" % h.path).encode()
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=300")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self):
        """Gone for good: no listener, and the keep-alive connections Outpost
        pooled are cut too (handler threads would otherwise keep answering)."""
        self.server.shutdown()
        self.server.server_close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Outpost:
    """The real binary. With `site` (a dict of site keys) or `top` (top-level
    keys), it runs on a config file with one site for every Host; otherwise
    on the quick-start flags."""

    def __init__(self, origin_port, cache_dir, port=None, extra=(), site=None, workers=2,
                 top=None, wrap=()):
        self.port = port or free_port()
        self.cache_dir = cache_dir
        if site is None and top is not None:
            site = {}
        if site is None:
            self.args = [OUTPOST, "--listen", "127.0.0.1:%d" % self.port,
                         "--origin", "http://127.0.0.1:%d" % origin_port,
                         "--cache-dir", str(cache_dir), "--workers", str(workers), *extra]
        else:
            conf = os.path.join(os.path.dirname(str(cache_dir)), "outpost-%d.yaml" % self.port)
            with open(conf, "w") as f:
                f.write("listen: 127.0.0.1:%d\ncache_dir: %s\nworkers: %d\n"
                        % (self.port, cache_dir, workers))
                for k, v in (top or {}).items():
                    f.write("%s: %s\n" % (k, v))
                f.write("sites:\n  - host: \"*\"\n")
                if "origin" not in site:
                    f.write("    origin: http://127.0.0.1:%d\n" % origin_port)
                for k, v in site.items():
                    f.write("    %s: %s\n" % (k, v))
            # wrap: a command that execs the node (same pid), e.g. unshare
            self.args = [*wrap, OUTPOST, "-c", conf, *extra]
        self.proc = None
        self.log = []

    def start(self, timeout=10):
        self.proc = subprocess.Popen(self.args, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if "ready" in line:
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise RuntimeError("outpost did not become ready: %s" % "".join(self.log))

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def request(self, path, method="GET", headers=None, body=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            return self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else None


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.stop()


@pytest.fixture
def outposts():
    started = []

    def make(*args, **kwargs):
        op = Outpost(*args, **kwargs)
        started.append(op)
        return op
    yield make
    # every node still running must drain and exit cleanly (under ASan this
    # also reports leaks and memory errors as a non-zero exit)
    failed = []
    for op in started:
        if op.proc and op.proc.poll() is None:
            try:
                rc = op.stop()
            except subprocess.TimeoutExpired:
                op.kill9()
                rc = "timeout"
            if rc != 0:
                failed.append((rc, "".join(op.log[-30:])))
    assert not failed, "outpost did not exit cleanly: %r" % (failed,)


def wait_for_hit(op, path, tries=50):
    """The store writer commits asynchronously: poll (bounded) until a hit."""
    for _ in range(tries):
        r, data = op.request(path)
        if "hit" in (r.getheader("Cache-Status") or ""):
            return r, data
        time.sleep(0.05)
    raise AssertionError("no hit for %s" % path)
