/* include/outpost/http.h: HTTP/1.1 message handling: the strict framing gate in
 * front of llhttp, the llhttp glue for requests and origin responses, the header
 * table, dates and ranges.
 *
 * Nothing here does I/O or keeps global state: every function may be called
 * from any thread on objects that thread owns.
 */
#ifndef OUTPOST_HTTP_H
#define OUTPOST_HTTP_H

#include "outpost/core.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- header table -----------------------------------------------------------
 * Fields keep their order and their original spelling; names compare without
 * case. Names and values live in the table's own byte buffer, so a pointer
 * returned by the getters is valid until the next add or reset. */
struct op_hfield {
    uint32_t name;     /* offset in bytes */
    uint32_t name_len; /* 0 marks a removed field */
    uint32_t value;
    uint32_t value_len;
};

struct op_headers {
    struct op_hfield *f; /* owned */
    uint32_t n;
    uint32_t cap;
    uint32_t max;        /* most fields accepted */
    struct op_buf bytes; /* owns the text */
};

void op_headers_init(struct op_headers *h, uint32_t max_fields, size_t max_bytes);
void op_headers_fini(struct op_headers *h);
void op_headers_reset(struct op_headers *h);
/* Returns 0, OP_ETOOBIG (field count or byte limit) or OP_ENOMEM. */
int op_headers_add(struct op_headers *h, const char *name, size_t nlen, const char *value,
                   size_t vlen);
/* llhttp hands names and values over in pieces: start a field, then extend its
 * last name or value. Same returns as op_headers_add. */
int op_headers_extend_name(struct op_headers *h, const char *p, size_t len, bool first);
int op_headers_extend_value(struct op_headers *h, const char *p, size_t len);
/* Field i's name or value; *len gets the length. i < h->n; removed fields give len 0. */
const char *op_headers_name(const struct op_headers *h, uint32_t i, size_t *len);
const char *op_headers_value(const struct op_headers *h, uint32_t i, size_t *len);
/* Index of the first field named <name> at or after <from>, or -1. */
int op_headers_find(const struct op_headers *h, const char *name, uint32_t from);
/* First value of <name> (trimmed of surrounding blanks) or NULL. */
const char *op_headers_get(const struct op_headers *h, const char *name, size_t *len);
/* Does any <name> field hold <token> in its comma-separated list (no case)? */
bool op_headers_has_token(const struct op_headers *h, const char *name, const char *token);
void op_headers_remove(struct op_headers *h, uint32_t i);
void op_headers_remove_all(struct op_headers *h, const char *name);
/* Replace <to>'s fields with copies of <from>'s (removed ones are skipped).
 * Returns 0, OP_ETOOBIG (<to>'s limits) or OP_ENOMEM. */
int op_headers_copy(struct op_headers *to, const struct op_headers *from);
/* Append "Name: value\r\n" for every field still present. */
int op_headers_serialize(const struct op_headers *h, struct op_buf *out);
/* Parse a serialized block ("Name: value\r\n"...) back into <h> (reset first). */
int op_headers_parse_block(struct op_headers *h, const char *p, size_t len);

/* Remove the hop-by-hop fields (RFC 9110 §7.6.1): Connection and every field it
 * names but Host and Content-Length, Keep-Alive, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-*. Idempotent. */
void op_headers_strip_hop_by_hop(struct op_headers *h);

/* The Keep-Alive field's timeout=N in ms: how long the server says it keeps
 * an idle connection (the shortest when there are several; N above
 * OP_HTTP_KEEP_ALIVE_MAX_S counts as that). -1 when no element is a valid
 * timeout, so the caller keeps its own limit. Read before the hop-by-hop
 * fields are stripped. */
#define OP_HTTP_KEEP_ALIVE_MAX_S 86400
int64_t op_http_keep_alive_timeout_ms(const struct op_headers *h);

/* Iterate over the comma-separated elements of every <name> field.
 * Start with *state = 0 (field index << 32 | offset); returns false when done. */
bool op_headers_next_elem(const struct op_headers *h, const char *name, uint64_t *state,
                          const char **elem, size_t *elen);

/* ---- the strict framing gate ------------------------------------------------
 * Runs over the raw bytes of a request head before llhttp sees them, because
 * llhttp 8.1.0 accepts inputs behind CVE-2023-30589 (bare CR ends the head),
 * CVE-2024-27982 (obs-fold hides Content-Length) and CVE-2025-23167 ("\r\n\rX").
 * Rejects: a CR not followed by LF, an LF without its CR, a control character, a
 * header line starting with SP or HTAB, a version other than HTTP/1.0 and 1.1,
 * a malformed request line or field, Host missing (1.1) or repeated, an
 * absolute-form target whose authority differs from Host, differing or
 * malformed Content-Length, Transfer-Encoding other than one "chunked" (or with
 * Content-Length, or on 1.0). */
struct op_http_limits {
    size_t max_request_line;
    size_t max_header_size;
    uint32_t max_headers;
};

