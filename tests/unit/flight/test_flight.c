/* Unit tests: the in-flight table: coalescing (leaders, waiters, wake-ups,
 * capacity) and hit-for-miss markers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outpost/flight.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---- coalescing -------------------------------------------------------------- */

struct waiter {
    struct op_flight_waiter w;
    int woken;
    enum op_flight_phase last;
    size_t read; /* body bytes read */
    char body[64];
    bool leave_when_done;
};

static void on_progress(struct op_flight_waiter *fw)
{
    struct waiter *x = (struct waiter *)fw;
    struct op_flight_view v;
    x->woken++;
    op_flight_view(fw->flight, &v);
    x->last = v.phase;
    x->read +=
        op_flight_read(fw->flight, x->read, x->body + x->read, sizeof(x->body) - 1 - x->read);
    if (x->leave_when_done && v.phase != OP_FLIGHT_WAITING && v.phase != OP_FLIGHT_STREAMING)
        op_flight_leave(fw);
}

static void no_wake(void *arg)
{
    (void)arg; /* the test drains the mailbox itself */
}

/* The leading waiter <w> stops waiting and its publisher ends the flight. */
static void leave_and_end(struct op_flight_waiter *w, enum op_flight_phase end, int error)
{
    struct op_flight *f = w->flight;
    op_flight_ref(f); /* the publisher's */
    op_flight_leave(w);
    op_flight_finish(f, end, error);
    op_flight_unref(&f);
}

static void test_capacity_is_a_ceiling(void **state)
{
    (void)state;
    struct op_flight_table *t;
    struct op_mailbox mb;
    op_mailbox_init(&mb, no_wake, NULL);
    assert_int_equal(op_flight_table_create(8, 1, &t), 0);
    struct waiter w[9];
    memset(w, 0, sizeof(w));
    char key[32];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(op_flight_join(t, key, strlen(key), 0, &mb, 10, 0, on_progress, &w[i].w),
                         OP_FLIGHT_LEADER);
    }
    assert_int_equal(op_flight_count(t), 8);
    /* full: the request fetches alone, and no marker squeezes in either */
    assert_int_equal(op_flight_join(t, "one more", 8, 0, &mb, 10, 0, on_progress, &w[8].w),
                     OP_FLIGHT_NONE);
    assert_null(w[8].w.flight);
    op_flight_mark_uncacheable(t, "one more", 8, 1000);
    assert_int_equal(op_flight_count(t), 8);
    /* a prefix is another key; the same key joins */
    struct waiter x = {0};
    assert_int_equal(op_flight_join(t, "k1", 2, 0, &mb, 10, 0, on_progress, &x.w),
                     OP_FLIGHT_FOLLOWER);
    op_flight_leave(&x.w);
    for (int i = 0; i < 8; i++) {
        leave_and_end(&w[i].w, OP_FLIGHT_FAILED, OP_ECLOSED);
    }
    assert_int_equal(op_flight_count(t), 0);
    op_flight_table_destroy(t);
    op_mailbox_fini(&mb);
}

