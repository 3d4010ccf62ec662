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

/* Run <lines> warn lines (and one error) with stderr sent to a file; count
 * what was written. */
static int count_written(int lines, char *last, size_t lastlen)
{
    char path[] = "/tmp/op-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    for (int i = 0; i < lines; i++)
        op_log_warn("test", "line %d", i);
    op_log_error("test", "errors are never dropped");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    char buf[1024];
    int n = 0;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        n++;
        snprintf(last, lastlen, "%s", buf);
    }
    fclose(f);
    unlink(path);
    return n;
}

static void test_warn_flood_is_limited_and_counted(void **state)
{
    (void)state;
    char last[1024];
    int n = count_written(1000, last, sizeof(last));
    assert_true(n >= 40 && n <= 45); /* the burst, plus what refilled meanwhile, plus the error */
    assert_non_null(strstr(last, "errors are never dropped"));
    usleep(100000); /* 100 ms refills two lines at 20 a second */
    n = count_written(1, last, sizeof(last));
    assert_int_equal(n, 2);
}

static void test_dropped_lines_are_reported(void **state)
{
    (void)state;
    char path[] = "/tmp/op-log-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    for (int i = 0; i < 200; i++)
        op_log_info("test", "flood %d", i);
    usleep(100000);
    op_log_info("test", "after the flood");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    char buf[1024];
    bool reported = false;
    while (fgets(buf, sizeof(buf), f) != NULL)
        reported |= strstr(buf, "after the flood") != NULL && strstr(buf, "dropped") != NULL;
    fclose(f);
    unlink(path);
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
