/* Fuzz target: a hostile https origin's bytes into the TLS filter's client
 * side (a connection to "a.test" that verifies against a CA made at
 * start-up, resuming from a slot as an origin's pooled connections do). The
 * first byte picks the size of the pieces the rest arrives in. */
#include "outpost/tls.h"

#include "../unit/tls/tls_testcert.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct op_tls_ctx *ctx;
static struct op_tls_session *session;

static void ctx_once(void)
{
    char dir[128], crt[160], why[512];
    snprintf(dir, sizeof(dir), "/tmp/outpost-fuzz-tls-client-%d", (int)getpid());
    mkdir(dir, 0700);
    if (tls_testcert_make(dir, "ca", "a.test", false, 0, 30) != 0)
        abort();
    snprintf(crt, sizeof(crt), "%s/ca.crt", dir);
    struct op_tls_client_config cfg = {.ca_file = crt, .verify = true};
    if (op_tls_client_ctx_create(&cfg, &ctx, why, sizeof(why)) != 0)
        abort();
    unlink(crt);
    snprintf(crt, sizeof(crt), "%s/ca.key", dir);
    unlink(crt);
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
    struct op_tls_conn *t = op_tls_conn_client_new(ctx, "a.test", &session);
    if (t == NULL)
        return 0;
    struct op_buf plain, wire;
    op_buf_init(&plain, 512);
    op_buf_init(&wire, 1 << 20);
    int rc = op_tls_conn_input(t, NULL, 0, &plain, &wire); /* the ClientHello */
    size_t at = 0;
    char why[160];
    /* bounded: every turn takes input or drains plaintext, at most 4096 turns */
    for (int turn = 0; turn < 4096 && rc == 0; turn++) {
        size_t n = size - at < piece ? size - at : piece;
        if (n == 0 && !op_tls_conn_has_pending(t))
            break;
        op_buf_reset(&wire);
        rc = op_tls_conn_input(t, (const char *)data + at, n, &plain, &wire);
        at += n;
        op_buf_reset(&plain);
        if (rc == 0 && op_tls_conn_established(t))
            rc = op_tls_conn_output(t, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", 32, &wire);
    }
    if (rc != 0 && !op_tls_conn_established(t) && op_tls_conn_failure(t, why, sizeof(why)) == 0)
        abort(); /* a failed handshake always says why */
    op_buf_fini(&plain);
    op_buf_fini(&wire);
    op_tls_conn_free(t);
    return 0;
}
