/* include/outpost/flight.h: the process-wide in-flight table.
 *
 * This first part tracks background revalidations (stale-while-revalidate),
 * so that one stale key makes exactly one origin request however many
 * requests, on whichever workers, see it stale. Coalescing of concurrent
 * misses (leaders, followers, read-while-writer) builds on the same table.
 * Every function may be called from any thread; a shard's mutex is held only
 * for the set operation itself.
 */
#ifndef OUTPOST_FLIGHT_H
#define OUTPOST_FLIGHT_H

#include <stdbool.h>
#include <stddef.h>

struct op_flight_table; /* opaque; one per process */

/* A table with room for at most <max_entries> keys at once. Returns 0 or
 * OP_ENOMEM. */
int op_flight_table_create(size_t max_entries, struct op_flight_table **out);
/* All entries must have ended. */
void op_flight_table_destroy(struct op_flight_table *t);

/* Claim the background revalidation of <key>. True if the caller now owns it
 * and must call op_flight_reval_end when done; false if one is already under
 * way, or the table is full (then nobody revalidates now; a later request
 * will). The key is copied. */
bool op_flight_reval_begin(struct op_flight_table *t, const char *key, size_t len);
void op_flight_reval_end(struct op_flight_table *t, const char *key, size_t len);
/* Keys currently claimed (for tests and stats). */
size_t op_flight_reval_count(struct op_flight_table *t);

#endif
