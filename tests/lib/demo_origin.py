#!/usr/bin/python3
"""A small demo origin for tools/run: every path answers a short page that is
cacheable for 60 s, with an ETag, so hits, 304s and ranges can be tried."""
import argparse
import http.server
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "outpost-demo-origin"

    def do_GET(self):
        body = ("Hello from the demo origin: %s at %s\n" % (self.path, time.strftime(
            "%H:%M:%S", time.gmtime()))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=60")
        self.send_header("ETag", '"%x"' % (hash(body) & 0xffffffff))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8081)
    args = ap.parse_args()
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
