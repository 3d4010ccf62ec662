/* Bounded byte buffers: the only growable memory most modules need. */
#include "outpost/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void op_buf_init(struct op_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void op_buf_fini(struct op_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int op_buf_reserve(struct op_buf *b, size_t n, char **space)
{
    if (n > b->max || b->len > b->max - n)
        return OP_ETOOBIG;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        if (cap > b->max)
            cap = b->max;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return OP_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (space != NULL)
        *space = b->data + b->len;
    return 0;
}

void op_buf_commit(struct op_buf *b, size_t n)
{
    OP_ASSERT(n <= b->cap - b->len);
    b->len += n;
}

int op_buf_append(struct op_buf *b, const void *p, size_t n)
{
    char *space;
    int rc = op_buf_reserve(b, n, &space);
    if (rc != 0)
        return rc;
    if (n > 0)
        memcpy(space, p, n);
    b->len += n;
    return 0;
}

int op_buf_append_str(struct op_buf *b, const char *s)
{
    return op_buf_append(b, s, strlen(s));
}

size_t op_dec(int64_t v, char out[OP_DEC_MAX])
{
    char rev[OP_DEC_MAX];
    size_t n = 0;
    /* in unsigned arithmetic, so INT64_MIN has its digits too */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        rev[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = rev[--n];
    return len;
}

int op_buf_append_int(struct op_buf *b, int64_t v)
{
    char d[OP_DEC_MAX];
    return op_buf_append(b, d, op_dec(v, d));
}

int op_buf_appendf(struct op_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return OP_EINVAL;
    if ((size_t)n < sizeof(small))
        return op_buf_append(b, small, (size_t)n);
    char *space;
    int rc = op_buf_reserve(b, (size_t)n + 1, &space);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(space, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void op_buf_consume(struct op_buf *b, size_t n)
{
    OP_ASSERT(n <= b->len);
    if (n < b->len)
        memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void op_buf_reset(struct op_buf *b)
{
    b->len = 0;
}

char *op_buf_steal(struct op_buf *b, size_t *len)
{
    char *p = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
