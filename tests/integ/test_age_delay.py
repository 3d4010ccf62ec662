"""Age counts the real response delay (RFC 9111 §4.2.3), not a whole second
whenever a fetch crosses a second boundary."""
import time


def test_a_fetch_across_a_second_boundary_adds_no_second_to_age(origin, outposts, tmp_path):
    def slow_aged(h):
        time.sleep(0.5)
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=3600")
        h.send_header("Age", "10")
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")
    origin.routes["/aged"] = slow_aged
    op = outposts(origin.port, tmp_path / "cache").start()
    # start at .70 of a second: the 0.5 s answer lands in the next second
    time.sleep((1.70 - time.time() % 1.0) % 1.0)
    r, body = op.request("/aged")
    assert r.status == 200 and body == b"ok"
    # corrected_age_value = 10 + response_delay (0.5 s, so 0 whole seconds)
    assert r.getheader("Age") == "10", r.getheaders()
