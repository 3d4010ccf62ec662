/* Admission to an origin: an adaptive concurrency limit (AIMD with a slow
 * start, as TCP's congestion window) per worker and
 * a bounded FIFO queue with a deadline beyond it, so that a struggling origin
 * gets fewer requests at once instead of a growing pile, and the node knows
 * when a request would only wait (op_origin_saturated) or be refused. */
#include "fetch_int.h"

#include <string.h>

#define CUT_EVERY_MS 100    /* one burst of 503s cuts the limit once */
#define CUT_FACTOR 0.7      /* multiplicative decrease */
#define AVOID_STEPS 4.0     /* after a cut: +1 per AVOID_STEPS limits' worth of answers */
#define SLOW_START_MS 30000 /* this long without trouble: grow fast again */
#define SHED_WINDOW_MS 1000 /* this many likely-shedding answers within */
#define SHED_QUORUM 3       /* this long are an overload */
_Static_assert(sizeof(((struct op_origin *)0)->shed_at) == (SHED_QUORUM - 1) * sizeof(uint64_t),
               "shed_at holds the answers before the last of a quorum");

/* An origin that has shown no trouble is not held back (up to max_conns):
 * the limit only starts to bind at the first sign of overload. */
static uint32_t limit_now(const struct op_origin *o)
{
    double l = o->limit > 0 ? o->limit : (double)o->max_conns;
    return l < 1 ? 1 : (uint32_t)l;
}

static bool holding(const struct op_origin *o)
{
    return o->hold_until_ms != 0 && uv_now(o->loop) < o->hold_until_ms;
}

bool op_origin_saturated(const struct op_origin *o)
{
    return o->inflight >= limit_now(o) || o->queued > 0 || holding(o);
}

bool op_origin_down(const struct op_origin *o)
{
    if (!atomic_load_explicit(&o->server->healthy, memory_order_relaxed))
        return true; /* its active health checks fail */
    if (o->open_until_ms == 0)
        return false;
    return uv_now(o->loop) < o->open_until_ms || o->probing; /* half-open: one probe */
}

bool op_origin_stalled(const struct op_origin *o)
{
    struct op_origin_server *s = o->server;
    if (o->stall_ms == 0 || atomic_load_explicit(&s->inflight, memory_order_relaxed) == 0)
        return false;
    uint64_t since = atomic_load_explicit(&s->quiet_since_ms, memory_order_relaxed);
    uint64_t now = op_time_mono_ms();
    return now > since && now - since >= o->stall_ms;
}

/* A slot is taken: after a time with nothing out, the silence starts now. */
static void take_slot(struct op_fetch *f, uint64_t now)
{
    struct op_origin *o = f->origin;
    if (atomic_fetch_add_explicit(&o->server->inflight, 1, memory_order_relaxed) == 0)
        atomic_store_explicit(&o->server->quiet_since_ms, op_time_mono_ms(), memory_order_relaxed);
    f->awaiting_head = true;
    o->inflight++;
    f->admitted = true;
    f->started_ms = now;
}

/* An open circuit refuses nobody by itself: a request with nothing else to
 * serve probes the origin whenever no probe is under way (op_fetch__admit).
 * Requests with a stale copy are kept away by their callers
 * (op_origin_down). */
bool op_origin_full(const struct op_origin *o)
{
    if (!atomic_load_explicit(&o->server->healthy, memory_order_relaxed))
        return true; /* its active health checks fail */
    if (o->open_until_ms != 0)
        return o->probing; /* one probe at a time; it takes a slot beyond the limit */
    return op_origin_saturated(o) && o->queued >= o->queue_max;
}

