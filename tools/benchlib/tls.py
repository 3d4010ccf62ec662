"""TLS termination, Outpost against nginx (Varnish terminates no TLS): both
on one ECDSA P-256 leaf made here with the openssl command line, TLS 1.3
only on nginx, the suites in Outpost's order with the server's preference on
both, so each negotiates TLS_AES_128_GCM_SHA256 with X25519 (checked with
openssl s_client and printed). Session resumption as Outpost's defaults: one
TLS 1.3 ticket per full handshake, no server-side session cache.
  hits: wrk over https on keep-alive connections, warm 1 KiB and 64 KiB
        objects, 64 and 256 connections: requests/s and p99.
  handshakes: benchlib/handshakes.c, THREADS threads that each connect, run
        a full handshake (nothing resumes), GET a 1 KiB hit and close (no
        close_notify; --hs-close-notify sends one first):
        handshakes/s, with each side's CPU per handshake.
Both interleaved round by round; the CPU of the load generator and of each
server is measured, so a client that limits one server more than the other
shows. Server sockets left in CLOSE-WAIT after each run are counted.
    tools/bench [--rounds 3] tls [--seconds 8] [--hs-seconds 10] [--hs-threads 16]
                    [--hs-close-notify] [--outpost-bin PATH]
The Outpost binary is --outpost-bin, else $OUTPOST_BIN, else build/outpost."""
import http.client
import json
import os
import re
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from .common import NGINX_CACHE, TOP, free_port, wait_port
from .hits import parse_size, start_origin

SERVERS = ("outpost", "nginx")
MAX_PER_THREAD = 200000  # handshakes per client thread in one run
SNI = "bench"
# Outpost's TLS 1.3 suites in its order (src/tls/tls_ctx.c), its groups
TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
GROUPS = "X25519:P-256:P-384"

# The hit cache of benchlib/common.py behind TLS. nginx 1.22's default
# ssl_protocols lacks TLSv1.3, so it is named. Without server preference
# nginx takes the client's first suite (OpenSSL clients, wrk among them, put
# AES-256-GCM first); with it and Outpost's list both pick AES-128-GCM.
# Tickets as Outpost's defaults: on, one per full handshake (OpenSSL would
# send two), keys in the process; no session cache (Outpost's
# tls_session_cache: 0 is SSL_SESS_CACHE_OFF, as nginx's "off").
PLAIN_LISTEN = "    listen 127.0.0.1:{port} reuseport backlog=4096;\n"
assert PLAIN_LISTEN in NGINX_CACHE
NGINX_TLS = NGINX_CACHE.replace(PLAIN_LISTEN, """    listen 127.0.0.1:{port} ssl reuseport backlog=4096;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites {suites};
    ssl_ecdh_curve {groups};
    ssl_session_tickets on;
    ssl_conf_command NumTickets 1;
    ssl_session_cache off;
""")


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=30)


def make_cert(d):
    """A P-256 CA and a P-256 leaf it signs for DNS:bench and 127.0.0.1."""
    ca, cakey = d + "/ca.crt", d + "/ca.key"
    crt, key, csr = d + "/leaf.crt", d + "/leaf.key", d + "/leaf.csr"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", cakey, "-out", ca, "-days", "2",
            "-subj", "/CN=Outpost bench CA")
    openssl("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=" + SNI)
    with open(d + "/leaf.ext", "w") as f:
        f.write("subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n" % SNI)
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial",
            "-days", "2", "-sha256", "-extfile", d + "/leaf.ext", "-out", crt)
    os.chmod(key, 0o600)
    return ca, crt, key


def outpost_binary(args):
    return (getattr(args, "outpost_bin", None) or os.environ.get("OUTPOST_BIN")
            or os.path.join(TOP, "build", "outpost"))


def build_client(d):
    exe = d + "/handshakes"
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", exe,
                    os.path.join(TOP, "tools", "benchlib", "handshakes.c"), "-lssl", "-lcrypto"],
                   check=True, timeout=120)
    return exe


