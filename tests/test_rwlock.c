/* test_rwlock.c -- the readers-writer lock between real processes: readers
 * overlap, writers exclude everyone, FIFO without writer starvation,
 * consecutive readers enter together, crashes recovered. */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

#define LONG_MS 60000
#define DEADLINE_MS 120000

static fairlock *rw_lock(const char *name, int shared, int64_t ttl_ms) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.kind = FAIRLOCK_KIND_RWLOCK;
    opts.shared = shared;
    opts.timeout_ms = LONG_MS;
    opts.ttl_ms = ttl_ms;
    return test_lock_opts(&opts);
}

/* Everything but a fencing counter goes with the last holder and waiter. */
static void no_keys_left(const char *name) {
    redisContext *c = test_redis();
    CHECK_INT(test_wait_no_keys(c, name, 5000), ==, 0);
    redisFree(c);
}

static void wait_zcard(redisContext *c, const char *name, const char *key,
                       long long n) {
    CHECK(test_wait_int(c, n, DEADLINE_MS, "ZCARD %s:%s", name, key));
}

static void readers_overlap_writers_exclude(void) {
    const char *name = test_name("rw-basic");
    fairlock *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = rw_lock(name, 1, LONG_MS);
        CHECK_RC(r[i], fairlock_acquire_ex(r[i], 0, 0, FAIRLOCK_DEFAULT),
                 FAIRLOCK_OK);
    }
    fairlock *w = rw_lock(name, 0, LONG_MS);
    fairlock *w2 = rw_lock(name, 0, LONG_MS);
    CHECK_RC(w, fairlock_acquire_ex(w, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    fairlock_status *st = NULL;
    CHECK_RC(w, fairlock_status_get(w, 10, &st), FAIRLOCK_OK);
    CHECK_INT(st->kind, ==, FAIRLOCK_KIND_RWLOCK);
    CHECK_INT(st->holder_count, ==, 3);
    for (size_t i = 0; i < 3; i++)
        CHECK_INT(fairlock_status_holder(st, i)->shared, ==, 1);
    fairlock_status_free(st);
    for (int i = 0; i < 3; i++)
        CHECK_RC(r[i], fairlock_release(r[i]), FAIRLOCK_OK);
    CHECK_RC(w, fairlock_acquire_ex(w, 0, 0, FAIRLOCK_DEFAULT), FAIRLOCK_OK);
    CHECK_RC(r[0], fairlock_acquire_ex(r[0], 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_RC(w2, fairlock_acquire_ex(w2, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_RC(w, fairlock_status_get(w, 10, &st), FAIRLOCK_OK);
    CHECK_INT(st->holder_count, ==, 1);
    CHECK_INT(fairlock_status_holder(st, 0)->shared, ==, 0);
    fairlock_status_free(st);
    CHECK_RC(w, fairlock_release(w), FAIRLOCK_OK);
    for (int i = 0; i < 3; i++)
        fairlock_free(r[i]);
    fairlock_free(w);
    fairlock_free(w2);
    no_keys_left(name);
}

typedef struct flags {
    int got[8];
    int go[8];
    int stop;
    int reader_grants;
} flags;

/* A child that acquires in `shared` mode, says so, holds until told, and
 * releases. */
static pid_t holder_child(const char *name, int shared, flags *f, int i) {
    pid_t pid = test_fork();
    if (pid == 0) {
        fairlock *lock = rw_lock(name, shared, LONG_MS);
        CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
        f->got[i] = 1;
        CHECK(test_wait_flag(&f->go[i], DEADLINE_MS));
        CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
        fairlock_free(lock);
        _exit(0);
    }
    return pid;
}

/* A writer queued behind a reader is not overtaken by a later reader, and
 * the readers behind the writer enter together after it. */
static void queued_writer_is_not_overtaken(void) {
    const char *name = test_name("rw-fifo");
    redisContext *c = test_redis();
    flags *f = test_shared(sizeof *f);
    fairlock *first = rw_lock(name, 1, LONG_MS);
    CHECK_RC(first, fairlock_acquire(first), FAIRLOCK_OK);
    pid_t writer = holder_child(name, 0, f, 0);
    wait_zcard(c, name, "waiters", 1);
    fairlock *late = rw_lock(name, 1, LONG_MS);
    CHECK_RC(late, fairlock_acquire_ex(late, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    pid_t readers[3];
    for (int i = 0; i < 3; i++) {
        readers[i] = holder_child(name, 1, f, 1 + i);
        wait_zcard(c, name, "waiters", 2 + i);
    }
    CHECK_RC(first, fairlock_release(first), FAIRLOCK_OK);
    CHECK(test_wait_flag(&f->got[0], DEADLINE_MS));
    /* The writer holds: nobody else can. */
    CHECK_INT(test_int(c, "ZCARD %s:holders", name), ==, 1);
    for (int i = 1; i <= 3; i++)
        CHECK_INT(f->got[i], ==, 0);
    f->go[0] = 1;
    CHECK_INT(test_wait_child_within(writer, 0, DEADLINE_MS), ==, 0);
    /* All three readers hold at once. */
    wait_zcard(c, name, "holders", 3);
    for (int i = 1; i <= 3; i++)
        CHECK(test_wait_flag(&f->got[i], DEADLINE_MS));
    for (int i = 1; i <= 3; i++)
        f->go[i] = 1;
    for (int i = 0; i < 3; i++)
        CHECK_INT(test_wait_child_within(readers[i], 0, DEADLINE_MS), ==, 0);
    fairlock_free(first);
    fairlock_free(late);
    CHECK_INT(test_wait_no_keys(c, name, 5000), ==, 0);
    redisFree(c);
}

/* Readers that keep coming, each holding a moment, with overlaps that
 * never leave the lock free: a writer still gets in. */
static void no_writer_starvation(void) {
    const char *name = test_name("rw-starve");
    redisContext *c = test_redis();
    flags *f = test_shared(sizeof *f);
    pid_t readers[4];
    for (int i = 0; i < 4; i++) {
        if ((readers[i] = test_fork()) == 0) {
            fairlock *lock = rw_lock(name, 1, LONG_MS);
            while (!f->stop) {
                CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
                __atomic_add_fetch(&f->reader_grants, 1, __ATOMIC_SEQ_CST);
                for (int k = 0; k < 5; k++)
                    sched_yield();
                CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
            }
            fairlock_free(lock);
            _exit(0);
        }
    }
    /* The stream is flowing before the writer asks. */
    int64_t start = test_now_ns();
    while (__atomic_load_n(&f->reader_grants, __ATOMIC_SEQ_CST) < 50)
        CHECK((test_now_ns() - start) / 1000000 < DEADLINE_MS);
    fairlock *writer = rw_lock(name, 0, LONG_MS);
    for (int i = 0; i < 5; i++) {
        CHECK_RC(writer, fairlock_acquire(writer), FAIRLOCK_OK);
        CHECK_INT(test_int(c, "ZCARD %s:holders", name), ==, 1);
        CHECK_RC(writer, fairlock_release(writer), FAIRLOCK_OK);
    }
    f->stop = 1;
    for (int i = 0; i < 4; i++)
        CHECK_INT(test_wait_child_within(readers[i], 0, DEADLINE_MS), ==, 0);
    fprintf(stderr, "   writer got in 5 times among %d reader grants\n",
            f->reader_grants);
    fairlock_free(writer);
    CHECK_INT(test_wait_no_keys(c, name, 5000), ==, 0);
    redisFree(c);
}

/* Intervals of holds as their holders saw them: a writer's overlaps
 * nobody's. */
#define PROCS 6
#define ITERS 40
typedef struct interval {
    int64_t start_ns, end_ns;
    int shared;
} interval;
typedef struct intervals {
    char name[128];
    interval holds[PROCS * ITERS];
} intervals;

static void writers_exclude_in_intervals(void) {
    intervals *sh = test_shared(sizeof *sh);
    snprintf(sh->name, sizeof sh->name, "%s", test_name("rw-mixed"));
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        if ((pids[p] = test_fork()) == 0) {
            int shared = p >= 2; /* two writers, four readers */
            fairlock *lock = rw_lock(sh->name, shared, LONG_MS);
            for (int i = 0; i < ITERS; i++) {
                CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
                interval *h = &sh->holds[p * ITERS + i];
                h->start_ns = test_now_ns();
                for (int k = 0; k < 3; k++)
                    sched_yield();
                h->end_ns = test_now_ns();
                h->shared = shared;
                CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
            }
            fairlock_free(lock);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++)
        CHECK_INT(test_wait_child_within(pids[p], 0, DEADLINE_MS), ==, 0);
    int reader_overlaps = 0;
    for (size_t i = 0; i < PROCS * ITERS; i++) {
        const interval *a = &sh->holds[i];
        for (size_t j = i + 1; j < PROCS * ITERS; j++) {
            const interval *b = &sh->holds[j];
            int apart = a->end_ns <= b->start_ns || b->end_ns <= a->start_ns;
            if (!a->shared || !b->shared)
                CHECK(apart);
            else
                reader_overlaps += !apart;
        }
    }
    fprintf(stderr, "   %d x %d holds; %d overlapping reader pairs\n", PROCS,
            ITERS, reader_overlaps);
    redisContext *c = test_redis();
    CHECK_INT(test_wait_no_keys(c, sh->name, 5000), ==, 0);
    redisFree(c);
}

/* A killed writer's hold ends with its lease; a killed waiting writer is
 * evicted and does not block the readers behind it. */
static void crashes_are_recovered(void) {
    const char *name = test_name("rw-crash");
    redisContext *c = test_redis();
    int *ready = test_shared(sizeof *ready);
    pid_t holder = test_fork();
    if (holder == 0) {
        fairlock *lock = rw_lock(name, 0, 500);
        CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
        *ready = 1;
        for (;;)
            pause();
    }
    CHECK(test_wait_flag(ready, DEADLINE_MS));
    kill(holder, SIGKILL);
    test_wait_child_within(holder, SIGKILL, DEADLINE_MS);
    fairlock *reader = rw_lock(name, 1, LONG_MS);
    CHECK_RC(reader, fairlock_acquire(reader), FAIRLOCK_OK);

    pid_t waiter = test_fork();
    if (waiter == 0) {
        fairlock_options opts;
        fairlock_options_init(&opts);
        opts.name = name;
        opts.kind = FAIRLOCK_KIND_RWLOCK;
        opts.timeout_ms = LONG_MS;
        opts.stale_timeout_ms = 300;
        fairlock *lock = test_lock_opts(&opts);
        fairlock_acquire(lock);
        _exit(1);
    }
    wait_zcard(c, name, "waiters", 1);
    kill(waiter, SIGKILL);
    test_wait_child_within(waiter, SIGKILL, DEADLINE_MS);
    /* A reader behind the dead writer gets in once it is judged stale. */
    fairlock *second = rw_lock(name, 1, LONG_MS);
    CHECK_RC(second, fairlock_acquire(second), FAIRLOCK_OK);
    CHECK_RC(second, fairlock_release(second), FAIRLOCK_OK);
    CHECK_RC(reader, fairlock_release(reader), FAIRLOCK_OK);
    fairlock_free(reader);
    fairlock_free(second);
    CHECK_INT(test_wait_no_keys(c, name, 5000), ==, 0);
    redisFree(c);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(readers_overlap_writers_exclude);
    RUN_TEST(queued_writer_is_not_overtaken);
    RUN_TEST(no_writer_starvation);
    RUN_TEST(writers_exclude_in_intervals);
    RUN_TEST(crashes_are_recovered);
    return check_done();
}
