/* TLS server contexts: the one place the node's TLS policy is set. */
#include "tls_int.h"

#include "outpost/log.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* The policy, on each SSL_CTX of a context: after SNI switches a
 * connection to a host's SSL_CTX, that one's ALPN and verify settings
 * apply, while tickets and the session cache stay the first one's. */
static SSL_CTX *policy_ctx_new(struct op_tls_ctx *ctx)
{
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (ssl == NULL)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ssl, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ssl, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set_ciphersuites(ssl, TLS13_SUITES) != 1 ||
        SSL_CTX_set1_groups_list(ssl, GROUPS) != 1) {
        char reason[512];
        op_tls__errors(reason, sizeof(reason));
        op_log_error("tls", "the built-in TLS settings are refused: %s", reason);
        SSL_CTX_free(ssl);
        return NULL;
    }
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE);
    SSL_CTX_set_max_early_data(ssl, 0);
    /* an idle keep-alive connection holds no record buffers (its BIO keeps
     * only a stash of unread input, given back when empty: tls_bio.c) */
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ssl, select_alpn, NULL);
    /* sessions resume only where this matches: every context of the node */
    static const unsigned char sid_ctx[] = "outpost";
    SSL_CTX_set_session_id_context(ssl, sid_ctx, sizeof(sid_ctx) - 1);
    if (ctx->cfg.tickets != NULL) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ssl, op_tls__ticket_cb);
        SSL_CTX_set_num_tickets(ssl, 1); /* a client resumes with one */
    } else {
        SSL_CTX_set_options(ssl, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ssl, 0);
    }
    if (ctx->cfg.ticket_lifetime_s > 0)
        SSL_CTX_set_timeout(ssl, (long)ctx->cfg.ticket_lifetime_s);
    SSL_CTX_set_app_data(ssl, ctx);
    return ssl;
}

static int host_cmp(const void *a, const void *b)
{
    return strcmp(((const struct op_tls_host *)a)->name, ((const struct op_tls_host *)b)->name);
}

/* <name> lower-cased into out[], the form hosts are kept in; false when
 * it does not fit. */
static bool name_lower(const char *name, char out[256])
{
    size_t n = strlen(name);
    if (n >= 256)
        return false;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    return true;
}

/* The host entry for <lower> (lower-cased); NULL for none. */
static struct op_tls_host *find_host(const struct op_tls_ctx *ctx, const char *lower)
{
    if (ctx->nhosts == 0)
        return NULL;
    struct op_tls_host key = {.name = (char *)lower};
    return bsearch(&key, ctx->hosts, ctx->nhosts, sizeof(*ctx->hosts), host_cmp);
}

/* SNI (RFC 6066 §3): a name we hold a certificate for moves the connection
 * to that certificate's SSL_CTX; any other name, or none, keeps the
 * default's, or fails with unrecognized_name when there is no default.
 * OpenSSL calls this whether or not the client sent the extension. */
static int on_servername(SSL *s, int *alert, void *arg)
{
    struct op_tls_ctx *ctx = arg;
    const char *sni = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    char lower[256];
    struct op_tls_host *h = sni != NULL && name_lower(sni, lower) ? find_host(ctx, lower) : NULL;
    if (h != NULL) {
        if (SSL_set_SSL_CTX(s, h->ssl) == NULL) {
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        op_tls__conn_sni(s, h->name, false);
        return SSL_TLSEXT_ERR_OK;
    }
    if (ctx->has_default && !ctx->cfg.reject_unknown_sni) {
        op_tls__conn_sni(s, NULL, false);
        return SSL_TLSEXT_ERR_OK;
    }
    op_tls__conn_sni(s, NULL, true);
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int op_tls_ctx_create(const struct op_tls_server_config *cfg, struct op_tls_ctx **out)
{
    struct op_tls_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return OP_ENOMEM;
    ERR_clear_error();
    atomic_init(&ctx->refs, 1);
    ctx->cfg = *cfg;
    ctx->base.ssl = policy_ctx_new(ctx);
    if (ctx->base.ssl == NULL) {
        free(ctx);
        ERR_clear_error();
        return OP_ENOMEM;
    }
    SSL_CTX_set_tlsext_servername_callback(ctx->base.ssl, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx->base.ssl, ctx);
    /* the session cache and the tickets of a connection are its first
     * SSL_CTX's, whichever certificate SNI picks */
    if (cfg->session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx->base.ssl, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx->base.ssl, cfg->session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx->base.ssl, SSL_SESS_CACHE_OFF);
    }
    *out = ctx;
    return 0;
}

/* "2026-12-03 10:00:00 UTC" and the Unix time of an ASN.1 time. */
static int64_t asn1_time(const ASN1_TIME *t, char *text, size_t len)
{
    struct tm tm;
    snprintf(text, len, "?");
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    strftime(text, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return (int64_t)timegm(&tm);
}

/* Keys should be readable by their owner alone (and root, which reads
 * anything), the owner being root or the user the node runs as. */
static void check_key_file(const char *key_file)
{
    struct stat st;
    if (stat(key_file, &st) != 0)
        return; /* loading it reports why */
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        op_log_warn("tls",
                    "private key %s can be read by others than its owner (mode %04o): "
                    "chmod 600 it",
                    key_file, (unsigned)(st.st_mode & 07777));
    if (st.st_uid != 0 && st.st_uid != geteuid())
        op_log_warn("tls", "private key %s belongs to uid %u, neither root nor this node's user",
                    key_file, (unsigned)st.st_uid);
}

/* The leaf of <cert_file>: its key type and validity now. */
static int read_leaf(const char *cert_file, bool *rsa, int64_t *not_after, char *why, size_t whylen)
{
    FILE *f = fopen(cert_file, "r");
    if (f == NULL) {
        snprintf(why, whylen, "certificate %s: cannot open: %s", cert_file, strerror(errno));
        return OP_EINVAL;
    }
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        return fail_with(why, whylen, "certificate", cert_file);
    int rc = 0;
    char when[64];
    int type = EVP_PKEY_get_base_id(X509_get0_pubkey(x));
    if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC) {
        snprintf(why, whylen, "certificate %s: only RSA and ECDSA keys are supported", cert_file);
        rc = OP_EINVAL;
    } else if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        asn1_time(X509_get0_notAfter(x), when, sizeof(when));
        snprintf(why, whylen, "certificate %s: expired on %s", cert_file, when);
        rc = OP_EINVAL;
    } else if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        asn1_time(X509_get0_notBefore(x), when, sizeof(when));
        snprintf(why, whylen, "certificate %s: not valid before %s", cert_file, when);
        rc = OP_EINVAL;
    }
    *rsa = type == EVP_PKEY_RSA;
    *not_after = asn1_time(X509_get0_notAfter(x), when, sizeof(when));
    X509_free(x);
    ERR_clear_error();
    return rc;
}

