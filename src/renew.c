/* renew.c -- the renewal thread: keeps a held lease alive, notices loss.
 *
 * One thread per handle, started on the first grant that asks for it and
 * joined by fairlock_free().  It has its own connection, because a hiredis
 * context must not be shared between threads.  All shared fields are
 * guarded by `mu`; the handle's published state and validity are atomics
 * so that queries need no lock.
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

struct fairlock__renewer {
    fairlock *lock; /* read-only for the thread: keys, options, state */
    pid_t pid;      /* the thread exists only in this process */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on new work, stop and end of flight */
    int stop;
    int active;    /* renewing `token` */
    int in_flight; /* a renewal is on the wire */
    int lost;
    char token[FAIRLOCK_TOKEN_MAX];
    int64_t lease_ms;
    int64_t next_ms; /* monotonic time of the next renewal */
    int64_t valid_until_ms;
    fairlock__conn conn;
    fairlock__error io_err;
    fairlock__error lost_reason;
};

int64_t fairlock__drift_ms(int64_t lease_ms) { return lease_ms / 100 + 2; }

static void wait_until(fairlock__renewer *r, int64_t when_ms) {
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
    char px[24];
    snprintf(px, sizeof px, "%lld", (long long)lease_ms);
    const char *argv[2] = {token, px};
    redisReply *reply;
    rc = fairlock__conn_eval(&r->conn, &r->io_err, &lock->keys,
                             &fairlock__script_extend, 2, argv, &reply);
    if (rc != FAIRLOCK_OK)
        return rc;
    *owned = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    return FAIRLOCK_OK;
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
        int64_t lease = r->lease_ms;
        int64_t budget = r->valid_until_ms - now;
        r->in_flight = 1;
        pthread_mutex_unlock(&r->mu);

        int64_t sent = fairlock__now_ms();
        int owned = 0;
        int rc = renew_once(r, lock, token, lease, budget, io_timeout_ms,
                            &owned);

        pthread_mutex_lock(&r->mu);
        r->in_flight = 0;
        pthread_cond_broadcast(&r->cv);
        if (!r->active || strcmp(token, r->token) != 0)
            continue; /* released, or a new grant, meanwhile */
        now = fairlock__now_ms();
        if (rc == FAIRLOCK_OK && owned) {
            r->valid_until_ms = sent + lease - fairlock__drift_ms(lease);
            atomic_store(&lock->valid_until_ms, r->valid_until_ms);
            r->next_ms = sent + lease / 3;
            continue;
        }
        if (rc == FAIRLOCK_OK) {
            fairlock__error_set(&r->lost_reason, FAIRLOCK_NOTOWNED,
                                "lease lost: the lock key vanished or got "
                                "another owner");
        } else if (now >= r->valid_until_ms) {
            fairlock__error_set(&r->lost_reason, FAIRLOCK_NOTOWNED,
                                "lease lost: Redis did not answer until the "
                                "lease ran out (%s)",
                                r->io_err.msg);
        } else {
            int64_t left = r->valid_until_ms - now;
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
    /* The thread inherits the mask in force when it is created: with every
     * signal blocked it never runs the application's handlers and a broken
     * connection cannot kill the process with SIGPIPE from here. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int e = pthread_create(&r->thread, NULL, renew_main, r);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (e != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        lock->renewer = NULL;
        return fairlock__error_set(err, FAIRLOCK_NOMEM,
                                   "cannot start the renewal thread: %s",
                                   strerror(e));
    }
    return FAIRLOCK_OK;
}

int fairlock__renew_start(fairlock *lock, const char *token, int64_t lease_ms,
                          int64_t valid_until_ms, fairlock__error *err) {
    if (lock->renewer == NULL) {
        int rc = renewer_create(lock, err);
        if (rc != FAIRLOCK_OK)
            return rc;
    }
    fairlock__renewer *r = lock->renewer;
    pthread_mutex_lock(&r->mu);
    snprintf(r->token, sizeof r->token, "%s", token);
    r->lease_ms = lease_ms;
    r->valid_until_ms = valid_until_ms;
    r->next_ms = fairlock__now_ms() + lease_ms / 3;
    r->active = 1;
    r->lost = 0;
    pthread_cond_broadcast(&r->cv);
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
    r->token[0] = '\0';
    pthread_mutex_unlock(&r->mu);
    return lost;
}

void fairlock__renew_update(fairlock *lock, int64_t lease_ms,
                            int64_t valid_until_ms) {
    fairlock__renewer *r = lock->renewer;
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    if (r->active) {
        r->lease_ms = lease_ms;
        r->valid_until_ms = valid_until_ms;
        r->next_ms = fairlock__now_ms() + lease_ms / 3;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
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
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    r->active = 0;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    fairlock__conn_close(&r->conn);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
