/* The config key tables and the typed setter they drive. */
#include "outpost/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOP(f) offsetof(struct op_conf, f)
#define SITE(f) offsetof(struct op_conf_site, f)

const struct op_conf_key op_conf_top_keys[] = {
    {"listen", OP_CONF_ADDR, TOP(listen), "127.0.0.1:8080", NULL, NULL, false,
     "address the node accepts HTTP on, HOST:PORT or [V6]:PORT"},
    {"listen_tls", OP_CONF_ADDRS, TOP(listen_tls), "", NULL, NULL, false,
     "addresses the node accepts HTTPS on (HOST:PORT, several as a list or separated by "
     "commas); empty = none"},
    {"tls_cert", OP_CONF_FILES, TOP(tls_cert), "", NULL, NULL, false,
     "default certificate chain (PEM, leaf first) for TLS clients whose SNI names no site with "
     "its own; an RSA and an ECDSA chain may be given side by side, as a list"},
    {"tls_key", OP_CONF_FILES, TOP(tls_key), "", NULL, NULL, false,
     "private keys of tls_cert, in the same order (readable by root or the node's user only)"},
    {"tls_unknown_sni", OP_CONF_STRING, TOP(tls_unknown_sni), "default", NULL, NULL, false,
     "a TLS client whose SNI names no site with a certificate, or that sends none: default "
     "(gets tls_cert) or reject (the handshake fails with unrecognized_name)"},
    {"tls_handshake_timeout", OP_CONF_DURATION, TOP(tls_handshake_timeout_ms), "10s", "100ms", "5m",
     false, "time allowed for a TLS handshake, from the connection's accept"},
    {"tls_max_handshakes", OP_CONF_INT, TOP(tls_max_handshakes), "1024", "1", "1000000", false,
     "TLS handshakes under way per worker; connections beyond it are refused and counted, so a "
     "handshake flood cannot starve established connections"},
    {"tls_ticket_rotate", OP_CONF_DURATION, TOP(tls_ticket_rotate_ms), "1h", "0ms", "7d", false,
     "a new session ticket key this often, shared by every worker; tickets under the previous "
     "key still resume for one more period (0 = no session tickets)"},
    {"tls_session_cache", OP_CONF_INT, TOP(tls_session_cache), "0", "0", "1000000", false,
     "TLS sessions kept by the node for clients that do not take tickets; 0 = none"},
    {"workers", OP_CONF_INT, TOP(workers), "0", "0", "256", false,
     "worker threads, each with its own event loop and listener; 0 = online CPUs"},
    {"cache_dir", OP_CONF_STRING, TOP(cache_dir), "/var/cache/outpost", NULL, NULL, false,
     "directory holding the LMDB cache (created if missing)"},
    {"cache_size", OP_CONF_SIZE, TOP(cache_size), "1g", "1m", "1024g", false,
     "size of the cache map; objects are evicted before it fills"},
    {"max_object_size", OP_CONF_SIZE, TOP(max_object_size), "16m", "1k", "1g", false,
     "largest response body stored; larger ones are streamed and not stored"},
    {"admin_socket", OP_CONF_STRING, TOP(admin_socket), "", NULL, NULL, false,
     "path of the admin Unix socket (created mode 0600); empty = no admin socket"},
    {"admin_group", OP_CONF_STRING, TOP(admin_group), "", NULL, NULL, false,
     "a group whose members may use the admin socket too (root and the node's own user "
     "always may); empty = none"},
    {"access_log", OP_CONF_STRING, TOP(access_log), "", NULL, NULL, false,
     "file the access log is appended to (one line per request, written off the event "
     "loops); empty = none"},
    {"purge_allow", OP_CONF_STRING, TOP(purge_allow), "", NULL, NULL, false,
     "networks (ADDR/BITS, separated by commas) allowed to send PURGE on the data port, which "
     "removes every variant of the request's URL; empty = PURGE is not special (it goes to the "
     "origin like any other method)"},
    {"cache_name", OP_CONF_STRING, TOP(cache_name), "outpost", NULL, NULL, false,
     "cache identifier (a token) in Cache-Status, Via, and Surrogate-Capability: the device "
     "name Surrogate-Control directives target"},
    {"log_level", OP_CONF_STRING, TOP(log_level), "info", NULL, NULL, false,
     "error log level: error, warn, info or debug"},
    {"max_request_line", OP_CONF_SIZE, TOP(max_request_line), "8k", "256", "64k", false,
     "longest request line accepted; longer gets 414"},
    {"max_header_size", OP_CONF_SIZE, TOP(max_header_size), "32k", "1k", "1m", false,
     "largest request head (line plus headers) accepted; larger gets 431"},
    {"max_headers", OP_CONF_INT, TOP(max_headers), "100", "8", "1000", false,
     "most request header fields accepted; more gets 431"},
    {"max_body_size", OP_CONF_SIZE, TOP(max_body_size), "64m", "0", "64g", false,
     "largest request body accepted; larger gets 413"},
    {"max_connections", OP_CONF_INT, TOP(max_connections), "4096", "1", "1000000", false,
     "client connections per worker; more are refused and counted"},
    {"header_timeout", OP_CONF_DURATION, TOP(header_timeout_ms), "10s", "100ms", "10m", false,
     "time allowed to receive a whole request head, from its first byte (408 after it)"},
    {"body_timeout", OP_CONF_DURATION, TOP(body_timeout_ms), "30s", "100ms", "1h", false,
     "time allowed between two reads of a request body (its chunk extensions and trailers "
     "included)"},
    {"body_min_rate", OP_CONF_SIZE, TOP(body_min_rate), "1k", "0", "1g", false,
     "slowest a request body may arrive, in bytes a second of its data, after its first "
     "body_timeout: a body may take body_timeout plus one second per body_min_rate bytes, "
     "else the connection closes; 0 = no floor"},
    {"idle_timeout", OP_CONF_DURATION, TOP(idle_timeout_ms), "60s", "100ms", "1h", false,
     "how long an idle keep-alive client connection is kept"},
    {"send_timeout", OP_CONF_DURATION, TOP(send_timeout_ms), "60s", "100ms", "1h", false,
     "time allowed for a client to accept response bytes before it is dropped"},
    {"shutdown_timeout", OP_CONF_DURATION, TOP(shutdown_timeout_ms), "10s", "0ms", "10m", false,
     "on SIGTERM, how long in-flight responses may take before the node exits"},
    {"fleet.node", OP_CONF_STRING, TOP(fleet_node), "", NULL, NULL, false,
     "this node's name in the fleet (1-64 of A-Z a-z 0-9 _ -), unique in it: its durable "
     "consumer of the purge stream is named after it"},
    {"fleet.region", OP_CONF_STRING, TOP(fleet_region), "", NULL, NULL, false,
     "the region this node serves (the same characters)"},
    {"fleet.nats", OP_CONF_FILES, TOP(fleet_nats), "", NULL, NULL, false,
     "NATS servers with JetStream, HOST:PORT (several as a list); empty = no fleet: purges are "
     "this node's alone"},
    {"fleet.creds", OP_CONF_STRING, TOP(fleet_creds), "", NULL, NULL, false,
     "NATS credentials file (user JWT and seed); empty = none"},
    {"fleet.stream", OP_CONF_STRING, TOP(fleet_stream), "OUTPOST_PURGES", NULL, NULL, false,
     "the JetStream stream purges go to (created with file storage if missing); its subject "
     "is outpost.purge.STREAM"},
    {"fleet.replicas", OP_CONF_INT, TOP(fleet_replicas), "1", "1", "5", false,
     "copies of the stream JetStream keeps when it creates it (3 on a three-server cluster)"},
    {"fleet.publish_timeout", OP_CONF_DURATION, TOP(fleet_publish_timeout_ms), "5s", "100ms", "1m",
     false,
     "a purge is acknowledged once JetStream has stored it; past this it fails, never "
     "applied on this node alone"},
    {NULL, 0, 0, NULL, NULL, NULL, false, NULL},
};

