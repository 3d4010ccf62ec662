/* Unit tests: the cache-key table. Each row is a stored request A and a
 * request B (or the URL an operator names for B): whether a lookup for B
 * finds A, and whether a URL, soft, prefix, host and tag purge named after B
 * reaches A, against the real key code and a real LMDB store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/cache.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct req {
    bool https;         /* the connection's scheme (for origin-form) */
    const char *host;   /* the Host value; NULL: none */
    const char *target; /* as on the request line */
    const char *site;   /* the routed site's host pattern; NULL: "s" */
};

struct row {
    const char *why;
    struct req a, b;
    bool lookup; /* a lookup for B finds A: the same object */
    bool url;    /* a URL, soft or prefix purge of B's URL reaches A */
    bool host;   /* a host purge of B's host reaches A */
};

#define LONG_A                                                                                     \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LONG_600 LONG_A LONG_A LONG_A LONG_A LONG_A LONG_A LONG_A /* 616 bytes */

static const struct row rows[] = {
    {"identical", {false, "h", "/x", NULL}, {false, "h", "/x", NULL}, true, true, true},
    {"host case",
     {false, "Example.COM", "/x", NULL},
     {false, "example.com", "/x", NULL},
     true,
     true,
     true},
    {"scheme and host case in absolute-form",
     {false, "h", "/x", NULL},
     {false, "H", "HTTP://H/x", NULL},
     true,
     true,
     true},
    {"default port :80", {false, "h:80", "/x", NULL}, {false, "h", "/x", NULL}, true, true, true},
    {"default port in absolute-form",
     {false, "h", "/x", NULL},
     {false, "h:80", "http://h:80/x", NULL},
     true,
     true,
     true},
    {"empty port", {false, "h:", "/x", NULL}, {false, "h", "/x", NULL}, true, true, true},
    {"leading zeros in the port",
     {false, "h:0080", "/x", NULL},
     {false, "h", "/x", NULL},
     true,
     true,
     true},
    {"another port", {false, "h:8080", "/x", NULL}, {false, "h", "/x", NULL}, false, false, true},
    {"a host purge with a port takes only that port",
     {false, "h", "/x", NULL},
     {false, "h:8080", "/x", NULL},
     false,
     false,
     false},
    {"https default port :443",
     {true, "h:443", "/x", NULL},
     {false, "h", "https://h/x", NULL},
     true,
     true,
     true},
    {"https://h:443 is https://h",
     {false, "h", "https://h:443/x", NULL},
     {false, "h", "https://h/x", NULL},
     true,
     true,
     true},
    {"http and https are other origins (RFC 9110 §4.2.2)",
     {false, "h", "/x", NULL},
     {false, "h", "https://h/x", NULL},
     false,
     false,
     true},
    {"http://h:443 is not https://h",
     {false, "h:443", "/x", NULL},
     {false, "h", "https://h/x", NULL},
     false,
     false,
     true},
    {"trailing dot is another name",
     {false, "h.", "/x", NULL},
     {false, "h", "/x", NULL},
     false,
     false,
     false},
    {"IPv6 literal, default port",
     {false, "[::1]:80", "/x", NULL},
     {false, "[::1]", "/x", NULL},
     true,
     true,
     true},
    {"IPv6 literal, hex case",
     {false, "[2001:DB8::1]", "/x", NULL},
     {false, "[2001:db8::1]", "/x", NULL},
     true,
     true,
     true},
    {"IPv6 literal, another port",
     {false, "[::1]:8080", "/x", NULL},
     {false, "[::1]", "/x", NULL},
     false,
     false,
     true},
    {"empty path is /", {false, "h", "/", NULL}, {false, "h", "http://h", NULL}, true, true, true},
    {"empty path before a query",
     {false, "h", "/?q", NULL},
     {false, "h", "http://h?q", NULL},
     true,
     true,
     true},
    {"fragment dropped",
     {false, "h", "/x", NULL},
     {false, "h", "http://h/x#f", NULL},
     true,
     true,
     true},
    {"percent-encoded unreserved: ~",
     {false, "h", "/%7Ex", NULL},
     {false, "h", "/~x", NULL},
     true,
     true,
     true},
    {"percent-encoded unreserved: lower-case hex",
     {false, "h", "/%7ex", NULL},
     {false, "h", "/~x", NULL},
     true,
     true,
     true},
    {"percent-encoded unreserved: letters and digits",
     {false, "h", "/%41%62%30-%2E_", NULL},
     {false, "h", "/Ab0-._", NULL},
     true,
     true,
     true},
    {"percent-encoding hex case",
     {false, "h", "/a%2fb", NULL},
     {false, "h", "/a%2Fb", NULL},
     true,
     true,
     true},
    {"%2F is not /", {false, "h", "/a%2Fb", NULL}, {false, "h", "/a/b", NULL}, false, false, true},
    {"%3F is not ?", {false, "h", "/a%3Fb", NULL}, {false, "h", "/a?b", NULL}, false, false, true},
    {"%25 is not %", {false, "h", "/a%", NULL}, {false, "h", "/a%25", NULL}, false, false, true},
    {"path case matters", {false, "h", "/X", NULL}, {false, "h", "/x", NULL}, false, false, true},
    {"query kept as sent: order",
     {false, "h", "/x?a=1&b=2", NULL},
     {false, "h", "/x?b=2&a=1", NULL},
     false,
     false,
     true},
    {"query kept as sent: no decoding",
     {false, "h", "/x?%41", NULL},
     {false, "h", "/x?A", NULL},
     false,
     false,
     true},
    {"query is part of the key",
     {false, "h", "/x", NULL},
     {false, "h", "/x?a", NULL},
     false,
     false,
     true},
    {"another host",
     {false, "a.test", "/x", NULL},
     {false, "b.test", "/x", NULL},
     false,
     false,
     false},
    {"a host purge takes no longer name",
     {false, "a.testing", "/x", NULL},
     {false, "a.test", "/x", NULL},
     false,
     false,
     false},
    {"named site and catch-all never share",
     {false, "h", "/x", "h"},
     {false, "h", "/x", "*"},
     false,
     true,
     true},
    {"two named sites never share",
     {false, "h", "/x", "a.test"},
     {false, "h", "/x", "b.test"},
     false,
     true,
     true},
    {"site pattern case", {false, "h", "/x", "H"}, {false, "h", "/x", "h"}, true, true, true},
    {"long key",
     {false, "h", "/" LONG_600, NULL},
     {false, "h", "/" LONG_600, NULL},
     true,
     true,
     true},
    {"long key, normalized",
     {false, "H:80", "/" LONG_600 "%7E", NULL},
     {false, "h", "http://h/" LONG_600 "~", NULL},
     true,
     true,
     true},
    {"long keys that differ after the indexed head",
     {false, "h", "/" LONG_600 "X", NULL},
     {false, "h", "/" LONG_600 "Y", NULL},
     false,
     false,
     true},
    {"long key on another site",
     {false, "h", "/" LONG_600, "h"},
     {false, "h", "/" LONG_600, "*"},
     false,
     true,
     true},
};

