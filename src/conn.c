/* conn.c -- a Redis connection: lazy connect, AUTH and SELECT, per-command
 * timeouts, and scripts run by EVALSHA with a NOSCRIPT fallback.
 *
 * The handle has one connection and the renewal thread another; each is
 * used by one thread only, and reports into its own fairlock__error.
 * Connections the library makes run on the engine (engine.c) with a
 * deadline per command; a borrowed hiredis context keeps hiredis's own
 * blocking I/O, as its owner set it up. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "engine.h"
#include "internal.h"

static struct timeval ms_to_timeval(int64_t ms) {
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static void drop_owned(fairlock__conn *conn) {
    if (conn->eng != NULL) {
        fairlock__engine_free(conn->eng);
        conn->eng = NULL;
    }
}

void fairlock__conn_close(fairlock__conn *conn) {
    drop_owned(conn);
    conn->ctx = NULL;
}

int fairlock__conn_alive(const fairlock__conn *conn) {
    if (conn->borrowed)
        return conn->ctx != NULL && !conn->ctx->err;
    return conn->eng != NULL &&
           fairlock__engine_get_state(conn->eng) != FAIRLOCK__ENGINE_FAILED;
}

/* One command on an engine, within the I/O timeout (and block_ms more).
 * NULL with the engine FAILED. */
static redisReply *engine_command(fairlock__engine *eng, int64_t timeout_ms,
                                  int argc, const char **argv,
                                  const size_t *lens) {
    if (fairlock__engine_queue(eng, argc, argv, lens) != 0)
        return NULL;
    return fairlock__engine_wait_reply(eng, fairlock__now_ms() + timeout_ms);
}

/* Runs a setup command on a server of the given kind; the reply text of a
 * failure goes into the message (Redis never echoes the password back),
 * after what it shows is misconfigured.  *reply_out, when given, receives
 * a successful reply. */
static int setup_command(fairlock__engine *eng, const fairlock__conn *conn,
                         fairlock__url_kind kind, fairlock__error *err,
                         const char *what, int argc, const char **argv,
                         redisReply **reply_out) {
    redisReply *r = engine_command(eng, conn->io_timeout_ms, argc, argv, NULL);
    int rc = FAIRLOCK_OK;
    if (r == NULL)
        rc = fairlock__error_set(err, FAIRLOCK_REDIS, "%s failed: %s", what,
                                 fairlock__engine_error(eng)->msg);
    else if (r->type == REDIS_REPLY_ERROR)
        rc = fairlock__error_reply(err, kind, what, r->str);
    if (rc == FAIRLOCK_OK && reply_out != NULL)
        *reply_out = r;
    else
        freeReplyObject(r);
    return rc;
}

/* Opens a connection within the I/O timeout and authenticates: a sentinel
 * with the sentinel credentials, a data node with the URL's, and then
 * selects the database.  Returns NULL with err set. */
static fairlock__engine *start_node(const fairlock__conn *conn,
                                    const char *host, int port, int sentinel,
                                    int64_t deadline, fairlock__error *err) {
    const fairlock__url *url = conn->url;
    fairlock__engine_target target;
    memset(&target, 0, sizeof target);
    target.host = host;
    target.port = port;
    target.path = url->path;
    target.user = sentinel ? url->sentinel_user : url->user;
    target.password = sentinel ? url->sentinel_password : url->password;
    target.db = sentinel ? 0 : url->db;
    target.kind = sentinel ? FAIRLOCK__URL_SENTINEL : url->kind;
    target.tls = &url->tls;
    fairlock__engine *eng = fairlock__engine_start(&target, deadline);
    if (eng == NULL)
        fairlock__error_set(err, FAIRLOCK_NOMEM,
                            "cannot allocate a Redis connection");
    return eng;
}

