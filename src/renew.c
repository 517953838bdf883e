/* renew.c -- the renewal thread of an auto-renewed lease, which also sends
 * a capped hand-off's confirmation when the hold outlasts a third of it.
 *
 * One per handle, started on the first grant that needs it and joined by
 * fairlock_free(); it opens its connection only when it first renews.  It has
 * its own connection (a connection must not be shared between threads) and its
 * own copies of the URL and the keys, so it reads nothing of the handle; what
 * it shares with the owner thread is the fairlock__lease, which only lease.c's
 * functions touch: they say when to renew and with what, record each renewal's
 * outcome and publish the result. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct fairlock__renewer {
    fairlock__lease *lease; /* shared with the owner thread, via lease.c */
    pid_t pid;              /* the thread exists only in this process */
    pthread_t thread;
    fairlock__url url;
    fairlock__keys keys;
    fairlock__conn conn;
    int64_t io_timeout_ms;
    fairlock__error io_err;
    fairlock_lost_fn on_lost;
    void *on_lost_arg;
    fairlock *handle; /* only passed to on_lost, never read */
};

/* One token-checked PEXPIRE, bounded by the time the lease has left so a
 * stalled server is noticed when the lease runs out, not after a full I/O
 * timeout. */
static int renew_once(fairlock__renewer *r, const fairlock__lease_turn *turn,
                      int *owned) {
    int64_t budget_ms = turn->budget_ms;
    if (budget_ms > r->io_timeout_ms)
        budget_ms = r->io_timeout_ms;
    if (budget_ms < 1)
        budget_ms = 1;
    r->conn.io_timeout_ms = budget_ms;
    int rc = fairlock__conn_ready(&r->conn, &r->io_err);
    if (rc != FAIRLOCK_OK)
        return rc;
    return fairlock__call_extend(&r->conn, &r->io_err, &r->keys, turn->token,
                                 turn->lease_ms, owned);
}

static void *renew_main(void *arg) {
    fairlock__renewer *r = arg;
    fairlock__lease_turn turn;
    while (fairlock__lease_next_turn(r->lease, &turn)) {
        int owned = 0;
        int rc = renew_once(r, &turn, &owned);
        if (fairlock__lease_turn_done(r->lease, &turn, rc, owned,
                                      r->io_err.msg) &&
            r->on_lost != NULL)
            r->on_lost(r->handle, r->on_lost_arg);
    }
    return NULL;
}

static void renewer_clear(fairlock__renewer *r) {
    fairlock__conn_close(&r->conn);
    fairlock__keys_clear(&r->keys);
    fairlock__url_clear(&r->url);
    free(r);
}

int fairlock__renewer_start(fairlock *lock, fairlock__error *err) {
    fairlock__renewer *r = calloc(1, sizeof *r);
    if (r == NULL || fairlock__url_copy(&r->url, &lock->url) != FAIRLOCK_OK ||
        fairlock__keys_copy(&r->keys, &lock->keys) != FAIRLOCK_OK) {
        if (r != NULL)
            renewer_clear(r);
        return fairlock__error_set(err, FAIRLOCK_NOMEM,
                                   "cannot allocate the renewer");
    }
    r->lease = lock->lease;
    r->pid = getpid();
    r->conn.url = &r->url;
    r->io_timeout_ms = lock->conn.io_timeout_ms;
    r->conn.io_timeout_ms = r->io_timeout_ms;
    r->on_lost = lock->opts.on_lost;
    r->on_lost_arg = lock->opts.on_lost_arg;
    r->handle = lock;
    /* The thread inherits the mask in force when it is created: with every
     * signal blocked it never runs the application's handlers and a broken
     * connection cannot kill the process with SIGPIPE from here. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int e = pthread_create(&r->thread, NULL, renew_main, r);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (e != 0) {
        renewer_clear(r);
        return fairlock__error_set(err, FAIRLOCK_NOMEM,
                                   "cannot start the renewal thread: %s",
                                   strerror(e));
    }
    lock->renewer = r;
    return FAIRLOCK_OK;
}

int fairlock__renewer_usable(const fairlock__renewer *r) {
    return r == NULL || r->pid == getpid();
}

void fairlock__renewer_free(fairlock__renewer *r) {
    if (r == NULL)
        return;
    /* A forked child's copy: the thread stayed in the parent. */
    if (r->pid == getpid()) {
        fairlock__lease_shutdown(r->lease);
        pthread_join(r->thread, NULL);
    }
    renewer_clear(r);
}
