"""Hit latency at a fixed request rate: the same open-loop load (requests due
at a steady rate, latency counted from when each was due) against each cache,
interleaved round by round. Closed-loop tools such as wrk drive every cache
to saturation, where p99 is mostly queueing and a faster cache queues more
requests; at the same offered rate the tails compare directly.
    tools/bench latency [--rates 10000,40000] [--seconds 8] [--rounds 3]"""
import os
import statistics
import subprocess
import sys

from .common import CACHES, Caches, c_tool, percentile
from .hits import start_origin, warm

CONNS = 64
HOT = 100
SIZE = 1024


def run(port, rate, seconds):
    p = subprocess.run([c_tool("loadclient"), str(port), str(CONNS), str(seconds), "/hot-",
                        str(HOT), "bench", str(rate)],
                       capture_output=True, text=True, timeout=seconds + 60)
    if p.returncode != 0:
        raise RuntimeError("loadclient: %s" % p.stderr.strip())
    out = p.stdout
    rows = [line.split() for line in out.splitlines()]
    lat = [float(r[1]) for r in rows]
    bad = sum(1 for r in rows if r[2] != "200")
    return {"sent": len(lat), "bad": bad, "p50": percentile(lat, 50),
            "p99": percentile(lat, 99), "p999": percentile(lat, 99.9)}


def main(args):
    rates = [int(r) for r in args.rates.split(",")]
    caches = Caches(args.workers, 0)
    origin = None
    try:
        caches.origin, origin = start_origin(caches.dir, [])
        for i in range(HOT):
            with open("%s/www/hot-%d" % (caches.dir, i), "wb") as f:
                f.write(os.urandom(SIZE // 2).hex().encode())
        caches.start(args.outpost_site)
        warm(caches, ["/hot-%d" % i for i in range(HOT)])
        results = {}
        for rnd in range(args.rounds):
            for rate in rates:
                for name in CACHES:
                    r = run(caches.ports[name], rate, args.seconds)
                    results.setdefault((rate, name), []).append(r)
                    print("round %d  %-7s %6d req/s offered: %7d answered (%d not 200)  "
                          "p50 %.2f  p99 %.2f  p99.9 %.2f ms"
                          % (rnd + 1, name, rate, r["sent"], r["bad"], r["p50"], r["p99"],
                             r["p999"]), file=sys.stderr)
    finally:
        caches.stop()
        if origin is not None:
            origin.terminate()
            origin.wait(10)

    print("\nhit latency at a fixed rate, median of %d rounds of %ds (%d connections, %d hot "
          "1 KiB objects, %d workers each; latency from when each request was due)"
          % (args.rounds, args.seconds, CONNS, HOT, args.workers))
    print("| offered req/s | cache | answered req/s | p50 ms | p99 ms | p99.9 ms | p99 / Outpost's |")
    print("|---|---|---|---|---|---|---|")
    for rate in rates:
        med = {n: {k: statistics.median(x[k] for x in results[(rate, n)])
                   for k in ("sent", "p50", "p99", "p999")} for n in CACHES}
        for n in CACHES:
            m = med[n]
            print("| %d | %s | %.0f | %.2f | %.2f | %.2f | %.2f |"
                  % (rate, n, m["sent"] / args.seconds, m["p50"], m["p99"], m["p999"],
                     m["p99"] / med["outpost"]["p99"]))
