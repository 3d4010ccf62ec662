/* Authorities: the "host [":" port]" of an http(s) URI or a Host field
 * (RFC 3986 §3.2, RFC 9112 §3.2), checked and written in the one normal form
 * that the gate, the cache key and the admin purges share (RFC 9110 §4.2.3). */
#include "outpost/http.h"

#include <string.h>
#include <strings.h>

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool op_http_is_unreserved(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(unsigned char c)
{
    return c != 0 && strchr("!$&'()*+,;=", c) != NULL;
}

static char lower(unsigned char c)
{
    return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

static const char hexdig[] = "0123456789ABCDEF";

/* "%HH" at p (len bytes left)? Its octet, or -1. */
static int pct_octet(const char *p, size_t len)
{
    if (len < 3 || p[0] != '%')
        return -1;
    int hi = hex_val((unsigned char)p[1]), lo = hex_val((unsigned char)p[2]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* IP-literal = "[" ( IPv6address / IPvFuture ) "]", without its brackets. The
 * IPv6 check is of its alphabet and shape; inet_pton-exactness is not needed
 * for a key, only that nothing but an address fits between the brackets. */
static bool ip_literal_ok(const char *p, size_t len)
{
    if (len >= 4 && (p[0] == 'v' || p[0] == 'V')) { /* IPvFuture */
        size_t i = 1;
        while (i < len && hex_val((unsigned char)p[i]) >= 0)
            i++;
        if (i == 1 || i + 1 >= len || p[i] != '.')
            return false;
        for (i++; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!op_http_is_unreserved(c) && !is_sub_delim(c) && c != ':')
                return false;
        }
        return true;
    }
    size_t colons = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == ':')
            colons++;
        else if (hex_val(c) < 0 && c != '.')
            return false;
    }
    return len >= 2 && colons >= 2 && colons <= 7;
}

size_t op_http_authority_host_len(const char *a, size_t len)
{
    const char *end = len > 0 && a[0] == '[' ? memchr(a, ']', len) : memchr(a, ':', len);
    if (end == NULL)
        return len;
    return (size_t)(end - a) + (a[0] == '[' ? 1 : 0);
}

int op_http_authority_norm(const char *a, size_t len, bool https, char out[OP_HTTP_AUTHORITY_MAX],
                           size_t *outlen)
{
    size_t hend; /* end of the host */
    if (len > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL || !ip_literal_ok(a + 1, (size_t)(close - a) - 1))
            return OP_EINVAL;
        hend = (size_t)(close - a) + 1;
        if (hend < len && a[hend] != ':')
            return OP_EINVAL;
    } else {
        hend = 0;
        while (hend < len && a[hend] != ':') {
            unsigned char c = (unsigned char)a[hend];
            if (c == '%') {
                if (pct_octet(a + hend, len - hend) < 0)
                    return OP_EINVAL;
                hend += 3;
                continue;
            }
            /* a comma reads as a list of hosts (RFC 9110 §5.3, RFC 9112
             * §3.2: more than one Host is a 400), whatever RFC 3986 allows */
            if ((!op_http_is_unreserved(c) && !is_sub_delim(c)) || c == ',')
                return OP_EINVAL;
            hend++;
        }
    }
    if (hend == 0 || hend > OP_HTTP_HOST_MAX)
        return OP_EINVAL; /* RFC 9110 §4.2.1: an http(s) URI has a host */
    /* port = *DIGIT; empty, or the scheme's default, is left out */
    unsigned long port = 0;
    size_t pdigits = 0;
    for (size_t i = hend + 1; i < len; i++) {
        if (!is_digit((unsigned char)a[i]))
            return OP_EINVAL;
        port = port * 10 + (unsigned long)(a[i] - '0');
        if (port > 65535)
            return OP_EINVAL;
        pdigits++;
    }
    if (pdigits > 0 && port == 0)
        return OP_EINVAL;
    /* the host: lower-cased, unreserved octets decoded, other percent-encodings
     * in upper-case hex; never longer than it came */
    size_t n = 0;
    for (size_t i = 0; i < hend;) {
        int o = a[i] == '%' ? pct_octet(a + i, hend - i) : -1;
        if (o >= 0 && op_http_is_unreserved((unsigned char)o)) {
            out[n++] = lower((unsigned char)o);
            i += 3;
        } else if (o >= 0) {
            out[n++] = '%';
            out[n++] = hexdig[o >> 4];
            out[n++] = hexdig[o & 15];
            i += 3;
        } else {
            out[n++] = lower((unsigned char)a[i]);
            i++;
        }
    }
    if (pdigits > 0 && port != (https ? 443u : 80u)) {
        char digits[8];
        size_t d = 0;
        for (unsigned long p = port; p > 0; p /= 10)
            digits[d++] = (char)('0' + p % 10);
        out[n++] = ':';
        while (d > 0)
            out[n++] = digits[--d];
    }
    *outlen = n;
    return 0;
}

bool op_http_url_split(const char *u, size_t len, bool *https, const char **auth, size_t *alen,
                       const char **rest, size_t *rlen)
{
    size_t skip;
    if (len >= 7 && strncasecmp(u, "http://", 7) == 0)
        skip = 7;
    else if (len >= 8 && strncasecmp(u, "https://", 8) == 0)
        skip = 8;
    else
        return false;
    *https = skip == 8;
    size_t n = 0;
    while (skip + n < len && u[skip + n] != '/' && u[skip + n] != '?' && u[skip + n] != '#')
        n++;
    *auth = u + skip;
    *alen = n;
    *rest = u + skip + n;
    *rlen = len - skip - n;
    return true;
}

bool op_http_authority_same(const char *a, size_t alen, const char *b, size_t blen, bool https)
{
    char na[OP_HTTP_AUTHORITY_MAX], nb[OP_HTTP_AUTHORITY_MAX];
    size_t la, lb;
    return op_http_authority_norm(a, alen, https, na, &la) == 0 &&
           op_http_authority_norm(b, blen, https, nb, &lb) == 0 && la == lb &&
           memcmp(na, nb, la) == 0;
}

const char *op_http_check_authority(const char *target, size_t tlen, const char *host, size_t hlen)
{
    char scratch[OP_HTTP_AUTHORITY_MAX];
    size_t n;
    if (host != NULL && op_http_authority_norm(host, hlen, false, scratch, &n) != 0)
        return "malformed Host";
    bool https;
    const char *a, *rest;
    size_t alen, rlen;
    if (tlen > 0 && (target[0] == '/' || (tlen == 1 && target[0] == '*')))
        return NULL;
    if (!op_http_url_split(target, tlen, &https, &a, &alen, &rest, &rlen))
        return "unsupported request-target form";
    if (op_http_authority_norm(a, alen, https, scratch, &n) != 0)
        return "bad authority in absolute-form target";
    /* RFC 9112 §3.2.2 lets a server ignore Host here; a cache must not key on
     * one and route on the other */
    if (host != NULL && !op_http_authority_same(a, alen, host, hlen, https))
        return "absolute-form authority differs from Host";
    return NULL;
}
