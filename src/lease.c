/* lease.c -- the state of a request and of its grant, for both threads.
 *
 * A request goes through these states on the handle (owner thread only):
 *   idle     no token
 *   waiting  inside fairlock_acquire(): token and ticket, maybe an entry
 *            in NAME:queue
 *   held     granted; the token is the value of NAME
 *   pending  a script failed with unknown outcome: the token is kept and
 *            the next call (or fairlock_free) resolves it with cancel.lua,
 *            which both removes a queue entry and undoes a grant.
 *
 * A grant's lease is a fairlock__lease, shared by the owner thread and the
 * renewal thread and written only here, under its mutex: every command
 * that sets the lease is recorded in its ledger (the grant, the renewals,
 * the owner's extends), and the bound that fairlock_valid_until_ms()
 * reports is computed from that record alone, so it stays a lower bound on
 * the key's real expiry however the two threads' commands interleave on
 * the server.  The published state and bound are atomics, so that queries
 * need no lock.  A grant counter (the generation) makes a renewal that was
 * on the wire across a release or a new grant change nothing.
 *
 * The one hard rule: no renewal may reach the server after the release.
 * fairlock__lease_stop() clears `active` and then waits while a renewal is
 * in flight, so by the time the release script is sent, the renewer is idle
 * and will not send again for this token. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Pause between attempts while Redis does not answer. */
#define RETRY_MS 100

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

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

struct fairlock__lease {
    pid_t pid; /* the process whose threads may hold mu */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on new work, stop and end of flight */
    /* Published: read from any thread without mu. */
    _Atomic int state;
    _Atomic int64_t valid_until_ms;
    int stop;       /* the renewal thread is to end */
    int renews;     /* the grant is auto-renewed (a renewal thread runs) */
    int owed;       /* a capped hand-off's confirmation is still owed */
    int recording;  /* a grant is recorded: from start to stop */
    int active;     /* the renewal thread renews `token` (without `renews`:
                       once, to send the confirmation owed) */
    int in_flight;  /* a renewal is on the wire */
    int lost;       /* loss reported; an extend that succeeds withdraws it */
    int gone;       /* a reply showed the key not ours: lost for good */
    uint64_t grant; /* counts the grants, so a stale renewal is ignored */
    char token[FAIRLOCK_TOKEN_MAX];
    int64_t lease_ms; /* what the next renewal asks for */
    int64_t next_ms;  /* monotonic time of the next renewal */
    /* Until when the renewal thread sleeps unless woken (INT64_MAX: until
     * woken; INT64_MIN: it is awake and looks at next_ms before it sleeps
     * again).  Waking it only when a new plan is due sooner keeps a
     * thread wake-up off every grant: one whose renewal falls after the
     * thread's own wake-up time is found then. */
    int64_t asleep_until_ms;
    /* The ledger. */
    uint64_t seq;
    lease_cmd last[SOURCES];   /* latest command known to have run */
    lease_cmd flight[SOURCES]; /* on the wire */
    int64_t base_ms;           /* latest send time of a command that ran */
    int64_t unknown_lease_ms;  /* shortest lease of unknown outcome, or 0 */
    fairlock__error lost_reason;
};

int64_t fairlock__drift_ms(int64_t lease_ms) { return lease_ms / 100 + 2; }

static int64_t bound_from(int64_t from_ms, int64_t lease_ms) {
    if (lease_ms == 0)
        return INT64_MAX;
    return from_ms + lease_ms - fairlock__drift_ms(lease_ms);
}