const struct op_conf_key op_conf_site_keys[] = {
    {"host", OP_CONF_STRING, SITE(host), "*", NULL, NULL, false,
     "Host header this site answers; \"*\" matches any host"},
    {"origin", OP_CONF_URL, SITE(origin), NULL, NULL, NULL, true,
     "origin base URL, http://HOST[:PORT] or https://HOST[:PORT]; several origins as a list (or "
     "separated by commas), each optionally followed by weight=N"},
    {"host_header", OP_CONF_STRING, SITE(host_header), "", NULL, NULL, false,
     "Host sent to the origin; empty passes the client's Host through"},
    {"origin_ca", OP_CONF_STRING, SITE(origin_ca), "", NULL, NULL, false,
     "PEM file of the certificates trusted for this site's https origins; empty = the system "
     "CA bundle"},
    {"origin_tls_verify", OP_CONF_BOOL, SITE(origin_tls_verify), "true", NULL, NULL, false,
     "check an https origin's certificate chain and that it names the origin (its host, or "
     "host_header's host when set); false only for an origin on a network you trust"},
    {"connect_timeout", OP_CONF_DURATION, SITE(connect_timeout_ms), "2s", "50ms", "60s", false,
     "time allowed to open a connection to the origin"},
    {"first_byte_timeout", OP_CONF_DURATION, SITE(first_byte_timeout_ms), "30s", "50ms", "10m",
     false, "time allowed for the origin's response head after the request was sent"},
    {"between_bytes_timeout", OP_CONF_DURATION, SITE(between_bytes_timeout_ms), "30s", "50ms",
     "10m", false, "time allowed between two reads of an origin response"},
    {"origin_idle_max", OP_CONF_INT, SITE(origin_idle_max), "1024", "0", "100000", false,
     "idle keep-alive connections kept per worker and origin, so that a burst finds them "
     "open (an idle one holds no buffers; unused for origin_idle_timeout, or closed by the "
     "origin, it goes)"},
    {"origin_idle_timeout", OP_CONF_DURATION, SITE(origin_idle_timeout_ms), "30s", "100ms", "10m",
     false,
     "how long an idle keep-alive connection stays pooled; shorter when the origin's Keep-Alive "
     "timeout says it closes sooner, so that a request is not sent into the origin's close"},
    {"stale_if_error", OP_CONF_DURATION, SITE(stale_if_error_ms), "1d", "0ms", "30d", false,
     "serve a stale copy this long past expiry when the origin fails and the response "
     "names no stale-if-error of its own"},
    {"stale_while_revalidate", OP_CONF_DURATION, SITE(stale_while_revalidate_ms), "0s", "0ms",
     "30d", false,
     "serve a stale copy this long past expiry while one background request revalidates it, "
     "when the response names no stale-while-revalidate of its own"},
    {"coalesce_max_waiters", OP_CONF_INT, SITE(coalesce_max_waiters), "10000", "0", "1000000",
     false,
     "requests that may wait on one origin fetch for the same object (0 turns coalescing off); "
     "past it they get stale or 503"},
    {"coalesce_timeout", OP_CONF_DURATION, SITE(coalesce_timeout_ms), "30s", "10ms", "10m", false,
     "longest a coalesced request waits for the shared response head; then stale or 503"},
    {"hit_for_miss", OP_CONF_DURATION, SITE(hit_for_miss_ms), "2m", "0ms", "1d", false,
     "after an unshareable response, requests for that URL go to the origin in parallel for "
     "this long instead of waiting on one another (0 = never)"},
    {"retry_after", OP_CONF_DURATION, SITE(retry_after_ms), "5s", "1s", "1h", false,
     "Retry-After sent with a 503 when the node sheds load"},
    {"origin_max_conns", OP_CONF_INT, SITE(origin_max_conns), "1024", "1", "100000", false,
     "most requests in flight to the origin per worker; the adaptive limit (halved on 503, "
     "429 or a timeout, grown on success) stays below it"},
    {"origin_queue", OP_CONF_INT, SITE(origin_queue), "1024", "0", "1000000", false,
     "requests per worker that may wait for the origin beyond its limit; past it the stale "
     "copy or 503"},
    {"origin_queue_timeout", OP_CONF_DURATION, SITE(origin_queue_timeout_ms), "10s", "10ms", "10m",
     false, "longest a request waits in that queue; then the stale copy or 503"},
    {"origin_fail_threshold", OP_CONF_INT, SITE(origin_fail_threshold), "5", "0", "1000", false,
     "connect failures or timeouts in a row that open the origin's circuit: requests with a "
     "stale copy get it at once for origin_fail_cooldown, a request with nothing to serve "
     "probes the origin whenever no probe is under way; 0 = never"},
    {"origin_fail_cooldown", OP_CONF_DURATION, SITE(origin_fail_cooldown_ms), "5s", "100ms", "1h",
     false,
     "how long requests with a stale copy leave an origin with an open circuit alone; each "
     "failed probe doubles it (up to 8 times), an answer closes the circuit"},
    {"origin_stall_timeout", OP_CONF_DURATION, SITE(origin_stall_timeout_ms), "1s", "0ms", "10m",
     false,
     "a request holding a stale copy it may serve on error (stale-if-error) waits at most this "
     "long for the origin, then gets the copy while the fetch goes on to refresh the store; and "
     "while an origin has requests out and has sent no response head for this long, such "
     "requests get their copy at once (0 = wait for the origin's own timeouts)"},
    {"origin_resolve_interval", OP_CONF_DURATION, SITE(origin_resolve_interval_ms), "30s", "0ms",
     "1d", false,
     "origin host names are resolved again this often, off the event loops; a failed "
     "resolution keeps the last good address (0 = never)"},
    {"health_check_path", OP_CONF_STRING, SITE(health_check_path), "", NULL, NULL, false,
     "path each origin is asked with GET every health_check_interval; a 2xx or 3xx is good, "
     "anything else or no answer is bad; empty = no active checks"},
    {"health_check_interval", OP_CONF_DURATION, SITE(health_check_interval_ms), "5s", "100ms", "1h",
     false, "time between two health checks of one origin"},
    {"health_check_timeout", OP_CONF_DURATION, SITE(health_check_timeout_ms), "2s", "50ms", "1m",
     false, "time a health check may take, connect included"},
    {"health_check_rise", OP_CONF_INT, SITE(health_check_rise), "2", "1", "100", false,
     "good checks in a row that bring a down origin back"},
    {"health_check_fall", OP_CONF_INT, SITE(health_check_fall), "2", "1", "100", false,
     "bad checks in a row that take an origin out: no request is sent to it"},
    {"error_page", OP_CONF_STRING, SITE(error_page), "", NULL, NULL, false,
     "HTML file used for this site's error pages (at most 64k), with {status}, {reason}, "
     "{detail}, {node} and {request_id} replaced; empty = the built-in page"},
    {"tls_cert", OP_CONF_FILES, SITE(tls_cert), "", NULL, NULL, false,
     "certificate chain (PEM, leaf first) TLS clients get when SNI names this site's host; an "
     "RSA and an ECDSA chain side by side as a list; empty = the default tls_cert"},
    {"tls_key", OP_CONF_FILES, SITE(tls_key), "", NULL, NULL, false,
     "private keys of the site's tls_cert, in the same order"},
    {"https_redirect", OP_CONF_BOOL, SITE(https_redirect), "false", NULL, NULL, false,
     "answer requests that came over plain HTTP with 308 to the same URL on https"},
    {"schemes_share_cache", OP_CONF_BOOL, SITE(schemes_share_cache), "false", NULL, NULL, false,
     "http and https requests share cached objects (say so only when the site serves the same "
     "content on both: RFC 9110 §4.2 makes them different resources)"},
    {NULL, 0, 0, NULL, NULL, NULL, false, NULL},
};

