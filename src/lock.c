/* lock.c -- the lock's state machine: options, acquire, wait, release.
 *
 * A request goes through these states on the handle:
 *   idle     no token
 *   waiting  inside fairlock_acquire(): token and ticket, maybe an entry
 *            in NAME:queue
 *   held     granted; the token is the value of NAME
 *   pending  a script failed with unknown outcome: the token is kept and
 *            the next call (or fairlock_free) resolves it with cancel.lua,
 *            which both removes a queue entry and undoes a grant.
 * Every transition on the server is one script; see src/lua/.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_CHECK_INTERVAL_MS 50
#define DEFAULT_IO_TIMEOUT_MS 5000
#define DEFAULT_INTERRUPT_CHECK_MS 100
#define DEFAULT_WAIT_REPLICAS_TIMEOUT_MS 1000
#define DEFAULT_URL "redis://127.0.0.1:6379/0"
/* Largest duration accepted anywhere: far beyond any real need, and small
 * enough that sums of durations cannot overflow int64_t. */
#define MAX_DURATION_MS ((int64_t)1 << 53)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---------------------------------------------------------------------------
 * Options and handle lifetime
 * ------------------------------------------------------------------------- */

/* The options as 0.1.0 laid them out: what the entry points of 0.1.0
 * (fairlock_options_init, fairlock_create), which programs built against
 * it call, may read and write.  Fields added later come after these. */
#define OPTIONS_SIZE_0_1 (offsetof(fairlock_options, hash_tag) + sizeof(int))

static void options_defaults(fairlock_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->timeout_ms = FAIRLOCK_FOREVER;
    opts->ttl_ms = FAIRLOCK_DEFAULT;
    opts->blocking = 1;
    opts->check_interval_ms = DEFAULT_CHECK_INTERVAL_MS;
    opts->fifo = 1;
    opts->stale_timeout_ms = FAIRLOCK_DEFAULT;
    opts->io_timeout_ms = DEFAULT_IO_TIMEOUT_MS;
    opts->interrupt_check_ms = DEFAULT_INTERRUPT_CHECK_MS;
    opts->wait_replicas_timeout_ms = DEFAULT_WAIT_REPLICAS_TIMEOUT_MS;
}

/* The caller's struct is `size` bytes: that of the header it was compiled
 * with.  Only those are written; a larger struct (a newer header) gets
 * zeros past the fields this library knows. */
void fairlock_options_init_sized(fairlock_options *opts, size_t size) {
    if (opts == NULL)
        return;
    fairlock_options defaults;
    options_defaults(&defaults);
    memset(opts, 0, size);
    memcpy(opts, &defaults, size < sizeof defaults ? size : sizeof defaults);
}

/* The 0.1.0 entry point (the header's macro of that name calls the sized
 * one); the parentheses keep the macro from expanding here. */
void(fairlock_options_init)(fairlock_options *opts) {
    fairlock_options_init_sized(opts, OPTIONS_SIZE_0_1);
}

int fairlock_seconds_to_ms(double seconds, int64_t *ms) {
    if (ms == NULL || isnan(seconds) || seconds < 0 ||
        seconds * 1000.0 > (double)MAX_DURATION_MS)
        return FAIRLOCK_INVALID;
    *ms = (int64_t)ceil(seconds * 1000.0);
    return FAIRLOCK_OK;
}

/* Checks a duration: a value in [min, MAX_DURATION_MS], or one of the
 * sentinels the option allows. */
static int check_duration(fairlock *lock, const char *what, int64_t value,
                          int64_t min, int allow_forever, int allow_default) {
    if ((allow_forever && value == FAIRLOCK_FOREVER) ||
        (allow_default && value == FAIRLOCK_DEFAULT))
        return FAIRLOCK_OK;
    if (value < min || value > MAX_DURATION_MS)
        return fairlock__fail(
            lock, FAIRLOCK_INVALID,
            "%s is %" PRId64 " ms; it must be from %" PRId64 " to 2^53 ms%s%s",
            what, value, min, allow_forever ? ", or FAIRLOCK_FOREVER" : "",
            allow_default ? ", or FAIRLOCK_DEFAULT" : "");
    return FAIRLOCK_OK;
}

