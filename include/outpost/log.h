/* include/outpost/log.h: the error log, the access log and the metrics table.
 *
 * op_log_*() may be called from any thread: each call is one fprintf to stderr
 * (stdio locks the stream), prefixed with the time, level and a context string
 * such as "w1 c42". Debug lines cost one branch when the level is above debug.
 * Warn and info lines are rate-limited per thread (a burst of 40, then 20 a
 * second); dropped lines are counted on the next line written.
 * Metrics are plain per-worker counters without atomics; a reader sums the
 * shards (a torn read of a uint64_t on x86-64 cannot happen).
 */
#ifndef OUTPOST_LOG_H
#define OUTPOST_LOG_H

#include "outpost/core.h"

#include <stdbool.h>
#include <stdint.h>

enum op_log_level { OP_LOG_ERROR = 0, OP_LOG_WARN, OP_LOG_INFO, OP_LOG_DEBUG };

extern enum op_log_level op_log_level_current;

void op_log_set_level(enum op_log_level lvl);
/* Parse "error", "warn", "info", "debug"; returns 0 or OP_EINVAL. */
int op_log_level_parse(const char *s, enum op_log_level *out);
void op_log_write(enum op_log_level lvl, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define op_log_error(ctx, ...) op_log_write(OP_LOG_ERROR, ctx, __VA_ARGS__)
#define op_log_warn(ctx, ...) op_log_write(OP_LOG_WARN, ctx, __VA_ARGS__)
#define op_log_info(ctx, ...)                                                                      \
    do {                                                                                           \
        if (op_log_level_current >= OP_LOG_INFO)                                                   \
            op_log_write(OP_LOG_INFO, ctx, __VA_ARGS__);                                           \
    } while (0)
#define op_log_debug(ctx, ...)                                                                     \
    do {                                                                                           \
        if (op_log_level_current >= OP_LOG_DEBUG)                                                  \
            op_log_write(OP_LOG_DEBUG, ctx, __VA_ARGS__);                                          \
    } while (0)

/* X(name, help) — the metric is exported as outpost_<name>. */
#define OP_METRICS(X)                                                                              \
    X(requests_total, "client requests parsed")                                                    \
    X(cache_hits_total, "requests answered from the cache")                                        \
    X(cache_misses_total, "cacheable requests that went to the origin")                            \
    X(cache_revalidations_total, "stale objects revalidated with the origin")                      \
    X(cache_passes_total, "requests not eligible for the cache")                                   \
    X(stale_served_total, "stale copies served (stale-while-revalidate, stale-if-error)")          \
    X(coalesced_total, "requests answered from another request's origin fetch")                    \
    X(coalesce_busy_total, "requests refused a place behind a busy origin fetch")                  \
    X(coalesce_timeouts_total, "coalesced requests whose wait for the head timed out")             \
    X(hit_for_miss_total, "requests sent alone by a hit-for-miss marker")                          \
    X(origin_requests_total, "requests sent to an origin")                                         \
    X(origin_errors_total, "origin connects, reads or responses that failed")                      \
    X(origin_queued_total, "origin requests that waited for the origin's concurrency limit")       \
    X(origin_queue_timeouts_total, "origin requests that waited past the queue deadline")          \
    X(origin_circuit_opened_total, "times an origin's circuit opened after failures in a row")     \
    X(stored_objects_total, "responses handed to the store writer")                                \
    X(client_errors_total, "requests answered 4xx by the framing gate or limits")                  \
    X(connections_total, "client connections accepted")                                            \
    X(connections_refused_total, "client connections refused at max_connections")                  \
    X(bytes_out_total, "response bytes written to clients")                                        \
    X(hit_cut_short_total, "stored bodies cut short: the object was purged, evicted or replaced")  \
    X(tls_handshakes_tls12_total, "TLS 1.2 handshakes completed")                                  \
    X(tls_handshakes_tls13_total, "TLS 1.3 handshakes completed")                                  \
    X(tls_resumed_total, "TLS handshakes that resumed a session (the rest were full)")             \
    X(tls_handshakes_protocol_total, "TLS handshakes failed: protocol, version, cipher or ALPN")   \
    X(tls_handshakes_sni_total, "TLS handshakes refused: SNI named no host with a certificate")    \
    X(tls_handshakes_timeout_total, "TLS handshakes that did not finish in tls_handshake_timeout") \
    X(tls_handshakes_closed_total, "TLS handshakes the client abandoned (closed or reset)")        \
    X(tls_handshakes_refused_total, "TLS connections refused at tls_max_handshakes")               \
    X(tls_errors_total, "established TLS connections ended by a bad record or alert")

enum op_metric {
#define X(name, help) OP_M_##name,
    OP_METRICS(X)
#undef X
        OP_M__COUNT
};

struct op_metrics {
    uint64_t v[OP_M__COUNT];
};

/* Per-site counters: X(name, help), counted when a request ends. */
#define OP_SITE_METRICS(X)                                                                         \
    X(requests, "requests routed to the site")                                                     \
    X(hits, "answered from the cache")                                                             \
    X(misses, "went to the origin for a cacheable request")                                        \
    X(stale_served, "stale copies served")                                                         \
    X(coalesced, "answered from another request's origin fetch")                                   \
    X(passes, "not eligible for the cache")                                                        \
    X(origin_2xx, "origin answers 2xx")                                                            \
    X(origin_3xx, "origin answers 3xx")                                                            \
    X(origin_4xx, "origin answers 4xx")                                                            \
    X(origin_5xx, "origin answers 5xx")                                                            \
    X(responses_5xx, "5xx sent to clients")                                                        \
    X(closed_early, "requests that ended with the connection closed")

enum op_site_metric {
#define X(name, help) OP_SM_##name,
    OP_SITE_METRICS(X)
#undef X
        OP_SM__COUNT
};

#define OP_SITE_HOST_MAX 256
struct op_site_metrics {
    char host[OP_SITE_HOST_MAX]; /* the site's host ("*" for the catch-all) */
    uint64_t v[OP_SM__COUNT];
};
extern const char *const op_site_metric_name[OP_SM__COUNT];

extern const char *const op_metric_name[OP_M__COUNT];
extern const char *const op_metric_help[OP_M__COUNT];

/* ---- access log -------------------------------------------------------------
 * One line per request. A worker formats its lines into its own buffer and
 * hands full blocks (and, on a timer, partial ones) to one writer thread, so
 * no loop ever waits on write(2). Past OP_ACCESS_BACKLOG bytes waiting for
 * the disk, blocks are dropped and counted, never queued without bound. */
#define OP_ACCESS_BLOCK (32 * 1024)
#define OP_ACCESS_BACKLOG (16 * 1024 * 1024)

struct op_access_log; /* opaque; one per process */

/* Open <path> for appending and start the writer thread. 0, OP_EIO (with
 * the reason logged) or OP_ENOMEM. Main thread. */
int op_access_log_open(const char *path, struct op_access_log **out);
/* Write what was handed over, stop the thread, close the file. NULL is fine. */
void op_access_log_close(struct op_access_log *l);
/* Lines dropped because the disk did not keep up. */
uint64_t op_access_log_dropped(struct op_access_log *l);

/* A worker's buffer; used on that worker's thread only. log NULL: off. */
struct op_access_buf {
    struct op_access_log *log; /* borrowed */
    struct op_buf buf;
};
void op_access_buf_init(struct op_access_buf *b, struct op_access_log *log);
/* Hand over what is buffered and free the buffer. */
void op_access_buf_fini(struct op_access_buf *b);
/* Append one line (the newline is added); hands the block over when full. */
void op_access_line(struct op_access_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hand over what is buffered now (a timer calls this). */
void op_access_flush(struct op_access_buf *b);

#define op_metric_inc(m, id) ((m)->v[OP_M_##id]++)
#define op_metric_add(m, id, n) ((m)->v[OP_M_##id] += (n))

#endif
