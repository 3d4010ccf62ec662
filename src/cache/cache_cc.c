/* Cache-Control directive parsing (RFC 9111 §5.2); CDN-Cache-Control has its
 * own (cache_cdn_cc.c). */
#include "cache_int.h"

#include <string.h>

int64_t op_cache__delta(const char *v, size_t vlen, bool quoted)
{
    if (quoted && vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
        v++;
        vlen -= 2;
    }
    if (vlen == 0)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        if (n < OP_CACHE_DELTA_MAX)
            n = n * 10 + (v[i] - '0');
    }
    return n > OP_CACHE_DELTA_MAX ? OP_CACHE_DELTA_MAX : n;
}

struct directive {
    const char *name;
    uint32_t flag;
    size_t off; /* offset of its int64_t argument, or 0 */
};

#define ARG(f) offsetof(struct op_cc, f)
static const struct directive directives[] = {
    {"no-store", OP_CC_NO_STORE, 0},
    {"no-cache", OP_CC_NO_CACHE, 0},
    {"private", OP_CC_PRIVATE, 0},
    {"public", OP_CC_PUBLIC, 0},
    {"must-revalidate", OP_CC_MUST_REVALIDATE, 0},
    {"proxy-revalidate", OP_CC_PROXY_REVALIDATE, 0},
    {"max-age", OP_CC_MAX_AGE, ARG(max_age)},
    {"s-maxage", OP_CC_S_MAXAGE, ARG(s_maxage)},
    {"stale-while-revalidate", OP_CC_SWR, ARG(swr)},
    {"stale-if-error", OP_CC_SIE, ARG(sie)},
    {"max-stale", OP_CC_MAX_STALE, ARG(max_stale)},
    {"min-fresh", OP_CC_MIN_FRESH, ARG(min_fresh)},
    {"only-if-cached", OP_CC_ONLY_IF_CACHED, 0},
    {"immutable", OP_CC_IMMUTABLE, 0},
    {"must-understand", OP_CC_MUST_UNDERSTAND, 0},
    {NULL, 0, 0},
};

bool op_cache_cc_parse(const struct op_headers *h, const char *field, struct op_cc *cc)
{
    memset(cc, 0, sizeof(*cc));
    uint64_t st = 0;
    const char *e;
    size_t elen;
    bool present = op_headers_find(h, field, 0) >= 0;

    while (op_headers_next_elem(h, field, &st, &e, &elen)) {
        const char *eq = memchr(e, '=', elen);
        size_t nlen = eq ? (size_t)(eq - e) : elen;
        while (nlen > 0 && (e[nlen - 1] == ' ' || e[nlen - 1] == '\t'))
            nlen--;
        for (const struct directive *d = directives; d->name != NULL; d++) {
            if (!op_streq_nocase(e, nlen, d->name))
                continue;
            if (cc->flags & d->flag)
                break; /* the first occurrence wins */
            cc->flags |= d->flag;
            if (d->off != 0) {
                int64_t *arg = (int64_t *)(void *)((char *)cc + d->off);
                if (eq == NULL) {
                    /* bare max-stale means any staleness; others without a value are
                     * invalid and read as 0, the safe side */
                    *arg = d->flag == OP_CC_MAX_STALE ? INT64_MAX : 0;
                } else {
                    const char *v = eq + 1;
                    size_t vlen = elen - (size_t)(v - e);
                    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
                        v++;
                        vlen--;
                    }
                    int64_t n = op_cache__delta(v, vlen, true);
                    *arg = n < 0 ? 0 : n;
                }
            }
            break;
        }
    }
    return present;
}
