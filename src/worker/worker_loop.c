/* A worker: thread, loop, listener, mailbox, graceful stop. */
#include "outpost/worker.h"

#include "outpost/net.h"
#include "outpost/proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define WORKER_MAGIC 0x574f524bu
#define SITE_METRICS_MAX 256 /* hosts counted per worker, over all reloads */

#define LISTENERS_MAX (1 + OP_CONF_MAX_LISTEN) /* listen, then each of listen_tls */

struct op_worker;

struct listener {
    uv_tcp_t tcp;
    struct op_worker *w; /* borrowed */
    bool tls;            /* connections on it speak TLS first */
    bool open;
};

struct op_worker {
    unsigned magic;
    unsigned id;
    const struct op_conf *conf; /* borrowed */
    uv_loop_t loop;
    uv_async_t async;
    struct listener listeners[LISTENERS_MAX];
    size_t nlisteners;
    uv_timer_t deadline;
    uv_timer_t access_timer;
    bool finished;
    pthread_t thread;
    struct op_mailbox mailbox;
    struct op_msg stop_msg;
    struct op_proxy_ctx ctx;
    struct op_store *store;         /* borrowed */
    struct op_mailbox *released_to; /* borrowed: main's, for released generations */
    void (*released_run)(struct op_msg *m);
    void *released_arg;
};

/* A generation handed over from the main thread. */
struct reload_msg {
    struct op_msg msg; /* first */
    struct op_worker *w;
    uint64_t id;
    const struct op_conf *conf;
    struct op_origin_server *servers;
    struct op_tls_ctx *tls;
};

struct released_msg {
    struct op_msg msg; /* first */
    uint64_t id;
    void *arg;
};

static void on_wake(void *arg)
{
    uv_async_send(arg);
}

static void on_async(uv_async_t *a)
{
    struct op_worker *w = a->data;
    op_mailbox_drain(&w->mailbox);
}

static void on_access_timer(uv_timer_t *t)
{
    struct op_worker *w = t->data;
    op_access_flush(&w->ctx.access); /* a quiet node's lines do not wait for a full block */
}

/* The counters of the site for <host>: the same across reloads. NULL when
 * SITE_METRICS_MAX hosts were seen already (not counted then). */
static struct op_site_metrics *site_metrics_for(struct op_worker *w, const char *host)
{
    struct op_proxy_ctx *ctx = &w->ctx;
    for (size_t i = 0; i < ctx->nsite_metrics; i++)
        if (strcmp(ctx->site_metrics[i].host, host) == 0)
            return &ctx->site_metrics[i];
    if (ctx->site_metrics == NULL || ctx->nsite_metrics == SITE_METRICS_MAX)
        return NULL;
    struct op_site_metrics *m = &ctx->site_metrics[ctx->nsite_metrics++];
    snprintf(m->host, sizeof(m->host), "%s", host);
    return m;
}

/* The sites of <conf>, each with this worker's pools for its origins
 * (<servers>: conf->sites[i].norigins each, in order). */
