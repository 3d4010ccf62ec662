/* src/proxy/proxy_int.h: what the proxy's files share. Not a public API. */
#ifndef OUTPOST_PROXY_INT_H
#define OUTPOST_PROXY_INT_H

#include "outpost/cache.h"
#include "outpost/flight.h"
#include "outpost/proxy.h"
#include "outpost/store.h"
#include "outpost/tls.h"

#define OP_CLIENT_MAGIC 0x434c4e54u
/* Request ids carry the worker in their top 16 bits; shown as worker-number. */
#define OP_PROXY_ID_MASK ((1ull << 48) - 1)

/* The request side and the response side are separate machines: a request
 * body can still be arriving while the response streams out. */
#define OP_REQ_STATES(X)                                                                           \
    X(HEAD, "read-head")                                                                           \
    X(BODY, "read-body")                                                                           \
    X(DONE, "req-done")

#define OP_RESP_STATES(X)                                                                          \
    X(NONE, "none")                                                                                \
    X(WAIT, "wait")      /* origin or store acknowledgement pending */                             \
    X(STREAM, "stream")  /* head sent, body flowing */                                             \
    X(DONE, "resp-done") /* all bytes queued */

enum op_req_state {
#define X(name, str) OP_RQ_##name,
    OP_REQ_STATES(X)
#undef X
};

enum op_resp_state {
#define X(name, str) OP_RS_##name,
    OP_RESP_STATES(X)
#undef X
};

/* How the response reached the client, for Cache-Status and counters. */
enum op_fwd {
    OP_FWD_NONE, /* a hit */
    OP_FWD_URI_MISS,
    OP_FWD_VARY_MISS,
    OP_FWD_STALE,   /* revalidation of a stale object */
    OP_FWD_REQUEST, /* the request asked for it (no-cache) */
    OP_FWD_METHOD,  /* not a cacheable method or has a body */
    OP_FWD_BYPASS,
};

#define OP_PROXY_RANGES_MAX 16 /* byte ranges served in one response, after merging */

/* A stored body going out a window at a time (proxy_hit.c): at most
 * OP_PROXY_HIT_WINDOW bytes of it are queued on the connection at once. */
struct op_proxy_hit {
    bool active;              /* body bytes still to queue */
    bool from_store;          /* windows are read from the store by <ref> */
    struct op_store_ref ref;  /* from_store: which stored response */
    const char *mem;          /* borrowed: else the body, alive until the request ends */
    struct op_flight *flight; /* ref: holds <mem> when it is a flight's body, else NULL */
    uint64_t size;            /* the representation's length */
    struct op_range rg[OP_PROXY_RANGES_MAX]; /* what to send; a whole body is one range */
    int nranges;
    int part;     /* the range being sent */
    uint64_t off; /* next byte to send, an offset in the body */
    bool multipart;
    bool part_head;  /* multipart: rg[part]'s part header is queued */
    char ctype[256]; /* multipart: each part's Content-Type, "" for none */
};

