/* test_url.c -- URL parsing, without a server. */
#include "check.h"
#include "internal.h"

static fairlock__url parse_ok(const char *text) {
    fairlock__url url;
    char err[160];
    int rc = fairlock__url_parse(text, &url, err, sizeof err);
    if (rc != FAIRLOCK_OK)
        fprintf(stderr, "%s: %s\n", text, err);
    CHECK_INT(rc, ==, FAIRLOCK_OK);
    return url;
}

static void parse_bad(const char *text, const char *expected_words) {
    fairlock__url url;
    char err[160];
    CHECK_INT(fairlock__url_parse(text, &url, err, sizeof err), ==,
              FAIRLOCK_INVALID);
    CHECK(strstr(err, expected_words) != NULL);
    /* Never echo credentials. */
    CHECK(strstr(err, "hunter2") == NULL);
    CHECK(url.host == NULL && url.password == NULL && url.path == NULL);
}

static void tcp_forms(void) {
    fairlock__url u = parse_ok("redis://127.0.0.1:6379/0");
    CHECK_INT(u.kind, ==, FAIRLOCK__URL_TCP);
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_INT(u.port, ==, 6379);
    CHECK_INT(u.db, ==, 0);
    CHECK(u.user == NULL && u.password == NULL);
    fairlock__url_clear(&u);

    u = parse_ok("redis://cache.example:7000/12");
    CHECK_STR(u.host, "cache.example");
    CHECK_INT(u.port, ==, 7000);
    CHECK_INT(u.db, ==, 12);
    fairlock__url_clear(&u);

    u = parse_ok("redis://localhost");
    CHECK_STR(u.host, "localhost");
    CHECK_INT(u.port, ==, 6379);
    fairlock__url_clear(&u);

    u = parse_ok("redis://");
    CHECK_STR(u.host, "127.0.0.1");
    fairlock__url_clear(&u);

    u = parse_ok("redis://[::1]:6380/3");
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, ==, 6380);
    CHECK_INT(u.db, ==, 3);
    fairlock__url_clear(&u);

    u = parse_ok("redis://host/");
    CHECK_INT(u.db, ==, 0);
    fairlock__url_clear(&u);
}

static void credentials(void) {
    fairlock__url u = parse_ok("redis://alice:hunter2@h:1/2");
    CHECK_STR(u.user, "alice");
    CHECK_STR(u.password, "hunter2");
    fairlock__url_clear(&u);

    u = parse_ok("redis://:hunter2@h");
    CHECK(u.user == NULL);
    CHECK_STR(u.password, "hunter2");
    fairlock__url_clear(&u);

    u = parse_ok("redis://hunter2@h");
    CHECK_STR(u.password, "hunter2");
    fairlock__url_clear(&u);

    /* Percent-escapes, and an '@' inside the password. */
    u = parse_ok("redis://bob:p%40ss%3Aw@rd@h:6379");
    CHECK_STR(u.user, "bob");
    CHECK_STR(u.password, "p@ss:w@rd");
    CHECK_STR(u.host, "h");
    fairlock__url_clear(&u);

    parse_bad("redis://bob:hunter2%zz@h", "percent-escape");
    parse_bad("redis://bob:hunter2%00@h", "percent-escape");
    parse_bad("redis://bob:hunter2%4@h", "percent-escape");
}

static void unix_forms(void) {
    fairlock__url u = parse_ok("unix:///run/redis.sock");
    CHECK_INT(u.kind, ==, FAIRLOCK__URL_UNIX);
    CHECK_STR(u.path, "/run/redis.sock");
    CHECK_INT(u.db, ==, 0);
    fairlock__url_clear(&u);

    u = parse_ok("unix:///tmp/r.sock?db=5");
    CHECK_STR(u.path, "/tmp/r.sock");
    CHECK_INT(u.db, ==, 5);
    fairlock__url_clear(&u);

    u = parse_ok("unix://:hunter2@/tmp/r.sock");
    CHECK_STR(u.password, "hunter2");
    CHECK_STR(u.path, "/tmp/r.sock");
    fairlock__url_clear(&u);
}

static void sentinel_and_cluster(void) {
    fairlock__url u = parse_ok(
        "redis+sentinel://:hunter2@s1:26380,[::1],s3/mymaster/4");
    CHECK_INT(u.kind, ==, FAIRLOCK__URL_SENTINEL);
    CHECK_INT(u.node_count, ==, 3);
    CHECK_STR(u.nodes[0].host, "s1");
    CHECK_INT(u.nodes[0].port, ==, 26380);
    CHECK_STR(u.nodes[1].host, "::1");
    CHECK_INT(u.nodes[1].port, ==, 26379);
    CHECK_STR(u.nodes[2].host, "s3");
    CHECK_STR(u.master, "mymaster");
    CHECK_INT(u.db, ==, 4);
    CHECK_STR(u.password, "hunter2");
    fairlock__url_clear(&u);

    u = parse_ok("redis+sentinel://s1/m");
    CHECK_STR(u.master, "m");
    CHECK_INT(u.db, ==, 0);
    fairlock__url_clear(&u);

    u = parse_ok("redis+cluster://a:7000,b:7001");
    CHECK_INT(u.kind, ==, FAIRLOCK__URL_CLUSTER);
    CHECK_INT(u.node_count, ==, 2);
    CHECK_STR(u.nodes[1].host, "b");
    CHECK_INT(u.nodes[1].port, ==, 7001);
    fairlock__url_clear(&u);

    u = parse_ok("redis+cluster://a");
    CHECK_INT(u.nodes[0].port, ==, 6379);
    fairlock__url_clear(&u);

    parse_bad("redis+sentinel://s1", "master name");
    parse_bad("redis+sentinel://s1/", "master name");
    parse_bad("redis+sentinel://s1/m/x", "database");
    parse_bad("redis+sentinel://s1,,s2/m", "empty host");
    parse_bad("redis+cluster://a:7000/3", "only database 0");
    parse_bad("redis+cluster://a:0", "port");
    parse_bad("redis+cluster://a,", "empty host");
    parse_bad("redis://a,b", "invalid character");
}

