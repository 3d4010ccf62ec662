/* src/main_tls.h: TLS on the main thread: the session ticket keys every
 * worker shares and their rotation timer, and the TLS context of each
 * configuration (its default certificate and each site's, chosen by SNI). */
#ifndef OUTPOST_MAIN_TLS_H
#define OUTPOST_MAIN_TLS_H

#include "outpost/conf.h"
#include "outpost/tls.h"

#include <uv.h>

struct op_main_tls {
    struct op_tls_tickets *tickets; /* owned */
    uv_timer_t rotate;
    uint64_t every_ms; /* the rotation period running; 0 = none */
    bool started;
};

/* The TLS of <conf>, as a start, a reload and `outpost -t` read it: its
 * server context on <mt>'s ticket keys (<mt> NULL: none, as for -t; *out
 * NULL when conf has no listen_tls), and each site's origin_ca for its
 * https origins. 0, or OP_EINVAL (OP_ENOMEM) with one line per problem
 * appended to <errors> ("file: key: reason") and *out NULL. */
int op_main_tls_ctx(struct op_main_tls *mt, const struct op_conf *conf, struct op_tls_ctx **out,
                    struct op_buf *errors);

/* Make the ticket keys and the rotation timer on <loop>, not started. 0 or
 * OP_ENOMEM. */
int op_main_tls_start(struct op_main_tls *mt, uv_loop_t *loop);
/* Rotate every conf->tls_ticket_rotate_ms from now on (at start, and for a
 * reloaded config when its period differs). */
void op_main_tls_retime(struct op_main_tls *mt, const struct op_conf *conf);
/* Stop the timer (its close callback runs on the loop). */
void op_main_tls_stop(struct op_main_tls *mt);
/* After every context using the keys is freed. */
void op_main_tls_fini(struct op_main_tls *mt);

#endif
