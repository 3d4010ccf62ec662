/* outpost: argv, config, store writer, workers, signals and exit codes.
 *
 * Exit codes: 0 stopped cleanly (or -t found the config valid); 1 bad config;
 * 2 bad usage; 3 cannot listen (address in use or not allowed); 4 cannot open
 * the cache; 5 other start-up failure (resolving an origin, threads, memory).
 */
#include "main_gens.h"
#include "outpost/admin.h"
#include "outpost/conf.h"
#include "outpost/fetch.h"
#include "outpost/fleet.h"
#include "outpost/flight.h"
#include "outpost/log.h"
#include "outpost/net.h"
#include "outpost/store.h"
#include "outpost/worker.h"

#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define OUTPOST_VERSION "0.1.0"

enum { EXIT_CONF = 1, EXIT_USAGE = 2, EXIT_LISTEN = 3, EXIT_STORE = 4, EXIT_START = 5 };

static void usage(FILE *out)
{
    fprintf(out, "usage: outpost -c FILE [-t]\n"
                 "       outpost --listen HOST:PORT --origin http[s]://HOST:PORT --cache-dir DIR\n"
                 "               [--cache-size SIZE] [--workers N] [--admin-socket PATH]\n"
                 "               [--listen-tls HOST:PORT --tls-cert FILE --tls-key FILE]\n"
                 "               [--origin-ca FILE]\n"
                 "options:\n"
                 "  -c, --config FILE      run from a YAML config (see conf/outpost.yaml)\n"
                 "  -t, --test             check the config and exit: 0 valid, 1 errors\n"
                 "  --listen HOST:PORT     quick start: address to accept HTTP on\n"
                 "  --origin URL           quick start: origin for every Host\n"
                 "  --cache-dir DIR        quick start: LMDB cache directory\n"
                 "  --cache-size SIZE      quick start: cache size (default 1g)\n"
                 "  --workers N            worker threads (default: online CPUs)\n"
                 "  --admin-socket PATH    admin Unix socket path\n"
                 "  --log-level LEVEL      error, warn, info or debug\n"
                 "  --listen-tls HOST:PORT quick start: address to accept HTTPS on\n"
                 "  --tls-cert FILE        quick start: its certificate chain (PEM)\n"
                 "  --tls-key FILE         quick start: its private key (PEM)\n"
                 "  --origin-ca FILE       quick start: CAs trusted for an https:// origin\n"
                 "                         (default: the system bundle)\n"
                 "  -V, --version          print the version\n"
                 "exit codes: 0 ok, 1 bad config, 2 bad usage, 3 cannot listen,\n"
                 "            4 cannot open the cache, 5 other start-up failure\n");
}

struct quick {
    const char *key;
    const char *value;
    bool site;
};

static struct op_conf *config_from_flags(const struct quick *q, size_t n)
{
    char err[256];
    struct op_conf *conf = op_conf_new_default();
    struct op_conf_site *site = conf ? op_conf_add_site(conf) : NULL;
    if (site == NULL) {
        op_conf_free(conf);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (op_conf_set(conf, q[i].site ? site : NULL, q[i].key, q[i].value, err, sizeof(err)) !=
            0) {
            fprintf(stderr, "outpost: --%s: %s\n", q[i].key, err);
            op_conf_free(conf);
            return NULL;
        }
    }
    struct op_buf errors;
    op_buf_init(&errors, 64 * 1024);
    if (op_conf_validate(conf, &errors) != 0) {
        fprintf(stderr, "%.*s", (int)errors.len, errors.data);
        op_buf_fini(&errors);
        op_conf_free(conf);
        return NULL;
    }
    op_buf_fini(&errors);
    return conf;
}

static void sum_metrics(void *arg, struct op_metrics *sum);

struct runtime {
    struct op_main_tls tls;
    struct op_worker **workers;
    unsigned nworkers;
    struct op_gens gens;
    struct op_admin *admin;
    uv_signal_t sigterm, sigint, sighup;
    bool stopping;
};

static void sum_metrics(void *arg, struct op_metrics *sum)
{
    struct runtime *rt = arg;
    for (unsigned i = 0; i < rt->nworkers; i++)
        op_worker_add_metrics(rt->workers[i], sum);
}

