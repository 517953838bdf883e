/* diagnose.c -- turns the error replies that mean "misconfigured" into a
 * sentence that says what to change.  Pure: no I/O, fuzzable. */
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
