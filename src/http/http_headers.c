/* The header table: ordered fields, case-insensitive names, one owned byte buffer. */
#include "outpost/http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void op_headers_init(struct op_headers *h, uint32_t max_fields, size_t max_bytes)
{
    h->f = NULL;
    h->n = h->cap = 0;
    h->max = max_fields;
    op_buf_init(&h->bytes, max_bytes);
}

void op_headers_fini(struct op_headers *h)
{
    free(h->f);
    h->f = NULL;
    h->n = h->cap = 0;
    op_buf_fini(&h->bytes);
}

void op_headers_reset(struct op_headers *h)
{
    h->n = 0;
    op_buf_reset(&h->bytes);
}

static int new_field(struct op_headers *h)
{
    if (h->n >= h->max)
        return OP_ETOOBIG;
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        if (cap > h->max)
            cap = h->max;
        struct op_hfield *f = realloc(h->f, cap * sizeof(*f));
        if (f == NULL)
            return OP_ENOMEM;
        h->f = f;
        h->cap = cap;
    }
    struct op_hfield *f = &h->f[h->n++];
    f->name = f->value = (uint32_t)h->bytes.len;
    f->name_len = f->value_len = 0;
    return 0;
}

int op_headers_add(struct op_headers *h, const char *name, size_t nlen, const char *value,
                   size_t vlen)
{
    int rc = new_field(h);
    if (rc != 0)
        return rc;
    if ((rc = op_headers_extend_name(h, name, nlen, false)) != 0 ||
        (rc = op_headers_extend_value(h, value, vlen)) != 0) {
        h->n--;
        return rc;
    }
    return 0;
}

