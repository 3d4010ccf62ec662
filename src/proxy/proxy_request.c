/* One request: route by Host, look up the cache, answer a hit, or fetch from
 * the origin, stream the response and hand a storable one to the store. */
#include "proxy_int.h"

#include "outpost/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OUT_HIGH (1024 * 1024)

static const struct op_fetch_cbs fetch_cbs;

void op_proxy__request_init(struct op_request *r)
{
    memset(r, 0, sizeof(*r));
    r->origin_ms = -1;
    op_buf_init(&r->key, 16 * 1024);
    op_headers_init(&r->stale_headers, 512, 256 * 1024);
    op_buf_init(&r->stale_body, SIZE_MAX);
    op_buf_init(&r->body, 0);
    op_headers_init(&r->resp_headers, 512, 256 * 1024);
}

void op_proxy__request_fini(struct op_request *r)
{
    op_proxy__hit_fini(r);
    op_proxy__flight_leave(r);
    if (r->fetch != NULL)
        op_fetch_abort(r->fetch);
    r->fetch = NULL;
    op_buf_fini(&r->key);
    op_headers_fini(&r->stale_headers);
    op_buf_fini(&r->stale_body);
    op_buf_fini(&r->body);
    op_headers_fini(&r->resp_headers);
    if (r->gen != NULL)
        op_proxy_gen_unref(r->gen);
    r->gen = NULL;
    r->site = NULL;
}

void op_proxy_gen_ref(struct op_proxy_gen *g)
{
    g->refs++;
}

void op_proxy_gen_unref(struct op_proxy_gen *g)
{
    OP_ASSERT(g->refs > 0);
    if (--g->refs == 0)
        g->ctx->on_gen_released(g->ctx, g);
}

void op_proxy_set_gen(struct op_proxy_ctx *ctx, struct op_proxy_gen *g)
{
    struct op_proxy_gen *old = ctx->gen;
    g->ctx = ctx;
    g->refs = 1;
    ctx->gen = g;
    ctx->conf = g->conf;
    if (old != NULL)
        op_proxy_gen_unref(old);
}

static struct op_proxy_site *route(struct op_proxy_ctx *ctx, const char *host, size_t hlen)
{
    /* match without the port */
    const char *colon = NULL;
    if (hlen > 0 && host[0] == '[') {
        const char *end = memchr(host, ']', hlen);
        if (end != NULL && (size_t)(end - host) + 1 < hlen)
            colon = end + 1;
    } else {
        colon = memchr(host, ':', hlen);
    }
    if (colon != NULL)
        hlen = (size_t)(colon - host);
    struct op_proxy_site *any = NULL;
    struct op_proxy_gen *g = ctx->gen;
    for (size_t i = 0; i < g->nsites; i++) {
        const char *name = g->sites[i].conf->host;
        if (strcmp(name, "*") == 0)
            any = &g->sites[i];
        else if (strlen(name) == hlen && strncasecmp(name, host, hlen) == 0)
            return &g->sites[i];
    }
    return any;
}

static bool is_idempotent(enum op_http_method m)
{
    return m == OP_HTTP_GET || m == OP_HTTP_HEAD || m == OP_HTTP_OPTIONS || m == OP_HTTP_PUT ||
           m == OP_HTTP_DELETE || m == OP_HTTP_TRACE;
}

static bool is_unsafe(enum op_http_method m)
{
    return !(m == OP_HTTP_GET || m == OP_HTTP_HEAD || m == OP_HTTP_OPTIONS || m == OP_HTTP_TRACE);
}

void op_proxy__overloaded(struct op_client *c, const char *detail)
{
    struct op_request *r = &c->r;
    bool down = op_upstream_down(&r->site->upstream);
    if (op_proxy__serve_stale_on_error(c, 0, down ? "origin down" : "origin busy"))
        return;
    r->retry_after_s = (uint32_t)(r->site->conf->retry_after_ms / 1000);
    op_proxy__error(c, 503,
                    down ? "the origin has been failing; the node is checking whether it is back"
                         : detail,
                    false);
}