static fairlock__engine *open_node(const fairlock__conn *conn, const char *host,
                                   int port, int sentinel,
                                   fairlock__error *err) {
    int64_t deadline = fairlock__now_ms() + conn->io_timeout_ms;
    fairlock__engine *eng = start_node(conn, host, port, sentinel, deadline,
                                       err);
    if (eng == NULL)
        return NULL;
    if (fairlock__engine_wait_ready(eng, deadline) != 0) {
        *err = *fairlock__engine_error(eng);
        fairlock__engine_free(eng);
        return NULL;
    }
    return eng;
}

/* Asks the sentinels, in turn, where the master is, and connects to it
 * only if it confirms it is a master (a sentinel may lag a failover). */
static fairlock__engine *open_sentinel_master(fairlock__conn *conn,
                                              fairlock__error *err) {
    const fairlock__url *url = conn->url;
    char last[FAIRLOCK__ERRMSG_SIZE] = "no sentinel answered";
    for (size_t i = 0; i < url->node_count; i++) {
        size_t n = (conn->sentinel_first + i) % url->node_count;
        const fairlock__endpoint *s = &url->nodes[n];
        fairlock__engine *sentinel = open_node(conn, s->host, s->port, 1, err);
        if (sentinel == NULL) {
            snprintf(last, sizeof last, "%s", err->msg);
            continue;
        }
        const char *ask[3] = {"SENTINEL", "get-master-addr-by-name",
                              url->master};
        redisReply *addr = NULL;
        int rc = setup_command(sentinel, conn, FAIRLOCK__URL_SENTINEL, err,
                               "SENTINEL get-master-addr", 3, ask, &addr);
        fairlock__engine_free(sentinel);
        if (rc != FAIRLOCK_OK) {
            snprintf(last, sizeof last, "%s", err->msg);
            continue;
        }
        if (addr->type != REDIS_REPLY_ARRAY || addr->elements != 2 ||
            addr->element[0]->type != REDIS_REPLY_STRING ||
            addr->element[1]->type != REDIS_REPLY_STRING) {
            snprintf(last, sizeof last,
                     "sentinel %.64s:%d does not know master '%.64s'", s->host,
                     s->port, url->master);
            freeReplyObject(addr);
            continue;
        }
        char host[256];
        snprintf(host, sizeof host, "%s", addr->element[0]->str);
        int port = atoi(addr->element[1]->str);
        freeReplyObject(addr);
        fairlock__engine *master = open_node(conn, host, port, 0, err);
        if (master == NULL) {
            snprintf(last, sizeof last, "%s", err->msg);
            continue;
        }
        const char *role_cmd[1] = {"ROLE"};
        redisReply *role = NULL;
        if (setup_command(master, conn, FAIRLOCK__URL_SENTINEL, err, "ROLE", 1,
                          role_cmd, &role) == FAIRLOCK_OK &&
            role->type == REDIS_REPLY_ARRAY && role->elements > 0 &&
            role->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(role->element[0]->str, "master") == 0) {
            freeReplyObject(role);
            conn->sentinel_first = n;
            return master;
        }
        freeReplyObject(role);
        fairlock__engine_free(master);
        snprintf(last, sizeof last,
                 "sentinel %.64s:%d named %.64s:%d, which is not a master",
                 s->host, s->port, host, port);
    }
    fairlock__error_set(
        err, FAIRLOCK_REDIS,
        "no master '%.64s' found through %zu sentinel(s): %.150s", url->master,
        url->node_count, last);
    return NULL;
}

/* Whether a new connection of a cluster URL reached a cluster node: a
 * standalone server would run the scripts too, and hide the mistake. */
static fairlock__engine *cluster_node_only(const fairlock__conn *conn,
                                           fairlock__engine *eng,
                                           fairlock__error *err) {
    const char *argv[2] = {"CLUSTER", "MYID"};
    if (eng != NULL &&
        setup_command(eng, conn, FAIRLOCK__URL_CLUSTER, err, "CLUSTER MYID", 2,
                      argv, NULL) != FAIRLOCK_OK) {
        fairlock__engine_free(eng);
        return NULL;
    }
    return eng;
}

