/* include/outpost/cache.h: RFC 9111 policy for a shared cache, as pure functions.
 *
 * No I/O and no clocks: every time is passed in (seconds since the epoch), so
 * the whole policy is unit-tested as plain calls. Callable from any thread.
 */
#ifndef OUTPOST_CACHE_H
#define OUTPOST_CACHE_H

#include "outpost/http.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- Cache-Control (RFC 9111 §5.2) ----------------------------------------- */
enum {
    OP_CC_NO_STORE = 1u << 0,
    OP_CC_NO_CACHE = 1u << 1,
    OP_CC_PRIVATE = 1u << 2,
    OP_CC_PUBLIC = 1u << 3,
    OP_CC_MUST_REVALIDATE = 1u << 4,
    OP_CC_PROXY_REVALIDATE = 1u << 5,
    OP_CC_MAX_AGE = 1u << 6,
    OP_CC_S_MAXAGE = 1u << 7,
    OP_CC_SWR = 1u << 8,
    OP_CC_SIE = 1u << 9,
    OP_CC_MAX_STALE = 1u << 10,
    OP_CC_MIN_FRESH = 1u << 11,
    OP_CC_ONLY_IF_CACHED = 1u << 12,
    OP_CC_IMMUTABLE = 1u << 13,
    OP_CC_MUST_UNDERSTAND = 1u << 14,
};

struct op_cc {
    uint32_t flags;
    int64_t max_age; /* valid with OP_CC_MAX_AGE; an invalid value reads as 0 */
    int64_t s_maxage;
    int64_t swr;
    int64_t sie;
    int64_t max_stale; /* INT64_MAX for a bare max-stale */
    int64_t min_fresh;
};

/* Parse every <field> line of <h> (Cache-Control). The
 * first occurrence of a directive wins (RFC 9111 §4.2.1); delta-seconds are
 * capped at 2^31 (§1.2.2). Returns true if the field was present. */
bool op_cache_cc_parse(const struct op_headers *h, const char *field, struct op_cc *cc);
/* CDN-Cache-Control (RFC 9213): the field parsed as a Structured Field
 * Dictionary. Returns true when present and valid; an invalid field is
 * ignored whole (false), a directive with a value of the wrong type alone. */
bool op_cache_cdn_cc_parse(const struct op_headers *h, struct op_cc *cc);
/* Surrogate-Control (W3C Edge Architecture 1.0): fill <cc> from the
 * directives untargeted or targeted at <device> (our device token; NULL
 * takes untargeted ones only): max-age=N[+M] (M: stale-if-error), no-store,
 * no-store-remote; others, and malformed ones, are ignored. Returns whether
 * a valid one was for us. */
bool op_cache_surrogate_parse(const struct op_headers *h, const char *device, struct op_cc *cc);

/* ---- what the cache keeps about a stored response -------------------------- */
enum {
    OP_META_MUST_REVALIDATE = 1u << 0, /* must-revalidate, proxy-revalidate, s-maxage */
    OP_META_NO_CACHE = 1u << 1,        /* validate before every reuse */
    OP_META_HEURISTIC = 1u << 2,       /* lifetime came from Last-Modified */
};

struct op_cache_meta {
    int64_t request_time;          /* when the request that fetched it was sent */
    int64_t response_time;         /* when its response arrived */
    int64_t corrected_initial_age; /* RFC 9111 §4.2.3 */
    int64_t freshness_lifetime;    /* §4.2.1, seconds */
    int64_t swr;                   /* stale-while-revalidate seconds, -1 none */
    int64_t sie;                   /* stale-if-error seconds, -1 none */
    uint32_t flags;                /* OP_META_* */
    uint16_t status;
};

/* ---- storing (RFC 9111 §3) --------------------------------------------------- */
struct op_cache_exchange {
    enum op_http_method method;
    const struct op_headers *req; /* borrowed */
    int status;
    const struct op_headers *resp; /* borrowed */
    int64_t request_time;
    int64_t response_time;
    const char *device; /* our Surrogate-Control device token, or NULL */
};

/* Decide whether a response may be stored; fill <meta> either way. Returns NULL
 * when storable, else a short static reason ("no-store", "private", …). */
