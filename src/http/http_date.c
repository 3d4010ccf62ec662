/* HTTP dates (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and
 * asctime forms that a recipient must still accept. Names match without case
 * (RFC 9111 §4.2: "a cache recipient SHOULD match the field value
 * case-insensitively"); any other deviation is invalid, which a cache reads as
 * a time in the past (RFC 9111 §5.3). */
#include "outpost/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

/* Days since the epoch of a civil date (Howard Hinnant's algorithm): no
 * timegm(), no time zone state. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int month_index(const char *p)
{
    for (int i = 0; i < 12; i++)
        if (strncasecmp(p, months[i], 3) == 0)
            return i;
    return -1;
}

static bool digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

static int finish(int year, int mon, int day, int hh, int mm, int ss, int64_t *out)
{
    if (mon < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1900)
        return OP_EINVAL;
    *out =
        days_from_civil(year, (unsigned)mon + 1, (unsigned)day) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

/* " GMT", the only zone (RFC 9111 §4.2: any other is invalid) */
static bool is_gmt(const char *p)
{
    return p[0] == ' ' && strncasecmp(p + 1, "GMT", 3) == 0;
}

static bool parse_hms(const char *p, int *hh, int *mm, int *ss)
{
    return p[2] == ':' && p[5] == ':' && digits(p, 2, hh) && digits(p + 3, 2, mm) &&
           digits(p + 6, 2, ss);
}

int op_http_date_parse(const char *p, size_t len, int64_t *out)
{
    int day, year, hh, mm, ss, mon;
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (len == 29 && p[3] == ',' && p[4] == ' ' && p[7] == ' ' && p[11] == ' ' && p[16] == ' ' &&
        is_gmt(p + 25)) {
        if (!digits(p + 5, 2, &day) || (mon = month_index(p + 8)) < 0 ||
            !digits(p + 12, 4, &year) || !parse_hms(p + 17, &hh, &mm, &ss))
            return OP_EINVAL;
        return finish(year, mon, day, hh, mm, ss, out);
    }
    /* asctime: "Sun Nov  6 08:49:37 1994" */
    if (len == 24 && p[3] == ' ' && p[7] == ' ' && p[10] == ' ' && p[19] == ' ') {
        char d[2] = {p[8] == ' ' ? '0' : p[8], p[9]};
        if (!digits(d, 2, &day) || (mon = month_index(p + 4)) < 0 ||
            !parse_hms(p + 11, &hh, &mm, &ss) || !digits(p + 20, 4, &year))
            return OP_EINVAL;
        return finish(year, mon, day, hh, mm, ss, out);
    }
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
    const char *comma = memchr(p, ',', len < 10 ? len : 10);
    if (comma != NULL) {
        size_t rest = len - (size_t)(comma - p);
        const char *q = comma + 2;
        if (rest == 24 && comma[1] == ' ' && q[2] == '-' && q[6] == '-' && q[9] == ' ' &&
            is_gmt(q + 18)) {
            if (!digits(q, 2, &day) || (mon = month_index(q + 3)) < 0 || !digits(q + 7, 2, &year) ||
                !parse_hms(q + 10, &hh, &mm, &ss))
                return OP_EINVAL;
            /* RFC 9110: a two-digit year more than 50 years ahead is in the past */
            year += year < 70 ? 2000 : 1900;
            return finish(year, mon, day, hh, mm, ss, out);
        }
    }
    return OP_EINVAL;
}

void op_http_date_format(int64_t t, char out[30])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    /* years past 9999 do not fit an IMF-fixdate: clamp (the field is 4 digits) */
    int year = tm.tm_year + 1900;
    if (year > 9999 || year < 0)
        year = 9999;
    snprintf(out, 30, "%.3s, %02u %.3s %04u %02u:%02u:%02u GMT", days[tm.tm_wday % 7],
             (unsigned)tm.tm_mday % 100, months[tm.tm_mon % 12], (unsigned)year % 10000,
             (unsigned)tm.tm_hour % 100, (unsigned)tm.tm_min % 100, (unsigned)tm.tm_sec % 100);
}