void op_proxy__fetch_alone(struct op_client *c, bool revalidate)
{
    struct op_request *r = &c->r;
    if (op_upstream_full(&r->site->upstream)) {
        op_proxy__overloaded(c, "the origin is at its limit and its queue is full or too slow");
        return;
    }
    struct op_buf head;
    op_buf_init(&head, SIZE_MAX);
    bool has_body = c->req.chunked || c->req.content_length > 0;
    if (op_proxy__origin_head(&head, &c->req, r->site->conf, c->peer, r->https,
                              c->ctx->conf->cache_name, NULL, revalidate ? &r->stale_headers : NULL,
                              &r->req_chunked_to_origin) != 0) {
        op_buf_fini(&head);
        op_proxy__error(c, 500, "could not build the origin request", true);
        return;
    }
    c->rs = OP_RS_WAIT;
    r->origin_start_ms = op_time_mono_ms();
    r->fetch =
        op_fetch_start(&r->site->upstream, head.data, head.len, c->req.method == OP_HTTP_HEAD,
                       is_idempotent(c->req.method) && !has_body, &fetch_cbs, c);
    op_buf_fini(&head);
    if (r->fetch == NULL) {
        op_metric_inc(&c->ctx->metrics, origin_errors_total);
        op_proxy__error(c, 502, "could not connect to the origin", false);
        return;
    }
    if (has_body && c->rq == OP_RQ_BODY)
        op_fetch_body_begin(r->fetch); /* its connection is not reused before the body ends */
}

static void serve_hit(struct op_client *c, struct op_store_obj *obj, int64_t ttl)
{
    char cs[200];
    if (c->r.revalidated) {
        /* a flight's 304 freshened the copy this request was waiting on */
        c->r.fwd = OP_FWD_STALE;
        op_proxy__cache_status(c, cs, sizeof(cs), ttl, 304, true, NULL);
    } else {
        op_metric_inc(&c->ctx->metrics, cache_hits_total);
        c->r.fwd = OP_FWD_NONE;
        op_proxy__cache_status(c, cs, sizeof(cs), ttl, 0, false, NULL);
    }
    struct op_proxy_body b = {.data = obj->body, .len = obj->body_len, .ref = &obj->ref};
    op_proxy__serve_object(c, &obj->meta, &c->r.stale_headers, &b, cs);
}

/* The stale copy as a body to serve: the first window from r->stale_body,
 * the rest from the store by r->stale_ref, unless the stored body is gone
 * by now: then all from the copy. A 304 that freshened it keeps the ref
 * (the body is the same). */
static struct op_proxy_body stale_source(struct op_client *c)
{
    struct op_request *r = &c->r;
    struct op_proxy_body b = {.data = r->stale_body.data, .len = r->stale_body.len};
    if (r->have_stale && op_store_read(c->ctx->reader, &r->stale_ref, 0, NULL, 0) == 0)
        b.ref = &r->stale_ref;
    return b;
}

/* Once the stale copy is being served, and whatever else needed it (a
 * background revalidation) has taken its own copy, the request lets go of
 * it unless the response still reads from it: a slow reader of a stale
 * object then holds a window, not the object. */
static void drop_stale_copy(struct op_request *r)
{
    if (r->hit.active && r->hit.mem != NULL)
        return; /* served from the copy: the stored body was gone */
    op_buf_fini(&r->stale_body);
    op_buf_init(&r->stale_body, SIZE_MAX);
}

/* Answer with the stale copy in r, saying why in Cache-Status (<status>: what
 * the origin answered, 0 for none). The caller checked that policy allows it. */