int op_conf_split_hostport(const char *s, char **host, uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return OP_EINVAL;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return OP_EINVAL;
        hlen = (size_t)(colon - s);
    }
    uint64_t p;
    if (op_parse_u64(colon + 1, strlen(colon + 1), &p) != 0 || p == 0 || p > 65535)
        return OP_EINVAL;
    if (hlen == 0 || (hlen == 1 && h[0] == '*')) {
        h = "0.0.0.0";
        hlen = 7;
    }
    *host = strndup(h, hlen);
    if (*host == NULL)
        return OP_ENOMEM;
    *port = (uint16_t)p;
    return 0;
}

static void free_origins(struct op_conf_site *site)
{
    for (size_t i = 0; i < site->norigins; i++) {
        free(site->origins[i].url);
        free(site->origins[i].host);
    }
    free(site->origins);
    site->origins = NULL;
    site->norigins = 0;
}

/* One "http://HOST[:PORT]" or "https://HOST[:PORT]" into <o>. */
static int parse_url(struct op_conf_origin *o, const char *v, size_t vlen, char *err, size_t errlen)
{
    static const char http[] = "http://", https[] = "https://";
    size_t skip;
    if (vlen >= sizeof(https) - 1 && strncasecmp(v, https, sizeof(https) - 1) == 0) {
        o->tls = true;
        skip = sizeof(https) - 1;
    } else if (vlen >= sizeof(http) - 1 && strncasecmp(v, http, sizeof(http) - 1) == 0) {
        skip = sizeof(http) - 1;
    } else {
        snprintf(err, errlen, "expected http://HOST[:PORT] or https://HOST[:PORT], got \"%.*s\"",
                 (int)vlen, v);
        return OP_EINVAL;
    }
    o->url = strndup(v, vlen);
    char *auth = strndup(v + skip, vlen - skip);
    if (auth == NULL || o->url == NULL) {
        free(auth);
        return OP_ENOMEM;
    }
    size_t alen = strlen(auth);
    if (alen > 0 && auth[alen - 1] == '/')
        auth[--alen] = '\0';
    if (alen == 0 || strpbrk(auth, "/?#@ \t") != NULL) {
        snprintf(err, errlen, "expected %sHOST[:PORT] without a path, got \"%.*s\"",
                 o->tls ? https : http, (int)vlen, v);
        free(auth);
        return OP_EINVAL;
    }
    char *with_port = NULL;
    if (auth[alen - 1] == ']' || strrchr(auth, ':') == NULL) {
        size_t n = alen + 5; /* ":443" and the NUL */
        with_port = malloc(n);
        if (with_port == NULL) {
            free(auth);
            return OP_ENOMEM;
        }
        snprintf(with_port, n, "%s:%s", auth, o->tls ? "443" : "80");
    }
    int rc = op_conf_split_hostport(with_port ? with_port : auth, &o->host, &o->port);
    if (rc != 0)
        snprintf(err, errlen, "bad host or port in origin \"%.*s\"", (int)vlen, v);
    free(with_port);
    free(auth);
    return rc;
}