/* One request on a connection: everything reset between requests. */
struct op_request {
    uint64_t id;
    struct op_proxy_site *site; /* borrowed from gen */
    struct op_proxy_gen *gen;   /* a reference while routed */
    struct op_buf key;          /* primary cache key */
    bool https;                 /* it came over TLS */
    bool cacheable;             /* GET/HEAD without a body */
    enum op_fwd fwd;
    struct op_fetch *fetch; /* owned: freed with op_fetch_abort */
    int64_t request_time;
    int64_t request_ms; /* the same in ms, for Age's response_delay */
    uint64_t t_start_ms;
    uint64_t purge_seq; /* the newest purge when it looked in the store */
    /* the stale object being revalidated, copied out of the store */
    bool have_stale;
    bool conditional; /* our validators went to the origin */
    struct op_headers stale_headers;
    struct op_buf stale_body;      /* dropped once it is served by stale_ref */
    struct op_store_ref stale_ref; /* the stored body stale_body copies */
    struct op_cache_meta stale_meta;
    /* the response being fetched */
    const char *nostore; /* static reason, NULL when it is being stored */
    bool store;
    struct op_buf body; /* stored body as it arrives */
    struct op_cache_meta meta;
    struct op_headers resp_headers; /* cleaned origin headers (for the store) */
    int status;
    bool chunked_out; /* re-chunking the body to the client */
    bool client_body; /* body bytes go to the client (not HEAD/304) */
    bool req_chunked_to_origin;
    uint64_t req_body_bytes;
    uint32_t pending_acks;  /* store invalidations not yet committed */
    bool hold;              /* response held until pending_acks is 0 */
    uint32_t retry_after_s; /* Retry-After on an error page; 0 for none */
    /* for the access log */
    int resp_status;          /* what the client was sent */
    char cache_status[200];   /* likewise */
    uint64_t origin_start_ms; /* this request's own fetch went out; 0 for none */
    int64_t origin_ms;        /* to the origin's head; -1 unknown */
    bool logged;
    bool counted;    /* in its site's counters */
    bool stale_sent; /* the answer was a stale copy */
    /* coalescing (proxy_flight.c) */
    struct op_flight_waiter waiter; /* joined while waiting on or reading a flight */
    struct op_pub *pub;             /* borrowed: the publisher this request leads, while joined */
    bool collapsed;                 /* answered from another request's origin response */
    bool no_flight;                 /* fetch alone (hit-for-miss, or the flight did not fit) */
    bool hit_for_miss;              /* a hit-for-miss marker sent it alone */
    bool revalidated;               /* restarted after a flight's 304 updated the store */
    bool flight_head_sent;
    uint8_t flight_restarts; /* lookups restarted by flights (304, Vary) */
    uint64_t flight_off;     /* flight body bytes already queued to the client */
    uint64_t flight_deadline_ms;
    struct op_proxy_hit hit; /* a stored body being sent */
};

/* What a flight's publisher hands its waiters (the flight's head bytes):
 * this struct, then fields_len bytes of "Name: value\r\n" fields (no Age, no
 * framing), the Vary names and the leader's secondary key. */
struct op_proxy_flight_head {
    int status;
    int64_t content_length; /* the origin's, -1 when it gave none */
    uint64_t origin_ms;     /* from the origin request to its head */
    struct op_cache_meta meta;
    uint32_t fields_len;
    uint32_t vary_len;
    uint32_t variant_len;
};

struct op_client {
    unsigned magic;
    struct op_client *prev, *next; /* borrowed: ctx->clients list */
    struct op_proxy_ctx *ctx;      /* borrowed */
    uint64_t id;
    char peer[48];
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    /* TLS (NULL for plain HTTP): ciphertext read goes through the filter into
     * <in>; what is queued in <out> is sealed into <tls_wire> when written */
    struct op_tls_conn *tls;  /* owned */
    struct op_buf tls_wire;   /* records not yet handed to uv_write */
    bool handshaking;         /* counted in ctx->nhandshakes until it ends */
    bool peer_closed;         /* the client sent close_notify: nothing more comes */
    uint64_t handshake_by_ms; /* uv_now deadline of the handshake */
    enum op_req_state rq;     /* set by op_proxy__set_rq only */
    enum op_resp_state rs;
    /* Deadlines of the request being read (uv_now of the worker's loop): the
     * head's from its first byte; the body's per gap, and its rate floor
     * from when it began, moved on by the time reading waited for the
     * origin (body_paused_ms: since when; 0 not paused). */
    uint64_t head_by_ms; /* 0: no byte of the head yet */
    uint64_t send_by_ms; /* the write under way must be taken by then */
    uint64_t body_since_ms;
    uint64_t body_last_ms;
    uint64_t body_paused_ms;
    bool closing;
    bool close_after; /* close once the response is written */
    bool reading;
    bool origin_paused; /* backpressure: fetch paused for us */
    int pending_closes;
    uint32_t refs; /* store acks in flight: free waits for them */
    struct op_buf in;
    bool head_gated;
    struct op_http_parser parser;
    struct op_http_msg req;
    struct op_buf out;     /* bytes not yet handed to uv_write */
    struct op_buf writing; /* pinned until the write callback */
    bool write_active;
    bool keep_alive;
    struct op_request r;
};

