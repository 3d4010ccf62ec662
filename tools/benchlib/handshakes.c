/* handshakes: full TLS 1.3 handshakes per second, one request on each.
 *   handshakes PORT THREADS SECONDS PATH [HOST [MAX [NOTIFY]]]
 * Each of THREADS threads, until SECONDS have passed or it has made MAX
 * connections, connects to 127.0.0.1:PORT, runs a full TLS 1.3 handshake
 * (X25519 only, no session offered, so nothing resumes; OpenSSL's default
 * TLS 1.3 suites, so the server's preference picks), sends one GET of PATH,
 * reads the response whole (Content-Length) and closes: with NOTIFY 1 it
 * sends close_notify first (not waiting for the server's), with 0 (the
 * default) it just closes, as wrk and most HTTP/1.1 clients do.
 * Certificates are not verified (as wrk does), so the client's work per
 * handshake is the same against any server.
 * Prints one JSON object: counts (done, connect errors, failed handshakes,
 * I/O errors, non-200, answers without "hit" in Cache-Status, resumed),
 * session tickets received, each version/suite negotiated with its count,
 * handshake and whole-request latency percentiles, the wall time and the
 * client's own CPU seconds. Benchmark tool: loopback only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384
#define MAX_SAMPLES 262144 /* per thread */
#define MAX_SUITES 4
#define IO_TIMEOUT_S 5

struct suite {
    char name[64];
    unsigned long n;
};

struct worker {
    pthread_t tid;
    unsigned long done, connect_err, hs_fail, io_err, non200, nonhit, resumed, tickets;
    struct suite suites[MAX_SUITES];
    unsigned long other_suites;
    char first_error[160];
    double *hs_ms, *req_ms;
    size_t nsamples;
};

static struct sockaddr_in addr;
static SSL_CTX *ctx;
static const char *path, *host;
static double deadline;
static unsigned long max_per_thread;
static int close_notify;
static __thread unsigned long *tickets_here;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Counts each NewSessionTicket and keeps none: no session is ever offered. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    (void)sess;
    if (tickets_here != NULL)
        (*tickets_here)++;
    return 0;
}

