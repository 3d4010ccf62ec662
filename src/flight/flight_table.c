/* The in-flight table: sharded by key hash, one mutex per shard, each shard a
 * small chained hash set of owned key copies. */
#include "outpost/flight.h"

#include "outpost/core.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 16
#define BUCKETS 256 /* per shard */

struct entry {
    struct entry *next; /* owned: chain */
    uint64_t hash;
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
    size_t count; /* under every shard's own lock: updated atomically */
};

static uint64_t hash_key(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a; keys come from our own cache keys */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

int op_flight_table_create(size_t max_entries, struct op_flight_table **out)
{
    struct op_flight_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return OP_ENOMEM;
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&t->shards[i].lock, NULL);
    t->max_entries = max_entries;
    *out = t;
    return 0;
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
                free(e);
                e = next;
            }
        }
        pthread_mutex_destroy(&t->shards[i].lock);
    }
    free(t);
}

bool op_flight_reval_begin(struct op_flight_table *t, const char *key, size_t len)
{
    uint64_t h = hash_key(key, len);
    struct shard *s = &t->shards[h % SHARDS];
    struct entry **bucket = &s->bucket[(h / SHARDS) % BUCKETS];
    bool claimed = false;
    pthread_mutex_lock(&s->lock);
    for (struct entry *e = *bucket; e != NULL; e = e->next) {
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            goto out; /* already under way */
    }
    if (__atomic_load_n(&t->count, __ATOMIC_RELAXED) >= t->max_entries)
        goto out;
    struct entry *e = malloc(sizeof(*e) + len);
    if (e == NULL)
        goto out;
    e->hash = h;
    e->len = len;
    memcpy(e->key, key, len);
    e->next = *bucket;
    *bucket = e;
    __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
    claimed = true;
out:
    pthread_mutex_unlock(&s->lock);
    return claimed;
}

void op_flight_reval_end(struct op_flight_table *t, const char *key, size_t len)
{
    uint64_t h = hash_key(key, len);
    struct shard *s = &t->shards[h % SHARDS];
    struct entry **pp = &s->bucket[(h / SHARDS) % BUCKETS];
    pthread_mutex_lock(&s->lock);
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct entry *e = *pp;
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) {
            *pp = e->next;
            free(e);
            __atomic_sub_fetch(&t->count, 1, __ATOMIC_RELAXED);
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

size_t op_flight_reval_count(struct op_flight_table *t)
{
    return __atomic_load_n(&t->count, __ATOMIC_RELAXED);
}
