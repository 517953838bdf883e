/* renew.c -- the validity bound of a grant, and the renewal thread.
 *
 * Every grant is recorded here (fairlock__renew_start), auto-renewed or
 * not, and so is every command that sets its lease afterwards: the
 * renewals of the thread and the owner's fairlock_extend() calls.  The
 * bound that fairlock_valid_until_ms() reports is computed from that
 * record alone (see "The ledger" below), so it stays a lower bound on the
 * key's real expiry however the two threads' commands interleave on the
 * server.
 *
 * The thread exists only with auto_renew: one per handle, started on the
 * first grant and joined by fairlock_free().  It has its own connection,
 * because a hiredis context must not be shared between threads.  All
 * shared fields are guarded by `mu`; the handle's published state and
 * validity are atomics so that queries need no lock.
 *
 * The one hard rule: no renewal may reach the server after the release.
 * fairlock__renew_stop() clears `active` and then waits while a renewal is
 * in flight, so by the time the release script is sent, the renewer is idle
 * and will not send again for this token. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Pause between attempts while Redis does not answer. */
#define RETRY_MS 100

/* ---------------------------------------------------------------------------
 * The ledger
 *
 * The key's expiry is set by whichever lease-setting command of this grant
 * the server ran last -- the grant itself, a renewal, an extend -- at the
 * time it ran plus its lease.  The renewal thread and the owner use two
 * connections, so the client cannot tell from the order of the replies
 * which one the server ran last; what it does know:
 *
 *  - a command ran after it was sent, and before its reply was read;
 *  - if X's reply was read before Y was sent, and Y ran, X is not the last;
 *  - the last one ran after every command that ran, so after every
 *    command known to have run (a reply) was sent.
 *
 * So with `base` the latest send time of a command known to have run, and
 * C the commands that may be the last one (each source's latest command
 * known to have run, unless a later-sent one ran after its reply; each
 * command on the wire; each command whose outcome stays unknown), the key
 * expires no earlier than  min over X in C of  max(sent_X, base) + lease_X.
 * That, less the drift margin, is the published bound.  It never needs to
 * know the server's order: when two commands may both be the last, it takes
 * the shorter of their leases, and the next renewal that runs alone leaves
 * a single candidate, the truth again.  A command of unknown outcome (an
 * I/O error) may still run at any later time -- a stalled server runs
 * what it had queued when it resumes -- so its lease stays a candidate,
 * from `base`, until the grant ends; with the lease unchanged that costs
 * nothing.
 *
 * "Read before sent" is decided by a sequence number taken under `mu`
 * before a command is sent and after its reply is read, not by the clock.
 * ------------------------------------------------------------------------- */

enum { BY_RENEWER, BY_OWNER, SOURCES };

typedef struct lease_cmd {
    int used;
    int64_t sent_ms;  /* monotonic, taken before it was sent */
    int64_t lease_ms; /* its PX; 0 for PERSIST */
    uint64_t begun;   /* ledger sequence when it was sent */
    uint64_t done;    /* ledger sequence when its reply was read */
} lease_cmd;

struct fairlock__renewer {
    fairlock *lock; /* read-only for the thread: keys, options, state */
    pid_t pid;      /* the thread exists only in this process */
    pthread_t thread;
    int started; /* the thread runs (auto_renew) */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on new work, stop and end of flight */
    int stop;
    int recording;  /* a grant is recorded: from start to stop */
    int active;     /* the thread renews `token` */
    int in_flight;  /* a renewal is on the wire */
    int lost;       /* loss reported; an extend that succeeds withdraws it */
    int gone;       /* a reply showed the key not ours: lost for good */
    uint64_t grant; /* counts the grants, so a stale renewal is ignored */
    char token[FAIRLOCK_TOKEN_MAX];
    int64_t lease_ms; /* what the next renewal asks for */
    int64_t next_ms;  /* monotonic time of the next renewal */
    /* The ledger. */
    uint64_t seq;
    lease_cmd last[SOURCES];   /* latest command known to have run */
    lease_cmd flight[SOURCES]; /* on the wire */
    int64_t base_ms;           /* latest send time of a command that ran */
    int64_t unknown_lease_ms;  /* shortest lease of unknown outcome, or 0 */
    fairlock__conn conn;
    fairlock__error io_err;
    fairlock__error lost_reason;
};

