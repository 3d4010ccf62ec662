/* Certificates the tests make themselves: a P-256 or RSA-2048 key and a
 * self-signed certificate for one DNS name, written as PEM files. */
#ifndef OUTPOST_TLS_TESTCERT_H
#define OUTPOST_TLS_TESTCERT_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

/* Writes <dir>/<name>.crt and <dir>/<name>.key (mode 0600) for DNS:<dns>,
 * valid from <from_days> to <to_days> days from now (negative: the past).
 * 0 or -1. */
static inline int tls_testcert_make(const char *dir, const char *name, const char *dns, bool rsa,
                                    long from_days, long to_days)
{
    int rc = -1;
    char path[512], san_text[300];
    EVP_PKEY *key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_EXTENSION *san = NULL;
    FILE *f = NULL;
    if (key == NULL || x == NULL)
        goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400 - 3600);
    X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)dns, -1, -1, 0);
    X509_set_issuer_name(x, n);
    snprintf(san_text, sizeof(san_text), "DNS:%s", dns);
    san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san_text);
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
    chmod(path, 0600);
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    X509_EXTENSION_free(san);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

/* A P-256 certificate for localhost, valid for <valid_days>. */
static inline int tls_testcert_write(const char *dir, const char *name, long valid_days)
{
    return tls_testcert_make(dir, name, "localhost", false, 0, valid_days);
}

#endif
