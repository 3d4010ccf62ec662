/* Unit tests: the fleet's purge record (fleet.h), its round trip and the
 * hostile records a node must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void set(struct op_fleet_purge *p, enum op_purge_kind kind, bool soft, const char *node,
                const char *pattern)
{
    p->kind = kind;
    p->soft = soft;
    snprintf(p->node, sizeof(p->node), "%s", node);
    op_buf_reset(&p->pattern);
    assert_int_equal(op_buf_append(&p->pattern, pattern, strlen(pattern)), 0);
}

static void assert_same(const struct op_fleet_purge *a, const struct op_fleet_purge *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->soft, b->soft);
    assert_string_equal(a->node, b->node);
    assert_int_equal(a->pattern.len, b->pattern.len);
    assert_memory_equal(a->pattern.data, b->pattern.data, a->pattern.len);
}

static void test_round_trip_for_each_kind_and_soft(void **state)
{
    (void)state;
    static const struct {
        enum op_purge_kind kind;
        const char *pattern;
    } cases[] = {
        {OP_PURGE_URL, "http://example.com/a?b=c"},
        {OP_PURGE_URL, "https://h:8443/q\"u\\o/te"},
        {OP_PURGE_PREFIX, "http://h"},
        {OP_PURGE_PREFIX, "https://h/news/"},
        {OP_PURGE_TAG, "sport"},
        {OP_PURGE_TAG, "a\"b\\c/d"},
        {OP_PURGE_HOST, "*"},
        {OP_PURGE_HOST, "h:443"},
    };
    struct op_fleet_purge p, q;
    op_fleet_purge_init(&p);
    op_fleet_purge_init(&q);
    struct op_buf rec;
    op_buf_init(&rec, OP_FLEET_RECORD_MAX);
    char err[300];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int soft = 0; soft <= 1; soft++) {
            set(&p, cases[i].kind, soft, "edge-eu_1", cases[i].pattern);
            op_buf_reset(&rec);
            assert_int_equal(op_fleet_purge_encode(&p, &rec), 0);
            err[0] = '\0';
            int rc = op_fleet_purge_decode(rec.data, rec.len, &q, err, sizeof(err));
            if (rc != 0)
                fail_msg("%.*s: %s", (int)rec.len, rec.data, err);
            assert_same(&p, &q);
        }
    }
    /* the longest node name */
    set(&p, OP_PURGE_TAG, false, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-",
        "t");
    assert_int_equal(strlen(p.node), OP_FLEET_NODE_MAX);
    op_buf_reset(&rec);
    assert_int_equal(op_fleet_purge_encode(&p, &rec), 0);
    assert_int_equal(op_fleet_purge_decode(rec.data, rec.len, &q, err, sizeof(err)), 0);
    assert_same(&p, &q);
    op_buf_fini(&rec);
    op_fleet_purge_fini(&p);
    op_fleet_purge_fini(&q);
}

static void test_encoding_is_the_documented_one(void **state)
{
    (void)state;
    struct op_fleet_purge p;
    op_fleet_purge_init(&p);
    struct op_buf rec;
    op_buf_init(&rec, OP_FLEET_RECORD_MAX);
    assert_int_equal(op_buf_append(&rec, "x", 1), 0); /* appended after what is there */
    set(&p, OP_PURGE_URL, false, "n1", "http://h/a\"b");
    assert_int_equal(op_fleet_purge_encode(&p, &rec), 0);
    static const char want[] = "x{\"v\":1,\"node\":\"n1\",\"kind\":\"url\",\"pattern\":\"http://h/"
                               "a\\\"b\",\"soft\":false}";
    assert_int_equal(rec.len, strlen(want));
    assert_memory_equal(rec.data, want, rec.len);
    op_buf_fini(&rec);
    op_fleet_purge_fini(&p);
}

/* Members in another order, with unknown ones, blanks, escapes and no
 * "soft": a reader takes them (forward compatible). */