/* proxy_conn.c */
void op_proxy__out(struct op_client *c, const char *p, size_t len);
/* Write <head> then <body> without copying what the socket takes at once. */
void op_proxy__out_direct(struct op_client *c, const char *head, size_t hlen, const char *body,
                          size_t blen);
size_t op_proxy__out_pending(const struct op_client *c);
/* Room for <n> bytes at the end of the output queue, filled by the caller and
 * then queued with op_proxy__out_commit. 0 or OP_ENOMEM. */
int op_proxy__out_reserve(struct op_client *c, size_t n, char **space);
void op_proxy__out_commit(struct op_client *c, size_t n);
/* The whole response is queued; the connection moves on when it is written. */
void op_proxy__response_done(struct op_client *c);
void op_proxy__close(struct op_client *c);
/* Drop a reference taken for a store acknowledgement; frees a closed client. */
void op_proxy__client_unref(struct op_client *c);
void op_proxy__step(struct op_client *c);
/* Re-arm the connection's one timer for its current situation. */
void op_proxy__arm_timer(struct op_client *c);
/* Move the request side to <next>; each state starts its own clock. */
void op_proxy__set_rq(struct op_client *c, enum op_req_state next);

/* proxy_request.c */
void op_proxy__request_init(struct op_request *r);
/* Look the request up (again): answer a usable hit, or go to the origin. */
void op_proxy__lookup(struct op_client *c);
/* No origin can take the request now: the stale copy where stale-if-error
 * allows, else 503 with Retry-After saying <detail>. */
void op_proxy__overloaded(struct op_client *c, const char *detail);
/* Fetch the request on its own (<revalidate>: with r's stored validators). */
void op_proxy__fetch_alone(struct op_client *c, bool revalidate);
/* Take over <f>, started by a publisher, whose head <resp> just arrived. */
void op_proxy__adopt_fetch(struct op_client *c, struct op_fetch *f, struct op_http_msg *resp);
/* Take over <f> mid-body, once op_proxy__flight_take_rest(c) queued all the
 * flight had: the rest streams to <c> and is not stored; <p, len> are the
 * body bytes that did not fit the flight. */
void op_proxy__adopt_fetch_body(struct op_client *c, struct op_fetch *f, const char *p, size_t len);
/* Answer with r's stale copy (<status>: the origin's, 0 for none). */
void op_proxy__serve_stale(struct op_client *c, int status, const char *why);
/* May r's stale copy be served because the origin failed (stale-if-error,
 * or the site's window)? */
bool op_proxy__stale_on_error_ok(const struct op_client *c);
/* Serve r's stale copy if stale-if-error allows it; false if it may not. */
bool op_proxy__serve_stale_on_error(struct op_client *c, int status, const char *why);
void op_proxy__request_fini(struct op_request *r);
void op_proxy__request_start(struct op_client *c);
/* Request body bytes from the client parser. */
int op_proxy__request_body(struct op_client *c, const char *p, size_t len);
void op_proxy__request_body_done(struct op_client *c);
/* Writes drained below the low watermark. */
void op_proxy__on_client_drain(struct op_client *c);

/* proxy_respond.c */
/* The origin exchange failed with <err> (an OP_E* code from fetch) and
 * nothing stale may be served: 502 or 504 with the failure named in
 * Cache-Status (op_proxy__origin_failure) and on the page. */
void op_proxy__origin_error(struct op_client *c, int err);
/* Answer a plain request with 308 to the same target on https (the first
 * listen_tls port); <host, hlen> is the request's valid Host. <has_body>: the
 * body is not read, so the connection closes after. */
void op_proxy__redirect_https(struct op_client *c, const char *host, size_t hlen, bool has_body);

