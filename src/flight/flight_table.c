/* The in-flight table: sharded by key hash, one mutex per shard, each shard a
 * small chained hash set of owned key copies, of two kinds (a running flight,
 * a hit-for-miss marker). */
#include "flight_int.h"

#include <stdlib.h>
#include <string.h>

#define SHARDS 16
#define BUCKETS 256 /* per shard */

enum kind { KIND_FLIGHT, KIND_UNCACHEABLE };

struct entry {
    struct entry *next; /* owned: chain */
    uint64_t hash;
    enum kind kind;
    uint64_t until_ms;        /* KIND_UNCACHEABLE */
    struct op_flight *flight; /* ref: KIND_FLIGHT */
    size_t len;
    char key[]; /* owned copy */
};

struct shard {
    pthread_mutex_t lock;
    struct entry *bucket[BUCKETS]; /* owned */
};

struct op_flight_table {
    struct shard shards[SHARDS];
    size_t max_entries;
    unsigned nworkers;
    size_t count; /* updated atomically (under one shard's lock each time) */
};

uint64_t op_flight__hash(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a; keys come from our own cache keys */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

int op_flight_table_create(size_t max_entries, unsigned nworkers, struct op_flight_table **out)
{
    struct op_flight_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return OP_ENOMEM;
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&t->shards[i].lock, NULL);
    t->max_entries = max_entries;
    t->nworkers = nworkers;
    *out = t;
    return 0;
}

static void entry_free(struct op_flight_table *t, struct entry *e)
{
    if (e->kind == KIND_FLIGHT)
        op_flight_unref(&e->flight);
    __atomic_sub_fetch(&t->count, 1, __ATOMIC_RELAXED);
    free(e);
}

void op_flight_table_destroy(struct op_flight_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < SHARDS; i++) {
        for (size_t b = 0; b < BUCKETS; b++) {
            struct entry *e = t->shards[i].bucket[b];
            while (e != NULL) {
                struct entry *next = e->next;
                entry_free(t, e);
                e = next;
            }
        }
        pthread_mutex_destroy(&t->shards[i].lock);
    }
    free(t);
}

size_t op_flight_count(struct op_flight_table *t)
{
    return __atomic_load_n(&t->count, __ATOMIC_RELAXED);
}

static struct shard *shard_of(struct op_flight_table *t, uint64_t h)
{
    return &t->shards[h % SHARDS];
}

static struct entry **bucket_of(struct op_flight_table *t, uint64_t h)
{
    return &shard_of(t, h)->bucket[(h / SHARDS) % BUCKETS];
}

/* The link pointing at the entry of <kind> for the key, or at the chain's end. */
static struct entry **find(struct entry **pp, enum kind kind, uint64_t h, const char *key,
                           size_t len)
{
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct entry *e = *pp;
        if (e->kind == kind && e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            break;
    }
    return pp;
}

/* A new entry linked at *pp, or NULL when the table is full or memory is out. */
static struct entry *insert(struct op_flight_table *t, struct entry **pp, enum kind kind,
                            uint64_t h, const char *key, size_t len)
{
    if (__atomic_load_n(&t->count, __ATOMIC_RELAXED) >= t->max_entries)
        return NULL;
    struct entry *e = calloc(1, sizeof(*e) + len);
    if (e == NULL)
        return NULL;
    e->hash = h;
    e->kind = kind;
    e->len = len;
    memcpy(e->key, key, len);
    e->next = *pp;
    *pp = e;
    __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
    return e;
}

static void unlink_free(struct op_flight_table *t, struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    entry_free(t, e);
}

/* ---- hit-for-miss markers -------------------------------------------------------- */

