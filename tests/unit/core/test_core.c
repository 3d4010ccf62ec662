/* Unit tests: core buffers, parsers, error table, mailbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/core.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void test_buf_never_grows_past_max(void **state)
{
    (void)state;
    struct op_buf b;
    op_buf_init(&b, 8);
    assert_int_equal(op_buf_append(&b, "12345678", 8), 0);
    assert_int_equal(op_buf_append(&b, "9", 1), OP_ETOOBIG);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "12345678", 8);
    op_buf_consume(&b, 3);
    assert_memory_equal(b.data, "45678", 5);
    assert_int_equal(op_buf_appendf(&b, "%d", 123), 0);
    assert_memory_equal(b.data, "45678123", 8);
    assert_int_equal(op_buf_appendf(&b, "x"), OP_ETOOBIG);
    op_buf_fini(&b);
}

/* op_dec and op_buf_append_int agree with printf, at the edges too */
static void test_decimal_without_printf(void **state)
{
    (void)state;
    static const int64_t vs[] = {0,  7,          -1,        10,        -10,
                                 99, 1234567890, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        char want[32], got[OP_DEC_MAX];
        int wl = snprintf(want, sizeof(want), "%" PRId64, vs[i]);
        size_t gl = op_dec(vs[i], got);
        assert_int_equal(gl, (size_t)wl);
        assert_memory_equal(got, want, gl);
    }
    struct op_buf b;
    op_buf_init(&b, 12);
    assert_int_equal(op_buf_append_str(&b, "Age: "), 0);
    assert_int_equal(op_buf_append_int(&b, -42), 0);
    assert_memory_equal(b.data, "Age: -42", 8);
    assert_int_equal(op_buf_append_int(&b, 12345), OP_ETOOBIG); /* past max: intact */
    assert_int_equal(b.len, 8);
    op_buf_fini(&b);
}

static void test_sizes_and_durations(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(op_parse_size("64k", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(op_parse_size("2g", &v), 0);
    assert_int_equal(v, 2147483648ull);
    assert_int_equal(op_parse_size("12", &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(op_parse_size("1x", &v), OP_EINVAL);
    assert_int_equal(op_parse_size("", &v), OP_EINVAL);
    assert_int_equal(op_parse_size("-1k", &v), OP_EINVAL);
    assert_int_equal(op_parse_size("99999999999999999999999", &v), OP_EINVAL);
    assert_int_equal(op_parse_size("18014398509481984g", &v), OP_EINVAL); /* overflow */
    assert_int_equal(op_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(op_parse_duration_ms("7d", &v), 0);
    assert_int_equal(v, 604800000ull);
    assert_int_equal(op_parse_duration_ms("5", &v), OP_EINVAL); /* a unit is required */
}

static void test_error_table(void **state)
{
    (void)state;
    assert_string_equal(op_err_name(OP_ETIMEOUT), "ETIMEOUT");
    assert_int_equal(op_err_status(OP_ETIMEOUT), 504);
    assert_int_equal(op_err_status(-OP_ECONNECT), 502);
    assert_string_equal(op_err_name(9999), "EUNKNOWN");
    assert_true(op_err_tls(OP_ETLSVERIFY) && op_err_tls(-OP_ETLSTIMEOUT) && op_err_tls(OP_ETLS) &&
                op_err_tls(OP_ETLSPLAIN));
    assert_false(op_err_tls(OP_ETIMEOUT) || op_err_tls(OP_ECONNECT) || op_err_tls(0));
}

struct counted {
    struct op_msg msg;
    int *runs;
};

static void run_counted(struct op_msg *m)
{
    (*((struct counted *)m)->runs)++;
}

static int wakes;
static void count_wake(void *arg)
{
    (void)arg;
    wakes++;
}

static void test_mailbox_runs_in_order_once(void **state)
{
    (void)state;
    struct op_mailbox mb;
    int runs = 0;
    struct counted a = {{NULL, run_counted}, &runs}, b = {{NULL, run_counted}, &runs};
    op_mailbox_init(&mb, count_wake, NULL);
    op_mailbox_post(&mb, &a.msg);
    op_mailbox_post(&mb, &b.msg);
    assert_int_equal(wakes, 2);
    assert_int_equal(op_mailbox_drain(&mb), 2);
    assert_int_equal(runs, 2);
    assert_int_equal(op_mailbox_drain(&mb), 0);
    op_mailbox_fini(&mb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_never_grows_past_max),
        cmocka_unit_test(test_decimal_without_printf),
        cmocka_unit_test(test_sizes_and_durations),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_mailbox_runs_in_order_once),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
