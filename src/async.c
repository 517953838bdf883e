/* async.c -- the non-blocking API: operations started on a handle and
 * completed through a callback, on the caller's event loop.
 *
 * The same protocol as the blocking calls (protocol.c builds every command
 * and reads every reply) on the same engine (engine.c), but instead of a
 * poll() loop per call, each reply advances a state machine by one step
 * and the caller's loop waits.  One command is on the wire at a time: the
 * connection is the handle's own, and every step needs the previous
 * reply.  Waiting for the lock is a BLPOP on the server, as in the
 * blocking acquire, so a waiting handle costs its loop nothing; the only
 * client-side timers are each command's deadline and, with auto_renew or
 * after a capped hand-off (see take_grant), the next renewal, which goes
 * on the same connection (it is idle while the lock is held) instead of a
 * thread.
 *
 * Callbacks are never called from a start function: an operation that
 * ends at once (say, its connection failed to start) is finished with a
 * timer due now, so the callback runs from fairlock_async_process(), where
 * the caller expects it.  A callback may free the handle: the free then
 * waits until the callback returns (`depth`, `freeing`), as hiredis does
 * for its async contexts. */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "internal.h"

/* Pause between renewals that got no answer, as the renewal thread's. */
#define RENEW_RETRY_MS 100

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

typedef enum { OP_NONE, OP_ACQUIRE, OP_RELEASE, OP_EXTEND, OP_STATUS } op_kind;

/* What the command on the wire is for. */
typedef enum {
    W_NONE,
    W_ATTEMPT,  /* acquire.lua or acquire_nonfifo.lua */
    W_BLPOP,    /* the wait on the wake list */
    W_CONFIRM,  /* extend.lua to the full lease, awaited, after a grant */
    W_REPLICAS, /* WAIT after a grant */
    W_CANCEL,   /* a page of cancel.lua */
    W_RELEASE,  /* release.lua */
    W_EXTEND,   /* extend.lua for fairlock_extend_start() */
    W_STATUS,   /* status.lua */
    W_RENEW,    /* extend.lua from the renewal timer (or the one-shot
                 * confirmation of a capped hand-off) */
    W_SENTINEL, /* SENTINEL get-master-addr-by-name, on `aux` */
    W_ROLE,     /* ROLE, to the master a sentinel named */
    W_MYID,     /* CLUSTER MYID, to a node of a cluster URL */
    W_ASKING,   /* ASKING, on `aux` to the node an ASK named */
    W_ASKED     /* the command behind it, there */
} wire_kind;

/* Why cancel.lua runs: to clear a request before a new one, or to end
 * the operation after a failure (abandon), or to release a request whose
 * outcome was unknown. */
typedef enum { CLEAN_BEFORE, CLEAN_ABANDON, CLEAN_RELEASE } clean_kind;

struct fairlock__async {
    op_kind op;
    fairlock_done_fn done;
    fairlock_status_fn status_done;
    void *arg;
    int begin; /* the operation waits for the wire to be free to start */

    /* The command on the wire. */
    wire_kind wire;
    fairlock__cmd cmd;
    int by_eval; /* sent as EVAL with the body (after NOSCRIPT) */
    int64_t sent_ms;
    int64_t first_ms; /* when the command was first sent (READONLY) */

    /* Sentinel: the master is asked of the sentinels, in turn, before the
     * command `resume` is sent to it. */
    fairlock__engine *aux; /* the connection to a sentinel */
    wire_kind resume;
    size_t sentinel, asked; /* the sentinel asked, how many were */
    char why[FAIRLOCK__ERRMSG_SIZE];

    /* Cluster: a command refused with a redirect or TRYAGAIN waits until
     * retry_at to be sent again; `tries` and `pause_ms` pace it. */
    int64_t retry_at; /* INT64_MAX: none */
    wire_kind retry;
    wire_kind asked_what; /* the command sent after ASKING */
    int tries, redirects;
    int64_t pause_ms;

    /* Acquire. */
    fairlock__plan plan;
    int64_t deadline_ms; /* INT64_MAX: none */
    int cancelled;
    fairlock__attempt attempt;
    int pushed;           /* the grant was pushed (a hand-off) */
    int64_t confirm_from; /* when the confirmation was sent */
    int64_t grant_from;   /* from when the lease counts */
    int64_t grant_lease;  /* the lease the grant is recorded with */
    int64_t valid_until;

    /* cancel.lua pages. */
    clean_kind clean;
    char cursor[FAIRLOCK__CURSOR_SIZE];
    int undone;
    fairlock__error saved; /* the error to report after cleaning */

    /* Release, extend, status. */
    int was_lost;
    fairlock__error lost;
    int64_t ext_lease_ms;
    size_t max_waiters;

    /* The end: reported from process(). */
    int finished;
    int result;
    fairlock_status *status;

    /* Renewal timer, while held: auto_renew's renewals, and the one-shot
     * confirmation of a capped hand-off (confirm_owed). */
    int64_t renew_at; /* INT64_MAX: none */
    int confirm_owed; /* the grant is recorded with its capped lease */

    /* The watcher and what it was last told. */
    fairlock_watch_fn watch;
    void *watch_arg;
    int told_fd, told_events;
    int64_t told_due;
    uint64_t told_socket; /* fairlock__engine_socket_id() of told_fd */

    int depth;    /* process() or a callback runs on the handle */
    int settling; /* a blocking call waits in settle_wire() */
    int freeing;  /* fairlock_free() was called meanwhile */
};

/* ---------------------------------------------------------------------------
 * What to watch
 * ------------------------------------------------------------------------- */

/* The engine of the command on the wire (or of the handle, when none). */
static fairlock__engine *engine_of(const fairlock *lock) {
    if (lock->async != NULL &&
        (lock->async->wire == W_SENTINEL || lock->async->wire == W_ASKING ||
         lock->async->wire == W_ASKED))
        return lock->async->aux;
    fairlock__engine *eng = lock->conn.eng;
    return eng != NULL && lock->conn.pid == getpid() ? eng : NULL;
}

static int engine_live(const fairlock *lock) {
    fairlock__engine *eng = engine_of(lock);
    return eng != NULL &&
           fairlock__engine_get_state(eng) != FAIRLOCK__ENGINE_FAILED;
}

static int64_t due_at(const fairlock *lock) {
    const fairlock__async *a = lock->async;
    if (a->finished || a->begin)
        return 0;
    if (a->wire != W_NONE)
        return engine_live(lock) ? fairlock__engine_deadline(engine_of(lock))
                                 : 0;
    if (a->retry_at != INT64_MAX)
        return a->retry_at;
    if (a->renew_at != INT64_MAX && lock->request == FAIRLOCK__REQUEST_HELD)
        return a->renew_at;
    return -1;
}

static int watched_fd(const fairlock *lock) {
    return engine_live(lock) ? fairlock__engine_fd(engine_of(lock)) : -1;
}

static uint64_t watched_socket(const fairlock *lock) {
    return engine_live(lock) ? fairlock__engine_socket_id(engine_of(lock)) : 0;
}

static int watched_events(const fairlock *lock) {
    if (lock->async == NULL || lock->async->wire == W_NONE ||
        !engine_live(lock))
        return 0;
    short ev = fairlock__engine_events(engine_of(lock));
    return ((ev & POLLIN) ? FAIRLOCK_EV_READ : 0) |
           ((ev & POLLOUT) ? FAIRLOCK_EV_WRITE : 0);
}

static int64_t relative(int64_t due) {
    if (due < 0)
        return -1;
    int64_t left = due - fairlock__now_ms();
    return left < 0 ? 0 : left;
}

/* Tells the watcher what changed.  Not while a callback or process() runs
 * on the handle: process() tells it once on its way out. */
