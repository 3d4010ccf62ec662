/* Coalesced requests: a request that missed joins the flight for its key and
 * reads the shared head and body as they arrive (read-while-writer). When
 * the flight ends without a shareable response it falls back: its own fetch
 * (not storable), a fresh lookup (a 304 updated the store), its stale copy,
 * or a clean error page. A request that already sent bytes of a response
 * that then fails is closed: never a clean short body. */
#include "proxy_int.h"

#include <stdio.h>
#include <string.h>

#define OUT_HIGH (1024 * 1024) /* read no further ahead of a slow client */
#define READ_STEP (64 * 1024)
#define RESTARTS_MAX 2 /* lookups restarted by flights before a request goes alone */

static void advance(struct op_client *c);

static struct op_client *client_of(struct op_flight_waiter *w)
{
    return (struct op_client *)((char *)w - offsetof(struct op_client, r.waiter));
}

static void on_progress(struct op_flight_waiter *w)
{
    struct op_client *c = client_of(w);
    OP_CHECK_OBJ(c, OP_CLIENT_MAGIC);
    advance(c);
}

void op_proxy__flight_leave(struct op_request *r)
{
    if (r->pub != NULL) {
        op_proxy__pub_drop_leader(r->pub);
        r->pub = NULL;
    }
    op_flight_leave(&r->waiter);
}

bool op_proxy__flight_waiting(const struct op_client *c)
{
    return c->r.waiter.flight != NULL && !c->r.flight_head_sent;
}

bool op_proxy__flight_start(struct op_client *c, const struct op_cc *req_cc)
{
    struct op_proxy_ctx *ctx = c->ctx;
    struct op_request *r = &c->r;
    const struct op_conf_site *site = r->site->conf;
    /* Coalesce plain GETs only: a no-cache request asked for the origin's
     * answer, a Range request is passed through, HEAD goes alone. */
    if (site->coalesce_max_waiters == 0 || c->req.method != OP_HTTP_GET || r->no_flight ||
        r->flight_restarts >= RESTARTS_MAX || (req_cc->flags & OP_CC_NO_CACHE) ||
        op_headers_find(&c->req.headers, "range", 0) >= 0)
        return false;
    uint64_t now = op_time_mono_ms();
    /* a fetch begun before a purge that may cover this key is not shared
     * with requests that come after the purge */
    uint64_t purge = op_store_purge_covering(ctx->store, r->key.data, r->key.len);
    if (purge != 0)
        op_flight_supersede(ctx->flight, r->key.data, r->key.len, purge);
    enum op_flight_join_rc rc =
        op_flight_join(ctx->flight, r->key.data, r->key.len, ctx->worker_id, ctx->mailbox,
                       (uint32_t)site->coalesce_max_waiters, now, on_progress, &r->waiter);
    switch (rc) {
    case OP_FLIGHT_NONE: return false;
    case OP_FLIGHT_UNCACHEABLE:
        op_metric_inc(&ctx->metrics, hit_for_miss_total);
        r->hit_for_miss = true;
        return false;
    case OP_FLIGHT_BUSY:
        op_metric_inc(&ctx->metrics, coalesce_busy_total);
        r->flight_deadline_ms = now; /* give up at once */
        op_proxy__flight_timeout(c);
        return true;
    case OP_FLIGHT_LEADER: {
        int prc = op_upstream_full(&r->site->upstream)
                      ? OP_EFULL
                      : op_proxy__publish(c, r->waiter.flight, true);
        if (prc != 0)
            op_flight_finish(r->waiter.flight, OP_FLIGHT_FAILED, prc);
        break;
    }
    case OP_FLIGHT_FOLLOWER:
        op_metric_inc(&ctx->metrics, coalesced_total);
        r->collapsed = true;
        break;
    }
    c->rs = OP_RS_WAIT;
    /* with a stale copy to fall back on, wait no longer than a stall: the
     * fetch goes on and refreshes the store */
    uint64_t wait = site->coalesce_timeout_ms;
    if (site->origin_stall_timeout_ms > 0 && site->origin_stall_timeout_ms < wait &&
        op_proxy__stale_on_error_ok(c))
        wait = site->origin_stall_timeout_ms;
    r->flight_deadline_ms = now + wait;
    advance(c); /* a late joiner may find the head, or the end, already there */
    return true;
}

/* Start the request over from the lookup: the flight ended without a
 * response for it. */
