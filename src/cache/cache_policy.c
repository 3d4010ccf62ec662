/* RFC 9111 storing, freshness, age, reuse and conditional evaluation for a
 * shared cache. */
#include "cache_int.h"

#include <string.h>

#define HEURISTIC_MAX (24 * 3600) /* cap on Last-Modified heuristics */

/* RFC 9110 §15.1 and RFC 9111 §4.2.2: statuses cacheable by default. */
static bool heuristically_cacheable(int status)
{
    switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501: return true;
    default: return false;
    }
}

static bool get_date(const struct op_headers *h, const char *name, int64_t *t)
{
    size_t len;
    const char *v = op_headers_get(h, name, &len);
    return v != NULL && op_http_date_parse(v, len, t) == 0;
}

/* The Age field, RFC 9111 §5.1:
 *   "Although it is defined as a singleton header field, a cache encountering
 *   a message with a list-based Age field value SHOULD use the first member
 *   of the field value, discarding subsequent ones."
 *   "If the field value (after discarding additional members, as per above)
 *   is invalid (e.g., it contains something other than a non-negative
 *   integer), a cache SHOULD ignore the field."
 * Several Age lines are one list (RFC 9110 §5.3), so it is the first line's
 * first member. An ignored Age is not a trusted 0: the apparent age from
 * Date still bounds the copy's age (§4.2.3). Digits past 2^31 are 2^31
 * (§1.2.2), which is stale for any lifetime. */
static int64_t age_value(const struct op_headers *h)
{
    uint64_t st = 0;
    const char *v;
    size_t len;
    if (!op_headers_next_elem(h, "age", &st, &v, &len))
        return 0;
    int64_t n = op_cache__delta(v, len, false);
    return n < 0 ? 0 : n;
}

/* The status codes whose semantics this cache implements (RFC 9110 §15), for
 * must-understand (RFC 9111 §5.2.2.3). */
static bool status_understood(int status)
{
    return (status >= 200 && status <= 206) || (status >= 300 && status <= 308 && status != 306) ||
           (status >= 400 && status <= 417) || status == 421 || status == 422 || status == 426 ||
           (status >= 500 && status <= 505);
}

/* The directives in force for this cache: CDN-Cache-Control, when the origin
 * sent it, replaces Cache-Control and Expires (RFC 9213 §2.1); else
 * Surrogate-Control, when it has directives for us, does the same. Returns
 * whether such a targeted field is in force. */
static bool response_cc(const struct op_cache_exchange *x, struct op_cc *cc)
{
    struct op_cc cdn;
    if (op_cache_cdn_cc_parse(x->resp, &cdn) ||
        op_cache_surrogate_parse(x->resp, x->device, &cdn)) {
        *cc = cdn;
        return true;
    }
    op_cache_cc_parse(x->resp, "cache-control", cc);
    return false;
}

/* Freshness lifetime (§4.2.1); *explicit tells whether the origin gave one.
 * Under a targeted field Expires does not count. */
static int64_t freshness_lifetime(const struct op_cache_exchange *x, const struct op_cc *cc,
                                  bool targeted, int64_t date, bool *explicit, bool *heuristic)
{
    *explicit = true;
    *heuristic = false;
    if (cc->flags & OP_CC_S_MAXAGE)
        return cc->s_maxage;
    if (cc->flags & OP_CC_MAX_AGE)
        return cc->max_age;
    if (!targeted && op_headers_find(x->resp, "expires", 0) >= 0) {
        int64_t expires;
        if (!get_date(x->resp, "expires", &expires))
            return 0; /* an invalid Expires means already expired (§5.3) */
        return expires > date ? expires - date : 0;
    }
    *explicit = false;
    int64_t lm;
    /* §4.2.2: heuristics for a status cacheable by default, or one marked public */
    if ((heuristically_cacheable(x->status) || (cc->flags & OP_CC_PUBLIC)) &&
        get_date(x->resp, "last-modified", &lm) && lm < date) {
        *heuristic = true;
        int64_t h = (date - lm) / 10;
        return h > HEURISTIC_MAX ? HEURISTIC_MAX : h;
    }
    return 0;
}

