/* fairlock.h -- FIFO-fair distributed locks on Redis.
 *
 * A fairlock handle names one lock.  Whoever asks first gets it first; a
 * holder or waiter that crashes is evicted after its lease or liveness
 * window; every change of lock state is one atomic Lua script on the Redis
 * server.  The key layout is the one of the Python RedisLockFifo reference
 * (NAME, NAME:seq, NAME:queue), so fleets that mix both stay mutually
 * exclusive.
 *
 * Signals: the library never raises SIGPIPE on the connections it makes
 * itself (it writes with MSG_NOSIGNAL), so a broken connection is an error
 * code, not a signal.  A borrowed redisContext (opts.redis) is written by
 * hiredis, which may raise it: ignore SIGPIPE then (signal(SIGPIPE,
 * SIG_IGN)) unless dying is what you want.  The library's own renewal
 * thread blocks all signals, so it never runs your handlers.  Connections
 * are made close-on-exec.
 *
 * Thread safety: a handle may be used by one thread at a time.  Different
 * handles are independent and may be used concurrently, unless they borrow
 * the same redisContext, which hiredis does not allow from two threads.
 * The library has no global mutable state and no init function.
 *
 * Durations are int64_t milliseconds.  FAIRLOCK_FOREVER means "none" in the
 * reference's sense (wait for ever / no expiry); FAIRLOCK_DEFAULT means
 * "use the handle's value" in per-call overrides and "derive it" in options.
 */
#ifndef FAIRLOCK_H
#define FAIRLOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FAIRLOCK_VERSION_MAJOR 0
#define FAIRLOCK_VERSION_MINOR 2
#define FAIRLOCK_VERSION_PATCH 0
#define FAIRLOCK_VERSION_STRING "0.2.0"
#define FAIRLOCK_VERSION_NUMBER                                                \
    (FAIRLOCK_VERSION_MAJOR * 10000 + FAIRLOCK_VERSION_MINOR * 100 +           \
     FAIRLOCK_VERSION_PATCH)
/* True when the header is at least version MAJOR.MINOR.PATCH. */
#define FAIRLOCK_VERSION_AT_LEAST(major, minor, patch)                         \
    (FAIRLOCK_VERSION_NUMBER >= ((major)*10000 + (minor)*100 + (patch)))

#if defined(FAIRLOCK_STATIC)
#define FAIRLOCK_EXPORT
#elif defined(__GNUC__)
#define FAIRLOCK_EXPORT __attribute__((visibility("default")))
#else
#define FAIRLOCK_EXPORT
#endif

/* Result codes.  The list is only ever appended to; numbers never change.
 * X(name, number, description) generates the enum, fairlock_strerror() and
 * fairlock_code_name(). */
#define FAIRLOCK_CODE_LIST(X)                                                  \
    X(OK, 0, "success")                                                        \
    X(TIMEOUT, 1, "lock not acquired: timed out or would block")               \
    X(REDIS, 2, "Redis failed: connection, authentication or server error")    \
    X(NOTOWNED, 3, "lock not owned by this handle, or its lease was lost")     \
    X(INVALID, 4, "invalid argument")                                          \
    X(NOMEM, 5, "out of memory")                                               \
    X(INTERRUPTED, 6, "interrupted by the caller's interrupt callback")        \
    X(BUSY, 7, "this handle already holds the lock")                           \
    X(NOTREPLICATED, 8, "grant not acknowledged by enough replicas")           \
    X(MISMATCH, 9,                                                             \
      "the name is in use as another kind of lock or with other permits")

typedef enum fairlock_code {
#define FAIRLOCK_ENUM_ENTRY(name, number, text) FAIRLOCK_##name = number,
    FAIRLOCK_CODE_LIST(FAIRLOCK_ENUM_ENTRY)
#undef FAIRLOCK_ENUM_ENTRY
} fairlock_code;

/* Duration sentinels. */
#define FAIRLOCK_FOREVER ((int64_t)-1)
#define FAIRLOCK_DEFAULT ((int64_t)-2)

/* Liveness window used when neither stale_timeout_ms nor timeout_ms is set:
 * a waiter that has not refreshed its queue entry for this long is evicted.
 * (The reference never evicts in that case, so one crashed waiter blocks its
 * queue for ever.) */
#define FAIRLOCK_DEFAULT_LIVENESS_MS ((int64_t)10000)
/* A waiter never advertises a liveness window below this, so that a tiny
 * stale timeout cannot make it evict itself between two heartbeats. */
#define FAIRLOCK_MIN_LIVENESS_MS ((int64_t)100)
/* Longest accepted lock name, in bytes. */
#define FAIRLOCK_NAME_MAX 1024
/* Owner tokens are NUL-terminated strings shorter than this. */
#define FAIRLOCK_TOKEN_MAX 64

struct redisContext;

/* The lock handle.  Opaque. */
typedef struct fairlock fairlock;

/* Called on the renewal thread when an automatically renewed lease is lost,
 * or the confirmation of a capped hand-off fails (see
 * fairlock_valid_until_ms; with or without auto_renew): the key vanished or
 * got another owner, or Redis stayed unreachable until the lease ran out.  It
 * may only call fairlock_state() and fairlock_valid_until_ms() on the handle;
 * the owner learns the rest from the next fairlock_release(), which then
 * returns FAIRLOCK_NOTOWNED. */
typedef void (*fairlock_lost_fn)(fairlock *lock, void *arg);

/* Called while a blocking acquire waits; return non-zero to give up, which
 * makes the acquire leave the queue and return FAIRLOCK_INTERRUPTED.  It is
 * polled at least every interrupt_check_ms. */
typedef int (*fairlock_interrupt_fn)(void *arg);