static struct op_proxy_gen *gen_new(struct op_worker *w, uint64_t id, const struct op_conf *conf,
                                    struct op_origin_server *servers, struct op_tls_ctx *tls)
{
    struct op_proxy_gen *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->sites = calloc(conf->nsites, sizeof(*g->sites))) == NULL) {
        free(g);
        return NULL;
    }
    g->id = id;
    g->conf = conf;
    g->tls = tls;
    for (size_t i = 0; i < conf->nsites; i++) {
        const struct op_conf_site *s = &conf->sites[i];
        struct op_upstream *u = &g->sites[i].upstream;
        g->sites[i].conf = s;
        g->sites[i].metrics = site_metrics_for(w, s->host);
        if (op_upstream_init(u, &w->loop, servers, s->norigins, &w->ctx.metrics) != 0) {
            for (size_t j = 0; j < i; j++) {
                op_upstream_close(&g->sites[j].upstream);
            }
            /* out of memory: left allocated on purpose, since the close
             * callbacks of those queue timers still point into it */
            return NULL;
        }
        g->nsites = i + 1;
        servers += s->norigins;
        for (uint32_t j = 0; j < u->n; j++) {
            struct op_origin *o = &u->origins[j];
            o->connect_timeout_ms = s->connect_timeout_ms;
            o->first_byte_timeout_ms = s->first_byte_timeout_ms;
            o->between_bytes_timeout_ms = s->between_bytes_timeout_ms;
            o->idle_max = (uint32_t)s->origin_idle_max;
            o->idle_timeout_ms = s->origin_idle_timeout_ms;
            o->max_conns = (uint32_t)s->origin_max_conns;
            o->queue_max = (uint32_t)s->origin_queue;
            o->queue_timeout_ms = s->origin_queue_timeout_ms;
            o->fail_threshold = (uint32_t)s->origin_fail_threshold;
            o->cooldown_ms = s->origin_fail_cooldown_ms;
            o->stall_ms = s->origin_stall_timeout_ms;
        }
    }
    uv_timer_init(&w->loop, &g->reaper);
    g->reaper.data = w;
    return g;
}

static void gen_free(struct op_proxy_gen *g)
{
    for (size_t i = 0; i < g->nsites; i++)
        op_upstream_fini(&g->sites[i].upstream);
    free(g->sites);
    free(g);
}

/* Tell the main thread this worker is done with generation <id>. */
static void post_released(struct op_worker *w, uint64_t id)
{
    struct released_msg *m = calloc(1, sizeof(*m));
    if (m == NULL || w->released_to == NULL) {
        free(m);
        return;
    }
    m->msg.run = w->released_run;
    m->id = id;
    m->arg = w->released_arg;
    op_mailbox_post(w->released_to, &m->msg);
}

static void on_reaper_closed(uv_handle_t *h)
{
    struct op_proxy_gen *g =
        (struct op_proxy_gen *)((char *)h - offsetof(struct op_proxy_gen, reaper));
    struct op_worker *w = h->data;
    uint64_t id = g->id;
    gen_free(g);
    post_released(w, id);
}

/* A loop turn after its pools closed (their close callbacks have run). */
static void on_reaper(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, on_reaper_closed);
}

static void on_gen_released(struct op_proxy_ctx *ctx, struct op_proxy_gen *g)
{
    (void)ctx; /* the reaper's data is the worker */
    for (size_t i = 0; i < g->nsites; i++)
        op_upstream_close(&g->sites[i].upstream);
    uv_timer_start(&g->reaper, on_reaper, 0, 0);
}

static void on_reload(struct op_msg *m)
{
    struct reload_msg *r = (struct reload_msg *)m;
    struct op_worker *w = r->w;
    struct op_proxy_gen *g = w->finished ? NULL : gen_new(w, r->id, r->conf, r->servers, r->tls);
    if (g == NULL) {
        op_log_error("worker", "w%u: cannot take configuration %llu; keeping %llu", w->id,
                     (unsigned long long)r->id, (unsigned long long)w->ctx.gen->id);
        post_released(w, r->id); /* never used: released at once */
    } else {
        w->conf = r->conf;
        op_proxy_set_gen(&w->ctx, g);
    }
    free(r);
}

void op_worker_set_release_mailbox(struct op_worker *w, struct op_mailbox *released_to,
                                   void (*run)(struct op_msg *m), void *arg)
{
    w->released_to = released_to;
    w->released_run = run;
    w->released_arg = arg;
}

int op_worker_reload(struct op_worker *w, uint64_t id, const struct op_conf *conf,
                     struct op_origin_server *servers, struct op_tls_ctx *tls)
{
    struct reload_msg *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return OP_ENOMEM;
    r->msg.run = on_reload;
    r->w = w;
    r->id = id;
    r->conf = conf;
    r->servers = servers;
    r->tls = tls;
    op_mailbox_post(&w->mailbox, &r->msg);
    return 0;
}

