/* include/outpost/proxy.h: the per-request state machine: client connection ->
 * strict gate -> llhttp -> route -> cache lookup -> hit, or origin fetch ->
 * stream to the client and hand storable responses to the store writer.
 *
 * One op_proxy_ctx per worker, used only on that worker's loop thread. Store
 * completions come back through the worker's mailbox.
 */
#ifndef OUTPOST_PROXY_H
#define OUTPOST_PROXY_H

#include "outpost/conf.h"
#include "outpost/fetch.h"
#include "outpost/log.h"
#include "outpost/store.h"

#include <uv.h>

struct op_client;
struct op_pub;
struct op_tls_ctx;
struct op_flight_table;
struct op_fleet;

struct op_proxy_site {
    const struct op_conf_site *conf; /* borrowed: lives as long as the config */
    struct op_upstream upstream;     /* this worker's pools for the site's origins */
    struct op_site_metrics *metrics; /* borrowed: the worker's, by host (kept over reloads) */
};

/* One configuration generation on a worker: its config and the sites' origin
 * pools. A reload makes a new one current; the old one lives on while the
 * requests and publishers that began under it run (each holds a reference),
 * then ctx->on_gen_released gets it. */
struct op_proxy_gen {
    uint64_t id;
    struct op_proxy_ctx *ctx;    /* borrowed: the worker's */
    const struct op_conf *conf;  /* borrowed: outlives every reference */
    struct op_tls_ctx *tls;      /* borrowed: new TLS connections' context; NULL for none */
    struct op_proxy_site *sites; /* owned by the worker: nsites */
    size_t nsites;
    uint32_t refs;     /* requests and publishers, plus one while current */
    uv_timer_t reaper; /* the worker's: frees it once its pools have closed */
};

struct op_proxy_ctx {
    uv_loop_t *loop; /* borrowed: the worker's */
    unsigned worker_id;
    const struct op_conf *conf;     /* borrowed: the current generation's */
    struct op_store *store;         /* borrowed */
    struct op_store_reader *reader; /* owned by the worker */
    /* borrowed; NULL without a fleet. Until it has caught up with the purge
     * stream nothing is served from the store (op_fleet_caught_up). */
    struct op_fleet *fleet;
    struct op_proxy_gen *gen; /* the current generation (holds a reference) */
    /* A generation no longer current lost its last reference. */
    void (*on_gen_released)(struct op_proxy_ctx *ctx, struct op_proxy_gen *g);
    struct op_mailbox *mailbox; /* borrowed: the worker's, for store acks */
    struct op_metrics metrics;
    struct op_site_metrics *site_metrics; /* owned by the worker: one per host seen */
    size_t nsite_metrics;
    struct op_access_buf access; /* this worker's access log lines */
    uint64_t next_request_id;
    uint32_t nclients;
    uint32_t nhandshakes;           /* TLS connections still in their handshake */
    char tls_read[16 * 1024 + 512]; /* TLS ciphertext of one read, fed at once (a record) */
    struct op_client *clients;      /* borrowed: list of live connections */
    struct op_flight_table *flight; /* borrowed: the process-wide in-flight table */
    struct op_pub *pubs;            /* owned: origin fetches behind flights, led from here */
    bool draining;
    void (*on_drained)(struct op_proxy_ctx *ctx); /* nclients reached 0 while draining */
};

/* Make <g> current (refs becomes 1); the previous one goes when its last
 * request ends. */
void op_proxy_set_gen(struct op_proxy_ctx *ctx, struct op_proxy_gen *g);
void op_proxy_gen_ref(struct op_proxy_gen *g);
void op_proxy_gen_unref(struct op_proxy_gen *g);

/* Accept one connection from <listener> (its connection_cb calls this);
 * <tls>: it speaks TLS, on the current generation's context. Refuses (and
 * counts) beyond max_connections, and TLS ones beyond tls_max_handshakes
 * under way. */
void op_proxy_accept(struct op_proxy_ctx *ctx, uv_stream_t *listener, bool tls);
/* Stop taking new requests: idle connections close now, busy ones after their
 * response. ctx->on_drained runs when none is left. */
void op_proxy_drain(struct op_proxy_ctx *ctx);
/* Close every connection now (the shutdown deadline passed). */
void op_proxy_close_all(struct op_proxy_ctx *ctx);
/* End the flights led from this worker (it is stopping): their waiters get
 * stale or an error. */
void op_proxy_abort_background(struct op_proxy_ctx *ctx);

#endif
