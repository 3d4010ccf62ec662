/* Unit tests: an origin's circuit breaker (fetch_limit.c), driven with
 * fetches that never touch a socket. The loop is not run, so uv_now() stands
 * still and every deadline can be read exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fetch/fetch_int.h"

#include <string.h>

struct rig {
    uv_loop_t loop;
    struct op_origin_server servers[2];
    struct op_upstream u;
    struct op_metrics metrics;
};

static struct rig *rig_new(size_t n)
{
    struct rig *r = test_calloc(1, sizeof(*r));
    assert_int_equal(uv_loop_init(&r->loop), 0);
    for (size_t i = 0; i < n; i++) {
        r->servers[i].spec.name = i == 0 ? "a" : "b";
        atomic_init(&r->servers[i].healthy, true);
        atomic_init(&r->servers[i].inflight, 0);
        atomic_init(&r->servers[i].quiet_since_ms, 0);
    }
    assert_int_equal(op_upstream_init(&r->u, &r->loop, r->servers, n, &r->metrics), 0);
    for (size_t i = 0; i < n; i++) {
        r->u.origins[i].fail_threshold = 2;
        r->u.origins[i].cooldown_ms = 1000;
    }
    return r;
}

static void rig_free(struct rig *r)
{
    op_upstream_close(&r->u);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    op_upstream_fini(&r->u);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    test_free(r);
}

static void fetch_init(struct op_fetch *f, struct op_origin *o)
{
    memset(f, 0, sizeof(*f));
    f->magic = FETCH_MAGIC;
    f->origin = o;
}

/* One exchange with <o> that fails to connect (ok false) or gets an answer. */
static void exchange(struct op_origin *o, bool ok)
{
    struct op_fetch f;
    fetch_init(&f, o);
    assert_true(op_fetch__admit(&f));
    op_fetch__health(&f, ok);
    op_fetch__release(&f, ok ? OP_FETCH_OK : OP_FETCH_NEUTRAL);
}

static uint64_t open_for(const struct op_origin *o)
{
    return o->open_until_ms == 0 ? 0 : o->open_until_ms - uv_now(o->loop);
}

static void test_open_circuit_lets_one_probe_through(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct op_origin *o = &r->u.origins[0];
    exchange(o, false);
    assert_false(op_origin_down(o));
    exchange(o, false);
    /* open: requests with a stale copy leave it alone ... */
    assert_true(op_origin_down(o));
    assert_true(op_upstream_down(&r->u));
    assert_int_equal(open_for(o), 1000);
    assert_int_equal(r->metrics.v[OP_M_origin_circuit_opened_total], 1);
    /* ... and a request with nothing to serve may probe it at once */
    assert_false(op_origin_full(o));
    assert_false(op_upstream_full(&r->u));
    assert_ptr_equal(op_upstream__pick(&r->u, NULL), o);
    struct op_fetch probe;
    fetch_init(&probe, o);
    assert_true(op_fetch__admit(&probe));
    assert_true(probe.probe);
    /* one probe at a time */
    assert_true(op_origin_full(o));
    assert_null(op_upstream__pick(&r->u, NULL));
    /* it found the origin back: closed, for everyone */
    op_fetch__health(&probe, true);
    op_fetch__release(&probe, OP_FETCH_OK);
    assert_false(op_origin_down(o));
    assert_false(op_origin_full(o));
    assert_int_equal(o->open_until_ms, 0);
    rig_free(r);
}

static void test_cooldown_grows_only_while_probes_fail(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct op_origin *o = &r->u.origins[0];
    exchange(o, false);
    exchange(o, false);
    assert_int_equal(open_for(o), 1000);
    /* each failed probe doubles it, up to OP_ORIGIN_COOLDOWN_GROWTH times */
    uint64_t want[] = {2000, 4000, 8000, 8000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        exchange(o, false);
        assert_int_equal(open_for(o), want[i]);
        assert_false(op_origin_full(o)); /* the next one may probe again */
    }
    assert_int_equal(OP_ORIGIN_COOLDOWN_GROWTH * 1000, 8000);
    /* a probe that ends without a verdict (its client left) changes nothing
     * but lets another one probe */
    struct op_fetch gone;
    fetch_init(&gone, o);
    assert_true(op_fetch__admit(&gone));
    assert_true(op_origin_full(o));
    op_fetch__release(&gone, OP_FETCH_NEUTRAL);
    assert_false(op_origin_full(o));
    assert_int_equal(open_for(o), 8000);
    /* a good answer closes it; the next outage starts from the first cooldown */
    exchange(o, true);
    assert_int_equal(o->open_until_ms, 0);
    exchange(o, false);
    exchange(o, false);
    assert_int_equal(open_for(o), 1000);
    assert_int_equal(r->metrics.v[OP_M_origin_circuit_opened_total], 2);
    rig_free(r);
}

static void test_probe_only_when_no_origin_is_up(void **state)
{
    (void)state;
    struct rig *r = rig_new(2);
    struct op_origin *a = &r->u.origins[0], *b = &r->u.origins[1];
    exchange(a, false);
    exchange(a, false);
    assert_true(op_origin_down(a));
    assert_false(op_upstream_down(&r->u));
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(op_upstream__pick(&r->u, NULL), b);
    exchange(b, false);
    exchange(b, false);
    assert_true(op_upstream_down(&r->u));
    assert_false(op_upstream_full(&r->u));
    assert_non_null(op_upstream__pick(&r->u, NULL));
    /* the active health checks' verdict is not overruled by a probe */
    atomic_store(&r->servers[0].healthy, false);
    atomic_store(&r->servers[1].healthy, false);
    assert_true(op_upstream_full(&r->u));
    assert_null(op_upstream__pick(&r->u, NULL));
    rig_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_circuit_lets_one_probe_through),
        cmocka_unit_test(test_cooldown_grows_only_while_probes_fail),
        cmocka_unit_test(test_probe_only_when_no_origin_is_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