uint64_t op_worker_released_gen(const struct op_msg *m, void **arg)
{
    const struct released_msg *r = (const struct released_msg *)m;
    *arg = r->arg;
    return r->id;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    if (status < 0) {
        op_log_warn("worker", "w%u: accept: %s", l->w->id, uv_strerror(status));
        return;
    }
    op_proxy_accept(&l->w->ctx, server, l->tls);
}

static void listeners_close(struct op_worker *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i].open) {
            uv_close((uv_handle_t *)&w->listeners[i].tcp, NULL);
            w->listeners[i].open = false;
        }
    }
}

/* Listener <i> (its fd already made) on the worker's loop. */
static int listener_open(struct op_worker *w, size_t i, int fd)
{
    struct listener *l = &w->listeners[i];
    l->w = w;
    uv_tcp_init(&w->loop, &l->tcp);
    l->tcp.data = l;
    if (uv_tcp_open(&l->tcp, fd) != 0 ||
        uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection) != 0) {
        op_log_error("worker", "w%u: cannot listen", w->id);
        return OP_EIO; /* the process exits; nothing to unwind */
    }
    l->open = true;
    return 0;
}

/* Every connection is gone: close what is left so uv_run returns. */
static void finish(struct op_worker *w)
{
    if (w->finished)
        return;
    w->finished = true;
    /* no more wake-ups: the async handle is closing. Messages still posted (store
     * acknowledgements) wait in the mailbox for op_worker_destroy. */
    pthread_mutex_lock(&w->mailbox.lock);
    w->mailbox.wake = NULL;
    pthread_mutex_unlock(&w->mailbox.lock);
    op_proxy_abort_background(&w->ctx);
    uv_timer_stop(&w->deadline);
    uv_close((uv_handle_t *)&w->deadline, NULL);
    uv_timer_stop(&w->access_timer);
    uv_close((uv_handle_t *)&w->access_timer, NULL);
    op_access_buf_fini(&w->ctx.access); /* every request has ended: its line is in */
    uv_close((uv_handle_t *)&w->async, NULL);
    for (size_t i = 0; i < w->ctx.gen->nsites; i++) /* the others have closed */
        op_upstream_close(&w->ctx.gen->sites[i].upstream);
    uv_close((uv_handle_t *)&w->ctx.gen->reaper, NULL); /* freed by op_worker_destroy */
}

static void on_drained(struct op_proxy_ctx *ctx)
{
    struct op_worker *w = (struct op_worker *)((char *)ctx - offsetof(struct op_worker, ctx));
    finish(w);
}

static void on_deadline(uv_timer_t *t)
{
    struct op_worker *w = t->data;
    op_log_warn("worker", "w%u: shutdown deadline passed with %u connections open", w->id,
                w->ctx.nclients);
    op_proxy_close_all(&w->ctx); /* on_drained follows when the last one is freed */
    if (w->ctx.nclients == 0)
        finish(w);
}

static void on_stop(struct op_msg *m)
{
    struct op_worker *w = (struct op_worker *)((char *)m - offsetof(struct op_worker, stop_msg));
    listeners_close(w);
    uv_timer_start(&w->deadline, on_deadline, w->conf->shutdown_timeout_ms, 0);
    op_proxy_drain(&w->ctx);
}