def proc_cpu(pid):
    """CPU seconds of pid and its child processes (nginx's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state (field 3): ppid is 4, utime 14, stime 15
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def close_wait(port):
    """Server sockets on <port> whose client has closed but the server not."""
    out = subprocess.run(["ss", "-tanH", "state", "close-wait", "sport", "= :%d" % port],
                         capture_output=True, text=True, timeout=20).stdout
    return len(out.splitlines())


def outpost_metrics(exe, sock):
    """Outpost's nonzero TLS and connection counters, from outpostctl."""
    ctl = os.path.join(os.path.dirname(exe), "outpostctl")
    if not os.path.exists(ctl):
        return {}
    p = subprocess.run([ctl, "--socket", sock, "metrics"], capture_output=True, text=True,
                       timeout=20)
    got = {}
    for line in p.stdout.splitlines():
        m = re.match(r"outpost_(tls_\w+|connections\w*)(\{[^}]*\})? (\d+)$", line)
        if m and int(m.group(3)) > 0 and "expiry" not in m.group(1):
            got[m.group(1) + (m.group(2) or "")] = int(m.group(3))
    return got


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class TlsServers:
    """Outpost and nginx serving HTTPS in front of the origin on <origin>."""

    def __init__(self, d, workers, origin, crt, key):
        self.dir, self.workers, self.origin = d, workers, origin
        self.crt, self.key = crt, key
        self.procs = {}
        self.ports = {}
        self.logs = {}

    def spawn(self, name, args):
        log = open("%s/%s.out" % (self.dir, name), "w")
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def start(self, outpost_bin, outpost_site):
        d = self.dir
        n = self.ports["nginx"] = free_port()
        with open(d + "/cache.conf", "w") as f:
            f.write(NGINX_TLS.format(dir=d, port=n, origin=self.origin, workers=self.workers,
                                     crt=self.crt, key=self.key, suites=TLS13_SUITES,
                                     groups=GROUPS))
        self.spawn("nginx", ["nginx", "-c", d + "/cache.conf", "-g", "daemon off;"])

        p = self.ports["outpost"] = free_port()
        with open(d + "/outpost.yaml", "w") as f:
            f.write("listen: 127.0.0.1:%d\nlisten_tls: 127.0.0.1:%d\ntls_cert: %s\n"
                    "tls_key: %s\ncache_dir: %s/outpost-cache\nadmin_socket: %s/admin.sock\n"
                    "workers: %d\nlog_level: warn\n"
                    "sites:\n  - host: \"*\"\n    origin: http://127.0.0.1:%d\n"
                    "    first_byte_timeout: 5s\n"
                    % (free_port(), p, self.crt, self.key, d, d, self.workers, self.origin))
            for k, val in (outpost_site or {}).items():
                f.write("    %s: %s\n" % (k, val))
        self.spawn("outpost", [outpost_bin, "-c", d + "/outpost.yaml"])
        for name in SERVERS:
            wait_port(self.ports[name])
        return self

    def cpu(self, name):
        return proc_cpu(self.procs[name].pid)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        for name, path in (("outpost", "outpost.out"), ("nginx", "cache-error.log"),
                           ("nginx", "nginx.out")):
            try:
                with open(os.path.join(self.dir, path)) as f:
                    lines = [line.rstrip() for line in f if line.strip()]
            except OSError:
                continue
            self.logs.setdefault(name, []).extend(lines)


def https_get(port, path, ca):
    ctx = ssl.create_default_context(cafile=ca)
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        c.request("GET", path, headers={"Host": SNI})
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("Cache-Status", "")
    finally:
        c.close()


def warm(servers, paths, ca):
    for name in SERVERS:
        for path in paths:
            for _ in range(3):
                https_get(servers.ports[name], path, ca)
    time.sleep(0.5)
    for name in SERVERS:  # the measured requests must be hits, over https
        for path in paths:
            status, cs = https_get(servers.ports[name], path, ca)
            assert status == 200 and "hit" in cs.lower(), (name, path, status, cs)