static void test_one_leader_many_followers(void **state)
{
    (void)state;
    struct op_flight_table *t;
    struct op_mailbox mb[2];
    op_mailbox_init(&mb[0], no_wake, NULL);
    op_mailbox_init(&mb[1], no_wake, NULL);
    assert_int_equal(op_flight_table_create(100, 2, &t), 0);
    struct waiter w[4];
    memset(w, 0, sizeof(w));
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb[0], 10, 0, on_progress, &w[0].w),
                     OP_FLIGHT_LEADER);
    struct op_flight *f = w[0].w.flight;
    op_flight_ref(f); /* the publisher's */
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb[0], 10, 0, on_progress, &w[1].w),
                     OP_FLIGHT_FOLLOWER);
    assert_int_equal(op_flight_join(t, "k", 1, 1, &mb[1], 10, 0, on_progress, &w[2].w),
                     OP_FLIGHT_FOLLOWER);
    assert_ptr_equal(w[2].w.flight, f);
    assert_int_equal(op_mailbox_drain(&mb[0]) + op_mailbox_drain(&mb[1]), 0); /* nothing new */

    assert_int_equal(op_flight_publish_head(f, "HEAD", 4), 0);
    assert_int_equal(op_flight_publish_body(f, "hello ", 6, 100), 0);
    assert_int_equal(op_flight_publish_body(f, "world", 5, 100), 0);
    /* one message per worker however many publications */
    assert_int_equal(op_mailbox_drain(&mb[0]), 1);
    assert_int_equal(op_mailbox_drain(&mb[1]), 1);
    assert_int_equal(w[1].woken, 1);
    assert_int_equal(w[2].woken, 1);
    assert_int_equal(w[2].last, OP_FLIGHT_STREAMING);
    assert_string_equal(w[2].body, "hello world");

    /* a late joiner reads from the start (read-while-writer) */
    assert_int_equal(op_flight_join(t, "k", 1, 1, &mb[1], 10, 0, on_progress, &w[3].w),
                     OP_FLIGHT_FOLLOWER);
    on_progress(&w[3].w);
    assert_string_equal(w[3].body, "hello world");

    assert_int_equal(op_flight_publish_body(f, "!", 1, 11), OP_ETOOBIG); /* past max */
    for (int i = 0; i < 4; i++)
        w[i].leave_when_done = true;
    op_flight_finish(f, OP_FLIGHT_DONE, 0);
    assert_int_equal(op_flight_count(t), 0); /* out of the table at once */
    size_t blen;
    assert_non_null(op_flight_body(f, &blen));
    assert_int_equal(blen, 11);
    assert_int_equal(op_mailbox_drain(&mb[0]), 1);
    assert_int_equal(op_mailbox_drain(&mb[1]), 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w[i].last, OP_FLIGHT_DONE);
        assert_null(w[i].w.flight); /* each left from inside its callback */
    }
    op_flight_finish(f, OP_FLIGHT_FAILED, OP_ECLOSED); /* only the first end counts */
    struct op_flight_view v;
    op_flight_view(f, &v);
    assert_int_equal(v.phase, OP_FLIGHT_DONE);
    op_flight_unref(&f);
    assert_null(f);
    /* the next request leads a new flight */
    struct waiter x = {0};
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb[0], 10, 0, on_progress, &x.w),
                     OP_FLIGHT_LEADER);
    leave_and_end(&x.w, OP_FLIGHT_FAILED, OP_ECONNECT);
    op_flight_table_destroy(t);
    op_mailbox_fini(&mb[0]);
    op_mailbox_fini(&mb[1]);
}

static void test_waiter_cap_and_failure(void **state)
{
    (void)state;
    struct op_flight_table *t;
    struct op_mailbox mb;
    op_mailbox_init(&mb, no_wake, NULL);
    assert_int_equal(op_flight_table_create(100, 1, &t), 0);
    struct waiter w[4];
    memset(w, 0, sizeof(w));
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, 2, 0, on_progress, &w[0].w),
                     OP_FLIGHT_LEADER);
    struct op_flight *f = w[0].w.flight;
    op_flight_ref(f);
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, 2, 0, on_progress, &w[1].w),
                     OP_FLIGHT_FOLLOWER);
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, 2, 0, on_progress, &w[2].w),
                     OP_FLIGHT_FOLLOWER);
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, 2, 0, on_progress, &w[3].w), OP_FLIGHT_BUSY);
    assert_null(w[3].w.flight);
    op_flight_leave(&w[2].w); /* a waiter gave up: room again */
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, 2, 0, on_progress, &w[3].w),
                     OP_FLIGHT_FOLLOWER);
    assert_int_equal(op_flight_publish_head(f, "H", 1), 0);
    assert_int_equal(op_flight_publish_body(f, "part", 4, 100), 0);
    op_flight_finish(f, OP_FLIGHT_FAILED, OP_ECLOSED);
    assert_int_equal(op_mailbox_drain(&mb), 1);
    struct op_flight_view v;
    op_flight_view(w[1].w.flight, &v);
    assert_int_equal(v.phase, OP_FLIGHT_FAILED);
    assert_int_equal(v.error, OP_ECLOSED);
    assert_true(v.had_head); /* mid-body: those who sent bytes must close */
    size_t blen;
    assert_null(op_flight_body(f, &blen)); /* a failed body is never handed out whole */
    op_flight_leave(&w[0].w);
    op_flight_leave(&w[1].w);
    op_flight_leave(&w[3].w);
    op_flight_unref(&f);
    op_flight_table_destroy(t);
    op_mailbox_fini(&mb);
}

static void test_wake_ups_come_in_batches(void **state)
{
    (void)state;
    enum { N = 600 };
    struct op_flight_table *t;
    struct op_mailbox mb;
    op_mailbox_init(&mb, no_wake, NULL);
    assert_int_equal(op_flight_table_create(100, 1, &t), 0);
    static struct waiter w[N];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++)
        assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, N, 0, on_progress, &w[i].w),
                         i == 0 ? OP_FLIGHT_LEADER : OP_FLIGHT_FOLLOWER);
    struct op_flight *f = w[0].w.flight;
    op_flight_ref(f);
    op_flight_finish(f, OP_FLIGHT_PASS, 0);
    size_t turns = 0, msgs;
    while ((msgs = op_mailbox_drain(&mb)) > 0) {
        assert_int_equal(msgs, 1);
        turns++;
    }
    assert_int_equal(turns, 3); /* 256 + 256 + 88 */
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].woken, 1); /* every waiter released, each once */
        assert_int_equal(w[i].last, OP_FLIGHT_PASS);
        op_flight_leave(&w[i].w);
    }
    op_flight_unref(&f);
    op_flight_table_destroy(t);
    op_mailbox_fini(&mb);
}

