/* minimal.c -- the shortest correct use of fairlock: create a handle,
 * acquire, release, free, and report errors with fairlock_errmsg().
 *
 *   minimal [URL]     URL defaults to $FAIRLOCK_URL, then $REDIS_URL,
 *                     then redis://127.0.0.1:6379/0
 */
#include <stdio.h>

#include <fairlock.h>

int main(int argc, char **argv) {
    fairlock_options opts;
    fairlock_options_init(&opts); /* the defaults, then what we need */
    opts.name = "example:minimal";
    opts.url = argc > 1 ? argv[1] : NULL;
    opts.timeout_ms = 5000; /* wait at most 5 s; also the lease */

    fairlock *lock = NULL;
    int rc = fairlock_create(&opts, &lock);
    if (rc != FAIRLOCK_OK) {
        /* lock may be NULL (out of memory): both calls accept that. */
        fprintf(stderr, "fairlock_create: %s\n", fairlock_errmsg(lock));
        fairlock_free(lock);
        return 1;
    }

    rc = fairlock_acquire(lock); /* connects on first use */
    if (rc != FAIRLOCK_OK) {
        fprintf(stderr, "fairlock_acquire: %s: %s\n", fairlock_code_name(rc),
                fairlock_errmsg(lock));
        fairlock_free(lock);
        return 1;
    }

    printf("holding %s\n", fairlock_name(lock, NULL)); /* critical section */

    rc = fairlock_release(lock);
    if (rc != FAIRLOCK_OK) /* FAIRLOCK_NOTOWNED: the lease ran out */
        fprintf(stderr, "fairlock_release: %s: %s\n", fairlock_code_name(rc),
                fairlock_errmsg(lock));
    fairlock_free(lock);
    return rc == FAIRLOCK_OK ? 0 : 1;
}
