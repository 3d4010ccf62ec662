/* Response heads, Cache-Status (RFC 9211) and error pages that are never blank. */
#include "proxy_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *op_proxy__reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

static const char *fwd_name(enum op_fwd f)
{
    switch (f) {
    case OP_FWD_URI_MISS: return "uri-miss";
    case OP_FWD_VARY_MISS: return "vary-miss";
    case OP_FWD_STALE: return "stale";
    case OP_FWD_REQUEST: return "request";
    case OP_FWD_METHOD: return "method";
    case OP_FWD_BYPASS: return "bypass";
    case OP_FWD_NONE: break;
    }
    return NULL;
}

void op_proxy__cache_status(struct op_client *c, char *out, size_t len, int64_t ttl, int fwd_status,
                            bool stored, const char *detail)
{
    const char *name = c->ctx->conf->cache_name;
    const char *fwd = fwd_name(c->r.fwd);
    int n;
    if (fwd == NULL) {
        /* a hit: without printf, as this runs on every one */
        char d[OP_DEC_MAX];
        size_t dl = op_dec(ttl, d), nl = strlen(name);
        if (len > nl + 10 + dl) {
            memcpy(out, name, nl);
            memcpy(out + nl, "; hit; ttl=", 11);
            memcpy(out + nl + 11, d, dl);
            out[nl + 11 + dl] = '\0';
            n = (int)(nl + 11 + dl);
        } else {
            n = snprintf(out, len, "%s; hit; ttl=%lld", name, (long long)ttl);
        }
    } else
        n = snprintf(out, len, "%s; fwd=%s", name, fwd);
    if (fwd != NULL && fwd_status > 0 && n > 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, "; fwd-status=%d", fwd_status);
    if (fwd != NULL && stored && n > 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, "; stored");
    if (c->r.collapsed && n > 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, "; collapsed");
    if (fwd != NULL && !stored && detail != NULL && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, "; detail=\"%s\"", detail);
}

/* The request's end in its site's counters. */
static void count_request(struct op_request *r, bool closed)
{
    if (r->counted || r->site == NULL || r->site->metrics == NULL)
        return;
    r->counted = true;
    uint64_t *v = r->site->metrics->v;
    v[OP_SM_requests]++;
    if (closed)
        v[OP_SM_closed_early]++;
    if (r->stale_sent)
        v[OP_SM_stale_served]++;
    else if (r->collapsed)
        v[OP_SM_coalesced]++;
    else if (r->fwd == OP_FWD_URI_MISS || r->fwd == OP_FWD_VARY_MISS || r->fwd == OP_FWD_STALE)
        v[OP_SM_misses]++;
    else if (r->fwd != OP_FWD_NONE)
        v[OP_SM_passes]++;
    else if (r->resp_status > 0 && r->resp_status < 500)
        v[OP_SM_hits]++;
    if (r->status >= 200 && r->status < 600) /* origin_2xx .. origin_5xx are in order */
        v[OP_SM_origin_2xx + (r->status / 100 - 2)]++;
    if (r->resp_status >= 500)
        v[OP_SM_responses_5xx]++;
}

void op_proxy__log_request(struct op_client *c, const char *how)
{
    struct op_request *r = &c->r;
    struct op_proxy_ctx *ctx = c->ctx;
    if (r->id != 0)
        count_request(r, strcmp(how, "closed") == 0);
    if (r->logged || r->id == 0 || ctx->access.log == NULL)
        return;
    r->logged = true;
    char when[32], target[512], origin[16], origin_ms[24];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    /* the target as a quoted field: nothing in it may end the quotes or the line */
    size_t tlen = c->req.target.len < sizeof(target) - 1 ? c->req.target.len : sizeof(target) - 1;
    for (size_t i = 0; i < tlen; i++) {
        unsigned char ch = (unsigned char)c->req.target.data[i];
        target[i] = ch < 0x21 || ch == '"' || ch == '\\' || ch >= 0x7f ? '?' : (char)ch;
    }
    target[tlen] = '\0';
    char cs[sizeof(r->cache_status)];
    snprintf(cs, sizeof(cs), "%s", r->cache_status[0] ? r->cache_status : "-");
    for (char *q = cs; (q = strchr(q, '"')) != NULL;)
        *q = '\''; /* Cache-Status quotes its details; the log quotes the field */
    if (r->status > 0)
        snprintf(origin, sizeof(origin), "%d", r->status);
    else
        snprintf(origin, sizeof(origin), "-");
    if (r->status > 0 && r->origin_ms >= 0)
        snprintf(origin_ms, sizeof(origin_ms), "%lld", (long long)r->origin_ms);
    else
        snprintf(origin_ms, sizeof(origin_ms), "-");
    op_access_line(&ctx->access,
                   "%s %u-%llu %s %s \"%s\" %d \"%s\" origin=%s origin_ms=%s total_ms=%llu %s",
                   when, ctx->worker_id, (unsigned long long)(r->id & OP_PROXY_ID_MASK), c->peer,
                   c->req.method_name, target, r->resp_status, cs, origin, origin_ms,
                   (unsigned long long)(op_time_mono_ms() - r->t_start_ms), how);
}

