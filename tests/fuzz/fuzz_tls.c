/* Fuzz target: hostile bytes from a client into the TLS filter (a server
 * connection with a certificate made at start-up), driven by
 * tls_fuzz_drive.h. */
#include "outpost/tls.h"

#include "../unit/tls/tls_testcert.h"
#include "tls_fuzz_drive.h"

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
    struct op_tls_conn *t = op_tls_conn_new(ctx);
    if (t == NULL)
        return 0;
    struct op_buf plain, wire;
    op_buf_init(&plain, 512);
    op_buf_init(&wire, 1 << 20);
    tls_fuzz_drive(t, data, size, "HTTP/1.1 200 OK\r\n\r\n", &plain, &wire);
    op_tls_conn_shutdown(t, &wire);
    op_buf_fini(&plain);
    op_buf_fini(&wire);
    op_tls_conn_free(t);
    return 0;
}
