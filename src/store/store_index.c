/* The purge indexes, written in the same transaction as the object they
 * describe, so they never drift from the objects:
 *   urls  primary key text -> its hash (ordered: URL, prefix and host purges
 *         scan it). LMDB keys hold at most 511 bytes: a longer primary is
 *         indexed by its first OP_STORE_URL_HEAD bytes and its hash
 *         (op_store__url_index_key), so every object is in the index and a
 *         purge that reaches such an entry checks the record's whole key.
 *   tags  surrogate key -> object keys (dupsort: a tag purge reads one list)
 * The tags come from the stored headers (Surrogate-Key, Cache-Tag), so an
 * object's entries can be found again when it is deleted. */
#include "store_int.h"

#include <string.h>
#include <strings.h>

static bool is_sep(char c, bool comma)
{
    return c == ' ' || c == '\t' || (comma && c == ',');
}

void op_store__tags_each(const char *headers, size_t len,
                         void (*fn)(void *arg, const char *tag, size_t tlen), void *arg)
{
    unsigned n = 0;
    const char *p = headers, *end = headers + len;
    while (p < end && n < OP_STORE_TAGS_MAX) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        bool comma = false;
        bool tagged = false;
        if (colon != NULL) {
            size_t nlen = (size_t)(colon - p);
            tagged = (nlen == 13 && strncasecmp(p, "surrogate-key", 13) == 0) ||
                     (nlen == 9 && strncasecmp(p, "cache-tag", 9) == 0);
            comma = nlen == 9;
        }
        if (tagged) {
            const char *v = colon + 1;
            const char *vend = line_end;
            if (vend > v && vend[-1] == '\r')
                vend--;
            while (v < vend && n < OP_STORE_TAGS_MAX) {
                while (v < vend && is_sep(*v, comma))
                    v++;
                const char *t = v;
                while (v < vend && !is_sep(*v, comma))
                    v++;
                if (v > t && (size_t)(v - t) <= OP_STORE_TAG_MAX) {
                    fn(arg, t, (size_t)(v - t));
                    n++;
                }
            }
        }
        p = line_end + 1;
    }
}

struct tag_ctx {
    struct op_store *s;
    MDB_txn *txn;
    const uint8_t *okey;
    bool add;
    int rc;
};

static void tag_one(void *arg, const char *tag, size_t tlen)
{
    struct tag_ctx *t = arg;
    if (t->rc != 0)
        return;
    MDB_val k = {.mv_size = tlen, .mv_data = (void *)tag};
    MDB_val v = {.mv_size = OP_STORE_KEY_LEN, .mv_data = (void *)t->okey};
    int rc = t->add ? mdb_put(t->txn, t->s->db_tags, &k, &v, MDB_NODUPDATA)
                    : mdb_del(t->txn, t->s->db_tags, &k, &v);
    if (rc != 0 && rc != MDB_KEYEXIST && rc != MDB_NOTFOUND)
        t->rc = rc;
}

size_t op_store__url_index_key(const char *primary, size_t plen, char out[OP_STORE_URL_INDEX_MAX])
{
    if (plen <= OP_STORE_URL_HEAD) {
        memcpy(out, primary, plen);
        return plen;
    }
    memcpy(out, primary, OP_STORE_URL_HEAD);
    op_store__hash(primary, plen, (uint8_t *)out + OP_STORE_URL_HEAD);
    return OP_STORE_URL_INDEX_MAX;
}

int op_store__index_add(struct op_store *s, MDB_txn *txn, const struct op_store_rec *rec,
                        const uint8_t *okey)
{
    if (rec->primary_len == 0)
        return 0;
    char ik[OP_STORE_URL_INDEX_MAX];
    MDB_val k = {.mv_size = op_store__url_index_key(rec->primary, rec->primary_len, ik),
                 .mv_data = ik};
    MDB_val v = {.mv_size = OP_STORE_HASH_LEN, .mv_data = (void *)okey}; /* its primary hash */
    int rc = mdb_put(txn, s->db_urls, &k, &v, 0);
    if (rc != 0)
        return rc;
    struct tag_ctx t = {.s = s, .txn = txn, .okey = okey, .add = true};
    op_store__tags_each(rec->headers, rec->headers_len, tag_one, &t);
    return t.rc;
}

int op_store__index_del(struct op_store *s, MDB_txn *txn, const struct op_store_rec *rec,
                        const uint8_t *okey, bool last)
{
    struct tag_ctx t = {.s = s, .txn = txn, .okey = okey, .add = false};
    op_store__tags_each(rec->headers, rec->headers_len, tag_one, &t);
    if (t.rc != 0 || !last || rec->primary_len == 0)
        return t.rc;
    char ik[OP_STORE_URL_INDEX_MAX];
    MDB_val k = {.mv_size = op_store__url_index_key(rec->primary, rec->primary_len, ik),
                 .mv_data = ik};
    int rc = mdb_del(txn, s->db_urls, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int op_store__index_rebuild(struct op_store *s, MDB_txn *txn)
{
    MDB_cursor *cur;
    /* an older index may lack entries or hold them in another shape */
    int rc = mdb_drop(txn, s->db_urls, 0);
    if (rc == 0)
        rc = mdb_drop(txn, s->db_tags, 0);
    if (rc == 0)
        rc = mdb_cursor_open(txn, s->db_objects, &cur);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    uint64_t n = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct op_store_rec rec;
        if (k.mv_size != OP_STORE_KEY_LEN || op_store__rec_decode(v.mv_data, v.mv_size, &rec) != 0)
            continue;
        if ((rc = op_store__index_add(s, txn, &rec, k.mv_data)) != 0)
            break;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        op_log_info("store", "indexed %llu stored objects for purges", (unsigned long long)n);
        rc = 0;
    }
    return rc;
}
