/* src/store/store_int.h: what the store's files share. Not a public API. */
#ifndef OUTPOST_STORE_INT_H
#define OUTPOST_STORE_INT_H

#include "outpost/log.h"
#include "outpost/store.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define OP_STORE_FORMAT 1u
#define OP_STORE_HASH_LEN 16
#define OP_STORE_KEY_LEN (2 * OP_STORE_HASH_LEN)

enum op_store_op_kind { OP_STORE_PUT, OP_STORE_INVALIDATE, OP_STORE_PURGE };

#define OP_STORE_TAG_MAX 256 /* longest surrogate key indexed */
#define OP_STORE_TAGS_MAX 64 /* most surrogate keys indexed per object */
#define OP_STORE_RECENT 1024 /* purges remembered to drop puts that raced them */
/* 2: every primary is in the urls index (longer ones by head + hash), and
 * primaries carry their site (op_cache_key_primary) */
#define OP_STORE_INDEX_VERSION 2
#define OP_STORE_URL_INDEX_MAX 511 /* LMDB's default key limit */
#define OP_STORE_URL_HEAD (OP_STORE_URL_INDEX_MAX - OP_STORE_HASH_LEN)

/* One unit of work for the writer. Reference-counted: the queue (then the
 * writer) holds one; a PUT is also on the pending list until committed, and a
 * reader serving it holds one until op_store_reader_end. */
struct op_store_op {
    struct op_store_op *next;
    struct op_store_op *next_pending; /* borrowed: pending list link */
    atomic_uint refs;
    bool pending; /* on the pending list (under store lock) */
    enum op_store_op_kind kind;
    uint8_t key[OP_STORE_KEY_LEN]; /* PUT: object key; INVALIDATE: first half used */
    char *vary;                    /* owned (PUT): Vary names record */
    size_t vary_len;
    char *record; /* owned (PUT): encoded object */
    size_t record_len;
    struct op_mailbox *reply; /* borrowed */
    struct op_msg *done;      /* borrowed: the caller's */
    uint64_t purge_seq;       /* PUT: the last purge before its fetch began; PURGE: its own */
    /* PURGE */
    enum op_purge_kind purge_kind;
    bool soft;
    char *pattern; /* owned: primary key, prefix, tag or host */
    size_t pattern_len;
    struct op_purge_done *purge_done; /* borrowed: the caller's, filled before done */
    uint64_t fleet_epoch; /* the fleet stream's creation time: its sequences' namespace */
    uint64_t fleet_seq;   /* the fleet stream's sequence of the purge; 0: a local one */
};

/* A purge as remembered for matching PUTs that raced it. */
struct op_store_recent {
    uint64_t seq;
    uint64_t at_ms; /* op_time_mono_ms when given */
    enum op_purge_kind kind;
    char *pattern; /* owned */
    size_t len;
};

struct op_store {
    MDB_env *env;
    MDB_dbi db_objects, db_primaries, db_lru, db_meta;
    MDB_dbi db_urls;   /* primary key text -> its hash: prefix and host purges */
    MDB_dbi db_tags;   /* surrogate key -> object keys (dupsort): tag purges */
    MDB_dbi db_purges; /* sequence -> purge record: the purge log */
    MDB_dbi db_fleet;  /* fleet (stream epoch, sequence) -> local purge sequence: applied */
    uint64_t budget;
    uint64_t max_object_size;

    pthread_t writer;
    pthread_mutex_t lock; /* guards the queue, stopping and stats */
    pthread_cond_t cond;
    struct op_store_op *head; /* owned */
    struct op_store_op *tail; /* borrowed */
    bool stopping;
    /* PUTs queued and not yet committed, newest first: lookups see them, so an
     * object is served from the moment its response completed */
    struct op_store_op *pending; /* ref */
    atomic_uint npending;        /* read without the lock to skip it when empty */

    /* purges: sequence numbers are given at enqueue (under lock); the
     * recent ones are kept to drop PUTs whose fetch began before them */
    _Atomic uint64_t purge_assigned;                /* written under lock, read anywhere */
    _Atomic uint64_t purge_applied;                 /* committed and synced */
    struct op_store_recent recent[OP_STORE_RECENT]; /* under lock: ring by seq */
    _Atomic uint64_t last_purge_ms;                 /* when the newest was given */
    _Atomic uint64_t next_id;                       /* object ids: seeded from the clock at open */
    uint64_t puts_dropped;                          /* under lock */

    /* writer-owned, persisted in meta */
    uint64_t total_bytes;
    uint64_t next_seq;
    struct op_store_stats stats; /* under lock */
};

