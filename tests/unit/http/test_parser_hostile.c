/* The llhttp glue against hostile peers (#12): lengths that do not fit,
 * interim responses, unsolicited 101s, transfer codings, chunk extensions,
 * Connection naming end-to-end fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/http.h"

#include <string.h>

static void append(char *buf, size_t cap, const char *s)
{
    size_t at = strlen(buf), n = strlen(s);
    assert_true(at + n < cap);
    memcpy(buf + at, s, n + 1);
}

/* Parse <in> as one message; return the last execute() result, with the
 * parser's event in *ev. */
static int parse_one(bool response, const char *in, struct op_http_msg *m,
                     struct op_http_parser *hp, enum op_http_event *ev)
{
    op_http_msg_init(m, 32, 4096);
    op_http_parser_init(hp, response, m, NULL, NULL);
    size_t len = strlen(in), used = 0;
    int rc;
    do {
        rc = op_http_parser_execute(hp, in, len, &used);
        *ev = hp->event;
        if (rc == OP_EAGAIN && hp->event == OP_HTTP_EV_HEAD)
            break;
        if (rc == OP_EAGAIN)
            op_http_parser_resume(hp);
        in += used;
        len -= used;
    } while (rc == OP_EAGAIN && len > 0);
    return rc;
}

static void expect_rejected(bool response, const char *in, const char *why)
{
    struct op_http_msg m;
    struct op_http_parser hp;
    enum op_http_event ev;
    int rc = parse_one(response, in, &m, &hp, &ev);
    if (rc != OP_EPARSE)
        fail_msg("accepted (rc %d, event %d): %s", rc, (int)ev, in);
    if (why != NULL) {
        assert_non_null(hp.err_reason);
        assert_string_equal(hp.err_reason, why);
    }
    op_http_msg_fini(&m);
}

/* Defect 1: a Content-Length of 2^63 or more wrapped to a negative length,
 * which read as "no body", so the body went to the origin raw. */
static void test_content_length_beyond_int64_is_an_error(void **state)
{
    (void)state;
    expect_rejected(false,
                    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n",
                    "Content-Length too large");
    expect_rejected(false,
                    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n",
                    "Content-Length too large");
    expect_rejected(true, "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n",
                    "Content-Length too large");
    struct op_http_msg m;
    struct op_http_parser hp;
    enum op_http_event ev;
    assert_int_equal(
        parse_one(false,
                  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n", &m,
                  &hp, &ev),
        OP_EAGAIN);
    assert_int_equal(ev, OP_HTTP_EV_HEAD);
    assert_true(m.content_length == INT64_MAX);
    op_http_msg_fini(&m);
}

/* Defect 8: a 101 nobody asked for ended the message without a head and
 * tripped an assertion in the flight. */
static void test_unsolicited_101_is_an_error(void **state)
{
    (void)state;
    expect_rejected(true,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n\r\nPWNED",
                    "101 Switching Protocols was not asked for");
}

/* Defect 9: interim responses are bounded, have no body, and their fields
 * never reach the final response. */