/* The node of the lock's slot if a redirect named it, else the seeds. */
static fairlock__engine *open_cluster_node(fairlock__conn *conn,
                                           fairlock__error *err) {
    const fairlock__url *url = conn->url;
    if (conn->node_host[0] != '\0') {
        fairlock__engine *eng = cluster_node_only(
            conn, open_node(conn, conn->node_host, conn->node_port, 0, err),
            err);
        if (eng != NULL)
            return eng;
        conn->node_host[0] = '\0';
    }
    for (size_t i = 0; i < url->node_count; i++) {
        fairlock__engine *eng = cluster_node_only(
            conn,
            open_node(conn, url->nodes[i].host, url->nodes[i].port, 0, err),
            err);
        if (eng != NULL)
            return eng;
    }
    return NULL;
}

static int connect_owned(fairlock__conn *conn, fairlock__error *err) {
    const fairlock__url *url = conn->url;
    switch (url->kind) {
    case FAIRLOCK__URL_UNIX:
        conn->eng = open_node(conn, NULL, 0, 0, err);
        break;
    case FAIRLOCK__URL_TCP:
        conn->eng = open_node(conn, url->host, url->port, 0, err);
        break;
    case FAIRLOCK__URL_SENTINEL:
        conn->eng = open_sentinel_master(conn, err);
        break;
    case FAIRLOCK__URL_CLUSTER:
        conn->eng = open_cluster_node(conn, err);
        break;
    }
    conn->pid = getpid();
    return conn->eng != NULL ? FAIRLOCK_OK : err->code;
}

fairlock__engine *fairlock__conn_start_node(const fairlock__conn *conn,
                                            const char *host, int port,
                                            int sentinel,
                                            fairlock__error *err) {
    return start_node(conn, host, port, sentinel,
                      fairlock__now_ms() + conn->io_timeout_ms, err);
}

int fairlock__conn_start(fairlock__conn *conn, fairlock__error *err) {
    const fairlock__url *url = conn->url;
    if (conn->borrowed ||
        (url->kind != FAIRLOCK__URL_TCP && url->kind != FAIRLOCK__URL_UNIX))
        return fairlock__error_set(err, FAIRLOCK_INVALID,
                                   "only a server of its own is connected to "
                                   "without blocking");
    drop_owned(conn);
    conn->eng = start_node(
        conn, url->kind == FAIRLOCK__URL_TCP ? url->host : NULL, url->port, 0,
        fairlock__now_ms() + conn->io_timeout_ms, err);
    conn->pid = getpid();
    return conn->eng != NULL ? FAIRLOCK_OK : err->code;
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
    if (conn->eng != NULL && conn->pid != getpid())
        drop_owned(conn);
    if (conn->eng != NULL)
        return FAIRLOCK_OK;
    return connect_owned(conn, err);
}

/* No I/O, so that it can be fuzzed. */
int fairlock__parse_redirect(const char *reply, const char *asked_host,
                             char *host, size_t host_len, int *port) {
    const char *addr = strrchr(reply, ' ');
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (colon == NULL || (*port = atoi(colon + 1)) <= 0)
        return -1;
    size_t len = (size_t)(colon - addr - 1);
    if (len == 0 && asked_host != NULL)
        snprintf(host, host_len, "%s", asked_host);
    else if (len > 0 && len < host_len)
        snprintf(host, host_len, "%.*s", (int)len, addr + 1);
    else
        return -1;
    return 0;
}

/* One command on the caller's context; block_ms lengthens the socket
 * timeout meanwhile, and the owner's setting is put back. */
