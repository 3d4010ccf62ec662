/* include/outpost/log.h: the error log and the metrics table.
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
    X(bytes_out_total, "response bytes written to clients")

enum op_metric {
#define X(name, help) OP_M_##name,
    OP_METRICS(X)
#undef X
        OP_M__COUNT
};

struct op_metrics {
    uint64_t v[OP_M__COUNT];
};

extern const char *const op_metric_name[OP_M__COUNT];
extern const char *const op_metric_help[OP_M__COUNT];

#define op_metric_inc(m, id) ((m)->v[OP_M_##id]++)
#define op_metric_add(m, id, n) ((m)->v[OP_M_##id] += (n))

#endif
