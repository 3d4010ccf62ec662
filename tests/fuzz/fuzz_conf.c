/* Fuzz target: the config, as a whole YAML document and as single key values
 * (the quick-start flags' path): origin lists, sizes, durations, addresses. */
#include "outpost/conf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the document: through a memfd, since the loader reads a path */
    int fd = memfd_create("fuzz_conf", 0);
    if (fd >= 0) {
        if (write(fd, data, size) == (ssize_t)size) {
            char path[64];
            snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
            struct op_buf errors;
            op_buf_init(&errors, 1 << 20);
            op_conf_free(op_conf_load(path, &errors));
            op_buf_fini(&errors);
        }
        close(fd);
    }
    /* one value for every key: first byte picks the key */
    if (size < 1)
        return 0;
    char *value = strndup((const char *)data + 1, size - 1);
    struct op_conf *conf = op_conf_new_default();
    struct op_conf_site *site = conf ? op_conf_add_site(conf) : NULL;
    if (value != NULL && site != NULL) {
        size_t nsite = 0, ntop = 0;
        while (op_conf_site_keys[nsite].name != NULL)
            nsite++;
        while (op_conf_top_keys[ntop].name != NULL)
            ntop++;
        char err[256];
        size_t k = data[0] % (nsite + ntop);
        if (k < nsite)
            op_conf_set(conf, site, op_conf_site_keys[k].name, value, err, sizeof(err));
        else
            op_conf_set(conf, NULL, op_conf_top_keys[k - nsite].name, value, err, sizeof(err));
        struct op_buf errors;
        op_buf_init(&errors, 1 << 20);
        op_conf_validate(conf, &errors);
        op_buf_fini(&errors);
    }
    op_conf_free(conf);
    free(value);
    return 0;
}
