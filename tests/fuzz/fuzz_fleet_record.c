/* Fuzz target: the fleet's purge record (fleet_record.c), untrusted bytes
 * from other nodes through NATS. A record that decodes must encode, and
 * decode again to the same purge; one refused must say why. The same bytes
 * as a pattern of each kind: what op_cache_purge_pattern accepts must come
 * out a fixed point. abort() on a broken rule, so that libFuzzer reports it. */
#include "outpost/fleet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_pattern(enum op_purge_kind kind, const char *data, size_t size)
{
    struct op_buf a, b;
    op_buf_init(&a, OP_CACHE_PURGE_MAX);
    op_buf_init(&b, OP_CACHE_PURGE_MAX);
    char err[300] = "";
    if (op_cache_purge_pattern(kind, data, size, &a, err, sizeof(err)) == 0) {
        if (op_cache_purge_pattern(kind, a.data, a.len, &b, err, sizeof(err)) != 0 ||
            a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
            abort();
    } else if (err[0] == '\0') {
        abort();
    }
    op_buf_fini(&a);
    op_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct op_fleet_purge p, q;
    op_fleet_purge_init(&p);
    op_fleet_purge_init(&q);
    struct op_buf rec, again;
    op_buf_init(&rec, OP_FLEET_RECORD_MAX);
    op_buf_init(&again, OP_FLEET_RECORD_MAX);
    char err[300] = "";
    int rc = op_fleet_purge_decode((const char *)data, size, &p, err, sizeof(err));
    if (rc != 0) {
        if (err[0] == '\0' || p.pattern.len != 0 || p.node[0] != '\0')
            abort();
    } else {
        /* a record that omits "soft", near the size limit, may not fit
         * once "soft" is written: the one refusal allowed */
        rc = op_fleet_purge_encode(&p, &rec);
        if (rc != 0 && !(rc == OP_ETOOBIG && size > OP_FLEET_RECORD_MAX - 64))
            abort();
        if (rc == 0) {
            if (op_fleet_purge_decode(rec.data, rec.len, &q, err, sizeof(err)) != 0)
                abort();
            if (p.kind != q.kind || p.soft != q.soft || strcmp(p.node, q.node) != 0 ||
                p.pattern.len != q.pattern.len ||
                memcmp(p.pattern.data, q.pattern.data, p.pattern.len) != 0)
                abort();
            if (op_fleet_purge_encode(&q, &again) != 0 || again.len != rec.len ||
                memcmp(again.data, rec.data, rec.len) != 0)
                abort();
        }
    }
    if (size <= 4 * OP_CACHE_PURGE_MAX)
        for (int k = OP_PURGE_URL; k <= OP_PURGE_HOST; k++)
            check_pattern((enum op_purge_kind)k, (const char *)data, size);
    op_buf_fini(&again);
    op_buf_fini(&rec);
    op_fleet_purge_fini(&q);
    op_fleet_purge_fini(&p);
    return 0;
}
