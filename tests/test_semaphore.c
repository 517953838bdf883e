/* test_semaphore.c -- the counting semaphore between real processes: never
 * more than N holders, one holder per permit, FIFO grants, crashed holders
 * and waiters, a disagreeing N refused, nothing left behind. */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

#define PROCESSES 8
#define PERMITS 3
#define ITERATIONS 60
/* Long enough that no lease runs out and no waiter is evicted however
 * slow the machine, where a test is not about crashes. */
#define LONG_MS 60000
/* Bound on a whole run, to fail instead of hanging if a grant is lost. */
#define DEADLINE_MS 120000

static fairlock *sem_lock(const char *name, int64_t permits, int64_t ttl_ms,
                          int64_t stale_ms) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.kind = FAIRLOCK_KIND_SEMAPHORE;
    opts.permits = permits;
    opts.timeout_ms = LONG_MS;
    opts.ttl_ms = ttl_ms;
    opts.stale_timeout_ms = stale_ms;
    return test_lock_opts(&opts);
}

/* Everything but a fencing counter goes with the last holder and waiter. */
static void no_keys_left(const char *name) {
    redisContext *c = test_redis();
    CHECK_INT(test_wait_no_keys(c, name, 5000), ==, 0);
    redisFree(c);
}

static void wait_waiters(redisContext *c, const char *name, long long n) {
    CHECK(test_wait_int(c, n, DEADLINE_MS, "ZCARD %s:waiters", name));
}

/* One hold as its holder saw it: inside the real hold on the server, so
 * recorded holds can only overlap where real ones did. */
typedef struct hold {
    int64_t start_ns;
    int64_t end_ns;
    int64_t permit;
} hold;

typedef struct contention {
    char name[128];
    int done[PROCESSES];
    hold holds[PROCESSES * ITERATIONS];
} contention;

static int contend(contention *shared, int process) {
    fairlock *lock = sem_lock(shared->name, PERMITS, LONG_MS, FAIRLOCK_DEFAULT);
    for (int i = 0; i < ITERATIONS; i++) {
        CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
        hold *h = &shared->holds[process * ITERATIONS + i];
        h->start_ns = test_now_ns();
        h->permit = fairlock_permit(lock);
        /* Widens the window in which too many holders would overlap. */
        for (int k = 0; k < 3; k++)
            sched_yield();
        h->end_ns = test_now_ns();
        CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    }
    shared->done[process] = 1;
    fairlock_free(lock);
    return 0;
}

typedef struct event {
    int64_t at_ns;
    int delta;
} event;

static int by_time(const void *a, const void *b) {
    const event *x = a, *y = b;
    if (x->at_ns != y->at_ns)
        return (x->at_ns > y->at_ns) - (x->at_ns < y->at_ns);
    return x->delta - y->delta; /* an end before a start at one instant */
}

/* The interval overlap count: at no instant more than N holds, and no two
 * holds of one permit overlapping. */
static void never_more_than_n_holders(void) {
    contention *shared = test_shared(sizeof *shared);
    snprintf(shared->name, sizeof shared->name, "%s", test_name("sem"));
    pid_t pids[PROCESSES];
    int64_t start = test_now_ns();
    for (int p = 0; p < PROCESSES; p++)
        if ((pids[p] = test_fork()) == 0)
            _exit(contend(shared, p));
    for (int p = 0; p < PROCESSES; p++) {
        int64_t left = DEADLINE_MS - (test_now_ns() - start) / 1000000;
        CHECK_INT(test_wait_child_within(pids[p], 0, left > 1 ? left : 1), ==,
                  0);
        CHECK_INT(shared->done[p], ==, 1);
    }
    size_t holds = PROCESSES * ITERATIONS;
    event *events = calloc(2 * holds, sizeof *events);
    CHECK(events != NULL);
    for (size_t i = 0; i < holds; i++) {
        const hold *h = &shared->holds[i];
        CHECK(h->permit >= 1 && h->permit <= PERMITS);
        events[2 * i] = (event){h->start_ns, 1};
        events[2 * i + 1] = (event){h->end_ns, -1};
        for (size_t j = i + 1; j < holds; j++) {
            const hold *o = &shared->holds[j];
            if (o->permit == h->permit)
                CHECK(o->end_ns <= h->start_ns || h->end_ns <= o->start_ns);
        }
    }
    qsort(events, 2 * holds, sizeof *events, by_time);
    int now = 0, most = 0;
    for (size_t i = 0; i < 2 * holds; i++) {
        now += events[i].delta;
        if (now > most)
            most = now;
    }
    free(events);
    fprintf(stderr, "   %d x %d holds, at most %d at once (N = %d)\n",
            PROCESSES, ITERATIONS, most, PERMITS);
    CHECK(most <= PERMITS);
    redisContext *c = test_redis();
    CHECK_INT(test_wait_no_keys(c, shared->name, 5000), ==, 0);
    redisFree(c);
}