struct op_store_reader {
    struct op_store *store; /* borrowed */
    MDB_txn *txn;           /* owned: reset between lookups */
    bool active;
    struct op_store_op *pinned; /* ref: a pending PUT being served */
};

/* The on-disk object record. */
struct op_store_rec {
    struct op_cache_meta meta;
    uint64_t seq; /* insertion order, set when committed */
    uint64_t id;  /* set when queued, unique to this response (op_store_ref) */
    const char *primary;
    uint32_t primary_len;
    const char *secondary;
    uint32_t secondary_len;
    const char *headers;
    uint32_t headers_len;
    const char *body;
    uint64_t body_len;
};

/* Encode into a new malloc'd buffer; returns NULL on overflow or ENOMEM. */
char *op_store__rec_encode(const struct op_store_rec *r, size_t *len);
/* Decode <p,len> (pointers in *r point into p). 0, or OP_EPARSE for a record of
 * another format version, a bad magic or inconsistent lengths. */
int op_store__rec_decode(const char *p, size_t len, struct op_store_rec *r);
/* Patch the sequence number / freshness lifetime of an encoded record in place. */
void op_store__rec_set_seq(char *p, uint64_t seq);
void op_store__rec_set_lifetime(char *p, int64_t lifetime);
/* Vary-names record of the primaries DB. */
char *op_store__vary_encode(const char *names, size_t len, size_t *out_len);
int op_store__vary_decode(const char *p, size_t len, const char **names, size_t *nlen);

void op_store__hash(const char *p, size_t len, uint8_t out[OP_STORE_HASH_LEN]);
void op_store__op_unref(struct op_store_op *op);
/* Hand <op> to the writer (any thread). A PUT that a purge since its fetch
 * began covers is dropped instead (false); a PURGE gets its sequence number
 * and hides the pending PUTs it covers. */
bool op_store__enqueue(struct op_store *s, struct op_store_op *op);
/* Take committed PUTs off the pending list (writer, after a commit). */
void op_store__unpend(struct op_store *s, struct op_store_op *ops);
void *op_store__writer_main(void *arg);
/* Log an LMDB error once, where it happened, and return OP_ESTORE. */
int op_store__mdb_err(const char *what, int rc);

/* store_writer.c */
/* Delete one object with its lru and index entries, and its primaries entry
 * too when it was the last variant and <drop_primary>. */
int op_store__delete_object(struct op_store *s, MDB_txn *txn, const uint8_t *okey,
                            bool drop_primary);

/* store_index.c: the url and tag indexes, kept in the object's transaction */
int op_store__index_add(struct op_store *s, MDB_txn *txn, const struct op_store_rec *rec,
                        const uint8_t *okey);
/* <last>: no other variant of its primary is left (the url entry goes too). */
int op_store__index_del(struct op_store *s, MDB_txn *txn, const struct op_store_rec *rec,
                        const uint8_t *okey, bool last);
/* The urls index key of a primary: the primary itself when it has at most
 * OP_STORE_URL_HEAD bytes, else its first OP_STORE_URL_HEAD bytes and its
 * hash (OP_STORE_URL_INDEX_MAX bytes). Returns the length written to out. */
size_t op_store__url_index_key(const char *primary, size_t plen, char out[OP_STORE_URL_INDEX_MAX]);
/* Index every stored object again (a cache written before the indexes, or
 * by an older index version): the old entries are dropped first. */
int op_store__index_rebuild(struct op_store *s, MDB_txn *txn);
/* Call <fn> for each surrogate key in a serialized header block
 * (Surrogate-Key: space separated; Cache-Tag: comma separated). */
void op_store__tags_each(const char *headers, size_t len,
                         void (*fn)(void *arg, const char *tag, size_t tlen), void *arg);

/* store_purge.c */
/* Does a purge of <kind, pattern> cover the object <rec>? */
bool op_store__purge_match(enum op_purge_kind kind, const char *pattern, size_t len,
                           const struct op_store_rec *rec);
/* Does PUT <op> match a purge given after its fetch began (store lock held)?
 * A fetch older than the purges remembered counts as purged. */
bool op_store__put_purged(struct op_store *s, const struct op_store_op *op);
/* Remember purge <op> (store lock held). */
void op_store__recent_add(struct op_store *s, const struct op_store_op *op);
void op_store__recent_free(struct op_store *s);
/* Apply a purge (writer thread): its own transactions, in chunks; fills
 * op->purge_done and posts op->done. */
void op_store__apply_purge(struct op_store *s, struct op_store_op *op);

#endif