def negotiated(port, ca):
    """What an OpenSSL client with its defaults (as wrk's) gets: version,
    suite, key exchange and the verification of the leaf."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", SNI, "-CAfile", ca, "-verify_return_error", "-brief"],
                       input="", capture_output=True, text=True, timeout=20)
    out = p.stdout + p.stderr
    got = {}
    for key, pat in (("protocol", r"Protocol version:\s*(\S+)"),
                     ("suite", r"Ciphersuite:\s*(\S+)"),
                     ("kx", r"Server Temp Key:\s*([^\n]+)"),
                     ("sig", r"Signature type:\s*([^\n]+)"),
                     ("verify", r"Verification:\s*([^\n]+)")):
        m = re.search(pat, out)
        got[key] = m.group(1).strip() if m else "?"
    if p.returncode != 0 or got["suite"] == "?":
        got["error"] = " / ".join(out.strip().splitlines()[-3:])
    return got


def wrk(servers, name, size, conns, seconds, threads):
    port = servers.ports[name]
    c0, s0, t0 = children_cpu(), servers.cpu(name), time.monotonic()
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency",
                          "-H", "Host: %s" % SNI, "https://127.0.0.1:%d/obj-%d" % (port, size)],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    wall = time.monotonic() - t0
    client, server = (children_cpu() - c0) / wall, (servers.cpu(name) - s0) / wall
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    bad = [line.strip() for line in out.splitlines() if "errors" in line or "Non-2xx" in line]
    if bad:
        print("  warning: %s %dk c=%d: %s" % (name, size // 1024, conns, " ".join(bad)),
              file=sys.stderr)
    time.sleep(1)
    return {"rps": rps, "p99": p99, "client": client, "server": server, "bad": bad,
            "close_wait": close_wait(port)}


def handshakes(servers, name, exe, threads, seconds, notify):
    port = servers.ports[name]
    s0, t0 = servers.cpu(name), time.monotonic()
    p = subprocess.run([exe, str(port), str(threads), str(seconds), "/obj-1024", SNI,
                        str(MAX_PER_THREAD), "1" if notify else "0"],
                       capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError("handshakes: %s" % p.stderr.strip())
    r = json.loads(p.stdout)
    r["server_cpu"] = servers.cpu(name) - s0
    r["server"] = r["server_cpu"] / wall
    r["client"] = r["cpu_s"] / r["wall_s"]
    r["rate"] = r["done"] / r["wall_s"]
    time.sleep(1)
    r["close_wait"] = close_wait(port)
    return r


def main(args):
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    conns = [int(c) for c in args.conns.split(",")]
    exe_outpost = outpost_binary(args)
    load0 = os.getloadavg()[0]
    d = tempfile.mkdtemp(prefix="outpost-bench-tls-")
    os.chmod(d, 0o755)  # nginx workers drop root
    origin = servers = None
    hits, hs = {}, {}
    try:
        ca, crt, key = make_cert(d)
        client = build_client(d)
        port, origin = start_origin(d, sizes)
        servers = TlsServers(d, args.workers, port, crt, key).start(exe_outpost, args.outpost_site)
        seen = {name: negotiated(servers.ports[name], ca) for name in SERVERS}
        warm(servers, ["/obj-%d" % s for s in sizes], ca)
        for rnd in range(args.rounds):
            order = SERVERS if rnd % 2 == 0 else SERVERS[::-1]
            for size in sizes:
                for c in conns:
                    for name in order:
                        r = wrk(servers, name, size, c, args.seconds, args.wrk_threads)
                        hits.setdefault((size, c, name), []).append(r)
                        print("round %d  %-7s %3dk c=%-4d %9.0f req/s  p99 %7.2f ms  "
                              "cpu wrk %.2f server %.2f"
                              % (rnd + 1, name, size // 1024, c, r["rps"], r["p99"],
                                 r["client"], r["server"]), file=sys.stderr)
            for name in order:
                r = handshakes(servers, name, client, args.hs_threads, args.hs_seconds,
                               args.hs_close_notify)
                hs.setdefault(name, []).append(r)
                print("round %d  %-7s handshakes %7.0f/s  hs p99 %6.2f ms  cpu client %.2f "
                      "server %.2f  failed %d" % (rnd + 1, name, r["rate"], r["hs_p99_ms"],
                                                  r["client"], r["server"],
                                                  r["hs_fail"] + r["connect_err"] + r["io_err"]),
                      file=sys.stderr)
        counters = outpost_metrics(exe_outpost, d + "/admin.sock")
    finally:
        if servers is not None:
            servers.stop()
        if origin is not None:
            origin.terminate()
            origin.wait(10)
        shutil.rmtree(d, ignore_errors=True)

    med = statistics.median
    print("\nTLS termination, Outpost %s against nginx, %d workers each, %d rounds; %d CPUs, "
          "load average %.1f at the start, %.1f at the end"
          % (exe_outpost, args.workers, args.rounds, os.cpu_count(), load0, os.getloadavg()[0]))
    print("nginx: " + " ".join(line.strip() for line in NGINX_TLS.format(
        dir="", port=0, origin=0, workers=0, crt="C", key="K", suites=TLS13_SUITES,
        groups=GROUPS).splitlines() if line.strip().startswith(("ssl_", "listen"))))
    print("Outpost: its defaults (listen_tls, tls_cert, tls_key only: tls_ticket_rotate 1h, "
          "tls_session_cache 0)")
    print("\nnegotiated (openssl s_client with its defaults; the handshake client's own count)")
    print("| server | protocol | suite | key exchange | signature | leaf verified | "
          "handshake client saw |")
    print("|---|---|---|---|---|---|---|")
    for name in SERVERS:
        g = seen[name]
        saw = {}
        for r in hs[name]:
            for k, v in r["suites"].items():
                saw[k] = saw.get(k, 0) + v
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, g["protocol"], g["suite"], g["kx"], g["sig"], g["verify"],
            ", ".join("%s x%d" % kv for kv in sorted(saw.items()))))
        if "error" in g:
            print("  s_client %s: %s" % (name, g["error"]))

    print("\nkeep-alive HTTPS hits, median of %d rounds of %ds (wrk -t%d); CPU in cores "
          "(CPU s per s)" % (args.rounds, args.seconds, args.wrk_threads))
    print("| object | conns | Outpost req/s | nginx req/s | Outpost p99 ms | nginx p99 ms "
          "| Outpost/nginx | wrk CPU O / n | server CPU O / n |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        for c in conns:
            m = {n: {k: med(x[k] for x in hits[(size, c, n)])
                     for k in ("rps", "p99", "client", "server")} for n in SERVERS}
            o, n = m["outpost"], m["nginx"]
            print("| %dk | %d | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f / %.2f | %.2f / %.2f |"
                  % (size // 1024, c, o["rps"], n["rps"], o["p99"], n["p99"],
                     o["rps"] / n["rps"], o["client"], n["client"], o["server"], n["server"]))

    print("\nfull handshakes (TLS 1.3, X25519, nothing resumed), one GET of a 1 KiB hit each, "
          "median of %d rounds of %ds, %d client threads" % (args.rounds, args.hs_seconds,
                                                            args.hs_threads))
    print("| server | handshakes/s | handshake p50 / p99 ms | request p99 ms | server CPU cores "
          "| server CPU us/hs | client CPU cores | client CPU us/hs | tickets/hs | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rate, cpu_hs = {}, {}
    for name in SERVERS:
        rs = hs[name]
        rate[name] = med(r["rate"] for r in rs)
        cpu_hs[name] = med(r["server_cpu"] / max(r["done"], 1) * 1e6 for r in rs)
        done = sum(r["done"] for r in rs)
        errors = {k: sum(r[k] for r in rs) for k in ("connect_err", "hs_fail", "io_err",
                                                      "non200", "nonhit", "resumed")}
        print("| %s | %.0f | %.2f / %.2f | %.2f | %.2f | %.0f | %.2f | %.0f | %.2f | %s |" % (
            name, rate[name], med(r["hs_p50_ms"] for r in rs), med(r["hs_p99_ms"] for r in rs),
            med(r["req_p99_ms"] for r in rs), med(r["server"] for r in rs), cpu_hs[name],
            med(r["client"] for r in rs), med(r["cpu_s"] / max(r["done"], 1) * 1e6 for r in rs),
            sum(r["tickets"] for r in rs) / max(done, 1),
            ", ".join("%s %d" % kv for kv in errors.items() if kv[1]) or "none"))
        for r in rs:
            if r["first_error"]:
                print("  %s: first error: %s" % (name, r["first_error"]))
                break
    print("\nOutpost/nginx handshakes/s: %.2f; nginx/Outpost server CPU per handshake: %.2f"
          % (rate["outpost"] / rate["nginx"], cpu_hs["nginx"] / cpu_hs["outpost"]))
    print("client closes with close_notify: %s" % ("yes" if args.hs_close_notify else "no"))
    left = {n: (max(x["close_wait"] for k, v in hits.items() if k[2] == n for x in v),
                max(r["close_wait"] for r in hs[n])) for n in SERVERS}
    print("server sockets in CLOSE-WAIT (the client closed, the server not) 1 s after a run, "
          "most seen, hits / handshakes: " + ", ".join("%s %d / %d" % (n, left[n][0], left[n][1])
                                                        for n in SERVERS))
    bad = [(k, x["bad"]) for k, v in sorted(hits.items()) for x in v if x["bad"]]
    for (size, c, n), b in bad:
        print("wrk %s %dk c=%d: %s" % (n, size // 1024, c, " ".join(b)))
    print("Outpost counters at the end: " + ", ".join("%s %d" % kv for kv in counters.items()))
    for name in SERVERS:
        lines = servers.logs.get(name, [])
        if lines:
            print("\n%s logged %d lines; the first:" % (name, len(lines)))
            for line in lines[:5]:
                print("  " + line)