static int check_options(fairlock *lock, const fairlock_options *o) {
    int rc;
    if ((rc = check_duration(lock, "timeout_ms", o->timeout_ms, 0, 1, 0)) ||
        (rc = check_duration(lock, "ttl_ms", o->ttl_ms, 1, 1, 1)) ||
        (rc = check_duration(lock, "check_interval_ms", o->check_interval_ms, 1,
                             0, 0)) ||
        (rc = check_duration(lock, "stale_timeout_ms", o->stale_timeout_ms, 0,
                             0, 1)) ||
        (rc = check_duration(lock, "io_timeout_ms", o->io_timeout_ms, 1, 0,
                             0)) ||
        (rc = check_duration(lock, "interrupt_check_ms", o->interrupt_check_ms,
                             1, 0, 0)) ||
        (rc = check_duration(lock, "wait_replicas_timeout_ms",
                             o->wait_replicas_timeout_ms, 1, 0, 0)))
        return rc;
    if (o->wait_replicas < 0)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "wait_replicas is %d; it must be 0 or more",
                              o->wait_replicas);
    if (o->auto_renew && o->ttl_ms == FAIRLOCK_FOREVER)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "auto_renew needs a finite lease, but ttl_ms is "
                              "FAIRLOCK_FOREVER");
    return FAIRLOCK_OK;
}

/* Redis Cluster hashes only the part between the first '{' and the next
 * '}' when it is not empty, so such a name keeps all its keys together. */
static int has_hash_tag(const char *name, size_t len) {
    const char *open = memchr(name, '{', len);
    if (open == NULL)
        return 0;
    const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - name));
    return close != NULL && close > open + 1;
}

/* Copies the name and derives the keys. */
static int copy_name_and_keys(fairlock *lock, const char *name, size_t len,
                              int hash_tag) {
    lock->name = malloc(len + 1);
    if (lock->name == NULL)
        return FAIRLOCK_NOMEM;
    memcpy(lock->name, name, len);
    lock->name[len] = '\0';
    lock->name_len = len;
    return fairlock__keys_init(&lock->keys, name, len, hash_tag);
}

/* Parses the URL from the option, $FAIRLOCK_URL, $REDIS_URL or the
 * default, in that order.  A handle on a borrowed context parses one only
 * when it was given explicitly (the renewal thread needs it). */
static int resolve_url(fairlock *lock, const fairlock_options *opts) {
    const char *url = opts->url, *source = "the url option";
    if (url == NULL && opts->redis != NULL)
        return FAIRLOCK_OK;
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
    int rc = fairlock__url_parse(url, &lock->url, why, sizeof why);
    if (rc != FAIRLOCK_OK)
        return fairlock__fail(lock, rc, "%s: %s", source, why);
    lock->has_url = 1;
    return FAIRLOCK_OK;
}

static int create(const fairlock_options *opts, fairlock **out);

/* Only the caller's `size` bytes are read; the fields past them (added
 * after the header it was compiled with) keep their defaults, and fields
 * of a newer header that this library does not know are ignored. */
int fairlock_create_sized(const fairlock_options *opts, size_t size,
                          fairlock **out) {
    if (opts == NULL)
        return create(NULL, out);
    fairlock_options full;
    options_defaults(&full);
    memcpy(&full, opts, size < sizeof full ? size : sizeof full);
    return create(&full, out);
}

int(fairlock_create)(const fairlock_options *opts, fairlock **out) {
    return fairlock_create_sized(opts, OPTIONS_SIZE_0_1, out);
}

