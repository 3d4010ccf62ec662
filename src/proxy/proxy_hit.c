/* Answering from a stored object: 200, 304 for a client conditional (RFC 9111
 * §4.3.2), HEAD, and byte ranges (RFC 9110 §14) including multipart.
 *
 * The body is never copied whole: the head and a first window go out at
 * once, then each time the connection drains the next window (at most
 * OP_PROXY_HIT_WINDOW bytes) is queued. A body in the store is read again
 * for each window by its op_store_ref, in a read transaction renewed and
 * reset for that window alone, so a slow client pins no LMDB pages; if the
 * object was purged, evicted or replaced meanwhile, the connection closes
 * (a short body, never another object's bytes). */
#include "proxy_int.h"

#include <stdio.h>
#include <string.h>

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

/* One multipart part's header: delimiter, Content-Type, Content-Range. */
static int part_head(const struct op_proxy_hit *h, const struct op_range *g, char *out, size_t cap)
{
    int n;
    if (h->ctype[0] != '\0')
        n = snprintf(out, cap, "\r\n--" BOUNDARY "\r\nContent-Type: %s\r\n", h->ctype);
    else
        n = snprintf(out, cap, "\r\n--" BOUNDARY "\r\n");
    n += snprintf(out + n, cap - (size_t)n, "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                  (unsigned long long)g->first, (unsigned long long)g->last,
                  (unsigned long long)h->size);
    OP_ASSERT((size_t)n < cap); /* PART_HEAD_MAX has room for the longest */
    return n;
}

/* room for a part header: the Content-Type plus the fixed text and three numbers */
#define PART_HEAD_MAX (sizeof(((struct op_proxy_hit *)0)->ctype) + 256)
#define CLOSE_DELIM "\r\n--" BOUNDARY "--\r\n"

static void hit_end(struct op_request *r)
{
    r->hit.active = false;
    if (r->hit.flight != NULL)
        op_flight_unref(&r->hit.flight);
}

void op_proxy__hit_fini(struct op_request *r)
{
    hit_end(r);
}

/* Queue body bytes until a window is queued or the body is all queued.
 * <loan>: the body itself, valid during this call only (or NULL). */
static void hit_pump(struct op_client *c, const char *loan)
{
    struct op_proxy_hit *h = &c->r.hit;
    const char *src = loan != NULL ? loan : h->mem;
    while (h->active && !c->closing) {
        size_t pending = op_proxy__out_pending(c);
        if (pending >= OP_PROXY_HIT_WINDOW)
            return; /* the next window goes on the next drain */
        if (h->part == h->nranges) {
            if (h->multipart)
                op_proxy__out(c, CLOSE_DELIM, sizeof(CLOSE_DELIM) - 1);
            hit_end(&c->r);
            break;
        }
        const struct op_range *g = &h->rg[h->part];
        if (h->multipart && !h->part_head) {
            char ph[PART_HEAD_MAX];
            op_proxy__out(c, ph, (size_t)part_head(h, g, ph, sizeof(ph)));
            h->part_head = true;
            continue;
        }
        uint64_t n = g->last + 1 - h->off;
        if (n > OP_PROXY_HIT_WINDOW - pending)
            n = OP_PROXY_HIT_WINDOW - pending;
        if (src != NULL) {
            op_proxy__out_direct(c, "", 0, src + h->off, (size_t)n);
        } else {
            char *space;
            if (op_proxy__out_reserve(c, (size_t)n, &space) != 0) {
                op_proxy__close(c);
                return;
            }
            int rc = op_store_read(c->ctx->reader, &h->ref, h->off, space, (size_t)n);
            if (rc != 0) {
                op_metric_inc(&c->ctx->metrics, hit_cut_short_total);
                op_log_info("proxy",
                            "client %s: stored object gone or replaced mid-body (%s): "
                            "closing",
                            c->peer, op_err_name(rc));
                op_proxy__close(c); /* a short body; the bytes sent were all its own */
                return;
            }
            op_proxy__out_commit(c, (size_t)n);
        }
        h->off += n;
        if (h->off > g->last) {
            h->part++;
            h->part_head = false;
            if (h->part < h->nranges)
                h->off = h->rg[h->part].first;
        }
    }
    if (!c->closing && !h->active)
        op_proxy__response_done(c);
}

void op_proxy__hit_drain(struct op_client *c)
{
    hit_pump(c, NULL);
}

/* Set up r->hit for <n> ranges (0: the whole body) of <body> and return the
 * length of what will be sent. */
