/* Opening the environment, the per-worker readers and lookups, and the queue
 * that feeds the writer thread. */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int op_store__mdb_err(const char *what, int rc)
{
    op_log_error("store", "%s: %s", what, mdb_strerror(rc));
    return OP_ESTORE;
}

static int mkdir_p(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof(path))
        return -1;
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            char c = path[i];
            path[i] = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST)
                return -1;
            path[i] = c;
        }
    }
    return 0;
}

static int load_meta(struct op_store *s, MDB_txn *txn)
{
    MDB_val k = {.mv_size = 6, .mv_data = "format"}, v;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    uint64_t format = OP_STORE_FORMAT;
    if (rc == MDB_NOTFOUND) {
        v.mv_size = sizeof(format);
        v.mv_data = &format;
        if ((rc = mdb_put(txn, s->db_meta, &k, &v, 0)) != 0)
            return op_store__mdb_err("write format version", rc);
    } else if (rc != 0) {
        return op_store__mdb_err("read format version", rc);
    } else {
        if (v.mv_size != sizeof(format) || memcmp(v.mv_data, &format, sizeof(format)) != 0) {
            op_log_error("store", "the cache was written by another format version; "
                                  "remove the cache dir to start afresh");
            return OP_ESTORE;
        }
    }
    static const struct {
        const char *name;
        size_t off;
    } counters[] = {{"total_bytes", offsetof(struct op_store, total_bytes)},
                    {"next_seq", offsetof(struct op_store, next_seq)}};
    for (size_t i = 0; i < 2; i++) {
        k.mv_size = strlen(counters[i].name);
        k.mv_data = (void *)counters[i].name;
        rc = mdb_get(txn, s->db_meta, &k, &v);
        if (rc == 0 && v.mv_size == sizeof(uint64_t))
            memcpy((char *)s + counters[i].off, v.mv_data, sizeof(uint64_t));
    }
    MDB_stat st;
    if (mdb_stat(txn, s->db_objects, &st) == 0)
        s->stats.objects = st.ms_entries;
    return 0;
}

/* The purge sequence, and the indexes of a cache written before them. */
static int load_index(struct op_store *s, MDB_txn *txn)
{
    MDB_val k = {.mv_size = 9, .mv_data = "purge_seq"}, v;
    uint64_t seq = 0;
    if (mdb_get(txn, s->db_meta, &k, &v) == 0 && v.mv_size == sizeof(seq))
        memcpy(&seq, v.mv_data, sizeof(seq));
    atomic_init(&s->purge_assigned, seq);
    atomic_init(&s->purge_applied, seq);
    uint64_t version = 0, want = OP_STORE_INDEX_VERSION;
    k.mv_size = 13;
    k.mv_data = "index_version";
    if (mdb_get(txn, s->db_meta, &k, &v) == 0 && v.mv_size == sizeof(version))
        memcpy(&version, v.mv_data, sizeof(version));
    if (version == want)
        return 0;
    int rc = op_store__index_rebuild(s, txn);
    v.mv_size = sizeof(want);
    v.mv_data = &want;
    if (rc == 0)
        rc = mdb_put(txn, s->db_meta, &k, &v, 0);
    return rc == 0 ? 0 : op_store__mdb_err("index the stored objects", rc);
}