const char *op_cache_storable(const struct op_cache_exchange *x, struct op_cache_meta *m)
{
    struct op_cc cc, req_cc;
    bool targeted = response_cc(x, &cc);
    op_cache_cc_parse(x->req, "cache-control", &req_cc);

    int64_t date;
    if (!get_date(x->resp, "date", &date))
        date = x->response_time;

    /* §4.2.3 */
    int64_t apparent_age = x->response_time - date;
    if (apparent_age < 0)
        apparent_age = 0;
    int64_t corrected_age_value = age_value(x->resp) + (x->response_time - x->request_time);
    memset(m, 0, sizeof(*m));
    m->request_time = x->request_time;
    m->response_time = x->response_time;
    m->corrected_initial_age =
        apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
    m->status = (uint16_t)x->status;
    m->swr = (cc.flags & OP_CC_SWR) ? cc.swr : -1;
    m->sie = (cc.flags & OP_CC_SIE) ? cc.sie : -1;

    bool explicit, heuristic;
    m->freshness_lifetime = freshness_lifetime(x, &cc, targeted, date, &explicit, &heuristic);
    if (heuristic)
        m->flags |= OP_META_HEURISTIC;
    if (cc.flags & (OP_CC_MUST_REVALIDATE | OP_CC_PROXY_REVALIDATE | OP_CC_S_MAXAGE))
        m->flags |= OP_META_MUST_REVALIDATE; /* §4.2.4, §5.2.2.10 */
    if (cc.flags & OP_CC_NO_CACHE)
        m->flags |= OP_META_NO_CACHE;

    /* §3 */
    if (x->method != OP_HTTP_GET)
        return "method";
    if (x->status < 200 || x->status == 206 || x->status == 304)
        return "status";
    if (cc.flags & OP_CC_MUST_UNDERSTAND) {
        /* §5.2.2.3: store only a status we understand, and then no-store
         * (there for caches that do not know must-understand) yields */
        if (!status_understood(x->status))
            return "must-understand";
        cc.flags &= ~(uint32_t)OP_CC_NO_STORE;
    }
    if ((cc.flags & OP_CC_NO_STORE) || (req_cc.flags & OP_CC_NO_STORE))
        return "no-store";
    if (cc.flags & OP_CC_PRIVATE)
        return "private";
    bool shared_ok = (cc.flags & (OP_CC_PUBLIC | OP_CC_S_MAXAGE | OP_CC_MUST_REVALIDATE)) != 0;
    if (op_headers_find(x->req, "authorization", 0) >= 0 && !shared_ok)
        return "authorization"; /* §3.5 */
    /* One user's cookie is never served to another. RFC 9111 §7.3 notes
     * that "the Set-Cookie response header field [COOKIE] does not inhibit
     * caching" and leaves the control to the origin's Cache-Control; since
     * storing is never required (§2: caching is "an entirely OPTIONAL
     * feature"), a shared cache may demand that control be explicit, and
     * public or s-maxage is the origin saying the response is for everyone
     * (the suite's headers-store-Set-Cookie and other-set-cookie fail by this
     * choice). */
    if (op_headers_find(x->resp, "set-cookie", 0) >= 0 &&
        !(cc.flags & (OP_CC_PUBLIC | OP_CC_S_MAXAGE)))
        return "set-cookie";
    struct op_buf vary;
    op_buf_init(&vary, 4096);
    bool vary_ok = op_cache_vary_names(x->resp, &vary);
    op_buf_fini(&vary);
    if (!vary_ok)
        return "vary";
    bool validators = op_headers_find(x->resp, "etag", 0) >= 0 ||
                      op_headers_find(x->resp, "last-modified", 0) >= 0;
    if (explicit || (cc.flags & OP_CC_PUBLIC) || heuristic)
        return NULL;
    if (heuristically_cacheable(x->status) && validators)
        return NULL; /* stored stale: it can be revalidated cheaply */
    return "no freshness";
}

int64_t op_cache_age(const struct op_cache_meta *m, int64_t now)
{
    int64_t resident = now - m->response_time;
    return m->corrected_initial_age + (resident > 0 ? resident : 0);
}

enum op_cache_verdict op_cache_evaluate(const struct op_cache_meta *m, const struct op_headers *req,
                                        int64_t now, int64_t *age_out, int64_t *ttl_out)
{
    struct op_cc cc;
    bool has_cc = op_cache_cc_parse(req, "cache-control", &cc);
    int64_t age = op_cache_age(m, now);
    int64_t ttl = m->freshness_lifetime - age;
    *age_out = age;
    *ttl_out = ttl;

    /* §5.4: Pragma: no-cache counts only without Cache-Control */
    if (!has_cc && op_headers_has_token(req, "pragma", "no-cache"))
        cc.flags |= OP_CC_NO_CACHE;
    if ((cc.flags & OP_CC_NO_CACHE) || (m->flags & OP_META_NO_CACHE))
        return OP_CACHE_VALIDATE;
    if ((cc.flags & OP_CC_MAX_AGE) && age > cc.max_age)
        return OP_CACHE_VALIDATE;
    int64_t need = (cc.flags & OP_CC_MIN_FRESH) ? cc.min_fresh : 0;
    if (ttl > need)
        return OP_CACHE_FRESH;
    if ((cc.flags & OP_CC_MAX_STALE) && !(m->flags & OP_META_MUST_REVALIDATE) &&
        -ttl <= cc.max_stale && !(cc.flags & OP_CC_MIN_FRESH))
        return OP_CACHE_STALE_OK;
    return OP_CACHE_VALIDATE;
}

/* Shared by stale-if-error and stale-while-revalidate: may stale be served at
 * all, and is the staleness within <window>? <req_window> is the request's own
 * window for the directive, or -1. */
