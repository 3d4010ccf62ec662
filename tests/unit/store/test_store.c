/* Unit tests: record codecs, and the LMDB store in a temporary directory
 * (put, Vary, invalidate, eviction, reopen). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void make_dir(void)
{
    const char *base = getenv("OP_TEST_TMP");
    char cmd[300];
    if (base == NULL)
        base = "/tmp";
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", base);
    assert_int_equal(system(cmd), 0);
    snprintf(dir, sizeof(dir), "%s/store-XXXXXX", base);
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_codec_roundtrip_and_rejects(void **state)
{
    (void)state;
    struct op_store_rec r = {.meta = {.request_time = 1,
                                      .response_time = 2,
                                      .freshness_lifetime = 60,
                                      .swr = -1,
                                      .sie = 5,
                                      .status = 200},
                             .seq = 7,
                             .primary = "http://h/a",
                             .primary_len = 10,
                             .secondary = "x=1\n",
                             .secondary_len = 4,
                             .headers = "A: b\r\n",
                             .headers_len = 6,
                             .body = "hello",
                             .body_len = 5};
    size_t len;
    char *p = op_store__rec_encode(&r, &len);
    assert_non_null(p);
    struct op_store_rec d;
    assert_int_equal(op_store__rec_decode(p, len, &d), 0);
    assert_int_equal(d.meta.freshness_lifetime, 60);
    assert_int_equal(d.meta.sie, 5);
    assert_int_equal(d.seq, 7);
    assert_memory_equal(d.body, "hello", 5);
    assert_memory_equal(d.primary, "http://h/a", 10);
    assert_int_equal(op_store__rec_decode(p, len - 1, &d), OP_EPARSE); /* truncated */
    p[4] = 9;                                                          /* another format version */
    assert_int_equal(op_store__rec_decode(p, len, &d), OP_EPARSE);
    free(p);
    assert_int_equal(op_store__rec_decode("short", 5, &d), OP_EPARSE);
}

static int acked;
static void on_ack(struct op_msg *m)
{
    (void)m;
    acked++;
}

/* The writer works in order: an acknowledged invalidation of an unrelated key
 * means everything queued before it is committed. */
static void barrier(struct op_store *s)
{
    struct op_mailbox mb;
    struct op_msg done = {NULL, on_ack};
    op_mailbox_init(&mb, NULL, NULL);
    int before = acked;
    assert_int_equal(op_store_invalidate(s, "barrier", 7, &mb, &done), 0);
    for (int i = 0; i < 500 && acked == before; i++) {
        op_mailbox_drain(&mb);
        if (acked == before)
            usleep(10000);
    }
    assert_int_equal(acked, before + 1);
    op_mailbox_fini(&mb);
}

static void put(struct op_store *s, const char *key, const char *vary, const struct op_headers *req,
                const char *body, size_t blen)
{
    struct op_cache_meta m = {
        .response_time = 1, .freshness_lifetime = 60, .status = 200, .swr = -1, .sie = -1};
    assert_int_equal(
        op_store_put(s, key, strlen(key), vary, strlen(vary), req, &m, "X: y\r\n", 6, body, blen),
        0);
}

static int lookup(struct op_store_reader *r, const char *key, const struct op_headers *req,
                  char *body, size_t cap)
{
    struct op_store_obj o;
    int rc = op_store_lookup(r, key, strlen(key), req, &o);
    if (rc == 0) {
        assert_true(o.body_len < cap);
        memcpy(body, o.body, o.body_len);
        body[o.body_len] = '\0';
    }
    op_store_reader_end(r);
    return rc;
}

static void test_put_vary_invalidate_reopen(void **state)
{
    (void)state;
    make_dir();
    struct op_store_config cfg = {.dir = dir, .map_size = 16 << 20, .max_object_size = 1 << 20};
    struct op_store *s;
    struct op_store_reader *r;
    assert_int_equal(op_store_open(&cfg, &s), 0);
    assert_int_equal(op_store_reader_open(s, &r), 0);
    struct op_headers en, fr;
    op_headers_init(&en, 8, 1024);
    op_headers_init(&fr, 8, 1024);
    op_headers_add(&en, "Accept-Language", 15, "en", 2);
    op_headers_add(&fr, "Accept-Language", 15, "fr", 2);
    char body[64];

    assert_int_equal(lookup(r, "http://h/a", &en, body, sizeof(body)), OP_ENOTFOUND);
    put(s, "http://h/a", "accept-language", &en, "hello", 5);
    put(s, "http://h/a", "accept-language", &fr, "bonjour", 7);
    put(s, "http://h/b", "", &en, "plain", 5);
    barrier(s);
    assert_int_equal(lookup(r, "http://h/a", &en, body, sizeof(body)), 0);
    assert_string_equal(body, "hello");
    assert_int_equal(lookup(r, "http://h/a", &fr, body, sizeof(body)), 0);
    assert_string_equal(body, "bonjour");
    assert_int_equal(lookup(r, "http://h/b", &fr, body, sizeof(body)), 0);

    /* invalidation removes every variant */
    assert_int_equal(op_store_invalidate(s, "http://h/a", 10, NULL, NULL), 0);
    barrier(s);
    assert_int_equal(lookup(r, "http://h/a", &en, body, sizeof(body)), OP_ENOTFOUND);
    assert_int_equal(lookup(r, "http://h/a", &fr, body, sizeof(body)), OP_ENOTFOUND);

    /* what was committed survives a close and reopen */
    op_store_reader_close(r);
    op_store_close(s);
    assert_int_equal(op_store_open(&cfg, &s), 0);
    assert_int_equal(op_store_reader_open(s, &r), 0);
    assert_int_equal(lookup(r, "http://h/b", &en, body, sizeof(body)), 0);
    assert_string_equal(body, "plain");
    struct op_store_stats st;
    op_store_stats(s, &st);
    assert_int_equal(st.objects, 1);
    op_store_reader_close(r);
    op_store_close(s);
    op_headers_fini(&en);
    op_headers_fini(&fr);
    remove_dir();
}

static void test_eviction_keeps_under_budget(void **state)
{
    (void)state;
    make_dir();
    struct op_store_config cfg = {.dir = dir, .map_size = 2 << 20, .max_object_size = 1 << 20};
    struct op_store *s;
    struct op_store_reader *r;
    assert_int_equal(op_store_open(&cfg, &s), 0);
    assert_int_equal(op_store_reader_open(s, &r), 0);
    struct op_headers none;
    op_headers_init(&none, 8, 1024);
    static char big[64 * 1024];
    memset(big, 'z', sizeof(big));
    char key[64];
    for (int i = 0; i < 100; i++) { /* 6.4 MB into a 2 MB map */
        snprintf(key, sizeof(key), "http://h/%d", i);
        put(s, key, "", &none, big, sizeof(big));
        if (i % 10 == 9)
            barrier(s);
    }
    barrier(s);
    struct op_store_stats st;
    op_store_stats(s, &st);
    assert_true(st.evictions > 0);
    assert_int_equal(st.put_failures, 0);
    assert_true(st.bytes <= st.budget);
    char *body = malloc(sizeof(big) + 1);
    assert_int_equal(lookup(r, "http://h/99", &none, body, sizeof(big) + 1), 0);
    assert_int_equal(lookup(r, "http://h/0", &none, body, sizeof(big) + 1), OP_ENOTFOUND);
    free(body);
    op_headers_fini(&none);
    op_store_reader_close(r);
    op_store_close(s);
    remove_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_roundtrip_and_rejects),
        cmocka_unit_test(test_put_vary_invalidate_reopen),
        cmocka_unit_test(test_eviction_keeps_under_budget),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
