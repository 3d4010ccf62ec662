/* Unit tests: header table, llhttp glue, dates, ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/http.h"

#include <stdio.h>
#include <string.h>

static void test_headers_find_tokens_and_strip(void **state)
{
    (void)state;
    struct op_headers h;
    op_headers_init(&h, 16, 4096);
    op_headers_add(&h, "Connection", 10, "close, X-Drop", 13);
    op_headers_add(&h, "X-Drop", 6, "1", 1);
    op_headers_add(&h, "Cache-Control", 13, " max-age=5 , \"a,b\"", 18);
    op_headers_add(&h, "cache-control", 13, "public", 6);
    op_headers_add(&h, "Keep-Alive", 10, "5", 1);
    assert_true(op_headers_has_token(&h, "cache-control", "public"));
    assert_true(op_headers_has_token(&h, "CACHE-CONTROL", "max-age=5"));
    assert_false(op_headers_has_token(&h, "cache-control", "a"));
    op_headers_strip_hop_by_hop(&h);
    assert_int_equal(op_headers_find(&h, "x-drop", 0), -1);
    assert_int_equal(op_headers_find(&h, "connection", 0), -1);
    assert_int_equal(op_headers_find(&h, "keep-alive", 0), -1);
    struct op_buf out;
    op_buf_init(&out, 4096);
    op_headers_serialize(&h, &out);
    const char want[] = "Cache-Control: max-age=5 , \"a,b\"\r\ncache-control: public\r\n";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
    struct op_headers back;
    op_headers_init(&back, 16, 4096);
    assert_int_equal(op_headers_parse_block(&back, out.data, out.len), 0);
    assert_int_equal(back.n, 2);
    op_headers_fini(&back);
    op_buf_fini(&out);
    op_headers_fini(&h);
}

static void test_headers_limit(void **state)
{
    (void)state;
    struct op_headers h;
    op_headers_init(&h, 2, 4096);
    assert_int_equal(op_headers_add(&h, "a", 1, "1", 1), 0);
    assert_int_equal(op_headers_add(&h, "b", 1, "1", 1), 0);
    assert_int_equal(op_headers_add(&h, "c", 1, "1", 1), OP_ETOOBIG);
    op_headers_fini(&h);
}

static int body_len;
static int count_body(void *arg, const char *p, size_t len)
{
    (void)arg;
    (void)p;
    body_len += (int)len;
    return 0;
}

static void test_parser_pauses_at_head_and_done(void **state)
{
    (void)state;
    struct op_http_msg m;
    struct op_http_parser hp;
    op_http_msg_init(&m, 32, 4096);
    op_http_parser_init(&hp, false, &m, count_body, NULL);
    const char *in = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                     "GET /y HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = strlen(in), used;
    assert_int_equal(op_http_parser_execute(&hp, in, len, &used), OP_EAGAIN);
    assert_int_equal(hp.event, OP_HTTP_EV_HEAD);
    assert_int_equal(m.method, OP_HTTP_POST);
    assert_int_equal(m.content_length, 3);
    assert_memory_equal(m.target.data, "/x", 2);
    op_http_parser_resume(&hp);
    in += used;
    len -= used;
    assert_int_equal(op_http_parser_execute(&hp, in, len, &used), OP_EAGAIN);
    assert_int_equal(hp.event, OP_HTTP_EV_DONE);
    assert_int_equal(body_len, 3);
    op_http_parser_resume(&hp);
    in += used;
    len -= used;
    assert_int_equal(op_http_parser_execute(&hp, in, len, &used), OP_EAGAIN);
    assert_int_equal(hp.event, OP_HTTP_EV_HEAD);
    assert_int_equal(m.method, OP_HTTP_GET);
    assert_memory_equal(m.target.data, "/y", 2);
    op_http_msg_fini(&m);
}

static void test_parser_head_response_has_no_body(void **state)
{
    (void)state;
    struct op_http_msg m;
    struct op_http_parser hp;
    op_http_msg_init(&m, 32, 4096);
    op_http_parser_init(&hp, true, &m, count_body, NULL);
    hp.head_only = true;
    const char *in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    size_t used;
    assert_int_equal(op_http_parser_execute(&hp, in, strlen(in), &used), OP_EAGAIN);
    assert_int_equal(hp.event, OP_HTTP_EV_INTERIM);
    assert_int_equal(m.status, 100);
    op_http_parser_resume(&hp);
    in += used;
    assert_int_equal(op_http_parser_execute(&hp, in, strlen(in), &used), OP_EAGAIN);
    assert_int_equal(hp.event, OP_HTTP_EV_HEAD);
    assert_int_equal(m.status, 200);
    op_http_parser_resume(&hp);
    assert_int_equal(op_http_parser_execute(&hp, in + used, strlen(in) - used, &used), OP_EAGAIN);
    assert_int_equal(hp.event, OP_HTTP_EV_DONE);
    op_http_msg_fini(&m);
}

/* A 304 or 204 ends with its head even when it carries a Content-Length
 * (the stored representation's): reading 10 body bytes would hang the
 * exchange, or take the next response's first bytes as body. */
