/* Fuzz target: origin responses through llhttp, then the cache policy over
 * the parsed fields, as the proxy does on every origin response. */
#include "outpost/cache.h"

#include <stdint.h>

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
    struct op_http_msg m;
    struct op_http_parser hp;
    struct op_headers req;
    op_http_msg_init(&m, 256, 65536);
    op_headers_init(&req, 8, 1024);
    op_http_parser_init(&hp, true, &m, on_body, NULL);
    hp.head_only = size > 0 && (data[0] & 1);
    size_t used = 0, off = 0;
    int rc;
    /* interim responses first (bounded by the parser), then the final head */
    for (;;) {
        rc = op_http_parser_execute(&hp, (const char *)data + off, size - off, &used);
        off += used;
        if (rc != OP_EAGAIN || hp.event != OP_HTTP_EV_INTERIM)
            break;
        op_headers_strip_hop_by_hop(&m.headers);
        op_http_parser_resume(&hp);
    }
    if (rc == OP_EAGAIN && hp.event == OP_HTTP_EV_HEAD) {
        (void)op_http_keep_alive_timeout_ms(&m.headers); /* the pool's, before the strip */
        op_headers_strip_hop_by_hop(&m.headers);
        struct op_cache_exchange x = {.method = OP_HTTP_GET,
                                      .req = &req,
                                      .status = m.status,
                                      .resp = &m.headers,
                                      .request_time = 1700000000,
                                      .response_time = 1700000001};
        struct op_cache_meta meta;
        op_cache_storable(&x, &meta);
        int64_t age, ttl;
        op_cache_evaluate(&meta, &req, 1700000100, &age, &ttl);
        op_cache_not_modified(&req, &m.headers, &meta);
        struct op_buf vary, block;
        op_buf_init(&vary, 4096);
        op_buf_init(&block, 1 << 20);
        op_cache_vary_names(&m.headers, &vary);
        op_headers_serialize(&m.headers, &block);
        struct op_headers back;
        op_headers_init(&back, 256, 1 << 20);
        op_headers_parse_block(&back, block.data ? block.data : "", block.len);
        op_cache_freshen_headers(&back, &m.headers);
        op_headers_fini(&back);
        op_buf_fini(&vary);
        op_buf_fini(&block);
        op_http_parser_resume(&hp);
        op_http_parser_execute(&hp, (const char *)data + off, size - off, &used);
    }
    op_headers_fini(&req);
    op_http_msg_fini(&m);
    return 0;
}