static void note_error(struct worker *w, const char *what)
{
    if (w->first_error[0] != '\0')
        return;
    char why[120];
    unsigned long e = ERR_peek_error();
    if (e != 0)
        ERR_error_string_n(e, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%s", errno ? strerror(errno) : "closed");
    snprintf(w->first_error, sizeof(w->first_error), "%s: %s", what, why);
    for (char *p = w->first_error; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '\'';
}

static void count_suite(struct worker *w, SSL *ssl)
{
    char name[64];
    snprintf(name, sizeof(name), "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
    for (int i = 0; i < MAX_SUITES; i++) {
        if (w->suites[i].name[0] == '\0')
            snprintf(w->suites[i].name, sizeof(w->suites[i].name), "%s", name);
        if (strcmp(w->suites[i].name, name) == 0) {
            w->suites[i].n++;
            return;
        }
    }
    w->other_suites++;
}

/* The whole response on ssl: 0 with its status and whether Cache-Status
 * says hit, -1 on an I/O error or a response without Content-Length. */
static int read_response(SSL *ssl, int *status, int *hit)
{
    char buf[BUF + 1];
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        if (len == BUF)
            return -1;
        int n = SSL_read(ssl, buf + len, (int)(BUF - len));
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head = (size_t)(end - buf) + 4;
    *status = (len > 12 && strncmp(buf, "HTTP/1.", 7) == 0) ? atoi(buf + 9) : 0;
    long clen = -1;
    *hit = 0;
    for (char *line = strstr(buf, "\r\n"); line != NULL && line < end;
         line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "content-length:", 15) == 0)
            clen = strtol(line + 15, NULL, 10);
        if (strncasecmp(line, "cache-status:", 13) == 0) {
            char *eol = strstr(line, "\r\n");
            for (char *p = line + 13; p + 3 <= eol; p++)
                if (strncasecmp(p, "hit", 3) == 0)
                    *hit = 1;
        }
    }
    if (clen < 0)
        return -1;
    long left = clen - (long)(len - head);
    while (left > 0) {
        int n = SSL_read(ssl, buf, left < BUF ? (int)left : BUF);
        if (n <= 0)
            return -1;
        left -= n;
    }
    return 0;
}

static void one(struct worker *w, char *req, int reqlen)
{
    double t0 = now_s();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        w->connect_err++;
        note_error(w, "socket");
        return;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        w->connect_err++;
        note_error(w, "connect");
        close(fd);
        return;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    if (SSL_connect(ssl) != 1) {
        w->hs_fail++;
        note_error(w, "handshake");
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        return;
    }
    double t1 = now_s();
    count_suite(w, ssl);
    if (SSL_session_reused(ssl))
        w->resumed++;
    int status = 0, hit = 0;
    if (SSL_write(ssl, req, reqlen) != reqlen || read_response(ssl, &status, &hit) != 0) {
        w->io_err++;
        note_error(w, "request");
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        return;
    }
    if (close_notify)
        SSL_shutdown(ssl); /* ours; the server's is not awaited */
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    double t2 = now_s();
    w->done++;
    if (status != 200)
        w->non200++;
    else if (!hit)
        w->nonhit++;
    if (w->nsamples < MAX_SAMPLES) {
        w->hs_ms[w->nsamples] = (t1 - t0) * 1e3;
        w->req_ms[w->nsamples] = (t2 - t0) * 1e3;
        w->nsamples++;
    }
}

static void *run(void *arg)
{
    struct worker *w = arg;
    tickets_here = &w->tickets;
    char req[512];
    int reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
    for (unsigned long i = 0; i < max_per_thread && now_s() < deadline; i++)
        one(w, req, reqlen);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return -1;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: handshakes PORT THREADS SECONDS PATH [HOST [MAX [NOTIFY]]]\n");
        return 2;
    }
    int port = atoi(argv[1]), nthreads = atoi(argv[2]);
    double seconds = atof(argv[3]);
    path = argv[4];
    host = argc > 5 ? argv[5] : "bench";
    max_per_thread = argc > 6 ? strtoul(argv[6], NULL, 10) : 10000000UL;
    close_notify = argc > 7 ? atoi(argv[7]) : 0;
    if (port <= 0 || nthreads <= 0 || nthreads > 1024 || seconds <= 0 || seconds > 3600) {
        fprintf(stderr, "handshakes: bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer that closed is an error counted, not our end */
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set1_groups_list(ctx, "X25519") != 1 ||
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) {
        fprintf(stderr, "handshakes: client context refused\n");
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* the callback sees each ticket; the client keeps and offers none */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);

    struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
    for (int i = 0; i < nthreads; i++) {
        ws[i].hs_ms = malloc(MAX_SAMPLES * sizeof(double));
        ws[i].req_ms = malloc(MAX_SAMPLES * sizeof(double));
        if (ws[i].hs_ms == NULL || ws[i].req_ms == NULL) {
            fprintf(stderr, "handshakes: out of memory\n");
            return 1;
        }
    }
    double c0 = cpu_s(), t0 = now_s();
    deadline = t0 + seconds;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&ws[i].tid, NULL, run, &ws[i]);
    for (int i = 0; i < nthreads; i++)
        pthread_join(ws[i].tid, NULL);
    double wall = now_s() - t0, cpu = cpu_s() - c0;

    struct worker sum = {0};
    struct suite suites[MAX_SUITES * 4] = {{{0}, 0}};
    size_t nsuites = 0, n = 0;
    for (int i = 0; i < nthreads; i++)
        n += ws[i].nsamples;
    double *hs = malloc((n + 1) * sizeof(double)), *rq = malloc((n + 1) * sizeof(double));
    n = 0;
    for (int i = 0; i < nthreads; i++) {
        struct worker *w = &ws[i];
        sum.done += w->done;
        sum.connect_err += w->connect_err;
        sum.hs_fail += w->hs_fail;
        sum.io_err += w->io_err;
        sum.non200 += w->non200;
        sum.nonhit += w->nonhit;
        sum.resumed += w->resumed;
        sum.tickets += w->tickets;
        sum.other_suites += w->other_suites;
        if (sum.first_error[0] == '\0')
            memcpy(sum.first_error, w->first_error, sizeof(sum.first_error));
        for (int s = 0; s < MAX_SUITES && w->suites[s].name[0]; s++) {
            size_t k = 0;
            while (k < nsuites && strcmp(suites[k].name, w->suites[s].name) != 0)
                k++;
            if (k == nsuites) {
                if (nsuites == MAX_SUITES * 4) {
                    sum.other_suites += w->suites[s].n;
                    continue;
                }
                memcpy(suites[nsuites++].name, w->suites[s].name, sizeof(suites[0].name));
            }
            suites[k].n += w->suites[s].n;
        }
        memcpy(hs + n, w->hs_ms, w->nsamples * sizeof(double));
        memcpy(rq + n, w->req_ms, w->nsamples * sizeof(double));
        n += w->nsamples;
    }
    qsort(hs, n, sizeof(double), cmp);
    qsort(rq, n, sizeof(double), cmp);
    printf("{\"threads\": %d, \"wall_s\": %.3f, \"cpu_s\": %.3f, \"done\": %lu, "
           "\"connect_err\": %lu, \"hs_fail\": %lu, \"io_err\": %lu, \"non200\": %lu, "
           "\"nonhit\": %lu, \"resumed\": %lu, \"tickets\": %lu, \"other_suites\": %lu, "
           "\"hs_p50_ms\": %.3f, \"hs_p99_ms\": %.3f, \"req_p50_ms\": %.3f, "
           "\"req_p99_ms\": %.3f, \"first_error\": \"%s\", \"suites\": {",
           nthreads, wall, cpu, sum.done, sum.connect_err, sum.hs_fail, sum.io_err, sum.non200,
           sum.nonhit, sum.resumed, sum.tickets, sum.other_suites, pct(hs, n, 50), pct(hs, n, 99),
           pct(rq, n, 50), pct(rq, n, 99), sum.first_error);
    for (size_t k = 0; k < nsuites; k++)
        printf("%s\"%s\": %lu", k ? ", " : "", suites[k].name, suites[k].n);
    printf("}}\n");
    return 0;
}