void op_proxy__serve_stale(struct op_client *c, int status, const char *why)
{
    struct op_request *r = &c->r;
    char cs[200];
    op_metric_inc(&c->ctx->metrics, stale_served_total);
    r->fwd = OP_FWD_STALE;
    r->stale_sent = true;
    op_proxy__cache_status(c, cs, sizeof(cs), 0, status, false, why);
    struct op_proxy_body b = stale_source(c);
    op_proxy__serve_object(c, &r->stale_meta, &r->stale_headers, &b, cs);
}

void op_proxy__lookup(struct op_client *c)
{
    struct op_request *r = &c->r;
    struct op_proxy_ctx *ctx = c->ctx;
    struct op_store_obj obj;
    r->purge_seq = op_store_purge_seq(ctx->store); /* before the read: a purge after it wins */
    /* a node that has not read the fleet's purge stream since it started may
     * hold objects a purge it has not applied yet covers: the origin answers
     * until it has (op_fleet_caught_up) */
    int rc = ctx->fleet != NULL && !op_fleet_caught_up(ctx->fleet)
                 ? OP_ENOTFOUND
                 : op_store_lookup(ctx->reader, r->key.data, r->key.len, &c->req.headers, &obj);
    if (rc == 0 && op_headers_parse_block(&r->stale_headers, obj.headers, obj.headers_len) != 0)
        rc = OP_ENOTFOUND; /* unreadable stored fields: fetch afresh */
    if (rc == 0) {
        int64_t age, ttl;
        enum op_cache_verdict v =
            op_cache_evaluate(&obj.meta, &c->req.headers, op_time_now(), &age, &ttl);
        /* a copy the origin validated after this request began answers it,
         * even if the 304 left it stale (RFC 9111 §4.3.4) */
        bool validated = r->revalidated && obj.meta.response_time >= r->request_time;
        if (v != OP_CACHE_VALIDATE || validated) {
            serve_hit(c, &obj, ttl);
            op_store_reader_end(ctx->reader);
            op_proxy__step(c);
            return;
        }
        /* stale or the request insists: keep a copy and revalidate. The
         * request's Cache-Control is read here, off the hit path. */
        struct op_cc cc;
        op_cache_cc_parse(&c->req.headers, "cache-control", &cc);
        r->have_stale = true;
        r->stale_meta = obj.meta;
        r->stale_ref = obj.ref;
        rc = op_buf_append(&r->stale_body, obj.body, obj.body_len);
        op_store_reader_end(ctx->reader);
        if (rc != 0) {
            op_proxy__error(c, 500, "out of memory", true);
            return;
        }
        int64_t swr = (int64_t)(r->site->conf->stale_while_revalidate_ms / 1000);
        if (op_cache_swr_ok(&r->stale_meta, &c->req.headers, op_time_now(), swr)) {
            op_proxy__serve_stale(c, 0, "stale-while-revalidate");
            op_proxy__revalidate_in_background(c); /* copies the stale body if it needs it */
            drop_stale_copy(r);
            op_proxy__step(c);
            return;
        }
        /* The origin is at its limit (the revalidation would only wait in
         * its queue), its circuit is open or it has stalled: the stale copy
         * goes out now (where stale-if-error allows) and the revalidation
         * runs behind it. */
        const struct op_upstream *u = &r->site->upstream;
        bool down = op_upstream_down(u);
        bool stalled = !down && op_upstream_stalled(u);
        if ((down || stalled || op_upstream_saturated(u)) && op_proxy__stale_on_error_ok(c)) {
            op_proxy__serve_stale(c, 0,
                                  down      ? "origin down"
                                  : stalled ? "origin stalled"
                                            : "origin busy");
            op_proxy__revalidate_in_background(c); /* copies the stale body if it needs it */
            drop_stale_copy(r);
            op_proxy__step(c);
            return;
        }
        bool validators = op_headers_find(&r->stale_headers, "etag", 0) >= 0 ||
                          op_headers_find(&r->stale_headers, "last-modified", 0) >= 0;
        r->fwd = (cc.flags & OP_CC_NO_CACHE) ? OP_FWD_REQUEST : OP_FWD_STALE;
        if (cc.flags & OP_CC_ONLY_IF_CACHED) {
            op_proxy__error(c, 504, "only-if-cached: the stored response is stale", false);
            return;
        }
        op_metric_inc(&ctx->metrics, cache_revalidations_total);
        r->conditional = validators; /* without validators: a plain refetch */
        if (!op_proxy__flight_start(c, &cc))
            op_proxy__fetch_alone(c, validators);
        return;
    }
    op_store_reader_end(ctx->reader);
    if (rc != OP_ENOTFOUND)
        op_log_warn("proxy", "store lookup failed; fetching from the origin");
    struct op_cc cc;
    op_cache_cc_parse(&c->req.headers, "cache-control", &cc);
    if (cc.flags & OP_CC_ONLY_IF_CACHED) {
        op_proxy__error(c, 504, "only-if-cached: not in the cache", false);
        return;
    }
    op_metric_inc(&ctx->metrics, cache_misses_total);
    r->fwd = OP_FWD_URI_MISS;
    if (!op_proxy__flight_start(c, &cc))
        op_proxy__fetch_alone(c, false);
}