/* "URL [weight=N], URL [weight=N], ..." into site->origins. */
static int parse_origins(struct op_conf_site *site, const char *v, char *err, size_t errlen)
{
    free_origins(site);
    site->origins = calloc(OP_CONF_MAX_ORIGINS, sizeof(*site->origins));
    if (site->origins == NULL)
        return OP_ENOMEM;
    const char *p = v;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0) {
            snprintf(err, errlen, "empty origin in \"%s\"", v);
            return OP_EINVAL;
        }
        if (site->norigins == OP_CONF_MAX_ORIGINS) {
            snprintf(err, errlen, "at most %d origins per site", OP_CONF_MAX_ORIGINS);
            return OP_EINVAL;
        }
        struct op_conf_origin *o = &site->origins[site->norigins++];
        o->weight = 1;
        const char *sp = memchr(p, ' ', len);
        size_t ulen = sp ? (size_t)(sp - p) : len;
        int rc = parse_url(o, p, ulen, err, errlen);
        if (rc != 0)
            return rc;
        if (sp != NULL) {
            const char *w = sp;
            while (*w == ' ')
                w++;
            static const char wk[] = "weight=";
            size_t wlen = len - (size_t)(w - p);
            uint64_t n;
            if (wlen <= sizeof(wk) - 1 || strncmp(w, wk, sizeof(wk) - 1) != 0 ||
                op_parse_u64(w + sizeof(wk) - 1, wlen - (sizeof(wk) - 1), &n) != 0 || n < 1 ||
                n > 1000) {
                snprintf(err, errlen,
                         "expected \"URL\" or \"URL weight=N\" (N from 1 to 1000), "
                         "got \"%.*s\"",
                         (int)len, p);
                return OP_EINVAL;
            }
            o->weight = (uint32_t)n;
        }
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

