/* outpostctl: the admin API from the command line.
 *
 *   outpostctl [--socket PATH] [--json] purge URL | --prefix URL | --tag TAG | --host HOST [--soft]
 *              [--local]
 *   outpostctl [--socket PATH] [--json] stats | metrics | health | drain | undrain | reload
 *
 * The socket is --socket, else $OUTPOST_ADMIN_SOCKET, else
 * /run/outpost/admin.sock. Readable output by default, the node's JSON with
 * --json. Exit codes: 0 done (health: ready); 1 the node refused or failed
 * (health: draining); 2 bad usage; 3 cannot reach the node.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define REPLY_MAX (16 << 20)

static void usage(FILE *f)
{
    fprintf(f, "usage: outpostctl [--socket PATH] [--json] COMMAND\n"
               "  purge URL [--soft]           every variant of one URL\n"
               "  purge --prefix URL [--soft]  URLs starting with it\n"
               "  purge --tag TAG [--soft]     objects with that Surrogate-Key or Cache-Tag\n"
               "  purge --host HOST [--soft]   one site (\"*\": everything)\n"
               "  purge ... --local            this node alone, not the fleet\n"
               "  stats | metrics | health | drain | undrain\n"
               "  inspect URL                 its stored variants: age, ttl, grace, size, tags\n"
               "  reload                      load the config file again (the old one stays\n"
               "                              if the new one has errors)\n"
               "--soft marks objects stale instead of removing them. On a node in a fleet a\n"
               "purge goes to every node (answered once the fleet's stream stored it);\n"
               "--local purges this node alone. The socket is --socket,\n"
               "else $OUTPOST_ADMIN_SOCKET, else /run/outpost/admin.sock.\n"
               "exit codes: 0 done (health: ready), 1 refused or failed (health: draining),\n"
               "            2 bad usage, 3 cannot reach the node\n");
}

struct reply {
    int status;
    char *body; /* NUL-terminated */
    size_t len;
};

/* One request on a fresh connection; 0, or EXIT_UNREACHABLE (reported). */
static int call(const char *sock, const char *method, const char *path, const char *body,
                struct reply *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "outpostctl: socket path too long: %s\n", sock);
        return EXIT_UNREACHABLE;
    }
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "outpostctl: cannot reach the node at %s: %s\n", sock, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EXIT_UNREACHABLE;
    }
    size_t blen = body ? strlen(body) : 0;
    char head[512];
    int hlen = snprintf(head, sizeof(head),
                        "%s %s HTTP/1.1\r\nHost: outpost\r\nConnection: close\r\n"
                        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                        method, path, blen);
    if (write(fd, head, (size_t)hlen) != hlen || (blen && write(fd, body, blen) != (ssize_t)blen)) {
        fprintf(stderr, "outpostctl: sending to %s: %s\n", sock, strerror(errno));
        close(fd);
        return EXIT_UNREACHABLE;
    }
    char *buf = malloc(REPLY_MAX + 1);
    size_t n = 0;
    ssize_t r;
    while (buf != NULL && n < REPLY_MAX && (r = read(fd, buf + n, REPLY_MAX - n)) > 0)
        n += (size_t)r;
    close(fd);
    if (buf == NULL)
        return EXIT_UNREACHABLE;
    buf[n] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (n < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0 || sep == NULL) {
        fprintf(stderr, "outpostctl: %s did not answer in HTTP\n", sock);
        free(buf);
        return EXIT_UNREACHABLE;
    }
    out->status = (int)strtol(buf + 9, NULL, 10);
    out->len = n - (size_t)(sep + 4 - buf);
    memmove(buf, sep + 4, out->len + 1);
    out->body = buf;
    return 0;
}

/* "a.b: 1" lines for a JSON object, nested keys joined by dots. */
static void print_flat(const char *prefix, json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            char name[256];
            snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "." : "", k);
            print_flat(name, x);
        }
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY);
    printf("%s: %s\n", prefix, text ? text : "?");
    free(text);
}

