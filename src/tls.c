/* tls.c -- TLS client sessions (OpenSSL) over memory BIOs, and the
 * sentences that say why a handshake failed.
 *
 * Built only with FAIRLOCK_TLS; otherwise every entry point refuses, and
 * url.c already turns rediss:// away.  Messages name files and hosts but
 * never key material or passwords. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

#if FAIRLOCK_HAVE_TLS

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct fairlock__tls {
    SSL *ssl;
    BIO *in;  /* received, not yet decrypted: SSL reads it */
    BIO *out; /* encrypted, not yet sent: SSL writes it */
    char peer[300];
    char name[256]; /* the name verified */
    int verify;
};

/* OpenSSL's reason for the last error of this thread's queue. */
static void openssl_reason(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(buf, len, "no detail from OpenSSL");
    else
        ERR_error_string_n(e, buf, len);
}

static int config_failed(fairlock__error *err, const char *what,
                         const char *file) {
    char why[160];
    openssl_reason(why, sizeof why);
    ERR_clear_error();
    return fairlock__error_set(err, FAIRLOCK_REDIS, "TLS: cannot %s %.100s: %s",
                               what, file ? file : "", why);
}

static SSL_CTX *make_ctx(const fairlock__tls_config *cfg,
                         fairlock__error *err) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        fairlock__error_set(err, FAIRLOCK_NOMEM, "cannot allocate TLS");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);
    int ok = 1;
    if (cfg->verify) {
        if (cfg->ca_file != NULL || cfg->ca_path != NULL) {
            if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file,
                                              cfg->ca_path) != 1)
                ok = config_failed(err, "load the CA certificates from",
                                   cfg->ca_file ? cfg->ca_file
                                                : cfg->ca_path) == 0;
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            ok = config_failed(err, "load the system's trust store", NULL) == 0;
        }
    }
    if (ok && cfg->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1)
            ok = config_failed(err, "load the client certificate",
                               cfg->cert_file) == 0;
        else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file,
                                             SSL_FILETYPE_PEM) != 1)
            ok = config_failed(err, "load the client key", cfg->key_file) == 0;
        else if (SSL_CTX_check_private_key(ctx) != 1)
            ok = config_failed(err,
                               "use the client key: it does not match the "
                               "certificate",
                               cfg->cert_file) == 0;
    }
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void fairlock__tls_prepare(fairlock__tls_config *cfg) {
    if (!cfg->enabled || cfg->ctx != NULL)
        return;
    fairlock__error ignored;
    memset(&ignored, 0, sizeof ignored);
    cfg->ctx = make_ctx(cfg, &ignored);
    ERR_clear_error();
}

void fairlock__tls_ctx_ref(fairlock__tls_config *cfg) {
    if (cfg->ctx != NULL)
        SSL_CTX_up_ref(cfg->ctx);
}

void fairlock__tls_ctx_release(fairlock__tls_config *cfg) {
    SSL_CTX_free(cfg->ctx); /* NULL is a no-op */
    cfg->ctx = NULL;
}

static int is_address(const char *name) {
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 ||
           inet_pton(AF_INET6, name, buf) == 1;
}