/* Waiters are granted in the order they asked: with fencing, each grant
 * takes the next fence, so fences rise with the order of arrival. */
#define FIFO_WAITERS 5
typedef struct fifo_shared {
    char name[128];
    int64_t fence[FIFO_WAITERS];
} fifo_shared;

static void grants_follow_request_order(void) {
    fifo_shared *shared = test_shared(sizeof *shared);
    snprintf(shared->name, sizeof shared->name, "%s", test_name("sem-fifo"));
    redisContext *c = test_redis();
    fairlock *held[2];
    for (int i = 0; i < 2; i++) {
        held[i] = sem_lock(shared->name, 2, LONG_MS, FAIRLOCK_DEFAULT);
        CHECK_RC(held[i], fairlock_acquire(held[i]), FAIRLOCK_OK);
    }
    CHECK(fairlock_permit(held[0]) != fairlock_permit(held[1]));
    pid_t pids[FIFO_WAITERS];
    for (int w = 0; w < FIFO_WAITERS; w++) {
        if ((pids[w] = test_fork()) == 0) {
            fairlock_options opts;
            fairlock_options_init(&opts);
            opts.name = shared->name;
            opts.kind = FAIRLOCK_KIND_SEMAPHORE;
            opts.permits = 2;
            opts.timeout_ms = LONG_MS;
            opts.fencing = 1;
            fairlock *lock = test_lock_opts(&opts);
            CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
            shared->fence[w] = fairlock_fence(lock);
            CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
            fairlock_free(lock);
            _exit(0);
        }
        wait_waiters(c, shared->name, w + 1);
    }
    CHECK_RC(held[0], fairlock_release(held[0]), FAIRLOCK_OK);
    CHECK_RC(held[1], fairlock_release(held[1]), FAIRLOCK_OK);
    for (int w = 0; w < FIFO_WAITERS; w++)
        CHECK_INT(test_wait_child_within(pids[w], 0, DEADLINE_MS), ==, 0);
    for (int w = 0; w + 1 < FIFO_WAITERS; w++)
        CHECK_INT(shared->fence[w], <, shared->fence[w + 1]);
    fairlock_free(held[0]);
    fairlock_free(held[1]);
    test_int(c, "DEL %s:fencing", shared->name);
    CHECK_INT(test_wait_no_keys(c, shared->name, 5000), ==, 0);
    redisFree(c);
}

/* Holders killed with SIGKILL: their permits come back when their leases
 * end, and the waiter gets them. */
