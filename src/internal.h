/* internal.h -- what the library's files share and nobody else sees. */
#ifndef FAIRLOCK_INTERNAL_H
#define FAIRLOCK_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"
#include "protocol.h"

#define FAIRLOCK__ERRMSG_SIZE 256

/* ---- URL parsing (url.c): pure, no I/O, fuzzable. ---- */

typedef enum {
    FAIRLOCK__URL_TCP,
    FAIRLOCK__URL_UNIX,
    FAIRLOCK__URL_SENTINEL, /* nodes are sentinels; master names the set */
    FAIRLOCK__URL_CLUSTER   /* nodes are seed nodes of the cluster */
} fairlock__url_kind;

#define FAIRLOCK__URL_MAX_NODES 64

typedef struct fairlock__endpoint {
    char *host; /* without IPv6 brackets */
    int port;
} fairlock__endpoint;

/* TLS settings of a URL (rediss://, its query parameters and the tls_*
 * options).  Strings NULL when not given. */
typedef struct fairlock__tls_config {
    int enabled;
    int verify;      /* check the certificate chain (default 1) */
    int check_host;  /* check the name too (default 1) */
    char *ca_file;   /* NULL and ca_path NULL: the system's trust store */
    char *ca_path;   /* a hashed directory (c_rehash) */
    char *cert_file; /* client certificate, for mutual TLS */
    char *key_file;
    char *server_name; /* SNI and the name checked; default the host */
    /* The OpenSSL context built from the settings above once, when the
     * handle is made (tls.c: fairlock__tls_prepare), so that a new
     * connection does not read the CA and certificate files again; NULL:
     * built per connection (and its error reported there).  Counted: a
     * copy of the URL holds a reference of its own. */
    void *ctx;
} fairlock__tls_config;

typedef struct fairlock__url {
    fairlock__url_kind kind;
    char *host; /* TCP: host name or address, without IPv6 brackets */
    int port;
    fairlock__endpoint *nodes; /* SENTINEL and CLUSTER */
    size_t node_count;
    char *master; /* SENTINEL */
    char *path;   /* UNIX: socket path */
    char *user;   /* NULL when absent; percent-decoded */
    char *password;
    char *sentinel_user; /* SENTINEL: sent to the sentinels; from options */
    char *sentinel_password;
    int db;
    fairlock__tls_config tls; /* every node of the URL */
} fairlock__url;

/* Parses url into *out (all strings heap-allocated).  On failure returns
 * FAIRLOCK_INVALID or FAIRLOCK_NOMEM and writes a reason, which never
 * repeats the URL's credentials, into err. */
int fairlock__url_parse(const char *url, fairlock__url *out, char *err,
                        size_t errlen);
void fairlock__url_clear(fairlock__url *url);
/* A deep copy.  Returns FAIRLOCK_OK or FAIRLOCK_NOMEM. */
int fairlock__url_copy(fairlock__url *dst, const fairlock__url *src);

/* Replaces the credentials of a parsed URL with copies of those that are
 * not NULL (the options of the same names), and checks the result: a user
 * needs a password, sentinel credentials a redis+sentinel:// URL.  Returns
 * FAIRLOCK_OK, FAIRLOCK_INVALID or FAIRLOCK_NOMEM with a reason, which
 * never repeats a password, in err. */
int fairlock__url_set_auth(fairlock__url *url, const char *user,
                           const char *password, const char *sentinel_user,
                           const char *sentinel_password, char *err,
                           size_t errlen);

/* Applies the tls_* options (those not NULL, and the flags when set) to a
 * parsed URL.  Returns FAIRLOCK_OK, FAIRLOCK_INVALID (TLS on a unix
 * socket, or a build without TLS) or FAIRLOCK_NOMEM with a reason. */
int fairlock__url_set_tls(fairlock__url *url, const fairlock_options *opts,
                          char *err, size_t errlen);

/* ---- Errors (errors.c). ---- */

