#!/usr/bin/env python3
"""A slow client for timeout tests: drip.py PORT PREFIX BYTE EVERY COUNT WITHIN EXPECT

Connects to 127.0.0.1:PORT, sends PREFIX (backslash escapes allowed, e.g.
"GET / HTTP/1.1\\r\\n"), then BYTE every EVERY seconds, at most COUNT times,
and stops as soon as the node answers or closes. The clock starts when the
first byte of PREFIX goes out (for a head) or, with a PREFIX ending in an
empty line, once it has gone (for a body). Exit 0 when the node cut the
request within WITHIN seconds with EXPECT: a status code, or "close" for a
close without an answer (a status is accepted there too); else 1, with what
happened on stdout."""
import codecs
import select
import socket
import sys
import time


def main():
    port, prefix, byte, every, count, within, expect = sys.argv[1:8]
    prefix = codecs.decode(prefix, "unicode_escape").encode("latin-1")
    byte = codecs.decode(byte, "unicode_escape").encode("latin-1")
    every, count, within = float(every), int(count), float(within)
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    body_phase = prefix.endswith(b"\r\n\r\n")
    start = time.monotonic()
    s.sendall(prefix)
    if body_phase:
        start = time.monotonic()
    answer = None
    for _ in range(count):
        readable, _, _ = select.select([s], [], [], every)
        if readable:
            answer = read_answer(s)
            break
        try:
            s.sendall(byte)
        except OSError as e:  # reset: the node closed first
            answer = b"" if not isinstance(e, BrokenPipeError) else read_answer(s)
            break
    else:
        readable, _, _ = select.select([s], [], [], within)
        if readable:
            answer = read_answer(s)
    elapsed = time.monotonic() - start
    if answer is None:
        print("not cut: still open after %.2fs" % elapsed)
        return 1
    status = answer[9:12].decode("latin-1") if answer.startswith(b"HTTP/1.1 ") else "close"
    print("cut after %.2fs: %s" % (elapsed, status))
    if elapsed > within:
        return 1
    return 0 if status == expect or expect == "close" else 1


def read_answer(s):
    data = b""
    s.settimeout(2)
    try:
        while True:
            more = s.recv(65536)
            if not more:
                break
            data += more
    except OSError:
        pass
    return data


if __name__ == "__main__":
    sys.exit(main())
