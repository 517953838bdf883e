/* test_abi.c -- fairlock_options can grow without breaking programs built
 * against an older (smaller) or newer (larger) header.
 *
 * A program compiled against an older header has a smaller struct: the
 * library must neither write nor read a byte past it.  The struct is
 * placed so that it ends exactly where an inaccessible page begins, so any
 * access past its end kills the test with SIGSEGV.  No server is needed
 * (creation does no I/O). */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "fairlock.h"

/* As if an older release had had only the first fields of today's
 * struct, in the same order (fields are only ever added at the end). */
typedef struct older_options {
    const char *name;
    size_t name_len;
    struct redisContext *redis;
    const char *url;
    int64_t timeout_ms;
} older_options;

/* `size` bytes ending exactly at a PROT_NONE page. */
static void *before_guard_page(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(base != MAP_FAILED);
    CHECK(mprotect(base + page, page, PROT_NONE) == 0);
    return base + page - size;
}

static void release_guarded(void *p, size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    munmap((char *)p + size - page, 2 * page);
}

static void older_header_is_not_overrun(void) {
    older_options *old = before_guard_page(sizeof *old);
    memset(old, 0xab, sizeof *old);
    fairlock_options_init_sized((fairlock_options *)old, sizeof *old);
    CHECK(old->name == NULL && old->redis == NULL && old->url == NULL);
    CHECK_INT(old->timeout_ms, ==, FAIRLOCK_FOREVER);

    old->name = "abi:older";
    old->url = "redis://127.0.0.1:1/0";
    old->timeout_ms = 2500;
    fairlock *lock = NULL;
    CHECK_INT(
        fairlock_create_sized((fairlock_options *)old, sizeof *old, &lock), ==,
        FAIRLOCK_OK);
    size_t len = 0;
    CHECK_STR(fairlock_name(lock, &len), "abi:older");
    /* The fields the older program does not have took their defaults:
     * the handle is usable and idle. */
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_IDLE);
    fairlock_free(lock);
    release_guarded(old, sizeof *old);
}

/* A struct from a newer header: the library zeroes what it does not know
 * and ignores it when creating. */
typedef struct newer_options {
    fairlock_options known;
    int64_t future_field;
    char more[40];
} newer_options;

static void newer_header_is_tolerated(void) {
    newer_options *newer = before_guard_page(sizeof *newer);
    memset(newer, 0xab, sizeof *newer);
    fairlock_options_init_sized(&newer->known, sizeof *newer);
    CHECK_INT(newer->future_field, ==, 0);
    for (size_t i = 0; i < sizeof newer->more; i++)
        CHECK_INT(newer->more[i], ==, 0);
    CHECK_INT(newer->known.check_interval_ms, ==, 50);
    newer->known.name = "abi:newer";
    newer->future_field = 42;
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create_sized(&newer->known, sizeof *newer, &lock), ==,
              FAIRLOCK_OK);
    CHECK_STR(fairlock_name(lock, NULL), "abi:newer");
    fairlock_free(lock);
    release_guarded(newer, sizeof *newer);
}

/* Programs built against 0.1.0 call fairlock_options_init() and
 * fairlock_create() themselves (the parentheses bypass the macros, as a
 * binary compiled before the macros existed does). */
static void entry_points_of_0_1_0(void) {
    size_t size = sizeof(fairlock_options);
    fairlock_options *opts = before_guard_page(size);
    (fairlock_options_init)(opts);
    CHECK_INT(opts->fifo, ==, 1);
    CHECK_INT(opts->hash_tag, ==, 0);
    opts->name = "abi:0.1.0";
    fairlock *lock = NULL;
    CHECK_INT((fairlock_create)(opts, &lock), ==, FAIRLOCK_OK);
    CHECK_STR(fairlock_name(lock, NULL), "abi:0.1.0");
    fairlock_free(lock);
    CHECK_INT((fairlock_create)(NULL, &lock), ==, FAIRLOCK_INVALID);
    fairlock_free(lock);
    release_guarded(opts, size);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(older_header_is_not_overrun);
    RUN_TEST(newer_header_is_tolerated);
    RUN_TEST(entry_points_of_0_1_0);
    return check_done();
}
