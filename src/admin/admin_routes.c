/* The admin endpoints. Bodies are JSON (jansson); every malformed request
 * gets a 4xx naming what is wrong. */
#include "admin_int.h"

#include "outpost/cache.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool path_is(const struct admin_conn *c, const char *path)
{
    size_t n = strlen(path);
    const char *t = c->req.target.data;
    size_t tlen = c->req.target.len;
    const char *q = t ? memchr(t, '?', tlen) : NULL;
    if (q != NULL)
        tlen = (size_t)(q - t);
    return tlen == n && memcmp(t, path, n) == 0;
}

static void respond_json(struct admin_conn *c, int status, json_t *obj)
{
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(obj);
    if (text == NULL) {
        op_admin__error(c, 500, "out of memory");
        return;
    }
    size_t n = strlen(text);
    char *body = realloc(text, n + 2);
    if (body == NULL) {
        free(text);
        op_admin__error(c, 500, "out of memory");
        return;
    }
    body[n++] = '\n';
    op_admin__respond(c, status, "application/json", body, n);
    free(body);
}

/* A node in a fleet that has not read the purge stream since it started
 * serves nothing from its store, so it is not ready for traffic either. */
static bool catching_up(const struct op_admin *a)
{
    return a->cfg.fleet != NULL && !op_fleet_caught_up(a->cfg.fleet);
}

static json_t *health_obj(struct op_admin *a)
{
    const char *status = a->draining ? "draining" : catching_up(a) ? "catching-up" : "ready";
    return json_pack("{s:s, s:s, s:I}", "status", status, "node", a->cfg.node, "purge_seq",
                     (json_int_t)op_store_purge_applied(a->cfg.store));
}

static void health(struct admin_conn *c)
{
    struct op_admin *a = c->admin;
    respond_json(c, a->draining || catching_up(a) ? 503 : 200, health_obj(a));
}

static json_t *fleet_obj(struct op_fleet *f)
{
    struct op_fleet_stats st;
    op_fleet_stats(f, &st);
    return json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "connected",
                     st.connected, "caught_up", st.caught_up, "applied", (json_int_t)st.applied,
                     "duplicates", (json_int_t)st.duplicates, "invalid", (json_int_t)st.invalid,
                     "published", (json_int_t)st.published, "publish_failures",
                     (json_int_t)st.publish_failures, "last_seq", (json_int_t)st.last_seq,
                     "reconnects", (json_int_t)st.reconnects, "last_error", st.last_error);
}

static void set_drain(struct admin_conn *c, bool on)
{
    struct op_admin *a = c->admin;
    if (a->draining != on)
        op_log_info("admin", "%s",
                    on ? "draining: health reports draining, the listeners serve on"
                       : "undrained: health reports ready");
    a->draining = on;
    respond_json(c, 200, health_obj(a));
}

static void stats(struct admin_conn *c)
{
    struct op_admin *a = c->admin;
    struct op_metrics m = {0};
    a->cfg.metrics(a->cfg.arg, &m);
    struct op_store_stats st;
    op_store_stats(a->cfg.store, &st);
    json_t *counters = json_object();
    for (int i = 0; i < OP_M__COUNT; i++)
        json_object_set_new(counters, op_metric_name[i], json_integer((json_int_t)m.v[i]));
    json_t *store = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "objects", (json_int_t)st.objects, "bytes",
        (json_int_t)st.bytes, "budget", (json_int_t)st.budget, "evictions",
        (json_int_t)st.evictions, "commits", (json_int_t)st.commits, "put_failures",
        (json_int_t)st.put_failures, "puts_dropped_after_purge", (json_int_t)st.puts_dropped,
        "purges", (json_int_t)st.purges, "purged_objects", (json_int_t)st.purged);
    json_t *sites = json_object();
    size_t cap = 256;
    struct op_site_metrics *sm = calloc(cap, sizeof(*sm));
    size_t ns = sm ? a->cfg.site_metrics(a->cfg.arg, sm, cap) : 0;
    for (size_t i = 0; i < ns; i++) {
        json_t *one = json_object();
        for (int k = 0; k < OP_SM__COUNT; k++)
            json_object_set_new(one, op_site_metric_name[k], json_integer((json_int_t)sm[i].v[k]));
        json_object_set_new(sites, sm[i].host, one);
    }
    free(sm);
    json_t *obj = health_obj(a);
    json_object_set_new(obj, "sites", sites);
    json_object_set_new(obj, "purge_seq_given",
                        json_integer((json_int_t)op_store_purge_seq(a->cfg.store)));
    json_object_set_new(obj, "counters", counters);
    json_object_set_new(obj, "store", store);
    if (a->cfg.fleet != NULL)
        json_object_set_new(obj, "fleet", fleet_obj(a->cfg.fleet));
    int64_t expiry = a->cfg.tls_expiry ? a->cfg.tls_expiry(a->cfg.arg) : 0;
    if (expiry > 0)
        json_object_set_new(obj, "tls",
                            json_pack("{s:I, s:I}", "cert_first_expiry", (json_int_t)expiry,
                                      "cert_expires_in_s", (json_int_t)(expiry - time(NULL))));
    respond_json(c, 200, obj);
}

