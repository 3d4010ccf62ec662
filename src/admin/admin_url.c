/* An operator's URL as the cache key it names: the scheme only picks the
 * default port to drop, the host is lower-cased, and the rest goes through
 * op_cache_key_primary, as the keys of stored objects did. */
#include "admin_int.h"

#include "outpost/cache.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int op_admin__url_key(const char *url, size_t len, bool prefix, struct op_buf *out, char *err,
                      size_t errlen)
{
    const char *dport;
    size_t skip;
    if (len > 7 && strncasecmp(url, "http://", 7) == 0) {
        skip = 7;
        dport = ":80";
    } else if (len > 8 && strncasecmp(url, "https://", 8) == 0) {
        skip = 8;
        dport = ":443";
    } else {
        snprintf(err, errlen, "expected an http:// or https:// URL");
        return OP_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            snprintf(err, errlen, "the URL has a space or a control character");
            return OP_EINVAL;
        }
    }
    const char *host = url + skip;
    size_t rest = len - skip, alen = 0; /* alen: the authority as written */
    while (alen < rest && host[alen] != '/' && host[alen] != '?' && host[alen] != '#')
        alen++;
    if (alen == 0 || memchr(host, '@', alen) != NULL) {
        snprintf(err, errlen, "the URL needs a host (and no user info)");
        return OP_EINVAL;
    }
    size_t hlen = alen, dlen = strlen(dport);
    if (hlen > dlen && memcmp(host + hlen - dlen, dport, dlen) == 0)
        hlen -= dlen;
    char lower[256];
    if (hlen >= sizeof(lower)) {
        snprintf(err, errlen, "host too long");
        return OP_EINVAL;
    }
    for (size_t i = 0; i < hlen; i++)
        lower[i] = (char)tolower((unsigned char)host[i]);
    const char *target = host + alen;
    size_t tlen = rest - alen;
    const char *frag = memchr(target, '#', tlen);
    if (frag != NULL)
        tlen = (size_t)(frag - target);
    if (tlen == 0 && !prefix) { /* "http://host" names "/" */
        target = "/";
        tlen = 1;
    }
    char path[8192];
    if (tlen > 0 && target[0] == '?') { /* "http://host?q" names "/?q" */
        if (tlen + 1 >= sizeof(path)) {
            snprintf(err, errlen, "URL too long");
            return OP_EINVAL;
        }
        path[0] = '/';
        memcpy(path + 1, target, tlen);
        target = path;
        tlen++;
    }
    if (op_cache_key_primary(lower, hlen, target, tlen, out) != 0) {
        snprintf(err, errlen, "URL too long");
        return OP_EINVAL;
    }
    return 0;
}
