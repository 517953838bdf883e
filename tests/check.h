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

/* Test selection.  A test program runs every test, or only those named
 * on its command line or in $FAIRLOCK_TEST_ONLY (names separated by commas
 * or spaces), so that one test can run alone, fixtures included:
 *   FAIRLOCK_TEST_ONLY=extend_owned_locked ctest -R '^test_basic$'
 * A name that matches no test fails the program, so a typo cannot pass. */
typedef struct check_selection_ {
    char names[1024]; /* " a b " */
    int given;
    char seen[1024]; /* the names that matched a test, same form */
} check_selection_;

static inline check_selection_ *check_selection_get_(void) {
    static check_selection_ selection;
    return &selection;
}

static inline void check_add_names_(check_selection_ *s, const char *text) {
    size_t used = strlen(s->names);
    for (const char *p = text; *p; p++) {
        char c = (*p == ',') ? ' ' : *p;
        if (used + 2 >= sizeof s->names) {
            fprintf(stderr, "test names too long\n");
            exit(2);
        }
        s->names[used++] = c;
    }
    s->names[used++] = ' ';
    s->names[used] = '\0';
}

/* Call first in main(). */
static inline void check_select(int argc, char **argv) {
    check_selection_ *s = check_selection_get_();
    s->names[0] = ' ';
    s->names[1] = '\0';
    for (int i = 1; i < argc; i++)
        check_add_names_(s, argv[i]);
    const char *env = getenv("FAIRLOCK_TEST_ONLY");
    if (argc < 2 && env != NULL)
        check_add_names_(s, env);
    s->given = strspn(s->names, " ") != strlen(s->names);
}

static inline int check_selected_(const char *name) {
    check_selection_ *s = check_selection_get_();
    if (!s->given)
        return 1;
    char word[128];
    snprintf(word, sizeof word, " %s ", name);
    if (strstr(s->names, word) == NULL)
        return 0;
    if (strlen(s->seen) + strlen(word) < sizeof s->seen)
        strcat(s->seen, word + (s->seen[0] != '\0'));
    return 1;
}

/* Return it from main(): fails if a name matched no test. */
static inline int check_done(void) {
    check_selection_ *s = check_selection_get_();
    if (!s->given)
        return 0;
    for (const char *p = s->names; *p;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, " ");
        char word[128];
        snprintf(word, sizeof word, " %.*s ", (int)len, p);
        if (len > 0 && strstr(s->seen, word) == NULL) {
            fprintf(stderr, "no test of this program is named%s\n", word);
            return 1;
        }
        p += len;
    }
    return 0;
}

#define RUN_TEST(fn)                                                           \
    do {                                                                       \
        if (check_selected_(#fn)) {                                            \
            fprintf(stderr, "-- %s\n", #fn);                                   \
            fn();                                                              \
        }                                                                      \
    } while (0)

#endif
