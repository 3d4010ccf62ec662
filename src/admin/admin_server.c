/* The admin socket: listening, the peer check, reading requests with the
 * same llhttp glue as the data port (bounded head and body), and writing
 * answers. One request at a time per connection; reads stop while one is
 * answered (a purge answers only once committed). */
#include "admin_int.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void conn_close(struct admin_conn *c);
static void conn_read_more(struct admin_conn *c);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_conn_closed(uv_handle_t *h)
{
    struct admin_conn *c = h->data;
    if (--c->pending_closes > 0)
        return;
    op_http_msg_fini(&c->req);
    op_buf_fini(&c->in);
    op_buf_fini(&c->body);
    c->magic = 0;
    free(c);
}

static void conn_close(struct admin_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct op_admin *a = c->admin;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    if (c->purge != NULL)
        c->purge->conn = NULL; /* its acknowledgement finds nobody to answer */
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
    uv_close((uv_handle_t *)&c->idle, on_conn_closed);
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

struct write_req {
    uv_write_t req;
    struct admin_conn *conn;
    bool close;
    size_t len;
    char data[];
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct admin_conn *c = w->conn;
    bool close = w->close || status < 0;
    free(w);
    if (c->closing)
        return;
    if (close) {
        conn_close(c);
        return;
    }
    c->waiting = false;
    conn_read_more(c);
}

void op_admin__respond(struct admin_conn *c, int status, const char *type, const char *body,
                       size_t len)
{
    if (c->closing)
        return;
    const char *reason = status == 200   ? "OK"
                         : status == 400 ? "Bad Request"
                         : status == 403 ? "Forbidden"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 413 ? "Content Too Large"
                         : status == 503 ? "Service Unavailable"
                                         : "Internal Server Error";
    bool close = c->close_after || !c->req.keep_alive;
    char head[256];
    int hlen = snprintf(head, sizeof(head),
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n%s\r\n",
                        status, reason, type, len, close ? "Connection: close\r\n" : "");
    struct write_req *w = malloc(sizeof(*w) + (size_t)hlen + len);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    memcpy(w->data, head, (size_t)hlen);
    memcpy(w->data + hlen, body, len);
    w->len = (size_t)hlen + len;
    w->conn = c;
    w->close = close;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_written) != 0) {
        free(w);
        conn_close(c);
    }
}

void op_admin__error(struct admin_conn *c, int status, const char *msg)
{
    char body[512];
    /* msg is ours, but may quote operator input: escape what JSON needs */
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"error\": \"");
    for (const char *p = msg; *p != '\0' && n < sizeof(body) - 8; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            body[n++] = '\\';
        body[n++] = ch < 0x20 ? ' ' : (char)ch;
    }
    n += (size_t)snprintf(body + n, sizeof(body) - n, "\"}\n");
    op_admin__respond(c, status, "application/json", body, n);
}

static int on_body(void *arg, const char *p, size_t len)
{
    struct admin_conn *c = arg;
    c->body_too_big = op_buf_append(&c->body, p, len) != 0;
    return c->body_too_big; /* over ADMIN_BODY_MAX: a parse error */
}

/* Parse what has been read; answer at most one request. */
static void conn_parse(struct admin_conn *c)
{
    while (!c->waiting && !c->closing) {
        size_t used = 0;
        int rc = op_http_parser_execute(&c->parser, c->in.data ? c->in.data : "", c->in.len, &used);
        op_buf_consume(&c->in, used);
        if (rc == 0)
            return; /* wait for more bytes */
        if (rc == OP_EPARSE) {
            c->close_after = true;
            c->waiting = true;
            op_admin__error(c, c->body_too_big ? 413 : 400,
                            c->parser.err_reason ? c->parser.err_reason : "malformed request");
            return;
        }
        op_http_parser_resume(&c->parser);
        if (c->parser.event == OP_HTTP_EV_HEAD) {
            if (c->req.content_length > ADMIN_BODY_MAX) {
                c->close_after = true;
                c->waiting = true;
                op_admin__error(c, 413, "request bodies are at most 64k");
                return;
            }
            continue;
        }
        if (c->parser.event == OP_HTTP_EV_DONE) {
            c->waiting = true;
            uv_read_stop((uv_stream_t *)&c->pipe);
            op_admin__route(c);
        }
    }
}