static void metrics(struct admin_conn *c)
{
    struct op_admin *a = c->admin;
    struct op_metrics m = {0};
    a->cfg.metrics(a->cfg.arg, &m);
    struct op_store_stats st;
    op_store_stats(a->cfg.store, &st);
    struct op_buf out;
    op_buf_init(&out, 1 << 20);
    for (int i = 0; i < OP_M__COUNT; i++)
        op_buf_appendf(&out, "# HELP outpost_%s %s\n# TYPE outpost_%s counter\noutpost_%s %llu\n",
                       op_metric_name[i], op_metric_help[i], op_metric_name[i], op_metric_name[i],
                       (unsigned long long)m.v[i]);
    const struct {
        const char *name, *type, *help;
        uint64_t v;
    } more[] = {
        {"store_objects", "gauge", "objects in the cache", st.objects},
        {"store_bytes", "gauge", "bytes of stored records", st.bytes},
        {"store_budget_bytes", "gauge", "bytes the store keeps below", st.budget},
        {"store_evictions_total", "counter", "objects evicted for room", st.evictions},
        {"store_commits_total", "counter", "store write transactions", st.commits},
        {"store_put_failures_total", "counter", "objects the store failed to write",
         st.put_failures},
        {"store_puts_dropped_total", "counter",
         "responses not stored: a purge came after their fetch", st.puts_dropped},
        {"purges_total", "counter", "purges applied", st.purges},
        {"purged_objects_total", "counter", "objects removed or marked stale by purges", st.purged},
        {"purge_seq", "gauge", "the newest purge committed", op_store_purge_applied(a->cfg.store)},
        {"draining", "gauge", "1 while health reports draining", a->draining},
        {"tls_cert_expiry_timestamp_seconds", "gauge",
         "the earliest notAfter of the certificates in use (0: no TLS)",
         a->cfg.tls_expiry ? (uint64_t)a->cfg.tls_expiry(a->cfg.arg) : 0},
    };
    size_t cap = 256;
    struct op_site_metrics *sm = calloc(cap, sizeof(*sm));
    size_t ns = sm ? a->cfg.site_metrics(a->cfg.arg, sm, cap) : 0;
    for (int k = 0; k < OP_SM__COUNT; k++) {
        op_buf_appendf(&out, "# TYPE outpost_site_%s_total counter\n", op_site_metric_name[k]);
        for (size_t i = 0; i < ns; i++) {
            op_buf_appendf(&out, "outpost_site_%s_total{site=\"", op_site_metric_name[k]);
            for (const char *p = sm[i].host; *p != '\0'; p++) { /* label value escapes */
                if (*p == '\n')
                    op_buf_appendf(&out, "\\n");
                else
                    op_buf_appendf(&out, "%s%c", *p == '"' || *p == '\\' ? "\\" : "", *p);
            }
            op_buf_appendf(&out, "\"} %llu\n", (unsigned long long)sm[i].v[k]);
        }
    }
    free(sm);
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        op_buf_appendf(&out, "# HELP outpost_%s %s\n# TYPE outpost_%s %s\noutpost_%s %llu\n",
                       more[i].name, more[i].help, more[i].name, more[i].type, more[i].name,
                       (unsigned long long)more[i].v);
    if (a->cfg.fleet != NULL) {
        struct op_fleet_stats fs;
        op_fleet_stats(a->cfg.fleet, &fs);
        const struct {
            const char *name, *type, *help;
            uint64_t v;
        } fleet[] = {
            {"fleet_connected", "gauge", "1 while connected to a NATS server", fs.connected},
            {"fleet_caught_up", "gauge", "1 once the purge stream is read (the store serves)",
             fs.caught_up},
            {"fleet_purges_applied_total", "counter", "purges applied from the stream", fs.applied},
            {"fleet_purges_duplicate_total", "counter", "purges delivered again: skipped",
             fs.duplicates},
            {"fleet_records_invalid_total", "counter", "stream records that were no purge",
             fs.invalid},
            {"fleet_purges_published_total", "counter", "purges this node published", fs.published},
            {"fleet_publish_failures_total", "counter", "purges the stream did not take",
             fs.publish_failures},
            {"fleet_applied_seq", "gauge", "newest stream sequence applied", fs.last_seq},
            {"fleet_reconnects_total", "counter", "reconnections to NATS", fs.reconnects},
        };
        for (size_t i = 0; i < sizeof(fleet) / sizeof(fleet[0]); i++)
            op_buf_appendf(&out, "# HELP outpost_%s %s\n# TYPE outpost_%s %s\noutpost_%s %llu\n",
                           fleet[i].name, fleet[i].help, fleet[i].name, fleet[i].type,
                           fleet[i].name, (unsigned long long)fleet[i].v);
    }
    op_admin__respond(c, 200, "text/plain; version=0.0.4", out.data ? out.data : "", out.len);
    op_buf_fini(&out);
}

