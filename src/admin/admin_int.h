/* src/admin/admin_int.h: what the admin module's files share. */
#ifndef OUTPOST_ADMIN_INT_H
#define OUTPOST_ADMIN_INT_H

#include "outpost/admin.h"
#include "outpost/fleet.h"
#include "outpost/http.h"

#include <stdbool.h>
#include <sys/types.h>

#define ADMIN_CONN_MAGIC 0x41444d43u
#define ADMIN_BODY_MAX (64 * 1024)
#define ADMIN_CONNS_MAX 64
#define ADMIN_IDLE_MS 60000

struct admin_purge;

struct admin_conn {
    unsigned magic;
    struct op_admin *admin;         /* borrowed */
    struct admin_conn *prev, *next; /* borrowed: the admin's list */
    uv_pipe_t pipe;
    uv_timer_t idle;
    struct op_http_parser parser;
    struct op_http_msg req;
    struct op_buf in;
    struct op_buf body;
    struct admin_purge *purge; /* borrowed: the purge this request waits for */
    bool waiting;              /* a request is being answered: reads stop */
    bool body_too_big;
    bool close_after;
    bool closing;
    int pending_closes;
};

/* A purge under way. Its acknowledgement comes back through the admin's
 * mailbox; if the connection went away meanwhile, conn is NULL. */
struct admin_purge {
    struct op_purge_done done;     /* first: the message is the struct */
    struct op_fleet_published pub; /* or this one's, for a purge the fleet applies */
    struct op_admin *admin;        /* borrowed */
    struct admin_conn *conn;       /* borrowed, or NULL */
    bool soft;
    struct admin_purge *prev, *next; /* borrowed: the admin's list */
};

struct op_admin {
    struct op_admin_config cfg;
    char *path; /* owned copy */
    gid_t gid;  /* admin_group's id, when group is set */
    bool has_group;
    uv_pipe_t listener;
    bool listening;
    uv_async_t async;
    struct op_mailbox mailbox; /* purge acknowledgements */
    struct admin_conn *conns;  /* borrowed list: each owned by its close path */
    unsigned nconns;
    struct admin_purge *purges; /* owned list: under way */
    bool draining;
    bool stopped;
};

/* admin_server.c */
/* Answer the request on <c> (complete response) and read the next one. */
void op_admin__respond(struct admin_conn *c, int status, const char *type, const char *body,
                       size_t len);
/* A JSON answer: {"error": msg} for 4xx/5xx. */
void op_admin__error(struct admin_conn *c, int status, const char *msg);

/* admin_routes.c */
/* A complete request is in c->req and c->body. */
void op_admin__route(struct admin_conn *c);
/* A purge's acknowledgement arrived (main loop). */
void op_admin__purge_done(struct op_msg *m);

#endif
