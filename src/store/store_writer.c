/* The writer thread: the only place a write transaction is opened. It takes
 * every queued op, applies them in one transaction (a group commit), evicts in
 * insertion order before the byte budget is passed, and posts completions. */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX 256

static int put_counter(struct op_store *s, MDB_txn *txn, const char *name, uint64_t v)
{
    MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)name};
    MDB_val d = {.mv_size = sizeof(v), .mv_data = &v};
    return mdb_put(txn, s->db_meta, &k, &d, 0);
}

/* Is any variant of primary <hash> stored? */
static int any_variant(struct op_store *s, MDB_txn *txn, const uint8_t *hash, bool *any)
{
    MDB_cursor *cur;
    uint8_t start[OP_STORE_KEY_LEN] = {0};
    memcpy(start, hash, OP_STORE_HASH_LEN);
    MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = start}, v;
    int rc = mdb_cursor_open(txn, s->db_objects, &cur);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    *any = rc == 0 && memcmp(k.mv_data, hash, OP_STORE_HASH_LEN) == 0;
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int op_store__delete_object(struct op_store *s, MDB_txn *txn, const uint8_t *okey,
                            bool drop_primary)
{
    MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = (void *)okey}, v;
    int rc = mdb_get(txn, s->db_objects, &k, &v);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    struct op_store_rec rec;
    char *copy = NULL; /* rec's text, kept past the delete (the map page may be reused) */
    if (op_store__rec_decode(v.mv_data, v.mv_size, &rec) == 0) {
        MDB_val lk = {.mv_size = sizeof(rec.seq), .mv_data = &rec.seq};
        rc = mdb_del(txn, s->db_lru, &lk, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
        if ((copy = malloc((size_t)rec.primary_len + rec.headers_len + 1)) == NULL)
            return ENOMEM;
        memcpy(copy, rec.primary, rec.primary_len);
        memcpy(copy + rec.primary_len, rec.headers, rec.headers_len);
        rec.primary = copy;
        rec.headers = copy + rec.primary_len;
    }
    s->total_bytes -= v.mv_size < s->total_bytes ? v.mv_size : s->total_bytes;
    if (s->stats.objects > 0)
        s->stats.objects--;
    if ((rc = mdb_del(txn, s->db_objects, &k, NULL)) == 0) {
        bool any = false;
        rc = any_variant(s, txn, okey, &any);
        if (rc == 0 && copy != NULL)
            rc = op_store__index_del(s, txn, &rec, okey, !any);
        if (rc == 0 && !any && drop_primary) {
            MDB_val pk = {.mv_size = OP_STORE_HASH_LEN, .mv_data = (void *)okey};
            rc = mdb_del(txn, s->db_primaries, &pk, NULL);
            rc = rc == MDB_NOTFOUND ? 0 : rc;
        }
    }
    free(copy);
    return rc;
}

/* Evict the oldest objects until <need> more bytes fit in the budget. */
static int evict(struct op_store *s, MDB_txn *txn, uint64_t need, uint64_t *evicted)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->db_lru, &cur);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    while (s->total_bytes + need > s->budget &&
           (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        uint8_t okey[OP_STORE_KEY_LEN];
        if (v.mv_size != OP_STORE_KEY_LEN) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            continue;
        }
        memcpy(okey, v.mv_data, OP_STORE_KEY_LEN);
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        if ((rc = op_store__delete_object(s, txn, okey, true)) != 0)
            break;
        (*evicted)++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply_put(struct op_store *s, MDB_txn *txn, struct op_store_op *op, uint64_t *evicted)
{
    if (op->record_len > s->budget / 4)
        return 0; /* would evict a quarter of the cache for one object: do not store */
    MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = op->key};
    int rc = op_store__delete_object(s, txn, op->key, false); /* a replaced variant */
    if (rc != 0)
        return rc;
    if ((rc = evict(s, txn, op->record_len, evicted)) != 0)
        return rc;
    uint64_t seq = ++s->next_seq;
    pthread_mutex_lock(&s->lock); /* lookups may be reading this pending record */
    op_store__rec_set_seq(op->record, seq);
    pthread_mutex_unlock(&s->lock);
    MDB_val v = {.mv_size = op->record_len, .mv_data = op->record};
    MDB_val pk = {.mv_size = OP_STORE_HASH_LEN, .mv_data = op->key};
    MDB_val pv = {.mv_size = op->vary_len, .mv_data = op->vary};
    MDB_val lk = {.mv_size = sizeof(seq), .mv_data = &seq};
    MDB_val lv = {.mv_size = OP_STORE_KEY_LEN, .mv_data = op->key};
    if ((rc = mdb_put(txn, s->db_primaries, &pk, &pv, 0)) != 0 ||
        (rc = mdb_put(txn, s->db_objects, &k, &v, 0)) != 0 ||
        (rc = mdb_put(txn, s->db_lru, &lk, &lv, MDB_APPEND)) != 0)
        return rc;
    struct op_store_rec rec;
    if (op_store__rec_decode(op->record, op->record_len, &rec) == 0 &&
        (rc = op_store__index_add(s, txn, &rec, op->key)) != 0)
        return rc;
    s->total_bytes += op->record_len;
    s->stats.objects++;
    return 0;
}

