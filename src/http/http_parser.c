/* llhttp glue: fills an op_http_msg, stops after the head and after each
 * message so that the connection's state machine decides what comes next.
 * All lenient flags stay off (llhttp's strict defaults). */
#include "outpost/http.h"

#include <llhttp.h>
#include <string.h>

_Static_assert(sizeof(llhttp_t) <= sizeof(((struct op_http_parser *)0)->llhttp),
               "op_http_parser.llhttp is too small for llhttp_t");

#define LL(hp) ((llhttp_t *)(void *)(hp)->llhttp)

static struct op_http_parser *owner(llhttp_t *p)
{
    return p->data;
}

static int on_message_begin(llhttp_t *p)
{
    struct op_http_parser *hp = owner(p);
    op_http_msg_reset(hp->msg);
    hp->in_name = false;
    hp->started = true;
    hp->ext_bytes = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    return op_buf_append(&owner(p)->msg->target, at, len) == 0 ? 0 : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct op_http_parser *hp = owner(p);
    bool first = !hp->in_name; /* a name may arrive in several pieces */
    hp->in_name = true;
    if (op_headers_extend_name(&hp->msg->headers, at, len, first) != 0) {
        hp->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    owner(p)->in_name = false;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct op_http_parser *hp = owner(p);
    if (op_headers_extend_value(&hp->msg->headers, at, len) != 0) {
        hp->err_status = 431;
        return -1;
    }
    return 0;
}

static enum op_http_method map_method(uint8_t m)
{
    switch (m) {
    case HTTP_GET: return OP_HTTP_GET;
    case HTTP_HEAD: return OP_HTTP_HEAD;
    case HTTP_POST: return OP_HTTP_POST;
    case HTTP_PUT: return OP_HTTP_PUT;
    case HTTP_DELETE: return OP_HTTP_DELETE;
    case HTTP_PATCH: return OP_HTTP_PATCH;
    case HTTP_OPTIONS: return OP_HTTP_OPTIONS;
    case HTTP_CONNECT: return OP_HTTP_CONNECT;
    case HTTP_TRACE: return OP_HTTP_TRACE;
    default: return OP_HTTP_OTHER;
    }
}

static int on_headers_complete(llhttp_t *p)
{
    struct op_http_parser *hp = owner(p);
    struct op_http_msg *m = hp->msg;
    m->major = p->http_major;
    m->minor = p->http_minor;
    m->keep_alive = llhttp_should_keep_alive(p) != 0;
    m->chunked = (p->flags & F_CHUNKED) != 0;
    m->upgrade = p->type == HTTP_REQUEST && p->upgrade != 0;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (uint64_t)INT64_MAX) {
        /* llhttp takes any value that fits 64 bits; ours is signed, and a
         * length that wrapped negative would read as "no body" */
        hp->err_reason = "Content-Length too large";
        return -1;
    }
    m->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    if (p->type == HTTP_REQUEST) {
        m->method = map_method(p->method);
        strncpy(m->method_name, llhttp_method_name((llhttp_method_t)p->method),
                sizeof(m->method_name) - 1);
    } else {
        m->status = p->status_code;
        if (m->major != 1 || m->minor > 1) {
            hp->err_reason = "response version is not HTTP/1.0 or 1.1";
            return -1;
        }
        if (m->status < 100 || m->status > 599) {
            hp->err_reason = "status code out of range";
            return -1;
        }
        if (m->status == 101) {
            /* we never ask for an upgrade (the Upgrade field is hop-by-hop
             * and not forwarded), so a switch of protocols is not ours */
            hp->err_reason = "101 Switching Protocols was not asked for";
            return -1;
        }
        if (m->status < 200) {
            /* interim response (RFC 9110 §15.2): reported by
             * on_message_complete; a stream of them must not hold the
             * request, so only a few are taken */
            if (++hp->interim > OP_HTTP_MAX_INTERIM) {
                hp->err_reason = "too many 1xx responses";
                return -1;
            }
            return 1; /* a 1xx has no body, whatever its fields say */
        }
        /* RFC 9112 §6.3: whatever its Content-Length says, a response to
         * HEAD, a 204 or a 304 ends with its head */
        hp->bodiless = hp->head_only || m->status == 204 || m->status == 304;
        if (hp->bodiless)
            return 1; /* DONE follows at once (see on_message_complete) */
    }
    hp->event = OP_HTTP_EV_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct op_http_parser *hp = owner(p);
    if (hp->on_body != NULL && hp->on_body(hp->arg, at, len) != 0)
        return -1;
    return 0;
}

