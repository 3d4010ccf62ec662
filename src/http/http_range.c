/* Range header parsing (RFC 9110 §14.1.2) against a known representation
 * size: overlapping and adjacent ranges are merged, and a set that is too
 * large or made of tiny pieces is ignored (§14.2 lets a server do both). */
#include "outpost/http.h"

#include <string.h>
#include <strings.h>

/* Past this many merged ranges, each under TINY_AVG bytes on average, the
 * multipart framing outweighs the data: the whole representation is sent. */
#define TINY_MIN_RANGES 3
#define TINY_AVG 64

static bool parse_num(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    while (*p < end && **p >= '0' && **p <= '9')
        (*p)++;
    return *p > s && op_parse_u64(s, (size_t)(*p - s), out) == 0;
}

/* Merge [first, last] into r[0..*n), kept ascending with no two ranges
 * overlapping or adjacent. false when it would need more than <max>. */
static bool range_merge(struct op_range *r, int *n, int max, uint64_t first, uint64_t last)
{
    int i = 0;
    while (i < *n && r[i].last + 1 < first)
        i++;
    int j = i;
    while (j < *n && r[j].first <= last + 1) {
        if (r[j].first < first)
            first = r[j].first;
        if (r[j].last > last)
            last = r[j].last;
        j++;
    }
    if (j == i) { /* touches nothing: a new range at i */
        if (*n >= max)
            return false;
        memmove(&r[i + 1], &r[i], (size_t)(*n - i) * sizeof(*r));
        (*n)++;
    } else if (j > i + 1) { /* r[i..j) become one */
        memmove(&r[i + 1], &r[j], (size_t)(*n - j) * sizeof(*r));
        *n -= j - i - 1;
    }
    r[i].first = first;
    r[i].last = last;
    return true;
}

int op_http_range_parse(const char *p, size_t len, uint64_t size, struct op_range *r, int max)
{
    const char *end = p + len;
    if (len < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return -1;
    p += 6;
    int n = 0;
    int specs = 0;
    bool too_many = false;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            break;
        specs++;
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
        if (!too_many && !range_merge(r, &n, max, first, last))
            too_many = true; /* keep reading: a malformed spec still voids it all */
    }
    if (specs == 0)
        return -1;
    if (n == 0)
        return 0; /* none satisfiable: 416, however many there were */
    if (too_many)
        return -1; /* more than <max> after merging: the whole representation */
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += r[i].last - r[i].first + 1;
    if (n >= TINY_MIN_RANGES && total < (uint64_t)n * TINY_AVG)
        return -1;
    return n;
}