/* Options for fairlock_create().  Always initialise with
 * fairlock_options_init() and then set what you need, so that fields added
 * in later versions get their defaults.  The library copies every string it
 * keeps; the borrowed redisContext must outlive the handle.
 *
 * The struct may grow: new fields are only ever added at its end.
 * fairlock_options_init() and fairlock_create() are macros that pass the
 * size of the struct the program was compiled with, so the library reads
 * and writes only that much: a program built against an older header
 * gets the defaults for every later field, and one built against a newer
 * header than the library's has the fields the library does not know
 * ignored (check fairlock_version_number() before relying on a new
 * option).  Programs built against 0.1.0 call the functions of those
 * names, which assume 0.1.0's struct. */
typedef struct fairlock_options {
    /* The Redis key of the lock (the reference's `name`).  Required.  Any
     * bytes are allowed; name_len == 0 means strlen(name). */
    const char *name;
    size_t name_len;

    /* A connection owned by the caller (the reference's `redis_client`).
     * When NULL the handle connects lazily, on first use, to `url`. */
    struct redisContext *redis;

    /* Where to connect, one of
     *   redis://[[user]:pass@]host[:port][/db]
     *   unix://[[user]:pass@]/path/to.sock[?db=N]
     *   redis+sentinel://[[user]:pass@]host[:port][,host[:port]...]/master[/db]
     *     (the master is asked of the sentinels, and asked again after a
     *     command fails, so a failover is followed)
     *   redis+cluster://[[user]:pass@]host[:port][,host[:port]...]
     *     (seed nodes; MOVED and ASK redirects are followed)
     *   rediss://, rediss+sentinel://, rediss+cluster://: the same over
     *     TLS, with optional query parameters named as redis-py names
     *     them: ?ssl_ca_certs=FILE&ssl_ca_path=DIR&ssl_certfile=FILE&
     *     ssl_keyfile=FILE&ssl_cert_reqs=none|required&
     *     ssl_check_hostname=true|false&ssl_server_hostname=NAME
     *     (see the tls_* options below)
     * User and password may be percent-encoded.  NULL means $FAIRLOCK_URL,
     * then $REDIS_URL, then redis://127.0.0.1:6379/0.  With a borrowed
     * `redis` context it is used only by the renewal thread. */
    const char *url;

    /* Longest wait in acquire; FAIRLOCK_FOREVER (the default) waits for
     * ever.  When ttl_ms is FAIRLOCK_DEFAULT it is also the lease, as in the
     * reference. */
    int64_t timeout_ms;

    /* Lease of a grant: the lock key expires this long after the grant
     * unless extended.  FAIRLOCK_DEFAULT (the default) means "same as the
     * acquire's timeout", FAIRLOCK_FOREVER means no expiry.  A lease
     * longer than the liveness window (no expiry included) is first capped
     * at that window when the lock is handed over by a release, and set in
     * full only if the hold outlasts a third of the window: by a renewal
     * thread of the handle (blocking API; started on the first such
     * hand-off, with its own connection once it sends), or by the handle's
     * timer (non-blocking API: keep driving it while the lock is held; a
     * loop blocked for longer loses the lock, see on_lost). */
    int64_t ttl_ms;

    /* Non-zero (the default) to wait; zero to fail at once with
     * FAIRLOCK_TIMEOUT when the lock is taken. */
    int blocking;

    /* Safety-net poll of the queue head and of non-FIFO waiters (default
     * 50).  Hand-off itself is pushed by the releasing script. */
    int64_t check_interval_ms;

    /* Non-zero (the default) for first-come first-served order. */
    int fifo;

    /* A waiter whose queue entry has not been refreshed for this long is
     * evicted.  FAIRLOCK_DEFAULT means timeout_ms, and when that is
     * FAIRLOCK_FOREVER, FAIRLOCK_DEFAULT_LIVENESS_MS.  Waiters refresh
     * their entry every third of it. */
    int64_t stale_timeout_ms;

    /* Connect timeout and per-command reply timeout of connections the
     * handle makes itself (default 5000).  Blocking waits add their own
     * duration on top. */
    int64_t io_timeout_ms;

    /* Optional; see fairlock_interrupt_fn.  interrupt_check_ms defaults
     * to 100. */
    fairlock_interrupt_fn interrupt;
    void *interrupt_arg;
    int64_t interrupt_check_ms;

    /* Non-zero to renew the lease while the lock is held: a background
     * thread with its own connection (to `url`, which must then be usable
     * even when `redis` is given) extends it every third of the lease and
     * retries through short outages.  The lease must be finite.
     * fairlock_release() stops it first, so no renewal lands after a
     * release. */
    int auto_renew;
    fairlock_lost_fn on_lost;
    void *on_lost_arg;

    /* Non-zero to give every grant a fencing token (fairlock_fence()):
     * NAME:fence is incremented by every grant while it exists, so values
     * are strictly increasing per lock name, across queue resets and, with
     * persistence, server restarts.  That one key stays in Redis. */
    int fencing;

    /* When > 0, acquire waits (WAIT) until this many replicas have the
     * grant, for at most wait_replicas_timeout_ms (default 1000, at least
     * 1: Redis reads 0 as "for ever"); if fewer
     * acknowledge it, the lock is released and acquire returns
     * FAIRLOCK_NOTREPLICATED.  Replication stays asynchronous: a failover
     * at the wrong moment can still lose a grant. */
    int wait_replicas;
    int64_t wait_replicas_timeout_ms;

    /* Non-zero to store the lock under "{NAME}" instead of "NAME", so that
     * all its keys share one Redis Cluster hash slot.  With a
     * redis+cluster:// URL, a name must either contain a hash tag ("{...}"
     * with something inside) or set this; otherwise fairlock_create()
     * refuses it rather than let Redis answer CROSSSLOT.  Clients of the
     * reference implementation must then use the name "{NAME}". */
    int hash_tag;

    /* Credentials kept out of the URL, so that a program need not paste a
     * password into a string that ends up in logs or on a command line.
     * Each one that is not NULL replaces the URL's: `user` and `password`
     * are sent with AUTH to every Redis node (user NULL: the URL's user,
     * else the "default" user); a user needs a password.  `sentinel_user`
     * and `sentinel_password` (redis+sentinel:// only) are sent with AUTH
     * to the sentinels, which get none when both are NULL.  The library
     * copies them and never repeats them in a message.  The commands and
     * keys a Redis ACL user needs are listed in docs/acl.md.  Since
     * 0.2.0. */
    const char *user;
    const char *password;
    const char *sentinel_user;
    const char *sentinel_password;

    /* What kind of lock the name is (a fairlock_kind): the mutex (the
     * default), a counting semaphore of `permits` permits, or a
     * readers-writer lock whose handle holds it shared (a reader) when
     * `shared` is non-zero and exclusive (a writer) otherwise.  All three
     * are FIFO-fair (fifo must stay 1 for the new kinds) and keep every
     * other option's meaning: lease, renewal and lost notice, liveness
     * window, fencing (a token per grant, so per permit), timeouts.
     *
     * Why options on the one handle rather than a handle type per kind:
     * the acquire state machine, the lease and its renewer, cancel and
     * release are the same for every kind -- only the scripts differ --
     * so one handle keeps one API (fairlock_acquire(), fairlock_release(),
     * fairlock_with() ...) and every binding and tool built on it gets the
     * new kinds by setting two fields.
     *
     * The first user of a name records its kind, and N; every script
     * checks it, and an acquire that asks for another kind or another N
     * fails with FAIRLOCK_MISMATCH, whose message names both.  The record
     * lives while anyone holds or waits.  The new kinds have keys of their
     * own (NAME:kind, NAME:holders, ...; docs/protocol.md); the mutex's
     * layout is unchanged.  Since 0.2.0. */
    int kind;
    int64_t permits; /* semaphore: 1 to FAIRLOCK_PERMITS_MAX */
    int shared;      /* readers-writer lock: non-zero for a shared hold */

    /* TLS (since 0.2.0).  A rediss://, rediss+sentinel:// or
     * rediss+cluster:// URL, or `tls` non-zero with a redis:// one, makes
     * every connection of the handle TLS (1.2 or later), sentinels and
     * cluster nodes included.  The server's certificate is verified, and
     * its name must match tls_server_name, by default the host of the URL
     * (or the address a sentinel or a redirect names); `tls_insecure`
     * non-zero turns both checks off (a test server, never production).
     * tls_ca_file (PEM) and tls_ca_path (a c_rehash directory) name the
     * CAs to trust, by default the system's trust store; tls_cert_file
     * and tls_key_file (PEM, unencrypted) a client certificate for mutual
     * TLS.  tls_server_name is also sent as SNI.  Each one that is not
     * NULL replaces the URL's query parameter of the same meaning
     * (ssl_ca_certs, ssl_ca_path, ssl_certfile, ssl_keyfile,
     * ssl_server_hostname); the library copies them.  The files are read
     * once, by fairlock_create (a file that cannot be read then is tried
     * again, and its error reported, by each connection): a handle keeps
     * the CAs and client certificate it started with, and a renewed
     * certificate is used by the handles made after it.  A build without
     * TLS (FAIRLOCK_TLS=OFF) answers FAIRLOCK_INVALID. */
    int tls;
    int tls_insecure;
    const char *tls_ca_file;
    const char *tls_ca_path;
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_server_name;

    /* Identity (since 0.2.0): non-zero `identity` makes every grant and
     * queue entry of the handle carry who asked -- this host's name (at
     * most 64 bytes), the process id, and `identity_label` (a short free
     * text, e.g. a command line; at most FAIRLOCK_LABEL_MAX bytes, control
     * characters replaced by '?', and copied) -- stored on the server in
     * NAME:who by the same script step that queues or grants, and removed
     * by the step that removes the entry or the grant.  Operators read it
     * with fairlock_status_holder_identity() and
     * fairlock_status_waiter_identity() (`fairlock status`).  Never put a
     * secret in the label: anyone who can read the keys can read it.  Off
     * by default: it costs one more hash write per grant and per queue
     * entry (docs/benchmarks.md has the measured cost). */
    int identity;
    const char *identity_label;
} fairlock_options;

