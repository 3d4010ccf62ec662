#!/usr/bin/python3
"""Hostile-input corpora against the real binary.

    run_corpus.py OUTPOST_BINARY CORPUS.json [--tls] [CASE-NAME...]

With --tls every client exchange goes over a TLS listener (a certificate
made at start with the openssl command line) instead: the same bytes must
meet the same gate and get the same answers. One rewrite: an absolute-form
request target names https there, since the node refuses a target whose
scheme is not the connection's (README, "TLS").

A corpus is a JSON list of cases. A request case ("send") is raw bytes from a
hostile client; a response case ("reply") is raw bytes from a hostile origin
for GET /r/<case> (or HEAD, with "method"). Strings are latin-1, so any byte
can be written with \\u00XX.

Each case checks, besides its own expectations:
  - the origin never saw a request whose target contains "smuggled" (a
    request hidden in another one's bytes reached it);
  - the origin saw at most "max_origin_requests" requests for the case;
  - afterwards, fresh requests for other URLs (through the same pooled origin
    connection, one worker) get exactly their own answer, and the case's own
    URL never serves a body with "PWNED" (nothing poisoned was stored);
  - the node is still alive.

The origin is a correct HTTP/1.1 server that answers "origin:<path>" with
max-age=60, except for /r/<case> (the case's raw reply) and /early/... (it
answers 401 as soon as the head arrives and then drains the body, as nginx
does). Prints 'N passed, N failed'; exit 1 on any failure.
"""
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def b(s):
    return s.encode("latin-1")


CLIENT_TLS = None  # an ssl.SSLContext once --tls made the certificate


def connect(port, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if CLIENT_TLS is None:
        return s
    try:
        return CLIENT_TLS.wrap_socket(s, server_hostname="localhost")
    except Exception:
        s.close()
        raise


def readable(s, wait):
    """Bytes are waiting on <s> within <wait> seconds (TLS: decrypted ones
    count, which select cannot see)."""
    if CLIENT_TLS is not None and s.pending() > 0:
        return True
    r, _, _ = select.select([s], [], [], wait)
    return bool(r)


def make_cert(tmp):
    crt, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days",
                    "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return crt, key


class Origin:
    """Records every request it parses; answers as described above."""

    def __init__(self, cases):
        self.cases = cases
        self.log = []  # (conn id, method, target, headers, body)
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.stopping = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self.serve, args=(s, self.conns), daemon=True).start()

    def requests(self):
        with self.lock:
            return list(self.log)

    def serve(self, s, cid):
        s.settimeout(10)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                if len(parts) != 3:
                    return
                method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1")
                headers = {}
                for ln in lines[1:]:
                    k, _, v = ln.partition(b":")
                    headers.setdefault(k.strip().lower().decode("latin-1"), []).append(
                        v.strip().decode("latin-1"))
                with self.lock:
                    self.log.append((cid, method, target, headers, None))
                early = target.startswith("/early/")
                if early:
                    s.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope")
                body, buf = self.read_body(s, headers, buf)
                if body is None:
                    return
                if early:
                    continue
                path = target.split("?")[0]
                if path.startswith("/r/"):
                    case = self.cases.get(path[3:].split("/")[0])
                    if case is None:
                        return
                    if not self.reply(s, case):
                        return
                    continue
                page = b("origin:" + target)
                s.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: "
                          + str(len(page)).encode() + b"\r\n\r\n"
                          + (b"" if method == "HEAD" else page))
        except (OSError, ValueError):
            return
        finally:
            s.close()

    def read_body(self, s, headers, buf):
        def need(n):
            nonlocal buf
            while len(buf) < n:
                d = s.recv(65536)
                if not d:
                    raise ValueError("eof")
                buf += d

        if "transfer-encoding" in headers:
            body = b""
            while True:
                while b"\r\n" not in buf:
                    need(len(buf) + 1)
                line, buf = buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while b"\r\n" not in buf:
                        need(len(buf) + 1)
                    # trailers end with an empty line
                    while not buf.startswith(b"\r\n"):
                        _, buf = buf.split(b"\r\n", 1)
                        while b"\r\n" not in buf:
                            need(len(buf) + 1)
                    buf = buf[2:]
                    return body, buf
                need(size + 2)
                body += buf[:size]
                buf = buf[size + 2:]
        n = int(headers.get("content-length", ["0"])[0])
        need(n)
        return buf[:n], buf[n:]

    def reply(self, s, case):
        """Send the case's raw reply; False when the connection is to close."""
        total = case.get("chunked_total")
        if total:
            s.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            while total > 0:
                n = min(total, 65536)
                s.sendall(b"%x\r\n" % n + b"a" * n + b"\r\n")
                total -= n
            s.sendall(b"0\r\n\r\n")
            return True
        rep = case.get("reply_repeat")
        if rep:
            piece, times, gap = b(rep[0]), rep[1], rep[2]
            for _ in range(times):
                s.sendall(piece)
                if gap:
                    time.sleep(gap)
        for i, piece in enumerate(case["reply"] if isinstance(case["reply"], list)
                                  else [case["reply"]]):
            if i:
                time.sleep(case.get("gap", 0.2))
            s.sendall(b(piece))
        return not case.get("close", False)

    def stop(self):
        self.stopping = True
        self.sock.close()


