/* The drive loop both TLS fuzz targets share: the first byte of <data>
 * picks the size of the pieces the rest arrives in; plaintext is taken in
 * <plain>'s small bites, so the pending path runs too, and once the
 * handshake is done every turn answers with <reply>. */
#ifndef OUTPOST_TLS_FUZZ_DRIVE_H
#define OUTPOST_TLS_FUZZ_DRIVE_H

#include "outpost/tls.h"

#include <stdint.h>
#include <string.h>

/* <size> >= 1. Returns the last input or output result. */
static inline int tls_fuzz_drive(struct op_tls_conn *t, const uint8_t *data, size_t size,
                                 const char *reply, struct op_buf *plain, struct op_buf *wire)
{
    size_t piece = 1 + (size_t)data[0] * 37;
    data++;
    size--;
    size_t at = 0;
    int rc = 0;
    /* bounded: every turn takes input or drains plaintext, at most 4096 turns */
    for (int turn = 0; turn < 4096 && rc == 0; turn++) {
        size_t n = size - at < piece ? size - at : piece;
        if (n == 0 && !op_tls_conn_has_pending(t))
            break;
        op_buf_reset(wire);
        rc = op_tls_conn_input(t, (const char *)data + at, n, plain, wire);
        at += n;
        op_buf_reset(plain);
        if (rc == 0 && op_tls_conn_established(t))
            rc = op_tls_conn_output(t, reply, strlen(reply), wire);
    }
    return rc;
}

#endif