const char *op_cache_storable(const struct op_cache_exchange *x, struct op_cache_meta *meta);

/* ---- reusing (RFC 9111 §4) --------------------------------------------------- */
/* Current age (§4.2.3) of a stored response at <now>. */
int64_t op_cache_age(const struct op_cache_meta *m, int64_t now);

enum op_cache_verdict {
    OP_CACHE_FRESH,    /* serve it */
    OP_CACHE_STALE_OK, /* stale, but the request's max-stale allows it */
    OP_CACHE_VALIDATE, /* must be validated with the origin first */
};

/* Evaluate a stored response for a request with headers <req>. *age gets the
 * current age, *ttl the remaining freshness (negative when stale). */
enum op_cache_verdict op_cache_evaluate(const struct op_cache_meta *m, const struct op_headers *req,
                                        int64_t now, int64_t *age, int64_t *ttl);

/* May a stale stored response be served because the origin failed (RFC 5861
 * stale-if-error)? The window is the response's stale-if-error, else
 * <default_window> (the site's setting, seconds). Never when must-revalidate,
 * proxy-revalidate, s-maxage or no-cache forbid serving stale (RFC 9111
 * §4.2.4), nor when the request's max-age or min-fresh rule it out. */
bool op_cache_stale_if_error_ok(const struct op_cache_meta *m, const struct op_headers *req,
                                int64_t now, int64_t default_window);

/* May a stale stored response be served at once while it is revalidated in
 * the background (RFC 5861 stale-while-revalidate)? Same exclusions as
 * op_cache_stale_if_error_ok; the window is the response's
 * stale-while-revalidate, else <default_window> (the site's, seconds). */
bool op_cache_swr_ok(const struct op_cache_meta *m, const struct op_headers *req, int64_t now,
                     int64_t default_window);

/* Client conditionals against a stored response (§4.3.2): true if the answer
 * is 304. <stored> are the stored response headers. */
bool op_cache_not_modified(const struct op_headers *req, const struct op_headers *stored,
                           const struct op_cache_meta *m);

/* Update stored headers from a 304 (§3.2): every field of <fresh> replaces the
 * stored fields of that name, except the framing fields. */
int op_cache_freshen_headers(struct op_headers *stored, const struct op_headers *fresh);

/* ---- keys ------------------------------------------------------------------ */
/* Primary key (RFC 9111 §2): the target URI in the normal form of RFC 9110
 * §4.2.3, then, for a request, a space and the site that answers it:
 *     scheme "://" authority path-and-query [" " site]
 * scheme and host lower-case; the port left out when empty or the scheme's
 * default (op_http_authority_norm); an empty path is "/"; in the path,
 * percent-encoded unreserved octets are decoded and other percent-encodings
 * written in upper-case hex ("%2F" stays "%2F", and is not "/"); the query
 * as sent; no fragment. http and https are different origins (§4.2.2), so
 * they never share a key. The site suffix (its configured host pattern,
 * lower-cased, "*" for the catch-all) keeps what one site answered from ever
 * being served for another. A URI never holds a space, so the URI part is
 * everything before the first one (op_cache_key_url_len).
 *
 * A request: an absolute-form <target> gives the scheme and authority; an
 * origin-form one takes them from the connection (<https>) and the Host value
 * <host, hlen> (empty for an HTTP/1.0 request without Host). <site> is the
 * routed site's host pattern (NUL-terminated; NULL: no suffix). Appends to
 * <out>; returns 0, OP_EINVAL for an authority that op_http_authority_norm
 * rejects, or OP_ETOOBIG / OP_ENOMEM (nothing is appended then). */
int op_cache_key_primary(bool https, const char *host, size_t hlen, const char *target, size_t tlen,
                         const char *site, struct op_buf *out);
/* The URI part of a key as an operator names it (purges, inspect): an http://
 * or https:// URL, normalized as above, without a site. With <prefix> an
 * empty path stays empty ("http://h" covers every path and port of h...).
 * 0, or OP_EINVAL (another scheme, no host, a bad authority, a space or a
 * control byte), OP_ETOOBIG, OP_ENOMEM. */
