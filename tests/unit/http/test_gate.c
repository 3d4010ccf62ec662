/* Unit tests: the strict framing gate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/http.h"

#include <stdio.h>
#include <string.h>

static const struct op_http_limits lim = {
    .max_request_line = 64, .max_header_size = 256, .max_headers = 4};

static enum op_gate_rc gate(const char *s, struct op_gate *g)
{
    return op_http_gate_request(s, strlen(s), &lim, g);
}

static void expect_reject(const char *s, int status)
{
    struct op_gate g;
    assert_int_equal(gate(s, &g), OP_GATE_REJECT);
    assert_int_equal(g.status, status);
}

static void test_gate_accepts_valid_heads(void **state)
{
    (void)state;
    struct op_gate g;
    const char *s = "GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nNEXT";
    assert_int_equal(gate(s, &g), OP_GATE_HEAD);
    assert_int_equal(g.head_len, strlen(s) - 4);
    assert_int_equal(gate("GET / HTTP/1.0\r\n\r\n", &g), OP_GATE_HEAD); /* 1.0: no Host needed */
    assert_int_equal(gate("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", &g), OP_GATE_HEAD);
    assert_int_equal(g.skip, 2);
    assert_int_equal(gate("GET http://x/p HTTP/1.1\r\nHost: x\r\n\r\n", &g), OP_GATE_HEAD);
    assert_int_equal(gate("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", &g), OP_GATE_HEAD);
}

static void test_gate_waits_for_more(void **state)
{
    (void)state;
    struct op_gate g;
    assert_int_equal(gate("GET / HTTP/1.1\r\nHost: x\r", &g), OP_GATE_MORE);
    assert_int_equal(gate("GET / HTTP/1.1\r\nHost: x\r\n", &g), OP_GATE_MORE);
    assert_int_equal(gate("GE", &g), OP_GATE_MORE);
}

static void test_gate_rejects_cve_inputs(void **state)
{
    (void)state;
    /* CVE-2023-30589: a lone CR */
    expect_reject("GET / HTTP/1.1\r\nHost: x\r\nA: 1\rB: 2\r\n\r\n", 400);
    /* CVE-2024-27982: obs-fold in front of Content-Length */
    expect_reject("POST / HTTP/1.1\r\nHost: x\r\nA: 1\r\n Content-Length: 5\r\n\r\n", 400);
    /* CVE-2025-23167: \r\n\rX */
    expect_reject("GET / HTTP/1.1\r\nHost: x\r\n\rXGET / HTTP/1.1\r\n\r\n", 400);
}

static void test_gate_rejects_framing_errors(void **state)
{
    (void)state;
    expect_reject("GET / HTTP/1.1\nHost: x\n\n", 400);
    expect_reject("GET / HTTP/1.1\r\nHost: x\n\r\n", 400);
    expect_reject("GET /\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 400);
    expect_reject("GET / http/1.1\r\nHost: x\r\n\r\n", 400);
    expect_reject("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.1\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    expect_reject("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400);
    expect_reject("GET http://u@b/ HTTP/1.1\r\nHost: b\r\n\r\n", 400);
    expect_reject("GET x HTTP/1.1\r\nHost: b\r\n\r\n", 400);
    expect_reject("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n",
                  400);
    expect_reject("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                  400);
    expect_reject("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400);
    expect_reject("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 400);
    expect_reject("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n",
                  400);
    expect_reject("GET / HTTP/1.1\r\nHost: x\r\nA : b\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.1\r\nHost: x\r\nA: b\x01\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", 400);
}

static void test_gate_limits(void **state)
{
    (void)state;
    char line[200];
    memset(line, 'a', sizeof(line));
    memcpy(line, "GET /", 5);
    line[sizeof(line) - 1] = '\0';
    expect_reject(line, 414); /* no CRLF yet, already past the limit */
    expect_reject("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", 431);
    char big[400];
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: x\r\nA: %0300d\r\n\r\n", 1);
    expect_reject(big, 431);
}

const struct CMUnitTest gate_tests[] = {
    cmocka_unit_test(test_gate_accepts_valid_heads),
    cmocka_unit_test(test_gate_waits_for_more),
    cmocka_unit_test(test_gate_rejects_cve_inputs),
    cmocka_unit_test(test_gate_rejects_framing_errors),
    cmocka_unit_test(test_gate_limits),
};
const size_t gate_tests_n = sizeof(gate_tests) / sizeof(gate_tests[0]);