static void key_of(const struct req *q, struct op_buf *k)
{
    const char *host = q->host ? q->host : "";
    assert_int_equal(op_cache_key_primary(q->https, host, strlen(host), q->target,
                                          strlen(q->target), q->site ? q->site : "s", k),
                     0);
}

/* The URL an operator gives for B, and the host of a host purge. */
static void url_of(const struct req *q, char *out, size_t cap)
{
    if (q->target[0] == '/')
        snprintf(out, cap, "%s://%s%s", q->https ? "https" : "http", q->host, q->target);
    else
        snprintf(out, cap, "%s", q->target);
}

static void host_of(const struct req *q, char *out, size_t cap)
{
    const char *t = q->target, *sep = strstr(t, "://");
    if (t[0] == '/' || sep == NULL) {
        snprintf(out, cap, "%s", q->host);
        return;
    }
    sep += 3;
    size_t n = strcspn(sep, "/?#");
    snprintf(out, cap, "%.*s", (int)n, sep);
}

static char dir[256];
static int acked;
static void on_ack(struct op_msg *m)
{
    (void)m;
    acked++;
}

static struct op_purge_done purge_done;
static uint64_t purge(struct op_store *s, enum op_purge_kind kind, bool soft, const char *p,
                      size_t len)
{
    struct op_mailbox mb;
    op_mailbox_init(&mb, NULL, NULL);
    memset(&purge_done, 0, sizeof(purge_done));
    purge_done.msg.run = on_ack;
    int before = acked;
    assert_int_equal(op_store_purge(s, kind, soft, p, len, &mb, &purge_done), 0);
    for (int i = 0; i < 500 && acked == before; i++) {
        op_mailbox_drain(&mb);
        if (acked == before)
            usleep(2000);
    }
    assert_int_equal(acked, before + 1);
    assert_int_equal(purge_done.rc, 0);
    op_mailbox_fini(&mb);
    return purge_done.count;
}

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
            usleep(2000);
    }
    assert_int_equal(acked, before + 1);
    op_mailbox_fini(&mb);
}