static int create(const fairlock_options *opts, fairlock **out) {
    if (out == NULL)
        return FAIRLOCK_INVALID;
    fairlock *lock = calloc(1, sizeof *lock);
    *out = lock;
    if (lock == NULL)
        return FAIRLOCK_NOMEM;
    if (opts == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "options are NULL");
    if (opts->name == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "the lock name is NULL");
    size_t len = opts->name_len ? opts->name_len : strlen(opts->name);
    if (len == 0)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "the lock name is empty");
    if (len > FAIRLOCK_NAME_MAX)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the lock name is %zu bytes long; the limit is "
                              "%d",
                              len, FAIRLOCK_NAME_MAX);
    int rc = check_options(lock, opts);
    if (rc == FAIRLOCK_OK && opts->auto_renew && opts->redis != NULL &&
        opts->url == NULL)
        rc = fairlock__fail(lock, FAIRLOCK_INVALID,
                            "auto_renew with a borrowed connection also needs "
                            "the url option: the renewal thread opens its "
                            "own connection");
    if (rc == FAIRLOCK_OK)
        rc = resolve_url(lock, opts);
    if (rc == FAIRLOCK_OK && lock->has_url &&
        lock->url.kind == FAIRLOCK__URL_CLUSTER && !opts->hash_tag &&
        !has_hash_tag(opts->name, len))
        rc = fairlock__fail(lock, FAIRLOCK_INVALID,
                            "in Redis Cluster the lock's keys must share a "
                            "hash slot: use a name with a hash tag such as "
                            "\"{orders}:42\", or set the hash_tag option");
    if (rc == FAIRLOCK_OK &&
        copy_name_and_keys(lock, opts->name, len, opts->hash_tag != 0) != 0)
        rc = FAIRLOCK_NOMEM;
    if (rc == FAIRLOCK_NOMEM) {
        fairlock_free(lock);
        *out = NULL;
    }
    if (rc != FAIRLOCK_OK)
        return rc;
    lock->opts = *opts;
    lock->opts.name = NULL;
    lock->opts.url = NULL;
    lock->opts.redis = NULL;
    lock->opts.blocking = opts->blocking != 0;
    lock->opts.fifo = opts->fifo != 0;
    lock->opts.auto_renew = opts->auto_renew != 0;
    lock->opts.fencing = opts->fencing != 0;
    lock->conn.io_timeout_ms = opts->io_timeout_ms;
    if (opts->redis != NULL) {
        lock->conn.ctx = opts->redis;
        lock->conn.borrowed = 1;
    } else {
        lock->conn.url = &lock->url;
    }
    lock->rank = -1;
    /* The stale timeout as the reference derives it: the option, else
     * the timeout, else (both unset) a liveness window of our choosing. */
    lock->foreign_live_ms = opts->stale_timeout_ms;
    if (lock->foreign_live_ms == FAIRLOCK_DEFAULT)
        lock->foreign_live_ms = opts->timeout_ms == FAIRLOCK_FOREVER
                                    ? FAIRLOCK_DEFAULT_LIVENESS_MS
                                    : opts->timeout_ms;
    lock->usable = 1;
    return fairlock__ok(lock);
}

/* Publishes the handle's state for fairlock_state(). */
static void publish(fairlock *lock, int state, int64_t valid_until_ms) {
    atomic_store(&lock->valid_until_ms, valid_until_ms);
    atomic_store(&lock->state, state);
}

static void forget_request(fairlock *lock) {
    lock->held = 0;
    lock->pending = 0;
    lock->ticket = 0;
    lock->rank = -1;
    lock->fence = 0;
    lock->token[0] = '\0';
    publish(lock, FAIRLOCK_STATE_IDLE, 0);
}

static void mark_pending(fairlock *lock) {
    lock->held = 0;
    lock->pending = 1;
    publish(lock, FAIRLOCK_STATE_PENDING, 0);
}

static int resolve_pending(fairlock *lock, int *undone);

void fairlock_free(fairlock *lock) {
    if (lock == NULL)
        return;
    fairlock__renew_free(lock);
    /* A forked child that frees its copy of the handle must not release the
     * parent's lock. */
    if (lock->usable && (lock->held || lock->pending) &&
        lock->request_pid == getpid()) {
        int undone;
        resolve_pending(lock, &undone);
    }
    fairlock__conn_close(&lock->conn);
    fairlock__url_clear(&lock->url);
    fairlock__keys_clear(&lock->keys);
    free(lock->name);
    free(lock);
}

/* ---------------------------------------------------------------------------
 * Script calls
 * ------------------------------------------------------------------------- */

static int ready(fairlock *lock) {
    if (!lock->usable)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the handle was not created successfully");
    return fairlock__conn_ready(&lock->conn, &lock->err);
}

/* Runs cancel.lua for the current token: removes our queue entry, undoes a
 * grant (a held lock too), and passes the lock on.  *undone is 1 when a
 * grant was undone.  On success the request is forgotten.
 *
 * A non-FIFO request never queues (ticket -1: nothing to find).  A FIFO
 * request whose ticket is unknown (its first reply was lost) is searched
 * for a page per call, so that no single script scans a long queue. */
static int resolve_pending(fairlock *lock, int *undone) {
    char cursor[FAIRLOCK__CURSOR_SIZE] = "0";
    int64_t ticket = lock->opts.fifo ? lock->ticket : FAIRLOCK__NO_TICKET;
    *undone = 0;
    int rc = ready(lock);
    while (rc == FAIRLOCK_OK) {
        int undone_now = 0;
        rc = fairlock__call_cancel(&lock->conn, &lock->err, &lock->keys,
                                   lock->token, ticket, lock->foreign_live_ms,
                                   cursor, &undone_now);
        if (rc != FAIRLOCK_OK)
            break;
        *undone = *undone || undone_now;
        if (strcmp(cursor, "0") == 0) {
            forget_request(lock);
            break;
        }
    }
    return rc;
}