int op_store_open(const struct op_store_config *cfg, struct op_store **out)
{
    struct op_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return OP_ENOMEM;
    s->budget = cfg->map_size / 4 * 3;
    s->max_object_size = cfg->max_object_size;
    /* ids only need to differ from those of earlier runs: seconds << 20
     * leaves room for a million puts per second of uptime */
    atomic_init(&s->next_id, ((uint64_t)op_time_now() << 20) + 1);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int rc;
    MDB_txn *txn = NULL;

    if (mkdir_p(cfg->dir) != 0) {
        op_log_error("store", "cannot create cache dir %s: %s", cfg->dir, strerror(errno));
        rc = OP_ESTORE;
        goto fail;
    }
    if ((rc = mdb_env_create(&s->env)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, cfg->map_size)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, 9)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 512)) != 0) {
        rc = op_store__mdb_err("create environment", rc);
        goto fail;
    }
    /* MDB_NOMETASYNC: a power loss may undo the last commit but never corrupts;
     * MDB_NOTLS: each worker keeps one read txn and renews it per lookup. */
    if ((rc = mdb_env_open(s->env, cfg->dir, MDB_NOTLS | MDB_NOMETASYNC | MDB_NORDAHEAD, 0600)) !=
        0) {
        op_log_error("store", "open %s: %s", cfg->dir, mdb_strerror(rc));
        rc = OP_ESTORE;
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* slots of a killed process */
    if (dead > 0)
        op_log_info("store", "cleared %d stale reader slots", dead);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        rc = op_store__mdb_err("begin txn", rc);
        goto fail;
    }
    if ((rc = mdb_dbi_open(txn, "objects", MDB_CREATE, &s->db_objects)) != 0 ||
        (rc = mdb_dbi_open(txn, "primaries", MDB_CREATE, &s->db_primaries)) != 0 ||
        (rc = mdb_dbi_open(txn, "lru", MDB_CREATE | MDB_INTEGERKEY, &s->db_lru)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->db_meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "urls", MDB_CREATE, &s->db_urls)) != 0 ||
        (rc = mdb_dbi_open(txn, "tags", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &s->db_tags)) !=
            0 ||
        (rc = mdb_dbi_open(txn, "purges", MDB_CREATE | MDB_INTEGERKEY, &s->db_purges)) != 0 ||
        (rc = mdb_dbi_open(txn, "fleet_applied", MDB_CREATE, &s->db_fleet)) != 0) {
        rc = op_store__mdb_err("open databases", rc);
        goto fail;
    }
    if ((rc = load_meta(s, txn)) != 0 || (rc = load_index(s, txn)) != 0)
        goto fail;
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        rc = op_store__mdb_err("commit", rc);
        goto fail;
    }
    txn = NULL;
    s->stats.bytes = s->total_bytes;
    s->stats.budget = s->budget;
    if (pthread_create(&s->writer, NULL, op_store__writer_main, s) != 0) {
        rc = OP_ENOMEM;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (s->env != NULL)
        mdb_env_close(s->env);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
    return rc;
}

void op_store_close(struct op_store *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->writer, NULL);
    op_store__recent_free(s);
    mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int op_store_reader_open(struct op_store *s, struct op_store_reader **out)
{
    struct op_store_reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return OP_ENOMEM;
    r->store = s;
    *out = r;
    return 0;
}

void op_store_reader_close(struct op_store_reader *r)
{
    if (r == NULL)
        return;
    if (r->txn != NULL)
        mdb_txn_abort(r->txn);
    free(r);
}

void op_store_reader_end(struct op_store_reader *r)
{
    if (r->pinned != NULL) {
        op_store__op_unref(r->pinned);
        r->pinned = NULL;
    }
    if (r->active) {
        mdb_txn_reset(r->txn);
        r->active = false;
    }
}

static int reader_begin(struct op_store_reader *r)
{
    int rc;
    if (r->active)
        return 0;
    if (r->txn == NULL)
        rc = mdb_txn_begin(r->store->env, NULL, MDB_RDONLY, &r->txn);
    else
        rc = mdb_txn_renew(r->txn);
    if (rc != 0) {
        if (r->txn != NULL) {
            mdb_txn_abort(r->txn);
            r->txn = NULL;
        }
        return op_store__mdb_err("begin read txn", rc);
    }
    r->active = true;
    return 0;
}

void op_store__op_unref(struct op_store_op *op)
{
    if (atomic_fetch_sub(&op->refs, 1) != 1)
        return;
    free(op->record);
    free(op->vary);
    free(op->pattern);
    free(op);
}

/* A record's identity for op_store_ref: its id, or for a record written
 * before ids (id 0, always committed) its sequence number, kept apart. */
static uint64_t rec_ident(const struct op_store_rec *rec)
{
    return rec->id != 0 ? rec->id : rec->seq | (1ull << 63);
}

static void fill_obj(const struct op_store_rec *rec, const uint8_t *key, struct op_store_obj *obj)
{
    obj->meta = rec->meta;
    obj->headers = rec->headers;
    obj->headers_len = rec->headers_len;
    obj->body = rec->body;
    obj->body_len = rec->body_len;
    memcpy(obj->ref.key, key, OP_STORE_KEY_LEN);
    obj->ref.id = rec_ident(rec);
}

/* The newest pending PUT for this primary key and request, pinned to the
 * reader; false if there is none. */
