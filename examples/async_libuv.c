/* async_libuv.c -- many lock handles on one libuv loop, one thread.
 *
 * Ten handles ask for the same lock at once; the loop waits for all of
 * them, and each callback prints its turn, releases, and frees the handle.
 * FIFO order means they are served in the order their requests reached
 * Redis.  uv_run() returns when nothing is left to wait for.
 *
 *   async_libuv [URL]   URL defaults to $FAIRLOCK_URL, then $REDIS_URL,
 *                       then redis://127.0.0.1:6379/0
 */
#include <stdio.h>

#include <fairlock.h>
#include <fairlock/libuv.h>

#define HANDLES 10

static int failures;

static void released(fairlock *lock, int code, void *arg) {
    if (code != FAIRLOCK_OK) {
        fprintf(stderr, "release: %s\n", fairlock_errmsg(lock));
        failures++;
    }
    (void)arg;
    fairlock_free(lock); /* allowed from its own callback */
}

static void acquired(fairlock *lock, int code, void *arg) {
    int i = *(int *)arg;
    if (code != FAIRLOCK_OK) {
        fprintf(stderr, "handle %d: %s: %s\n", i, fairlock_code_name(code),
                fairlock_errmsg(lock));
        failures++;
        fairlock_free(lock);
        return;
    }
    printf("handle %d holds the lock (ticket %lld)\n", i,
           (long long)fairlock_ticket(lock));
    /* The critical section would go here, or start other I/O on the loop
     * and release from its completion. */
    if (fairlock_release_start(lock, released, NULL) != FAIRLOCK_OK) {
        fprintf(stderr, "release: %s\n", fairlock_errmsg(lock));
        failures++;
        fairlock_free(lock);
    }
}

int main(int argc, char **argv) {
    static int ids[HANDLES];
    uv_loop_t *loop = uv_default_loop();
    for (int i = 0; i < HANDLES; i++) {
        fairlock_options opts;
        fairlock_options_init(&opts);
        opts.name = "example:async";
        opts.url = argc > 1 ? argv[1] : NULL;
        opts.timeout_ms = 10000;
        fairlock *lock = NULL;
        if (fairlock_create(&opts, &lock) != FAIRLOCK_OK) {
            fprintf(stderr, "fairlock_create: %s\n", fairlock_errmsg(lock));
            fairlock_free(lock);
            return 1;
        }
        ids[i] = i;
        if (fairlock_libuv_attach(lock, loop) != 0 ||
            fairlock_acquire_start(lock, FAIRLOCK_DEFAULT, acquired, &ids[i]) !=
                FAIRLOCK_OK) {
            fprintf(stderr, "start: %s\n", fairlock_errmsg(lock));
            fairlock_free(lock);
            return 1;
        }
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return failures != 0;
}