static void test_parser_304_and_204_have_no_body(void **state)
{
    (void)state;
    struct op_http_msg m;
    struct op_http_parser hp;
    op_http_msg_init(&m, 32, 4096);
    op_http_parser_init(&hp, true, &m, count_body, NULL);
    const char *in = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
                     "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    size_t len = strlen(in), used;
    body_len = 0;
    const int statuses[] = {304, 204, 200};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(op_http_parser_execute(&hp, in, len, &used), OP_EAGAIN);
        assert_int_equal(hp.event, OP_HTTP_EV_HEAD);
        assert_int_equal(m.status, statuses[i]);
        op_http_parser_resume(&hp);
        in += used;
        len -= used;
        assert_int_equal(op_http_parser_execute(&hp, in, len, &used), OP_EAGAIN);
        assert_int_equal(hp.event, OP_HTTP_EV_DONE);
        op_http_parser_resume(&hp);
        in += used;
        len -= used;
        op_http_msg_reset(&m);
    }
    assert_int_equal(len, 0);
    assert_int_equal(body_len, 2);
    op_http_msg_fini(&m);
}

static void test_dates_all_three_forms(void **state)
{
    (void)state;
    int64_t t;
    const char *imf = "Sun, 06 Nov 1994 08:49:37 GMT";
    assert_int_equal(op_http_date_parse(imf, strlen(imf), &t), 0);
    assert_int_equal(t, 784111777);
    const char *rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
    int64_t t2;
    assert_int_equal(op_http_date_parse(rfc850, strlen(rfc850), &t2), 0);
    assert_int_equal(t2, t);
    const char *asc = "Sun Nov  6 08:49:37 1994";
    assert_int_equal(op_http_date_parse(asc, strlen(asc), &t2), 0);
    assert_int_equal(t2, t);
    char out[30];
    op_http_date_format(t, out);
    assert_string_equal(out, imf);
    assert_int_equal(op_http_date_parse("yesterday", 9, &t), OP_EINVAL);
    assert_int_equal(op_http_date_parse("Sun, 06 Xyz 1994 08:49:37 GMT", 29, &t), OP_EINVAL);
}

/* RFC 9111 §4.2: a cache matches dates case-insensitively, and a zone other
 * than GMT is invalid; every other deviation stays invalid (§5.3: the past). */
static void test_dates_case_and_strictness(void **state)
{
    (void)state;
    static const char *same[] = {
        "SUN, 06 NOV 1994 08:49:37 GMT", "Sun, 06 nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37 gMT", "sunday, 06-nOV-94 08:49:37 Gmt",
        "sun NOV  6 08:49:37 1994",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        int64_t t = 0;
        assert_int_equal(op_http_date_parse(same[i], strlen(same[i]), &t), 0);
        assert_int_equal(t, 784111777);
    }
    static const char *invalid[] = {
        "Sun, 06 Nov 1994 08:49:37 UTC",  "Sun, 06 Nov 1994 08:49:37 AEST",
        "Sun, 06 Nov 94 08:49:37 GMT",    "Sun 06 Nov 1994 08:49:37 GMT",
        "Sun,  06 Nov 1994 08:49:37 GMT", "Sun, 06-Nov-1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08.49.37 GMT",  "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMX",  "Sun, 06 N\x01v 1994 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        int64_t t = 0;
        assert_int_equal(op_http_date_parse(invalid[i], strlen(invalid[i]), &t), OP_EINVAL);
    }
}

static int ranges(const char *s, uint64_t size, struct op_range *r)
{
    return op_http_range_parse(s, strlen(s), size, r, 4);
}

static void test_ranges(void **state)
{
    (void)state;
    struct op_range r[4];
    assert_int_equal(ranges("bytes=0-4", 10, r), 1);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].last, 4);
    assert_int_equal(ranges("bytes=5-", 10, r), 1);
    assert_int_equal(r[0].last, 9);
    assert_int_equal(ranges("bytes=-3", 10, r), 1);
    assert_int_equal(r[0].first, 7);
    assert_int_equal(ranges("bytes=0-0, 8-100", 10, r), 2);
    assert_int_equal(r[1].last, 9);
    assert_int_equal(ranges("bytes=20-30", 10, r), 0); /* 416 */
    assert_int_equal(ranges("bytes=5-2", 10, r), -1);  /* invalid: ignore */
    assert_int_equal(ranges("items=0-1", 10, r), -1);
    assert_int_equal(ranges("bytes=a-b", 10, r), -1);
    /* adjacent ranges merge: 0-9 is one range, not too many */
    assert_int_equal(ranges("bytes=0-1,2-3,4-5,6-7,8-9", 10, r), 1);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].last, 9);
    assert_int_equal(ranges("bytes=0-0,2-2,4-4,6-6,8-8", 10, r), -1); /* 5 > 4: the whole */
}

/* Overlapping and adjacent ranges are merged and sorted; the count after
 * merging is capped (200 past it, 416 when none is satisfiable); many tiny
 * ranges are ignored (RFC 9110 §14.2). */