static void test_decode_is_liberal_where_json_is(void **state)
{
    (void)state;
    static const char rec[] =
        " {\"soft\": true, \"x-later\": {\"deep\": [1, 2, {\"a\": null}]}, \"kind\": \"tag\",\n"
        "  \"pattern\": \"\\u0073port\", \"node\": \"n2\", \"v\": 1, \"n\": 1.5} \n";
    struct op_fleet_purge p;
    op_fleet_purge_init(&p);
    char err[300] = "";
    assert_int_equal(op_fleet_purge_decode(rec, strlen(rec), &p, err, sizeof(err)), 0);
    assert_int_equal(p.kind, OP_PURGE_TAG);
    assert_true(p.soft);
    assert_string_equal(p.node, "n2");
    assert_int_equal(p.pattern.len, 5);
    assert_memory_equal(p.pattern.data, "sport", 5);
    static const char nosoft[] = "{\"v\":1,\"node\":\"n\",\"kind\":\"host\",\"pattern\":\"*\"}";
    assert_int_equal(op_fleet_purge_decode(nosoft, strlen(nosoft), &p, err, sizeof(err)), 0);
    assert_false(p.soft);
    /* the largest record taken */
    static char big[OP_FLEET_RECORD_MAX];
    int n =
        snprintf(big, sizeof(big), "{\"v\":1,\"node\":\"n\",\"kind\":\"tag\",\"pattern\":\"t\"");
    memset(big + n, ' ', sizeof(big) - (size_t)n - 1);
    big[sizeof(big) - 1] = '}';
    assert_int_equal(op_fleet_purge_decode(big, sizeof(big), &p, err, sizeof(err)), 0);
    op_fleet_purge_fini(&p);
}

struct hostile {
    const char *name;
    const char *data; /* NULL: built by the test */
    size_t len;       /* 0: strlen */
    const char *why;  /* NULL, or words the reason must hold */
};

#define REC(kind, pattern)                                                                         \
    "{\"v\":1,\"node\":\"n1\",\"kind\":\"" kind "\",\"pattern\":\"" pattern "\"}"