def http_exchange(port, data, timeout=4.0, until_close=False):
    """Send raw bytes; read until the peer closes, the timeout, or (unless
    <until_close>) a whole final response. Returns (bytes, closed)."""
    s = connect(port, timeout)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    out = b""
    closed = False
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not readable(s, max(0.0, end - time.monotonic())):
            break
        try:
            d = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            closed = True
            break
        if not d:
            closed = True
            break
        out += d
        if not until_close and complete(out):
            break
    s.close()
    return out, closed


def complete(out):
    """Does <out> hold at least one whole response (by Content-Length)?"""
    head, sep, rest = out.partition(b"\r\n\r\n")
    if not sep:
        return False
    for ln in head.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(rest) >= int(v.strip())
    return b"chunked" in head.lower() and dechunk(rest)[1]


def dechunk(rest):
    """(body, whether the last chunk came) of a chunked body."""
    body = b""
    while True:
        line, sep, after = rest.partition(b"\r\n")
        if not sep:
            return body, False
        try:
            n = int(line.split(b";")[0], 16)
        except ValueError:
            return body, False
        if n == 0:
            return body, True
        if len(after) < n + 2:
            return body + after[:n], False
        body += after[:n]
        rest = after[n + 2:]


def statuses(out):
    """Final statuses of the responses in <out> (1xx skipped)."""
    res = []
    for ln in out.split(b"\r\n"):
        if ln.startswith(b"HTTP/1.") and len(ln) >= 12 and ln[9:12].isdigit():
            st = int(ln[9:12])
            if st >= 200:
                res.append(st)
    return res


def body_of(out):
    """The final response's head and body (de-chunked) in <out>."""
    head, _, rest = out.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 1"):
        head, _, rest = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        return head, dechunk(rest)[0]
    return head, rest


def served_poison(out):
    """A stored (hit) answer carrying the corpus' poison marker."""
    head, body = body_of(out)
    status = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"cache-status:")]
    return b"PWNED" in body and any(b"hit" in ln for ln in status)


