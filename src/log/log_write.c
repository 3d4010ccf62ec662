/* Error log lines to stderr, and the metric name tables. */
#include "outpost/log.h"

#include "outpost/core.h"

#include <stdarg.h>
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

void op_log_write(enum op_log_level lvl, const char *ctx, const char *fmt, ...)
{
    if (lvl > op_log_level_current)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_name[lvl], ctx ? ctx : "-");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