static bool lookup_pending(struct op_store_reader *r, const uint8_t *phash, const char *primary,
                           size_t plen, const struct op_headers *req, struct op_store_obj *obj)
{
    struct op_store *s = r->store;
    bool found = false;
    struct op_buf secondary;
    op_buf_init(&secondary, 64 * 1024);
    pthread_mutex_lock(&s->lock);
    for (struct op_store_op *op = s->pending; op != NULL && !found; op = op->next_pending) {
        if (memcmp(op->key, phash, OP_STORE_HASH_LEN) != 0)
            continue;
        const char *names;
        size_t nlen;
        struct op_store_rec rec;
        if (op_store__vary_decode(op->vary, op->vary_len, &names, &nlen) != 0 ||
            op_store__rec_decode(op->record, op->record_len, &rec) != 0)
            continue;
        op_buf_reset(&secondary);
        if (nlen > 0 && op_cache_key_secondary(names, nlen, req, &secondary) != 0)
            continue;
        if (rec.primary_len != plen || memcmp(rec.primary, primary, plen) != 0 ||
            rec.secondary_len != secondary.len ||
            (secondary.len > 0 && memcmp(rec.secondary, secondary.data, secondary.len) != 0))
            continue;
        atomic_fetch_add(&op->refs, 1);
        r->pinned = op;
        fill_obj(&rec, op->key, obj);
        found = true;
    }
    pthread_mutex_unlock(&s->lock);
    op_buf_fini(&secondary);
    return found;
}

int op_store_lookup(struct op_store_reader *r, const char *primary, size_t plen,
                    const struct op_headers *req, struct op_store_obj *obj)
{
    struct op_store *s = r->store;
    uint8_t key[OP_STORE_KEY_LEN];
    op_store__hash(primary, plen, key);
    if (atomic_load(&s->npending) > 0 && lookup_pending(r, key, primary, plen, req, obj))
        return 0; /* newer than anything committed */
    int rc = reader_begin(r);
    if (rc != 0)
        return rc;
    MDB_val k = {.mv_size = OP_STORE_HASH_LEN, .mv_data = key}, v;
    if ((rc = mdb_get(r->txn, s->db_primaries, &k, &v)) != 0)
        return rc == MDB_NOTFOUND ? OP_ENOTFOUND : op_store__mdb_err("get primary", rc);
    const char *names;
    size_t nlen;
    if (op_store__vary_decode(v.mv_data, v.mv_size, &names, &nlen) != 0)
        return OP_ENOTFOUND;
    struct op_buf secondary;
    op_buf_init(&secondary, 64 * 1024);
    if (nlen > 0 && op_cache_key_secondary(names, nlen, req, &secondary) != 0) {
        op_buf_fini(&secondary);
        return OP_ENOTFOUND;
    }
    op_store__hash(secondary.data ? secondary.data : "", secondary.len, key + OP_STORE_HASH_LEN);
    k.mv_size = OP_STORE_KEY_LEN;
    rc = mdb_get(r->txn, s->db_objects, &k, &v);
    struct op_store_rec rec;
    if (rc == 0 && op_store__rec_decode(v.mv_data, v.mv_size, &rec) == 0 &&
        rec.primary_len == plen && memcmp(rec.primary, primary, plen) == 0 &&
        rec.secondary_len == secondary.len &&
        (secondary.len == 0 || memcmp(rec.secondary, secondary.data, secondary.len) == 0)) {
        fill_obj(&rec, key, obj);
        rc = 0;
    } else if (rc == 0 || rc == MDB_NOTFOUND) {
        rc = OP_ENOTFOUND; /* absent, another format, or a hash collision */
    } else {
        rc = op_store__mdb_err("get object", rc);
    }
    op_buf_fini(&secondary);
    return rc;
}

