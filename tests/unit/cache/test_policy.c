/* Unit tests: RFC 9111 policy as plain function calls with a fixed clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/cache.h"

#include <string.h>

#define NOW 1700000000LL

struct fixture {
    struct op_headers req, resp;
};

static int setup(void **state)
{
    static struct fixture f;
    op_headers_init(&f.req, 64, 8192);
    op_headers_init(&f.resp, 64, 8192);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    op_headers_fini(&f->req);
    op_headers_fini(&f->resp);
    return 0;
}

static void add(struct op_headers *h, const char *n, const char *v)
{
    assert_int_equal(op_headers_add(h, n, strlen(n), v, strlen(v)), 0);
}

static const char *decide(struct fixture *f, int status, struct op_cache_meta *m)
{
    struct op_cache_exchange x = {.method = OP_HTTP_GET,
                                  .req = &f->req,
                                  .status = status,
                                  .resp = &f->resp,
                                  .request_time = NOW,
                                  .response_time = NOW};
    return op_cache_storable(&x, m);
}

static void test_s_maxage_beats_max_age_beats_expires(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    add(&f->resp, "Date", "Tue, 14 Nov 2023 22:13:20 GMT");    /* NOW */
    add(&f->resp, "Expires", "Tue, 14 Nov 2023 22:15:00 GMT"); /* +100 s */
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 100);
    add(&f->resp, "Cache-Control", "max-age=50");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 50);
    add(&f->resp, "Cache-Control", "s-maxage=10");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 10);
    assert_true(m.flags & OP_META_MUST_REVALIDATE); /* s-maxage implies it (§5.2.2.10) */
}

static void test_invalid_expires_is_stale(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    add(&f->resp, "Expires", "0");
    add(&f->resp, "ETag", "\"a\"");
    assert_null(decide(f, 200, &m)); /* stored, but stale at once */
    assert_int_equal(m.freshness_lifetime, 0);
}

static void test_not_storable(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    add(&f->resp, "Cache-Control", "max-age=60, no-store");
    assert_string_equal(decide(f, 200, &m), "no-store");
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=60, private");
    assert_string_equal(decide(f, 200, &m), "private");
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=60");
    add(&f->req, "Authorization", "Basic eA==");
    assert_string_equal(decide(f, 200, &m), "authorization");
    add(&f->resp, "Cache-Control", "public");
    assert_null(decide(f, 200, &m));
    op_headers_reset(&f->req);
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=60");
    add(&f->resp, "Vary", "*");
    assert_string_equal(decide(f, 200, &m), "vary");
    op_headers_reset(&f->resp);
    assert_string_equal(decide(f, 200, &m), "no freshness"); /* nothing to go on */
    add(&f->resp, "Cache-Control", "max-age=60");
    assert_string_equal(decide(f, 206, &m), "status");
    add(&f->req, "Cache-Control", "no-store");
    assert_string_equal(decide(f, 200, &m), "no-store");
}

static void test_cdn_cache_control_replaces_cache_control(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    add(&f->resp, "Cache-Control", "private");
    add(&f->resp, "CDN-Cache-Control", "max-age=30");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 30);
    /* a Structured Field Dictionary: extensions, parameters and inner lists
     * pass; the last instance of a key wins */
    op_headers_reset(&f->resp);
    add(&f->resp, "CDN-Cache-Control", "foobar, x=(a \"b\");q=1, max-age=5, max-age=3600;p");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 3600);
    op_headers_reset(&f->resp);
    add(&f->resp, "CDN-Cache-Control", "max-age=99999999999");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 2147483648LL);
    /* not a dictionary: the whole field is ignored and Cache-Control rules */
    const char *bad[] = {"max-age=10000, &&&&&",
                         "max-age =100",
                         "max-age= 100",
                         "MaX-aGe=100",
                         "max-age=10,",
                         "max-age=1.5.2",
                         NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        op_headers_reset(&f->resp);
        add(&f->resp, "Cache-Control", "max-age=7");
        add(&f->resp, "CDN-Cache-Control", bad[i]);
        assert_null(decide(f, 200, &m));
        assert_int_equal(m.freshness_lifetime, 7);
    }
    /* booleans: ?1 sets a directive, ?0 clears it */
    op_headers_reset(&f->resp);
    add(&f->resp, "CDN-Cache-Control", "max-age=60, private=?1");
    assert_string_equal(decide(f, 200, &m), "private");
    op_headers_reset(&f->resp);
    add(&f->resp, "CDN-Cache-Control", "max-age=60, private, private=?0");
    assert_null(decide(f, 200, &m));
    /* a value of the wrong type drops that directive only */
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=7");
    add(&f->resp, "CDN-Cache-Control", "max-age=\"10000\", private");
    assert_string_equal(decide(f, 200, &m), "private");
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "no-store");
    add(&f->resp, "CDN-Cache-Control", "max-age=\"10000\"");
    assert_string_equal(decide(f, 200, &m), "no freshness");
}

