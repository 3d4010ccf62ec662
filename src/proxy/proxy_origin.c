/* What crosses to and from the origin, independent of any client connection:
 * the request head, cleaned response fields, and the hand-off to the store. */
#include "proxy_int.h"

#include <stdio.h>
#include <string.h>

/* The request's fields for the origin; with <no_conditionals>, without the
 * client's conditionals and Range (they stay in the request: the client's own
 * answer is still evaluated against them). */
static int serialize_fields(const struct op_headers *fields, bool no_conditionals,
                            struct op_buf *out)
{
    static const char *const cond[] = {"if-none-match",
                                       "if-modified-since",
                                       "if-match",
                                       "if-unmodified-since",
                                       "if-range",
                                       "range",
                                       NULL};
    for (uint32_t i = 0; i < fields->n; i++) {
        size_t nlen, vlen;
        const char *n = op_headers_name(fields, i, &nlen);
        bool skip = nlen == 0;
        for (size_t k = 0; no_conditionals && !skip && cond[k] != NULL; k++)
            skip = op_streq_nocase(n, nlen, cond[k]);
        if (skip)
            continue;
        const char *v = op_headers_value(fields, i, &vlen);
        if (op_buf_append(out, n, nlen) != 0 || op_buf_append(out, ": ", 2) != 0 ||
            op_buf_append(out, v, vlen) != 0 || op_buf_append(out, "\r\n", 2) != 0)
            return OP_ENOMEM;
    }
    return 0;
}

int op_proxy__origin_head(struct op_buf *h, struct op_http_msg *m, const struct op_conf_site *site,
                          const char *peer, bool https, const char *cache_name, const char *method,
                          const struct op_headers *validators, bool *chunked)
{
    const char *t;
    size_t tlen;
    bool slash;
    op_http_origin_form(m->target.data, m->target.len, &t, &tlen, &slash);
    bool has_body = m->chunked || m->content_length > 0;
    op_headers_remove_all(&m->headers, "expect");
    op_headers_remove_all(&m->headers, "content-length");
    if (site->host_header[0] != '\0')
        op_headers_remove_all(&m->headers, "host");
    op_buf_appendf(h, "%s %s%.*s HTTP/1.1\r\n", method ? method : m->method_name, slash ? "/" : "",
                   (int)tlen, t);
    if (site->host_header[0] != '\0')
        op_buf_appendf(h, "Host: %s\r\n", site->host_header);
    /* X-Forwarded-For: append to what came in */
    size_t xlen;
    const char *xff = op_headers_get(&m->headers, "x-forwarded-for", &xlen);
    char xbuf[512];
    if (xff != NULL && xlen < sizeof(xbuf) - 64)
        snprintf(xbuf, sizeof(xbuf), "%.*s, %s", (int)xlen, xff, peer);
    else
        snprintf(xbuf, sizeof(xbuf), "%s", peer);
    op_headers_remove_all(&m->headers, "x-forwarded-for");
    op_headers_remove_all(&m->headers, "x-forwarded-proto");
    int rc = serialize_fields(&m->headers, validators != NULL, h);
    op_buf_appendf(h, "X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\nVia: %d.%d %s\r\n", xbuf,
                   https ? "https" : "http", m->major, m->minor, cache_name);
    /* W3C Edge Architecture: say we take Surrogate-Control, and under which
     * device token (appended to any a surrogate in front of us sent) */
    op_buf_appendf(h, "Surrogate-Capability: %s=\"Surrogate/1.0\"\r\n", cache_name);
    if (validators != NULL) {
        size_t len;
        const char *v = op_headers_get(validators, "etag", &len);
        if (v != NULL)
            op_buf_appendf(h, "If-None-Match: %.*s\r\n", (int)len, v);
        v = op_headers_get(validators, "last-modified", &len);
        if (v != NULL)
            op_buf_appendf(h, "If-Modified-Since: %.*s\r\n", (int)len, v);
    }
    *chunked = false;
    if (method == NULL && m->chunked) {
        *chunked = true;
        op_buf_appendf(h, "Transfer-Encoding: chunked\r\n");
    } else if (method == NULL && (has_body || m->method == OP_HTTP_POST ||
                                  m->method == OP_HTTP_PUT || m->method == OP_HTTP_PATCH)) {
        op_buf_appendf(h, "Content-Length: %lld\r\n",
                       (long long)(m->content_length > 0 ? m->content_length : 0));
    }
    return rc == 0 ? op_buf_append(h, "\r\n", 2) : rc;
}

