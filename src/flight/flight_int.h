/* src/flight/flight_int.h: what the flight module's files share. */
#ifndef OUTPOST_FLIGHT_INT_H
#define OUTPOST_FLIGHT_INT_H

#include "outpost/flight.h"

#include <stdatomic.h>

#include <pthread.h>

#define OP_FLIGHT_MAGIC 0x464c4754u

/* One worker's part of a flight: its waiters and its wake-up message. */
struct op_flight__slot {
    struct op_msg msg;            /* posted to mailbox; holds a flight ref while queued */
    struct op_flight *f;          /* borrowed: the flight this slot is part of */
    struct op_mailbox *mailbox;   /* borrowed: set by the first join from this worker */
    bool queued;                  /* under f->lock */
    bool news;                    /* under f->lock: something was published since the last wake */
    uint32_t unreached;           /* waiters at the list's front still to be woken (this worker) */
    uint32_t nwaiters;            /* under f->lock */
    struct op_flight_waiter list; /* sentinel; touched only on this worker */
};

struct op_flight {
    unsigned magic;
    struct op_flight_table *t; /* borrowed */
    pthread_mutex_t lock;
    uint32_t refs; /* atomic */
    /* under lock: */
    enum op_flight_phase phase;
    int error;
    bool had_head;
    uint32_t nwaiters;
    char *head; /* owned; immutable once published */
    size_t head_len;
    struct op_buf body;     /* grows under lock until DONE, immutable after */
    _Atomic uint64_t epoch; /* the leader's purge sequence when it looked in the store */
    /* immutable: */
    uint64_t hash;
    size_t klen;
    char *key; /* owned */
    unsigned nslots;
    struct op_flight__slot slots[]; /* one per worker */
};

/* flight_table.c */
uint64_t op_flight__hash(const char *p, size_t len);
/* Take <f> out of the table if it is still there (drops the table's ref). */
void op_flight__remove(struct op_flight_table *t, struct op_flight *f);

/* flight_coalesce.c */
struct op_flight *op_flight__create(struct op_flight_table *t, unsigned nslots, uint64_t hash,
                                    const char *key, size_t len);
/* Attach <w> (on <worker>, woken through <mb>); f->lock is not held. */
void op_flight__attach(struct op_flight *f, unsigned worker, struct op_mailbox *mb,
                       op_flight_progress_cb *cb, struct op_flight_waiter *w);
uint32_t op_flight__nwaiters(struct op_flight *f);

#endif
