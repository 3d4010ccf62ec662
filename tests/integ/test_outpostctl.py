"""outpostctl against a running node: readable output, --json, exit codes."""
import json
import os
import subprocess

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
