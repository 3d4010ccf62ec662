/* include/outpost/net.h: sockets that libuv cannot make for us.
 *
 * libuv 1.44 has no UV_TCP_REUSEPORT, so each worker's listener is made here
 * (socket, SO_REUSEPORT, bind, listen) and handed to uv_tcp_open. Resolution
 * uses blocking getaddrinfo and so runs on the main thread, never on a loop.
 */
#ifndef OUTPOST_NET_H
#define OUTPOST_NET_H

#include <stdint.h>
#include <sys/socket.h>

/* Resolve <host>:<port> to its first address. 0 or OP_ENOTFOUND (logged).
 * Blocking: main thread only. */
int op_net_resolve(const char *host, uint16_t port, struct sockaddr_storage *out);

/* A listening, non-blocking TCP socket with SO_REUSEADDR and SO_REUSEPORT
 * bound to <addr>; each worker makes its own and the kernel spreads accepts.
 * Returns the fd, or -OP_EADDRINUSE / -OP_EIO (logged). */
int op_net_listen(const struct sockaddr_storage *addr, int backlog);

/* "1.2.3.4" or "::1" of a connected peer into out (INET6_ADDRSTRLEN bytes). */
void op_net_peer_name(const struct sockaddr_storage *addr, char *out, size_t len);

#endif
