/* Error log lines to stderr, and the metric name tables. */
#include "outpost/log.h"

#include "outpost/core.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum op_log_level op_log_level_current = OP_LOG_INFO;

const char *const op_metric_name[OP_M__COUNT] = {
#define X(name, help) #name,
    OP_METRICS(X)
#undef X
};

const char *const op_metric_help[OP_M__COUNT] = {
#define X(name, help) help,
    OP_METRICS(X)
#undef X
};

const char *const op_site_metric_name[OP_SM__COUNT] = {
#define X(name, help) #name,
    OP_SITE_METRICS(X)
#undef X
};

static const char *const level_name[] = {"error", "warn", "info", "debug"};

void op_log_set_level(enum op_log_level lvl)
{
    op_log_level_current = lvl;
}

int op_log_level_parse(const char *s, enum op_log_level *out)
{
    for (int i = 0; i <= OP_LOG_DEBUG; i++) {
        if (strcmp(s, level_name[i]) == 0) {
            *out = (enum op_log_level)i;
            return 0;
        }
    }
    return OP_EINVAL;
}

/* Warn and info lines are mostly per request: each thread may write
 * RATE_BURST of them, refilled at RATE_PER_SEC, so a flood of bad requests or
 * a dead origin under load cannot flood the log. What was dropped is counted
 * and reported with the next line written. */
#define RATE_PER_SEC 20
#define RATE_BURST 40

static _Thread_local struct {
    int64_t tokens_ms; /* tokens scaled by 1000 */
    int64_t last_ms;
    uint64_t dropped;
} bucket = {RATE_BURST * 1000, 0, 0};

static bool rate_allow(const struct timespec *ts, uint64_t *dropped)
{
    int64_t now = (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
    if (bucket.last_ms != 0)
        bucket.tokens_ms += (now - bucket.last_ms) * RATE_PER_SEC;
    bucket.last_ms = now;
    if (bucket.tokens_ms > RATE_BURST * 1000)
        bucket.tokens_ms = RATE_BURST * 1000;
    if (bucket.tokens_ms < 1000) {
        bucket.dropped++;
        return false;
    }
    bucket.tokens_ms -= 1000;
    *dropped = bucket.dropped;
    bucket.dropped = 0;
    return true;
}

void op_log_write(enum op_log_level lvl, const char *ctx, const char *fmt, ...)
{
    if (lvl > op_log_level_current)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    uint64_t dropped = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    if ((lvl == OP_LOG_WARN || lvl == OP_LOG_INFO) && !rate_allow(&ts, &dropped))
        return;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_name[lvl], ctx ? ctx : "-");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (dropped > 0)
        fprintf(stderr, "%s (%llu similar lines dropped by the log rate limit)\n", line,
                (unsigned long long)dropped);
    else
        fprintf(stderr, "%s\n", line);
}
