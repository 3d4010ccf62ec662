/* The origin client. A fetch (one request, owned by its caller) runs on a
 * connection (pooled, owned by the origin while idle). Keeping them apart lets
 * a request that met a dead pooled connection move to a fresh one. */
#include "fetch_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define OCONN_MAGIC 0x4f434f4eu
#define READ_MAX (64 * 1024) /* response head limit and read chunk */

#define OCONN_STATES(X)                                                                            \
    X(CONNECTING, "connecting")                                                                    \
    X(HANDSHAKE, "tls-handshake") /* https: within connect_timeout */                              \
    X(SEND, "send-req")                                                                            \
    X(READ_HEAD, "read-head")                                                                      \
    X(READ_BODY, "read-body")                                                                      \
    X(IDLE, "idle-pooled")                                                                         \
    X(CLOSING, "closing")

enum oconn_state {
#define X(name, str) OC_##name,
    OCONN_STATES(X)
#undef X
};

static const char *const oconn_state_name[] = {
#define X(name, str) str,
    OCONN_STATES(X)
#undef X
};

struct op_oconn {
    unsigned magic;
    struct op_oconn *next_idle; /* borrowed: pool list link */
    struct op_origin *origin;   /* borrowed */
    struct op_fetch *fetch;     /* borrowed: the request on it, NULL while idle */
    enum oconn_state state;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    struct op_http_parser parser;
    struct op_http_msg resp;
    struct op_buf in;
    struct op_buf writing; /* bytes handed to uv_write, pinned until its callback */
    bool write_active;
    /* https: the filter between the socket and <in> / the fetch's bytes */
    struct op_tls_conn *tls; /* owned */
    struct op_buf tls_wire;  /* records not yet handed to uv_write */
    bool reused;
    uint64_t idle_ms; /* how long it may stay pooled after this response */
    uint32_t gen;     /* the origin's address generation it was opened to */
    int busy;         /* inside a parse loop: closing is deferred */
    bool close_pending;
    int pending_closes;
};

static void conn_close(struct op_oconn *c);
static void conn_flush(struct op_oconn *c);
static void fetch_fail(struct op_fetch *f, int err, bool unsent);
static void attach(struct op_fetch *f, struct op_oconn *c);

static struct op_oconn *conn_new(struct op_origin *o);

static void conn_set_state(struct op_oconn *c, enum oconn_state next, uint64_t timeout_ms);

static void on_timer(uv_timer_t *t)
{
    struct op_oconn *c = t->data;
    OP_CHECK_OBJ(c, OCONN_MAGIC);
    if (c->state == OC_IDLE) {
        conn_close(c); /* idle too long */
        return;
    }
    op_log_debug("fetch", "origin %s: timeout in %s", c->origin->name, oconn_state_name[c->state]);
    struct op_fetch *f = c->fetch;
    bool handshake = c->state == OC_HANDSHAKE;
    bool unsent = c->state == OC_CONNECTING || handshake;
    if (handshake)
        op_log_warn("fetch", "origin %s: TLS handshake timed out", c->origin->name);
    conn_close(c);
    if (f != NULL)
        fetch_fail(f, handshake ? OP_ETLSTIMEOUT : OP_ETIMEOUT, unsent);
}

