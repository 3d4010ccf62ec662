/* include/outpost/fetch.h: the origin client: a keep-alive connection pool per
 * origin and per worker, request sending, response parsing and timeouts.
 *
 * Everything here runs on the owning worker's loop. A fetch reports to its
 * owner through op_fetch_cbs; after on_done or on_error no callback runs
 * again. The owner frees every fetch with op_fetch_abort(), exactly once, at
 * any time (also from inside a callback, as its last use of the fetch).
 * Callbacks are never called from inside op_fetch_start().
 */
#ifndef OUTPOST_FETCH_H
#define OUTPOST_FETCH_H

#include "outpost/core.h"
#include "outpost/http.h"
#include "outpost/log.h"
#include "outpost/tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

struct op_oconn;
struct op_origin_watch;
struct op_upstream;

/* What one origin server is, from the config (strings borrowed from it). */
struct op_origin_spec {
    const char *name; /* the URL as written, for logs */
    const char *host; /* a name (re-resolved while running) or an address */
    uint16_t port;
    uint32_t weight;
    uint64_t resolve_interval_ms; /* 0: resolve at start only */
    const char *check_path;       /* "": no active health checks */
    const char *check_host;       /* Host sent with the checks; "": HOST:PORT */
    uint64_t check_interval_ms;
    uint64_t check_timeout_ms;
    uint32_t check_rise;  /* good checks in a row that bring it back */
    uint32_t check_fall;  /* bad checks in a row that take it out */
    bool tls;             /* https: TLS to it */
    const char *tls_name; /* the name sent as SNI and checked in its certificate (copied) */
    const char *tls_ca;   /* CA file; "": the system bundle */
    bool tls_verify;
};

/* One origin server as the whole process knows it: its address, followed by
 * re-resolving its name, and the verdict of its active health checks. Made
 * by the main thread, watched on the main loop (fetch_watch.c), read by every
 * worker. */
struct op_origin_server {
    struct op_origin_spec spec;
    pthread_mutex_t lock; /* guards addr */
    struct sockaddr_storage addr;
    _Atomic uint32_t addr_gen; /* bumped when addr changes: pooled connections retire */
    _Atomic bool healthy;      /* the active checks' verdict; always true without them */
    /* Stall detection across workers: requests out to it that still wait
     * for their response head (one reading a long body is not waiting), and
     * since when no response head has come (op_time_mono_ms). */
    _Atomic uint32_t inflight;
    _Atomic uint64_t quiet_since_ms;
    struct op_origin_watch *watch; /* owned: main loop state, NULL when not watched */
    struct op_tls_ctx *tls;        /* owned: the client context of an https origin */
    char tls_name[256];            /* spec.tls_name points here */
};

/* Resolve spec->host (blocking getaddrinfo: main thread, at start-up) and,
 * for an https origin, load its trusted certificates. 0, OP_ENOTFOUND, or
 * OP_EINVAL (a CA file that cannot be read), logged with the name. */
int op_origin_server_init(struct op_origin_server *s, const struct op_origin_spec *spec);
/* After op_origin_watch_stop and the loop has closed its handles. */
void op_origin_server_fini(struct op_origin_server *s);
/* The current address and its generation (any thread). */
void op_origin_server_addr(struct op_origin_server *s, struct sockaddr_storage *addr,
                           uint32_t *gen);
/* Start the active health checks (spec.check_path set) and the periodic
 * re-resolution (a host name and resolve_interval_ms > 0) of <n> servers on
 * <loop>, the main loop. 0 or OP_ENOMEM. */
int op_origin_watch_start(struct op_origin_server *s, size_t n, uv_loop_t *loop);
/* Stop them; the loop then runs until their handles are closed. */
void op_origin_watch_stop(struct op_origin_server *s, size_t n);

/* One worker's view of one origin server: its pool, limit, queue and
 * circuit. */
