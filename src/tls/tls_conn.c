/* The memory-BIO filter under one connection: ciphertext in, plaintext out,
 * and back. OpenSSL reads from <rbio> what the connection fed and writes
 * records to <wbio>, which every call empties into the caller's wire buffer. */
#include "tls_int.h"

#include "outpost/log.h"

#include <limits.h>
#include <openssl/err.h>
#include <stdlib.h>

#define PLAIN_STEP 16384 /* one TLS record's worth of plaintext at a time */

struct op_tls_conn {
    unsigned magic;
    SSL *ssl;
    BIO *rbio; /* owned by ssl */
    BIO *wbio; /* owned by ssl */
    bool established;
    bool failed;
    bool held; /* the last input stopped because <plain> was full */
};

#define OP_TLS_CONN_MAGIC 0x7415c0a1u

struct op_tls_conn *op_tls_conn_new(struct op_tls_ctx *ctx)
{
    struct op_tls_conn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    /* an empty input BIO means "more to come", not end of file */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    t->magic = OP_TLS_CONN_MAGIC;
    return t;
}

void op_tls_conn_free(struct op_tls_conn *t)
{
    if (t == NULL)
        return;
    OP_CHECK_OBJ(t, OP_TLS_CONN_MAGIC);
    SSL_free(t->ssl); /* frees both BIOs */
    t->magic = 0;
    free(t);
}

/* Move every record OpenSSL wrote into <wire>. */
static int drain_wire(struct op_tls_conn *t, struct op_buf *wire)
{
    size_t pending;
    while ((pending = BIO_ctrl_pending(t->wbio)) > 0) {
        char *space;
        if (op_buf_reserve(wire, pending, &space) != 0)
            return OP_ENOMEM;
        int n = BIO_read(t->wbio, space, (int)pending);
        if (n <= 0)
            return OP_ENOMEM;
        op_buf_commit(wire, (size_t)n);
    }
    return 0;
}

/* The verdict on a failed SSL_* call: 0 to wait for more input, else an
 * error (and the connection is done). */
static int after_error(struct op_tls_conn *t, int ret, const char *what)
{
    int e = SSL_get_error(t->ssl, ret);
    if (e == SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return OP_ECLOSED;
    }
    char reason[512];
    op_tls__errors(reason, sizeof(reason));
    op_log_debug("tls", "%s failed: %s", what, reason);
    t->failed = true;
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
    if (len > 0 && BIO_write(t->rbio, p, (int)len) != (int)len)
        return OP_ENOMEM;
    int rc = 0;
    if (!t->established) {
        int ret = SSL_do_handshake(t->ssl);
        if (ret == 1)
            t->established = true;
        else
            rc = after_error(t, ret, "handshake");
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
    t->held = rc == 0 && plain->len >= plain->max;
    int wrc = drain_wire(t, wire);
    return rc != 0 ? rc : wrc;
}

int op_tls_conn_output(struct op_tls_conn *t, const char *p, size_t len, struct op_buf *wire)
{
    OP_CHECK_OBJ(t, OP_TLS_CONN_MAGIC);
    if (!t->established || t->failed)
        return OP_EINVAL;
    size_t done = 0;
    /* a memory BIO takes everything, so SSL_write never stops part way */
    if (len > 0 && SSL_write_ex(t->ssl, p, len, &done) != 1) {
        int rc = after_error(t, 0, "write");
        return rc != 0 ? rc : OP_EPARSE;
    }
    return drain_wire(t, wire);
}

void op_tls_conn_shutdown(struct op_tls_conn *t, struct op_buf *wire)
{
    OP_CHECK_OBJ(t, OP_TLS_CONN_MAGIC);
    if (t->established && !t->failed) {
        SSL_shutdown(t->ssl);
        ERR_clear_error();
        drain_wire(t, wire);
    }
}

bool op_tls_conn_established(const struct op_tls_conn *t)
{
    return t->established;
}

bool op_tls_conn_has_pending(const struct op_tls_conn *t)
{
    /* a partial record alone is not pending: it waits for the peer */
    return t->held && (SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0);
}

const char *op_tls_conn_version(const struct op_tls_conn *t)
{
    return t->established ? SSL_get_version(t->ssl) : "";
}

const char *op_tls_conn_sni(const struct op_tls_conn *t)
{
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

bool op_tls_conn_resumed(const struct op_tls_conn *t)
{
    return SSL_session_reused(t->ssl) == 1;
}