/* Gives up the current request after a failure, keeping the error being
 * reported.  When the cleanup cannot run (the connection is gone), the
 * request stays pending for the next call: its queue entry would otherwise
 * only go when it turns stale, and a grant only when its lease ends. */
static int abandon_request(fairlock *lock, int code) {
    fairlock__error saved = lock->err;
    mark_pending(lock);
    if (lock->conn.ctx != NULL && !lock->conn.ctx->err) {
        int undone;
        resolve_pending(lock, &undone);
    }
    lock->err = saved;
    return code;
}

/* Runs acquire.lua (FIFO) or acquire_nonfifo.lua.  try_once asks the
 * script to leave no entry behind when the lock is not granted. */
static int run_attempt(fairlock *lock, int try_once, int64_t nonfifo_wait_ms,
                       fairlock__attempt *attempt) {
    /* Until the reply is read, the server may have queued or granted us. */
    mark_pending(lock);
    lock->last_sent_ms = fairlock__now_ms();
    int rc = lock->opts.fifo
                 ? fairlock__call_acquire(
                       &lock->conn, &lock->err, &lock->keys, lock->token,
                       lock->ticket, lock->foreign_live_ms, try_once, attempt)
                 : fairlock__call_acquire_nonfifo(
                       &lock->conn, &lock->err, &lock->keys, lock->token,
                       try_once ? 0 : nonfifo_wait_ms, lock->foreign_live_ms,
                       attempt);
    if (rc != FAIRLOCK_OK)
        return rc;
    lock->pending = 0;
    if (attempt->ticket > 0)
        lock->ticket = attempt->ticket;
    lock->rank = attempt->granted || !lock->opts.fifo ? -1 : attempt->rank;
    return FAIRLOCK_OK;
}

static int run_extend(fairlock *lock, int64_t lease_ms, int *owned) {
    return fairlock__call_extend(&lock->conn, &lock->err, &lock->keys,
                                 lock->token, lease_ms, owned);
}

static int64_t validity(int64_t sent_ms, int64_t lease_ms) {
    if (lease_ms == 0)
        return INT64_MAX;
    return sent_ms + lease_ms - fairlock__drift_ms(lease_ms);
}

/* ---------------------------------------------------------------------------
 * Acquire
 * ------------------------------------------------------------------------- */

/* WAIT for the replicas the options ask for; too few means no grant. */
static int wait_for_replicas(fairlock *lock) {
    long long acked;
    int rc = fairlock__call_wait_replicas(
        &lock->conn, &lock->err, lock->opts.wait_replicas,
        lock->opts.wait_replicas_timeout_ms, &acked);
    if (rc != FAIRLOCK_OK)
        return rc;
    if (acked < lock->opts.wait_replicas)
        return fairlock__fail(lock, FAIRLOCK_NOTREPLICATED,
                              "only %lld of %d replicas acknowledged the "
                              "grant within %" PRId64 " ms; released it",
                              acked, lock->opts.wait_replicas,
                              lock->opts.wait_replicas_timeout_ms);
    return FAIRLOCK_OK;
}

/* Sentinel result of take_grant(): the hand-off expired before we could
 * confirm it (we were paused longer than our liveness window), so the
 * caller goes back to waiting. */
#define HANDOFF_EXPIRED (-1)
/* Sentinel result of confirm_later(): do it now, the ordinary way. */
#define FAIRLOCK__CANNOT_DEFER (-2)

/* The reply to the confirmation that confirm_later() sent: 1 the lease is
 * ours as asked, 0 the key was no longer ours, -1 unknown. */
static void confirmed(void *arg, const redisReply *reply) {
    fairlock *lock = arg;
    int outcome = fairlock__decode_flag(reply);
    if (!fairlock__renew_extend_end(lock, outcome) && outcome == 0 &&
        lock->held)
        publish(lock, FAIRLOCK_STATE_LOST, 0);
}

/* A hand-off to a waiter is capped at its liveness window, so a head that
 * died before it could take the lock holds it no longer than a dead
 * waiter holds the queue; the live head then takes its full lease.  That
 * confirmation need not delay the caller: while the capped lease has most
 * of its length to run, it is sent without waiting for the reply, which is
 * read just before the next command on the connection (pipelined with it:
 * usually the release).  Until then fairlock_valid_until_ms() is the
 * capped lease's bound, which is true whatever the reply says.  Only on an
 * owned plain connection (see fairlock__conn_defer_eval); otherwise
 * FAIRLOCK__CANNOT_DEFER.  The renewal ledger has one slot for a command
 * of the owner's in flight, so fairlock_extend() reads this reply before
 * it sends its own. */