/* Take <p> off its admin's list of purges under way. */
static void purge_unlink(struct admin_purge *p)
{
    struct op_admin *a = p->admin;
    if (p->prev)
        p->prev->next = p->next;
    else
        a->purges = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

/* The fleet's answer to a purge published for <p>. */
static void fleet_published(struct op_msg *m)
{
    struct admin_purge *p =
        (struct admin_purge *)(void *)((char *)m - offsetof(struct admin_purge, pub));
    purge_unlink(p);
    struct admin_conn *c = p->conn;
    if (c != NULL) {
        c->purge = NULL;
        if (p->pub.rc == 0) {
            respond_json(c, 200,
                         json_pack("{s:I, s:b, s:b}", "fleet_seq", (json_int_t)p->pub.seq,
                                   "published", 1, "soft", p->soft));
        } else {
            char why[340], msg[400];
            op_fleet_published_why(&p->pub, why, sizeof(why));
            snprintf(msg, sizeof(msg), "%s (\"local\": true purges this node alone)", why);
            op_admin__error(c, 503, msg);
        }
    }
    free(p);
}

/* {"url"|"prefix"|"tag"|"host": "...", "soft": bool, "local": bool}: in a
 * fleet, published for every node unless local. */
static void purge(struct admin_conn *c)
{
    struct op_admin *a = c->admin;
    json_error_t jerr;
    json_t *req =
        json_loadb(c->body.data ? c->body.data : "", c->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (req == NULL || !json_is_object(req)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "expected a JSON object: %s",
                 req == NULL ? jerr.text : "not an object");
        json_decref(req);
        op_admin__error(c, 400, msg);
        return;
    }
    enum op_purge_kind kind = OP_PURGE_URL;
    int given = 0;
    const char *key;
    json_t *val;
    const char *bad = NULL;
    json_object_foreach(req, key, val)
    {
        enum op_purge_kind k;
        if (op_cache_purge_kind_parse(key, strlen(key), &k)) {
            kind = k;
            given++;
        } else if (strcmp(key, "soft") != 0 && strcmp(key, "local") != 0) {
            bad = key;
        }
    }
    json_t *soft_v = json_object_get(req, "soft");
    json_t *local_v = json_object_get(req, "local");
    char msg[300];
    const char *why = NULL;
    if (bad != NULL) {
        snprintf(msg, sizeof(msg), "unknown field \"%.100s\"", bad);
        why = msg;
    } else if (given != 1) {
        why = "give exactly one of url, prefix, tag or host";
    } else if (!json_is_string(json_object_get(req, op_cache_purge_kind_name(kind)))) {
        why = "the value must be a string";
    } else if (soft_v != NULL && !json_is_boolean(soft_v)) {
        why = "soft must be true or false";
    } else if (local_v != NULL && !json_is_boolean(local_v)) {
        why = "local must be true or false";
    }
    if (why != NULL) {
        json_decref(req);
        op_admin__error(c, 400, why);
        return;
    }
    json_t *pv = json_object_get(req, op_cache_purge_kind_name(kind));
    bool soft = soft_v != NULL && json_is_true(soft_v);
    bool fleet = a->cfg.fleet != NULL && !(local_v != NULL && json_is_true(local_v));
    struct op_buf norm;
    op_buf_init(&norm, OP_CACHE_PURGE_MAX);
    int rc = op_cache_purge_pattern(kind, json_string_value(pv), json_string_length(pv), &norm, msg,
                                    sizeof(msg));
    json_decref(req);
    if (rc != 0) {
        op_buf_fini(&norm);
        op_admin__error(c, rc == OP_ENOMEM ? 500 : 400, msg);
        return;
    }
    struct admin_purge *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        op_buf_fini(&norm);
        op_admin__error(c, 500, "out of memory");
        return;
    }
    p->done.msg.run = op_admin__purge_done;
    p->pub.msg.run = fleet_published;
    p->admin = a;
    p->conn = c;
    p->soft = soft;
    p->next = a->purges;
    if (a->purges)
        a->purges->prev = p;
    a->purges = p;
    c->purge = p;
    rc = fleet
             ? op_fleet_publish(a->cfg.fleet, kind, soft, norm.data, norm.len, &a->mailbox, &p->pub)
             : op_store_purge(a->cfg.store, kind, soft, norm.data, norm.len, &a->mailbox, &p->done);
    op_buf_fini(&norm);
    if (rc != 0) {
        c->purge = NULL;
        purge_unlink(p);
        free(p);
        if (rc == OP_EFULL)
            op_admin__error(c, 503,
                            "fleet: too many purges wait to be published; nothing was "
                            "purged");
        else if (rc == OP_ETOOBIG)
            op_admin__error(c, 400, "fleet: the pattern does not fit in a fleet record");
        else
            op_admin__error(c, 500, "the purge could not be queued");
    }
}