static void tell(fairlock *lock) {
    fairlock__async *a = lock->async;
    if (a == NULL || a->watch == NULL || a->depth > 0 || a->freeing)
        return;
    int fd = watched_fd(lock), events = watched_events(lock);
    uint64_t sock = watched_socket(lock);
    int64_t due = due_at(lock);
    if (a->told_fd >= 0 && sock != a->told_socket) {
        /* Another socket than the one told, which the loop was not told
         * to leave: mostly one closed without a word, when a blocking
         * call between operations made a new connection (after MOVED,
         * READONLY or a failure), or during settle_wire().  The new
         * socket may have the same fd number, so the loop is told to drop
         * the old registration (the kernel dropped it with the socket,
         * unknown to the loop) before it watches the new one.  (Going
         * over to an ASK connection, the old socket stays open: the extra
         * -1 costs the loop one registration.) */
        a->told_fd = -1;
        a->told_events = 0;
        a->watch(lock, -1, 0, relative(a->told_due), a->watch_arg);
    }
    if (fd == a->told_fd && events == a->told_events && due == a->told_due)
        return;
    a->told_fd = fd;
    a->told_socket = sock;
    a->told_events = events;
    a->told_due = due;
    a->watch(lock, fd, events, relative(due), a->watch_arg);
}

/* Closes the connection, after telling the watcher to stop watching its
 * socket (a loop must not watch a closed fd). */
static void drop_conn(fairlock *lock) {
    fairlock__async *a = lock->async;
    if (a->watch != NULL && a->told_fd >= 0 && !a->freeing && !a->settling) {
        a->told_fd = -1;
        a->told_events = 0;
        a->watch(lock, -1, 0, relative(a->told_due), a->watch_arg);
    }
    fairlock__conn_close(&lock->conn);
}

/* ---------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------- */

/* Queues a->cmd as `what`, connecting first when needed.  A failure shows
 * as the engine FAILED (or missing) with the command on the wire, which
 * the next step reads as its outcome. */
static void ask_sentinel(fairlock *lock);
static void try_node(fairlock *lock);
static void queue_cmd(fairlock *lock);

static void resend(fairlock *lock, wire_kind what) {
    fairlock__async *a = lock->async;
    a->wire = what;
    a->sent_ms = fairlock__now_ms();
    if (!engine_live(lock)) {
        if (lock->conn.eng != NULL)
            drop_conn(lock);
        if (lock->url.kind == FAIRLOCK__URL_SENTINEL) {
            a->resume = what;
            a->asked = 0;
            snprintf(a->why, sizeof a->why, "no sentinel answered");
            ask_sentinel(lock);
            return;
        }
        if (lock->url.kind == FAIRLOCK__URL_CLUSTER) {
            a->resume = what;
            /* The node a redirect named first, then the seeds. */
            a->asked = lock->conn.node_host[0] != '\0' ? 0 : 1;
            snprintf(a->why, sizeof a->why, "no node answered");
            try_node(lock);
            return;
        }
        if (fairlock__conn_start(&lock->conn, &lock->err) != FAIRLOCK_OK)
            return;
    }
    queue_cmd(lock);
}

static void send_cmd(fairlock *lock, wire_kind what) {
    fairlock__async *a = lock->async;
    a->first_ms = fairlock__now_ms();
    a->tries = a->redirects = 0;
    a->pause_ms = 0;
    resend(lock, what);
}

static void queue_cmd_on(fairlock *lock, fairlock__engine *eng);

/* Writes a->cmd on the handle's connection, as far as it goes now. */
static void queue_cmd(fairlock *lock) { queue_cmd_on(lock, lock->conn.eng); }

static void queue_cmd_on(fairlock *lock, fairlock__engine *eng) {
    fairlock__async *a = lock->async;
    const char *argv[FAIRLOCK__EVAL_ARGS];
    size_t lens[FAIRLOCK__EVAL_ARGS];
    char nkeys[8];
    int argc;
    const fairlock__cmd *c = &a->cmd;
    if (c->script != NULL) {
        argc = fairlock__format_evalsha(argv, lens, nkeys, &lock->keys,
                                        c->script, c->argc, c->argv);
        if (a->by_eval) {
            argv[0] = "EVAL", lens[0] = 4;
            argv[1] = c->script->body, lens[1] = strlen(c->script->body);
        }
    } else {
        argc = c->argc;
        memcpy(argv, c->argv, sizeof c->argv[0] * (size_t)argc);
        memcpy(lens, c->lens, sizeof c->lens[0] * (size_t)argc);
    }
    if (fairlock__engine_queue(eng, argc, argv, lens) != 0)
        return;
    /* Connecting counts against the first command's time, as in the
     * blocking calls (where it has a timeout of its own as long). */
    int64_t deadline = a->sent_ms + lock->conn.io_timeout_ms +
                       (c->block_ms > 0 ? c->block_ms : 0);
    if (fairlock__engine_get_state(eng) != FAIRLOCK__ENGINE_READY)
        deadline += lock->conn.io_timeout_ms;
    fairlock__engine_set_deadline(eng, deadline);
    /* The socket is nearly always writable: save the loop a turn. */
    if (fairlock__engine_get_state(eng) == FAIRLOCK__ENGINE_READY)
        fairlock__engine_handle(eng, POLLOUT);
}

static void send_script(fairlock *lock, wire_kind what) {
    lock->async->by_eval = 0;
    send_cmd(lock, what);
}

/* ---------------------------------------------------------------------------
 * Finding the master through the sentinels (conn.c's
 * open_sentinel_master(), one reply at a time)
 * ------------------------------------------------------------------------- */

/* A plain command on `eng`, its reply awaited within the I/O timeout (and
 * the connect's). */
static void queue_plain(fairlock *lock, fairlock__engine *eng, int argc,
                        const char **argv) {
    if (fairlock__engine_queue(eng, argc, argv, NULL) != 0)
        return;
    fairlock__engine_set_deadline(eng, fairlock__now_ms() +
                                           2 * lock->conn.io_timeout_ms);
    if (fairlock__engine_get_state(eng) == FAIRLOCK__ENGINE_READY)
        fairlock__engine_handle(eng, POLLOUT);
}

/* Closes the sentinel's connection, the watcher told first. */
static void drop_aux(fairlock *lock) {
    fairlock__async *a = lock->async;
    if (a->aux == NULL)
        return;
    if (a->watch != NULL && a->told_fd >= 0 && !a->freeing && !a->settling) {
        a->told_fd = -1;
        a->told_events = 0;
        a->watch(lock, -1, 0, relative(a->told_due), a->watch_arg);
    }
    fairlock__engine_free(a->aux);
    a->aux = NULL;
}

/* Asks the next sentinel; when all were asked, the command waiting fails
 * (no engine: the next step reads that as its outcome). */
static void ask_sentinel(fairlock *lock) {
    fairlock__async *a = lock->async;
    const fairlock__url *url = &lock->url;
    if (a->asked == url->node_count) {
        fairlock__fail(lock, FAIRLOCK_REDIS,
                       "no master '%.64s' found through %zu sentinel(s): "
                       "%.150s",
                       url->master, url->node_count, a->why);
        a->wire = a->resume;
        return;
    }
    a->sentinel = (lock->conn.sentinel_first + a->asked++) % url->node_count;
    const fairlock__endpoint *node = &url->nodes[a->sentinel];
    a->wire = W_SENTINEL;
    a->aux = fairlock__conn_start_node(&lock->conn, node->host, node->port, 1,
                                       &lock->err);
    if (a->aux == NULL)
        return;
    const char *ask[3] = {"SENTINEL", "get-master-addr-by-name", url->master};
    queue_plain(lock, a->aux, 3, ask);
}

static void on_sentinel(fairlock *lock, const redisReply *reply) {
    fairlock__async *a = lock->async;
    const fairlock__endpoint *node = &lock->url.nodes[a->sentinel];
    if (reply == NULL) {
        snprintf(a->why, sizeof a->why, "%s", lock->err.msg);
        drop_aux(lock);
        ask_sentinel(lock);
        return;
    }
    drop_aux(lock);
    if (reply->type == REDIS_REPLY_ERROR) {
        fairlock__error e;
        fairlock__error_reply(&e, FAIRLOCK__URL_SENTINEL,
                              "SENTINEL get-master-addr", reply->str);
        snprintf(a->why, sizeof a->why, "%s", e.msg);
        ask_sentinel(lock);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(a->why, sizeof a->why,
                 "sentinel %.64s:%d does not know master '%.64s'", node->host,
                 node->port, lock->url.master);
        ask_sentinel(lock);
        return;
    }
    /* A sentinel may lag a failover: the master must say it is one. */
    lock->conn.eng = fairlock__conn_start_node(
        &lock->conn, reply->element[0]->str, atoi(reply->element[1]->str), 0,
        &lock->err);
    lock->conn.pid = getpid();
    a->wire = W_ROLE;
    if (lock->conn.eng == NULL)
        return;
    const char *role[1] = {"ROLE"};
    queue_plain(lock, lock->conn.eng, 1, role);
}

