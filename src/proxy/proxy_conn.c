/* Client connections: accept, the read loop through the strict gate and
 * llhttp, the write queue with backpressure, one timer per connection, and
 * one idempotent close path. */
#include "proxy_int.h"

#include "outpost/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_HIGH (1024 * 1024) /* pause the origin above this many queued bytes */
#define IN_EXTRA (64 * 1024)   /* input room beyond the head limit, for bodies */
#define TLS_RECORD 16384       /* plaintext of one TLS record */

static const char *const rq_name[] = {
#define X(name, str) str,
    OP_REQ_STATES(X)
#undef X
};

static void client_arm_timer(struct op_client *c);

static void client_free(struct op_client *c)
{
    struct op_proxy_ctx *ctx = c->ctx;
    op_proxy__request_fini(&c->r);
    op_http_msg_fini(&c->req);
    op_buf_fini(&c->in);
    op_buf_fini(&c->out);
    op_buf_fini(&c->writing);
    op_buf_fini(&c->tls_wire);
    op_tls_conn_free(c->tls);
    c->magic = 0;
    free(c);
    if (ctx->draining && ctx->nclients == 0 && ctx->on_drained != NULL)
        ctx->on_drained(ctx);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct op_client *c = h->data;
    if (--c->pending_closes > 0)
        return;
    if (c->refs == 0)
        client_free(c); /* else the last store acknowledgement frees it */
}

void op_proxy__client_unref(struct op_client *c)
{
    OP_ASSERT(c->refs > 0);
    if (--c->refs == 0 && c->closing && c->pending_closes == 0)
        client_free(c);
}

/* The handshake is over: it succeeded, or <failed> counts why not. */
static void tls_handshake_ended(struct op_client *c, enum op_metric failed)
{
    struct op_proxy_ctx *ctx = c->ctx;
    c->handshaking = false;
    ctx->nhandshakes--;
    if (failed != OP_M__COUNT) {
        ctx->metrics.v[failed]++;
        return;
    }
    const char *v = op_tls_conn_version(c->tls);
    ctx->metrics.v[strcmp(v, "TLSv1.3") == 0 ? OP_M_tls_handshakes_tls13_total
                                             : OP_M_tls_handshakes_tls12_total]++;
    if (op_tls_conn_resumed(c->tls))
        op_metric_inc(&ctx->metrics, tls_resumed_total);
}

/* Hand c->tls_wire to the socket as far as it takes it now, with no write
 * request and no callback. libuv refuses (EAGAIN) while an earlier write is
 * queued, so nothing is reordered. 0, or the socket's error. */
static int tls_write_now(struct op_client *c)
{
    if (c->tls_wire.len == 0)
        return 0;
    uv_buf_t b = uv_buf_init(c->tls_wire.data, (unsigned)c->tls_wire.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n > 0) {
        op_metric_add(&c->ctx->metrics, bytes_out_total, (uint64_t)n);
        op_buf_consume(&c->tls_wire, (size_t)n);
    }
    return n < 0 && n != UV_EAGAIN ? n : 0;
}

/* The last records before a close (an alert, close_notify): what the
 * socket does not take at once is dropped. */
static void tls_send_last(struct op_client *c)
{
    tls_write_now(c);
    op_buf_reset(&c->tls_wire);
}

/* RFC 8446 §6.1: a close_notify before closing, so the client can tell the
 * end from a truncation. Best effort: nothing waits for it. */
static void tls_say_goodbye(struct op_client *c)
{
    if (!op_tls_conn_established(c->tls) || c->out.len > 0)
        return;
    op_tls_conn_shutdown(c->tls, &c->tls_wire);
    tls_send_last(c);
}

