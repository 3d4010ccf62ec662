/* A site's origins on one worker, and which of them takes the next request:
 * smooth weighted round robin (as nginx's upstream) over the origins that are
 * up, preferring those below their concurrency limit, so that a slow or
 * shedding origin gets less while its peers have room. */
#include "fetch_int.h"

#include <stdlib.h>

int op_upstream_init(struct op_upstream *u, uv_loop_t *loop, struct op_origin_server *servers,
                     size_t n, struct op_metrics *metrics)
{
    u->origins = calloc(n, sizeof(*u->origins));
    if (u->origins == NULL)
        return OP_ENOMEM;
    u->n = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        struct op_origin *o = &u->origins[i];
        o->loop = loop;
        o->server = &servers[i];
        o->group = u;
        o->name = servers[i].spec.name;
        o->weight = servers[i].spec.weight ? servers[i].spec.weight : 1;
        o->metrics = metrics;
        o->connect_timeout_ms = 2000;
        o->first_byte_timeout_ms = 30000;
        o->between_bytes_timeout_ms = 30000;
        o->idle_max = 64;
        o->idle_timeout_ms = 30000;
        op_fetch__queue_init(o);
    }
    return 0;
}

void op_upstream_close(struct op_upstream *u)
{
    for (uint32_t i = 0; i < u->n; i++)
        op_origin_close(&u->origins[i]);
}

void op_upstream_fini(struct op_upstream *u)
{
    for (uint32_t i = 0; i < u->n; i++)
        op_tls_session_free(u->origins[i].tls_session);
    free(u->origins);
    u->origins = NULL;
    u->n = 0;
}

bool op_upstream_saturated(const struct op_upstream *u)
{
    for (uint32_t i = 0; i < u->n; i++)
        if (!op_origin_down(&u->origins[i]) && !op_origin_saturated(&u->origins[i]))
            return false;
    return true;
}

bool op_upstream_stalled(const struct op_upstream *u)
{
    bool any = false;
    for (uint32_t i = 0; i < u->n; i++) {
        const struct op_origin *o = &u->origins[i];
        if (op_origin_down(o))
            continue;
        if (!op_origin_stalled(o))
            return false;
        any = true;
    }
    return any;
}

bool op_upstream_full(const struct op_upstream *u)
{
    for (uint32_t i = 0; i < u->n; i++)
        if (!op_origin_full(&u->origins[i]))
            return false;
    return true;
}

bool op_upstream_down(const struct op_upstream *u)
{
    for (uint32_t i = 0; i < u->n; i++)
        if (!op_origin_down(&u->origins[i]))
            return false;
    return true;
}

/* Which origins a round of wrr() considers, from the most to the least
 * wanted: up and below their limit; up; down but free to probe (its circuit
 * open with no probe under way: only when no origin is up). */
enum pick_pass { PICK_ROOMY, PICK_UP, PICK_PROBE };

static bool candidate(const struct op_origin *o, enum pick_pass pass)
{
    if (op_origin_full(o))
        return false;
    switch (pass) {
    case PICK_ROOMY: return !op_origin_down(o) && !op_origin_saturated(o);
    case PICK_UP: return !op_origin_down(o);
    case PICK_PROBE: return true;
    }
    return false;
}

/* Each candidate gains its weight; the one with the most goes and pays back
 * the candidates' total. Over a round each origin goes weight times, spread
 * out rather than in runs. */
static struct op_origin *wrr(struct op_upstream *u, const struct op_origin *exclude,
                             enum pick_pass pass)
{
    struct op_origin *best = NULL;
    int64_t total = 0;
    for (uint32_t i = 0; i < u->n; i++) {
        struct op_origin *o = &u->origins[i];
        if (o == exclude || !candidate(o, pass))
            continue;
        o->wrr_current += o->weight;
        total += o->weight;
        if (best == NULL || o->wrr_current > best->wrr_current)
            best = o;
    }
    if (best != NULL)
        best->wrr_current -= total;
    return best;
}

struct op_origin *op_upstream__pick(struct op_upstream *u, const struct op_origin *exclude)
{
    if (u->n == 1)
        return &u->origins[0] == exclude || op_origin_full(&u->origins[0]) ? NULL : &u->origins[0];
    struct op_origin *o = NULL;
    for (int pass = PICK_ROOMY; pass <= PICK_PROBE && o == NULL; pass++)
        o = wrr(u, exclude, (enum pick_pass)pass);
    return o;
}