/* A result code and its detail.  The handle has one, and so has the
 * renewal thread, so that neither writes the other's. */
typedef struct fairlock__error {
    int code;
    char msg[FAIRLOCK__ERRMSG_SIZE];
} fairlock__error;

/* Records code and a printf-style detail; returns code. */
int fairlock__error_set(fairlock__error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- Misconfiguration (diagnose.c): pure, fuzzable. ---- */

/* What to change, when an error reply (reply text, without the '-') shows
 * a misconfiguration: no or a wrong password, a missing database, a
 * replica, a server of another kind than the URL says.  NULL otherwise.
 * kind: how the connection was made. */
const char *fairlock__diagnose(const char *reply, fairlock__url_kind kind);

/* What the first bytes a server sends on a new connection show: TLS
 * records to a plain-text client, or a plain-text reply to a TLS client
 * (tls non-zero).  NULL when they show neither. */
const char *fairlock__diagnose_first_bytes(const char *buf, size_t len,
                                           int tls);

/* Records FAIRLOCK_REDIS and "<what> failed: <reply>", with the diagnosis
 * first when there is one; returns FAIRLOCK_REDIS. */
int fairlock__error_reply(fairlock__error *err, fairlock__url_kind kind,
                          const char *what, const char *reply);

/* Records the error reply of script `script` sent as `sent` (EVALSHA or
 * EVAL) on the lock whose key is key[0..key_len): missing scripting and
 * missing ACL permissions named as such, anything else as
 * fairlock__error_reply() does.  Returns FAIRLOCK_REDIS. */
int fairlock__error_script(fairlock__error *err, fairlock__url_kind kind,
                           const char *script, const char *key, size_t key_len,
                           const char *sent, const char *reply);

/* ---- Lua scripts (generated from src/lua by CMake). ---- */

typedef struct fairlock__script {
    const char *name;
    const char *sha1; /* 40 lowercase hex digits */
    const char *body;
} fairlock__script;

extern const fairlock__script fairlock__script_acquire;
extern const fairlock__script fairlock__script_acquire_nonfifo;
extern const fairlock__script fairlock__script_release;
extern const fairlock__script fairlock__script_cancel;
extern const fairlock__script fairlock__script_extend;
extern const fairlock__script fairlock__script_status;
extern const fairlock__script fairlock__script_sem_acquire;
extern const fairlock__script fairlock__script_sem_release;
extern const fairlock__script fairlock__script_sem_cancel;
extern const fairlock__script fairlock__script_sem_extend;
extern const fairlock__script fairlock__script_sem_holds;
extern const fairlock__script fairlock__script_sem_status;

/* ---- Randomness and clock (token.c). ---- */

/* Fills buf from getrandom(2).  Returns 0, or -1 with errno set. */
int fairlock__random_bytes(unsigned char *buf, size_t len);

/* CLOCK_MONOTONIC in ms. */
int64_t fairlock__now_ms(void);

/* ---- Connection (conn.c). ---- */

typedef struct fairlock__engine fairlock__engine;

typedef struct fairlock__conn {
    redisContext *ctx;     /* borrowed: the caller's */
    fairlock__engine *eng; /* owned: made by the library (engine.c) */
    int borrowed;
    pid_t pid;                /* process that made an owned connection */
    const fairlock__url *url; /* where to connect when not borrowed */
    int64_t io_timeout_ms;
    /* Cluster: until when (monotonic ms) a command refused with TRYAGAIN,
     * CLUSTERDOWN or a redirect is sent again.  An acquire sets its own
     * deadline (INT64_MAX when it waits for ever) and puts 0 back; any
     * command may retry for io_timeout_ms from its first try in any case. */
    int64_t deadline_ms;
    /* Cluster: the node that answered for the lock's slot last (from a
     * MOVED redirect), tried before the seeds. */
    char node_host[256];
    int node_port;
    /* Sentinel: the sentinel that answered last, asked first next time. */
    size_t sentinel_first;
    /* The last command got no reply (fairlock__conn_command returned
     * NULL): it may have run, or may still run, even after the caller
     * has given up on it. */
    int unanswered;
} fairlock__conn;

/* Starts connecting an owned connection to a single server (TCP or unix
 * socket, TLS or not) without waiting: the engine's state shows how far it
 * got.  Replaces the connection there was.  Returns FAIRLOCK_OK,
 * FAIRLOCK_INVALID (another kind of URL, or a borrowed context) or
 * FAIRLOCK_NOMEM with err set. */
int fairlock__conn_start(fairlock__conn *conn, fairlock__error *err);
/* Starts connecting to one node of the connection's URL without waiting:
 * a sentinel (sentinel non-zero: its credentials, no SELECT) or a data
 * node.  NULL only when out of memory (err set). */
fairlock__engine *fairlock__conn_start_node(const fairlock__conn *conn,
                                            const char *host, int port,
                                            int sentinel, fairlock__error *err);

/* Room for EVALSHA sha1 nkeys KEYS... ARGV...  */
#define FAIRLOCK__EVAL_ARGS (3 + FAIRLOCK__KEY_COUNT + FAIRLOCK__CMD_ARGS)
/* Writes that command into cmd/lens (FAIRLOCK__EVAL_ARGS) and returns its
 * count; nkeys is the caller's buffer of 8.  EVAL and the body instead
 * are cmd[0] = "EVAL", cmd[1] = script->body. */
int fairlock__format_evalsha(const char **cmd, size_t *lens, char *nkeys,
                             const fairlock__keys *keys,
                             const fairlock__script *script, int argc,
                             const char *const *argv);

/* Connects lazily (owned) or checks the borrowed context.  Returns
 * FAIRLOCK_OK, FAIRLOCK_REDIS or FAIRLOCK_NOMEM. */
int fairlock__conn_ready(fairlock__conn *conn, fairlock__error *err);
void fairlock__conn_close(fairlock__conn *conn);
/* How the connection was made (a borrowed one counts as TCP). */
fairlock__url_kind fairlock__conn_kind(const fairlock__conn *conn);
/* Whether the connection is there and has not failed. */
int fairlock__conn_alive(const fairlock__conn *conn);

/* Sends one command and reads its reply.  block_ms > 0 lengthens the
 * socket timeout for a blocking command.  Replies that prove the command
 * did not run (on a cluster: MOVED and ASK, followed; TRYAGAIN and
 * CLUSTERDOWN, retried with back-off; READONLY behind sentinels) are
 * retried until conn->deadline_ms or io_timeout_ms after the first try,
 * whichever is later; then the last such reply is returned with err set
 * to a description (a slot in migration, the cluster down).  Returns NULL
 * with err set on I/O failure, never resent (its outcome is unknown);
 * other error replies are returned to the caller. */
redisReply *fairlock__conn_command(fairlock__conn *conn, fairlock__error *err,
                                   int argc, const char **argv,
                                   const size_t *lens, int64_t block_ms);

/* One data node that fairlock__conn_each_master() visits: the
 * connection itself (eng NULL), or a master of a cluster. */
typedef struct fairlock__node {
    fairlock__conn *conn;
    struct fairlock__engine *eng;
} fairlock__node;
typedef int (*fairlock__node_fn)(void *arg, fairlock__node *node,
                                 fairlock__error *err);
/* Calls fn for the server the connection reaches, or, on a cluster, for
 * each master serving slots (from CLUSTER NODES), on a connection of its
 * own.  Stops at the first code fn returns other than FAIRLOCK_OK. */
int fairlock__conn_each_master(fairlock__conn *conn, fairlock__error *err,
                               fairlock__node_fn fn, void *arg);
/* One command on such a node, without redirects (NULL with err set on
 * I/O failure). */
redisReply *fairlock__node_command(fairlock__node *node, fairlock__error *err,
                                   int argc, const char **argv,
                                   const size_t *lens);

/* Splits the "host:port" of a MOVED or ASK error reply ("MOVED 3999
 * h:6381") into host[host_len] and *port > 0; an empty host means
 * asked_host, the node we asked (none: -1).  Returns 0 or -1. */
int fairlock__parse_redirect(const char *reply, const char *asked_host,
                             char *host, size_t host_len, int *port);

/* Records that `what` failed with this reply (an error reply, or one of
 * an unexpected type), diagnosed for the connection's kind; returns
 * FAIRLOCK_REDIS. */
int fairlock__conn_error_reply(const fairlock__conn *conn, fairlock__error *err,
                               const char *what, const redisReply *reply);

/* Runs a script with the lock's keys via EVALSHA, falling back to EVAL on
 * NOSCRIPT.  Returns FAIRLOCK_OK and *out, or FAIRLOCK_REDIS with err set
 * (server error replies included). */
int fairlock__conn_eval(fairlock__conn *conn, fairlock__error *err,
                        const fairlock__keys *keys,
                        const fairlock__script *script, int argc,
                        const char *const *argv, redisReply **out);

/* ---- Lease and request state (lease.c). ---- */

/* A grant's lease, shared by the owner thread and the renewal thread;
 * only lease.c reads or writes its fields. */
typedef struct fairlock__lease fairlock__lease;

/* NULL when out of memory. */
fairlock__lease *fairlock__lease_new(void);
void fairlock__lease_free(fairlock__lease *lease);
/* Publishes the handle's state (a FAIRLOCK_STATE_*) and validity bound
 * for fairlock_state() and fairlock_valid_until_ms(), which read them from
 * any thread (a NULL lease reads as idle). */
void fairlock__lease_publish(fairlock__lease *lease, int state,
                             int64_t valid_until_ms);
int fairlock__lease_state(fairlock__lease *lease);
int64_t fairlock__lease_valid_until(fairlock__lease *lease);
/* The bound of a lease of lease_ms (0: no expiry) counted from sent_ms,
 * less the drift margin. */
int64_t fairlock__validity(int64_t sent_ms, int64_t lease_ms);
/* The drift margin taken off every validity bound. */
int64_t fairlock__drift_ms(int64_t lease_ms);

/* Records the grant `token` with `lease_ms` (0: no expiry), counted from
 * sent_ms, a time before the command that set that lease was sent, and
 * publishes its validity bound; from now on the bound is the ledger's to
 * publish until fairlock__lease_stop().  With `renews`, the renewal thread
 * renews it. */
void fairlock__lease_start(fairlock__lease *lease, const char *token,
                           int64_t lease_ms, int64_t sent_ms, int renews);
/* fairlock__lease_start for a capped hand-off, whose confirmation is owed:
 * the grant is recorded with capped_ms, and the renewal thread (or the
 * loop's timer, which asks fairlock__lease_owed) is to set the lease to
 * lease_ms (0: no expiry) when a renewal would be due, a third of the way
 * to the capped lease's bound, and then, unless the grant is renewed,
 * stop.  A release before then needs none.  An extend by the owner that
 * succeeds supersedes it; one of unknown outcome leaves it owed. */
void fairlock__lease_start_capped(fairlock__lease *lease, const char *token,
                                  int64_t capped_ms, int64_t sent_ms,
                                  int renews, int64_t lease_ms);
/* 1 while that confirmation has not succeeded (owner thread). */
int fairlock__lease_owed(fairlock__lease *lease);
/* Stops renewing, waits for a renewal in flight and forgets the grant.
 * Returns 1 if the lease was found lost, with the reason copied into err. */
int fairlock__lease_stop(fairlock__lease *lease, fairlock__error *err);
/* A manual extend of the recorded grant: _begin just before the script is
 * sent (sent_ms read before that), _end with its outcome: 1 the script
 * extended our lock, 0 it found the lock not ours, -1 unknown (the call
 * failed).  _end returns 1 if the lock is held afterwards: 0 also when the
 * renewer has meanwhile seen the key taken.  On success the renewer goes
 * on with the new lease, and resumes after a loss it reported for want of
 * an answer.  Both publish the bound. */
void fairlock__lease_extend_begin(fairlock__lease *lease, int64_t lease_ms,
                                  int64_t sent_ms);
int fairlock__lease_extend_end(fairlock__lease *lease, int outcome);

/* One renewal, as the renewal thread gets it from the lease. */
typedef struct fairlock__lease_turn {
    char token[FAIRLOCK_TOKEN_MAX];
    uint64_t grant;    /* the generation it renews */
    int64_t lease_ms;  /* what to ask for */
    int64_t budget_ms; /* time the lease has left: bounds the call */
} fairlock__lease_turn;
/* Waits until a renewal is due and records it as sent; returns 0 when the
 * thread is to end (fairlock__lease_shutdown). */
int fairlock__lease_next_turn(fairlock__lease *lease,
                              fairlock__lease_turn *turn);
/* Records the renewal's outcome (rc of the call; owned: the script found
 * our token) and plans the next one.  Returns 1 when this makes the lease
 * lost: the caller then calls on_lost.  A renewal of an older generation
 * changes nothing. */
int fairlock__lease_turn_done(fairlock__lease *lease,
                              const fairlock__lease_turn *turn, int rc,
                              int owned, const char *io_error);
/* Tells the renewal thread to end. */
void fairlock__lease_shutdown(fairlock__lease *lease);

/* The request on the handle; see lease.c. */
typedef enum {
    FAIRLOCK__REQUEST_IDLE,
    FAIRLOCK__REQUEST_WAITING,
    FAIRLOCK__REQUEST_HELD,
    FAIRLOCK__REQUEST_PENDING
} fairlock__request_state;

/* Forgets the request (token, ticket, fence) and publishes idle. */
void fairlock__request_forget(fairlock *lock);
/* A script of the request is on the wire or failed: outcome unknown. */
void fairlock__request_pending(fairlock *lock);
/* Runs cancel.lua for the current token: removes our queue entry, undoes a
 * grant (a held lock too), and passes the lock on.  *undone is 1 when a
 * grant was undone.  On success the request is forgotten. */
int fairlock__request_resolve(fairlock *lock, int *undone);
/* Gives up the current request after a failure, keeping the error being
 * reported; returns code. */
int fairlock__request_abandon(fairlock *lock, int code);

/* ---- Acquire (acquire.c), shared by the blocking and non-blocking API. */

/* An acquire's terms, resolved from the call and the handle. */
typedef struct fairlock__plan {
    int64_t timeout_ms; /* FAIRLOCK_FOREVER or >= 0 */
    int64_t check_ms;
    int64_t lease_ms; /* 0: no expiry */
    int64_t live_ms;  /* the liveness window our token advertises */
    int try_once;
} fairlock__plan;

/* Checks the arguments (no I/O).  FAIRLOCK_OK, or a code with the
 * handle's error set. */
int fairlock__acquire_plan(fairlock *lock, int64_t timeout_ms, int blocking,
                           int64_t check_interval_ms, fairlock__plan *plan);
/* A new request: a fresh token and its wake list.  FAIRLOCK_OK or a code
 * with the handle's error set. */
int fairlock__acquire_request(fairlock *lock, const fairlock__plan *plan);

/* ---- The non-blocking API (async.c). ---- */

typedef struct fairlock__async fairlock__async;

/* FAIRLOCK_OK when no non-blocking operation is in progress, else
 * FAIRLOCK_INVALID with the handle's error set: the blocking calls refuse
 * to run then. */
int fairlock__async_idle(fairlock *lock);
/* Called first by fairlock_free(): abandons the operation in progress
 * (without its callback), tells the watcher, closes the connection if a
 * command is on it, and frees the async state.  Returns 1 when the free
 * is to wait until the callback running on the handle returns (it is then
 * done from there), 0 to go on freeing. */
int fairlock__async_free(fairlock *lock);

/* ---- Renewal thread (renew.c). ---- */

typedef struct fairlock__renewer fairlock__renewer;

/* Starts the handle's renewal thread, on copies of its URL and keys and on
 * its lease.  Returns FAIRLOCK_OK or FAIRLOCK_NOMEM with err set. */
int fairlock__renewer_start(fairlock *lock, fairlock__error *err);
/* 1 if the handle's renewal thread runs in this process, or there is none
 * yet (a forked child's handle has its parent's, which it cannot use). */
int fairlock__renewer_usable(const fairlock__renewer *renewer);
/* Stops and joins the thread; closes its connection. */
void fairlock__renewer_free(fairlock__renewer *renewer);

/* ---- The handle. ---- */

struct fairlock {
    int usable; /* fairlock_create() succeeded */
    char *name;
    size_t name_len;
    fairlock__keys keys; /* with the current request's wake list */

    fairlock__url url; /* parsed when given or needed */
    int has_url;
    fairlock__conn conn;

    /* The options as given, but for name, url and redis (copied or
     * resolved above); blocking and fifo are 0 or 1. */
    fairlock_options opts;

    /* Current request or grant (owner thread only). */
    fairlock__request_state request;
    char token[FAIRLOCK_TOKEN_MAX];
    int64_t ticket;
    int64_t rank;      /* while waiting, as of the last attempt; else -1 */
    pid_t request_pid; /* process that made the current request */
    int64_t fence;
    int64_t permit; /* semaphore: the grant's permit */
    int64_t lease_ms;
    int64_t foreign_live_ms; /* the stale timeout, resolved at create */
    int64_t last_sent_ms;    /* when the last acquire script was sent */
    /* The last acquire script got no reply: a copy of it may reach the
     * server after the cancel that resolves the request, so that cancel
     * leaves a tombstone (cancel.lua). */
    int attempt_unanswered;

    fairlock__lease *lease;     /* the grant's, shared with the renewer */
    fairlock__renewer *renewer; /* NULL until auto_renew first needs it */

    fairlock__async *async; /* NULL until the non-blocking API is used */

    fairlock__error err;

    /* Identity sent with acquires (opts.identity): this host's name and
     * the cleaned label; keys.who_host points here when it is on. */
    char who_host[65];
    char who_label[FAIRLOCK_LABEL_MAX + 1];

    /* fairlock_stats_get(): counters, and when the current acquire began
     * and the current grant was taken (monotonic ms). */
    fairlock_stats stats;
    int64_t acquire_start_ms;
    int64_t granted_ms;
};

/* Records a grant in the statistics: the hold starts now (pushed: it was
 * a hand-off). */
void fairlock__stats_granted(fairlock *lock, int pushed);
/* Records the end of the current hold in the statistics (release, loss,
 * detach); nothing when there was none. */
void fairlock__stats_hold_ended(fairlock *lock);

/* Records code and detail on the handle; returns code. */
#define fairlock__fail(lock, ...) fairlock__error_set(&(lock)->err, __VA_ARGS__)
/* Records success on the handle; returns FAIRLOCK_OK. */
int fairlock__ok(fairlock *lock);
/* Checks the handle and connects.  Returns FAIRLOCK_OK or a code with the
 * handle's error set. */
int fairlock__ready(fairlock *lock);
/* Checks a duration: a value in [min, 2^53], or one of the sentinels the
 * option allows. */
int fairlock__check_duration(fairlock *lock, const char *what, int64_t value,
                             int64_t min, int allow_forever, int allow_default);
/* What fairlock_extend() and fairlock_extend_start() ask of their
 * arguments and of the handle (lock.c): a lease, a held lock, a finite
 * lease under auto_renew. */
int fairlock__extend_check(fairlock *lock, int64_t ttl_ms);

#endif