void op_fetch__health(struct op_fetch *f, bool ok)
{
    struct op_origin *o = f->origin;
    if (ok) {
        if (o->open_until_ms != 0)
            op_log_info("fetch", "origin %s: answering again; circuit closed", o->name);
        o->fails = 0;
        o->open_until_ms = 0;
        o->backoff_ms = 0;
        o->probing = false;
        return;
    }
    o->fails++;
    uint64_t now = uv_now(o->loop);
    if (f->probe && o->open_until_ms != 0) {
        /* the origin is still failing: longer before the stale copies'
         * requests try it again (a request with nothing to serve still may) */
        uint64_t cap = o->cooldown_ms * OP_ORIGIN_COOLDOWN_GROWTH;
        uint64_t was = o->backoff_ms;
        o->backoff_ms = was >= cap / 2 ? cap : was * 2;
        o->open_until_ms = now + o->backoff_ms;
        o->probing = false;
        f->probe = false;
        if (o->backoff_ms != was)
            op_log_warn("fetch",
                        "origin %s: probe failed (%u failures in a row); circuit open "
                        "for %llu ms",
                        o->name, o->fails, (unsigned long long)o->backoff_ms);
        return;
    }
    if (o->fail_threshold > 0 && o->fails >= o->fail_threshold && o->open_until_ms == 0) {
        o->backoff_ms = o->cooldown_ms;
        o->open_until_ms = now + o->backoff_ms;
        o->probing = false;
        op_metric_inc(o->metrics, origin_circuit_opened_total);
        op_log_warn("fetch", "origin %s: %u failures in a row; circuit open for %llu ms", o->name,
                    o->fails, (unsigned long long)o->backoff_ms);
    }
}

static void on_queue_timer(uv_timer_t *t);

void op_fetch__queue_init(struct op_origin *o)
{
    o->fail_threshold = 5;
    o->cooldown_ms = 5000;
    o->max_conns = 1024;
    o->queue_max = 1024;
    o->queue_timeout_ms = 10000;
    uv_timer_init(o->loop, &o->queue_timer);
    o->queue_timer.data = o;
}

void op_fetch__queue_close(struct op_origin *o)
{
    OP_ASSERT(o->queue_head == NULL);
    uv_close((uv_handle_t *)&o->queue_timer, NULL);
}

static void unqueue(struct op_fetch *f)
{
    struct op_origin *o = f->origin;
    if (f->qprev)
        f->qprev->qnext = f->qnext;
    else
        o->queue_head = f->qnext;
    if (f->qnext)
        f->qnext->qprev = f->qprev;
    else
        o->queue_tail = f->qprev;
    f->qprev = f->qnext = NULL;
    f->queued = false;
    o->queued--;
}

/* Wake up when the queue can move: at once (a later loop turn, never from
 * inside a caller's callback) if a slot is free, when the hold ends, or at
 * the oldest waiter's deadline. */
static void reschedule(struct op_origin *o)
{
    if (o->closing || o->queue_head == NULL)
        return;
    uint64_t now = uv_now(o->loop);
    uint64_t at = o->queue_head->deadline_ms;
    if (o->inflight < limit_now(o)) {
        if (!holding(o))
            at = now;
        else if (o->hold_until_ms < at)
            at = o->hold_until_ms;
    }
    uv_timer_start(&o->queue_timer, on_queue_timer, at > now ? at - now : 0, 0);
}

bool op_fetch__admit(struct op_fetch *f)
{
    struct op_origin *o = f->origin;
    if (o->limit <= 0)
        o->limit = limit_now(o);
    if (o->open_until_ms != 0 && !o->probing) {
        /* open: this one finds out. Before the cooldown has passed only a
         * request with nothing else to serve comes here (op_origin_down) */
        o->probing = true;
        f->probe = true;
    }
    if (!op_origin_saturated(o) || f->probe) {
        take_slot(f, uv_now(o->loop));
        return true;
    }
    f->queued = true;
    f->deadline_ms = uv_now(o->loop) + o->queue_timeout_ms;
    f->qprev = o->queue_tail;
    if (o->queue_tail)
        o->queue_tail->qnext = f;
    else
        o->queue_head = f;
    o->queue_tail = f;
    o->queued++;
    op_metric_inc(o->metrics, origin_queued_total);
    reschedule(o);
    return false;
}

/* The fetch no longer waits for a head: it leaves the stall count. */
static void head_came(struct op_fetch *f)
{
    if (!f->awaiting_head)
        return;
    f->awaiting_head = false;
    atomic_fetch_sub_explicit(&f->origin->server->inflight, 1, memory_order_relaxed);
}

void op_fetch__answered(struct op_fetch *f)
{
    atomic_store_explicit(&f->origin->server->quiet_since_ms, op_time_mono_ms(),
                          memory_order_relaxed);
    head_came(f);
}

