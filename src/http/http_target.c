/* Request targets: reducing absolute-form to origin-form. */
#include "outpost/http.h"

#include <string.h>

void op_http_origin_form(const char *t, size_t tlen, const char **path, size_t *plen, bool *slash)
{
    *slash = false;
    const char *hash = memchr(t, '#', tlen);
    if (hash != NULL)
        tlen = (size_t)(hash - t);
    const char *sep = tlen > 0 && t[0] != '/' && t[0] != '*' ? memchr(t, ':', tlen) : NULL;
    if (sep == NULL || (size_t)(sep - t) + 3 > tlen || sep[1] != '/' || sep[2] != '/') {
        *path = t;
        *plen = tlen;
        return;
    }
    size_t i = (size_t)(sep - t) + 3; /* start of the authority */
    while (i < tlen && t[i] != '/' && t[i] != '?')
        i++;
    *path = t + i;
    *plen = tlen - i;
    *slash = i == tlen || t[i] == '?';
}