/* The host entry for <name> (NULL: the default), made when new. */
static struct op_tls_host *host_for(struct op_tls_ctx *ctx, const char *name, char *why,
                                    size_t whylen)
{
    if (name == NULL)
        return &ctx->base;
    char lower[256];
    if (name[0] == '\0' || !name_lower(name, lower)) {
        snprintf(why, whylen, "host name \"%s\": expected 1 to 255 characters", name);
        return NULL;
    }
    struct op_tls_host *h = find_host(ctx, lower);
    if (h != NULL)
        return h;
    if (ctx->nhosts == OP_TLS_MAX_HOSTS) {
        snprintf(why, whylen, "at most %d host names with certificates", OP_TLS_MAX_HOSTS);
        return NULL;
    }
    struct op_tls_host *grown = realloc(ctx->hosts, (ctx->nhosts + 1) * sizeof(*grown));
    if (grown == NULL)
        goto nomem;
    ctx->hosts = grown;
    struct op_tls_host nh = {.name = strdup(lower), .ssl = policy_ctx_new(ctx)};
    if (nh.name == NULL || nh.ssl == NULL) {
        free(nh.name);
        SSL_CTX_free(nh.ssl);
        goto nomem;
    }
    size_t at = 0;
    while (at < ctx->nhosts && strcmp(ctx->hosts[at].name, lower) < 0)
        at++;
    memmove(&ctx->hosts[at + 1], &ctx->hosts[at], (ctx->nhosts - at) * sizeof(*ctx->hosts));
    ctx->hosts[at] = nh;
    ctx->nhosts++;
    return &ctx->hosts[at];
nomem:
    snprintf(why, whylen, "out of memory");
    return NULL;
}

int op_tls_ctx_add_cert(struct op_tls_ctx *ctx, const char *host, const char *cert_file,
                        const char *key_file, char *why, size_t whylen)
{
    ERR_clear_error();
    bool rsa = false;
    int64_t not_after = 0;
    int rc = read_leaf(cert_file, &rsa, &not_after, why, whylen);
    if (rc != 0)
        return rc;
    struct op_tls_host *h = host_for(ctx, host, why, whylen);
    if (h == NULL)
        return OP_EINVAL;
    if (rsa ? h->has_rsa : h->has_ecdsa) {
        snprintf(why, whylen,
                 "certificate %s: %s already has an %s certificate (one RSA and one "
                 "ECDSA pair per name)",
                 cert_file, h->name ? h->name : "the default", rsa ? "RSA" : "ECDSA");
        return OP_EINVAL;
    }
    check_key_file(key_file);
    /* each call fills the slot of its certificate's key type */
    if (SSL_CTX_use_certificate_chain_file(h->ssl, cert_file) != 1)
        return fail_with(why, whylen, "certificate", cert_file);
    if (SSL_CTX_use_PrivateKey_file(h->ssl, key_file, SSL_FILETYPE_PEM) != 1)
        return fail_with(why, whylen, "private key", key_file);
    if (SSL_CTX_check_private_key(h->ssl) != 1)
        return fail_with(why, whylen, "private key does not match the certificate", key_file);
    if (rsa)
        h->has_rsa = true;
    else
        h->has_ecdsa = true;
    if (host == NULL)
        ctx->has_default = true;
    if (ctx->first_expiry == 0 || not_after < ctx->first_expiry)
        ctx->first_expiry = not_after;
    why[0] = '\0';
    return 0;
}

bool op_tls_ctx_has_default(const struct op_tls_ctx *ctx)
{
    return ctx->has_default;
}

int64_t op_tls_ctx_first_expiry(const struct op_tls_ctx *ctx)
{
    return ctx->first_expiry;
}

void op_tls__ctx_ref(struct op_tls_ctx *ctx)
{
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

void op_tls__ctx_unref(struct op_tls_ctx *ctx)
{
    if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < ctx->nhosts; i++) {
        SSL_CTX_free(ctx->hosts[i].ssl);
        free(ctx->hosts[i].name);
    }
    free(ctx->hosts);
    SSL_CTX_free(ctx->base.ssl);
    free(ctx);
}

void op_tls_ctx_free(struct op_tls_ctx *ctx)
{
    if (ctx != NULL)
        op_tls__ctx_unref(ctx);
}
