/* loadclient: keep-alive GETs on C connections for S seconds, each request's
 * start and latency recorded, so a caller can take percentiles over any time
 * window (for example, while a purge runs).
 *   loadclient PORT C SECONDS PATH_PREFIX NPATHS [HOST [RATE]]
 * Requests go to PATH_PREFIX0 .. PATH_PREFIX(NPATHS-1) in turn. Prints
 * "START_MS LATENCY_MS STATUS" per request, START_MS on CLOCK_MONOTONIC.
 * Without RATE each connection sends its next request when the last is
 * answered (closed loop: the load follows the server's speed). With RATE
 * (requests/s over all connections) request k is due at k/RATE: it goes out
 * on the first idle connection, and its latency counts from when it was due,
 * so time spent waiting for a connection is not hidden (open loop).
 * Benchmark tool: loopback only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define MAX_SAMPLES 4000000

struct conn {
    int fd;
    char buf[BUF];
    size_t len;
    double sent;
    unsigned next;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double *starts, *lats;
static int *statuses;
static size_t nsamples;

static int send_req(struct conn *c, const char *prefix, unsigned npaths, const char *host,
                    double due)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s%u HTTP/1.1\r\nHost: %s\r\n\r\n", prefix,
                     c->next++ % npaths, host);
    c->len = 0;
    c->sent = due;
    return write(c->fd, req, (size_t)n) == n ? 0 : -1;
}

/* A whole response with Content-Length in c->buf? Its status, else 0. */
static int complete(struct conn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - c->buf) + 4;
    char *cl = memmem(c->buf, head, "\r\nContent-Length:", 17);
    if (cl == NULL)
        cl = memmem(c->buf, head, "\r\ncontent-length:", 17);
    if (cl == NULL || c->len < head + strtoull(cl + 17, NULL, 10))
        return 0;
    return (int)strtol(c->buf + 9, NULL, 10);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: loadclient PORT C SECONDS PATH_PREFIX NPATHS [HOST [RATE]]\n");
        return 2;
    }
    int port = (int)strtol(argv[1], NULL, 10), nc = (int)strtol(argv[2], NULL, 10);
    double seconds = strtod(argv[3], NULL);
    const char *prefix = argv[4];
    unsigned npaths = (unsigned)strtoul(argv[5], NULL, 10);
    const char *host = argc > 6 ? argv[6] : "bench";
    double rate = argc > 7 ? strtod(argv[7], NULL) : 0;
    /* idle connections in a ring, taken in turn: each stays in use (a
     * connection left idle for seconds would be closed by the server) */
    int *idle = malloc((size_t)nc * sizeof(int)), nidle = 0, ihead = 0;
    starts = malloc(MAX_SAMPLES * sizeof(double));
    lats = malloc(MAX_SAMPLES * sizeof(double));
    statuses = malloc(MAX_SAMPLES * sizeof(int));
    struct conn *cs = calloc((size_t)nc, sizeof(*cs));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int ep = epoll_create1(0);
    for (int i = 0; i < nc; i++) {
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(cs[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            perror("connect");
            return 1;
        }
        cs[i].next = (unsigned)i;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    double t0 = now_ms(), end = t0 + seconds * 1000, due = t0;
    for (int i = 0; i < nc; i++) {
        if (rate > 0)
            idle[nidle++] = i; /* ihead is 0: the ring starts in order */
        else
            send_req(&cs[i], prefix, npaths, host, now_ms());
    }
    struct epoll_event evs[256];
    while (now_ms() < end && nsamples < MAX_SAMPLES) {
        double wait_ms = 100;
        if (rate > 0) {
            double now = now_ms();
            while (due <= now && due < end && nidle > 0) {
                send_req(&cs[idle[ihead]], prefix, npaths, host, due);
                ihead = (ihead + 1) % nc;
                nidle--;
                due += 1000.0 / rate;
            }
            if (nidle > 0 && due < end)
                wait_ms = due - now; /* > 0: everything due went out */
        }
        /* epoll_pwait2: a sub-millisecond wait, so requests leave when due */
        struct timespec ts = {.tv_sec = (time_t)(wait_ms / 1000),
                              .tv_nsec = (long)((wait_ms - (time_t)(wait_ms / 1000) * 1000) * 1e6)};
        int k = epoll_pwait2(ep, evs, 256, &ts, NULL);
        for (int j = 0; j < k; j++) {
            struct conn *c = &cs[evs[j].data.u32];
            ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len);
            if (r <= 0 || c->len + (size_t)r >= BUF) {
                fprintf(stderr, "loadclient: connection lost\n");
                return 1;
            }
            c->len += (size_t)r;
            int status = complete(c);
            if (status == 0)
                continue;
            starts[nsamples] = c->sent;
            lats[nsamples] = now_ms() - c->sent;
            statuses[nsamples++] = status;
            if (rate > 0)
                idle[(ihead + nidle++) % nc] = (int)evs[j].data.u32;
            else if (now_ms() < end)
                send_req(c, prefix, npaths, host, now_ms());
        }
    }
    for (size_t i = 0; i < nsamples; i++)
        printf("%.3f %.3f %d\n", starts[i], lats[i], statuses[i]);
    return 0;
}
