/* include/outpost/tls.h: TLS with OpenSSL, as a filter under a connection:
 * clients to the node (server side) and the node to https origins (client
 * side).
 *
 * The socket stays libuv's: ciphertext read from it is fed in, plaintext
 * comes out into the connection's input buffer, plaintext to send is turned
 * into ciphertext for the connection to write. OpenSSL only ever sees the
 * connection's own BIO over the bytes it is handed (tls_bio.c), so a
 * handshake never blocks a loop and runs on the worker that owns the
 * connection.
 *
 * A context (the certificates of one configuration, chosen by SNI) is built
 * on the main thread and shared read-only by every worker; with the
 * process's ticket keys, a session from one worker resumes on another.
 * tls_ctx.c is the only place the node's TLS policy lives: TLS 1.2 and 1.3
 * only, AEAD suites with forward secrecy, no renegotiation, no compression,
 * no 0-RTT, ALPN http/1.1.
 */
#ifndef OUTPOST_TLS_H
#define OUTPOST_TLS_H

#include "outpost/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct op_tls_ctx;
struct op_tls_conn;
struct op_tls_tickets;

/* Session ticket keys, one set for the whole process: every context (every
 * worker, every configuration generation) encrypts tickets with the current
 * key and accepts the previous one, so a ticket resumes on any worker and
 * across reloads. Thread-safe: the handshakes of every worker read it, the
 * main thread rotates it. create: 0 or OP_ENOMEM (no randomness). */
int op_tls_tickets_create(struct op_tls_tickets **out);
/* A new current key; the current one becomes the previous (still accepted,
 * and a ticket under it is renewed), the previous one is forgotten. */
int op_tls_tickets_rotate(struct op_tls_tickets *tk);
/* After every context that used it is freed. */
void op_tls_tickets_destroy(struct op_tls_tickets *tk);

struct op_tls_server_config {
    struct op_tls_tickets *tickets; /* borrowed: outlives the context; NULL = no tickets */
    uint64_t ticket_lifetime_s;     /* what a client is told a ticket is good for */
    uint32_t session_cache;         /* sessions kept by the server for clients without
                                       tickets; 0 = none */
    bool reject_unknown_sni;        /* no default certificate: a handshake whose SNI names
                                       no host fails with unrecognized_name */
};

/* A server context: the node's TLS policy and, once certificates are added,
 * what each SNI name gets. Made on the main thread, then shared read-only by
 * every worker. 0 or OP_ENOMEM. */
int op_tls_ctx_create(const struct op_tls_server_config *cfg, struct op_tls_ctx **out);
/* Add a certificate chain (PEM, leaf first) and its private key for <host>
 * (matched against SNI without case), or for every other name when <host>
 * is NULL (the default). A host takes one RSA and one ECDSA pair side by
 * side; a client gets the ECDSA one when it can use it. Checks that the key
 * matches, that the leaf is valid now (an expired or not yet valid
 * certificate is an error) and warns (logged) when the key file can be read
 * by others than its owner and root. 0, or OP_EINVAL with the file and the
 * reason in why[]; OP_ENOMEM. Before the context is shared only. */
int op_tls_ctx_add_cert(struct op_tls_ctx *ctx, const char *host, const char *cert_file,
                        const char *key_file, char *why, size_t whylen);
/* Whether a default certificate was added. */
bool op_tls_ctx_has_default(const struct op_tls_ctx *ctx);
/* The earliest notAfter of the certificates added, as a Unix time; 0 for
 * none. */
int64_t op_tls_ctx_first_expiry(const struct op_tls_ctx *ctx);
/* Drop the creator's reference: the context goes once the last connection
 * made on it is freed (any thread). */
void op_tls_ctx_free(struct op_tls_ctx *ctx);

/* ---- the client side: Outpost to https origins ---------------------------- */

struct op_tls_session; /* a session to resume with one origin, from one worker */

struct op_tls_client_config {
    const char *ca_file; /* PEM certificates to trust; NULL or "": the system's bundle */
    bool verify;         /* check the chain and the name (false: an operator's choice) */
};

/* A client context: TLS 1.2 and 1.3, ALPN http/1.1, sessions kept by the
 * caller (op_tls_conn_client_new). 0, OP_EINVAL with the file and the
 * reason in why[] (a CA file that cannot be read), or OP_ENOMEM. */
int op_tls_client_ctx_create(const struct op_tls_client_config *cfg, struct op_tls_ctx **out,
                             char *why, size_t whylen);

/* A client connection to <name>: sent as SNI unless it is an IP address
 * (RFC 6066 §3), and the certificate must name it (DNS name or IP address).
 * It resumes *session when there is one, and puts each new session the
 * origin gives into *session (freeing the one before): <session> must
 * outlive the connection, and both stay on one thread. Feed it with
 * op_tls_conn_input (len 0 first: the ClientHello goes to <wire>). NULL
 * when out of memory. */
struct op_tls_conn *op_tls_conn_client_new(struct op_tls_ctx *ctx, const char *name,
                                           struct op_tls_session **session);
void op_tls_session_free(struct op_tls_session *s);

/* Why the handshake failed, as OP_ETLSVERIFY (why[]: what the check found,
 * "certificate has expired", "hostname mismatch"), OP_ETLSPLAIN (the peer
 * answered in plaintext) or OP_ETLS (why[]: OpenSSL's reason, or "closed
 * during the handshake" for a close_notify before it ended); 0 when it has
 * not failed. */
int op_tls_conn_failure(const struct op_tls_conn *t, char *why, size_t whylen);

/* ---- either side ------------------------------------------------------------ */

/* One server-side connection on <ctx> (it holds a reference); NULL when
 * out of memory. */
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
/* The host whose certificate SNI chose, as added; NULL for the default. */
const char *op_tls_conn_host(const struct op_tls_conn *t);
/* The handshake failed because SNI named no host and there is no default. */
bool op_tls_conn_failed_sni(const struct op_tls_conn *t);
/* True when the handshake resumed a session. */
bool op_tls_conn_resumed(const struct op_tls_conn *t);

#endif