int op_headers_copy(struct op_headers *to, const struct op_headers *from)
{
    op_headers_reset(to);
    for (uint32_t i = 0; i < from->n; i++) {
        size_t nlen, vlen;
        const char *n = op_headers_name(from, i, &nlen);
        const char *v = op_headers_value(from, i, &vlen);
        int rc = nlen > 0 ? op_headers_add(to, n, nlen, v, vlen) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

int op_headers_extend_name(struct op_headers *h, const char *p, size_t len, bool first)
{
    int rc;
    if (first && (rc = new_field(h)) != 0)
        return rc;
    OP_ASSERT(h->n > 0);
    struct op_hfield *f = &h->f[h->n - 1];
    if ((rc = op_buf_append(&h->bytes, p, len)) != 0)
        return rc;
    f->name_len += (uint32_t)len;
    f->value = (uint32_t)h->bytes.len;
    return 0;
}

int op_headers_extend_value(struct op_headers *h, const char *p, size_t len)
{
    OP_ASSERT(h->n > 0);
    struct op_hfield *f = &h->f[h->n - 1];
    int rc = op_buf_append(&h->bytes, p, len);
    if (rc != 0)
        return rc;
    f->value_len += (uint32_t)len;
    return 0;
}

const char *op_headers_name(const struct op_headers *h, uint32_t i, size_t *len)
{
    *len = h->f[i].name_len;
    return h->bytes.data + h->f[i].name;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

const char *op_headers_value(const struct op_headers *h, uint32_t i, size_t *len)
{
    const char *v = h->bytes.data + h->f[i].value;
    size_t n = h->f[i].value_len;
    while (n > 0 && is_blank(v[0])) {
        v++;
        n--;
    }
    while (n > 0 && is_blank(v[n - 1]))
        n--;
    *len = n;
    return v;
}

int op_headers_find(const struct op_headers *h, const char *name, uint32_t from)
{
    size_t nlen = strlen(name);
    for (uint32_t i = from; i < h->n; i++) {
        if (h->f[i].name_len == nlen && strncasecmp(h->bytes.data + h->f[i].name, name, nlen) == 0)
            return (int)i;
    }
    return -1;
}

const char *op_headers_get(const struct op_headers *h, const char *name, size_t *len)
{
    int i = op_headers_find(h, name, 0);
    if (i < 0)
        return NULL;
    return op_headers_value(h, (uint32_t)i, len);
}

bool op_headers_next_elem(const struct op_headers *h, const char *name, uint64_t *state,
                          const char **elem, size_t *elen)
{
    uint32_t fi = (uint32_t)(*state >> 32);
    uint32_t off = (uint32_t)*state;
    for (;;) {
        int i = op_headers_find(h, name, fi);
        if (i < 0)
            return false;
        fi = (uint32_t)i;
        size_t vlen;
        const char *v = op_headers_value(h, fi, &vlen);
        while (off < vlen) {
            size_t start = off;
            bool quoted = false;
            while (off < vlen && (quoted || v[off] != ',')) {
                if (v[off] == '"')
                    quoted = !quoted;
                off++;
            }
            size_t end = off;
            if (off < vlen)
                off++; /* the comma */
            while (start < end && is_blank(v[start]))
                start++;
            while (end > start && is_blank(v[end - 1]))
                end--;
            if (end > start) {
                *elem = v + start;
                *elen = end - start;
                *state = ((uint64_t)fi << 32) | off;
                return true;
            }
        }
        fi++;
        off = 0;
    }
}

bool op_headers_has_token(const struct op_headers *h, const char *name, const char *token)
{
    uint64_t st = 0;
    const char *e;
    size_t elen;
    while (op_headers_next_elem(h, name, &st, &e, &elen)) {
        if (op_streq_nocase(e, elen, token))
            return true;
    }
    return false;
}

void op_headers_remove(struct op_headers *h, uint32_t i)
{
    h->f[i].name_len = 0;
}

void op_headers_remove_all(struct op_headers *h, const char *name)
{
    int i = 0;
    while ((i = op_headers_find(h, name, (uint32_t)i)) >= 0)
        op_headers_remove(h, (uint32_t)i++);
}

int op_headers_serialize(const struct op_headers *h, struct op_buf *out)
{
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->f[i].name_len == 0)
            continue;
        size_t vlen;
        const char *v = op_headers_value(h, i, &vlen);
        int rc;
        if ((rc = op_buf_append(out, h->bytes.data + h->f[i].name, h->f[i].name_len)) != 0 ||
            (rc = op_buf_append(out, ": ", 2)) != 0 || (rc = op_buf_append(out, v, vlen)) != 0 ||
            (rc = op_buf_append(out, "\r\n", 2)) != 0)
            return rc;
    }
    return 0;
}

int op_headers_parse_block(struct op_headers *h, const char *p, size_t len)
{
    op_headers_reset(h);
    size_t i = 0;
    while (i < len) {
        const char *eol = memchr(p + i, '\n', len - i);
        size_t end = eol ? (size_t)(eol - p) : len;
        size_t lend = end;
        if (lend > i && p[lend - 1] == '\r')
            lend--;
        const char *colon = memchr(p + i, ':', lend - i);
        if (colon == NULL || colon == p + i)
            return OP_EPARSE;
        size_t nlen = (size_t)(colon - (p + i));
        int rc = op_headers_add(h, p + i, nlen, colon + 1, lend - (i + nlen + 1));
        if (rc != 0)
            return rc;
        i = end + 1;
    }
    return 0;
}

void op_headers_strip_hop_by_hop(struct op_headers *h)
{
    static const char *const fixed[] = {"keep-alive",
                                        "te",
                                        "trailer",
                                        "transfer-encoding",
                                        "upgrade",
                                        "proxy-connection",
                                        "proxy-authenticate",
                                        "proxy-authorization",
                                        NULL};
    uint64_t st = 0;
    const char *e;
    size_t elen;
    char name[64];
    /* the fields Connection names go first; the names live in h's own bytes, so
     * copy each before removing anything */
    while (op_headers_next_elem(h, "connection", &st, &e, &elen)) {
        /* end-to-end fields that route, key or frame the message are never
         * dropped because Connection names them (RFC 9110 §7.6.1 lets a
         * sender list only hop-by-hop fields there) */
        if (elen >= sizeof(name) || op_streq_nocase(e, elen, "host") ||
            op_streq_nocase(e, elen, "content-length"))
            continue;
        memcpy(name, e, elen);
        name[elen] = '\0';
        op_headers_remove_all(h, name);
    }
    op_headers_remove_all(h, "connection");
    for (size_t i = 0; fixed[i] != NULL; i++)
        op_headers_remove_all(h, fixed[i]);
}
