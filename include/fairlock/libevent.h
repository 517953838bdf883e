/* fairlock/libevent.h -- drive fairlock handles from a libevent base.
 *
 *   #include <fairlock/libevent.h>
 *   fairlock_libevent_attach(lock, base);
 *   fairlock_acquire_start(lock, 5000, on_acquired, NULL);
 *   event_base_dispatch(base);
 *
 * Header-only: it uses the public non-blocking API of <fairlock.h> alone
 * (compile with libevent's and fairlock's flags, link both).  The adapter
 * registers itself as the handle's watcher and follows it: one event for
 * the socket (made again when the handle reconnects or wants other
 * events) and one timer.  It lives until the handle is freed
 * (fairlock_free()), and frees itself then.  While the handle has nothing
 * to wait for, no event is pending, so event_base_dispatch() returns once
 * every operation has completed.
 *
 * Thread safety: the base's thread drives the handle and runs its
 * callbacks; use the handle from there only. */
#ifndef FAIRLOCK_LIBEVENT_H
#define FAIRLOCK_LIBEVENT_H

#include <stdlib.h>

#include <event2/event.h>

#include "../fairlock.h"

typedef struct fairlock_libevent_ {
    struct event_base *base;
    fairlock *lock;
    struct event *io; /* on fd for events, or NULL */
    struct event *timer;
    int fd, events;
    int entered; /* inside one of our callbacks */
    int freed;   /* the handle was freed meanwhile */
} fairlock_libevent_;

static void fairlock_libevent_destroy_(fairlock_libevent_ *a) {
    if (a->io != NULL)
        event_free(a->io);
    event_free(a->timer);
    free(a);
}

/* Runs the handle; the adapter goes with it if it was freed meanwhile
 * (not before: libevent is still inside one of our events). */
static void fairlock_libevent_process_(fairlock_libevent_ *a, int ev) {
    a->entered = 1;
    fairlock_async_process(a->lock, ev);
    a->entered = 0;
    if (a->freed)
        fairlock_libevent_destroy_(a);
}

static void fairlock_libevent_on_io_(evutil_socket_t fd, short what,
                                     void *arg) {
    (void)fd;
    fairlock_libevent_process_((fairlock_libevent_ *)arg,
                               ((what & EV_READ) ? FAIRLOCK_EV_READ : 0) |
                                   ((what & EV_WRITE) ? FAIRLOCK_EV_WRITE : 0));
}

static void fairlock_libevent_on_timer_(evutil_socket_t fd, short what,
                                        void *arg) {
    (void)fd, (void)what;
    fairlock_libevent_process_((fairlock_libevent_ *)arg, 0);
}

static void fairlock_libevent_watch_(fairlock *lock, int fd, int events,
                                     int64_t timeout_ms, void *arg) {
    fairlock_libevent_ *a = (fairlock_libevent_ *)arg;
    (void)lock;
    if (events & FAIRLOCK_EV_FREED) {
        if (a->io != NULL)
            event_del(a->io);
        event_del(a->timer);
        if (a->entered)
            a->freed = 1;
        else
            fairlock_libevent_destroy_(a);
        return;
    }
    if (fd != a->fd || events != a->events) {
        /* Deleted before the handle closes the old socket. */
        if (a->io != NULL) {
            event_del(a->io);
            event_free(a->io);
            a->io = NULL;
        }
        a->fd = fd;
        a->events = events;
        if (fd >= 0 && events != 0) {
            short what = (short)(EV_PERSIST |
                                 ((events & FAIRLOCK_EV_READ) ? EV_READ : 0) |
                                 ((events & FAIRLOCK_EV_WRITE) ? EV_WRITE : 0));
            a->io = event_new(a->base, fd, what, fairlock_libevent_on_io_, a);
            if (a->io != NULL)
                event_add(a->io, NULL);
        }
    }
    if (timeout_ms >= 0) {
        struct timeval tv;
        tv.tv_sec = (time_t)(timeout_ms / 1000);
        tv.tv_usec = (suseconds_t)((timeout_ms % 1000) * 1000);
        event_add(a->timer, &tv);
    } else {
        event_del(a->timer);
    }
}

/* Drive `lock` from `base` from now until the handle is freed.  Call it
 * once per handle, before starting operations (or between them).
 * Returns 0, or -1 when out of memory. */
static inline int fairlock_libevent_attach(fairlock *lock,
                                           struct event_base *base) {
    fairlock_libevent_ *a = (fairlock_libevent_ *)calloc(1, sizeof *a);
    if (a == NULL)
        return -1;
    a->timer = evtimer_new(base, fairlock_libevent_on_timer_, a);
    if (a->timer == NULL) {
        free(a);
        return -1;
    }
    a->base = base;
    a->lock = lock;
    a->fd = -1;
    fairlock_async_set_watcher(lock, fairlock_libevent_watch_, a);
    return 0;
}

#endif /* FAIRLOCK_LIBEVENT_H */
