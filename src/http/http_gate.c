/* The strict framing gate: a byte-level check of a request head that runs
 * before llhttp. Anything llhttp 8.1.0 might resynchronise on is rejected here
 * (see the CVE list in http.h). The rules are RFC 9112 §2.2, §3, §5 and §6.3. */
#include "outpost/http.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static enum op_gate_rc reject(struct op_gate *g, int status, const char *why)
{
    g->status = status;
    g->why = why;
    return OP_GATE_REJECT;
}

struct head_facts {
    const char *host;
    size_t host_len;
    int nhost;
    const char *cl;
    size_t cl_len;
    int ncl;
    bool cl_conflict;
    int nte;
    bool te_chunked_only;
};

static bool span_eq_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static void trim(const char **v, size_t *len)
{
    while (*len > 0 && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*len)--;
    }
    while (*len > 0 && ((*v)[*len - 1] == ' ' || (*v)[*len - 1] == '\t'))
        (*len)--;
}

/* One header line, without its CRLF. */
static enum op_gate_rc check_field(const char *p, size_t len, struct head_facts *f,
                                   struct op_gate *g)
{
    if (p[0] == ' ' || p[0] == '\t')
        return reject(g, 400, "obsolete line folding");
    size_t n = 0;
    while (n < len && is_tchar((unsigned char)p[n]))
        n++;
    if (n == 0 || n == len || p[n] != ':')
        return reject(g, 400, "malformed header field name");
    const char *v = p + n + 1;
    size_t vlen = len - n - 1;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return reject(g, 400, "control character in header value");
    }
    trim(&v, &vlen);
    if (span_eq_nocase(p, n, "host", 4)) {
        f->host = v;
        f->host_len = vlen;
        f->nhost++;
    } else if (span_eq_nocase(p, n, "content-length", 14)) {
        uint64_t dummy;
        if (op_parse_u64(v, vlen, &dummy) != 0)
            return reject(g, 400, "malformed Content-Length");
        if (f->ncl > 0 && !span_eq_nocase(v, vlen, f->cl, f->cl_len))
            f->cl_conflict = true;
        f->cl = v;
        f->cl_len = vlen;
        f->ncl++;
    } else if (span_eq_nocase(p, n, "transfer-encoding", 17)) {
        f->nte++;
        f->te_chunked_only = span_eq_nocase(v, vlen, "chunked", 7);
    }
    return OP_GATE_HEAD;
}

/* "METHOD SP request-target SP HTTP/1.x", without its CRLF. */
static enum op_gate_rc check_request_line(const char *p, size_t len, bool *http11,
                                          const char **target, size_t *tlen, struct op_gate *g)
{
    size_t i = 0;
    while (i < len && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == len || p[i] != ' ')
        return reject(g, 400, "malformed method");
    size_t t = ++i;
    while (i < len && p[i] > 0x20 && p[i] < 0x7f)
        i++;
    if (i == t || i == len || p[i] != ' ')
        return reject(g, 400, "malformed request target");
    *target = p + t;
    *tlen = i - t;
    const char *ver = p + i + 1;
    size_t vlen = len - i - 1;
    if (vlen == 8 && memcmp(ver, "HTTP/1.1", 8) == 0)
        *http11 = true;
    else if (vlen == 8 && memcmp(ver, "HTTP/1.0", 8) == 0)
        *http11 = false;
    else
        return reject(g, 400, "unsupported HTTP version");
    return OP_GATE_HEAD;
}

enum op_gate_rc op_http_gate_request(const char *p, size_t len, const struct op_http_limits *lim,
                                     struct op_gate *g)
{
    size_t i = 0;
    memset(g, 0, sizeof(*g));

    /* RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
     * request line (some clients send CRLF after a POST body). */
    while (i + 1 < len && p[i] == '\r' && p[i + 1] == '\n' && i < 8)
        i += 2;
    g->skip = i;
    const char *head = p + i;
    size_t avail = len - i;

    struct head_facts f = {0};
    size_t line = 0; /* start of the current line */
    uint32_t nfields = 0;
    bool http11 = false;
    const char *target = NULL;
    size_t tlen = 0;
    enum op_gate_rc rc;

    for (size_t k = 0; k < avail; k++) {
        unsigned char c = (unsigned char)head[k];
        if (c == '\n')
            return reject(g, 400, "bare LF");
        if (c != '\r') {
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return reject(g, 400, "control character in head");
            if (line == 0 && k >= lim->max_request_line)
                return reject(g, 414, "request line too long");
            if (k >= lim->max_header_size)
                return reject(g, 431, "request head too large");
            continue;
        }
        if (k + 1 == avail)
            break; /* wait for the byte after CR */
        if (head[k + 1] != '\n')
            return reject(g, 400, "bare CR");
        size_t llen = k - line;
        if (line == 0) {
            if ((rc = check_request_line(head, llen, &http11, &target, &tlen, g)) != OP_GATE_HEAD)
                return rc;
        } else if (llen == 0) {
            /* end of the head */
            if (http11 && f.nhost == 0)
                return reject(g, 400, "missing Host");
            if (f.nhost > 1)
                return reject(g, 400, "more than one Host");
            if (f.cl_conflict)
                return reject(g, 400, "conflicting Content-Length");
            if (f.nte > 0 && (f.nte > 1 || !f.te_chunked_only))
                return reject(g, 400, "unsupported Transfer-Encoding");
            if (f.nte > 0 && (f.ncl > 0 || !http11))
                return reject(g, 400, "Transfer-Encoding with Content-Length or on HTTP/1.0");
            const char *bad =
                op_http_check_authority(target, tlen, f.nhost ? f.host : NULL, f.host_len);
            if (bad != NULL)
                return reject(g, 400, bad);
            g->head_len = k + 2;
            return OP_GATE_HEAD;
        } else {
            if (++nfields > lim->max_headers)
                return reject(g, 431, "too many header fields");
            if ((rc = check_field(head + line, llen, &f, g)) != OP_GATE_HEAD)
                return rc;
        }
        k++; /* skip the LF */
        line = k + 1;
    }
    if (line == 0 && avail >= lim->max_request_line)
        return reject(g, 414, "request line too long");
    if (avail >= lim->max_header_size)
        return reject(g, 431, "request head too large");
    return OP_GATE_MORE;
}
