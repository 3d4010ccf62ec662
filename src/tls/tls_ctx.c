/* TLS server contexts: the one place the node's TLS policy is set. */
#include "tls_int.h"

#include "outpost/log.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TLS 1.2 suites: ECDHE key exchange (forward secrecy) and AEAD ciphers only.
 * TLS 1.3 suites are all AEAD; named here so the system openssl.cnf cannot
 * change them. Key exchange on elliptic curves only: OpenSSL's default
 * groups include ffdhe8192, a few hundred times the server's work of X25519
 * per handshake, which a client may pick. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:P-256:P-384"

void op_tls__errors(char *out, size_t len)
{
    size_t at = 0;
    unsigned long e;
    out[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        int n = snprintf(out + at, len - at, "%s%s", at > 0 ? "; " : "", one);
        if (n > 0 && (size_t)n < len - at)
            at += (size_t)n;
        else
            at = len - 1; /* full: keep draining, so no stale entry stays behind */
    }
    if (at == 0)
        snprintf(out, len, "unknown");
}

/* RFC 7301 §3.2: the server picks from the client's list; with nothing in
 * common it ends the handshake with no_application_protocol. A client that
 * offers no ALPN gets HTTP/1.1 without it. */
static int select_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char h1[] = "http/1.1";
    (void)s;
    (void)arg;
    unsigned int i = 0;
    while (i < inlen) {
        unsigned int n = in[i];
        if (n == 0 || n > inlen - i - 1)
            return SSL_TLSEXT_ERR_ALERT_FATAL; /* a malformed list */
        if (n == sizeof(h1) - 1 && memcmp(in + i + 1, h1, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int fail_with(char *why, size_t whylen, const char *what, const char *file)
{
    char reason[512];
    op_tls__errors(reason, sizeof(reason));
    snprintf(why, whylen, "%s %s: %s", what, file, reason);
    return OP_EINVAL;
}

int op_tls_server_ctx_new(const char *cert_file, const char *key_file, struct op_tls_ctx **out,
                          char *why, size_t whylen)
{
    struct op_tls_ctx *ctx = NULL;
    SSL_CTX *ssl = NULL;
    int rc = OP_ENOMEM;
    ERR_clear_error();
    snprintf(why, whylen, "out of memory");
    ctx = calloc(1, sizeof(*ctx));
    ssl = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || ssl == NULL)
        goto fail;
    rc = OP_EINVAL;
    if (SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ssl, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ssl, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set_ciphersuites(ssl, TLS13_SUITES) != 1 ||
        SSL_CTX_set1_groups_list(ssl, GROUPS) != 1) {
        rc = fail_with(why, whylen, "TLS settings", "(built in)");
        goto fail;
    }
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE);
    SSL_CTX_set_max_early_data(ssl, 0);
    /* an idle keep-alive connection holds no record buffers (and no grown
     * memory BIOs: tls_conn.c replaces them) */
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_msg_callback(ssl, op_tls__msg_cb);
    SSL_CTX_set_alpn_select_cb(ssl, select_alpn, NULL);
    /* sessions resume only where this matches: every context of the node */
    static const unsigned char sid_ctx[] = "outpost";
    SSL_CTX_set_session_id_context(ssl, sid_ctx, sizeof(sid_ctx) - 1);
    if (SSL_CTX_use_certificate_chain_file(ssl, cert_file) != 1) {
        rc = fail_with(why, whylen, "certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, key_file, SSL_FILETYPE_PEM) != 1) {
        rc = fail_with(why, whylen, "private key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ssl) != 1) {
        rc = fail_with(why, whylen, "private key does not match the certificate", key_file);
        goto fail;
    }
    ctx->ssl = ssl;
    *out = ctx;
    why[0] = '\0';
    return 0;
fail:
    SSL_CTX_free(ssl);
    free(ctx);
    return rc;
}

void op_tls_ctx_free(struct op_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}
