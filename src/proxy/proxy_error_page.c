/* A site's own error page: the operator's HTML template with {status},
 * {reason}, {detail}, {node} and {request_id} replaced by HTML-escaped
 * values. Unknown {words} stay as they are. */
#include "proxy_int.h"

#include <stdio.h>
#include <string.h>

static int append_escaped(struct op_buf *out, const char *s)
{
    int rc = 0;
    for (; *s != '\0' && rc == 0; s++) {
        switch (*s) {
        case '<': rc = op_buf_append(out, "&lt;", 4); break;
        case '>': rc = op_buf_append(out, "&gt;", 4); break;
        case '&': rc = op_buf_append(out, "&amp;", 5); break;
        case '"': rc = op_buf_append(out, "&quot;", 6); break;
        case '\'': rc = op_buf_append(out, "&#39;", 5); break;
        default: rc = op_buf_append(out, s, 1);
        }
    }
    return rc;
}

int op_proxy__render_error_page(struct op_buf *out, const char *tmpl, int status,
                                const char *detail, const char *node, const char *request_id)
{
    char num[8];
    snprintf(num, sizeof(num), "%d", status);
    const struct {
        const char *name;
        const char *value;
    } vars[] = {{"{status}", num},
                {"{reason}", op_proxy__reason(status)},
                {"{detail}", detail},
                {"{node}", node},
                {"{request_id}", request_id}};
    const char *p = tmpl;
    while (*p != '\0') {
        const char *open = strchr(p, '{');
        if (open == NULL)
            return op_buf_append(out, p, strlen(p));
        if (op_buf_append(out, p, (size_t)(open - p)) != 0)
            return OP_ENOMEM;
        p = open;
        size_t i = 0;
        while (i < sizeof(vars) / sizeof(vars[0]) &&
               strncmp(p, vars[i].name, strlen(vars[i].name)) != 0)
            i++;
        if (i == sizeof(vars) / sizeof(vars[0])) {
            if (op_buf_append(out, "{", 1) != 0)
                return OP_ENOMEM;
            p++;
            continue;
        }
        if (append_escaped(out, vars[i].value) != 0)
            return OP_ENOMEM;
        p += strlen(vars[i].name);
    }
    return 0;
}
