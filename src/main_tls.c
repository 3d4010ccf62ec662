/* TLS on the main thread (see main_tls.h). */
#include "main_tls.h"

#include "outpost/log.h"

#include <stdio.h>
#include <string.h>

#define PATH_MAX_LEN 1024

/* Every "cert, key" pair of one list into <ctx> for <host>. */
static int add_pairs(struct op_tls_ctx *ctx, const char *host, const char *certs, const char *keys,
                     const char *where, const struct op_conf *conf, struct op_buf *errors)
{
    int rc = 0;
    char cert[PATH_MAX_LEN], key[PATH_MAX_LEN], why[1024];
    for (size_t i = 0; op_conf_list_item(certs, i, cert, sizeof(cert)); i++) {
        if (!op_conf_list_item(keys, i, key, sizeof(key))) {
            op_buf_appendf(errors, "%s: %stls_key: no key for %s\n", conf->path, where, cert);
            rc = OP_EINVAL;
            continue;
        }
        if (op_tls_ctx_add_cert(ctx, host, cert, key, why, sizeof(why)) != 0) {
            op_buf_appendf(errors, "%s: %stls_cert: %s\n", conf->path, where, why);
            rc = OP_EINVAL;
        }
    }
    return rc;
}

/* The server context of <conf>: its default certificate and each site's. */
static int server_ctx(struct op_main_tls *mt, const struct op_conf *conf, struct op_tls_ctx **out,
                      struct op_buf *errors)
{
    *out = NULL;
    if (conf->ntls_listens == 0)
        return 0;
    uint64_t rotate_s = conf->tls_ticket_rotate_ms / 1000;
    struct op_tls_server_config cfg = {
        .tickets = mt != NULL && conf->tls_ticket_rotate_ms > 0 ? mt->tickets : NULL,
        /* a ticket opens under the current key and the previous one */
        .ticket_lifetime_s = rotate_s > 0 ? 2 * rotate_s : 300,
        .session_cache = (uint32_t)conf->tls_session_cache,
        .reject_unknown_sni = strcmp(conf->tls_unknown_sni, "reject") == 0,
    };
    struct op_tls_ctx *ctx;
    if (op_tls_ctx_create(&cfg, &ctx) != 0) {
        op_buf_appendf(errors, "%s: TLS: out of memory\n", conf->path);
        return OP_ENOMEM;
    }
    int rc = add_pairs(ctx, NULL, conf->tls_cert, conf->tls_key, "", conf, errors);
    for (size_t i = 0; i < conf->nsites; i++) {
        const struct op_conf_site *s = &conf->sites[i];
        char where[32];
        snprintf(where, sizeof(where), "sites[%zu].", i);
        if (add_pairs(ctx, s->host, s->tls_cert, s->tls_key, where, conf, errors) != 0)
            rc = OP_EINVAL;
    }
    if (rc != 0) {
        op_tls_ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

/* Can each site's https origins be set up: its origin_ca readable and PEM? */
static int check_origins(const struct op_conf *conf, struct op_buf *errors)
{
    int rc = 0;
    for (size_t i = 0; i < conf->nsites; i++) {
        const struct op_conf_site *s = &conf->sites[i];
        if (!op_conf_site_https(s))
            continue;
        struct op_tls_client_config cfg = {.ca_file = s->origin_ca, .verify = s->origin_tls_verify};
        struct op_tls_ctx *ctx = NULL;
        char why[1024];
        if (op_tls_client_ctx_create(&cfg, &ctx, why, sizeof(why)) != 0) {
            op_buf_appendf(errors, "%s: sites[%zu].origin_ca: %s\n", conf->path, i, why);
            rc = OP_EINVAL;
        }
        op_tls_ctx_free(ctx);
    }
    return rc;
}

int op_main_tls_ctx(struct op_main_tls *mt, const struct op_conf *conf, struct op_tls_ctx **out,
                    struct op_buf *errors)
{
    int orc = check_origins(conf, errors); /* both report, whichever fails */
    int rc = server_ctx(mt, conf, out, errors);
    if (rc == 0 && orc != 0) {
        op_tls_ctx_free(*out);
        *out = NULL;
        rc = orc;
    }
    return rc;
}

static void on_rotate(uv_timer_t *t)
{
    struct op_main_tls *mt = t->data;
    if (op_tls_tickets_rotate(mt->tickets) != 0)
        op_log_warn("main", "TLS ticket key rotation failed (no randomness); the current key "
                            "stays");
    else
        op_log_debug("main", "TLS ticket key rotated");
}

int op_main_tls_start(struct op_main_tls *mt, uv_loop_t *loop)
{
    memset(mt, 0, sizeof(*mt));
    if (op_tls_tickets_create(&mt->tickets) != 0)
        return OP_ENOMEM;
    uv_timer_init(loop, &mt->rotate);
    mt->rotate.data = mt;
    mt->started = true;
    return 0;
}

void op_main_tls_retime(struct op_main_tls *mt, const struct op_conf *conf)
{
    if (!mt->started || conf->tls_ticket_rotate_ms == mt->every_ms)
        return;
    mt->every_ms = conf->tls_ticket_rotate_ms;
    uv_timer_stop(&mt->rotate);
    if (mt->every_ms > 0)
        uv_timer_start(&mt->rotate, on_rotate, mt->every_ms, mt->every_ms);
}

void op_main_tls_stop(struct op_main_tls *mt)
{
    if (!mt->started)
        return;
    mt->started = false;
    uv_close((uv_handle_t *)&mt->rotate, NULL);
}

void op_main_tls_fini(struct op_main_tls *mt)
{
    op_tls_tickets_destroy(mt->tickets);
    mt->tickets = NULL;
}
