/* Certificates the tests make themselves: a P-256 key and a self-signed
 * certificate for DNS:localhost, written as PEM files. */
#ifndef OUTPOST_TLS_TESTCERT_H
#define OUTPOST_TLS_TESTCERT_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>

/* Writes <dir>/<name>.crt and <dir>/<name>.key; 0 or -1. */
static inline int tls_testcert_write(const char *dir, const char *name, long valid_days)
{
    int rc = -1;
    char path[512];
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_EXTENSION *san = NULL;
    FILE *f = NULL;
    if (key == NULL || x == NULL)
        goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), valid_days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:localhost");
    if (san == NULL || X509_add_ext(x, san, -1) != 1 || X509_sign(x, key, EVP_sha256()) == 0)
        goto out;
    snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
    if ((f = fopen(path, "w")) == NULL || PEM_write_X509(f, x) != 1)
        goto out;
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    if ((f = fopen(path, "w")) == NULL ||
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    X509_EXTENSION_free(san);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

#endif
