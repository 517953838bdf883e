/* conn.c -- a Redis connection: lazy connect, AUTH and SELECT, per-command
 * timeouts, and scripts run by EVALSHA with a NOSCRIPT fallback.
 *
 * The handle has one connection and the renewal thread another; each is
 * used by one thread only, and reports into its own fairlock__error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "internal.h"

static struct timeval ms_to_timeval(int64_t ms) {
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static void drop_owned(fairlock__conn *conn) {
    if (conn->owned && conn->ctx != NULL) {
        redisFree(conn->ctx);
        conn->ctx = NULL;
    }
}

void fairlock__conn_close(fairlock__conn *conn) {
    drop_owned(conn);
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
static int setup_command(fairlock__conn *conn, fairlock__error *err,
                         const char *what, int argc, const char **argv) {
    redisReply *r = redisCommandArgv(conn->ctx, argc, argv, NULL);
    int rc = FAIRLOCK_OK;
    if (r == NULL)
        rc = fairlock__error_set(err, FAIRLOCK_REDIS, "%s failed: %s", what,
                                 conn->ctx->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        rc = fairlock__error_set(err, FAIRLOCK_REDIS, "%s failed: %s", what,
                                 r->str);
    freeReplyObject(r);
    return rc;
}

static int connect_owned(fairlock__conn *conn, fairlock__error *err) {
    const fairlock__url *url = conn->url;
    struct timeval tv = ms_to_timeval(conn->io_timeout_ms);
    char place[300];
    if (url->kind == FAIRLOCK__URL_UNIX)
        conn->ctx = redisConnectUnixWithTimeout(url->path, tv);
    else
        conn->ctx = redisConnectWithTimeout(url->host, url->port, tv);
    conn->owned = 1;
    conn->pid = getpid();
    if (conn->ctx == NULL)
        return fairlock__error_set(err, FAIRLOCK_NOMEM,
                                   "cannot allocate a Redis connection");
    if (conn->ctx->err) {
        fairlock__error_set(err, FAIRLOCK_REDIS, "cannot connect to %s: %s",
                            where(url, place, sizeof place),
                            conn->ctx->errstr);
        drop_owned(conn);
        return FAIRLOCK_REDIS;
    }
    redisSetTimeout(conn->ctx, tv);
    int rc = FAIRLOCK_OK;
    if (url->password != NULL) {
        const char *argv[3] = {"AUTH", url->user ? url->user : url->password,
                               url->password};
        rc = setup_command(conn, err, "authentication", url->user ? 3 : 2,
                           argv);
    }
    if (rc == FAIRLOCK_OK && url->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", url->db);
        const char *argv[2] = {"SELECT", db};
        rc = setup_command(conn, err, "SELECT of the database", 2, argv);
    }
    if (rc != FAIRLOCK_OK)
        drop_owned(conn);
    return rc;
}

int fairlock__conn_ready(fairlock__conn *conn, fairlock__error *err) {
    if (conn->borrowed) {
        if (conn->ctx->err)
            return fairlock__error_set(
                err, FAIRLOCK_REDIS,
                "the borrowed Redis connection has failed: %s",
                conn->ctx->errstr);
        return FAIRLOCK_OK;
    }
    /* A forked child must not talk on its parent's socket. */
    if (conn->ctx != NULL && conn->pid != getpid())
        drop_owned(conn);
    if (conn->ctx != NULL)
        return FAIRLOCK_OK;
    return connect_owned(conn, err);
}

redisReply *fairlock__conn_command(fairlock__conn *conn, fairlock__error *err,
                                   int argc, const char **argv,
                                   const size_t *lens, int64_t block_ms) {
    redisContext *ctx = conn->ctx;
    struct timeval saved = {0, 0};
    socklen_t saved_len = sizeof saved;
    int restore = 0;
    if (block_ms > 0) {
        /* The caller's own timeout of a borrowed context is put back. */
        restore = getsockopt(ctx->fd, SOL_SOCKET, SO_RCVTIMEO, &saved,
                             &saved_len) == 0;
        redisSetTimeout(ctx, ms_to_timeval(conn->io_timeout_ms + block_ms));
    }
    redisReply *reply = redisCommandArgv(ctx, argc, argv, lens);
    if (reply == NULL) {
        fairlock__error_set(err, FAIRLOCK_REDIS, "Redis I/O error: %s",
                            ctx->errstr[0] ? ctx->errstr : "connection lost");
        drop_owned(conn);
        return NULL;
    }
    if (restore)
        redisSetTimeout(ctx, saved);
    return reply;
}

int fairlock__conn_eval(fairlock__conn *conn, fairlock__error *err,
                        const fairlock__keys *keys,
                        const fairlock__script *script, int argc,
                        const char **argv, redisReply **out) {
    enum { MAX_EXTRA_ARGS = 8, MAX_ARGS = 3 + FAIRLOCK__KEY_COUNT + 8 };
    const char *cmd[MAX_ARGS];
    size_t lens[MAX_ARGS];
    int n = 0;
    char nkeys[8];
    if (argc > MAX_EXTRA_ARGS)
        return fairlock__error_set(err, FAIRLOCK_INVALID,
                                   "too many script arguments");
    snprintf(nkeys, sizeof nkeys, "%d", FAIRLOCK__KEY_COUNT);
    cmd[n] = "EVALSHA", lens[n++] = 7;
    cmd[n] = script->sha1, lens[n++] = 40;
    cmd[n] = nkeys, lens[n++] = strlen(nkeys);
    for (int i = 0; i < FAIRLOCK__KEY_COUNT; i++)
        cmd[n] = keys->names[i], lens[n++] = keys->lens[i];
    for (int i = 0; i < argc; i++)
        cmd[n] = argv[i], lens[n++] = strlen(argv[i]);

    redisReply *reply = fairlock__conn_command(conn, err, n, cmd, lens, 0);
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* First use on this server, or its script cache was flushed. EVAL
         * runs the script and caches it for the next EVALSHA. */
        freeReplyObject(reply);
        cmd[0] = "EVAL", lens[0] = 4;
        cmd[1] = script->body, lens[1] = strlen(script->body);
        reply = fairlock__conn_command(conn, err, n, cmd, lens, 0);
    }
    if (reply == NULL)
        return FAIRLOCK_REDIS;
    if (reply->type == REDIS_REPLY_ERROR) {
        fairlock__error_set(err, FAIRLOCK_REDIS, "script %s failed: %s",
                            script->name, reply->str);
        freeReplyObject(reply);
        return FAIRLOCK_REDIS;
    }
    *out = reply;
    return FAIRLOCK_OK;
}