static int confirm_later(fairlock *lock, int64_t capped_ms, int64_t from) {
    if (lock->opts.wait_replicas > 0 || lock->opts.auto_renew ||
        !fairlock__conn_can_defer(&lock->conn))
        return FAIRLOCK__CANNOT_DEFER;
    publish(lock, FAIRLOCK_STATE_HELD, validity(from, capped_ms));
    int rc = fairlock__renew_start(lock, lock->token, capped_ms, from,
                                   &lock->err);
    if (rc != FAIRLOCK_OK)
        return abandon_request(lock, rc);
    fairlock__renew_extend_begin(lock, lock->lease_ms, fairlock__now_ms());
    rc = fairlock__call_extend_later(&lock->conn, &lock->err, &lock->keys,
                                     lock->token, lock->lease_ms, confirmed,
                                     lock);
    if (rc != FAIRLOCK_OK) {
        fairlock__error ignored;
        fairlock__renew_extend_end(lock, -1);
        fairlock__renew_stop(lock, &ignored);
        return abandon_request(lock, rc);
    }
    return fairlock__ok(lock);
}

/* The lock is ours.  A hand-off to a waiter is capped at the waiter's
 * liveness window (a dead waiter must not hold the lock long); now that we
 * are known to be alive, take the full lease.  granted_sent_ms is a time
 * before the grant, from which the validity bound counts. */
static int take_grant(fairlock *lock, const fairlock__attempt *attempt,
                      int64_t granted_sent_ms) {
    lock->held = 1;
    lock->pending = 0;
    lock->rank = -1;
    if (attempt->ticket > 0)
        lock->ticket = attempt->ticket;
    lock->fence = attempt->fence;
    int64_t from = granted_sent_ms;
    int64_t valid_until = validity(from, attempt->lease_ms);
    /* The grant happened after our last request, which may be a heartbeat
     * ago: when that leaves less than two thirds of the lease as a bound,
     * an extend buys a fresh one (and it is needed anyway when the
     * hand-off capped the lease). */
    int64_t px = attempt->lease_ms;
    int64_t left = valid_until - fairlock__now_ms();
    if (attempt->lease_ms != lock->lease_ms && px > 0 && left >= px * 2 / 3) {
        int rc = confirm_later(lock, px, from);
        if (rc != FAIRLOCK__CANNOT_DEFER)
            return rc;
    }
    if (attempt->lease_ms != lock->lease_ms || (px > 0 && left < px * 2 / 3)) {
        int owned = 0;
        from = fairlock__now_ms();
        int rc = run_extend(lock, lock->lease_ms, &owned);
        if (rc != FAIRLOCK_OK)
            return abandon_request(lock, rc);
        if (!owned) {
            lock->held = 0;
            lock->fence = 0;
            return HANDOFF_EXPIRED;
        }
        valid_until = validity(from, lock->lease_ms);
    }
    if (lock->opts.wait_replicas > 0) {
        int rc = wait_for_replicas(lock);
        if (rc != FAIRLOCK_OK)
            return abandon_request(lock, rc);
    }
    publish(lock, FAIRLOCK_STATE_HELD, valid_until);
    /* From here renew.c publishes the bound (and renews, with auto_renew). */
    int rc = fairlock__renew_start(lock, lock->token, lock->lease_ms, from,
                                   &lock->err);
    if (rc != FAIRLOCK_OK)
        return abandon_request(lock, rc);
    return fairlock__ok(lock);
}

static int interrupted(fairlock *lock) {
    return lock->opts.interrupt != NULL &&
           lock->opts.interrupt(lock->opts.interrupt_arg);
}

/* Blocks on the wake list until something is pushed to it or `until`
 * (monotonic ms) passes.  *woken says whether it was; with FIFO, the
 * hand-off is decoded into *handoff. */
static int wait_for_push(fairlock *lock, int64_t until, int *woken,
                         fairlock__attempt *handoff) {
    *woken = 0;
    for (;;) {
        int64_t slice = until - fairlock__now_ms();
        if (slice < 1)
            return FAIRLOCK_OK;
        if (lock->opts.interrupt != NULL &&
            slice > lock->opts.interrupt_check_ms)
            slice = lock->opts.interrupt_check_ms;
        int wake;
        int rc = fairlock__call_wait_push(&lock->conn, &lock->err, &lock->keys,
                                          lock->opts.fifo, slice, &wake,
                                          handoff);
        if (rc != FAIRLOCK_OK)
            return rc;
        if (wake == FAIRLOCK__WAKE_PUSHED) {
            *woken = 1;
            return FAIRLOCK_OK;
        }
        if (wake == FAIRLOCK__WAKE_UNBLOCKED)
            return FAIRLOCK_OK;
        if (interrupted(lock))
            return fairlock__fail(lock, FAIRLOCK_INTERRUPTED,
                                  "interrupted while waiting");
    }
}

