/* Whole-proxy fuzz target (#12): one input is a client byte stream and an
 * origin byte stream, fed through the real request path of an in-process
 * node (one worker thread, its LMDB store, the flight table, the origin
 * client) over loopback sockets, as h2o's and Envoy's proxy fuzzers do.
 *
 * Input: two bytes (little-endian) give the length of the client part; the
 * client part follows, and the rest is what the origin answers to the first
 * bytes it reads on each connection the node opens (then it closes that
 * connection). Every exchange is bounded in time; nothing leaves loopback.
 * The node is started once and kept across inputs, like a real one. */
#include "main_gens.h"
#include "outpost/conf.h"
#include "outpost/core.h"
#include "outpost/flight.h"
#include "outpost/log.h"
#include "outpost/net.h"
#include "outpost/store.h"
#include "outpost/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUIET_MS 15     /* an exchange ends after this long without activity */
#define EXCHANGE_MS 300 /* and at the latest after this long */
#define MAX_ORIGIN_CONNS 8

static int origin_fd = -1; /* our listening "origin" */
static uint16_t node_port; /* the node's listener */
/* the node, kept for the whole run (reachable, so not a leak at exit) */
static struct op_conf *conf;
static struct op_origin_server *servers;
static struct op_store *store;
static struct op_flight_table *flight;
static struct op_worker *worker;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        abort();
    *port = ntohs(a.sin_port);
    return fd;
}

static uint16_t free_port(void)
{
    uint16_t port;
    close(listen_loopback(&port));
    return port;
}

static void start_node(void)
{
    signal(SIGPIPE, SIG_IGN);
    op_log_set_level(OP_LOG_ERROR);
    uint16_t oport;
    origin_fd = listen_loopback(&oport);
    node_port = free_port();
    char dir[] = "/tmp/outpost-fuzz-proxy-XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    char path[128], yaml[1024];
    snprintf(path, sizeof(path), "%s/outpost.yaml", dir);
    snprintf(yaml, sizeof(yaml),
             "listen: 127.0.0.1:%u\nworkers: 1\ncache_dir: %s/cache\ncache_size: 64m\n"
             "max_object_size: 256k\nmax_body_size: 256k\nheader_timeout: 1s\n"
             "body_timeout: 1s\nlog_level: error\nsites:\n"
             "  - host: named.test\n    origin: http://127.0.0.1:%u\n"
             "    first_byte_timeout: 200ms\n    between_bytes_timeout: 200ms\n"
             "    origin_fail_threshold: 0\n    coalesce_timeout: 200ms\n"
             "  - host: \"*\"\n    origin: http://127.0.0.1:%u\n"
             "    first_byte_timeout: 200ms\n    between_bytes_timeout: 200ms\n"
             "    origin_fail_threshold: 0\n    coalesce_timeout: 200ms\n",
             node_port, dir, oport, oport);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(yaml, f) < 0 || fclose(f) != 0)
        abort();
    struct op_buf errors;
    op_buf_init(&errors, 1 << 16);
    conf = op_conf_load(path, &errors);
    if (conf == NULL) {
        fprintf(stderr, "fuzz_proxy: %.*s\n", (int)errors.len, errors.data);
        abort();
    }
    size_t nservers;
    servers = op_main_origins_create(conf, &nservers);
    struct op_store_config scfg = {.dir = conf->cache_dir,
                                   .map_size = conf->cache_size,
                                   .max_object_size = conf->max_object_size};
    struct sockaddr_storage addr;
    struct op_worker_config wcfg = {.conf = conf, .listen_addr = &addr, .servers = servers};
    if (servers == NULL || op_store_open(&scfg, &store) != 0 ||
        op_flight_table_create(1024, 1, &flight) != 0 ||
        op_net_resolve(conf->listen_host, conf->listen_port, &addr) != 0)
        abort();
    wcfg.store = store;
    wcfg.flight = flight;
    if (op_worker_create(0, &wcfg, &worker) != 0 || op_worker_start(worker) != 0)
        abort();
    /* the node lives for the whole run: the process exit reclaims it */
}

struct oconn {
    int fd;
    bool answered;
};

/* Serve the origin side and drain the client side until both are quiet. */
static void exchange(int cfd, const uint8_t *reply, size_t rlen)
{
    struct oconn oc[MAX_ORIGIN_CONNS];
    int noc = 0;
    uint64_t start = now_ms(), last = start;
    char buf[65536];
    bool client_open = true;
    while (now_ms() - start < EXCHANGE_MS && now_ms() - last < QUIET_MS) {
        struct pollfd p[MAX_ORIGIN_CONNS + 2];
        int n = 0;
        p[n++] = (struct pollfd){.fd = origin_fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = client_open ? cfd : -1, .events = POLLIN};
        for (int i = 0; i < noc; i++)
            p[n++] = (struct pollfd){.fd = oc[i].fd, .events = POLLIN};
        if (poll(p, (nfds_t)n, QUIET_MS) <= 0)
            continue;
        last = now_ms();
        if ((p[0].revents & POLLIN) && noc < MAX_ORIGIN_CONNS) {
            int fd = accept(origin_fd, NULL, NULL);
            struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
            if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0)
                oc[noc++] = (struct oconn){.fd = fd};
            else if (fd >= 0)
                close(fd);
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t got = read(cfd, buf, sizeof(buf));
            if (got <= 0)
                client_open = false;
        }
        for (int i = 0; i < noc; i++) {
            if (!(p[2 + i].revents & (POLLIN | POLLHUP | POLLERR)) || oc[i].fd < 0)
                continue;
            ssize_t got = read(oc[i].fd, buf, sizeof(buf));
            if (got > 0 && !oc[i].answered) {
                oc[i].answered = true;
                size_t off = 0;
                while (off < rlen) { /* a blocking socket: the node reads as we write */
                    ssize_t put = write(oc[i].fd, reply + off, rlen - off);
                    if (put <= 0)
                        break;
                    off += (size_t)put;
                }
                shutdown(oc[i].fd, SHUT_WR); /* a close-delimited answer ends here */
            } else if (got <= 0) {
                close(oc[i].fd);
                oc[i].fd = -1;
            }
        }
    }
    for (int i = 0; i < noc; i++)
        if (oc[i].fd >= 0)
            close(oc[i].fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (origin_fd < 0)
        start_node();
    if (size < 2)
        return 0;
    size_t clen = (size_t)data[0] | (size_t)data[1] << 8;
    if (clen > size - 2)
        clen = size - 2;
    const uint8_t *client = data + 2, *reply = client + clen;
    size_t rlen = size - 2 - clen;

    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(node_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int tries = 0; connect(cfd, (struct sockaddr *)&a, sizeof(a)) != 0; tries++) {
        if (tries > 200) /* the worker thread is still starting */
            abort();
        usleep(5000);
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t off = 0;
    while (off < clen) {
        ssize_t put = write(cfd, client + off, clen - off);
        if (put <= 0)
            break;
        off += (size_t)put;
    }
    exchange(cfd, reply, rlen);
    close(cfd);
    return 0;
}