static void put(struct op_store *s, const struct op_buf *key)
{
    struct op_cache_meta m = {.response_time = op_time_now(),
                              .freshness_lifetime = 600,
                              .status = 200,
                              .swr = -1,
                              .sie = -1};
    static const char headers[] = "Surrogate-Key: row\r\n";
    assert_int_equal(op_store_put(s, key->data, key->len, "", 0, NULL, &m, headers,
                                  sizeof(headers) - 1, "body", 4, op_store_purge_seq(s)),
                     0);
    barrier(s);
}

/* 0 absent, 1 fresh, 2 stale */
static int state_of(struct op_store_reader *r, const struct op_buf *key)
{
    struct op_store_obj o;
    int rc = op_store_lookup(r, key->data, key->len, NULL, &o);
    int st = 0;
    if (rc == 0)
        st = o.meta.freshness_lifetime > op_cache_age(&o.meta, op_time_now()) ? 1 : 2;
    op_store_reader_end(r);
    return st;
}

static void check(bool ok, size_t i, const char *what)
{
    if (!ok)
        fail_msg("row %zu (%s): %s", i, rows[i].why, what);
}

static void test_key_table(void **state)
{
    (void)state;
    assert_true(sizeof(rows) / sizeof(rows[0]) >= 30);
    const char *base = getenv("OP_TEST_TMP");
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", base ? base : "/tmp");
    assert_int_equal(system(cmd), 0);
    snprintf(dir, sizeof(dir), "%s/keys-XXXXXX", base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    struct op_store_config cfg = {.dir = dir, .map_size = 16 << 20, .max_object_size = 1 << 20};
    struct op_store *s;
    struct op_store_reader *r;
    assert_int_equal(op_store_open(&cfg, &s), 0);
    assert_int_equal(op_store_reader_open(s, &r), 0);

    struct op_buf ka, kb, pat;
    op_buf_init(&ka, 16 * 1024);
    op_buf_init(&kb, 16 * 1024);
    op_buf_init(&pat, 16 * 1024);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        char url[2048], host[512];
        op_buf_reset(&ka);
        op_buf_reset(&kb);
        key_of(&w->a, &ka);
        key_of(&w->b, &kb);
        url_of(&w->b, url, sizeof(url));
        host_of(&w->b, host, sizeof(host));

        /* lookup: the keys, and the store */
        check((ka.len == kb.len && memcmp(ka.data, kb.data, ka.len) == 0) == w->lookup, i,
              "key equality");
        put(s, &ka);
        check(state_of(r, &ka) == 1, i, "A stored");
        check((state_of(r, &kb) != 0) == w->lookup, i, "lookup for B");

        /* URL purge */
        op_buf_reset(&pat);
        assert_int_equal(op_cache_key_url(url, strlen(url), false, &pat), 0);
        check(purge(s, OP_PURGE_URL, false, pat.data, pat.len) == w->url, i, "url purge count");
        check((state_of(r, &ka) == 0) == w->url, i, "url purge");
        put(s, &ka);
        /* soft URL purge: marked stale, still there */
        check(purge(s, OP_PURGE_URL, true, pat.data, pat.len) == w->url, i, "soft purge count");
        check(state_of(r, &ka) == (w->url ? 2 : 1), i, "soft purge");
        put(s, &ka);
        /* prefix purge with B's whole URL */
        op_buf_reset(&pat);
        assert_int_equal(op_cache_key_url(url, strlen(url), true, &pat), 0);
        check(purge(s, OP_PURGE_PREFIX, false, pat.data, pat.len) == w->url, i,
              "prefix purge count");
        check((state_of(r, &ka) == 0) == w->url, i, "prefix purge");
        put(s, &ka);
        /* host purge */
        op_buf_reset(&pat);
        assert_int_equal(op_cache_key_host(host, strlen(host), &pat), 0);
        check(purge(s, OP_PURGE_HOST, false, pat.data, pat.len) == w->host, i, "host purge count");
        check((state_of(r, &ka) == 0) == w->host, i, "host purge");
        put(s, &ka);
        /* tag purge reaches every object, whatever its key */
        check(purge(s, OP_PURGE_TAG, false, "row", 3) == 1, i, "tag purge count");
        check(state_of(r, &ka) == 0, i, "tag purge");
        /* and "*" everything */
        put(s, &ka);
        check(purge(s, OP_PURGE_HOST, false, "*", 1) == 1, i, "host * purge");
        check(state_of(r, &ka) == 0, i, "host * purge");
    }
    op_buf_fini(&ka);
    op_buf_fini(&kb);
    op_buf_fini(&pat);
    op_store_reader_close(r);
    op_store_close(s);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A prefix shorter than the indexed head reaches long keys too, and a
 * prefix longer than the head checks the rest in the records. */
static void test_long_keys_and_prefixes(void **state)
{
    (void)state;
    const char *base = getenv("OP_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/keys-XXXXXX", base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    struct op_store_config cfg = {.dir = dir, .map_size = 16 << 20, .max_object_size = 1 << 20};
    struct op_store *s;
    struct op_store_reader *r;
    assert_int_equal(op_store_open(&cfg, &s), 0);
    assert_int_equal(op_store_reader_open(s, &r), 0);
    struct op_buf k1, k2, k3;
    op_buf_init(&k1, 16 * 1024);
    op_buf_init(&k2, 16 * 1024);
    op_buf_init(&k3, 16 * 1024);
    struct req a = {false, "h", "/" LONG_600 "/one", "h"};
    struct req b = {false, "h", "/" LONG_600 "/two", "*"};
    struct req c = {false, "h", "/short", "h"};
    key_of(&a, &k1);
    key_of(&b, &k2);
    key_of(&c, &k3);
    put(s, &k1);
    put(s, &k2);
    put(s, &k3);
    assert_int_equal(purge(s, OP_PURGE_PREFIX, false, "http://h/a", 10), 2);
    put(s, &k1);
    put(s, &k2);
    char p[1024];
    int n = snprintf(p, sizeof(p), "http://h/%s/o", LONG_600);
    assert_int_equal(purge(s, OP_PURGE_PREFIX, false, p, (size_t)n), 1);
    assert_int_equal(state_of(r, &k1), 0);
    assert_int_equal(state_of(r, &k2), 1);
    assert_int_equal(purge(s, OP_PURGE_HOST, false, "h", 1), 2);
    /* the index follows the objects out */
    MDB_txn *txn;
    MDB_stat ms;
    assert_int_equal(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_stat(txn, s->db_urls, &ms), 0);
    assert_int_equal(ms.ms_entries, 0);
    mdb_txn_abort(txn);
    /* a reopen that rebuilds the index keeps long keys in it */
    put(s, &k1);
    op_store_reader_close(r);
    op_store_close(s);
    assert_int_equal(op_store_open(&cfg, &s), 0);
    assert_int_equal(op_store_reader_open(s, &r), 0);
    assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
    assert_int_equal(op_store__index_rebuild(s, txn), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    n = snprintf(p, sizeof(p), "http://h/%s/one", LONG_600);
    assert_int_equal(purge(s, OP_PURGE_URL, false, p, (size_t)n), 1);
    assert_int_equal(state_of(r, &k1), 0);
    op_buf_fini(&k1);
    op_buf_fini(&k2);
    op_buf_fini(&k3);
    op_store_reader_close(r);
    op_store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Keys as written: the site follows the URI after a space. */
static void test_key_shapes(void **state)
{
    (void)state;
    static const struct {
        struct req q;
        const char *key;
    } cases[] = {
        {{false, "Example.COM:80", "/a?b#frag", "Example.com"},
         "http://example.com/a?b example.com"},
        {{false, "h", "HTTPS://H:443", "*"}, "https://h/ *"},
        {{false, "", "/x", "*"}, "http:///x *"}, /* HTTP/1.0 without Host */
        {{false, "h", "/%7e%2f%3a", "s"}, "http://h/~%2F%3A s"},
        {{false, "h", "/a%zz%4", "s"}, "http://h/a%zz%4 s"},
        {{false, "h", "/p?%7e", "s"}, "http://h/p?%7e s"},
        {{false, "[::1]:80", "/", "s"}, "http://[::1]/ s"},
        {{false, "h", "*", "s"}, "http://h* s"},
    };
    struct op_buf k;
    op_buf_init(&k, 1024);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        op_buf_reset(&k);
        key_of(&cases[i].q, &k);
        if (k.len != strlen(cases[i].key) || memcmp(k.data, cases[i].key, k.len) != 0)
            fail_msg("case %zu: \"%.*s\", not \"%s\"", i, (int)k.len, k.data, cases[i].key);
        assert_int_equal(op_cache_key_url_len(k.data, k.len),
                         strchr(cases[i].key, ' ') - cases[i].key);
    }
    /* what the gate refuses, the key refuses too */
    op_buf_reset(&k);
    assert_int_equal(op_cache_key_primary(false, "victim.com/a", 12, "/b", 2, "*", &k), OP_EINVAL);
    assert_int_equal(op_cache_key_primary(false, "h", 1, "http://u@h/b", 12, "*", &k), OP_EINVAL);
    assert_int_equal(k.len, 0);
    assert_int_equal(op_cache_key_url("http://u@h/b", 12, false, &k), OP_EINVAL);
    assert_int_equal(op_cache_key_url("ftp://h/b", 9, false, &k), OP_EINVAL);
    assert_int_equal(op_cache_key_url("http:///b", 9, false, &k), OP_EINVAL);
    assert_int_equal(op_cache_key_url("http://h/a b", 12, false, &k), OP_EINVAL);
    assert_int_equal(op_cache_key_url("http://h", 8, true, &k), 0);
    assert_int_equal(k.len, 8); /* a prefix keeps its empty path */
    op_buf_reset(&k);
    assert_int_equal(op_cache_key_host("H:80", 4, &k), 0);
    assert_memory_equal(k.data, "h", 1);
    assert_int_equal(op_cache_key_host("h/x", 3, &k), OP_EINVAL);
    op_buf_fini(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_shapes),
        cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_long_keys_and_prefixes),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
