/* include/outpost/worker.h: one worker thread = one uv loop, its own
 * SO_REUSEPORT listener, its own origin pools, store reader and metric shard.
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

/* Make the worker and its listening socket (so a busy port fails here, on
 * the main thread). <servers> has one entry per origin of every conf site, in
 * order (conf->sites[i].norigins each). Returns 0, OP_EADDRINUSE, OP_EIO or
 * OP_ENOMEM. <conf>, <store>, <flight>, <servers> and <access> (NULL: no
 * access log) are borrowed and must outlive the worker. */
int op_worker_create(unsigned id, const struct op_conf *conf, struct op_store *store,
                     struct op_flight_table *flight, const struct sockaddr_storage *listen_addr,
                     struct op_origin_server *servers, struct op_access_log *access,
                     struct op_worker **out);

/* Configuration generations. The worker starts on generation 1 (<conf>,
 * <servers>). op_worker_reload hands it generation <id>: new requests use
 * it at once; requests under way finish on the one they began with. When the
 * worker no longer uses a generation (it left it and its last request ended),
 * it posts a message to <released_to> (run with <run> on the receiver's
 * thread): op_worker_released_gen() tells which;
 * the receiver frees the message with free(). conf and servers must live
 * until every worker released them. */
void op_worker_set_release_mailbox(struct op_worker *w, struct op_mailbox *released_to,
                                   void (*run)(struct op_msg *m), void *arg);
int op_worker_reload(struct op_worker *w, uint64_t id, const struct op_conf *conf,
                     struct op_origin_server *servers);
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
