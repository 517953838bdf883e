/* test_tls.c -- TLS against the tls fixture's servers: mutual TLS by URL
 * and by options, and each way a TLS connection fails, with the message
 * that names the cause and no secret in it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

#define ENV "FAIRLOCK_TEST_ENV"

static char dir[512];
static int port, expired_port;

static void load(void) {
    snprintf(dir, sizeof dir, "%s",
             test_fixture_value(ENV, "FAIRLOCK_TEST_TLS_DIR"));
    port = atoi(test_fixture_value(ENV, "FAIRLOCK_TEST_PORT"));
    expired_port = atoi(test_fixture_value(ENV, "FAIRLOCK_TEST_EXPIRED_PORT"));
}

/* A path in the fixture's directory (one of eight rotating buffers). */
static const char *file(const char *name) {
    static char paths[8][600];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

/* Options for a rediss:// URL of host:p with the fixture's client
 * certificate and CA (change them before use). */
static void tls_options(fairlock_options *opts, char *url, size_t len,
                        const char *host, int p) {
    fairlock_options_init(opts);
    snprintf(url, len, "rediss://%s:%d", host, p);
    opts->name = test_name("tls");
    opts->url = url;
    opts->timeout_ms = 5000;
    opts->io_timeout_ms = 2000;
    opts->tls_ca_file = file("ca.crt");
    opts->tls_cert_file = file("client.crt");
    opts->tls_key_file = file("client.key");
}

static void round_trip(fairlock_options *opts) {
    fairlock *lock = test_lock_opts(opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);
}

/* The acquire fails with FAIRLOCK_REDIS and a message with `cause`. */
static void fails_with(fairlock_options *opts, const char *cause) {
    fairlock *lock = test_lock_opts(opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    if (strstr(fairlock_errmsg(lock), cause) == NULL) {
        fprintf(stderr, "message without '%s': %s\n", cause,
                fairlock_errmsg(lock));
        CHECK(0);
    }
    CHECK(strstr(fairlock_errmsg(lock), "s3cret") == NULL);
    fairlock_free(lock);
}

static void mutual_tls(void) {
    char url[1200];
    fairlock_options opts;
    /* By options, to the address and to the name in the certificate. */
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    round_trip(&opts);
    tls_options(&opts, url, sizeof url, "localhost", port);
    round_trip(&opts);
    /* By URL parameters alone, with a CA directory, and redis-py's
     * spelling of the switches. */
    tls_options(&opts, url, sizeof url, "localhost", port);
    opts.tls_ca_file = opts.tls_cert_file = opts.tls_key_file = NULL;
    snprintf(url, sizeof url,
             "rediss://localhost:%d/0?ssl_ca_path=%s&ssl_certfile=%s&"
             "ssl_keyfile=%s&ssl_cert_reqs=required&ssl_check_hostname=true",
             port, file("cadir"), file("client.crt"), file("client.key"));
    round_trip(&opts);
    /* `tls` on a redis:// URL. */
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    opts.tls = 1;
    round_trip(&opts);
}

static void client_certificate_required(void) {
    char url[1200];
    fairlock_options opts;
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    opts.tls_cert_file = opts.tls_key_file = NULL;
    fails_with(&opts, "client certificate");
    /* One the server's CA did not sign. */
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    opts.tls_cert_file = file("other-client.crt");
    opts.tls_key_file = file("other-client.key");
    fails_with(&opts, "client certificate");
}

static void wrong_ca(void) {
    char url[1200];
    fairlock_options opts;
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    opts.tls_ca_file = file("other-ca.crt");
    fails_with(&opts, "not signed by a CA this client trusts");
    /* The explicit opt-out. */
    opts.tls_insecure = 1;
    round_trip(&opts);
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    opts.tls_ca_file = file("other-ca.crt");
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d?ssl_cert_reqs=none", port);
    round_trip(&opts);
    /* A CA file that is not there. */
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    opts.tls_ca_file = file("missing.crt");
    fails_with(&opts, "missing.crt");
}

static void expired_certificate(void) {
    char url[1200];
    fairlock_options opts;
    tls_options(&opts, url, sizeof url, "127.0.0.1", expired_port);
    fails_with(&opts, "certificate has expired");
}

static void name_mismatch(void) {
    char url[1200];
    fairlock_options opts;
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    opts.tls_server_name = "not-the-server.test";
    fails_with(&opts, "certificate is not for 'not-the-server.test'");
    /* Without the name check, the chain alone. */
    snprintf(url, sizeof url,
             "rediss://:s3cret@127.0.0.1:%d?ssl_check_hostname=false", port);
    /* The server has no password: AUTH's answer, not TLS, fails it. */
    fails_with(&opts, "authentication");
}

static void plain_client_to_tls_port(void) {
    char url[1200];
    fairlock_options opts;
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    opts.tls_ca_file = opts.tls_cert_file = opts.tls_key_file = NULL;
    snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%d", port);
    fails_with(&opts, "rediss://");
}

static void tls_client_to_plain_port(void) {
    test_server plain;
    memset(&plain, 0, sizeof plain);
    test_server_start(&plain, 1, NULL);
    char url[1200];
    fairlock_options opts;
    tls_options(&opts, url, sizeof url, "127.0.0.1", plain.port);
    fails_with(&opts, "does not speak TLS");
    test_server_remove(&plain);
}

/* Options that need a URL, and TLS on a unix socket. */
static void refused_options(void) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "fltest:tls-options";
    opts.url = "unix:///tmp/x.sock";
    opts.tls = 1;
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_INVALID);
    CHECK(strstr(fairlock_errmsg(lock), "unix://") != NULL);
    fairlock_free(lock);
    opts.url = "rediss://127.0.0.1:1";
    opts.tls_cert_file = "/nonexistent/cert.pem";
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_INVALID);
    CHECK(strstr(fairlock_errmsg(lock), "needs its key") != NULL);
    fairlock_free(lock);
}

/* The CA file is read when the handle is made, not by each connection:
 * with it gone, the handle still connects, and so does a forked child,
 * which opens a connection of its own.  (Before contexts were cached per
 * handle, each connection read it and failed.) */
static void ca_file_read_once(void) {
    char copy[700], cmd[1500];
    snprintf(copy, sizeof copy, "%s/ca-once-%d.crt", dir, (int)getpid());
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", file("ca.crt"), copy);
    CHECK(system(cmd) == 0);
    char url[1200];
    fairlock_options opts;
    tls_options(&opts, url, sizeof url, "127.0.0.1", port);
    opts.tls_ca_file = copy;
    fairlock *lock = test_lock_opts(&opts);
    CHECK(unlink(copy) == 0);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    pid_t child = test_fork();
    if (child == 0) {
        int ok = fairlock_acquire(lock) == FAIRLOCK_OK &&
                 fairlock_release(lock) == FAIRLOCK_OK;
        if (!ok)
            fprintf(stderr, "child: %s\n", fairlock_errmsg(lock));
        _exit(ok ? 0 : 1);
    }
    CHECK_INT(test_wait_child(child, 0), ==, 0);
    fairlock_free(lock);
    /* A new handle reads it again, and finds it gone. */
    fails_with(&opts, "cannot load the CA certificates");
}

int main(void) {
    load();
    RUN_TEST(mutual_tls);
    RUN_TEST(client_certificate_required);
    RUN_TEST(wrong_ca);
    RUN_TEST(expired_certificate);
    RUN_TEST(name_mismatch);
    RUN_TEST(plain_client_to_tls_port);
    RUN_TEST(tls_client_to_plain_port);
    RUN_TEST(refused_options);
    RUN_TEST(ca_file_read_once);
    return check_done();
}
