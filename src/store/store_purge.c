/* Purges: by URL, prefix, surrogate key or host, hard or soft. The writer
 * finds the objects through the indexes (store_index.c), removes them (or
 * marks them stale) in chunks of their own transactions, appends a record to
 * the purge log in the last one, syncs, and only then acknowledges. PUTs
 * whose fetch began before a purge that covers them are dropped, so a
 * response the origin sent before the purge is never stored after it. */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 10000             /* objects per purge transaction (each commit syncs) */
#define PURGE_MAGIC 0x3150504fu /* "OPP1" */
#define PURGE_LOG_KEEP 100000   /* purge log records kept */
#define PATTERN_MAX 4096
/* fleet sequences remembered as applied: redeliveries come within the
 * consumer's ack wait, far fewer purges back than this */
#define FLEET_KEEP 1000000

struct tag_find {
    const char *tag;
    size_t len;
    bool found;
};

static void tag_find(void *arg, const char *tag, size_t tlen)
{
    struct tag_find *t = arg;
    t->found |= tlen == t->len && memcmp(tag, t->tag, tlen) == 0;
}

/* A primary key ("scheme://authority..." and its site, op_cache_key_primary)
 * is the URL <url>: the whole key, or the URL then a space and the site. A
 * purge names a URL without a site: it reaches what every site stored. */
static bool url_match(const char *url, size_t len, const char *primary, size_t plen)
{
    return plen >= len && memcmp(primary, url, len) == 0 && (plen == len || primary[len] == ' ');
}

/* The authority of <primary> (after "http://" or "https://"), its length,
 * and whether it is https. False for a key of another shape. */
static bool key_authority(const char *primary, size_t plen, const char **a, size_t *alen,
                          bool *https)
{
    size_t skip;
    if (plen >= 7 && memcmp(primary, "http://", 7) == 0)
        skip = 7;
    else if (plen >= 8 && memcmp(primary, "https://", 8) == 0)
        skip = 8;
    else
        return false;
    size_t n = 0;
    while (skip + n < plen && strchr("/?* ", primary[skip + n]) == NULL)
        n++;
    *a = primary + skip;
    *alen = n;
    *https = skip == 8;
    return true;
}

/* Where the host of a host purge's pattern ends: at its port's ':' or at the
 * end (an IPv6 literal's colons are inside its brackets). */
static size_t host_name_len(const char *host, size_t hlen)
{
    size_t from = 0;
    if (hlen > 0 && host[0] == '[') {
        const char *close = memchr(host, ']', hlen);
        from = close != NULL ? (size_t)(close - host) : hlen;
    }
    const char *colon = memchr(host + from, ':', hlen - from);
    return colon != NULL ? (size_t)(colon - host) : hlen;
}

/* A host purge: "HOST" takes every port and both schemes; "HOST:PORT" that
 * port, which is also the scheme's default one the key leaves out; "*" is
 * everything. The key's authority ends at its path, query, '*' or site. */
static bool host_match(const char *host, size_t hlen, const char *primary, size_t plen)
{
    if (hlen == 1 && host[0] == '*')
        return true;
    const char *a;
    size_t alen;
    bool https;
    if (!key_authority(primary, plen, &a, &alen, &https))
        return false;
    if (alen == hlen && memcmp(a, host, hlen) == 0)
        return true;
    size_t name = host_name_len(host, hlen);
    if (name == hlen) /* no port in the pattern: any port of the key's host */
        return alen > hlen && memcmp(a, host, hlen) == 0 && a[hlen] == ':';
    const char *dport = https ? ":443" : ":80";
    return alen == name && memcmp(a, host, name) == 0 && hlen - name == strlen(dport) &&
           memcmp(host + name, dport, hlen - name) == 0;
}