/* Longest identity label kept (fairlock_options.identity_label). */
#define FAIRLOCK_LABEL_MAX 200

/* Kinds of lock (fairlock_options.kind). Since 0.2.0. */
typedef enum fairlock_kind {
    FAIRLOCK_KIND_MUTEX = 0,
    FAIRLOCK_KIND_SEMAPHORE = 1,
    FAIRLOCK_KIND_RWLOCK = 2
} fairlock_kind;

/* Most permits a semaphore may have: each grant looks for the lowest free
 * permit, which costs up to one lookup per holder. */
#define FAIRLOCK_PERMITS_MAX ((int64_t)100000)

/* Fill *opts, a struct of `size` bytes, with the reference's defaults.
 * Call it through fairlock_options_init(opts).
 * Thread safety: touches only *opts. Since 0.2.0. */
FAIRLOCK_EXPORT void fairlock_options_init_sized(fairlock_options *opts,
                                                 size_t size);
#define fairlock_options_init(opts)                                            \
    fairlock_options_init_sized((opts), sizeof(fairlock_options))
/* The 0.1.0 entry point, for programs built against 0.1.0. */
FAIRLOCK_EXPORT void(fairlock_options_init)(fairlock_options *opts);

/* Make a lock handle from *opts, a struct of `size` bytes (which is not
 * kept).  Call it through fairlock_create(opts, out).  No I/O happens here.
 * Returns FAIRLOCK_OK and sets *out, or an error code.  As with
 * sqlite3_open(), on FAIRLOCK_INVALID *out is still a handle whose
 * fairlock_errmsg() explains the problem; free it with fairlock_free().  On
 * FAIRLOCK_NOMEM, *out is NULL.
 * Thread safety: reentrant. Since 0.2.0 (fairlock_create since 0.1.0). */
