/* Unit tests: the Keep-Alive field's timeout, which decides how long a pooled
 * origin connection may be reused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/http.h"

#include <string.h>

/* the timeout in ms that Keep-Alive fields <v1> (and <v2>, when not NULL) give */
static int64_t timeout_of(const char *v1, const char *v2)
{
    struct op_headers h;
    op_headers_init(&h, 16, 4096);
    op_headers_add(&h, "Content-Type", 12, "text/plain", 10);
    op_headers_add(&h, "Keep-Alive", 10, v1, strlen(v1));
    if (v2 != NULL)
        op_headers_add(&h, "keep-alive", 10, v2, strlen(v2));
    int64_t ms = op_http_keep_alive_timeout_ms(&h);
    op_headers_fini(&h);
    return ms;
}

static void test_keep_alive_timeout(void **state)
{
    (void)state;
    assert_int_equal(timeout_of("timeout=5", NULL), 5000);
    assert_int_equal(timeout_of("timeout=5, max=1000", NULL), 5000);
    assert_int_equal(timeout_of("max=100, TimeOut = 15", NULL), 15000);
    assert_int_equal(timeout_of("timeout=\"7\"", NULL), 7000);
    assert_int_equal(timeout_of("timeout=0", NULL), 0);
    /* several: the shortest, in one field or across fields */
    assert_int_equal(timeout_of("timeout=30, timeout=4", NULL), 4000);
    assert_int_equal(timeout_of("timeout=4, timeout=30", NULL), 4000);
    assert_int_equal(timeout_of("timeout=9", "timeout=3"), 3000);
    assert_int_equal(timeout_of("timeout=3", "timeout=9"), 3000);
    assert_int_equal(timeout_of("timeout=x", "timeout=3"), 3000);
    /* absurd lengths are capped, never wrap */
    assert_int_equal(timeout_of("timeout=99999999999999999999999999", NULL),
                     (int64_t)OP_HTTP_KEEP_ALIVE_MAX_S * 1000);
}

static void test_keep_alive_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {"",           "5",           "timeout",      "timeout=",
                                "timeout=-1", "timeout=5s",  "timeout=1.5",  "timeouts=5",
                                "xtimeout=5", "timeout=\"5", "timeout=\"\"", "timeout==5",
                                "max=5",      "timeout=0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (timeout_of(bad[i], NULL) != -1)
            fail_msg("Keep-Alive \"%s\" gave %lld, not -1", bad[i],
                     (long long)timeout_of(bad[i], NULL));
    }
    struct op_headers none;
    op_headers_init(&none, 4, 256);
    assert_int_equal(op_http_keep_alive_timeout_ms(&none), -1);
    op_headers_fini(&none);
}

const struct CMUnitTest keep_alive_tests[] = {
    cmocka_unit_test(test_keep_alive_timeout),
    cmocka_unit_test(test_keep_alive_malformed),
};
const size_t keep_alive_tests_n = sizeof(keep_alive_tests) / sizeof(keep_alive_tests[0]);
