/* include/outpost/core.h: the error table, bounded buffers, time, assertions and
 * the thread mailbox that every other module builds on.
 *
 * core depends on libc and pthreads only. Every function here may be called from
 * any thread; objects are not locked unless the comment says so (only the
 * mailbox is).
 */
#ifndef OUTPOST_CORE_H
#define OUTPOST_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error table ------------------------------------------------------------
 * Library errors (libuv, LMDB, OpenSSL, libyaml) become one of these in the
 * module that called the library; the original text is logged there, once.
 * X(name, http status when it reaches a client, message) */
#define OP_ERRORS(X)                                                                               \
    X(OK, 200, "success")                                                                          \
    X(ENOMEM, 500, "out of memory")                                                                \
    X(EINVAL, 400, "invalid argument")                                                             \
    X(ETOOBIG, 413, "larger than the configured limit")                                            \
    X(ENOTFOUND, 404, "not found")                                                                 \
    X(EIO, 500, "input/output error")                                                              \
    X(ESTORE, 500, "cache store error")                                                            \
    X(EPARSE, 400, "malformed input")                                                              \
    X(ECONNECT, 502, "could not connect to the origin")                                            \
    X(ETIMEOUT, 504, "timed out")                                                                  \
    X(EORIGIN, 502, "invalid response from the origin")                                            \
    X(EFULL, 503, "a configured limit is reached")                                                 \
    X(ECLOSED, 502, "connection closed")                                                           \
    X(EAGAIN, 503, "try again")                                                                    \
    X(EADDRINUSE, 500, "address already in use")                                                   \
    X(ETLSVERIFY, 502, "the origin's certificate failed verification")                             \
    X(ETLSPLAIN, 502, "the origin speaks plain HTTP, not TLS")                                     \
    X(ETLS, 502, "the TLS handshake with the origin failed")                                       \
    X(ETLSTIMEOUT, 504, "the TLS handshake with the origin timed out")                             \
    X(EFLEET, 503, "the fleet's purge stream did not take the purge")

enum op_err {
#define X(name, status, msg) OP_##name,
    OP_ERRORS(X)
#undef X
        OP_ERR__COUNT
};

/* Name ("ETIMEOUT"), message and client-facing HTTP status of an op_err.
 * Negative values are accepted (callers may return -OP_Exxx); unknown codes map
 * to "EUNKNOWN", "unknown error", 500. Never NULL. */
const char *op_err_name(int err);
const char *op_err_msg(int err);
int op_err_status(int err);
/* A TLS handshake with an origin failed (OP_ETLSVERIFY, OP_ETLSPLAIN,
 * OP_ETLS, OP_ETLSTIMEOUT; negated too). */
bool op_err_tls(int err);

/* ---- assertions and magic numbers ----------------------------------------- */
void op_panic(const char *file, int line, const char *expr) __attribute__((noreturn));
#define OP_ASSERT(e) ((e) ? (void)0 : op_panic(__FILE__, __LINE__, #e))
/* Long-lived objects start with `unsigned magic`; checked at module entry
 * points and zeroed on free, so a stale callback trips here, not later. */
#define OP_CHECK_OBJ(p, m) OP_ASSERT((p) != NULL && (p)->magic == (m))

/* ---- bounded byte buffer ---------------------------------------------------
 * data[0..len) is content; the buffer never grows past max (fixed at init).
 * Functions return 0 or OP_ETOOBIG / OP_ENOMEM and leave the content intact on
 * failure. The struct owns data. */
struct op_buf {
    char *data; /* owned */
    size_t len;
    size_t cap;
    size_t max;
};

void op_buf_init(struct op_buf *b, size_t max);
void op_buf_fini(struct op_buf *b);
/* Make room for at least <n> more bytes; returns a pointer to the free space. */
int op_buf_reserve(struct op_buf *b, size_t n, char **space);
/* Mark <n> bytes of the reserved space as content. */
void op_buf_commit(struct op_buf *b, size_t n);
int op_buf_append(struct op_buf *b, const void *p, size_t n);
int op_buf_appendf(struct op_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append the NUL-terminated <s>, or <v> in decimal: without printf, for the
 * heads written on every hit. */
int op_buf_append_str(struct op_buf *b, const char *s);
int op_buf_append_int(struct op_buf *b, int64_t v);
/* <v> in decimal into <out> (no NUL); returns the length. */
#define OP_DEC_MAX 20 /* "-9223372036854775808" */
size_t op_dec(int64_t v, char out[OP_DEC_MAX]);
/* Drop the first <n> bytes (moves the rest to the front). */
void op_buf_consume(struct op_buf *b, size_t n);
void op_buf_reset(struct op_buf *b);
/* Hand the storage to the caller (who must free() it) and empty the buffer. */
char *op_buf_steal(struct op_buf *b, size_t *len);

/* ---- time ----------------------------------------------------------------- */
/* Wall clock, in seconds since the epoch (HTTP dates and ages are in seconds). */
int64_t op_time_now(void);
/* Wall-clock milliseconds since the epoch (for delays across a second). */
int64_t op_time_now_ms(void);
/* Monotonic milliseconds, for timeouts and durations. */
uint64_t op_time_mono_ms(void);

/* ---- size and duration parsing (config and CLI) ----------------------------
 * "64k", "1m", "2g" (powers of 1024), "512"; "50ms", "2s", "5m", "1h", "7d".
 * Return 0 or OP_EINVAL (garbage, overflow, or a negative number). */
int op_parse_size(const char *s, uint64_t *out);
int op_parse_duration_ms(const char *s, uint64_t *out);

/* ---- ASCII helpers used by parsers ----------------------------------------- */
bool op_streq_nocase(const char *a, size_t alen, const char *b);
/* Parse a non-negative decimal integer of the whole span; 0 or OP_EINVAL. */
int op_parse_u64(const char *p, size_t len, uint64_t *out);

/* ---- mailbox: how threads talk ---------------------------------------------
 * An MPSC queue of messages plus a wake-up hook. Producers on any thread call
 * op_mailbox_post(); the owner's loop drains the queue in its wake-up handler
 * (uv_async there: sends coalesce, so drain everything). The message belongs to
 * the receiver once posted. */
struct op_msg;
typedef void op_msg_cb(struct op_msg *m);

struct op_msg {
    struct op_msg *next; /* owned by the queue while posted */
    op_msg_cb *run;      /* called on the receiver's thread */
};

struct op_mailbox {
    pthread_mutex_t lock;
    struct op_msg *head; /* borrowed: messages still owned by their producers' callbacks */
    struct op_msg *tail; /* borrowed */
    void (*wake)(void *arg);
    void *wake_arg; /* borrowed */
};

void op_mailbox_init(struct op_mailbox *mb, void (*wake)(void *), void *arg);
void op_mailbox_fini(struct op_mailbox *mb);
/* Queue <m> and call wake (under the mailbox lock, so an owner that clears
 * wake under the lock never gets a wake-up after that). */
void op_mailbox_post(struct op_mailbox *mb, struct op_msg *m);
/* Run every queued message in order on the calling (owner) thread; returns the count. */
size_t op_mailbox_drain(struct op_mailbox *mb);

#endif