static void conn_read_more(struct admin_conn *c)
{
    op_http_msg_reset(&c->req);
    op_buf_reset(&c->body);
    c->body_too_big = false;
    op_http_parser_init(&c->parser, false, &c->req, on_body, c);
    uv_timer_again(&c->idle);
    conn_parse(c); /* a pipelined request may be in already */
    if (!c->waiting && !c->closing)
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read); /* stopped for the answer */
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct admin_conn *c = h->data;
    char *space;
    (void)hint;
    if (op_buf_reserve(&c->in, 4096, &space) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = space;
    buf->len = c->in.cap - c->in.len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct admin_conn *c = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS && !c->waiting) {
            c->close_after = true;
            c->waiting = true;
            uv_read_stop(s);
            op_admin__error(c, 400, "request head too large");
            return;
        }
        conn_close(c);
        return;
    }
    op_buf_commit(&c->in, (size_t)nread);
    uv_timer_again(&c->idle);
    conn_parse(c);
}

/* Root, our own uid, or a member of admin_group. */
static bool peer_allowed(struct op_admin *a, int fd, char *who, size_t wlen)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        snprintf(who, wlen, "unknown peer");
        return false;
    }
    snprintf(who, wlen, "uid %u pid %d", (unsigned)cred.uid, (int)cred.pid);
    if (cred.uid == 0 || cred.uid == geteuid())
        return true;
    if (!a->has_group)
        return false;
    if (cred.gid == a->gid)
        return true;
    char buf[4096];
    struct passwd pw, *pwp = NULL;
    if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &pwp) != 0 || pwp == NULL)
        return false;
    gid_t groups[256];
    int n = 256;
    if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (groups[i] == a->gid)
            return true;
    return false;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct op_admin *a = server->data;
    if (status < 0 || a->stopped)
        return;
    struct admin_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->magic = ADMIN_CONN_MAGIC;
    c->admin = a;
    uv_pipe_init(a->cfg.loop, &c->pipe, 0);
    uv_timer_init(a->cfg.loop, &c->idle);
    c->pipe.data = c->idle.data = c;
    op_http_msg_init(&c->req, 100, 16 * 1024);
    op_buf_init(&c->in, 32 * 1024 + ADMIN_BODY_MAX);
    op_buf_init(&c->body, ADMIN_BODY_MAX);
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->idle, on_idle, ADMIN_IDLE_MS, ADMIN_IDLE_MS);
    uv_os_fd_t fd;
    char who[64];
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 || !peer_allowed(a, fd, who, sizeof(who))) {
        op_log_warn("admin", "refused %s: not root, this node's user or in admin_group", who);
        c->close_after = true;
        c->waiting = true;
        op_admin__error(c, 403, "not allowed: root, this node's user or admin_group only");
        return;
    }
    if (a->nconns > ADMIN_CONNS_MAX) {
        c->close_after = true;
        c->waiting = true;
        op_admin__error(c, 503, "too many admin connections");
        return;
    }
    op_http_parser_init(&c->parser, false, &c->req, on_body, c);
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

static void on_wake(void *arg)
{
    uv_async_send(arg);
}

static void on_async(uv_async_t *h)
{
    struct op_admin *a = h->data;
    op_mailbox_drain(&a->mailbox);
}

