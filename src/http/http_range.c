/* Range header parsing (RFC 9110 §14.1.2) against a known representation size. */
#include "outpost/http.h"

#include <string.h>
#include <strings.h>

static bool parse_num(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    while (*p < end && **p >= '0' && **p <= '9')
        (*p)++;
    return *p > s && op_parse_u64(s, (size_t)(*p - s), out) == 0;
}

int op_http_range_parse(const char *p, size_t len, uint64_t size, struct op_range *r, int max)
{
    const char *end = p + len;
    if (len < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return -1;
    p += 6;
    int n = 0;
    int specs = 0;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            break;
        if (++specs > max)
            return -1; /* too many ranges: serve the whole thing (RFC 9110 §14.2) */
        uint64_t first = 0, last = 0;
        bool has_first = false, has_last = false;
        if (*p != '-') {
            if (!parse_num(&p, end, &first))
                return -1;
            has_first = true;
        }
        if (p == end || *p != '-')
            return -1;
        p++;
        if (p < end && *p >= '0' && *p <= '9') {
            if (!parse_num(&p, end, &last))
                return -1;
            has_last = true;
        }
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p != ',')
            return -1;
        if (!has_first && !has_last)
            return -1;
        if (has_first && has_last && last < first)
            return -1;    /* invalid range-spec: the header is ignored */
        if (!has_first) { /* suffix: the last <last> bytes */
            if (last == 0 || size == 0)
                continue;
            first = last >= size ? 0 : size - last;
            last = size - 1;
        } else {
            if (first >= size)
                continue; /* unsatisfiable spec */
            if (!has_last || last >= size)
                last = size - 1;
        }
        r[n].first = first;
        r[n].last = last;
        n++;
    }
    return specs == 0 ? -1 : n;
}