void op_proxy__copy_fields(struct op_headers *to, struct op_headers *from, const char *skip)
{
    op_headers_strip_hop_by_hop(from);
    op_headers_reset(to);
    for (uint32_t i = 0; i < from->n; i++) {
        size_t nlen, vlen;
        const char *n = op_headers_name(from, i, &nlen);
        if (nlen == 0 || (skip != NULL && op_streq_nocase(n, nlen, skip)))
            continue;
        const char *v = op_headers_value(from, i, &vlen);
        op_headers_add(to, n, nlen, v, vlen);
    }
}

bool op_proxy__origin_error_status(int status)
{
    return status == 500 || status == 502 || status == 503 || status == 504;
}

void op_proxy__ensure_date(struct op_headers *h)
{
    size_t dlen;
    if (op_headers_get(h, "date", &dlen) != NULL)
        return;
    char date[30];
    op_http_date_format(op_time_now(), date);
    op_headers_add(h, "Date", 4, date, strlen(date));
}

bool op_proxy__store(struct op_proxy_ctx *ctx, const struct op_buf *key,
                     const struct op_headers *req, const struct op_cache_meta *meta,
                     struct op_headers *headers, const struct op_buf *body, uint64_t purge_seq)
{
    /* the stored copy never keeps Age: it is computed when served */
    op_headers_remove_all(headers, "age");
    struct op_buf block, vary;
    op_buf_init(&block, SIZE_MAX);
    op_buf_init(&vary, 4096);
    bool stored = op_cache_vary_names(headers, &vary) &&
                  op_headers_serialize(headers, &block) == 0 &&
                  op_store_put(ctx->store, key->data, key->len, vary.data ? vary.data : "",
                               vary.len, req, meta, block.data ? block.data : "", block.len,
                               body->data ? body->data : "", body->len, purge_seq) == 0;
    op_buf_fini(&block);
    op_buf_fini(&vary);
    if (stored)
        op_metric_inc(&ctx->metrics, stored_objects_total);
    return stored;
}

/* Whole-second request and response times whose difference is the real
 * delay rounded down: taking both clocks in whole seconds would add a second
 * to Age (RFC 9111 §4.2.3 response_delay) whenever the fetch crosses one. */
static void exchange_times(int64_t request_ms, struct op_cache_exchange *x)
{
    int64_t now_ms = op_time_now_ms();
    int64_t delay_ms = now_ms > request_ms ? now_ms - request_ms : 0;
    x->response_time = now_ms / 1000;
    x->request_time = x->response_time - delay_ms / 1000;
}

const char *op_proxy__storable(const struct op_proxy_ctx *ctx, const struct op_headers *req,
                               int64_t request_ms, const struct op_http_msg *resp,
                               const struct op_headers *fields, struct op_cache_meta *meta)
{
    struct op_cache_exchange x = {.method = OP_HTTP_GET,
                                  .req = req,
                                  .status = resp->status,
                                  .resp = fields,
                                  .device = ctx->conf->cache_name};
    exchange_times(request_ms, &x);
    const char *nostore = op_cache_storable(&x, meta);
    if (nostore == NULL && resp->content_length > (int64_t)ctx->conf->max_object_size)
        nostore = "too large";
    return nostore;
}

const char *op_proxy__store_revalidated(struct op_proxy_ctx *ctx, const struct op_buf *key,
                                        const struct op_headers *req, int status,
                                        int64_t request_ms, struct op_headers *stored,
                                        const struct op_headers *fresh, const struct op_buf *body,
                                        struct op_cache_meta *meta, uint64_t purge_seq,
                                        bool *queued)
{
    op_cache_freshen_headers(stored, fresh);
    struct op_cache_exchange x = {.method = OP_HTTP_GET,
                                  .req = req,
                                  .status = status,
                                  .resp = stored,
                                  .device = ctx->conf->cache_name};
    exchange_times(request_ms, &x);
    const char *nostore = op_cache_storable(&x, meta);
    op_headers_remove_all(stored, "age"); /* ours is computed when served */
    *queued = nostore == NULL && op_proxy__store(ctx, key, req, meta, stored, body, purge_seq);
    return nostore;
}

const char *op_proxy__origin_failure(int err)
{
    switch (err) {
    case OP_ETIMEOUT: return "origin timeout";
    case OP_ETLSVERIFY: return "certificate verify failed";
    case OP_ETLSPLAIN: return "origin speaks plain HTTP";
    case OP_ETLSTIMEOUT: return "handshake timeout";
    case OP_ETLS: return "TLS handshake failed";
    default: return "origin unreachable";
    }
}