void op_proxy__request_start(struct op_client *c)
{
    struct op_proxy_ctx *ctx = c->ctx;
    struct op_request *r = &c->r;
    struct op_http_msg *m = &c->req;
    r->id = ((uint64_t)ctx->worker_id << 48) | ++ctx->next_request_id;
    r->request_ms = op_time_now_ms();
    r->request_time = r->request_ms / 1000;
    r->t_start_ms = op_time_mono_ms();
    r->https = c->tls != NULL;
    op_metric_inc(&ctx->metrics, requests_total);
    /* the origin never sees hop-by-hop fields, so routing, the cache key,
     * Vary and policy never use them either: one view of the request */
    op_headers_strip_hop_by_hop(&m->headers);
    /* Upgrade is not forwarded (no tunnels yet): the request is answered as
     * a plain one and the connection closes after it, so nothing the client
     * sends next in the protocol it asked for is read as HTTP */
    if (m->upgrade)
        c->close_after = true;

    size_t hlen;
    const char *host = op_headers_get(&m->headers, "host", &hlen);
    if (host == NULL) {
        host = "";
        hlen = 0;
    }
    r->site = route(ctx, host, hlen);
    r->gen = ctx->gen; /* the site and its pools live as long as this reference */
    op_proxy_gen_ref(r->gen);
    if (r->site == NULL) {
        op_proxy__error(c, 421, "no site is configured for this host", false);
        return;
    }
    /* A connection whose SNI chose a site's own certificate is that site's:
     * another Host on it is misdirected (RFC 9110 §15.5.20), so one site's
     * certificate never fronts another site's content. */
    const char *sni_host = c->tls != NULL ? op_tls_conn_host(c->tls) : NULL;
    if (sni_host != NULL && strcasecmp(sni_host, r->site->conf->host) != 0) {
        op_metric_inc(&ctx->metrics, client_errors_total);
        op_proxy__error(c, 421, "the Host is not the site this TLS connection was made for", false);
        return;
    }
    if (m->method == OP_HTTP_CONNECT) {
        op_proxy__error(c, 405, "CONNECT is not supported", true);
        return;
    }
    bool has_body = m->chunked || m->content_length > 0;
    if (m->content_length > 0 && (uint64_t)m->content_length > ctx->conf->max_body_size) {
        op_metric_inc(&ctx->metrics, client_errors_total);
        op_proxy__error(c, 413, "request body too large", true);
        return;
    }
    if (has_body && op_headers_has_token(&m->headers, "expect", "100-continue"))
        op_proxy__out(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    /* An absolute-form target names a scheme: it must be the connection's,
     * or a plain request could store an answer under an https URL (the
     * origin's redirect to https, served back to https clients in a loop). */
    bool abs_https;
    const char *auth, *rest;
    size_t alen, rlen;
    if (m->target.len > 0 && m->target.data[0] != '/' &&
        op_http_url_split(m->target.data, m->target.len, &abs_https, &auth, &alen, &rest, &rlen) &&
        abs_https != r->https) {
        op_metric_inc(&ctx->metrics, client_errors_total);
        op_proxy__error(c, 400, "the request target's scheme is not this connection's", true);
        return;
    }
    /* keyed on the site that answers too: a catch-all's answer is never
     * served for a named site's URL, nor one site's for another's; and on the
     * scheme (RFC 9110 §4.2: http and https URIs are different resources)
     * unless the site says both serve the same */
    int krc = op_cache_key_primary(r->https && !r->site->conf->schemes_share_cache, host, hlen,
                                   m->target.data, m->target.len, r->site->conf->host, &r->key);
    if (krc != 0) {
        op_metric_inc(&ctx->metrics, client_errors_total);
        if (krc == OP_EINVAL)
            op_proxy__error(c, 400, "malformed Host or request target", true);
        else
            op_proxy__error(c, 414, "request target too long for a cache key", true);
        return;
    }
    if (!r->https && r->site->conf->https_redirect) {
        op_proxy__redirect_https(c, host, hlen, has_body);
        return;
    }
    if (op_proxy__purge_request(c))
        return;
    r->cacheable = (m->method == OP_HTTP_GET || m->method == OP_HTTP_HEAD) && !has_body;
    if (r->cacheable) {
        op_proxy__lookup(c);
        return;
    }
    op_metric_inc(&ctx->metrics, cache_passes_total);
    r->fwd = OP_FWD_METHOD;
    op_proxy__fetch_alone(c, false);
}

int op_proxy__request_body(struct op_client *c, const char *p, size_t len)
{
    struct op_request *r = &c->r;
    r->req_body_bytes += len;
    if (r->req_body_bytes > c->ctx->conf->max_body_size) {
        op_metric_inc(&c->ctx->metrics, client_errors_total);
        if (c->rs == OP_RS_WAIT || c->rs == OP_RS_NONE)
            op_proxy__error(c, 413, "request body too large", true);
        else
            op_proxy__close(c);
        return -1;
    }
    if (r->fetch == NULL)
        return 0; /* answered already (an error): the body is read and dropped */
    char frame[24];
    if (r->req_chunked_to_origin) {
        int n = snprintf(frame, sizeof(frame), "%zx\r\n", len);
        op_fetch_send(r->fetch, frame, (size_t)n);
    }
    op_fetch_send(r->fetch, p, len);
    if (r->req_chunked_to_origin)
        op_fetch_send(r->fetch, "\r\n", 2);
    return 0;
}

void op_proxy__request_body_done(struct op_client *c)
{
    if (c->r.fetch == NULL)
        return;
    if (c->r.req_chunked_to_origin)
        op_fetch_send(c->r.fetch, "0\r\n\r\n", 5);
    op_fetch_body_end(c->r.fetch);
}

void op_proxy__on_client_drain(struct op_client *c)
{
    if (c->r.hit.active) {
        op_proxy__hit_drain(c);
        return;
    }
    if (c->r.waiter.flight != NULL) {
        op_proxy__flight_drain(c);
        return;
    }
    if (c->origin_paused && c->r.fetch != NULL) {
        c->origin_paused = false;
        op_fetch_resume(c->r.fetch); /* may run fetch callbacks */
    }
}

/* ---- invalidation after unsafe methods (RFC 9111 §4.4) ---------------------- */

struct inval_ack {
    struct op_msg msg;
    struct op_client *c; /* ref: c->refs counts this message */
    uint64_t request_id;
};

static void release_hold(struct op_client *c)
{
    struct op_request *r = &c->r;
    r->hold = false;
    op_proxy__out(c, r->body.data, r->body.len);
    op_buf_reset(&r->body);
    if (r->fetch != NULL)
        op_fetch_resume(r->fetch);
}

static void on_inval_ack(struct op_msg *m)
{
    struct inval_ack *ack = (struct inval_ack *)m;
    struct op_client *c = ack->c;
    uint64_t id = ack->request_id;
    free(ack);
    if (!c->closing && c->r.id == id && c->r.pending_acks > 0 && --c->r.pending_acks == 0 &&
        c->r.hold)
        release_hold(c);
    op_proxy__client_unref(c);
}

static void invalidate_key(struct op_client *c, const char *key, size_t klen)
{
    struct inval_ack *ack = calloc(1, sizeof(*ack));
    if (ack == NULL)
        return;
    ack->msg.run = on_inval_ack;
    ack->c = c;
    ack->request_id = c->r.id;
    if (op_store_invalidate(c->ctx->store, key, klen, c->ctx->mailbox, &ack->msg) != 0) {
        free(ack);
        return;
    }
    c->refs++;
    c->r.pending_acks++;
}

/* The length of the "scheme://authority" that starts a key. */
static size_t key_origin_len(const char *key, size_t len)
{
    const char *sep = memchr(key, ':', len);
    size_t i = sep != NULL ? (size_t)(sep - key) + 3 : len;
    while (i < len && key[i] != '/' && key[i] != '?' && key[i] != '*' && key[i] != ' ')
        i++;
    return i < len ? i : len;
}

/* Location and Content-Location invalidate only within the same origin
 * (§4.4). Their key is made as the request's was (same Host, same site); an
 * absolute URI brings its own scheme and authority, which must then be the
 * request's. The Host is the client's: the origin's (host_header) may differ. */
static void invalidate_field(struct op_client *c, const char *field)
{
    size_t vlen, hlen;
    const char *v = op_headers_get(&c->r.resp_headers, field, &vlen);
    if (v == NULL || vlen == 0 || (vlen > 1 && v[0] == '/' && v[1] == '/'))
        return; /* none, or a network-path reference: another authority */
    const char *host = op_headers_get(&c->req.headers, "host", &hlen);
    if (host == NULL) {
        host = "";
        hlen = 0;
    }
    struct op_buf key;
    op_buf_init(&key, 16 * 1024);
    size_t olen = key_origin_len(c->r.key.data, c->r.key.len);
    bool https = c->r.key.len > 5 && memcmp(c->r.key.data, "https", 5) == 0;
    if (op_cache_key_primary(https, host, hlen, v, vlen, c->r.site->conf->host, &key) == 0 &&
        key.len > olen && memcmp(key.data, c->r.key.data, olen) == 0 && key.data[olen] == '/')
        invalidate_key(c, key.data, key.len);
    op_buf_fini(&key);
}

/* ---- the origin's response ---------------------------------------------------- */

/* A 304 answered our revalidation: freshen the stored fields (RFC 9111 §4.3.4),
 * store the result and serve it. r->resp_headers holds the 304's fields. */
static void respond_revalidated(struct op_client *c)
{
    struct op_request *r = &c->r;
    struct op_proxy_ctx *ctx = c->ctx;
    char cs[160];
    struct op_cache_meta meta;
    bool stored;
    const char *nostore = op_proxy__store_revalidated(
        ctx, &r->key, &c->req.headers, r->stale_meta.status, r->request_ms, &r->stale_headers,
        &r->resp_headers, &r->stale_body, &meta, r->purge_seq, &stored);
    op_proxy__cache_status(c, cs, sizeof(cs), 0, 304, stored, nostore);
    struct op_proxy_body b = stale_source(c);
    op_proxy__serve_object(c, &meta, &r->stale_headers, &b, cs);
    drop_stale_copy(r);
}

/* The origin failed while a stale copy is in hand: serve it where RFC 5861
 * stale-if-error (or the site's default window) allows. <status> is what the
 * origin answered, 0 when it did not answer. Returns false if it may not. */
bool op_proxy__stale_on_error_ok(const struct op_client *c)
{
    const struct op_request *r = &c->r;
    int64_t window = (int64_t)(r->site->conf->stale_if_error_ms / 1000);
    return r->have_stale &&
           op_cache_stale_if_error_ok(&r->stale_meta, &c->req.headers, op_time_now(), window);
}

bool op_proxy__serve_stale_on_error(struct op_client *c, int status, const char *why)
{
    if (!op_proxy__stale_on_error_ok(c))
        return false;
    op_proxy__serve_stale(c, status, why);
    drop_stale_copy(&c->r);
    op_proxy__step(c);
    return true;
}

static void on_fetch_head(void *owner, struct op_http_msg *resp)
{
    struct op_client *c = owner;
    struct op_request *r = &c->r;
    struct op_proxy_ctx *ctx = c->ctx;
    r->status = resp->status;
    r->origin_ms = r->origin_start_ms > 0 ? (int64_t)(op_time_mono_ms() - r->origin_start_ms) : -1;
    if (r->have_stale && r->conditional && resp->status == 304) {
        op_proxy__copy_fields(&r->resp_headers, &resp->headers, NULL);
        return; /* answered in on_fetch_done, once the exchange is complete */
    }
    if (op_proxy__origin_error_status(resp->status) &&
        op_proxy__serve_stale_on_error(c, resp->status, "stale-if-error"))
        return; /* the origin's error body is dropped with its connection */
    r->have_stale = false;

    /* what the store keeps, and what the client gets: without hop-by-hop fields */
    r->nostore = "method";
    if (r->cacheable && c->req.method == OP_HTTP_GET)
        r->nostore =
            op_proxy__storable(ctx, &c->req.headers, r->request_ms, resp, &resp->headers, &r->meta);
    int64_t age = 0;
    if (r->nostore == NULL) {
        age = r->meta.corrected_initial_age;
        r->store = true;
        r->body.max = ctx->conf->max_object_size;
        if (r->hit_for_miss) /* storable now: requests may coalesce again */
            op_flight_clear_uncacheable(ctx->flight, r->key.data, r->key.len);
    }
    size_t alen;
    bool origin_age = op_headers_get(&resp->headers, "age", &alen) != NULL;
    op_headers_remove_all(&resp->headers, "content-length");
    op_proxy__copy_fields(&r->resp_headers, &resp->headers, "age");
    op_proxy__ensure_date(&r->resp_headers);

    char cs[200];
    op_proxy__cache_status(c, cs, sizeof(cs), 0, resp->status, r->store, r->nostore);
    struct op_buf head;
    op_buf_init(&head, SIZE_MAX);
    op_proxy__head_begin(c, &head, resp->status, cs);
    op_headers_serialize(&r->resp_headers, &head);
    if (r->store || origin_age)
        op_buf_appendf(&head, "Age: %lld\r\n",
                       (long long)(r->store ? age : op_cache_age(&r->meta, op_time_now())));
    bool no_body = c->req.method == OP_HTTP_HEAD || resp->status == 204 || resp->status == 304 ||
                   (resp->status >= 100 && resp->status < 200);
    r->client_body = !no_body;
    op_proxy__head_end(
        c, &head, no_body && c->req.method != OP_HTTP_HEAD ? -1 : resp->content_length, no_body);
    c->rs = OP_RS_STREAM;

    if (is_unsafe(c->req.method) && resp->status < 400) {
        invalidate_key(c, r->key.data, r->key.len);
        invalidate_field(c, "location");
        invalidate_field(c, "content-location");
        if (r->pending_acks > 0) {
            /* nobody may see this response before the invalidation is committed */
            r->hold = true;
            r->body.max = SIZE_MAX;
            op_buf_append(&r->body, head.data, head.len);
            op_buf_fini(&head);
            op_fetch_pause(r->fetch);
            return;
        }
    }
    op_proxy__out(c, head.data, head.len);
    op_buf_fini(&head);
}

static int on_fetch_body(void *owner, const char *p, size_t len)
{
    struct op_client *c = owner;
    struct op_request *r = &c->r;
    if (r->store && op_buf_append(&r->body, p, len) != 0) {
        r->store = false; /* grew past max_object_size: stream it, do not keep it */
        op_buf_fini(&r->body);
    }
    if (!r->client_body)
        return 0;
    if (r->chunked_out) {
        char frame[24];
        int n = snprintf(frame, sizeof(frame), "%zx\r\n", len);
        op_proxy__out(c, frame, (size_t)n);
    }
    op_proxy__out(c, p, len);
    if (r->chunked_out)
        op_proxy__out(c, "\r\n", 2);
    if (c->closing)
        return 1;
    if (op_proxy__out_pending(c) > OUT_HIGH && r->fetch != NULL) {
        op_fetch_pause(r->fetch); /* the client is slower than the origin */
        c->origin_paused = true;
    }
    return 0;
}

static void on_fetch_done(void *owner)
{
    struct op_client *c = owner;
    struct op_request *r = &c->r;
    struct op_proxy_ctx *ctx = c->ctx;
    if (r->have_stale && r->conditional && r->status == 304) {
        respond_revalidated(c);
        op_proxy__step(c);
        return;
    }
    if (r->client_body && r->chunked_out)
        op_proxy__out(c, "0\r\n\r\n", 5);
    if (r->store)
        op_proxy__store(ctx, &r->key, &c->req.headers, &r->meta, &r->resp_headers, &r->body,
                        r->purge_seq);
    op_proxy__response_done(c);
    op_proxy__step(c);
}

static void on_fetch_error(void *owner, int err, bool got_head)
{
    struct op_client *c = owner;
    struct op_request *r = &c->r;
    op_fetch_abort(r->fetch);
    r->fetch = NULL;
    if (got_head) {
        /* mid-body: a clean short body would be a lie; close instead */
        op_proxy__close(c);
        return;
    }
    if (err == OP_EFULL) {
        op_proxy__overloaded(c, "the origin is at its limit and its queue is full or too slow");
        return;
    }
    if (op_proxy__serve_stale_on_error(c, 0, op_proxy__origin_failure(err)))
        return;
    op_proxy__origin_error(c, err);
}

static void on_fetch_drain(void *owner)
{
    struct op_client *c = owner;
    if (c->rq == OP_RQ_BODY)
        op_proxy__step(c); /* reading the request body again */
}

static void on_fetch_interim(void *owner, struct op_http_msg *resp)
{
    op_proxy__interim(owner, resp);
}

static const struct op_fetch_cbs fetch_cbs = {
    .on_interim = on_fetch_interim,
    .on_head = on_fetch_head,
    .on_body = on_fetch_body,
    .on_done = on_fetch_done,
    .on_error = on_fetch_error,
    .on_drain = on_fetch_drain,
};

void op_proxy__adopt_fetch_body(struct op_client *c, struct op_fetch *f, const char *p, size_t len)
{
    struct op_request *r = &c->r;
    r->fetch = f;
    r->store = false;
    r->nostore = "too large";
    c->rs = OP_RS_STREAM;
    op_fetch_set_owner(f, &fetch_cbs, c);
    on_fetch_body(c, p, len);
}

void op_proxy__adopt_fetch(struct op_client *c, struct op_fetch *f, struct op_http_msg *resp)
{
    c->r.fetch = f;
    c->rs = OP_RS_WAIT;
    op_fetch_set_owner(f, &fetch_cbs, c);
    on_fetch_head(c, resp);
    op_proxy__step(c); /* re-arms the timer: the flight's deadline is over */
}
