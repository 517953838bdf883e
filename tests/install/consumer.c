/* consumer.c -- a program built against an installed fairlock, by
 * find_package(fairlock) and by pkg-config.  It needs no server: creating a
 * handle does no I/O. */
#include <stdio.h>
#include <string.h>

#include <fairlock.h>

int main(void) {
    printf("fairlock %s\n", fairlock_version());
    if (strcmp(fairlock_version(), FAIRLOCK_VERSION_STRING) != 0 ||
        fairlock_version_number() != FAIRLOCK_VERSION_NUMBER) {
        fprintf(stderr, "header %s, library %s\n", FAIRLOCK_VERSION_STRING,
                fairlock_version());
        return 1;
    }
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "install-check";
    opts.url = "unix:///nonexistent/redis.sock";
    fairlock *lock = NULL;
    int rc = fairlock_create(&opts, &lock);
    if (rc != FAIRLOCK_OK) {
        fprintf(stderr, "fairlock_create: %s: %s\n", fairlock_code_name(rc),
                fairlock_errmsg(lock));
        fairlock_free(lock);
        return 1;
    }
    fairlock_free(lock);
    return 0;
}
