/* acquire.c -- the blocking acquire: attempt, wait for the push, take the
 * grant (and confirm a capped hand-off later). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Runs acquire.lua (FIFO) or acquire_nonfifo.lua.  try_once asks the
 * script to leave no entry behind when the lock is not granted. */
static int run_attempt(fairlock *lock, int try_once, int64_t nonfifo_wait_ms,
                       fairlock__attempt *attempt) {
    /* Until the reply is read, the server may have queued or granted us. */
    fairlock__request_pending(lock);
    lock->last_sent_ms = fairlock__now_ms();
    int rc = lock->opts.fifo
                 ? fairlock__call_acquire(
                       &lock->conn, &lock->err, &lock->keys, lock->token,
                       lock->ticket, lock->foreign_live_ms, try_once, attempt)
                 : fairlock__call_acquire_nonfifo(
                       &lock->conn, &lock->err, &lock->keys, lock->token,
                       try_once ? 0 : nonfifo_wait_ms, lock->foreign_live_ms,
                       attempt);
    /* No reply: the request may still be on its way (in the socket of a
     * dead connection, in a stalled server), to run after the cancel that
     * resolves it; that cancel must then keep it out. */
    lock->attempt_unanswered = rc != FAIRLOCK_OK && lock->conn.unanswered;
    if (rc != FAIRLOCK_OK)
        return rc;
    lock->request = FAIRLOCK__REQUEST_WAITING;
    if (attempt->ticket > 0)
        lock->ticket = attempt->ticket;
    lock->rank = attempt->granted || !lock->opts.fifo ? -1 : attempt->rank;
    return FAIRLOCK_OK;
}

static int run_extend(fairlock *lock, int64_t lease_ms, int *owned) {
    return fairlock__call_extend(&lock->conn, &lock->err, &lock->keys,
                                 lock->token, lease_ms, owned);
}

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

/* Records the grant with the lease (from here the ledger publishes the
 * bound) and, with auto_renew, has it renewed: the renewal thread starts
 * on the first grant. */
static int start_lease(fairlock *lock, int64_t lease_ms, int64_t from) {
    if (lock->opts.auto_renew && lock->renewer == NULL) {
        int rc = fairlock__renewer_start(lock, &lock->err);
        if (rc != FAIRLOCK_OK)
            return rc;
    }
    fairlock__lease_start(lock->lease, lock->token, lease_ms, from,
                          lock->opts.auto_renew);
    return FAIRLOCK_OK;
}

/* Sentinel result of take_grant(): the hand-off expired before we could
 * confirm it (we were paused longer than our liveness window), so the
 * caller goes back to waiting. */
#define HANDOFF_EXPIRED (-1)

/* A hand-off to a waiter is capped at its liveness window, so a head that
 * died before it could take the lock holds it no longer than a dead
 * waiter holds the queue; the live head then takes its full lease.  While
 * the capped lease has most of its length to run, that confirmation is
 * left to the renewal thread, which sends it only if the hold outlasts a
 * third of the capped lease (fairlock__lease_start_capped): most holds
 * end sooner, and their release deletes the key anyway, so a hand-off
 * costs three commands, as with a lease that needs no confirmation.
 * Until then fairlock_valid_until_ms() is the capped lease's bound, which
 * is true whatever happens next.  Returns 0 when it cannot be deferred:
 * a borrowed connection has no URL for the thread's own connection, a
 * forked child's handle has its parent's thread, and a grant that is to
 * reach replicas is confirmed before it is WAITed for. */
static int confirm_later(fairlock *lock, int64_t capped_ms, int64_t from) {
    if (lock->opts.wait_replicas > 0 || lock->conn.borrowed ||
        !fairlock__renewer_usable(lock->renewer))
        return 0;
    if (lock->renewer == NULL &&
        fairlock__renewer_start(lock, &lock->err) != FAIRLOCK_OK)
        return 0; /* confirmed at once instead */
    fairlock__lease_publish(lock->lease, FAIRLOCK_STATE_HELD,
                            fairlock__validity(from, capped_ms));
    fairlock__lease_start_capped(lock->lease, lock->token, capped_ms, from,
                                 lock->opts.auto_renew, lock->lease_ms);
    return 1;
}