/* The wait loop.  FIFO waiters block on their own wake list, which the
 * script that frees the lock pushes to when it hands them the lock; they
 * wake up by themselves only to refresh their entry (every third of their
 * liveness window), when the holder's lease as they last saw it runs out
 * (an expiry sends no push), and near the head of the queue at
 * check_interval.  "Near" is rank 0 or 1: a hand-off removes the head from
 * the queue, so the waiter behind it is the one that must notice when that
 * head died and its capped lease runs out.  Non-FIFO waiters block on the
 * shared NAME:nfwake list instead. */
static int acquire_loop(fairlock *lock, int64_t timeout_ms, int try_once,
                        int64_t check_ms, int64_t live_ms) {
    int64_t start = fairlock__now_ms();
    int64_t deadline = timeout_ms == FAIRLOCK_FOREVER ? INT64_MAX
                                                      : start + timeout_ms;
    int64_t heartbeat_ms = live_ms / 3 > 0 ? live_ms / 3 : 1;
    int64_t nonfifo_wait_ms = 2 * check_ms + 100;
    fairlock__attempt attempt;

    int rc = run_attempt(lock, try_once, nonfifo_wait_ms, &attempt);
    for (;;) {
        if (rc != FAIRLOCK_OK)
            return abandon_request(lock, rc);
        if (attempt.granted) {
            rc = take_grant(lock, &attempt, lock->last_sent_ms);
            if (rc != HANDOFF_EXPIRED)
                return rc;
            rc = run_attempt(lock, try_once, nonfifo_wait_ms, &attempt);
            continue;
        }
        /* The lock is free and the script spent its eviction budget on
         * dead entries before reaching a live head: go on clearing them
         * now rather than at the next heartbeat.  Every call removes
         * entries, so this ends. */
        if (attempt.next_call == FAIRLOCK__NEXT_NOW &&
            (try_once || fairlock__now_ms() < deadline)) {
            rc = run_attempt(lock, try_once, nonfifo_wait_ms, &attempt);
            continue;
        }
        if (try_once) {
            forget_request(lock);
            return fairlock__fail(lock, FAIRLOCK_TIMEOUT,
                                  "the lock is taken (%" PRId64
                                  " waiter(s) ahead) and the call does not "
                                  "wait",
                                  attempt.rank);
        }
        int64_t now = fairlock__now_ms();
        int64_t poll_ms = lock->opts.fifo ? heartbeat_ms : check_ms;
        if (!lock->opts.fifo || attempt.rank <= 1 ||
            attempt.next_call == FAIRLOCK__NEXT_POLL)
            poll_ms = min64(poll_ms, check_ms);
        /* Hand-offs ahead of us move us up without telling us, so when
         * the holder's lease runs out we may be the head: look again. */
        if (attempt.pttl_ms > 0)
            poll_ms = min64(poll_ms, attempt.pttl_ms + 1);
        int woken;
        rc = wait_for_push(lock, min64(deadline, now + poll_ms), &woken,
                           &attempt);
        if (rc != FAIRLOCK_OK)
            return abandon_request(lock, rc);
        if (woken && lock->opts.fifo) {
            rc = take_grant(lock, &attempt, lock->last_sent_ms);
            if (rc != HANDOFF_EXPIRED)
                return rc;
        }
        if (fairlock__now_ms() >= deadline) {
            fairlock__fail(lock, FAIRLOCK_TIMEOUT,
                           "not granted within %" PRId64 " ms", timeout_ms);
            return abandon_request(lock, FAIRLOCK_TIMEOUT);
        }
        rc = run_attempt(lock, 0, nonfifo_wait_ms, &attempt);
    }
}

