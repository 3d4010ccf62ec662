"""Purge by tag: --objects objects (default 100k) share the surrogate key
"all"; 100 hot objects (another key) take a steady hit load from 64
connections. Reported: how long the purge takes to be acknowledged, and the
hit p99 while it runs against the p99 of the same load without it.

Outpost purges through its admin socket (committed and synced before the
answer). Varnish bans with varnishadm (`obj.http.Surrogate-Key ~` the word all): a ban
is answered at once and matched lazily, at lookup and by the ban lurker, so
its time says nothing about when the objects are gone; its hit p99 during the
ban window is still comparable. nginx has no purge in its open-source build:
it runs the same hit load for the baseline only.
    tools/bench purge [--objects 100000] [--rounds 3]"""
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import threading
import time

from .common import CACHES, Caches, ScriptedOrigin, c_tool, percentile

LOAD_CONNS = 64
HOT = 100


async def fill(port, prefix, n, conns=64):
    async def worker(k):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        for i in range(k, n, conns):
            writer.write(("GET %s%d HTTP/1.1\r\nHost: bench\r\n\r\n" % (prefix, i)).encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        writer.close()
    await asyncio.gather(*(worker(k) for k in range(conns)))


def admin(sock, method, path, body=None):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)
    s.connect(sock)
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
               % (method, path, len(data))).encode() + data)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return json.loads(out.split(b"\r\n\r\n", 1)[1])


def load(port, seconds):
    out = subprocess.run([c_tool("loadclient"), str(port), str(LOAD_CONNS), str(seconds), "/hot/", str(HOT)],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    return [(float(a), float(b), int(c)) for a, b, c in (line.split() for line in out.splitlines())]


def p99_between(samples, t0_ms, t1_ms):
    lat = [lat for start, lat, _ in samples if t0_ms <= start <= t1_ms]
    return percentile(lat, 99), len(lat)


def purge_outpost(caches, sock):
    t0 = time.monotonic()
    res = admin(sock, "POST", "/purge", {"tag": "all"})
    return t0, time.monotonic(), res["purged"]


def purge_varnish(caches, sock):
    t0 = time.monotonic()
    p = subprocess.run(["varnishadm", "-n", caches.dir + "/varnish", "ban",
                        "obj.http.Surrogate-Key", "~", "(^|[^a-z0-9])all($|[^a-z0-9])"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("varnishadm ban: %s%s" % (p.stdout, p.stderr))
    return t0, time.monotonic(), None


def main(args):
    origin = ScriptedOrigin(0)
    caches = Caches(args.workers, origin.port)
    sock = caches.dir + "/admin.sock"
    caches.start(args.outpost_site, {"admin_socket": sock, "cache_size": "4g"})
    rows = []
    try:
        for rnd in range(args.rounds):
            for name in CACHES:
                port = caches.ports[name]
                prefix = "/tagged/%s%d-" % (name[0], rnd)
                asyncio.run(fill(port, "/hot/", HOT))
                if name == "nginx":
                    base = load(port, 3)
                    base_p99 = percentile([lat for _, lat, _ in base], 99)
                    rows.append((name, {"base": base_p99}))
                    print("round %d  %-8s hit p99 %.2f ms (no purge in nginx OSS)"
                          % (rnd + 1, name, base_p99), file=sys.stderr)
                    continue
                t_fill = time.monotonic()
                asyncio.run(fill(port, prefix, args.objects))
                t_fill = time.monotonic() - t_fill
                time.sleep(3)  # let each cache finish writing what it was given
                result = {}

                def run_load():
                    result["samples"] = load(port, 6)
                th = threading.Thread(target=run_load)
                th.start()
                time.sleep(2)
                t0, t1, purged = (purge_outpost if name == "outpost" else purge_varnish)(caches,
                                                                                      sock)
                th.join(90)
                # the window: the purge itself, at least 1 s of it; the
                # baseline: the 1.5 s before it, in the same run
                w1 = max(t1, t0 + 1.0)
                during, n = p99_between(result["samples"], t0 * 1000, w1 * 1000)
                base_p99, _ = p99_between(result["samples"], (t0 - 1.6) * 1000, (t0 - 0.1) * 1000)
                r = {"base": base_p99, "during": during, "n": n, "purge_ms": (t1 - t0) * 1000,
                     "purged": purged, "fill_s": t_fill}
                rows.append((name, r))
                print("round %d  %-8s filled %d in %.1f s; purge %.0f ms (%s objects); hit p99 "
                      "%.2f ms before, %.2f ms during (%d requests)"
                      % (rnd + 1, name, args.objects, t_fill, r["purge_ms"], purged, base_p99,
                         during, n), file=sys.stderr)
    finally:
        caches.stop()
        origin.stop()
    print("\npurge by tag of %d objects; hit load: %d connections on %d hot objects; %d workers "
          "each; median over %d rounds" % (args.objects, LOAD_CONNS, HOT, args.workers,
                                           args.rounds))
    print("| cache | purge answered in ms | objects purged | hit p99 before ms | "
          "hit p99 during ms | during / before |")
    print("|---|---|---|---|---|---|")
    for name in CACHES:
        rs = [r for n, r in rows if n == name]
        base = statistics.median(r["base"] for r in rs)
        if name == "nginx":
            print("| nginx | no purge in nginx OSS | - | %.2f | - | - |" % base)
            continue
        during = statistics.median(r["during"] for r in rs)
        ms = statistics.median(r["purge_ms"] for r in rs)
        purged = rs[0]["purged"]
        print("| %s | %.0f%s | %s | %.2f | %.2f | %.2f |"
              % (name, ms, "" if name == "outpost" else " (ban: lazy)",
                 purged if purged is not None else "lazy", base, during, during / base))