FAIRLOCK_EXPORT int fairlock_create_sized(const fairlock_options *opts,
                                          size_t size, fairlock **out);
#define fairlock_create(opts, out)                                             \
    fairlock_create_sized((opts), sizeof(fairlock_options), (out))
/* The 0.1.0 entry point, for programs built against 0.1.0. */
FAIRLOCK_EXPORT int(fairlock_create)(const fairlock_options *opts,
                                     fairlock **out);

/* Free a handle.  A lock it still holds is released first, on a best-effort
 * basis; queue entries are removed -- except in a forked child freeing its
 * copy of a handle, which leaves the parent's lock alone.
 * fairlock_free(NULL) does nothing.  An operation of the non-blocking API
 * in progress is abandoned without its callback (a wait on the server is
 * cut short by closing the connection), and the cleanup is done as above,
 * blocking for at most io_timeout_ms per command; to keep a loop from
 * blocking, cancel or release first and free in the callback.  Freeing
 * from within a callback of the handle is allowed.
 * Thread safety: the handle must not be in use elsewhere. Since 0.1.0. */
FAIRLOCK_EXPORT void fairlock_free(fairlock *lock);

/* Acquire with the handle's timeout, blocking and check_interval.
 * Returns FAIRLOCK_OK (held), FAIRLOCK_TIMEOUT (not acquired in time, or
 * taken and non-blocking), FAIRLOCK_REDIS, FAIRLOCK_INTERRUPTED,
 * FAIRLOCK_BUSY (this handle already holds it) or FAIRLOCK_INVALID.
 * On every failure the handle's queue entry is gone.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_acquire(fairlock *lock);

/* Acquire with per-call overrides, as the reference's acquire(timeout,
 * blocking, check_interval).  Pass FAIRLOCK_DEFAULT for timeout_ms and
 * check_interval_ms, and -1 for blocking, to keep the handle's value.  When
 * the handle's ttl_ms is FAIRLOCK_DEFAULT the lease is this call's timeout.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_acquire_ex(fairlock *lock, int64_t timeout_ms,
                                        int blocking,
                                        int64_t check_interval_ms);

/* Release the lock and hand it to the next live waiter.  Returns
 * FAIRLOCK_OK, FAIRLOCK_NOTOWNED (not held, released twice, or the lease
 * ran out and the key is gone or someone else's), or FAIRLOCK_REDIS.  After
 * FAIRLOCK_REDIS the outcome is unknown and the handle keeps its token, so
 * calling release again retries.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_release(fairlock *lock);

/* Set the remaining lease of a held lock to ttl_ms from now
 * (FAIRLOCK_FOREVER: no expiry).  Returns FAIRLOCK_OK, FAIRLOCK_NOTOWNED,
 * FAIRLOCK_INVALID or FAIRLOCK_REDIS.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_extend(fairlock *lock, int64_t ttl_ms);

/* Ask Redis whether this handle's token still owns the lock.  Sets *owned
 * to 1 or 0 and returns FAIRLOCK_OK, or returns FAIRLOCK_REDIS.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_owned(fairlock *lock, int *owned);

/* Ask Redis whether anyone holds the lock (for a semaphore or
 * readers-writer lock: whether any holder's lease is running).  Sets
 * *locked to 1 or 0.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_locked(fairlock *lock, int *locked);

/* Body of fairlock_with(). */
typedef int (*fairlock_body_fn)(void *arg);

/* The context-manager form: acquire, run body(arg), release whatever body
 * did.  Returns the acquire's error if it failed (body not run), else the
 * release's result (FAIRLOCK_NOTOWNED when the lease was lost while body
 * ran).  body's return value is stored in *body_result when not NULL.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_with(fairlock *lock, fairlock_body_fn body,
                                  void *arg, int *body_result);

/* Handle states reported by fairlock_state(). */
typedef enum fairlock_state_code {
    FAIRLOCK_STATE_IDLE = 0,   /* no lock held */
    FAIRLOCK_STATE_HELD = 1,   /* held, as far as the handle knows */
    FAIRLOCK_STATE_LOST = 2,   /* renewal found the lease lost */
    FAIRLOCK_STATE_PENDING = 3 /* a call failed with unknown outcome; the
                                  next call or fairlock_free resolves it */
} fairlock_state_code;

/* State of the handle.
 * Thread safety: may be called from any thread, also from on_lost.
 * Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_state(fairlock *lock);

/* Until when (CLOCK_MONOTONIC, in ms) the handle is sure to own the lock:
 * the time the granting or last renewing request was sent, plus the lease,
 * minus a drift margin (1% + 2 ms).  0 when not held, INT64_MAX for a
 * lease without expiry.  Compare with clock_gettime(CLOCK_MONOTONIC).
 * While two lease-setting commands may both have been the last the server
 * ran (an extend overlapping a renewal), the shorter bound.  After a
 * hand-off the lease is first capped at the liveness window, and the full
 * lease is asked for only if the hold outlasts a third of it (by the
 * handle's renewal thread, or the loop's timer for the non-blocking API):
 * until that succeeds, the bound is the capped lease's.
 * Thread safety: may be called from any thread. Since 0.1.0. */
FAIRLOCK_EXPORT int64_t fairlock_valid_until_ms(fairlock *lock);

/* Fencing token of the current grant (see fairlock_options.fencing), or 0.
 * A resource protects itself from a holder that was paused past its lease
 * by remembering the highest fence it has seen and refusing writes that
 * carry a lower one.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int64_t fairlock_fence(const fairlock *lock);

/* The permit (1 to N) the current grant of a semaphore holds: no two
 * holders at once have the same, so it can name one of N resources.  0
 * when not held or not a semaphore.
 * Thread safety: one thread per handle. Since 0.2.0. */