/* "10.0.0.0/8, ::1/128, 192.0.2.7" into conf->purge_nets. */
static int parse_nets(struct op_conf *conf, const char *v, char *err, size_t errlen)
{
    free(conf->purge_nets);
    conf->purge_nets = NULL;
    conf->npurge_nets = 0;
    if (v[0] == '\0')
        return 0;
    conf->purge_nets = calloc(OP_CONF_MAX_NETS, sizeof(*conf->purge_nets));
    if (conf->purge_nets == NULL)
        return OP_ENOMEM;
    for (const char *p = v; *p != '\0';) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " ,");
        char item[64];
        if (len >= sizeof(item) || conf->npurge_nets == OP_CONF_MAX_NETS) {
            snprintf(err, errlen, "expected at most %d networks like 10.0.0.0/8 or ::1/128",
                     OP_CONF_MAX_NETS);
            return OP_EINVAL;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        p += len;
        struct op_conf_net *n = &conf->purge_nets[conf->npurge_nets];
        char *slash = strchr(item, '/');
        if (slash != NULL)
            *slash = '\0';
        n->family = strchr(item, ':') ? AF_INET6 : AF_INET;
        unsigned max = n->family == AF_INET ? 32 : 128;
        uint64_t bits = max;
        if (inet_pton(n->family, item, n->addr) != 1 ||
            (slash != NULL &&
             (op_parse_u64(slash + 1, strlen(slash + 1), &bits) != 0 || bits > max))) {
            snprintf(err, errlen, "expected networks like 10.0.0.0/8 or ::1/128, got \"%s%s%s\"",
                     item, slash ? "/" : "", slash ? slash + 1 : "");
            return OP_EINVAL;
        }
        n->bits = (unsigned)bits;
        conf->npurge_nets++;
    }
    return 0;
}

/* Items in a comma-separated list: 0 for "", else one more than its commas. */
static size_t list_len(const char *list)
{
    size_t n = list[0] != '\0';
    for (; *list != '\0'; list++)
        n += *list == ',';
    return n;
}

/* "HOST:PORT, HOST:PORT" into conf->tls_listens. */
static int parse_listens(struct op_conf *conf, const char *v, char *err, size_t errlen)
{
    for (size_t i = 0; i < conf->ntls_listens; i++)
        free(conf->tls_listens[i].host);
    free(conf->tls_listens);
    conf->tls_listens = NULL;
    conf->ntls_listens = 0;
    size_t n = list_len(v);
    if (n == 0)
        return 0;
    if (n > OP_CONF_MAX_LISTEN) {
        snprintf(err, errlen, "at most %d addresses", OP_CONF_MAX_LISTEN);
        return OP_EINVAL;
    }
    conf->tls_listens = calloc(n, sizeof(*conf->tls_listens));
    if (conf->tls_listens == NULL)
        return OP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char item[300];
        struct op_conf_listen *l = &conf->tls_listens[conf->ntls_listens];
        if (!op_conf_list_item(v, i, item, sizeof(item)) || item[0] == '\0' ||
            op_conf_split_hostport(item, &l->host, &l->port) != 0) {
            snprintf(err, errlen, "expected HOST:PORT addresses separated by commas, got \"%s\"",
                     v);
            return OP_EINVAL;
        }
        conf->ntls_listens++;
    }
    return 0;
}

bool op_conf_site_https(const struct op_conf_site *site)
{
    for (size_t i = 0; i < site->norigins; i++)
        if (site->origins[i].tls)
            return true;
    return false;
}

bool op_conf_list_item(const char *list, size_t i, char *out, size_t len)
{
    const char *p = list;
    for (size_t k = 0; k < i; k++) {
        p = strchr(p, ',');
        if (p == NULL)
            return false;
        p++;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, ",");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n >= len || (n == 0 && i == 0 && *p == '\0'))
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

bool op_conf_net_match(const struct op_conf_net *nets, size_t n, const char *addr)
{
    unsigned char a[16];
    int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, addr, a) != 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (nets[i].family != family)
            continue;
        unsigned full = nets[i].bits / 8, rest = nets[i].bits % 8;
        if (memcmp(a, nets[i].addr, full) != 0)
            continue;
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if (rest == 0 || (a[full] & mask) == (nets[i].addr[full] & mask))
            return true;
    }
    return false;
}

/* The site's error page template, read once at load: bounded, text only. */
static int load_error_page(struct op_conf_site *site, const char *path, char *err, size_t errlen)
{
    free(site->error_page_html);
    site->error_page_html = NULL;
    if (path[0] == '\0')
        return 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
        return OP_EINVAL;
    }
    char *buf = malloc(OP_CONF_MAX_ERROR_PAGE + 1);
    size_t n = buf ? fread(buf, 1, OP_CONF_MAX_ERROR_PAGE + 1, f) : 0;
    fclose(f);
    if (buf == NULL)
        return OP_ENOMEM;
    if (n > OP_CONF_MAX_ERROR_PAGE || n == 0 || memchr(buf, '\0', n) != NULL) {
        snprintf(err, errlen, "\"%s\" must be a text file of 1 byte to 64k", path);
        free(buf);
        return OP_EINVAL;
    }
    buf[n] = '\0';
    site->error_page_html = buf;
    return 0;
}

