/* lock.c -- release, extend and queries of a lock: what a holder or an
 * onlooker asks once the handle exists.  Every transition on the server is
 * one script; see src/lua/. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int run_release(fairlock *lock, const char *token, int *released) {
    return fairlock__call_release(&lock->conn, &lock->err, &lock->keys, token,
                                  lock->foreign_live_ms, released);
}

int fairlock_release(fairlock *lock) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (fairlock__async_idle(lock) != FAIRLOCK_OK)
        return FAIRLOCK_INVALID;
    if (lock->request != FAIRLOCK__REQUEST_HELD &&
        lock->request != FAIRLOCK__REQUEST_PENDING)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "the lock is not held by this handle");
    /* The renewer goes quiet before the release is sent. */
    fairlock__error lost;
    int was_lost = fairlock__lease_stop(lock->lease, &lost);
    int rc = fairlock__ready(lock);
    if (rc != FAIRLOCK_OK) {
        fairlock__request_pending(lock);
        return rc;
    }
    int released = 0;
    if (lock->request == FAIRLOCK__REQUEST_PENDING) {
        if ((rc = fairlock__request_resolve(lock, &released)) != FAIRLOCK_OK)
            return rc;
        if (!released)
            return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                                  "the lock is not held by this handle (an "
                                  "earlier release may have succeeded)");
        return fairlock__ok(lock);
    }
    fairlock__request_pending(lock);
    if ((rc = run_release(lock, lock->token, &released)) != FAIRLOCK_OK)
        return rc;
    fairlock__stats_hold_ended(lock);
    fairlock__request_forget(lock);
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
    if (fairlock__async_idle(lock) != FAIRLOCK_OK)
        return FAIRLOCK_INVALID;
    if (token == NULL || *token == '\0')
        return fairlock__fail(lock, FAIRLOCK_INVALID, "the token is empty");
    int rc = fairlock__ready(lock);
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

int fairlock__extend_check(fairlock *lock, int64_t ttl_ms) {
    int rc = fairlock__check_duration(lock, "ttl_ms", ttl_ms, 1, 1, 0);
    if (rc != FAIRLOCK_OK)
        return rc;
    if (lock->request != FAIRLOCK__REQUEST_HELD)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "the lock is not held by this handle");
    if (lock->opts.auto_renew && ttl_ms == FAIRLOCK_FOREVER)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "auto_renew needs a finite lease");
    return FAIRLOCK_OK;
}

int fairlock_extend(fairlock *lock, int64_t ttl_ms) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (fairlock__async_idle(lock) != FAIRLOCK_OK)
        return FAIRLOCK_INVALID;
    int rc = fairlock__extend_check(lock, ttl_ms);
    if (rc != FAIRLOCK_OK)
        return rc;
    if ((rc = fairlock__ready(lock)) != FAIRLOCK_OK)
        return rc;
    int owned = 0;
    int64_t lease = ttl_ms == FAIRLOCK_FOREVER ? 0 : ttl_ms;
    /* The renewer may have a renewal on the wire: renew.c works out the
     * bound from both. */
    fairlock__lease_extend_begin(lock->lease, lease, fairlock__now_ms());
    rc = fairlock__call_extend(&lock->conn, &lock->err, &lock->keys,
                               lock->token, lease, &owned);
    int held = fairlock__lease_extend_end(lock->lease,
                                          rc != FAIRLOCK_OK ? -1 : owned);
    if (rc != FAIRLOCK_OK)
        return rc;
    if (!held) {
        fairlock__error lost;
        fairlock__lease_stop(lock->lease, &lost);
        fairlock__stats_hold_ended(lock);
        fairlock__request_forget(lock);
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
    if (fairlock__async_idle(lock) != FAIRLOCK_OK)
        return FAIRLOCK_INVALID;
    if (owned == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "owned is NULL");
    *owned = 0;
    if (lock->token[0] == '\0')
        return fairlock__ok(lock);
    int rc = fairlock__ready(lock);
    if (rc == FAIRLOCK_OK)
        rc = fairlock__call_holder_is(&lock->conn, &lock->err, &lock->keys,
                                      lock->token, owned);
    return rc != FAIRLOCK_OK ? rc : fairlock__ok(lock);
}

