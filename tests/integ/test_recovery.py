"""Recovery after an origin outage: the open circuit spares the origin the
requests that have a stale copy to fall back on, but a request with nothing
to serve may probe the origin whenever no probe is under way, so the first
cold miss after the origin accepts again succeeds (as with nginx or Varnish
and one origin, which never mark it down). Counts are asserted, not times:
the recovery time is printed (pytest -s) for the record."""
import http.client
import time

from conftest import Origin, free_port


def cold(op, n):
    """One cold miss on a new connection: its status, or None."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", op.port, timeout=10)
        c.request("GET", "/cold/%d" % n)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except (http.client.HTTPException, OSError):
        return None


def test_first_cold_miss_after_an_outage_succeeds(outposts, tmp_path):
    port = free_port()
    origin = Origin(port=port)
    # the defaults: 5 failures in a row open the circuit for 5 s
    op = outposts(port, tmp_path / "cache", workers=2, site={}).start()
    n = 0
    assert cold(op, n) == 200
    origin.stop()
    # the outage: refused connections, enough to open every worker's circuit
    outage = []
    for _ in range(40):
        n += 1
        outage.append(cold(op, n))
        time.sleep(0.02)
    assert set(outage) <= {502, 503}, outage
    origin = Origin(port=port)  # accepts again from here
    try:
        back = time.monotonic()
        after = []
        recovered_s = None
        for _ in range(40):
            n += 1
            status = cold(op, n)
            after.append(status)
            if status == 200 and recovered_s is None:
                recovered_s = time.monotonic() - back
            time.sleep(0.02)
        print("\nrecovery after the outage: first good cold miss %.1f ms after the origin "
              "accepted again; 503s after it did: %d of %d; during the outage: %d 502, %d 503"
              % (1000 * (recovered_s or float("nan")), after.count(503), len(after),
                 outage.count(502), outage.count(503)))
        # one request at a time: there is never a probe under way when a
        # cold miss comes, so none of them is refused by the circuit
        assert after.count(503) == 0, after
        assert after[0] == 200, after
        assert set(after) == {200}, after
    finally:
        origin.stop()
