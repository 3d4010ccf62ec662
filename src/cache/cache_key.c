/* Cache keys: the primary key (RFC 9111 §2) and the Vary secondary key (§4.1). */
#include "outpost/cache.h"

#include <ctype.h>
#include <string.h>

static int append_lower(struct op_buf *out, const char *p, size_t len)
{
    size_t at = out->len;
    int rc = op_buf_append(out, p, len);
    for (size_t i = at; rc == 0 && i < out->len; i++)
        out->data[i] = (char)tolower((unsigned char)out->data[i]);
    return rc;
}

int op_cache_key_primary(const char *host, size_t hlen, const char *target, size_t tlen,
                         struct op_buf *out)
{
    /* absolute-form: keep only the path and query; the gate checked the authority */
    const char *path;
    size_t plen;
    bool slash;
    op_http_origin_form(target, tlen, &path, &plen, &slash);
    if (hlen > 3 && memcmp(host + hlen - 3, ":80", 3) == 0)
        hlen -= 3;
    int rc = op_buf_append(out, "http://", 7);
    if (rc == 0)
        rc = append_lower(out, host, hlen);
    if (rc == 0 && slash)
        rc = op_buf_append(out, "/", 1);
    if (rc == 0)
        rc = op_buf_append(out, path, plen);
    return rc;
}

bool op_cache_vary_names(const struct op_headers *resp, struct op_buf *out)
{
    uint64_t st = 0;
    const char *e;
    size_t elen;
    while (op_headers_next_elem(resp, "vary", &st, &e, &elen)) {
        if (elen == 1 && e[0] == '*')
            return false;
        if ((out->len > 0 && op_buf_append(out, ",", 1) != 0) || append_lower(out, e, elen) != 0)
            return false;
    }
    return true;
}

int op_cache_key_secondary(const char *names, size_t nlen, const struct op_headers *req,
                           struct op_buf *out)
{
    size_t i = 0;
    while (i < nlen) {
        const char *comma = memchr(names + i, ',', nlen - i);
        size_t end = comma ? (size_t)(comma - names) : nlen;
        char name[128];
        size_t len = end - i;
        if (len == 0 || len >= sizeof(name)) {
            i = end + 1;
            continue;
        }
        memcpy(name, names + i, len);
        name[len] = '\0';
        int rc = op_buf_appendf(out, "%s=", name);
        /* combine the field lines, each element trimmed, joined by ", " (§4.1);
         * language tags, codings and charsets compare without case */
        bool fold = op_streq_nocase(name, len, "accept-language") ||
                    op_streq_nocase(name, len, "accept-encoding") ||
                    op_streq_nocase(name, len, "accept-charset");
        uint64_t st = 0;
        const char *e;
        size_t elen;
        bool first = true;
        while (rc == 0 && op_headers_next_elem(req, name, &st, &e, &elen)) {
            if (!first)
                rc = op_buf_append(out, ", ", 2);
            if (rc == 0)
                rc = fold ? append_lower(out, e, elen) : op_buf_append(out, e, elen);
            first = false;
        }
        if (rc == 0)
            rc = op_buf_append(out, "\n", 1);
        if (rc != 0)
            return rc;
        i = end + 1;
    }
    return 0;
}