void op_proxy__close(struct op_client *c)
{
    if (c->closing)
        return; /* several paths end here */
    struct op_proxy_ctx *ctx = c->ctx;
    if (c->handshaking)
        tls_handshake_ended(c, OP_M_tls_handshakes_closed_total);
    else if (c->tls != NULL && !c->write_active)
        tls_say_goodbye(c);
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        ctx->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctx->nclients--;
    op_proxy__log_request(c, "closed"); /* a request in progress ends here */
    op_proxy__flight_leave(&c->r);
    if (c->r.fetch != NULL) {
        op_fetch_abort(c->r.fetch);
        c->r.fetch = NULL;
    }
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
    struct op_client *c = t->data;
    OP_CHECK_OBJ(c, OP_CLIENT_MAGIC);
    if (op_proxy__flight_waiting(c)) {
        op_proxy__flight_timeout(c);
        return;
    }
    if (c->handshaking) {
        op_log_debug("proxy", "client %s: TLS handshake timed out", c->peer);
        tls_handshake_ended(c, OP_M_tls_handshakes_timeout_total);
        op_proxy__close(c);
        return;
    }
    op_log_debug("proxy", "client %llu: timeout in %s", (unsigned long long)c->id, rq_name[c->rq]);
    if (c->rq == OP_RQ_HEAD && c->in.len > 0 && c->rs == OP_RS_NONE && !c->write_active) {
        op_proxy__error(c, 408, "the request head did not arrive in time", true);
        return;
    }
    op_proxy__close(c);
}

void op_proxy__set_rq(struct op_client *c, enum op_req_state next)
{
    uint64_t now = uv_now(c->ctx->loop);
    op_log_debug("proxy", "client %llu: %s -> %s", (unsigned long long)c->id, rq_name[c->rq],
                 rq_name[next]);
    c->rq = next;
    switch (next) {
    case OP_RQ_HEAD:
        /* pipelined bytes already waiting are its first */
        c->head_by_ms = c->in.len > 0 ? now + c->ctx->conf->header_timeout_ms : 0;
        break;
    case OP_RQ_BODY:
        c->body_since_ms = c->body_last_ms = now;
        c->body_paused_ms = 0;
        break;
    case OP_RQ_DONE: break;
    }
}

/* When the request body is late: body_timeout after the last bytes came,
 * or (with a rate floor) body_timeout plus a second per body_min_rate bytes
 * of data after it began, whichever is first. Chunk extensions and trailers
 * move the first on, never the second. While reading waits for the origin
 * only the first runs, from the pause. */
static uint64_t body_deadline(const struct op_client *c, const struct op_conf *conf)
{
    if (c->body_paused_ms != 0)
        return c->body_paused_ms + conf->body_timeout_ms;
    uint64_t by = c->body_last_ms + conf->body_timeout_ms;
    if (conf->body_min_rate > 0) {
        uint64_t floor_by = c->body_since_ms + conf->body_timeout_ms +
                            c->r.req_body_bytes * 1000 / conf->body_min_rate;
        if (floor_by < by)
            by = floor_by;
    }
    return by;
}

