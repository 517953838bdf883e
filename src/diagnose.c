/* diagnose.c -- turns the error replies that mean "misconfigured" into a
 * sentence that says what to change.  Pure: no I/O, fuzzable. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static int begins(const char *text, const char *prefix) {
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

static int mentions(const char *text, const char *needle) {
    size_t n = strlen(needle);
    for (; *text; text++)
        if (strncasecmp(text, needle, n) == 0)
            return 1;
    return 0;
}

const char *fairlock__diagnose(const char *reply, fairlock__url_kind kind) {
    if (reply == NULL)
        return NULL;
    /* Redis 7 drops an unauthenticated client that sends more than a few
     * arguments (as every script call does) with a protocol error instead
     * of NOAUTH: both mean the same. */
    if (begins(reply, "NOAUTH") ||
        mentions(reply, "Protocol error: unauthenticated"))
        return "the server requires a password (NOAUTH): give one, e.g. in "
               "the URL as redis://[USER]:PASSWORD@HOST:PORT";
    if (begins(reply, "WRONGPASS"))
        return "wrong user name or password, or the user is disabled "
               "(WRONGPASS)";
    if (mentions(reply, "without any password configured"))
        return "a password was given but the server requires none: remove "
               "it";
    if (mentions(reply, "DB index is out of range"))
        return "the database number in the URL does not exist on the server "
               "(see its 'databases' setting)";
    if (begins(reply, "READONLY") && kind != FAIRLOCK__URL_SENTINEL)
        return "the server is a read-only replica: give the master's "
               "address, or a redis+sentinel:// URL that finds it";
    if (begins(reply, "MOVED ") && kind != FAIRLOCK__URL_CLUSTER)
        return "the server is a Redis Cluster node: use a redis+cluster:// "
               "URL";
    if (mentions(reply, "cluster support disabled"))
        return "the server is not a Redis Cluster node: use redis:// or "
               "redis+sentinel://, not redis+cluster://";
    if (mentions(reply, "unknown command") && mentions(reply, "SENTINEL"))
        return "the server is not a Redis Sentinel: a redis+sentinel:// URL "
               "lists sentinels, not data servers";
    return NULL;
}

int fairlock__error_reply(fairlock__error *err, fairlock__url_kind kind,
                          const char *what, const char *reply) {
    const char *why = fairlock__diagnose(reply, kind);
    if (why != NULL)
        return fairlock__error_set(err, FAIRLOCK_REDIS,
                                   "%s failed: %s (server: %.100s)", what, why,
                                   reply);
    return fairlock__error_set(err, FAIRLOCK_REDIS, "%s failed: %s", what,
                               reply);
}

/* Whether an error reply says the ACL user lacks a permission: NOPERM at
 * the top level, and inside a script, where Redis 6 and 7.0 answer ERR,
 * the words of its ACL check. */
static int denied(const char *reply) {
    return strncmp(reply, "NOPERM", 6) == 0 ||
           strstr(reply, "can't run this command") != NULL ||
           strstr(reply, "can't access at least one of the keys") != NULL ||
           strstr(reply, "no permissions") != NULL;
}

/* Missing scripting and missing permissions are the server's setup, not
 * the lock's state, and Redis's own words do not always say which command
 * or key: the message does, and never quotes the arguments (a key could
 * be long; no password is among them, but a message should not depend on
 * that). */
int fairlock__error_script(fairlock__error *err, fairlock__url_kind kind,
                           const char *script, const char *key, size_t key_len,
                           const char *sent, const char *reply) {
    int shown = key_len > 80 ? 80 : (int)key_len;
    if (strstr(reply, "unknown command") != NULL)
        return fairlock__error_set(
            err, FAIRLOCK_REDIS,
            "fairlock needs Lua scripting (EVALSHA and EVAL), "
            "but this server does not know %s: it is "
            "disabled or renamed (rename-command), or the "
            "server is a Redis Sentinel (use "
            "redis+sentinel://)",
            sent);
    if (!denied(reply)) {
        char what[64];
        snprintf(what, sizeof what, "script %s", script);
        return fairlock__error_reply(err, kind, what, reply);
    }
    if (strncmp(reply, "NOPERM", 6) == 0 && strstr(reply, "'eval"))
        return fairlock__error_set(
            err, FAIRLOCK_REDIS,
            "no permission to run %s: fairlock needs Lua "
            "scripting (EVALSHA and EVAL; see docs/acl.md): "
            "%.100s",
            sent, reply);
    if (strstr(reply, "key") != NULL)
        return fairlock__error_set(err, FAIRLOCK_REDIS,
                                   "no permission to access the lock's keys "
                                   "('%.*s' and '%.*s:*') in script %s: %.100s",
                                   shown, key, shown, key, script, reply);
    return fairlock__error_set(
        err, FAIRLOCK_REDIS,
        "no permission to run a command of script %s "
        "(docs/acl.md lists those fairlock needs): %.100s",
        script, reply);
}

const char *fairlock__diagnose_first_bytes(const char *buf, size_t len,
                                           int tls) {
    if (len == 0)
        return NULL;
    /* A TLS record starts with its content type: 0x15 an alert, 0x16 a
     * handshake; a RESP reply with one of its type bytes. */
    if (!tls && (buf[0] == 0x15 || buf[0] == 0x16))
        return "the server speaks TLS on this port: use rediss://";
    if (tls && strchr("+-:$*_%>", buf[0]) != NULL)
        return "the server answered in plain text: it does not speak TLS on "
               "this port (use redis://, or the server's tls-port)";
    return NULL;
}
