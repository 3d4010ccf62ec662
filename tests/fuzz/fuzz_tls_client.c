/* Fuzz target: a hostile https origin's bytes into the TLS filter's client
 * side (a connection to "a.test" that verifies against a CA made at
 * start-up, resuming from a slot as an origin's pooled connections do),
 * driven by tls_fuzz_drive.h. */
#include "outpost/tls.h"

#include "../unit/tls/tls_testcert.h"
#include "tls_fuzz_drive.h"

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
    struct op_tls_conn *t = op_tls_conn_client_new(ctx, "a.test", &session);
    if (t == NULL)
        return 0;
    struct op_buf plain, wire;
    op_buf_init(&plain, 512);
    op_buf_init(&wire, 1 << 20);
    int rc = op_tls_conn_input(t, NULL, 0, &plain, &wire); /* the ClientHello */
    char why[160];
    if (rc == 0)
        rc = tls_fuzz_drive(t, data, size, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", &plain, &wire);
    if (rc != 0 && !op_tls_conn_established(t) && op_tls_conn_failure(t, why, sizeof(why)) == 0)
        abort(); /* a failed handshake always says why */
    op_buf_fini(&plain);
    op_buf_fini(&wire);
    op_tls_conn_free(t);
    return 0;
}