int op_cache_key_url(const char *url, size_t len, bool prefix, struct op_buf *out);
/* A host purge's pattern as keys write authorities: "*" stays, else
 * op_http_authority_norm for http (so "h:80" is "h", which covers every port
 * of h, and "h:443" covers https://h). 0, OP_EINVAL, OP_ETOOBIG, OP_ENOMEM. */
int op_cache_key_host(const char *host, size_t len, struct op_buf *out);
/* Length of the URI part of the key <key, len> (up to its first space). */
size_t op_cache_key_url_len(const char *key, size_t len);
/* The Vary field names of a response, lower-cased and joined by ','. Returns
 * false for "Vary: *" (never matches, so never stored). */
bool op_cache_vary_names(const struct op_headers *resp, struct op_buf *out);
/* The secondary key: for each name in <names>, "name=value\n" with the request's
 * field values combined and blanks normalised (§4.1). */
int op_cache_key_secondary(const char *names, size_t nlen, const struct op_headers *req,
                           struct op_buf *out);
/* op_cache_key_url for a URL an operator gave (a purge, inspect), with the
 * refusal worded for them in <err> (one line, NUL-terminated, cut to
 * <errlen>): 0; OP_EINVAL (also "URL too long" when <out> has no room);
 * OP_ENOMEM ("out of memory"). Nothing is appended on failure. */
int op_cache_key_url_reason(const char *url, size_t len, bool prefix, struct op_buf *out, char *err,
                            size_t errlen);

/* ---- purge patterns ---------------------------------------------------------
 * What a purge names, checked and written in one normal form by one function,
 * op_cache_purge_pattern: the admin API runs an operator's pattern through it,
 * the store matches keys against what it writes (store.h, op_store_purge), and
 * a fleet record carries it and is checked on arrival by running it again
 * (fleet.h). */
enum op_purge_kind {
    OP_PURGE_URL,    /* every variant of one URL, for every site (its key
                        without the site, or the key itself) */
    OP_PURGE_PREFIX, /* primary keys starting with the pattern */
    OP_PURGE_TAG,    /* objects whose Surrogate-Key or Cache-Tag names it */
    OP_PURGE_HOST,   /* one host's objects, http and https: "HOST" any port,
                        "HOST:PORT" that one; "*" is everything */
};

#define OP_CACHE_PURGE_MAX 4096    /* bytes of a normalized url, prefix or host pattern */
#define OP_CACHE_PURGE_TAG_MAX 256 /* bytes of a tag pattern */

/* The name of <kind> in the admin API and in fleet records: "url", "prefix",
 * "tag" or "host"; NULL for a value outside the enum. Static storage. */
const char *op_cache_purge_kind_name(enum op_purge_kind kind);
/* The kind named exactly <name, len> (case matters): true with *kind set, or
 * false for any other name. */
bool op_cache_purge_kind_parse(const char *name, size_t len, enum op_purge_kind *kind);

/* Check the pattern <pattern, len> of a purge of <kind> and append its normal
 * form to <out>:
 *   url     op_cache_key_url: the URI part of the keys it covers
 *   prefix  op_cache_key_url with <prefix> set (an empty path stays empty)
 *   host    op_cache_key_host: "*", or HOST[:PORT] as keys write it
 *   tag     as given: printable ASCII (0x21-0x7e) but ','
 * The result has 1 to OP_CACHE_PURGE_MAX bytes (a tag, at most
 * OP_CACHE_PURGE_TAG_MAX). It is a fixed point: run through this function
 * again it comes out byte for byte the same. A pattern whose normal form
 * would normalize again to something else (a stray '%' that joins a decoded
 * octet into a new percent-encoding) is refused, so a receiver can check a
 * pattern by normalizing it and comparing.
 *
 * <pattern> is borrowed and need not be NUL-terminated; a NUL in it is a
 * control byte. Returns 0; OP_EINVAL with the reason for the operator in
 * <err> (one line, NUL-terminated, cut to <errlen>; the admin API answers it
 * in a 400); OP_ENOMEM, or OP_ETOOBIG when <out> has no room for the result
 * (<err> says so too). Nothing is appended on failure. Pure: any thread;
 * nothing it allocates outlives the call. */
int op_cache_purge_pattern(enum op_purge_kind kind, const char *pattern, size_t len,
                           struct op_buf *out, char *err, size_t errlen);

#endif
