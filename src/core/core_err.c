/* The error table: names, messages and HTTP statuses generated from OP_ERRORS. */
#include "outpost/core.h"

#include <stdio.h>
#include <stdlib.h>

static const struct {
    const char *name;
    const char *msg;
    int status;
} err_table[] = {
#define X(name, status, msg) {#name, msg, status},
    OP_ERRORS(X)
#undef X
};

static int err_index(int err)
{
    if (err < 0)
        err = -err;
    return err < OP_ERR__COUNT ? err : -1;
}

const char *op_err_name(int err)
{
    int i = err_index(err);
    return i < 0 ? "EUNKNOWN" : err_table[i].name;
}

const char *op_err_msg(int err)
{
    int i = err_index(err);
    return i < 0 ? "unknown error" : err_table[i].msg;
}

bool op_err_tls(int err)
{
    if (err < 0)
        err = -err;
    return err == OP_ETLSVERIFY || err == OP_ETLSPLAIN || err == OP_ETLS || err == OP_ETLSTIMEOUT;
}

int op_err_status(int err)
{
    int i = err_index(err);
    return i < 0 ? 500 : err_table[i].status;
}

void op_panic(const char *file, int line, const char *expr)
{
    fprintf(stderr, "outpost: assertion failed at %s:%d: %s\n", file, line, expr);
    abort();
}