/* RFC 9213 §2.1: a CDN-Cache-Control lifetime replaces every other
 * freshness source (Cache-Control, Expires), both ways, and Age still
 * counts against it. */
static void test_cdn_cache_control_lifetime(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    int64_t age, ttl;
    add(&f->resp, "Date", "Tue, 14 Nov 2023 22:13:20 GMT");    /* NOW */
    add(&f->resp, "Expires", "Tue, 14 Nov 2023 23:13:20 GMT"); /* +3600 s */
    add(&f->resp, "CDN-Cache-Control", "max-age=0");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 0);
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW, &age, &ttl), OP_CACHE_VALIDATE);
    /* a long CDN lifetime beats a short Cache-Control one, and the reverse */
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=1");
    add(&f->resp, "CDN-Cache-Control", "max-age=3600");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 3600);
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=3600");
    add(&f->resp, "CDN-Cache-Control", "max-age=1");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 1);
    /* a past or invalid Expires does not shorten it */
    const char *expires[] = {"Tue, 14 Nov 2023 19:26:40 GMT", "0", NULL};
    for (int i = 0; expires[i] != NULL; i++) {
        op_headers_reset(&f->resp);
        add(&f->resp, "Date", "Tue, 14 Nov 2023 22:13:20 GMT");
        add(&f->resp, "Expires", expires[i]);
        add(&f->resp, "CDN-Cache-Control", "max-age=3600");
        assert_null(decide(f, 200, &m));
        assert_int_equal(m.freshness_lifetime, 3600);
        assert_int_equal(op_cache_evaluate(&m, &f->req, NOW, &age, &ttl), OP_CACHE_FRESH);
    }
    /* nor does a future one lengthen a CDN-Cache-Control without a
     * lifetime: Expires is out of play (RFC 9213 §2.1) */
    op_headers_reset(&f->resp);
    add(&f->resp, "Date", "Tue, 14 Nov 2023 22:13:20 GMT");
    add(&f->resp, "Expires", "Tue, 14 Nov 2023 23:13:20 GMT");
    add(&f->resp, "CDN-Cache-Control", "must-revalidate");
    add(&f->resp, "ETag", "\"v1\"");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 0);
    /* an Age beyond the CDN lifetime makes the copy stale on arrival */
    op_headers_reset(&f->resp);
    add(&f->resp, "CDN-Cache-Control", "max-age=3600");
    add(&f->resp, "Age", "7200");
    assert_null(decide(f, 200, &m));
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW, &age, &ttl), OP_CACHE_VALIDATE);
    /* private and no-cache from CDN-Cache-Control win over a fresh
     * Cache-Control; no-store there too */
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=10000");
    add(&f->resp, "CDN-Cache-Control", "private");
    assert_string_equal(decide(f, 200, &m), "private");
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=10000");
    add(&f->resp, "CDN-Cache-Control", "no-store");
    assert_string_equal(decide(f, 200, &m), "no-store");
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=10000");
    add(&f->resp, "CDN-Cache-Control", "no-cache");
    assert_string_equal(decide(f, 200, &m), "no freshness"); /* max-age=10000 is ignored */
    add(&f->resp, "ETag", "\"v1\"");
    assert_null(decide(f, 200, &m)); /* kept to revalidate, never served as is */
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW, &age, &ttl), OP_CACHE_VALIDATE);
}