/* The grant is recorded: the hold starts. */
static int count_grant(fairlock *lock, int pushed) {
    fairlock__stats_granted(lock, pushed);
    return fairlock__ok(lock);
}

/* The lock is ours.  A hand-off to a waiter is capped at the waiter's
 * liveness window (a dead waiter must not hold the lock long); now that we
 * are known to be alive, take the full lease.  granted_sent_ms is a time
 * before the grant, from which the validity bound counts. */
static int take_grant(fairlock *lock, const fairlock__attempt *attempt,
                      int64_t granted_sent_ms, int pushed) {
    lock->request = FAIRLOCK__REQUEST_HELD;
    lock->rank = -1;
    if (attempt->ticket > 0)
        lock->ticket = attempt->ticket;
    lock->fence = attempt->fence;
    lock->permit = attempt->permit;
    int64_t from = granted_sent_ms;
    int64_t valid_until = fairlock__validity(from, attempt->lease_ms);
    /* The grant happened after our last request, which may be a heartbeat
     * ago: when that leaves less than two thirds of the lease as a bound,
     * an extend buys a fresh one (and it is needed anyway when the
     * hand-off capped the lease and the confirmation cannot wait). */
    int64_t px = attempt->lease_ms;
    int64_t left = valid_until - fairlock__now_ms();
    if (attempt->lease_ms != lock->lease_ms && px > 0 && left >= px * 2 / 3 &&
        confirm_later(lock, px, from))
        return count_grant(lock, pushed);
    if (attempt->lease_ms != lock->lease_ms || (px > 0 && left < px * 2 / 3)) {
        int owned = 0;
        from = fairlock__now_ms();
        int rc = run_extend(lock, lock->lease_ms, &owned);
        if (rc != FAIRLOCK_OK)
            return fairlock__request_abandon(lock, rc);
        if (!owned) {
            lock->request = FAIRLOCK__REQUEST_WAITING;
            lock->fence = 0;
            return HANDOFF_EXPIRED;
        }
        valid_until = fairlock__validity(from, lock->lease_ms);
    }
    if (lock->opts.wait_replicas > 0) {
        int rc = wait_for_replicas(lock);
        if (rc != FAIRLOCK_OK)
            return fairlock__request_abandon(lock, rc);
    }
    fairlock__lease_publish(lock->lease, FAIRLOCK_STATE_HELD, valid_until);
    int rc = start_lease(lock, lock->lease_ms, from);
    if (rc != FAIRLOCK_OK)
        return fairlock__request_abandon(lock, rc);
    return count_grant(lock, pushed);
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
    lock->acquire_start_ms = start;
    int64_t deadline = timeout_ms == FAIRLOCK_FOREVER ? INT64_MAX
                                                      : start + timeout_ms;
    int64_t heartbeat_ms = live_ms / 3 > 0 ? live_ms / 3 : 1;
    int64_t nonfifo_wait_ms = 2 * check_ms + 100;
    fairlock__attempt attempt;

    int rc = run_attempt(lock, try_once, nonfifo_wait_ms, &attempt);
    for (;;) {
        if (rc != FAIRLOCK_OK)
            return fairlock__request_abandon(lock, rc);
        if (attempt.granted) {
            rc = take_grant(lock, &attempt, lock->last_sent_ms, 0);
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
            fairlock__request_forget(lock);
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
            return fairlock__request_abandon(lock, rc);
        if (woken && lock->opts.fifo) {
            rc = take_grant(lock, &attempt, lock->last_sent_ms, 1);
            if (rc != HANDOFF_EXPIRED)
                return rc;
        }
        if (fairlock__now_ms() >= deadline) {
            fairlock__fail(lock, FAIRLOCK_TIMEOUT,
                           "not granted within %" PRId64 " ms", timeout_ms);
            return fairlock__request_abandon(lock, FAIRLOCK_TIMEOUT);
        }
        rc = run_attempt(lock, 0, nonfifo_wait_ms, &attempt);
    }
}

int fairlock__acquire_plan(fairlock *lock, int64_t timeout_ms, int blocking,
                           int64_t check_interval_ms, fairlock__plan *plan) {
    if (!lock->usable)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the handle was not created successfully");
    if (lock->request == FAIRLOCK__REQUEST_HELD)
        return fairlock__fail(lock, FAIRLOCK_BUSY,
                              "this handle already holds the lock");
    if (timeout_ms == FAIRLOCK_DEFAULT)
        timeout_ms = lock->opts.timeout_ms;
    if (check_interval_ms == FAIRLOCK_DEFAULT)
        check_interval_ms = lock->opts.check_interval_ms;
    if (blocking == -1)
        blocking = lock->opts.blocking;
    int rc;
    if ((rc = fairlock__check_duration(lock, "timeout_ms", timeout_ms, 0, 1,
                                       0)) ||
        (rc = fairlock__check_duration(lock, "check_interval_ms",
                                       check_interval_ms, 1, 0, 0)))
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
    plan->timeout_ms = timeout_ms;
    plan->check_ms = check_interval_ms;
    plan->lease_ms = lease == FAIRLOCK_FOREVER ? 0 : lease;
    plan->live_ms = lock->foreign_live_ms < FAIRLOCK_MIN_LIVENESS_MS
                        ? FAIRLOCK_MIN_LIVENESS_MS
                        : lock->foreign_live_ms;
    plan->try_once = !blocking || timeout_ms == 0;
    return FAIRLOCK_OK;
}

int fairlock__acquire_request(fairlock *lock, const fairlock__plan *plan) {
    if (fairlock__token_new(lock->token, plan->lease_ms, plan->live_ms,
                            lock->opts.fencing) != 0)
        return fairlock__fail(lock, FAIRLOCK_REDIS,
                              "getrandom failed; no token could be made");
    /* A reader says so in its token, so that whichever script grants it
     * knows its mode (sem_common.lua's token_terms). */
    if (lock->opts.shared) {
        size_t used = strlen(lock->token);
        if (used + 2 >= sizeof lock->token)
            return fairlock__fail(lock, FAIRLOCK_INVALID,
                                  "lease and stale timeout too long for a "
                                  "token");
        memcpy(lock->token + used, ".s", 3);
    }
    lock->ticket = 0;
    lock->fence = 0;
    lock->request_pid = getpid();
    lock->lease_ms = plan->lease_ms;
    fairlock__keys_set_wake(&lock->keys, lock->token);
    return FAIRLOCK_OK;
}

int fairlock_acquire_ex(fairlock *lock, int64_t timeout_ms, int blocking,
                        int64_t check_interval_ms) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    fairlock__plan plan;
    int rc = fairlock__acquire_plan(lock, timeout_ms, blocking,
                                    check_interval_ms, &plan);
    if (rc != FAIRLOCK_OK)
        return rc;
    if ((rc = fairlock__async_idle(lock)) != FAIRLOCK_OK ||
        (rc = fairlock__ready(lock)) != FAIRLOCK_OK)
        return rc;
    if (lock->request == FAIRLOCK__REQUEST_PENDING) {
        int undone;
        if ((rc = fairlock__request_resolve(lock, &undone)) != FAIRLOCK_OK)
            return rc;
    }
    if ((rc = fairlock__acquire_request(lock, &plan)) != FAIRLOCK_OK)
        return rc;
    /* A slot in migration is waited out until the acquire's deadline. */
    lock->conn.deadline_ms = plan.timeout_ms == FAIRLOCK_FOREVER
                                 ? INT64_MAX
                                 : fairlock__now_ms() + plan.timeout_ms;
    rc = acquire_loop(lock, plan.timeout_ms, plan.try_once, plan.check_ms,
                      plan.live_ms);
    lock->conn.deadline_ms = 0;
    return rc;
}

int fairlock_acquire(fairlock *lock) {
    return fairlock_acquire_ex(lock, FAIRLOCK_DEFAULT, -1, FAIRLOCK_DEFAULT);
}
