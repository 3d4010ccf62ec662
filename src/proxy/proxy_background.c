/* Background revalidation (RFC 5861 stale-while-revalidate): the client got
 * the stale copy already; one origin request per key, process-wide, refreshes
 * the store. It belongs to the worker's loop, not to any client connection. */
#include "proxy_int.h"

#include "outpost/flight.h"

#include <stdlib.h>
#include <string.h>

#define BG_MAGIC 0x42475256u

struct op_bg {
    unsigned magic;
    struct op_bg *prev, *next; /* borrowed: ctx->background list */
    struct op_proxy_ctx *ctx;  /* borrowed */
    struct op_fetch *fetch;    /* owned */
    struct op_buf key;         /* owned: also the flight table claim */
    struct op_http_msg req;    /* owned: the request that found it stale (Vary, §3.5) */
    struct op_headers stale_headers;
    struct op_buf stale_body;
    struct op_cache_meta stale_meta;
    struct op_headers resp_headers;
    struct op_buf body;
    struct op_cache_meta meta;
    int64_t request_time;
    int status;
    bool conditional, store;
};

static void bg_free(struct op_bg *bg)
{
    struct op_proxy_ctx *ctx = bg->ctx;
    if (bg->prev)
        bg->prev->next = bg->next;
    else
        ctx->background = bg->next;
    if (bg->next)
        bg->next->prev = bg->prev;
    op_flight_reval_end(ctx->flight, bg->key.data, bg->key.len);
    op_fetch_abort(bg->fetch);
    op_buf_fini(&bg->key);
    op_http_msg_fini(&bg->req);
    op_headers_fini(&bg->stale_headers);
    op_buf_fini(&bg->stale_body);
    op_headers_fini(&bg->resp_headers);
    op_buf_fini(&bg->body);
    bg->magic = 0;
    free(bg);
}

static void on_bg_head(void *owner, struct op_http_msg *resp)
{
    struct op_bg *bg = owner;
    struct op_proxy_ctx *ctx = bg->ctx;
    OP_CHECK_OBJ(bg, BG_MAGIC);
    bg->status = resp->status;
    op_headers_remove_all(&resp->headers, "content-length");
    op_proxy__copy_fields(&bg->resp_headers, &resp->headers, NULL);
    if (bg->conditional && resp->status == 304)
        return; /* freshened in on_bg_done */
    bg->store = op_proxy__storable(ctx, &bg->req.headers, bg->request_time, resp, &bg->resp_headers,
                                   &bg->meta) == NULL;
    bg->body.max = ctx->conf->max_object_size;
    op_proxy__ensure_date(&bg->resp_headers);
}

static int on_bg_body(void *owner, const char *p, size_t len)
{
    struct op_bg *bg = owner;
    if (bg->store && op_buf_append(&bg->body, p, len) != 0)
        bg->store = false; /* past max_object_size */
    return 0;
}

static void on_bg_done(void *owner)
{
    struct op_bg *bg = owner;
    struct op_proxy_ctx *ctx = bg->ctx;
    bool queued;
    if (bg->conditional && bg->status == 304) {
        op_proxy__store_revalidated(ctx, &bg->key, &bg->req.headers, bg->stale_meta.status,
                                    bg->request_time, &bg->stale_headers, &bg->resp_headers,
                                    &bg->stale_body, &bg->meta, &queued);
    } else if (bg->store) {
        op_proxy__store(ctx, &bg->key, &bg->req.headers, &bg->meta, &bg->resp_headers, &bg->body);
    }
    bg_free(bg);
}

static void on_bg_error(void *owner, int err, bool got_head)
{
    (void)err;
    (void)got_head;
    bg_free(owner); /* the stale copy stays; the next request past it tries again */
}

static const struct op_fetch_cbs bg_cbs = {
    .on_head = on_bg_head,
    .on_body = on_bg_body,
    .on_done = on_bg_done,
    .on_error = on_bg_error,
};

void op_proxy__revalidate_in_background(struct op_client *c)
{
    struct op_proxy_ctx *ctx = c->ctx;
    struct op_request *r = &c->r;
    if (!op_flight_reval_begin(ctx->flight, r->key.data, r->key.len))
        return; /* another request is refreshing it */
    struct op_bg *bg = calloc(1, sizeof(*bg));
    if (bg == NULL) {
        op_flight_reval_end(ctx->flight, r->key.data, r->key.len);
        return;
    }
    bg->magic = BG_MAGIC;
    bg->ctx = ctx;
    bg->next = ctx->background;
    if (ctx->background)
        ctx->background->prev = bg;
    ctx->background = bg;
    bg->request_time = op_time_now();
    bg->stale_meta = r->stale_meta;
    op_buf_init(&bg->key, r->key.max);
    op_buf_append(&bg->key, r->key.data, r->key.len);
    op_http_msg_init(&bg->req, c->req.headers.max, c->req.headers.bytes.max);
    /* the stale copy moves to the background request: the client is served */
    bg->stale_headers = r->stale_headers;
    bg->stale_body = r->stale_body;
    op_headers_init(&r->stale_headers, bg->stale_headers.max, bg->stale_headers.bytes.max);
    op_buf_init(&r->stale_body, SIZE_MAX);
    op_headers_init(&bg->resp_headers, 512, 256 * 1024);
    op_buf_init(&bg->body, 0);
    bg->conditional = op_headers_find(&bg->stale_headers, "etag", 0) >= 0 ||
                      op_headers_find(&bg->stale_headers, "last-modified", 0) >= 0;

    /* the origin request is the client's, as a GET, with our validators */
    struct op_buf head;
    bool chunked;
    op_buf_init(&head, SIZE_MAX);
    int rc = op_proxy__origin_head(&head, &c->req, r->site->conf, c->peer, ctx->conf->cache_name,
                                   "GET", bg->conditional ? &bg->stale_headers : NULL, &chunked);
    for (uint32_t i = 0; rc == 0 && i < c->req.headers.n; i++) {
        size_t nlen, vlen;
        const char *n = op_headers_name(&c->req.headers, i, &nlen);
        const char *v = op_headers_value(&c->req.headers, i, &vlen);
        if (nlen > 0)
            rc = op_headers_add(&bg->req.headers, n, nlen, v, vlen);
    }
    if (rc == 0) {
        op_metric_inc(&ctx->metrics, cache_revalidations_total);
        bg->fetch = op_fetch_start(&r->site->origin, head.data, head.len, false, true, &bg_cbs, bg);
    }
    op_buf_fini(&head);
    if (bg->fetch == NULL)
        bg_free(bg);
}

void op_proxy_abort_background(struct op_proxy_ctx *ctx)
{
    while (ctx->background != NULL)
        bg_free(ctx->background);
}