static redisReply *send_borrowed(redisContext *ctx, fairlock__conn *conn,
                                 int argc, const char **argv,
                                 const size_t *lens, int64_t block_ms) {
    struct timeval saved = {0, 0};
    socklen_t saved_len = sizeof saved;
    int restore = 0;
    if (block_ms > 0) {
        restore = getsockopt(ctx->fd, SOL_SOCKET, SO_RCVTIMEO, &saved,
                             &saved_len) == 0;
        redisSetTimeout(ctx, ms_to_timeval(conn->io_timeout_ms + block_ms));
    }
    redisReply *reply = redisCommandArgv(ctx, argc, argv, lens);
    if (reply != NULL && restore)
        redisSetTimeout(ctx, saved);
    return reply;
}

/* One command on an engine of the connection, with a deadline of the I/O
 * timeout plus block_ms. */
static redisReply *send_on(fairlock__engine *eng, fairlock__conn *conn,
                           int argc, const char **argv, const size_t *lens,
                           int64_t block_ms) {
    int64_t deadline = fairlock__now_ms() + conn->io_timeout_ms +
                       (block_ms > 0 ? block_ms : 0);
    if (fairlock__engine_queue(eng, argc, argv, lens) != 0)
        return NULL;
    return fairlock__engine_wait_reply(eng, deadline);
}

/* A cluster ASK redirect: the one command goes to the importing node,
 * preceded by ASKING (which covers the next command only), on a
 * connection made for it and kept in *ask for the rest of the call. */
static redisReply *send_asking(fairlock__conn *conn, fairlock__error *err,
                               fairlock__engine **ask, const char *host,
                               int port, int argc, const char **argv,
                               const size_t *lens, int64_t block_ms) {
    if (*ask == NULL && (*ask = open_node(conn, host, port, 0, err)) == NULL)
        return NULL;
    const char *asking[1] = {"ASKING"};
    if (setup_command(*ask, conn, FAIRLOCK__URL_CLUSTER, err, "ASKING", 1,
                      asking, NULL) != FAIRLOCK_OK)
        return NULL;
    redisReply *reply = send_on(*ask, conn, argc, argv, lens, block_ms);
    if (reply == NULL)
        *err = *fairlock__engine_error(*ask);
    return reply;
}

