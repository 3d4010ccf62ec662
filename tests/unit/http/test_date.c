/* Unit tests: parsing HTTP dates robustly (RFC 9110 §5.6.7): case, zones,
 * the obsolete forms and their variants, where the meaning is unambiguous;
 * and refusing what is not a date. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/http.h"

#include <stdio.h>
#include <string.h>

#define SUNDAY 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */
#define NOW 1794960000   /* Wed, 18 Nov 2026 00:00:00 GMT */

static void expect_date(const char *s, int64_t want)
{
    int64_t t = -1;
    int rc = op_http_date_parse(s, strlen(s), &t);
    if (rc != 0 || t != want)
        print_error("\"%s\": rc %d, %lld (want %lld)\n", s, rc, (long long)t, (long long)want);
    assert_int_equal(rc, 0);
    assert_int_equal(t, want);
}

static void expect_bad(const char *s, size_t len)
{
    int64_t t = 12345;
    int rc = op_http_date_parse(s, len, &t);
    if (rc != OP_EINVAL)
        print_error("\"%.*s\": taken as %lld\n", (int)len, s, (long long)t);
    assert_int_equal(rc, OP_EINVAL);
    assert_int_equal(t, 12345); /* untouched */
}

static void test_dates_any_case(void **state)
{
    (void)state;
    expect_date("Sun, 06 Nov 1994 08:49:37 GMT", SUNDAY);
    expect_date("sun, 06 nov 1994 08:49:37 gmt", SUNDAY);
    expect_date("SUN, 06 NOV 1994 08:49:37 GMT", SUNDAY);
    expect_date("sunday, 06-nov-94 08:49:37 Gmt", SUNDAY);
    expect_date("SUN NOV  6 08:49:37 1994", SUNDAY);
}

static void test_dates_zones(void **state)
{
    (void)state;
    expect_date("Sun, 06 Nov 1994 08:49:37 UTC", SUNDAY);
    expect_date("Sun, 06 Nov 1994 08:49:37 UT", SUNDAY);
    expect_date("Sun, 06 Nov 1994 08:49:37 Z", SUNDAY);
    expect_date("Sun, 06 Nov 1994 08:49:37 +0000", SUNDAY);
    expect_date("Sun, 06 Nov 1994 08:49:37 -0000", SUNDAY);
    /* RFC 5322 numeric offsets and its obsolete North American names */
    expect_date("Sun, 06 Nov 1994 09:49:37 +0100", SUNDAY);
    expect_date("Sun, 06 Nov 1994 03:19:37 -0530", SUNDAY);
    expect_date("Sun, 06 Nov 1994 03:49:37 EST", SUNDAY);
    expect_date("Sun, 06 Nov 1994 04:49:37 edt", SUNDAY);
    expect_date("Sun, 06 Nov 1994 00:49:37 PST", SUNDAY);
    /* across midnight and the year */
    expect_date("Sat, 05 Nov 1994 23:49:37 -0900", SUNDAY);
    expect_date("Thu, 01 Jan 1970 01:00:00 +0100", 0);
}

static void test_dates_obsolete_variants(void **state)
{
    (void)state;
    expect_date("Sunday, 06-Nov-94 08:49:37 GMT", SUNDAY); /* RFC 850 */
    expect_date("Sun Nov  6 08:49:37 1994", SUNDAY);       /* asctime */
    expect_date("Sun Nov 06 08:49:37 1994", SUNDAY);
    expect_date("Sun Nov 6 08:49:37 1994", SUNDAY);
    expect_date("Sun Nov  6 08:49:37 GMT 1994", SUNDAY); /* date(1) */
    expect_date("Sun, 6 Nov 1994 08:49:37 GMT", SUNDAY); /* RFC 5322 */
    expect_date("06 Nov 1994 08:49:37 GMT", SUNDAY);
    expect_date("Sunday, 06 Nov 1994 08:49:37 GMT", SUNDAY);
    expect_date("Sun, 06 November 1994 08:49:37 GMT", SUNDAY);
    expect_date("Sun, 06-Nov-1994 08:49:37 GMT", SUNDAY); /* cookies */
    expect_date("Sun, 06 Nov 94 08:49:37 GMT", SUNDAY);   /* RFC 822 */
    expect_date("Sun, 06 Nov 1994 8:49:37 GMT", SUNDAY);
    expect_date("Sun, 06 Nov 1994 08:49 GMT", SUNDAY - 37);
    expect_date(" Sun, 06 Nov 1994 08:49:37 GMT ", SUNDAY);
    expect_date("Sun,  06  Nov  1994\t08:49:37  GMT", SUNDAY);
    expect_date("Sun,06 Nov 1994 08:49:37 GMT", SUNDAY);
    expect_date("Tue, 29 Feb 2000 12:00:00 GMT", 951825600);
    /* the weekday is not checked against the date */
    expect_date("Mon, 06 Nov 1994 08:49:37 GMT", SUNDAY);
    /* a leap second is the next second */
    expect_date("Sun, 06 Nov 1994 08:49:60 GMT", SUNDAY + 23);
}

