/* An operator's URL as the cache key it names: op_cache_key_url writes it in
 * the same normal form as the keys of stored objects (without their site, so
 * a purge reaches what every site stored for it); this file only words the
 * errors. */
#include "admin_int.h"

#include "outpost/cache.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool has_blank_or_control(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return true;
    return false;
}

int op_admin__url_key(const char *url, size_t len, bool prefix, struct op_buf *out, char *err,
                      size_t errlen)
{
    int rc = op_cache_key_url(url, len, prefix, out);
    if (rc == 0)
        return 0;
    if (rc != OP_EINVAL)
        snprintf(err, errlen, "URL too long");
    else if (!(len > 7 && strncasecmp(url, "http://", 7) == 0) &&
             !(len > 8 && strncasecmp(url, "https://", 8) == 0))
        snprintf(err, errlen, "expected an http:// or https:// URL");
    else if (has_blank_or_control(url, len))
        snprintf(err, errlen, "the URL has a space or a control character");
    else
        snprintf(err, errlen, "the URL needs a host[:port] (and no user info)");
    return OP_EINVAL;
}
