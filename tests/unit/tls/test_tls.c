/* Unit tests: the TLS filter against an OpenSSL client over memory BIOs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "outpost/tls.h"
#include "tls_testcert.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], crt[300], key[300], other_key[300];

struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
};

static void client_init(struct client *cl, int max_version, const unsigned char *alpn,
                        unsigned alpn_len)
{
    cl->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(cl->ctx);
    SSL_CTX_set_max_proto_version(cl->ctx, max_version);
    SSL_CTX_set_min_proto_version(cl->ctx, 0);
    if (max_version < TLS1_2_VERSION)
        SSL_CTX_set_security_level(cl->ctx, 0);
    assert_int_equal(SSL_CTX_load_verify_locations(cl->ctx, crt, NULL), 1);
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    cl->ssl = SSL_new(cl->ctx);
    cl->rbio = BIO_new(BIO_s_mem());
    cl->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(cl->rbio, -1);
    SSL_set_bio(cl->ssl, cl->rbio, cl->wbio);
    SSL_set_connect_state(cl->ssl);
    SSL_set_tlsext_host_name(cl->ssl, "localhost");
    SSL_set1_host(cl->ssl, "localhost");
    if (alpn != NULL)
        SSL_set_alpn_protos(cl->ssl, alpn, alpn_len);
}

static void client_fini(struct client *cl)
{
    SSL_free(cl->ssl);
    SSL_CTX_free(cl->ctx);
    ERR_clear_error();
}

/* Move bytes both ways until neither side has anything to say (bounded).
 * Returns the server's last input result. */
static int pump(struct client *cl, struct op_tls_conn *t, struct op_buf *plain)
{
    int rc = 0;
    for (int i = 0; i < 20; i++) {
        if (!SSL_is_init_finished(cl->ssl))
            SSL_do_handshake(cl->ssl);
        char buf[65536];
        int n = BIO_read(cl->wbio, buf, sizeof(buf));
        struct op_buf wire;
        op_buf_init(&wire, SIZE_MAX);
        rc = op_tls_conn_input(t, buf, n > 0 ? (size_t)n : 0, plain, &wire);
        if (wire.len > 0)
            BIO_write(cl->rbio, wire.data, (int)wire.len);
        bool quiet = n <= 0 && wire.len == 0;
        op_buf_fini(&wire);
        if (rc != 0 || quiet)
            break;
    }
    return rc;
}

/* A server connection on the group's context and a client for it. */
struct pair {
    struct op_tls_conn *t;
    struct client cl;
};

static struct op_tls_ctx *sctx;

static void pair_open(struct pair *p, int max_version, const char *alpn, unsigned alpn_len)
{
    p->t = op_tls_conn_new(sctx);
    assert_non_null(p->t);
    client_init(&p->cl, max_version, (const unsigned char *)alpn, alpn_len);
}

static void pair_close(struct pair *p)
{
    client_fini(&p->cl);
    op_tls_conn_free(p->t);
}

/* One input or output call whose records to send are not looked at. */
static int feed(struct op_tls_conn *t, const char *p, size_t len, struct op_buf *plain)
{
    struct op_buf wire;
    op_buf_init(&wire, SIZE_MAX);
    int rc = op_tls_conn_input(t, p, len, plain, &wire);
    op_buf_fini(&wire);
    return rc;
}