static int starts_with(const redisReply *r, const char *prefix) {
    return r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* Error replies after which the command may be sent again because they
 * prove it did not run.  TRYAGAIN: a multi-key command (every script: it
 * declares keys that usually do not exist) on a slot in migration whose
 * keys are not all on the node asked; CLUSTERDOWN: a failover or an
 * unserved slot. */
typedef enum {
    REFUSED_NOT, /* ran, or an error we do not retry */
    REFUSED_MOVED,
    REFUSED_ASK,
    REFUSED_TRANSIENT, /* TRYAGAIN, CLUSTERDOWN */
    REFUSED_READONLY   /* a demoted master behind sentinels */
} refusal;

static refusal refused(fairlock__url_kind kind, const redisReply *r) {
    if (r->type != REDIS_REPLY_ERROR)
        return REFUSED_NOT;
    if (kind == FAIRLOCK__URL_CLUSTER) {
        if (starts_with(r, "MOVED "))
            return REFUSED_MOVED;
        if (starts_with(r, "ASK "))
            return REFUSED_ASK;
        if (starts_with(r, "TRYAGAIN") || starts_with(r, "CLUSTERDOWN"))
            return REFUSED_TRANSIENT;
    }
    if (kind == FAIRLOCK__URL_SENTINEL && starts_with(r, "READONLY"))
        return REFUSED_READONLY;
    return REFUSED_NOT;
}

fairlock__url_kind fairlock__conn_kind(const fairlock__conn *conn) {
    return conn->borrowed ? FAIRLOCK__URL_TCP : conn->url->kind;
}

int fairlock__conn_error_reply(const fairlock__conn *conn, fairlock__error *err,
                               const char *what, const redisReply *reply) {
    return fairlock__error_reply(
        err, fairlock__conn_kind(conn), what,
        reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
}

/* Describes why a refused command was given up after `waited_ms`. */
static void describe_refusal(fairlock__error *err, const redisReply *r,
                             int64_t waited_ms, int tries) {
    const char *why;
    if (starts_with(r, "TRYAGAIN") || starts_with(r, "ASK "))
        why = "the lock's hash slot is being migrated between cluster "
              "nodes (CLUSTER SETSLOT MIGRATING/IMPORTING)";
    else if (starts_with(r, "CLUSTERDOWN"))
        why = "the cluster is down";
    else if (starts_with(r, "MOVED "))
        why = "cluster redirects did not settle";
    else
        why = "the master is read-only";
    fairlock__error_set(err, FAIRLOCK_REDIS,
                        "%s; still so after %" PRId64 " ms and %d tries: %.80s",
                        why, waited_ms, tries, r->str);
}

redisReply *fairlock__conn_command(fairlock__conn *conn, fairlock__error *err,
                                   int argc, const char **argv,
                                   const size_t *lens, int64_t block_ms) {
    /* A refused command is sent again until the call's deadline, pausing
     * 10 ms, then twice as long each time up to 200 ms.  A command that
     * fails on I/O is never resent, because its outcome is unknown: the
     * caller resolves that. */
    enum { FIRST_PAUSE_MS = 10, MAX_PAUSE_MS = 200, FREE_REDIRECTS = 2 };
    fairlock__url_kind kind = fairlock__conn_kind(conn);
    int64_t first = fairlock__now_ms();
    int64_t until = first + conn->io_timeout_ms + (block_ms > 0 ? block_ms : 0);
    if (conn->deadline_ms > until)
        until = conn->deadline_ms;
    int64_t pause_ms = 0;
    int redirects = 0;
    /* The importing node of the last ASK, and whether the next try goes
     * there. */
    char ask_host[256] = "";
    int ask_port = 0, asking = 0;
    fairlock__engine *ask = NULL;
    redisReply *reply;
    for (int tries = 1;; tries++) {
        const char *asked; /* the node's host, for a redirect without one */
        if (asking) {
            reply = send_asking(conn, err, &ask, ask_host, ask_port, argc, argv,
                                lens, block_ms);
            if (reply == NULL)
                break;
            asked = fairlock__engine_host(ask);
        } else if (conn->borrowed) {
            redisContext *ctx = conn->ctx;
            reply = send_borrowed(ctx, conn, argc, argv, lens, block_ms);
            if (reply == NULL) {
                fairlock__error_set(err, FAIRLOCK_REDIS, "Redis I/O error: %s",
                                    ctx->errstr[0] ? ctx->errstr
                                                   : "connection lost");
                break;
            }
            asked = ctx->tcp.host;
        } else {
            reply = send_on(conn->eng, conn, argc, argv, lens, block_ms);
            if (reply == NULL) {
                *err = *fairlock__engine_error(conn->eng);
                drop_owned(conn);
                break;
            }
            asked = fairlock__engine_host(conn->eng);
        }
        refusal why = refused(kind, reply);
        char host[256];
        int port = 0;
        if (why == REFUSED_NOT)
            break;
        if ((why == REFUSED_MOVED || why == REFUSED_ASK) &&
            fairlock__parse_redirect(reply->str, asked, host, sizeof host,
                                     &port) != 0) {
            fairlock__error_set(err, FAIRLOCK_REDIS,
                                "malformed cluster redirect: %.80s",
                                reply->str);
            break;
        }
        /* Redirects in a row are followed at once a few times, then
         * paced too (nodes may disagree until a new slot owner is known
         * to all). */
        redirects = why == REFUSED_TRANSIENT ? 0 : redirects + 1;
        int pause = why == REFUSED_TRANSIENT || redirects > FREE_REDIRECTS;
        int64_t now = fairlock__now_ms();
        if (now >= until) {
            describe_refusal(err, reply, now - first, tries);
            break;
        }
        freeReplyObject(reply);
        reply = NULL;
        if (why == REFUSED_ASK) {
            if (ask != NULL && (ask_port != port || strcmp(ask_host, host))) {
                fairlock__engine_free(ask);
                ask = NULL;
            }
            snprintf(ask_host, sizeof ask_host, "%s", host);
            ask_port = port;
            asking = 1;
        } else {
            /* After a TRYAGAIN the command goes back to the slot's owner,
             * which either runs it, sends us to the importing node again
             * or, once the slot has moved, says MOVED. */
            asking = 0;
        }
        if (why == REFUSED_MOVED) {
            snprintf(conn->node_host, sizeof conn->node_host, "%s", host);
            conn->node_port = port;
            drop_owned(conn);
        } else if (why == REFUSED_READONLY) {
            /* The master we knew was demoted: ask the sentinels again. */
            drop_owned(conn);
        }
        if (pause) {
            pause_ms = pause_ms == 0
                           ? FIRST_PAUSE_MS
                           : (pause_ms * 2 > MAX_PAUSE_MS ? MAX_PAUSE_MS
                                                          : pause_ms * 2);
            int64_t nap = pause_ms < until - now ? pause_ms : until - now;
            usleep((useconds_t)(nap * 1000));
        }
        if (!conn->borrowed && conn->eng == NULL &&
            connect_owned(conn, err) != FAIRLOCK_OK)
            break;
    }
    fairlock__engine_free(ask);
    conn->unanswered = reply == NULL;
    return reply;
}

enum {
    MAX_SCRIPT_ARGS = FAIRLOCK__CMD_ARGS,
    MAX_EVAL_ARGS = FAIRLOCK__EVAL_ARGS
};

int fairlock__format_evalsha(const char **cmd, size_t *lens, char *nkeys,
                             const fairlock__keys *keys,
                             const fairlock__script *script, int argc,
                             const char *const *argv) {
    int n = 0;
    snprintf(nkeys, 8, "%d", FAIRLOCK__KEY_COUNT);
    cmd[n] = "EVALSHA", lens[n++] = 7;
    cmd[n] = script->sha1, lens[n++] = 40;
    cmd[n] = nkeys, lens[n++] = strlen(nkeys);
    for (int i = 0; i < FAIRLOCK__KEY_COUNT; i++)
        cmd[n] = keys->names[i], lens[n++] = keys->lens[i];
    for (int i = 0; i < argc; i++)
        cmd[n] = argv[i], lens[n++] = strlen(argv[i]);
    return n;
}

int fairlock__conn_eval(fairlock__conn *conn, fairlock__error *err,
                        const fairlock__keys *keys,
                        const fairlock__script *script, int argc,
                        const char *const *argv, redisReply **out) {
    const char *cmd[MAX_EVAL_ARGS];
    size_t lens[MAX_EVAL_ARGS];
    char nkeys[8];
    if (argc > MAX_SCRIPT_ARGS)
        return fairlock__error_set(err, FAIRLOCK_INVALID,
                                   "too many script arguments");
    int n = fairlock__format_evalsha(cmd, lens, nkeys, keys, script, argc,
                                     argv);

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
        if (refused(fairlock__conn_kind(conn), reply) != REFUSED_NOT) {
            /* Retried until the deadline: conn_command said why in err. */
            char why[FAIRLOCK__ERRMSG_SIZE];
            snprintf(why, sizeof why, "%s", err->msg);
            fairlock__error_set(err, FAIRLOCK_REDIS, "script %s failed: %s",
                                script->name, why);
        } else {
            fairlock__error_script(err, fairlock__conn_kind(conn), script->name,
                                   keys->names[0], keys->lens[0], cmd[0],
                                   reply->str);
        }
        freeReplyObject(reply);
        return FAIRLOCK_REDIS;
    }
    *out = reply;
    return FAIRLOCK_OK;
}

/* ---------------------------------------------------------------------------
 * Every master (fairlock_list)
 * ------------------------------------------------------------------------- */

redisReply *fairlock__node_command(fairlock__node *node, fairlock__error *err,
                                   int argc, const char **argv,
                                   const size_t *lens) {
    if (node->eng == NULL)
        return fairlock__conn_command(node->conn, err, argc, argv, lens, 0);
    redisReply *r = engine_command(node->eng, node->conn->io_timeout_ms, argc,
                                   argv, lens);
    if (r == NULL)
        *err = *fairlock__engine_error(node->eng);
    return r;
}

/* One line of CLUSTER NODES: "<id> <ip:port@cport[,host]> <flags> <master>
 * <ping> <pong> <epoch> <link> <slot>...".  Returns 1 and the address of a
 * master that serves slots and is not failing, else 0. */
static int serving_master(const char *line, const char *asked, char *host,
                          size_t host_len, int *port) {
    char addr[300], flags[200];
    int consumed = 0;
    if (sscanf(line, "%*s %299s %199s %*s %*s %*s %*s %*s%n", addr, flags,
               &consumed) != 2 ||
        consumed == 0)
        return 0;
    const char *rest = line + consumed;
    while (*rest == ' ')
        rest++;
    if (*rest == '\0' || *rest == '\n' || strstr(flags, "master") == NULL ||
        strstr(flags, "fail") != NULL || strstr(flags, "noaddr") != NULL)
        return 0;
    char *at = strchr(addr, '@');
    if (at != NULL)
        *at = '\0';
    char *colon = strrchr(addr, ':');
    if (colon == NULL)
        return 0;
    *colon = '\0';
    *port = atoi(colon + 1);
    const char *name = addr[0] ? addr : (asked ? asked : "");
    size_t len = strlen(name);
    if (len == 0 || len >= host_len) /* a cut name would be another host */
        return 0;
    memcpy(host, name, len + 1);
    return *port > 0;
}

int fairlock__conn_each_master(fairlock__conn *conn, fairlock__error *err,
                               fairlock__node_fn fn, void *arg) {
    int rc = fairlock__conn_ready(conn, err);
    if (rc != FAIRLOCK_OK)
        return rc;
    fairlock__node node = {conn, NULL};
    if (conn->borrowed || conn->url->kind != FAIRLOCK__URL_CLUSTER)
        return fn(arg, &node, err);
    const char *argv[2] = {"CLUSTER", "NODES"};
    redisReply *r = fairlock__conn_command(conn, err, 2, argv, NULL, 0);
    if (r == NULL)
        return FAIRLOCK_REDIS;
    if (r->type != REDIS_REPLY_STRING) {
        rc = r->type == REDIS_REPLY_ERROR
                 ? fairlock__conn_error_reply(conn, err, "CLUSTER NODES", r)
                 : fairlock__error_set(err, FAIRLOCK_REDIS,
                                       "unexpected reply to CLUSTER NODES");
        freeReplyObject(r);
        return rc;
    }
    const char *asked = conn->eng ? fairlock__engine_host(conn->eng) : NULL;
    int masters = 0;
    for (const char *line = r->str; line != NULL && *line != '\0';) {
        const char *next = strchr(line, '\n');
        char copy[1024], host[256];
        size_t n = next ? (size_t)(next - line) : strlen(line);
        int port = 0;
        snprintf(copy, sizeof copy, "%.*s", (int)(n < 1023 ? n : 1023), line);
        line = next ? next + 1 : NULL;
        if (!serving_master(copy, asked, host, sizeof host, &port))
            continue;
        masters++;
        node.eng = open_node(conn, host, port, 0, err);
        if (node.eng == NULL) {
            rc = err->code;
            break;
        }
        rc = fn(arg, &node, err);
        fairlock__engine_free(node.eng);
        if (rc != FAIRLOCK_OK)
            break;
    }
    freeReplyObject(r);
    if (rc == FAIRLOCK_OK && masters == 0)
        rc = fairlock__error_set(err, FAIRLOCK_REDIS,
                                 "CLUSTER NODES named no master serving slots");
    return rc;
}
