/* include/outpost/admin.h: the admin API, HTTP/1.1 with JSON bodies on a
 * Unix socket, served on the main loop.
 *
 * The socket file is created mode 0600; each peer is checked with
 * SO_PEERCRED: root, the node's own uid, and members of admin_group (when
 * set) are served, anyone else gets 403. Purges go to the store writer and are
 * answered once committed (their acknowledgements come back through the
 * admin's mailbox); stats and metrics read the workers' counters; drain only
 * changes what health reports, the listeners keep serving.
 *
 *   GET  /health                 200 {"status":"ready"} or 503 {"status":"draining"}
 *   POST /drain, POST /undrain
 *   GET  /inspect?url=URL        the stored variants of one URL (404: none)
 *   POST /reload                 200 {"reloaded": true, "generation": N}, or 400 with
 *                                the new config's errors (the old one stays)
 *   GET  /stats                  JSON counters
 *   GET  /metrics                Prometheus text
 *   POST /purge                  {"url"|"prefix"|"tag"|"host": "...", "soft": false}
 *                                -> {"purged": N, "seq": S}
 * Everything runs on the main loop thread.
 */
#ifndef OUTPOST_ADMIN_H
#define OUTPOST_ADMIN_H

#include "outpost/core.h"
#include "outpost/log.h"
#include "outpost/store.h"

#include <uv.h>

struct op_admin; /* opaque */
struct op_fleet;

struct op_admin_config {
    uv_loop_t *loop;        /* borrowed: the main loop */
    const char *path;       /* borrowed: the socket path */
    const char *group;      /* borrowed: a group also allowed in; "" = none */
    const char *node;       /* borrowed: the node's name (cache_name) */
    struct op_store *store; /* borrowed */
    /* borrowed; NULL without a fleet: purges then are this node's alone */
    struct op_fleet *fleet;
    /* Sum of the workers' counters (read without locks: each is one word). */
    void (*metrics)(void *arg, struct op_metrics *sum);
    /* Per-site counters summed over the workers, into <out> (<cap> hosts at
     * most); returns how many. */
    size_t (*site_metrics)(void *arg, struct op_site_metrics *out, size_t cap);
    /* Reload the config file: 0 with *id, or non-zero with the reasons in
     * <errors>, one per line (the old config stays). */
    int (*reload)(void *arg, struct op_buf *errors, uint64_t *id);
    /* The earliest notAfter (Unix time) of the certificates new TLS
     * connections get; 0 without TLS. */
    int64_t (*tls_expiry)(void *arg);
    void *arg;
};

/* Bind the socket (a stale socket file left by a dead node is replaced; a
 * live one is not). 0, OP_EADDRINUSE, OP_EINVAL (unknown group) or OP_EIO,
 * logged. */
int op_admin_start(const struct op_admin_config *cfg, struct op_admin **out);
/* Close the listener and every connection, and remove the socket file. */
void op_admin_stop(struct op_admin *a);
/* Free it once the loop has run the close callbacks and the store is closed
 * (acknowledgements of purges still under way arrive until then). */
void op_admin_free(struct op_admin *a);
/* Has an operator asked it to report draining? */
bool op_admin_draining(const struct op_admin *a);

#endif
