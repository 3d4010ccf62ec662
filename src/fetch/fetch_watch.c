/* What the main loop learns about each origin server for every worker: its
 * address, by resolving its name again every resolve_interval (getaddrinfo
 * runs on libuv's thread pool, never on a loop; a failure keeps the last good
 * address), and its health, by asking check_path every check_interval
 * (check_fall bad answers in a row take it out, check_rise good ones bring it
 * back). Workers read the results through the server's lock and atomics. */
#include "fetch_int.h"

#include "outpost/net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_REQ_MAX 2048
#define CHECK_IN_MAX 512 /* the status line has to fit */

struct check {
    struct op_origin_watch *w;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    char req[CHECK_REQ_MAX];
    size_t reqlen;
    char in[CHECK_IN_MAX];
    size_t inlen;
    struct op_buf wire;    /* bytes to send: the request, or an https origin's records */
    struct op_buf writing; /* pinned until the write callback */
    bool write_active;
    struct op_tls_conn *tls; /* owned: https origins are checked over TLS */
    bool req_sealed;
    int pending_closes;
    bool done;
};

/* https: ciphertext of one read on the main loop, fed before the callback
 * returns */
static char check_tls_read[16 * 1024 + 512];

struct op_origin_watch {
    struct op_origin_server *s;
    uv_loop_t *loop;
    uv_timer_t check_timer, resolve_timer;
    bool checking_on, resolving_on;
    struct check *check; /* the one under way */
    uint32_t good, bad;  /* answers in a row */
    uv_getaddrinfo_t gai;
    bool resolving;
    bool resolve_failing; /* logged once until it works again */
    bool stopping;
};

int op_origin_server_init(struct op_origin_server *s, const struct op_origin_spec *spec)
{
    memset(s, 0, sizeof(*s));
    s->spec = *spec;
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->addr_gen, 0);
    atomic_init(&s->healthy, true);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->quiet_since_ms, 0);
    if (op_net_resolve(spec->host, spec->port, &s->addr) != 0) {
        op_log_error("fetch", "origin %s: cannot resolve %s", spec->name, spec->host);
        pthread_mutex_destroy(&s->lock);
        return OP_ENOTFOUND;
    }
    if (spec->tls) {
        if (spec->tls_name == NULL || strlen(spec->tls_name) >= sizeof(s->tls_name)) {
            op_log_error("fetch", "origin %s: TLS name too long", spec->name);
            pthread_mutex_destroy(&s->lock);
            return OP_EINVAL;
        }
        snprintf(s->tls_name, sizeof(s->tls_name), "%s", spec->tls_name);
        s->spec.tls_name = s->tls_name;
        struct op_tls_client_config cfg = {.ca_file = spec->tls_ca, .verify = spec->tls_verify};
        char why[600];
        int rc = op_tls_client_ctx_create(&cfg, &s->tls, why, sizeof(why));
        if (rc != 0) {
            op_log_error("fetch", "origin %s: %s", spec->name, why);
            pthread_mutex_destroy(&s->lock);
            return rc;
        }
    }
    return 0;
}

void op_origin_server_fini(struct op_origin_server *s)
{
    free(s->watch);
    s->watch = NULL;
    op_tls_ctx_free(s->tls);
    s->tls = NULL;
    pthread_mutex_destroy(&s->lock);
}

void op_origin_server_addr(struct op_origin_server *s, struct sockaddr_storage *addr, uint32_t *gen)
{
    pthread_mutex_lock(&s->lock);
    *addr = s->addr;
    *gen = atomic_load_explicit(&s->addr_gen, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
}

/* ---- active health checks ---- */

static void verdict(struct op_origin_watch *w, bool ok, const char *why)
{
    struct op_origin_server *s = w->s;
    bool healthy = atomic_load(&s->healthy);
    if (ok) {
        w->bad = 0;
        w->good++;
        if (!healthy && w->good >= s->spec.check_rise) {
            atomic_store(&s->healthy, true);
            op_log_info("fetch", "origin %s: health check passed %u times; back in use",
                        s->spec.name, w->good);
        }
        return;
    }
    w->good = 0;
    w->bad++;
    op_log_debug("fetch", "origin %s: health check failed: %s", s->spec.name, why);
    if (healthy && w->bad >= s->spec.check_fall) {
        atomic_store(&s->healthy, false);
        op_log_warn("fetch", "origin %s: health check failed %u times (%s); no requests go to it",
                    s->spec.name, w->bad, why);
    }
}

static void check_closed(uv_handle_t *h)
{
    struct check *c = h->data;
    if (--c->pending_closes > 0)
        return;
    if (c->w->check == c)
        c->w->check = NULL;
    op_tls_conn_free(c->tls);
    op_buf_fini(&c->wire);
    op_buf_fini(&c->writing);
    free(c);
}

/* <why> NULL: no verdict (the watch is stopping). */
static void check_end(struct check *c, bool ok, const char *why)
{
    if (c->done)
        return;
    c->done = true;
    if (why != NULL || ok)
        verdict(c->w, ok, why);
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, check_closed);
    uv_close((uv_handle_t *)&c->timer, check_closed);
}