int fairlock_locked(fairlock *lock, int *locked) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (fairlock__async_idle(lock) != FAIRLOCK_OK)
        return FAIRLOCK_INVALID;
    if (locked == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "locked is NULL");
    *locked = 0;
    int rc = fairlock__ready(lock);
    if (rc == FAIRLOCK_OK)
        rc = fairlock__call_locked(&lock->conn, &lock->err, &lock->keys,
                                   locked);
    return rc != FAIRLOCK_OK ? rc : fairlock__ok(lock);
}

int fairlock_status_get(fairlock *lock, size_t max_waiters,
                        fairlock_status **out) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (fairlock__async_idle(lock) != FAIRLOCK_OK)
        return FAIRLOCK_INVALID;
    if (out == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "out is NULL");
    *out = NULL;
    int rc = fairlock__ready(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    if ((rc = fairlock__call_status(&lock->conn, &lock->err, &lock->keys,
                                    max_waiters, out)) != FAIRLOCK_OK)
        return rc;
    return fairlock__ok(lock);
}

void fairlock_status_free(fairlock_status *status) { free(status); }

const fairlock_holder *fairlock_status_holder(const fairlock_status *status,
                                              size_t i) {
    if (status == NULL || i >= status->holder_count)
        return NULL;
    return (const fairlock_holder *)status->holders_ + i;
}

/* A record that was not there (or not readable) has size 0. */
static const fairlock_identity *identity_at(const void *ids, size_t i) {
    const fairlock_identity *id = (const fairlock_identity *)ids + i;
    return id->size != 0 ? id : NULL;
}

const fairlock_identity *
fairlock_status_holder_identity(const fairlock_status *status, size_t i) {
    if (status == NULL || i >= status->holder_count)
        return NULL;
    return identity_at(status->holder_ids_, i);
}

const fairlock_identity *
fairlock_status_waiter_identity(const fairlock_status *status, size_t i) {
    if (status == NULL || i >= status->waiter_count)
        return NULL;
    return identity_at(status->waiter_ids_, i);
}

int fairlock_with(fairlock *lock, fairlock_body_fn body, void *arg,
                  int *body_result) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (fairlock__async_idle(lock) != FAIRLOCK_OK)
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

void fairlock__stats_granted(fairlock *lock, int pushed) {
    int64_t now = fairlock__now_ms();
    lock->granted_ms = now;
    lock->stats.acquisitions++;
    lock->stats.handoffs += pushed != 0;
    lock->stats.last_wait_ms = now - lock->acquire_start_ms;
    lock->stats.total_wait_ms += lock->stats.last_wait_ms;
}

void fairlock__stats_hold_ended(fairlock *lock) {
    if (lock->granted_ms == 0)
        return;
    lock->stats.last_hold_ms = fairlock__now_ms() - lock->granted_ms;
    lock->stats.total_hold_ms += lock->stats.last_hold_ms;
    lock->granted_ms = 0;
}

int fairlock_stats_get_sized(const fairlock *lock, fairlock_stats *out,
                             size_t size) {
    if (lock == NULL || out == NULL || size < sizeof out->size)
        return FAIRLOCK_INVALID;
    fairlock_stats s = lock->stats;
    s.size = size < sizeof s ? size : sizeof s;
    s.held_ms = lock->granted_ms != 0 && lock->request == FAIRLOCK__REQUEST_HELD
                    ? fairlock__now_ms() - lock->granted_ms
                    : 0;
    /* Only the caller's bytes are written; a newer header's fields past
     * ours are zeroed. */
    memset(out, 0, size);
    memcpy(out, &s, s.size);
    return FAIRLOCK_OK;
}