static void killed_holders_permits_come_back(void) {
    const char *name = test_name("sem-kill-holder");
    int *ready = test_shared(2 * sizeof *ready);
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        if ((pids[i] = test_fork()) == 0) {
            fairlock *lock = sem_lock(name, 2, 500, FAIRLOCK_DEFAULT);
            CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
            ready[i] = 1;
            for (;;)
                pause();
        }
        CHECK(test_wait_flag(&ready[i], DEADLINE_MS));
    }
    fairlock *a = sem_lock(name, 2, LONG_MS, FAIRLOCK_DEFAULT);
    fairlock *b = sem_lock(name, 2, LONG_MS, FAIRLOCK_DEFAULT);
    CHECK_RC(a, fairlock_acquire_ex(a, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    for (int i = 0; i < 2; i++) {
        kill(pids[i], SIGKILL);
        test_wait_child_within(pids[i], SIGKILL, DEADLINE_MS);
    }
    CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
    CHECK_RC(b, fairlock_acquire(b), FAIRLOCK_OK);
    CHECK(fairlock_permit(a) != fairlock_permit(b));
    CHECK_RC(a, fairlock_release(a), FAIRLOCK_OK);
    CHECK_RC(b, fairlock_release(b), FAIRLOCK_OK);
    fairlock_free(a);
    fairlock_free(b);
    no_keys_left(name);
}

/* A holder killed while nobody waits: nobody calls a script again, so its
 * keys must go by themselves when its lease ends (they used to stay for
 * three liveness windows after its acquire). */
static void dead_holder_keys_expire_with_its_lease(void) {
    const char *name = test_name("sem-dead-alone");
    int *ready = test_shared(sizeof *ready);
    pid_t pid = test_fork();
    if (pid == 0) {
        fairlock *lock = sem_lock(name, 2, 500, FAIRLOCK_DEFAULT);
        CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
        *ready = 1;
        for (;;)
            pause();
    }
    CHECK(test_wait_flag(ready, DEADLINE_MS));
    kill(pid, SIGKILL);
    test_wait_child_within(pid, SIGKILL, DEADLINE_MS);
    no_keys_left(name);
}

/* A waiter killed in the queue is evicted once its entry is stale: the
 * waiter behind it gets the permit. */
static void killed_waiter_is_evicted(void) {
    const char *name = test_name("sem-kill-waiter");
    redisContext *c = test_redis();
    fairlock *holder = sem_lock(name, 1, LONG_MS, FAIRLOCK_DEFAULT);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    pid_t dead = test_fork();
    if (dead == 0) {
        fairlock *lock = sem_lock(name, 1, LONG_MS, 300);
        fairlock_acquire(lock);
        _exit(1);
    }
    wait_waiters(c, name, 1);
    kill(dead, SIGKILL);
    test_wait_child_within(dead, SIGKILL, DEADLINE_MS);
    pid_t next = test_fork();
    if (next == 0) {
        fairlock *lock = sem_lock(name, 1, LONG_MS, FAIRLOCK_DEFAULT);
        CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
        CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
        fairlock_free(lock);
        _exit(0);
    }
    wait_waiters(c, name, 2);
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_wait_child_within(next, 0, DEADLINE_MS), ==, 0);
    fairlock_free(holder);
    CHECK_INT(test_wait_no_keys(c, name, 5000), ==, 0);
    redisFree(c);
}

