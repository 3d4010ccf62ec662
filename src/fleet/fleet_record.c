/* The fleet's purge record (fleet.h): one purge as a small JSON object. Its
 * bytes come off the network from other nodes, so the decoder takes nothing
 * on trust: a size cap before jansson sees them, then every member checked,
 * the pattern by running it through op_cache_purge_pattern again. */
#include "outpost/fleet.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void op_fleet_purge_init(struct op_fleet_purge *p)
{
    p->kind = OP_PURGE_URL;
    p->soft = false;
    p->node[0] = '\0';
    op_buf_init(&p->pattern, OP_CACHE_PURGE_MAX);
}

void op_fleet_purge_fini(struct op_fleet_purge *p)
{
    op_buf_fini(&p->pattern);
}

/* fleet.node's rule (conf_keys.c): it names the node's durable consumer */
static bool node_ok(const char *s, size_t len)
{
    if (len == 0 || len > OP_FLEET_NODE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Is <s, len> (len >= 1) of <kind> in normal form? 0 (*same set), or OP_ENOMEM. */
static int is_normal(enum op_purge_kind kind, const char *s, size_t len, bool *same, char *why,
                     size_t whylen)
{
    struct op_buf norm;
    op_buf_init(&norm, OP_CACHE_PURGE_MAX);
    int rc = op_cache_purge_pattern(kind, s, len, &norm, why, whylen);
    *same = rc == 0 && norm.len == len && memcmp(norm.data, s, len) == 0;
    if (rc == 0 && !*same)
        snprintf(why, whylen, "the pattern is not in normal form");
    op_buf_fini(&norm);
    return rc == OP_ENOMEM ? OP_ENOMEM : 0;
}

struct dump {
    struct op_buf *out; /* borrowed */
    size_t at;          /* where the record starts in out */
    int rc;
};

static int dump_append(const char *buf, size_t len, void *arg)
{
    struct dump *d = arg;
    if ((d->rc = op_buf_append(d->out, buf, len)) != 0)
        return -1;
    if (d->out->len - d->at > OP_FLEET_RECORD_MAX) {
        d->rc = OP_ETOOBIG;
        return -1;
    }
    return 0;
}

int op_fleet_purge_encode(const struct op_fleet_purge *p, struct op_buf *out)
{
    const char *kind = op_cache_purge_kind_name(p->kind);
    if (kind == NULL || !node_ok(p->node, strnlen(p->node, sizeof(p->node))) || p->pattern.len == 0)
        return OP_EINVAL;
    bool same;
    int rc = is_normal(p->kind, p->pattern.data, p->pattern.len, &same, NULL, 0);
    if (rc != 0)
        return rc;
    if (!same)
        return OP_EINVAL;
    json_t *o = json_pack("{s:i, s:s, s:s, s:s%, s:b}", "v", 1, "node", p->node, "kind", kind,
                          "pattern", p->pattern.data, p->pattern.len, "soft", (int)p->soft);
    if (o == NULL)
        return OP_ENOMEM; /* the strings are ASCII: only an allocation fails */
    struct dump d = {out, out->len, 0};
    if (json_dump_callback(o, dump_append, &d, JSON_COMPACT) != 0) {
        out->len = d.at;
        rc = d.rc != 0 ? d.rc : OP_ENOMEM;
    }
    json_decref(o);
    return rc;
}

static int refuse(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
    int n = snprintf(err, errlen, "fleet record: ");
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return OP_EINVAL;
}

/* The string member <name> of <o>: its bytes, or NULL with the reason in <err>. */
static const char *member_string(const json_t *o, const char *name, size_t *len, char *err,
                                 size_t errlen)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL) {
        refuse(err, errlen, "\"%s\" is missing", name);
        return NULL;
    }
    if (!json_is_string(v)) {
        refuse(err, errlen, "\"%s\" must be a string", name);
        return NULL;
    }
    const char *s = json_string_value(v);
    *len = json_string_length(v);
    /* jansson refuses \u0000 unless JSON_ALLOW_NUL: checked again, since a
     * NUL would cut the pattern short for anything that reads it as a C string */
    if (strlen(s) != *len) {
        refuse(err, errlen, "\"%s\" holds a NUL", name);
        return NULL;
    }
    return s;
}

static int decode(const json_t *o, struct op_fleet_purge *p, char *err, size_t errlen)
{
    if (!json_is_object(o))
        return refuse(err, errlen, "not a JSON object");
    json_t *v = json_object_get(o, "v");
    if (v == NULL)
        return refuse(err, errlen, "\"v\" is missing");
    if (!json_is_integer(v))
        return refuse(err, errlen, "\"v\" must be the integer 1");
    if (json_integer_value(v) != 1)
        return refuse(err, errlen, "version %" JSON_INTEGER_FORMAT ": this node reads version 1",
                      json_integer_value(v));

    size_t nlen, klen, plen;
    const char *node = member_string(o, "node", &nlen, err, errlen);
    if (node == NULL)
        return OP_EINVAL;
    if (!node_ok(node, nlen))
        return refuse(err, errlen, "\"node\" must be 1-%d of A-Z a-z 0-9 _ -", OP_FLEET_NODE_MAX);
    const char *kind = member_string(o, "kind", &klen, err, errlen);
    if (kind == NULL)
        return OP_EINVAL;
    if (!op_cache_purge_kind_parse(kind, klen, &p->kind))
        return refuse(err, errlen, "\"kind\" must be url, prefix, tag or host");
    const char *pattern = member_string(o, "pattern", &plen, err, errlen);
    if (pattern == NULL)
        return OP_EINVAL;
    json_t *soft = json_object_get(o, "soft");
    if (soft != NULL && !json_is_boolean(soft))
        return refuse(err, errlen, "\"soft\" must be true or false");

    char why[300];
    bool same;
    op_buf_reset(&p->pattern);
    int rc = is_normal(p->kind, pattern, plen, &same, why, sizeof(why));
    if (rc != 0) {
        refuse(err, errlen, "out of memory");
        return rc;
    }
    if (!same)
        return refuse(err, errlen, "%s", why);
    if ((rc = op_buf_append(&p->pattern, pattern, plen)) != 0) {
        refuse(err, errlen, rc == OP_ENOMEM ? "out of memory" : "no room for the pattern");
        return rc == OP_ENOMEM ? OP_ENOMEM : OP_EINVAL;
    }
    memcpy(p->node, node, nlen);
    p->node[nlen] = '\0';
    p->soft = soft != NULL && json_is_true(soft);
    return 0;
}

int op_fleet_purge_decode(const char *data, size_t len, struct op_fleet_purge *p, char *err,
                          size_t errlen)
{
    int rc;
    if (len > OP_FLEET_RECORD_MAX) {
        rc = refuse(err, errlen, "%zu bytes, more than %d", len, OP_FLEET_RECORD_MAX);
    } else {
        /* no JSON_DISABLE_EOF_CHECK: bytes after the object are an error;
         * no JSON_DECODE_ANY: only an object or an array parses at all */
        json_error_t jerr;
        json_t *o = json_loadb(data != NULL ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
        if (o == NULL) {
            bool oom = json_error_code(&jerr) == json_error_out_of_memory;
            refuse(err, errlen, "not JSON: %s (at byte %d)", jerr.text, jerr.position);
            rc = oom ? OP_ENOMEM : OP_EINVAL;
        } else {
            rc = decode(o, p, err, errlen);
            json_decref(o);
        }
    }
    if (rc != 0) {
        p->kind = OP_PURGE_URL;
        p->soft = false;
        p->node[0] = '\0';
        op_buf_reset(&p->pattern);
    }
    return rc;
}
