/* conn.c -- the handle's Redis connection: lazy connect, AUTH and SELECT,
 * per-command timeouts, and scripts run by EVALSHA with a NOSCRIPT fallback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_URL "redis://127.0.0.1:6379/0"

static struct timeval ms_to_timeval(int64_t ms) {
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

int fairlock__conn_init(fairlock *lock, struct redisContext *borrowed,
                        const char *url, int64_t io_timeout_ms) {
    fairlock__conn *conn = &lock->conn;
    memset(conn, 0, sizeof *conn);
    conn->io_timeout_ms = io_timeout_ms;
    if (borrowed != NULL) {
        conn->ctx = borrowed;
        conn->borrowed = 1;
        return FAIRLOCK_OK;
    }
    const char *source = "the url option";
    if (url == NULL) {
        source = "$FAIRLOCK_URL";
        url = getenv("FAIRLOCK_URL");
    }
    if (url == NULL || *url == '\0') {
        source = "$REDIS_URL";
        url = getenv("REDIS_URL");
    }
    if (url == NULL || *url == '\0') {
        source = "the default URL";
        url = DEFAULT_URL;
    }
    char why[160];
    int rc = fairlock__url_parse(url, &conn->url, why, sizeof why);
    if (rc != FAIRLOCK_OK)
        return fairlock__fail(lock, rc, "%s: %s", source, why);
    return FAIRLOCK_OK;
}

void fairlock__conn_close(fairlock__conn *conn) {
    if (conn->owned && conn->ctx != NULL)
        redisFree(conn->ctx);
    conn->ctx = NULL;
    conn->owned = 0;
    fairlock__url_clear(&conn->url);
}

static void drop_owned(fairlock__conn *conn) {
    if (conn->owned && conn->ctx != NULL)
        redisFree(conn->ctx);
    if (conn->owned)
        conn->ctx = NULL;
}

static const char *where(const fairlock__url *url, char *buf, size_t len) {
    if (url->kind == FAIRLOCK__URL_UNIX)
        snprintf(buf, len, "unix socket %s", url->path);
    else
        snprintf(buf, len, "%s:%d", url->host, url->port);
    return buf;
}

/* Runs a setup command on a fresh connection; the reply text of a failure
 * goes into the message (Redis never echoes the password back). */