struct op_origin {
    uv_loop_t *loop;                 /* borrowed: the worker's */
    struct op_origin_server *server; /* borrowed: process-wide */
    struct op_upstream *group;       /* borrowed: the site's origins on this worker */
    const char *name;                /* borrowed: for logs */
    uint32_t weight;
    int64_t wrr_current; /* smooth weighted round robin state */
    uint64_t connect_timeout_ms;
    uint64_t first_byte_timeout_ms;
    uint64_t between_bytes_timeout_ms;
    uint32_t idle_max;
    uint64_t idle_timeout_ms; /* pooled at most this long (op_fetch's pool_idle_ms) */
    uint32_t nidle;
    struct op_oconn *idle;      /* owned: pooled connections (singly linked) */
    struct op_metrics *metrics; /* borrowed: the worker's shard */
    bool closing;
    /* Adaptive concurrency limit (AIMD) for this worker's share of the origin:
     * it comes down when the origin sheds load (op_http_sheds_load: a
     * Retry-After, or a few bare 503s in a short time) or times out, and grows by
     * one per limit's worth of good answers, up to max_conns. After a sign
     * of overload nothing new starts for about one round trip, since refused
     * requests come back at once and would otherwise be replaced at once.
     * Fetches beyond it wait in a FIFO queue (at most queue_max, each for
     * queue_timeout_ms). */
    uint32_t max_conns;
    uint32_t queue_max;
    uint64_t queue_timeout_ms;
    double limit;
    uint32_t inflight;
    uint64_t last_cut_ms;
    uint64_t hold_until_ms; /* after a 503/429 or timeout nothing new starts before this */
    uint64_t shed_at[2];    /* when the last likely-shedding answers came (fetch_limit.c) */
    /* Circuit breaker (passive health): fail_threshold connect failures or
     * timeouts in a row open it. While it is open the origin is "down":
     * requests with a stale copy to fall back on get it and leave the origin
     * alone until the cooldown has passed. A request with nothing to serve
     * may always probe while no probe is under way (one at a time: the
     * others meanwhile find the origin "full"). A probe's answer closes the
     * circuit; its failure opens it again for twice the last cooldown (up
     * to OP_ORIGIN_COOLDOWN_GROWTH times cooldown_ms), so the cooldown grows
     * only while probes fail. fail_threshold 0: never. */
    uint32_t fail_threshold;
    uint64_t cooldown_ms; /* the first cooldown (origin_fail_cooldown) */
    uint32_t fails;
    uint64_t open_until_ms; /* 0: closed */
    uint64_t backoff_ms;    /* the cooldown now, while open */
    bool probing;
    double rtt_ms; /* smoothed time to a good response head */
    /* Stalled: requests are out (from any worker) and no response head has
     * come for stall_ms (0: never). */
    uint64_t stall_ms;
    uint32_t queued;
    struct op_fetch *queue_head, *queue_tail; /* borrowed: waiting fetches, oldest first */
    uv_timer_t queue_timer;                   /* starts queued fetches; their deadlines */
    struct op_tls_session *tls_session;       /* owned: what this worker's connections resume */
};

/* A failed probe doubles the cooldown, up to this many times cooldown_ms. */
#define OP_ORIGIN_COOLDOWN_GROWTH 8

struct op_fetch;

struct op_fetch_cbs {
    /* An interim response other than 100 (RFC 9110 §15.2; we answer Expect
     * ourselves) arrived before the final head; <resp> is valid for the call
     * only. May be NULL: then it is dropped. */
    void (*on_interim)(void *owner, struct op_http_msg *resp);
    /* The final response head arrived; resp stays valid until on_done/on_error. */
    void (*on_head)(void *owner, struct op_http_msg *resp);
    /* Body bytes (borrowed for the call). Return non-zero to abort the fetch. */
    int (*on_body)(void *owner, const char *p, size_t len);
    /* The whole response was read. */
    void (*on_done)(void *owner);
    /* The fetch failed: err is OP_ECONNECT, OP_ETIMEOUT, OP_EORIGIN,
     * OP_ECLOSED, OP_EFULL (it waited in the origin's queue past its
     * deadline), or for an https origin OP_ETLSVERIFY, OP_ETLSPLAIN, OP_ETLS
     * or OP_ETLSTIMEOUT (the handshake; nothing was sent); got_head tells
     * whether on_head already ran. */
    void (*on_error)(void *owner, int err, bool got_head);
    /* The request bytes queued with op_fetch_send were all written. */
    void (*on_drain)(void *owner);
};