FAIRLOCK_EXPORT int64_t fairlock_permit(const fairlock *lock);

/* Release the lock held by `token` (as printed by a process that acquired
 * it and exited), handing it to the next waiter.  The handle must be of
 * the kind the token was granted by (a semaphore's N need not match).
 * The handle's own state is untouched.  Returns FAIRLOCK_OK,
 * FAIRLOCK_NOTOWNED when `token` does not hold the lock, FAIRLOCK_INVALID
 * or FAIRLOCK_REDIS.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_release_token(fairlock *lock, const char *token);

/* One waiter in a fairlock_status. */
typedef struct fairlock_waiter {
    int64_t ticket;
    const char *token;   /* as stored; other clients' tokens too */
    int64_t idle_ms;     /* since its last heartbeat, by the server clock */
    int64_t liveness_ms; /* its eviction window; 0 if unknown (not ours) */
} fairlock_waiter;

/* One holder in a fairlock_status.  The struct may grow: reach the
 * holders only through fairlock_status_holder(). */
typedef struct fairlock_holder {
    size_t size;       /* sizeof(fairlock_holder) in the library */
    const char *token; /* its owner token */
    int64_t pttl_ms;   /* remaining lease; -1 none */
    int64_t permit;    /* semaphore: 1..N; else 0 */
    int64_t fence;     /* fencing token of its grant, 0 when none */
    int shared;        /* readers-writer lock: 1 shared, 0 exclusive */
} fairlock_holder;

/* A snapshot of a lock, taken atomically on the server. */
typedef struct fairlock_status {
    int64_t server_time_ms;   /* the server's wall clock */
    const char *holder;       /* owner token, or NULL when free */
    int64_t holder_pttl_ms;   /* remaining lease; -1 none; -2 free */
    int64_t fence;            /* last fencing token, 0 when none */
    size_t total_waiters;     /* queue length */
    size_t waiter_count;      /* entries in waiters (at most max_waiters) */
    fairlock_waiter *waiters; /* in queue order */
    /* Since 0.2.0: the kind the name is in use as (a fairlock_kind; the
     * handle's when nothing is recorded), a semaphore's N (else 0), and
     * every holder (a mutex has at most one: `holder` above).  For the new
     * kinds `holder` and `holder_pttl_ms` are those of the holder whose
     * lease ends first. */
    int kind;
    int64_t permits;
    size_t holder_count;
    const void *holders_; /* private: use fairlock_status_holder() */
    /* Since 0.2.0, private: use fairlock_status_holder_identity() and
     * fairlock_status_waiter_identity(). */
    const void *holder_ids_;
    const void *waiter_ids_;
} fairlock_status;

/* Who asked for a grant or a place in the queue, as its handle recorded
 * it (fairlock_options.identity).  The struct may grow: reach it only
 * through the accessors below. Since 0.2.0. */
typedef struct fairlock_identity {
    size_t size;       /* sizeof(fairlock_identity) in the library */
    const char *host;  /* the requester's host name, as it sent it */
    int64_t pid;       /* its process id */
    const char *label; /* its label, "" when none */
    /* Server time (ms) of the grant (a holder) or of joining the queue (a
     * waiter), and how long ago that was at the snapshot. */
    int64_t since_ms;
    int64_t age_ms;
} fairlock_identity;

/* Take a snapshot of the lock: holder, lease, and up to max_waiters
 * waiters in order.  Free it with fairlock_status_free().  Changes nothing
 * on the server.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_status_get(fairlock *lock, size_t max_waiters,
                                        fairlock_status **out);
FAIRLOCK_EXPORT void fairlock_status_free(fairlock_status *status);

/* Holder i (0 <= i < status->holder_count) of a snapshot, or NULL.  Valid
 * as long as the snapshot.
 * Thread safety: reentrant. Since 0.2.0. */
FAIRLOCK_EXPORT const fairlock_holder *
fairlock_status_holder(const fairlock_status *status, size_t i);

/* The identity of holder i (as fairlock_status_holder()) or waiter i
 * (status->waiters[i]), or NULL when it recorded none (identity off, a
 * client of another kind, or a grant older than the record).  Valid as
 * long as the snapshot.
 * Thread safety: reentrant. Since 0.2.0. */
FAIRLOCK_EXPORT const fairlock_identity *
fairlock_status_holder_identity(const fairlock_status *status, size_t i);
FAIRLOCK_EXPORT const fairlock_identity *
fairlock_status_waiter_identity(const fairlock_status *status, size_t i);

/* Called by fairlock_list() once per lock found: its name (the key
 * prefix, "{NAME}" for a lock made with hash_tag; not NUL-terminated
 * when it contains a NUL byte: use name_len) and its kind, a
 * fairlock_kind.  Return non-zero to stop. */
typedef int (*fairlock_list_fn)(void *arg, const char *name, size_t name_len,
                                int kind);

/* Find the locks that exist (held or waited for) whose names match the
 * glob `pattern` (NULL or "": every name), on the server the handle
 * connects to -- every master of a Redis Cluster, the current master
 * behind Sentinel -- with SCAN, never KEYS, so the server is never
 * blocked for long; fn is called once per lock, in byte order of the
 * names, after the scan.  The handle's own name is not used: any handle
 * with the right URL and credentials will do.  A mutex held by a client of
 * another implementation with nobody waiting is not recognised (its
 * token is not ours).  As SCAN, it sees a lock that exists during the
 * whole scan, and may miss one that comes or goes meanwhile.  Needs the
 * SCAN, GET and GETRANGE commands (and CLUSTER NODES on a cluster).
 * Returns FAIRLOCK_OK, FAIRLOCK_INTERRUPTED when fn stopped it,
 * FAIRLOCK_REDIS, FAIRLOCK_NOMEM or FAIRLOCK_INVALID.
 * Thread safety: one thread per handle. Since 0.2.0. */
