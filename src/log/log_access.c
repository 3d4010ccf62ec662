/* The access log writer: workers hand it blocks of lines; one thread appends
 * them to the file, so a slow disk never stalls a loop. */
#include "outpost/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct block {
    struct block *next; /* owned: queue link */
    size_t len;
    uint32_t lines;
    char data[];
};

struct op_access_log {
    int fd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct block *head, *tail; /* owned: waiting to be written */
    size_t backlog;            /* bytes in the queue */
    bool stopping;
    uint64_t dropped; /* lines */
};

static void *writer_main(void *arg)
{
    struct op_access_log *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (l->head == NULL && !l->stopping)
            pthread_cond_wait(&l->cond, &l->lock);
        if (l->head == NULL)
            break;
        struct block *b = l->head;
        l->head = b->next;
        if (l->head == NULL)
            l->tail = NULL;
        l->backlog -= b->len;
        pthread_mutex_unlock(&l->lock);
        size_t off = 0;
        while (off < b->len) {
            ssize_t n = write(l->fd, b->data + off, b->len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                op_log_warn("access", "write: %s; lines lost", strerror(errno));
                break;
            }
            off += (size_t)n;
        }
        free(b);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

int op_access_log_open(const char *path, struct op_access_log **out)
{
    struct op_access_log *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return OP_ENOMEM;
    l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (l->fd < 0) {
        op_log_error("access", "cannot open access log %s: %s", path, strerror(errno));
        free(l);
        return OP_EIO;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
        close(l->fd);
        free(l);
        return OP_ENOMEM;
    }
    *out = l;
    return 0;
}

void op_access_log_close(struct op_access_log *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    l->stopping = true;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    close(l->fd);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
}

uint64_t op_access_log_dropped(struct op_access_log *l)
{
    pthread_mutex_lock(&l->lock);
    uint64_t n = l->dropped;
    pthread_mutex_unlock(&l->lock);
    return n;
}

void op_access_buf_init(struct op_access_buf *b, struct op_access_log *log)
{
    b->log = log;
    op_buf_init(&b->buf, OP_ACCESS_BLOCK * 2);
}

void op_access_buf_fini(struct op_access_buf *b)
{
    op_access_flush(b);
    op_buf_fini(&b->buf);
}

static uint32_t count_lines(const char *p, size_t len)
{
    uint32_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += p[i] == '\n';
    return n;
}

void op_access_flush(struct op_access_buf *b)
{
    struct op_access_log *l = b->log;
    if (l == NULL || b->buf.len == 0)
        return;
    struct block *blk = malloc(sizeof(*blk) + b->buf.len);
    uint32_t lines = count_lines(b->buf.data, b->buf.len);
    pthread_mutex_lock(&l->lock);
    if (blk == NULL || l->backlog + b->buf.len > OP_ACCESS_BACKLOG) {
        l->dropped += lines; /* the disk is not keeping up: never block the loop */
        pthread_mutex_unlock(&l->lock);
        free(blk);
        op_buf_reset(&b->buf);
        return;
    }
    blk->next = NULL;
    blk->len = b->buf.len;
    blk->lines = lines;
    memcpy(blk->data, b->buf.data, b->buf.len);
    if (l->tail)
        l->tail->next = blk;
    else
        l->head = blk;
    l->tail = blk;
    l->backlog += blk->len;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
    op_buf_reset(&b->buf);
}

void op_access_line(struct op_access_buf *b, const char *fmt, ...)
{
    if (b->log == NULL)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2;
    line[len++] = '\n';
    if (b->buf.len + len > OP_ACCESS_BLOCK)
        op_access_flush(b);
    if (op_buf_append(&b->buf, line, len) != 0)
        op_access_flush(b);
}
