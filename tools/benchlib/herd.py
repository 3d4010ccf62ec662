"""Herds: N clients ask for one cold key at the same moment; the origin takes
--delay ms. What matters: how many requests reach the origin and how long the
clients wait. For an uncacheable answer, the first herd cannot be shared (it is
private), so what matters is that later herds are not serialized behind one
another: total time / origin delay, cold and after a first request. Each
cacheable herd runs again on the warm key: those are all hits, so its
latency is the floor for n requests at once, to subtract when reading the cold
figures; "uncacheable, direct" sends the herd to the origin itself, the floor
for the uncacheable rows. The client is herdclient.c (epoll; each latency from
its own write to its last byte).
    tools/bench herd [--clients 200,1000] [--delay 200] [--rounds 3]"""
import subprocess
import time

from .common import CACHES, Caches, ScriptedOrigin, c_tool, percentile


def run_herd(caches, origin, name, path, n, port=None):
    origin.reset()
    out = subprocess.run([c_tool("herdclient"), str(port or caches.ports[name]), path, str(n)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    lines = out.splitlines()
    total = float(lines[0].split()[1])
    results = [(int(s), float(ms)) for s, ms in (line.split() for line in lines[1:])]
    times = [ms for s, ms in results if s == 200]
    return {"origin": origin.stats()["requests"], "ok": len(times),
            "errors": n - len(times), "p50": percentile(times, 50),
            "p99": percentile(times, 99), "max": max(ms for _, ms in results),
            "total": total}


def main(args):
    origin = ScriptedOrigin(args.delay)
    caches = Caches(args.workers, origin.port).start(args.outpost_site)
    rows = []
    try:
        for rnd in range(args.rounds):
            for n in args.clients:
                for name in CACHES:
                    path = "/herd/%s-%d-%d" % (name, n, rnd)
                    r = run_herd(caches, origin, name, path, n)
                    rows.append(("cacheable", n, name, rnd, r))
                    report("cacheable", n, name, rnd, r)
                    # the same herd on the now warm key: all hits, so what it
                    # takes is this client's own floor for n requests at once
                    time.sleep(0.5)
                    r = run_herd(caches, origin, name, path, n)
                    rows.append(("cacheable, warm", n, name, rnd, r))
                    report("cacheable, warm", n, name, rnd, r)
                for name in CACHES:
                    path = "/private/%s-%d-%d" % (name, n, rnd)
                    r = run_herd(caches, origin, name, path, n)
                    rows.append(("uncacheable, cold", n, name, rnd, r))
                    report("uncacheable, cold", n, name, rnd, r)
                    r = run_herd(caches, origin, name, path, n)  # the URL is known now
                    rows.append(("uncacheable, known", n, name, rnd, r))
                    report("uncacheable, known", n, name, rnd, r)
                # no cache at all: the origin's own floor for n at once
                r = run_herd(caches, origin, "direct", "/private/direct-%d-%d" % (n, rnd), n,
                             port=origin.port)
                rows.append(("uncacheable, direct", n, "origin", rnd, r))
                report("uncacheable, direct", n, "origin", rnd, r)
    finally:
        caches.stop()
        origin.stop()
    print("\nherds on one key, origin delay %d ms, %d workers each; median over %d rounds"
          % (args.delay, args.workers, args.rounds))
    print("| answer | clients | cache | origin requests | non-200 | p50 ms | p99 ms "
          "| total ms | total / delay |")
    print("|---|---|---|---|---|---|---|---|---|")
    import statistics
    for kind in ("cacheable", "cacheable, warm", "uncacheable, cold", "uncacheable, known",
                 "uncacheable, direct"):
        for n in args.clients:
            for name in (("origin",) if kind.endswith("direct") else CACHES):
                rs = [r for k, c, nm, _, r in rows if k == kind and c == n and nm == name]
                med = {f: statistics.median(r[f] for r in rs)
                       for f in ("origin", "errors", "p50", "p99", "total")}
                print("| %s | %d | %s | %d | %d | %.0f | %.0f | %.0f | %.2f |"
                      % (kind, n, name, med["origin"], med["errors"], med["p50"], med["p99"],
                         med["total"], med["total"] / args.delay))


def report(kind, n, name, rnd, r):
    import sys
    print("round %d  %-18s n=%-5d %-8s origin=%-5d non-200=%-4d p50 %6.0f ms  p99 %6.0f ms"
          % (rnd + 1, kind, n, name, r["origin"], r["errors"], r["p50"], r["p99"]),
          file=sys.stderr)
