/* The YAML loader: libyaml's document API gives every node its line and column,
 * so each error names file:line:col. Every problem is reported, not just the first. */
#include "outpost/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct loader {
    const char *path;
    yaml_document_t doc;
    struct op_buf *errors;
    int nerr;
};

static void report(struct loader *l, const yaml_node_t *node, const char *key, const char *msg)
{
    /* libyaml marks are 0-based */
    op_buf_appendf(l->errors, "%s:%zu:%zu: %s%s%s\n", l->path, node ? node->start_mark.line + 1 : 0,
                   node ? node->start_mark.column + 1 : 0, key ? key : "", key ? ": " : "", msg);
    l->nerr++;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A list of scalars as one "a, b, c" value (origins, addresses, files); NULL after
 * reporting an item that is not a single value. */
static char *join_list(struct loader *l, yaml_node_t *seq, const char *name)
{
    struct op_buf out;
    op_buf_init(&out, 1u << 20);
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(&l->doc, *it);
        const char *v = scalar(item);
        if (v == NULL || strchr(v, ',') != NULL) {
            report(l, item, name, "expected one value per list item");
            op_buf_fini(&out);
            return NULL;
        }
        if (op_buf_appendf(&out, "%s%s", out.len ? ", " : "", v) != 0) {
            op_buf_fini(&out);
            return NULL;
        }
    }
    if (out.len == 0 || op_buf_append(&out, "", 1) != 0) {
        report(l, seq, name, "expected at least one value");
        op_buf_fini(&out);
        return NULL;
    }
    return out.data; /* the caller frees it */
}

static void load_mapping(struct loader *l, struct op_conf *conf, struct op_conf_site *site,
                         yaml_node_t *map, const char *prefix);

/* The "fleet:" mapping: its keys are "fleet.KEY" in the top table. */
static void load_fleet(struct loader *l, struct op_conf *conf, yaml_node_t *kn, yaml_node_t *vn)
{
    if (vn == NULL || vn->type != YAML_MAPPING_NODE) {
        report(l, vn != NULL ? vn : kn, "fleet", "expected a mapping of fleet keys");
        return;
    }
    load_mapping(l, conf, NULL, vn, "fleet.");
}

/* Set every key of one mapping through op_conf_set; unknown keys are errors.
 * <prefix> names the mapping in errors ("sites[0].", "fleet."); for the
 * top-level table it is also the start of the keys' names there. */
static void load_mapping(struct loader *l, struct op_conf *conf, struct op_conf_site *site,
                         yaml_node_t *map, const char *prefix)
{
    char err[256];
    char name[128];
    const struct op_conf_key *table = site ? op_conf_site_keys : op_conf_top_keys;
    bool fleet = site == NULL && prefix != NULL;

    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(&l->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(&l->doc, p->value);
        const char *key = scalar(kn);
        if (key == NULL) {
            report(l, kn, prefix, "keys must be plain words");
            continue;
        }
        snprintf(name, sizeof(name), "%s%s", prefix ? prefix : "", key);
        if (site == NULL && !fleet && strcmp(key, "sites") == 0)
            continue; /* handled by the caller */
        if (site == NULL && !fleet && strcmp(key, "fleet") == 0) {
            load_fleet(l, conf, kn, vn);
            continue;
        }
        /* a key given twice is an error: YAML allows it, operators never mean it */
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const char *earlier = scalar(yaml_document_get_node(&l->doc, q->key));
            if (earlier != NULL && strcmp(earlier, key) == 0) {
                report(l, kn, name, "key appears twice");
                break;
            }
        }
        /* the fleet's keys only inside "fleet:", never as "fleet.x" */
        const struct op_conf_key *known = NULL;
        const char *lookup = site == NULL ? name : key;
        bool dotted = strchr(key, '.') != NULL;
        for (const struct op_conf_key *k = table; k->name != NULL && !dotted; k++)
            if (strcmp(k->name, lookup) == 0)
                known = k;
        if (known == NULL) {
            report(l, kn, name, "unknown key");
            continue;
        }
        char *joined = NULL;
        const char *value = scalar(vn);
        if (vn != NULL && vn->type == YAML_SEQUENCE_NODE &&
            (known->type == OP_CONF_URL || known->type == OP_CONF_ADDRS ||
             known->type == OP_CONF_FILES)) {
            if ((joined = join_list(l, vn, name)) == NULL)
                continue; /* reported */
            value = joined;
        }
        if (value == NULL) {
            report(l, vn, name, "expected a single value");
            continue;
        }
        if (op_conf_set(conf, site, lookup, value, err, sizeof(err)) != 0)
            report(l, vn, name, err);
        free(joined);
    }
    for (const struct op_conf_key *k = table; k->name != NULL; k++) {
        if (!k->required)
            continue;
        bool present = false;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
            const char *key = scalar(yaml_document_get_node(&l->doc, p->key));
            present |= key != NULL && strcmp(key, k->name) == 0;
        }
        if (!present) {
            snprintf(name, sizeof(name), "%s%s", site != NULL && prefix ? prefix : "", k->name);
            report(l, map, name, "required key is missing");
        }
    }
}

static void load_sites(struct loader *l, struct op_conf *conf, yaml_node_t *root)
{
    yaml_node_t *seq = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const char *key = scalar(yaml_document_get_node(&l->doc, p->key));
        if (key != NULL && strcmp(key, "sites") == 0)
            seq = yaml_document_get_node(&l->doc, p->value);
    }
    if (seq == NULL) {
        report(l, root, "sites", "at least one site is required");
        return;
    }
    if (seq->type != YAML_SEQUENCE_NODE ||
        seq->data.sequence.items.start == seq->data.sequence.items.top) {
        report(l, seq, "sites", "expected a list of sites");
        return;
    }
    size_t i = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++, i++) {
        yaml_node_t *sn = yaml_document_get_node(&l->doc, *it);
        char prefix[48];
        snprintf(prefix, sizeof(prefix), "sites[%zu].", i);
        if (sn->type != YAML_MAPPING_NODE) {
            report(l, sn, prefix, "expected a mapping of site keys");
            continue;
        }
        struct op_conf_site *site = op_conf_add_site(conf);
        if (site == NULL) {
            report(l, sn, prefix, "out of memory");
            return;
        }
        load_mapping(l, conf, site, sn, prefix);
    }
}

struct op_conf *op_conf_load(const char *path, struct op_buf *errors)
{
    struct loader l = {.path = path, .errors = errors};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        op_buf_appendf(errors, "%s:0:0: cannot open: %m\n", path);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &l.doc)) {
        op_buf_appendf(errors, "%s:%zu:%zu: %s%s%s\n", path, parser.problem_mark.line + 1,
                       parser.problem_mark.column + 1, parser.problem ? parser.problem : "",
                       parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        fclose(f);
        return NULL;
    }
    yaml_parser_delete(&parser);
    fclose(f);

    struct op_conf *conf = op_conf_new_default();
    if (conf == NULL) {
        yaml_document_delete(&l.doc);
        return NULL;
    }
    free(conf->path);
    conf->path = strdup(path);
    yaml_node_t *root = yaml_document_get_root_node(&l.doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        report(&l, root, NULL, "expected a mapping of configuration keys");
    } else {
        load_mapping(&l, conf, NULL, root, NULL);
        load_sites(&l, conf, root);
    }
    yaml_document_delete(&l.doc);
    if (l.nerr == 0 && op_conf_validate(conf, errors) != 0)
        l.nerr++;
    if (l.nerr != 0 || conf->path == NULL) {
        op_conf_free(conf);
        return NULL;
    }
    return conf;
}
