"""Stale on error: objects (max-age=1) are cached and have gone stale, then the
origin fails in one of three ways: it refuses connections (process gone),
answers 503, or accepts and never answers. 50 connections ask for them for a
few seconds. Reported: the share of 200s and the slowest answer (a request
that waited for a timeout shows there).

nginx runs with proxy_cache_use_stale ... updating and background update and
Varnish with grace, so both serve stale while they revalidate; Outpost runs
with the equivalent site setting, stale_while_revalidate: 1d (--swr; its
default is 0s, RFC 9111's revalidate-before-reuse: stale-if-error then covers
refusals and 503s at once, and a hanging origin after origin_stall_timeout,
1s, at most).
    tools/bench stale [--seconds 5] [--swr 1d|0s] [--rounds 3]"""
import asyncio
import random
import statistics
import sys
import time
import urllib.request

from .common import CACHES, Caches, ScriptedOrigin, fetch_on, percentile, wait_port

KEYS = 50
CONNS = 50


async def load(port, prefix, seconds):
    results = []
    deadline = time.monotonic() + seconds

    async def conn():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            status, took = await fetch_on(reader, writer, "%s%d" % (prefix, random.randint(1, KEYS)))
            results.append((status, took))
            if status is None:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
    await asyncio.gather(*(conn() for _ in range(CONNS)))
    return results


def warm(caches, name, prefix):
    for i in range(1, KEYS + 1):  # with the Host the load sends: the same cache keys
        req = urllib.request.Request(caches.url(name, "%s%d" % (prefix, i)),
                                     headers={"Host": "bench"})
        urllib.request.urlopen(req).read()


def main(args):
    origin = ScriptedOrigin()
    caches = Caches(args.workers, origin.port).start(dict(args.outpost_site, stale_while_revalidate=args.swr))
    rows = []
    try:
        for rnd in range(args.rounds):
            for mode in ("refuse", "503", "hang"):
                for name in CACHES:
                    prefix = "/fail/%s-%s-%d/" % (name, mode, rnd)
                    origin.mode("ok")
                    warm(caches, name, prefix)
                    time.sleep(1.5)  # all stale now
                    if mode == "refuse":
                        origin.stop()
                    else:
                        origin.mode(mode)
                    res = asyncio.run(load(caches.ports[name], prefix, args.seconds))
                    if mode == "refuse":
                        origin = ScriptedOrigin(port=origin.port)
                        wait_port(origin.port)
                    else:
                        origin.mode("ok")
                    ok = sum(1 for s, _ in res if s == 200)
                    times = [t * 1000 for _, t in res]
                    r = {"requests": len(res), "ok": 100.0 * ok / len(res),
                         "p99": percentile(times, 99), "max": max(times)}
                    rows.append((mode, name, r))
                    print("round %d  %-6s %-8s requests %6d  200s %6.2f%%  p99 %7.1f ms  "
                          "max %7.1f ms" % (rnd + 1, mode, name, r["requests"], r["ok"],
                                            r["p99"], r["max"]), file=sys.stderr)
    finally:
        caches.stop()
        origin.stop()
    print("\nstale on error: %d stale objects, %d connections for %d s, %d workers each, "
          "Outpost stale_while_revalidate: %s; median over %d rounds"
          % (KEYS, CONNS, args.seconds, args.workers, args.swr, args.rounds))
    print("| origin | cache | requests | 200s | p99 ms | slowest ms |")
    print("|---|---|---|---|---|---|")
    for mode in ("refuse", "503", "hang"):
        for name in CACHES:
            rs = [r for m, n, r in rows if m == mode and n == name]
            med = {f: statistics.median(r[f] for r in rs) for f in ("requests", "ok", "p99", "max")}
            print("| %s | %s | %d | %.2f%% | %.1f | %.1f |" % (mode, name, med["requests"],
                                                              med["ok"], med["p99"], med["max"]))
