/* Inside the tls module: the context type and OpenSSL's error queue. */
#ifndef OUTPOST_TLS_INT_H
#define OUTPOST_TLS_INT_H

#include "outpost/tls.h"

#include <openssl/ssl.h>

struct op_tls_ctx {
    SSL_CTX *ssl;
};

/* Drain OpenSSL's error queue (every entry, so none is blamed on a later
 * call) into out[] as "reason; reason"; "unknown" when it was empty. */
void op_tls__errors(char *out, size_t len);

/* The context's message callback: fails a connection that renegotiates. */
void op_tls__msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                    SSL *ssl, void *arg);

#endif
