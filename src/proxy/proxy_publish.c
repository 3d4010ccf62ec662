/* The publisher: the one origin fetch behind a flight, for coalesced misses,
 * revalidations, and the background revalidation of stale-while-revalidate.
 * It belongs to the worker's loop, not to a client: when the leading client
 * goes away the fetch still feeds the waiters and the store. */
#include "proxy_int.h"

#include "outpost/flight.h"

#include <stdlib.h>
#include <string.h>

#define PUB_MAGIC 0x50554231u

struct op_pub {
    unsigned magic;
    struct op_pub *prev, *next;      /* borrowed: ctx->pubs list */
    struct op_proxy_ctx *ctx;        /* borrowed */
    const struct op_conf_site *site; /* borrowed */
    struct op_proxy_site *psite;     /* borrowed from gen: the worker's pools for the site */
    struct op_proxy_gen *gen;        /* a reference: psite lives while it is held */
    struct op_flight *flight;        /* ref */
    struct op_fetch *fetch;          /* owned */
    struct op_client *leader;        /* borrowed: the leading client while it waits */
    struct op_buf key;               /* owned: the flight's key */
    struct op_headers req;           /* the leader's request fields (§3.5, Vary) */
    bool conditional;                /* our stored validators went to the origin */
    bool had_stale;                  /* the leader held a stored copy */
    struct op_headers stale_headers; /* the stored copy being revalidated */
    struct op_buf stale_body;
    struct op_cache_meta stale_meta;
    struct op_headers resp_headers; /* cleaned origin fields */
    struct op_cache_meta meta;
    int64_t request_ms; /* wall clock at the request, for Age (op_proxy__storable) */
    uint64_t purge_seq; /* the leader's: a purge since its lookup drops the answer */
    int status;
    struct op_buf head; /* owned: the origin request, kept for a retry */
    uint32_t retries;   /* after 503/429 */
    uint64_t start_ms;  /* the origin request went out */
    bool timer_open;    /* the retry timer exists: memory goes in its close callback */
    uv_timer_t timer;
};

#define PUB_RETRIES 4         /* a cold miss waits out a shedding origin this often */
#define PUB_RETRY_MAX_MS 1000 /* bound on the wait, whatever Retry-After says */
#define PUB_RETRY_BASE_MS 100 /* without Retry-After: 100, 200, 400, 800 ms */

static const struct op_fetch_cbs pub_cbs;

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void pub_free(struct op_pub *pub)
{
    struct op_proxy_ctx *ctx = pub->ctx;
    if (pub->prev)
        pub->prev->next = pub->next;
    else
        ctx->pubs = pub->next;
    if (pub->next)
        pub->next->prev = pub->prev;
    if (pub->leader != NULL)
        pub->leader->r.pub = NULL;
    op_fetch_abort(pub->fetch);
    op_flight_unref(&pub->flight);
    op_buf_fini(&pub->key);
    op_headers_fini(&pub->req);
    op_headers_fini(&pub->stale_headers);
    op_buf_fini(&pub->stale_body);
    op_headers_fini(&pub->resp_headers);
    op_buf_fini(&pub->head);
    if (pub->gen != NULL)
        op_proxy_gen_unref(pub->gen); /* after the fetch: its pools may close now */
    pub->gen = NULL;
    pub->magic = 0;
    if (pub->timer_open)
        uv_close((uv_handle_t *)&pub->timer, on_timer_closed);
    else
        free(pub);
}

/* End the flight for every waiter and free the publisher. */
static void pub_end(struct op_pub *pub, enum op_flight_phase end, int error)
{
    op_flight_finish(pub->flight, end, error);
    pub_free(pub);
}

void op_proxy__pub_drop_leader(struct op_pub *pub)
{
    OP_CHECK_OBJ(pub, PUB_MAGIC);
    pub->leader = NULL;
}

