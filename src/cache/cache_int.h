/* src/cache/cache_int.h: what the cache module's files share. */
#ifndef OUTPOST_CACHE_INT_H
#define OUTPOST_CACHE_INT_H

#include "outpost/cache.h"

/* The largest delta-seconds a cache need represent; larger values are taken
 * as this (RFC 9111 §1.2.2). Ages and lifetimes are capped at it too. */
#define OP_CACHE_DELTA_MAX 2147483648LL

/* delta-seconds: digits only, capped at OP_CACHE_DELTA_MAX; with <quoted>,
 * also the quoted form RFC 9111 §5.2 tells Cache-Control recipients to
 * accept. Returns -1 when malformed. */
int64_t op_cache__delta(const char *v, size_t len, bool quoted);

#endif
