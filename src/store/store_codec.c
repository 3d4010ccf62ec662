/* Versioned record codecs. Fixed-width fields in host byte order (the cache is
 * local to one machine); every record starts with a magic and the format
 * version, so a future format change can refuse or convert old records. */
#include "store_int.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REC_MAGIC 0x314f504fu  /* "OPO1" */
#define VARY_MAGIC 0x3156504fu /* "OPV1" */
#define REC_FIXED 96

/* Field offsets of the fixed part. */
enum {
    R_MAGIC = 0,
    R_VERSION = 4,
    R_STATUS = 6,
    R_REQ_TIME = 8,
    R_RESP_TIME = 16,
    R_AGE = 24,
    R_LIFETIME = 32,
    R_SWR = 40,
    R_SIE = 48,
    R_FLAGS = 56,
    R_PRIMARY_LEN = 60,
    R_SECONDARY_LEN = 64,
    R_HEADERS_LEN = 68,
    R_BODY_LEN = 72,
    R_SEQ = 80,
    R_ID = 88 /* 0 in records written before ids: they go by seq */
};

#define PUT(p, off, v) memcpy((p) + (off), &(v), sizeof(v))
#define GET(p, off, v) memcpy(&(v), (p) + (off), sizeof(v))

char *op_store__rec_encode(const struct op_store_rec *r, size_t *len)
{
    uint64_t total = (uint64_t)REC_FIXED + r->primary_len + r->secondary_len + r->headers_len;
    if (r->body_len > SIZE_MAX - total)
        return NULL;
    total += r->body_len;
    char *p = malloc(total);
    if (p == NULL)
        return NULL;
    memset(p, 0, REC_FIXED);
    uint32_t magic = REC_MAGIC;
    uint16_t version = OP_STORE_FORMAT;
    PUT(p, R_MAGIC, magic);
    PUT(p, R_VERSION, version);
    PUT(p, R_STATUS, r->meta.status);
    PUT(p, R_REQ_TIME, r->meta.request_time);
    PUT(p, R_RESP_TIME, r->meta.response_time);
    PUT(p, R_AGE, r->meta.corrected_initial_age);
    PUT(p, R_LIFETIME, r->meta.freshness_lifetime);
    PUT(p, R_SWR, r->meta.swr);
    PUT(p, R_SIE, r->meta.sie);
    PUT(p, R_FLAGS, r->meta.flags);
    PUT(p, R_PRIMARY_LEN, r->primary_len);
    PUT(p, R_SECONDARY_LEN, r->secondary_len);
    PUT(p, R_HEADERS_LEN, r->headers_len);
    PUT(p, R_BODY_LEN, r->body_len);
    PUT(p, R_SEQ, r->seq);
    PUT(p, R_ID, r->id);
    char *q = p + REC_FIXED;
    memcpy(q, r->primary, r->primary_len);
    q += r->primary_len;
    if (r->secondary_len)
        memcpy(q, r->secondary, r->secondary_len);
    q += r->secondary_len;
    memcpy(q, r->headers, r->headers_len);
    q += r->headers_len;
    if (r->body_len)
        memcpy(q, r->body, r->body_len);
    *len = (size_t)total;
    return p;
}

int op_store__rec_decode(const char *p, size_t len, struct op_store_rec *r)
{
    uint32_t magic;
    uint16_t version;
    if (len < REC_FIXED)
        return OP_EPARSE;
    GET(p, R_MAGIC, magic);
    GET(p, R_VERSION, version);
    if (magic != REC_MAGIC || version != OP_STORE_FORMAT)
        return OP_EPARSE;
    GET(p, R_STATUS, r->meta.status);
    GET(p, R_REQ_TIME, r->meta.request_time);
    GET(p, R_RESP_TIME, r->meta.response_time);
    GET(p, R_AGE, r->meta.corrected_initial_age);
    GET(p, R_LIFETIME, r->meta.freshness_lifetime);
    GET(p, R_SWR, r->meta.swr);
    GET(p, R_SIE, r->meta.sie);
    GET(p, R_FLAGS, r->meta.flags);
    GET(p, R_PRIMARY_LEN, r->primary_len);
    GET(p, R_SECONDARY_LEN, r->secondary_len);
    GET(p, R_HEADERS_LEN, r->headers_len);
    GET(p, R_BODY_LEN, r->body_len);
    GET(p, R_SEQ, r->seq);
    GET(p, R_ID, r->id);
    uint64_t need = (uint64_t)REC_FIXED + r->primary_len + r->secondary_len + r->headers_len;
    if (need > len || r->body_len != len - need)
        return OP_EPARSE;
    const char *q = p + REC_FIXED;
    r->primary = q;
    q += r->primary_len;
    r->secondary = q;
    q += r->secondary_len;
    r->headers = q;
    q += r->headers_len;
    r->body = q;
    return 0;
}

void op_store__rec_set_seq(char *p, uint64_t seq)
{
    PUT(p, R_SEQ, seq);
}

void op_store__rec_set_lifetime(char *p, int64_t lifetime)
{
    PUT(p, R_LIFETIME, lifetime);
}

char *op_store__vary_encode(const char *names, size_t len, size_t *out_len)
{
    char *p = malloc(12 + len);
    if (p == NULL)
        return NULL;
    uint32_t magic = VARY_MAGIC, n = (uint32_t)len;
    uint32_t version = OP_STORE_FORMAT;
    PUT(p, 0, magic);
    PUT(p, 4, version);
    PUT(p, 8, n);
    if (len)
        memcpy(p + 12, names, len);
    *out_len = 12 + len;
    return p;
}

int op_store__vary_decode(const char *p, size_t len, const char **names, size_t *nlen)
{
    uint32_t magic, version, n;
    if (len < 12)
        return OP_EPARSE;
    GET(p, 0, magic);
    GET(p, 4, version);
    GET(p, 8, n);
    if (magic != VARY_MAGIC || version != OP_STORE_FORMAT || n != len - 12)
        return OP_EPARSE;
    *names = p + 12;
    *nlen = n;
    return 0;
}

/* SHA256() looks the algorithm up by name on every call (OpenSSL 3: a
 * locked provider query, a few percent of a hit): fetched once instead. */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void op_store__hash(const char *p, size_t len, uint8_t out[OP_STORE_HASH_LEN])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    pthread_once(&sha256_once, sha256_fetch);
    if (sha256 == NULL || EVP_Digest(p, len, md, NULL, sha256, NULL) != 1)
        SHA256((const unsigned char *)p, len, md); /* the same digest, the slow way */
    memcpy(out, md, OP_STORE_HASH_LEN);
}