static int apply_invalidate(struct op_store *s, MDB_txn *txn, struct op_store_op *op)
{
    MDB_cursor *cur;
    uint8_t start[OP_STORE_KEY_LEN] = {0};
    memcpy(start, op->key, OP_STORE_HASH_LEN);
    int rc = mdb_cursor_open(txn, s->db_objects, &cur);
    if (rc != 0)
        return rc;
    for (;;) {
        MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = start}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || memcmp(k.mv_data, op->key, OP_STORE_HASH_LEN) != 0)
            break;
        uint8_t okey[OP_STORE_KEY_LEN];
        memcpy(okey, k.mv_data, OP_STORE_KEY_LEN);
        if ((rc = op_store__delete_object(s, txn, okey, true)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    MDB_val pk = {.mv_size = OP_STORE_HASH_LEN, .mv_data = op->key};
    rc = mdb_del(txn, s->db_primaries, &pk, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* One transaction over <ops>. Returns an LMDB code; on failure nothing of it
 * is committed and the in-memory counters are restored. */
static int run_batch(struct op_store *s, struct op_store_op *ops, uint64_t extra_evict,
                     uint64_t *evicted)
{
    uint64_t saved_bytes = s->total_bytes, saved_seq = s->next_seq;
    uint64_t saved_objects = s->stats.objects;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    uint64_t ev = 0;
    if (extra_evict > 0)
        rc = evict(s, txn, extra_evict, &ev);
    for (struct op_store_op *op = ops; op != NULL && rc == 0; op = op->next)
        rc = op->kind == OP_STORE_PUT ? apply_put(s, txn, op, &ev) : apply_invalidate(s, txn, op);
    if (rc == 0 && (rc = put_counter(s, txn, "total_bytes", s->total_bytes)) == 0 &&
        (rc = put_counter(s, txn, "next_seq", s->next_seq)) == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0) {
        s->total_bytes = saved_bytes;
        s->next_seq = saved_seq;
        s->stats.objects = saved_objects;
        return rc;
    }
    *evicted += ev;
    return 0;
}

static void complete(struct op_store *s, struct op_store_op *ops, int rc, uint64_t evicted)
{
    op_store__unpend(s, ops); /* committed (or failed): LMDB answers from now on */
    pthread_mutex_lock(&s->lock);
    s->stats.bytes = s->total_bytes;
    s->stats.evictions += evicted;
    if (rc == 0)
        s->stats.commits++;
    pthread_mutex_unlock(&s->lock);
    while (ops != NULL) {
        struct op_store_op *next = ops->next;
        if (rc != 0 && ops->kind == OP_STORE_PUT) {
            pthread_mutex_lock(&s->lock);
            s->stats.put_failures++;
            pthread_mutex_unlock(&s->lock);
        }
        if (ops->reply != NULL && ops->done != NULL)
            op_mailbox_post(ops->reply, ops->done);
        op_store__op_unref(ops);
        ops = next;
    }
}

/* Evict about <bytes> in a transaction of its own. LMDB reuses the pages a
 * transaction frees only in later transactions, so room for a batch has to be
 * made (and committed) before the batch. */
static int evict_txn(struct op_store *s, uint64_t bytes, uint64_t *evicted)
{
    if (s->total_bytes == 0 || bytes == 0)
        return 0;
    uint64_t keep = s->total_bytes > bytes ? s->total_bytes - bytes : 0;
    /* evict() frees until total + need fits the budget, that is total <= keep */
    return run_batch(s, NULL, s->budget > keep ? s->budget - keep : 1, evicted);
}

static void process(struct op_store *s, struct op_store_op *ops)
{
    if (ops->kind == OP_STORE_PURGE) { /* always taken alone */
        op_store__apply_purge(s, ops);
        op_store__op_unref(ops);
        return;
    }
    uint64_t evicted = 0, need = 0;
    for (struct op_store_op *op = ops; op != NULL; op = op->next)
        if (op->kind == OP_STORE_PUT)
            need += op->record_len;
    if (s->total_bytes + need > s->budget)
        evict_txn(s, s->total_bytes + need - s->budget + s->budget / 20, &evicted);
    int rc = run_batch(s, ops, 0, &evicted);
    /* fragmentation can still fill the map: free a growing share and retry */
    static const unsigned percent[] = {10, 25, 50};
    for (size_t i = 0; rc == MDB_MAP_FULL && i < sizeof(percent) / sizeof(percent[0]); i++) {
        op_log_warn("store", "map full at %llu bytes stored; evicting %u%%",
                    (unsigned long long)s->total_bytes, percent[i]);
        evict_txn(s, s->budget / 100 * percent[i], &evicted);
        rc = run_batch(s, ops, 0, &evicted);
    }
    if (rc != 0 && ops->next != NULL) {
        /* one op failed the batch: apply the others alone so that an
         * invalidation is never lost because of a put */
        while (ops != NULL) {
            struct op_store_op *next = ops->next;
            ops->next = NULL;
            process(s, ops);
            ops = next;
        }
        return;
    }
    if (rc != 0)
        op_store__mdb_err(ops->kind == OP_STORE_PUT ? "store object" : "invalidate", rc);
    complete(s, ops, rc, evicted);
}

void *op_store__writer_main(void *arg)
{
    struct op_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (s->head == NULL && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->head == NULL && s->stopping) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        /* take up to BATCH_MAX ops; a purge goes alone (it commits in
         * chunks of its own) */
        struct op_store_op *ops = s->head, *last = ops;
        size_t n = 1;
        while (ops->kind != OP_STORE_PURGE && last->next != NULL &&
               last->next->kind != OP_STORE_PURGE && n < BATCH_MAX) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (s->head == NULL)
            s->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->lock);
        process(s, ops);
    }
}