enum op_gate_rc {
    OP_GATE_MORE = 0,   /* no complete head yet, nothing wrong so far */
    OP_GATE_HEAD = 1,   /* a valid head of g->head_len bytes (after g->skip) */
    OP_GATE_REJECT = -1 /* answer g->status and close */
};

struct op_gate {
    size_t skip;     /* leading empty lines to drop before the head */
    size_t head_len; /* bytes of the head, up to and including CRLFCRLF */
    int status;      /* 400, 414 or 431 on reject */
    const char *why; /* static text for the log */
};

enum op_gate_rc op_http_gate_request(const char *p, size_t len, const struct op_http_limits *lim,
                                     struct op_gate *g);

/* The origin-form of a request target (RFC 9112 §3.2): for an absolute-form
 * "http://host/p?q" it is "/p?q"; for "http://host" or "http://host?q" the
 * path is empty, and *slash tells the caller to write "/" before *path. Other
 * forms come back unchanged. A fragment is dropped. Never reads past tlen. */
void op_http_origin_form(const char *t, size_t tlen, const char **path, size_t *plen, bool *slash);

/* ---- authorities (RFC 3986 §3.2, RFC 9110 §4.2.3) ---------------------------
 * The one place that decides what "host [":" port]" is valid and which
 * authorities are the same: the gate (Host and an absolute-form target), the
 * cache key and the admin purges all use these. Pure functions, any thread. */
#define OP_HTTP_HOST_MAX 255                         /* longest host accepted */
#define OP_HTTP_AUTHORITY_MAX (OP_HTTP_HOST_MAX + 8) /* a normalized one fits */

/* Unreserved (RFC 3986 §2.3): ALPHA DIGIT "-" "." "_" "~". */
bool op_http_is_unreserved(unsigned char c);

/* Check <a, len> as an authority without userinfo: reg-name (unreserved,
 * sub-delims but ',', pct-encoded) or IP-literal ("[" IPv6 / IPvFuture "]"),
 * then an optional ":" and *DIGIT port. A comma is refused: in Host it reads
 * as a list of hosts (RFC 9110 §5.3; RFC 9112 §3.2 makes more than one Host a
 * 400). Writes its normal form to <out> (*outlen
 * bytes, not NUL-terminated): host lower-cased, percent-encoded unreserved
 * octets decoded and other percent-encodings in upper-case hex, the port
 * without leading zeros, left out when empty or the scheme's default (80, or
 * 443 when <https>). A trailing dot is kept: "h." is another name than "h".
 * Returns 0, or OP_EINVAL for anything else (empty host, userinfo, a path,
 * '?', '#', blanks, other bytes, port 0 or above 65535, host longer than
 * OP_HTTP_HOST_MAX); <out> is then undefined. */
int op_http_authority_norm(const char *a, size_t len, bool https, char out[OP_HTTP_AUTHORITY_MAX],
                           size_t *outlen);

/* The length of the host that starts authority <a, len> ("host[:port]"):
 * an IP-literal with its brackets ("[v6]", or all of <a> when it has no
 * "]"), else up to the first ':'. Not a check: op_http_authority_norm is. */
size_t op_http_authority_host_len(const char *a, size_t len);

/* Do two authorities both check and normalize to the same one for <https>? */
bool op_http_authority_same(const char *a, size_t alen, const char *b, size_t blen, bool https);

/* Split an absolute http or https URI (scheme in any case): *https, the
 * authority as written (*auth, *alen; not checked) and the rest from the first
 * '/', '?' or '#' (*rest, *rlen; may be empty). Pointers borrow from <u>.
 * Returns false for another scheme or a URI without "//". */
bool op_http_url_split(const char *u, size_t len, bool *https, const char **auth, size_t *alen,
                       const char **rest, size_t *rlen);

/* The gate's authority rule (RFC 9112 §3.2, §3.3): <host, hlen> (the trimmed
 * Host value, NULL when there is none) is a valid authority; the target is
 * origin-form, "*", or an absolute http(s) URI with a valid authority that is
 * the same as Host when both are there. Returns NULL when all holds, else a
 * static reason for the log (the gate answers 400). */
const char *op_http_check_authority(const char *target, size_t tlen, const char *host, size_t hlen);

/* ---- parsing with llhttp ----------------------------------------------------
 * One parser per connection direction. execute() stops (returns OP_EAGAIN) after
 * the head and after each complete message, so the caller decides what to do
 * before more bytes are parsed; op_http_parser_resume() continues. Body bytes
 * are delivered through on_body, borrowed for the duration of the call.
 * Chunk extensions are skipped but counted against the message's header byte
 * limit (413 past it, from either peer); trailer fields
 * are added to msg->headers, within its limits (431 past them). */
enum op_http_method {
    OP_HTTP_GET,
    OP_HTTP_HEAD,
    OP_HTTP_POST,
    OP_HTTP_PUT,
    OP_HTTP_DELETE,
    OP_HTTP_PATCH,
    OP_HTTP_OPTIONS,
    OP_HTTP_CONNECT,
    OP_HTTP_TRACE,
    OP_HTTP_OTHER
};