static void check_timeout(uv_timer_t *t)
{
    check_end(t->data, false, "no answer in time");
}

static void check_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct check *c = h->data;
    (void)hint;
    if (c->tls != NULL) {
        buf->base = check_tls_read;
        buf->len = sizeof(check_tls_read);
        return;
    }
    buf->base = c->in + c->inlen;
    buf->len = CHECK_IN_MAX - c->inlen;
}

/* "HTTP/1.x NNN ..." up to its CRLF: a 2xx or 3xx is good. */
static void check_status(struct check *c)
{
    const char *end = memchr(c->in, '\n', c->inlen);
    if (end == NULL) {
        if (c->inlen == CHECK_IN_MAX)
            check_end(c, false, "status line too long");
        return;
    }
    size_t n = (size_t)(end - c->in);
    int status = 0;
    if (n >= 12 && memcmp(c->in, "HTTP/1.", 7) == 0 && c->in[8] == ' ') {
        for (int i = 9; i < 12; i++)
            status = c->in[i] >= '0' && c->in[i] <= '9' ? status * 10 + (c->in[i] - '0') : -1000;
    }
    if (status < 100) {
        check_end(c, false, "not an HTTP response");
        return;
    }
    char why[48];
    snprintf(why, sizeof(why), "answered %d", status);
    check_end(c, status >= 200 && status < 400, why);
}

static void check_written(uv_write_t *req, int status);

static void check_flush(struct check *c)
{
    if (c->write_active || c->done || c->wire.len == 0)
        return;
    struct op_buf tmp = c->writing;
    c->writing = c->wire;
    c->wire = tmp;
    op_buf_reset(&c->wire);
    uv_buf_t b = uv_buf_init(c->writing.data, (unsigned)c->writing.len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, check_written) != 0) {
        check_end(c, false, "cannot send the check");
        return;
    }
    c->write_active = true;
}

static void check_written(uv_write_t *req, int status)
{
    struct check *c = req->data;
    c->write_active = false;
    op_buf_reset(&c->writing);
    if (status < 0)
        check_end(c, false, uv_strerror(status));
    else
        check_flush(c);
}

/* https: ciphertext through the filter; the request once established. */
static void check_tls_input(struct check *c, const char *p, size_t len)
{
    struct op_buf plain;
    op_buf_init(&plain, CHECK_IN_MAX - c->inlen);
    int rc = op_tls_conn_input(c->tls, p, len, &plain, &c->wire);
    if (plain.len > 0) {
        memcpy(c->in + c->inlen, plain.data, plain.len);
        c->inlen += plain.len;
    }
    op_buf_fini(&plain);
    if (rc != 0 && rc != OP_ECLOSED) {
        char why[160], text[200];
        int fail = op_tls_conn_failure(c->tls, why, sizeof(why));
        snprintf(text, sizeof(text), "TLS: %s (%s)", op_err_msg(fail != 0 ? fail : OP_ETLS), why);
        check_end(c, false, text);
        return;
    }
    if (op_tls_conn_established(c->tls) && !c->req_sealed) {
        c->req_sealed = true;
        if (op_tls_conn_output(c->tls, c->req, c->reqlen, &c->wire) != 0) {
            check_end(c, false, "TLS: cannot send the check");
            return;
        }
    }
    check_flush(c);
    if (c->inlen > 0)
        check_status(c);
    if (!c->done && rc == OP_ECLOSED)
        check_end(c, false, "connection closed before the status line");
}

static void check_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct check *c = st->data;
    if (c->done || nread == 0)
        return;
    if (nread < 0) {
        check_end(c, false, "connection closed before the status line");
        return;
    }
    if (c->tls != NULL) {
        check_tls_input(c, buf->base, (size_t)nread);
        return;
    }
    c->inlen += (size_t)nread;
    check_status(c);
}

static void check_connected(uv_connect_t *req, int status)
{
    struct check *c = req->data;
    if (c->done)
        return;
    if (status < 0) {
        check_end(c, false, uv_strerror(status));
        return;
    }
    struct op_origin_server *s = c->w->s;
    if (s->tls != NULL &&
        (c->tls = op_tls_conn_client_new(s->tls, s->spec.tls_name, NULL)) == NULL) {
        check_end(c, false, "out of memory");
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, check_alloc, check_read) != 0) {
        check_end(c, false, "cannot read the answer");
        return;
    }
    if (c->tls != NULL) {
        check_tls_input(c, NULL, 0); /* the ClientHello */
        return;
    }
    if (op_buf_append(&c->wire, c->req, c->reqlen) != 0) {
        check_end(c, false, "out of memory");
        return;
    }
    check_flush(c);
}

