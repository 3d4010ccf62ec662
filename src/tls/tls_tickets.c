/* Session ticket keys shared by every context of the process (RFC 5077
 * §4's recommended layout: a key name, an AES-256-CBC key, an HMAC-SHA256
 * key). The current key seals new tickets; the previous one still opens
 * tickets, which are then renewed under the current one. */
#include "tls_int.h"

#include "outpost/log.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    bool set;
};

struct op_tls_tickets {
    pthread_mutex_t lock; /* held for a copy of a key, never across OpenSSL calls */
    struct ticket_key current, previous;
};

static int key_make(struct ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1) {
        ERR_clear_error();
        return OP_ENOMEM;
    }
    k->set = true;
    return 0;
}

int op_tls_tickets_create(struct op_tls_tickets **out)
{
    struct op_tls_tickets *tk = calloc(1, sizeof(*tk));
    if (tk == NULL || key_make(&tk->current) != 0) {
        free(tk);
        return OP_ENOMEM;
    }
    pthread_mutex_init(&tk->lock, NULL);
    *out = tk;
    return 0;
}

int op_tls_tickets_rotate(struct op_tls_tickets *tk)
{
    struct ticket_key next;
    if (key_make(&next) != 0)
        return OP_ENOMEM; /* the current key stays: tickets keep working */
    pthread_mutex_lock(&tk->lock);
    tk->previous = tk->current;
    tk->current = next;
    pthread_mutex_unlock(&tk->lock);
    OPENSSL_cleanse(&next, sizeof(next));
    return 0;
}

void op_tls_tickets_destroy(struct op_tls_tickets *tk)
{
    if (tk == NULL)
        return;
    pthread_mutex_destroy(&tk->lock);
    OPENSSL_cleanse(tk, sizeof(*tk));
    free(tk);
}

static int mac_init(EVP_MAC_CTX *hctx, unsigned char *key, size_t len)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, len),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* Return values as SSL_CTX_set_tlsext_ticket_key_evp_cb(3) defines them:
 * sealing 1 (or -1); opening 1, 2 (opened with the previous key: issue a
 * new ticket), 0 (a key we no longer have: a full handshake), -1. */
int op_tls__ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                      EVP_MAC_CTX *hctx, int enc)
{
    struct op_tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    struct op_tls_tickets *tk = ctx != NULL ? ctx->cfg.tickets : NULL;
    if (tk == NULL)
        return enc ? -1 : 0;
    struct ticket_key k;
    int rc = 1;
    pthread_mutex_lock(&tk->lock);
    if (enc) {
        k = tk->current;
    } else if (memcmp(key_name, tk->current.name, 16) == 0) {
        k = tk->current;
    } else if (tk->previous.set && memcmp(key_name, tk->previous.name, 16) == 0) {
        k = tk->previous;
        rc = 2;
    } else {
        k.set = false;
    }
    pthread_mutex_unlock(&tk->lock);
    if (!k.set)
        return 0;
    const EVP_CIPHER *aes = EVP_aes_256_cbc();
    if (enc) {
        memcpy(key_name, k.name, 16);
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes)) != 1 ||
            EVP_EncryptInit_ex(cctx, aes, NULL, k.aes, iv) != 1)
            rc = -1;
    } else if (EVP_DecryptInit_ex(cctx, aes, NULL, k.aes, iv) != 1) {
        rc = -1;
    }
    if (rc > 0 && mac_init(hctx, k.hmac, sizeof(k.hmac)) != 1)
        rc = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}