/* Each situation has exactly one deadline. */
static void client_arm_timer(struct op_client *c)
{
    const struct op_conf *conf = c->ctx->conf;
    uint64_t ms = 0, now = uv_now(c->ctx->loop);
    if (c->closing)
        return;
    if (c->handshaking) {
        ms = c->handshake_by_ms > now ? c->handshake_by_ms - now : 1;
    } else if (op_proxy__flight_waiting(c)) {
        uint64_t mono = op_time_mono_ms();
        ms = c->r.flight_deadline_ms > mono ? c->r.flight_deadline_ms - mono : 1;
    } else if (c->write_active) {
        /* from when the write began: bytes the client sends meanwhile do
         * not move it, only bytes it takes do */
        ms = c->send_by_ms > now ? c->send_by_ms - now : 1;
    } else if (c->rq == OP_RQ_HEAD && c->rs == OP_RS_NONE) {
        if (c->head_by_ms == 0)
            ms = conf->idle_timeout_ms;
        else /* one deadline for the whole head: more bytes do not move it */
            ms = c->head_by_ms > now ? c->head_by_ms - now : 1;
    } else if (c->rq == OP_RQ_BODY) {
        uint64_t by = body_deadline(c, conf);
        ms = by > now ? by - now : 1;
    }
    uv_timer_stop(&c->timer);
    if (ms > 0)
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

void op_proxy__arm_timer(struct op_client *c)
{
    client_arm_timer(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct op_client *c = h->data;
    char *space;
    (void)hint;
    if (c->tls != NULL) {
        /* ciphertext: the filter copies it before the read callback returns,
         * so one buffer serves every connection of the worker */
        buf->base = c->ctx->tls_read;
        buf->len = sizeof(c->ctx->tls_read);
        return;
    }
    size_t want = c->in.max - c->in.len < 16384 ? c->in.max - c->in.len : 16384;
    if (want == 0 || op_buf_reserve(&c->in, want, &space) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = space;
    buf->len = c->in.cap - c->in.len;
}

static void read_stop(struct op_client *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_start(struct op_client *c)
{
    if (!c->reading && !c->closing && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void flush(struct op_client *c);

/* TLS input makes records of its own (a KeyUpdate is answered with one):
 * past this many bytes queued for a client that does not take them, it is
 * not read until it does. */
static bool tls_wire_full(const struct op_client *c)
{
    return c->tls != NULL && c->write_active && c->tls_wire.len + c->writing.len > OUT_HIGH;
}

/* Feed ciphertext (<len> 0: take out what the filter still holds) into
 * c->in. Returns whether the connection lives on; plaintext that arrived is
 * in c->in for the step. */
static bool tls_input(struct op_client *c, const char *p, size_t len)
{
    size_t before = c->in.len;
    bool was_established = op_tls_conn_established(c->tls);
    int rc = op_tls_conn_input(c->tls, p, len, &c->in, &c->tls_wire);
    if (c->handshaking && op_tls_conn_established(c->tls)) {
        tls_handshake_ended(c, OP_M__COUNT);
        client_arm_timer(c); /* now the idle deadline */
    }
    if (rc == OP_ECLOSED) {
        /* close_notify: what came before it is answered, then we close */
        c->close_after = true;
        c->peer_closed = true;
        read_stop(c);
    } else if (rc != 0) {
        if (c->handshaking)
            tls_handshake_ended(c, op_tls_conn_failed_sni(c->tls)
                                       ? OP_M_tls_handshakes_sni_total
                                       : OP_M_tls_handshakes_protocol_total);
        else
            op_metric_inc(&c->ctx->metrics, tls_errors_total);
        op_log_debug("proxy", "client %s: TLS: %s", c->peer, op_err_msg(rc));
        tls_send_last(c); /* the alert, if the socket takes it */
        op_proxy__close(c);
        return false;
    }
    /* records it wrote (the handshake's, a ticket) go out with what the step
     * answers: op_proxy__step flushes them at its end */
    /* the head's one deadline starts with its first byte of ciphertext: a
     * record sent a byte at a time yields no plaintext until it is whole */
    if (c->rq == OP_RQ_HEAD && c->head_by_ms == 0 &&
        ((was_established && len > 0) || c->in.len > before))
        c->head_by_ms = uv_now(c->ctx->loop) + c->ctx->conf->header_timeout_ms;
    if (c->in.len > before && c->rq == OP_RQ_BODY)
        c->body_last_ms = uv_now(c->ctx->loop);
    if (op_tls_conn_has_pending(c->tls))
        read_stop(c); /* c->in is full: the step takes it out, then asks for the rest */
    if (tls_wire_full(c))
        read_stop(c); /* records to send pile up (KeyUpdates): read on once they are taken */
    return !c->closing;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct op_client *c = s->data;
    (void)buf;
    OP_CHECK_OBJ(c, OP_CLIENT_MAGIC);
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) {
        read_stop(c); /* input buffer full: the step decides (431, or wait) */
        op_proxy__step(c);
        return;
    }
    if (nread < 0) {
        op_proxy__close(c);
        return;
    }
    if (c->tls != NULL) {
        if (tls_input(c, buf->base, (size_t)nread))
            op_proxy__step(c); /* may close c */
        return;
    }
    op_buf_commit(&c->in, (size_t)nread);
    if (c->rq == OP_RQ_HEAD && c->head_by_ms == 0)
        c->head_by_ms = uv_now(c->ctx->loop) + c->ctx->conf->header_timeout_ms;
    else if (c->rq == OP_RQ_BODY)
        c->body_last_ms = uv_now(c->ctx->loop); /* a gap ends; the rate floor runs on */
    op_proxy__step(c);                          /* may close c */
}

static int on_req_body(void *arg, const char *p, size_t len)
{
    return op_proxy__request_body(arg, p, len);
}

static void reset_for_next(struct op_client *c)
{
    op_proxy__request_fini(&c->r);
    op_proxy__request_init(&c->r);
    op_proxy__set_rq(c, OP_RQ_HEAD);
    c->rs = OP_RS_NONE;
    c->head_gated = false;
}

/* Reading the body waited for the origin to take what it had: that time is
 * not the client's, so its rate floor starts that much later. */
static void body_unpause(struct op_client *c)
{
    if (c->body_paused_ms == 0)
        return;
    uint64_t now = uv_now(c->ctx->loop);
    c->body_since_ms += now - c->body_paused_ms;
    c->body_last_ms = now;
    c->body_paused_ms = 0;
}

/* One turn of the connection's driver; true when it took plaintext the TLS
 * filter held back and should run again. */
static bool step_once(struct op_client *c)
{
    const struct op_conf *conf = c->ctx->conf;
    while (!c->closing) {
        if (c->rq == OP_RQ_DONE) {
            if (c->rs != OP_RS_DONE || c->write_active || c->out.len > 0)
                break;
            if (!c->keep_alive || c->close_after || c->ctx->draining) {
                op_proxy__close(c);
                return false;
            }
            reset_for_next(c);
            continue;
        }
        if (c->rq == OP_RQ_HEAD) {
            if (c->rs != OP_RS_NONE || c->in.len == 0)
                break;
            if (!c->head_gated) {
                struct op_http_limits lim = {conf->max_request_line, conf->max_header_size,
                                             (uint32_t)conf->max_headers};
                struct op_gate g;
                enum op_gate_rc rc = op_http_gate_request(c->in.data, c->in.len, &lim, &g);
                if (rc == OP_GATE_MORE)
                    break;
                if (rc == OP_GATE_REJECT) {
                    op_log_info("proxy", "client %s: rejected request head: %s", c->peer, g.why);
                    op_metric_inc(&c->ctx->metrics, client_errors_total);
                    read_stop(c);
                    op_proxy__error(c, g.status, g.why, true);
                    return false;
                }
                op_buf_consume(&c->in, g.skip);
                c->head_gated = true;
            }
        }
        size_t used = 0;
        int rc = op_http_parser_execute(&c->parser, c->in.data ? c->in.data : "", c->in.len, &used);
        op_buf_consume(&c->in, used);
        if (c->closing)
            return false;
        if (rc == OP_EPARSE) {
            op_log_info("proxy", "client %s: bad request: %s", c->peer,
                        c->parser.err_reason ? c->parser.err_reason : "?");
            op_metric_inc(&c->ctx->metrics, client_errors_total);
            read_stop(c);
            if (c->rs == OP_RS_DONE && c->close_after)
                return false; /* a response that ends the connection is already queued */
            if (c->rs == OP_RS_NONE || c->rs == OP_RS_WAIT) {
                if (c->r.fetch != NULL) { /* the origin never sees the rest */
                    op_fetch_abort(c->r.fetch);
                    c->r.fetch = NULL;
                }
                op_proxy__error(c, c->parser.err_status ? c->parser.err_status : 400,
                                "malformed request", true);
            } else {
                op_proxy__close(c); /* mid-response: never resync */
            }
            return false;
        }
        if (rc == OP_EAGAIN) {
            op_http_parser_resume(&c->parser);
            if (c->parser.event == OP_HTTP_EV_HEAD) {
                op_proxy__set_rq(c, OP_RQ_BODY);
                c->keep_alive = c->req.keep_alive;
                op_proxy__request_start(c); /* may close c */
                if (c->closing)
                    return false;
                continue;
            }
            if (c->parser.event == OP_HTTP_EV_DONE) {
                op_proxy__set_rq(c, OP_RQ_DONE);
                op_proxy__request_body_done(c);
                if (c->closing)
                    return false;
                continue;
            }
        }
        if (c->rq == OP_RQ_BODY && c->r.fetch != NULL && op_fetch_pending(c->r.fetch) > OUT_HIGH) {
            read_stop(c); /* the origin is slower than the client: wait for on_drain */
            if (c->body_paused_ms == 0)
                c->body_paused_ms = uv_now(c->ctx->loop);
            client_arm_timer(c);
            return false;
        }
        break; /* need more bytes */
    }
    if (c->closing)
        return false;
    if (c->rq == OP_RQ_HEAD && c->in.len >= c->in.max) {
        op_proxy__error(c, 431, "request head too large", true);
        return false;
    }
    /* keep reading while there is room; pipelined requests wait in c->in */
    if (c->in.len < c->in.max) {
        body_unpause(c);
        if (c->tls != NULL && op_tls_conn_has_pending(c->tls)) {
            /* what the filter held back while c->in was full */
            size_t before = c->in.len;
            return tls_input(c, NULL, 0) && c->in.len > before;
        }
        if (c->peer_closed && c->rq != OP_RQ_DONE) {
            op_proxy__close(c); /* the rest of the request will never come */
            return false;
        }
        if (!c->peer_closed && !tls_wire_full(c))
            read_start(c);
    }
    client_arm_timer(c);
    return false;
}

/* The connection's driver: all protocol decisions for the client side. */
void op_proxy__step(struct op_client *c)
{
    /* each turn makes room in c->in for what the filter holds: a few do */
    for (int turn = 0; turn < 64 && step_once(c); turn++)
        ;
    /* TLS records of the filter's own, in one write with any answer */
    if (!c->closing && c->tls != NULL && c->tls_wire.len > 0)
        flush(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct op_client *c = req->data;
    c->write_active = false;
    op_metric_add(&c->ctx->metrics, bytes_out_total, c->writing.len);
    op_buf_reset(&c->writing);
    if (c->closing)
        return; /* libuv runs write callbacks before the close callback */
    if (status < 0) {
        op_proxy__close(c);
        return;
    }
    if (c->out.len > 0 || c->tls_wire.len > 0) {
        flush(c);
        if (c->closing || c->write_active)
            return; /* the next write's callback goes on */
        /* TLS: the socket took it all at once, so no callback comes */
    }
    op_proxy__on_client_drain(c);
    if (c->closing)
        return;
    op_proxy__step(c);
}

/* Seal <p, len> into c->tls_wire, after what c->out still holds. */
static int tls_seal(struct op_client *c, const char *p, size_t len)
{
    int rc = 0;
    if (c->out.len > 0) {
        rc = op_tls_conn_output(c->tls, c->out.data, c->out.len, &c->tls_wire);
        op_buf_reset(&c->out);
    }
    if (rc == 0 && len > 0)
        rc = op_tls_conn_output(c->tls, p, len, &c->tls_wire);
    return rc;
}

static void flush(struct op_client *c)
{
    if (c->write_active || c->closing)
        return;
    struct op_buf *from = &c->out;
    if (c->tls != NULL) {
        if (c->out.len > 0 && op_tls_conn_established(c->tls) && tls_seal(c, NULL, 0) != 0) {
            op_proxy__close(c);
            return;
        }
        if (tls_write_now(c) != 0) {
            op_proxy__close(c);
            return;
        }
        from = &c->tls_wire; /* the rest goes by uv_write */
    }
    if (from->len == 0)
        return;
    struct op_buf tmp = c->writing;
    c->writing = *from;
    *from = tmp;
    op_buf_reset(from);
    uv_buf_t b = uv_buf_init(c->writing.data, (unsigned)c->writing.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        op_proxy__close(c);
        return;
    }
    c->write_active = true;
    c->send_by_ms = uv_now(c->ctx->loop) + c->ctx->conf->send_timeout_ms;
    client_arm_timer(c);
}

void op_proxy__out(struct op_client *c, const char *p, size_t len)
{
    if (c->closing || len == 0)
        return;
    if (op_buf_append(&c->out, p, len) != 0) {
        op_proxy__close(c);
        return;
    }
    flush(c);
}

void op_proxy__out_direct(struct op_client *c, const char *head, size_t hlen, const char *body,
                          size_t blen)
{
    if (c->closing)
        return;
    if (c->tls != NULL) {
        /* the head and the start of the body share a record (one seal, not
         * two, for a small response); the rest is sealed straight from the
         * caller's bytes */
        size_t first = hlen >= TLS_RECORD ? 0 : blen < TLS_RECORD - hlen ? blen : TLS_RECORD - hlen;
        if (op_buf_append(&c->out, head, hlen) != 0 ||
            (first > 0 && op_buf_append(&c->out, body, first) != 0) ||
            tls_seal(c, blen > first ? body + first : NULL, blen - first) != 0) {
            op_proxy__close(c);
            return;
        }
        flush(c);
        return;
    }
    size_t done = 0;
    if (!c->write_active && c->out.len == 0) {
        uv_buf_t b[2] = {uv_buf_init((char *)head, (unsigned)hlen),
                         uv_buf_init((char *)body, (unsigned)blen)};
        int n = uv_try_write((uv_stream_t *)&c->tcp, b, blen > 0 ? 2 : 1);
        if (n > 0) {
            done = (size_t)n;
            op_metric_add(&c->ctx->metrics, bytes_out_total, done);
        }
    }
    if (done < hlen) {
        op_proxy__out(c, head + done, hlen - done);
        op_proxy__out(c, body, blen);
    } else {
        op_proxy__out(c, body + (done - hlen), blen - (done - hlen));
    }
}

int op_proxy__out_reserve(struct op_client *c, size_t n, char **space)
{
    return op_buf_reserve(&c->out, n, space);
}

void op_proxy__out_commit(struct op_client *c, size_t n)
{
    op_buf_commit(&c->out, n);
    flush(c);
}

size_t op_proxy__out_pending(const struct op_client *c)
{
    return c->out.len + c->writing.len + c->tls_wire.len;
}

void op_proxy__response_done(struct op_client *c)
{
    c->rs = OP_RS_DONE;
    op_proxy__log_request(c, "done");
    if (c->r.fetch != NULL) {
        op_fetch_abort(c->r.fetch);
        c->r.fetch = NULL;
    }
}

static void on_connection_refused_close(uv_handle_t *h)
{
    free(h);
}

void op_proxy_accept(struct op_proxy_ctx *ctx, uv_stream_t *listener, bool tls)
{
    const struct op_conf *conf = ctx->conf;
    bool full = ctx->nclients >= conf->max_connections || ctx->draining;
    bool refuse_tls =
        !full && tls && (ctx->nhandshakes >= conf->tls_max_handshakes || ctx->gen->tls == NULL);
    struct op_tls_conn *tc = NULL;
    if (tls && !full && !refuse_tls && (tc = op_tls_conn_new(ctx->gen->tls)) == NULL)
        refuse_tls = true; /* out of memory */
    if (full || refuse_tls) {
        /* accept and close, so the kernel backlog does not fill with them */
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t == NULL)
            return;
        uv_tcp_init(ctx->loop, t);
        if (uv_accept(listener, (uv_stream_t *)t) == 0)
            ctx->metrics.v[refuse_tls ? OP_M_tls_handshakes_refused_total
                                      : OP_M_connections_refused_total]++;
        uv_close((uv_handle_t *)t, on_connection_refused_close);
        return;
    }
    struct op_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        op_tls_conn_free(tc);
        return;
    }
    c->magic = OP_CLIENT_MAGIC;
    c->ctx = ctx;
    uv_tcp_init(ctx->loop, &c->tcp);
    uv_timer_init(ctx->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    op_buf_init(&c->in, conf->max_header_size + IN_EXTRA);
    op_buf_init(&c->out, SIZE_MAX);
    op_buf_init(&c->writing, SIZE_MAX);
    op_buf_init(&c->tls_wire, SIZE_MAX);
    c->tls = tc;
    op_http_msg_init(&c->req, (uint32_t)conf->max_headers, conf->max_header_size);
    op_http_parser_init(&c->parser, false, &c->req, on_req_body, c);
    op_proxy__request_init(&c->r);
    c->next = ctx->clients;
    if (ctx->clients)
        ctx->clients->prev = c;
    ctx->clients = c;
    ctx->nclients++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        op_proxy__close(c);
        return;
    }
    op_metric_inc(&ctx->metrics, connections_total);
    if (c->tls != NULL) {
        c->handshaking = true;
        ctx->nhandshakes++;
        c->handshake_by_ms = uv_now(ctx->loop) + conf->tls_handshake_timeout_ms;
    }
    c->id = ++ctx->next_request_id;
    struct sockaddr_storage peer;
    int plen = sizeof(peer);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0)
        op_net_peer_name(&peer, c->peer, sizeof(c->peer));
    else
        snprintf(c->peer, sizeof(c->peer), "unknown");
    uv_tcp_nodelay(&c->tcp, 1);
    read_start(c);
    client_arm_timer(c);
}

void op_proxy_drain(struct op_proxy_ctx *ctx)
{
    ctx->draining = true;
    struct op_client *c = ctx->clients;
    while (c != NULL) {
        struct op_client *next = c->next;
        if (c->rq == OP_RQ_HEAD && c->rs == OP_RS_NONE && c->in.len == 0)
            op_proxy__close(c); /* idle keep-alive */
        c = next;
    }
    if (ctx->nclients == 0 && ctx->on_drained != NULL)
        ctx->on_drained(ctx);
}

void op_proxy_close_all(struct op_proxy_ctx *ctx)
{
    while (ctx->clients != NULL)
        op_proxy__close(ctx->clients);
}