/* One state, one deadline: every transition re-arms the connection's timer. */
static void conn_set_state(struct op_oconn *c, enum oconn_state next, uint64_t timeout_ms)
{
    op_log_debug("fetch", "origin %s: %s -> %s", c->origin->name, oconn_state_name[c->state],
                 oconn_state_name[next]);
    c->state = next;
    uv_timer_stop(&c->timer);
    if (timeout_ms > 0)
        uv_timer_start(&c->timer, on_timer, timeout_ms, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct op_oconn *c = h->data;
    if (--c->pending_closes > 0)
        return;
    op_http_msg_fini(&c->resp);
    op_buf_fini(&c->in);
    op_buf_fini(&c->writing);
    op_buf_fini(&c->tls_wire);
    op_tls_conn_free(c->tls);
    c->magic = 0;
    free(c);
}

static void pool_remove(struct op_origin *o, struct op_oconn *c)
{
    for (struct op_oconn **pp = &o->idle; *pp != NULL;) {
        if (*pp == c) {
            *pp = c->next_idle;
            o->nidle--;
            return;
        }
        pp = &(*pp)->next_idle;
    }
}

static void close_handles(struct op_oconn *c)
{
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void conn_close(struct op_oconn *c)
{
    if (c->state == OC_CLOSING)
        return;
    if (c->state == OC_IDLE)
        pool_remove(c->origin, c);
    if (c->fetch != NULL)
        c->fetch->conn = NULL;
    conn_set_state(c, OC_CLOSING, 0);
    if (c->busy) {
        c->close_pending = true; /* the parse loop on the stack finishes first */
        return;
    }
    close_handles(c);
}

/* How long a connection may stay pooled after a response with <fields>: the
 * origin's own limit, or less when its Keep-Alive timeout says it closes
 * sooner. Then a second less than that, since its clock started when it sent
 * the response and a request reusing the connection at the last moment
 * crosses its close on the wire; one that is not idempotent cannot be sent
 * again (RFC 9110 §9.2.2). 0: not pooled. */
static uint64_t pool_idle_ms(const struct op_origin *o, const struct op_headers *fields)
{
    int64_t hint = op_http_keep_alive_timeout_ms(fields);
    if (hint < 0)
        return o->idle_timeout_ms;
    uint64_t ms = hint > 2000 ? (uint64_t)hint - 1000 : (uint64_t)hint / 2;
    return ms < o->idle_timeout_ms ? ms : o->idle_timeout_ms;
}

static void conn_release(struct op_oconn *c, bool reusable)
{
    struct op_origin *o = c->origin;
    c->fetch = NULL;
    if (!reusable || o->closing || o->nidle >= o->idle_max || c->write_active || c->idle_ms == 0) {
        conn_close(c);
        return;
    }
    conn_set_state(c, OC_IDLE, c->idle_ms);
    /* an idle connection keeps no buffers: a pool of hundreds costs little */
    op_buf_fini(&c->in);
    op_buf_init(&c->in, READ_MAX);
    op_buf_fini(&c->writing);
    op_buf_init(&c->writing, SIZE_MAX);
    op_buf_fini(&c->tls_wire);
    op_buf_init(&c->tls_wire, SIZE_MAX);
    op_http_msg_fini(&c->resp);
    op_http_msg_init(&c->resp, 256, READ_MAX);
    c->reused = true;
    c->next_idle = o->idle;
    o->idle = c;
    o->nidle++;
}

/* The connection to f's origin could not be made, so nothing was sent: an
 * idempotent request goes once to another origin that can take it. */
static bool try_other_origin(struct op_fetch *f)
{
    if (!f->retryable || f->moved || f->got_byte)
        return false;
    struct op_origin *next = op_upstream__pick(f->origin->group, f->origin);
    if (next == NULL)
        return false;
    op_log_info("fetch", "origin %s unreachable; trying %s", f->origin->name, next->name);
    f->moved = true;
    f->origin = next;
    op_buf_reset(&f->out);
    if (op_buf_append(&f->out, f->head.data, f->head.len) != 0)
        return false;
    if (!op_fetch__admit(f))
        return true; /* waits in that origin's queue */
    attach(f, NULL);
    if (f->conn == NULL) {
        fetch_fail(f, OP_ECONNECT, true); /* moved: it ends there */
        return true;
    }
    return true;
}

/* <unsent>: the connection was never made, so no request byte left. */
static void fetch_fail(struct op_fetch *f, int err, bool unsent)
{
    if (err == OP_ECONNECT || op_err_tls(err) || (err == OP_ETIMEOUT && !f->got_head))
        op_fetch__health(f, false); /* a failed handshake is a failed connect */
    else if (f->probe)
        op_fetch__health(f, false); /* the probe did not get an answer */
    op_fetch__release(f, err == OP_ETIMEOUT || err == OP_ETLSTIMEOUT ? OP_FETCH_OVERLOADED
                                                                     : OP_FETCH_NEUTRAL);
    if (f->conn != NULL) {
        f->conn->fetch = NULL;
        conn_close(f->conn);
        f->conn = NULL;
    }
    op_metric_inc(f->origin->metrics, origin_errors_total);
    if (unsent && try_other_origin(f))
        return;
    f->cbs->on_error(f->owner, err, f->got_head);
}

/* https: ciphertext of one read, fed to the filter before the callback
 * returns, so one buffer per worker thread serves every connection */
static _Thread_local char tls_read[16 * 1024 + 512];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct op_oconn *c = h->data;
    char *space;
    (void)hint;
    if (c->tls != NULL) {
        buf->base = tls_read;
        buf->len = sizeof(tls_read);
        return;
    }
    if (op_buf_reserve(&c->in, READ_MAX / 4, &space) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = space;
    buf->len = c->in.cap - c->in.len;
}

/* A pooled connection that the origin closed: try the request once more on a
 * fresh connection when nothing of the response came and it is safe to. */
static bool try_retry(struct op_oconn *c)
{
    struct op_fetch *f = c->fetch;
    if (f == NULL || !c->reused || !f->retryable || f->retried || f->got_byte)
        return false;
    f->retried = true;
    c->fetch = NULL;
    f->conn = NULL;
    conn_close(c);
    op_buf_reset(&f->out);
    if (op_buf_append(&f->out, f->head.data, f->head.len) != 0)
        return false;
    struct op_oconn *fresh = conn_new(f->origin);
    if (fresh == NULL)
        return false;
    attach(f, fresh);
    return true;
}

static void parse_input(struct op_oconn *c)
{
    c->busy++;
    /* runs once more after the head even with no bytes left: a bodiless
     * response completes only on the next execute */
    while (c->fetch != NULL && c->state != OC_CLOSING) {
        struct op_fetch *f = c->fetch;
        if (f->paused)
            break;
        size_t used = 0;
        int rc = op_http_parser_execute(&c->parser, c->in.data ? c->in.data : "", c->in.len, &used);
        op_buf_consume(&c->in, used);
        if (c->fetch != f)
            break; /* the owner aborted the fetch from a callback: f is gone */
        if (rc == OP_EPARSE) {
            op_log_warn("fetch", "origin %s: bad response: %s", c->origin->name,
                        c->parser.err_reason ? c->parser.err_reason : "?");
            conn_close(c);
            fetch_fail(f, OP_EORIGIN, false);
            break;
        }
        if (rc == 0)
            break; /* everything consumed, no event: wait for more bytes */
        if (rc == OP_EAGAIN) {
            op_http_parser_resume(&c->parser);
            if (c->parser.event == OP_HTTP_EV_INTERIM) {
                if (c->resp.status != 100 && f->cbs->on_interim != NULL)
                    f->cbs->on_interim(f->owner, &c->resp);
            } else if (c->parser.event == OP_HTTP_EV_HEAD) {
                f->got_head = true;
                /* now: the owner strips Keep-Alive with the hop-by-hop fields */
                c->idle_ms = pool_idle_ms(c->origin, &c->resp.headers);
                conn_set_state(c, OC_READ_BODY, c->origin->between_bytes_timeout_ms);
                op_fetch__health(f, true);
                op_fetch__answered(f);
                enum op_shed shed = op_http_sheds_load(c->resp.status, &c->resp.headers);
                op_fetch__shed(f, shed);
                if (shed == OP_SHED_NO)
                    op_fetch__signal(f, OP_FETCH_OK); /* a round-trip sample */
                f->cbs->on_head(f->owner, &c->resp);
            } else if (c->parser.event == OP_HTTP_EV_DONE) {
                if (!f->got_head) { /* a message that never had a final head */
                    conn_close(c);
                    fetch_fail(f, OP_EORIGIN, false);
                    break;
                }
                /* reuse needs the exchange whole on both sides: nothing
                 * after the response, and all of the request written */
                bool reusable = c->resp.keep_alive && c->in.len == 0 && f->out.len == 0 &&
                                !f->body_open &&
                                !(c->tls != NULL && op_tls_conn_has_pending(c->tls));
                f->conn = NULL;
                conn_release(c, reusable);
                op_fetch__release(f, OP_FETCH_OK);
                f->cbs->on_done(f->owner);
                break;
            }
        }
    }
    c->busy--;
    if (c->busy == 0 && c->close_pending) {
        c->close_pending = false;
        close_handles(c);
    }
}

/* The origin closed the connection: <clean> with close_notify over TLS
 * (always, on plain TCP). A body delimited by the close is whole only after
 * a clean one (RFC 9112 §9.8: a TLS connection closed without close_notify
 * may have been cut by anyone on the path). */
static void conn_eof(struct op_oconn *c, bool clean)
{
    struct op_fetch *f = c->fetch;
    if (f != NULL && try_retry(c))
        return;
    if (f != NULL && f->got_head && clean && op_http_parser_finish(&c->parser) == 0 &&
        c->parser.event == OP_HTTP_EV_DONE) {
        f->conn = NULL;
        c->fetch = NULL;
        conn_close(c);
        op_fetch__release(f, OP_FETCH_OK);
        f->cbs->on_done(f->owner); /* close-delimited body */
        return;
    }
    conn_close(c);
    if (f != NULL)
        fetch_fail(f, OP_ECLOSED, false);
}

/* Response bytes are in c->in. */
static void conn_got(struct op_oconn *c)
{
    struct op_fetch *f = c->fetch;
    if (f == NULL)
        return;
    f->got_byte = true;
    /* the head (1xx included) has one deadline, set when the request went
     * out: bytes trickling in do not extend it */
    if (c->state == OC_READ_BODY)
        conn_set_state(c, OC_READ_BODY, c->origin->between_bytes_timeout_ms);
    parse_input(c);
}

/* https: ciphertext through the filter into c->in (<len> 0: what it still
 * holds); runs the handshake, then the parser. */
static void tls_input(struct op_oconn *c, const char *p, size_t len)
{
    bool handshake = c->state == OC_HANDSHAKE;
    size_t before = c->in.len;
    int rc = op_tls_conn_input(c->tls, p, len, &c->in, &c->tls_wire);
    struct op_fetch *f = c->fetch;
    if (rc != 0 && (rc != OP_ECLOSED || handshake)) { /* a close in the handshake fails it */
        char why[160];
        int fail = handshake ? op_tls_conn_failure(c->tls, why, sizeof(why)) : 0;
        if (handshake)
            op_log_warn("fetch", "origin %s: TLS handshake failed: %s (%s)", c->origin->name,
                        op_err_msg(fail != 0 ? fail : OP_ETLS), why);
        conn_close(c);
        if (f != NULL)
            fetch_fail(f, handshake ? (fail != 0 ? fail : OP_ETLS) : OP_EORIGIN, handshake);
        return;
    }
    if (handshake && op_tls_conn_established(c->tls))
        conn_set_state(c, OC_SEND, c->origin->first_byte_timeout_ms);
    if (c->tls_wire.len > 0 || c->state == OC_SEND)
        conn_flush(c); /* handshake records, or the request once established */
    if (c->state == OC_CLOSING)
        return;
    if (c->in.len > before && c->state != OC_IDLE)
        conn_got(c);
    else if (c->state == OC_IDLE && c->in.len > 0) {
        conn_close(c); /* bytes nobody asked for */
        return;
    }
    if (c->state == OC_CLOSING)
        return;
    if (rc == OP_ECLOSED) {
        if (c->state == OC_IDLE)
            conn_close(c);
        else
            conn_eof(c, true);
    }
}

/* Plaintext the filter held back while c->in was full: out once the parser
 * made room, while the fetch reads. A head that fills c->in is too long. */
static void tls_drain(struct op_oconn *c)
{
    for (int i = 0; i < 1024 && c->tls != NULL && op_tls_conn_has_pending(c->tls); i++) {
        struct op_fetch *f = c->fetch;
        if (f == NULL || f->paused || c->state == OC_CLOSING)
            return;
        if (c->in.len >= c->in.max) {
            conn_close(c);
            fetch_fail(f, OP_EORIGIN, false); /* response head over the limit */
            return;
        }
        tls_input(c, NULL, 0);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct op_oconn *c = s->data;
    OP_CHECK_OBJ(c, OCONN_MAGIC);
    if (nread == 0)
        return;
    if (c->tls != NULL && nread > 0) {
        tls_input(c, buf->base, (size_t)nread);
        tls_drain(c);
        return;
    }
    if (c->state == OC_IDLE) {
        conn_close(c); /* closed by the origin, or bytes nobody asked for */
        return;
    }
    struct op_fetch *f = c->fetch;
    if (nread == UV_ENOBUFS) {
        conn_close(c);
        if (f != NULL)
            fetch_fail(f, OP_EORIGIN, false); /* response head over the limit */
        return;
    }
    if (nread < 0) {
        bool unsent = c->state == OC_HANDSHAKE;
        if (unsent) {
            /* closed or reset in the handshake: nothing was sent */
            op_log_warn("fetch", "origin %s: closed during the TLS handshake", c->origin->name);
            conn_close(c);
            if (f != NULL)
                fetch_fail(f, OP_ETLS, true);
            return;
        }
        conn_eof(c, c->tls == NULL);
        return;
    }
    op_buf_commit(&c->in, (size_t)nread);
    conn_got(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct op_oconn *c = req->data;
    c->write_active = false;
    op_buf_reset(&c->writing);
    if (c->state == OC_CLOSING)
        return;
    struct op_fetch *f = c->fetch;
    if (status < 0) {
        if (f != NULL && try_retry(c))
            return;
        conn_close(c);
        if (f != NULL)
            fetch_fail(f, OP_ECLOSED, false);
        return;
    }
    if (f == NULL)
        return;
    if (c->tls_wire.len > 0 ||
        (f->out.len > 0 && (c->tls == NULL || op_tls_conn_established(c->tls)))) {
        conn_flush(c); /* writes, or fails the fetch */
        return;
    }
    if (c->state == OC_HANDSHAKE)
        return; /* the origin's handshake records come next */
    if (c->state == OC_SEND)
        conn_set_state(c, OC_READ_HEAD, c->origin->first_byte_timeout_ms);
    if (f->cbs->on_drain != NULL)
        f->cbs->on_drain(f->owner);
}

static void conn_flush(struct op_oconn *c)
{
    struct op_fetch *f = c->fetch;
    if (c->write_active || c->state == OC_CONNECTING)
        return;
    struct op_buf *from = f != NULL ? &f->out : NULL;
    if (c->tls != NULL) {
        /* the request is sealed only once the handshake is done */
        if (f != NULL && f->out.len > 0 && op_tls_conn_established(c->tls)) {
            int rc = op_tls_conn_output(c->tls, f->out.data, f->out.len, &c->tls_wire);
            op_buf_reset(&f->out);
            if (rc != 0) {
                conn_close(c);
                fetch_fail(f, OP_ECLOSED, false);
                return;
            }
        }
        from = &c->tls_wire;
    }
    if (from == NULL || from->len == 0)
        return;
    /* swap: the pending bytes become the pinned in-flight buffer */
    struct op_buf tmp = c->writing;
    c->writing = *from;
    *from = tmp;
    op_buf_reset(from);
    uv_buf_t b = uv_buf_init(c->writing.data, (unsigned)c->writing.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        conn_close(c);
        if (f != NULL)
            fetch_fail(f, OP_ECLOSED, false);
        return;
    }
    c->write_active = true;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct op_oconn *c = req->data;
    if (c->state == OC_CLOSING)
        return;
    struct op_fetch *f = c->fetch;
    if (status < 0) {
        op_log_warn("fetch", "origin %s: connect: %s", c->origin->name, uv_strerror(status));
        conn_close(c);
        if (f != NULL)
            fetch_fail(f, OP_ECONNECT, true);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct op_origin_server *srv = c->origin->server;
    if (srv->tls != NULL && (c->tls = op_tls_conn_client_new(srv->tls, srv->spec.tls_name,
                                                             &c->origin->tls_session)) == NULL) {
        conn_close(c);
        if (f != NULL)
            fetch_fail(f, OP_ECONNECT, true);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        if (f != NULL)
            fetch_fail(f, OP_ECONNECT, true);
        return;
    }
    if (c->tls != NULL) {
        /* the handshake shares the connect deadline: "the same timeouts" */
        conn_set_state(c, OC_HANDSHAKE, c->origin->connect_timeout_ms);
        tls_input(c, NULL, 0); /* the ClientHello */
        return;
    }
    conn_set_state(c, OC_SEND, c->origin->first_byte_timeout_ms);
    conn_flush(c);
}

static struct op_oconn *conn_new(struct op_origin *o)
{
    struct op_oconn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->magic = OCONN_MAGIC;
    c->origin = o;
    struct sockaddr_storage addr;
    op_origin_server_addr(o->server, &addr, &c->gen);
    op_buf_init(&c->in, READ_MAX);
    op_buf_init(&c->writing, SIZE_MAX);
    op_buf_init(&c->tls_wire, SIZE_MAX);
    op_http_msg_init(&c->resp, 256, READ_MAX);
    uv_tcp_init(o->loop, &c->tcp);
    uv_timer_init(o->loop, &c->timer);
    c->tcp.data = c->timer.data = c->creq.data = c;
    c->state = OC_CONNECTING;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&addr, on_connect);
    if (rc != 0) {
        op_log_warn("fetch", "origin %s: connect: %s", o->name, uv_strerror(rc));
        close_handles(c);
        return NULL;
    }
    conn_set_state(c, OC_CONNECTING, o->connect_timeout_ms);
    return c;
}

static int parser_body(void *arg, const char *p, size_t len)
{
    struct op_oconn *c = arg;
    struct op_fetch *f = c->fetch;
    if (f == NULL || c->state == OC_CLOSING || !f->got_head)
        return 1; /* body bytes belong to a final head the owner has seen */
    if (len == 0)
        return 0; /* owners that re-chunk would write a last chunk */
    return f->cbs->on_body(f->owner, p, len);
}

/* Has a pooled connection anything waiting to be read: bytes nobody asked
 * for, or the origin's FIN? libuv may not have run its read callback yet, and
 * such bytes would become the next request's response. */
static bool idle_has_input(struct op_oconn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        return true;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* Put <f> on a pooled connection, or on a new one when <c> is NULL. */
static void attach(struct op_fetch *f, struct op_oconn *c)
{
    struct op_origin *o = f->origin;
    uint32_t gen = atomic_load_explicit(&o->server->addr_gen, memory_order_relaxed);
    while (c == NULL && o->idle != NULL) {
        c = o->idle;
        o->idle = c->next_idle;
        o->nidle--;
        c->next_idle = NULL;
        if (c->gen != gen || idle_has_input(c)) {
            /* opened to an address the origin no longer has, or closed or
             * written to while idle */
            conn_close(c);
            c = NULL;
        }
    }
    if (c == NULL) {
        c = conn_new(o);
        if (c == NULL)
            return;
    }
    f->conn = c;
    c->fetch = f;
    op_http_msg_reset(&c->resp);
    op_http_parser_init(&c->parser, true, &c->resp, parser_body, c);
    c->parser.head_only = f->head_only;
    op_buf_reset(&c->in);
    if (c->state == OC_IDLE)
        conn_set_state(c, OC_SEND, o->first_byte_timeout_ms);
    op_metric_inc(o->metrics, origin_requests_total);
    conn_flush(c);
}

void op_origin_close(struct op_origin *o)
{
    o->closing = true;
    op_fetch__queue_close(o);
    while (o->idle != NULL)
        conn_close(o->idle);
}

struct op_fetch *op_fetch_start(struct op_upstream *u, const char *head, size_t hlen,
                                bool head_only, bool retryable, const struct op_fetch_cbs *cbs,
                                void *owner)
{
    struct op_origin *o = op_upstream__pick(u, NULL);
    if (o == NULL)
        return NULL;
    struct op_fetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->magic = FETCH_MAGIC;
    f->origin = o;
    f->cbs = cbs;
    f->owner = owner;
    f->head_only = head_only;
    f->retryable = retryable;
    op_buf_init(&f->head, SIZE_MAX);
    op_buf_init(&f->out, SIZE_MAX);
    if (op_buf_append(&f->out, head, hlen) != 0 ||
        (retryable && op_buf_append(&f->head, head, hlen) != 0)) {
        op_fetch_abort(f);
        return NULL;
    }
    if (!op_fetch__admit(f))
        return f; /* waits in the origin's queue */
    attach(f, NULL);
    if (f->conn == NULL && retryable) {
        /* no socket to this one: once to another, as after a failed connect */
        struct op_origin *next = op_upstream__pick(u, o);
        if (next != NULL) {
            op_fetch__release(f, OP_FETCH_NEUTRAL);
            f->origin = next;
            f->moved = true;
            if (!op_fetch__admit(f))
                return f;
            attach(f, NULL);
        }
    }
    if (f->conn == NULL) {
        /* could not even open a socket: the caller treats NULL as a connect
         * failure */
        op_fetch_abort(f);
        return NULL;
    }
    return f;
}

bool op_fetch__run(struct op_fetch *f)
{
    attach(f, NULL);
    return f->conn != NULL;
}

int op_fetch_send(struct op_fetch *f, const char *p, size_t len)
{
    OP_CHECK_OBJ(f, FETCH_MAGIC);
    int rc = op_buf_append(&f->out, p, len);
    if (rc == 0 && f->conn != NULL)
        conn_flush(f->conn);
    return rc;
}

void op_fetch_body_begin(struct op_fetch *f)
{
    OP_CHECK_OBJ(f, FETCH_MAGIC);
    f->body_open = true;
}

void op_fetch_body_end(struct op_fetch *f)
{
    OP_CHECK_OBJ(f, FETCH_MAGIC);
    f->body_open = false;
}

size_t op_fetch_pending(const struct op_fetch *f)
{
    size_t n = f->out.len;
    if (f->conn != NULL)
        n += f->conn->writing.len + f->conn->tls_wire.len;
    return n;
}

void op_fetch_pause(struct op_fetch *f)
{
    OP_CHECK_OBJ(f, FETCH_MAGIC);
    f->paused = true;
    if (f->conn != NULL)
        uv_read_stop((uv_stream_t *)&f->conn->tcp);
}

void op_fetch_resume(struct op_fetch *f)
{
    OP_CHECK_OBJ(f, FETCH_MAGIC);
    if (!f->paused)
        return;
    f->paused = false;
    struct op_oconn *c = f->conn;
    if (c == NULL || c->state == OC_CLOSING)
        return;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    parse_input(c); /* bytes read before the pause */
    tls_drain(c);   /* and those the filter still holds */
}

void op_fetch_set_owner(struct op_fetch *f, const struct op_fetch_cbs *cbs, void *owner)
{
    OP_CHECK_OBJ(f, FETCH_MAGIC);
    f->cbs = cbs;
    f->owner = owner;
}

void op_fetch_abort(struct op_fetch *f)
{
    if (f == NULL)
        return;
    OP_CHECK_OBJ(f, FETCH_MAGIC);
    op_fetch__release(f, OP_FETCH_NEUTRAL);
    if (f->conn != NULL) {
        f->conn->fetch = NULL;
        conn_close(f->conn);
    }
    op_buf_fini(&f->head);
    op_buf_fini(&f->out);
    f->magic = 0;
    free(f);
}