fairlock__tls *fairlock__tls_new(const fairlock__tls_config *cfg,
                                 const char *host, int port,
                                 fairlock__error *err) {
    ERR_clear_error();
    fairlock__tls *tls = calloc(1, sizeof *tls);
    if (tls == NULL) {
        fairlock__error_set(err, FAIRLOCK_NOMEM, "cannot allocate TLS");
        return NULL;
    }
    SSL_CTX *ctx = cfg->ctx;
    if (ctx == NULL)
        ctx = make_ctx(cfg, err);
    else
        SSL_CTX_up_ref(ctx); /* dropped below, as a context made here */
    if (ctx == NULL) {
        free(tls);
        return NULL;
    }
    tls->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the session holds its own reference */
    tls->in = BIO_new(BIO_s_mem());
    tls->out = BIO_new(BIO_s_mem());
    if (tls->ssl == NULL || tls->in == NULL || tls->out == NULL) {
        BIO_free(tls->in);
        BIO_free(tls->out);
        SSL_free(tls->ssl);
        free(tls);
        fairlock__error_set(err, FAIRLOCK_NOMEM, "cannot allocate TLS");
        return NULL;
    }
    SSL_set_bio(tls->ssl, tls->in, tls->out);
    SSL_set_connect_state(tls->ssl);
    snprintf(tls->peer, sizeof tls->peer, "%s:%d", host, port);
    const char *name = cfg->server_name ? cfg->server_name : host;
    snprintf(tls->name, sizeof tls->name, "%s", name);
    tls->verify = cfg->verify;
    int ok = 1;
    if (is_address(name)) {
        /* No SNI for an address (RFC 6066); it is checked against the
         * certificate's IP subjectAltNames. */
        if (cfg->verify && cfg->check_host)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls->ssl),
                                               name) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(tls->ssl, name) == 1;
        if (ok && cfg->verify && cfg->check_host) {
            SSL_set_hostflags(tls->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(tls->ssl, name) == 1;
        }
    }
    if (!ok) {
        config_failed(err, "use the server name", name);
        fairlock__tls_free(tls);
        return NULL;
    }
    return tls;
}

void fairlock__tls_free(fairlock__tls *tls) {
    if (tls == NULL)
        return;
    /* No close_notify: after a fork the socket is the parent's, and a
     * connection given up is closed anyway. */
    SSL_free(tls->ssl); /* frees both BIOs */
    free(tls);
}

/* Why the certificate check failed, in words that say what to change. */
static const char *verify_reason(long result) {
    switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "the server's certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "the server's certificate is not valid yet (check the "
               "clocks)";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return NULL; /* said with the name, below */
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return "the server's certificate is not signed by a CA this client "
               "trusts: give the server's CA (ssl_ca_certs / tls_ca_file)";
    default:
        return X509_verify_cert_error_string(result);
    }
}

/* The failed session's cause: the certificate check first, then the
 * alert or record error OpenSSL queued. */
static int session_failed(fairlock__tls *tls, int ssl_error,
                          fairlock__error *err, const char *when) {
    long result = SSL_get_verify_result(tls->ssl);
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    const char *why = NULL;
    char detail[FAIRLOCK__ERRMSG_SIZE] = "";
    if (tls->verify && result != X509_V_OK) {
        why = verify_reason(result);
        if (why == NULL)
            snprintf(detail, sizeof detail,
                     "the server's certificate is not for '%.60s' (give "
                     "the name it was issued for: ssl_server_hostname / "
                     "tls_server_name)",
                     tls->name);
    } else if (e != 0 && (reason == SSL_R_WRONG_VERSION_NUMBER ||
                          reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                          reason == SSL_R_UNKNOWN_PROTOCOL ||
                          reason == SSL_R_RECORD_LENGTH_MISMATCH)) {
        why = "the server does not speak TLS on this port: use redis://, "
              "or the server's tls-port";
    } else if (e != 0 && (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
                          reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE ||
                          reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
                          reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
                          reason == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED ||
                          reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN)) {
        why = "the server requires a client certificate it trusts: give one "
              "(ssl_certfile and ssl_keyfile / tls_cert_file and "
              "tls_key_file) issued by a CA the server trusts";
    } else if (ssl_error == SSL_ERROR_ZERO_RETURN ||
               (ssl_error == SSL_ERROR_SYSCALL && e == 0) ||
               reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        why = "the server closed the connection";
    } else {
        openssl_reason(detail, sizeof detail);
    }
    ERR_clear_error();
    return fairlock__error_set(err, FAIRLOCK_REDIS, "TLS %s with %s failed: %s",
                               when, tls->peer, why ? why : detail);
}

