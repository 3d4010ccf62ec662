/* src/fetch/fetch_int.h: what the fetch module's files share. */
#ifndef OUTPOST_FETCH_INT_H
#define OUTPOST_FETCH_INT_H

#include "outpost/fetch.h"

#define FETCH_MAGIC 0x46455443u

struct op_fetch {
    unsigned magic;
    struct op_origin *origin; /* borrowed */
    struct op_oconn *conn;    /* borrowed: owned by its own close path */
    const struct op_fetch_cbs *cbs;
    void *owner;        /* borrowed */
    struct op_buf head; /* owned: kept for one retry */
    struct op_buf out;  /* owned: request bytes not yet written */
    bool head_only, retryable, retried, got_head, got_byte, paused;
    bool moved;     /* already sent to a second origin after a failed connect */
    bool body_open; /* request body bytes may still come (op_fetch_body_begin) */
    /* admission (fetch_limit.c) */
    bool admitted;                  /* holds one of the origin's slots */
    bool awaiting_head;             /* counted in server->inflight (stall detection) */
    bool overloaded;                /* the origin shed load (op_fetch__shed) or timed out */
    bool suspect;                   /* a bare 503 short of the quorum: neither good nor bad */
    struct op_fetch *qprev, *qnext; /* borrowed: the origin's queue while waiting */
    bool queued;
    bool probe;           /* the one request let through a half-open circuit */
    uint64_t deadline_ms; /* leave the queue by then */
    uint64_t started_ms;  /* admitted at */
};

enum op_fetch_outcome { OP_FETCH_OK, OP_FETCH_OVERLOADED, OP_FETCH_NEUTRAL };

/* fetch_conn.c */
/* Put an admitted fetch on a connection; false when no socket could be made. */
bool op_fetch__run(struct op_fetch *f);

/* Close an origin's pooled connections and its queue timer. */
void op_origin_close(struct op_origin *o);

/* fetch_upstream.c */
/* An origin of <u> for a new request, other than <exclude>: among those up,
 * below their limit if any is, else with room in their queue, else (none is
 * up) one whose circuit is open and has no probe under way, for the request
 * to probe; NULL when none can take it. */
struct op_origin *op_upstream__pick(struct op_upstream *u, const struct op_origin *exclude);

/* fetch_limit.c */
void op_fetch__queue_init(struct op_origin *o);
void op_fetch__queue_close(struct op_origin *o);
/* Take a slot under the origin's limit (true: run it now), or queue <f>
 * (false: it runs when a slot frees, or fails with OP_EFULL at its deadline). */
bool op_fetch__admit(struct op_fetch *f);
/* The origin showed <outcome> for this fetch (at its response head, or at
 * its end): it adjusts the limit. */
void op_fetch__signal(struct op_fetch *f, enum op_fetch_outcome outcome);
/* The origin's answer to <f> may shed load (op_http_sheds_load): signal an
 * overload when it does by the quorum rule, else mark <f> suspect. */
void op_fetch__shed(struct op_fetch *f, enum op_shed shed);
/* A response head came: the origin is not stalled, and <f> no longer counts
 * as waiting for one. */
void op_fetch__answered(struct op_fetch *f);
/* Passive health: the origin answered (<ok>), or a connect failed or timed
 * out. */
void op_fetch__health(struct op_fetch *f, bool ok);
/* The exchange is over (or abandoned): free its slot, or leave the queue.
 * Idempotent. Queued fetches are started on a later loop turn, never from
 * inside this call. */
void op_fetch__release(struct op_fetch *f, enum op_fetch_outcome outcome);

#endif
