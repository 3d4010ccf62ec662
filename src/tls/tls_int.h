/* Inside the tls module: the context type and OpenSSL's error queue. */
#ifndef OUTPOST_TLS_INT_H
#define OUTPOST_TLS_INT_H

#include "outpost/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>

#define OP_TLS_MAX_HOSTS 4096 /* SNI names one context answers */

/* Empty the thread's OpenSSL error queue before an SSL_* call whose failure
 * SSL_get_error reads, so nothing another connection left there counts
 * against this one. Every failure path clears it, so it is nearly always
 * empty: a peek then costs far less than ERR_clear_error, which walks and
 * frees every slot, twice per request on the hit path. */
static inline void op_tls__errors_reset(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* The certificates of one name: one SSL_CTX with the node's policy holding
 * up to one RSA and one ECDSA pair. */
struct op_tls_host {
    char *name;   /* owned; NULL for the default */
    SSL_CTX *ssl; /* owned */
    bool has_rsa, has_ecdsa;
};

struct op_tls_ctx {
    atomic_uint refs; /* the creator's and one per connection */
    struct op_tls_server_config cfg;
    struct op_tls_host base; /* every connection starts here: the default's */
    bool has_default;
    struct op_tls_host *hosts; /* owned: nhosts, by name */
    size_t nhosts;
    int64_t first_expiry;
};

/* What the connection's BIO (tls_bio.c) reads from and writes to: set for
 * the length of one input, output or shutdown call. */
struct op_tls_io {
    const char *in; /* borrowed: the ciphertext being fed, not read yet */
    size_t in_len;
    struct op_buf stash; /* fed bytes OpenSSL did not read in their call */
    struct op_buf *wire; /* borrowed: the caller's, where records go */
    int wire_rc;         /* the first failure to append to it */
};

struct op_tls_conn {
    unsigned magic;
    struct op_tls_ctx *ctx; /* ref */
    SSL *ssl;
    struct op_tls_io io;
    bool established;
    bool failed;
    bool held;                       /* the last input stopped because <plain> was full */
    bool reneg;                      /* the peer began a handshake after the first (TLS 1.2) */
    bool sni_failed;                 /* SNI named no host and there is no default */
    const char *host;                /* borrowed from ctx: the host SNI chose; NULL default */
    struct op_tls_session **session; /* borrowed: a client's slot for new sessions */
    int fail;                        /* client: why the handshake failed (op_tls_conn_failure) */
    char fail_why[160];
};

#define OP_TLS_CONN_MAGIC 0x7415c0a1u

/* A connection on <ctx> (holding a reference) with its BIO, in neither
 * accept nor connect state yet; NULL when out of memory. */
struct op_tls_conn *op_tls__conn_new(struct op_tls_ctx *ctx);

/* tls_bio.c: the BIO of a connection over <io>; NULL when out of memory. */
BIO *op_tls__bio_new(struct op_tls_io *io);
/* One call's ciphertext <p, len> (may be empty) and its wire buffer. */
void op_tls__bio_begin(struct op_tls_io *io, const char *p, size_t len, struct op_buf *wire);
/* The call is over: what OpenSSL did not read goes to the stash. 0, or the
 * first failure to write a record (OP_ETOOBIG, OP_ENOMEM: fatal), or
 * OP_ETOOBIG when the stash is full. */
int op_tls__bio_end(struct op_tls_io *io);
/* Forget every byte fed and not read (a renegotiation attempt). */
void op_tls__bio_drop_input(struct op_tls_io *io);
void op_tls__bio_fini(struct op_tls_io *io);

/* A connection's reference. */
void op_tls__ctx_ref(struct op_tls_ctx *ctx);
void op_tls__ctx_unref(struct op_tls_ctx *ctx);

/* Drain OpenSSL's error queue (every entry, so none is blamed on a later
 * call) into out[] as "reason; reason"; "unknown" when it was empty. */
void op_tls__errors(char *out, size_t len);

/* The message callback of an established TLS 1.2 server connection: fails
 * it when it renegotiates. */
void op_tls__msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                    SSL *ssl, void *arg);

/* SNI chose <host>'s certificate (NULL: the default), or none (<failed>). */
void op_tls__conn_sni(SSL *ssl, const char *host, bool failed);

/* The ticket key callback of every context (SSL_CTX_set_tlsext_ticket_key_evp_cb). */
int op_tls__ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                      EVP_MAC_CTX *hctx, int enc);

#endif
