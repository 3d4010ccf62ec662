/* Unit tests: per-thread rate limiting of warn/info lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct capture {
    char path[32];
    int fd;
    int saved;
};

/* Send stderr to a temporary file until capture_end. */
static void capture_begin(struct capture *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/op-log-XXXXXX");
    c->fd = mkstemp(c->path);
    assert_true(c->fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    dup2(c->fd, 2);
}

/* Restore stderr; return the number of lines written, the last one in <last>,
 * and whether any line contained both <a> and <b>. */
static int capture_end(struct capture *c, char *last, size_t lastlen, const char *a, const char *b,
                       bool *both)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fdopen(c->fd, "r");
    rewind(f);
    char buf[1024];
    int n = 0;
    *both = false;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        n++;
        snprintf(last, lastlen, "%s", buf);
        *both |= strstr(buf, a) != NULL && strstr(buf, b) != NULL;
    }
    fclose(f);
    unlink(c->path);
    return n;
}

static void test_warn_flood_is_limited_and_counted(void **state)
{
    (void)state;
    struct capture c;
    char last[1024];
    bool both;
    capture_begin(&c);
    for (int i = 0; i < 1000; i++)
        op_log_warn("test", "line %d", i);
    op_log_error("test", "errors are never dropped");
    int n = capture_end(&c, last, sizeof(last), "", "", &both);
    assert_true(n >= 40 && n <= 45); /* the burst, what refilled meanwhile, the error */
    assert_non_null(strstr(last, "errors are never dropped"));
}

static void test_dropped_lines_are_reported(void **state)
{
    (void)state;
    struct capture c;
    char last[1024];
    bool reported;
    capture_begin(&c);
    for (int i = 0; i < 200; i++)
        op_log_info("test", "flood %d", i);
    usleep(100000); /* 100 ms refills two lines at 20 a second */
    op_log_info("test", "after the flood");
    capture_end(&c, last, sizeof(last), "after the flood", "similar lines dropped", &reported);
    assert_true(reported);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warn_flood_is_limited_and_counted),
        cmocka_unit_test(test_dropped_lines_are_reported),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
