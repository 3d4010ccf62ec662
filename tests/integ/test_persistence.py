"""The cache persists: after kill -9 and a restart, stored objects are hits
with the origin down."""
import time

from conftest import wait_for_hit


def test_hit_survives_kill_9_with_origin_down(origin, outposts, tmp_path):
    op = outposts(origin.port, tmp_path / "cache").start()
    r, body = op.request("/article")
    assert r.status == 200
    assert "fwd=uri-miss" in r.getheader("Cache-Status")
    r, body2 = op.request("/article")
    assert r.getheader("Cache-Status").startswith("outpost; hit")
    assert body2 == body
    assert r.getheader("Age") is not None
    assert origin.hits["/article"] == 1

    # a node may lose its last second of writes (ARCHITECTURE.md); the writer
    # commits as soon as it has work, so one second is the bound tested here
    time.sleep(1.0)
    op.kill9()
    origin.stop()

    # same port: the Host (part of the cache key) stays the same
    op2 = outposts(origin.port, tmp_path / "cache", port=op.port).start()
    r, body3 = op2.request("/article")
    assert r.status == 200
    assert r.getheader("Cache-Status").startswith("outpost; hit; ttl=")
    assert int(r.getheader("Age")) >= 0
    assert body3 == body
    assert origin.hits["/article"] == 1


def test_many_objects_survive_kill_9(origin, outposts, tmp_path):
    op = outposts(origin.port, tmp_path / "cache").start()
    paths = ["/p%d" % i for i in range(200)]
    for p in paths:
        assert op.request(p)[0].status == 200
    wait_for_hit(op, paths[-1])
    time.sleep(1.0)
    op.kill9()
    origin.stop()
    op2 = outposts(origin.port, tmp_path / "cache", port=op.port).start()
    for p in paths:
        r, body = op2.request(p)
        assert r.status == 200, p
        assert body == ("page %s\n" % p).encode()
        assert "hit" in r.getheader("Cache-Status")
