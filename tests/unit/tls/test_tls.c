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
#include <time.h>
#include <unistd.h>

static char dir[256], crt[300], key[300], other_key[300];
static struct op_tls_tickets *tickets;

/* <dir>/<name>.crt or .key */
static const char *file(const char *name, const char *ext)
{
    static char paths[8][320];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof(paths[0]), "%s/%s.%s", dir, name, ext);
    return p;
}

struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
};

/* A client sending <sni> (NULL: none) that trusts only <ca>. */
static void client_init_for(struct client *cl, int max_version, const unsigned char *alpn,
                            unsigned alpn_len, const char *sni, const char *ca)
{
    cl->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(cl->ctx);
    SSL_CTX_set_max_proto_version(cl->ctx, max_version);
    SSL_CTX_set_min_proto_version(cl->ctx, 0);
    if (max_version < TLS1_2_VERSION)
        SSL_CTX_set_security_level(cl->ctx, 0);
    assert_int_equal(SSL_CTX_load_verify_locations(cl->ctx, ca, NULL), 1);
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    cl->ssl = SSL_new(cl->ctx);
    cl->rbio = BIO_new(BIO_s_mem());
    cl->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(cl->rbio, -1);
    SSL_set_bio(cl->ssl, cl->rbio, cl->wbio);
    SSL_set_connect_state(cl->ssl);
    if (sni != NULL) {
        SSL_set_tlsext_host_name(cl->ssl, sni);
        SSL_set1_host(cl->ssl, sni);
    }
    if (alpn != NULL)
        SSL_set_alpn_protos(cl->ssl, alpn, alpn_len);
}