static int emit(struct op_tls_conn *t, const char *p, size_t len)
{
    struct op_buf wire;
    op_buf_init(&wire, SIZE_MAX);
    int rc = op_tls_conn_output(t, p, len, &wire);
    op_buf_fini(&wire);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("OP_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/tls-%d", tmp != NULL ? tmp : "/tmp", (int)getpid());
    mkdir(tmp != NULL ? tmp : "/tmp", 0700);
    mkdir(dir, 0700);
    assert_int_equal(tls_testcert_write(dir, "leaf", 30), 0);
    assert_int_equal(tls_testcert_write(dir, "other", 30), 0);
    snprintf(crt, sizeof(crt), "%s/leaf.crt", dir);
    snprintf(key, sizeof(key), "%s/leaf.key", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
    char why[512];
    assert_int_equal(op_tls_server_ctx_new(crt, key, &sctx, why, sizeof(why)), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    op_tls_ctx_free(sctx);
    return 0;
}

static void test_handshake_alpn_and_data(void **state)
{
    (void)state;
    struct pair pr;
    pair_open(&pr, TLS1_3_VERSION, "\x02h2\x08http/1.1", 12);
    struct op_buf plain;
    op_buf_init(&plain, 1 << 20);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    assert_true(op_tls_conn_established(pr.t));
    assert_true(SSL_is_init_finished(pr.cl.ssl));
    assert_int_equal(SSL_get_verify_result(pr.cl.ssl), X509_V_OK);
    assert_string_equal(op_tls_conn_version(pr.t), "TLSv1.3");
    assert_string_equal(op_tls_conn_sni(pr.t), "localhost");
    const unsigned char *sel;
    unsigned sel_len;
    SSL_get0_alpn_selected(pr.cl.ssl, &sel, &sel_len);
    assert_int_equal(sel_len, 8);
    assert_memory_equal(sel, "http/1.1", 8);

    /* client to server, then server to client, across several records */
    static char big[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    size_t w;
    assert_int_equal(SSL_write_ex(pr.cl.ssl, big, sizeof(big), &w), 1);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    assert_int_equal(plain.len, sizeof(big));
    assert_memory_equal(plain.data, big, sizeof(big));
    struct op_buf wire;
    op_buf_init(&wire, SIZE_MAX);
    assert_int_equal(op_tls_conn_output(pr.t, big, sizeof(big), &wire), 0);
    BIO_write(pr.cl.rbio, wire.data, (int)wire.len);
    static char back[sizeof(big)];
    size_t got = 0, n;
    while (got < sizeof(back) && SSL_read_ex(pr.cl.ssl, back + got, sizeof(back) - got, &n) == 1)
        got += n;
    assert_int_equal(got, sizeof(big));
    assert_memory_equal(back, big, sizeof(big));

    /* close_notify from the client ends the stream */
    SSL_shutdown(pr.cl.ssl);
    op_buf_reset(&plain);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), OP_ECLOSED);
    op_buf_fini(&wire);
    op_buf_fini(&plain);
    pair_close(&pr);
}

/* A full plaintext buffer holds the rest inside; it comes out in order. */
static void test_small_plain_buffer_keeps_order(void **state)
{
    (void)state;
    struct pair pr;
    pair_open(&pr, TLS1_2_VERSION, NULL, 0);
    struct op_buf plain, all;
    op_buf_init(&plain, 1000);
    op_buf_init(&all, SIZE_MAX);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    assert_string_equal(op_tls_conn_version(pr.t), "TLSv1.2");
    char msg[5000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (char)(i * 7);
    size_t w;
    assert_int_equal(SSL_write_ex(pr.cl.ssl, msg, sizeof(msg), &w), 1);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    assert_int_equal(plain.len, 1000);
    assert_true(op_tls_conn_has_pending(pr.t));
    for (int i = 0; i < 10 && all.len < sizeof(msg); i++) {
        op_buf_append(&all, plain.data, plain.len);
        op_buf_reset(&plain);
        assert_int_equal(feed(pr.t, NULL, 0, &plain), 0);
    }
    op_buf_append(&all, plain.data, plain.len);
    assert_int_equal(all.len, sizeof(msg));
    assert_memory_equal(all.data, msg, sizeof(msg));
    assert_false(op_tls_conn_has_pending(pr.t));
    op_buf_fini(&plain);
    op_buf_fini(&all);
    pair_close(&pr);
}

/* TLS 1.1, an ALPN list without http/1.1, plaintext HTTP and garbage: each a
 * clean protocol error, with an alert for the peer where TLS allows one. */
static void test_refusals(void **state)
{
    (void)state;
    struct op_buf plain;
    op_buf_init(&plain, 1 << 16);
    struct {
        int max_version;
        const char *alpn;
        unsigned alpn_len;
    } cases[] = {{TLS1_1_VERSION, NULL, 0}, {TLS1_3_VERSION, "\x02h2", 3}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pair pr;
        pair_open(&pr, cases[i].max_version, cases[i].alpn, cases[i].alpn_len);
        assert_int_equal(pump(&pr.cl, pr.t, &plain), OP_EPARSE);
        assert_false(op_tls_conn_established(pr.t));
        assert_false(SSL_is_init_finished(pr.cl.ssl));
        /* and it stays failed */
        assert_int_equal(feed(pr.t, "x", 1, &plain), OP_EPARSE);
        assert_int_equal(emit(pr.t, "x", 1), OP_EINVAL);
        pair_close(&pr);
    }
    static const struct {
        const char *bytes;
        size_t len;
        int rc;
    } junk[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, OP_EPARSE},   /* plaintext HTTP */
        {"\x16\x03\x01\xff\xff\x01\x00\xff\xfb", 9, OP_EPARSE}, /* a record too long */
        {"\x15\x03\x03\x00\x02\x02\x28", 7, OP_EPARSE},         /* a fatal alert */
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9, 0},         /* more to come */
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        struct op_tls_conn *t = op_tls_conn_new(sctx);
        assert_int_equal(feed(t, junk[i].bytes, junk[i].len, &plain), junk[i].rc);
        assert_int_equal(plain.len, 0);
        assert_false(op_tls_conn_established(t));
        op_tls_conn_free(t);
    }
    op_buf_fini(&plain);
}