static void on_role(fairlock *lock, const redisReply *reply) {
    fairlock__async *a = lock->async;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements > 0 && reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "master") == 0) {
        lock->conn.sentinel_first = a->sentinel;
        a->wire = a->resume;
        a->sent_ms = fairlock__now_ms();
        queue_cmd(lock);
        return;
    }
    if (reply == NULL)
        snprintf(a->why, sizeof a->why, "%s", lock->err.msg);
    else
        snprintf(a->why, sizeof a->why,
                 "sentinel %.64s:%d named a server which is not a master",
                 lock->url.nodes[a->sentinel].host,
                 lock->url.nodes[a->sentinel].port);
    drop_conn(lock);
    ask_sentinel(lock);
}

/* ---------------------------------------------------------------------------
 * Cluster nodes (conn.c's open_cluster_node() and the refusals
 * fairlock__conn_command() retries, one reply at a time)
 * ------------------------------------------------------------------------- */

/* Connects to the next candidate: asked 0 is the node of the last MOVED,
 * then the seeds.  It must answer CLUSTER MYID: a standalone server would
 * run the scripts too, and hide the mistake. */
static void try_node(fairlock *lock) {
    fairlock__async *a = lock->async;
    const fairlock__url *url = &lock->url;
    if (a->asked > url->node_count) {
        lock->conn.node_host[0] = '\0';
        fairlock__fail(lock, FAIRLOCK_REDIS, "%s", a->why);
        a->wire = a->resume;
        return;
    }
    size_t i = a->asked++;
    const char *host = i == 0 ? lock->conn.node_host : url->nodes[i - 1].host;
    int port = i == 0 ? lock->conn.node_port : url->nodes[i - 1].port;
    lock->conn.eng = fairlock__conn_start_node(&lock->conn, host, port, 0,
                                               &lock->err);
    lock->conn.pid = getpid();
    a->wire = W_MYID;
    if (lock->conn.eng == NULL)
        return;
    const char *myid[2] = {"CLUSTER", "MYID"};
    queue_plain(lock, lock->conn.eng, 2, myid);
}

static void on_myid(fairlock *lock, const redisReply *reply) {
    fairlock__async *a = lock->async;
    if (reply != NULL && reply->type != REDIS_REPLY_ERROR) {
        a->wire = a->resume;
        a->sent_ms = fairlock__now_ms();
        queue_cmd(lock);
        return;
    }
    if (reply == NULL)
        snprintf(a->why, sizeof a->why, "%s", lock->err.msg);
    else
        fairlock__error_reply(&lock->err, FAIRLOCK__URL_CLUSTER, "CLUSTER MYID",
                              reply->str),
            snprintf(a->why, sizeof a->why, "%s", lock->err.msg);
    if (a->asked == 1)
        lock->conn.node_host[0] = '\0'; /* the redirect's node failed */
    drop_conn(lock);
    try_node(lock);
}