static void client_init(struct client *cl, int max_version, const unsigned char *alpn,
                        unsigned alpn_len)
{
    client_init_for(cl, max_version, alpn, alpn_len, "localhost", crt);
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

/* A context with the default (localhost) certificate, a.test's and b.test's
 * two; <reject>: no default, unknown names refused. */
static struct op_tls_ctx *server_ctx(struct op_tls_tickets *tk, bool reject)
{
    struct op_tls_server_config cfg = {
        .tickets = tk, .ticket_lifetime_s = 3600, .reject_unknown_sni = reject};
    struct op_tls_ctx *ctx;
    char why[512];
    assert_int_equal(op_tls_ctx_create(&cfg, &ctx), 0);
    if (!reject)
        assert_int_equal(op_tls_ctx_add_cert(ctx, NULL, crt, key, why, sizeof(why)), 0);
    assert_int_equal(
        op_tls_ctx_add_cert(ctx, "A.test", file("a", "crt"), file("a", "key"), why, sizeof(why)),
        0);
    assert_int_equal(op_tls_ctx_add_cert(ctx, "b.test", file("b-rsa", "crt"), file("b-rsa", "key"),
                                         why, sizeof(why)),
                     0);
    assert_int_equal(op_tls_ctx_add_cert(ctx, "b.test", file("b-ec", "crt"), file("b-ec", "key"),
                                         why, sizeof(why)),
                     0);
    assert_int_equal(op_tls_ctx_has_default(ctx), !reject);
    return ctx;
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
    assert_int_equal(tls_testcert_make(dir, "a", "a.test", false, 0, 30), 0);
    assert_int_equal(tls_testcert_make(dir, "b-ec", "b.test", false, 0, 30), 0);
    assert_int_equal(tls_testcert_make(dir, "b-rsa", "b.test", true, 0, 30), 0);
    assert_int_equal(tls_testcert_make(dir, "expired", "localhost", false, -30, -1), 0);
    assert_int_equal(tls_testcert_make(dir, "future", "localhost", false, 2, 30), 0);
    assert_int_equal(op_tls_tickets_create(&tickets), 0);
    sctx = server_ctx(tickets, false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    op_tls_ctx_free(sctx);
    op_tls_tickets_destroy(tickets);
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

/* The key type of the certificate the client was given. */
static int peer_key_type(struct client *cl)
{
    X509 *x = SSL_get0_peer_certificate(cl->ssl);
    assert_non_null(x);
    return EVP_PKEY_get_base_id(X509_get0_pubkey(x));
}

/* A handshake of a client sending <sni>, trusting <ca> and checking that the
 * certificate names <verify> (NULL: any), on <ctx>. */
static int handshake_verify(struct op_tls_ctx *ctx, struct pair *p, int max_version,
                            const char *sni, const char *ca, const char *verify)
{
    struct op_buf plain;
    op_buf_init(&plain, 1 << 16);
    p->t = op_tls_conn_new(ctx);
    assert_non_null(p->t);
    client_init_for(&p->cl, max_version, NULL, 0, sni, ca);
    SSL_set1_host(p->cl.ssl, verify);
    int rc = pump(&p->cl, p->t, &plain);
    op_buf_fini(&plain);
    return rc;
}

/* The same, checking the name SNI sent. */
static int handshake_on(struct op_tls_ctx *ctx, struct pair *p, int max_version, const char *sni,
                        const char *ca)
{
    return handshake_verify(ctx, p, max_version, sni, ca, sni);
}

/* SNI picks the host's certificate, without case; an unknown name or none
 * gets the default; with reject_unknown_sni both fail with an alert. */
static void test_sni_selects_certificate(void **state)
{
    (void)state;
    static const struct {
        const char *sni, *ca, *host;
    } cases[] = {
        {"a.test", "a", "a.test"},
        {"A.TEST", "a", "a.test"},
        {"unknown.test", "leaf", NULL},
        {NULL, "leaf", NULL},
    };
    /* the certificate names the host SNI chose, or localhost for the default */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pair pr;
        /* a verified handshake: the client trusts that one certificate only */
        if (handshake_verify(sctx, &pr, TLS1_3_VERSION, cases[i].sni, file(cases[i].ca, "crt"),
                             cases[i].host ? cases[i].host : "localhost") != 0)
            fail_msg("case %zu: handshake failed", i);
        assert_true(op_tls_conn_established(pr.t));
        assert_int_equal(SSL_get_verify_result(pr.cl.ssl), X509_V_OK);
        if (cases[i].host == NULL)
            assert_null(op_tls_conn_host(pr.t));
        else
            assert_string_equal(op_tls_conn_host(pr.t), cases[i].host);
        assert_false(op_tls_conn_failed_sni(pr.t));
        pair_close(&pr);
    }

    struct op_tls_ctx *strict = server_ctx(NULL, true);
    const char *refused[] = {"unknown.test", NULL};
    for (size_t i = 0; i < 2; i++) {
        struct pair pr;
        assert_int_equal(handshake_on(strict, &pr, TLS1_3_VERSION, refused[i], crt), OP_EPARSE);
        assert_false(op_tls_conn_established(pr.t));
        assert_true(op_tls_conn_failed_sni(pr.t));
        /* the client is told why: unrecognized_name (RFC 6066 §3) */
        ERR_clear_error();
        assert_true(SSL_do_handshake(pr.cl.ssl) <= 0);
        assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_TLSV1_UNRECOGNIZED_NAME);
        pair_close(&pr);
    }
    struct pair pr;
    assert_int_equal(handshake_on(strict, &pr, TLS1_3_VERSION, "a.test", file("a", "crt")), 0);
    assert_true(op_tls_conn_established(pr.t));
    op_tls_ctx_free(strict); /* the connection keeps it alive */
    assert_int_equal(emit(pr.t, "still here", 10), 0);
    pair_close(&pr);
}

/* One name with an RSA and an ECDSA pair: each client gets what it can use. */
static void test_rsa_and_ecdsa_side_by_side(void **state)
{
    (void)state;
    struct pair pr;
    assert_int_equal(handshake_on(sctx, &pr, TLS1_3_VERSION, "b.test", file("b-ec", "crt")), 0);
    assert_int_equal(peer_key_type(&pr.cl), EVP_PKEY_EC);
    pair_close(&pr);

    /* a client that signs with RSA only */
    pr.t = op_tls_conn_new(sctx);
    client_init_for(&pr.cl, TLS1_3_VERSION, NULL, 0, "b.test", file("b-rsa", "crt"));
    assert_int_equal(SSL_set1_sigalgs_list(pr.cl.ssl, "rsa_pss_rsae_sha256:rsa_pkcs1_sha256"), 1);
    struct op_buf plain;
    op_buf_init(&plain, 1 << 16);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    assert_true(op_tls_conn_established(pr.t));
    assert_int_equal(SSL_get_verify_result(pr.cl.ssl), X509_V_OK);
    assert_int_equal(peer_key_type(&pr.cl), EVP_PKEY_RSA);
    op_buf_fini(&plain);
    pair_close(&pr);

    /* TLS 1.2 with RSA key exchange suites only */
    pr.t = op_tls_conn_new(sctx);
    client_init_for(&pr.cl, TLS1_2_VERSION, NULL, 0, "b.test", file("b-rsa", "crt"));
    assert_int_equal(SSL_set_cipher_list(pr.cl.ssl, "ECDHE-RSA-AES128-GCM-SHA256"), 1);
    op_buf_init(&plain, 1 << 16);
    assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
    assert_int_equal(peer_key_type(&pr.cl), EVP_PKEY_RSA);
    op_buf_fini(&plain);
    pair_close(&pr);
}

/* Tickets sealed by one context open on another with the same keys (another
 * generation, or any worker), through one rotation; not after two, nor on
 * a context with other keys. */
static void test_tickets_across_contexts_and_rotation(void **state)
{
    (void)state;
    struct op_tls_tickets *other_keys;
    assert_int_equal(op_tls_tickets_create(&other_keys), 0);
    struct op_tls_ctx *next_gen = server_ctx(tickets, false);
    struct op_tls_ctx *stranger = server_ctx(other_keys, false);
    static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
    for (size_t v = 0; v < 2; v++) {
        SSL_SESSION *sess = NULL;
        /* step: 0 issue on sctx, 1 resume on next_gen, 2 after a rotation,
         * 3 on the stranger, 4 after two more rotations */
        for (int step = 0; step < 5; step++) {
            if (step == 2 || step == 4)
                assert_int_equal(op_tls_tickets_rotate(tickets), 0);
            if (step == 4)
                assert_int_equal(op_tls_tickets_rotate(tickets), 0);
            struct op_tls_ctx *on = step == 0 ? sctx : step == 3 ? stranger : next_gen;
            struct pair pr;
            pr.t = op_tls_conn_new(on);
            client_init_for(&pr.cl, versions[v], NULL, 0, "a.test", file("a", "crt"));
            if (sess != NULL)
                SSL_set_session(pr.cl.ssl, sess);
            struct op_buf plain;
            op_buf_init(&plain, 1 << 16);
            assert_int_equal(pump(&pr.cl, pr.t, &plain), 0);
            char b[16];
            size_t n;
            SSL_read_ex(pr.cl.ssl, b, sizeof(b), &n); /* TLS 1.3 tickets */
            bool want = step == 1 || step == 2;
            if (op_tls_conn_resumed(pr.t) != want)
                fail_msg("TLS %s step %d: resumed %d", v == 0 ? "1.3" : "1.2", step,
                         op_tls_conn_resumed(pr.t));
            if (step == 0) {
                sess = SSL_get1_session(pr.cl.ssl);
                assert_true(SSL_SESSION_has_ticket(sess));
            }
            SSL_shutdown(pr.cl.ssl);
            op_buf_fini(&plain);
            pair_close(&pr);
        }
        SSL_SESSION_free(sess);
    }
    op_tls_ctx_free(next_gen);
    op_tls_ctx_free(stranger);
    op_tls_tickets_destroy(other_keys);
}

static void test_cert_errors_name_the_file(void **state)
{
    (void)state;
    struct op_tls_server_config cfg = {0};
    struct op_tls_ctx *ctx = NULL;
    assert_int_equal(op_tls_ctx_create(&cfg, &ctx), 0);
    char why[512];
    static const struct {
        const char *host, *cert, *key, *want1, *want2;
    } cases[] = {
        {NULL, "/nonexistent.crt", NULL, "certificate /nonexistent.crt", "No such file"},
        {NULL, NULL, "other", "mismatch", "other.key"},
        {NULL, "key", "leaf", "certificate", "leaf.key"}, /* a key is not a certificate */
        {NULL, "expired", "expired", "expired.crt: expired on", " UTC"},
        {NULL, "future", "future", "future.crt: not valid before", " UTC"},
        {"b.test", "b-ec", "/nonexistent.key", "private key /nonexistent.key", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *c = cases[i].cert == NULL               ? crt
                        : cases[i].cert[0] == '/'           ? cases[i].cert
                        : strcmp(cases[i].cert, "key") == 0 ? key
                                                            : file(cases[i].cert, "crt");
        const char *k = cases[i].key == NULL     ? key
                        : cases[i].key[0] == '/' ? cases[i].key
                                                 : file(cases[i].key, "key");
        if (op_tls_ctx_add_cert(ctx, cases[i].host, c, k, why, sizeof(why)) != OP_EINVAL ||
            strstr(why, cases[i].want1) == NULL || strstr(why, cases[i].want2) == NULL)
            fail_msg("case %zu: \"%s\"", i, why);
        assert_int_equal(ERR_peek_error(), 0);
    }
    /* a second pair of one key type for one name */
    assert_int_equal(
        op_tls_ctx_add_cert(ctx, "b.test", file("b-ec", "crt"), file("b-ec", "key"), why, 512), 0);
    assert_int_equal(
        op_tls_ctx_add_cert(ctx, "B.TEST", file("a", "crt"), file("a", "key"), why, sizeof(why)),
        OP_EINVAL);
    assert_non_null(strstr(why, "b.test already has an ECDSA certificate"));
    assert_false(op_tls_ctx_has_default(ctx));
    assert_true(op_tls_ctx_first_expiry(ctx) > (int64_t)time(NULL) + 29 * 86400);
    op_tls_ctx_free(ctx);
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
        cmocka_unit_test(test_sni_selects_certificate),
        cmocka_unit_test(test_rsa_and_ecdsa_side_by_side),
        cmocka_unit_test(test_tickets_across_contexts_and_rotation),
        cmocka_unit_test(test_cert_errors_name_the_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
