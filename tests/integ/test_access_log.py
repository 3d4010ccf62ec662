"""The access log: one line per request, written by its own thread, with the
request id that error pages show, the status, Cache-Status, the origin's
status and the times."""
import re
import socket
import time

from conftest import free_port


def read_lines(path, want, tries=50):
    """Lines are handed to the writer every 250 ms: poll (bounded)."""
    for _ in range(tries):
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) >= want:
            return lines
        time.sleep(0.1)
    raise AssertionError("access log has %d lines, wanted %d" % (len(lines), want))


LINE = re.compile(r'^(\S+Z) (\d+-\d+) (\S+) (\S+) "([^"]*)" (\d+) "([^"]*)" origin=(\S+) '
                  r'origin_ms=(\S+) total_ms=(\d+) (done|closed)$')


def test_one_line_per_request(origin, outposts, tmp_path):
    log = tmp_path / "access.log"
    op = outposts(origin.port, tmp_path / "cache", top={"access_log": str(log)}).start()
    op.request("/page")                      # miss
    time.sleep(0.3)
    op.request("/page")                      # hit
    # a quote in the target is still a well-formed line (a quote in Host is
    # now a 400 at the gate, before any request is logged)
    r, body = op.request('/x"b')
    lines = read_lines(log, 3)
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    # two workers hand over their lines on their own: find them by content
    pages = [m for m in parsed if m.group(5) == "/page"]
    miss = next(m for m in pages if "fwd=uri-miss" in m.group(7))
    hit = next(m for m in pages if "hit" in m.group(7))
    assert miss.group(4) == "GET" and miss.group(5) == "/page" and miss.group(6) == "200"
    assert "fwd=uri-miss" in miss.group(7) and miss.group(8) == "200"
    assert miss.group(9) != "-"
    assert "hit" in hit.group(7) and hit.group(8) == "-" and hit.group(11) == "done"
    assert miss.group(2) != hit.group(2)  # request ids differ


def test_error_page_id_is_in_the_log_and_cut_requests_are_logged(origin, outposts, tmp_path):
    log = tmp_path / "access.log"
    dead = free_port()
    op = outposts(dead, tmp_path / "cache", top={"access_log": str(log)}).start()
    r, body = op.request("/gone")
    assert r.status == 502
    rid = r.getheader("X-Request-Id")
    s = socket.create_connection(("127.0.0.1", op.port))
    s.sendall(b"GET /never HTTP/1.1\r\nHost: h\r\n\r\n"[:-2])  # no end of head
    s.close()
    lines = read_lines(log, 1)
    m = LINE.match(lines[0])
    assert m and m.group(2) == rid and m.group(6) == "502", lines
    op.stop()
    assert len(log.read_text().splitlines()) == 1  # an unfinished head is no request