static int starts_with(const redisReply *r, const char *prefix) {
    return r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* A reply that proves the command did not run on a cluster: MOVED (the
 * slot's owner is named: send it there, paced after a few in a row), ASK
 * (the slot is migrating: this one command goes to the importing node),
 * TRYAGAIN, CLUSTERDOWN (a slot in migration, a failover: send it again
 * after a pause, 10 ms doubling up to 200).  Until the acquire's
 * deadline, or the I/O timeout from the first try.  Returns 1 when the
 * command will be sent again, -1 when it gave up (the handle's error says
 * why), 0 for any other reply. */
static int cluster_refused(fairlock *lock, wire_kind what,
                           const redisReply *reply) {
    fairlock__async *a = lock->async;
    if (reply == NULL || lock->url.kind != FAIRLOCK__URL_CLUSTER)
        return 0;
    int moved = starts_with(reply, "MOVED ");
    int ask = starts_with(reply, "ASK ");
    /* An ASK is followed at once every time: the importing node runs
     * the command or answers TRYAGAIN (paced), and the deadline above
     * bounds the whole. */
    int transient = starts_with(reply, "TRYAGAIN") ||
                    starts_with(reply, "CLUSTERDOWN");
    if (!moved && !ask && !transient)
        return 0;
    enum { FIRST_PAUSE_MS = 10, MAX_PAUSE_MS = 200, FREE_REDIRECTS = 2 };
    int64_t now = fairlock__now_ms();
    int64_t until = a->first_ms + lock->conn.io_timeout_ms +
                    (a->cmd.block_ms > 0 ? a->cmd.block_ms : 0);
    if (a->op == OP_ACQUIRE && a->deadline_ms > until)
        until = a->deadline_ms;
    a->tries++;
    if (now >= until) {
        fairlock__fail(lock, FAIRLOCK_REDIS,
                       "%s; still so after %" PRId64 " ms and %d tries: %.80s",
                       moved ? "cluster redirects did not settle"
                       : starts_with(reply, "CLUSTERDOWN")
                           ? "the cluster is down"
                           : "the lock's hash slot is being migrated between "
                             "cluster nodes (CLUSTER SETSLOT "
                             "MIGRATING/IMPORTING)",
                       now - a->first_ms, a->tries, reply->str);
        return -1;
    }
    if (moved || ask) {
        char host[256];
        int port = 0;
        const char *asked = engine_live(lock)
                                ? fairlock__engine_host(lock->conn.eng)
                                : NULL;
        if (fairlock__parse_redirect(reply->str, asked, host, sizeof host,
                                     &port) != 0) {
            fairlock__fail(lock, FAIRLOCK_REDIS,
                           "malformed cluster redirect: %.80s", reply->str);
            return -1;
        }
        if (ask) {
            /* The slot is migrating and the keys are not on the owner:
             * this one command goes to the importing node, behind
             * ASKING (which covers the next command only), on a
             * connection of its own; the next goes to the owner again. */
            a->asked_what = what;
            a->wire = W_ASKING;
            a->sent_ms = now;
            a->aux = fairlock__conn_start_node(&lock->conn, host, port, 0,
                                               &lock->err);
            if (a->aux == NULL)
                return 1; /* read as a failure by the next step */
            const char *asking[1] = {"ASKING"};
            queue_plain(lock, a->aux, 1, asking);
            queue_cmd_on(lock, a->aux);
            return 1;
        }
        if (moved) {
            snprintf(lock->conn.node_host, sizeof lock->conn.node_host, "%s",
                     host);
            lock->conn.node_port = port;
            drop_conn(lock);
            if (++a->redirects <= FREE_REDIRECTS) {
                resend(lock, what);
                return 1;
            }
        }
    } else {
        a->redirects = 0;
    }
    a->pause_ms = a->pause_ms == 0                 ? FIRST_PAUSE_MS
                  : a->pause_ms * 2 > MAX_PAUSE_MS ? MAX_PAUSE_MS
                                                   : a->pause_ms * 2;
    a->retry = what;
    a->retry_at = now + min64(a->pause_ms, until - now);
    return 1;
}

/* ---------------------------------------------------------------------------
 * Ending an operation
 * ------------------------------------------------------------------------- */

static void finish(fairlock *lock, int code) {
    fairlock__async *a = lock->async;
    a->finished = 1;
    a->result = code;
    if (code == FAIRLOCK_OK)
        fairlock__ok(lock);
    else
        lock->err.code = code;
}

/* Runs cancel.lua for the current token, from the first page. */
static void start_clean(fairlock *lock, clean_kind why) {
    fairlock__async *a = lock->async;
    a->clean = why;
    a->undone = 0;
    snprintf(a->cursor, sizeof a->cursor, "0");
    fairlock__request_pending(lock);
    fairlock__build_cancel(&a->cmd, &lock->keys, lock->token,
                           lock->opts.fifo ? lock->ticket : FAIRLOCK__NO_TICKET,
                           lock->foreign_live_ms, a->cursor,
                           lock->attempt_unanswered);
    send_script(lock, W_CANCEL);
}

/* Gives up the acquire with `code` (the handle's error says why): our
 * queue entry, or a grant made meanwhile, is removed first.  A connection
 * that failed is made again for that once; if that fails too, the request
 * stays pending for the next call or fairlock_free(), as in the blocking
 * API. */
static void abandon(fairlock *lock, int code) {
    fairlock__async *a = lock->async;
    lock->err.code = code;
    a->saved = lock->err;
    if (lock->token[0] == '\0') {
        finish(lock, code);
        return;
    }
    start_clean(lock, CLEAN_ABANDON);
}

/* ---------------------------------------------------------------------------
 * Acquire
 * ------------------------------------------------------------------------- */

static void send_attempt(fairlock *lock) {
    fairlock__async *a = lock->async;
    /* Until the reply is read, the server may have queued or granted us. */
    fairlock__request_pending(lock);
    lock->last_sent_ms = fairlock__now_ms();
    if (lock->opts.fifo)
        fairlock__build_acquire(&a->cmd, &lock->keys, lock->token, lock->ticket,
                                lock->foreign_live_ms, a->plan.try_once);
    else
        fairlock__build_acquire_nonfifo(
            &a->cmd, &lock->keys, lock->token,
            a->plan.try_once ? 0 : 2 * a->plan.check_ms + 100,
            lock->foreign_live_ms);
    send_script(lock, W_ATTEMPT);
}

static void begin_request(fairlock *lock) {
    fairlock__async *a = lock->async;
    if (a->cancelled) {
        fairlock__fail(lock, FAIRLOCK_INTERRUPTED, "cancelled");
        finish(lock, FAIRLOCK_INTERRUPTED);
        return;
    }
    int rc = fairlock__acquire_request(lock, &a->plan);
    if (rc != FAIRLOCK_OK) {
        finish(lock, rc);
        return;
    }
    lock->acquire_start_ms = fairlock__now_ms();
    a->pushed = 0;
    a->deadline_ms = a->plan.timeout_ms == FAIRLOCK_FOREVER
                         ? INT64_MAX
                         : fairlock__now_ms() + a->plan.timeout_ms;
    send_attempt(lock);
}

/* The grant is confirmed, or its confirmation is owed (confirm_owed),
 * and replicated when asked: record it. */
static void granted(fairlock *lock) {
    fairlock__async *a = lock->async;
    fairlock__lease_publish(lock->lease, FAIRLOCK_STATE_HELD, a->valid_until);
    /* No renewal thread: the timer below renews on this connection. */
    if (a->confirm_owed) {
        /* Recorded as owed in the lease too, for fairlock_detach() (which
         * makes it first) and so that a blocking fairlock_extend() that
         * succeeds meanwhile shows (see run_steps).  No renewal thread
         * exists (may_confirm_later) to act on it: the timer sends it, as
         * a renewal would be, a third of the way to the capped bound,
         * which leaves two thirds of it for the retries. */
        fairlock__lease_start_capped(lock->lease, lock->token, a->grant_lease,
                                     a->grant_from, 0, lock->lease_ms);
        a->renew_at = a->grant_from + (a->valid_until - a->grant_from) / 3;
    } else {
        fairlock__lease_start(lock->lease, lock->token, a->grant_lease,
                              a->grant_from, 0);
        a->renew_at = lock->opts.auto_renew && lock->lease_ms > 0
                          ? a->grant_from + lock->lease_ms / 3
                          : INT64_MAX;
    }
    fairlock__stats_granted(lock, a->pushed);
    finish(lock, FAIRLOCK_OK);
}

static void confirmed(fairlock *lock) {
    fairlock__async *a = lock->async;
    if (a->cancelled) {
        fairlock__fail(lock, FAIRLOCK_INTERRUPTED, "cancelled");
        abandon(lock, FAIRLOCK_INTERRUPTED);
        return;
    }
    if (lock->opts.wait_replicas > 0) {
        fairlock__build_wait_replicas(&a->cmd, lock->opts.wait_replicas,
                                      lock->opts.wait_replicas_timeout_ms);
        send_cmd(lock, W_REPLICAS);
        return;
    }
    granted(lock);
}

/* Whether the confirmation of a capped hand-off may wait for the renewal
 * timer, as the blocking acquire leaves it to the renewal thread: not
 * with wait_replicas (the full lease is written before the WAIT that
 * replicates it), nor when the handle has a renewal thread from blocking
 * acquires, which the lease would set on it (fairlock__lease_start_capped
 * wakes the thread): the timer is the one to send it, and on_lost is
 * called from fairlock_async_process(). */
static int may_confirm_later(const fairlock *lock) {
    return lock->opts.wait_replicas == 0 && lock->renewer == NULL;
}

/* A hand-off is capped at the head's liveness window, so that a head that
 * died before it could take the lock holds it no longer than that; the
 * live head then takes its full lease.  That confirmation need not delay
 * the grant: while the capped lease has at least two thirds of its length
 * to run, the grant is reported at once with the capped lease's bound, and
 * the renewal timer sends the confirmation (extend.lua to the full lease,
 * 0 = PERSIST) a third of the way to that bound, if the hold still goes
 * on: a release before then deletes the key anyway, so a short hold costs
 * the attempt, the BLPOP and the release, as a leased one.  Until the
 * confirmation is answered, fairlock_valid_until_ms() is the capped bound;
 * a confirmation that finds the key not ours, or that gets no answer until
 * that bound, makes the handle LOST (on_lost), as a renewal would.
 * Otherwise (as take_grant() in acquire.c) a capped hand-off, or a grant
 * whose bound has aged (it counts from our last request), is extended to
 * the full lease before it is reported. */
static void take_grant(fairlock *lock) {
    /* (a->pushed: the grant came with a push, for the statistics.) */
    fairlock__async *a = lock->async;
    const fairlock__attempt *at = &a->attempt;
    lock->request = FAIRLOCK__REQUEST_HELD;
    lock->rank = -1;
    if (at->ticket > 0)
        lock->ticket = at->ticket;
    lock->fence = at->fence;
    lock->permit = at->permit;
    a->grant_from = lock->last_sent_ms;
    a->valid_until = fairlock__validity(a->grant_from, at->lease_ms);
    a->grant_lease = at->lease_ms;
    a->confirm_owed = 0;
    int64_t px = at->lease_ms;
    int64_t left = a->valid_until - fairlock__now_ms();
    if (px != lock->lease_ms && px > 0 && left >= px * 2 / 3 &&
        may_confirm_later(lock)) {
        a->confirm_owed = 1;
        confirmed(lock);
        return;
    }
    if (px != lock->lease_ms || (px > 0 && left < px * 2 / 3)) {
        a->confirm_from = fairlock__now_ms();
        fairlock__build_extend(&a->cmd, &lock->keys, lock->token,
                               lock->lease_ms);
        send_script(lock, W_CONFIRM);
        return;
    }
    confirmed(lock);
}

/* After a wait: time out, or try again. */
static void waited(fairlock *lock) {
    fairlock__async *a = lock->async;
    if (fairlock__now_ms() >= a->deadline_ms) {
        fairlock__fail(lock, FAIRLOCK_TIMEOUT,
                       "not granted within %" PRId64 " ms", a->plan.timeout_ms);
        abandon(lock, FAIRLOCK_TIMEOUT);
        return;
    }
    send_attempt(lock);
}

/* The attempt did not grant: try again, give up, or wait (acquire_loop()
 * in acquire.c, step for step). */
static void not_granted(fairlock *lock) {
    fairlock__async *a = lock->async;
    const fairlock__attempt *at = &a->attempt;
    int64_t now = fairlock__now_ms();
    if (at->next_call == FAIRLOCK__NEXT_NOW &&
        (a->plan.try_once || now < a->deadline_ms)) {
        send_attempt(lock);
        return;
    }
    if (a->plan.try_once) {
        fairlock__request_forget(lock);
        fairlock__fail(lock, FAIRLOCK_TIMEOUT,
                       "the lock is taken (%" PRId64
                       " waiter(s) ahead) and the call does not wait",
                       at->rank);
        finish(lock, FAIRLOCK_TIMEOUT);
        return;
    }
    int64_t heartbeat_ms = a->plan.live_ms / 3 > 0 ? a->plan.live_ms / 3 : 1;
    int64_t poll_ms = lock->opts.fifo ? heartbeat_ms : a->plan.check_ms;
    if (!lock->opts.fifo || at->rank <= 1 ||
        at->next_call == FAIRLOCK__NEXT_POLL)
        poll_ms = min64(poll_ms, a->plan.check_ms);
    if (at->pttl_ms > 0)
        poll_ms = min64(poll_ms, at->pttl_ms + 1);
    int64_t until = a->deadline_ms == INT64_MAX
                        ? now + poll_ms
                        : min64(a->deadline_ms, now + poll_ms);
    int64_t slice = until - now;
    if (slice < 1) {
        waited(lock);
        return;
    }
    fairlock__build_wait_push(&a->cmd, &lock->keys, lock->opts.fifo, slice);
    send_cmd(lock, W_BLPOP);
}

/* ---------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------- */

/* A script's reply: 0 to go on with it, 1 when it was sent again with its
 * body (NOSCRIPT), -1 when it failed (the handle's error says why; the
 * code is in lock->err.code). */
static int script_reply(fairlock *lock, wire_kind what,
                        const redisReply *reply) {
    fairlock__async *a = lock->async;
    if (reply->type != REDIS_REPLY_ERROR)
        return 0;
    if (!a->by_eval && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        a->by_eval = 1;
        resend(lock, what);
        return 1;
    }
    fairlock__script_failed(&lock->err, fairlock__conn_kind(&lock->conn),
                            &lock->keys, a->cmd.script,
                            a->by_eval ? "EVAL" : "EVALSHA", reply->str);
    return -1;
}

static void on_attempt(fairlock *lock, const redisReply *reply) {
    fairlock__async *a = lock->async;
    int rc = fairlock__read_attempt(&lock->err, reply, &a->attempt);
    if (rc != FAIRLOCK_OK) {
        abandon(lock, rc);
        return;
    }
    lock->request = FAIRLOCK__REQUEST_WAITING;
    if (a->attempt.ticket > 0)
        lock->ticket = a->attempt.ticket;
    lock->rank = a->attempt.granted || !lock->opts.fifo ? -1 : a->attempt.rank;
    if (a->cancelled) {
        fairlock__fail(lock, FAIRLOCK_INTERRUPTED, "cancelled");
        abandon(lock, FAIRLOCK_INTERRUPTED);
    } else if (a->attempt.granted) {
        take_grant(lock);
    } else {
        not_granted(lock);
    }
}

static void on_blpop(fairlock *lock, const redisReply *reply) {
    fairlock__async *a = lock->async;
    int woken;
    fairlock__attempt handoff;
    int rc = fairlock__read_wait_push(&lock->err,
                                      fairlock__conn_kind(&lock->conn),
                                      lock->opts.fifo, reply, &woken, &handoff);
    if (rc != FAIRLOCK_OK) {
        abandon(lock, rc);
        return;
    }
    if (a->cancelled) {
        /* A hand-off just popped is undone by cancel.lua. */
        fairlock__fail(lock, FAIRLOCK_INTERRUPTED, "cancelled");
        abandon(lock, FAIRLOCK_INTERRUPTED);
        return;
    }
    if (woken == FAIRLOCK__WAKE_PUSHED && lock->opts.fifo) {
        a->attempt = handoff;
        a->pushed = 1;
        take_grant(lock);
        return;
    }
    waited(lock);
}

static void on_confirm(fairlock *lock, const redisReply *reply) {
    fairlock__async *a = lock->async;
    if (fairlock__decode_flag(reply) != 1) {
        /* The capped hand-off ran out before we took it: wait again. */
        lock->request = FAIRLOCK__REQUEST_WAITING;
        lock->fence = 0;
        waited(lock);
        return;
    }
    a->grant_from = a->confirm_from;
    a->grant_lease = lock->lease_ms;
    a->valid_until = fairlock__validity(a->grant_from, lock->lease_ms);
    confirmed(lock);
}

static void on_replicas(fairlock *lock, const redisReply *reply) {
    long long acked;
    int rc = fairlock__read_wait_replicas(
        &lock->err, fairlock__conn_kind(&lock->conn), reply, &acked);
    if (rc == FAIRLOCK_OK && acked < lock->opts.wait_replicas)
        rc = fairlock__fail(lock, FAIRLOCK_NOTREPLICATED,
                            "only %lld of %d replicas acknowledged the "
                            "grant within %" PRId64 " ms; released it",
                            acked, lock->opts.wait_replicas,
                            lock->opts.wait_replicas_timeout_ms);
    if (rc != FAIRLOCK_OK) {
        abandon(lock, rc);
        return;
    }
    if (lock->async->cancelled) {
        fairlock__fail(lock, FAIRLOCK_INTERRUPTED, "cancelled");
        abandon(lock, FAIRLOCK_INTERRUPTED);
        return;
    }
    granted(lock);
}

/* The end of the cancel.lua pages, or their failure (rc). */
static void cleaned(fairlock *lock, int rc) {
    fairlock__async *a = lock->async;
    switch (a->clean) {
    case CLEAN_BEFORE:
        if (rc != FAIRLOCK_OK)
            finish(lock, rc);
        else
            begin_request(lock);
        return;
    case CLEAN_ABANDON:
        /* The failure that made us clean up is what the caller hears. */
        lock->err = a->saved;
        finish(lock, a->saved.code);
        return;
    case CLEAN_RELEASE:
        if (rc != FAIRLOCK_OK)
            finish(lock, rc);
        else if (!a->undone)
            finish(lock,
                   fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                                  "the lock is not held by this handle (an "
                                  "earlier release may have succeeded)"));
        else
            finish(lock, FAIRLOCK_OK);
        return;
    }
}

static void on_cancel(fairlock *lock, const redisReply *reply) {
    fairlock__async *a = lock->async;
    int undone = 0;
    int rc = fairlock__read_cancel(&lock->err, reply, a->cursor, &undone);
    if (rc != FAIRLOCK_OK) {
        cleaned(lock, rc);
        return;
    }
    a->undone = a->undone || undone;
    if (strcmp(a->cursor, "0") == 0) {
        fairlock__stats_hold_ended(lock);
        fairlock__request_forget(lock);
        cleaned(lock, FAIRLOCK_OK);
        return;
    }
    fairlock__build_cancel(&a->cmd, &lock->keys, lock->token,
                           lock->opts.fifo ? lock->ticket : FAIRLOCK__NO_TICKET,
                           lock->foreign_live_ms, a->cursor,
                           lock->attempt_unanswered);
    send_script(lock, W_CANCEL);
}

static void on_release(fairlock *lock, const redisReply *reply) {
    fairlock__async *a = lock->async;
    int released = fairlock__decode_flag(reply) == 1;
    fairlock__stats_hold_ended(lock);
    fairlock__request_forget(lock);
    if (a->was_lost) {
        lock->err = a->lost;
        finish(lock, FAIRLOCK_NOTOWNED);
    } else if (!released) {
        finish(lock, fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                                    "lease lost: it ran out before the "
                                    "release, and the lock was free or "
                                    "someone else's"));
    } else {
        finish(lock, FAIRLOCK_OK);
    }
}

