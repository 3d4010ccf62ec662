/* include/outpost/conf.h: the YAML configuration, loaded into an immutable struct.
 *
 * Every key is declared once in a table (src/conf/conf_keys.c) with its type,
 * default, bounds and one-line doc; the loader, the quick-start flags and
 * tools/gen-config-doc all read that table. A loaded op_conf is never modified:
 * a reload builds a new one. Load and free on the main thread; workers only
 * read.
 */
#ifndef OUTPOST_CONF_H
#define OUTPOST_CONF_H

#include "outpost/core.h"

#include <stdbool.h>
#include <stdint.h>

/* One origin server of a site, parsed from "http[s]://HOST[:PORT] [weight=N]". */
struct op_conf_origin {
    char *url;  /* owned: http[s]://HOST[:PORT] as written */
    bool tls;   /* https: TLS to it, port 443 by default */
    char *host; /* owned: a name (re-resolved while running) or an address */
    uint16_t port;
    uint32_t weight; /* share of requests relative to the site's other origins */
};

#define OP_CONF_MAX_ORIGINS 64
#define OP_CONF_MAX_ERROR_PAGE (64 * 1024)

struct op_conf_site {
    char *host;                     /* owned: Host to match, "*" for any */
    char *origin;                   /* owned: the origins as written, separated by commas */
    struct op_conf_origin *origins; /* owned: norigins >= 1 once validated */
    size_t norigins;
    char *host_header; /* owned: "" passes the client's Host; otherwise sent as Host */
    char *origin_ca;   /* owned: CA file for https origins; "" = the system bundle */
    bool origin_tls_verify;
    uint64_t connect_timeout_ms;
    uint64_t first_byte_timeout_ms;
    uint64_t between_bytes_timeout_ms;
    uint64_t origin_idle_max;        /* idle pooled origin connections per worker */
    uint64_t origin_idle_timeout_ms; /* how long one stays pooled */
    uint64_t stale_if_error_ms;      /* serve stale this long past expiry when the origin fails */
    uint64_t stale_while_revalidate_ms; /* serve stale this long while revalidating */
    uint64_t coalesce_max_waiters; /* requests waiting on one origin fetch; 0 = no coalescing */
    uint64_t coalesce_timeout_ms;  /* longest wait for the shared response head */
    uint64_t hit_for_miss_ms;      /* unshareable keys fetch in parallel this long */
    uint64_t retry_after_ms;       /* Retry-After sent with an overload 503 */
    uint64_t origin_max_conns;     /* ceiling of the adaptive limit, per worker */
    uint64_t origin_queue;         /* requests waiting beyond the limit, per worker */
    uint64_t origin_queue_timeout_ms;
    uint64_t origin_fail_threshold; /* failures in a row that open the circuit; 0 never */
    uint64_t origin_fail_cooldown_ms;
    uint64_t origin_stall_timeout_ms;    /* stale copies go out past this silence; 0 off */
    uint64_t origin_resolve_interval_ms; /* re-resolve origin names this often; 0 never */
    char *health_check_path;             /* owned: "" = no active health checks */
    uint64_t health_check_interval_ms;
    uint64_t health_check_timeout_ms;
    uint64_t health_check_rise; /* good checks in a row that mark a down origin up */
    uint64_t health_check_fall; /* failed checks in a row that mark an origin down */
    char *error_page;           /* owned: path of an HTML template; "" = built in */
    char *error_page_html;      /* owned: its contents, read at load; NULL = built in */
    char *tls_cert;             /* owned: certificate chain files, separated by commas; "" none */
    char *tls_key;              /* owned: their keys, in the same order */
    bool https_redirect;        /* plain requests get 308 to https */
    bool schemes_share_cache;   /* http and https requests share cached objects */
};

/* A network in purge_allow: ADDR/BITS. */
struct op_conf_net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;
};
#define OP_CONF_MAX_NETS 64

/* One address of listen_tls. */
struct op_conf_listen {
    char *host; /* owned */
    uint16_t port;
};
#define OP_CONF_MAX_LISTEN 16

