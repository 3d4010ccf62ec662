/* herdclient: N clients ask for one path at the same moment, each on its own
 * connection (all connected first). Each request's latency runs from its own
 * write to the last byte of its response, read with epoll, so the client's
 * own cost stays in microseconds rather than the tens of milliseconds a
 * Python client spends on 1000 responses.
 *   herdclient PORT PATH N [HOST]
 * Prints "total MS" (first write to last answer), then one line per request:
 * "STATUS MS" (status 0: failed or timed out, after 60 s). Benchmark tool:
 * loopback only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX (256 << 10) /* herd answers are small */

struct conn {
    int fd;
    char *buf;
    size_t len;
    double sent, done;
    int status;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Is the response in c->buf complete? Sets c->status. */
static int complete(struct conn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->len < 12)
        return 0;
    c->status = atoi(c->buf + 9);
    char *cl = memmem(c->buf, head, "\r\nContent-Length:", 17);
    if (cl == NULL)
        cl = memmem(c->buf, head, "\r\ncontent-length:", 17);
    if (cl != NULL)
        return c->len >= head + strtoull(cl + 17, NULL, 10);
    /* chunked (or close-delimited, which ends at EOF) */
    return c->len >= head + 5 && memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5) == 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: herdclient PORT PATH N [HOST]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *path = argv[2];
    int n = atoi(argv[3]);
    const char *host = argc > 4 ? argv[4] : "bench";
    char req[2048];
    int rlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* one descriptor per client */
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct conn *cs = calloc((size_t)n, sizeof(*cs));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < n; i++) {
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (cs[i].fd < 0 || connect(cs[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        cs[i].buf = malloc(BUF_MAX);
    }
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    for (int i = 0; i < n; i++) {
        cs[i].sent = now_ms();
        if (write(cs[i].fd, req, (size_t)rlen) != rlen)
            cs[i].done = -1;
    }
    int left = n;
    double deadline = now_ms() + 60000;
    struct epoll_event evs[256];
    while (left > 0 && now_ms() < deadline) {
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int j = 0; j < k; j++) {
            struct conn *c = &cs[evs[j].data.u32];
            if (c->done != 0)
                continue;
            ssize_t r = read(c->fd, c->buf + c->len, BUF_MAX - c->len);
            if (r > 0)
                c->len += (size_t)r;
            if (r > 0 && complete(c)) {
                c->done = now_ms();
            } else if (r == 0 || (r < 0 && errno != EAGAIN) || c->len == BUF_MAX) {
                c->done = -1;
                c->status = 0;
            } else {
                continue;
            }
            left--;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        }
    }
    double first = cs[0].sent, last = first;
    for (int i = 0; i < n; i++)
        if (cs[i].done > last)
            last = cs[i].done;
    printf("total %.3f\n", last - first);
    for (int i = 0; i < n; i++) {
        if (cs[i].done > 0)
            printf("%d %.3f\n", cs[i].status, cs[i].done - cs[i].sent);
        else
            printf("0 %.3f\n", now_ms() - cs[i].sent);
        close(cs[i].fd);
        free(cs[i].buf);
    }
    free(cs);
    return 0;
}
