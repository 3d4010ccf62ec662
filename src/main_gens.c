/* Configuration generations on the main thread (see main_gens.h). */
#include "main_gens.h"

#include "outpost/http.h"
#include "outpost/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The name an https origin is asked for (SNI) and must prove (its
 * certificate): host_header's host when set, since that is the site the
 * origin serves, else the origin's own host. */
static void origin_tls_name(const struct op_conf_site *site, const struct op_conf_origin *o,
                            char *out, size_t len)
{
    const char *h = site->host_header[0] != '\0' ? site->host_header : o->host;
    size_t n = strlen(h);
    if (h == site->host_header) { /* HOST[:PORT] or [V6][:PORT]: the name without brackets */
        n = op_http_authority_host_len(h, n);
        if (h[0] == '[') {
            bool closed = n >= 2 && h[n - 1] == ']';
            h++;
            n -= closed ? 2 : 1;
        }
    }
    snprintf(out, len, "%.*s", (int)n, h);
}

struct op_origin_server *op_main_origins_create(const struct op_conf *conf, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < conf->nsites; i++)
        total += conf->sites[i].norigins;
    struct op_origin_server *s = calloc(total, sizeof(*s));
    if (s == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < conf->nsites; i++) {
        const struct op_conf_site *site = &conf->sites[i];
        for (size_t j = 0; j < site->norigins; j++) {
            const struct op_conf_origin *o = &site->origins[j];
            char tls_name[256];
            origin_tls_name(site, o, tls_name, sizeof(tls_name));
            struct op_origin_spec spec = {
                .name = o->url,
                .host = o->host,
                .port = o->port,
                .weight = o->weight,
                .resolve_interval_ms = site->origin_resolve_interval_ms,
                .check_path = site->health_check_path,
                .check_host = site->host_header[0] != '\0'   ? site->host_header
                              : strcmp(site->host, "*") != 0 ? site->host
                                                             : "",
                .check_interval_ms = site->health_check_interval_ms,
                .check_timeout_ms = site->health_check_timeout_ms,
                .check_rise = (uint32_t)site->health_check_rise,
                .check_fall = (uint32_t)site->health_check_fall,
                .tls = o->tls,
                .tls_name = tls_name,
                .tls_ca = site->origin_ca,
                .tls_verify = site->origin_tls_verify,
            };
            if (op_origin_server_init(&s[k], &spec) != 0) {
                while (k > 0)
                    op_origin_server_fini(&s[--k]);
                free(s);
                return NULL;
            }
            k++;
        }
    }
    *n = total;
    return s;
}

void op_main_origins_free(struct op_origin_server *s, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        op_origin_server_fini(&s[i]);
    free(s);
}

struct op_main_gen {
    uint64_t id;
    struct op_conf *conf; /* owned, except generation 1's */
    bool owns_conf;
    struct op_origin_server *servers; /* owned */
    size_t nservers;
    struct op_tls_ctx *tls; /* owned (connections on it hold their own references) */
    unsigned released;      /* workers done with it */
    bool closing;
    uv_timer_t reaper; /* frees it a loop turn after its watches stopped */
    struct op_main_gen *next;
};

static void gen_free(struct op_main_gen *mg)
{
    op_main_origins_free(mg->servers, mg->nservers);
    op_tls_ctx_free(mg->tls);
    if (mg->owns_conf)
        op_conf_free(mg->conf);
    free(mg);
}

static void on_reaper_closed(uv_handle_t *h)
{
    gen_free(h->data);
}

static void on_reaper(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, on_reaper_closed);
}

/* Every worker left it: stop its watches, free it once their handles closed. */
static void gen_retire(struct op_gens *g, struct op_main_gen *mg)
{
    for (struct op_main_gen **pp = &g->list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == mg) {
            *pp = mg->next;
            break;
        }
    }
    op_log_info("main", "configuration %llu released by every worker", (unsigned long long)mg->id);
    op_origin_watch_stop(mg->servers, mg->nservers);
    mg->closing = true;
    uv_timer_init(g->loop, &mg->reaper);
    mg->reaper.data = mg;
    uv_timer_start(&mg->reaper, on_reaper, 0, 0);
}

