/* PURGE on the data port (purge_allow): every variant of the request's URL
 * goes, and the answer waits until the purge is committed, as through the
 * admin API; on a node in a fleet, until the fleet's stream stored it (every
 * node then applies it). "Soft-Purge: 1" marks them stale instead. Peers
 * outside purge_allow get 403. */
#include "proxy_int.h"

#include "outpost/fleet.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct purge_ack {
    struct op_purge_done done;     /* first: its msg is what is posted */
    struct op_fleet_published pub; /* or this one's, in a fleet */
    struct op_client *c;           /* ref: c->refs counts this message */
    uint64_t request_id;
    bool soft;
};

/* The answer to <ack>: an error, or 200 with <body>. */
static void answer(struct purge_ack *ack, int status, const char *why, const char *body, int n)
{
    struct op_client *c = ack->c;
    if (!c->closing && c->r.id == ack->request_id && c->rs == OP_RS_WAIT) {
        if (status != 200) {
            op_proxy__error(c, status, why, false);
        } else {
            struct op_buf head;
            op_buf_init(&head, 4096);
            op_proxy__head_begin(c, &head, 200, NULL);
            op_buf_appendf(&head, "Content-Type: application/json\r\nCache-Control: no-store\r\n");
            op_proxy__head_end(c, &head, n, false);
            op_proxy__out(c, head.data, head.len);
            if (c->req.method != OP_HTTP_HEAD)
                op_proxy__out(c, body, (size_t)n);
            op_buf_fini(&head);
            op_proxy__response_done(c);
            op_proxy__step(c);
        }
    }
    free(ack);
    op_proxy__client_unref(c);
}

static void on_purged(struct op_msg *m)
{
    struct purge_ack *ack = (struct purge_ack *)m;
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"purged\": %llu, \"seq\": %llu, \"soft\": %s}\n",
                     (unsigned long long)ack->done.count, (unsigned long long)ack->done.seq,
                     ack->soft ? "true" : "false");
    answer(ack, ack->done.rc != 0 ? 500 : 200, "the purge could not be committed", body, n);
}

static void on_published(struct op_msg *m)
{
    struct purge_ack *ack =
        (struct purge_ack *)(void *)((char *)m - offsetof(struct purge_ack, pub));
    char body[160], why[300];
    int n =
        snprintf(body, sizeof(body), "{\"fleet_seq\": %llu, \"published\": true, \"soft\": %s}\n",
                 (unsigned long long)ack->pub.seq, ack->soft ? "true" : "false");
    op_fleet_published_why(&ack->pub, why, sizeof(why));
    answer(ack, ack->pub.rc != 0 ? 503 : 200, why, body, n);
}

bool op_proxy__purge_request(struct op_client *c)
{
    struct op_proxy_ctx *ctx = c->ctx;
    const struct op_conf *conf = ctx->conf;
    if (conf->npurge_nets == 0 || strcmp(c->req.method_name, "PURGE") != 0)
        return false; /* not special: it goes to the origin like any method */
    if (!op_conf_net_match(conf->purge_nets, conf->npurge_nets, c->peer)) {
        op_log_warn("proxy", "PURGE from %s refused: not in purge_allow", c->peer);
        op_proxy__error(c, 403, "PURGE is not allowed from this address", false);
        return true;
    }
    struct purge_ack *ack = calloc(1, sizeof(*ack));
    if (ack == NULL) {
        op_proxy__error(c, 500, "out of memory", false);
        return true;
    }
    size_t vlen;
    const char *v = op_headers_get(&c->req.headers, "soft-purge", &vlen);
    ack->soft = v != NULL && vlen == 1 && v[0] == '1';
    ack->done.msg.run = on_purged;
    ack->pub.msg.run = on_published;
    ack->c = c;
    ack->request_id = c->r.id;
    c->r.fwd = OP_FWD_BYPASS;
    /* the URL without the site: like an admin purge, it reaches what every
     * site stored for it; in a fleet, in the normal form every node checks */
    size_t ulen = op_cache_key_url_len(c->r.key.data, c->r.key.len);
    int rc;
    if (ctx->fleet != NULL) {
        struct op_buf norm;
        char msg[200];
        op_buf_init(&norm, OP_CACHE_PURGE_MAX);
        rc = op_cache_purge_pattern(OP_PURGE_URL, c->r.key.data, ulen, &norm, msg, sizeof(msg));
        if (rc == 0)
            rc = op_fleet_publish(ctx->fleet, OP_PURGE_URL, ack->soft, norm.data, norm.len,
                                  ctx->mailbox, &ack->pub);
        op_buf_fini(&norm);
    } else {
        rc = op_store_purge(ctx->store, OP_PURGE_URL, ack->soft, c->r.key.data, ulen, ctx->mailbox,
                            &ack->done);
    }
    if (rc != 0) {
        free(ack);
        if (rc == OP_EFULL)
            op_proxy__error(c, 503, "fleet: too many purges wait to be published", false);
        else
            op_proxy__error(c, 400, "the URL cannot be purged", false);
        return true;
    }
    c->refs++;
    c->rs = OP_RS_WAIT;
    return true;
}
