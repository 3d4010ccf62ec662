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
                             "sites:\n  - origin: ftp://x\n    connect_timeout: 10ms\n"
                             "    typo: 1\n",
                             &errors);
    assert_null(c);
    const char *e = errors.data;
    assert_non_null(strstr(e, ":1:9: listen: expected HOST:PORT"));
    assert_non_null(strstr(e, ":2:10: workers: expected a whole number"));
    assert_non_null(strstr(e, ":3:1: colour: unknown key"));
    assert_non_null(strstr(e, ":5:13: sites[0].origin: expected http://HOST[:PORT] or https://"));
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
    assert_non_null(strstr(e, "sites[3].origin: expected one value per list item"));
    assert_non_null(strstr(e, "sites[4].origin: expected at least one value"));
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

static void test_tls_keys(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    struct op_conf *c = load("listen_tls: [\"127.0.0.1:8443\", \"[::1]:8443\"]\n"
                             "tls_cert: [/a/rsa.crt, /a/ec.crt]\n"
                             "tls_key: /a/rsa.key, /a/ec.key\n"
                             "tls_ticket_rotate: 30m\n"
                             "sites:\n  - host: a.test\n    origin: http://a\n"
                             "    tls_cert: /s/a.crt\n    tls_key: /s/a.key\n"
                             "    https_redirect: true\n"
                             "  - origin: http://b\n    schemes_share_cache: true\n",
                             &errors);
    if (c == NULL)
        fail_msg("%.*s", (int)errors.len, errors.data);
    assert_int_equal(c->ntls_listens, 2);
    assert_string_equal(c->tls_listens[1].host, "::1");
    assert_int_equal(c->tls_listens[1].port, 8443);
    char item[64];
    assert_true(op_conf_list_item(c->tls_cert, 1, item, sizeof(item)));
    assert_string_equal(item, "/a/ec.crt");
    assert_true(op_conf_list_item(c->tls_key, 1, item, sizeof(item)));
    assert_string_equal(item, "/a/ec.key");
    assert_false(op_conf_list_item(c->tls_key, 2, item, sizeof(item)));
    assert_int_equal(c->tls_ticket_rotate_ms, 30 * 60000);
    assert_int_equal(c->tls_handshake_timeout_ms, 10000);
    assert_string_equal(c->tls_unknown_sni, "default");
    assert_true(c->sites[0].https_redirect);
    assert_false(c->sites[0].schemes_share_cache);
    assert_false(c->sites[1].https_redirect);
    assert_true(c->sites[1].schemes_share_cache);
    assert_true(c->sites[0].origin_tls_verify);
    op_conf_free(c);
    /* https origins: port 443 unless given, the scheme in any case */
    c = load("sites:\n  - origin: [\"https://o.test\", \"HTTPS://[::1]:8443\", \"http://p\"]\n"
             "    origin_ca: /etc/ca.pem\n    origin_tls_verify: false\n",
             &errors);
    if (c == NULL)
        fail_msg("%.*s", (int)errors.len, errors.data);
    assert_true(c->sites[0].origins[0].tls);
    assert_int_equal(c->sites[0].origins[0].port, 443);
    assert_true(c->sites[0].origins[1].tls);
    assert_string_equal(c->sites[0].origins[1].host, "::1");
    assert_int_equal(c->sites[0].origins[1].port, 8443);
    assert_false(c->sites[0].origins[2].tls);
    assert_int_equal(c->sites[0].origins[2].port, 80);
    assert_string_equal(c->sites[0].origin_ca, "/etc/ca.pem");
    assert_false(c->sites[0].origin_tls_verify);
    op_conf_free(c);
    op_buf_fini(&errors);
}

