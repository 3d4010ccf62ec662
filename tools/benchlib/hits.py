"""Hit throughput: wrk against a warm object in each cache, interleaved round
by round, so a noisy machine affects all three alike."""
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request

from .common import CACHES, Caches, free_port, wait_port

NGINX_ORIGIN = """
worker_processes 1;
pid {dir}/origin.pid;
error_log {dir}/origin-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port};
    root {dir}/www;
    location / {{ add_header Cache-Control "max-age=3600"; }}
  }}
}}
"""


def parse_size(s):
    return int(s[:-1]) * 1024 if s.endswith("k") else int(s)


def start_origin(d, sizes):
    os.makedirs(d + "/www")
    for s in sizes:
        with open("%s/www/obj-%d" % (d, s), "wb") as f:
            f.write((b"0123456789abcdef" * (s // 16 + 1))[:s])
    port = free_port()
    with open(d + "/origin.conf", "w") as f:
        f.write(NGINX_ORIGIN.format(dir=d, port=port))
    proc = subprocess.Popen(["nginx", "-c", d + "/origin.conf", "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return port, proc


def warm(caches, paths):
    for name in CACHES:
        for path in paths:
            for _ in range(3):
                urllib.request.urlopen(caches.url(name, path)).read()
    time.sleep(0.5)
    for path in paths:  # the measured requests must be hits
        with urllib.request.urlopen(caches.url("outpost", path)) as r:
            assert "hit" in r.headers.get("Cache-Status", ""), r.headers


def wrk(port, size, conns, seconds, threads):
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency",
                          "http://127.0.0.1:%d/obj-%d" % (port, size)],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out) or "Socket errors" in out:
        print("  warning: %s" % " ".join(l.strip() for l in out.splitlines()
                                          if "errors" in l or "Non-2xx" in l), file=sys.stderr)
    return rps, p99


def main(args):
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    conns = [int(c) for c in args.conns.split(",")]
    caches = Caches(args.workers, 0)
    origin = None
    try:
        caches.origin, origin = start_origin(caches.dir, sizes)
        caches.start(args.outpost_site)
        warm(caches, ["/obj-%d" % s for s in sizes])
        results = {}
        for rnd in range(args.rounds):
            for size in sizes:
                for c in conns:
                    for name in CACHES:
                        r = wrk(caches.ports[name], size, c, args.seconds, args.wrk_threads)
                        results.setdefault((size, c, name), []).append(r)
                        print("round %d  %-7s %6s c=%-4d %10.0f req/s  p99 %7.2f ms"
                              % (rnd + 1, name, "%dk" % (size // 1024), c, r[0], r[1]),
                              file=sys.stderr)
    finally:
        caches.stop()
        if origin is not None:
            origin.terminate()
            origin.wait(10)

    print("\nhit throughput, median of %d rounds of %ds (wrk -t%d, %d workers each)"
          % (args.rounds, args.seconds, args.wrk_threads, args.workers))
    print("| object | conns | Outpost req/s | nginx req/s | Varnish req/s | Outpost p99 ms "
          "| nginx p99 ms | Varnish p99 ms | Outpost/nginx | Outpost/Varnish |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        for c in conns:
            med = {n: (statistics.median(x[0] for x in results[(size, c, n)]),
                       statistics.median(x[1] for x in results[(size, c, n)]))
                   for n in CACHES}
            print("| %dk | %d | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
                size // 1024, c, med["outpost"][0], med["nginx"][0], med["varnish"][0],
                med["outpost"][1], med["nginx"][1], med["varnish"][1],
                med["outpost"][0] / med["nginx"][0], med["outpost"][0] / med["varnish"][0]))