int fairlock_acquire_ex(fairlock *lock, int64_t timeout_ms, int blocking,
                        int64_t check_interval_ms) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (!lock->usable)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the handle was not created successfully");
    if (lock->held)
        return fairlock__fail(lock, FAIRLOCK_BUSY,
                              "this handle already holds the lock");
    if (timeout_ms == FAIRLOCK_DEFAULT)
        timeout_ms = lock->opts.timeout_ms;
    if (check_interval_ms == FAIRLOCK_DEFAULT)
        check_interval_ms = lock->opts.check_interval_ms;
    if (blocking == -1)
        blocking = lock->opts.blocking;
    int rc;
    if ((rc = check_duration(lock, "timeout_ms", timeout_ms, 0, 1, 0)) ||
        (rc = check_duration(lock, "check_interval_ms", check_interval_ms, 1, 0,
                             0)))
        return rc;
    if (blocking != 0 && blocking != 1)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "blocking is %d; it must be 0, 1 or -1",
                              blocking);

    /* As in the reference, the wait timeout doubles as the lease unless a
     * ttl is set; a zero timeout (a mere try) leaves the handle's. */
    int64_t lease = lock->opts.ttl_ms;
    if (lease == FAIRLOCK_DEFAULT)
        lease = timeout_ms != 0 ? timeout_ms : lock->opts.timeout_ms;
    if (lease == 0)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "a timeout of 0 cannot also be the lease; set "
                              "ttl_ms");
    if (lease == FAIRLOCK_FOREVER && lock->opts.auto_renew)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "auto_renew needs a finite lease: set ttl_ms "
                              "or a timeout");
    lease = lease == FAIRLOCK_FOREVER ? 0 : lease;

    int64_t live = lock->foreign_live_ms < FAIRLOCK_MIN_LIVENESS_MS
                       ? FAIRLOCK_MIN_LIVENESS_MS
                       : lock->foreign_live_ms;

    if ((rc = ready(lock)) != FAIRLOCK_OK)
        return rc;
    if (lock->pending) {
        int undone;
        if ((rc = resolve_pending(lock, &undone)) != FAIRLOCK_OK)
            return rc;
    }
    if (fairlock__token_new(lock->token, lease, live, lock->opts.fencing) != 0)
        return fairlock__fail(lock, FAIRLOCK_REDIS,
                              "getrandom failed; no token could be made");
    lock->ticket = 0;
    lock->fence = 0;
    lock->request_pid = getpid();
    lock->lease_ms = lease;
    fairlock__keys_set_wake(&lock->keys, lock->token);

    int try_once = !blocking || timeout_ms == 0;
    /* A slot in migration is waited out until the acquire's deadline. */
    lock->conn.deadline_ms = timeout_ms == FAIRLOCK_FOREVER
                                 ? INT64_MAX
                                 : fairlock__now_ms() + timeout_ms;
    rc = acquire_loop(lock, timeout_ms, try_once, check_interval_ms, live);
    lock->conn.deadline_ms = 0;
    return rc;
}

int fairlock_acquire(fairlock *lock) {
    return fairlock_acquire_ex(lock, FAIRLOCK_DEFAULT, -1, FAIRLOCK_DEFAULT);
}

/* ---------------------------------------------------------------------------
 * Release, extend, queries
 * ------------------------------------------------------------------------- */

static int run_release(fairlock *lock, const char *token, int *released) {
    return fairlock__call_release(&lock->conn, &lock->err, &lock->keys, token,
                                  lock->foreign_live_ms, released);
}

int fairlock_release(fairlock *lock) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (!lock->held && !lock->pending)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "the lock is not held by this handle");
    /* The renewer goes quiet before the release is sent. */
    fairlock__error lost;
    int was_lost = fairlock__renew_stop(lock, &lost);
    int rc = ready(lock);
    if (rc != FAIRLOCK_OK) {
        mark_pending(lock);
        return rc;
    }
    int released = 0;
    if (lock->pending) {
        if ((rc = resolve_pending(lock, &released)) != FAIRLOCK_OK)
            return rc;
        if (!released)
            return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                                  "the lock is not held by this handle (an "
                                  "earlier release may have succeeded)");
        return fairlock__ok(lock);
    }
    mark_pending(lock);
    if ((rc = run_release(lock, lock->token, &released)) != FAIRLOCK_OK)
        return rc;
    forget_request(lock);
    if (was_lost) {
        lock->err = lost;
        return FAIRLOCK_NOTOWNED;
    }
    if (!released)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "lease lost: it ran out before the release, "
                              "and the lock was free or someone else's");
    return fairlock__ok(lock);
}

int fairlock_release_token(fairlock *lock, const char *token) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (token == NULL || *token == '\0')
        return fairlock__fail(lock, FAIRLOCK_INVALID, "the token is empty");
    int rc = ready(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    int released = 0;
    if ((rc = run_release(lock, token, &released)) != FAIRLOCK_OK)
        return rc;
    if (!released)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "that token does not hold the lock");
    return fairlock__ok(lock);
}