FAIRLOCK_EXPORT int fairlock_list(fairlock *lock, const char *pattern,
                                  fairlock_list_fn fn, void *arg);

/* Ticket of the current grant (its place in the FIFO queue: strictly
 * increasing while the queue is non-empty, restarting at 1 once it drains,
 * so neither unique nor rising over time: fairlock_fence() is), or 0 when
 * not held or granted without the queue (fifo = 0).
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int64_t fairlock_ticket(const fairlock *lock);

/* Owner token of the current grant, or NULL when not held (nor pending a
 * retried release).  Valid until the next call on the handle.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT const char *fairlock_token(const fairlock *lock);

/* While an acquire waits: the 0-based place in the queue as of the last
 * attempt (0 = next), or -1 when not waiting in a FIFO queue.  Meant for
 * progress displays from the interrupt callback, which runs on the
 * acquiring thread; fairlock_token() may be called from there too.
 * Thread safety: the acquiring thread only. Since 0.1.0. */
FAIRLOCK_EXPORT int64_t fairlock_rank(const fairlock *lock);

/* Statistics of one handle, for applications that export metrics of
 * their own.  Times are of CLOCK_MONOTONIC, in ms.  The struct may grow:
 * call fairlock_stats_get(), which passes the size of the struct the
 * program was compiled with; fields the library does not fill stay 0.
 * Since 0.2.0. */
typedef struct fairlock_stats {
    size_t size;           /* as passed; set by the library */
    int64_t acquisitions;  /* acquires that got the lock */
    int64_t handoffs;      /* of those, grants handed over by another
                              client's release (pushed to this handle)
                              rather than taken from a free lock */
    int64_t last_wait_ms;  /* from the call to the grant, last acquire */
    int64_t total_wait_ms; /* the same, summed over every acquisition */
    int64_t held_ms;       /* the current hold so far, 0 when not held */
    int64_t last_hold_ms;  /* the last hold that ended (release, loss) */
    int64_t total_hold_ms; /* summed over every hold that ended */
} fairlock_stats;

/* Fill *out, a struct of `size` bytes, with the handle's statistics.
 * Call it through fairlock_stats_get(lock, out).  Returns FAIRLOCK_OK or
 * FAIRLOCK_INVALID (NULL arguments, or a size too small for `size`).
 * Thread safety: one thread per handle. Since 0.2.0. */
FAIRLOCK_EXPORT int fairlock_stats_get_sized(const fairlock *lock,
                                             fairlock_stats *out, size_t size);
#define fairlock_stats_get(lock, out)                                          \
    fairlock_stats_get_sized((lock), (out), sizeof(fairlock_stats))

/* Let go of a held lock without releasing it: the handle forgets the grant
 * (stopping any renewal) and the lock stays held until its lease ends or
 * someone calls fairlock_release_token() with the token, which the caller
 * should have saved from fairlock_token() first.  This is how a process
 * hands a lock over to a later one (the `fairlock acquire` command).  A
 * hand-off's confirmation still owed (see fairlock_valid_until_ms) is made
 * first, so the lock keeps the lease it was acquired with.
 * Returns FAIRLOCK_OK, FAIRLOCK_NOTOWNED when nothing is held, or the
 * error of that confirmation (the lock is then still held by the
 * handle).
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_detach(fairlock *lock);

/* The lock's name as given, and its length. Since 0.1.0. */
FAIRLOCK_EXPORT const char *fairlock_name(const fairlock *lock, size_t *len);

/* Detail of the handle's last failure, in English; "" after success.  Never
 * contains a password.  Valid until the next call on the handle.
 * Thread safety: one thread per handle. Since 0.1.0. */
FAIRLOCK_EXPORT const char *fairlock_errmsg(const fairlock *lock);

/* Code of the handle's last call. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_errcode(const fairlock *lock);

/* Static description of a result code ("unknown result code" otherwise).
 * Thread safety: reentrant. Since 0.1.0. */
FAIRLOCK_EXPORT const char *fairlock_strerror(int code);

/* Static name of a result code, e.g. "FAIRLOCK_TIMEOUT". Since 0.1.0. */
FAIRLOCK_EXPORT const char *fairlock_code_name(int code);

/* Convert seconds (as the reference and the command line take them) to
 * milliseconds, rounding up so that a non-zero duration never becomes 0.
 * Rejects NaN, infinities, negatives and values beyond 2^53 ms with
 * FAIRLOCK_INVALID.  Thread safety: reentrant. Since 0.1.0. */
FAIRLOCK_EXPORT int fairlock_seconds_to_ms(double seconds, int64_t *ms);

/* Runtime version, to compare with the macros above. Since 0.1.0. */
FAIRLOCK_EXPORT const char *fairlock_version(void);
FAIRLOCK_EXPORT int fairlock_version_number(void);