static int setup_command(fairlock *lock, const char *what, int argc,
                         const char **argv) {
    redisReply *r = redisCommandArgv(lock->conn.ctx, argc, argv, NULL);
    int rc = FAIRLOCK_OK;
    if (r == NULL)
        rc = fairlock__fail(lock, FAIRLOCK_REDIS, "%s failed: %s", what,
                            lock->conn.ctx->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        rc = fairlock__fail(lock, FAIRLOCK_REDIS, "%s failed: %s", what,
                            r->str);
    freeReplyObject(r);
    return rc;
}

static int connect_owned(fairlock *lock) {
    fairlock__conn *conn = &lock->conn;
    const fairlock__url *url = &conn->url;
    struct timeval tv = ms_to_timeval(conn->io_timeout_ms);
    char place[300];
    if (url->kind == FAIRLOCK__URL_UNIX)
        conn->ctx = redisConnectUnixWithTimeout(url->path, tv);
    else
        conn->ctx = redisConnectWithTimeout(url->host, url->port, tv);
    conn->owned = 1;
    conn->pid = getpid();
    if (conn->ctx == NULL)
        return fairlock__fail(lock, FAIRLOCK_NOMEM,
                              "cannot allocate a Redis connection");
    if (conn->ctx->err) {
        fairlock__fail(lock, FAIRLOCK_REDIS, "cannot connect to %s: %s",
                       where(url, place, sizeof place), conn->ctx->errstr);
        drop_owned(conn);
        return FAIRLOCK_REDIS;
    }
    redisSetTimeout(conn->ctx, tv);
    int rc = FAIRLOCK_OK;
    if (url->password != NULL) {
        const char *argv[3] = {"AUTH", url->user ? url->user : url->password,
                               url->password};
        rc = setup_command(lock, "authentication", url->user ? 3 : 2, argv);
    }
    if (rc == FAIRLOCK_OK && url->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", url->db);
        const char *argv[2] = {"SELECT", db};
        rc = setup_command(lock, "SELECT of the database", 2, argv);
    }
    if (rc != FAIRLOCK_OK)
        drop_owned(conn);
    return rc;
}

int fairlock__conn_ready(fairlock *lock) {
    fairlock__conn *conn = &lock->conn;
    if (!lock->usable)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the handle was not created successfully");
    if (conn->borrowed) {
        if (conn->ctx->err)
            return fairlock__fail(lock, FAIRLOCK_REDIS,
                                  "the borrowed Redis connection has failed: "
                                  "%s",
                                  conn->ctx->errstr);
        return FAIRLOCK_OK;
    }
    /* A forked child must not talk on its parent's socket. */
    if (conn->ctx != NULL && conn->pid != getpid())
        drop_owned(conn);
    if (conn->ctx != NULL)
        return FAIRLOCK_OK;
    return connect_owned(lock);
}

redisReply *fairlock__conn_command(fairlock *lock, int argc, const char **argv,
                                   const size_t *lens, int64_t block_ms) {
    redisContext *ctx = lock->conn.ctx;
    struct timeval saved = {0, 0};
    socklen_t saved_len = sizeof saved;
    int restore = 0;
    if (block_ms > 0) {
        /* The caller's own timeout of a borrowed context is put back. */
        restore = getsockopt(ctx->fd, SOL_SOCKET, SO_RCVTIMEO, &saved,
                             &saved_len) == 0;
        redisSetTimeout(ctx,
                        ms_to_timeval(lock->conn.io_timeout_ms + block_ms));
    }
    redisReply *reply = redisCommandArgv(ctx, argc, argv, lens);
    if (reply == NULL) {
        fairlock__fail(lock, FAIRLOCK_REDIS, "Redis I/O error: %s",
                       ctx->errstr[0] ? ctx->errstr : "connection lost");
        drop_owned(&lock->conn);
        return NULL;
    }
    if (restore)
        redisSetTimeout(ctx, saved);
    return reply;
}

int fairlock__conn_eval(fairlock *lock, const fairlock__script *script,
                        int argc, const char **argv, redisReply **out) {
    enum { MAX_ARGS = 3 + FAIRLOCK__KEY_COUNT + 8 };
    const char *cmd[MAX_ARGS];
    size_t lens[MAX_ARGS];
    int n = 0;
    char nkeys[8];
    snprintf(nkeys, sizeof nkeys, "%d", FAIRLOCK__KEY_COUNT);
    if (argc > 8)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "too many arguments");
    cmd[n] = "EVALSHA", lens[n++] = 7;
    cmd[n] = script->sha1, lens[n++] = 40;
    cmd[n] = nkeys, lens[n++] = strlen(nkeys);
    for (int i = 0; i < FAIRLOCK__KEY_COUNT; i++)
        cmd[n] = lock->keys[i], lens[n++] = lock->key_lens[i];
    for (int i = 0; i < argc; i++)
        cmd[n] = argv[i], lens[n++] = strlen(argv[i]);

    redisReply *reply = fairlock__conn_command(lock, n, cmd, lens, 0);
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* First use on this server, or its script cache was flushed. EVAL
         * runs the script and caches it for the next EVALSHA. */
        freeReplyObject(reply);
        cmd[0] = "EVAL", lens[0] = 4;
        cmd[1] = script->body, lens[1] = strlen(script->body);
        reply = fairlock__conn_command(lock, n, cmd, lens, 0);
    }
    if (reply == NULL)
        return FAIRLOCK_REDIS;
    if (reply->type == REDIS_REPLY_ERROR) {
        fairlock__fail(lock, FAIRLOCK_REDIS, "script %s failed: %s",
                       script->name, reply->str);
        freeReplyObject(reply);
        return FAIRLOCK_REDIS;
    }
    *out = reply;
    return FAIRLOCK_OK;
}