int fairlock_extend(fairlock *lock, int64_t ttl_ms) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    int rc = check_duration(lock, "ttl_ms", ttl_ms, 1, 1, 0);
    if (rc != FAIRLOCK_OK)
        return rc;
    if (!lock->held)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "the lock is not held by this handle");
    if (lock->opts.auto_renew && ttl_ms == FAIRLOCK_FOREVER)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "auto_renew needs a finite lease");
    /* A hand-off's confirmation may still be owed a reply: the ledger has
     * room for one command of ours in flight (see confirm_later). */
    if ((rc = ready(lock)) == FAIRLOCK_OK) {
        fairlock__conn_settle(&lock->conn);
        rc = ready(lock);
    }
    if (rc != FAIRLOCK_OK)
        return rc;
    int owned = 0;
    int64_t lease = ttl_ms == FAIRLOCK_FOREVER ? 0 : ttl_ms;
    /* The renewer may have a renewal on the wire: renew.c works out the
     * bound from both. */
    fairlock__renew_extend_begin(lock, lease, fairlock__now_ms());
    rc = run_extend(lock, lease, &owned);
    int held = fairlock__renew_extend_end(lock, rc != FAIRLOCK_OK ? -1 : owned);
    if (rc != FAIRLOCK_OK)
        return rc;
    if (!held) {
        fairlock__error lost;
        fairlock__renew_stop(lock, &lost);
        forget_request(lock);
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "lease lost: the lock is free or someone "
                              "else's");
    }
    lock->lease_ms = lease;
    return fairlock__ok(lock);
}

int fairlock_owned(fairlock *lock, int *owned) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (owned == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "owned is NULL");
    *owned = 0;
    if (lock->token[0] == '\0')
        return fairlock__ok(lock);
    int rc = ready(lock);
    if (rc == FAIRLOCK_OK)
        rc = fairlock__call_holder_is(&lock->conn, &lock->err, &lock->keys,
                                      lock->token, owned);
    return rc != FAIRLOCK_OK ? rc : fairlock__ok(lock);
}

int fairlock_locked(fairlock *lock, int *locked) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (locked == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "locked is NULL");
    *locked = 0;
    int rc = ready(lock);
    if (rc == FAIRLOCK_OK)
        rc = fairlock__call_locked(&lock->conn, &lock->err, &lock->keys,
                                   locked);
    return rc != FAIRLOCK_OK ? rc : fairlock__ok(lock);
}

int fairlock_status_get(fairlock *lock, size_t max_waiters,
                        fairlock_status **out) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (out == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "out is NULL");
    *out = NULL;
    int rc = ready(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    if ((rc = fairlock__call_status(&lock->conn, &lock->err, &lock->keys,
                                    max_waiters, out)) != FAIRLOCK_OK)
        return rc;
    return fairlock__ok(lock);
}

void fairlock_status_free(fairlock_status *status) { free(status); }

int fairlock_with(fairlock *lock, fairlock_body_fn body, void *arg,
                  int *body_result) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (body == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "body is NULL");
    int rc = fairlock_acquire(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    int result = body(arg);
    if (body_result != NULL)
        *body_result = result;
    return fairlock_release(lock);
}

int fairlock_state(fairlock *lock) {
    return lock == NULL ? FAIRLOCK_STATE_IDLE : atomic_load(&lock->state);
}

int64_t fairlock_valid_until_ms(fairlock *lock) {
    return lock == NULL ? 0 : atomic_load(&lock->valid_until_ms);
}

int64_t fairlock_ticket(const fairlock *lock) {
    return lock != NULL && lock->held ? lock->ticket : 0;
}

int64_t fairlock_fence(const fairlock *lock) {
    return lock != NULL && lock->held ? lock->fence : 0;
}

int64_t fairlock_rank(const fairlock *lock) {
    return lock == NULL ? -1 : lock->rank;
}

int fairlock_detach(fairlock *lock) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (!lock->held)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "the lock is not held by this handle");
    fairlock__error ignored;
    fairlock__renew_stop(lock, &ignored);
    forget_request(lock);
    return fairlock__ok(lock);
}

const char *fairlock_token(const fairlock *lock) {
    if (lock == NULL || lock->token[0] == '\0')
        return NULL;
    return lock->token;
}

const char *fairlock_name(const fairlock *lock, size_t *len) {
    if (lock == NULL || lock->name == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = lock->name_len;
    return lock->name;
}