static void test_interim_responses_bounded_and_bodiless(void **state)
{
    (void)state;
    char in[2048] = "";
    for (int i = 0; i < OP_HTTP_MAX_INTERIM; i++)
        append(in, sizeof(in), "HTTP/1.1 103 Early Hints\r\nX-Leak: 1\r\n\r\n");
    append(in, sizeof(in), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    struct op_http_msg m;
    struct op_http_parser hp;
    enum op_http_event ev;
    assert_int_equal(parse_one(true, in, &m, &hp, &ev), OP_EAGAIN);
    assert_int_equal(ev, OP_HTTP_EV_HEAD);
    assert_int_equal(m.status, 200);
    assert_null(op_headers_get(&m.headers, "x-leak", NULL));
    op_http_msg_fini(&m);

    char flood[2048] = "";
    for (int i = 0; i <= OP_HTTP_MAX_INTERIM; i++)
        append(flood, sizeof(flood), "HTTP/1.1 100 Continue\r\n\r\n");
    append(flood, sizeof(flood), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    expect_rejected(true, flood, "too many 1xx responses");

    /* a 1xx has no body: its Content-Length bytes are the next status line */
    expect_rejected(true,
                    "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nPWNED"
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                    NULL);
}

static void test_response_status_version_and_codings(void **state)
{
    (void)state;
    expect_rejected(true, "HTTP/1.1 999 Nope\r\nContent-Length: 0\r\n\r\n",
                    "status code out of range");
    expect_rejected(true, "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                    "response version is not HTTP/1.0 or 1.1");
    /* chunked not last: read until close (RFC 9112 §6.3, rule 4), so the
     * connection can never carry another response */
    struct op_http_msg m;
    struct op_http_parser hp;
    enum op_http_event ev;
    assert_int_equal(parse_one(true, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                               &m, &hp, &ev),
                     OP_EAGAIN);
    assert_int_equal(ev, OP_HTTP_EV_HEAD);
    assert_false(m.chunked);
    assert_false(m.keep_alive);
    op_http_msg_fini(&m);
    assert_int_equal(
        parse_one(true, "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", &m, &hp, &ev),
        OP_EAGAIN);
    assert_int_equal(ev, OP_HTTP_EV_HEAD);
    assert_true(m.chunked);
    op_http_msg_fini(&m);
}

/* Chunk extensions share the head's byte budget (4096 here). */
static void test_chunk_extensions_bounded(void **state)
{
    (void)state;
    static char in[8192];
    append(in, sizeof(in), "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;");
    size_t n = strlen(in);
    memset(in + n, 'a', 5000);
    in[n + 5000] = '\0';
    append(in, sizeof(in), "\r\nhello\r\n0\r\n\r\n");
    struct op_http_msg m;
    struct op_http_parser hp;
    enum op_http_event ev;
    int rc = parse_one(false, in, &m, &hp, &ev);
    assert_int_equal(ev, OP_HTTP_EV_HEAD);
    op_http_parser_resume(&hp);
    const char *body = strstr(in, "\r\n\r\n") + 4;
    size_t used;
    rc = op_http_parser_execute(&hp, body, strlen(body), &used);
    assert_int_equal(rc, OP_EPARSE);
    assert_string_equal(hp.err_reason, "chunk extensions too long");
    assert_int_equal(hp.err_status, 413);
    op_http_msg_fini(&m);
}

/* Defect 4: Connection may not take away the fields that route and frame. */
static void test_connection_cannot_drop_end_to_end_fields(void **state)
{
    (void)state;
    struct op_headers h;
    op_headers_init(&h, 32, 4096);
    op_headers_add(&h, "Host", 4, "a.test", 6);
    op_headers_add(&h, "Content-Length", 14, "5", 1);
    op_headers_add(&h, "User-Agent", 10, "evil", 4);
    op_headers_add(&h, "Connection", 10, "host, content-length, user-agent", 32);
    op_headers_strip_hop_by_hop(&h);
    size_t len;
    assert_non_null(op_headers_get(&h, "host", &len));
    assert_non_null(op_headers_get(&h, "content-length", &len));
    assert_null(op_headers_get(&h, "user-agent", &len));
    assert_null(op_headers_get(&h, "connection", &len));
    op_headers_fini(&h);
}

const struct CMUnitTest parser_hostile_tests[] = {
    cmocka_unit_test(test_content_length_beyond_int64_is_an_error),
    cmocka_unit_test(test_unsolicited_101_is_an_error),
    cmocka_unit_test(test_interim_responses_bounded_and_bodiless),
    cmocka_unit_test(test_response_status_version_and_codings),
    cmocka_unit_test(test_chunk_extensions_bounded),
    cmocka_unit_test(test_connection_cannot_drop_end_to_end_fields),
};
const size_t parser_hostile_tests_n =
    sizeof(parser_hostile_tests) / sizeof(parser_hostile_tests[0]);
