/* The Keep-Alive response field's timeout (RFC 2068 §19.7.1.1, still sent by
 * HTTP/1.1 servers such as Node and Apache): how long the server keeps an
 * idle connection open. A client that reuses one past that sends its request
 * into a close; see op_http_keep_alive_timeout_ms. */
#include "outpost/http.h"

#include <string.h>

/* "timeout" OWS "=" OWS 1*DIGIT, or a quoted 1*DIGIT; false for anything else */
static bool timeout_param(const char *e, size_t len, uint64_t *seconds)
{
    static const char name[] = "timeout";
    size_t i = sizeof(name) - 1;
    if (len <= i || !op_streq_nocase(e, i, name))
        return false;
    while (i < len && (e[i] == ' ' || e[i] == '\t'))
        i++;
    if (i == len || e[i++] != '=')
        return false;
    while (i < len && (e[i] == ' ' || e[i] == '\t'))
        i++;
    bool quoted = i < len && e[i] == '"';
    if (quoted) {
        if (len - i < 2 || e[len - 1] != '"')
            return false;
        i++;
        len--;
    }
    if (i == len)
        return false;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (e[i] < '0' || e[i] > '9')
            return false;
        if (v < OP_HTTP_KEEP_ALIVE_MAX_S)
            v = v * 10 + (uint64_t)(e[i] - '0');
    }
    *seconds = v < OP_HTTP_KEEP_ALIVE_MAX_S ? v : OP_HTTP_KEEP_ALIVE_MAX_S;
    return true;
}

int64_t op_http_keep_alive_timeout_ms(const struct op_headers *h)
{
    int64_t best = -1;
    uint64_t st = 0;
    const char *e;
    size_t elen;
    while (op_headers_next_elem(h, "keep-alive", &st, &e, &elen)) {
        uint64_t s;
        /* more than one: the shortest, since the server may mean any */
        if (timeout_param(e, elen, &s) && (best < 0 || (int64_t)s * 1000 < best))
            best = (int64_t)s * 1000;
    }
    return best;
}