static bool stale_within(const struct op_cache_meta *m, const struct op_cc *cc, int64_t now,
                         int64_t window)
{
    if (m->flags & (OP_META_MUST_REVALIDATE | OP_META_NO_CACHE))
        return false; /* RFC 9111 §4.2.4 */
    if (cc->flags & (OP_CC_MAX_AGE | OP_CC_MIN_FRESH | OP_CC_NO_CACHE))
        return false; /* the client asked for something fresher than stale */
    /* ages are whole seconds: staleness s means [s, s+1) past expiry, so a
     * window of N allows s < N, and a window of 0 allows nothing */
    return op_cache_age(m, now) - m->freshness_lifetime < window;
}

bool op_cache_stale_if_error_ok(const struct op_cache_meta *m, const struct op_headers *req,
                                int64_t now, int64_t default_window)
{
    struct op_cc cc;
    op_cache_cc_parse(req, "cache-control", &cc);
    int64_t window = m->sie >= 0 ? m->sie : default_window;
    if (cc.flags & OP_CC_SIE)
        window = cc.sie; /* RFC 5861 §4: the request may narrow (or widen) it */
    return stale_within(m, &cc, now, window);
}

bool op_cache_swr_ok(const struct op_cache_meta *m, const struct op_headers *req, int64_t now,
                     int64_t default_window)
{
    struct op_cc cc;
    op_cache_cc_parse(req, "cache-control", &cc);
    return stale_within(m, &cc, now, m->swr >= 0 ? m->swr : default_window);
}

/* Weak comparison of entity tags (RFC 9110 §8.8.3.2). */
static bool etag_weak_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen >= 2 && a[0] == 'W' && a[1] == '/') {
        a += 2;
        alen -= 2;
    }
    if (blen >= 2 && b[0] == 'W' && b[1] == '/') {
        b += 2;
        blen -= 2;
    }
    return alen == blen && alen >= 2 && a[0] == '"' && memcmp(a, b, alen) == 0;
}

bool op_cache_not_modified(const struct op_headers *req, const struct op_headers *stored,
                           const struct op_cache_meta *m)
{
    if (op_headers_find(req, "if-none-match", 0) >= 0) {
        size_t tlen;
        const char *tag = op_headers_get(stored, "etag", &tlen);
        uint64_t st = 0;
        const char *e;
        size_t elen;
        while (op_headers_next_elem(req, "if-none-match", &st, &e, &elen)) {
            if ((elen == 1 && e[0] == '*') || (tag && etag_weak_eq(e, elen, tag, tlen)))
                return true;
        }
        return false; /* If-Modified-Since is ignored when If-None-Match is present */
    }
    size_t len;
    const char *ims = op_headers_get(req, "if-modified-since", &len);
    int64_t since, modified;
    if (ims == NULL || op_http_date_parse(ims, len, &since) != 0)
        return false;
    if (!get_date(stored, "last-modified", &modified) && !get_date(stored, "date", &modified))
        modified = m->response_time;
    return modified <= since;
}

int op_cache_freshen_headers(struct op_headers *stored, const struct op_headers *fresh)
{
    /* RFC 9111 §3.2: these describe the stored body, not the 304; and the
     * ETag stays the one the origin just validated (a 304 naming another
     * would relabel our bytes as a representation we never received) */
    static const char *const keep[] = {"content-length",
                                       "content-encoding",
                                       "transfer-encoding",
                                       "content-range",
                                       "content-md5",
                                       "etag",
                                       NULL};
    struct op_headers out;
    op_headers_init(&out, stored->max, stored->bytes.max);
    int rc = 0;
    for (uint32_t i = 0; i < stored->n && rc == 0; i++) {
        size_t nlen, vlen;
        const char *n = op_headers_name(stored, i, &nlen);
        if (nlen == 0)
            continue;
        char name[128];
        bool replaced = false;
        if (nlen < sizeof(name)) {
            memcpy(name, n, nlen);
            name[nlen] = '\0';
            replaced = op_headers_find(fresh, name, 0) >= 0;
            for (size_t k = 0; keep[k] != NULL; k++)
                replaced &= !op_streq_nocase(n, nlen, keep[k]);
        }
        if (!replaced) {
            const char *v = op_headers_value(stored, i, &vlen);
            rc = op_headers_add(&out, n, nlen, v, vlen);
        }
    }
    for (uint32_t i = 0; i < fresh->n && rc == 0; i++) {
        size_t nlen, vlen;
        const char *n = op_headers_name(fresh, i, &nlen);
        bool skip = nlen == 0;
        for (size_t k = 0; keep[k] != NULL; k++)
            skip |= op_streq_nocase(n, nlen, keep[k]);
        if (!skip) {
            const char *v = op_headers_value(fresh, i, &vlen);
            rc = op_headers_add(&out, n, nlen, v, vlen);
        }
    }
    if (rc == 0) {
        op_headers_fini(stored);
        *stored = out;
    } else {
        op_headers_fini(&out);
    }
    return rc;
}
