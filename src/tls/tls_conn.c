/* The filter under one connection: ciphertext in, plaintext out, and back.
 * OpenSSL reads what the connection feeds and writes its records into the
 * caller's wire buffer through the connection's own BIO (tls_bio.c). */
#include "tls_int.h"

#include "outpost/log.h"

#include <limits.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>

#define PLAIN_STEP 16384 /* one TLS record's worth of plaintext at a time */

struct op_tls_conn *op_tls__conn_new(struct op_tls_ctx *ctx)
{
    struct op_tls_conn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx->base.ssl);
    BIO *bio = t->ssl != NULL ? op_tls__bio_new(&t->io) : NULL;
    if (bio == NULL) {
        op_tls__bio_fini(&t->io);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(t->ssl, bio, bio); /* one reference, for both directions */
    SSL_set_app_data(t->ssl, t);
    op_tls__ctx_ref(ctx);
    t->ctx = ctx;
    t->magic = OP_TLS_CONN_MAGIC;
    return t;
}

struct op_tls_conn *op_tls_conn_new(struct op_tls_ctx *ctx)
{
    struct op_tls_conn *t = op_tls__conn_new(ctx);
    if (t != NULL)
        SSL_set_accept_state(t->ssl);
    return t;
}

void op_tls_conn_free(struct op_tls_conn *t)
{
    if (t == NULL)
        return;
    OP_CHECK_OBJ(t, OP_TLS_CONN_MAGIC);
    /* OpenSSL marks the session of a connection freed without a shutdown as
     * not resumable; a client's healthy one (pooled connections simply end)
     * stays good for the next connection to the origin */
    if (!SSL_is_server(t->ssl) && t->established && !t->failed)
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(t->ssl); /* frees the BIO */
    op_tls__bio_fini(&t->io);
    op_tls__ctx_unref(t->ctx);
    t->magic = 0;
    free(t);
}

/* Called by OpenSSL for each record header read, on the server side of a
 * TLS 1.2 connection once its handshake is done (set then, so no other
 * connection pays a call per record). In TLS 1.2 a client sends a
 * handshake record after the handshake only to renegotiate.
 * SSL_OP_NO_RENEGOTIATION answers each such ClientHello with a warning
 * alert and reads on, so one read full of them made us send an alert each:
 * instead the input still buffered is dropped, the read stops here and the
 * connection fails. TLS 1.3 has no renegotiation (its post-handshake
 * messages are KeyUpdate and tickets). */
void op_tls__msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                    SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    struct op_tls_conn *t = SSL_get_app_data(ssl);
    if (t == NULL || write_p || content_type != SSL3_RT_HEADER || len < 1 || !t->established ||
        SSL_version(ssl) >= TLS1_3_VERSION)
        return;
    if (((const unsigned char *)buf)[0] == SSL3_RT_HANDSHAKE) {
        t->reneg = true;
        op_tls__bio_drop_input(&t->io);
    }
}

void op_tls__conn_sni(SSL *ssl, const char *host, bool failed)
{
    struct op_tls_conn *t = SSL_get_app_data(ssl);
    if (t == NULL)
        return;
    t->host = host;
    t->sni_failed = failed;
}

/* The verdict on a failed SSL_* call: 0 to wait for more input, else an
 * error (and the connection is done). */
static int after_error(struct op_tls_conn *t, int ret, const char *what)
{
    int e = SSL_get_error(t->ssl, ret);
    if (e == SSL_ERROR_WANT_READ) {
        op_tls__errors_reset();
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        if (!t->established && !SSL_is_server(t->ssl) && t->fail == 0) {
            t->fail = OP_ETLS; /* an origin's close_notify before its handshake ended */
            snprintf(t->fail_why, sizeof(t->fail_why), "closed during the handshake");
        }
        return OP_ECLOSED;
    }
    /* a client's handshake: what the origin did wrong, said once */
    unsigned long first = ERR_peek_error();
    int why = ERR_GET_LIB(first) == ERR_LIB_SSL ? ERR_GET_REASON(first) : 0;
    char reason[512];
    op_tls__errors(reason, sizeof(reason));
    op_log_debug("tls", "%s failed: %s", what, reason);
    t->failed = true;
    if (!t->established && !SSL_is_server(t->ssl) && t->fail == 0) {
        long v = SSL_get_verify_result(t->ssl);
        if (why == SSL_R_CERTIFICATE_VERIFY_FAILED || v != X509_V_OK) {
            t->fail = OP_ETLSVERIFY;
            snprintf(t->fail_why, sizeof(t->fail_why), "%.150s", X509_verify_cert_error_string(v));
        } else if (why == SSL_R_WRONG_VERSION_NUMBER || why == SSL_R_PACKET_LENGTH_TOO_LONG ||
                   why == SSL_R_HTTP_REQUEST || why == SSL_R_RECORD_LENGTH_MISMATCH) {
            t->fail = OP_ETLSPLAIN;
            snprintf(t->fail_why, sizeof(t->fail_why), "the origin answered in plaintext");
        } else {
            const char *text = why != 0 ? ERR_reason_error_string(first) : NULL;
            t->fail = OP_ETLS;
            snprintf(t->fail_why, sizeof(t->fail_why), "%.150s", text != NULL ? text : reason);
        }
    }
    return OP_EPARSE;
}