def get(port, host, path, method="GET"):
    out, _ = http_exchange(port, b("%s %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (method, path, host)))
    return out


def run(binary, corpus_path, only, tls=False):
    global CLIENT_TLS
    cases = json.load(open(corpus_path))
    by_name = {c["name"]: c for c in cases}
    if len(by_name) != len(cases):
        print("duplicate case names in", corpus_path)
        return 1
    origin = Origin(by_name)
    tmp = tempfile.mkdtemp(prefix="outpost-corpus-")
    port = plain_port = free_port()
    tls_conf = ""
    if tls:
        crt, key = make_cert(tmp)
        port = free_port()
        tls_conf = f"listen_tls: 127.0.0.1:{port}\ntls_cert: {crt}\ntls_key: {key}\n"
        CLIENT_TLS = ssl.create_default_context(cafile=crt)
    conf = os.path.join(tmp, "outpost.yaml")
    with open(conf, "w") as f:
        f.write(tls_conf)
        f.write(f"""listen: 127.0.0.1:{plain_port}
workers: 1
cache_dir: {tmp}/cache
cache_size: 64m
max_object_size: 1m
max_body_size: 1m
max_header_size: 8k
max_request_line: 4k
header_timeout: 1s
body_timeout: 1s
idle_timeout: 3s
admin_socket: {tmp}/admin.sock
sites:
  - host: "*"
    origin: http://127.0.0.1:{origin.port}
    first_byte_timeout: 1s
    between_bytes_timeout: 1s
    origin_fail_threshold: 0
    stale_if_error: 0s
""")
    log = open(os.path.join(tmp, "outpost.log"), "w")
    proc = subprocess.Popen([binary, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", plain_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    passed = failed = 0
    try:
        for case in cases:
            if only and case["name"] not in only:
                continue
            errors = check_case(case, port, origin, proc)
            if errors:
                failed += 1
                print("FAIL %s: %s" % (case["name"], "; ".join(errors)))
            else:
                passed += 1
            if proc.poll() is not None:
                print("the node exited (%d); remaining cases not run" % proc.returncode)
                failed += 1
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = -9
            if rc != 0:
                print("the node exited %d on SIGTERM (sanitizer report in %s/outpost.log?)" %
                      (rc, tmp))
                failed += 1
        origin.stop()
        log.close()
        if failed:
            print(open(os.path.join(tmp, "outpost.log")).read()[-4000:])
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def check_case(case, port, origin, proc):
    name = case["name"]
    errors = []
    before = len(origin.requests())
    if "send" in case:
        data = b(case["send"].replace("{case}", name))
        if CLIENT_TLS is not None:
            data = re.sub(rb"(?m)^([A-Za-z]+) http://", rb"\1 https://", data)
        pieces = case.get("send_pieces")
        if pieces:
            out, closed = slow_send(port, data, pieces)
        else:
            out, closed = http_exchange(port, data, timeout=case.get("timeout", 4.0),
                                        until_close=case.get("closed", False))
    else:
        method = case.get("method", "GET")
        extra = "".join(h + "\r\n" for h in case.get("req_headers", []))
        out, closed = http_exchange(
            port, b("%s /r/%s HTTP/1.1\r\nHost: corpus.test\r\n%s\r\n" % (method, name, extra)),
            timeout=case.get("timeout", 4.0), until_close=case.get("closed", False))
    got = statuses(out)
    want = case.get("status")
    if want is not None:
        if not got:
            errors.append("no response (want %s)" % want)
        elif got[0] not in want:
            errors.append("status %s, want one of %s" % (got[0], want))
    if case.get("closed") and not closed:
        errors.append("connection left open")
    if "body" in case:
        _, body = body_of(out)
        if body != b(case["body"]):
            errors.append("body %r, want %r" % (body[:80], case["body"]))
    if "body_len" in case:
        _, body = body_of(out)
        if len(body) != case["body_len"]:
            errors.append("body of %d bytes, want %d (head %r, closed %s)" % (
                len(body), case["body_len"], body_of(out)[0][:300], closed))
    for bad in case.get("never_in_response", []):
        if b(bad) in out:
            errors.append("response holds %r" % bad)
    for good in case.get("in_response", []):
        if b(good) not in out:
            errors.append("response lacks %r" % good)
    final_head = body_of(out)[0]
    for bad in case.get("never_in_final", []):
        if b(bad) in final_head:
            errors.append("final response head holds %r" % bad)
    time.sleep(case.get("settle", 0.05))
    seen = origin.requests()[before:]
    for (_, _, target, headers, _) in seen:
        if "smuggled" in target:
            errors.append("smuggled request reached the origin: %s" % target)
    limit = case.get("max_origin_requests", 1)
    if len(seen) > limit:
        errors.append("%d origin requests, at most %d allowed: %s" %
                      (len(seen), limit, [t for (_, _, t, _, _) in seen]))
    for field, values in case.get("origin_saw", {}).items():
        mine = [h.get(field) for (_, _, t, h, _) in seen if name in t]
        if not mine or mine[0] != values:
            errors.append("origin saw %s: %s, want %s" % (field, mine, values))
    if proc.poll() is not None:
        errors.append("the node exited with %d" % proc.returncode)
        return errors
    # afterwards: other URLs get their own answers, and nothing poisoned is served
    for path in ["/v/%s/after-1" % name, "/v/%s/after-2" % name]:
        out = get(port, "corpus.test", path)
        _, body = body_of(out)
        if body != b("origin:" + path):
            errors.append("%s answered %r" % (path, out[:120]))
    for path in case.get("recheck", []):
        out = get(port, "corpus.test", path.replace("{case}", name))
        if served_poison(out) or b"smuggled" in out:
            errors.append("%s serves poisoned bytes: %r" % (path, out[:120]))
    if "send" not in case:
        out = get(port, "corpus.test", "/r/%s" % name)
        if served_poison(out):
            errors.append("the case URL serves a stored poisoned answer: %r" % out[:160])
    return errors


def recv_within(s, wait):
    """Bytes that arrive on <s> within <wait> seconds; None once it closed."""
    if not readable(s, wait):
        return b""
    try:
        return s.recv(65536) or None
    except ssl.SSLError:
        return None


def slow_send(port, data, pieces):
    """Send <data> in pieces of [bytes, gap seconds]; return what came back."""
    size, gap, limit = pieces
    s = connect(port, 2)
    out = b""
    closed = False
    end = time.monotonic() + limit
    i = 0
    try:
        while not closed and time.monotonic() < end:
            if i < len(data):
                s.sendall(data[i:i + size])
                i += size
            d = recv_within(s, gap if i < len(data) else 0.2)
            closed = d is None
            out += d or b""
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        closed = True
    s.close()
    return out, closed


if __name__ == "__main__":
    rest = sys.argv[3:]
    tls = "--tls" in rest
    sys.exit(run(sys.argv[1], sys.argv[2], set(a for a in rest if a != "--tls"), tls))
