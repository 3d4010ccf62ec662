/* Unit tests: op_cache_purge_pattern, the one check and normal form of a
 * purge's pattern (admin API, store, fleet records). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/cache.h"

#include <stdint.h>
#include <string.h>

/* Normalize <in> of <kind>; returns the rc, *out holds the result. */
static int norm(enum op_purge_kind kind, const char *in, size_t len, struct op_buf *out, char *err,
                size_t errlen)
{
    op_buf_reset(out);
    err[0] = '\0';
    return op_cache_purge_pattern(kind, in, len, out, err, errlen);
}

/* <in> normalizes to <want>, and <want> to itself. */
static void check_normal(enum op_purge_kind kind, const char *in, const char *want)
{
    struct op_buf a, b;
    op_buf_init(&a, OP_CACHE_PURGE_MAX);
    op_buf_init(&b, OP_CACHE_PURGE_MAX);
    char err[300];
    int rc = norm(kind, in, strlen(in), &a, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s \"%s\": refused: %s", op_cache_purge_kind_name(kind), in, err);
    assert_int_equal(a.len, strlen(want));
    assert_memory_equal(a.data, want, a.len);
    assert_int_equal(norm(kind, a.data, a.len, &b, err, sizeof(err)), 0);
    assert_int_equal(b.len, a.len);
    assert_memory_equal(b.data, a.data, a.len);
    op_buf_fini(&a);
    op_buf_fini(&b);
}

static void test_url_normal_form_is_a_fixed_point(void **state)
{
    (void)state;
    check_normal(OP_PURGE_URL, "HTTP://EXAMPLE.com:80/a%7e%2f", "http://example.com/a~%2F");
    check_normal(OP_PURGE_URL, "http://h", "http://h/");
    check_normal(OP_PURGE_URL, "https://H:443/x?Q=%7e#frag", "https://h/x?Q=%7e");
    check_normal(OP_PURGE_URL, "http://h:0080?q", "http://h/?q");
    check_normal(OP_PURGE_URL, "http://[::A]:80/", "http://[::a]/");
    check_normal(OP_PURGE_URL, "http://h/100%", "http://h/100%");
    check_normal(OP_PURGE_URL, "http://h/a\"b\\c", "http://h/a\"b\\c");
}

static void test_prefix_normal_form_is_a_fixed_point(void **state)
{
    (void)state;
    check_normal(OP_PURGE_PREFIX, "http://h", "http://h"); /* empty path stays empty */
    check_normal(OP_PURGE_PREFIX, "HTTP://H:80/News/", "http://h/News/");
    check_normal(OP_PURGE_PREFIX, "https://h:8443/%61", "https://h:8443/a");
    check_normal(OP_PURGE_PREFIX, "http://h/%4", "http://h/%4");
}

static void test_host_normal_form_is_a_fixed_point(void **state)
{
    (void)state;
    check_normal(OP_PURGE_HOST, "*", "*");
    check_normal(OP_PURGE_HOST, "H:80", "h");
    check_normal(OP_PURGE_HOST, "h:443", "h:443"); /* http's view: covers https://h */
    check_normal(OP_PURGE_HOST, "Example.COM:08080", "example.com:8080");
    check_normal(OP_PURGE_HOST, "[::A]", "[::a]");
    check_normal(OP_PURGE_HOST, "%41.test", "a.test");
}

static void test_tag_normal_form_is_a_fixed_point(void **state)
{
    (void)state;
    check_normal(OP_PURGE_TAG, "sport", "sport");
    check_normal(OP_PURGE_TAG, "Sport/2024:\"x\"", "Sport/2024:\"x\"");
    check_normal(OP_PURGE_TAG, "~", "~");
}