/* The pending PUT <ref> names, with a reference taken; NULL if none. */
static struct op_store_op *pending_ref(struct op_store *s, const struct op_store_ref *ref)
{
    struct op_store_op *found = NULL;
    pthread_mutex_lock(&s->lock);
    for (struct op_store_op *op = s->pending; op != NULL; op = op->next_pending) {
        struct op_store_rec rec;
        if (memcmp(op->key, ref->key, OP_STORE_KEY_LEN) == 0 &&
            op_store__rec_decode(op->record, op->record_len, &rec) == 0 &&
            rec_ident(&rec) == ref->id) {
            atomic_fetch_add(&op->refs, 1);
            found = op;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

static int copy_body(const struct op_store_rec *rec, uint64_t off, char *dst, size_t len)
{
    if (off > rec->body_len || len > rec->body_len - off)
        return OP_ENOTFOUND;
    if (len > 0)
        memcpy(dst, rec->body + off, len);
    return 0;
}

int op_store_read(struct op_store_reader *r, const struct op_store_ref *ref, uint64_t off,
                  char *dst, size_t len)
{
    struct op_store *s = r->store;
    struct op_store_rec rec;
    _Static_assert(OP_STORE_REF_KEY_LEN == OP_STORE_KEY_LEN, "op_store_ref holds an object key");
    if (atomic_load(&s->npending) > 0) {
        /* not committed yet: its record is in memory, and its body never
         * changes (the writer only sets the sequence number in the head) */
        struct op_store_op *op = pending_ref(s, ref);
        if (op != NULL) {
            int rc = op_store__rec_decode(op->record, op->record_len, &rec) == 0
                         ? copy_body(&rec, off, dst, len)
                         : OP_ENOTFOUND;
            op_store__op_unref(op);
            return rc;
        }
    }
    bool own = !r->active; /* else a lookup's transaction, reset by its reader_end */
    int rc = reader_begin(r);
    if (rc != 0)
        return rc;
    MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = (void *)ref->key}, v;
    rc = mdb_get(r->txn, s->db_objects, &k, &v);
    if (rc == 0)
        rc = op_store__rec_decode(v.mv_data, v.mv_size, &rec) == 0 && rec_ident(&rec) == ref->id
                 ? copy_body(&rec, off, dst, len)
                 : OP_ENOTFOUND; /* another response under this key now */
    else if (rc == MDB_NOTFOUND)
        rc = OP_ENOTFOUND;
    else
        rc = op_store__mdb_err("get object", rc);
    if (own) {
        mdb_txn_reset(r->txn);
        r->active = false;
    }
    return rc;
}

/* Take the PUT at *pp off the pending list (store lock held): lookups no
 * longer see it, and the list's reference is dropped. */
static void pending_unlink(struct op_store *s, struct op_store_op **pp)
{
    struct op_store_op *op = *pp;
    *pp = op->next_pending;
    op->pending = false;
    atomic_fetch_sub(&s->npending, 1);
    op_store__op_unref(op);
}

/* Does pending PUT <put> fall under purge <purge>? */
static bool pending_purged(const struct op_store_op *put, const struct op_store_op *purge)
{
    struct op_store_rec rec;
    return op_store__rec_decode(put->record, put->record_len, &rec) != 0 ||
           op_store__purge_match(purge->purge_kind, purge->pattern, purge->pattern_len, &rec);
}

bool op_store__enqueue(struct op_store *s, struct op_store_op *op)
{
    op->next = NULL;
    atomic_init(&op->refs, 1);
    pthread_mutex_lock(&s->lock);
    if (op->kind == OP_STORE_PUT && op_store__put_purged(s, op)) {
        s->stats.puts_dropped++;
        pthread_mutex_unlock(&s->lock);
        op_store__op_unref(op);
        return false;
    }
    if (op->kind == OP_STORE_PURGE) {
        op->purge_seq = ++s->purge_assigned;
        op_store__recent_add(s, op);
        for (struct op_store_op **pp = &s->pending; *pp != NULL;) {
            if (pending_purged(*pp, op))
                pending_unlink(s, pp);
            else
                pp = &(*pp)->next_pending;
        }
    } else if (op->kind == OP_STORE_PUT) {
        atomic_fetch_add(&op->refs, 1);
        op->pending = true;
        op->next_pending = s->pending;
        s->pending = op;
        atomic_fetch_add(&s->npending, 1);
    } else {
        /* an invalidation hides the pending PUTs it follows at once */
        for (struct op_store_op **pp = &s->pending; *pp != NULL;) {
            if (memcmp((*pp)->key, op->key, OP_STORE_HASH_LEN) == 0)
                pending_unlink(s, pp);
            else
                pp = &(*pp)->next_pending;
        }
    }
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return true;
}

/* The id of the response stored under <key> (the newest pending one, else
 * the committed one) when its body is byte for byte <body>, else 0. A
 * response with the same body keeps the id, so a 304 that freshens an
 * object (or a 200 with the same bytes) does not cut short the clients
 * reading it by op_store_ref: the id names the bytes, which are the same.
 * Costs a compare of the body only when the lengths are equal. */
static uint64_t same_body_id(struct op_store *s, const uint8_t *key, const char *body,
                             uint64_t blen)
{
    struct op_store_rec rec;
    uint64_t id = 0;
    if (atomic_load(&s->npending) > 0) {
        struct op_store_op *found = NULL;
        pthread_mutex_lock(&s->lock);
        for (struct op_store_op *op = s->pending; op != NULL; op = op->next_pending) {
            if (memcmp(op->key, key, OP_STORE_KEY_LEN) == 0) {
                atomic_fetch_add(&op->refs, 1);
                found = op;
                break;
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (found != NULL) { /* it replaces the committed one: only it counts */
            if (op_store__rec_decode(found->record, found->record_len, &rec) == 0 &&
                rec.body_len == blen && (blen == 0 || memcmp(rec.body, body, blen) == 0))
                id = rec_ident(&rec);
            op_store__op_unref(found);
            return id;
        }
    }
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0; /* a new id: the worst is a reader cut short */
    MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = (void *)key}, v;
    if (mdb_get(txn, s->db_objects, &k, &v) == 0 &&
        op_store__rec_decode(v.mv_data, v.mv_size, &rec) == 0 && rec.body_len == blen &&
        (blen == 0 || memcmp(rec.body, body, blen) == 0))
        id = rec_ident(&rec);
    mdb_txn_abort(txn);
    return id;
}

int op_store_put(struct op_store *s, const char *primary, size_t plen, const char *vary,
                 size_t vlen, const struct op_headers *req, const struct op_cache_meta *meta,
                 const char *headers, size_t hlen, const char *body, uint64_t blen,
                 uint64_t purge_seq)
{
    if (blen > s->max_object_size || plen > UINT32_MAX || hlen > UINT32_MAX)
        return OP_ETOOBIG;
    struct op_store_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return OP_ENOMEM;
    struct op_buf secondary;
    op_buf_init(&secondary, 64 * 1024);
    int rc = vlen > 0 ? op_cache_key_secondary(vary, vlen, req, &secondary) : 0;
    if (rc != 0) {
        op_buf_fini(&secondary);
        free(op);
        return rc;
    }
    struct op_store_rec rec = {
        .meta = *meta,
        .primary = primary,
        .primary_len = (uint32_t)plen,
        .secondary = secondary.data,
        .secondary_len = (uint32_t)secondary.len,
        .headers = headers,
        .headers_len = (uint32_t)hlen,
        .body = body,
        .body_len = blen,
    };
    op->kind = OP_STORE_PUT;
    op->purge_seq = purge_seq;
    op_store__hash(primary, plen, op->key);
    op_store__hash(secondary.data ? secondary.data : "", secondary.len,
                   op->key + OP_STORE_HASH_LEN);
    rec.id = same_body_id(s, op->key, body, blen);
    if (rec.id == 0)
        rec.id = atomic_fetch_add(&s->next_id, 1);
    op->record = op_store__rec_encode(&rec, &op->record_len);
    op->vary = op_store__vary_encode(vary, vlen, &op->vary_len);
    op_buf_fini(&secondary);
    if (op->record == NULL || op->vary == NULL) {
        free(op->record);
        free(op->vary);
        free(op);
        return OP_ENOMEM;
    }
    op_store__enqueue(s, op);
    return 0;
}

int op_store_invalidate(struct op_store *s, const char *primary, size_t plen,
                        struct op_mailbox *reply, struct op_msg *done)
{
    struct op_store_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return OP_ENOMEM;
    op->kind = OP_STORE_INVALIDATE;
    op_store__hash(primary, plen, op->key);
    op->reply = reply;
    op->done = done;
    op_store__enqueue(s, op);
    return 0;
}

void op_store_stats(struct op_store *s, struct op_store_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

void op_store__unpend(struct op_store *s, struct op_store_op *ops)
{
    pthread_mutex_lock(&s->lock);
    for (struct op_store_op *op = ops; op != NULL; op = op->next) {
        if (!op->pending)
            continue;
        for (struct op_store_op **pp = &s->pending; *pp != NULL; pp = &(*pp)->next_pending) {
            if (*pp == op) {
                pending_unlink(s, pp);
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
}
