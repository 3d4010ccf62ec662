/* Unit tests: the in-flight table's background-revalidation claims. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/flight.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void test_one_claim_per_key(void **state)
{
    (void)state;
    struct op_flight_table *t;
    assert_int_equal(op_flight_table_create(100, &t), 0);
    assert_true(op_flight_reval_begin(t, "http://h/a", 10));
    assert_false(op_flight_reval_begin(t, "http://h/a", 10)); /* under way */
    assert_true(op_flight_reval_begin(t, "http://h/b", 10));
    assert_true(op_flight_reval_begin(t, "http://h/", 9)); /* a prefix is another key */
    assert_int_equal(op_flight_reval_count(t), 3);
    op_flight_reval_end(t, "http://h/a", 10);
    assert_true(op_flight_reval_begin(t, "http://h/a", 10)); /* free again */
    op_flight_reval_end(t, "http://h/a", 10);
    op_flight_reval_end(t, "http://h/b", 10);
    op_flight_reval_end(t, "http://h/", 9);
    op_flight_reval_end(t, "never", 5); /* ending an unknown key is harmless */
    assert_int_equal(op_flight_reval_count(t), 0);
    op_flight_table_destroy(t);
}

static void test_capacity_is_a_ceiling(void **state)
{
    (void)state;
    struct op_flight_table *t;
    char key[32];
    assert_int_equal(op_flight_table_create(8, &t), 0);
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_true(op_flight_reval_begin(t, key, strlen(key)));
    }
    assert_false(op_flight_reval_begin(t, "one more", 8));
    op_flight_table_destroy(t); /* frees what is still claimed */
}

struct race {
    struct op_flight_table *t;
    int won;
};

static void *claim(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key-%d", i);
        if (op_flight_reval_begin(r->t, key, strlen(key)))
            __atomic_add_fetch(&r->won, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_threads_race_for_the_same_keys(void **state)
{
    (void)state;
    struct race r = {0};
    assert_int_equal(op_flight_table_create(100000, &r.t), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, claim, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.won, 1000); /* each key claimed exactly once */
    op_flight_table_destroy(r.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_claim_per_key),
        cmocka_unit_test(test_capacity_is_a_ceiling),
        cmocka_unit_test(test_threads_race_for_the_same_keys),
    };
    return cmocka_run_group_tests_name("flight", tests, NULL, NULL);
}