/* The admin API's 400s (tests/integ/test_admin.py), word for word. */
static void test_refusals_keep_the_admin_wording(void **state)
{
    (void)state;
    static const struct {
        enum op_purge_kind kind;
        const char *in;
        size_t len; /* 0: strlen */
        const char *err;
    } cases[] = {
        {OP_PURGE_URL, "", 0, "expected an http:// or https:// URL"},
        {OP_PURGE_URL, "ftp://x/", 0, "expected an http:// or https:// URL"},
        {OP_PURGE_URL, "http://", 0, "expected an http:// or https:// URL"},
        {OP_PURGE_URL, "http:///x", 0, "the URL needs a host[:port] (and no user info)"},
        {OP_PURGE_URL, "http://u@h/", 0, "the URL needs a host[:port] (and no user info)"},
        {OP_PURGE_URL, "http://h/a b", 0, "the URL has a space or a control character"},
        {OP_PURGE_URL, "http://h/\xc3\xa9", 0, "the URL has a space or a control character"},
        {OP_PURGE_URL, "http://h/a\0b", 12, "the URL has a space or a control character"},
        {OP_PURGE_PREFIX, "gopher://h", 0, "expected an http:// or https:// URL"},
        {OP_PURGE_TAG, "", 0, "the tag must be 1 to 256 bytes"},
        {OP_PURGE_TAG, "a b", 0, "tag: no spaces, commas or control characters"},
        {OP_PURGE_TAG, "a,b", 0, "tag: no spaces, commas or control characters"},
        {OP_PURGE_TAG, "a\x7f", 0, "tag: no spaces, commas or control characters"},
        {OP_PURGE_TAG, "t\0", 2, "tag: no spaces, commas or control characters"},
        {OP_PURGE_HOST, "", 0, "host: expected HOST[:PORT] or \"*\""},
        {OP_PURGE_HOST, "a b", 0, "host: no spaces, commas or control characters"},
        {OP_PURGE_HOST, "a,b", 0, "host: expected HOST[:PORT] or \"*\""},
        {OP_PURGE_HOST, "h:x", 0, "host: expected HOST[:PORT] or \"*\""},
        {OP_PURGE_HOST, "h/x", 0, "host: expected HOST[:PORT] or \"*\""},
        {OP_PURGE_HOST, "u@h", 0, "host: expected HOST[:PORT] or \"*\""},
    };
    struct op_buf out;
    op_buf_init(&out, OP_CACHE_PURGE_MAX);
    char err[300];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        int rc = norm(cases[i].kind, cases[i].in, len, &out, err, sizeof(err));
        if (rc != OP_EINVAL || strcmp(err, cases[i].err) != 0)
            fail_msg("case %zu (%s \"%s\"): rc %d, \"%s\"", i,
                     op_cache_purge_kind_name(cases[i].kind), cases[i].in, rc, err);
        assert_int_equal(out.len, 0);
    }
    op_buf_fini(&out);
}

static void test_length_limits_apply_to_the_normal_form(void **state)
{
    (void)state;
    static char in[20000];
    struct op_buf out;
    op_buf_init(&out, OP_CACHE_PURGE_MAX);
    char err[300];
    memcpy(in, "http://h/", 9);
    memset(in + 9, 'a', sizeof(in) - 9);
    assert_int_equal(norm(OP_PURGE_URL, in, 4096, &out, err, sizeof(err)), 0);
    assert_int_equal(out.len, 4096);
    assert_int_equal(norm(OP_PURGE_URL, in, 4097, &out, err, sizeof(err)), OP_EINVAL);
    assert_string_equal(err, "the url must be 1 to 4096 bytes");
    assert_int_equal(norm(OP_PURGE_PREFIX, in, 4097, &out, err, sizeof(err)), OP_EINVAL);
    assert_string_equal(err, "the prefix must be 1 to 4096 bytes");
    /* past the scratch room, as the admin API always said */
    assert_int_equal(norm(OP_PURGE_URL, in, 16385, &out, err, sizeof(err)), OP_EINVAL);
    assert_string_equal(err, "URL too long");
    /* the limit is on the result: 3 bytes of "%61" are one of "a" */
    for (size_t i = 9; i + 3 <= 9 + 3 * 4087; i += 3)
        memcpy(in + i, "%61", 3);
    assert_int_equal(norm(OP_PURGE_URL, in, 9 + 3 * 4087, &out, err, sizeof(err)), 0);
    assert_int_equal(out.len, 4096);
    assert_int_equal(norm(OP_PURGE_URL, in, 9 + 3 * 4088, &out, err, sizeof(err)), OP_EINVAL);
    assert_string_equal(err, "the url must be 1 to 4096 bytes");

    memset(in, 't', 300);
    assert_int_equal(norm(OP_PURGE_TAG, in, 256, &out, err, sizeof(err)), 0);
    assert_int_equal(out.len, 256);
    assert_int_equal(norm(OP_PURGE_TAG, in, 257, &out, err, sizeof(err)), OP_EINVAL);
    assert_string_equal(err, "the tag must be 1 to 256 bytes");
    memset(in, 'h', 300);
    assert_int_equal(norm(OP_PURGE_HOST, in, 255, &out, err, sizeof(err)), 0);
    assert_int_equal(norm(OP_PURGE_HOST, in, 256, &out, err, sizeof(err)), OP_EINVAL);
    op_buf_fini(&out);
}

/* "%4%31": the '%' before "4" starts nothing, but once "%31" is decoded to
 * "1" the result reads "%41", which normalizes again to "A". */
static void test_a_pattern_without_a_stable_normal_form_is_refused(void **state)
{
    (void)state;
    struct op_buf out;
    op_buf_init(&out, OP_CACHE_PURGE_MAX);
    char err[300];
    static const char *const unstable[] = {"http://h/%4%31", "http://h/%%341", "http://h/x%%36%31"};
    for (size_t i = 0; i < sizeof(unstable) / sizeof(unstable[0]); i++) {
        for (int k = OP_PURGE_URL; k <= OP_PURGE_PREFIX; k++) {
            int rc = norm((enum op_purge_kind)k, unstable[i], strlen(unstable[i]), &out, err,
                          sizeof(err));
            assert_int_equal(rc, OP_EINVAL);
            assert_non_null(strstr(err, "%25"));
            assert_int_equal(out.len, 0);
        }
    }
    op_buf_fini(&out);
}

