/* include/outpost/worker.h: one worker thread = one uv loop, its own
 * SO_REUSEPORT listeners (plain and TLS), its own origin pools, store reader and metric shard.
 *
 * create/start/stop/join are called on the main thread; everything else a
 * worker does happens on its own thread. The main thread reaches a running
 * worker only through its mailbox.
 */
#ifndef OUTPOST_WORKER_H
#define OUTPOST_WORKER_H

#include "outpost/conf.h"
#include "outpost/log.h"
#include "outpost/store.h"

#include <sys/socket.h>

struct op_worker; /* opaque */
struct op_flight_table;
struct op_access_log;
struct op_origin_server;
struct op_tls_ctx;
struct op_fleet;

/* What a worker is made with; every pointer is borrowed and must outlive
 * the worker (tls and servers: until it released generation 1). */
struct op_worker_config {
    const struct op_conf *conf; /* generation 1 */
    struct op_store *store;
    struct op_flight_table *flight;
    const struct sockaddr_storage *listen_addr;
    const struct sockaddr_storage *tls_addrs; /* ntls_addrs: each of listen_tls */
    size_t ntls_addrs;
    struct op_origin_server *servers; /* one per origin of every conf site, in order */
    struct op_tls_ctx *tls;           /* generation 1's; NULL without listen_tls */
    struct op_access_log *access;     /* NULL: no access log */
    struct op_fleet *fleet;           /* NULL: no fleet */
};

/* Make the worker and its listening sockets (so a busy port fails here, on
 * the main thread). Returns 0, OP_EADDRINUSE, OP_EIO, OP_EINVAL (too many
 * addresses) or OP_ENOMEM. */
int op_worker_create(unsigned id, const struct op_worker_config *cfg, struct op_worker **out);

/* Configuration generations. The worker starts on generation 1 (<conf>,
 * <servers>, <tls>). op_worker_reload hands it generation <id>: new requests use
 * it at once; requests under way finish on the one they began with. When the
 * worker no longer uses a generation (it left it and its last request ended),
 * it posts a message to <released_to> (run with <run> on the receiver's
 * thread): op_worker_released_gen() tells which;
 * the receiver frees the message with free(). conf and servers must live
 * until every worker released them. */
void op_worker_set_release_mailbox(struct op_worker *w, struct op_mailbox *released_to,
                                   void (*run)(struct op_msg *m), void *arg);
int op_worker_reload(struct op_worker *w, uint64_t id, const struct op_conf *conf,
                     struct op_origin_server *servers, struct op_tls_ctx *tls);
/* The generation a "released" message names; *arg gets the set_release arg. */
uint64_t op_worker_released_gen(const struct op_msg *m, void **arg);
/* Start its thread. 0 or OP_ENOMEM. */
int op_worker_start(struct op_worker *w);
/* Ask it to stop: it closes its listener, finishes in-flight responses up to
 * shutdown_timeout, then its loop ends. Returns at once. */
void op_worker_stop(struct op_worker *w);
/* Wait for the thread and close its store reader (before op_store_close). */
void op_worker_join(struct op_worker *w);
/* After op_store_close: run the messages still queued for it, free it. */
void op_worker_destroy(struct op_worker *w);
/* Add the worker's per-site counters to <sum>, which holds <n> hosts so far
 * (at most <cap>); returns the new count. Racy but untorn reads. */
size_t op_worker_add_site_metrics(const struct op_worker *w, struct op_site_metrics *sum, size_t n,
                                  size_t cap);
/* Add the worker's counters to <sum> (a racy but untorn read). */
void op_worker_add_metrics(const struct op_worker *w, struct op_metrics *sum);

#endif
