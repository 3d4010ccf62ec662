/* Fuzz target: the store's record decoders on bytes that did not come from
 * the encoder (a damaged or foreign cache file). */
#include "store/store_int.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct op_store_rec rec;
    if (op_store__rec_decode((const char *)data, size, &rec) == 0) {
        /* every decoded span lies inside the input */
        const char *end = (const char *)data + size;
        OP_ASSERT(rec.primary + rec.primary_len <= end);
        OP_ASSERT(rec.headers + rec.headers_len <= end);
        OP_ASSERT(rec.body + rec.body_len == end);
        struct op_headers h;
        op_headers_init(&h, 512, 1 << 20);
        op_headers_parse_block(&h, rec.headers, rec.headers_len);
        op_headers_fini(&h);
    }
    const char *names;
    size_t nlen;
    op_store__vary_decode((const char *)data, size, &names, &nlen);
    return 0;
}