static size_t sum_site_metrics(void *arg, struct op_site_metrics *out, size_t cap)
{
    struct runtime *rt = arg;
    size_t n = 0;
    for (unsigned i = 0; i < rt->nworkers; i++)
        n = op_worker_add_site_metrics(rt->workers[i], out, n, cap);
    return n;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    if (rt->stopping)
        return;
    rt->stopping = true;
    op_log_info("main", "signal %d: stopping; finishing in-flight responses", signum);
    for (unsigned i = 0; i < rt->nworkers; i++)
        op_worker_stop(rt->workers[i]);
    op_gens_stop(&rt->gens);
    op_main_tls_stop(&rt->tls);
    op_admin_stop(rt->admin);
    uv_close((uv_handle_t *)&rt->sigterm, NULL);
    uv_close((uv_handle_t *)&rt->sigint, NULL);
    uv_close((uv_handle_t *)&rt->sighup, NULL);
}

static int reload(void *arg, struct op_buf *errors, uint64_t *id)
{
    struct runtime *rt = arg;
    return op_gens_reload(&rt->gens, errors, id);
}

static int64_t tls_expiry(void *arg)
{
    struct runtime *rt = arg;
    return op_gens_tls_expiry(&rt->gens);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    (void)signum;
    struct op_buf errors;
    op_buf_init(&errors, 1 << 20);
    uint64_t id;
    if (reload(rt, &errors, &id) != 0)
        op_log_error("main", "SIGHUP: the new configuration was refused; the old one stays:\n%.*s",
                     (int)errors.len, errors.data ? errors.data : "");
    op_buf_fini(&errors);
}