static void expect_at(const char *s, int64_t now, int64_t want)
{
    int64_t t = -1;
    int rc = op_http_date_parse_at(s, strlen(s), now, &t);
    if (rc != 0 || t != want)
        print_error("\"%s\": rc %d, %lld (want %lld)\n", s, rc, (long long)t, (long long)want);
    assert_int_equal(rc, 0);
    assert_int_equal(t, want);
}

static void test_dates_two_digit_years(void **state)
{
    (void)state;
    /* more than 50 years ahead is the last such year in the past */
    expect_at("Sunday, 06-Nov-94 08:49:37 GMT", NOW, SUNDAY);
    expect_at("06 Nov 94 08:49:37 GMT", NOW, SUNDAY);
    expect_at("01 Jan 70 00:00:00 GMT", NOW, 3155760000); /* 2070: 44 years ahead */
    expect_at("01 Jan 70 00:00:00 GMT", NOW + 7 * 31556952LL, 3155760000);
    expect_at("01 Jan 70 00:00:00 GMT", 0, 0);
    /* ... unless the day of the week says which century: the old
     * "already expired" Expires stays in the past */
    expect_at("Thursday, 01-Jan-70 00:00:00 GMT", NOW, 0);
    expect_at("Wednesday, 01-Jan-70 00:00:00 GMT", NOW, 3155760000);
    /* a weekday matching neither leaves the rule alone */
    expect_at("Monday, 01-Jan-70 00:00:00 GMT", NOW, 3155760000);
}

static void test_dates_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        " ",
        "yesterday",
        "0",
        "-1",
        "Sun",
        "Sun, 06 Nov 1994",
        "Sun, 06 Nov 1994 08:49:37",       /* no zone: whose local time? */
        "Sun, 06 Nov 1994 08:49:37 GMT x", /* trailing junk */
        "Sun, 06 Nov 1994 08:49:37 GMTX",
        "Sun, 06 Nov 1994 08:49:37 XYZ",
        "Sun, 06 Nov 1994 08:49:37 A", /* military zones are ambiguous */
        "Sun, 06 Nov 1994 08:49:37 +01",
        "Sun, 06 Nov 1994 08:49:37 +2400",
        "Sun, 06 Nov 1994 08:49:37 +0060",
        "Sun, 06 Nov 1994 08:49:37 GMT+0100",
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Foo, 06 Nov 1994 08:49:37 GMT",
        "Su, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 No 1994 08:49:37 GMT",
        "Sun, 06 Nov-1994 08:49:37 GMT", /* one form or the other */
        "Sun, 06-Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT", /* no such day */
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 006 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 19945 08:49:37 GMT",
        "Sun, 06 Nov 199 08:49:37 GMT",
        "Sun, 06 Nov 1899 08:49:37 GMT",
        "Sun, 06 Nov 99999999999999999999 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 08:4:37 GMT",
        "Sun, 06 Nov 1994 008:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37:00 GMT",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sun, , 06 Nov 1994 08:49:37 GMT",
        "Sun Nov  6 08:49:37",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37 1994 GMT",
        "Sun Nov 6 1994 08:49:37",
        "Nov Sun 6 08:49:37 1994",
        "Sunday, 06-Nov-94 08:49:37 GMT, Monday, 07-Nov-94 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad(bad[i], strlen(bad[i]));
    /* a NUL is not the end of the value */
    expect_bad("Sun, 06 Nov 1994 08:49:37 GMT\0", 30);
    expect_bad("Sun, 06 Nov\0 1994 08:49:37 GMT", 30);
}

const struct CMUnitTest date_tests[] = {
    cmocka_unit_test(test_dates_any_case),          cmocka_unit_test(test_dates_zones),
    cmocka_unit_test(test_dates_obsolete_variants), cmocka_unit_test(test_dates_two_digit_years),
    cmocka_unit_test(test_dates_refused),
};
const size_t date_tests_n = sizeof(date_tests) / sizeof(date_tests[0]);