static void *worker_main(void *arg)
{
    struct op_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int op_worker_create(unsigned id, const struct op_worker_config *cfg, struct op_worker **out)
{
    const struct op_conf *conf = cfg->conf;
    struct op_store *store = cfg->store;
    if (cfg->ntls_addrs + 1 > LISTENERS_MAX)
        return OP_EINVAL;
    struct op_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return OP_ENOMEM;
    w->magic = WORKER_MAGIC;
    w->id = id;
    w->conf = conf;
    w->store = store;
    /* every socket first, on the main thread: a busy port fails here, before
     * anything needs unwinding */
    int fds[LISTENERS_MAX];
    size_t n = 0;
    for (; n < 1 + cfg->ntls_addrs; n++) {
        w->listeners[n].tls = n > 0;
        fds[n] = op_net_listen(n == 0 ? cfg->listen_addr : &cfg->tls_addrs[n - 1], 1024);
        if (fds[n] < 0) {
            int rc = -fds[n];
            while (n > 0)
                close(fds[--n]);
            free(w);
            return rc;
        }
    }
    if (uv_loop_init(&w->loop) != 0) {
        while (n > 0)
            close(fds[--n]);
        free(w);
        return OP_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = listener_open(w, i, fds[i]);
    w->nlisteners = n;
    if (rc != 0)
        return rc; /* the process exits */
    uv_async_init(&w->loop, &w->async, on_async);
    w->async.data = w;
    uv_timer_init(&w->loop, &w->deadline);
    w->deadline.data = w;
    op_mailbox_init(&w->mailbox, on_wake, &w->async);
    w->stop_msg.run = on_stop;

    struct op_proxy_ctx *ctx = &w->ctx;
    ctx->loop = &w->loop;
    ctx->worker_id = id;
    ctx->conf = conf;
    ctx->store = store;
    ctx->fleet = cfg->fleet;
    ctx->flight = cfg->flight;
    ctx->mailbox = &w->mailbox;
    ctx->on_drained = on_drained;
    op_access_buf_init(&ctx->access, cfg->access);
    uv_timer_init(&w->loop, &w->access_timer);
    w->access_timer.data = w;
    if (cfg->access != NULL)
        uv_timer_start(&w->access_timer, on_access_timer, 250, 250);
    if (op_store_reader_open(store, &ctx->reader) != 0)
        return OP_ENOMEM;
    ctx->on_gen_released = on_gen_released;
    ctx->site_metrics = calloc(SITE_METRICS_MAX, sizeof(*ctx->site_metrics));
    struct op_proxy_gen *g = gen_new(w, 1, conf, cfg->servers, cfg->tls);
    if (g == NULL)
        return OP_ENOMEM; /* the process exits */
    op_proxy_set_gen(ctx, g);
    *out = w;
    return 0;
}

int op_worker_start(struct op_worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : OP_ENOMEM;
}

void op_worker_stop(struct op_worker *w)
{
    op_mailbox_post(&w->mailbox, &w->stop_msg);
}

void op_worker_join(struct op_worker *w)
{
    pthread_join(w->thread, NULL);
    /* handles closed by finish(); run once more for their callbacks */
    uv_run(&w->loop, UV_RUN_NOWAIT);
    op_store_reader_close(w->ctx.reader);
    w->ctx.reader = NULL;
}

void op_worker_destroy(struct op_worker *w)
{
    /* the store is closed: every acknowledgement it owed has been posted */
    op_mailbox_drain(&w->mailbox);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&w->loop) != 0)
        op_log_warn("worker", "w%u: loop closed with handles open", w->id);
    op_mailbox_fini(&w->mailbox);
    gen_free(w->ctx.gen); /* its pools and reaper closed in finish() */
    free(w->ctx.site_metrics);
    w->magic = 0;
    free(w);
}

size_t op_worker_add_site_metrics(const struct op_worker *w, struct op_site_metrics *sum, size_t n,
                                  size_t cap)
{
    const struct op_proxy_ctx *ctx = &w->ctx;
    for (size_t i = 0; i < ctx->nsite_metrics; i++) {
        const struct op_site_metrics *m = &ctx->site_metrics[i];
        size_t j = 0;
        while (j < n && strcmp(sum[j].host, m->host) != 0)
            j++;
        if (j == n) {
            if (n == cap)
                continue;
            memset(&sum[n], 0, sizeof(sum[n]));
            memcpy(sum[n].host, m->host, sizeof(m->host));
            n++;
        }
        for (int k = 0; k < OP_SM__COUNT; k++)
            sum[j].v[k] += m->v[k];
    }
    return n;
}

void op_worker_add_metrics(const struct op_worker *w, struct op_metrics *sum)
{
    for (int i = 0; i < OP_M__COUNT; i++)
        sum->v[i] += w->ctx.metrics.v[i];
}
