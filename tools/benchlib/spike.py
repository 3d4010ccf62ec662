"""Spike: an origin that takes at most 8 requests at once (50 ms each, 503
beyond that), a Zipf mix over 1000 URLs with max-age=2, 512 connections for
15 s (wrk with a Lua script). Reported: the share of 5xx the users saw, and
how many requests the origin got (and refused). Cold: an empty cache. Warm:
every URL fetched once before, so objects expire during the spike."""
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request

from .common import CACHES, Caches, ScriptedOrigin

LUA = r"""
local urls = 1000
local cdf = {}
local sum = 0
for i = 1, urls do sum = sum + 1 / i end
local acc = 0
for i = 1, urls do acc = acc + (1 / i) / sum; cdf[i] = acc end
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  prefix = args[1]
  ok, fivexx, other = 0, 0, 0
  math.randomseed(os.time() + id * 7919)
end
local function zipf()
  local r = math.random()
  local lo, hi = 1, urls
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < r then lo = mid + 1 else hi = mid end
  end
  return lo
end
function request()
  return wrk.format("GET", prefix .. zipf())
end
function response(status, headers, body)
  if status >= 500 then fivexx = fivexx + 1
  elseif status == 200 then ok = ok + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("ok"); b = b + t:get("fivexx"); c = c + t:get("other")
  end
  io.write(string.format("SPIKE ok=%d fivexx=%d other=%d p99us=%d\n", a, b, c,
                         latency:percentile(99)))
end
"""


def wrk_spike(port, prefix, seconds, conns, threads, script):
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
                          "-s", script, "http://127.0.0.1:%d" % port, "--", prefix],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"SPIKE ok=(\d+) fivexx=(\d+) other=(\d+) p99us=(\d+)", out)
    if m is None:
        raise RuntimeError("wrk gave no summary:\n" + out)
    ok, fivexx, other, p99 = (int(x) for x in m.groups())
    return {"ok": ok, "5xx": fivexx, "other": other, "p99": p99 / 1000.0}


def warm(caches, name, prefix):
    """Every URL once, 8 at a time (what the origin takes)."""
    import concurrent.futures
    def get(i):
        for _ in range(20):
            try:
                with urllib.request.urlopen(caches.url(name, "%s%d" % (prefix, i))) as r:
                    r.read()
                    return
            except OSError:
                time.sleep(0.05)
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(get, range(1, 1001)))


def main(args):
    origin = ScriptedOrigin()
    caches = Caches(args.workers, origin.port).start(args.outpost_site)
    script = os.path.join(caches.dir, "spike.lua")
    with open(script, "w") as f:
        f.write(LUA)
    rows = []
    try:
        for rnd in range(args.rounds):
            for state in ("cold", "warm"):
                for name in CACHES:
                    prefix = "/spike/%s-%s-%d/" % (name, state, rnd)
                    if state == "warm":
                        warm(caches, name, prefix)
                        time.sleep(2.5)  # everything has expired when the spike starts
                    origin.reset()
                    r = wrk_spike(caches.ports[name], prefix, args.seconds, args.conns,
                                  args.wrk_threads, script)
                    st = origin.stats()
                    r["origin"] = st["requests"]
                    r["shed"] = st["shed"]
                    total = r["ok"] + r["5xx"] + r["other"]
                    r["total"] = total
                    r["rate"] = 100.0 * r["5xx"] / total if total else float("nan")
                    rows.append((state, name, r))
                    print("round %d  %-5s %-8s requests %7d  5xx %6d (%5.2f%%)  origin %6d "
                          "(refused %6d)  p99 %7.1f ms" % (rnd + 1, state, name, total, r["5xx"],
                                                           r["rate"], r["origin"], r["shed"],
                                                           r["p99"]), file=sys.stderr)
                    time.sleep(1)
    finally:
        caches.stop()
        origin.stop()
    print("\nspike: origin 8 at once x 50 ms (503 beyond), Zipf over 1000 URLs, max-age=2, "
          "%d connections for %d s, %d workers each; median over %d rounds"
          % (args.conns, args.seconds, args.workers, args.rounds))
    print("| cache state | cache | requests | 5xx | 5xx share | origin requests "
          "| origin refused | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for state in ("cold", "warm"):
        for name in CACHES:
            rs = [r for s, n, r in rows if s == state and n == name]
            med = {f: statistics.median(r[f] for r in rs)
                   for f in ("total", "5xx", "rate", "origin", "shed", "p99")}
            print("| %s | %s | %d | %d | %.2f%% | %d | %d | %.1f |"
                  % (state, name, med["total"], med["5xx"], med["rate"], med["origin"],
                     med["shed"], med["p99"]))
