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

enum op_store_op_kind { OP_STORE_PUT, OP_STORE_INVALIDATE };

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
};

struct op_store {
    MDB_env *env;
    MDB_dbi db_objects, db_primaries, db_lru, db_meta;
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
    uint64_t seq;
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
/* Patch the sequence number of an encoded record in place. */
void op_store__rec_set_seq(char *p, uint64_t seq);
/* Vary-names record of the primaries DB. */
char *op_store__vary_encode(const char *names, size_t len, size_t *out_len);
int op_store__vary_decode(const char *p, size_t len, const char **names, size_t *nlen);

void op_store__hash(const char *p, size_t len, uint8_t out[OP_STORE_HASH_LEN]);
void op_store__op_unref(struct op_store_op *op);
/* Take committed PUTs off the pending list (writer, after a commit). */
void op_store__unpend(struct op_store *s, struct op_store_op *ops);
void *op_store__writer_main(void *arg);
/* Log an LMDB error once, where it happened, and return OP_ESTORE. */
int op_store__mdb_err(const char *what, int rc);

#endif
