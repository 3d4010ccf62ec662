/* Unit tests: the YAML loader, its errors, and the shipped default config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/op-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static struct op_conf *load(const char *text, struct op_buf *errors)
{
    const char *path = write_tmp(text);
    op_buf_reset(errors);
    struct op_conf *c = op_conf_load(path, errors);
    unlink(path);
    if (errors->len > 0)
        op_buf_append(errors, "", 1); /* NUL for strstr */
    return c;
}

static void test_default_config_loads(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    /* every key the shipped file mentions is in the table: unknown keys fail */
    struct op_conf *c = op_conf_load(OP_SOURCE_DIR "/conf/outpost.yaml", &errors);
    if (c == NULL)
        fail_msg("%.*s", (int)errors.len, errors.data);
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->nsites, 1);
    assert_string_equal(c->sites[0].origins[0].host, "127.0.0.1");
    assert_int_equal(c->sites[0].origins[0].port, 8081);
    assert_int_equal(c->sites[0].connect_timeout_ms, 2000);
    op_conf_free(c);
    op_buf_fini(&errors);
}

static void test_values_and_defaults(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    struct op_conf *c = load("listen: \"[::1]:9000\"\ncache_size: 2g\n"
                             "sites:\n  - host: a.test\n    origin: http://origin.test\n"
                             "  - origin: http://10.0.0.1:8000/\n",
                             &errors);
    assert_non_null(c);
    assert_string_equal(c->listen_host, "::1");
    assert_int_equal(c->listen_port, 9000);
    assert_int_equal(c->cache_size, 2ull << 30);
    assert_int_equal(c->max_headers, 100);
    assert_int_equal(c->sites[0].origins[0].port, 80);
    assert_string_equal(c->sites[1].host, "*");
    assert_int_equal(c->sites[1].origins[0].port, 8000);
    op_conf_free(c);
    op_buf_fini(&errors);
}

static void test_every_error_has_its_position(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    struct op_conf *c = load("listen: nope\nworkers: lots\ncolour: blue\n"
                             "sites:\n  - origin: https://x\n    connect_timeout: 10ms\n"
                             "    typo: 1\n",
                             &errors);
    assert_null(c);
    const char *e = errors.data;
    assert_non_null(strstr(e, ":1:9: listen: expected HOST:PORT"));
    assert_non_null(strstr(e, ":2:10: workers: expected a whole number"));
    assert_non_null(strstr(e, ":3:1: colour: unknown key"));
    assert_non_null(strstr(e, ":5:13: sites[0].origin: https origins are not supported yet"));
    assert_non_null(strstr(e, ":6:22: sites[0].connect_timeout: must be at least 50ms"));
    assert_non_null(strstr(e, ":7:5: sites[0].typo: unknown key"));
    op_buf_fini(&errors);
}

static void test_structural_errors(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    assert_null(load("listen: 127.0.0.1:80\n", &errors));
    assert_non_null(strstr(errors.data, "sites: at least one site is required"));
    assert_null(load("sites:\n  - host: a\n", &errors));
    assert_non_null(strstr(errors.data, "origin: required key is missing"));
    assert_null(load("sites: [\n", &errors));
    assert_non_null(strstr(errors.data, ":2:1:"));
    assert_null(load("- a\n- b\n", &errors));
    assert_non_null(strstr(errors.data, "expected a mapping"));
    assert_null(load("workers: 1\nworkers: 2\nsites:\n  - origin: http://a\n", &errors));
    assert_non_null(strstr(errors.data, "key appears twice"));
    assert_null(load("sites:\n  - origin: http://a\n  - origin: http://b\n", &errors));
    assert_non_null(strstr(errors.data, "already used"));
    /* cache_name goes out in header fields: a token; host_header: no blanks */
    assert_null(load("cache_name: \"edge one\"\nsites:\n  - origin: http://a\n", &errors));
    assert_non_null(strstr(errors.data, "cache_name: expected a token"));
    assert_null(load("cache_name: \"a\\r\\nX: y\"\nsites:\n  - origin: http://a\n", &errors));
    assert_non_null(strstr(errors.data, "cache_name: expected a token"));
    assert_null(load("sites:\n  - origin: http://a\n    host_header: \"h\\r\\nX: y\"\n", &errors));
    assert_non_null(strstr(errors.data, "host_header: expected HOST[:PORT]"));
    struct op_conf *c = load("cache_name: edge-1.fra\nsites:\n  - origin: http://a\n", &errors);
    assert_non_null(c);
    op_conf_free(c);
    op_buf_fini(&errors);
}

