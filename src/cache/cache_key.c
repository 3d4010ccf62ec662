/* Cache keys: the primary key (RFC 9111 §2) and the Vary secondary key (§4.1).
 * The primary key is the one normal form of a URI (RFC 9110 §4.2.3) that
 * lookups, invalidations and every purge kind share. */
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

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* The path keeps its bytes but for percent-encodings: an unreserved octet is
 * decoded, others are written in upper-case hex (RFC 3986 §6.2.2.1-2). A '%'
 * not followed by two hex digits stays as it is. The query goes as sent. */
static int append_path(struct op_buf *out, const char *p, size_t len)
{
    static const char hexdig[] = "0123456789ABCDEF";
    size_t done = 0, j = 0; /* p[done..j) is still to copy as it is */
    int rc = 0;
    while (rc == 0 && j < len && p[j] != '?') {
        int hi = p[j] == '%' && j + 2 < len ? hex_val(p[j + 1]) : -1;
        int lo = hi >= 0 ? hex_val(p[j + 2]) : -1;
        if (lo < 0) {
            j++;
            continue;
        }
        int o = hi * 16 + lo;
        char dec = (char)o, enc[3] = {'%', hexdig[hi], hexdig[lo]};
        rc = op_buf_append(out, p + done, j - done);
        if (rc == 0)
            rc = op_http_is_unreserved((unsigned char)o) ? op_buf_append(out, &dec, 1)
                                                         : op_buf_append(out, enc, 3);
        j += 3;
        done = j;
    }
    return rc == 0 ? op_buf_append(out, p + done, len - done) : rc;
}

/* scheme "://" authority path-and-query [" " site]; <rest> is what follows
 * the authority (path, query, fragment; may be empty). <root>: an empty
 * <rest> means "/" (not so for a purge prefix). */
static int key_build(bool https, const char *auth, size_t alen, const char *rest, size_t rlen,
                     bool root, const char *site, struct op_buf *out)
{
    char norm[OP_HTTP_AUTHORITY_MAX];
    size_t nlen = 0;
    if (alen > 0 && op_http_authority_norm(auth, alen, https, norm, &nlen) != 0)
        return OP_EINVAL;
    const char *frag = memchr(rest, '#', rlen);
    if (frag != NULL)
        rlen = (size_t)(frag - rest);
    size_t at = out->len;
    int rc = op_buf_append(out, https ? "https://" : "http://", https ? 8 : 7);
    if (rc == 0)
        rc = op_buf_append(out, norm, nlen);
    /* §4.2.3: an empty path is "/" (a prefix keeps it empty, to cover all) */
    if (rc == 0 && (rlen == 0 ? root : rest[0] == '?'))
        rc = op_buf_append(out, "/", 1);
    if (rc == 0)
        rc = append_path(out, rest, rlen);
    if (rc == 0 && site != NULL) {
        rc = op_buf_append(out, " ", 1);
        if (rc == 0)
            rc = append_lower(out, site, strlen(site));
    }
    if (rc != 0)
        out->len = at;
    return rc;
}

int op_cache_key_primary(bool https, const char *host, size_t hlen, const char *target, size_t tlen,
                         const char *site, struct op_buf *out)
{
    const char *auth, *rest;
    size_t alen, rlen;
    bool abs_https;
    if (tlen > 0 && target[0] != '/' && target[0] != '*' &&
        op_http_url_split(target, tlen, &abs_https, &auth, &alen, &rest, &rlen)) {
        /* absolute-form: its scheme and authority (the gate made sure Host
         * names the same one) */
        if (alen == 0)
            return OP_EINVAL;
        return key_build(abs_https, auth, alen, rest, rlen, true, site, out);
    }
    return key_build(https, host, hlen, target, tlen, false, site, out);
}

int op_cache_key_url(const char *url, size_t len, bool prefix, struct op_buf *out)
{
    const char *auth, *rest;
    size_t alen, rlen;
    bool https;
    if (!op_http_url_split(url, len, &https, &auth, &alen, &rest, &rlen) || alen == 0)
        return OP_EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return OP_EINVAL;
    return key_build(https, auth, alen, rest, rlen, !prefix, NULL, out);
}

int op_cache_key_host(const char *host, size_t len, struct op_buf *out)
{
    if (len == 1 && host[0] == '*')
        return op_buf_append(out, "*", 1);
    char norm[OP_HTTP_AUTHORITY_MAX];
    size_t nlen;
    if (op_http_authority_norm(host, len, false, norm, &nlen) != 0)
        return OP_EINVAL;
    return op_buf_append(out, norm, nlen);
}

size_t op_cache_key_url_len(const char *key, size_t len)
{
    const char *sp = memchr(key, ' ', len);
    return sp != NULL ? (size_t)(sp - key) : len;
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
