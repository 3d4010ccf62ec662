/* HTTP dates (RFC 9110 §5.6.7). Senders write IMF-fixdate; recipients are
 * to be robust, so besides it and the obsolete RFC 850 and asctime forms this
 * reads what the Internet Message Format (RFC 5322, with its obsolete syntax)
 * and old servers write, wherever the meaning is unambiguous:
 *
 *   [day-name[,]] day month year time zone     "Sun, 06 Nov 1994 08:49:37 GMT"
 *   [day-name,] day-month-year time zone       "Sunday, 06-Nov-94 08:49:37 GMT"
 *   [day-name] month day time [zone] year      "Sun Nov  6 08:49:37 1994"
 *
 * Names in any case, abbreviated or in full; one or two digits for the day
 * and the hour; the seconds optional; runs of spaces; a zone of GMT, UTC,
 * UT, Z, +hhmm / -hhmm or RFC 5322's EST, EDT, CST, CDT, MST, MDT, PST and
 * PDT. A two-digit year more than 50 years ahead is the last such year in
 * the past (RFC 9110), unless the day of the week names the century before.
 * Not taken: a missing zone (whose local time?), military zones other than
 * Z (RFC 5322 calls them ambiguous), a day the month does not have, a year
 * before 1900, anything after the date. The day of the week is checked to be
 * a day name, not against the date. */
#include "outpost/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[12] = {"January",   "February", "March",    "April",
                                            "May",       "June",     "July",     "August",
                                            "September", "October",  "November", "December"};
static const char *const day_names[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};

static const struct {
    const char *name;
    int minutes; /* east of UTC */
} zones[] = {
    {"GMT", 0},    {"UTC", 0},    {"UT", 0},     {"Z", 0},      {"EST", -300}, {"EDT", -240},
    {"CST", -360}, {"CDT", -300}, {"MST", -420}, {"MDT", -360}, {"PST", -480}, {"PDT", -420},
};

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

