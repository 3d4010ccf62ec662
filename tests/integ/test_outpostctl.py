"""outpostctl against a running node: readable output, --json, exit codes."""
import json
import os
import subprocess
import time

from conftest import OUTPOST, wait_for_hit

CTL = os.path.join(os.path.dirname(OUTPOST), "outpostctl")


def ctl(sock, *args):
    p = subprocess.run([CTL, "--socket", sock, *args], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout, p.stderr


def test_outpostctl(origin, outposts, tmp_path):
    sock = str(tmp_path / "admin.sock")
    op = outposts(origin.port, tmp_path / "cache", top={"admin_socket": sock}).start()
    wait_for_hit(op, "/a")
    url = "http://127.0.0.1:%d/a" % op.port
    assert ctl(sock, "health") == (0, "ready (purges applied up to 0)\n", "")
    code, out, _ = ctl(sock, "stats")
    assert code == 0 and "store.objects: 1\n" in out and "counters.cache_hits_total: " in out
    code, out, _ = ctl(sock, "metrics")
    assert code == 0 and "\noutpost_store_objects 1\n" in out
    assert ctl(sock, "purge", url) == (0, "purged 1 object (purge 1)\n", "")
    code, out, _ = ctl(sock, "--json", "purge", "--tag", "nothing", "--soft")
    assert code == 0 and json.loads(out) == {"purged": 0, "seq": 2, "soft": True}
    assert ctl(sock, "purge", "--host", "*")[1] == "purged 0 objects (purge 3)\n"
    assert ctl(sock, "purge", "--prefix", url)[0] == 0
    code, out, err = ctl(sock, "purge", "ftp://x/")
    assert code == 1 and "400 expected an http:// or https:// URL" in err
    assert ctl(sock, "drain")[0] == 0
    code, out, _ = ctl(sock, "health")
    assert code == 1 and out.startswith("draining")
    assert ctl(sock, "undrain")[0] == 0 and ctl(sock, "health")[0] == 0
    # usage errors
    assert ctl(sock, "purge")[0] == 2
    assert ctl(sock, "purge", url, "--tag", "t")[0] == 2
    assert ctl(sock, "stats", "extra")[0] == 2
    assert ctl(sock, "frobnicate")[0] == 2
    code, _, err = ctl(str(tmp_path / "nope.sock"), "health")
    assert code == 3 and "cannot reach the node" in err
    env = dict(os.environ, OUTPOST_ADMIN_SOCKET=sock)
    p = subprocess.run([CTL, "health"], capture_output=True, text=True, env=env, timeout=20)
    assert p.returncode == 0


def test_inspect(origin, outposts, tmp_path):
    def page(h):
        body = b"hello"
        h.send_response(200)
        h.send_header("Cache-Control", "max-age=100, stale-if-error=50")
        h.send_header("Vary", "Accept-Language")
        h.send_header("Surrogate-Key", "k1 k2")
        h.send_header("Cache-Tag", "c1, c2")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    origin.routes["/p?a=1"] = page
    sock = str(tmp_path / "admin.sock")
    op = outposts(origin.port, tmp_path / "cache", top={"admin_socket": sock}).start()
    for lang in ("en", "fr"):
        op.request("/p?a=1", headers={"Accept-Language": lang})
    time.sleep(0.5)
    url = "http://127.0.0.1:%d/p?a=1" % op.port
    code, out, _ = ctl(sock, "--json", "inspect", url)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["key"] == url and len(doc["variants"]) == 2
    v = doc["variants"][0]
    assert v["ttl"] <= 100 and v["ttl"] >= 95 and v["body_bytes"] == 5 and v["status"] == 200
    assert v["stale_if_error"] == 50 and v["grace_left"] == 50
    assert v["tags"] == ["k1", "k2", "c1", "c2"]
    assert sorted(x["vary_key"] for x in doc["variants"]) == ["accept-language=en\n",
                                                              "accept-language=fr\n"]
    code, out, _ = ctl(sock, "inspect", url)
    assert code == 0 and out.startswith(url + ": 2 variants\n") and "tags" in out
    code, out, _ = ctl(sock, "inspect", url + "&nope")
    assert code == 1 and out.endswith(": not in the cache\n")
    assert ctl(sock, "inspect")[0] == 2
    code, _, err = ctl(sock, "inspect", "gopher://x")
    assert code == 1 and "http://" in err
