/* Surrogate-Control (W3C Edge Architecture 1.0 §3): the origin's directives
 * for surrogates such as this node, each optionally targeted at one device
 * token ("max-age=60;outpost"). The directives aimed at us become a struct
 * op_cc, which then takes the place of Cache-Control as CDN-Cache-Control
 * does. */
#include "cache_int.h"

#include <string.h>

/* max-age=FRESH[+STALE]: STALE is how long past FRESH the copy may serve
 * when the origin cannot be reached, which is stale-if-error. */
static bool max_age(const char *v, size_t len, struct op_cc *cc)
{
    const char *plus = memchr(v, '+', len);
    size_t flen = plus ? (size_t)(plus - v) : len;
    int64_t fresh = op_cache__delta(v, flen, false);
    if (fresh < 0)
        return false; /* malformed (blanks around "=" too): ignored */
    cc->flags |= OP_CC_MAX_AGE;
    cc->max_age = fresh;
    int64_t stale = plus != NULL ? op_cache__delta(plus + 1, len - flen - 1, false) : -1;
    if (stale >= 0) {
        cc->flags |= OP_CC_SIE;
        cc->sie = stale;
    }
    return true;
}

bool op_cache_surrogate_parse(const struct op_headers *h, const char *device, struct op_cc *cc)
{
    memset(cc, 0, sizeof(*cc));
    bool mine = false;
    uint64_t st = 0;
    const char *e;
    size_t elen;
    while (op_headers_next_elem(h, "surrogate-control", &st, &e, &elen)) {
        const char *semi = memchr(e, ';', elen);
        size_t dlen = semi ? (size_t)(semi - e) : elen;
        if (semi != NULL) {
            const char *t = semi + 1;
            size_t tlen = elen - dlen - 1;
            while (tlen > 0 && (*t == ' ' || *t == '\t')) {
                t++;
                tlen--;
            }
            if (device == NULL || !op_streq_nocase(t, tlen, device))
                continue; /* for another device */
        }
        while (dlen > 0 && (e[dlen - 1] == ' ' || e[dlen - 1] == '\t'))
            dlen--;
        const char *eq = memchr(e, '=', dlen);
        size_t nlen = eq ? (size_t)(eq - e) : dlen;
        if (op_streq_nocase(e, nlen, "max-age") && eq != NULL) {
            if (!(cc->flags & OP_CC_MAX_AGE))
                mine |= max_age(eq + 1, dlen - nlen - 1, cc);
        } else if (op_streq_nocase(e, nlen, "no-store") ||
                   op_streq_nocase(e, nlen, "no-store-remote")) {
            /* this node is a remote surrogate: both keep it out of the store */
            cc->flags |= OP_CC_NO_STORE;
            mine = true;
        }
        /* content=, extensions and malformed directives say nothing about
         * caching here: with nothing else, Cache-Control stays in force */
    }
    return mine;
}
