/* Fuzz target: the strict gate, then llhttp on whatever the gate accepts,
 * driven as the client connection drives it. */
#include "outpost/http.h"

#include <stdint.h>
#include <string.h>

static int on_body(void *arg, const char *p, size_t len)
{
    (void)arg;
    (void)p;
    (void)len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct op_http_limits lim = {8192, 32768, 100};
    struct op_http_msg m;
    struct op_http_parser hp;
    op_http_msg_init(&m, 100, 32768);
    op_http_parser_init(&hp, false, &m, on_body, NULL);
    const char *p = (const char *)data;
    size_t len = size;
    for (int rounds = 0; rounds < 64 && len > 0; rounds++) {
        struct op_gate g;
        if (op_http_gate_request(p, len, &lim, &g) != OP_GATE_HEAD)
            break;
        p += g.skip;
        len -= g.skip;
        /* head, then body and done */
        bool done = false;
        for (int steps = 0; steps < 4 && !done; steps++) {
            size_t used = 0;
            int rc = op_http_parser_execute(&hp, p, len, &used);
            p += used;
            len -= used;
            if (rc == OP_EPARSE || rc == 0)
                goto out;
            op_http_parser_resume(&hp);
            done = hp.event == OP_HTTP_EV_DONE;
            if (hp.event == OP_HTTP_EV_HEAD) {
                size_t hl;
                op_headers_get(&m.headers, "host", &hl);
                op_headers_strip_hop_by_hop(&m.headers);
            }
        }
        if (!done)
            break;
    }
out:
    op_http_msg_fini(&m);
    return 0;
}