static void tls_forms(void) {
#if FAIRLOCK_HAVE_TLS
    fairlock__url u = parse_ok("rediss://:hunter2@h:6380/2");
    CHECK_INT(u.kind, ==, FAIRLOCK__URL_TCP);
    CHECK(u.tls.enabled && u.tls.verify && u.tls.check_host);
    CHECK_STR(u.host, "h");
    CHECK_INT(u.port, ==, 6380);
    CHECK_INT(u.db, ==, 2);
    CHECK(u.tls.ca_file == NULL && u.tls.server_name == NULL);
    fairlock__url_clear(&u);
    u = parse_ok("rediss://h/1?ssl_ca_certs=/a%20b/ca.pem&ssl_ca_path=/d&"
                 "ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_cert_reqs=none&"
                 "ssl_check_hostname=False&ssl_server_hostname=redis.test");
    CHECK_INT(u.db, ==, 1);
    CHECK_STR(u.tls.ca_file, "/a b/ca.pem");
    CHECK_STR(u.tls.ca_path, "/d");
    CHECK_STR(u.tls.cert_file, "/c.pem");
    CHECK_STR(u.tls.key_file, "/k.pem");
    CHECK_STR(u.tls.server_name, "redis.test");
    CHECK(!u.tls.verify && !u.tls.check_host);
    fairlock__url copy;
    CHECK_INT(fairlock__url_copy(&copy, &u), ==, FAIRLOCK_OK);
    CHECK_STR(copy.tls.key_file, "/k.pem");
    CHECK(copy.tls.enabled && !copy.tls.verify);
    fairlock__url_clear(&copy);
    fairlock__url_clear(&u);
    u = parse_ok("rediss+sentinel://s1,s2:26380/m?ssl_cert_reqs=required");
    CHECK_INT(u.kind, ==, FAIRLOCK__URL_SENTINEL);
    CHECK_STR(u.master, "m");
    CHECK(u.tls.enabled && u.tls.verify);
    fairlock__url_clear(&u);
    /* A path in the query is not the master name's end (it was). */
    u = parse_ok("rediss+sentinel://s1/m/2?ssl_ca_certs=/etc/ca.pem");
    CHECK_STR(u.master, "m");
    CHECK_INT(u.db, ==, 2);
    CHECK_STR(u.tls.ca_file, "/etc/ca.pem");
    fairlock__url_clear(&u);
    u = parse_ok("rediss+sentinel://s1/m?ssl_ca_certs=/etc/ca.pem");
    CHECK_STR(u.master, "m");
    CHECK_INT(u.db, ==, 0);
    fairlock__url_clear(&u);
    u = parse_ok("rediss+cluster://a:7000,b:7001");
    CHECK_INT(u.kind, ==, FAIRLOCK__URL_CLUSTER);
    CHECK_INT(u.node_count, ==, 2);
    CHECK(u.tls.enabled);
    fairlock__url_clear(&u);
    parse_bad("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs");
    parse_bad("rediss://h?ssl_check_hostname=perhaps", "ssl_check_hostname");
    parse_bad("rediss://h?foo=1", "unknown query parameter 'foo'");
    parse_bad("rediss://h?ssl_ca_certs", "has no value");
    parse_bad("rediss://:hunter2@h?ssl_ca_certs=%zz", "percent-escape");
#endif
}

static void malformed(void) {
    parse_bad("", "empty");
    parse_bad("http://h", "must start with");
#if !FAIRLOCK_HAVE_TLS
    parse_bad("rediss://h", "FAIRLOCK_TLS=OFF");
#endif
    parse_bad("redis://h:0", "port");
    parse_bad("redis://h:65536", "port");
    parse_bad("redis://h:12x", "port");
    parse_bad("redis://h:", "port");
    parse_bad("redis://h/-1", "database");
    parse_bad("redis://h/abc", "database");
    parse_bad("redis://h/99999999999", "database");
    parse_bad("redis://h?db=1", "query");
    parse_bad("redis://[::1", "unterminated");
    parse_bad("redis://[::1]x", "junk");
    parse_bad("redis://ho st", "host");
    parse_bad("redis://h\n", "control");
    parse_bad("unix://", "absolute");
    parse_bad("unix:///", "empty socket path");
    parse_bad("unix://host/tmp/x", "no host");
    parse_bad("unix:///tmp/x?db=", "db=N");
    parse_bad("unix:///tmp/x?foo=1", "db=N");
    parse_bad("redis://alice:hunter2@h:99999", "port");
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(tcp_forms);
    RUN_TEST(credentials);
    RUN_TEST(unix_forms);
    RUN_TEST(sentinel_and_cluster);
    RUN_TEST(tls_forms);
    RUN_TEST(malformed);
    return check_done();
}
