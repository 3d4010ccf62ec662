/* include/outpost/store.h: the LMDB cache store.
 *
 * One environment under the cache dir with four named DBs:
 *   primaries  hash(primary key)            -> the Vary field names of that URL
 *   objects    hash(primary) + hash(second) -> one whole response (store_codec.c)
 *   lru        insertion sequence           -> objects key (eviction order)
 *   meta       name                         -> format version, byte total, sequence
 * Every record begins with a magic and a format version. An object is written in
 * one transaction, so a reader sees it whole or not at all.
 *
 * Threads: op_store_open/close on the main thread. Each worker owns one reader
 * (a reusable MDB_NOTLS read txn, renewed per lookup). Only the writer thread
 * started by op_store_open opens write transactions; op_store_put and
 * op_store_invalidate only queue work for it and may be called from any thread.
 */
#ifndef OUTPOST_STORE_H
#define OUTPOST_STORE_H

#include "outpost/cache.h"
#include "outpost/core.h"

#include <stdint.h>

struct op_store;        /* opaque; one per process */
struct op_store_reader; /* opaque; one per worker thread */

struct op_store_config {
    const char *dir;          /* borrowed; created if missing */
    uint64_t map_size;        /* LMDB map size; the byte budget is 3/4 of it */
    uint64_t max_object_size; /* bodies above this are refused by op_store_put */
};

/* Open (or create) the cache and start the writer thread. Clears stale reader
 * slots left by a killed process. Returns 0 or OP_ESTORE / OP_ENOMEM with the
 * reason logged once. */
int op_store_open(const struct op_store_config *cfg, struct op_store **out);
/* Finish queued writes, stop the writer and close the environment. All readers
 * must be closed first. */
void op_store_close(struct op_store *s);

int op_store_reader_open(struct op_store *s, struct op_store_reader **out);
void op_store_reader_close(struct op_store_reader *r);

/* Names one stored body so that it can be read again later, a window at a
 * time (op_store_read): its object key and an id that no other body stored
 * under that key shares (a response stored with a body byte for byte the
 * same as the one it replaces, such as a 304's freshened copy, keeps the
 * id). Plain data: copy it freely. */
#define OP_STORE_REF_KEY_LEN 32
struct op_store_ref {
    uint8_t key[OP_STORE_REF_KEY_LEN];
    uint64_t id;
};

/* A stored object. The pointers are loans from the reader's transaction: valid
 * until op_store_reader_end(), never after. <ref> stays meaningful after. */
struct op_store_obj {
    struct op_cache_meta meta;
    const char *headers; /* serialized "Name: value\r\n" block */
    size_t headers_len;
    const char *body;
    uint64_t body_len;
    struct op_store_ref ref;
};

/* Look up <primary> for a request with headers <req> (Vary is resolved here).
 * Returns 0 with *obj filled, OP_ENOTFOUND, or OP_ESTORE. Whatever it returns,
 * the caller calls op_store_reader_end() when done with *obj. */
int op_store_lookup(struct op_store_reader *r, const char *primary, size_t plen,
                    const struct op_headers *req, struct op_store_obj *obj);
void op_store_reader_end(struct op_store_reader *r);

/* Copy <len> body bytes of the object <ref> names, from offset <off>, into
 * <dst>. The reader's transaction is renewed for the call and reset before
 * it returns (inside a lookup, before op_store_reader_end, that lookup's is
 * used), so nothing stays pinned between calls: a slow client costs one
 * short read per window, never a transaction held across loop turns.
 * Returns 0; OP_ENOTFOUND when that response is no longer stored (purged,
 * evicted or replaced: never another response's bytes) or the span is past
 * its end; OP_ESTORE. On the thread that owns <r>. */
int op_store_read(struct op_store_reader *r, const struct op_store_ref *ref, uint64_t off,
                  char *dst, size_t len);

/* Queue an object for storing. Everything is copied; the caller keeps its
 * buffers. <vary> are the response's Vary names (op_cache_vary_names) and
 * <req> the request headers that select the variant. <purge_seq> is
 * op_store_purge_seq() from when its fetch began: a purge given since that
 * covers it drops it (the response may predate the purge). Its Surrogate-Key
 * and Cache-Tag headers are indexed for tag purges. A body equal to that of
 * the response it replaces keeps that one's op_store_ref id (compared here,
 * on the caller's thread, when the lengths match). Returns 0 (also when
 * dropped), OP_ETOOBIG (body over max_object_size) or OP_ENOMEM. */