static int weekday(int year, int mon, int day)
{
    int64_t d = days_from_civil(year, (unsigned)mon + 1, (unsigned)day);
    return (int)(((d % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
}

static int month_days(int year, int mon)
{
    static const int n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mon == 1 && leap ? 29 : n[mon];
}

/* The input, read left to right; nothing past end is ever looked at. */
struct cur {
    const char *p, *end;
};

static size_t skip_space(struct cur *c)
{
    size_t n = 0;
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) {
        c->p++;
        n++;
    }
    return n;
}

static bool take(struct cur *c, char ch)
{
    if (c->p >= c->end || *c->p != ch)
        return false;
    c->p++;
    return true;
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* A run of letters: its length (0 if none), left in *w. */
static size_t word(struct cur *c, const char **w)
{
    *w = c->p;
    while (c->p < c->end && is_alpha(*c->p))
        c->p++;
    return (size_t)(c->p - *w);
}

/* min..max digits, and no more: the value, or -1. */
static int number(struct cur *c, size_t min, size_t max)
{
    int v = 0;
    size_t n = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (++n > max)
            return -1;
        v = v * 10 + (*c->p++ - '0');
    }
    return n >= min ? v : -1;
}

/* An abbreviation or a full name, in any case: its index, or -1. */
static int name_index(const char *w, size_t n, const char abbr[][4], const char *const *full,
                      int count)
{
    for (int i = 0; i < count; i++)
        if ((n == 3 && strncasecmp(w, abbr[i], 3) == 0) ||
            (n == strlen(full[i]) && strncasecmp(w, full[i], n) == 0))
            return i;
    return -1;
}

/* hh:mm[:ss], the hour in one or two digits. */
static bool parse_time(struct cur *c, int *hh, int *mm, int *ss)
{
    *ss = 0;
    if ((*hh = number(c, 1, 2)) < 0 || !take(c, ':') || (*mm = number(c, 2, 2)) < 0)
        return false;
    if (take(c, ':') && (*ss = number(c, 2, 2)) < 0)
        return false;
    return *hh <= 23 && *mm <= 59 && *ss <= 60;
}

/* A zone: its offset east of UTC in minutes. */
static bool parse_zone(struct cur *c, int *minutes)
{
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
        int sign = *c->p++ == '-' ? -1 : 1;
        int v = number(c, 4, 4);
        if (v < 0 || v / 100 > 23 || v % 100 > 59)
            return false;
        *minutes = sign * (v / 100 * 60 + v % 100);
        return true;
    }
    const char *w;
    size_t n = word(c, &w);
    for (size_t i = 0; n > 0 && i < sizeof(zones) / sizeof(zones[0]); i++)
        if (n == strlen(zones[i].name) && strncasecmp(w, zones[i].name, n) == 0) {
            *minutes = zones[i].minutes;
            return true;
        }
    return false;
}

/* RFC 9110: a two-digit year that appears more than 50 years ahead of <now>
 * is the most recent past year with those digits. A day of the week that
 * fits the century before and not this one settles it the other way (the
 * "already expired" Expires of old servers, "Thursday, 01-Jan-70"). */
static int full_year(int yy, int64_t now, int wday, int mon, int day)
{
    time_t tt = (time_t)now;
    struct tm tm;
    int cur = gmtime_r(&tt, &tm) != NULL ? tm.tm_year + 1900 : 2000;
    int y = cur - cur % 100 + yy;
    while (y > cur + 50)
        y -= 100;
    while (y + 100 <= cur + 50)
        y += 100;
    if (wday >= 0 && day <= month_days(y, mon) && weekday(y, mon, day) != wday &&
        day <= month_days(y - 100, mon) && weekday(y - 100, mon, day) == wday)
        y -= 100;
    return y;
}

int op_http_date_parse_at(const char *p, size_t len, int64_t now, int64_t *out)
{
    struct cur c = {p, p + len};
    int wday = -1, mon = -1, day = 0, year = 0, hh = 0, mm = 0, ss = 0, zone = 0;
    bool two_digit = false;
    const char *w;
    size_t n;

    skip_space(&c);
    n = word(&c, &w);
    if (n > 0 && (wday = name_index(w, n, days, day_names, 7)) >= 0) {
        bool comma = take(&c, ',');
        if (skip_space(&c) == 0 && !comma)
            return OP_EINVAL;
        n = word(&c, &w);
    }
    if (n > 0) {
        /* asctime: month day time [zone] year */
        if ((mon = name_index(w, n, months, month_names, 12)) < 0 || skip_space(&c) == 0 ||
            (day = number(&c, 1, 2)) < 0 || skip_space(&c) == 0 || !parse_time(&c, &hh, &mm, &ss) ||
            skip_space(&c) == 0)
            return OP_EINVAL;
        if (c.p < c.end && is_alpha(*c.p) && (!parse_zone(&c, &zone) || skip_space(&c) == 0))
            return OP_EINVAL;
        if ((year = number(&c, 4, 4)) < 0)
            return OP_EINVAL;
    } else {
        /* day month year, or day-month-year */
        if ((day = number(&c, 1, 2)) < 0)
            return OP_EINVAL;
        bool dashes = take(&c, '-');
        if (!dashes && skip_space(&c) == 0)
            return OP_EINVAL;
        n = word(&c, &w);
        if ((mon = name_index(w, n, months, month_names, 12)) < 0)
            return OP_EINVAL;
        if (dashes ? !take(&c, '-') : skip_space(&c) == 0)
            return OP_EINVAL;
        const char *y0 = c.p;
        year = number(&c, 2, 4);
        two_digit = c.p - y0 == 2;
        if (year < 0 || c.p - y0 == 3 || skip_space(&c) == 0 || !parse_time(&c, &hh, &mm, &ss) ||
            skip_space(&c) == 0 || !parse_zone(&c, &zone))
            return OP_EINVAL;
    }
    skip_space(&c);
    if (c.p != c.end || day < 1 || day > 31)
        return OP_EINVAL;
    if (two_digit)
        year = full_year(year, now, wday, mon, day);
    if (year < 1900 || day > month_days(year, mon))
        return OP_EINVAL;
    *out = days_from_civil(year, (unsigned)mon + 1, (unsigned)day) * 86400 + hh * 3600 + mm * 60 +
           ss - (int64_t)zone * 60;
    return 0;
}

int op_http_date_parse(const char *p, size_t len, int64_t *out)
{
    return op_http_date_parse_at(p, len, op_time_now(), out);
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