static void restart(struct op_client *c, bool alone)
{
    struct op_request *r = &c->r;
    op_proxy__flight_leave(r);
    r->flight_restarts++;
    r->no_flight = r->no_flight || alone;
    r->revalidated = !alone; /* AGAIN: the answer comes from the freshened copy */
    r->collapsed = r->collapsed && !alone;
    r->have_stale = false;
    r->conditional = false;
    r->flight_head_sent = false;
    r->flight_off = 0;
    op_headers_reset(&r->stale_headers);
    op_buf_reset(&r->stale_body);
    c->rs = OP_RS_NONE;
    op_proxy__lookup(c);
    op_proxy__step(c); /* re-arms the timer; may close c */
}

/* Stale if policy allows, else a clean error; <err> is the origin's status
 * (>= 100) or an OP_E* code. */
static void answer_failure(struct op_client *c, int err)
{
    struct op_request *r = &c->r;
    bool status = err >= 100;
    op_proxy__flight_leave(r);
    if (err == OP_EFULL) {
        op_proxy__overloaded(c, "the origin is at its limit and its queue is full or too slow");
        return;
    }
    const char *why = status ? "stale-if-error" : op_proxy__origin_failure(err);
    if (op_proxy__serve_stale_on_error(c, status ? err : 0, why))
        return;
    if (status) {
        if (err == 503)
            r->retry_after_s = (uint32_t)(r->site->conf->retry_after_ms / 1000);
        char detail[64];
        snprintf(detail, sizeof(detail), "the origin answered %d", err);
        op_proxy__error(c, err, detail, false);
    } else {
        op_proxy__origin_error(c, err);
    }
}

void op_proxy__flight_timeout(struct op_client *c)
{
    struct op_request *r = &c->r;
    bool busy = r->waiter.flight == NULL; /* never joined: the waiter cap */
    if (!busy)
        op_metric_inc(&c->ctx->metrics, coalesce_timeouts_total);
    op_proxy__flight_leave(r);
    if (op_proxy__serve_stale_on_error(c, 0, busy ? "origin busy" : "origin slow"))
        return;
    r->retry_after_s = (uint32_t)(r->site->conf->retry_after_ms / 1000);
    op_proxy__error(c, 503,
                    busy ? "too many requests are waiting for this object"
                         : "the origin has not answered yet",
                    false);
}

/* The head blob, checked: a publisher of ours wrote it, but a bound costs nothing. */
static bool decode_head(const struct op_flight_view *v, struct op_proxy_flight_head *h,
                        const char **fields, const char **vary, const char **variant)
{
    if (v->head_len < sizeof(*h))
        return false;
    memcpy(h, v->head, sizeof(*h));
    if ((uint64_t)h->fields_len + h->vary_len + h->variant_len != v->head_len - sizeof(*h))
        return false;
    *fields = v->head + sizeof(*h);
    *vary = *fields + h->fields_len;
    *variant = *vary + h->vary_len;
    return true;
}

/* Does the shared response select the same variant for this request (§4.1)? */
static bool same_variant(struct op_client *c, const struct op_proxy_flight_head *h,
                         const char *vary, const char *variant)
{
    if (h->vary_len == 0)
        return true;
    struct op_buf mine;
    op_buf_init(&mine, 64 * 1024);
    bool same = op_cache_key_secondary(vary, h->vary_len, &c->req.headers, &mine) == 0 &&
                mine.len == h->variant_len && memcmp(mine.data, variant, mine.len) == 0;
    op_buf_fini(&mine);
    return same;
}

static void send_head(struct op_client *c, const struct op_proxy_flight_head *h, const char *fields)
{
    struct op_request *r = &c->r;
    char cs[200];
    r->status = h->status; /* what the origin answered, for the access log */
    r->origin_ms = (int64_t)h->origin_ms;
    op_proxy__cache_status(c, cs, sizeof(cs), 0, h->status, true, NULL);
    struct op_buf head;
    op_buf_init(&head, SIZE_MAX);
    op_proxy__head_begin(c, &head, h->status, cs);
    op_buf_append(&head, fields, h->fields_len);
    op_buf_appendf(&head, "Age: %lld\r\n", (long long)op_cache_age(&h->meta, op_time_now()));
    bool no_body = h->status == 204 || h->status == 304 || h->status < 200;
    r->client_body = !no_body;
    op_proxy__head_end(c, &head, no_body ? -1 : h->content_length, no_body);
    op_proxy__out(c, head.data, head.len);
    op_buf_fini(&head);
    r->flight_head_sent = true;
    c->rs = OP_RS_STREAM;
}

/* A request that needs the whole object (Range) or only the head (a
 * conditional that matches) is answered like a hit. */