static int check_bounds(const struct op_conf_key *k, uint64_t v, char *err, size_t errlen)
{
    int (*parse)(const char *, uint64_t *) =
        k->type == OP_CONF_DURATION ? op_parse_duration_ms : op_parse_size;
    uint64_t lim;
    if (k->min != NULL && parse(k->min, &lim) == 0 && v < lim) {
        snprintf(err, errlen, "must be at least %s", k->min);
        return OP_EINVAL;
    }
    if (k->max != NULL && parse(k->max, &lim) == 0 && v > lim) {
        snprintf(err, errlen, "must be at most %s", k->max);
        return OP_EINVAL;
    }
    return 0;
}

static const struct op_conf_key *find_key(const struct op_conf_key *table, const char *name)
{
    for (; table->name != NULL; table++)
        if (strcmp(table->name, name) == 0)
            return table;
    return NULL;
}

static int set_key(void *base, struct op_conf_site *site, const struct op_conf_key *k,
                   const char *value, char *err, size_t errlen)
{
    char *field = (char *)base + k->off;
    uint64_t num;
    int rc;

    switch (k->type) {
    case OP_CONF_SIZE:
    case OP_CONF_INT:
        if (op_parse_size(value, &num) != 0 ||
            (k->type == OP_CONF_INT && op_parse_u64(value, strlen(value), &num) != 0)) {
            snprintf(err, errlen, "expected %s, got \"%s\"",
                     k->type == OP_CONF_INT ? "a whole number" : "a size like 64k, 1m, 2g", value);
            return OP_EINVAL;
        }
        if ((rc = check_bounds(k, num, err, errlen)) != 0)
            return rc;
        *(uint64_t *)(void *)field = num;
        return 0;
    case OP_CONF_DURATION:
        if (op_parse_duration_ms(value, &num) != 0) {
            snprintf(err, errlen, "expected a duration like 500ms, 2s, 5m, 1h, 7d, got \"%s\"",
                     value);
            return OP_EINVAL;
        }
        if ((rc = check_bounds(k, num, err, errlen)) != 0)
            return rc;
        *(uint64_t *)(void *)field = num;
        return 0;
    case OP_CONF_ADDR: {
        struct op_conf *conf = base;
        char *host = NULL;
        uint16_t port;
        if (op_conf_split_hostport(value, &host, &port) != 0) {
            snprintf(err, errlen, "expected HOST:PORT, got \"%s\"", value);
            return OP_EINVAL;
        }
        free(conf->listen_host);
        conf->listen_host = host;
        conf->listen_port = port;
        break;
    }
    case OP_CONF_URL:
        if ((rc = parse_origins(site, value, err, errlen)) != 0)
            return rc;
        break;
    case OP_CONF_ADDRS:
        if ((rc = parse_listens((struct op_conf *)base, value, err, errlen)) != 0)
            return rc;
        break;
    case OP_CONF_FILES: break;
    case OP_CONF_BOOL:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            snprintf(err, errlen, "expected true or false, got \"%s\"", value);
            return OP_EINVAL;
        }
        *(bool *)(void *)field = value[0] == 't';
        return 0;
    case OP_CONF_STRING:
        if (site != NULL && k->off == SITE(error_page) &&
            (rc = load_error_page(site, value, err, errlen)) != 0)
            return rc;
        if (site == NULL && k->off == TOP(purge_allow) &&
            (rc = parse_nets((struct op_conf *)base, value, err, errlen)) != 0)
            return rc;
        break;
    }
    char *copy = strdup(value);
    if (copy == NULL)
        return OP_ENOMEM;
    free(*(char **)(void *)field);
    *(char **)(void *)field = copy;
    return 0;
}

int op_conf_set(struct op_conf *conf, struct op_conf_site *site, const char *key, const char *value,
                char *err, size_t errlen)
{
    const struct op_conf_key *k = find_key(site ? op_conf_site_keys : op_conf_top_keys, key);
    if (k == NULL) {
        snprintf(err, errlen, "unknown key");
        return OP_ENOTFOUND;
    }
    return set_key(site ? (void *)site : (void *)conf, site, k, value, err, errlen);
}

static void apply_defaults(void *base, struct op_conf_site *site, const struct op_conf_key *table)
{
    char err[256];
    for (const struct op_conf_key *k = table; k->name != NULL; k++)
        if (k->def != NULL)
            OP_ASSERT(set_key(base, site, k, k->def, err, sizeof(err)) == 0);
}

struct op_conf *op_conf_new_default(void)
{
    struct op_conf *conf = calloc(1, sizeof(*conf));
    if (conf == NULL)
        return NULL;
    apply_defaults(conf, NULL, op_conf_top_keys);
    conf->path = strdup("command line");
    return conf;
}

struct op_conf_site *op_conf_add_site(struct op_conf *conf)
{
    struct op_conf_site *s = realloc(conf->sites, (conf->nsites + 1) * sizeof(*s));
    if (s == NULL)
        return NULL;
    conf->sites = s;
    struct op_conf_site *site = &s[conf->nsites++];
    memset(site, 0, sizeof(*site));
    apply_defaults(site, site, op_conf_site_keys);
    return site;
}