void op_proxy__interim(struct op_client *c, struct op_http_msg *resp)
{
    /* RFC 9110 §15.2: forwarded ahead of the final response, never to an
     * HTTP/1.0 client, never stored; its hop-by-hop fields stay behind */
    if (c->closing || (c->rs != OP_RS_NONE && c->rs != OP_RS_WAIT) || c->req.major != 1 ||
        c->req.minor < 1)
        return;
    op_headers_strip_hop_by_hop(&resp->headers);
    struct op_buf h;
    op_buf_init(&h, SIZE_MAX);
    op_buf_appendf(&h, "HTTP/1.1 %d %s\r\n", resp->status, op_proxy__reason(resp->status));
    if (op_headers_serialize(&resp->headers, &h) == 0 && op_buf_append(&h, "\r\n", 2) == 0)
        op_proxy__out(c, h.data, h.len);
    op_buf_fini(&h);
}

void op_proxy__head_begin(struct op_client *c, struct op_buf *h, int status,
                          const char *cache_status)
{
    /* without printf: this runs on every hit */
    c->r.resp_status = status;
    size_t cl = cache_status != NULL ? strlen(cache_status) : 0;
    if (cl >= sizeof(c->r.cache_status))
        cl = sizeof(c->r.cache_status) - 1;
    memcpy(c->r.cache_status, cache_status != NULL ? cache_status : "", cl);
    c->r.cache_status[cl] = '\0';
    op_buf_append(h, "HTTP/1.1 ", 9);
    op_buf_append_int(h, status);
    op_buf_append(h, " ", 1);
    op_buf_append_str(h, op_proxy__reason(status));
    if (cache_status != NULL) {
        op_buf_append(h, "\r\nCache-Status: ", 16);
        op_buf_append_str(h, cache_status);
    }
    op_buf_append(h, "\r\nVia: 1.1 ", 11);
    op_buf_append_str(h, c->ctx->conf->cache_name);
    op_buf_append(h, "\r\n", 2);
}

void op_proxy__head_end(struct op_client *c, struct op_buf *h, int64_t content_length, bool no_body)
{
    struct op_request *r = &c->r;
    r->chunked_out = false;
    if (content_length >= 0) {
        op_buf_append(h, "Content-Length: ", 16);
        op_buf_append_int(h, content_length);
        op_buf_append(h, "\r\n", 2);
    } else if (!no_body) {
        if (c->req.major == 1 && c->req.minor >= 1)
            r->chunked_out = true;
        else
            c->close_after = true; /* HTTP/1.0: the close delimits the body */
        if (r->chunked_out)
            op_buf_appendf(h, "Transfer-Encoding: chunked\r\n");
    }
    if (c->close_after || !c->keep_alive || c->ctx->draining)
        op_buf_appendf(h, "Connection: close\r\n");
    else if (c->req.minor == 0)
        op_buf_appendf(h, "Connection: keep-alive\r\n");
    op_buf_append(h, "\r\n", 2);
}

static bool wants_html(const struct op_client *c)
{
    uint64_t st = 0;
    const char *e;
    size_t elen;
    while (op_headers_next_elem(&c->req.headers, "accept", &st, &e, &elen)) {
        if (elen >= 9 && (memcmp(e, "text/html", 9) == 0 || memcmp(e, "*/*", 3) == 0))
            return true;
    }
    return op_headers_find(&c->req.headers, "accept", 0) < 0;
}