int op_tls_conn_input(struct op_tls_conn *t, const char *p, size_t len, struct op_buf *plain,
                      struct op_buf *wire)
{
    OP_CHECK_OBJ(t, OP_TLS_CONN_MAGIC);
    if (t->failed)
        return OP_EPARSE;
    if (len > INT_MAX)
        return OP_EINVAL;
    op_tls__errors_reset();
    op_tls__bio_begin(&t->io, p, len, wire);
    int rc = 0;
    if (!t->established) {
        int ret = SSL_do_handshake(t->ssl);
        if (ret == 1) {
            t->established = true;
            if (SSL_is_server(t->ssl) && SSL_version(t->ssl) < TLS1_3_VERSION)
                SSL_set_msg_callback(t->ssl, op_tls__msg_cb);
        } else {
            rc = after_error(t, ret, "handshake");
        }
    }
    while (rc == 0 && t->established && plain->len < plain->max) {
        size_t room = plain->max - plain->len, got = 0;
        char *space;
        if (room > PLAIN_STEP)
            room = PLAIN_STEP;
        if (op_buf_reserve(plain, room, &space) != 0) {
            rc = OP_ENOMEM;
            break;
        }
        int ret = SSL_read_ex(t->ssl, space, room, &got);
        if (ret != 1) {
            rc = after_error(t, ret, "read");
            if (rc == 0)
                break; /* every whole record is read */
        } else {
            op_buf_commit(plain, got);
        }
    }
    if (t->reneg && !t->failed) {
        op_log_debug("tls", "renegotiation refused: closing");
        t->failed = true;
        rc = OP_EPARSE;
    }
    t->held = rc == 0 && plain->len >= plain->max;
    int wrc = op_tls__bio_end(&t->io);
    if (wrc != 0)
        t->failed = true;
    return rc != 0 ? rc : wrc;
}

int op_tls_conn_output(struct op_tls_conn *t, const char *p, size_t len, struct op_buf *wire)
{
    OP_CHECK_OBJ(t, OP_TLS_CONN_MAGIC);
    if (!t->established || t->failed)
        return OP_EINVAL;
    op_tls__errors_reset();
    size_t done = 0;
    op_tls__bio_begin(&t->io, NULL, 0, wire);
    /* The BIO takes everything, so SSL_write stops only when the peer left
     * a handshake message half sent (a TLS 1.3 KeyUpdate header without its
     * body), or a record did not fit <wire>: either ends the connection. */
    int rc = 0;
    if (len > 0 && SSL_write_ex(t->ssl, p, len, &done) != 1) {
        rc = after_error(t, 0, "write");
        t->failed = true;
        if (rc == 0)
            rc = OP_EPARSE;
    }
    int wrc = op_tls__bio_end(&t->io);
    if (wrc != 0) {
        t->failed = true;
        rc = wrc;
    }
    return rc;
}

void op_tls_conn_shutdown(struct op_tls_conn *t, struct op_buf *wire)
{
    OP_CHECK_OBJ(t, OP_TLS_CONN_MAGIC);
    if (t->established && !t->failed) {
        ERR_clear_error();
        op_tls__bio_begin(&t->io, NULL, 0, wire);
        SSL_shutdown(t->ssl);
        ERR_clear_error();
        op_tls__bio_end(&t->io);
    }
}

bool op_tls_conn_established(const struct op_tls_conn *t)
{
    return t->established;
}

bool op_tls_conn_has_pending(const struct op_tls_conn *t)
{
    /* only after a full <plain>; a partial record then also counts, which
     * costs the caller one empty call */
    return t->held && (SSL_pending(t->ssl) > 0 || t->io.stash.len > 0);
}

const char *op_tls_conn_version(const struct op_tls_conn *t)
{
    return t->established ? SSL_get_version(t->ssl) : "";
}

const char *op_tls_conn_sni(const struct op_tls_conn *t)
{
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *op_tls_conn_host(const struct op_tls_conn *t)
{
    return t->host;
}

bool op_tls_conn_failed_sni(const struct op_tls_conn *t)
{
    return t->sni_failed;
}

int op_tls_conn_failure(const struct op_tls_conn *t, char *why, size_t whylen)
{
    if (whylen > 0)
        snprintf(why, whylen, "%s", t->fail_why);
    return t->fail;
}

bool op_tls_conn_resumed(const struct op_tls_conn *t)
{
    return SSL_session_reused(t->ssl) == 1;
}
