/* fairlock/libuv.h -- drive fairlock handles from a libuv loop.
 *
 *   #include <fairlock/libuv.h>
 *   fairlock_libuv_attach(lock, uv_default_loop());
 *   fairlock_acquire_start(lock, 5000, on_acquired, NULL);
 *   uv_run(uv_default_loop(), UV_RUN_DEFAULT);
 *
 * Header-only: it uses the public non-blocking API of <fairlock.h> alone
 * (compile with libuv's and fairlock's flags, link both).  The adapter
 * registers itself as the handle's watcher and follows it: one uv_poll_t
 * for the socket (a new one when the handle reconnects) and one
 * uv_timer_t.  It lives until the handle is freed (fairlock_free()), and
 * frees itself then; the loop needs a turn after that to finish closing
 * its libuv handles.  While the handle has nothing to wait for, nothing is
 * active, so uv_run() returns once every operation has completed.
 *
 * Thread safety: the loop's thread drives the handle and runs its
 * callbacks; use the handle from there only. */
#ifndef FAIRLOCK_LIBUV_H
#define FAIRLOCK_LIBUV_H

#include <stdlib.h>

#include <uv.h>

#include "../fairlock.h"

typedef struct fairlock_libuv_ {
    uv_loop_t *loop;
    fairlock *lock;
    uv_poll_t *poll; /* on fd, or NULL */
    uv_timer_t *timer;
    int fd;
} fairlock_libuv_;

static void fairlock_libuv_free_handle_(uv_handle_t *handle) { free(handle); }

static void fairlock_libuv_on_poll_(uv_poll_t *poll, int status, int events) {
    fairlock_libuv_ *a = (fairlock_libuv_ *)poll->data;
    /* An error on the socket: let the handle read it and find out. */
    int ev = status < 0 ? FAIRLOCK_EV_READ | FAIRLOCK_EV_WRITE
                        : ((events & UV_READABLE) ? FAIRLOCK_EV_READ : 0) |
                              ((events & UV_WRITABLE) ? FAIRLOCK_EV_WRITE : 0);
    fairlock_async_process(a->lock, ev); /* may free a */
}

static void fairlock_libuv_on_timer_(uv_timer_t *timer) {
    fairlock_libuv_ *a = (fairlock_libuv_ *)timer->data;
    fairlock_async_process(a->lock, 0); /* may free a */
}

static void fairlock_libuv_drop_poll_(fairlock_libuv_ *a) {
    if (a->poll != NULL) {
        uv_poll_stop(a->poll);
        uv_close((uv_handle_t *)a->poll, fairlock_libuv_free_handle_);
        a->poll = NULL;
    }
}

static void fairlock_libuv_watch_(fairlock *lock, int fd, int events,
                                  int64_t timeout_ms, void *arg) {
    fairlock_libuv_ *a = (fairlock_libuv_ *)arg;
    (void)lock;
    if (events & FAIRLOCK_EV_FREED) {
        fairlock_libuv_drop_poll_(a);
        uv_timer_stop(a->timer);
        uv_close((uv_handle_t *)a->timer, fairlock_libuv_free_handle_);
        free(a);
        return;
    }
    if (fd != a->fd) {
        /* Stopped before the handle closes the old socket. */
        fairlock_libuv_drop_poll_(a);
        a->fd = fd;
    }
    if (fd >= 0 && events != 0 && a->poll == NULL) {
        a->poll = (uv_poll_t *)malloc(sizeof *a->poll);
        if (a->poll != NULL && uv_poll_init_socket(a->loop, a->poll, fd) != 0) {
            free(a->poll);
            a->poll = NULL;
        }
        if (a->poll != NULL)
            a->poll->data = a;
    }
    if (a->poll != NULL) {
        if (events != 0)
            uv_poll_start(a->poll,
                          ((events & FAIRLOCK_EV_READ) ? UV_READABLE : 0) |
                              ((events & FAIRLOCK_EV_WRITE) ? UV_WRITABLE : 0),
                          fairlock_libuv_on_poll_);
        else
            uv_poll_stop(a->poll);
    }
    if (timeout_ms >= 0)
        uv_timer_start(a->timer, fairlock_libuv_on_timer_, (uint64_t)timeout_ms,
                       0);
    else
        uv_timer_stop(a->timer);
}

/* Drive `lock` from `loop` from now until the handle is freed.  Call it
 * once per handle, before starting operations (or between them).
 * Returns 0, or a negative libuv error code (UV_ENOMEM). */
static inline int fairlock_libuv_attach(fairlock *lock, uv_loop_t *loop) {
    fairlock_libuv_ *a = (fairlock_libuv_ *)calloc(1, sizeof *a);
    if (a == NULL)
        return UV_ENOMEM;
    a->timer = (uv_timer_t *)malloc(sizeof *a->timer);
    if (a->timer == NULL) {
        free(a);
        return UV_ENOMEM;
    }
    uv_timer_init(loop, a->timer);
    a->timer->data = a;
    a->loop = loop;
    a->lock = lock;
    a->fd = -1;
    fairlock_async_set_watcher(lock, fairlock_libuv_watch_, a);
    return 0;
}

#endif /* FAIRLOCK_LIBUV_H */