static const char *decide_as(struct fixture *f, const char *device, struct op_cache_meta *m)
{
    struct op_cache_exchange x = {.method = OP_HTTP_GET,
                                  .req = &f->req,
                                  .status = 200,
                                  .resp = &f->resp,
                                  .request_time = NOW,
                                  .response_time = NOW,
                                  .device = device};
    return op_cache_storable(&x, m);
}

/* Surrogate-Control directives for us (untargeted, or ";outpost") replace
 * Cache-Control; those for another device are ignored. */
static void test_surrogate_control(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    add(&f->resp, "Cache-Control", "no-store");
    add(&f->resp, "Surrogate-Control", "max-age=600;Outpost");
    assert_null(decide_as(f, "outpost", &m));
    assert_int_equal(m.freshness_lifetime, 600);
    assert_string_equal(decide_as(f, "other", &m), "no-store"); /* not ours: Cache-Control */
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=3600");
    add(&f->resp, "Surrogate-Control", "foo, MaX-aGe=5+30, content=\"ESI/1.0\"");
    assert_null(decide_as(f, "outpost", &m));
    assert_int_equal(m.freshness_lifetime, 5);
    assert_int_equal(m.sie, 30); /* the +stale part */
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=3600");
    add(&f->resp, "Surrogate-Control", "no-store-remote");
    assert_string_equal(decide_as(f, "outpost", &m), "no-store");
    op_headers_reset(&f->resp);
    add(&f->resp, "Surrogate-Control", "max-age=99999999999");
    assert_null(decide_as(f, NULL, &m));
    assert_int_equal(m.freshness_lifetime, 2147483648LL);
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=7");
    add(&f->resp, "Surrogate-Control", "max-age =100, max-age= 100");
    assert_null(decide_as(f, "outpost", &m));
    assert_int_equal(m.freshness_lifetime, 7); /* malformed: Cache-Control stays */
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=7");
    add(&f->resp, "CDN-Cache-Control", "max-age=9");
    add(&f->resp, "Surrogate-Control", "max-age=100");
    assert_null(decide_as(f, "outpost", &m));
    assert_int_equal(m.freshness_lifetime, 9); /* RFC 9213 first */
    /* a targeted lifetime shares nothing Cache-Control public would not:
     * Set-Cookie and Authorization responses stay unshared */
    op_headers_reset(&f->resp);
    add(&f->resp, "Surrogate-Control", "max-age=100");
    add(&f->resp, "Set-Cookie", "id=1");
    assert_string_equal(decide_as(f, "outpost", &m), "set-cookie");
    op_headers_reset(&f->resp);
    add(&f->resp, "CDN-Cache-Control", "max-age=100");
    add(&f->req, "Authorization", "Basic eA==");
    assert_string_equal(decide_as(f, "outpost", &m), "authorization");
}

static void test_heuristic_from_last_modified(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    add(&f->resp, "Date", "Tue, 14 Nov 2023 22:13:20 GMT");
    add(&f->resp, "Last-Modified", "Tue, 14 Nov 2023 22:03:20 GMT"); /* 600 s before */
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.freshness_lifetime, 60);
    assert_true(m.flags & OP_META_HEURISTIC);
    assert_string_equal(decide(f, 302, &m), "no freshness"); /* not heuristically cacheable */
    add(&f->resp, "Cache-Control", "public");
    assert_null(decide(f, 599, &m)); /* unless marked public (§4.2.2) */
    assert_int_equal(m.freshness_lifetime, 60);
}

static void test_age_calculation(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    add(&f->resp, "Cache-Control", "max-age=100");
    add(&f->resp, "Age", "30");
    struct op_cache_exchange x = {.method = OP_HTTP_GET,
                                  .req = &f->req,
                                  .status = 200,
                                  .resp = &f->resp,
                                  .request_time = NOW - 2,
                                  .response_time = NOW};
    assert_null(op_cache_storable(&x, &m));
    assert_int_equal(m.corrected_initial_age, 32); /* Age + response delay */
    assert_int_equal(op_cache_age(&m, NOW + 10), 42);
    int64_t age, ttl;
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW + 10, &age, &ttl), OP_CACHE_FRESH);
    assert_int_equal(ttl, 58);
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW + 70, &age, &ttl), OP_CACHE_VALIDATE);
}

