"""A site's own error page: its template filled in (escaped) for clients that
take HTML, the built-in text for those that do not."""


def test_site_error_page(origin, outposts, tmp_path):
    page = tmp_path / "error.html"
    page.write_text("<html><h1>Sorry: {status} {reason}</h1><p>{detail}</p>"
                    "<small>{node} {request_id} {unknown}</small></html>\n")
    op = outposts(origin.port, tmp_path / "c", top={"cache_name": "edge&1'"},
                  site={"error_page": str(page)}).start()
    origin.stop()
    r, body = op.request("/gone", headers={"Accept": "text/html"})
    assert r.status == 502
    rid = r.getheader("X-Request-Id")
    assert r.getheader("Content-Type").startswith("text/html")
    assert body.decode() == (
        "<html><h1>Sorry: 502 Bad Gateway</h1><p>the origin could not be reached or answered "
        "badly</p><small>edge&amp;1&#39; %s {unknown}</small></html>\n" % rid)
    r, body = op.request("/gone", headers={"Accept": "application/json"})
    assert r.status == 502
    assert r.getheader("Content-Type").startswith("text/plain")
    assert body.startswith(b"502 Bad Gateway\n")