/* A TLS 1.2 renegotiation ends the connection (else each attempt costs us
 * an alert, without end), and finite-field groups are not offered: a client
 * that has only those fails the handshake. */
static void test_renegotiation_and_ffdhe_refused(void **state)
{
    (void)state;
    struct op_buf plain;
    op_buf_init(&plain, 1 << 16);
    struct pair pr;
    pair_open(&pr, TLS1_2_VERSION, NULL, 0);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    assert_true(op_tls_conn_established(pr.t));
    assert_int_equal(SSL_renegotiate(pr.cl.ssl), 1);
    SSL_do_handshake(pr.cl.ssl); /* its ClientHello */
    /* the input that carries it fails: OpenSSL alone would answer with a
     * warning alert and go on (the client then gives up, but a hostile one
     * would send the next ClientHello) */
    char hello[4096];
    int n = BIO_read(pr.cl.wbio, hello, sizeof(hello));
    assert_true(n > 0);
    assert_int_equal(feed(pr.t, hello, (size_t)n, &plain), OP_EPARSE);
    pair_close(&pr);

    pair_open(&pr, TLS1_3_VERSION, NULL, 0);
    assert_int_equal(SSL_set1_groups_list(pr.cl.ssl, "ffdhe2048"), 1);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), OP_EPARSE);
    assert_false(op_tls_conn_established(pr.t));
    pair_close(&pr);
    op_buf_fini(&plain);
}

/* An error another connection left in the thread's queue is not this one's. */
static void test_stale_error_queue_is_not_ours(void **state)
{
    (void)state;
    struct op_buf plain;
    op_buf_init(&plain, 1 << 16);
    struct pair pr;
    pair_open(&pr, TLS1_3_VERSION, NULL, 0);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    size_t w;
    assert_int_equal(SSL_write_ex(pr.cl.ssl, "hi", 2, &w), 1);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    assert_int_equal(plain.len, 2);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    assert_int_equal(emit(pr.t, "ok", 2), 0);
    pair_close(&pr);
    op_buf_fini(&plain);
}

/* A session from one connection resumes on another of the same context, as
 * it would on another worker. */
static void test_resumption_across_connections(void **state)
{
    (void)state;
    struct op_buf plain;
    op_buf_init(&plain, 1 << 16);
    SSL_SESSION *sess = NULL;
    for (int round = 0; round < 2; round++) {
        struct pair pr;
        pair_open(&pr, TLS1_3_VERSION, NULL, 0);
        if (sess != NULL)
            SSL_set_session(pr.cl.ssl, sess);
        assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
        assert_true(op_tls_conn_established(pr.t));
        /* TLS 1.3 tickets follow the handshake: the client reads them */
        char b[16];
        size_t n;
        SSL_read_ex(pr.cl.ssl, b, sizeof(b), &n);
        assert_int_equal(op_tls_conn_resumed(pr.t), round == 1);
        if (round == 0) {
            sess = SSL_get1_session(pr.cl.ssl);
            assert_non_null(sess);
        }
        /* a client freed without close_notify drops its session as bad */
        SSL_shutdown(pr.cl.ssl);
        pair_close(&pr);
    }
    SSL_SESSION_free(sess);
    op_buf_fini(&plain);
}

static void test_ctx_errors_name_the_file(void **state)
{
    (void)state;
    struct op_tls_ctx *ctx = NULL;
    char why[512];
    assert_int_equal(op_tls_server_ctx_new("/nonexistent.crt", key, &ctx, why, sizeof(why)),
                     OP_EINVAL);
    assert_non_null(strstr(why, "certificate /nonexistent.crt"));
    assert_int_equal(op_tls_server_ctx_new(crt, other_key, &ctx, why, sizeof(why)), OP_EINVAL);
    assert_non_null(strstr(why, other_key));
    assert_non_null(strstr(why, "mismatch"));
    assert_int_equal(op_tls_server_ctx_new(key, key, &ctx, why, sizeof(why)), OP_EINVAL);
    assert_non_null(strstr(why, "certificate"));
    assert_null(ctx);
    assert_int_equal(ERR_peek_error(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_alpn_and_data),
        cmocka_unit_test(test_small_plain_buffer_keeps_order),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_renegotiation_and_ffdhe_refused),
        cmocka_unit_test(test_stale_error_queue_is_not_ours),
        cmocka_unit_test(test_resumption_across_connections),
        cmocka_unit_test(test_ctx_errors_name_the_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
