/* Clocks, and the size/duration/number parsers shared by config and CLI. */
#include "outpost/core.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

int64_t op_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t op_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t op_time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int op_parse_u64(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return OP_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return OP_EINVAL;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return OP_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Split "123unit" into the number and the unit; the unit is looked up in a table. */
static int parse_scaled(const char *s, const char *const *units, const uint64_t *mult,
                        uint64_t *out)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    uint64_t v;
    if (op_parse_u64(s, n, &v) != 0)
        return OP_EINVAL;
    const char *unit = s + n;
    for (size_t i = 0; units[i] != NULL; i++) {
        if (strcmp(unit, units[i]) == 0) {
            if (mult[i] != 0 && v > UINT64_MAX / mult[i])
                return OP_EINVAL;
            *out = v * mult[i];
            return 0;
        }
    }
    return OP_EINVAL;
}

int op_parse_size(const char *s, uint64_t *out)
{
    static const char *const units[] = {"",   "b",  "k", "K", "kb", "KB", "m", "M",
                                        "mb", "MB", "g", "G", "gb", "GB", NULL};
    static const uint64_t mult[] = {1,          1,          1024,       1024,      1024,
                                    1024,       1048576,    1048576,    1048576,   1048576,
                                    1073741824, 1073741824, 1073741824, 1073741824};
    return parse_scaled(s, units, mult, out);
}

int op_parse_duration_ms(const char *s, uint64_t *out)
{
    static const char *const units[] = {"ms", "s", "m", "h", "d", NULL};
    static const uint64_t mult[] = {1, 1000, 60000, 3600000, 86400000};
    return parse_scaled(s, units, mult, out);
}

bool op_streq_nocase(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return false;
    return true;
}
