/* async.c -- the non-blocking API: operations started on a handle and
 * completed through a callback, on the caller's event loop. */
#include "internal.h"

int fairlock_acquire_start(fairlock *lock, int64_t timeout_ms,
                           fairlock_done_fn done, void *arg) {
    (void)timeout_ms, (void)done, (void)arg;
    return lock == NULL
               ? FAIRLOCK_INVALID
               : fairlock__fail(lock, FAIRLOCK_INVALID, "not implemented yet");
}
int fairlock_release_start(fairlock *lock, fairlock_done_fn done, void *arg) {
    (void)done, (void)arg;
    return lock == NULL
               ? FAIRLOCK_INVALID
               : fairlock__fail(lock, FAIRLOCK_INVALID, "not implemented yet");
}
int fairlock_extend_start(fairlock *lock, int64_t ttl_ms, fairlock_done_fn done,
                          void *arg) {
    (void)ttl_ms, (void)done, (void)arg;
    return lock == NULL
               ? FAIRLOCK_INVALID
               : fairlock__fail(lock, FAIRLOCK_INVALID, "not implemented yet");
}
int fairlock_status_start(fairlock *lock, size_t max_waiters,
                          fairlock_status_fn done, void *arg) {
    (void)max_waiters, (void)done, (void)arg;
    return lock == NULL
               ? FAIRLOCK_INVALID
               : fairlock__fail(lock, FAIRLOCK_INVALID, "not implemented yet");
}
int fairlock_async_cancel(fairlock *lock) {
    return lock == NULL
               ? FAIRLOCK_INVALID
               : fairlock__fail(lock, FAIRLOCK_INVALID, "not implemented yet");
}
int fairlock_async_busy(const fairlock *lock) {
    (void)lock;
    return 0;
}
int fairlock_async_fd(const fairlock *lock) {
    (void)lock;
    return -1;
}
int fairlock_async_events(const fairlock *lock) {
    (void)lock;
    return 0;
}
int64_t fairlock_async_timeout(const fairlock *lock) {
    (void)lock;
    return -1;
}
void fairlock_async_process(fairlock *lock, int events) {
    (void)lock, (void)events;
}
void fairlock_async_set_watcher(fairlock *lock, fairlock_watch_fn watch,
                                void *arg) {
    (void)lock, (void)watch, (void)arg;
}
