/* Listener sockets with SO_REUSEPORT, and name resolution for the main thread. */
#include "outpost/net.h"

#include "outpost/core.h"
#include "outpost/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int op_net_resolve(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || res == NULL) {
        op_log_error("net", "cannot resolve %s: %s", host, gai_strerror(rc));
        return OP_ENOTFOUND;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int op_net_listen(const struct sockaddr_storage *addr, int backlog)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        op_log_error("net", "socket: %s", strerror(errno));
        return -OP_EIO;
    }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
        op_log_error("net", "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return -OP_EIO;
    }
    socklen_t len =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)addr, len) != 0 || listen(fd, backlog) != 0) {
        int err = errno;
        op_log_error("net", "bind/listen: %s", strerror(err));
        close(fd);
        return err == EADDRINUSE ? -OP_EADDRINUSE : -OP_EIO;
    }
    return fd;
}

void op_net_peer_name(const struct sockaddr_storage *addr, char *out, size_t len)
{
    const void *src = addr->ss_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)addr)->sin_addr;
    if (inet_ntop(addr->ss_family, src, out, (socklen_t)len) == NULL)
        snprintf(out, len, "unknown");
}