/* The outcome of an extend of ours (the user's or the timer's): 1 it
 * extended our lock, 0 the lock is not ours, -1 unknown. */
static int extend_done(fairlock *lock, int outcome) {
    return fairlock__lease_extend_end(lock->lease, outcome);
}

static void on_extend(fairlock *lock, const redisReply *reply, int rc) {
    fairlock__async *a = lock->async;
    int owned = rc == FAIRLOCK_OK && fairlock__decode_flag(reply) == 1;
    int held = extend_done(lock, rc != FAIRLOCK_OK ? -1 : owned);
    if (rc != FAIRLOCK_OK) {
        finish(lock, rc);
        return;
    }
    if (!held) {
        fairlock__error lost;
        fairlock__lease_stop(lock->lease, &lost);
        fairlock__stats_hold_ended(lock);
        fairlock__request_forget(lock);
        a->renew_at = INT64_MAX;
        a->confirm_owed = 0;
        finish(lock, fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                                    "lease lost: the lock is free or someone "
                                    "else's"));
        return;
    }
    lock->lease_ms = a->ext_lease_ms;
    if (a->confirm_owed) {
        /* The user's lease supersedes the confirmation still owed (which
         * stays owed when the extend's outcome is unknown): without
         * auto_renew nothing renews it. */
        a->confirm_owed = 0;
        if (!lock->opts.auto_renew)
            a->renew_at = INT64_MAX;
    }
    if (a->renew_at != INT64_MAX)
        a->renew_at = a->sent_ms + lock->lease_ms / 3;
    finish(lock, FAIRLOCK_OK);
}