int op_store_put(struct op_store *s, const char *primary, size_t plen, const char *vary,
                 size_t vlen, const struct op_headers *req, const struct op_cache_meta *meta,
                 const char *headers, size_t hlen, const char *body, uint64_t blen,
                 uint64_t purge_seq);

/* Queue removal of every variant of <primary>. When it is committed, <done> is
 * posted to <reply> (both may be NULL). <done> stays the caller's. */
int op_store_invalidate(struct op_store *s, const char *primary, size_t plen,
                        struct op_mailbox *reply, struct op_msg *done);

/* ---- purges ----------------------------------------------------------------
 * A purge gets its sequence number when it is queued and is acknowledged only
 * once committed to LMDB and synced, with a record in the purge log: a purged
 * object is never served again, also after kill -9 and a restart. Pending
 * PUTs it covers are hidden at once. A soft purge marks the objects stale
 * instead of removing them, so stale-if-error and stale-while-revalidate
 * still protect the origin. Large purges commit in chunks; lookups never
 * wait for them. enum op_purge_kind and the normal form of a pattern
 * (op_cache_purge_pattern) are in cache.h: admin and the fleet share them. */
struct op_purge_done {
    struct op_msg msg; /* posted to the reply mailbox once committed */
    uint64_t seq;      /* the purge's sequence number */
    uint64_t count;    /* objects removed (or marked stale) */
    int rc;            /* 0, or OP_ESTORE */
    bool dup;          /* a fleet purge applied here before: nothing done */
};

/* Queue a purge. <pattern> is copied. <done> stays the caller's and is
 * filled in before its msg is posted to <reply>. 0, OP_EINVAL (empty or over
 * 4k) or OP_ENOMEM. */
int op_store_purge(struct op_store *s, enum op_purge_kind kind, bool soft, const char *pattern,
                   size_t len, struct op_mailbox *reply, struct op_purge_done *done);
/* The same for purge <fleet_seq> (> 0) of the fleet's stream as created at
 * <fleet_epoch> (its creation time: a stream made again numbers from 1
 * again): applied at most once, however often it is delivered. The pair is
 * recorded as applied in the transaction that logs the purge, so after a
 * crash the purge is either applied and recorded or neither; a purge given
 * again later is answered with dup set and changes nothing. */
int op_store_purge_fleet(struct op_store *s, uint64_t fleet_epoch, uint64_t fleet_seq,
                         enum op_purge_kind kind, bool soft, const char *pattern, size_t len,
                         struct op_mailbox *reply, struct op_purge_done *done);
/* The newest purge given (any thread): for op_store_put. */
uint64_t op_store_purge_seq(struct op_store *s);
/* The newest purge given lately (the last 10 min) that may cover primary key
 * <primary> (any tag purge may), or 0: a fetch for it begun before that
 * purge must not be shared with requests that come after it. Lock-free when
 * there was no purge lately. */
uint64_t op_store_purge_covering(struct op_store *s, const char *primary, size_t plen);
/* The newest purge committed: "applied up to N". */
uint64_t op_store_purge_applied(struct op_store *s);

/* One stored variant, for inspection. Pointers are valid during the call. */
struct op_store_variant {
    struct op_cache_meta meta;
    const char *primary; /* its whole key, site included */
    size_t primary_len;
    const char *secondary; /* the Vary-selected request fields, "" for none */
    size_t secondary_len;
    const char *headers; /* serialized "Name: value\r\n" block */
    size_t headers_len;
    uint64_t body_len;
    uint64_t record_len;
};
/* Call <fn> for every committed variant stored for the URL <url> (a key
 * without its site, op_cache_key_url: every site's objects for it), in a read
 * transaction of its own: any thread but the workers', whose reader it does
 * not use. Returns the count, or -OP_ESTORE. */
long op_store_inspect(struct op_store *s, const char *url, size_t ulen,
                      void (*fn)(void *arg, const struct op_store_variant *v), void *arg);

struct op_store_stats {
    uint64_t objects;
    uint64_t bytes;
    uint64_t budget;
    uint64_t evictions;
    uint64_t commits;
    uint64_t put_failures;
    uint64_t puts_dropped; /* fetched before a purge that covers them */
    uint64_t purges;
    uint64_t purged; /* objects removed or marked stale by purges */
};
/* A snapshot (any thread; the writer updates these under its lock). */
void op_store_stats(struct op_store *s, struct op_store_stats *out);

#endif