/* An error page; <cs> the Cache-Status, NULL for "fwd=bypass" with the status. */
static void error_page(struct op_client *c, int status, const char *detail, bool close,
                       const char *cs_given)
{
    struct op_buf body, head;
    char cs[200];
    op_buf_init(&body, 1u << 20);
    op_buf_init(&head, 4096);
    bool html = wants_html(c);
    const char *name = c->ctx->conf->cache_name;
    unsigned long long rid = (unsigned long long)(c->r.id & OP_PROXY_ID_MASK);
    char rid_text[48];
    snprintf(rid_text, sizeof(rid_text), "%u-%llu", c->ctx->worker_id, rid);
    /* a request that failed before it was routed has no site: the built-in page */
    const char *tmpl = c->r.site != NULL ? c->r.site->conf->error_page_html : NULL;
    bool custom = html && tmpl != NULL;
    if (custom && op_proxy__render_error_page(&body, tmpl, status, detail, name, rid_text) != 0) {
        op_log_warn("proxy",
                    "error page of site %s too large once filled in; using the built-in "
                    "page",
                    c->r.site->conf->host);
        op_buf_reset(&body);
        custom = false;
    }
    if (!custom && html)
        op_buf_appendf(&body,
                       "<!DOCTYPE html>\n<html><head><title>%d %s</title></head><body>\n"
                       "<h1>%d %s</h1>\n<p>%s</p>\n<p>node %s, worker %u, request %llu</p>\n"
                       "</body></html>\n",
                       status, op_proxy__reason(status), status, op_proxy__reason(status), detail,
                       name, c->ctx->worker_id, rid);
    else if (!custom)
        op_buf_appendf(&body, "%d %s\n%s\nnode %s, worker %u, request %llu\n", status,
                       op_proxy__reason(status), detail, name, c->ctx->worker_id, rid);
    if (close)
        c->close_after = true;
    if (cs_given != NULL)
        snprintf(cs, sizeof(cs), "%s", cs_given);
    else
        snprintf(cs, sizeof(cs), "%s; fwd=bypass; detail=\"%d\"", name, status);
    op_proxy__head_begin(c, &head, status, cs);
    op_buf_appendf(&head, "Content-Type: %s\r\nCache-Control: no-store\r\n",
                   html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8");
    op_buf_appendf(&head, "X-Request-Id: %s\r\n", rid_text);
    if (c->r.retry_after_s > 0)
        op_buf_appendf(&head, "Retry-After: %u\r\n", c->r.retry_after_s);
    bool no_body = c->req.method == OP_HTTP_HEAD;
    op_proxy__head_end(c, &head, (int64_t)body.len, false);
    op_proxy__out(c, head.data, head.len);
    if (!no_body)
        op_proxy__out(c, body.data, body.len);
    op_buf_fini(&body);
    op_buf_fini(&head);
    if (c->closing)
        return;
    if (c->rq != OP_RQ_DONE && close)
        op_proxy__set_rq(c, OP_RQ_DONE); /* the rest of the request is never read */
    op_proxy__response_done(c);
    op_proxy__step(c);
}

void op_proxy__error(struct op_client *c, int status, const char *detail, bool close)
{
    error_page(c, status, detail, close, NULL);
}

void op_proxy__origin_error(struct op_client *c, int err)
{
    char cs[200];
    if (c->r.fwd == OP_FWD_NONE)
        c->r.fwd = OP_FWD_URI_MISS;
    op_proxy__cache_status(c, cs, sizeof(cs), 0, 0, false, op_proxy__origin_failure(err));
    const char *detail = op_err_tls(err)      ? op_err_msg(err)
                         : err == OP_ETIMEOUT ? "the origin did not answer in time"
                                              : "the origin could not be reached or answered badly";
    error_page(c, op_err_status(err) == 504 ? 504 : 502, detail, false, cs);
}

void op_proxy__redirect_https(struct op_client *c, const char *host, size_t hlen, bool has_body)
{
    const struct op_http_msg *m = &c->req;
    const struct op_conf *conf = c->ctx->conf;
    /* the host without its port: "[v6]" or a name or IPv4 address */
    size_t name_len = op_http_authority_host_len(host, hlen);
    /* the path and query: an absolute-form target's own (RFC 9112 §3.2.2) */
    const char *path = m->target.data;
    size_t plen = m->target.len;
    bool https;
    const char *auth;
    size_t alen;
    if (plen > 0 && path[0] != '/' &&
        !op_http_url_split(m->target.data, m->target.len, &https, &auth, &alen, &path, &plen)) {
        op_proxy__error(c, 400, "a request for \"*\" has no https URL", has_body);
        return;
    }
    uint16_t port = conf->ntls_listens > 0 ? conf->tls_listens[0].port : 443;
    char port_text[8] = "";
    if (port != 443)
        snprintf(port_text, sizeof(port_text), ":%u", port);
    struct op_buf head;
    op_buf_init(&head, 64 * 1024);
    char cs[160];
    snprintf(cs, sizeof(cs), "%s; fwd=bypass; detail=\"https-redirect\"", conf->cache_name);
    if (has_body)
        c->close_after = true;
    static const char body[] = "308 Permanent Redirect: this site is served over https\n";
    op_proxy__head_begin(c, &head, 308, cs);
    op_buf_appendf(&head,
                   "Location: https://%.*s%s%s%.*s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Cache-Control: no-store\r\n",
                   (int)name_len, host, port_text, plen == 0 ? "/" : "", (int)plen, path);
    op_proxy__head_end(c, &head, (int64_t)sizeof(body) - 1, false);
    op_proxy__out(c, head.data, head.len);
    if (m->method != OP_HTTP_HEAD)
        op_proxy__out(c, body, sizeof(body) - 1);
    op_buf_fini(&head);
    if (c->closing)
        return;
    if (c->rq != OP_RQ_DONE && has_body)
        op_proxy__set_rq(c, OP_RQ_DONE); /* the body is never read */
    op_proxy__response_done(c);
    op_proxy__step(c);
}