/* The renewal's outcome (or the one-shot confirmation's): on to the next
 * one, a retry soon, or lost. */
static void on_renew(fairlock *lock, const redisReply *reply, int rc) {
    fairlock__async *a = lock->async;
    int outcome = rc != FAIRLOCK_OK ? -1 : fairlock__decode_flag(reply) == 1;
    int held = extend_done(lock, outcome);
    if (lock->request != FAIRLOCK__REQUEST_HELD || a->renew_at == INT64_MAX)
        return; /* released or forgotten meanwhile */
    int64_t now = fairlock__now_ms();
    if (outcome == 1 && held) {
        a->confirm_owed = 0;
        a->renew_at = lock->opts.auto_renew && lock->lease_ms > 0
                          ? a->sent_ms + lock->lease_ms / 3
                          : INT64_MAX;
        return;
    }
    int64_t bound = fairlock__lease_valid_until(lock->lease);
    if (outcome < 0 && now < bound) {
        int64_t left = bound - now;
        a->renew_at = now + min64(RENEW_RETRY_MS, left / 4);
        return;
    }
    a->renew_at = INT64_MAX;
    a->confirm_owed = 0;
    fairlock__lease_publish(lock->lease, FAIRLOCK_STATE_LOST, 0);
    if (lock->opts.on_lost != NULL)
        lock->opts.on_lost(lock, lock->opts.on_lost_arg);
}

/* The command on the wire ended: reply, or NULL when the connection failed
 * (the handle's error says how). */
static void on_reply(fairlock *lock, wire_kind what, const redisReply *reply) {
    fairlock__async *a = lock->async;
    int rc = FAIRLOCK_OK;
    if (what == W_SENTINEL) {
        on_sentinel(lock, reply);
        return;
    }
    if (what == W_ROLE) {
        on_role(lock, reply);
        return;
    }
    if (what == W_MYID) {
        on_myid(lock, reply);
        return;
    }
    if (what == W_ASKING) {
        if (reply != NULL && reply->type != REDIS_REPLY_ERROR) {
            a->wire = W_ASKED; /* the command's reply is next */
            return;
        }
        if (reply != NULL)
            fairlock__error_reply(&lock->err, FAIRLOCK__URL_CLUSTER, "ASKING",
                                  reply->str);
        /* Unknown whether the command behind it ran (when the connection
         * failed): the caller's failure path resolves it. */
        drop_aux(lock);
        on_reply(lock, a->asked_what, NULL);
        return;
    }
    if (what == W_ASKED) {
        drop_aux(lock);
        on_reply(lock, a->asked_what, reply);
        return;
    }
    int refused = cluster_refused(lock, what, reply);
    if (refused > 0)
        return;
    if (refused < 0)
        reply = NULL; /* gave up: the handle's error says why */
    /* Behind sentinels, a master demoted since we found it refuses
     * writes: ask the sentinels again and send the command there, for up
     * to the I/O timeout (READONLY proves it did not run). */
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        lock->url.kind == FAIRLOCK__URL_SENTINEL &&
        strncmp(reply->str, "READONLY", 8) == 0 &&
        fairlock__now_ms() - a->first_ms < lock->conn.io_timeout_ms) {
        drop_conn(lock);
        resend(lock, what);
        return;
    }
    if (reply == NULL) {
        rc = FAIRLOCK_REDIS;
    } else if (a->cmd.script != NULL && what != W_BLPOP && what != W_REPLICAS) {
        int s = script_reply(lock, what, reply);
        if (s > 0)
            return;
        if (s < 0)
            rc = lock->err.code;
    }
    /* An attempt without a reply may still reach the server (from the
     * socket of a dead connection, a stalled server) after the cancel
     * that resolves it, which must then keep it out (a tombstone). */
    if (what == W_ATTEMPT)
        lock->attempt_unanswered = reply == NULL && refused == 0;
    switch (what) {
    case W_NONE:
        return;
    case W_RENEW:
        on_renew(lock, reply, rc);
        return;
    case W_EXTEND:
        on_extend(lock, reply, rc);
        return;
    default:
        break;
    }
    if (rc != FAIRLOCK_OK) {
        switch (what) {
        case W_CANCEL:
            cleaned(lock, rc);
            return;
        case W_RELEASE:
            /* Outcome unknown: the token is kept, a release retries. */
            fairlock__request_pending(lock);
            finish(lock, rc);
            return;
        case W_STATUS:
            finish(lock, rc);
            return;
        default:
            abandon(lock, rc);
            return;
        }
    }
    switch (what) {
    case W_ATTEMPT:
        on_attempt(lock, reply);
        return;
    case W_BLPOP:
        on_blpop(lock, reply);
        return;
    case W_CONFIRM:
        on_confirm(lock, reply);
        return;
    case W_REPLICAS:
        on_replicas(lock, reply);
        return;
    case W_CANCEL:
        on_cancel(lock, reply);
        return;
    case W_RELEASE:
        on_release(lock, reply);
        return;
    case W_STATUS:
        rc = fairlock__read_status(&lock->err, &lock->keys, reply, &a->status);
        finish(lock, rc);
        return;
    case W_NONE:
    case W_RENEW:
    case W_EXTEND:
    case W_SENTINEL:
    case W_ROLE:
    case W_MYID:
    case W_ASKING:
    case W_ASKED:
        return;
    }
}

/* ---------------------------------------------------------------------------
 * Starting operations
 * ------------------------------------------------------------------------- */

/* Every kind of URL is supported; a borrowed redisContext is not (its
 * caller may block on it, and it has no engine to watch). */
static int unsupported(fairlock *lock) {
    if (lock->conn.borrowed)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the non-blocking API does not support a "
                              "borrowed redisContext yet: give a url");
    return FAIRLOCK_OK;
}

/* Checks that an operation may start and makes the async state. */
static int may_start(fairlock *lock) {
    if (!lock->usable)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the handle was not created successfully");
    int rc = unsupported(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    fairlock__async *a = lock->async;
    if (a == NULL) {
        a = calloc(1, sizeof *a);
        if (a == NULL)
            return fairlock__fail(lock, FAIRLOCK_NOMEM, "out of memory");
        a->told_fd = -1;
        a->told_due = -1;
        a->renew_at = INT64_MAX;
        a->retry_at = INT64_MAX;
        lock->async = a;
    }
    if (a->freeing)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the handle is being freed");
    if (a->op != OP_NONE)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "an operation is already in progress on this "
                              "handle");
    /* A forked child must not use its parent's connection. */
    if (lock->conn.eng != NULL && lock->conn.pid != getpid())
        fairlock__conn_close(&lock->conn);
    return FAIRLOCK_OK;
}

static void reset_op(fairlock__async *a, op_kind op, fairlock_done_fn done,
                     fairlock_status_fn status_done, void *arg) {
    a->op = op;
    a->done = done;
    a->status_done = status_done;
    a->arg = arg;
    a->cancelled = 0;
    a->finished = 0;
    a->result = FAIRLOCK_OK;
    a->status = NULL;
    a->was_lost = 0;
}