static void test_tls_errors(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"listen_tls: 127.0.0.1:8443\n", "tls_cert: listen_tls needs a default certificate"},
        {"listen_tls: 127.0.0.1:8443, nonsense\n", "listen_tls: expected HOST:PORT addresses"},
        {"listen_tls: \"127.0.0.1:8443,\"\n", "listen_tls: expected HOST:PORT addresses"},
        {"listen_tls: 127.0.0.1:8080\ntls_cert: a\ntls_key: b\n", "also the plain listen"},
        {"listen_tls: [\"127.0.0.1:1\", \"127.0.0.1:1\"]\ntls_cert: a\ntls_key: b\n",
         "127.0.0.1:1 is given twice"},
        {"listen_tls: 127.0.0.1:8443\ntls_cert: a, b\ntls_key: a\n",
         "tls_key: expected one key per tls_cert (2 certificates, 1 keys)"},
        {"tls_cert: a\ntls_key: b\n", "tls_cert: there is no listen_tls"},
        {"listen_tls: 127.0.0.1:8443\ntls_unknown_sni: reject\n", "no site has a tls_cert"},
        {"listen_tls: 127.0.0.1:8443\ntls_unknown_sni: maybe\n", "expected default or reject"},
        {"listen_tls: 127.0.0.1:8443\ntls_cert: a\ntls_key: b\ntls_ticket_rotate: 8d\n",
         "tls_ticket_rotate: must be at most 7d"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct op_buf errors;
        op_buf_init(&errors, 65536);
        char yaml[512];
        snprintf(yaml, sizeof(yaml), "%ssites:\n  - origin: http://a\n", cases[i].yaml);
        struct op_conf *c = load(yaml, &errors);
        op_buf_append(&errors, "", 1);
        if (c != NULL || strstr(errors.data, cases[i].want) == NULL)
            fail_msg("case %zu: %s", i, errors.data);
        op_buf_fini(&errors);
    }
    static const struct {
        const char *site, *want;
    } site_cases[] = {
        {"    tls_cert: a\n", "sites[0].tls_key: expected one key per tls_cert"},
        {"    tls_cert: a\n    tls_key: b\n", "a site for any host has no SNI name"},
        {"    https_redirect: yes\n", "https_redirect: expected true or false"},
    };
    for (size_t i = 0; i < sizeof(site_cases) / sizeof(site_cases[0]); i++) {
        struct op_buf errors;
        op_buf_init(&errors, 65536);
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "listen_tls: 127.0.0.1:8443\ntls_cert: c\ntls_key: k\n"
                 "sites:\n  - origin: http://a\n%s",
                 site_cases[i].site);
        struct op_conf *c = load(yaml, &errors);
        op_buf_append(&errors, "", 1);
        if (c != NULL || strstr(errors.data, site_cases[i].want) == NULL)
            fail_msg("site case %zu: %s", i, errors.data);
        op_buf_fini(&errors);
    }
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    assert_null(
        load("sites:\n  - host: a\n    origin: http://a\n    https_redirect: true\n", &errors));
    op_buf_append(&errors, "", 1);
    assert_non_null(strstr(errors.data, "https_redirect: there is no listen_tls"));
    op_buf_fini(&errors);
}