struct op_conf {
    char *path;        /* owned: file it came from, or "command line" */
    char *listen;      /* owned: HOST:PORT as written */
    char *listen_host; /* owned */
    uint16_t listen_port;
    char *listen_tls;                   /* owned: as written; "" = no TLS listener */
    struct op_conf_listen *tls_listens; /* owned: parsed from listen_tls */
    size_t ntls_listens;
    char *tls_cert;        /* owned: the default certificate chain files, separated by commas */
    char *tls_key;         /* owned: their keys, in the same order */
    char *tls_unknown_sni; /* owned: "default" or "reject" */
    uint64_t tls_handshake_timeout_ms;
    uint64_t tls_max_handshakes;   /* handshakes under way per worker */
    uint64_t tls_ticket_rotate_ms; /* a new ticket key this often; 0 = no tickets */
    uint64_t tls_session_cache;    /* server-side sessions kept; 0 = none */
    uint64_t workers;              /* 0 = online CPUs */
    char *cache_dir;               /* owned */
    uint64_t cache_size;
    uint64_t max_object_size;
    char *admin_socket;             /* owned: "" = none */
    char *admin_group;              /* owned: "" = none */
    char *purge_allow;              /* owned: as written; "" = no PURGE method on the data port */
    struct op_conf_net *purge_nets; /* owned: parsed from purge_allow */
    size_t npurge_nets;
    char *access_log; /* owned: "" = none */
    char *cache_name; /* owned: the Cache-Status identifier */
    char *log_level;  /* owned */
    uint64_t max_request_line;
    uint64_t max_header_size;
    uint64_t max_headers;
    uint64_t max_body_size;
    uint64_t max_connections;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t body_min_rate; /* bytes a second a request body keeps up, past body_timeout; 0 off */
    uint64_t idle_timeout_ms;
    uint64_t send_timeout_ms;
    uint64_t shutdown_timeout_ms;
    /* fleet: purges shared by every node through NATS JetStream (the
     * "fleet:" mapping, keys "fleet.KEY" in the table); off when fleet_nats
     * is "" */
    char *fleet_node;   /* owned: this node's name in the fleet */
    char *fleet_region; /* owned */
    char *fleet_nats;   /* owned: NATS servers, HOST:PORT separated by commas */
    char *fleet_creds;  /* owned: NATS credentials file; "" = none */
    char *fleet_stream; /* owned: the JetStream stream of purges */
    uint64_t fleet_replicas;
    uint64_t fleet_publish_timeout_ms;
    struct op_conf_site *sites; /* owned: nsites entries */
    size_t nsites;
};

enum op_conf_type {
    OP_CONF_STRING,
    OP_CONF_SIZE,
    OP_CONF_DURATION,
    OP_CONF_INT,
    OP_CONF_ADDR,
    OP_CONF_URL,
    OP_CONF_ADDRS, /* "HOST:PORT, HOST:PORT" (listen_tls) */
    OP_CONF_FILES, /* "PATH, PATH" as written (tls_cert, tls_key) */
    OP_CONF_BOOL   /* true or false, into a bool */
};

struct op_conf_key {
    const char *name;
    enum op_conf_type type;
    size_t off;      /* offsetof in op_conf or op_conf_site */
    const char *def; /* NULL: no default */
    const char *min; /* NULL: unbounded (numbers, sizes, durations) */
    const char *max;
    bool required;
    const char *doc;
};

/* The key tables, each ended by an entry with name == NULL. Keys of type
 * URL, ADDRS and FILES take a YAML list too. */
extern const struct op_conf_key op_conf_top_keys[];
extern const struct op_conf_key op_conf_site_keys[];

/* Load and validate <path>. Returns a new config (caller frees with
 * op_conf_free) or NULL, in which case every problem found was appended to
 * <errors> as "file:line:col: key: message\n". */
struct op_conf *op_conf_load(const char *path, struct op_buf *errors);

/* A config with every default applied and no sites, for the quick-start flags. */
struct op_conf *op_conf_new_default(void);
/* Add an empty site with defaults; returns it (owned by conf) or NULL. */
struct op_conf_site *op_conf_add_site(struct op_conf *conf);
/* Set one key from its text form, as the YAML loader does. <site> NULL means a
 * top-level key. Returns 0, or OP_EINVAL / OP_ENOTFOUND with a message in err. */
int op_conf_set(struct op_conf *conf, struct op_conf_site *site, const char *key, const char *value,
                char *err, size_t errlen);
/* Whole-config checks (at least one site, required keys). 0 or OP_EINVAL with
 * messages appended to <errors>. */
int op_conf_validate(const struct op_conf *conf, struct op_buf *errors);
void op_conf_free(struct op_conf *conf);

/* The i-th of a comma-separated list (tls_cert, tls_key) into out[],
 * blanks trimmed; false past the end or when it does not fit. */
bool op_conf_list_item(const char *list, size_t i, char *out, size_t len);

/* Has <site> an https:// origin? */
bool op_conf_site_https(const struct op_conf_site *site);

/* Is <addr> ("1.2.3.4" or "::1") inside one of <nets>? */
bool op_conf_net_match(const struct op_conf_net *nets, size_t n, const char *addr);

/* Split "HOST:PORT", "[V6]:PORT" or ":PORT" (any address). 0 or OP_EINVAL. */
int op_conf_split_hostport(const char *s, char **host, uint16_t *port);

#endif
