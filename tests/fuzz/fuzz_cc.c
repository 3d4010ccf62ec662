/* Fuzz target: Cache-Control, CDN-Cache-Control, Surrogate-Control, dates and
 * ranges from one untrusted value. */
#include "outpost/cache.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct op_headers h;
    op_headers_init(&h, 8, 1 << 20);
    if (op_headers_add(&h, "Cache-Control", 13, (const char *)data, size) == 0 &&
        op_headers_add(&h, "CDN-Cache-Control", 17, (const char *)data, size) == 0 &&
        op_headers_add(&h, "Surrogate-Control", 17, (const char *)data, size) == 0) {
        struct op_cc cc;
        op_cache_cc_parse(&h, "cache-control", &cc);
        op_cache_cdn_cc_parse(&h, &cc);
        op_cache_surrogate_parse(&h, "outpost", &cc);
    }
    int64_t t;
    op_http_date_parse((const char *)data, size, &t);
    struct op_range r[16];
    op_http_range_parse((const char *)data, size, size * 7 + 1, r, 16);
    struct op_buf k;
    op_buf_init(&k, 1 << 20);
    op_cache_key_primary(false, (const char *)data, size / 2, (const char *)data + size / 2,
                         size - size / 2, "*", &k);
    op_buf_reset(&k);
    op_cache_key_url((const char *)data, size, size & 1, &k);
    char a[OP_HTTP_AUTHORITY_MAX];
    size_t alen;
    op_http_authority_norm((const char *)data, size, size & 1, a, &alen);
    op_http_check_authority((const char *)data, size / 2, (const char *)data + size / 2,
                            size - size / 2);
    op_buf_fini(&k);
    op_headers_fini(&h);
    return 0;
}
