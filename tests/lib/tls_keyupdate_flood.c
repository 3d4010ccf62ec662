/* A hostile TLS 1.3 client for the integration tier:
 *   tls_keyupdate_flood PORT SECONDS PATH
 * asks for PATH once and never reads the answer, then sends KeyUpdate
 * (update_requested: each asks the node for a record back) as fast as the
 * socket takes them, for at most SECONDS. Prints "closed after S s, N
 * updates" once the node ends the connection, or "open after S s, N
 * updates". Loopback only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]), seconds = atoi(argv[2]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096; /* take as little of the answer as the kernel allows */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return 1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, fd);
    SSL_set_tlsext_host_name(s, "localhost");
    if (SSL_connect(s) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", argv[3]);
    if (SSL_write(s, req, n) != n)
        return 1;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long updates = 0;
    bool closed = false;
    while (!closed && since(&t0) < seconds && updates < 100000000L) {
        closed = SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED) != 1 || SSL_do_handshake(s) != 1;
        updates += !closed;
    }
    printf("%s after %.1f s, %ld updates\n", closed ? "closed" : "open", since(&t0), updates);
    fflush(stdout);
    ERR_clear_error();
    SSL_free(s);
    SSL_CTX_free(ctx);
    close(fd);
    return 0;
}