static int run(struct op_conf *conf, const char *path)
{
    enum op_log_level lvl = OP_LOG_INFO;
    op_log_level_parse(conf->log_level, &lvl);
    op_log_set_level(lvl);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_storage listen_addr, tls_addrs[OP_CONF_MAX_LISTEN];
    if (op_net_resolve(conf->listen_host, conf->listen_port, &listen_addr) != 0)
        return EXIT_START;
    for (size_t i = 0; i < conf->ntls_listens; i++)
        if (op_net_resolve(conf->tls_listens[i].host, conf->tls_listens[i].port, &tls_addrs[i]) !=
            0)
            return EXIT_START;
    struct runtime rt = {0};
    uv_loop_t *loop = uv_default_loop();
    if (op_main_tls_start(&rt.tls, loop) != 0)
        return EXIT_START;
    struct op_tls_ctx *tls_ctx = NULL;
    struct op_buf errors;
    op_buf_init(&errors, 1 << 20);
    if (op_main_tls_ctx(&rt.tls, conf, &tls_ctx, &errors) != 0) {
        op_log_error("main", "TLS:\n%.*s", (int)errors.len, errors.data ? errors.data : "");
        op_buf_fini(&errors);
        op_main_tls_fini(&rt.tls);
        return EXIT_CONF;
    }
    op_buf_fini(&errors);
    size_t norigins = 0;
    struct op_origin_server *origins = op_main_origins_create(conf, &norigins);
    struct op_access_log *access = NULL;
    if (origins == NULL ||
        (conf->access_log[0] != '\0' && op_access_log_open(conf->access_log, &access) != 0)) {
        op_main_origins_free(origins, norigins);
        op_tls_ctx_free(tls_ctx);
        op_main_tls_fini(&rt.tls);
        return EXIT_START;
    }
    struct op_store *store;
    struct op_store_config scfg = {.dir = conf->cache_dir,
                                   .map_size = conf->cache_size,
                                   .max_object_size = conf->max_object_size};
    if (op_store_open(&scfg, &store) != 0) {
        op_access_log_close(access);
        op_main_origins_free(origins, norigins);
        op_tls_ctx_free(tls_ctx);
        op_main_tls_fini(&rt.tls);
        return EXIT_STORE;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    rt.nworkers = conf->workers ? (unsigned)conf->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
    struct op_flight_table *flight;
    if (op_flight_table_create(65536, rt.nworkers, &flight) != 0) {
        op_access_log_close(access);
        op_store_close(store);
        op_main_origins_free(origins, norigins);
        op_tls_ctx_free(tls_ctx);
        op_main_tls_fini(&rt.tls);
        return EXIT_START;
    }
    /* the fleet before the admin and the workers, which hand it purges and
     * ask it whether the store may answer */
    struct op_fleet *fleet = NULL;
    if (conf->fleet_nats[0] != '\0') {
        char why[256];
        if (op_fleet_start(conf, store, &fleet, why, sizeof(why)) != 0) {
            op_log_error("main", "%s", why);
            op_flight_table_destroy(flight);
            op_access_log_close(access);
            op_store_close(store);
            op_main_origins_free(origins, norigins);
            op_tls_ctx_free(tls_ctx);
            op_main_tls_fini(&rt.tls);
            return EXIT_START;
        }
    }
    /* the admin socket before the workers: a node already answering on it
     * stops this one before anything else has started */
    int code = 0;
    if (conf->admin_socket[0] != '\0') {
        struct op_admin_config acfg = {.loop = loop,
                                       .path = conf->admin_socket,
                                       .group = conf->admin_group,
                                       .node = conf->cache_name,
                                       .store = store,
                                       .fleet = fleet,
                                       .metrics = sum_metrics,
                                       .site_metrics = sum_site_metrics,
                                       .reload = reload,
                                       .tls_expiry = tls_expiry,
                                       .arg = &rt};
        int arc = op_admin_start(&acfg, &rt.admin);
        if (arc != 0) {
            op_log_error("main", "cannot serve the admin socket %s: %s", conf->admin_socket,
                         op_err_msg(arc));
            code = arc == OP_EADDRINUSE ? EXIT_LISTEN : EXIT_START;
        }
    }
    rt.workers = calloc(rt.nworkers, sizeof(*rt.workers));
    struct op_worker_config wcfg = {
        .conf = conf,
        .store = store,
        .flight = flight,
        .listen_addr = &listen_addr,
        .tls_addrs = tls_addrs,
        .ntls_addrs = conf->ntls_listens,
        .servers = origins,
        .tls = tls_ctx,
        .access = access,
        .fleet = fleet,
    };
    for (unsigned i = 0; code == 0 && rt.workers != NULL && i < rt.nworkers; i++) {
        int rc = op_worker_create(i, &wcfg, &rt.workers[i]);
        if (rc != 0) {
            op_log_error("main", "cannot listen on %s%s%s: %s", conf->listen,
                         conf->ntls_listens ? " or " : "", conf->listen_tls, op_err_msg(rc));
            code = EXIT_LISTEN;
            break;
        }
    }
    if (rt.workers == NULL)
        code = EXIT_START;
    if (code != 0) {
        /* nothing has started: exit without unwinding half-made workers */
        op_admin_stop(rt.admin);
        uv_run(loop, UV_RUN_DEFAULT); /* the admin's close callbacks */
        op_fleet_stop(fleet);
        op_store_close(store);
        op_admin_free(rt.admin);
        op_flight_table_destroy(flight);
        op_access_log_close(access);
        free(rt.workers);
        op_main_origins_free(origins, norigins);
        op_tls_ctx_free(tls_ctx);
        op_main_tls_fini(&rt.tls);
        return code;
    }
    for (unsigned i = 0; i < rt.nworkers; i++) {
        if (op_worker_start(rt.workers[i]) != 0) {
            op_log_error("main", "cannot start worker threads");
            exit(EXIT_START);
        }
    }
    /* generation 1: the origins are the generations' from now on */
    if (op_gens_init(&rt.gens, loop, path, conf, origins, norigins, tls_ctx, &rt.tls, rt.workers,
                     rt.nworkers) != 0) {
        op_log_error("main", "cannot start the origin health checks: out of memory");
        exit(EXIT_START);
    }
    uv_signal_init(loop, &rt.sigterm);
    uv_signal_init(loop, &rt.sigint);
    uv_signal_init(loop, &rt.sighup);
    rt.sigterm.data = rt.sigint.data = rt.sighup.data = &rt;
    uv_signal_start(&rt.sigterm, on_signal, SIGTERM);
    uv_signal_start(&rt.sigint, on_signal, SIGINT);
    uv_signal_start(&rt.sighup, on_sighup, SIGHUP);
    op_main_tls_retime(&rt.tls, conf);
    op_log_info("main", "ready: listening on http://%s:%u%s%s with %u workers, cache %s",
                conf->listen_host, conf->listen_port, conf->ntls_listens ? " and https://" : "",
                conf->listen_tls, rt.nworkers, conf->cache_dir);
    uv_run(loop, UV_RUN_DEFAULT);

    for (unsigned i = 0; i < rt.nworkers; i++)
        op_worker_join(rt.workers[i]);
    /* before the store, whose answers its consumer waits for; what it still
     * answers the admin waits in the admin's mailbox */
    op_fleet_stop(fleet);
    op_store_close(store); /* finishes queued writes; acks wait in the mailboxes */
    op_admin_free(rt.admin);
    for (unsigned i = 0; i < rt.nworkers; i++)
        op_worker_destroy(rt.workers[i]);
    op_gens_fini(&rt.gens); /* the configurations reloaded since start, and their origins */
    op_main_tls_fini(&rt.tls);
    op_flight_table_destroy(flight);
    op_access_log_close(access); /* after the workers handed over their last lines */
    uv_loop_close(loop);
    free(rt.workers);
    op_log_info("main", "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        O_LISTEN = 256,
        O_ORIGIN,
        O_CACHE_DIR,
        O_CACHE_SIZE,
        O_WORKERS,
        O_ADMIN,
        O_LOG,
        O_LISTEN_TLS,
        O_TLS_CERT,
        O_TLS_KEY,
        O_ORIGIN_CA
    };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"listen", required_argument, NULL, O_LISTEN},
        {"origin", required_argument, NULL, O_ORIGIN},
        {"cache-dir", required_argument, NULL, O_CACHE_DIR},
        {"cache-size", required_argument, NULL, O_CACHE_SIZE},
        {"workers", required_argument, NULL, O_WORKERS},
        {"admin-socket", required_argument, NULL, O_ADMIN},
        {"log-level", required_argument, NULL, O_LOG},
        {"listen-tls", required_argument, NULL, O_LISTEN_TLS},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"origin-ca", required_argument, NULL, O_ORIGIN_CA},
        {NULL, 0, NULL, 0},
    };
    /* Blocks of 1 MiB and more (bodies, stale copies) are mapped each on its
     * own and go back to the system when freed. By default glibc raises this
     * threshold to the largest block freed (up to 32 MiB), after which freed
     * 16 MiB copies stay in the heap and in RSS. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    const char *config = NULL;
    bool test = false;
    struct quick q[16];
    size_t nq = 0;
    bool have_origin = false, have_listen = false, have_dir = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 't': test = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("outpost %s\n", OUTPOST_VERSION); return 0;
        case O_LISTEN:
            q[nq++] = (struct quick){"listen", optarg, false};
            have_listen = true;
            break;
        case O_ORIGIN:
            q[nq++] = (struct quick){"origin", optarg, true};
            have_origin = true;
            break;
        case O_CACHE_DIR:
            q[nq++] = (struct quick){"cache_dir", optarg, false};
            have_dir = true;
            break;
        case O_CACHE_SIZE: q[nq++] = (struct quick){"cache_size", optarg, false}; break;
        case O_WORKERS: q[nq++] = (struct quick){"workers", optarg, false}; break;
        case O_ADMIN: q[nq++] = (struct quick){"admin_socket", optarg, false}; break;
        case O_LOG: q[nq++] = (struct quick){"log_level", optarg, false}; break;
        case O_LISTEN_TLS: q[nq++] = (struct quick){"listen_tls", optarg, false}; break;
        case O_TLS_CERT: q[nq++] = (struct quick){"tls_cert", optarg, false}; break;
        case O_TLS_KEY: q[nq++] = (struct quick){"tls_key", optarg, false}; break;
        case O_ORIGIN_CA: q[nq++] = (struct quick){"origin_ca", optarg, true}; break;
        default: usage(stderr); return EXIT_USAGE;
        }
        if (nq == sizeof(q) / sizeof(q[0])) {
            fprintf(stderr, "outpost: too many options\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "outpost: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    struct op_conf *conf = NULL;
    if (config != NULL) {
        if (nq > 0) {
            fprintf(stderr, "outpost: -c cannot be combined with the quick-start flags\n");
            return EXIT_USAGE;
        }
        struct op_buf errors;
        op_buf_init(&errors, 1024 * 1024);
        conf = op_conf_load(config, &errors);
        if (conf == NULL) {
            fprintf(stderr, "%.*s", (int)errors.len, errors.data ? errors.data : "");
            op_buf_fini(&errors);
            return EXIT_CONF;
        }
        op_buf_fini(&errors);
    } else {
        if (!have_listen || !have_origin || !have_dir) {
            fprintf(stderr, "outpost: give -c FILE, or --listen, --origin and --cache-dir\n");
            usage(stderr);
            return EXIT_USAGE;
        }
        conf = config_from_flags(q, nq);
        if (conf == NULL)
            return EXIT_CONF;
    }
    if (test) {
        /* certificates and keys are read as a start would read them */
        struct op_tls_ctx *tls_ctx = NULL;
        struct op_buf errors;
        op_buf_init(&errors, 1 << 20);
        int rc = op_main_tls_ctx(NULL, conf, &tls_ctx, &errors);
        op_tls_ctx_free(tls_ctx);
        if (rc != 0)
            fprintf(stderr, "%.*s", (int)errors.len, errors.data ? errors.data : "");
        else
            printf("%s: configuration ok\n", conf->path);
        op_buf_fini(&errors);
        op_conf_free(conf);
        return rc != 0 ? EXIT_CONF : 0;
    }
    int code = run(conf, config);
    op_conf_free(conf);
    return code;
}
