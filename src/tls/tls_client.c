/* The client side: contexts for https origins, connections to one name, and
 * the session each origin's connections resume. */
#include "tls_int.h"

#include "outpost/log.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct op_tls_session {
    SSL_SESSION *ssl; /* owned */
};

void op_tls_session_free(struct op_tls_session *s)
{
    if (s == NULL)
        return;
    SSL_SESSION_free(s->ssl);
    free(s);
}

/* OpenSSL has a session to keep (after the handshake in TLS 1.2, with each
 * NewSessionTicket in TLS 1.3): the connection's slot takes it. Returning 1
 * keeps OpenSSL's reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct op_tls_conn *t = SSL_get_app_data(ssl);
    if (t == NULL || t->session == NULL)
        return 0;
    struct op_tls_session *s = *t->session;
    if (s == NULL && (s = calloc(1, sizeof(*s))) == NULL)
        return 0;
    SSL_SESSION_free(s->ssl);
    s->ssl = sess;
    *t->session = s;
    return 1;
}

int op_tls_client_ctx_create(const struct op_tls_client_config *cfg, struct op_tls_ctx **out,
                             char *why, size_t whylen)
{
    ERR_clear_error();
    struct op_tls_ctx *ctx = calloc(1, sizeof(*ctx));
    SSL_CTX *ssl = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || ssl == NULL) {
        free(ctx);
        SSL_CTX_free(ssl);
        ERR_clear_error();
        snprintf(why, whylen, "out of memory");
        return OP_ENOMEM;
    }
    static const unsigned char h1[] = "\x08http/1.1";
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_protos(ssl, h1, sizeof(h1) - 1);
    /* sessions live in the origin's slot, not in a cache shared by threads */
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ssl, on_new_session);
    int rc = 0;
    if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0') {
        if (SSL_CTX_load_verify_locations(ssl, cfg->ca_file, NULL) != 1) {
            char reason[512];
            op_tls__errors(reason, sizeof(reason));
            snprintf(why, whylen, "origin_ca %s: %s", cfg->ca_file, reason);
            rc = OP_EINVAL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ssl) != 1) {
        char reason[512];
        op_tls__errors(reason, sizeof(reason));
        snprintf(why, whylen, "the system CA bundle: %s", reason);
        rc = OP_EINVAL;
    }
    if (rc != 0) {
        SSL_CTX_free(ssl);
        free(ctx);
        return rc;
    }
    SSL_CTX_set_verify(ssl, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_app_data(ssl, ctx);
    atomic_init(&ctx->refs, 1);
    ctx->base.ssl = ssl;
    *out = ctx;
    why[0] = '\0';
    return 0;
}

static bool is_ip(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

struct op_tls_conn *op_tls_conn_client_new(struct op_tls_ctx *ctx, const char *name,
                                           struct op_tls_session **session)
{
    struct op_tls_conn *t = op_tls__conn_new(ctx);
    if (t == NULL)
        return NULL;
    t->session = session;
    SSL_set_connect_state(t->ssl);
    bool ok = true;
    if (is_ip(name)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(t->ssl, name) == 1 && SSL_set1_host(t->ssl, name) == 1;
        /* the name itself, never a wildcard standing for several labels */
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    if (ok && session != NULL && *session != NULL && (*session)->ssl != NULL)
        ok = SSL_set_session(t->ssl, (*session)->ssl) == 1;
    if (!ok) {
        ERR_clear_error();
        op_tls_conn_free(t);
        return NULL;
    }
    return t;
}
