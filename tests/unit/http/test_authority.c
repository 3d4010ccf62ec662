/* Unit tests: authorities (RFC 3986 §3.2) as the gate checks them and as the
 * cache key writes them (RFC 9110 §4.2.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/http.h"

#include <stdio.h>
#include <string.h>

/* <in> normalizes (for <https>) to <want>, or is rejected when want is NULL. */
static void expect_norm(const char *in, bool https, const char *want)
{
    char out[OP_HTTP_AUTHORITY_MAX];
    size_t n = 0;
    int rc = op_http_authority_norm(in, strlen(in), https, out, &n);
    if (want == NULL) {
        if (rc != OP_EINVAL)
            fail_msg("\"%s\" was accepted as \"%.*s\"", in, (int)n, out);
        return;
    }
    if (rc != 0)
        fail_msg("\"%s\" was rejected", in);
    if (n != strlen(want) || memcmp(out, want, n) != 0)
        fail_msg("\"%s\" gave \"%.*s\", not \"%s\"", in, (int)n, out, want);
}

static void test_authority_normal_form(void **state)
{
    (void)state;
    expect_norm("h", false, "h");
    expect_norm("Example.COM", false, "example.com");
    expect_norm("h:80", false, "h");
    expect_norm("h:", false, "h"); /* empty port (RFC 3986 §6.2.3) */
    expect_norm("h:080", false, "h");
    expect_norm("h:8080", false, "h:8080");
    expect_norm("h:443", false, "h:443");
    expect_norm("h:443", true, "h");
    expect_norm("h:80", true, "h:80");
    expect_norm("h.", false, "h."); /* another name as far as URIs go */
    expect_norm("[::1]:80", false, "[::1]");
    expect_norm("[::1]", false, "[::1]");
    expect_norm("[::1]:", false, "[::1]");
    expect_norm("[2001:DB8::A]:8080", false, "[2001:db8::a]:8080");
    expect_norm("[::ffff:127.0.0.1]", false, "[::ffff:127.0.0.1]");
    expect_norm("[v1.x:y]", false, "[v1.x:y]");
    expect_norm("127.0.0.1:8080", false, "127.0.0.1:8080");
    expect_norm("%61.test", false, "a.test"); /* unreserved octet decoded */
    expect_norm("a%2cb", false, "a%2Cb");     /* others in upper-case hex */
    expect_norm("a-b_c~d!$&'()*+;=", false, "a-b_c~d!$&'()*+;=");
    expect_norm("h:65535", false, "h:65535");
}

static void test_authority_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",        ":80",   "u@h",    "u:p@h", "h/a", "/",       "h?",
        "h#",      "h x",   " h",     "h:8o",  "h:0", "h:65536", "h:99999999999",
        "h:80:80", "[::1",  "[::1]x", "[h]",   "[]",  "[::1]:x", "h\"",
        "h<",      "h\\",   "h{",     "h%",    "h%4", "h%zz",    "[::1%25e]",
        "h\x7f",   "h\x01", "h^",     "h|",    "h`",  "[v.x]",   "[vx.y]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_norm(bad[i], false, NULL);
    char longhost[OP_HTTP_HOST_MAX + 8];
    memset(longhost, 'a', OP_HTTP_HOST_MAX + 1);
    longhost[OP_HTTP_HOST_MAX + 1] = '\0';
    expect_norm(longhost, false, NULL);
    longhost[OP_HTTP_HOST_MAX] = '\0';
    char out[OP_HTTP_AUTHORITY_MAX];
    size_t n;
    assert_int_equal(op_http_authority_norm(longhost, strlen(longhost), false, out, &n), 0);
    strcat(longhost, ":65535");
    assert_int_equal(op_http_authority_norm(longhost, strlen(longhost), false, out, &n), 0);
    assert_int_equal(n, OP_HTTP_HOST_MAX + 6);
}