static void test_hit_for_miss_marker(void **state)
{
    (void)state;
    struct op_flight_table *t;
    struct op_mailbox mb;
    op_mailbox_init(&mb, no_wake, NULL);
    assert_int_equal(op_flight_table_create(100, 1, &t), 0);
    struct waiter w = {0};
    op_flight_mark_uncacheable(t, "k", 1, 1000);
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, 10, 999, on_progress, &w.w),
                     OP_FLIGHT_UNCACHEABLE);
    assert_null(w.w.flight);
    assert_int_equal(op_flight_join(t, "other", 5, 0, &mb, 10, 999, on_progress, &w.w),
                     OP_FLIGHT_LEADER); /* markers are per key */
    leave_and_end(&w.w, OP_FLIGHT_FAILED, OP_ECONNECT);
    /* expired: the next request leads again */
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, 10, 1000, on_progress, &w.w),
                     OP_FLIGHT_LEADER);
    leave_and_end(&w.w, OP_FLIGHT_PASS, 0);
    op_flight_mark_uncacheable(t, "k", 1, 5000);
    op_flight_clear_uncacheable(t, "k", 1); /* a storable answer came */
    assert_int_equal(op_flight_join(t, "k", 1, 0, &mb, 10, 1001, on_progress, &w.w),
                     OP_FLIGHT_LEADER);
    leave_and_end(&w.w, OP_FLIGHT_PASS, 0);
    op_mailbox_drain(&mb);
    op_flight_table_destroy(t);
    op_mailbox_fini(&mb);
}

struct herd {
    struct op_flight_table *t;
    struct op_mailbox mb[4];
    struct waiter w[4][200];
    int leaders;
};

struct herd_arg {
    struct herd *h;
    unsigned worker;
};

static void *join_herd(void *arg)
{
    struct herd_arg *a = arg;
    for (int i = 0; i < 200; i++) {
        enum op_flight_join_rc rc =
            op_flight_join(a->h->t, "hot", 3, a->worker, &a->h->mb[a->worker], 1000, 0, on_progress,
                           &a->h->w[a->worker][i].w);
        if (rc == OP_FLIGHT_LEADER)
            __atomic_add_fetch(&a->h->leaders, 1, __ATOMIC_RELAXED);
        else
            assert_int_equal(rc, OP_FLIGHT_FOLLOWER);
    }
    return NULL;
}

static void test_threads_join_one_flight(void **state)
{
    (void)state;
    static struct herd h;
    memset(&h, 0, sizeof(h));
    assert_int_equal(op_flight_table_create(100, 4, &h.t), 0);
    pthread_t th[4];
    struct herd_arg args[4];
    for (unsigned i = 0; i < 4; i++) {
        op_mailbox_init(&h.mb[i], no_wake, NULL);
        args[i] = (struct herd_arg){&h, i};
        pthread_create(&th[i], NULL, join_herd, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(h.leaders, 1); /* 800 requests, one origin fetch */
    struct op_flight *f = h.w[0][0].w.flight;
    op_flight_ref(f);
    assert_int_equal(op_flight_publish_head(f, "H", 1), 0);
    op_flight_finish(f, OP_FLIGHT_AGAIN, 0);
    for (unsigned i = 0; i < 4; i++) {
        op_mailbox_drain(&h.mb[i]);
        for (int k = 0; k < 200; k++) {
            assert_int_equal(h.w[i][k].last, OP_FLIGHT_AGAIN);
            op_flight_leave(&h.w[i][k].w);
        }
        op_mailbox_fini(&h.mb[i]);
    }
    op_flight_unref(&f);
    op_flight_table_destroy(h.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_is_a_ceiling),
        cmocka_unit_test(test_one_leader_many_followers),
        cmocka_unit_test(test_waiter_cap_and_failure),
        cmocka_unit_test(test_wake_ups_come_in_batches),
        cmocka_unit_test(test_hit_for_miss_marker),
        cmocka_unit_test(test_threads_join_one_flight),
    };
    return cmocka_run_group_tests_name("flight", tests, NULL, NULL);
}