static void test_several_origins(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    struct op_conf *c = load("sites:\n"
                             "  - host: a.test\n"
                             "    origin:\n"
                             "      - http://10.0.0.1:8000 weight=3\n"
                             "      - http://[::1]:81/\n"
                             "  - host: b.test\n"
                             "    origin: http://b1.test,  http://b2.test:90 weight=1000\n",
                             &errors);
    if (c == NULL)
        fail_msg("%.*s", (int)errors.len, errors.data);
    assert_int_equal(c->sites[0].norigins, 2);
    assert_string_equal(c->sites[0].origins[0].host, "10.0.0.1");
    assert_int_equal(c->sites[0].origins[0].weight, 3);
    assert_string_equal(c->sites[0].origins[1].host, "::1");
    assert_int_equal(c->sites[0].origins[1].port, 81);
    assert_int_equal(c->sites[0].origins[1].weight, 1);
    assert_int_equal(c->sites[1].norigins, 2);
    assert_string_equal(c->sites[1].origins[0].url, "http://b1.test");
    assert_int_equal(c->sites[1].origins[0].port, 80);
    assert_int_equal(c->sites[1].origins[1].weight, 1000);
    op_conf_free(c);
    op_buf_fini(&errors);
}

static void test_bad_origin_lists(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    assert_null(load("sites:\n"
                     "  - host: a\n    origin: http://a, , http://b\n"
                     "  - host: b\n    origin: http://a weight=0\n"
                     "  - host: c\n    origin: http://a wait=2\n"
                     "  - host: d\n    origin: [http://a, [x]]\n"
                     "  - host: e\n    origin: []\n"
                     "  - host: f\n    origin: http://a\n    health_check_path: health\n"
                     "  - host: g\n    origin: http://a\n    error_page: /nonexistent/e.html\n",
                     &errors));
    const char *e = errors.data;
    assert_non_null(strstr(e, "sites[0].origin: empty origin"));
    assert_non_null(strstr(e, "sites[1].origin: expected \"URL\" or \"URL weight=N\""));
    assert_non_null(strstr(e, "sites[2].origin: expected \"URL\" or \"URL weight=N\""));
    assert_non_null(strstr(e, "sites[3].origin: expected one origin per list item"));
    assert_non_null(strstr(e, "sites[4].origin: expected at least one origin"));
    assert_non_null(strstr(e, "sites[6].error_page: cannot open \"/nonexistent/e.html\""));
    op_buf_reset(&errors);
    /* whole-config checks run once the keys parse */
    assert_null(load("sites:\n  - origin: http://a\n    health_check_path: health\n", &errors));
    op_buf_append(&errors, "", 1);
    assert_non_null(strstr(errors.data, "health_check_path: expected a path starting with"));
    op_buf_fini(&errors);
}

static void test_purge_allow(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    struct op_conf *c = load("purge_allow: \"10.0.0.0/8, 192.0.2.7 ::1/128,2001:db8::/33\"\n"
                             "sites:\n  - origin: http://a\n",
                             &errors);
    if (c == NULL)
        fail_msg("%.*s", (int)errors.len, errors.data);
    assert_int_equal(c->npurge_nets, 4);
    assert_true(op_conf_net_match(c->purge_nets, 4, "10.255.0.1"));
    assert_false(op_conf_net_match(c->purge_nets, 4, "11.0.0.1"));
    assert_true(op_conf_net_match(c->purge_nets, 4, "192.0.2.7"));
    assert_false(op_conf_net_match(c->purge_nets, 4, "192.0.2.8"));
    assert_true(op_conf_net_match(c->purge_nets, 4, "::1"));
    assert_true(op_conf_net_match(c->purge_nets, 4, "2001:db8:7fff::1"));
    assert_false(op_conf_net_match(c->purge_nets, 4, "2001:db8:8000::1"));
    assert_false(op_conf_net_match(c->purge_nets, 4, "not an address"));
    op_conf_free(c);
    assert_null(load("purge_allow: 10.0.0.0/33\nsites:\n  - origin: http://a\n", &errors));
    op_buf_append(&errors, "", 1);
    assert_non_null(strstr(errors.data, "purge_allow: expected networks like"));
    op_buf_fini(&errors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_config_loads),
        cmocka_unit_test(test_values_and_defaults),
        cmocka_unit_test(test_every_error_has_its_position),
        cmocka_unit_test(test_structural_errors),
        cmocka_unit_test(test_several_origins),
        cmocka_unit_test(test_bad_origin_lists),
        cmocka_unit_test(test_purge_allow),
    };
    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