static const struct hostile hostile[] = {
    {"empty", "", 0, NULL},
    {"blank", "  \n", 0, NULL},
    {"truncated", "{\"v\":1,\"node\":\"n1\",\"kind\":\"url\",\"pattern\":\"http://h/", 0, NULL},
    {"truncated after a member", "{\"v\":1,", 0, NULL},
    {"trailing bytes", REC("url", "http://h/") "x", 0, NULL},
    {"a second object", REC("url", "http://h/") REC("url", "http://h/"), 0, NULL},
    {"a NUL after the object", REC("tag", "t") "\0", sizeof(REC("tag", "t")), NULL},
    {"duplicate key", "{\"v\":1,\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0,
     "duplicate"},
    {"duplicate pattern",
     "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\",\"pattern\":\"u\"}", 0, NULL},
    {"v 2", "{\"v\":2,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, "version 2"},
    {"v 0", "{\"v\":0,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"v -1", "{\"v\":-1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"v string", "{\"v\":\"1\",\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"v real", "{\"v\":1.0,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0,
     "\"v\" must be the integer 1"},
    {"v exponent", "{\"v\":1e0,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"v true", "{\"v\":true,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"v huge", "{\"v\":18446744073709551617,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0,
     NULL},
    {"no v", "{\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"no node", "{\"v\":1,\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"no kind", "{\"v\":1,\"node\":\"n1\",\"pattern\":\"t\"}", 0, NULL},
    {"no pattern", "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\"}", 0, NULL},
    {"node a number", "{\"v\":1,\"node\":1,\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"node null", "{\"v\":1,\"node\":null,\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"kind an array", "{\"v\":1,\"node\":\"n1\",\"kind\":[\"tag\"],\"pattern\":\"t\"}", 0, NULL},
    {"pattern an object", "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":{}}", 0, NULL},
    {"soft a string",
     "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\",\"soft\":\"yes\"}", 0, NULL},
    {"soft 1", "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\",\"soft\":1}", 0, NULL},
    {"soft null", "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\",\"soft\":null}", 0,
     NULL},
    {"node with a slash", "{\"v\":1,\"node\":\"n/1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"node with a dot", "{\"v\":1,\"node\":\"n.1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"node empty", "{\"v\":1,\"node\":\"\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"node of 65 bytes", NULL, 0, NULL},
    {"node with a NUL escape", "{\"v\":1,\"node\":\"n\\u0000\",\"kind\":\"tag\",\"pattern\":\"t\"}",
     0, NULL},
    {"kind unknown", REC("surrogate", "t"), 0, NULL},
    {"kind in capitals", REC("URL", "http://h/"), 0, NULL},
    {"empty pattern", REC("tag", ""), 0, NULL},
    {"url pattern of 4097 bytes", NULL, 0, NULL},
    {"tag of 257 bytes", NULL, 0, NULL},
    {"tag with a comma", REC("tag", "a,b"), 0, NULL},
    {"tag with a space", REC("tag", "a b"), 0, NULL},
    {"tag not ASCII", REC("tag", "\xc3\xa9"), 0, NULL},
    {"url not normalized", REC("url", "HTTP://EXAMPLE.com/a"), 0, "not in normal form"},
    {"url with the default port", REC("url", "http://h:80/a"), 0, NULL},
    {"url without a path", REC("url", "http://h"), 0, NULL},
    {"url with a fragment", REC("url", "http://h/a#f"), 0, NULL},
    {"url encoding an unreserved octet", REC("url", "http://h/%61"), 0, NULL},
    {"url encoding an unreserved capital", REC("url", "http://h/%41"), 0, NULL},
    {"url without a stable normal form", REC("url", "http://h/%4%31"), 0, NULL},
    {"url of another scheme", REC("url", "ftp://h/"), 0, NULL},
    {"prefix not normalized", REC("prefix", "http://H/"), 0, NULL},
    {"host not normalized", REC("host", "H:80"), 0, NULL},
    {"host with a port of 0s", REC("host", "h:080"), 0, NULL},
    {"host a url", REC("host", "http://h/"), 0, NULL},
    {"NUL escape inside the pattern", REC("url", "http://h/a\\u0000b"), 0, NULL},
    {"raw NUL inside the pattern", NULL, 0, NULL},
    {"raw control byte in a string", REC("tag", "a\x01"), 0, NULL},
    {"invalid UTF-8 in a string", REC("tag", "\xff\xfe"), 0, NULL},
    {"invalid UTF-8 in an unknown member",
     "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\",\"x\":\"\xc0\xaf\"}", 0, NULL},
    {"lone surrogate escape", REC("tag", "\\ud800"), 0, NULL},
    {"array at the top", "[{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}]", 0,
     "not a JSON object"},
    {"string at the top", "\"t\"", 0, NULL},
    {"number at the top", "1", 0, NULL},
    {"null at the top", "null", 0, NULL},
    {"arrays nested 4000 deep", NULL, 0, "depth"},
    {"arrays nested 100000 deep", NULL, 0, NULL},
    {"9000 bytes", NULL, 0, "9000 bytes, more than 8192"},
    {"single quotes", "{'v':1,'node':'n1','kind':'tag','pattern':'t'}", 0, NULL},
    {"a comment", "{\"v\":1 /* c */,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"}", 0, NULL},
    {"trailing comma", "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\",}", 0, NULL},
    {"a byte order mark", "\xef\xbb\xbf" REC("tag", "t"), 0, NULL},
};

/* The records the table cannot spell. */
static void build(const char *name, struct op_buf *b)
{
    op_buf_reset(b);
    if (strcmp(name, "node of 65 bytes") == 0) {
        op_buf_appendf(b, "{\"v\":1,\"node\":\"%065d\",\"kind\":\"tag\",\"pattern\":\"t\"}", 1);
    } else if (strcmp(name, "url pattern of 4097 bytes") == 0) {
        op_buf_append_str(b, "{\"v\":1,\"node\":\"n1\",\"kind\":\"url\",\"pattern\":\"http://h/");
        for (int i = 9; i < 4097; i++)
            op_buf_append(b, "a", 1);
        op_buf_append_str(b, "\"}");
    } else if (strcmp(name, "tag of 257 bytes") == 0) {
        op_buf_append_str(b, "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"");
        for (int i = 0; i < 257; i++)
            op_buf_append(b, "t", 1);
        op_buf_append_str(b, "\"}");
    } else if (strcmp(name, "raw NUL inside the pattern") == 0) {
        op_buf_append_str(b, "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"a");
        op_buf_append(b, "\0", 1);
        op_buf_append_str(b, "b\"}");
    } else if (strncmp(name, "arrays nested", 13) == 0) {
        int depth = strstr(name, "100000") ? 100000 : 4000;
        op_buf_append_str(b, "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\",\"x\":");
        for (int i = 0; i < depth; i++)
            op_buf_append(b, "[", 1);
        for (int i = 0; i < depth; i++)
            op_buf_append(b, "]", 1);
        op_buf_append_str(b, "}");
    } else if (strcmp(name, "9000 bytes") == 0) {
        op_buf_append_str(b, "{\"v\":1,\"node\":\"n1\",\"kind\":\"tag\",\"pattern\":\"t\"");
        while (b->len < 8999)
            op_buf_append(b, " ", 1);
        op_buf_append(b, "}", 1);
    } else {
        fail_msg("no builder for \"%s\"", name);
    }
}

static void test_hostile_records_are_refused(void **state)
{
    (void)state;
    struct op_fleet_purge p;
    op_fleet_purge_init(&p);
    struct op_buf b;
    op_buf_init(&b, 1 << 20);
    char err[300];
    size_t n = sizeof(hostile) / sizeof(hostile[0]);
    assert_true(n >= 25);
    for (size_t i = 0; i < n; i++) {
        const char *data = hostile[i].data;
        size_t len = hostile[i].len ? hostile[i].len : data ? strlen(data) : 0;
        if (data == NULL) {
            build(hostile[i].name, &b);
            data = b.data;
            len = b.len;
        }
        /* left over from a good record: must not survive a refusal */
        p.kind = OP_PURGE_HOST;
        snprintf(p.node, sizeof(p.node), "old");
        op_buf_reset(&p.pattern);
        op_buf_append(&p.pattern, "*", 1);
        memset(err, 0, sizeof(err));
        clock_t t0 = clock();
        int rc = op_fleet_purge_decode(data, len, &p, err, sizeof(err));
        double ms = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
        if (rc != OP_EINVAL || err[0] == '\0')
            fail_msg("%s: rc %d, err \"%s\"", hostile[i].name, rc, err);
        if (strncmp(err, "fleet record: ", 14) != 0 ||
            (hostile[i].why != NULL && strstr(err, hostile[i].why) == NULL))
            fail_msg("%s: err \"%s\"", hostile[i].name, err);
        if (ms > 20)
            fail_msg("%s: %.1f ms", hostile[i].name, ms);
        assert_int_equal(p.pattern.len, 0);
        assert_string_equal(p.node, "");
    }
    op_buf_fini(&b);
    op_fleet_purge_fini(&p);
}

static void test_err_is_cut_and_terminated(void **state)
{
    (void)state;
    struct op_fleet_purge p;
    op_fleet_purge_init(&p);
    char err[8];
    memset(err, 'x', sizeof(err));
    assert_int_equal(op_fleet_purge_decode("[", 1, &p, err, sizeof(err)), OP_EINVAL);
    assert_string_equal(err, "fleet r");
    assert_int_equal(op_fleet_purge_decode("[", 1, &p, NULL, 0), OP_EINVAL);
    op_fleet_purge_fini(&p);
}

/* What a reader would refuse is not written. */
static void test_encode_refuses_what_decode_would(void **state)
{
    (void)state;
    struct op_fleet_purge p;
    op_fleet_purge_init(&p);
    struct op_buf rec;
    op_buf_init(&rec, OP_FLEET_RECORD_MAX);
    set(&p, OP_PURGE_URL, false, "n/1", "http://h/");
    assert_int_equal(op_fleet_purge_encode(&p, &rec), OP_EINVAL);
    set(&p, OP_PURGE_URL, false, "", "http://h/");
    assert_int_equal(op_fleet_purge_encode(&p, &rec), OP_EINVAL);
    memset(p.node, 'n', sizeof(p.node)); /* not terminated within 64 */
    assert_int_equal(op_fleet_purge_encode(&p, &rec), OP_EINVAL);
    set(&p, OP_PURGE_URL, false, "n1", "HTTP://h/");
    assert_int_equal(op_fleet_purge_encode(&p, &rec), OP_EINVAL);
    set(&p, OP_PURGE_TAG, false, "n1", "a,b");
    assert_int_equal(op_fleet_purge_encode(&p, &rec), OP_EINVAL);
    set(&p, (enum op_purge_kind)7, false, "n1", "t");
    assert_int_equal(op_fleet_purge_encode(&p, &rec), OP_EINVAL);
    op_buf_reset(&p.pattern);
    p.kind = OP_PURGE_TAG;
    assert_int_equal(op_fleet_purge_encode(&p, &rec), OP_EINVAL);
    assert_int_equal(rec.len, 0);

    /* a pattern of 4096 bytes that JSON doubles: too big for one record,
     * however much room <out> has */
    op_buf_fini(&rec);
    op_buf_init(&rec, 1 << 20);
    op_buf_reset(&p.pattern);
    p.kind = OP_PURGE_URL;
    op_buf_append_str(&p.pattern, "http://h/");
    while (p.pattern.len < OP_CACHE_PURGE_MAX)
        op_buf_append(&p.pattern, "\"", 1);
    assert_int_equal(op_fleet_purge_encode(&p, &rec), OP_ETOOBIG);
    assert_int_equal(rec.len, 0);
    /* one of plain bytes fits */
    memset(p.pattern.data + 9, 'a', p.pattern.len - 9);
    assert_int_equal(op_fleet_purge_encode(&p, &rec), 0);
    assert_true(rec.len <= OP_FLEET_RECORD_MAX);
    /* <out> without room */
    struct op_buf small;
    op_buf_init(&small, 64);
    assert_int_equal(op_fleet_purge_encode(&p, &small), OP_ETOOBIG);
    assert_int_equal(small.len, 0);
    op_buf_fini(&small);
    op_buf_fini(&rec);
    op_fleet_purge_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_for_each_kind_and_soft),
        cmocka_unit_test(test_encoding_is_the_documented_one),
        cmocka_unit_test(test_decode_is_liberal_where_json_is),
        cmocka_unit_test(test_hostile_records_are_refused),
        cmocka_unit_test(test_err_is_cut_and_terminated),
        cmocka_unit_test(test_encode_refuses_what_decode_would),
    };
    return cmocka_run_group_tests_name("fleet_record", tests, NULL, NULL);
}