/* Shorter than <max>, and only visible ASCII (no blanks, no controls): what
 * may go into a request line or header field as it is. */
static bool visible_ascii(const char *s, size_t max)
{
    if (strlen(s) >= max)
        return false;
    for (; *s != '\0'; s++)
        if (*s <= 0x20 || *s >= 0x7f)
            return false;
    return true;
}

/* RFC 9110 §5.6.2 token, 1..max characters */
static bool is_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s != '\0'; s++) {
        bool alnum =
            (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9');
        if (!alnum && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return false;
    }
    return true;
}

/* Certificates and keys pair up; where they can be used. */
static int validate_tls(const struct op_conf *conf, struct op_buf *errors)
{
    int rc = 0;
    bool tls = conf->ntls_listens > 0, any_site_cert = false;
    if (list_len(conf->tls_cert) != list_len(conf->tls_key)) {
        op_buf_appendf(errors,
                       "%s: tls_key: expected one key per tls_cert (%zu certificates, "
                       "%zu keys)\n",
                       conf->path, list_len(conf->tls_cert), list_len(conf->tls_key));
        rc = OP_EINVAL;
    }
    for (size_t i = 0; i < conf->nsites; i++) {
        const struct op_conf_site *s = &conf->sites[i];
        size_t nc = list_len(s->tls_cert);
        any_site_cert |= nc > 0;
        if (nc != list_len(s->tls_key)) {
            op_buf_appendf(errors,
                           "%s: sites[%zu].tls_key: expected one key per tls_cert (%zu "
                           "certificates, %zu keys)\n",
                           conf->path, i, nc, list_len(s->tls_key));
            rc = OP_EINVAL;
        }
        if (nc > 0 && strcmp(s->host, "*") == 0) {
            op_buf_appendf(errors,
                           "%s: sites[%zu].tls_cert: a site for any host has no SNI name; "
                           "the certificate for names no site has is the top-level tls_cert\n",
                           conf->path, i);
            rc = OP_EINVAL;
        }
        if (s->origin_ca[0] != '\0' && !op_conf_site_https(s)) {
            op_buf_appendf(errors, "%s: sites[%zu].origin_ca: no https:// origin uses it\n",
                           conf->path, i);
            rc = OP_EINVAL;
        }
        if (!tls && (nc > 0 || s->https_redirect)) {
            op_buf_appendf(errors, "%s: sites[%zu].%s: there is no listen_tls to serve https on\n",
                           conf->path, i, nc > 0 ? "tls_cert" : "https_redirect");
            rc = OP_EINVAL;
        }
    }
    bool reject = strcmp(conf->tls_unknown_sni, "reject") == 0;
    if (!reject && strcmp(conf->tls_unknown_sni, "default") != 0) {
        op_buf_appendf(errors, "%s: tls_unknown_sni: expected default or reject, got \"%s\"\n",
                       conf->path, conf->tls_unknown_sni);
        rc = OP_EINVAL;
    }
    if (!tls && conf->tls_cert[0] != '\0') {
        op_buf_appendf(errors, "%s: tls_cert: there is no listen_tls to serve it on\n", conf->path);
        rc = OP_EINVAL;
    }
    if (tls && !reject && conf->tls_cert[0] == '\0') {
        op_buf_appendf(errors,
                       "%s: tls_cert: listen_tls needs a default certificate, unless "
                       "tls_unknown_sni is reject\n",
                       conf->path);
        rc = OP_EINVAL;
    }
    if (tls && reject && !any_site_cert) {
        op_buf_appendf(errors,
                       "%s: tls_unknown_sni: reject, and no site has a tls_cert: every "
                       "handshake would fail\n",
                       conf->path);
        rc = OP_EINVAL;
    }
    for (size_t i = 0; i < conf->ntls_listens; i++) {
        const struct op_conf_listen *l = &conf->tls_listens[i];
        if (strcmp(l->host, conf->listen_host) == 0 && l->port == conf->listen_port) {
            op_buf_appendf(errors, "%s: listen_tls: %s:%u is also the plain listen address\n",
                           conf->path, l->host, l->port);
            rc = OP_EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(l->host, conf->tls_listens[j].host) == 0 &&
                l->port == conf->tls_listens[j].port) {
                op_buf_appendf(errors, "%s: listen_tls: %s:%u is given twice\n", conf->path,
                               l->host, l->port);
                rc = OP_EINVAL;
            }
    }
    return rc;
}

/* A name for NATS (a consumer, a stream) and for the fleet's tables: 1-64
 * of A-Z a-z 0-9 _ -, so it needs no quoting anywhere. */
static bool fleet_name_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!(c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
              (c >= 'a' && c <= 'z')))
            return false;
    }
    return true;
}