/* Age (RFC 9111 §5.1): a list counts by its first member, several lines
 * being one list; a value that is not a non-negative integer is ignored, not
 * read as stale; one too large to represent is 2^31 (§1.2.2). */
static int64_t initial_age(struct fixture *f, const char *first, const char *second)
{
    struct op_cache_meta m;
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=3600");
    add(&f->resp, "Age", first);
    if (second != NULL)
        add(&f->resp, "Age", second);
    assert_null(decide(f, 200, &m));
    return m.corrected_initial_age;
}

static void test_age_first_member_or_ignored(void **state)
{
    struct fixture *f = *state;
    const char *ignored[] = {
        "abc", "-7200", "7200.0", "7200;foo=bar", "\"7200\"", "+7200", "7200 0", "0x10", "", NULL};
    for (int i = 0; ignored[i] != NULL; i++)
        assert_int_equal(initial_age(f, ignored[i], NULL), 0);
    assert_int_equal(initial_age(f, " 60 ", NULL), 60);
    assert_int_equal(initial_age(f, "0, 7200", NULL), 0);
    assert_int_equal(initial_age(f, "7200, 0", NULL), 7200);
    assert_int_equal(initial_age(f, "0, 0", NULL), 0);
    assert_int_equal(initial_age(f, "0", "7200"), 0);
    assert_int_equal(initial_age(f, "7200", "0"), 7200);
    assert_int_equal(initial_age(f, "3600", "3600"), 3600);
    assert_int_equal(initial_age(f, "abc, 7200", NULL), 0); /* the first member decides */
    assert_int_equal(initial_age(f, "2147483647", NULL), 2147483647);
    assert_int_equal(initial_age(f, "2147483648", NULL), 2147483648LL);
    assert_int_equal(initial_age(f, "99999999999999999999999", NULL), 2147483648LL);

    /* an ignored Age is not a trusted 0: the apparent age from Date still
     * counts (§4.2.3) */
    struct op_cache_meta m;
    op_headers_reset(&f->resp);
    add(&f->resp, "Date", "Tue, 14 Nov 2023 20:13:20 GMT"); /* NOW - 7200 */
    add(&f->resp, "Cache-Control", "max-age=3600");
    add(&f->resp, "Age", "abc");
    assert_null(decide(f, 200, &m));
    assert_int_equal(m.corrected_initial_age, 7200);
    int64_t age, ttl;
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW, &age, &ttl), OP_CACHE_VALIDATE);
}

/* must-understand: only a status this cache knows is stored, and then
 * no-store (for caches that do not know the directive) yields. */
static void test_must_understand(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m;
    add(&f->resp, "Cache-Control", "max-age=3600, must-understand");
    assert_string_equal(decide(f, 599, &m), "must-understand");
    assert_null(decide(f, 200, &m));
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=3600, must-understand, no-store");
    assert_null(decide(f, 404, &m));
    op_headers_reset(&f->resp);
    add(&f->resp, "Cache-Control", "max-age=3600");
    assert_null(decide(f, 599, &m)); /* without it, explicit freshness is enough */
}

static void test_request_directives(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m = {.response_time = NOW, .freshness_lifetime = 100};
    int64_t age, ttl;
    add(&f->req, "Cache-Control", "max-age=5");
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW + 10, &age, &ttl), OP_CACHE_VALIDATE);
    op_headers_reset(&f->req);
    add(&f->req, "Pragma", "no-cache");
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW, &age, &ttl), OP_CACHE_VALIDATE);
    op_headers_reset(&f->req);
    add(&f->req, "Cache-Control", "max-stale=50");
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW + 120, &age, &ttl), OP_CACHE_STALE_OK);
    m.flags = OP_META_MUST_REVALIDATE;
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW + 120, &age, &ttl), OP_CACHE_VALIDATE);
    m.flags = OP_META_NO_CACHE;
    op_headers_reset(&f->req);
    assert_int_equal(op_cache_evaluate(&m, &f->req, NOW, &age, &ttl), OP_CACHE_VALIDATE);
}

