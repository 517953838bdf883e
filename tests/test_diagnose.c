/* test_diagnose.c -- error replies that mean "misconfigured" get a
 * sentence that says what to change; others are left as they are. */
#include "check.h"
#include "internal.h"

static void expect(const char *reply, fairlock__url_kind kind,
                   const char *needle) {
    const char *why = fairlock__diagnose(reply, kind);
    if (needle == NULL) {
        CHECK(why == NULL);
        return;
    }
    CHECK(why != NULL);
    CHECK(strstr(why, needle) != NULL);
}

static void misconfigurations(void) {
    expect("NOAUTH Authentication required.", FAIRLOCK__URL_TCP, "NOAUTH");
    expect("ERR Protocol error: unauthenticated multibulk length",
           FAIRLOCK__URL_UNIX, "requires a password");
    expect("WRONGPASS invalid username-password pair or user is disabled.",
           FAIRLOCK__URL_TCP, "wrong user name or password");
    expect("ERR AUTH <password> called without any password configured for "
           "the default user. Are you sure your configuration is correct?",
           FAIRLOCK__URL_TCP, "requires none");
    expect("ERR DB index is out of range", FAIRLOCK__URL_TCP, "database");
    expect("READONLY You can't write against a read only replica.",
           FAIRLOCK__URL_TCP, "read-only replica");
    expect("MOVED 3999 127.0.0.1:6381", FAIRLOCK__URL_TCP, "redis+cluster://");
    expect("ERR This instance has cluster support disabled",
           FAIRLOCK__URL_CLUSTER, "not a Redis Cluster node");
    expect("ERR unknown command 'SENTINEL', with args beginning with: ",
           FAIRLOCK__URL_SENTINEL, "not a Redis Sentinel");
}

static void not_misconfigurations(void) {
    /* Handled where they belong: a demoted master behind sentinels, a
     * redirect in a cluster. */
    expect("READONLY You can't write against a read only replica.",
           FAIRLOCK__URL_SENTINEL, NULL);
    expect("MOVED 3999 127.0.0.1:6381", FAIRLOCK__URL_CLUSTER, NULL);
    expect("ERR Error running script (call to f_abc): oops", FAIRLOCK__URL_TCP,
           NULL);
    expect("", FAIRLOCK__URL_TCP, NULL);
    expect(NULL, FAIRLOCK__URL_TCP, NULL);
}

static void message_keeps_the_reply(void) {
    fairlock__error err = {0, ""};
    CHECK_INT(fairlock__error_reply(&err, FAIRLOCK__URL_TCP, "script acquire",
                                    "NOAUTH Authentication required."),
              ==, FAIRLOCK_REDIS);
    CHECK(strncmp(err.msg, "script acquire failed: the server requires", 42) ==
          0);
    CHECK(strstr(err.msg, "(server: NOAUTH Authentication required.)") != NULL);
    fairlock__error_reply(&err, FAIRLOCK__URL_TCP, "WAIT", "ERR other");
    CHECK_STR(err.msg, "WAIT failed: ERR other");
}

static void tls_mismatch_in_first_bytes(void) {
    const char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02};
    const char *why = fairlock__diagnose_first_bytes(alert, sizeof alert, 0);
    CHECK(why != NULL && strstr(why, "rediss://") != NULL);
    CHECK(fairlock__diagnose_first_bytes(alert, sizeof alert, 1) == NULL);
    why = fairlock__diagnose_first_bytes("-ERR Protocol error", 19, 1);
    CHECK(why != NULL && strstr(why, "does not speak TLS") != NULL);
    CHECK(fairlock__diagnose_first_bytes("+OK\r\n", 5, 0) == NULL);
    CHECK(fairlock__diagnose_first_bytes("", 0, 1) == NULL);
}

/* A script's error replies: missing scripting and missing ACL permissions
 * named as such (the key is the lock's, never Redis's argument dump);
 * anything else diagnosed as any reply is. */
static void script_errors(void) {
    fairlock__error err = {0, ""};
    const char *key = "app:locks:deploy";
    CHECK_INT(fairlock__error_script(
                  &err, FAIRLOCK__URL_TCP, "acquire", key, strlen(key),
                  "EVALSHA", "ERR unknown command 'EVALSHA', with args"),
              ==, FAIRLOCK_REDIS);
    CHECK(strstr(err.msg, "fairlock needs Lua scripting") != NULL);
    fairlock__error_script(&err, FAIRLOCK__URL_TCP, "acquire", key, strlen(key),
                           "EVALSHA",
                           "NOPERM this user has no permissions to run the "
                           "'evalsha' command");
    CHECK(strstr(err.msg, "no permission to run EVALSHA") != NULL);
    fairlock__error_script(&err, FAIRLOCK__URL_TCP, "acquire", key, strlen(key),
                           "EVALSHA",
                           "ERR Error running script: The user executing the "
                           "script can't access at least one of the keys");
    CHECK(strstr(err.msg, "('app:locks:deploy' and 'app:locks:deploy:*')") !=
          NULL);
    fairlock__error_script(&err, FAIRLOCK__URL_TCP, "release", key, strlen(key),
                           "EVALSHA",
                           "ERR Error running script: The user executing the "
                           "script can't run this command or subcommand");
    CHECK(strstr(err.msg, "no permission to run a command of script "
                          "release") != NULL);
    fairlock__error_script(&err, FAIRLOCK__URL_UNIX, "acquire", key,
                           strlen(key), "EVALSHA",
                           "NOAUTH Authentication required.");
    CHECK(strncmp(err.msg, "script acquire failed: the server requires", 42) ==
          0);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(misconfigurations);
    RUN_TEST(not_misconfigurations);
    RUN_TEST(message_keeps_the_reply);
    RUN_TEST(script_errors);
    RUN_TEST(tls_mismatch_in_first_bytes);
    return check_done();
}