/* proxy_origin.c */
/* The request head for the origin: origin-form target, the request's fields
 * (op_proxy__request_start already removed the hop-by-hop ones from <m>), Via
 * and X-Forwarded-* (Proto from <https>: how the client came),
 * and the body framing (*chunked: re-chunk the body). <method> overrides the
 * request's (NULL keeps it). With <validators> (may be empty), the client's
 * conditionals and Range are left out (not removed from <m>) and
 * If-None-Match / If-Modified-Since from those stored fields are sent. */
int op_proxy__origin_head(struct op_buf *h, struct op_http_msg *m, const struct op_conf_site *site,
                          const char *peer, bool https, const char *cache_name, const char *method,
                          const struct op_headers *validators, bool *chunked);
/* Copy the fields of <from> except hop-by-hop ones (stripped from <from>) and
 * <skip> (may be NULL) into <to>. */
void op_proxy__copy_fields(struct op_headers *to, struct op_headers *from, const char *skip);
/* A failed origin exchange (an OP_E* code from fetch) as Cache-Status and
 * the access log name it: "origin timeout", "certificate verify failed",
 * "origin speaks plain HTTP", "handshake timeout", ... */
const char *op_proxy__origin_failure(int err);
/* The origin statuses that stale-if-error covers (RFC 5861 §4). */
bool op_proxy__origin_error_status(int status);
/* RFC 9110 §6.6.1: a recipient with a clock adds the Date a response lacks. */
void op_proxy__ensure_date(struct op_headers *h);
/* Hand a response to the store writer (Age is never stored; Vary comes from
 * <headers>). <purge_seq>: op_store_purge_seq() before the lookup that led to
 * this fetch; a purge since then that covers it drops it. Returns whether it
 * was queued. */
bool op_proxy__store(struct op_proxy_ctx *ctx, const struct op_buf *key,
                     const struct op_headers *req, const struct op_cache_meta *meta,
                     struct op_headers *headers, const struct op_buf *body, uint64_t purge_seq);

/* May this complete origin response (to a GET) be stored? Fills <meta>
 * (<request_ms>: op_time_now_ms() when the request was made); returns NULL
 * when it may, else the reason: the RFC 9111 one, or "too large"
 * when its Content-Length is over max_object_size. */
const char *op_proxy__storable(const struct op_proxy_ctx *ctx, const struct op_headers *req,
                               int64_t request_ms, const struct op_http_msg *resp,
                               const struct op_headers *fields, struct op_cache_meta *meta);

/* A 304 answered a revalidation: freshen <stored> with the 304's <fresh>
 * fields (RFC 9111 §4.3.4), recompute <meta> (with the stored status), drop
 * Age, and store the result with <body> when policy allows. Returns NULL when
 * policy allows storing, else the reason; *queued tells whether the store
 * took it. */
const char *op_proxy__store_revalidated(struct op_proxy_ctx *ctx, const struct op_buf *key,
                                        const struct op_headers *req, int status,
                                        int64_t request_ms, struct op_headers *stored,
                                        const struct op_headers *fresh, const struct op_buf *body,
                                        struct op_cache_meta *meta, uint64_t purge_seq,
                                        bool *queued);

/* proxy_publish.c */
struct op_pub;
/* Start the origin fetch behind flight <f> (just created, led by <c>): the
 * client's request as a GET, conditional on its stale copy when it holds one
 * with validators. With <leader_waits>, <c> is a waiter of <f> and gets the
 * response directly if it turns out unshareable. 0, or OP_ENOMEM when nothing
 * was started (the caller ends the flight). */
int op_proxy__publish(struct op_client *c, struct op_flight *f, bool leader_waits);
/* The leading client stops waiting. */
void op_proxy__pub_drop_leader(struct op_pub *pub);
/* The client was served its stale copy: revalidate it with one background
 * flight, unless one is under way for the key. */
void op_proxy__revalidate_in_background(struct op_client *c);

/* proxy_flight.c */
/* The flight <c> reads outgrew max_object_size: queue all it published past
 * what <c> already has (ignoring the watermark) and leave it, so that <c>
 * can take its fetch over. False, leaving everything as it was, when <c> is
 * not streaming the flight's body (no head sent yet, HEAD, closing). */