static void check_start(uv_timer_t *t)
{
    struct op_origin_watch *w = t->data;
    if (w->check != NULL || w->stopping)
        return; /* the last one is still under way */
    const struct op_origin_spec *sp = &w->s->spec;
    struct check *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    char host[300];
    if (sp->check_host != NULL && sp->check_host[0] != '\0')
        snprintf(host, sizeof(host), "%s", sp->check_host);
    else
        snprintf(host, sizeof(host), strchr(sp->host, ':') ? "[%s]:%u" : "%s:%u", sp->host,
                 sp->port);
    int n = snprintf(c->req, sizeof(c->req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: outpost-health-check\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     sp->check_path, host);
    if (n < 0 || (size_t)n >= sizeof(c->req)) {
        free(c);
        return; /* validated at load: cannot happen */
    }
    c->reqlen = (size_t)n;
    c->w = w;
    op_buf_init(&c->wire, SIZE_MAX);
    op_buf_init(&c->writing, SIZE_MAX);
    w->check = c;
    uv_tcp_init(w->loop, &c->tcp);
    uv_timer_init(w->loop, &c->timer);
    c->tcp.data = c->timer.data = c->creq.data = c->wreq.data = c;
    uv_timer_start(&c->timer, check_timeout, sp->check_timeout_ms, 0);
    struct sockaddr_storage addr;
    uint32_t gen;
    op_origin_server_addr(w->s, &addr, &gen);
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&addr, check_connected);
    if (rc != 0)
        check_end(c, false, uv_strerror(rc));
}

/* ---- re-resolution ---- */

static bool same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct op_origin_watch *w = req->data;
    struct op_origin_server *s = w->s;
    w->resolving = false;
    if (w->stopping || status == UV_ECANCELED) {
        uv_freeaddrinfo(res);
        return;
    }
    if (status < 0 || res == NULL) {
        if (!w->resolve_failing)
            op_log_warn("fetch",
                        "origin %s: cannot resolve %s again (%s); keeping its last address",
                        s->spec.name, s->spec.host, uv_strerror(status));
        w->resolve_failing = true;
        uv_freeaddrinfo(res);
        return;
    }
    if (w->resolve_failing)
        op_log_info("fetch", "origin %s: %s resolves again", s->spec.name, s->spec.host);
    w->resolve_failing = false;
    pthread_mutex_lock(&s->lock);
    bool kept = false;
    for (struct addrinfo *ai = res; ai != NULL && !kept; ai = ai->ai_next)
        kept = same_addr(ai->ai_addr, &s->addr); /* still one of its addresses: stay */
    struct sockaddr_storage was = s->addr;
    if (!kept && res->ai_addrlen <= sizeof(s->addr)) {
        memset(&s->addr, 0, sizeof(s->addr));
        memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
        atomic_fetch_add(&s->addr_gen, 1);
    }
    struct sockaddr_storage now = s->addr;
    pthread_mutex_unlock(&s->lock);
    uv_freeaddrinfo(res);
    if (!kept) {
        char a[64], b[64];
        op_net_peer_name(&was, a, sizeof(a));
        op_net_peer_name(&now, b, sizeof(b));
        op_log_info("fetch", "origin %s: %s now resolves to %s (was %s); new connections go there",
                    s->spec.name, s->spec.host, b, a);
    }
}

static void resolve_start(uv_timer_t *t)
{
    struct op_origin_watch *w = t->data;
    if (w->resolving || w->stopping)
        return;
    const struct op_origin_spec *sp = &w->s->spec;
    char port[8];
    snprintf(port, sizeof(port), "%u", sp->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    w->gai.data = w;
    int rc = uv_getaddrinfo(w->loop, &w->gai, resolved, sp->host, port, &hints);
    if (rc != 0) {
        op_log_warn("fetch", "origin %s: cannot start resolving %s: %s", sp->name, sp->host,
                    uv_strerror(rc));
        return;
    }
    w->resolving = true;
}

static bool is_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int op_origin_watch_start(struct op_origin_server *s, size_t n, uv_loop_t *loop)
{
    for (size_t i = 0; i < n; i++) {
        const struct op_origin_spec *sp = &s[i].spec;
        bool check = sp->check_path != NULL && sp->check_path[0] != '\0';
        bool resolve = sp->resolve_interval_ms > 0 && !is_address(sp->host);
        if (!check && !resolve)
            continue;
        struct op_origin_watch *w = calloc(1, sizeof(*w));
        if (w == NULL)
            return OP_ENOMEM;
        w->s = &s[i];
        w->loop = loop;
        s[i].watch = w;
        uv_timer_init(loop, &w->check_timer);
        uv_timer_init(loop, &w->resolve_timer);
        w->check_timer.data = w->resolve_timer.data = w;
        if (check) {
            w->checking_on = true;
            uv_timer_start(&w->check_timer, check_start, 0, sp->check_interval_ms);
        }
        if (resolve) {
            w->resolving_on = true;
            uv_timer_start(&w->resolve_timer, resolve_start, sp->resolve_interval_ms,
                           sp->resolve_interval_ms);
        }
    }
    return 0;
}

void op_origin_watch_stop(struct op_origin_server *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct op_origin_watch *w = s[i].watch;
        if (w == NULL || w->stopping)
            continue;
        w->stopping = true;
        uv_close((uv_handle_t *)&w->check_timer, NULL);
        uv_close((uv_handle_t *)&w->resolve_timer, NULL);
        if (w->check != NULL)
            check_end(w->check, false, NULL);
        if (w->resolving)
            uv_cancel((uv_req_t *)&w->gai); /* if it has not started; else it finishes */
    }
}
