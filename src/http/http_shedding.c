/* Is an origin's 503/429 load being shed, or a representation? */
#include "outpost/http.h"

static bool has_lifetime(const struct op_headers *h)
{
    uint64_t st = 0;
    const char *e;
    size_t len;
    while (op_headers_next_elem(h, "cache-control", &st, &e, &len)) {
        size_t n = 0;
        while (n < len && e[n] != '=' && e[n] != ' ' && e[n] != '\t')
            n++;
        if (op_streq_nocase(e, n, "max-age") || op_streq_nocase(e, n, "s-maxage"))
            return true;
    }
    return false;
}

enum op_shed op_http_sheds_load(int status, const struct op_headers *h)
{
    if (status != 503 && status != 429)
        return OP_SHED_NO;
    if (op_headers_find(h, "retry-after", 0) >= 0)
        return OP_SHED_SAID;
    if (status == 429)
        return OP_SHED_LIKELY;
    /* A validator or an expiry makes it a page the origin means to be
     * stored (a maintenance notice, a resource that is unavailable), which
     * says nothing about its load. */
    bool page = op_headers_find(h, "etag", 0) >= 0 || op_headers_find(h, "last-modified", 0) >= 0 ||
                op_headers_find(h, "expires", 0) >= 0 || has_lifetime(h);
    return page ? OP_SHED_NO : OP_SHED_LIKELY;
}