void op_flight_mark_uncacheable(struct op_flight_table *t, const char *key, size_t len,
                                uint64_t until_ms)
{
    uint64_t h = op_flight__hash(key, len);
    struct shard *s = shard_of(t, h);
    pthread_mutex_lock(&s->lock);
    struct entry **pp = find(bucket_of(t, h), KIND_UNCACHEABLE, h, key, len);
    struct entry *e = *pp != NULL ? *pp : insert(t, bucket_of(t, h), KIND_UNCACHEABLE, h, key, len);
    if (e != NULL)
        e->until_ms = until_ms;
    pthread_mutex_unlock(&s->lock);
}

void op_flight_clear_uncacheable(struct op_flight_table *t, const char *key, size_t len)
{
    uint64_t h = op_flight__hash(key, len);
    struct shard *s = shard_of(t, h);
    pthread_mutex_lock(&s->lock);
    struct entry **pp = find(bucket_of(t, h), KIND_UNCACHEABLE, h, key, len);
    if (*pp != NULL)
        unlink_free(t, pp);
    pthread_mutex_unlock(&s->lock);
}

/* ---- coalescing ------------------------------------------------------------------ */

enum op_flight_join_rc op_flight_join(struct op_flight_table *t, const char *key, size_t len,
                                      unsigned worker, struct op_mailbox *mb, uint32_t max_waiters,
                                      uint64_t now_ms, op_flight_progress_cb *cb,
                                      struct op_flight_waiter *w)
{
    OP_ASSERT(worker < t->nworkers && w->flight == NULL);
    uint64_t h = op_flight__hash(key, len);
    struct shard *s = shard_of(t, h);
    struct entry **bucket = bucket_of(t, h);
    enum op_flight_join_rc rc = OP_FLIGHT_NONE;
    pthread_mutex_lock(&s->lock);
    struct entry **pp = find(bucket, KIND_UNCACHEABLE, h, key, len);
    if (*pp != NULL) {
        if (now_ms < (*pp)->until_ms) {
            rc = OP_FLIGHT_UNCACHEABLE;
            goto out;
        }
        unlink_free(t, pp); /* expired */
    }
    pp = find(bucket, KIND_FLIGHT, h, key, len);
    if (*pp != NULL) {
        struct op_flight *f = (*pp)->flight;
        if (op_flight__nwaiters(f) > max_waiters) { /* the leader's request plus max_waiters */
            rc = OP_FLIGHT_BUSY;
            goto out;
        }
        op_flight__attach(f, worker, mb, cb, w);
        rc = OP_FLIGHT_FOLLOWER;
        goto out;
    }
    struct op_flight *f = op_flight__create(t, t->nworkers, h, key, len);
    if (f == NULL)
        goto out;
    struct entry *e = insert(t, bucket, KIND_FLIGHT, h, key, len);
    if (e == NULL) {
        op_flight_unref(&f);
        goto out;
    }
    e->flight = f; /* the table's reference */
    op_flight__attach(f, worker, mb, cb, w);
    rc = OP_FLIGHT_LEADER;
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void op_flight_set_epoch(struct op_flight *f, uint64_t epoch)
{
    atomic_store(&f->epoch, epoch);
}

void op_flight_supersede(struct op_flight_table *t, const char *key, size_t len, uint64_t min_epoch)
{
    uint64_t h = op_flight__hash(key, len);
    struct shard *s = shard_of(t, h);
    pthread_mutex_lock(&s->lock);
    struct entry **pp = find(bucket_of(t, h), KIND_FLIGHT, h, key, len);
    if (*pp != NULL && atomic_load(&(*pp)->flight->epoch) < min_epoch)
        unlink_free(t, pp); /* drops the table's reference only */
    pthread_mutex_unlock(&s->lock);
}

void op_flight__remove(struct op_flight_table *t, struct op_flight *f)
{
    struct shard *s = shard_of(t, f->hash);
    pthread_mutex_lock(&s->lock);
    struct entry **pp = find(bucket_of(t, f->hash), KIND_FLIGHT, f->hash, f->key, f->klen);
    if (*pp != NULL && (*pp)->flight == f)
        unlink_free(t, pp);
    pthread_mutex_unlock(&s->lock);
}