void op_fetch__signal(struct op_fetch *f, enum op_fetch_outcome outcome)
{
    struct op_origin *o = f->origin;
    uint64_t now = uv_now(o->loop);
    if (outcome == OP_FETCH_OK && f->admitted && !f->overloaded) {
        double sample = (double)(now - f->started_ms);
        o->rtt_ms = o->rtt_ms <= 0 ? sample : 0.8 * o->rtt_ms + 0.2 * sample;
        return;
    }
    if (outcome != OP_FETCH_OVERLOADED || f->overloaded)
        return;
    f->overloaded = true;
    /* hold new starts for about a round trip: what was refused comes back
     * at once and must not be replaced at once */
    double hold = o->rtt_ms > 0 ? o->rtt_ms : 100;
    o->hold_until_ms = now + (uint64_t)(hold < 20 ? 20 : hold > 1000 ? 1000 : hold);
    if (now - o->last_cut_ms >= CUT_EVERY_MS || o->last_cut_ms == 0) {
        /* from what is actually in flight: a limit far above it (never
         * reached) says nothing about what the origin takes */
        double base = o->inflight + 1.0 < o->limit ? o->inflight + 1.0 : o->limit;
        o->limit = base * CUT_FACTOR < 1 ? 1 : base * CUT_FACTOR;
        o->last_cut_ms = now;
        op_log_debug("fetch", "origin %s: overloaded; limit now %u", o->name, limit_now(o));
    }
}

void op_fetch__shed(struct op_fetch *f, enum op_shed shed)
{
    struct op_origin *o = f->origin;
    if (shed == OP_SHED_NO)
        return;
    /* a Retry-After says so; a bare 503 may be one page's own answer, so it
     * counts once SHED_QUORUM of them came within SHED_WINDOW_MS, or while
     * the limit is still recovering from a cut */
    uint64_t now = uv_now(o->loop);
    bool overload = shed == OP_SHED_SAID ||
                    (o->shed_at[0] != 0 && now - o->shed_at[0] <= SHED_WINDOW_MS) ||
                    (o->last_cut_ms != 0 && now - o->last_cut_ms <= SLOW_START_MS);
    memmove(&o->shed_at[0], &o->shed_at[1], sizeof(o->shed_at) - sizeof(o->shed_at[0]));
    o->shed_at[SHED_QUORUM - 2] = now;
    if (overload)
        op_fetch__signal(f, OP_FETCH_OVERLOADED);
    f->suspect = !overload; /* no round-trip sample, no growth */
}

bool op_fetch_shed(const struct op_fetch *f)
{
    return f->overloaded;
}

void op_fetch__release(struct op_fetch *f, enum op_fetch_outcome outcome)
{
    struct op_origin *o = f->origin;
    if (f->probe) {
        /* the probe ended without a verdict (its client went away): another
         * request may probe */
        f->probe = false;
        if (o->open_until_ms != 0 && o->probing)
            o->probing = false;
    }
    if (f->queued) {
        unqueue(f);
        return;
    }
    if (!f->admitted)
        return;
    f->admitted = false;
    bool was_limited = o->inflight >= limit_now(o);
    o->inflight--;
    head_came(f);
    op_fetch__signal(f, outcome);
    /* Grow only when the limit was what held requests back. Until the first
     * sign of trouble (and long after the last) it doubles per round trip
     * (+1 per answer); after one it creeps (+1 per AVOID_STEPS round trips),
     * so a shedding origin is probed gently. */
    if (outcome == OP_FETCH_OK && !f->overloaded && !f->suspect && was_limited &&
        o->limit < o->max_conns) {
        bool slow_start = o->last_cut_ms == 0 || uv_now(o->loop) - o->last_cut_ms > SLOW_START_MS;
        o->limit += slow_start ? 1.0 : 1.0 / (o->limit * AVOID_STEPS);
        if (o->limit > o->max_conns)
            o->limit = o->max_conns;
    }
    reschedule(o);
}

static void on_queue_timer(uv_timer_t *t)
{
    struct op_origin *o = t->data;
    uint64_t now = uv_now(o->loop);
    while (o->queue_head != NULL && o->inflight < limit_now(o) && !holding(o)) {
        struct op_fetch *f = o->queue_head;
        unqueue(f);
        take_slot(f, now);
        if (!op_fetch__run(f)) {
            op_fetch__release(f, OP_FETCH_NEUTRAL);
            f->cbs->on_error(f->owner, OP_ECONNECT, false); /* may abort f */
        }
    }
    /* the oldest waited too long: nothing will take it in time */
    while (o->queue_head != NULL && o->queue_head->deadline_ms <= now) {
        struct op_fetch *f = o->queue_head;
        unqueue(f);
        op_metric_inc(o->metrics, origin_queue_timeouts_total);
        f->cbs->on_error(f->owner, OP_EFULL, false); /* may abort f */
    }
    reschedule(o);
}