static void on_released(struct op_msg *m)
{
    void *arg;
    uint64_t id = op_worker_released_gen(m, &arg);
    struct op_gens *g = arg;
    free(m);
    for (struct op_main_gen *mg = g->list; mg != NULL; mg = mg->next) {
        if (mg->id != id)
            continue;
        if (++mg->released == g->nworkers && mg != g->list)
            gen_retire(g, mg);
        return;
    }
}

static void on_wake(void *arg)
{
    uv_async_send(arg);
}

static void on_async(uv_async_t *h)
{
    struct op_gens *g = h->data;
    op_mailbox_drain(&g->mailbox);
}

int op_gens_init(struct op_gens *g, uv_loop_t *loop, const char *path, const struct op_conf *conf,
                 struct op_origin_server *servers, size_t nservers, struct op_tls_ctx *tls_ctx,
                 struct op_main_tls *tls, struct op_worker **workers, unsigned nworkers)
{
    memset(g, 0, sizeof(*g));
    g->loop = loop;
    g->tls = tls;
    g->workers = workers;
    g->nworkers = nworkers;
    g->path = path ? strdup(path) : NULL;
    struct op_main_gen *mg = calloc(1, sizeof(*mg));
    if (mg == NULL || (path != NULL && g->path == NULL)) {
        free(mg);
        return OP_ENOMEM;
    }
    mg->id = g->next_id = 1;
    mg->conf = (struct op_conf *)conf;
    mg->servers = servers;
    mg->nservers = nservers;
    mg->tls = tls_ctx;
    g->list = mg;
    uv_async_init(loop, &g->async, on_async);
    g->async.data = g;
    op_mailbox_init(&g->mailbox, on_wake, &g->async);
    for (unsigned i = 0; i < nworkers; i++)
        op_worker_set_release_mailbox(workers[i], &g->mailbox, on_released, g);
    return op_origin_watch_start(servers, nservers, loop);
}

/* What a reload cannot change: the listener, the threads, the store, the
 * admin socket and the access log are made once. */