int64_t fairlock__drift_ms(int64_t lease_ms) { return lease_ms / 100 + 2; }

static int64_t bound_from(int64_t from_ms, int64_t lease_ms) {
    if (lease_ms == 0)
        return INT64_MAX;
    return from_ms + lease_ms - fairlock__drift_ms(lease_ms);
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The bound, and in *candidates how many commands may have set it. */
static int64_t ledger_bound(const fairlock__renewer *r, int *candidates) {
    int64_t bound = INT64_MAX;
    int n = 0;
    for (int s = 0; s < SOURCES; s++) {
        const lease_cmd *cmds[2] = {&r->last[s], &r->flight[s]};
        for (int i = 0; i < 2; i++) {
            if (!cmds[i]->used)
                continue;
            n++;
            bound = min64(bound, bound_from(max64(cmds[i]->sent_ms, r->base_ms),
                                            cmds[i]->lease_ms));
        }
    }
    if (r->unknown_lease_ms > 0)
        bound = min64(bound, bound_from(r->base_ms, r->unknown_lease_ms));
    if (candidates != NULL)
        *candidates = n;
    return bound;
}

static void ledger_reset(fairlock__renewer *r) {
    memset(r->last, 0, sizeof r->last);
    memset(r->flight, 0, sizeof r->flight);
    r->base_ms = 0;
    r->unknown_lease_ms = 0;
    r->gone = 0;
}

/* A command of `source` is about to be sent. */
static void ledger_send(fairlock__renewer *r, int source, int64_t sent_ms,
                        int64_t lease_ms) {
    lease_cmd *c = &r->flight[source];
    c->used = 1;
    c->sent_ms = sent_ms;
    c->lease_ms = lease_ms;
    c->begun = ++r->seq;
    c->done = 0;
}

/* The reply of `source`'s command was read: outcome 1 it ran on our key,
 * 0 it found the key not ours, -1 unknown (no reply). */
static void ledger_reply(fairlock__renewer *r, int source, int outcome) {
    lease_cmd c = r->flight[source];
    r->flight[source].used = 0;
    if (!c.used)
        return;
    if (outcome < 0) {
        if (c.lease_ms > 0 &&
            (r->unknown_lease_ms == 0 || c.lease_ms < r->unknown_lease_ms))
            r->unknown_lease_ms = c.lease_ms;
        return;
    }
    if (outcome == 0) {
        r->gone = 1; /* our token never comes back */
        return;
    }
    c.done = ++r->seq;
    /* Whatever was known to have run before this was sent ran before it. */
    for (int s = 0; s < SOURCES; s++)
        if (r->last[s].used && r->last[s].done < c.begun)
            r->last[s].used = 0;
    r->last[source] = c;
    r->base_ms = max64(r->base_ms, c.sent_ms);
}

/* Publishes the bound (while held) and plans the next renewal: a third of
 * the way from `base` to the bound, or at once when two commands may have
 * set the lease and neither is on the wire any more (the renewal then
 * settles which lease is in force). */
static void ledger_publish(fairlock__renewer *r) {
    int candidates;
    int64_t bound = ledger_bound(r, &candidates);
    if (!r->lost && !r->gone)
        atomic_store(&r->lock->valid_until_ms, bound);
    if (bound == INT64_MAX)
        r->next_ms = INT64_MAX; /* nothing expires */
    else if (candidates > 1 && !r->flight[BY_RENEWER].used &&
             !r->flight[BY_OWNER].used)
        r->next_ms = 0;
    else
        r->next_ms = r->base_ms + (bound - r->base_ms) / 3;
    pthread_cond_broadcast(&r->cv);
}

/* ---------------------------------------------------------------------------
 * The renewal thread
 * ------------------------------------------------------------------------- */

static void wait_until(fairlock__renewer *r, int64_t when_ms) {
    if (when_ms == INT64_MAX) {
        pthread_cond_wait(&r->cv, &r->mu);
        return;
    }
    struct timespec ts;
    ts.tv_sec = (time_t)(when_ms / 1000);
    ts.tv_nsec = (long)(when_ms % 1000) * 1000000;
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

/* One token-checked PEXPIRE, bounded by the time the lease has left so a
 * stalled server is noticed when the lease runs out, not after a full I/O
 * timeout.  Runs without the mutex. */
static int renew_once(fairlock__renewer *r, const fairlock *lock,
                      const char *token, int64_t lease_ms, int64_t budget_ms,
                      int64_t io_timeout_ms, int *owned) {
    if (budget_ms > io_timeout_ms)
        budget_ms = io_timeout_ms;
    if (budget_ms < 1)
        budget_ms = 1;
    r->conn.io_timeout_ms = budget_ms;
    int rc = fairlock__conn_ready(&r->conn, &r->io_err);
    if (rc != FAIRLOCK_OK)
        return rc;
    struct timeval tv = {(time_t)(budget_ms / 1000),
                         (suseconds_t)(budget_ms % 1000) * 1000};
    redisSetTimeout(r->conn.ctx, tv);
    return fairlock__call_extend(&r->conn, &r->io_err, &lock->keys, token,
                                 lease_ms, owned);
}

static void *renew_main(void *arg) {
    fairlock__renewer *r = arg;
    fairlock *lock = r->lock;
    int64_t io_timeout_ms = lock->conn.io_timeout_ms;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (!r->active) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        int64_t now = fairlock__now_ms();
        if (now < r->next_ms) {
            wait_until(r, r->next_ms);
            continue;
        }
        char token[FAIRLOCK_TOKEN_MAX];
        memcpy(token, r->token, sizeof token);
        uint64_t grant = r->grant;
        int64_t lease = r->lease_ms;
        ledger_send(r, BY_RENEWER, now, lease);
        ledger_publish(r);
        int64_t budget = ledger_bound(r, NULL) - now;
        r->in_flight = 1;
        pthread_mutex_unlock(&r->mu);

        int owned = 0;
        int rc = renew_once(r, lock, token, lease, budget, io_timeout_ms,
                            &owned);

        pthread_mutex_lock(&r->mu);
        r->in_flight = 0;
        pthread_cond_broadcast(&r->cv);
        if (!r->active || r->grant != grant)
            continue; /* released, or a new grant, meanwhile */
        ledger_reply(r, BY_RENEWER, rc != FAIRLOCK_OK ? -1 : owned);
        ledger_publish(r);
        now = fairlock__now_ms();
        if (rc == FAIRLOCK_OK && owned)
            continue;
        int64_t bound = ledger_bound(r, NULL);
        if (rc == FAIRLOCK_OK) {
            fairlock__error_set(&r->lost_reason, FAIRLOCK_NOTOWNED,
                                "lease lost: the lock key vanished or got "
                                "another owner");
        } else if (now >= bound) {
            fairlock__error_set(&r->lost_reason, FAIRLOCK_NOTOWNED,
                                "lease lost: Redis did not answer until the "
                                "lease ran out (%s)",
                                r->io_err.msg);
        } else {
            int64_t left = bound - now;
            r->next_ms = now + (left / 4 < RETRY_MS ? left / 4 : RETRY_MS);
            continue;
        }
        r->lost = 1;
        r->active = 0;
        atomic_store(&lock->valid_until_ms, 0);
        atomic_store(&lock->state, FAIRLOCK_STATE_LOST);
        if (lock->opts.on_lost != NULL) {
            pthread_mutex_unlock(&r->mu);
            lock->opts.on_lost(lock, lock->opts.on_lost_arg);
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int renewer_create(fairlock *lock, fairlock__error *err) {
    fairlock__renewer *r = calloc(1, sizeof *r);
    if (r == NULL)
        return fairlock__error_set(err, FAIRLOCK_NOMEM,
                                   "cannot allocate the renewer");
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    /* Deadlines are CLOCK_MONOTONIC, like everything else here. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&r->mu, NULL);
    r->conn.url = &lock->url;
    r->conn.io_timeout_ms = lock->conn.io_timeout_ms;
    r->pid = getpid();
    r->lock = lock;
    lock->renewer = r;
    return FAIRLOCK_OK;
}

static int renewer_start_thread(fairlock__renewer *r, fairlock__error *err) {
    /* The thread inherits the mask in force when it is created: with every
     * signal blocked it never runs the application's handlers and a broken
     * connection cannot kill the process with SIGPIPE from here. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int e = pthread_create(&r->thread, NULL, renew_main, r);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (e != 0)
        return fairlock__error_set(err, FAIRLOCK_NOMEM,
                                   "cannot start the renewal thread: %s",
                                   strerror(e));
    r->started = 1;
    return FAIRLOCK_OK;
}

/* ---------------------------------------------------------------------------
 * What lock.c calls
 * ------------------------------------------------------------------------- */

int fairlock__renew_start(fairlock *lock, const char *token, int64_t lease_ms,
                          int64_t sent_ms, fairlock__error *err) {
    if (lock->renewer == NULL) {
        int rc = renewer_create(lock, err);
        if (rc != FAIRLOCK_OK)
            return rc;
    }
    fairlock__renewer *r = lock->renewer;
    if (lock->opts.auto_renew && !r->started) {
        int rc = renewer_start_thread(r, err);
        if (rc != FAIRLOCK_OK)
            return rc;
    }
    pthread_mutex_lock(&r->mu);
    snprintf(r->token, sizeof r->token, "%s", token);
    r->grant++;
    r->lease_ms = lease_ms;
    ledger_reset(r);
    ledger_send(r, BY_OWNER, sent_ms, lease_ms);
    ledger_reply(r, BY_OWNER, 1);
    r->recording = 1;
    r->active = lock->opts.auto_renew;
    r->lost = 0;
    ledger_publish(r);
    pthread_mutex_unlock(&r->mu);
    return FAIRLOCK_OK;
}

int fairlock__renew_stop(fairlock *lock, fairlock__error *err) {
    fairlock__renewer *r = lock->renewer;
    if (r == NULL)
        return 0;
    pthread_mutex_lock(&r->mu);
    r->active = 0;
    while (r->in_flight)
        pthread_cond_wait(&r->cv, &r->mu);
    int lost = r->lost;
    if (lost)
        *err = r->lost_reason;
    r->lost = 0;
    r->recording = 0;
    r->token[0] = '\0';
    ledger_reset(r);
    pthread_mutex_unlock(&r->mu);
    return lost;
}

void fairlock__renew_extend_begin(fairlock *lock, int64_t lease_ms,
                                  int64_t sent_ms) {
    fairlock__renewer *r = lock->renewer;
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    if (r->recording) {
        ledger_send(r, BY_OWNER, sent_ms, lease_ms);
        ledger_publish(r);
    }
    pthread_mutex_unlock(&r->mu);
}

int fairlock__renew_extend_end(fairlock *lock, int outcome) {
    fairlock__renewer *r = lock->renewer;
    if (r == NULL)
        return outcome == 1;
    pthread_mutex_lock(&r->mu);
    int held = outcome == 1;
    if (r->recording) {
        int64_t lease = r->flight[BY_OWNER].lease_ms;
        ledger_reply(r, BY_OWNER, outcome);
        held = outcome == 1 && !r->gone;
        int revived = 0;
        if (held) {
            /* The renewer goes on with the new lease; a loss it reported
             * for want of an answer is withdrawn, since the key was ours
             * all along (nobody else ever sets our token). */
            r->lease_ms = lease;
            revived = r->lost;
            r->lost = 0;
        }
        ledger_publish(r);
        if (revived) {
            r->active = r->started;
            atomic_store(&lock->state, FAIRLOCK_STATE_HELD);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return held;
}

void fairlock__renew_free(fairlock *lock) {
    fairlock__renewer *r = lock->renewer;
    if (r == NULL)
        return;
    lock->renewer = NULL;
    if (r->pid != getpid()) {
        /* A forked child's copy: the thread, and whoever held the mutex or
         * waited on the condition, stayed in the parent. */
        fairlock__conn_close(&r->conn);
        free(r);
        return;
    }
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        r->active = 0;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    fairlock__conn_close(&r->conn);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
