/* Purge patterns: the one check and normal form of what a purge names
 * (cache.h). The admin API answers these messages in its 400s, so they are
 * worded for an operator; a fleet record's pattern is checked by running it
 * through again, which is why the normal form must be a fixed point. */
#include "outpost/cache.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Room for a normal form before its length is checked: a URL may shrink when
 * normalized (a percent-encoded unreserved octet becomes one byte), so the
 * limit is on the result, and a result past this is "too long". */
#define SCRATCH_MAX (4 * OP_CACHE_PURGE_MAX)

static const char *const kind_names[] = {
    [OP_PURGE_URL] = "url",
    [OP_PURGE_PREFIX] = "prefix",
    [OP_PURGE_TAG] = "tag",
    [OP_PURGE_HOST] = "host",
};
#define KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *op_cache_purge_kind_name(enum op_purge_kind kind)
{
    return (unsigned)kind < KINDS ? kind_names[kind] : NULL;
}

bool op_cache_purge_kind_parse(const char *name, size_t len, enum op_purge_kind *kind)
{
    for (size_t i = 0; i < KINDS; i++)
        if (strlen(kind_names[i]) == len && memcmp(name, kind_names[i], len) == 0) {
            *kind = (enum op_purge_kind)i;
            return true;
        }
    return false;
}

static bool has_blank_or_control(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return true;
    return false;
}

int op_cache_key_url_reason(const char *url, size_t len, bool prefix, struct op_buf *out, char *err,
                            size_t errlen)
{
    int rc = op_cache_key_url(url, len, prefix, out);
    if (rc == 0)
        return 0;
    if (rc == OP_ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return OP_ENOMEM;
    }
    /* op_cache_key_url says only OP_EINVAL: find which rule it broke */
    if (rc != OP_EINVAL)
        snprintf(err, errlen, "URL too long");
    else if (!(len > 7 && strncasecmp(url, "http://", 7) == 0) &&
             !(len > 8 && strncasecmp(url, "https://", 8) == 0))
        snprintf(err, errlen, "expected an http:// or https:// URL");
    else if (has_blank_or_control(url, len))
        snprintf(err, errlen, "the URL has a space or a control character");
    else
        snprintf(err, errlen, "the URL needs a host[:port] (and no user info)");
    return OP_EINVAL;
}

/* One pass: check <p, len> and append its normal form to <out> (a scratch
 * buffer of SCRATCH_MAX, empty). The checks, their order and their words are
 * the admin API's (tests/integ/test_admin.py). */
static int normalize(enum op_purge_kind kind, const char *p, size_t len, struct op_buf *out,
                     char *err, size_t errlen)
{
    const char *name = kind_names[kind];
    size_t max = kind == OP_PURGE_TAG ? OP_CACHE_PURGE_TAG_MAX : OP_CACHE_PURGE_MAX;
    int rc = 0;
    if (kind == OP_PURGE_URL || kind == OP_PURGE_PREFIX) {
        rc = op_cache_key_url_reason(p, len, kind == OP_PURGE_PREFIX, out, err, errlen);
        if (rc != 0)
            return rc;
    } else {
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)p[i];
            /* a tag list is split at commas (Surrogate-Key uses blanks,
             * Cache-Tag commas), so no tag holds one; a host's are refused
             * by op_cache_key_host */
            if (ch <= 0x20 || ch >= 0x7f || (kind == OP_PURGE_TAG && ch == ',')) {
                snprintf(err, errlen, "%s: no spaces, commas or control characters", name);
                return OP_EINVAL;
            }
        }
        if (kind == OP_PURGE_HOST) {
            rc = op_cache_key_host(p, len, out);
            if (rc == OP_ENOMEM) {
                snprintf(err, errlen, "out of memory");
                return rc;
            }
            if (rc != 0) {
                snprintf(err, errlen, "host: expected HOST[:PORT] or \"*\"");
                return OP_EINVAL;
            }
        } else if (len <= max && (rc = op_buf_append(out, p, len)) != 0) {
            snprintf(err, errlen, "out of memory");
            return rc;
        }
    }
    if (out->len == 0 || out->len > max) {
        snprintf(err, errlen, "the %s must be 1 to %zu bytes", name, max);
        out->len = 0;
        return OP_EINVAL;
    }
    return 0;
}

int op_cache_purge_pattern(enum op_purge_kind kind, const char *pattern, size_t len,
                           struct op_buf *out, char *err, size_t errlen)
{
    if (op_cache_purge_kind_name(kind) == NULL) {
        snprintf(err, errlen, "unknown purge kind %d", (int)kind);
        return OP_EINVAL;
    }
    struct op_buf once, twice;
    op_buf_init(&once, SCRATCH_MAX);
    op_buf_init(&twice, SCRATCH_MAX);
    int rc = normalize(kind, pattern, len, &once, err, errlen);
    if (rc == 0) {
        char again[64];
        rc = normalize(kind, once.data, once.len, &twice, again, sizeof(again));
        if (rc == OP_ENOMEM) {
            snprintf(err, errlen, "out of memory");
        } else if (rc != 0 || twice.len != once.len || memcmp(twice.data, once.data, once.len)) {
            /* RFC 3986 §2.4: a '%' must start a percent-encoding. One that
             * does not, before an encoded hex digit ("%4%31"), would become
             * one once that digit is decoded ("%41"), then decode again */
            if (kind == OP_PURGE_URL || kind == OP_PURGE_PREFIX)
                snprintf(err, errlen,
                         "the URL has a '%%' that its normal form would join to a "
                         "percent-encoding: write a literal '%%' as %%25");
            else
                snprintf(err, errlen, "the %s has no stable normal form", kind_names[kind]);
            rc = OP_EINVAL;
        }
    }
    if (rc == 0 && (rc = op_buf_append(out, once.data, once.len)) != 0)
        snprintf(err, errlen, rc == OP_ENOMEM ? "out of memory" : "no room for the pattern");
    op_buf_fini(&twice);
    op_buf_fini(&once);
    return rc;
}