static uint64_t hit_start(struct op_client *c, const struct op_proxy_body *body,
                          const struct op_range *rg, int n, const struct op_headers *stored)
{
    struct op_proxy_hit *h = &c->r.hit;
    hit_end(&c->r);
    memset(h, 0, sizeof(*h));
    h->size = body->len;
    if (n == 0) {
        h->rg[0].first = 0;
        h->rg[0].last = body->len - 1;
        h->nranges = body->len > 0 ? 1 : 0;
    } else {
        memcpy(h->rg, rg, (size_t)n * sizeof(*rg));
        h->nranges = n;
    }
    h->multipart = n > 1;
    h->off = h->nranges > 0 ? h->rg[0].first : 0;
    if (body->ref != NULL) {
        h->from_store = true;
        h->ref = *body->ref;
    } else {
        h->mem = body->data;
        if (body->flight != NULL) {
            op_flight_ref(body->flight);
            h->flight = body->flight;
        }
    }
    uint64_t total = 0;
    for (int i = 0; i < h->nranges; i++)
        total += h->rg[i].last - h->rg[i].first + 1;
    if (h->multipart) {
        size_t ctlen;
        const char *ct = op_headers_get(stored, "content-type", &ctlen);
        if (ct != NULL && ctlen < sizeof(h->ctype)) { /* a longer one is left out of the parts */
            memcpy(h->ctype, ct, ctlen);
            h->ctype[ctlen] = '\0';
        }
        char ph[PART_HEAD_MAX];
        for (int i = 0; i < h->nranges; i++)
            total += (uint64_t)part_head(h, &h->rg[i], ph, sizeof(ph));
        total += sizeof(CLOSE_DELIM) - 1;
    }
    return total;
}

/* The head is complete in <head>: send it with the first window of the body
 * (without copying what the socket takes at once), then the rest on drains. */
static void send_body(struct op_client *c, struct op_buf *head, const struct op_proxy_body *body)
{
    struct op_proxy_hit *h = &c->r.hit;
    h->active = true;
    if (!h->multipart && h->nranges == 1) {
        uint64_t n = h->rg[0].last + 1 - h->off;
        if (n > OP_PROXY_HIT_WINDOW)
            n = OP_PROXY_HIT_WINDOW;
        op_proxy__out_direct(c, head->data, head->len, body->data + h->off, (size_t)n);
        h->off += n;
        if (h->off > h->rg[0].last)
            h->part = 1;
    } else {
        op_proxy__out(c, head->data, head->len);
    }
    hit_pump(c, body->data);
    if (!c->closing && h->active)
        c->rs = OP_RS_STREAM;
}

void op_proxy__serve_object(struct op_client *c, const struct op_cache_meta *m,
                            const struct op_headers *stored, const struct op_proxy_body *body,
                            const char *cache_status)
{
    const struct op_headers *req = &c->req.headers;
    bool head_only = c->req.method == OP_HTTP_HEAD;
    int64_t age = op_cache_age(m, op_time_now());
    uint64_t blen = body->len;
    struct op_buf head;
    op_buf_init(&head, SIZE_MAX);
    if (c->r.fetch != NULL) {
        /* nothing more comes from the origin for this request (a 5xx behind a
         * stale copy, a finished 304): as op_proxy__response_done does, but
         * now, since the body may take many drains */
        op_fetch_abort(c->r.fetch);
        c->r.fetch = NULL;
    }

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

    struct op_range rg[OP_PROXY_RANGES_MAX];
    int n = -1;
    size_t rlen;
    const char *range = op_headers_get(req, "range", &rlen);
    if (range != NULL && m->status == 200 && c->req.method == OP_HTTP_GET &&
        if_range_ok(req, stored))
        n = op_http_range_parse(range, rlen, blen, rg, OP_PROXY_RANGES_MAX);

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
    op_buf_append(&head, "Age: ", 5);
    op_buf_append_int(&head, age);
    op_buf_append(&head, "\r\n", 2);
    bool no_body = n < 0 && (m->status == 204 || m->status == 304);
    if (n == 0) {
        op_buf_appendf(&head, "Content-Range: bytes */%llu\r\n", (unsigned long long)blen);
        op_proxy__head_end(c, &head, 0, false);
        op_proxy__out(c, head.data, head.len);
    } else if (no_body) {
        op_proxy__head_end(c, &head, -1, true);
        op_proxy__out(c, head.data, head.len);
    } else {
        uint64_t total = hit_start(c, body, rg, n > 0 ? n : 0, stored);
        if (n > 0)
            op_buf_appendf(&head, "Accept-Ranges: bytes\r\n");
        if (n == 1)
            op_buf_appendf(&head, "Content-Range: bytes %llu-%llu/%llu\r\n",
                           (unsigned long long)rg[0].first, (unsigned long long)rg[0].last,
                           (unsigned long long)blen);
        else if (n > 1)
            op_buf_appendf(&head, "Content-Type: multipart/byteranges; boundary=" BOUNDARY "\r\n");
        op_proxy__head_end(c, &head, (int64_t)total, false);
        if (head_only || total == 0) {
            hit_end(&c->r);
            op_proxy__out(c, head.data, head.len);
        } else {
            send_body(c, &head, body);
            op_buf_fini(&head);
            return; /* send_body (or a later drain) ends the response */
        }
    }
    op_buf_fini(&head);
    op_proxy__response_done(c);
}