bool op_store__purge_match(enum op_purge_kind kind, const char *pattern, size_t len,
                           const struct op_store_rec *rec)
{
    switch (kind) {
    case OP_PURGE_URL: return url_match(pattern, len, rec->primary, rec->primary_len);
    case OP_PURGE_PREFIX: return rec->primary_len >= len && memcmp(rec->primary, pattern, len) == 0;
    case OP_PURGE_HOST: return host_match(pattern, len, rec->primary, rec->primary_len);
    case OP_PURGE_TAG: {
        struct tag_find t = {.tag = pattern, .len = len};
        op_store__tags_each(rec->headers, rec->headers_len, tag_find, &t);
        return t.found;
    }
    }
    return false;
}

void op_store__recent_add(struct op_store *s, const struct op_store_op *op)
{
    struct op_store_recent *r = &s->recent[op->purge_seq % OP_STORE_RECENT];
    free(r->pattern);
    r->pattern = malloc(op->pattern_len ? op->pattern_len : 1);
    r->seq = r->pattern != NULL ? op->purge_seq : 0;
    r->at_ms = op_time_mono_ms();
    atomic_store(&s->last_purge_ms, r->at_ms);
    r->kind = op->purge_kind;
    r->len = op->pattern_len;
    if (r->pattern != NULL)
        memcpy(r->pattern, op->pattern, op->pattern_len);
}

void op_store__recent_free(struct op_store *s)
{
    for (size_t i = 0; i < OP_STORE_RECENT; i++) {
        free(s->recent[i].pattern);
        s->recent[i].pattern = NULL;
    }
}

bool op_store__put_purged(struct op_store *s, const struct op_store_op *op)
{
    if (op->purge_seq >= s->purge_assigned)
        return false;
    if (s->purge_assigned - op->purge_seq >= OP_STORE_RECENT)
        return true; /* older than what is remembered: cannot tell, so drop */
    struct op_store_rec rec;
    if (op_store__rec_decode(op->record, op->record_len, &rec) != 0)
        return true;
    for (uint64_t seq = op->purge_seq + 1; seq <= s->purge_assigned; seq++) {
        const struct op_store_recent *r = &s->recent[seq % OP_STORE_RECENT];
        if (r->seq != seq || op_store__purge_match(r->kind, r->pattern, r->len, &rec))
            return true;
    }
    return false;
}

/* ---- the writer's side ---- */

struct keys {
    uint8_t (*k)[OP_STORE_KEY_LEN];
    size_t n, cap;
};

static int keys_add(struct keys *ks, const void *key)
{
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 256;
        void *p = realloc(ks->k, cap * sizeof(*ks->k));
        if (p == NULL)
            return ENOMEM;
        ks->k = p;
        ks->cap = cap;
    }
    memcpy(ks->k[ks->n++], key, OP_STORE_KEY_LEN);
    return 0;
}

/* Every variant of primary <hash>; with <kind, pattern> (kind >= 0) only
 * those whose record's whole primary matches it (an index entry that holds
 * only the head of a long primary, or a hash collision). */
