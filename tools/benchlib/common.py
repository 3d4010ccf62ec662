"""What every benchmark shares: ports, the three caches in front of one origin,
the scripted origin process, and a concurrent HTTP client on asyncio."""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHES = ("outpost", "nginx", "varnish")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


# nginx as an operator protecting an origin would run it (the settings issue
# #3 names): one request per herd, stale on errors and while updating.
NGINX_CACHE = """
worker_processes {workers};
pid {dir}/cache.pid;
error_log {dir}/cache-error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  # no tcp_nopush: with sendfile on loopback it stalls 64 KiB hits on delayed
  # ACKs (40 ms p99, ~1.5k req/s measured here), which no operator would keep
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 100000;
  open_file_cache max=10000 inactive=60s;
  proxy_cache_path {dir}/nginx-cache levels=1:2 keys_zone=edge:64m max_size=1g inactive=1h
                   use_temp_path=off;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_lock on;
      proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
      proxy_cache_background_update on;
      proxy_connect_timeout 2s;
      proxy_read_timeout 5s;
      add_header Cache-Status $upstream_cache_status;
    }}
  }}
}}
"""

# Varnish with grace, so it serves stale while it fetches or when the backend is sick
VCL = """vcl 4.1;
backend default {{
  .host = "127.0.0.1";
  .port = "{origin}";
  .connect_timeout = 2s;
  .first_byte_timeout = 5s;
}}
sub vcl_backend_response {{
  set beresp.grace = 24h;
}}
"""


class Caches:
    """Outpost, nginx and Varnish in front of the origin on <origin_port>."""

    def __init__(self, workers, origin_port):
        self.dir = tempfile.mkdtemp(prefix="outpost-bench-")
        os.chmod(self.dir, 0o755)  # nginx and varnish workers drop root
        self.workers = workers
        self.origin = origin_port
        self.procs = []
        self.ports = {}

    def spawn(self, args):
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def start(self, outpost_site=None, outpost_top=None):
        d, o = self.dir, self.origin
        n = self.ports["nginx"] = free_port()
        with open(d + "/cache.conf", "w") as f:
            f.write(NGINX_CACHE.format(dir=d, port=n, origin=o, workers=self.workers))
        self.spawn(["nginx", "-c", d + "/cache.conf", "-g", "daemon off;"])

        v = self.ports["varnish"] = free_port()
        os.makedirs(d + "/varnish")
        with open(d + "/default.vcl", "w") as f:
            f.write(VCL.format(origin=o))
        self.spawn(["varnishd", "-F", "-n", d + "/varnish", "-a", "127.0.0.1:%d" % v,
                    "-f", d + "/default.vcl", "-s", "malloc,1g",
                    "-p", "thread_pool_max=5000"])

        p = self.ports["outpost"] = free_port()
        with open(d + "/outpost.yaml", "w") as f:
            f.write("listen: 127.0.0.1:%d\ncache_dir: %s/outpost-cache\nworkers: %d\n"
                    "log_level: warn\n" % (p, d, self.workers))
            for k, val in (outpost_top or {}).items():
                f.write("%s: %s\n" % (k, val))
            f.write("sites:\n  - host: \"*\"\n    origin: http://127.0.0.1:%d\n"
                    "    first_byte_timeout: 5s\n" % o)
            for k, val in (outpost_site or {}).items():
                f.write("    %s: %s\n" % (k, val))
        self.spawn([os.path.join(TOP, "build", "outpost"), "-c", d + "/outpost.yaml"])
        for name in CACHES:
            wait_port(self.ports[name])
        return self

    def url(self, name, path):
        return "http://127.0.0.1:%d%s" % (self.ports[name], path)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def c_tool(name):
    """tools/benchlib/NAME.c built into build/NAME on first use (and when the
    source is newer)."""
    src = os.path.join(TOP, "tools", "benchlib", name + ".c")
    exe = os.path.join(TOP, "build", name)
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, src], check=True)
    return exe


class ScriptedOrigin:
    """tools/benchlib/origin.py in its own process."""

    def __init__(self, delay_ms=200, port=None):
        self.port = port or free_port()
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(TOP, "tools", "benchlib",
                                                                      "origin.py"),
                                      str(self.port), str(delay_ms)])
        wait_port(self.port)

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path)) as r:
            return json.loads(r.read())

    def stats(self):
        return self.get("/__stats")

    def reset(self):
        self.get("/__reset")

    def mode(self, m):
        self.get("/__mode?m=" + m)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


async def fetch_on(reader, writer, path, host="bench"):
    """One GET on an open connection: (status, seconds) or (None, seconds)."""
    start = time.monotonic()
    try:
        writer.write(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
            if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await reader.readexactly(length)
        return status, time.monotonic() - start
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        return None, time.monotonic() - start


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]