static void immutable(const struct op_conf *a, const struct op_conf *b, struct op_buf *errors)
{
#define SAME_STR(k)                                                                                \
    if (strcmp(a->k, b->k) != 0)                                                                   \
        op_buf_appendf(errors, "%s: " #k ": changing it needs a restart\n", b->path);
#define SAME_NUM(k)                                                                                \
    if (a->k != b->k)                                                                              \
        op_buf_appendf(errors, "%s: " #k ": changing it needs a restart\n", b->path);
    SAME_STR(listen)
    SAME_STR(listen_tls)
    SAME_NUM(workers)
    SAME_STR(cache_dir)
    SAME_NUM(cache_size)
    SAME_NUM(max_object_size)
    SAME_STR(admin_socket)
    SAME_STR(admin_group)
    SAME_STR(access_log)
    /* the fleet's connection and consumer are made once, at start */
#define SAME_FLEET(k, cmp)                                                                         \
    if (cmp)                                                                                       \
        op_buf_appendf(errors, "%s: fleet." #k ": changing it needs a restart\n", b->path);
    SAME_FLEET(node, strcmp(a->fleet_node, b->fleet_node) != 0)
    SAME_FLEET(region, strcmp(a->fleet_region, b->fleet_region) != 0)
    SAME_FLEET(nats, strcmp(a->fleet_nats, b->fleet_nats) != 0)
    SAME_FLEET(creds, strcmp(a->fleet_creds, b->fleet_creds) != 0)
    SAME_FLEET(stream, strcmp(a->fleet_stream, b->fleet_stream) != 0)
    SAME_FLEET(replicas, a->fleet_replicas != b->fleet_replicas)
    SAME_FLEET(publish_timeout, a->fleet_publish_timeout_ms != b->fleet_publish_timeout_ms)
#undef SAME_FLEET
#undef SAME_STR
#undef SAME_NUM
}

int op_gens_reload(struct op_gens *g, struct op_buf *errors, uint64_t *id)
{
    if (g->path == NULL) {
        op_buf_appendf(errors, "started from command-line flags: there is no file to reload\n");
        return OP_EINVAL;
    }
    if (g->stopped) {
        op_buf_appendf(errors, "the node is stopping\n");
        return OP_EINVAL;
    }
    struct op_conf *conf = op_conf_load(g->path, errors);
    if (conf == NULL)
        return OP_EINVAL;
    size_t before = errors->len;
    immutable(g->list->conf, conf, errors);
    if (errors->len != before) {
        op_conf_free(conf);
        return OP_EINVAL;
    }
    /* new certificates: new handshakes get them, established connections
     * keep the context they began on */
    struct op_tls_ctx *tls_ctx = NULL;
    if (op_main_tls_ctx(g->tls, conf, &tls_ctx, errors) != 0) {
        op_conf_free(conf);
        return OP_EINVAL;
    }
    size_t n = 0;
    struct op_origin_server *servers = op_main_origins_create(conf, &n);
    if (servers == NULL) {
        op_buf_appendf(errors,
                       "%s: an origin could not be set up: its name does not resolve, or its "
                       "origin_ca cannot be read (see the error log)\n",
                       g->path);
        op_tls_ctx_free(tls_ctx);
        op_conf_free(conf);
        return OP_EINVAL;
    }
    struct op_main_gen *mg = calloc(1, sizeof(*mg));
    if (mg == NULL) {
        op_main_origins_free(servers, n);
        op_tls_ctx_free(tls_ctx);
        op_conf_free(conf);
        op_buf_appendf(errors, "out of memory\n");
        return OP_ENOMEM;
    }
    mg->id = ++g->next_id;
    mg->conf = conf;
    mg->owns_conf = true;
    mg->servers = servers;
    mg->nservers = n;
    mg->tls = tls_ctx;
    struct op_main_gen *old = g->list;
    mg->next = old;
    g->list = mg;
    if (op_origin_watch_start(servers, n, g->loop) != 0)
        op_log_warn("main", "configuration %llu: cannot start its health checks",
                    (unsigned long long)mg->id);
    enum op_log_level lvl = OP_LOG_INFO;
    op_log_level_parse(conf->log_level, &lvl);
    op_log_set_level(lvl);
    op_main_tls_retime(g->tls, conf);
    for (unsigned i = 0; i < g->nworkers; i++) {
        if (op_worker_reload(g->workers[i], mg->id, conf, servers, tls_ctx) != 0)
            op_log_error("main", "w%u: cannot send it configuration %llu", i,
                         (unsigned long long)mg->id);
    }
    /* the old one may already be released by all (a worker that failed to
     * take an earlier one) */
    if (old->released == g->nworkers)
        gen_retire(g, old);
    op_log_info("main", "configuration %llu loaded from %s; workers switch to it now",
                (unsigned long long)mg->id, g->path);
    *id = mg->id;
    return 0;
}

int64_t op_gens_tls_expiry(const struct op_gens *g)
{
    return g->list != NULL && g->list->tls != NULL ? op_tls_ctx_first_expiry(g->list->tls) : 0;
}

void op_gens_stop(struct op_gens *g)
{
    if (g->stopped)
        return;
    g->stopped = true;
    for (struct op_main_gen *mg = g->list; mg != NULL; mg = mg->next)
        op_origin_watch_stop(mg->servers, mg->nservers);
    pthread_mutex_lock(&g->mailbox.lock);
    g->mailbox.wake = NULL; /* later messages wait for op_gens_fini */
    pthread_mutex_unlock(&g->mailbox.lock);
    uv_close((uv_handle_t *)&g->async, NULL);
}

void op_gens_fini(struct op_gens *g)
{
    op_mailbox_drain(&g->mailbox);   /* may retire generations: reapers start */
    uv_run(g->loop, UV_RUN_DEFAULT); /* their close callbacks free them */
    while (g->list != NULL) {
        struct op_main_gen *mg = g->list;
        g->list = mg->next;
        gen_free(mg);
    }
    op_mailbox_fini(&g->mailbox);
    free(g->path);
}