static int collect_variants(struct op_store *s, MDB_txn *txn, const uint8_t *hash, int kind,
                            const char *pattern, size_t plen, struct keys *ks)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->db_objects, &cur);
    if (rc != 0)
        return rc;
    uint8_t start[OP_STORE_KEY_LEN] = {0};
    memcpy(start, hash, OP_STORE_HASH_LEN);
    MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = start}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && memcmp(k.mv_data, hash, OP_STORE_HASH_LEN) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct op_store_rec rec;
        if (k.mv_size != OP_STORE_KEY_LEN)
            continue;
        if (kind >= 0 && (op_store__rec_decode(v.mv_data, v.mv_size, &rec) != 0 ||
                          !op_store__purge_match((enum op_purge_kind)kind, pattern, plen, &rec)))
            continue;
        if ((rc = keys_add(ks, k.mv_data)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Walk the ordered url index over the entries starting with <start> (all of
 * them when slen is 0) and collect what <kind, pattern> covers. An entry that
 * is a whole primary is matched as it is; one that holds only the head of a
 * long primary sends the check to the records. */
static int collect_range(struct op_store *s, MDB_txn *txn, enum op_purge_kind kind,
                         const char *pattern, size_t plen, const char *start, size_t slen,
                         struct keys *ks)
{
    if (slen > OP_STORE_URL_HEAD)
        slen = OP_STORE_URL_HEAD; /* the index holds no more of a long primary */
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->db_urls, &cur);
    if (rc != 0)
        return rc;
    MDB_val k = {.mv_size = slen ? slen : 1, .mv_data = (void *)(slen ? start : "")}, v;
    rc = slen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < slen || memcmp(k.mv_data, start, slen) != 0)
            break;
        if (v.mv_size != OP_STORE_HASH_LEN)
            continue;
        bool head_only = k.mv_size > OP_STORE_URL_HEAD;
        if (!head_only) {
            struct op_store_rec rec = {.primary = k.mv_data, .primary_len = (uint32_t)k.mv_size};
            if (!op_store__purge_match(kind, pattern, plen, &rec))
                continue;
        }
        if ((rc = collect_variants(s, txn, v.mv_data, head_only ? (int)kind : -1, pattern, plen,
                                   ks)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* URL, prefix and host purges go through the url index. A URL's objects are
 * its keys for every site; a host's are under "http://HOST" and
 * "https://HOST". */
static int collect_urls(struct op_store *s, MDB_txn *txn, enum op_purge_kind kind,
                        const char *pattern, size_t plen, struct keys *ks)
{
    if (kind != OP_PURGE_HOST)
        return collect_range(s, txn, kind, pattern, plen, pattern, plen, ks);
    if (plen == 1 && pattern[0] == '*')
        return collect_range(s, txn, kind, pattern, plen, "", 0, ks);
    char buf[PATTERN_MAX + 16];
    int rc = 0;
    for (int https = 0; https < 2 && rc == 0; https++) {
        /* up to the port: "h:443" covers "https://h/..." */
        size_t name = host_name_len(pattern, plen);
        int n = snprintf(buf, sizeof(buf), "%s%.*s", https ? "https://" : "http://", (int)name,
                         pattern);
        rc = collect_range(s, txn, kind, pattern, plen, buf, (size_t)n, ks);
    }
    return rc;
}

static int collect_tag(struct op_store *s, MDB_txn *txn, const struct op_store_op *op,
                       struct keys *ks)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->db_tags, &cur);
    if (rc != 0)
        return rc;
    MDB_val k = {.mv_size = op->pattern_len, .mv_data = op->pattern}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
        if (v.mv_size == OP_STORE_KEY_LEN && (rc = keys_add(ks, v.mv_data)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int collect(struct op_store *s, const struct op_store_op *op, struct keys *ks)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    if (op->purge_kind == OP_PURGE_TAG)
        rc = collect_tag(s, txn, op, ks);
    else
        rc = collect_urls(s, txn, op->purge_kind, op->pattern, op->pattern_len, ks);
    mdb_txn_abort(txn);
    return rc;
}

/* Mark one object stale now: its freshness lifetime becomes its current age,
 * so its stale-if-error and stale-while-revalidate windows start now. */
static int soften(struct op_store *s, MDB_txn *txn, const uint8_t *okey, int64_t now, bool *found)
{
    MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = (void *)okey}, v;
    int rc = mdb_get(txn, s->db_objects, &k, &v);
    *found = rc == 0;
    if (rc != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    struct op_store_rec rec;
    if (op_store__rec_decode(v.mv_data, v.mv_size, &rec) != 0)
        return 0;
    int64_t age = op_cache_age(&rec.meta, now);
    if (rec.meta.freshness_lifetime <= age)
        return 0; /* already stale */
    char *copy = malloc(v.mv_size);
    if (copy == NULL)
        return ENOMEM;
    memcpy(copy, v.mv_data, v.mv_size);
    op_store__rec_set_lifetime(copy, age > 0 ? age : 0);
    MDB_val nv = {.mv_size = v.mv_size, .mv_data = copy};
    rc = mdb_put(txn, s->db_objects, &k, &nv, 0);
    free(copy);
    return rc;
}

static int log_purge(struct op_store *s, MDB_txn *txn, const struct op_store_op *op, uint64_t count)
{
    size_t len = 32 + op->pattern_len;
    char *rec = calloc(1, len);
    if (rec == NULL)
        return ENOMEM;
    uint32_t magic = PURGE_MAGIC, plen = (uint32_t)op->pattern_len;
    uint64_t when = (uint64_t)op_time_now();
    memcpy(rec, &magic, 4);
    rec[4] = (char)op->purge_kind;
    rec[5] = (char)op->soft;
    memcpy(rec + 8, &when, 8);
    memcpy(rec + 16, &count, 8);
    memcpy(rec + 24, &plen, 4);
    memcpy(rec + 32, op->pattern, op->pattern_len);
    uint64_t seq = op->purge_seq;
    MDB_val k = {.mv_size = sizeof(seq), .mv_data = &seq};
    MDB_val v = {.mv_size = len, .mv_data = rec};
    int rc = mdb_put(txn, s->db_purges, &k, &v, 0);
    free(rec);
    if (rc == 0 && seq > PURGE_LOG_KEEP) { /* the log keeps its newest records */
        uint64_t old = seq - PURGE_LOG_KEEP;
        MDB_val ok = {.mv_size = sizeof(old), .mv_data = &old};
        rc = mdb_del(txn, s->db_purges, &ok, NULL);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    MDB_val mk = {.mv_size = 9, .mv_data = "purge_seq"};
    MDB_val mv = {.mv_size = sizeof(seq), .mv_data = &seq};
    rc = rc == 0 ? mdb_put(txn, s->db_meta, &mk, &mv, 0) : rc;
    if (rc == 0 && op->fleet_seq != 0) {
        /* applied, in the purge's own transaction: a redelivery finds it */
        uint64_t key[2] = {op->fleet_epoch, op->fleet_seq};
        MDB_val fk = {.mv_size = sizeof(key), .mv_data = key};
        rc = mdb_put(txn, s->db_fleet, &fk, &mv, 0);
        if (rc == 0 && op->fleet_seq > FLEET_KEEP) {
            uint64_t old[2] = {op->fleet_epoch, op->fleet_seq - FLEET_KEEP};
            MDB_val ok = {.mv_size = sizeof(old), .mv_data = old};
            rc = mdb_del(txn, s->db_fleet, &ok, NULL);
            rc = rc == MDB_NOTFOUND ? 0 : rc;
        }
    }
    return rc;
}

/* Was purge <seq> of the fleet stream of <epoch> applied here already? A
 * stream made again (a new cluster, a deleted stream) numbers from 1 again
 * under a new epoch, so its purges are never taken for the old ones. */
static int fleet_applied(struct op_store *s, uint64_t epoch, uint64_t seq, bool *yes)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    uint64_t key[2] = {epoch, seq};
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
    rc = mdb_get(txn, s->db_fleet, &k, &v);
    mdb_txn_abort(txn);
    *yes = rc == 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* One chunk of keys in one transaction; the last one also logs the purge. */
static int apply_chunk(struct op_store *s, const struct op_store_op *op, struct keys *ks,
                       size_t from, size_t to, bool last, uint64_t *count)
{
    uint64_t saved_bytes = s->total_bytes, saved_objects = s->stats.objects, n = 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    int64_t now = op_time_now();
    for (size_t i = from; i < to && rc == 0; i++) {
        if (op->soft) {
            bool found = false;
            rc = soften(s, txn, ks->k[i], now, &found);
            n += found;
        } else {
            uint64_t before = s->stats.objects;
            rc = op_store__delete_object(s, txn, ks->k[i], true);
            n += before != s->stats.objects;
        }
    }
    if (rc == 0 && last)
        rc = log_purge(s, txn, op, *count + n);
    if (rc == 0) {
        MDB_val k = {.mv_size = 11, .mv_data = "total_bytes"};
        MDB_val v = {.mv_size = sizeof(s->total_bytes), .mv_data = &s->total_bytes};
        rc = mdb_put(txn, s->db_meta, &k, &v, 0);
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0) {
        s->total_bytes = saved_bytes;
        s->stats.objects = saved_objects;
        return rc;
    }
    *count += n;
    return 0;
}

void op_store__apply_purge(struct op_store *s, struct op_store_op *op)
{
    struct keys ks = {0};
    uint64_t count = 0, t0 = op_time_mono_ms();
    bool dup = false;
    int rc = op->fleet_seq != 0 ? fleet_applied(s, op->fleet_epoch, op->fleet_seq, &dup) : 0;
    if (rc == 0 && dup) {
        /* delivered again (its ack was lost): applying it twice would remove
         * what was stored since */
        op_log_info("store", "fleet purge %llu: applied already",
                    (unsigned long long)op->fleet_seq);
        op->purge_done->seq = op->purge_seq;
        op->purge_done->count = 0;
        op->purge_done->rc = 0;
        op->purge_done->dup = true;
        atomic_store(&s->purge_applied, op->purge_seq);
        if (op->reply != NULL)
            op_mailbox_post(op->reply, &op->purge_done->msg);
        return;
    }
    if (rc == 0)
        rc = collect(s, op, &ks);
    uint64_t t1 = op_time_mono_ms();
    for (size_t from = 0; rc == 0;) {
        size_t to = ks.n - from > CHUNK ? from + CHUNK : ks.n;
        rc = apply_chunk(s, op, &ks, from, to, to == ks.n, &count);
        if (to == ks.n)
            break;
        from = to;
    }
    free(ks.k);
    uint64_t t2 = op_time_mono_ms();
    if (rc == 0)
        rc = mdb_env_sync(s->env, 1); /* acknowledged means on disk */
    op_log_debug("store", "purge %llu: found in %llu ms, applied in %llu ms, synced in %llu ms",
                 (unsigned long long)op->purge_seq, (unsigned long long)(t1 - t0),
                 (unsigned long long)(t2 - t1), (unsigned long long)(op_time_mono_ms() - t2));
    struct op_purge_done *done = op->purge_done;
    done->seq = op->purge_seq;
    done->count = count;
    done->rc = rc == 0 ? 0 : op_store__mdb_err("purge", rc);
    pthread_mutex_lock(&s->lock);
    s->stats.bytes = s->total_bytes;
    if (rc == 0) {
        s->stats.purges++;
        s->stats.purged += count;
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == 0)
        atomic_store(&s->purge_applied, op->purge_seq);
    op_log_info("store", "purge %llu (%s%s \"%.*s\"): %llu objects in %llu ms%s",
                (unsigned long long)op->purge_seq, op->soft ? "soft " : "",
                op->purge_kind == OP_PURGE_URL      ? "url"
                : op->purge_kind == OP_PURGE_PREFIX ? "prefix"
                : op->purge_kind == OP_PURGE_TAG    ? "tag"
                                                    : "host",
                (int)op->pattern_len, op->pattern, (unsigned long long)count,
                (unsigned long long)(op_time_mono_ms() - t0), rc == 0 ? "" : " (failed)");
    if (op->reply != NULL)
        op_mailbox_post(op->reply, &done->msg);
}

int op_store_purge(struct op_store *s, enum op_purge_kind kind, bool soft, const char *pattern,
                   size_t len, struct op_mailbox *reply, struct op_purge_done *done)
{
    return op_store_purge_fleet(s, 0, 0, kind, soft, pattern, len, reply, done);
}

int op_store_purge_fleet(struct op_store *s, uint64_t fleet_epoch, uint64_t fleet_seq,
                         enum op_purge_kind kind, bool soft, const char *pattern, size_t len,
                         struct op_mailbox *reply, struct op_purge_done *done)
{
    if (len == 0 || len > PATTERN_MAX || (kind == OP_PURGE_TAG && len > OP_STORE_TAG_MAX))
        return OP_EINVAL;
    struct op_store_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->pattern = malloc(len)) == NULL) {
        free(op);
        return OP_ENOMEM;
    }
    memcpy(op->pattern, pattern, len);
    op->pattern_len = len;
    op->kind = OP_STORE_PURGE;
    op->purge_kind = kind;
    op->soft = soft;
    op->reply = reply;
    op->purge_done = done;
    op->fleet_epoch = fleet_epoch;
    op->fleet_seq = fleet_seq;
    done->dup = false;
    op_store__enqueue(s, op);
    return 0;
}

/* How far back a fetch still under way may have begun: longer than any
 * origin timeout a config allows would be wasted, 10 min covers them. */
#define COVER_WINDOW_MS (10 * 60 * 1000)

uint64_t op_store_purge_covering(struct op_store *s, const char *primary, size_t plen)
{
    uint64_t now = op_time_mono_ms();
    uint64_t last = atomic_load(&s->last_purge_ms);
    if (last == 0 || now - last > COVER_WINDOW_MS)
        return 0; /* no purge lately: the common case, no lock */
    struct op_store_rec rec = {.primary = primary, .primary_len = (uint32_t)plen};
    uint64_t found = 0;
    pthread_mutex_lock(&s->lock);
    uint64_t newest = atomic_load(&s->purge_assigned);
    for (uint64_t seq = newest; seq > 0 && newest - seq < OP_STORE_RECENT; seq--) {
        const struct op_store_recent *r = &s->recent[seq % OP_STORE_RECENT];
        if (r->seq != seq || now - r->at_ms > COVER_WINDOW_MS)
            break;
        /* a tag purge may cover anything: the tags come with the response */
        if (r->kind == OP_PURGE_TAG || op_store__purge_match(r->kind, r->pattern, r->len, &rec)) {
            found = seq;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

long op_store_inspect(struct op_store *s, const char *url, size_t ulen,
                      void (*fn)(void *arg, const struct op_store_variant *v), void *arg)
{
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return -OP_ESTORE;
    struct keys ks = {0};
    long n = 0;
    int rc = collect_urls(s, txn, OP_PURGE_URL, url, ulen, &ks);
    for (size_t i = 0; rc == 0 && i < ks.n; i++) {
        MDB_val k = {.mv_size = OP_STORE_KEY_LEN, .mv_data = ks.k[i]}, v;
        struct op_store_rec rec;
        if (mdb_get(txn, s->db_objects, &k, &v) != 0 ||
            op_store__rec_decode(v.mv_data, v.mv_size, &rec) != 0 ||
            !url_match(url, ulen, rec.primary, rec.primary_len))
            continue; /* another format, or a hash collision */
        struct op_store_variant var = {.meta = rec.meta,
                                       .primary = rec.primary,
                                       .primary_len = rec.primary_len,
                                       .secondary = rec.secondary,
                                       .secondary_len = rec.secondary_len,
                                       .headers = rec.headers,
                                       .headers_len = rec.headers_len,
                                       .body_len = rec.body_len,
                                       .record_len = v.mv_size};
        fn(arg, &var);
        n++;
    }
    free(ks.k);
    mdb_txn_abort(txn);
    return rc == 0 ? n : -OP_ESTORE;
}

uint64_t op_store_purge_seq(struct op_store *s)
{
    return atomic_load(&s->purge_assigned); /* no lock: read on every lookup */
}

uint64_t op_store_purge_applied(struct op_store *s)
{
    return atomic_load(&s->purge_applied);
}