/* Every user must agree on N, and on the kind. */
static void mismatched_permits_are_refused(void) {
    const char *name = test_name("sem-mismatch");
    fairlock *two = sem_lock(name, 2, LONG_MS, FAIRLOCK_DEFAULT);
    fairlock *three = sem_lock(name, 3, LONG_MS, FAIRLOCK_DEFAULT);
    CHECK_RC(two, fairlock_acquire(two), FAIRLOCK_OK);
    CHECK_RC(three, fairlock_acquire(three), FAIRLOCK_MISMATCH);
    const char *msg = fairlock_errmsg(three);
    CHECK(strstr(msg, "a semaphore of 2 permits") != NULL);
    CHECK(strstr(msg, "a semaphore of 3 permits") != NULL);
    CHECK_INT(fairlock_state(three), ==, FAIRLOCK_STATE_IDLE);

    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.kind = FAIRLOCK_KIND_RWLOCK;
    fairlock *rw = test_lock_opts(&opts);
    CHECK_RC(rw, fairlock_acquire_ex(rw, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_MISMATCH);
    CHECK(strstr(fairlock_errmsg(rw), "a readers-writer lock") != NULL);
    CHECK_RC(two, fairlock_release(two), FAIRLOCK_OK);
    /* Once nobody holds or waits, the record is gone and N is free. */
    CHECK_RC(three, fairlock_acquire(three), FAIRLOCK_OK);
    CHECK_INT(fairlock_permit(three), ==, 1);
    CHECK_RC(three, fairlock_release(three), FAIRLOCK_OK);

    /* A name held as a mutex is not a semaphore. */
    fairlock *mutex = test_lock(name, LONG_MS);
    CHECK_RC(mutex, fairlock_acquire(mutex), FAIRLOCK_OK);
    CHECK_RC(two, fairlock_acquire(two), FAIRLOCK_MISMATCH);
    CHECK(strstr(fairlock_errmsg(two), "a mutex") != NULL);
    CHECK_RC(mutex, fairlock_release(mutex), FAIRLOCK_OK);
    fairlock_free(mutex);
    fairlock_free(rw);
    fairlock_free(two);
    fairlock_free(three);
    no_keys_left(name);
}

/* The other way round: a mutex client on a semaphore's or readers-writer
 * lock's name is refused too, whether it waits, only tries, or does not
 * queue (non-FIFO), and it leaves no key of its own.  Regression: the
 * mutex scripts did not look at NAME:kind, so such a client got a silent
 * mutex of its own beside the semaphore. */
static void mutex_on_other_kinds_is_refused(void) {
    redisContext *c = test_redis();
    for (int rw = 0; rw < 2; rw++) {
        const char *name = test_name(rw ? "rw-as-mutex" : "sem-as-mutex");
        fairlock_options opts;
        fairlock_options_init(&opts);
        opts.name = name;
        opts.timeout_ms = LONG_MS;
        if (rw) {
            opts.kind = FAIRLOCK_KIND_RWLOCK;
            opts.shared = 1;
        } else {
            opts.kind = FAIRLOCK_KIND_SEMAPHORE;
            opts.permits = 2;
        }
        fairlock *other = test_lock_opts(&opts);
        CHECK_RC(other, fairlock_acquire(other), FAIRLOCK_OK);
        long long keys = test_keys_of(c, name);
        for (int fifo = 0; fifo < 2; fifo++) {
            fairlock_options_init(&opts);
            opts.name = name;
            opts.timeout_ms = LONG_MS;
            opts.fifo = fifo;
            fairlock *mutex = test_lock_opts(&opts);
            CHECK_RC(mutex, fairlock_acquire(mutex), FAIRLOCK_MISMATCH);
            const char *msg = fairlock_errmsg(mutex);
            CHECK(strstr(msg, "asks for a mutex") != NULL);
            CHECK(strstr(msg, rw ? "a readers-writer lock"
                                 : "a semaphore of 2 permits") != NULL);
            CHECK_INT(fairlock_state(mutex), ==, FAIRLOCK_STATE_IDLE);
            CHECK_RC(mutex, fairlock_acquire_ex(mutex, 0, 0, FAIRLOCK_DEFAULT),
                     FAIRLOCK_MISMATCH);
            CHECK_RC(mutex,
                     fairlock_acquire_ex(mutex, 200, 1, FAIRLOCK_DEFAULT),
                     FAIRLOCK_MISMATCH);
            fairlock_free(mutex);
            /* Nothing of a mutex: no lock key, queue, counter or marker. */
            CHECK_INT(test_int(c, "EXISTS %s %s:queue %s:seq %s:nfwait", name,
                               name, name, name),
                      ==, 0);
            CHECK_INT(test_keys_of(c, name), ==, keys);
        }
        CHECK_RC(other, fairlock_release(other), FAIRLOCK_OK);
        /* And the other way round (mismatched_permits_are_refused does it
         * for the semaphore): a held mutex's name is not this kind. */
        fairlock *mutex = test_lock(name, LONG_MS);
        CHECK_RC(mutex, fairlock_acquire(mutex), FAIRLOCK_OK);
        CHECK_RC(other, fairlock_acquire_ex(other, 0, 0, FAIRLOCK_DEFAULT),
                 FAIRLOCK_MISMATCH);
        CHECK(strstr(fairlock_errmsg(other), "in use as a mutex") != NULL);
        CHECK_RC(mutex, fairlock_release(mutex), FAIRLOCK_OK);
        fairlock_free(mutex);
        fairlock_free(other);
        no_keys_left(name);
    }
    redisFree(c);
}

/* Non-blocking and timed acquire fail with FAIRLOCK_TIMEOUT and leave no
 * entry; a lease that ran out is lost; the renewer keeps one. */
static void timeouts_leases_and_renewal(void) {
    const char *name = test_name("sem-lease");
    redisContext *c = test_redis();
    fairlock *a = sem_lock(name, 1, 500, FAIRLOCK_DEFAULT);
    fairlock *b = sem_lock(name, 1, LONG_MS, FAIRLOCK_DEFAULT);
    CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
    CHECK_RC(b, fairlock_acquire_ex(b, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_RC(b, fairlock_acquire_ex(b, 100, 1, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_INT(test_int(c, "ZCARD %s:waiters", name), ==, 0);
    int owned = 0;
    CHECK_RC(a, fairlock_owned(a, &owned), FAIRLOCK_OK);
    CHECK_INT(owned, ==, 1);
    int locked = 0;
    CHECK_RC(b, fairlock_locked(b, &locked), FAIRLOCK_OK);
    CHECK_INT(locked, ==, 1);
    test_sleep_ms(800); /* past a's lease: lost, whatever the load */
    CHECK_RC(a, fairlock_extend(a, 1000), FAIRLOCK_NOTOWNED);
    CHECK_RC(b, fairlock_acquire(b), FAIRLOCK_OK);

    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.kind = FAIRLOCK_KIND_SEMAPHORE;
    opts.permits = 1;
    opts.ttl_ms = 1500;
    opts.auto_renew = 1;
    fairlock *renewed = test_lock_opts(&opts);
    CHECK_RC(b, fairlock_release(b), FAIRLOCK_OK);
    CHECK_RC(renewed, fairlock_acquire(renewed), FAIRLOCK_OK);
    test_sleep_ms(4000);
    CHECK_RC(renewed, fairlock_owned(renewed, &owned), FAIRLOCK_OK);
    CHECK_INT(owned, ==, 1);
    fairlock_status *st = NULL;
    CHECK_RC(b, fairlock_status_get(b, 10, &st), FAIRLOCK_OK);
    CHECK_INT(st->kind, ==, FAIRLOCK_KIND_SEMAPHORE);
    CHECK_INT(st->permits, ==, 1);
    CHECK_INT(st->holder_count, ==, 1);
    CHECK_STR(fairlock_status_holder(st, 0)->token, fairlock_token(renewed));
    CHECK_INT(fairlock_status_holder(st, 0)->permit, ==, 1);
    CHECK(fairlock_status_holder(st, 1) == NULL);
    fairlock_status_free(st);
    CHECK_RC(renewed, fairlock_release(renewed), FAIRLOCK_OK);
    fairlock_free(renewed);
    fairlock_free(a);
    fairlock_free(b);
    CHECK_INT(test_wait_no_keys(c, name, 5000), ==, 0);
    redisFree(c);
}

static void bad_options_are_refused(void) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "x";
    opts.url = test_url();
    opts.kind = FAIRLOCK_KIND_SEMAPHORE;
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_INVALID);
    fairlock_free(lock);
    opts.permits = 2;
    opts.fifo = 0;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_INVALID);
    fairlock_free(lock);
    opts.fifo = 1;
    opts.shared = 1;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_INVALID);
    fairlock_free(lock);
    opts.shared = 0;
    opts.kind = 7;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_INVALID);
    fairlock_free(lock);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(bad_options_are_refused);
    RUN_TEST(never_more_than_n_holders);
    RUN_TEST(grants_follow_request_order);
    RUN_TEST(killed_holders_permits_come_back);
    RUN_TEST(dead_holder_keys_expire_with_its_lease);
    RUN_TEST(killed_waiter_is_evicted);
    RUN_TEST(mismatched_permits_are_refused);
    RUN_TEST(mutex_on_other_kinds_is_refused);
    RUN_TEST(timeouts_leases_and_renewal);
    return check_done();
}