int fairlock__tls_handshake(fairlock__tls *tls, fairlock__error *err) {
    ERR_clear_error();
    int rc = SSL_do_handshake(tls->ssl);
    if (rc == 1)
        return 1;
    int e = SSL_get_error(tls->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    session_failed(tls, e, err, "handshake");
    return -1;
}

int fairlock__tls_encrypt(fairlock__tls *tls, const char *buf, size_t len,
                          fairlock__error *err) {
    ERR_clear_error();
    while (len > 0) {
        size_t n = 0;
        /* A memory BIO takes everything: nothing is ever half-written. */
        if (SSL_write_ex(tls->ssl, buf, len, &n) != 1) {
            session_failed(tls, SSL_get_error(tls->ssl, 0), err, "session");
            return -1;
        }
        buf += n;
        len -= n;
    }
    return 0;
}

size_t fairlock__tls_pending(fairlock__tls *tls, const char **data) {
    char *p = NULL;
    long n = BIO_get_mem_data(tls->out, &p);
    *data = p;
    return n > 0 ? (size_t)n : 0;
}

void fairlock__tls_sent(fairlock__tls *tls, size_t n) {
    char scratch[4096];
    while (n > 0) {
        int chunk = n > sizeof scratch ? (int)sizeof scratch : (int)n;
        int got = BIO_read(tls->out, scratch, chunk);
        if (got <= 0)
            break;
        n -= (size_t)got;
    }
}

int fairlock__tls_received(fairlock__tls *tls, const char *buf, size_t len) {
    size_t written = 0;
    return BIO_write_ex(tls->in, buf, len, &written) == 1 && written == len
               ? 0
               : -1;
}

long fairlock__tls_decrypt(fairlock__tls *tls, char *buf, size_t cap,
                           fairlock__error *err) {
    ERR_clear_error();
    size_t n = 0;
    if (SSL_read_ex(tls->ssl, buf, cap, &n) == 1)
        return (long)n;
    int e = SSL_get_error(tls->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    session_failed(tls, e, err, "session");
    return -1;
}

#else /* !FAIRLOCK_HAVE_TLS */

void fairlock__tls_prepare(fairlock__tls_config *cfg) { (void)cfg; }

void fairlock__tls_ctx_ref(fairlock__tls_config *cfg) { (void)cfg; }

void fairlock__tls_ctx_release(fairlock__tls_config *cfg) { cfg->ctx = NULL; }

fairlock__tls *fairlock__tls_new(const fairlock__tls_config *cfg,
                                 const char *host, int port,
                                 fairlock__error *err) {
    (void)cfg, (void)host, (void)port;
    fairlock__error_set(err, FAIRLOCK_INVALID,
                        "TLS is not available: this fairlock was built "
                        "without it (FAIRLOCK_TLS=OFF)");
    return NULL;
}

void fairlock__tls_free(fairlock__tls *tls) { (void)tls; }

int fairlock__tls_handshake(fairlock__tls *tls, fairlock__error *err) {
    (void)tls, (void)err;
    return -1;
}

int fairlock__tls_encrypt(fairlock__tls *tls, const char *buf, size_t len,
                          fairlock__error *err) {
    (void)tls, (void)buf, (void)len, (void)err;
    return -1;
}

size_t fairlock__tls_pending(fairlock__tls *tls, const char **data) {
    (void)tls;
    *data = NULL;
    return 0;
}

void fairlock__tls_sent(fairlock__tls *tls, size_t n) { (void)tls, (void)n; }

int fairlock__tls_received(fairlock__tls *tls, const char *buf, size_t len) {
    (void)tls, (void)buf, (void)len;
    return -1;
}

long fairlock__tls_decrypt(fairlock__tls *tls, char *buf, size_t cap,
                           fairlock__error *err) {
    (void)tls, (void)buf, (void)cap, (void)err;
    return -1;
}

#endif