/* The first step of the operation, once the wire is free. */
static void begin_op(fairlock *lock) {
    fairlock__async *a = lock->async;
    a->begin = 0;
    switch (a->op) {
    case OP_ACQUIRE:
        if (lock->request == FAIRLOCK__REQUEST_PENDING ||
            lock->request == FAIRLOCK__REQUEST_WAITING)
            start_clean(lock, CLEAN_BEFORE);
        else
            begin_request(lock);
        return;
    case OP_RELEASE:
        /* No renewal is sent from here on (the timer is stopped, and
         * the wire was free): none can reach the server after the
         * release. */
        a->renew_at = INT64_MAX;
        a->confirm_owed = 0;
        a->was_lost = fairlock__lease_stop(lock->lease, &a->lost);
        if (lock->request == FAIRLOCK__REQUEST_PENDING) {
            start_clean(lock, CLEAN_RELEASE);
            return;
        }
        fairlock__request_pending(lock);
        fairlock__build_release(&a->cmd, &lock->keys, lock->token,
                                lock->foreign_live_ms);
        send_script(lock, W_RELEASE);
        return;
    case OP_EXTEND:
        if (lock->request != FAIRLOCK__REQUEST_HELD) {
            finish(lock, fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                                        "the lock is not held by this "
                                        "handle"));
            return;
        }
        fairlock__lease_extend_begin(lock->lease, a->ext_lease_ms,
                                     fairlock__now_ms());
        fairlock__build_extend(&a->cmd, &lock->keys, lock->token,
                               a->ext_lease_ms);
        send_script(lock, W_EXTEND);
        return;
    case OP_STATUS:
        fairlock__build_status(&a->cmd, &lock->keys, a->max_waiters);
        send_script(lock, W_STATUS);
        return;
    case OP_NONE:
        return;
    }
}

static int start_op(fairlock *lock) {
    fairlock__async *a = lock->async;
    if (a->wire == W_NONE)
        begin_op(lock);
    else
        a->begin = 1; /* a renewal is on the wire */
    tell(lock);
    return FAIRLOCK_OK;
}

int fairlock_acquire_start(fairlock *lock, int64_t timeout_ms,
                           fairlock_done_fn done, void *arg) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (done == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "done is NULL");
    fairlock__plan plan;
    int rc = may_start(lock);
    if (rc == FAIRLOCK_OK)
        rc = fairlock__acquire_plan(lock, timeout_ms, timeout_ms == 0 ? 0 : -1,
                                    FAIRLOCK_DEFAULT, &plan);
    if (rc != FAIRLOCK_OK)
        return rc;
    fairlock__async *a = lock->async;
    reset_op(a, OP_ACQUIRE, done, NULL, arg);
    a->plan = plan;
    return start_op(lock);
}

int fairlock_release_start(fairlock *lock, fairlock_done_fn done, void *arg) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (done == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "done is NULL");
    int rc = may_start(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    if (lock->request != FAIRLOCK__REQUEST_HELD &&
        lock->request != FAIRLOCK__REQUEST_PENDING)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "the lock is not held by this handle");
    reset_op(lock->async, OP_RELEASE, done, NULL, arg);
    return start_op(lock);
}

int fairlock_extend_start(fairlock *lock, int64_t ttl_ms, fairlock_done_fn done,
                          void *arg) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (done == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "done is NULL");
    int rc = may_start(lock);
    if (rc == FAIRLOCK_OK)
        rc = fairlock__extend_check(lock, ttl_ms);
    if (rc != FAIRLOCK_OK)
        return rc;
    reset_op(lock->async, OP_EXTEND, done, NULL, arg);
    lock->async->ext_lease_ms = ttl_ms == FAIRLOCK_FOREVER ? 0 : ttl_ms;
    return start_op(lock);
}

int fairlock_status_start(fairlock *lock, size_t max_waiters,
                          fairlock_status_fn done, void *arg) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (done == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "done is NULL");
    int rc = may_start(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    reset_op(lock->async, OP_STATUS, NULL, done, arg);
    lock->async->max_waiters = max_waiters;
    return start_op(lock);
}

int fairlock_async_cancel(fairlock *lock) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    fairlock__async *a = lock->async;
    if (a == NULL || a->op != OP_ACQUIRE || a->finished)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "no acquire is in progress");
    if (a->cancelled)
        return FAIRLOCK_OK;
    a->cancelled = 1;
    if (a->wire == W_NONE && a->retry_at != INT64_MAX && a->retry != W_CANCEL) {
        /* A refused command waiting to be sent again: it never ran.  (A
         * page of cancel.lua waiting so is a cleanup in progress, left to
         * end with its own result: abandoning again would replace the
         * failure it reports.) */
        a->retry_at = INT64_MAX;
        fairlock__fail(lock, FAIRLOCK_INTERRUPTED, "cancelled");
        abandon(lock, FAIRLOCK_INTERRUPTED);
    } else if (a->wire == W_BLPOP) {
        /* The wait would hold the connection for up to a heartbeat: cut
         * it.  Whatever it popped, cancel.lua undoes. */
        a->wire = W_NONE;
        drop_conn(lock);
        fairlock__fail(lock, FAIRLOCK_INTERRUPTED, "cancelled");
        abandon(lock, FAIRLOCK_INTERRUPTED);
    }
    /* Otherwise the reply on its way decides (begin_request,
     * on_attempt, confirmed, on_replicas look at `cancelled`); a
     * cleanup in progress ends with its own result. */
    tell(lock);
    return FAIRLOCK_OK;
}

/* ---------------------------------------------------------------------------
 * Driving
 * ------------------------------------------------------------------------- */

int fairlock_async_busy(const fairlock *lock) {
    return lock != NULL && lock->async != NULL && lock->async->op != OP_NONE;
}

int fairlock_async_fd(const fairlock *lock) {
    return lock == NULL || lock->async == NULL ? -1 : watched_fd(lock);
}

int fairlock_async_events(const fairlock *lock) {
    return lock == NULL || lock->async == NULL ? 0 : watched_events(lock);
}

int64_t fairlock_async_timeout(const fairlock *lock) {
    return lock == NULL || lock->async == NULL ? -1 : relative(due_at(lock));
}

static void run_steps(fairlock *lock, int settle);

/* Blocks until no command of the handle is on the wire nor waiting to be
 * sent again: between operations, that is a renewal of the timer (or the
 * reconnect, redirect or retry it is in), whose reply a blocking call
 * would otherwise read as its own.  Each step waits for at most its
 * deadline (io_timeout_ms), as in fairlock_async_process(), and the reply
 * is applied as there (on_lost included); no new renewal is started. */
static void settle_wire(fairlock *lock) {
    fairlock__async *a = lock->async;
    /* The watcher is not called from a blocking call (a binding may have
     * let go of its interpreter lock for it): a socket closed meanwhile
     * is told at the next operation's start, as one a blocking call
     * replaced (see tell()). */
    a->depth++;
    a->settling = 1;
    for (;;) {
        run_steps(lock, 1);
        if (a->freeing || (a->wire == W_NONE && a->retry_at == INT64_MAX))
            break;
        if (a->wire != W_NONE && engine_live(lock)) {
            /* Its reply, or the engine FAILED (which the next step reads
             * as the outcome). */
            fairlock__engine *eng = engine_of(lock);
            wire_kind what = a->wire;
            redisReply *reply = fairlock__engine_wait_reply(
                eng, fairlock__engine_deadline(eng));
            if (reply != NULL) {
                a->wire = W_NONE;
                on_reply(lock, what, reply);
                freeReplyObject(reply);
            }
        } else if (a->wire == W_NONE) {
            int64_t now = fairlock__now_ms();
            if (a->retry_at > now)
                poll(NULL, 0, (int)min64(a->retry_at - now, INT32_MAX));
        }
    }
    a->settling = 0;
    a->depth--;
}

int fairlock__async_idle(fairlock *lock) {
    if (fairlock_async_busy(lock))
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "a non-blocking operation is in progress on "
                              "this handle");
    fairlock__async *a = lock->async;
    if (a == NULL)
        return FAIRLOCK_OK;
    if (a->wire != W_NONE || a->retry_at != INT64_MAX)
        settle_wire(lock);
    /* A hold that ended by a blocking call leaves the timer set; it must
     * not renew the next hold, which a blocking acquire renews with its
     * own thread.  (The timer itself runs only from
     * fairlock_async_process(), on this thread: never during the blocking
     * call.) */
    if (lock->request != FAIRLOCK__REQUEST_HELD) {
        a->renew_at = INT64_MAX;
        a->confirm_owed = 0;
    }
    return FAIRLOCK_OK;
}