/* Chunk extensions (and, through the header table, trailers) share the
 * head's byte budget: llhttp alone would take them without end. */
static int on_chunk_extension(llhttp_t *p, const char *at, size_t len)
{
    struct op_http_parser *hp = owner(p);
    (void)at;
    hp->ext_bytes += len;
    if (hp->ext_bytes > hp->msg->headers.bytes.max) {
        hp->err_status = 413;
        hp->err_reason = "chunk extensions too long";
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct op_http_parser *hp = owner(p);
    if (p->type == HTTP_RESPONSE && hp->msg->status >= 100 && hp->msg->status < 200) {
        /* 1xx: the caller may forward it; the next message begins with a
         * reset, so none of its fields reach the final response */
        hp->event = OP_HTTP_EV_INTERIM;
        return HPE_PAUSED;
    }
    hp->started = false;
    if (p->type == HTTP_RESPONSE && hp->bodiless && hp->event != OP_HTTP_EV_HEAD) {
        hp->event = OP_HTTP_EV_HEAD;
        hp->done_pending = true;
        return HPE_PAUSED;
    }
    hp->event = OP_HTTP_EV_DONE;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void op_http_msg_init(struct op_http_msg *m, uint32_t max_fields, size_t max_bytes)
{
    memset(m, 0, sizeof(*m));
    op_buf_init(&m->target, max_bytes);
    op_headers_init(&m->headers, max_fields, max_bytes);
    m->content_length = -1;
}

void op_http_msg_fini(struct op_http_msg *m)
{
    op_buf_fini(&m->target);
    op_headers_fini(&m->headers);
}

void op_http_msg_reset(struct op_http_msg *m)
{
    op_buf_reset(&m->target);
    op_headers_reset(&m->headers);
    m->method = OP_HTTP_OTHER;
    m->method_name[0] = '\0';
    m->status = 0;
    m->keep_alive = false;
    m->chunked = false;
    m->upgrade = false;
    m->content_length = -1;
}

void op_http_parser_init(struct op_http_parser *hp, bool response, struct op_http_msg *msg,
                         op_http_body_cb *on_body_cb, void *arg)
{
    memset(hp, 0, sizeof(*hp));
    llhttp_init(LL(hp), response ? HTTP_RESPONSE : HTTP_REQUEST, &settings);
    LL(hp)->data = hp;
    hp->msg = msg;
    hp->on_body = on_body_cb;
    hp->arg = arg;
}

int op_http_parser_execute(struct op_http_parser *hp, const char *p, size_t len, size_t *used)
{
    hp->event = OP_HTTP_EV_NONE;
    if (hp->done_pending) {
        hp->done_pending = false;
        hp->event = OP_HTTP_EV_DONE;
        *used = 0;
        return OP_EAGAIN;
    }
    llhttp_errno_t e = llhttp_execute(LL(hp), p, len);
    switch (e) {
    case HPE_OK: *used = len; return 0;
    case HPE_PAUSED:
    case HPE_PAUSED_UPGRADE:
        *used = (size_t)(llhttp_get_error_pos(LL(hp)) - p);
        if (e == HPE_PAUSED_UPGRADE)
            hp->event = OP_HTTP_EV_DONE;
        return OP_EAGAIN;
    default:
        *used = 0;
        if (hp->err_reason == NULL) /* else a callback of ours said why */
            hp->err_reason = llhttp_get_error_reason(LL(hp));
        if (hp->err_status == 0)
            hp->err_status = 400;
        return OP_EPARSE;
    }
}

void op_http_parser_resume(struct op_http_parser *hp)
{
    llhttp_t *p = LL(hp);
    if (llhttp_get_errno(p) == HPE_PAUSED)
        llhttp_resume(p);
    else if (llhttp_get_errno(p) == HPE_PAUSED_UPGRADE)
        llhttp_resume_after_upgrade(p);
}

int op_http_parser_finish(struct op_http_parser *hp)
{
    hp->event = OP_HTTP_EV_NONE;
    llhttp_errno_t e = llhttp_finish(LL(hp));
    if (e == HPE_OK || e == HPE_PAUSED)
        return 0;
    hp->err_reason = llhttp_get_error_reason(LL(hp));
    return OP_EPARSE;
}

bool op_http_parser_mid_message(const struct op_http_parser *hp)
{
    return hp->started;
}