static void test_conditionals(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m = {.response_time = NOW};
    add(&f->resp, "ETag", "W/\"x\"");
    add(&f->resp, "Last-Modified", "Tue, 14 Nov 2023 22:03:20 GMT");
    add(&f->req, "If-None-Match", "\"y\", \"x\"");
    assert_true(op_cache_not_modified(&f->req, &f->resp, &m)); /* weak comparison */
    op_headers_reset(&f->req);
    add(&f->req, "If-None-Match", "\"y\"");
    add(&f->req, "If-Modified-Since", "Tue, 14 Nov 2023 23:00:00 GMT");
    assert_false(op_cache_not_modified(&f->req, &f->resp, &m)); /* INM wins over IMS */
    op_headers_reset(&f->req);
    add(&f->req, "If-Modified-Since", "Tue, 14 Nov 2023 23:00:00 GMT");
    assert_true(op_cache_not_modified(&f->req, &f->resp, &m));
    op_headers_reset(&f->req);
    add(&f->req, "If-Modified-Since", "Tue, 14 Nov 2023 22:00:00 GMT");
    assert_false(op_cache_not_modified(&f->req, &f->resp, &m));
}

static void test_freshen_from_304(void **state)
{
    struct fixture *f = *state;
    add(&f->resp, "Cache-Control", "max-age=1");
    add(&f->resp, "Content-Length", "5");
    add(&f->resp, "X-Keep", "k");
    struct op_headers fresh;
    op_headers_init(&fresh, 16, 4096);
    add(&fresh, "Cache-Control", "max-age=60");
    add(&fresh, "Content-Length", "0");
    assert_int_equal(op_cache_freshen_headers(&f->resp, &fresh), 0);
    size_t len;
    const char *v = op_headers_get(&f->resp, "cache-control", &len);
    assert_int_equal(len, 10);
    assert_memory_equal(v, "max-age=60", 10);
    v = op_headers_get(&f->resp, "content-length", &len);
    assert_memory_equal(v, "5", 1); /* framing fields describe the stored body */
    assert_non_null(op_headers_get(&f->resp, "x-keep", &len));
    /* the ETag and Content-MD5 stay those of the stored bytes */
    add(&f->resp, "ETag", "\"a\"");
    add(&f->resp, "Content-MD5", "old");
    op_headers_reset(&fresh);
    add(&fresh, "ETag", "\"b\"");
    add(&fresh, "Content-MD5", "new");
    add(&fresh, "X-Keep", "k2");
    assert_int_equal(op_cache_freshen_headers(&f->resp, &fresh), 0);
    v = op_headers_get(&f->resp, "etag", &len);
    assert_memory_equal(v, "\"a\"", 3);
    v = op_headers_get(&f->resp, "content-md5", &len);
    assert_memory_equal(v, "old", 3);
    v = op_headers_get(&f->resp, "x-keep", &len);
    assert_memory_equal(v, "k2", 2);
    op_headers_fini(&fresh);
}

