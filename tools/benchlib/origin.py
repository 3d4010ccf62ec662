#!/usr/bin/python3
"""The benchmark origin: asyncio HTTP/1.1 with keep-alive, scripted by path,
counting what it is asked. Run as a process: origin.py PORT

  /herd/...     200 after --delay ms, Cache-Control: max-age=300
  /private/...  200 after --delay ms, Cache-Control: private
  /spike/...    200 after 50 ms with max-age=2, but at most 8 at once: beyond
                that 503 at once (an origin that sheds load)
  /fail/...     per the mode set with /__mode?m=ok|503|hang (200 max-age=1)
  /tagged/N     200 at once, max-age=3600, Surrogate-Key: all gN%100
  /hot/N        200 at once, max-age=3600, Surrogate-Key: hot
  /__stats      JSON counts; /__reset zeroes them
"""
import asyncio
import json
import sys

DELAY = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.2
stats = {"requests": 0, "ok": 0, "shed": 0, "by_prefix": {}}
state = {"inflight_spike": 0, "mode": "ok"}
BODY = b"x" * 1024


def response(status, cc, body=BODY, reason=None, extra=""):
    reason = reason or {200: "OK", 503: "Service Unavailable"}[status]
    head = ("HTTP/1.1 %d %s\r\nCache-Control: %s\r\n%sContent-Length: %d\r\n\r\n"
            % (status, reason, cc, extra, len(body))).encode()
    return head + body


async def answer(path):
    prefix = "/" + path.split("/")[1] if path.count("/") > 1 else path
    if path.startswith("/__stats"):
        return response(200, "no-store", json.dumps(stats).encode())
    if path.startswith("/__reset"):
        stats.update(requests=0, ok=0, shed=0, by_prefix={})
        return response(200, "no-store", b"{}")
    if path.startswith("/__mode"):
        state["mode"] = path.split("m=")[1]
        return response(200, "no-store", b"{}")
    stats["requests"] += 1
    stats["by_prefix"][prefix] = stats["by_prefix"].get(prefix, 0) + 1
    if prefix == "/spike":
        if state["inflight_spike"] >= 8:
            stats["shed"] += 1
            return response(503, "no-store", b"busy\n")
        state["inflight_spike"] += 1
        try:
            await asyncio.sleep(0.05)
        finally:
            state["inflight_spike"] -= 1
        stats["ok"] += 1
        return response(200, "max-age=2")
    if prefix == "/tagged":
        last = path.split("/")[2]
        n = int(last.rsplit("-", 1)[-1]) if last[-1:].isdigit() else 0
        return response(200, "max-age=3600", extra="Surrogate-Key: all g%d\r\n" % (n % 100))
    if prefix == "/hot":
        return response(200, "max-age=3600", extra="Surrogate-Key: hot\r\n")
    if prefix == "/fail":
        if state["mode"] == "503":
            return response(503, "no-store", b"down\n")
        if state["mode"] == "hang":
            await asyncio.sleep(3600)
        return response(200, "max-age=1")
    await asyncio.sleep(DELAY)
    stats["ok"] += 1
    return response(200, "private" if prefix == "/private" else "max-age=300")


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            writer.write(await answer(path))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()

asyncio.run(main())