static int show(const struct reply *rep, const char *cmd, bool as_json)
{
    json_error_t err;
    json_t *doc = json_loads(rep->body, 0, &err);
    bool ok = rep->status == 200;
    if (!ok && rep->status == 404 && strcmp(cmd, "inspect") == 0 && doc != NULL &&
        json_object_get(doc, "variants") != NULL) {
        if (as_json)
            fputs(rep->body, stdout);
        else
            printf("%s: not in the cache\n", json_string_value(json_object_get(doc, "key")));
        json_decref(doc);
        return EXIT_REFUSED;
    }
    if (as_json || strcmp(cmd, "metrics") == 0 || doc == NULL) {
        fputs(rep->body, ok ? stdout : stderr);
    } else if (!ok && json_is_string(json_object_get(doc, "error"))) {
        fprintf(stderr, "outpostctl: %s: %d %s\n", cmd, rep->status,
                json_string_value(json_object_get(doc, "error")));
        json_t *errs = json_object_get(doc, "errors");
        for (size_t i = 0; i < json_array_size(errs); i++)
            fprintf(stderr, "  %s\n", json_string_value(json_array_get(errs, i)));
    } else if (strcmp(cmd, "reload") == 0) {
        printf("reloaded: configuration %lld\n",
               (long long)json_integer_value(json_object_get(doc, "generation")));
    } else if (strcmp(cmd, "purge") == 0 && json_object_get(doc, "fleet_seq") != NULL) {
        printf("published to the fleet as purge %lld: every node applies it\n",
               (long long)json_integer_value(json_object_get(doc, "fleet_seq")));
    } else if (strcmp(cmd, "purge") == 0) {
        printf("%s %lld object%s (purge %lld)\n",
               json_is_true(json_object_get(doc, "soft")) ? "marked stale" : "purged",
               (long long)json_integer_value(json_object_get(doc, "purged")),
               json_integer_value(json_object_get(doc, "purged")) == 1 ? "" : "s",
               (long long)json_integer_value(json_object_get(doc, "seq")));
    } else if (strcmp(cmd, "stats") == 0) {
        print_flat("", doc);
    } else if (strcmp(cmd, "inspect") == 0) {
        json_t *vars = json_object_get(doc, "variants");
        printf("%s: %zu variant%s\n", json_string_value(json_object_get(doc, "key")),
               json_array_size(vars), json_array_size(vars) == 1 ? "" : "s");
        for (size_t i = 0; i < json_array_size(vars); i++) {
            char name[32];
            snprintf(name, sizeof(name), "  [%zu]", i);
            print_flat(name, json_array_get(vars, i));
        }
    } else {
        printf("%s (purges applied up to %lld)\n",
               json_string_value(json_object_get(doc, "status")),
               (long long)json_integer_value(json_object_get(doc, "purge_seq")));
    }
    json_decref(doc);
    return ok ? EXIT_OK : EXIT_REFUSED;
}

int main(int argc, char **argv)
{
    enum { O_SOCKET = 256, O_JSON, O_PREFIX, O_TAG, O_HOST, O_SOFT, O_LOCAL };
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, O_SOCKET},
        {"json", no_argument, NULL, O_JSON},
        {"prefix", required_argument, NULL, O_PREFIX},
        {"tag", required_argument, NULL, O_TAG},
        {"host", required_argument, NULL, O_HOST},
        {"soft", no_argument, NULL, O_SOFT},
        {"local", no_argument, NULL, O_LOCAL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sock = getenv("OUTPOST_ADMIN_SOCKET");
    if (sock == NULL || sock[0] == '\0')
        sock = "/run/outpost/admin.sock";
    bool as_json = false, soft = false, local = false;
    const char *kind = NULL, *value = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_SOCKET: sock = optarg; break;
        case O_JSON: as_json = true; break;
        case O_SOFT: soft = true; break;
        case O_LOCAL: local = true; break;
        case O_PREFIX:
        case O_TAG:
        case O_HOST:
            if (kind != NULL) {
                fprintf(stderr, "outpostctl: give one of URL, --prefix, --tag or --host\n");
                return EXIT_USAGE;
            }
            kind = opt == O_PREFIX ? "prefix" : opt == O_TAG ? "tag" : "host";
            value = optarg;
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind++];
    const char *method = "GET", *path = NULL;
    char *body = NULL;
    if (strcmp(cmd, "purge") == 0) {
        if (optind < argc && kind == NULL) {
            kind = "url";
            value = argv[optind++];
        }
        if (kind == NULL || optind < argc) {
            fprintf(stderr, "outpostctl: purge takes one URL, --prefix, --tag or --host\n");
            return EXIT_USAGE;
        }
        json_t *req = json_pack("{s:s, s:b, s:b}", kind, value, "soft", soft, "local", local);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (body == NULL) {
            fprintf(stderr, "outpostctl: the value must be UTF-8 text\n");
            return EXIT_USAGE;
        }
        method = "POST";
        path = "/purge";
    } else if (strcmp(cmd, "inspect") == 0) {
        if (optind + 1 != argc || kind != NULL || soft || local) {
            fprintf(stderr, "outpostctl: inspect takes one URL\n");
            return EXIT_USAGE;
        }
        static char target[16384];
        size_t n = (size_t)snprintf(target, sizeof(target), "/inspect?url=");
        for (const char *p = argv[optind]; *p != '\0' && n + 4 < sizeof(target); p++) {
            unsigned char ch = (unsigned char)*p;
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                strchr("-._~/:", ch) != NULL)
                target[n++] = (char)ch;
            else
                n += (size_t)snprintf(target + n, sizeof(target) - n, "%%%02X", ch);
        }
        target[n] = '\0';
        path = target;
    } else if (kind != NULL || soft || local || optind < argc) {
        fprintf(stderr, "outpostctl: %s takes no arguments\n", cmd);
        return EXIT_USAGE;
    } else if (strcmp(cmd, "stats") == 0 || strcmp(cmd, "metrics") == 0 ||
               strcmp(cmd, "health") == 0) {
        path = strcmp(cmd, "stats") == 0     ? "/stats"
               : strcmp(cmd, "metrics") == 0 ? "/metrics"
                                             : "/health";
    } else if (strcmp(cmd, "drain") == 0 || strcmp(cmd, "undrain") == 0 ||
               strcmp(cmd, "reload") == 0) {
        method = "POST";
        path = strcmp(cmd, "drain") == 0    ? "/drain"
               : strcmp(cmd, "reload") == 0 ? "/reload"
                                            : "/undrain";
    } else {
        fprintf(stderr, "outpostctl: unknown command: %s\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    struct reply rep = {0};
    int rc = call(sock, method, path, body, &rep);
    free(body);
    if (rc != 0)
        return rc;
    rc = show(&rep, cmd, as_json);
    free(rep.body);
    return rc;
}
