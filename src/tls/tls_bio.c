/* The connection's own BIO. OpenSSL reads the ciphertext the caller is
 * feeding straight from the caller's buffer (what it leaves is kept in a
 * stash for the next call), and writes each record straight into the
 * caller's wire buffer: a memory BIO pair would copy every byte once more
 * each way. */
#include "tls_int.h"

#include <pthread.h>
#include <string.h>

#define STASH_MAX (256 * 1024) /* fed bytes not read yet; callers feed one read at a time */
#define STASH_KEEP (32 * 1024) /* an empty stash bigger than this gives its memory back */

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static int io_write(BIO *b, const char *p, int len)
{
    struct op_tls_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (io->wire == NULL || len < 0) {
        io->wire_rc = OP_EINVAL; /* a write outside an input or output call */
        return -1;
    }
    int rc = op_buf_append(io->wire, p, (size_t)len);
    if (rc != 0) {
        io->wire_rc = rc; /* a record that does not fit is lost: the connection fails */
        return -1;
    }
    return len;
}

static int io_read(BIO *b, char *out, int len)
{
    struct op_tls_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    size_t n = 0;
    if (io->stash.len > 0) {
        n = io->stash.len < (size_t)len ? io->stash.len : (size_t)len;
        memcpy(out, io->stash.data, n);
        op_buf_consume(&io->stash, n);
    } else if (io->in_len > 0) {
        n = io->in_len < (size_t)len ? io->in_len : (size_t)len;
        memcpy(out, io->in, n);
        io->in += n;
        io->in_len -= n;
    } else {
        BIO_set_retry_read(b); /* more to come, not end of file */
        return -1;
    }
    return (int)n;
}

static long io_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct op_tls_io *io = BIO_get_data(b);
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return io != NULL ? (long)(io->stash.len + io->in_len) : 0;
    default: return 0; /* no dup, no kTLS, no EOF state */
    }
}

static int io_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "outpost conn");
    if (m != NULL &&
        (BIO_meth_set_write(m, io_write) != 1 || BIO_meth_set_read(m, io_read) != 1 ||
         BIO_meth_set_ctrl(m, io_ctrl) != 1 || BIO_meth_set_create(m, io_create) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    method = m;
}

BIO *op_tls__bio_new(struct op_tls_io *io)
{
    pthread_once(&method_once, method_make);
    if (method == NULL)
        return NULL;
    BIO *b = BIO_new(method);
    if (b != NULL)
        BIO_set_data(b, io);
    op_buf_init(&io->stash, STASH_MAX);
    return b;
}

void op_tls__bio_begin(struct op_tls_io *io, const char *p, size_t len, struct op_buf *wire)
{
    io->in = p;
    io->in_len = len;
    io->wire = wire;
    io->wire_rc = 0;
}

int op_tls__bio_end(struct op_tls_io *io)
{
    int rc = io->wire_rc;
    if (io->in_len > 0 && rc == 0 && (rc = op_buf_append(&io->stash, io->in, io->in_len)) != 0)
        rc = OP_ETOOBIG; /* the caller fed more than it should while the filter held some */
    io->in = NULL;
    io->in_len = 0;
    io->wire = NULL;
    if (io->stash.len == 0 && io->stash.cap > STASH_KEEP) {
        op_buf_fini(&io->stash);
        op_buf_init(&io->stash, STASH_MAX);
    }
    return rc;
}

void op_tls__bio_drop_input(struct op_tls_io *io)
{
    io->in_len = 0;
    op_buf_reset(&io->stash);
}

void op_tls__bio_fini(struct op_tls_io *io)
{
    op_buf_fini(&io->stash);
}