void op_admin__purge_done(struct op_msg *m)
{
    struct admin_purge *p = (struct admin_purge *)m;
    purge_unlink(p);
    struct admin_conn *c = p->conn; /* NULL: it went away; the purge still happened */
    if (c != NULL) {
        c->purge = NULL;
        if (p->done.rc != 0)
            op_admin__error(c, 500, "the store failed to apply the purge; see the error log");
        else
            respond_json(c, 200,
                         json_pack("{s:I, s:I, s:b}", "purged", (json_int_t)p->done.count, "seq",
                                   (json_int_t)p->done.seq, "soft", p->soft));
    }
    free(p);
}

/* Query parameter <name> of the target, percent-decoded into out. */
static bool query_param(const struct admin_conn *c, const char *name, struct op_buf *out)
{
    const char *t = c->req.target.data;
    size_t tlen = c->req.target.len;
    const char *q = t ? memchr(t, '?', tlen) : NULL;
    size_t nlen = strlen(name);
    for (const char *p = q; p != NULL && p < t + tlen;) {
        p++;
        const char *end = memchr(p, '&', (size_t)(t + tlen - p));
        if (end == NULL)
            end = t + tlen;
        if ((size_t)(end - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            for (const char *v = p + nlen + 1; v < end; v++) {
                char ch = *v;
                if (ch == '%' && end - v > 2 && isxdigit((unsigned char)v[1]) &&
                    isxdigit((unsigned char)v[2])) {
                    char hex[3] = {v[1], v[2], 0};
                    ch = (char)strtol(hex, NULL, 16);
                    v += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (op_buf_append(out, &ch, 1) != 0)
                    return false;
            }
            return true;
        }
        p = end;
    }
    return false;
}

static void add_tags(json_t *tags, const struct op_headers *h, const char *name, bool comma)
{
    uint64_t st = 0;
    const char *e;
    size_t elen;
    if (comma) {
        while (op_headers_next_elem(h, name, &st, &e, &elen))
            json_array_append_new(tags, json_stringn(e, elen));
        return;
    }
    size_t vlen;
    const char *v = op_headers_get(h, name, &vlen);
    for (size_t i = 0; v != NULL && i < vlen;) {
        while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t start = i;
        while (i < vlen && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i > start)
            json_array_append_new(tags, json_stringn(v + start, i - start));
    }
}

static void inspect_one(void *arg, const struct op_store_variant *v)
{
    json_t *list = arg;
    int64_t now = op_time_now();
    int64_t age = op_cache_age(&v->meta, now);
    int64_t ttl = v->meta.freshness_lifetime - age;
    struct op_headers h;
    op_headers_init(&h, 256, 1 << 20);
    json_t *tags = json_array();
    if (op_headers_parse_block(&h, v->headers, v->headers_len) == 0) {
        add_tags(tags, &h, "surrogate-key", false);
        add_tags(tags, &h, "cache-tag", true);
    }
    op_headers_fini(&h);
    json_t *o =
        json_pack("{s:s%, s:i, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:I, s:I}", "vary_key",
                  v->secondary ? v->secondary : "", v->secondary_len, "status", (int)v->meta.status,
                  "stored_at", (json_int_t)v->meta.response_time, "age", (json_int_t)age, "ttl",
                  (json_int_t)ttl, "freshness_lifetime", (json_int_t)v->meta.freshness_lifetime,
                  "stale_for", (json_int_t)(ttl < 0 ? -ttl : 0), "must_revalidate",
                  (v->meta.flags & OP_META_MUST_REVALIDATE) != 0, "no_cache",
                  (v->meta.flags & OP_META_NO_CACHE) != 0, "body_bytes", (json_int_t)v->body_len,
                  "record_bytes", (json_int_t)v->record_len);
    /* the whole key: which site stored it */
    json_object_set_new(o, "key", json_stringn(v->primary, v->primary_len));
    /* the response's own stale windows; null: the site's defaults apply */
    json_object_set_new(o, "stale_while_revalidate",
                        v->meta.swr >= 0 ? json_integer(v->meta.swr) : json_null());
    json_object_set_new(o, "stale_if_error",
                        v->meta.sie >= 0 ? json_integer(v->meta.sie) : json_null());
    if (v->meta.swr >= 0 || v->meta.sie >= 0) {
        int64_t window = v->meta.swr > v->meta.sie ? v->meta.swr : v->meta.sie;
        int64_t left = ttl < 0 ? window + ttl : window;
        json_object_set_new(o, "grace_left", json_integer(left > 0 ? left : 0));
    }
    json_object_set_new(o, "tags", tags);
    json_array_append_new(list, o);
}

/* GET /inspect?url=URL: the stored variants of one URL. */
static void inspect(struct admin_conn *c)
{
    struct op_buf url, key;
    op_buf_init(&url, 16 * 1024);
    op_buf_init(&key, 16 * 1024);
    char msg[200];
    if (!query_param(c, "url", &url) || url.len == 0) {
        op_buf_fini(&url);
        op_buf_fini(&key);
        op_admin__error(c, 400, "give ?url=URL (percent-encoded)");
        return;
    }
    int rc = op_cache_key_url_reason(url.data, url.len, false, &key, msg, sizeof(msg));
    if (rc != 0) {
        op_buf_fini(&url);
        op_buf_fini(&key);
        op_admin__error(c, rc == OP_ENOMEM ? 500 : 400, msg);
        return;
    }
    json_t *list = json_array();
    long n = op_store_inspect(c->admin->cfg.store, key.data, key.len, inspect_one, list);
    json_t *obj = json_pack("{s:s%}", "key", key.data, key.len);
    op_buf_fini(&url);
    op_buf_fini(&key);
    if (n < 0) {
        json_decref(list);
        json_decref(obj);
        op_admin__error(c, 500, "the store could not be read; see the error log");
        return;
    }
    json_object_set_new(obj, "variants", list);
    respond_json(c, n > 0 ? 200 : 404, obj);
}

static void reload(struct admin_conn *c)
{
    struct op_admin *a = c->admin;
    struct op_buf errors;
    op_buf_init(&errors, 1 << 20);
    uint64_t id = 0;
    if (a->cfg.reload(a->cfg.arg, &errors, &id) == 0) {
        op_buf_fini(&errors);
        respond_json(c, 200, json_pack("{s:b, s:I}", "reloaded", 1, "generation", (json_int_t)id));
        return;
    }
    json_t *list = json_array();
    const char *p = errors.data ? errors.data : "";
    const char *end = p + errors.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n > 0)
            json_array_append_new(list, json_stringn(p, n));
        p += n + 1;
    }
    op_buf_fini(&errors);
    json_t *obj =
        json_pack("{s:s}", "error", "the new configuration was refused; the old one stays");
    json_object_set_new(obj, "errors", list);
    respond_json(c, 400, obj);
}

void op_admin__route(struct admin_conn *c)
{
    enum op_http_method m = c->req.method;
    static const struct {
        const char *path;
        enum op_http_method method;
        void (*fn)(struct admin_conn *c);
    } routes[] = {
        {"/health", OP_HTTP_GET, health},   {"/stats", OP_HTTP_GET, stats},
        {"/metrics", OP_HTTP_GET, metrics}, {"/purge", OP_HTTP_POST, purge},
        {"/reload", OP_HTTP_POST, reload},  {"/inspect", OP_HTTP_GET, inspect},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!path_is(c, routes[i].path))
            continue;
        if (m != routes[i].method) {
            op_admin__error(c, 405, routes[i].method == OP_HTTP_GET ? "use GET" : "use POST");
            return;
        }
        routes[i].fn(c);
        return;
    }
    if (path_is(c, "/drain") || path_is(c, "/undrain")) {
        if (m != OP_HTTP_POST) {
            op_admin__error(c, 405, "use POST");
            return;
        }
        set_drain(c, path_is(c, "/drain"));
        return;
    }
    op_admin__error(
        c, 404,
        "no such endpoint: /health, /stats, /metrics, /purge, /reload, /inspect, /drain, "
        "/undrain");
}
