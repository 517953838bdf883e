/* check.h -- the tests' assertions, in the spirit of libuv's task.h.
 *
 * A failed check prints where and what, then exits 1, so CTest reports
 * the executable as failed.  Tests are plain functions run by RUN_TEST. */
#ifndef FAIRLOCK_CHECK_H
#define FAIRLOCK_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                            \
    do {                                                                       \
        if (!(expr)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #expr);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_INT(a, op, b)                                                    \
    do {                                                                       \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);        \
        if (!(check_a_ op check_b_)) {                                         \
            fprintf(stderr, "%s:%d: check failed: %s %s %s (%lld vs %lld)\n",  \
                    __FILE__, __LINE__, #a, #op, #b, check_a_, check_b_);      \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_STR(a, b)                                                        \
    do {                                                                       \
        const char *check_a_ = (a), *check_b_ = (b);                           \
        if (check_a_ == NULL || check_b_ == NULL ||                            \
            strcmp(check_a_, check_b_) != 0) {                                 \
            fprintf(                                                           \
                stderr, "%s:%d: check failed: %s == %s (\"%s\" vs \"%s\")\n",  \
                __FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",    \
                check_b_ ? check_b_ : "(null)");                               \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Checks a fairlock call's result code and shows the handle's detail. */
#define CHECK_RC(lock, call, expected)                                         \
    do {                                                                       \
        int check_rc_ = (call);                                                \
        if (check_rc_ != (expected)) {                                         \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s: %s\n",        \
                    __FILE__, __LINE__, #call, fairlock_code_name(check_rc_),  \
                    fairlock_code_name(expected), fairlock_errmsg(lock));      \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define RUN_TEST(fn)                                                           \
    do {                                                                       \
        fprintf(stderr, "-- %s\n", #fn);                                       \
        fn();                                                                  \
    } while (0)

#endif