/* The head every waiter builds its response from. */
static int publish_head(struct op_pub *pub, const struct op_http_msg *resp)
{
    struct op_buf blob, vary, variant;
    op_buf_init(&blob, SIZE_MAX);
    op_buf_init(&vary, 4096);
    op_buf_init(&variant, 64 * 1024);
    struct op_proxy_flight_head h = {.status = resp->status,
                                     .content_length = resp->content_length,
                                     .origin_ms = op_time_mono_ms() - pub->start_ms,
                                     .meta = pub->meta};
    int rc = OP_EINVAL; /* Vary: * never matches another request */
    if (op_cache_vary_names(&pub->resp_headers, &vary) &&
        (rc = op_cache_key_secondary(vary.data ? vary.data : "", vary.len, &pub->req, &variant)) ==
            0 &&
        (rc = op_buf_append(&blob, &h, sizeof(h))) == 0 &&
        (rc = op_headers_serialize(&pub->resp_headers, &blob)) == 0) {
        struct op_proxy_flight_head *hp = (struct op_proxy_flight_head *)blob.data;
        hp->fields_len = (uint32_t)(blob.len - sizeof(h));
        hp->vary_len = (uint32_t)vary.len;
        hp->variant_len = (uint32_t)variant.len;
        if ((rc = op_buf_append(&blob, vary.data, vary.len)) == 0 &&
            (rc = op_buf_append(&blob, variant.data, variant.len)) == 0)
            rc = op_flight_publish_head(pub->flight, blob.data, blob.len);
    }
    op_buf_fini(&blob);
    op_buf_fini(&vary);
    op_buf_fini(&variant);
    return rc;
}

static void on_retry_timer(uv_timer_t *t)
{
    struct op_pub *pub = t->data;
    OP_CHECK_OBJ(pub, PUB_MAGIC);
    struct op_upstream *u = &pub->psite->upstream;
    if (op_upstream_full(u)) {
        pub_end(pub, OP_FLIGHT_FAILED, OP_EFULL);
        return;
    }
    pub->start_ms = op_time_mono_ms();
    pub->fetch = op_fetch_start(u, pub->head.data, pub->head.len, false, true, &pub_cbs, pub);
    if (pub->fetch == NULL)
        pub_end(pub, OP_FLIGHT_FAILED, OP_ECONNECT);
}

/* RFC 9110 §10.2.3: delay-seconds (an HTTP-date is taken as "soon"). */
static uint64_t retry_delay_ms(const struct op_http_msg *resp, uint32_t attempt)
{
    size_t len;
    uint64_t secs;
    const char *v = op_headers_get(&resp->headers, "retry-after", &len);
    uint64_t ms = (uint64_t)PUB_RETRY_BASE_MS << attempt;
    if (v != NULL && op_parse_u64(v, len, &secs) == 0)
        ms = secs < PUB_RETRY_MAX_MS / 1000 ? secs * 1000 : PUB_RETRY_MAX_MS;
    return ms < PUB_RETRY_MAX_MS ? ms : PUB_RETRY_MAX_MS;
}

/* An origin that sheds load (op_fetch_shed) gets the request again a little later,
 * instead of every waiter getting an error at once: for a cold miss only (a
 * revalidation has a stale copy to serve right now). Returns true if a retry
 * is scheduled. */
static bool retry_later(struct op_pub *pub, const struct op_http_msg *resp)
{
    if (!op_fetch_shed(pub->fetch) || pub->had_stale || pub->retries >= PUB_RETRIES ||
        pub->head.len == 0)
        return false;
    if (!pub->timer_open) {
        uv_timer_init(pub->ctx->loop, &pub->timer);
        pub->timer.data = pub;
        pub->timer_open = true;
    }
    uint64_t delay = retry_delay_ms(resp, pub->retries);
    pub->retries++;
    op_fetch_abort(pub->fetch); /* its connection goes with the 503's body */
    pub->fetch = NULL;
    uv_timer_start(&pub->timer, on_retry_timer, delay, 0);
    op_log_debug("proxy", "flight %.*s: origin answered %d; retrying in %llu ms", (int)pub->key.len,
                 pub->key.data, resp->status, (unsigned long long)delay);
    return true;
}

static void on_pub_head(void *owner, struct op_http_msg *resp)
{
    struct op_pub *pub = owner;
    struct op_proxy_ctx *ctx = pub->ctx;
    OP_CHECK_OBJ(pub, PUB_MAGIC);
    if (retry_later(pub, resp))
        return;
    pub->status = resp->status;
    op_headers_remove_all(&resp->headers, "content-length"); /* our framing is our own */
    op_proxy__copy_fields(&pub->resp_headers, &resp->headers, NULL);
    if (pub->conditional && resp->status == 304)
        return; /* the stored copy is freshened in on_pub_done */
    /* a 500/502/503/504 is never handed to waiters, even a storable one:
     * each of them may have a stale copy to serve instead */
    bool failed = op_proxy__origin_error_status(resp->status);
    const char *nostore = failed ? "origin error"
                                 : op_proxy__storable(ctx, &pub->req, pub->request_ms, resp,
                                                      &pub->resp_headers, &pub->meta);
    if (nostore == NULL) {
        op_proxy__ensure_date(&pub->resp_headers);
        op_headers_remove_all(&pub->resp_headers, "age"); /* computed for each reader */
        if (publish_head(pub, resp) == 0) {
            op_flight_clear_uncacheable(ctx->flight, pub->key.data, pub->key.len);
            return;
        }
        nostore = "unshareable";
    }
    /* Not shareable: a 5xx ends the flight as a failure (waiters serve stale
     * or a clean error, never a herd of retries at a failing origin); any
     * other answer releases the waiters to fetch on their own, and a
     * hit-for-miss marker keeps later requests from queueing. */
    if (!failed && pub->site->hit_for_miss_ms > 0)
        op_flight_mark_uncacheable(ctx->flight, pub->key.data, pub->key.len,
                                   op_time_mono_ms() + pub->site->hit_for_miss_ms);
    op_log_debug("proxy", "flight %.*s: not shared (%s)", (int)pub->key.len, pub->key.data,
                 nostore);
    struct op_client *leader = pub->leader;
    struct op_fetch *fetch = NULL;
    if (leader != NULL) {
        /* the response answers the leader's own request: it gets it directly */
        op_proxy__flight_leave(&leader->r);
        fetch = pub->fetch;
        pub->fetch = NULL;
    }
    pub_end(pub, failed ? OP_FLIGHT_FAILED : OP_FLIGHT_PASS, failed ? resp->status : 0);
    if (leader != NULL)
        op_proxy__adopt_fetch(leader, fetch, resp);
}

