/* test_mutex.c -- mutual exclusion between real processes: FIFO, non-FIFO
 * and both mixed on one lock name. */
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

#define PROCESSES 8
#define MAX_ITERATIONS 300
/* Long enough that no lease runs out and no waiter is evicted however
 * slow the machine: this test is about exclusion, not about crashes. */
#define LOCK_TIMEOUT_MS 60000
/* Bound on a whole run, to fail instead of hanging if a grant is lost. */
#define RUN_DEADLINE_MS 120000

/* One hold as its holder saw it: from the return of acquire to the call
 * of release.  That lies inside the real hold on the server, so two
 * recorded holds can only overlap if two real holds did. */
typedef struct hold {
    int64_t start_ns;
    int64_t end_ns;
    int process;
} hold;

/* Shared with the children.  Process p writes only its own slots:
 * holds[p * iterations + i] and grants[p]. */
typedef struct contention {
    char name[128];
    char counter_key[128];
    int iterations;
    int fifo_of[PROCESSES];
    int grants[PROCESSES];
    hold holds[PROCESSES * MAX_ITERATIONS];
} contention;

static long long read_counter(redisContext *c, const char *key) {
    char value[32];
    if (!test_get_string(c, key, value, sizeof value))
        return 0;
    return strtoll(value, NULL, 10);
}

/* One contending process: acquire, increment the counter without any
 * atomicity of its own, release; returns the exit status. */
static int contend(contention *shared, int process) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = shared->name;
    opts.timeout_ms = LOCK_TIMEOUT_MS;
    opts.fifo = shared->fifo_of[process];
    fairlock *lock = test_lock_opts(&opts);
    redisContext *c = test_redis();
    for (int i = 0; i < shared->iterations; i++) {
        CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
        int64_t start = test_now_ns();
        long long value = read_counter(c, shared->counter_key);
        /* Widens the window in which a second holder would read the same
         * value, so that a broken exclusion loses increments. */
        sched_yield();
        redisReply *r = redisCommand(c, "SET %s %lld", shared->counter_key,
                                     value + 1);
        CHECK(r != NULL && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        int64_t end = test_now_ns();
        CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
        hold *h = &shared->holds[process * shared->iterations + i];
        h->start_ns = start;
        h->end_ns = end;
        h->process = process;
        shared->grants[process]++;
    }
    fairlock_free(lock);
    redisFree(c);
    return 0;
}

static int by_start(const void *a, const void *b) {
    const hold *x = a, *y = b;
    return (x->start_ns > y->start_ns) - (x->start_ns < y->start_ns);
}

/* Runs PROCESSES contending processes, process p with fifo_of[p], and
 * checks that no two holds overlapped and no increment was lost. */
static void contend_and_check(const char *prefix, int iterations,
                              const int fifo_of[PROCESSES]) {
    CHECK(iterations <= MAX_ITERATIONS);
    contention *shared = test_shared(sizeof *shared);
    snprintf(shared->name, sizeof shared->name, "%s", test_name(prefix));
    snprintf(shared->counter_key, sizeof shared->counter_key, "%s",
             test_name("mutex-counter"));
    shared->iterations = iterations;
    for (int p = 0; p < PROCESSES; p++)
        shared->fifo_of[p] = fifo_of[p];

    int64_t start = test_now_ns();
    pid_t pids[PROCESSES];
    for (int p = 0; p < PROCESSES; p++) {
        pids[p] = test_fork();
        if (pids[p] == 0)
            _exit(contend(shared, p));
    }
    for (int p = 0; p < PROCESSES; p++) {
        int64_t left_ms = RUN_DEADLINE_MS - (test_now_ns() - start) / 1000000;
        CHECK_INT(test_wait_child_within(pids[p], 0, left_ms > 1 ? left_ms : 1),
                  ==, 0);
    }
    fprintf(stderr, "   %d x %d holds in %lld ms\n", PROCESSES, iterations,
            (long long)((test_now_ns() - start) / 1000000));

    long long total = 0;
    for (int p = 0; p < PROCESSES; p++) {
        CHECK_INT(shared->grants[p], ==, iterations);
        total += shared->grants[p];
    }
    size_t count = (size_t)total;
    qsort(shared->holds, count, sizeof shared->holds[0], by_start);
    int handovers = 0;
    for (size_t k = 0; k + 1 < count; k++) {
        const hold *a = &shared->holds[k], *b = &shared->holds[k + 1];
        if (a->end_ns > b->start_ns)
            fprintf(stderr,
                    "holds overlap: process %d [%lld, %lld) and process "
                    "%d [%lld, %lld)\n",
                    a->process, (long long)a->start_ns, (long long)a->end_ns,
                    b->process, (long long)b->start_ns, (long long)b->end_ns);
        CHECK(a->end_ns <= b->start_ns);
        handovers += a->process != b->process;
    }
    fprintf(stderr, "   %d handovers between processes\n", handovers);

    redisContext *c = test_redis();
    CHECK_INT(read_counter(c, shared->counter_key), ==, total);

    /* Non-FIFO waiters leave NAME:nfwait and NAME:nfwake behind with
     * TTLs well under a second; everything else goes with the release. */
    CHECK_INT(test_wait_no_keys(c, shared->name, 5000), ==, 0);
    test_int(c, "DEL %s", shared->counter_key);
    redisFree(c);
}

static void fifo_processes_exclude_each_other(void) {
    const int fifo_of[PROCESSES] = {1, 1, 1, 1, 1, 1, 1, 1};
    contend_and_check("mutex-fifo", 300, fifo_of);
}

static void non_fifo_processes_exclude_each_other(void) {
    const int fifo_of[PROCESSES] = {0, 0, 0, 0, 0, 0, 0, 0};
    contend_and_check("mutex-nonfifo", 100, fifo_of);
}

/* Non-FIFO clients ignore the queue, but there is still one lock key. */
static void mixed_processes_exclude_each_other(void) {
    const int fifo_of[PROCESSES] = {1, 0, 1, 0, 1, 0, 1, 0};
    contend_and_check("mutex-mixed", 150, fifo_of);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(fifo_processes_exclude_each_other);
    RUN_TEST(non_fifo_processes_exclude_each_other);
    RUN_TEST(mixed_processes_exclude_each_other);
    return check_done();
}