/* A socket file left behind: replace it if nothing answers on it. */
static int clear_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : OP_EIO;
    if (!S_ISSOCK(st.st_mode)) {
        op_log_error("admin", "%s exists and is not a socket", path);
        return OP_EIO;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    bool live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    if (live) {
        op_log_error("admin", "%s: another node answers on it", path);
        return OP_EADDRINUSE;
    }
    unlink(path);
    return 0;
}

int op_admin_start(const struct op_admin_config *cfg, struct op_admin **out)
{
    struct sockaddr_un sa;
    if (strlen(cfg->path) >= sizeof(sa.sun_path)) {
        op_log_error("admin", "admin socket path too long (at most %zu bytes): %s",
                     sizeof(sa.sun_path) - 1, cfg->path);
        return OP_EINVAL;
    }
    struct op_admin *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->path = strdup(cfg->path)) == NULL) {
        free(a);
        return OP_ENOMEM;
    }
    a->cfg = *cfg;
    if (cfg->group != NULL && cfg->group[0] != '\0') {
        char buf[4096];
        struct group gr, *grp = NULL;
        if (getgrnam_r(cfg->group, &gr, buf, sizeof(buf), &grp) != 0 || grp == NULL) {
            op_log_error("admin", "admin_group %s: no such group", cfg->group);
            free(a->path);
            free(a);
            return OP_EINVAL;
        }
        a->gid = gr.gr_gid;
        a->has_group = true;
    }
    int rc = clear_stale(cfg->path);
    if (rc != 0) {
        free(a->path);
        free(a);
        return rc;
    }
    uv_pipe_init(cfg->loop, &a->listener, 0);
    a->listener.data = a;
    /* created 0600 from the start: no window in which others could connect */
    mode_t old = umask(0177);
    int brc = uv_pipe_bind(&a->listener, cfg->path);
    umask(old);
    if (brc != 0 || uv_listen((uv_stream_t *)&a->listener, 64, on_connection) != 0) {
        op_log_error("admin", "cannot listen on %s: %s", cfg->path, uv_strerror(brc));
        uv_close((uv_handle_t *)&a->listener, NULL);
        uv_run(cfg->loop, UV_RUN_NOWAIT); /* its close callback */
        free(a->path);
        free(a);
        return brc == UV_EADDRINUSE ? OP_EADDRINUSE : OP_EIO;
    }
    if (a->has_group && (chown(cfg->path, (uid_t)-1, a->gid) != 0 || chmod(cfg->path, 0660) != 0))
        op_log_warn("admin", "%s: cannot give admin_group access: %s", cfg->path, strerror(errno));
    a->listening = true;
    uv_async_init(cfg->loop, &a->async, on_async);
    a->async.data = a;
    op_mailbox_init(&a->mailbox, on_wake, &a->async);
    op_log_info("admin", "admin API on %s", cfg->path);
    *out = a;
    return 0;
}

void op_admin_stop(struct op_admin *a)
{
    if (a == NULL || a->stopped)
        return;
    a->stopped = true;
    if (a->listening) {
        uv_close((uv_handle_t *)&a->listener, NULL);
        a->listening = false;
        unlink(a->path);
    }
    while (a->conns != NULL)
        conn_close(a->conns);
    /* no more wake-ups: acknowledgements still coming wait for op_admin_free */
    pthread_mutex_lock(&a->mailbox.lock);
    a->mailbox.wake = NULL;
    pthread_mutex_unlock(&a->mailbox.lock);
    uv_close((uv_handle_t *)&a->async, NULL);
}

void op_admin_free(struct op_admin *a)
{
    if (a == NULL)
        return;
    op_mailbox_drain(&a->mailbox); /* the store is closed: nothing more comes */
    while (a->purges != NULL) {    /* never acknowledged (the store failed to start them) */
        struct admin_purge *p = a->purges;
        a->purges = p->next;
        free(p);
    }
    op_mailbox_fini(&a->mailbox);
    free(a->path);
    free(a);
}

bool op_admin_draining(const struct op_admin *a)
{
    return a != NULL && a->draining;
}
