/* A flight: one origin response shared by every request waiting for its key.
 * The publisher appends under the flight's lock; each worker with waiters
 * gets one wake-up message at a time (sends coalesce), and its loop then lets
 * every waiter of that worker read what is new. */
#include "flight_int.h"

#include <stdlib.h>
#include <string.h>

/* Waiters run per wake-up before the rest wait for the next loop turn, so one
 * herd does not hold a loop for long (Varnish rushes waiters in batches too). */
#define WAKE_BATCH 256

static const char *const phase_name[] = {
#define X(name, str) str,
    OP_FLIGHT_PHASES(X)
#undef X
};

const char *op_flight_phase_name(enum op_flight_phase p)
{
    return (unsigned)p < sizeof(phase_name) / sizeof(phase_name[0]) ? phase_name[p] : "?";
}

static void list_init(struct op_flight_waiter *head)
{
    head->prev = head->next = head;
}

static bool list_empty(const struct op_flight_waiter *head)
{
    return head->next == head;
}

static void list_unlink(struct op_flight_waiter *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void list_append(struct op_flight_waiter *head, struct op_flight_waiter *w)
{
    w->prev = head->prev;
    w->next = head;
    head->prev->next = w;
    head->prev = w;
}

static void on_wake(struct op_msg *m);

struct op_flight *op_flight__create(struct op_flight_table *t, unsigned nslots, uint64_t hash,
                                    const char *key, size_t len)
{
    struct op_flight *f = calloc(1, sizeof(*f) + nslots * sizeof(f->slots[0]));
    if (f == NULL)
        return NULL;
    f->key = malloc(len > 0 ? len : 1);
    if (f->key == NULL) {
        free(f);
        return NULL;
    }
    memcpy(f->key, key, len);
    f->magic = OP_FLIGHT_MAGIC;
    f->t = t;
    f->klen = len;
    f->hash = hash;
    f->refs = 1;
    f->phase = OP_FLIGHT_WAITING;
    f->nslots = nslots;
    pthread_mutex_init(&f->lock, NULL);
    op_buf_init(&f->body, SIZE_MAX);
    for (unsigned i = 0; i < nslots; i++) {
        f->slots[i].f = f;
        f->slots[i].msg.run = on_wake;
        list_init(&f->slots[i].list);
    }
    return f;
}

void op_flight_ref(struct op_flight *f)
{
    OP_CHECK_OBJ(f, OP_FLIGHT_MAGIC);
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
}

void op_flight_unref(struct op_flight **fp)
{
    struct op_flight *f = *fp;
    *fp = NULL;
    if (f == NULL)
        return;
    OP_CHECK_OBJ(f, OP_FLIGHT_MAGIC);
    if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    pthread_mutex_destroy(&f->lock);
    op_buf_fini(&f->body);
    free(f->head);
    free(f->key);
    f->magic = 0;
    free(f);
}

uint32_t op_flight__nwaiters(struct op_flight *f)
{
    pthread_mutex_lock(&f->lock);
    uint32_t n = f->nwaiters;
    pthread_mutex_unlock(&f->lock);
    return n;
}

void op_flight__attach(struct op_flight *f, unsigned worker, struct op_mailbox *mb,
                       op_flight_progress_cb *cb, struct op_flight_waiter *w)
{
    struct op_flight__slot *s = &f->slots[worker];
    op_flight_ref(f);
    pthread_mutex_lock(&f->lock);
    s->mailbox = mb;
    s->nwaiters++;
    f->nwaiters++;
    pthread_mutex_unlock(&f->lock);
    w->flight = f;
    w->worker = worker;
    w->on_progress = cb;
    list_append(&s->list, w); /* only this worker touches its slot's list */
}

void op_flight_leave(struct op_flight_waiter *w)
{
    struct op_flight *f = w->flight;
    if (f == NULL)
        return;
    OP_CHECK_OBJ(f, OP_FLIGHT_MAGIC);
    struct op_flight__slot *s = &f->slots[w->worker];
    pthread_mutex_lock(&f->lock);
    s->nwaiters--;
    f->nwaiters--;
    pthread_mutex_unlock(&f->lock);
    list_unlink(w);
    op_flight_unref(&w->flight);
}

/* Post a wake-up to every worker with waiters that has none queued. Called
 * with f->lock held; each queued message holds a reference. <news>: there is
 * something new to read (not just the rest of a batch). */
static void wake_locked(struct op_flight *f, bool news)
{
    for (unsigned i = 0; i < f->nslots; i++) {
        struct op_flight__slot *s = &f->slots[i];
        if (s->nwaiters == 0 || s->mailbox == NULL)
            continue;
        s->news = s->news || news;
        if (s->queued)
            continue;
        s->queued = true;
        __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
        op_mailbox_post(s->mailbox, &s->msg);
    }
}

/* On the slot's worker: let up to WAKE_BATCH waiters read, oldest first; the
 * ones not reached get another wake-up in the next loop turn. */
static void on_wake(struct op_msg *m)
{
    struct op_flight__slot *s =
        (struct op_flight__slot *)((char *)m - offsetof(struct op_flight__slot, msg));
    struct op_flight *f = s->f; /* this message's reference keeps f alive here */
    OP_CHECK_OBJ(f, OP_FLIGHT_MAGIC);
    pthread_mutex_lock(&f->lock);
    s->queued = false;
    if (s->news)
        s->unreached = s->nwaiters; /* everyone reads again, from the front */
    s->news = false;
    pthread_mutex_unlock(&f->lock);
    unsigned n = 0;
    while (s->unreached > 0 && !list_empty(&s->list) && n < WAKE_BATCH) {
        struct op_flight_waiter *w = s->list.next;
        list_unlink(w);
        list_append(&s->list, w); /* the next batch starts after it */
        s->unreached--;
        n++;
        w->on_progress(w); /* may leave */
    }
    if (list_empty(&s->list))
        s->unreached = 0;
    if (s->unreached > 0) {
        pthread_mutex_lock(&f->lock);
        wake_locked(f, false);
        pthread_mutex_unlock(&f->lock);
    }
    op_flight_unref(&f);
}

void op_flight_view(struct op_flight *f, struct op_flight_view *v)
{
    pthread_mutex_lock(&f->lock);
    v->phase = f->phase;
    v->error = f->error;
    v->had_head = f->had_head;
    v->head = f->head;
    v->head_len = f->head_len;
    v->body_len = f->body.len;
    pthread_mutex_unlock(&f->lock);
}

size_t op_flight_read(struct op_flight *f, size_t off, char *dst, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&f->lock);
    if (off < f->body.len) {
        n = f->body.len - off < max ? f->body.len - off : max;
        memcpy(dst, f->body.data + off, n);
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

const char *op_flight_body(struct op_flight *f, size_t *len)
{
    pthread_mutex_lock(&f->lock);
    bool done = f->phase == OP_FLIGHT_DONE;
    pthread_mutex_unlock(&f->lock);
    if (!done)
        return NULL;
    *len = f->body.len;
    return f->body.data != NULL ? f->body.data : "";
}

const char *op_flight_body_published(struct op_flight *f, size_t *len)
{
    *len = f->body.len; /* only the publisher's thread writes the body */
    return f->body.data != NULL ? f->body.data : "";
}

int op_flight_publish_head(struct op_flight *f, const char *head, size_t len)
{
    char *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        return OP_ENOMEM;
    memcpy(copy, head, len);
    pthread_mutex_lock(&f->lock);
    OP_ASSERT(f->phase == OP_FLIGHT_WAITING && f->head == NULL);
    f->head = copy;
    f->head_len = len;
    f->had_head = true;
    f->phase = OP_FLIGHT_STREAMING;
    wake_locked(f, true);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int op_flight_publish_body(struct op_flight *f, const char *p, size_t len, size_t max)
{
    int rc = OP_ETOOBIG;
    pthread_mutex_lock(&f->lock);
    OP_ASSERT(f->phase == OP_FLIGHT_STREAMING);
    if (f->body.len + len <= max) {
        rc = op_buf_append(&f->body, p, len);
        if (rc == 0)
            wake_locked(f, true);
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

void op_flight_finish(struct op_flight *f, enum op_flight_phase end, int error)
{
    OP_ASSERT(end == OP_FLIGHT_DONE || end == OP_FLIGHT_FAILED || end == OP_FLIGHT_PASS ||
              end == OP_FLIGHT_AGAIN);
    op_flight__remove(f->t, f); /* new requests start anew from here on */
    pthread_mutex_lock(&f->lock);
    if (f->phase == OP_FLIGHT_WAITING || f->phase == OP_FLIGHT_STREAMING) {
        OP_ASSERT(end != OP_FLIGHT_DONE || f->phase == OP_FLIGHT_STREAMING);
        f->phase = end;
        f->error = error;
        wake_locked(f, true);
    }
    pthread_mutex_unlock(&f->lock);
}
