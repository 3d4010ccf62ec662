/* Answering from a stored object: 200, 304 for a client conditional (RFC 9111
 * §4.3.2), HEAD, and byte ranges (RFC 9110 §14) including multipart. */
#include "proxy_int.h"

#include <stdio.h>
#include <string.h>

#define RANGES_MAX 16
#define BOUNDARY "OUTPOST_BYTERANGES"

/* RFC 9110 §13.1.5: If-Range with a strong ETag or an exact Last-Modified. */
static bool if_range_ok(const struct op_headers *req, const struct op_headers *stored)
{
    size_t len, slen;
    const char *v = op_headers_get(req, "if-range", &len);
    if (v == NULL)
        return true;
    if (len > 0 && v[0] == '"') {
        const char *tag = op_headers_get(stored, "etag", &slen);
        return tag != NULL && slen == len && memcmp(tag, v, len) == 0;
    }
    int64_t a, b;
    const char *lm = op_headers_get(stored, "last-modified", &slen);
    return lm != NULL && op_http_date_parse(v, len, &a) == 0 &&
           op_http_date_parse(lm, slen, &b) == 0 && a == b;
}

/* The stored fields that describe a 304 (RFC 9110 §15.4.5). */
static void not_modified_fields(const struct op_headers *stored, struct op_buf *h)
{
    static const char *const keep[] = {
        "cache-control", "content-location", "date", "etag", "expires",
        "vary",          "last-modified",    NULL};
    for (size_t i = 0; keep[i] != NULL; i++) {
        int k = -1;
        while ((k = op_headers_find(stored, keep[i], (uint32_t)(k + 1))) >= 0) {
            size_t nlen, vlen;
            const char *n = op_headers_name(stored, (uint32_t)k, &nlen);
            const char *v = op_headers_value(stored, (uint32_t)k, &vlen);
            op_buf_appendf(h, "%.*s: %.*s\r\n", (int)nlen, n, (int)vlen, v);
        }
    }
}

static void serve_ranges(struct op_client *c, struct op_buf *head, const struct op_range *rg, int n,
                         const struct op_headers *stored, const char *body, uint64_t blen,
                         bool head_only)
{
    if (n == 1) {
        uint64_t len = rg[0].last - rg[0].first + 1;
        op_buf_appendf(head, "Content-Range: bytes %llu-%llu/%llu\r\n",
                       (unsigned long long)rg[0].first, (unsigned long long)rg[0].last,
                       (unsigned long long)blen);
        op_proxy__head_end(c, head, (int64_t)len, false);
        if (head_only)
            op_proxy__out(c, head->data, head->len);
        else
            op_proxy__out_direct(c, head->data, head->len, body + rg[0].first, len);
        return;
    }
    size_t ctlen;
    const char *ct = op_headers_get(stored, "content-type", &ctlen);
    struct op_buf parts;
    op_buf_init(&parts, SIZE_MAX);
    for (int i = 0; i < n; i++) {
        op_buf_appendf(&parts, "\r\n--" BOUNDARY "\r\n");
        if (ct != NULL)
            op_buf_appendf(&parts, "Content-Type: %.*s\r\n", (int)ctlen, ct);
        op_buf_appendf(&parts, "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                       (unsigned long long)rg[i].first, (unsigned long long)rg[i].last,
                       (unsigned long long)blen);
        op_buf_append(&parts, body + rg[i].first, rg[i].last - rg[i].first + 1);
    }
    op_buf_appendf(&parts, "\r\n--" BOUNDARY "--\r\n");
    op_buf_appendf(head, "Content-Type: multipart/byteranges; boundary=" BOUNDARY "\r\n");
    op_proxy__head_end(c, head, (int64_t)parts.len, false);
    op_proxy__out(c, head->data, head->len);
    if (!head_only)
        op_proxy__out(c, parts.data, parts.len);
    op_buf_fini(&parts);
}

void op_proxy__serve_object(struct op_client *c, const struct op_cache_meta *m,
                            const struct op_headers *stored, const char *body, uint64_t blen,
                            const char *cache_status)
{
    const struct op_headers *req = &c->req.headers;
    bool head_only = c->req.method == OP_HTTP_HEAD;
    int64_t age = op_cache_age(m, op_time_now());
    struct op_buf head;
    op_buf_init(&head, SIZE_MAX);

    if (op_cache_not_modified(req, stored, m)) {
        op_proxy__head_begin(c, &head, 304, cache_status);
        not_modified_fields(stored, &head);
        op_buf_appendf(&head, "Age: %lld\r\n", (long long)age);
        op_proxy__head_end(c, &head, -1, true);
        op_proxy__out(c, head.data, head.len);
        op_buf_fini(&head);
        op_proxy__response_done(c);
        return;
    }

    struct op_range rg[RANGES_MAX];
    int n = -1;
    size_t rlen;
    const char *range = op_headers_get(req, "range", &rlen);
    if (range != NULL && m->status == 200 && c->req.method == OP_HTTP_GET &&
        if_range_ok(req, stored))
        n = op_http_range_parse(range, rlen, blen, rg, RANGES_MAX);

    int status = n == 0 ? 416 : n > 0 ? 206 : m->status;
    op_proxy__head_begin(c, &head, status, cache_status);
    for (uint32_t i = 0; i < stored->n; i++) {
        size_t nlen, vlen;
        const char *name = op_headers_name(stored, i, &nlen);
        if (nlen == 0 || (n > 1 && op_streq_nocase(name, nlen, "content-type")))
            continue;
        const char *v = op_headers_value(stored, i, &vlen);
        op_buf_append(&head, name, nlen);
        op_buf_append(&head, ": ", 2);
        op_buf_append(&head, v, vlen);
        op_buf_append(&head, "\r\n", 2);
    }
    op_buf_appendf(&head, "Age: %lld\r\n", (long long)age);
    if (n == 0) {
        op_buf_appendf(&head, "Content-Range: bytes */%llu\r\n", (unsigned long long)blen);
        op_proxy__head_end(c, &head, 0, false);
        op_proxy__out(c, head.data, head.len);
    } else if (n > 0) {
        op_buf_appendf(&head, "Accept-Ranges: bytes\r\n");
        serve_ranges(c, &head, rg, n, stored, body, blen, head_only);
    } else {
        bool no_body = m->status == 204 || m->status == 304;
        op_proxy__head_end(c, &head, no_body ? -1 : (int64_t)blen, no_body);
        if (head_only || no_body)
            op_proxy__out(c, head.data, head.len);
        else
            op_proxy__out_direct(c, head.data, head.len, body, blen);
    }
    op_buf_fini(&head);
    op_proxy__response_done(c);
}