/* ---------------------------------------------------------------------------
 * The non-blocking API (since 0.2.0)
 *
 * The same handle, driven by the caller's event loop instead of blocking a
 * thread: an operation is started, the loop watches the handle's socket
 * and timer, and the operation completes later through a callback (the
 * shape of libcurl's multi interface and of hiredis's async adapters).
 * Many handles may be driven by one thread; each has its own connection.
 *
 *   static void done(fairlock *lock, int code, void *arg) { ... }
 *   fairlock_acquire_start(lock, 5000, done, NULL);
 *   while (fairlock_async_busy(lock)) {
 *       struct pollfd p = {fairlock_async_fd(lock), 0, 0};
 *       int ev = fairlock_async_events(lock);
 *       p.events = (ev & FAIRLOCK_EV_READ ? POLLIN : 0) |
 *                  (ev & FAIRLOCK_EV_WRITE ? POLLOUT : 0);
 *       int n = poll(&p, p.fd >= 0, (int)fairlock_async_timeout(lock));
 *       fairlock_async_process(lock,
 *           n > 0 ? FAIRLOCK_EV_READ | FAIRLOCK_EV_WRITE : 0);
 *   }
 *
 * or, with an adapter, fairlock_libuv_attach(lock, loop) /
 * fairlock_libevent_attach(lock, base) (<fairlock/libuv.h>,
 * <fairlock/libevent.h>) and nothing else: the adapter follows the handle
 * through the watcher callback below.
 *
 * Semantics are the blocking API's: FIFO order with the blocking clients
 * of the same name, hand-off by push, heartbeats, stale eviction, lease,
 * fencing, the lease confirmed after a capped hand-off, and an unknown
 * outcome resolved with cancel.lua.  Waiting happens on the server
 * (BLPOP), so a waiting handle costs the loop nothing but its socket.
 * With auto_renew the lease is renewed by a timer of the handle on the
 * same connection, not by a thread, and on_lost is called from
 * fairlock_async_process() (or from a blocking call, see below), on the
 * loop's thread.
 *
 * A hand-off gives the lock with a lease capped at the liveness window
 * (so that a waiter that died cannot hold it longer).  The acquire
 * completes at once with that capped lease, and fairlock_valid_until_ms()
 * is its bound; the handle's timer then sets the full lease (none, by
 * default) a third of the way to that bound if the lock is still held --
 * a release before then needs none -- and the bound becomes the full
 * lease's (INT64_MAX for none).  So keep driving a handle's timer while it
 * holds the lock (fairlock_async_timeout(), or an adapter), not only while
 * fairlock_async_busy(): a capped lease that is not confirmed runs out.
 * A confirmation that finds the key not ours, or that gets no answer
 * until the bound, makes the handle FAIRLOCK_STATE_LOST and calls
 * on_lost, as a failed renewal does; a fairlock_extend_start() or
 * fairlock_extend() that succeeds first replaces it (that lease is then
 * in force), and fairlock_detach() makes it first.  With wait_replicas,
 * or on a handle that already has a renewal thread (from blocking
 * acquires), the acquire completes only once the full lease is set.
 *
 * Supported: every URL (redis://, rediss://, unix://, Sentinel and
 * Cluster, TLS or not), each kind of lock, FIFO or not.  Behind sentinels
 * the master is asked of them without blocking, and asked again when it
 * answers READONLY.  On a cluster, MOVED and ASK are followed, and a slot
 * in migration (TRYAGAIN) or a cluster down is waited out until the
 * acquire's deadline (or io_timeout_ms), as the blocking calls do.  Not
 * yet: a borrowed redisContext (opts.redis), which the start functions
 * refuse with FAIRLOCK_INVALID ("the non-blocking API
 * does not support ... yet").
 * Connecting resolves the host name with getaddrinfo(), the one step that
 * may block (not at all for an address or "localhost").
 *
 * Rules:
 *  - One operation at a time per handle: a start function called while
 *    one is in progress fails with FAIRLOCK_INVALID (the running one is
 *    unaffected).  The blocking calls must not be used on a handle while
 *    fairlock_async_busy() is true (they fail with FAIRLOCK_INVALID);
 *    between operations they may be.  A renewal of the auto_renew timer
 *    may then still be on the connection: the blocking call first reads
 *    its reply (blocking up to io_timeout_ms for each step, a reconnect
 *    or redirect included) and applies it as fairlock_async_process()
 *    would -- on_lost may be called from the blocking call -- before it
 *    sends its own command.  The timer only runs from
 *    fairlock_async_process(), never during a blocking call, and a hold
 *    that a blocking call ended or started is not renewed by it.  A
 *    blocking call never calls the watcher; a connection it replaced is
 *    told at the next start (see fairlock_watch_fn).
 *  - A start function that returns an error calls no callback.  One that
 *    returns FAIRLOCK_OK calls its callback exactly once, later, from
 *    fairlock_async_process() -- never from within the start function --
 *    unless the handle is freed first, which calls none.
 *  - In a callback the handle may be used freely: start the next
 *    operation, or fairlock_free() it.
 *  - Thread safety: a handle and its callbacks belong to the thread that
 *    drives it; handles are independent, so different threads may drive
 *    different handles.  fairlock_state() and fairlock_valid_until_ms()
 *    may still be called from any thread.
 * ------------------------------------------------------------------------- */

/* Events of the handle's socket, in fairlock_async_events(),
 * fairlock_async_process() and the watcher callback. */
#define FAIRLOCK_EV_READ 1
#define FAIRLOCK_EV_WRITE 2
/* Only to the watcher, once, from fairlock_free(): the handle is going
 * away (fd -1, timeout -1); stop watching and forget it. */
#define FAIRLOCK_EV_FREED 4

/* Completion of a started operation: code is what the blocking call of the
 * same name would have returned (fairlock_errmsg(lock) has the detail).
 * arg is the one given to the start function. */
typedef void (*fairlock_done_fn)(fairlock *lock, int code, void *arg);

/* Completion of fairlock_status_start(): status (NULL unless code is
 * FAIRLOCK_OK) belongs to the callee, to free with fairlock_status_free(). */
typedef void (*fairlock_status_fn)(fairlock *lock, int code,
                                   fairlock_status *status, void *arg);

