/* CDN-Cache-Control (RFC 9213): a Structured Field Dictionary (RFC 8941
 * §3.2). A field that does not parse as one is ignored whole (§2.1), so
 * Cache-Control stays in force; within a valid field, a directive whose
 * value has the wrong type is ignored. Only the few lexical forms the
 * dictionary grammar allows are accepted: lowercase keys, no blanks around
 * "=", integers without quotes. */
#include "cache_int.h"

#include <string.h>

#define FIELD_MAX 8192 /* longer is not a cache directive field */

struct cursor {
    const char *p, *end;
};

static bool at(const struct cursor *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

static bool lcalpha(char ch)
{
    return ch >= 'a' && ch <= 'z';
}

static bool digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool alpha(char ch)
{
    return lcalpha(ch) || (ch >= 'A' && ch <= 'Z');
}

static bool tchar(char ch)
{
    return alpha(ch) || digit(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ) */
static bool parse_key(struct cursor *c, const char **k, size_t *klen)
{
    if (c->p >= c->end || !(lcalpha(*c->p) || *c->p == '*'))
        return false;
    *k = c->p;
    while (c->p < c->end && (lcalpha(*c->p) || digit(*c->p) || strchr("_-.*", *c->p) != NULL))
        c->p++;
    *klen = (size_t)(c->p - *k);
    return true;
}

enum item_type { IT_INTEGER, IT_BOOLEAN, IT_OTHER };

/* bare-item (§3.3); *n gets an integer's value */
static bool parse_bare_item(struct cursor *c, enum item_type *type, int64_t *n)
{
    *type = IT_OTHER;
    if (c->p >= c->end)
        return false;
    char ch = *c->p;
    if (ch == '-' || digit(ch)) { /* integer or decimal (§4.2.4) */
        bool neg = ch == '-';
        if (neg)
            c->p++;
        const char *start = c->p;
        int64_t v = 0;
        while (c->p < c->end && digit(*c->p)) {
            if (c->p - start >= 15)
                return false;
            v = v * 10 + (*c->p - '0');
            c->p++;
        }
        size_t ilen = (size_t)(c->p - start);
        if (ilen == 0)
            return false;
        if (at(c, '.')) { /* decimal: at most 12 integer and 3 fraction digits */
            c->p++;
            const char *frac = c->p;
            while (c->p < c->end && digit(*c->p))
                c->p++;
            size_t flen = (size_t)(c->p - frac);
            return ilen <= 12 && flen >= 1 && flen <= 3;
        }
        *type = IT_INTEGER;
        *n = neg ? -v : v;
        return true;
    }
    if (ch == '"') { /* string */
        for (c->p++; c->p < c->end; c->p++) {
            if (*c->p == '\\') {
                c->p++;
                if (c->p >= c->end || (*c->p != '"' && *c->p != '\\'))
                    return false;
            } else if (*c->p == '"') {
                c->p++;
                return true;
            } else if ((unsigned char)*c->p < 0x20 || (unsigned char)*c->p > 0x7e) {
                return false;
            }
        }
        return false;
    }
    if (ch == ':') { /* byte sequence */
        for (c->p++; c->p < c->end; c->p++) {
            if (*c->p == ':') {
                c->p++;
                return true;
            }
            if (!(alpha(*c->p) || digit(*c->p) || *c->p == '+' || *c->p == '/' || *c->p == '='))
                return false;
        }
        return false;
    }
    if (ch == '?') { /* boolean */
        c->p++;
        if (c->p >= c->end || (*c->p != '0' && *c->p != '1'))
            return false;
        *type = IT_BOOLEAN;
        *n = *c->p == '1';
        c->p++;
        return true;
    }
    if (alpha(ch) || ch == '*') { /* token */
        for (c->p++; c->p < c->end && (tchar(*c->p) || *c->p == ':' || *c->p == '/'); c->p++)
            ;
        return true;
    }
    return false;
}

/* parameters = *( ";" *SP parameter ) */
static bool parse_params(struct cursor *c)
{
    while (at(c, ';')) {
        c->p++;
        while (at(c, ' '))
            c->p++;
        const char *k;
        size_t klen;
        if (!parse_key(c, &k, &klen))
            return false;
        if (at(c, '=')) {
            c->p++;
            enum item_type t;
            int64_t n;
            if (!parse_bare_item(c, &t, &n))
                return false;
        }
    }
    return true;
}

/* member-value = sf-item / inner-list */
static bool parse_member_value(struct cursor *c, enum item_type *type, int64_t *n)
{
    if (at(c, '(')) {
        *type = IT_OTHER;
        c->p++;
        for (;;) {
            while (at(c, ' '))
                c->p++;
            if (at(c, ')')) {
                c->p++;
                return parse_params(c);
            }
            enum item_type t;
            int64_t v;
            if (!parse_bare_item(c, &t, &v) || !parse_params(c))
                return false;
            if (!at(c, ' ') && !at(c, ')'))
                return false;
        }
    }
    return parse_bare_item(c, type, n) && parse_params(c);
}

struct directive {
    const char *name;
    uint32_t flag;
    bool integer; /* takes delta-seconds; else a flag (boolean true) */
};

static const struct directive directives[] = {
    {"no-store", OP_CC_NO_STORE, false},
    {"no-cache", OP_CC_NO_CACHE, false},
    {"private", OP_CC_PRIVATE, false},
    {"public", OP_CC_PUBLIC, false},
    {"must-revalidate", OP_CC_MUST_REVALIDATE, false},
    {"proxy-revalidate", OP_CC_PROXY_REVALIDATE, false},
    {"immutable", OP_CC_IMMUTABLE, false},
    {"max-age", OP_CC_MAX_AGE, true},
    {"s-maxage", OP_CC_S_MAXAGE, true},
    {"stale-while-revalidate", OP_CC_SWR, true},
    {"stale-if-error", OP_CC_SIE, true},
    {NULL, 0, false},
};

static int64_t *arg_of(struct op_cc *cc, uint32_t flag)
{
    switch (flag) {
    case OP_CC_MAX_AGE: return &cc->max_age;
    case OP_CC_S_MAXAGE: return &cc->s_maxage;
    case OP_CC_SWR: return &cc->swr;
    default: return &cc->sie;
    }
}

/* Apply one member: the last instance of a key wins (RFC 8941 §4.2.2). */
static void apply(struct op_cc *cc, const char *k, size_t klen, bool has_value, enum item_type type,
                  int64_t n)
{
    for (const struct directive *d = directives; d->name != NULL; d++) {
        if (strlen(d->name) != klen || memcmp(d->name, k, klen) != 0)
            continue;
        cc->flags &= ~d->flag;
        if (d->integer) {
            if (has_value && type == IT_INTEGER && n >= 0) {
                cc->flags |= d->flag;
                *arg_of(cc, d->flag) = n > OP_CACHE_DELTA_MAX ? OP_CACHE_DELTA_MAX : n;
            }
        } else if (!has_value || (type == IT_BOOLEAN && n == 1)) {
            cc->flags |= d->flag; /* a bare key is boolean true; ?0 is false */
        }
        return;
    }
}

static bool parse_dictionary(const char *p, size_t len, struct op_cc *cc)
{
    struct cursor c = {p, p + len};
    while (at(&c, ' '))
        c.p++;
    while (c.p < c.end) {
        const char *k;
        size_t klen;
        if (!parse_key(&c, &k, &klen))
            return false;
        bool has_value = at(&c, '=');
        enum item_type type = IT_OTHER;
        int64_t n = 0;
        if (has_value) {
            c.p++;
            if (!parse_member_value(&c, &type, &n))
                return false;
        } else if (!parse_params(&c)) {
            return false;
        }
        apply(cc, k, klen, has_value, type, n);
        while (at(&c, ' ') || at(&c, '\t'))
            c.p++;
        if (c.p >= c.end)
            break;
        if (*c.p != ',')
            return false;
        c.p++;
        while (at(&c, ' ') || at(&c, '\t'))
            c.p++;
        if (c.p >= c.end)
            return false; /* a trailing comma */
    }
    return true;
}

bool op_cache_cdn_cc_parse(const struct op_headers *h, struct op_cc *cc)
{
    memset(cc, 0, sizeof(*cc));
    /* field lines combine with ", " (RFC 9110 §5.3) */
    char joined[FIELD_MAX];
    size_t len = 0;
    bool present = false;
    for (int i = op_headers_find(h, "cdn-cache-control", 0); i >= 0;
         i = op_headers_find(h, "cdn-cache-control", (uint32_t)i + 1)) {
        size_t vlen;
        const char *v = op_headers_value(h, (uint32_t)i, &vlen);
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        if (len + vlen + 2 > sizeof(joined))
            return false; /* too long to be a real one: ignored */
        if (present) {
            memcpy(joined + len, ", ", 2);
            len += 2;
        }
        memcpy(joined + len, v, vlen);
        len += vlen;
        present = true;
    }
    if (!present)
        return false;
    if (!parse_dictionary(joined, len, cc)) {
        memset(cc, 0, sizeof(*cc));
        return false;
    }
    return true;
}