static int validate_fleet(const struct op_conf *conf, struct op_buf *errors)
{
    if (conf->fleet_nats[0] == '\0') {
        if (conf->fleet_node[0] != '\0' || conf->fleet_region[0] != '\0') {
            op_buf_appendf(errors, "%s: fleet.nats: a fleet needs its NATS servers\n", conf->path);
            return OP_EINVAL;
        }
        return 0;
    }
    int rc = 0;
    const char *names[][2] = {
        {"node", conf->fleet_node}, {"region", conf->fleet_region}, {"stream", conf->fleet_stream}};
    for (size_t i = 0; i < 3; i++) {
        if (!fleet_name_ok(names[i][1])) {
            op_buf_appendf(errors,
                           "%s: fleet.%s: expected 1-64 of A-Z a-z 0-9 _ -, got \"%.80s\"\n",
                           conf->path, names[i][0], names[i][1]);
            rc = OP_EINVAL;
        }
    }
    size_t n = list_len(conf->fleet_nats);
    for (size_t i = 0; i < n; i++) {
        char item[300] = "", *host = NULL;
        uint16_t port;
        if (!op_conf_list_item(conf->fleet_nats, i, item, sizeof(item)) || item[0] == ':' ||
            op_conf_split_hostport(item, &host, &port) != 0) {
            op_buf_appendf(errors, "%s: fleet.nats: expected HOST:PORT, got \"%.80s\"\n",
                           conf->path, item);
            rc = OP_EINVAL;
        }
        free(host);
    }
    if (n > OP_CONF_MAX_LISTEN) {
        op_buf_appendf(errors, "%s: fleet.nats: at most %d servers\n", conf->path,
                       OP_CONF_MAX_LISTEN);
        rc = OP_EINVAL;
    }
    return rc;
}

int op_conf_validate(const struct op_conf *conf, struct op_buf *errors)
{
    int rc = validate_tls(conf, errors);
    if (validate_fleet(conf, errors) != 0)
        rc = OP_EINVAL;
    if (conf->nsites == 0) {
        op_buf_appendf(errors, "%s: sites: at least one site is required\n", conf->path);
        rc = OP_EINVAL;
    }
    for (size_t i = 0; i < conf->nsites; i++) {
        if (conf->sites[i].origin == NULL) {
            op_buf_appendf(errors, "%s: sites[%zu]: origin: required key is missing\n", conf->path,
                           i);
            rc = OP_EINVAL;
        }
        const char *path = conf->sites[i].health_check_path;
        if (!(path[0] == '\0' || (path[0] == '/' && visible_ascii(path, 1024)))) {
            op_buf_appendf(errors,
                           "%s: sites[%zu]: health_check_path: expected a path starting with "
                           "\"/\" (visible ASCII, under 1k), got \"%s\"\n",
                           conf->path, i, path);
            rc = OP_EINVAL;
        }
        /* sent as the origin's Host */
        if (!visible_ascii(conf->sites[i].host_header, 256)) {
            op_buf_appendf(errors,
                           "%s: sites[%zu]: host_header: expected HOST[:PORT] (visible ASCII, "
                           "under 256 characters)\n",
                           conf->path, i);
            rc = OP_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(conf->sites[i].host, conf->sites[j].host) == 0) {
                op_buf_appendf(errors,
                               "%s: sites[%zu]: host: \"%s\" is already used by "
                               "sites[%zu]\n",
                               conf->path, i, conf->sites[i].host, j);
                rc = OP_EINVAL;
            }
        }
    }
    if (conf->max_request_line > conf->max_header_size) {
        op_buf_appendf(errors, "%s: max_request_line: must not exceed max_header_size\n",
                       conf->path);
        rc = OP_EINVAL;
    }
    /* it goes out in Via, Cache-Status and Surrogate-Capability: a token */
    if (!is_token(conf->cache_name, 64)) {
        op_buf_appendf(errors,
                       "%s: cache_name: expected a token of at most 64 characters (letters, "
                       "digits, and !#$%%&'*+-.^_`|~), got \"%s\"\n",
                       conf->path, conf->cache_name);
        rc = OP_EINVAL;
    }
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    bool level_ok = false;
    for (size_t i = 0; i < 4; i++)
        level_ok |= strcmp(conf->log_level, levels[i]) == 0;
    if (!level_ok) {
        op_buf_appendf(errors, "%s: log_level: expected error, warn, info or debug\n", conf->path);
        rc = OP_EINVAL;
    }
    return rc;
}

static void free_fields(void *base, const struct op_conf_key *table)
{
    for (const struct op_conf_key *k = table; k->name != NULL; k++) {
        if (k->type != OP_CONF_SIZE && k->type != OP_CONF_INT && k->type != OP_CONF_DURATION &&
            k->type != OP_CONF_BOOL)
            free(*(char **)(void *)((char *)base + k->off));
    }
}

void op_conf_free(struct op_conf *conf)
{
    if (conf == NULL)
        return;
    for (size_t i = 0; i < conf->nsites; i++) {
        free_fields(&conf->sites[i], op_conf_site_keys);
        free_origins(&conf->sites[i]);
        free(conf->sites[i].error_page_html);
    }
    free(conf->sites);
    free_fields(conf, op_conf_top_keys);
    free(conf->listen_host);
    for (size_t i = 0; i < conf->ntls_listens; i++)
        free(conf->tls_listens[i].host);
    free(conf->tls_listens);
    free(conf->purge_nets);
    free(conf->path);
    free(conf);
}
