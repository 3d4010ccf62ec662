/* Fuzz target: hostile bytes from a client into the TLS filter (a server
 * connection with a certificate made at start-up). The first byte picks the
 * size of the pieces the rest arrives in; plaintext is taken in small bites,
 * so the pending path runs too. */
#include "outpost/tls.h"

#include "../unit/tls/tls_testcert.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct op_tls_ctx *ctx;

static void ctx_once(void)
{
    char dir[128], crt[160], key[160], why[512];
    snprintf(dir, sizeof(dir), "/tmp/outpost-fuzz-tls-%d", (int)getpid());
    mkdir(dir, 0700);
    if (tls_testcert_write(dir, "leaf", 30) != 0)
        abort();
    snprintf(crt, sizeof(crt), "%s/leaf.crt", dir);
    snprintf(key, sizeof(key), "%s/leaf.key", dir);
    /* tickets and a second name, so hostile tickets and SNI names reach
     * their callbacks */
    struct op_tls_tickets *tk;
    if (op_tls_tickets_create(&tk) != 0)
        abort();
    struct op_tls_server_config cfg = {
        .tickets = tk, .ticket_lifetime_s = 3600, .session_cache = 64};
    if (op_tls_ctx_create(&cfg, &ctx) != 0 ||
        op_tls_ctx_add_cert(ctx, NULL, crt, key, why, sizeof(why)) != 0 ||
        op_tls_ctx_add_cert(ctx, "a.test", crt, key, why, sizeof(why)) != 0)
        abort();
    unlink(crt);
    unlink(key);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ctx == NULL)
        ctx_once();
    if (size == 0)
        return 0;
    size_t piece = 1 + (size_t)data[0] * 37;
    data++;
    size--;
    struct op_tls_conn *t = op_tls_conn_new(ctx);
    if (t == NULL)
        return 0;
    struct op_buf plain, wire;
    op_buf_init(&plain, 512);
    op_buf_init(&wire, 1 << 20);
    size_t at = 0;
    int rc = 0;
    /* bounded: every turn takes input or drains plaintext, at most 4096 turns */
    for (int turn = 0; turn < 4096 && rc == 0; turn++) {
        size_t n = size - at < piece ? size - at : piece;
        if (n == 0 && !op_tls_conn_has_pending(t))
            break;
        rc = op_tls_conn_input(t, (const char *)data + at, n, &plain, &wire);
        at += n;
        op_buf_reset(&plain);
        op_buf_reset(&wire);
        if (rc == 0 && op_tls_conn_established(t))
            rc = op_tls_conn_output(t, "HTTP/1.1 200 OK\r\n\r\n", 19, &wire);
    }
    op_tls_conn_shutdown(t, &wire);
    op_buf_fini(&plain);
    op_buf_fini(&wire);
    op_tls_conn_free(t);
    return 0;
}