static bool answer_as_hit(struct op_client *c, const struct op_flight_view *v,
                          const struct op_proxy_flight_head *h, const char *fields)
{
    struct op_request *r = &c->r;
    bool range = op_headers_find(&c->req.headers, "range", 0) >= 0;
    if (op_headers_parse_block(&r->resp_headers, fields, h->fields_len) != 0)
        return false;
    bool not_modified = op_cache_not_modified(&c->req.headers, &r->resp_headers, &h->meta);
    if (!not_modified && !range)
        return false; /* stream it */
    size_t blen = 0;
    const char *body = "";
    if (!not_modified &&
        (v->phase != OP_FLIGHT_DONE || (body = op_flight_body(r->waiter.flight, &blen)) == NULL))
        return true; /* wait for the whole body */
    char cs[200];
    op_proxy__cache_status(c, cs, sizeof(cs), 0, h->status, true, NULL);
    struct op_proxy_body b = {.data = body, .len = blen, .flight = r->waiter.flight};
    op_proxy__serve_object(c, &h->meta, &r->resp_headers, &b, cs);
    r->flight_head_sent = true;
    op_proxy__flight_leave(r);
    op_proxy__step(c);
    return true;
}

/* Queue the flight's body from r->flight_off on, while less than <high> bytes
 * wait to be written. */
static void copy_body(struct op_client *c, const struct op_flight_view *v, size_t high)
{
    struct op_request *r = &c->r;
    struct op_flight *f = r->waiter.flight;
    while (r->client_body && r->flight_off < v->body_len && op_proxy__out_pending(c) < high &&
           !c->closing) {
        size_t want = v->body_len - r->flight_off;
        if (want > READ_STEP)
            want = READ_STEP;
        char *space;
        if (r->chunked_out) {
            char frame[24];
            int n = snprintf(frame, sizeof(frame), "%zx\r\n", want);
            op_proxy__out(c, frame, (size_t)n);
        }
        if (op_proxy__out_reserve(c, want, &space) != 0) {
            op_proxy__close(c);
            return;
        }
        size_t got = op_flight_read(f, r->flight_off, space, want);
        OP_ASSERT(got == want); /* the body only grows */
        r->flight_off += got;
        op_proxy__out_commit(c, got);
        if (r->chunked_out)
            op_proxy__out(c, "\r\n", 2);
    }
}

bool op_proxy__flight_take_rest(struct op_client *c)
{
    struct op_request *r = &c->r;
    if (r->waiter.flight == NULL || !r->flight_head_sent || !r->client_body || c->closing)
        return false;
    struct op_flight_view v;
    op_flight_view(r->waiter.flight, &v);
    copy_body(c, &v, SIZE_MAX);
    if (c->closing)
        return false;
    op_proxy__flight_leave(r);
    return true;
}

static void stream_body(struct op_client *c, const struct op_flight_view *v)
{
    struct op_request *r = &c->r;
    copy_body(c, v, OUT_HIGH);
    if (c->closing || v->phase != OP_FLIGHT_DONE || (r->client_body && r->flight_off < v->body_len))
        return;
    if (r->client_body && r->chunked_out)
        op_proxy__out(c, "0\r\n\r\n", 5);
    op_proxy__flight_leave(r);
    op_proxy__response_done(c);
    op_proxy__step(c);
}

static void advance(struct op_client *c)
{
    struct op_request *r = &c->r;
    if (r->waiter.flight == NULL || c->closing)
        return;
    struct op_flight_view v;
    op_flight_view(r->waiter.flight, &v);
    switch (v.phase) {
    case OP_FLIGHT_WAITING: return;
    case OP_FLIGHT_PASS:
        restart(c, true); /* not shareable: fetch on our own */
        return;
    case OP_FLIGHT_AGAIN:
        restart(c, false); /* the store has the freshened copy */
        return;
    case OP_FLIGHT_FAILED:
        if (r->flight_head_sent) {
            op_proxy__close(c); /* mid-body: a clean short body would be a lie */
            return;
        }
        answer_failure(c, v.error);
        return;
    case OP_FLIGHT_STREAMING:
    case OP_FLIGHT_DONE: break;
    }
    if (!r->flight_head_sent) {
        struct op_proxy_flight_head h;
        const char *fields, *vary, *variant;
        if (!decode_head(&v, &h, &fields, &vary, &variant)) {
            answer_failure(c, OP_EORIGIN);
            return;
        }
        if (!same_variant(c, &h, vary, variant)) {
            restart(c, true); /* another variant: fetch it on our own */
            return;
        }
        if (answer_as_hit(c, &v, &h, fields))
            return;
        send_head(c, &h, fields);
        op_proxy__arm_timer(c); /* the wait deadline no longer applies */
    }
    stream_body(c, &v);
}

void op_proxy__flight_drain(struct op_client *c)
{
    advance(c);
}