/* The fleet mapping: its keys, defaults, and each way to get it wrong. */
static void test_fleet_keys(void **state)
{
    (void)state;
    struct op_buf errors;
    op_buf_init(&errors, 65536);
    struct op_conf *c = load("fleet:\n  node: edge-1\n  region: eu_west\n"
                             "  nats: [127.0.0.1:4222, \"[::1]:4223\"]\n  replicas: 3\n"
                             "sites:\n  - origin: http://a\n",
                             &errors);
    if (c == NULL)
        fail_msg("%.*s", (int)errors.len, errors.data);
    assert_string_equal(c->fleet_node, "edge-1");
    assert_string_equal(c->fleet_region, "eu_west");
    assert_string_equal(c->fleet_nats, "127.0.0.1:4222, [::1]:4223");
    assert_string_equal(c->fleet_stream, "OUTPOST_PURGES");
    assert_int_equal(c->fleet_replicas, 3);
    assert_int_equal(c->fleet_publish_timeout_ms, 5000);
    op_conf_free(c);
    /* no fleet: nothing to say */
    c = load("sites:\n  - origin: http://a\n", &errors);
    assert_non_null(c);
    assert_string_equal(c->fleet_nats, "");
    op_conf_free(c);
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"fleet: 3\n", ":1:8: fleet: expected a mapping of fleet keys"},
        {"fleet.node: a\n", ":1:1: fleet.node: unknown key"},
        {"fleet:\n  listen: 1.2.3.4:5\n", ":2:3: fleet.listen: unknown key"},
        {"fleet:\n  node: a\n  node: b\n", "fleet.node: key appears twice"},
        {"fleet:\n  replicas: 6\n", "fleet.replicas: must be at most 5"},
        {"fleet:\n  node: a\n", "fleet.nats: a fleet needs its NATS servers"},
        {"fleet:\n  node: a/b\n  region: r\n  nats: h:1\n", "fleet.node: expected 1-64 of"},
        {"fleet:\n  node: a\n  nats: h:1\n", "fleet.region: expected 1-64 of"},
        {"fleet:\n  node: a\n  region: r\n  stream: \"x y\"\n  nats: h:1\n",
         "fleet.stream: expected 1-64 of"},
        {"fleet:\n  node: a\n  region: r\n  nats: [h:1, \":2\"]\n",
         "fleet.nats: expected HOST:PORT, got \":2\""},
        {"fleet:\n  node: a\n  region: r\n  nats: h\n", "fleet.nats: expected HOST:PORT"},
        {"fleet:\n  node: "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  region: r\n"
         "  nats: h:1\n",
         "fleet.node: expected 1-64 of"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "%ssites:\n  - origin: http://a\n", bad[i].yaml);
        op_buf_reset(&errors);
        c = load(text, &errors);
        op_buf_append(&errors, "", 1);
        if (c != NULL || strstr(errors.data, bad[i].want) == NULL)
            fail_msg("case %zu: wanted \"%s\", got \"%s\"", i, bad[i].want, errors.data);
    }
    op_buf_fini(&errors);
}

/* Where <key> ("name:") starts a line of <text> at or after <from>, after
 * indentation and an optional "# " or "- "; NULL when nowhere. */
static const char *key_line(const char *text, const char *from, const char *key)
{
    char want[80];
    snprintf(want, sizeof(want), "%s:", key);
    for (const char *at = from; (at = strstr(at, want)) != NULL; at++) {
        const char *b = at;
        while (b > text && (b[-1] == ' ' || b[-1] == '#'))
            b--;
        if (b == text || b[-1] == '\n' || (b[-1] == '-'))
            return at;
    }
    return NULL;
}

/* conf/outpost.yaml names every key, set or commented out; a key of the
 * fleet mapping ("fleet.node") as "node:" after "fleet:". */
static void test_shipped_file_documents_every_key(void **state)
{
    (void)state;
    FILE *f = fopen(OP_SOURCE_DIR "/conf/outpost.yaml", "r");
    assert_non_null(f);
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const struct op_conf_key *tables[] = {op_conf_top_keys, op_conf_site_keys};
    for (size_t t = 0; t < 2; t++)
        for (const struct op_conf_key *k = tables[t]; k->name != NULL; k++) {
            const char *dot = strchr(k->name, '.');
            const char *found;
            if (dot == NULL) {
                found = key_line(text, text, k->name);
            } else {
                char outer[64];
                snprintf(outer, sizeof(outer), "%.*s", (int)(dot - k->name), k->name);
                found = key_line(text, text, outer);
                found = found != NULL ? key_line(text, found, dot + 1) : NULL;
            }
            if (found == NULL)
                fail_msg("conf/outpost.yaml does not mention %s", k->name);
        }
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
        cmocka_unit_test(test_tls_keys),
        cmocka_unit_test(test_tls_errors),
        cmocka_unit_test(test_fleet_keys),
        cmocka_unit_test(test_shipped_file_documents_every_key),
    };
    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
