/* include/outpost/tls.h: TLS termination with OpenSSL, as a filter under a
 * connection.
 *
 * The socket stays libuv's: ciphertext read from it is fed in, plaintext
 * comes out into the connection's input buffer, plaintext to send is turned
 * into ciphertext for the connection to write. OpenSSL only ever sees memory
 * BIOs, so a handshake never blocks a loop and runs on the worker that owns
 * the connection.
 *
 * A context (one SSL_CTX) is built once on the main thread and shared
 * read-only by every worker, so a session ticket issued on one worker
 * resumes on another. Its settings are the only place the node's TLS policy
 * lives: TLS 1.2 and 1.3 only, AEAD suites with forward secrecy, no
 * renegotiation, no compression, no 0-RTT, ALPN http/1.1.
 */
#ifndef OUTPOST_TLS_H
#define OUTPOST_TLS_H

#include "outpost/core.h"

#include <stdbool.h>
#include <stddef.h>

struct op_tls_ctx;
struct op_tls_conn;

/* A server context from a PEM certificate chain (leaf first) and its private
 * key. 0, or OP_EINVAL with the file and OpenSSL's reason in why[]
 * (unreadable file, not PEM, key that does not match the certificate). */
int op_tls_server_ctx_new(const char *cert_file, const char *key_file, struct op_tls_ctx **out,
                          char *why, size_t whylen);
void op_tls_ctx_free(struct op_tls_ctx *ctx);

/* One server-side connection on <ctx>; NULL when out of memory. */
struct op_tls_conn *op_tls_conn_new(struct op_tls_ctx *ctx);
void op_tls_conn_free(struct op_tls_conn *t);

/* Ciphertext from the peer: p[0..len) is taken whole. Runs the handshake,
 * then appends the plaintext it yields to <plain> until <plain> is full
 * (the rest stays inside and comes out on the next call, with len 0).
 * Records to send (handshake, alerts) go to <wire> in every case.
 * Returns 0; OP_ECLOSED once the peer sent close_notify (<plain> may hold
 * what came before it); OP_EPARSE on a protocol error, a TLS 1.2
 * renegotiation included (fatal: any alert for the peer is in <wire>, the
 * reason logged once); OP_ETOOBIG or OP_ENOMEM when <wire> cannot take a
 * record (fatal). The caller bounds what it feeds: one socket read at a
 * time, and none while op_tls_conn_has_pending(). */
int op_tls_conn_input(struct op_tls_conn *t, const char *p, size_t len, struct op_buf *plain,
                      struct op_buf *wire);

/* Plaintext to the peer, encrypted into <wire>. Only once established.
 * 0, OP_EINVAL before the handshake finished or after a failure; fatal:
 * OP_EPARSE, OP_ETOOBIG or OP_ENOMEM (<wire> full). */
int op_tls_conn_output(struct op_tls_conn *t, const char *p, size_t len, struct op_buf *wire);

/* A close_notify alert into <wire> (the connection is done after it). */
void op_tls_conn_shutdown(struct op_tls_conn *t, struct op_buf *wire);

/* True once the handshake finished. */
bool op_tls_conn_established(const struct op_tls_conn *t);
/* The last input stopped at a full <plain> with more inside: call again
 * (len 0) once <plain> has room. */
bool op_tls_conn_has_pending(const struct op_tls_conn *t);
/* "TLSv1.3", "TLSv1.2" once established; "" before. */
const char *op_tls_conn_version(const struct op_tls_conn *t);
/* The SNI name the client sent, or NULL. */
const char *op_tls_conn_sni(const struct op_tls_conn *t);
/* True when the handshake resumed a session. */
bool op_tls_conn_resumed(const struct op_tls_conn *t);

#endif