/* Told whenever what the loop must watch for the handle changes: the
 * socket fd (-1: none) and the events (FAIRLOCK_EV_*, 0: none) to watch
 * it for, and the time in ms from now after which
 * fairlock_async_process(lock, 0) is due (-1: no timer).  The fd changes
 * when the handle reconnects; the watcher is told fd -1 *before* the old
 * socket is closed, so that a loop can stop watching it in time (libuv
 * and libevent need that).  A blocking call between operations may
 * reconnect without a word to the watcher: the next start function then
 * tells fd -1 first and the new socket next, even when it got the same
 * fd number (the loop's registration of the old one is stale).  It is
 * also told when a start function or fairlock_async_cancel() changes
 * anything, not only from fairlock_async_process().  Last, fairlock_free()
 * calls it with FAIRLOCK_EV_FREED (see above), before it closes the socket; an
 * adapter frees what it keeps for the handle then.  It must not call into the
 * handle.
 * Thread safety: called on the thread that drives the handle. */
typedef void (*fairlock_watch_fn)(fairlock *lock, int fd, int events,
                                  int64_t timeout_ms, void *arg);

/* Start acquiring.  timeout_ms is the longest wait (FAIRLOCK_DEFAULT: the
 * handle's timeout_ms, FAIRLOCK_FOREVER: no limit, 0: a single try, as
 * with blocking = 0); as in fairlock_acquire_ex() it is the lease when the
 * handle's ttl_ms is FAIRLOCK_DEFAULT.  done gets FAIRLOCK_OK (held),
 * FAIRLOCK_TIMEOUT, FAIRLOCK_REDIS, FAIRLOCK_INTERRUPTED (cancelled),
 * FAIRLOCK_NOTREPLICATED, FAIRLOCK_MISMATCH or FAIRLOCK_INVALID; after a
 * failure the handle's queue entry is gone (or, when Redis could not be
 * reached to remove it, resolved by the next call or fairlock_free()).
 * Returns FAIRLOCK_OK (started), FAIRLOCK_BUSY (already held),
 * FAIRLOCK_INVALID (bad argument, an operation in progress, a
 * borrowed redisContext) or FAIRLOCK_NOMEM.
 * Thread safety: the driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT int fairlock_acquire_start(fairlock *lock, int64_t timeout_ms,
                                           fairlock_done_fn done, void *arg);

/* Start releasing the held lock (hand-off to the next waiter).  done gets
 * what fairlock_release() returns.  A release cannot be cancelled: it runs
 * to its end (or is finished, blocking, by fairlock_free()).
 * Returns FAIRLOCK_OK (started), FAIRLOCK_NOTOWNED (nothing held),
 * FAIRLOCK_INVALID or FAIRLOCK_NOMEM.
 * Thread safety: the driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT int fairlock_release_start(fairlock *lock,
                                           fairlock_done_fn done, void *arg);

/* Start setting the held lock's lease to ttl_ms from now
 * (FAIRLOCK_FOREVER: no expiry).  done gets what fairlock_extend() returns.
 * Returns FAIRLOCK_OK (started), FAIRLOCK_NOTOWNED, FAIRLOCK_INVALID or
 * FAIRLOCK_NOMEM.
 * Thread safety: the driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT int fairlock_extend_start(fairlock *lock, int64_t ttl_ms,
                                          fairlock_done_fn done, void *arg);

/* Start taking a snapshot of the lock, as fairlock_status_get() does.
 * Returns FAIRLOCK_OK (started), FAIRLOCK_INVALID or FAIRLOCK_NOMEM.
 * Thread safety: the driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT int fairlock_status_start(fairlock *lock, size_t max_waiters,
                                          fairlock_status_fn done, void *arg);

/* Give up the acquire in progress: the handle leaves the queue (one
 * cancel.lua, which also undoes a grant made meanwhile), then the
 * acquire's callback gets FAIRLOCK_INTERRUPTED -- later, from
 * fairlock_async_process(), even when the cleanup fails.  A wait in
 * progress on the server is cut short by reconnecting.  Returns
 * FAIRLOCK_OK when an acquire is being cancelled (also when already
 * asked), FAIRLOCK_INVALID when no acquire is in progress (a release,
 * extend or status goes on; nothing changes) or when the acquire has
 * already ended and only its callback is still to come: that callback
 * then brings the result, FAIRLOCK_OK included (release the lock if it
 * is no longer wanted).
 * Thread safety: the driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT int fairlock_async_cancel(fairlock *lock);

/* Whether an operation is in progress (started, callback not yet called).
 * Thread safety: the driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT int fairlock_async_busy(const fairlock *lock);

/* The socket the loop must watch for the handle, or -1 (none now). */
FAIRLOCK_EXPORT int fairlock_async_fd(const fairlock *lock);
/* The events (FAIRLOCK_EV_READ, FAIRLOCK_EV_WRITE) to watch it for now. */
FAIRLOCK_EXPORT int fairlock_async_events(const fairlock *lock);
/* Milliseconds until fairlock_async_process(lock, 0) is due (0: now), or
 * -1 when the handle has no timer.  Thread safety of these three: the
 * driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT int64_t fairlock_async_timeout(const fairlock *lock);

/* Advance the handle: `events` are the FAIRLOCK_EV_* its socket is ready
 * for, or 0 when its timer is due (or to just look: the timer is checked
 * against the clock either way, and spurious calls are harmless).
 * Completion callbacks and on_lost run from here.  Afterwards the
 * watcher, if any, has been told what to watch next.  A loop may keep
 * watching the socket for reads while the handle is idle (events 0): a
 * read event then means the server closed the connection, which the
 * handle closes too (fd -1; the next operation reconnects).
 * Thread safety: the driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT void fairlock_async_process(fairlock *lock, int events);

/* Register the watcher (NULL to remove it).  It is called at once with
 * the current fd, events and timer, then on every change.  One per
 * handle: this is what an adapter installs.
 * Thread safety: the driving thread. Since 0.2.0. */
FAIRLOCK_EXPORT void
fairlock_async_set_watcher(fairlock *lock, fairlock_watch_fn watch, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* FAIRLOCK_H */
