/* src/main_gens.h: configuration generations on the main thread: the origin
 * servers of a config, and reloads (SIGHUP, or the admin API) that hand a new
 * config to every worker and free the old one once all have released it. */
#ifndef OUTPOST_MAIN_GENS_H
#define OUTPOST_MAIN_GENS_H

#include "main_tls.h"
#include "outpost/conf.h"
#include "outpost/fetch.h"
#include "outpost/worker.h"

#include <uv.h>

/* One op_origin_server per origin of every site, in order. NULL when a name
 * does not resolve (logged). */
struct op_origin_server *op_main_origins_create(const struct op_conf *conf, size_t *n);
void op_main_origins_free(struct op_origin_server *s, size_t n);

struct op_main_gen;

struct op_gens {
    uv_loop_t *loop;            /* borrowed: the main loop */
    char *path;                 /* owned: the config file; NULL when started from flags */
    struct op_worker **workers; /* borrowed */
    struct op_main_tls *tls;    /* borrowed: the ticket keys, for each generation's context */
    unsigned nworkers;
    struct op_main_gen *list; /* owned: the current one first, then those retiring */
    uint64_t next_id;
    uv_async_t async;
    struct op_mailbox mailbox; /* the workers' "released" messages */
    bool stopped;
};

/* Generation 1 is <conf> (borrowed: the caller frees it after op_gens_fini)
 * with <servers> and <tls_ctx> (NULL without listen_tls), both owned from
 * now on. Starts the servers' watches. */
int op_gens_init(struct op_gens *g, uv_loop_t *loop, const char *path, const struct op_conf *conf,
                 struct op_origin_server *servers, size_t nservers, struct op_tls_ctx *tls_ctx,
                 struct op_main_tls *tls, struct op_worker **workers, unsigned nworkers);
/* Load the config file again and hand it to every worker. 0 with *id set, or
 * OP_EINVAL with the reasons appended to <errors> (one per line) and the old
 * config still in use. */
int op_gens_reload(struct op_gens *g, struct op_buf *errors, uint64_t *id);
/* The earliest certificate expiry of the current generation (Unix time);
 * 0 without TLS. */
int64_t op_gens_tls_expiry(const struct op_gens *g);
/* Stopping: stop every generation's watches and the async handle. */
void op_gens_stop(struct op_gens *g);
/* After the workers are destroyed: free every generation. */
void op_gens_fini(struct op_gens *g);

#endif