static int on_pub_body(void *owner, const char *p, size_t len)
{
    struct op_pub *pub = owner;
    struct op_proxy_ctx *ctx = pub->ctx;
    if (pub->conditional && pub->status == 304)
        return 0;
    int rc = op_flight_publish_body(pub->flight, p, len, ctx->conf->max_object_size);
    if (rc == 0)
        return 0;
    /* Grew past max_object_size without a Content-Length saying so. It is
     * not stored, but the leading client gets all of it: it takes the fetch
     * over. Other readers that got bytes see the connection close (the
     * flight keeps no more than max_object_size); later requests go alone. */
    op_log_warn("proxy", "flight %.*s: body over max_object_size; not stored, waiters released",
                (int)pub->key.len, pub->key.data);
    if (pub->site->hit_for_miss_ms > 0)
        op_flight_mark_uncacheable(ctx->flight, pub->key.data, pub->key.len,
                                   op_time_mono_ms() + pub->site->hit_for_miss_ms);
    struct op_client *leader = pub->leader;
    if (leader != NULL && op_proxy__flight_take_rest(leader)) {
        struct op_fetch *fetch = pub->fetch;
        pub->fetch = NULL;
        pub_end(pub, OP_FLIGHT_FAILED, rc);
        op_proxy__adopt_fetch_body(leader, fetch, p, len);
        return 0;
    }
    pub_end(pub, OP_FLIGHT_FAILED, rc);
    return 1;
}

static void on_pub_done(void *owner)
{
    struct op_pub *pub = owner;
    struct op_proxy_ctx *ctx = pub->ctx;
    if (pub->conditional && pub->status == 304) {
        bool queued;
        op_proxy__store_revalidated(ctx, &pub->key, &pub->req, pub->stale_meta.status,
                                    pub->request_ms, &pub->stale_headers, &pub->resp_headers,
                                    &pub->stale_body, &pub->meta, pub->purge_seq, &queued);
        pub_end(pub, OP_FLIGHT_AGAIN, 0); /* waiters find the freshened copy */
        return;
    }
    /* stored before the flight leaves the table, so the next request hits */
    size_t blen;
    const char *body = op_flight_body_published(pub->flight, &blen);
    struct op_buf view = {.data = (char *)body, .len = blen, .cap = blen, .max = blen};
    op_proxy__store(ctx, &pub->key, &pub->req, &pub->meta, &pub->resp_headers, &view,
                    pub->purge_seq);
    pub_end(pub, OP_FLIGHT_DONE, 0);
}

static void on_pub_error(void *owner, int err, bool got_head)
{
    (void)got_head; /* the flight knows whether its head was published */
    pub_end(owner, OP_FLIGHT_FAILED, err);
}

/* Only the leader's request was forwarded, so only it is owed the origin's
 * interim responses (RFC 9110 §15.2); the others joined our own request. */
static void on_pub_interim(void *owner, struct op_http_msg *resp)
{
    struct op_pub *pub = owner;
    if (pub->leader != NULL && !pub->leader->r.flight_head_sent)
        op_proxy__interim(pub->leader, resp);
}

static const struct op_fetch_cbs pub_cbs = {
    .on_interim = on_pub_interim,
    .on_head = on_pub_head,
    .on_body = on_pub_body,
    .on_done = on_pub_done,
    .on_error = on_pub_error,
};

