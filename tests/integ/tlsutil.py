"""Certificates the TLS tests make themselves with the openssl command line:
a local CA, leaves it signed for one DNS name (ECDSA P-256 or RSA 2048),
expired ones, and clients that trust only that CA."""
import os
import socket
import ssl
import subprocess

CA_CNF = """[ca]
default_ca = test_ca
[test_ca]
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
"""


def run(*args, cwd=None):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


class CA:
    def __init__(self, d):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.crt = os.path.join(self.dir, "ca.crt")
        self.key = os.path.join(self.dir, "ca.key")
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", self.key, "-out", self.crt, "-days", "30",
            "-subj", "/CN=Outpost Test CA")
        with open(os.path.join(self.dir, "ca.cnf"), "w") as f:
            f.write(CA_CNF.format(d=self.dir))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")

    def leaf(self, name, dns, rsa=False, start=None, end=None, days=30, san=None):
        """<name>.crt and <name>.key for DNS:<dns> (or the subjectAltName
        <san>, e.g. "IP:127.0.0.1"); <start>/<end> as YYYYMMDDHHMMSSZ for a
        certificate valid in the past."""
        crt = os.path.join(self.dir, name + ".crt")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        newkey = ["-newkey", "rsa:2048"] if rsa else [
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        run("openssl", "req", *newkey, "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=" + dns, "-addext", "subjectAltName=" + (san or "DNS:" + dns))
        os.chmod(key, 0o600)
        dates = ["-startdate", start, "-enddate", end] if start else ["-days", str(days)]
        run("openssl", "ca", "-batch", "-notext", "-config", os.path.join(self.dir, "ca.cnf"),
            "-cert", self.crt, "-keyfile", self.key, "-in", csr, "-out", crt, *dates)
        return crt, key

    def context(self, sni_check=True, max_version=None, ciphers=None):
        ctx = ssl.create_default_context(cafile=self.crt)
        ctx.check_hostname = sni_check
        if max_version is not None:
            ctx.maximum_version = max_version
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
        return ctx


def tls_connect(ctx, port, sni, timeout=10, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except Exception:
        raw.close()
        raise


def peer_cn(s):
    cert = s.getpeercert()
    for rdn in cert["subject"]:
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def https_get(ctx, port, path, sni="localhost", host=None, headers=None, conn=None):
    """One request on <conn> (a TLS socket, kept) or a new connection; the
    status, headers (lower-case names) and body. Responses carry
    Content-Length here."""
    s = conn or tls_connect(ctx, port, sni)
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % (host or sni or "localhost")]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head: %r" % buf)
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    status_line, *fields = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for f in fields:
        k, v = f.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    if conn is None:
        s.close()
    return int(status_line.split()[1]), hdrs, body
