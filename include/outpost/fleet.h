/* include/outpost/fleet.h: the fleet: purges shared by every node through NATS JetStream.
 *
 * The node that accepts a purge publishes it to the fleet's stream, and every
 * node applies the stream through its own durable consumer, each purge once
 * (op_store_purge_fleet). This part is the record: one purge as the small
 * JSON object that is a message's body on the stream,
 *
 *     {"v":1,"node":"n1","kind":"url","pattern":"http://h/a","soft":false}
 *
 * "v" is the format version, the integer 1. "node" names the publisher
 * (fleet.node: 1-64 of A-Z a-z 0-9 _ -). "kind" (op_cache_purge_kind_name)
 * and "pattern" are the purge, the pattern in the normal form that
 * op_cache_purge_pattern writes. "soft" is optional and false when absent.
 * A reader ignores members it does not know, so a later writer may add some
 * without raising "v"; a change of meaning raises it, and an older reader
 * then refuses the record.
 *
 * The codec is pure: no I/O, no clock, callable from any thread.
 */
#ifndef OUTPOST_FLEET_H
#define OUTPOST_FLEET_H

#include "outpost/cache.h"
#include "outpost/conf.h"
#include "outpost/core.h"
#include "outpost/store.h"

#include <stdbool.h>
#include <stddef.h>

#define OP_FLEET_RECORD_MAX 8192 /* bytes of one record, either way */
#define OP_FLEET_NODE_MAX 64     /* bytes of a node name */

/* One purge, as published and as applied. Embedded: op_fleet_purge_init
 * before use, op_fleet_purge_fini after. */
struct op_fleet_purge {
    enum op_purge_kind kind;
    bool soft;
    char node[OP_FLEET_NODE_MAX + 1]; /* the publishing node's name: 1-64 bytes of
                                         [A-Za-z0-9_-], NUL-terminated */
    struct op_buf pattern;            /* owned: normalized, as op_cache_purge_pattern
                                         writes it (not NUL-terminated) */
};

/* A url purge, not soft, with no node and an empty pattern whose buffer
 * takes up to OP_CACHE_PURGE_MAX bytes. Allocates nothing. */
void op_fleet_purge_init(struct op_fleet_purge *p);
/* Free the pattern; <p> may be initialized again. */
void op_fleet_purge_fini(struct op_fleet_purge *p);

/* Append <p> to <out> as a record: compact JSON, its members in the order
 * shown above, "soft" always written, no newline. What a reader would
 * refuse is refused here, so that what one node publishes every node
 * applies: OP_EINVAL for a node name, kind or pattern that
 * op_fleet_purge_decode would not take (the pattern must already be in
 * normal form); OP_ETOOBIG when the record would pass OP_FLEET_RECORD_MAX
 * (JSON writes '"' and '\' in two bytes each, so a long pattern full of
 * them does not fit) or <out> has no room for it; OP_ENOMEM. Nothing is
 * appended on failure. <p> is only read. */
int op_fleet_purge_encode(const struct op_fleet_purge *p, struct op_buf *out);

/* Read the record <data, len>: untrusted bytes off the network, not
 * NUL-terminated. At most OP_FLEET_RECORD_MAX bytes of exactly one JSON
 * object (UTF-8, nothing after it, no member twice, nesting within
 * jansson's limit); "v" the integer 1; "node", "kind" and "pattern" strings
 * (no NUL in them), "soft" true or false when present; the pattern must come
 * out of op_cache_purge_pattern unchanged: a record carries a normal form,
 * anything else is refused. Other members are ignored.
 *
 * <p> has been through op_fleet_purge_init; its previous content is
 * replaced. Returns 0 with <p> filled, or OP_EINVAL (OP_ENOMEM when an
 * allocation failed) with "fleet record: " and the reason in <err>
 * (NUL-terminated, cut to <errlen>) and <p> as after op_fleet_purge_init.
 * Memory used is bounded by the size limit. */
int op_fleet_purge_decode(const char *data, size_t len, struct op_fleet_purge *p, char *err,
                          size_t errlen);

/* ---- the fleet's NATS side --------------------------------------------------
 * One NATS connection (nats.c, reconnecting forever) and two threads of its
 * own, never a loop's: a publisher that sends the purges this node accepts
 * and answers once JetStream has stored them, and a consumer that applies the
 * stream through this node's durable consumer ("outpost-NODE"), each purge
 * once (op_store_purge_fleet), acking it after the LMDB commit. A record that
 * is not a valid purge is logged, counted and acked, so it never stops the
 * consumer. Until the consumer has caught up with the stream (every purge
 * published before it started applied), op_fleet_caught_up is false: the
 * node then serves nothing from its store. */
struct op_fleet;

/* Start it for <conf>'s fleet (conf->fleet_nats not ""): the threads connect
 * in the background, so a NATS outage at start is no error. 0, or OP_ENOMEM
 * / OP_EINVAL (bad creds file) with <why>. <conf> and <store> outlive it. */
int op_fleet_start(const struct op_conf *conf, struct op_store *store, struct op_fleet **out,
                   char *why, size_t whylen);
/* Stop both threads (within about a second) and free it. A purge still
 * queued to publish is answered OP_EFLEET ("the node is stopping"): call
 * while the askers' mailboxes still exist (they are drained after). */
void op_fleet_stop(struct op_fleet *f);

/* The answer to op_fleet_publish, posted to the caller's mailbox. */
struct op_fleet_published {
    struct op_msg msg;
    int rc;        /* 0: stored by JetStream; OP_EFLEET: not, or not known (why says why) */
    bool unknown;  /* OP_EFLEET after sending it: JetStream may have stored it all the same */
    uint64_t seq;  /* its stream sequence */
    char why[200]; /* for an operator */
};

/* What a failed <d> means, for the asker: not taken (nothing was purged
 * anywhere), or not confirmed (it may yet be applied everywhere: give it
 * again to be sure). */
void op_fleet_published_why(const struct op_fleet_published *d, char *out, size_t len);

/* Queue purge <kind, soft, pattern> (normalized, as op_cache_purge_pattern
 * writes it) for publishing; <done> is filled and posted to <reply> once
 * JetStream stored it or publish_timeout passed since this call (queued
 * behind others included). 0, OP_ENOMEM, or OP_EFULL
 * (OP_FLEET_QUEUE_MAX purges waiting already). Any thread. */
#define OP_FLEET_QUEUE_MAX 4096
int op_fleet_publish(struct op_fleet *f, enum op_purge_kind kind, bool soft, const char *pattern,
                     size_t len, struct op_mailbox *reply, struct op_fleet_published *done);

/* Has the consumer applied every purge the stream held when it started?
 * Any thread, no lock. */
bool op_fleet_caught_up(const struct op_fleet *f);

struct op_fleet_stats {
    bool connected;      /* to a NATS server now */
    bool caught_up;      /* op_fleet_caught_up */
    uint64_t applied;    /* purges applied from the stream */
    uint64_t duplicates; /* delivered again, applied before: skipped */
    uint64_t invalid;    /* records that were no purge: acked, not applied */
    uint64_t published;  /* purges this node published */
    uint64_t publish_failures;
    uint64_t last_seq; /* the newest stream sequence applied */
    uint64_t reconnects;
    char last_error[160]; /* "" if none */
};
void op_fleet_stats(struct op_fleet *f, struct op_fleet_stats *st);

#endif
