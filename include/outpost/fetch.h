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

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

struct op_oconn;

struct op_origin {
    uv_loop_t *loop; /* borrowed: the worker's */
    struct sockaddr_storage addr;
    const char *name; /* borrowed: for logs */
    uint64_t connect_timeout_ms;
    uint64_t first_byte_timeout_ms;
    uint64_t between_bytes_timeout_ms;
    uint32_t idle_max;
    uint32_t nidle;
    struct op_oconn *idle;      /* owned: pooled connections (singly linked) */
    struct op_metrics *metrics; /* borrowed: the worker's shard */
    bool closing;
    /* Adaptive concurrency limit (AIMD) for this worker's share of the origin:
     * it halves when the origin answers 503/429 or times out, and grows by
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
    /* Circuit breaker (passive health): fail_threshold connect failures or
     * timeouts in a row open it for cooldown_ms, during which the origin is
     * "full"; then one probe is let through, and its answer closes it (or
     * its failure opens it again). fail_threshold 0: never. */
    uint32_t fail_threshold;
    uint64_t cooldown_ms;
    uint32_t fails;
    uint64_t open_until_ms; /* 0: closed */
    bool probing;
    double rtt_ms; /* smoothed time to a good response head */
    uint32_t queued;
    struct op_fetch *queue_head, *queue_tail; /* borrowed: waiting fetches, oldest first */
    uv_timer_t queue_timer;                   /* starts queued fetches; their deadlines */
};

struct op_fetch;

struct op_fetch_cbs {
    /* The final response head arrived; resp stays valid until on_done/on_error. */
    void (*on_head)(void *owner, struct op_http_msg *resp);
    /* Body bytes (borrowed for the call). Return non-zero to abort the fetch. */
    int (*on_body)(void *owner, const char *p, size_t len);
    /* The whole response was read. */
    void (*on_done)(void *owner);
    /* The fetch failed: err is OP_ECONNECT, OP_ETIMEOUT, OP_EORIGIN,
     * OP_ECLOSED or OP_EFULL (it waited in the origin's queue past its
     * deadline); got_head tells whether on_head already ran. */
    void (*on_error)(void *owner, int err, bool got_head);
    /* The request bytes queued with op_fetch_send were all written. */
    void (*on_drain)(void *owner);
};

void op_origin_init(struct op_origin *o, uv_loop_t *loop, const struct sockaddr_storage *addr,
                    const char *name, struct op_metrics *metrics);
/* Close the pooled connections and the queue timer; the struct may be freed
 * once the loop has run their close callbacks. No fetch may be queued. */
void op_origin_close(struct op_origin *o);

/* Is the origin at its concurrency limit, so that a new fetch would wait? */
bool op_origin_saturated(const struct op_origin *o);
/* Is its queue full too, or its circuit open, so that a new fetch would be
 * refused? */
bool op_origin_full(const struct op_origin *o);
/* Is its circuit open (it has been failing: do not wait for it)? */
bool op_origin_down(const struct op_origin *o);

/* Start a request. <head> is the serialized request head (copied). <head_only>:
 * the request is HEAD, so the response has no body. <retryable>: the request
 * may be sent again on a fresh connection if a reused one turns out dead before
 * any response byte (idempotent and bodiless). Returns the fetch or NULL
 * (OP_ENOMEM, or no socket). Beyond the origin's concurrency limit the
 * fetch waits in its queue first; callers check op_origin_full() before. */
struct op_fetch *op_fetch_start(struct op_origin *o, const char *head, size_t hlen, bool head_only,
                                bool retryable, const struct op_fetch_cbs *cbs, void *owner);
/* Queue request body bytes (copied). 0 or OP_ENOMEM. */
int op_fetch_send(struct op_fetch *f, const char *p, size_t len);
/* Bytes queued and not yet written to the origin. */
size_t op_fetch_pending(const struct op_fetch *f);
/* Stop / restart reading the response (client backpressure). */
void op_fetch_pause(struct op_fetch *f);
void op_fetch_resume(struct op_fetch *f);
/* Hand the fetch to another owner: later callbacks go to <cbs> with <owner>. */
void op_fetch_set_owner(struct op_fetch *f, const struct op_fetch_cbs *cbs, void *owner);
/* Free the fetch; if it is still running its connection is closed and no
 * callback runs afterwards. */
void op_fetch_abort(struct op_fetch *f);

#endif