/* A site's origins on one worker. Requests go to the origins that are up
 * (active checks pass, circuit closed), by smooth weighted round robin,
 * preferring those below their concurrency limit. */
struct op_upstream {
    struct op_origin *origins; /* owned: n */
    uint32_t n;
};

/* <servers>: the site's n servers. 0 or OP_ENOMEM. */
int op_upstream_init(struct op_upstream *u, uv_loop_t *loop, struct op_origin_server *servers,
                     size_t n, struct op_metrics *metrics);
/* Close every origin's pooled connections and timers. No fetch may be
 * queued. */
void op_upstream_close(struct op_upstream *u);
/* Free the origins, once the loop has run the close callbacks. */
void op_upstream_fini(struct op_upstream *u);

/* Would a new fetch wait (every usable origin is at its limit)? */
bool op_upstream_saturated(const struct op_upstream *u);
/* Is every origin that is up stalled (requests out, no response head for
 * its stall_ms): a new request would only join the wait? */
bool op_upstream_stalled(const struct op_upstream *u);
/* Would a request with nothing else to serve be refused: every origin is
 * out (failing its health checks, or its circuit open with a probe under
 * way), or its queue is full? An origin whose circuit is open and that has
 * no probe under way is not full: the request probes it. */
bool op_upstream_full(const struct op_upstream *u);
/* Is every origin down (failing health checks, or circuit open: cooling
 * down or probed)? A request with a stale copy to fall back on serves it at
 * once and starts no fetch; one with nothing to serve asks op_upstream_full. */
bool op_upstream_down(const struct op_upstream *u);

/* Per origin, as above. */
bool op_origin_saturated(const struct op_origin *o);
bool op_origin_full(const struct op_origin *o);
bool op_origin_down(const struct op_origin *o);
bool op_origin_stalled(const struct op_origin *o);

/* Start a request on one of <u>'s origins. <head> is the serialized request
 * head (copied). <head_only>: the request is HEAD, so the response has no
 * body. <retryable>: the request is idempotent and bodiless, so it may be
 * sent again: on a fresh connection if a reused one turns out dead before any
 * response byte, and once on another origin if the connection could not be
 * made. Returns the fetch or NULL (OP_ENOMEM, no origin can take it, or no
 * socket). Beyond the origin's concurrency limit the fetch waits in its queue
 * first; callers check op_upstream_full() before. */
struct op_fetch *op_fetch_start(struct op_upstream *u, const char *head, size_t hlen,
                                bool head_only, bool retryable, const struct op_fetch_cbs *cbs,
                                void *owner);
/* Queue request body bytes (copied). 0 or OP_ENOMEM. */
int op_fetch_send(struct op_fetch *f, const char *p, size_t len);
/* A request body follows the head (begin) / its last byte was queued (end).
 * A connection goes back to the pool only once the whole request was written
 * (RFC 9112 §9.3): an origin that answers early, as nginx does with a 401,
 * would read the next request on it as the rest of this body. */
void op_fetch_body_begin(struct op_fetch *f);
void op_fetch_body_end(struct op_fetch *f);
/* Bytes queued and not yet written to the origin. */
size_t op_fetch_pending(const struct op_fetch *f);
/* Stop / restart reading the response (client backpressure). */
void op_fetch_pause(struct op_fetch *f);
void op_fetch_resume(struct op_fetch *f);
/* Hand the fetch to another owner: later callbacks go to <cbs> with <owner>. */
void op_fetch_set_owner(struct op_fetch *f, const struct op_fetch_cbs *cbs, void *owner);
/* Did the origin's answer to <f> count as shedding load (a 503 or 429 with
 * Retry-After, or one of a burst of bare ones)? Valid from on_head. */
bool op_fetch_shed(const struct op_fetch *f);
/* Free the fetch; if it is still running its connection is closed and no
 * callback runs afterwards. */
void op_fetch_abort(struct op_fetch *f);

#endif