/* Calls the callback of the finished operation.  The handle is free for
 * the next operation before it runs, so the callback may start one. */
static void deliver(fairlock *lock) {
    fairlock__async *a = lock->async;
    op_kind op = a->op;
    fairlock_done_fn done = a->done;
    fairlock_status_fn status_done = a->status_done;
    void *arg = a->arg;
    int code = a->result;
    fairlock_status *status = a->status;
    a->finished = 0;
    a->status = NULL;
    a->op = OP_NONE;
    if (op == OP_STATUS)
        status_done(lock, code, code == FAIRLOCK_OK ? status : NULL, arg);
    else if (op != OP_NONE)
        done(lock, code, arg);
}

/* Runs the handle until it waits for the socket or a timer, or is to be
 * freed.  With `settle`, only until the command on the wire and a retry
 * of it are done (settle_wire()): nothing new is started. */
static void run_steps(fairlock *lock, int settle) {
    fairlock__async *a = lock->async;
    while (!a->freeing) {
        if (a->wire != W_NONE) {
            fairlock__engine *eng = engine_of(lock);
            wire_kind what = a->wire;
            if (eng == NULL ||
                fairlock__engine_get_state(eng) == FAIRLOCK__ENGINE_FAILED) {
                if (eng != NULL)
                    lock->err = *fairlock__engine_error(eng);
                a->wire = W_NONE;
                if (what != W_SENTINEL && what != W_ASKING && what != W_ASKED)
                    drop_conn(lock);
                on_reply(lock, what, NULL);
                continue;
            }
            redisReply *reply = fairlock__engine_reply(eng);
            if (reply != NULL) {
                a->wire = W_NONE;
                on_reply(lock, what, reply);
                freeReplyObject(reply);
                continue;
            }
            if (fairlock__engine_get_state(eng) == FAIRLOCK__ENGINE_FAILED)
                continue;
            if (fairlock__now_ms() >= fairlock__engine_deadline(eng)) {
                fairlock__engine_expire(eng);
                continue;
            }
            return;
        }
        if (a->retry_at != INT64_MAX) {
            if (fairlock__now_ms() < a->retry_at)
                return;
            a->retry_at = INT64_MAX;
            resend(lock, a->retry);
            continue;
        }
        if (settle)
            return;
        if (a->finished) {
            deliver(lock);
            continue;
        }
        if (a->begin) {
            begin_op(lock);
            continue;
        }
        if (a->renew_at != INT64_MAX &&
            lock->request == FAIRLOCK__REQUEST_HELD &&
            fairlock__now_ms() >= a->renew_at && a->op == OP_NONE) {
            if (a->confirm_owed && !fairlock__lease_owed(lock->lease)) {
                /* A blocking fairlock_extend() since the grant succeeded:
                 * its lease is in force, and without auto_renew nothing
                 * renews it. */
                a->confirm_owed = 0;
                if (!lock->opts.auto_renew) {
                    a->renew_at = INT64_MAX;
                    continue;
                }
            }
            fairlock__lease_extend_begin(lock->lease, lock->lease_ms,
                                         fairlock__now_ms());
            fairlock__build_extend(&a->cmd, &lock->keys, lock->token,
                                   lock->lease_ms);
            send_script(lock, W_RENEW);
            continue;
        }
        return;
    }
}

void fairlock_async_process(fairlock *lock, int events) {
    if (lock == NULL || lock->async == NULL)
        return;
    fairlock__async *a = lock->async;
    /* A loop's timer may fire a little early (libuv counts whole ms of
     * its own clock): then nothing changes here, and the watcher must be
     * told the same time again or the timer would never be set again. */
    if (events == 0)
        a->told_due = -2;
    fairlock__engine *eng = engine_of(lock);
    if (a->wire != W_NONE && engine_live(lock)) {
        /* What the socket is ready for, asked of the kernel rather than
         * taken from the caller: a spurious or stale event (a loop that
         * reports both directions, an event for a socket since replaced)
         * must not read as a connect that completed. */
        struct pollfd pfd = {fairlock__engine_fd(eng),
                             fairlock__engine_events(eng), 0};
        if (pfd.events != 0 && poll(&pfd, 1, 0) > 0)
            fairlock__engine_handle(eng, pfd.revents);
    } else if (a->wire == W_NONE && events != 0 && engine_live(lock) &&
               fairlock__engine_get_state(eng) == FAIRLOCK__ENGINE_READY) {
        /* Readable while idle (a loop that keeps watching for reads
         * between operations): the server closed the connection, or sent
         * what nobody asked for.  Either way the connection is done with,
         * and the loop stops watching it, rather than being told the
         * same thing again and again. */
        struct pollfd pfd = {fairlock__engine_fd(eng), POLLIN, 0};
        if (poll(&pfd, 1, 0) > 0)
            drop_conn(lock);
    }
    a->depth++;
    run_steps(lock, 0);
    a->depth--;
    if (a->freeing) {
        if (a->depth == 0)
            fairlock_free(lock);
        return;
    }
    if (a->depth == 0)
        tell(lock);
}

void fairlock_async_set_watcher(fairlock *lock, fairlock_watch_fn watch,
                                void *arg) {
    if (lock == NULL)
        return;
    if (lock->async == NULL) {
        if (watch == NULL)
            return;
        fairlock__async *a = calloc(1, sizeof *a);
        if (a == NULL)
            return;
        a->told_fd = -1;
        a->told_due = -1;
        a->renew_at = INT64_MAX;
        a->retry_at = INT64_MAX;
        lock->async = a;
    }
    fairlock__async *a = lock->async;
    a->watch = watch;
    a->watch_arg = arg;
    /* Told at once, whatever it was told before. */
    a->told_fd = -2;
    tell(lock);
}

int fairlock__async_free(fairlock *lock) {
    fairlock__async *a = lock->async;
    if (a == NULL)
        return 0;
    if (a->depth > 0) {
        a->freeing = 1;
        return 1;
    }
    if (a->watch != NULL) {
        fairlock_watch_fn watch = a->watch;
        a->watch = NULL;
        watch(lock, -1, FAIRLOCK_EV_FREED, -1, a->watch_arg);
    }
    if (a->wire == W_RENEW || a->wire == W_EXTEND)
        fairlock__lease_extend_end(lock->lease, -1);
    if (a->aux != NULL) {
        fairlock__engine_free(a->aux);
        a->aux = NULL;
    }
    /* An attempt on the wire: its reply is waited for (the free blocks
     * anyway), so that its outcome is known -- the ticket to cancel, and
     * no tombstone needed for an attempt that could otherwise still
     * arrive after the cancel.  Any other command on the wire has an
     * unknown outcome: the connection goes (which also ends a BLPOP), and
     * fairlock_free() resolves the request with cancel.lua on a new one. */
    if (a->wire == W_ATTEMPT && engine_live(lock)) {
        fairlock__engine *eng = lock->conn.eng;
        redisReply *reply = fairlock__engine_wait_reply(
            eng, fairlock__engine_deadline(eng));
        fairlock__attempt at;
        if (reply != NULL && reply->type != REDIS_REPLY_ERROR &&
            fairlock__read_attempt(&lock->err, reply, &at) == FAIRLOCK_OK) {
            a->wire = W_NONE;
            lock->attempt_unanswered = 0;
            if (at.ticket > 0)
                lock->ticket = at.ticket;
        } else if (reply != NULL) {
            a->wire = W_NONE; /* refused: it did not run */
        }
        freeReplyObject(reply);
    }
    /* An attempt sent behind ASKING is written on the ASK connection
     * right after it, so it is unanswered from W_ASKING on. */
    if (a->wire == W_ATTEMPT || ((a->wire == W_ASKING || a->wire == W_ASKED) &&
                                 a->asked_what == W_ATTEMPT))
        lock->attempt_unanswered = 1;
    if (a->wire != W_NONE) {
        fairlock__conn_close(&lock->conn);
        if (lock->request != FAIRLOCK__REQUEST_IDLE)
            fairlock__request_pending(lock);
    } else if (lock->request == FAIRLOCK__REQUEST_WAITING) {
        fairlock__request_pending(lock);
    }
    fairlock_status_free(a->status);
    free(a);
    lock->async = NULL;
    return 0;
}