static void test_keys(void **state)
{
    struct fixture *f = *state;
    struct op_buf k;
    op_buf_init(&k, 1024);
    assert_int_equal(op_cache_key_primary(false, "Example.TEST:80", 15, "/a?b#frag", 9, NULL, &k),
                     0);
    assert_int_equal(k.len, strlen("http://example.test/a?b"));
    assert_memory_equal(k.data, "http://example.test/a?b", k.len);
    op_buf_reset(&k);
    op_cache_key_primary(false, "h", 1, "http://h/x", 10, "H", &k);
    assert_int_equal(k.len, strlen("http://h/x h"));
    assert_memory_equal(k.data, "http://h/x h", k.len);
    op_buf_reset(&k);
    add(&f->resp, "Vary", "Accept-Encoding, X-A");
    assert_true(op_cache_vary_names(&f->resp, &k));
    assert_memory_equal(k.data, "accept-encoding,x-a", k.len);
    struct op_buf sec;
    op_buf_init(&sec, 1024);
    add(&f->req, "accept-encoding", "gzip");
    add(&f->req, "Accept-Encoding", " br ");
    assert_int_equal(op_cache_key_secondary(k.data, k.len, &f->req, &sec), 0);
    assert_memory_equal(sec.data, "accept-encoding=gzip, br\nx-a=\n", sec.len);
    /* codings and language tags compare without case; other values as sent */
    op_buf_reset(&sec);
    op_headers_reset(&f->req);
    add(&f->req, "Accept-Encoding", "GZip");
    add(&f->req, "X-A", "Mixed");
    assert_int_equal(op_cache_key_secondary(k.data, k.len, &f->req, &sec), 0);
    assert_memory_equal(sec.data, "accept-encoding=gzip\nx-a=Mixed\n", sec.len);
    op_buf_fini(&sec);
    op_buf_fini(&k);
}

static void test_stale_if_error_window(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m = {.response_time = NOW, .freshness_lifetime = 10, .sie = -1, .swr = -1};
    /* 100 s stale: inside a one-day default, outside a 60 s one */
    assert_true(op_cache_stale_if_error_ok(&m, &f->req, NOW + 110, 86400));
    assert_false(op_cache_stale_if_error_ok(&m, &f->req, NOW + 110, 60));
    m.sie = 200; /* the response's own window wins over the default */
    assert_true(op_cache_stale_if_error_ok(&m, &f->req, NOW + 110, 0));
    assert_false(op_cache_stale_if_error_ok(&m, &f->req, NOW + 300, 86400));
    m.flags = OP_META_MUST_REVALIDATE;
    assert_false(op_cache_stale_if_error_ok(&m, &f->req, NOW + 20, 86400));
    m.flags = OP_META_NO_CACHE;
    assert_false(op_cache_stale_if_error_ok(&m, &f->req, NOW + 20, 86400));
    m.flags = 0;
    add(&f->req, "Cache-Control", "max-age=5");
    assert_false(op_cache_stale_if_error_ok(&m, &f->req, NOW + 20, 86400));
}

static void test_stale_while_revalidate_window(void **state)
{
    struct fixture *f = *state;
    struct op_cache_meta m = {.response_time = NOW, .freshness_lifetime = 10, .sie = -1, .swr = 30};
    assert_true(op_cache_swr_ok(&m, &f->req, NOW + 30, 0));  /* 20 s stale, window 30 */
    assert_false(op_cache_swr_ok(&m, &f->req, NOW + 50, 0)); /* 40 s stale */
    m.swr = -1;                                              /* the site's default */
    assert_false(op_cache_swr_ok(&m, &f->req, NOW + 30, 0));
    assert_true(op_cache_swr_ok(&m, &f->req, NOW + 30, 60));
    m.flags = OP_META_MUST_REVALIDATE;
    assert_false(op_cache_swr_ok(&m, &f->req, NOW + 11, 60));
    m.flags = 0;
    /* the first second past expiry: a window of 0 allows nothing, 1 allows it */
    assert_false(op_cache_swr_ok(&m, &f->req, NOW + 10, 0));
    assert_false(op_cache_stale_if_error_ok(&m, &f->req, NOW + 10, 0));
    assert_true(op_cache_swr_ok(&m, &f->req, NOW + 10, 1));
    assert_false(op_cache_swr_ok(&m, &f->req, NOW + 11, 1));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_s_maxage_beats_max_age_beats_expires),
        T(test_invalid_expires_is_stale),
        T(test_not_storable),
        T(test_cdn_cache_control_replaces_cache_control),
        T(test_cdn_cache_control_lifetime),
        T(test_surrogate_control),
        T(test_heuristic_from_last_modified),
        T(test_age_calculation),
        T(test_age_first_member_or_ignored),
        T(test_must_understand),
        T(test_request_directives),
        T(test_conditionals),
        T(test_freshen_from_304),
        T(test_keys),
        T(test_stale_if_error_window),
        T(test_stale_while_revalidate_window),
    };
    return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