int op_proxy__publish(struct op_client *c, struct op_flight *f, bool leader_waits)
{
    struct op_proxy_ctx *ctx = c->ctx;
    struct op_request *r = &c->r;
    struct op_pub *pub = calloc(1, sizeof(*pub));
    if (pub == NULL)
        return OP_ENOMEM;
    pub->magic = PUB_MAGIC;
    pub->ctx = ctx;
    pub->site = r->site->conf;
    pub->psite = r->site;
    pub->gen = r->gen;
    op_proxy_gen_ref(pub->gen);
    op_flight_ref(f);
    pub->flight = f;
    pub->next = ctx->pubs;
    if (ctx->pubs)
        ctx->pubs->prev = pub;
    ctx->pubs = pub;
    pub->request_ms = op_time_now_ms();
    pub->purge_seq = r->purge_seq;
    op_flight_set_epoch(f, r->purge_seq);
    pub->stale_meta = r->stale_meta;
    pub->had_stale = r->have_stale;
    pub->conditional =
        r->have_stale && (op_headers_find(&r->stale_headers, "etag", 0) >= 0 ||
                          op_headers_find(&r->stale_headers, "last-modified", 0) >= 0);
    op_buf_init(&pub->key, r->key.max);
    op_headers_init(&pub->req, c->req.headers.max, c->req.headers.bytes.max);
    op_headers_init(&pub->stale_headers, r->stale_headers.max, r->stale_headers.bytes.max);
    op_buf_init(&pub->stale_body, SIZE_MAX);
    op_headers_init(&pub->resp_headers, 512, 256 * 1024);
    int rc = op_buf_append(&pub->key, r->key.data, r->key.len);
    if (rc == 0 && pub->conditional) {
        /* a copy: the client keeps its own for stale-if-error */
        rc = op_headers_copy(&pub->stale_headers, &r->stale_headers);
        if (rc == 0)
            rc = op_buf_append(&pub->stale_body, r->stale_body.data, r->stale_body.len);
    }
    if (rc == 0)
        rc = op_headers_copy(&pub->req, &c->req.headers);

    /* the client's request as a GET, without its conditionals and Range: the
     * answer is for everyone */
    struct op_headers none;
    op_headers_init(&none, 1, 64);
    struct op_buf head;
    bool chunked;
    op_buf_init(&head, SIZE_MAX);
    if (rc == 0)
        rc = op_proxy__origin_head(&head, &c->req, r->site->conf, c->peer, r->https,
                                   ctx->conf->cache_name, "GET",
                                   pub->conditional ? &pub->stale_headers : &none, &chunked);
    op_headers_fini(&none);
    pub->start_ms = op_time_mono_ms();
    if (rc == 0) {
        pub->fetch =
            op_fetch_start(&r->site->upstream, head.data, head.len, false, true, &pub_cbs, pub);
        rc = pub->fetch != NULL ? 0 : OP_ENOMEM;
    }
    pub->head = head; /* kept for a retry */
    if (rc != 0) {
        pub_free(pub);
        return rc;
    }
    if (leader_waits) {
        pub->leader = c;
        r->pub = pub;
    }
    return 0;
}

void op_proxy__revalidate_in_background(struct op_client *c)
{
    struct op_proxy_ctx *ctx = c->ctx;
    struct op_request *r = &c->r;
    struct op_flight_waiter w;
    memset(&w, 0, sizeof(w));
    /* lead a flight that nobody waits on yet; requests that cannot use the
     * stale copy join it instead of fetching again */
    if (op_flight_join(ctx->flight, r->key.data, r->key.len, ctx->worker_id, ctx->mailbox,
                       r->site->conf->coalesce_max_waiters, op_time_mono_ms(), NULL,
                       &w) != OP_FLIGHT_LEADER) {
        op_flight_leave(&w);
        return; /* one is under way already (or the key is marked uncacheable) */
    }
    struct op_flight *f = w.flight;
    op_flight_ref(f);
    op_flight_leave(&w);
    op_metric_inc(&ctx->metrics, cache_revalidations_total);
    /* the stale copy went out: an origin whose circuit is open is left alone
     * until its cooldown has passed (op_upstream_full would let us probe) */
    const struct op_upstream *u = &r->site->upstream;
    if (op_upstream_down(u) || op_upstream_full(u) || op_proxy__publish(c, f, false) != 0)
        op_flight_finish(f, OP_FLIGHT_FAILED, OP_ENOMEM);
    op_flight_unref(&f);
}

void op_proxy_abort_background(struct op_proxy_ctx *ctx)
{
    while (ctx->pubs != NULL)
        pub_end(ctx->pubs, OP_FLIGHT_FAILED, OP_ECLOSED);
}