bool op_proxy__flight_take_rest(struct op_client *c);
/* Join or lead the flight for the request's key instead of fetching alone
 * (r holds the stale copy and r->conditional when revalidating). Returns
 * false when the request should fetch alone: coalescing is off, the key is
 * marked hit-for-miss, or the table is full. */
bool op_proxy__flight_start(struct op_client *c, const struct op_cc *req_cc);
/* Leave the flight, if joined (the connection closes, or the request ends). */
void op_proxy__flight_leave(struct op_request *r);
/* The wait deadline passed before the head arrived. */
void op_proxy__flight_timeout(struct op_client *c);
/* The client drained its queued bytes: read more of the flight. */
void op_proxy__flight_drain(struct op_client *c);
/* Is the request waiting for a flight's head (its deadline applies)? */
bool op_proxy__flight_waiting(const struct op_client *c);

/* proxy_respond.c */
const char *op_proxy__reason(int status);
/* Forward an origin's interim response to <c> while its final head is still
 * to come, if <c> speaks HTTP/1.1 (its hop-by-hop fields are removed from
 * <resp>). */
void op_proxy__interim(struct op_client *c, struct op_http_msg *resp);
/* A complete short response with an HTML (or text) body naming the status,
 * the node and the request id; closes the connection afterwards when <close>. */
void op_proxy__error(struct op_client *c, int status, const char *detail, bool close);

/* proxy_purge.c */
/* A PURGE from a purge_allow network: answered once committed (true), or not
 * a purge for us (false: the request goes on as any other method). */
bool op_proxy__purge_request(struct op_client *c);

/* proxy_error_page.c */
/* Append <tmpl> (a site's error_page) with its {placeholders} replaced.
 * 0 or OP_ENOMEM (out reached its limit). */
int op_proxy__render_error_page(struct op_buf *out, const char *tmpl, int status,
                                const char *detail, const char *node, const char *request_id);

/* Start of a response head: status line, our Cache-Status and Via. */
void op_proxy__head_begin(struct op_client *c, struct op_buf *h, int status,
                          const char *cache_status);
/* End of a response head: framing, connection handling, blank line. */
void op_proxy__head_end(struct op_client *c, struct op_buf *h, int64_t content_length,
                        bool no_body);
/* The request's access log line, once: <how> is "done" or "closed". */
void op_proxy__log_request(struct op_client *c, const char *how);
/* "outpost; hit; ttl=42" and friends. */
void op_proxy__cache_status(struct op_client *c, char *out, size_t len, int64_t ttl, int fwd_status,
                            bool stored, const char *detail);

/* proxy_hit.c */
#define OP_PROXY_HIT_WINDOW (128 * 1024) /* body bytes queued per connection at most */

/* Where the body of an object being served comes from. */
struct op_proxy_body {
    const char *data; /* borrowed: see ref and flight */
    uint64_t len;
    /* borrowed, or NULL: data is a store loan, valid during the call only;
     * the rest is read from the store by this ref, a window per drain */
    const struct op_store_ref *ref;
    /* borrowed, or NULL: data is this flight's (final) body; the response
     * takes a reference of its own. With neither, data lives as long as the
     * request (r->stale_body). */
    struct op_flight *flight;
};

/* Serve a stored object to the client, honouring HEAD, conditionals and
 * Range (merged, at most OP_PROXY_RANGES_MAX). The head and the first
 * window go out at once; the rest of the body follows on each drain, with
 * at most OP_PROXY_HIT_WINDOW bytes queued, and the response is done when
 * the last byte is queued (r->hit). */
void op_proxy__serve_object(struct op_client *c, const struct op_cache_meta *m,
                            const struct op_headers *stored, const struct op_proxy_body *body,
                            const char *cache_status);
/* The client drained its queue: queue the next window of r->hit. */
void op_proxy__hit_drain(struct op_client *c);
/* Drop what r->hit holds (the request ends). */
void op_proxy__hit_fini(struct op_request *r);

#endif
