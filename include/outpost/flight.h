/* include/outpost/flight.h: the process-wide in-flight table.
 *
 * Two kinds of entries share one sharded table keyed by the primary cache
 * key:
 * - flights (request coalescing): one struct op_flight per key with an origin
 *   fetch under way. The first request becomes its leader and arranges the
 *   fetch (a publisher); later ones join as waiters and read the same head and
 *   body bytes as they arrive (read-while-writer), whichever worker they are on;
 * - hit-for-miss markers: the key's last response was not storable, so later
 *   requests fetch in parallel instead of queueing behind one another.
 * A background revalidation (stale-while-revalidate) is a flight that nobody
 * waits on yet.
 *
 * Threads: the table functions may be called from any thread; a shard's mutex
 * is held only for the set operation. A waiter belongs to one worker: it joins,
 * is woken and leaves on that worker's loop, woken through that worker's
 * mailbox (one queued message per worker and flight, so wake-ups coalesce).
 * The publisher calls the publish functions from its own loop.
 */
#ifndef OUTPOST_FLIGHT_H
#define OUTPOST_FLIGHT_H

#include "outpost/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct op_flight_table; /* opaque; one per process */
struct op_flight;       /* opaque; ref-counted */

/* A table with room for at most <max_entries> entries of all kinds at once,
 * for waiters on workers 0..<nworkers>-1. Returns 0 or OP_ENOMEM. */
int op_flight_table_create(size_t max_entries, unsigned nworkers, struct op_flight_table **out);
/* Every waiter must have left and every flight finished. */
void op_flight_table_destroy(struct op_flight_table *t);
/* Entries of all kinds (for tests and stats). */
size_t op_flight_count(struct op_flight_table *t);

/* ---- hit-for-miss markers ------------------------------------------------------ */
/* Mark <key> uncacheable until the monotonic time <until_ms>; a marker that is
 * already there is extended. Skipped silently when the table is full (the only
 * cost is that the next requests coalesce once more). */
void op_flight_mark_uncacheable(struct op_flight_table *t, const char *key, size_t len,
                                uint64_t until_ms);
/* A storable response arrived for <key>: requests may coalesce again. */
void op_flight_clear_uncacheable(struct op_flight_table *t, const char *key, size_t len);

/* ---- coalescing ---------------------------------------------------------------- */
#define OP_FLIGHT_PHASES(X)                                                                        \
    X(WAITING, "waiting")     /* no response head yet */                                           \
    X(STREAMING, "streaming") /* head published, body arriving */                                  \
    X(DONE, "done")           /* whole body published; it is stored */                             \
    X(FAILED, "failed")       /* no (complete) response: see error */                              \
    X(PASS, "pass")           /* not storable: waiters fetch on their own */                       \
    X(AGAIN, "again")         /* the store was updated (a 304): waiters look up again */

enum op_flight_phase {
#define X(name, str) OP_FLIGHT_##name,
    OP_FLIGHT_PHASES(X)
#undef X
};
const char *op_flight_phase_name(enum op_flight_phase p);

struct op_flight_waiter;
/* Something changed (head, body bytes, or the end): read it with
 * op_flight_view. May leave (op_flight_leave) from inside the call. */
typedef void op_flight_progress_cb(struct op_flight_waiter *w);

/* Embedded in the waiting request; zero it before the first join. */
struct op_flight_waiter {
    struct op_flight_waiter *prev, *next; /* borrowed: the flight's list for this worker */
    struct op_flight *flight;             /* ref while joined, NULL otherwise */
    unsigned worker;
    op_flight_progress_cb *on_progress;
};

enum op_flight_join_rc {
    OP_FLIGHT_LEADER,      /* a new flight: the caller must publish it (and finish it) */
    OP_FLIGHT_FOLLOWER,    /* joined a running flight */
    OP_FLIGHT_BUSY,        /* <max_waiters> already wait on it: serve stale or 503 */
    OP_FLIGHT_UNCACHEABLE, /* a hit-for-miss marker: fetch alone, do not queue */
    OP_FLIGHT_NONE,        /* table full or out of memory: fetch alone */
};

/* Join the flight for <key> on worker <worker> (woken through <mb>, which must
 * outlive every flight), or create it and lead it. On LEADER and FOLLOWER the
 * waiter <w> is joined (w->flight holds a reference) and stays valid until
 * op_flight_leave(w); the table never frees it. <now_ms> is the monotonic time
 * for hit-for-miss markers. Never calls back into the caller before returning:
 * a follower reads the current state with op_flight_view itself. */
enum op_flight_join_rc op_flight_join(struct op_flight_table *t, const char *key, size_t len,
                                      unsigned worker, struct op_mailbox *mb, uint32_t max_waiters,
                                      uint64_t now_ms, op_flight_progress_cb *cb,
                                      struct op_flight_waiter *w);
/* The leader records when its fetch began, in the caller's terms (the store's
 * purge sequence at its lookup). */
void op_flight_set_epoch(struct op_flight *f, uint64_t epoch);
/* A running flight for <key> begun before <min_epoch> takes no new waiters:
 * it leaves the table (its waiters carry on) and the next join leads a new
 * one. */
void op_flight_supersede(struct op_flight_table *t, const char *key, size_t len,
                         uint64_t min_epoch);
/* Stop waiting (on the waiter's own worker). Harmless when not joined. */
void op_flight_leave(struct op_flight_waiter *w);

/* What a waiter sees. head points to the published head bytes, immutable and
 * valid while the caller holds a reference (is joined). */
struct op_flight_view {
    enum op_flight_phase phase;
    int error;     /* FAILED: an HTTP status from the origin (>= 100) or an OP_E* code */
    bool had_head; /* FAILED after the head was published (mid-body) */
    const char *head;
    size_t head_len;
    size_t body_len; /* body bytes published so far */
};
void op_flight_view(struct op_flight *f, struct op_flight_view *v);
/* Copy up to <max> body bytes from offset <off> into <dst>; returns the count. */
size_t op_flight_read(struct op_flight *f, size_t off, char *dst, size_t max);
/* The whole body, without copying, once the phase is DONE (it is immutable
 * from then on); NULL before. */
const char *op_flight_body(struct op_flight *f, size_t *len);
/* The publisher's view of its own body: any phase. */
const char *op_flight_body_published(struct op_flight *f, size_t *len);

/* ---- the publisher (the leader's side) ------------------------------------------ */
void op_flight_ref(struct op_flight *f);
/* Drop a reference and NULL the caller's pointer. */
void op_flight_unref(struct op_flight **fp);
/* The head bytes (copied) are published: phase STREAMING. 0 or OP_ENOMEM. */
int op_flight_publish_head(struct op_flight *f, const char *head, size_t len);
/* Append body bytes; the body may hold at most <max> bytes. 0, OP_ETOOBIG or
 * OP_ENOMEM (then nothing was appended). */
int op_flight_publish_body(struct op_flight *f, const char *p, size_t len, size_t max);
/* End the flight: <end> is DONE, FAILED (with <error>), PASS or AGAIN. It
 * leaves the table at once (new requests start anew) and every waiter is
 * woken. Only the first call counts. */
void op_flight_finish(struct op_flight *f, enum op_flight_phase end, int error);

#endif