static void test_authority_same_and_split(void **state)
{
    (void)state;
    assert_true(op_http_authority_same("H:80", 4, "h", 1, false));
    assert_false(op_http_authority_same("H:80", 4, "h", 1, true));
    assert_true(op_http_authority_same("h:443", 5, "h:", 2, true));
    assert_false(op_http_authority_same("h.", 2, "h", 1, false));
    assert_false(op_http_authority_same("u@h", 3, "u@h", 3, false)); /* both invalid */
    /* the host part of an authority, for the 308 and the origin's TLS name */
    assert_int_equal(op_http_authority_host_len("a.test:8080", 11), 6);
    assert_int_equal(op_http_authority_host_len("a.test", 6), 6);
    assert_int_equal(op_http_authority_host_len("[::1]:443", 9), 5);
    assert_int_equal(op_http_authority_host_len("[::1", 4), 4);
    assert_int_equal(op_http_authority_host_len("", 0), 0);
    bool https;
    const char *a, *rest;
    size_t alen, rlen;
    const char *u = "HTTPS://h:443?q#f";
    assert_true(op_http_url_split(u, strlen(u), &https, &a, &alen, &rest, &rlen));
    assert_true(https);
    assert_int_equal(alen, 5);
    assert_memory_equal(a, "h:443", 5);
    assert_int_equal(rlen, 4);
    assert_false(op_http_url_split("ftp://h/", 8, &https, &a, &alen, &rest, &rlen));
    assert_false(op_http_url_split("http:/h", 7, &https, &a, &alen, &rest, &rlen));
}

static const struct op_http_limits lim = {
    .max_request_line = 256, .max_header_size = 1024, .max_headers = 8};

static int gate_status(const char *target, const char *host)
{
    char head[600];
    if (host != NULL)
        snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, host);
    else
        snprintf(head, sizeof(head), "GET %s HTTP/1.0\r\n\r\n", target);
    struct op_gate g;
    enum op_gate_rc rc = op_http_gate_request(head, strlen(head), &lim, &g);
    return rc == OP_GATE_HEAD ? 200 : rc == OP_GATE_REJECT ? g.status : 0;
}

/* Defect 3 of the security issue: the gate lets only host [":" port]
 * through as Host, and an absolute-form authority only when it is Host's. */
static void test_gate_checks_host_syntax(void **state)
{
    (void)state;
    static const char *const bad_hosts[] = {
        "victim.com/a", "victim.com/", "/",       "a?b",     "a#b",     "u@victim.com",
        "u:p@h",        "a b",         "h:8o",    "h:80:80", "[::1",    "h\"x",
        "h<x>",         "h\\x",        "h:65536", "h%zz",    "h,:80 x", "victim.com?",
    };
    for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        if (gate_status("/b", bad_hosts[i]) != 400)
            fail_msg("Host \"%s\" was not refused", bad_hosts[i]);
    }
    static const char *const good_hosts[] = {"h", "H:80", "h:", "[::1]:80", "h.", "127.0.0.1:1"};
    for (size_t i = 0; i < sizeof(good_hosts) / sizeof(good_hosts[0]); i++) {
        if (gate_status("/b", good_hosts[i]) != 200)
            fail_msg("Host \"%s\" was refused", good_hosts[i]);
    }
    /* absolute-form: the authority is checked, and must be Host's once both
     * are normalized for the target's scheme */
    assert_int_equal(gate_status("http://h/x", "h"), 200);
    assert_int_equal(gate_status("HTTP://H:80/x", "h"), 200);
    assert_int_equal(gate_status("http://h/x", "h:80"), 200);
    assert_int_equal(gate_status("https://h:443/x", "h"), 200);
    assert_int_equal(gate_status("https://h/x", "h:80"), 400);
    assert_int_equal(gate_status("http://h/x", "h:443"), 400);
    assert_int_equal(gate_status("http://h/x", "g"), 400);
    assert_int_equal(gate_status("http://u@h/x", "h"), 400);
    assert_int_equal(gate_status("http://h:x/x", "h:x"), 400);
    assert_int_equal(gate_status("http:///x", "h"), 400);
    assert_int_equal(gate_status("http://h/x", NULL), 200); /* 1.0, no Host */
    assert_int_equal(gate_status("http://h%zz/x", NULL), 400);
    assert_int_equal(gate_status("ftp://h/x", "h"), 400);
}

const struct CMUnitTest authority_tests[] = {
    cmocka_unit_test(test_authority_normal_form),
    cmocka_unit_test(test_authority_rejects),
    cmocka_unit_test(test_authority_same_and_split),
    cmocka_unit_test(test_gate_checks_host_syntax),
};
const size_t authority_tests_n = sizeof(authority_tests) / sizeof(authority_tests[0]);
