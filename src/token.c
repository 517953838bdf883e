/* token.c -- the randomness of owner tokens, and the monotonic clock. */
#include <errno.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

/* Read afresh for each token, so a forked child never reuses its parent's
 * bytes. */
int fairlock__random_bytes(unsigned char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

int64_t fairlock__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