static void test_ranges_merge(void **state)
{
    (void)state;
    struct op_range r[16];
    char h[256];
    size_t o = (size_t)snprintf(h, sizeof(h), "bytes=0-");
    for (int i = 1; i < 16; i++)
        o += (size_t)snprintf(h + o, sizeof(h) - o, ",0-");
    uint64_t big = 16u << 20;
    assert_int_equal(op_http_range_parse(h, strlen(h), big, r, 16), 1);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].last, big - 1);
    /* out of order, overlapping and touching: sorted and merged */
    const char *s = "bytes=5000-5999,0-999,500-1999,2000-2999,-1000,9000-";
    assert_int_equal(op_http_range_parse(s, strlen(s), 10000, r, 16), 3);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].last, 2999);
    assert_int_equal(r[1].first, 5000);
    assert_int_equal(r[1].last, 5999);
    assert_int_equal(r[2].first, 9000);
    assert_int_equal(r[2].last, 9999);
    /* a later range may swallow several */
    s = "bytes=100-199,300-399,500-599,50-1000";
    assert_int_equal(op_http_range_parse(s, strlen(s), 10000, r, 16), 1);
    assert_int_equal(r[0].first, 50);
    assert_int_equal(r[0].last, 1000);
    /* 17 separate ranges after merging: the whole (200) */
    o = (size_t)snprintf(h, sizeof(h), "bytes=0-99");
    for (int i = 1; i < 17; i++)
        o += (size_t)snprintf(h + o, sizeof(h) - o, ",%d-%d", i * 200, i * 200 + 99);
    assert_int_equal(op_http_range_parse(h, strlen(h), 10000, r, 16), -1);
    /* ... but 16 are served */
    o = (size_t)snprintf(h, sizeof(h), "bytes=0-99");
    for (int i = 1; i < 16; i++)
        o += (size_t)snprintf(h + o, sizeof(h) - o, ",%d-%d", i * 200, i * 200 + 99);
    assert_int_equal(op_http_range_parse(h, strlen(h), 10000, r, 16), 16);
    /* many ranges, none satisfiable: 416 */
    o = (size_t)snprintf(h, sizeof(h), "bytes=20000-");
    for (int i = 1; i < 20; i++)
        o += (size_t)snprintf(h + o, sizeof(h) - o, ",%d-", 20000 + i);
    assert_int_equal(op_http_range_parse(h, strlen(h), 10000, r, 16), 0);
    /* past the cap, a malformed spec still voids the field */
    o = (size_t)snprintf(h, sizeof(h), "bytes=0-0");
    for (int i = 1; i < 20; i++)
        o += (size_t)snprintf(h + o, sizeof(h) - o, ",%d-%d", i * 2, i * 2);
    snprintf(h + o, sizeof(h) - o, ",x-");
    assert_int_equal(op_http_range_parse(h, strlen(h), 10000, r, 16), -1);
    /* three or more tiny ranges: ignored; two are served (e004) */
    s = "bytes=0-0,10-10,20-20";
    assert_int_equal(op_http_range_parse(s, strlen(s), 10000, r, 16), -1);
    s = "bytes=0-1,10-11";
    assert_int_equal(op_http_range_parse(s, strlen(s), 16, r, 16), 2);
    s = "bytes=0-99,200-299,400-499";
    assert_int_equal(op_http_range_parse(s, strlen(s), 10000, r, 16), 3);
}

static void expect_origin_form(const char *t, const char *want)
{
    const char *p;
    size_t len;
    bool slash;
    op_http_origin_form(t, strlen(t), &p, &len, &slash);
    char got[128];
    snprintf(got, sizeof(got), "%s%.*s", slash ? "/" : "", (int)len, p);
    assert_string_equal(got, want);
}

static void test_origin_form(void **state)
{
    (void)state;
    expect_origin_form("/a?b", "/a?b");
    expect_origin_form("http://h/a?b", "/a?b");
    expect_origin_form("http://h", "/");
    expect_origin_form("http://h?q=1", "/?q=1");
    expect_origin_form("HTTPS://h:8443/x#frag", "/x");
    expect_origin_form("*", "*");
    expect_origin_form("x:", "x:"); /* not absolute-form: left alone, no overread */
    expect_origin_form("http:/", "http:/");
}

const struct CMUnitTest http_tests[] = {
    cmocka_unit_test(test_origin_form),
    cmocka_unit_test(test_headers_find_tokens_and_strip),
    cmocka_unit_test(test_headers_limit),
    cmocka_unit_test(test_parser_pauses_at_head_and_done),
    cmocka_unit_test(test_parser_head_response_has_no_body),
    cmocka_unit_test(test_parser_304_and_204_have_no_body),
    cmocka_unit_test(test_dates_all_three_forms),
    cmocka_unit_test(test_dates_case_and_strictness),
    cmocka_unit_test(test_ranges),
    cmocka_unit_test(test_ranges_merge),
};
const size_t http_tests_n = sizeof(http_tests) / sizeof(http_tests[0]);