/* Random patterns over the bytes that matter: whatever is accepted comes
 * out a fixed point, whatever is refused says why. */
static void test_every_accepted_pattern_is_a_fixed_point(void **state)
{
    (void)state;
    static const char alpha[] = "hH:/%4123aAfF?#[]@,*.-_~ \x01\x7f\x80";
    static const char *const pre[] = {"", "http://", "https://", "HTTP://h", "http://h/", "h:"};
    struct op_buf a, b;
    op_buf_init(&a, OP_CACHE_PURGE_MAX);
    op_buf_init(&b, OP_CACHE_PURGE_MAX);
    char err[300], s[64];
    uint64_t x = 88172645463325252ull; /* xorshift64 */
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const char *p = pre[x % 6];
        size_t n = strlen(p), len = n + (x >> 8) % 16;
        memcpy(s, p, n);
        for (size_t i = n; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            s[i] = alpha[x % (sizeof(alpha) - 1)];
        }
        enum op_purge_kind kind = (enum op_purge_kind)((x >> 32) % 4);
        if (norm(kind, s, len, &a, err, sizeof(err)) != 0) {
            assert_true(err[0] != '\0');
            continue;
        }
        accepted++;
        assert_int_equal(norm(kind, a.data, a.len, &b, err, sizeof(err)), 0);
        assert_int_equal(b.len, a.len);
        assert_memory_equal(b.data, a.data, a.len);
    }
    assert_true(accepted > 1000);
    op_buf_fini(&a);
    op_buf_fini(&b);
}

static void test_appends_and_leaves_out_alone_on_failure(void **state)
{
    (void)state;
    struct op_buf out;
    op_buf_init(&out, 16);
    char err[300];
    assert_int_equal(op_buf_append(&out, "k=", 2), 0);
    assert_int_equal(op_cache_purge_pattern(OP_PURGE_HOST, "H", 1, &out, err, sizeof(err)), 0);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "k=h", 3);
    assert_int_equal(op_cache_purge_pattern(OP_PURGE_TAG, "a b", 3, &out, err, sizeof(err)),
                     OP_EINVAL);
    assert_int_equal(out.len, 3);
    /* no room in <out>: too big, and said */
    err[0] = '\0';
    assert_int_equal(
        op_cache_purge_pattern(OP_PURGE_URL, "http://h/0123456789", 19, &out, err, sizeof(err)),
        OP_ETOOBIG);
    assert_true(err[0] != '\0');
    assert_int_equal(out.len, 3);
    /* a short err is cut, still terminated; none at all is fine */
    char small[5];
    assert_int_equal(op_cache_purge_pattern(OP_PURGE_TAG, "", 0, &out, small, sizeof(small)),
                     OP_EINVAL);
    assert_string_equal(small, "the ");
    assert_int_equal(op_cache_purge_pattern(OP_PURGE_TAG, "", 0, &out, NULL, 0), OP_EINVAL);
    op_buf_fini(&out);
}

static void test_kind_names(void **state)
{
    (void)state;
    static const char *const names[] = {"url", "prefix", "tag", "host"};
    for (int k = 0; k < 4; k++) {
        enum op_purge_kind back;
        assert_string_equal(op_cache_purge_kind_name((enum op_purge_kind)k), names[k]);
        assert_true(op_cache_purge_kind_parse(names[k], strlen(names[k]), &back));
        assert_int_equal(back, k);
    }
    enum op_purge_kind kind = OP_PURGE_TAG;
    assert_false(op_cache_purge_kind_parse("URL", 3, &kind));
    assert_false(op_cache_purge_kind_parse("ur", 2, &kind));
    assert_false(op_cache_purge_kind_parse("urls", 4, &kind));
    assert_false(op_cache_purge_kind_parse("", 0, &kind));
    assert_int_equal(kind, OP_PURGE_TAG);
    assert_null(op_cache_purge_kind_name((enum op_purge_kind)4));
    char err[100];
    struct op_buf out;
    op_buf_init(&out, 64);
    assert_int_equal(op_cache_purge_pattern((enum op_purge_kind)4, "x", 1, &out, err, sizeof(err)),
                     OP_EINVAL);
    assert_true(err[0] != '\0');
    op_buf_fini(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_normal_form_is_a_fixed_point),
        cmocka_unit_test(test_prefix_normal_form_is_a_fixed_point),
        cmocka_unit_test(test_host_normal_form_is_a_fixed_point),
        cmocka_unit_test(test_tag_normal_form_is_a_fixed_point),
        cmocka_unit_test(test_refusals_keep_the_admin_wording),
        cmocka_unit_test(test_length_limits_apply_to_the_normal_form),
        cmocka_unit_test(test_a_pattern_without_a_stable_normal_form_is_refused),
        cmocka_unit_test(test_every_accepted_pattern_is_a_fixed_point),
        cmocka_unit_test(test_appends_and_leaves_out_alone_on_failure),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests_name("cache_purge_pattern", tests, NULL, NULL);
}
