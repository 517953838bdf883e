/* token.c -- owner tokens and the monotonic clock. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

/* 128 random bits per acquisition, read afresh each time, so a forked
 * child never reuses its parent's token.  The lease and liveness window
 * ride along so that whichever script hands the lock over knows the
 * waiter's terms. */
int fairlock__token_new(char out[FAIRLOCK_TOKEN_MAX], int64_t lease_ms,
                        int64_t live_ms, int fencing) {
    unsigned char random_bytes[16];
    size_t got = 0;
    while (got < sizeof random_bytes) {
        ssize_t n = getrandom(random_bytes + got, sizeof random_bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    size_t pos = 0;
    for (size_t i = 0; i < sizeof random_bytes; i++) {
        out[pos++] = hex[random_bytes[i] >> 4];
        out[pos++] = hex[random_bytes[i] & 15];
    }
    snprintf(out + pos, FAIRLOCK_TOKEN_MAX - pos, ".%" PRId64 ".%" PRId64 "%s",
             lease_ms, live_ms, fencing ? ".f" : "");
    return 0;
}

int64_t fairlock__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