struct op_http_msg {
    enum op_http_method method;
    char method_name[24];
    struct op_buf target; /* request target as sent */
    int status;           /* response status */
    uint8_t major, minor;
    struct op_headers headers;
    bool keep_alive; /* known after the head */
    bool chunked;
    bool upgrade;           /* a request asking to switch protocols (Upgrade) */
    int64_t content_length; /* -1 if none */
};

struct op_http_parser;
typedef int op_http_body_cb(void *arg, const char *p, size_t len);

/* execute() stops after a final head (HEAD), after each complete message
 * (DONE), and after each interim (1xx) response, whose status and fields are
 * in the message until the next execute (INTERIM). */
enum op_http_event { OP_HTTP_EV_NONE, OP_HTTP_EV_HEAD, OP_HTTP_EV_DONE, OP_HTTP_EV_INTERIM };

/* Interim (1xx) responses taken before a final one; past it, a parse error.
 * A 101, which we never ask for, and a status outside 100-599 are errors
 * too, as is a Content-Length above INT64_MAX in either direction. */
#define OP_HTTP_MAX_INTERIM 8

struct op_http_parser {
    uint64_t llhttp[12];     /* llhttp_t (96 bytes), opaque here; a static assert checks */
    struct op_http_msg *msg; /* borrowed: filled by the parser */
    op_http_body_cb *on_body;
    void *arg;                /* borrowed: passed to on_body */
    enum op_http_event event; /* why execute() last stopped */
    bool head_only;           /* response to HEAD: no body follows */
    bool bodiless;            /* this response has none (HEAD, 204, 304) */
    bool in_name;             /* inside a header name (it may come in pieces) */
    bool done_pending;        /* bodiless response: DONE follows the HEAD event */
    bool started;             /* a message began and has not completed */
    uint8_t interim;          /* 1xx responses seen before the final one */
    size_t ext_bytes;         /* chunk extension bytes in this message */
    int err_status;
    const char *err_reason; /* static text from llhttp or from us, for the log */
};

void op_http_msg_init(struct op_http_msg *m, uint32_t max_fields, size_t max_bytes);
void op_http_msg_fini(struct op_http_msg *m);
void op_http_msg_reset(struct op_http_msg *m);

/* <response>: parse origin responses; else client requests. */
void op_http_parser_init(struct op_http_parser *hp, bool response, struct op_http_msg *msg,
                         op_http_body_cb *on_body, void *arg);
/* Parse <len> bytes; *used gets how many were consumed. Returns 0 when all were
 * consumed, OP_EAGAIN when it stopped at hp->event (HEAD or DONE), or OP_EPARSE
 * (and hp->err_reason) on malformed input or when on_body returned non-zero. */
int op_http_parser_execute(struct op_http_parser *hp, const char *p, size_t len, size_t *used);
void op_http_parser_resume(struct op_http_parser *hp);
/* The peer closed: finish a close-delimited body. 0, or OP_EPARSE if the
 * message was cut short. */
int op_http_parser_finish(struct op_http_parser *hp);
/* True once a message was started and not completed. */
bool op_http_parser_mid_message(const struct op_http_parser *hp);

/* ---- load shedding ----------------------------------------------------------
 * Does an origin's answer say it is shedding load? OP_SHED_SAID: a 503 or
 * 429 with Retry-After. OP_SHED_LIKELY: a 429, or a 503 with neither a
 * validator (ETag, Last-Modified) nor an expiry (Expires, max-age, s-maxage);
 * one alone may be just that page's answer. OP_SHED_NO: anything else, such
 * as a 503 page the origin means to be stored. */
enum op_shed { OP_SHED_NO, OP_SHED_LIKELY, OP_SHED_SAID };
enum op_shed op_http_sheds_load(int status, const struct op_headers *h);

/* ---- dates (RFC 9110 §5.6.7) --------------------------------------------- */
/* IMF-fixdate, RFC 850 and asctime forms; 0 or OP_EINVAL. */
int op_http_date_parse(const char *p, size_t len, int64_t *out);
/* Write the IMF-fixdate of <t> into out (30 bytes with the NUL). */
void op_http_date_format(int64_t t, char out[30]);

/* ---- ranges (RFC 9110 §14) ------------------------------------------------- */
struct op_range {
    uint64_t first;
    uint64_t last; /* inclusive */
};
/* Parse a Range value against a representation of <size> bytes (RFC 9110
 * §14.1.2). The satisfiable ranges are merged where they overlap or touch
 * and put in ascending order in <r> (room for <max>). Returns their count
 * (1..max); 0 when none is satisfiable (416, however many specs there were);
 * or -1 when the field is to be ignored and the whole representation sent
 * (§14.2): malformed, another unit, more than <max> ranges after merging, or
 * three or more ranges averaging under 64 bytes (the multipart framing would
 * outweigh the data). Pure; any thread. */
int op_http_range_parse(const char *p, size_t len, uint64_t size, struct op_range *r, int max);

#endif