/* The bound, and in *candidates how many commands may have set it. */
static int64_t ledger_bound(const fairlock__lease *r, int *candidates) {
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

static void ledger_reset(fairlock__lease *r) {
    memset(r->last, 0, sizeof r->last);
    memset(r->flight, 0, sizeof r->flight);
    r->base_ms = 0;
    r->unknown_lease_ms = 0;
    r->gone = 0;
}

/* A command of `source` is about to be sent. */
static void ledger_send(fairlock__lease *r, int source, int64_t sent_ms,
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
static void ledger_reply(fairlock__lease *r, int source, int outcome) {
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
static void ledger_publish(fairlock__lease *r) {
    int candidates;
    int64_t bound = ledger_bound(r, &candidates);
    if (!r->lost && !r->gone)
        atomic_store(&r->valid_until_ms, bound);
    if (bound == INT64_MAX)
        r->next_ms = INT64_MAX; /* nothing expires */
    else if (candidates > 1 && !r->flight[BY_RENEWER].used &&
             !r->flight[BY_OWNER].used)
        r->next_ms = 0;
    else
        r->next_ms = r->base_ms + (bound - r->base_ms) / 3;
    if (r->active && r->next_ms < r->asleep_until_ms)
        pthread_cond_broadcast(&r->cv);
}

/* ---------------------------------------------------------------------------
 * Lifetime and what any thread reads
 * ------------------------------------------------------------------------- */

fairlock__lease *fairlock__lease_new(void) {
    fairlock__lease *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    /* Deadlines are CLOCK_MONOTONIC, like everything else here. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&r->mu, NULL);
    r->pid = getpid();
    r->asleep_until_ms = INT64_MIN;
    return r;
}

void fairlock__lease_free(fairlock__lease *r) {
    if (r == NULL)
        return;
    /* In a forked child, whoever held the mutex or waited on the condition
     * stayed in the parent: only the memory is ours. */
    if (r->pid == getpid()) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
    }
    free(r);
}

void fairlock__lease_publish(fairlock__lease *r, int state,
                             int64_t valid_until_ms) {
    atomic_store(&r->valid_until_ms, valid_until_ms);
    atomic_store(&r->state, state);
}

int fairlock__lease_state(fairlock__lease *r) {
    return r == NULL ? FAIRLOCK_STATE_IDLE : atomic_load(&r->state);
}

int64_t fairlock__lease_valid_until(fairlock__lease *r) {
    return r == NULL ? 0 : atomic_load(&r->valid_until_ms);
}

int64_t fairlock__validity(int64_t sent_ms, int64_t lease_ms) {
    return bound_from(sent_ms, lease_ms);
}

/* ---------------------------------------------------------------------------
 * The owner thread's side
 * ------------------------------------------------------------------------- */

/* Both under one hold of mu, so that the renewal thread never sees the
 * grant without its confirmation owed. */
static void start_locked(fairlock__lease *r, const char *token,
                         int64_t lease_ms, int64_t sent_ms, int renews,
                         int64_t confirm_ms) {
    snprintf(r->token, sizeof r->token, "%s", token);
    r->grant++;
    r->lease_ms = lease_ms;
    ledger_reset(r);
    ledger_send(r, BY_OWNER, sent_ms, lease_ms);
    ledger_reply(r, BY_OWNER, 1);
    r->recording = 1;
    r->renews = renews;
    r->owed = confirm_ms >= 0;
    r->active = renews || r->owed;
    if (r->owed)
        r->lease_ms = confirm_ms;
    r->lost = 0;
    ledger_publish(r);
}

void fairlock__lease_start(fairlock__lease *r, const char *token,
                           int64_t lease_ms, int64_t sent_ms, int renews) {
    pthread_mutex_lock(&r->mu);
    start_locked(r, token, lease_ms, sent_ms, renews, -1);
    pthread_mutex_unlock(&r->mu);
}

void fairlock__lease_start_capped(fairlock__lease *r, const char *token,
                                  int64_t capped_ms, int64_t sent_ms,
                                  int renews, int64_t lease_ms) {
    pthread_mutex_lock(&r->mu);
    start_locked(r, token, capped_ms, sent_ms, renews, lease_ms);
    pthread_mutex_unlock(&r->mu);
}

int fairlock__lease_owed(fairlock__lease *r) {
    pthread_mutex_lock(&r->mu);
    int owed = r->owed;
    pthread_mutex_unlock(&r->mu);
    return owed;
}

int fairlock__lease_stop(fairlock__lease *r, fairlock__error *err) {
    pthread_mutex_lock(&r->mu);
    r->active = 0;
    r->owed = 0;
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

void fairlock__lease_extend_begin(fairlock__lease *r, int64_t lease_ms,
                                  int64_t sent_ms) {
    pthread_mutex_lock(&r->mu);
    if (r->active && !r->renews) {
        /* The owner's lease supersedes the confirmation still owed: had
         * that confirmation reached the server after this extend, it
         * would set its own lease over the one the owner asked for. */
        r->active = 0;
        while (r->in_flight)
            pthread_cond_wait(&r->cv, &r->mu);
    }
    if (r->recording) {
        ledger_send(r, BY_OWNER, sent_ms, lease_ms);
        ledger_publish(r);
    }
    pthread_mutex_unlock(&r->mu);
}

int fairlock__lease_extend_end(fairlock__lease *r, int outcome) {
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
            r->owed = 0;
            revived = r->lost;
            r->lost = 0;
        } else if (outcome < 0 && r->owed && !r->renews && !r->lost) {
            /* The extend that superseded the confirmation may never have
             * run: the confirmation is owed again, or the key could end
             * with the cap while the handle says held. */
            r->active = 1;
        }
        if (revived)
            r->active = r->renews;
        ledger_publish(r);
        if (revived)
            atomic_store(&r->state, FAIRLOCK_STATE_HELD);
    }
    pthread_mutex_unlock(&r->mu);
    return held;
}

/* ---------------------------------------------------------------------------
 * The renewal thread's side
 * ------------------------------------------------------------------------- */

static void wait_until(fairlock__lease *r, int64_t when_ms) {
    r->asleep_until_ms = when_ms;
    if (when_ms == INT64_MAX) {
        pthread_cond_wait(&r->cv, &r->mu);
    } else {
        struct timespec ts;
        ts.tv_sec = (time_t)(when_ms / 1000);
        ts.tv_nsec = (long)(when_ms % 1000) * 1000000;
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    r->asleep_until_ms = INT64_MIN;
}

int fairlock__lease_next_turn(fairlock__lease *r, fairlock__lease_turn *turn) {
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (!r->active) {
            wait_until(r, INT64_MAX);
            continue;
        }
        int64_t now = fairlock__now_ms();
        if (now < r->next_ms) {
            wait_until(r, r->next_ms);
            continue;
        }
        memcpy(turn->token, r->token, sizeof turn->token);
        turn->grant = r->grant;
        turn->lease_ms = r->lease_ms;
        ledger_send(r, BY_RENEWER, now, turn->lease_ms);
        ledger_publish(r);
        turn->budget_ms = ledger_bound(r, NULL) - now;
        r->in_flight = 1;
        pthread_mutex_unlock(&r->mu);
        return 1;
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int fairlock__lease_turn_done(fairlock__lease *r,
                              const fairlock__lease_turn *turn, int rc,
                              int owned, const char *io_error) {
    pthread_mutex_lock(&r->mu);
    r->in_flight = 0;
    pthread_cond_broadcast(&r->cv);
    int report = 0;
    /* A release waits for this reply, so the grant is still this one;
     * but when the owner is releasing, or extending over a confirmation
     * (fairlock__lease_extend_begin), the outcome is only recorded: what
     * follows is the owner's to settle. */
    if (r->grant != turn->grant || !r->recording)
        goto out;
    ledger_reply(r, BY_RENEWER, rc != FAIRLOCK_OK ? -1 : owned);
    if (!r->active)
        goto out;
    if (rc == FAIRLOCK_OK && owned) {
        r->owed = 0;
        r->active = r->renews; /* a confirmation is not repeated */
    }
    ledger_publish(r);
    int64_t now = fairlock__now_ms();
    if (rc == FAIRLOCK_OK && owned)
        goto out;
    int64_t bound = ledger_bound(r, NULL);
    if (rc == FAIRLOCK_OK) {
        fairlock__error_set(&r->lost_reason, FAIRLOCK_NOTOWNED,
                            "lease lost: the lock key vanished or got "
                            "another owner");
    } else if (now >= bound) {
        fairlock__error_set(&r->lost_reason, FAIRLOCK_NOTOWNED,
                            "lease lost: Redis did not answer until the "
                            "lease ran out (%s)",
                            io_error);
    } else {
        int64_t left = bound - now;
        r->next_ms = now + (left / 4 < RETRY_MS ? left / 4 : RETRY_MS);
        goto out;
    }
    r->lost = 1;
    r->active = 0;
    atomic_store(&r->valid_until_ms, 0);
    atomic_store(&r->state, FAIRLOCK_STATE_LOST);
    report = 1;
out:
    pthread_mutex_unlock(&r->mu);
    return report;
}

void fairlock__lease_shutdown(fairlock__lease *r) {
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    r->active = 0;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------------------
 * The request on the handle (owner thread)
 * ------------------------------------------------------------------------- */

void fairlock__request_forget(fairlock *lock) {
    lock->request = FAIRLOCK__REQUEST_IDLE;
    lock->ticket = 0;
    lock->rank = -1;
    lock->fence = 0;
    lock->permit = 0;
    lock->token[0] = '\0';
    lock->attempt_unanswered = 0;
    fairlock__lease_publish(lock->lease, FAIRLOCK_STATE_IDLE, 0);
}

void fairlock__request_pending(fairlock *lock) {
    lock->request = FAIRLOCK__REQUEST_PENDING;
    fairlock__lease_publish(lock->lease, FAIRLOCK_STATE_PENDING, 0);
}

/* A non-FIFO request never queues (no ticket: nothing to find).  A FIFO
 * request whose ticket is unknown (its first reply was lost) is searched
 * for a page per call, so that no single script scans a long queue.  When
 * the last acquire got no reply, it may still reach the server after this
 * cancel: the cancel leaves a tombstone that keeps it out (cancel.lua). */
int fairlock__request_resolve(fairlock *lock, int *undone) {
    char cursor[FAIRLOCK__CURSOR_SIZE] = "0";
    int64_t ticket = lock->opts.fifo ? lock->ticket : FAIRLOCK__NO_TICKET;
    *undone = 0;
    int rc = fairlock__ready(lock);
    while (rc == FAIRLOCK_OK) {
        int undone_now = 0;
        rc = fairlock__call_cancel(&lock->conn, &lock->err, &lock->keys,
                                   lock->token, ticket, lock->foreign_live_ms,
                                   cursor, lock->attempt_unanswered,
                                   &undone_now);
        if (rc != FAIRLOCK_OK)
            break;
        *undone = *undone || undone_now;
        if (strcmp(cursor, "0") == 0) {
            fairlock__stats_hold_ended(lock);
            fairlock__request_forget(lock);
            break;
        }
    }
    return rc;
}

/* When the cleanup cannot run (the connection is gone), the request stays
 * pending for the next call: its queue entry would otherwise only go when
 * it turns stale, and a grant only when its lease ends. */
int fairlock__request_abandon(fairlock *lock, int code) {
    fairlock__error saved = lock->err;
    fairlock__request_pending(lock);
    if (fairlock__conn_alive(&lock->conn)) {
        int undone;
        fairlock__request_resolve(lock, &undone);
    }
    lock->err = saved;
    return code;
}
