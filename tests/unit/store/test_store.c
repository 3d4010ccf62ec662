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

/* A fresh store in a temporary directory, with a reader. */
static struct op_store_config open_store(uint64_t map_size, struct op_store **s,
                                         struct op_store_reader **r)
{
    make_dir();
    struct op_store_config cfg = {.dir = dir, .map_size = map_size, .max_object_size = 1 << 20};
    assert_int_equal(op_store_open(&cfg, s), 0);
    assert_int_equal(op_store_reader_open(*s, r), 0);
    return cfg;
}

static void close_store(struct op_store *s, struct op_store_reader *r)
{
    op_store_reader_close(r);
    op_store_close(s);
    remove_dir();
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
    assert_int_equal(op_store_put(s, key, strlen(key), vary, strlen(vary), req, &m, "X: y\r\n", 6,
                                  body, blen, op_store_purge_seq(s)),
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
    struct op_store *s;
    struct op_store_reader *r;
    struct op_store_config cfg = open_store(16 << 20, &s, &r);
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
    struct op_store *s;
    struct op_store_reader *r;
    open_store(2 << 20, &s, &r);
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
    close_store(s, r);
}

static void put_h(struct op_store *s, const char *key, const char *headers, uint64_t purge_seq)
{
    struct op_cache_meta m = {.response_time = op_time_now(),
                              .freshness_lifetime = 600,
                              .status = 200,
                              .swr = -1,
                              .sie = -1};
    assert_int_equal(op_store_put(s, key, strlen(key), "", 0, NULL, &m, headers, strlen(headers),
                                  "body", 4, purge_seq),
                     0);
}

static struct op_purge_done purge_done;
static int purge_acks;
static void on_purge(struct op_msg *m)
{
    (void)m;
    purge_acks++;
}

/* Purge (as purge <fleet_seq> of the fleet stream of <epoch> when not 0)
 * and wait for its acknowledgement; returns the objects it covered. */
static uint64_t purge_in(struct op_store *s, uint64_t epoch, uint64_t fleet_seq,
                         enum op_purge_kind kind, bool soft, const char *pattern)
{
    struct op_mailbox mb;
    op_mailbox_init(&mb, NULL, NULL);
    memset(&purge_done, 0, sizeof(purge_done));
    purge_done.msg.run = on_purge;
    int before = purge_acks;
    assert_int_equal(op_store_purge_fleet(s, epoch, fleet_seq, kind, soft, pattern, strlen(pattern),
                                          &mb, &purge_done),
                     0);
    for (int i = 0; i < 500 && purge_acks == before; i++) {
        op_mailbox_drain(&mb);
        if (purge_acks == before)
            usleep(10000);
    }
    assert_int_equal(purge_acks, before + 1);
    assert_int_equal(purge_done.rc, 0);
    op_mailbox_fini(&mb);
    return purge_done.count;
}

static uint64_t purge(struct op_store *s, enum op_purge_kind kind, bool soft, const char *pattern)
{
    return purge_in(s, 0, 0, kind, soft, pattern);
}

/* a fleet purge of the stream made at epoch 1000 */
static uint64_t purge_as(struct op_store *s, uint64_t fleet_seq, enum op_purge_kind kind, bool soft,
                         const char *pattern)
{
    return purge_in(s, 1000, fleet_seq, kind, soft, pattern);
}

static bool present(struct op_store_reader *r, const char *key)
{
    char body[64];
    return lookup(r, key, NULL, body, sizeof(body)) == 0;
}

static void test_purge_kinds(void **state)
{
    (void)state;
    struct op_store *s;
    struct op_store_reader *r;
    struct op_store_config cfg = open_store(16 << 20, &s, &r);
    put_h(s, "http://a.test/news/1", "Surrogate-Key: news  front\r\n", 0);
    put_h(s, "http://a.test/news/2", "Cache-Tag: news,sports\r\n", 0);
    put_h(s, "http://a.test/sport/1", "cache-tag: sports\r\nX: y\r\n", 0);
    put_h(s, "http://a.test:8080/x", "X: y\r\n", 0);
    put_h(s, "http://a.testing/x", "X: y\r\n", 0);
    put_h(s, "http://b.test/y", "Surrogate-Key: front\r\n", 0);
    barrier(s);

    assert_int_equal(purge(s, OP_PURGE_TAG, false, "news"), 2);
    assert_int_equal(purge_done.seq, 1);
    assert_false(present(r, "http://a.test/news/1"));
    assert_false(present(r, "http://a.test/news/2"));
    assert_true(present(r, "http://a.test/sport/1"));
    /* the deleted objects left the other tags' lists too */
    assert_int_equal(purge(s, OP_PURGE_TAG, false, "front"), 1);
    assert_false(present(r, "http://b.test/y"));
    assert_int_equal(purge(s, OP_PURGE_PREFIX, false, "http://a.test/spo"), 1);
    assert_false(present(r, "http://a.test/sport/1"));
    /* a host purge takes any port, not a longer name */
    assert_int_equal(purge(s, OP_PURGE_HOST, false, "a.test"), 1);
    assert_false(present(r, "http://a.test:8080/x"));
    assert_true(present(r, "http://a.testing/x"));
    assert_int_equal(purge(s, OP_PURGE_URL, false, "http://a.testing/x"), 1);
    assert_false(present(r, "http://a.testing/x"));
    assert_int_equal(purge(s, OP_PURGE_URL, false, "http://a.testing/x"), 0);
    assert_int_equal(purge_done.seq, 6);
    put_h(s, "http://c.test/1", "X: y\r\n", op_store_purge_seq(s));
    put_h(s, "http://d.test/1", "X: y\r\n", op_store_purge_seq(s));
    barrier(s);
    assert_int_equal(purge(s, OP_PURGE_HOST, false, "*"), 2);
    struct op_store_stats st;
    op_store_stats(s, &st);
    assert_int_equal(st.objects, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.purges, 7);
    /* the indexes went with the objects */
    MDB_txn *txn;
    MDB_stat ms;
    assert_int_equal(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_stat(txn, s->db_urls, &ms), 0);
    assert_int_equal(ms.ms_entries, 0);
    assert_int_equal(mdb_stat(txn, s->db_tags, &ms), 0);
    assert_int_equal(ms.ms_entries, 0);
    assert_int_equal(mdb_stat(txn, s->db_purges, &ms), 0);
    assert_int_equal(ms.ms_entries, 7);
    mdb_txn_abort(txn);
    op_store_reader_close(r);
    op_store_close(s);
    /* the sequence survives a restart */
    assert_int_equal(op_store_open(&cfg, &s), 0);
    assert_int_equal(op_store_purge_applied(s), 7);
    assert_int_equal(op_store_purge_seq(s), 7);
    op_store_close(s);
    remove_dir();
}

/* A fleet purge delivered again (its ack was lost, out of order among
 * others) is applied once: what was stored since it first came stays, also
 * after a restart. */
static void test_fleet_purge_applied_once(void **state)
{
    (void)state;
    struct op_store *s;
    struct op_store_reader *r;
    struct op_store_config cfg = open_store(16 << 20, &s, &r);
    put_h(s, "http://a.test/1", "X: y\r\n", 0);
    put_h(s, "http://a.test/2", "X: y\r\n", 0);
    barrier(s);
    assert_int_equal(purge_as(s, 7, OP_PURGE_URL, false, "http://a.test/1"), 1);
    assert_false(purge_done.dup);
    assert_int_equal(purge_as(s, 9, OP_PURGE_URL, false, "http://a.test/2"), 1);
    put_h(s, "http://a.test/1", "X: y\r\n", op_store_purge_seq(s));
    barrier(s);
    /* 7 again, after 9: a "skip at or below the last" rule would be wrong
     * for 8, which has not come yet */
    assert_int_equal(purge_as(s, 7, OP_PURGE_URL, false, "http://a.test/1"), 0);
    assert_true(purge_done.dup);
    assert_true(present(r, "http://a.test/1"));
    assert_int_equal(purge_as(s, 8, OP_PURGE_URL, false, "http://a.test/1"), 1);
    assert_false(purge_done.dup);
    assert_false(present(r, "http://a.test/1"));
    put_h(s, "http://a.test/1", "X: y\r\n", op_store_purge_seq(s));
    barrier(s);
    op_store_reader_close(r);
    op_store_close(s);
    assert_int_equal(op_store_open(&cfg, &s), 0);
    assert_int_equal(op_store_reader_open(s, &r), 0);
    assert_int_equal(purge_as(s, 8, OP_PURGE_URL, false, "http://a.test/1"), 0);
    assert_true(purge_done.dup);
    assert_true(present(r, "http://a.test/1"));
    /* a local purge is never taken for a fleet one */
    assert_int_equal(purge(s, OP_PURGE_URL, false, "http://a.test/1"), 1);
    assert_false(purge_done.dup);
    /* the stream made again numbers from 1 again: its 8 is a new purge */
    put_h(s, "http://a.test/1", "X: y\r\n", op_store_purge_seq(s));
    barrier(s);
    assert_int_equal(purge_in(s, 2000, 8, OP_PURGE_URL, false, "http://a.test/1"), 1);
    assert_false(purge_done.dup);
    close_store(s, r);
}

static void test_soft_purge_marks_stale(void **state)
{
    (void)state;
    struct op_store *s;
    struct op_store_reader *r;
    open_store(16 << 20, &s, &r);
    put_h(s, "http://a.test/1", "Surrogate-Key: t\r\n", 0);
    barrier(s);
    assert_int_equal(purge(s, OP_PURGE_TAG, true, "t"), 1);
    struct op_store_obj o;
    assert_int_equal(op_store_lookup(r, "http://a.test/1", 15, NULL, &o), 0);
    int64_t age = op_cache_age(&o.meta, op_time_now());
    assert_true(o.meta.freshness_lifetime <= age); /* stale, still there */
    op_store_reader_end(r);
    /* soft again: nothing to do, still counted as covered */
    assert_int_equal(purge(s, OP_PURGE_TAG, true, "t"), 1);
    close_store(s, r);
}

static void test_put_older_than_a_purge_is_dropped(void **state)
{
    (void)state;
    struct op_store *s;
    struct op_store_reader *r;
    open_store(16 << 20, &s, &r);
    uint64_t began = op_store_purge_seq(s); /* two fetches begin */
    purge(s, OP_PURGE_URL, false, "http://a.test/1");
    put_h(s, "http://a.test/1", "X: y\r\n", began); /* covered: dropped */
    put_h(s, "http://a.test/2", "X: y\r\n", began); /* not covered */
    barrier(s);
    assert_false(present(r, "http://a.test/1"));
    assert_true(present(r, "http://a.test/2"));
    /* pending puts disappear at once when a purge is queued */
    put_h(s, "http://a.test/3", "Surrogate-Key: z\r\n", op_store_purge_seq(s));
    purge(s, OP_PURGE_TAG, false, "z");
    assert_false(present(r, "http://a.test/3"));
    struct op_store_stats st;
    op_store_stats(s, &st);
    assert_int_equal(st.puts_dropped, 1);
    close_store(s, r);
}

/* A body read again window by window by its op_store_ref: from the pending
 * PUT, then from LMDB once committed (same id), and never from the response
 * that replaces it or after a purge. */
static void test_read_by_ref(void **state)
{
    (void)state;
    struct op_store *s;
    struct op_store_reader *r;
    open_store(16 << 20, &s, &r);
    static char v1[300 * 1024], v2[300 * 1024];
    for (size_t i = 0; i < sizeof(v1); i++) {
        v1[i] = (char)(i * 7);
        v2[i] = (char)(i * 7 + 1);
    }
    char win[64 * 1024];
    struct op_store_obj o;
    put(s, "http://h/r", "", NULL, v1, sizeof(v1));
    assert_int_equal(op_store_lookup(r, "http://h/r", 10, NULL, &o), 0); /* pending */
    struct op_store_ref ref = o.ref;
    op_store_reader_end(r);
    assert_int_equal(op_store_read(r, &ref, 1000, win, sizeof(win)), 0);
    assert_memory_equal(win, v1 + 1000, sizeof(win));
    barrier(s);
    for (size_t off = 0; off < sizeof(v1); off += sizeof(win)) { /* committed now */
        size_t n = sizeof(v1) - off < sizeof(win) ? sizeof(v1) - off : sizeof(win);
        assert_int_equal(op_store_read(r, &ref, off, win, n), 0);
        assert_memory_equal(win, v1 + off, n);
    }
    assert_int_equal(op_store_read(r, &ref, sizeof(v1) - 10, win, 11), OP_ENOTFOUND); /* past it */
    /* the same body stored again (a 304's freshened copy): the ref holds,
     * pending and committed */
    put(s, "http://h/r", "", NULL, v1, sizeof(v1));
    assert_int_equal(op_store_read(r, &ref, 0, win, 16), 0);
    barrier(s);
    assert_int_equal(op_store_read(r, &ref, sizeof(v1) - 16, win, 16), 0);
    assert_memory_equal(win, v1 + sizeof(v1) - 16, 16);
    /* replaced: pending v2 does not answer for v1, and v1 stays readable
     * until v2 is committed */
    put(s, "http://h/r", "", NULL, v2, sizeof(v2));
    assert_int_equal(op_store_read(r, &ref, 0, win, 16), 0);
    assert_memory_equal(win, v1, 16);
    barrier(s);
    assert_int_equal(op_store_read(r, &ref, 0, win, 16), OP_ENOTFOUND);
    assert_int_equal(op_store_lookup(r, "http://h/r", 10, NULL, &o), 0);
    ref = o.ref;
    op_store_reader_end(r);
    assert_int_equal(op_store_read(r, &ref, 0, win, 16), 0);
    assert_memory_equal(win, v2, 16);
    assert_int_equal(purge(s, OP_PURGE_URL, false, "http://h/r"), 1);
    assert_int_equal(op_store_read(r, &ref, 0, win, 16), OP_ENOTFOUND);
    close_store(s, r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_purge_kinds),
        cmocka_unit_test(test_soft_purge_marks_stale),
        cmocka_unit_test(test_put_older_than_a_purge_is_dropped),
        cmocka_unit_test(test_codec_roundtrip_and_rejects),
        cmocka_unit_test(test_put_vary_invalidate_reopen),
        cmocka_unit_test(test_eviction_keeps_under_budget),
        cmocka_unit_test(test_read_by_ref),
        cmocka_unit_test(test_fleet_purge_applied_once),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
