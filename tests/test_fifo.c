/* test_fifo.c -- first come, first served between real processes: grant
 * order, the pushed hand-off, non-blocking tries and timeouts in a queue. */
#include <signal.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

#define WAITERS 16
/* Long enough that no lease runs out and no waiter is evicted however
 * slow the machine, unless a test says otherwise. */
#define LONG_TIMEOUT_MS 60000
/* A generous bound for things that take milliseconds on an idle machine. */
#define CHILD_DEADLINE_MS 30000
/* A short acquire timeout that a test lets run out. */
#define SHORT_TIMEOUT_MS 300

/* ---------------------------------------------------------------------------
 * Children
 * ------------------------------------------------------------------------- */

/* What one waiting child saw, written by the child only. */
typedef struct outcome {
    int done; /* set (atomically) once acquire has returned */
    int rc;
    int64_t start_ns; /* just before acquire was called */
    int64_t end_ns;   /* just after it returned */
} outcome;

/* Terms of a waiting child; 0 keeps the library's default. */
typedef struct terms {
    int64_t timeout_ms;
    int64_t stale_ms;
    int64_t check_ms;
    int64_t ttl_ms;
} terms;

/* A child that asks for the lock once, records the outcome, and releases
 * the lock if it got it; returns the exit status. */
static int wait_once(const char *name, terms t, outcome *out) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = t.timeout_ms;
    if (t.stale_ms > 0)
        opts.stale_timeout_ms = t.stale_ms;
    if (t.check_ms > 0)
        opts.check_interval_ms = t.check_ms;
    if (t.ttl_ms > 0)
        opts.ttl_ms = t.ttl_ms;
    fairlock *lock = test_lock_opts(&opts);
    out->start_ns = test_now_ns();
    int rc = fairlock_acquire(lock);
    out->end_ns = test_now_ns();
    out->rc = rc;
    __atomic_store_n(&out->done, 1, __ATOMIC_RELEASE);
    if (rc == FAIRLOCK_OK)
        CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    else if (rc != FAIRLOCK_TIMEOUT)
        fprintf(stderr, "acquire: %s: %s\n", fairlock_code_name(rc),
                fairlock_errmsg(lock));
    fairlock_free(lock);
    return 0;
}

static pid_t fork_waiter(const char *name, terms t, outcome *out) {
    pid_t pid = test_fork();
    if (pid == 0)
        _exit(wait_once(name, t, out));
    return pid;
}

static const terms patient = {LONG_TIMEOUT_MS, 0, 0, 0};

/* Forks a waiter and waits until the queue holds `queued` entries, so
 * that whoever asks next is behind it. */
static pid_t fork_queued_waiter(redisContext *c, const char *name,
                                long long queued, terms t, outcome *out) {
    pid_t pid = fork_waiter(name, t, out);
    test_wait_queued(c, name, queued);
    return pid;
}

static void check_no_keys_left(redisContext *c, const char *name) {
    CHECK_INT(test_wait_no_keys(c, name, 5000), ==, 0);
}

/* ---------------------------------------------------------------------------
 * Grant order
 * ------------------------------------------------------------------------- */

/* Grants in the order the children saw them, written under the lock. */
typedef struct grant_log {
    int count; /* next free slot, taken with an atomic increment */
    int child[WAITERS];
    int64_t ticket[WAITERS];
} grant_log;

static int wait_and_log(const char *name, grant_log *log, int child) {
    fairlock *lock = test_lock(name, LONG_TIMEOUT_MS);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    int slot = __atomic_fetch_add(&log->count, 1, __ATOMIC_SEQ_CST);
    CHECK(slot < WAITERS);
    log->child[slot] = child;
    log->ticket[slot] = fairlock_ticket(lock);
    test_sleep_ms(2);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);
    return 0;
}

static void grants_follow_request_order(void) {
    char name[128];
    snprintf(name, sizeof name, "%s", test_name("fifo-order"));
    redisContext *c = test_redis();
    grant_log *log = test_shared(sizeof *log);
    fairlock *holder = test_lock(name, LONG_TIMEOUT_MS);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);

    pid_t pids[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        pids[i] = test_fork();
        if (pids[i] == 0)
            _exit(wait_and_log(name, log, i));
        /* Child i is queued before child i + 1 exists, so the request
         * order is the fork order. */
        test_wait_queued(c, name, i + 1);
    }
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    for (int i = 0; i < WAITERS; i++)
        CHECK_INT(test_wait_child_within(pids[i], 0, CHILD_DEADLINE_MS), ==, 0);

    CHECK_INT(log->count, ==, WAITERS);
    for (int k = 0; k < WAITERS; k++) {
        CHECK_INT(log->child[k], ==, k);
        CHECK_INT(log->ticket[k], >, k == 0 ? 0 : log->ticket[k - 1]);
    }
    check_no_keys_left(c, name);
    fairlock_free(holder);
    redisFree(c);
}

/* ---------------------------------------------------------------------------
 * Hand-off
 * ------------------------------------------------------------------------- */

/* The waiter polls only every 30 s and refreshes its entry every 20 s, so
 * only the releasing script's push can hand it the lock within seconds.
 * The bound is a deadline, 10 s from both 0 and the 20 s that a waiter
 * without the push would wait; it measures nothing. */
static void release_pushes_the_lock_to_the_head(void) {
    char name[128];
    snprintf(name, sizeof name, "%s", test_name("fifo-push"));
    redisContext *c = test_redis();
    outcome *waiter = test_shared(sizeof *waiter);
    /* The head also polls when the holder's lease ends: a long lease
     * leaves the 30 s poll as its only one. */
    fairlock *holder = test_lock(name, LONG_TIMEOUT_MS);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    const terms slow_polling = {LONG_TIMEOUT_MS, LONG_TIMEOUT_MS, 30000, 0};
    pid_t pid = fork_queued_waiter(c, name, 1, slow_polling, waiter);
    /* Let it settle into its long wait. */
    test_sleep_ms(200);
    CHECK(!__atomic_load_n(&waiter->done, __ATOMIC_ACQUIRE));

    int64_t release_ns = test_now_ns();
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK(test_wait_flag(&waiter->done, 10000));
    CHECK_INT(waiter->rc, ==, FAIRLOCK_OK);
    CHECK_INT(waiter->end_ns, >=, release_ns);
    fprintf(stderr, "   granted %lld ms after the release\n",
            (long long)((waiter->end_ns - release_ns) / 1000000));
    CHECK_INT(test_wait_child_within(pid, 0, CHILD_DEADLINE_MS), ==, 0);
    check_no_keys_left(c, name);
    fairlock_free(holder);
    redisFree(c);
}

/* ---------------------------------------------------------------------------
 * Tries and timeouts
 * ------------------------------------------------------------------------- */

static void non_blocking_try_leaves_no_entry(void) {
    char name[128];
    snprintf(name, sizeof name, "%s", test_name("fifo-try"));
    redisContext *c = test_redis();
    outcome *waiter = test_shared(sizeof *waiter);
    fairlock *holder = test_lock(name, LONG_TIMEOUT_MS);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    pid_t pid = fork_queued_waiter(c, name, 1, patient, waiter);
    char waiter_token[FAIRLOCK_TOKEN_MAX];
    CHECK(test_queue_at(c, name, 0, waiter_token, sizeof waiter_token, NULL));

    /* blocking = 0 per call, a zero timeout, and blocking = 0 in the
     * options are all single tries. */
    fairlock *trier = test_lock(name, LONG_TIMEOUT_MS);
    CHECK_RC(trier,
             fairlock_acquire_ex(trier, FAIRLOCK_DEFAULT, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 1);
    CHECK_RC(trier, fairlock_acquire_ex(trier, 0, 1, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 1);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = LONG_TIMEOUT_MS;
    opts.blocking = 0;
    fairlock *non_blocking = test_lock_opts(&opts);
    CHECK_RC(non_blocking, fairlock_acquire(non_blocking), FAIRLOCK_TIMEOUT);
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 1);

    /* The waiter kept its place and is the one the release goes to. */
    CHECK_INT(test_queue_rank_of(c, name, waiter_token, NULL), ==, 0);
    CHECK(!__atomic_load_n(&waiter->done, __ATOMIC_ACQUIRE));
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_wait_child_within(pid, 0, CHILD_DEADLINE_MS), ==, 0);
    CHECK_INT(waiter->rc, ==, FAIRLOCK_OK);
    check_no_keys_left(c, name);
    fairlock_free(non_blocking);
    fairlock_free(trier);
    fairlock_free(holder);
    redisFree(c);
}

static void check_timed_out(const outcome *o) {
    CHECK_INT(o->rc, ==, FAIRLOCK_TIMEOUT);
    /* Not before its time (the library counts whole milliseconds). */
    CHECK_INT((o->end_ns - o->start_ns) / 1000000, >=, SHORT_TIMEOUT_MS - 1);
}

/* A waiter behind the head times out and its entry goes. */
static void timed_out_waiter_leaves_the_queue(void) {
    char name[128];
    snprintf(name, sizeof name, "%s", test_name("fifo-timeout"));
    redisContext *c = test_redis();
    outcome *o = test_shared(2 * sizeof *o);
    fairlock *holder = test_lock(name, LONG_TIMEOUT_MS);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    pid_t head = fork_queued_waiter(c, name, 1, patient, &o[0]);
    char head_token[FAIRLOCK_TOKEN_MAX];
    CHECK(test_queue_at(c, name, 0, head_token, sizeof head_token, NULL));

    const terms impatient = {SHORT_TIMEOUT_MS, 0, 0, 0};
    pid_t quitter = fork_waiter(name, impatient, &o[1]);
    CHECK_INT(test_wait_child_within(quitter, 0, CHILD_DEADLINE_MS), ==, 0);
    check_timed_out(&o[1]);
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 1);
    CHECK_INT(test_queue_rank_of(c, name, head_token, NULL), ==, 0);

    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_wait_child_within(head, 0, CHILD_DEADLINE_MS), ==, 0);
    CHECK_INT(o[0].rc, ==, FAIRLOCK_OK);
    check_no_keys_left(c, name);
    fairlock_free(holder);
    redisFree(c);
}

/* The scene of the two tests below: a holder, a head whose 300 ms timeout
 * has run out while it was stopped, and a patient waiter behind it. */
typedef struct timed_out_head_scene {
    char name[128];
    redisContext *c;
    fairlock *holder;
    outcome *o; /* o[0] the head, o[1] the next */
    pid_t head, next;
    char head_token[FAIRLOCK_TOKEN_MAX];
    int64_t stopped_ns;
} timed_out_head_scene;

/* The head is stopped as soon as it is queued, so that it cannot leave
 * before the next one is queued behind it.  Returns 0 (and cleans up) if
 * the machine was so slow that it left even so; the scene is then set
 * again, as often as a loaded machine needs. */
static int try_timed_out_head_scene(timed_out_head_scene *s,
                                    const char *prefix) {
    snprintf(s->name, sizeof s->name, "%s", test_name(prefix));
    s->c = test_redis();
    s->o = test_shared(2 * sizeof *s->o);
    s->holder = test_lock(s->name, LONG_TIMEOUT_MS);
    CHECK_RC(s->holder, fairlock_acquire(s->holder), FAIRLOCK_OK);
    /* Its entry stays fresh however long it is stopped, so only its
     * timeout may end its wait; and a lock handed to it stays its own
     * (its lease is not its timeout) until it decides. */
    const terms impatient = {SHORT_TIMEOUT_MS, LONG_TIMEOUT_MS, 0,
                             LONG_TIMEOUT_MS};
    s->head = fork_queued_waiter(s->c, s->name, 1, impatient, &s->o[0]);
    int status = 0;
    int stopped = test_stop_child(s->head, &status);
    s->stopped_ns = test_now_ns();
    if (!stopped || !test_queue_at(s->c, s->name, 0, s->head_token,
                                   sizeof s->head_token, NULL)) {
        if (stopped) {
            CHECK(kill(s->head, SIGCONT) == 0);
            status = test_wait_child_within(s->head, 0, CHILD_DEADLINE_MS);
        }
        CHECK_INT(status, ==, 0);
        check_timed_out(&s->o[0]);
        CHECK_RC(s->holder, fairlock_release(s->holder), FAIRLOCK_OK);
        check_no_keys_left(s->c, s->name);
        fairlock_free(s->holder);
        redisFree(s->c);
        fprintf(stderr, "   the head left before it was stopped; again\n");
        return 0;
    }
    s->next = fork_queued_waiter(s->c, s->name, 2, patient, &s->o[1]);
    /* Past the head's deadline, and past the end of the last BLPOP it sent
     * (at most check_interval_ms, 50 ms, long). */
    int64_t until_ns = s->o[0].start_ns + (SHORT_TIMEOUT_MS + 100) * 1000000LL;
    if (until_ns < s->stopped_ns + 200 * 1000000LL)
        until_ns = s->stopped_ns + 200 * 1000000LL;
    while (test_now_ns() < until_ns)
        test_sleep_ms(10);
    return 1;
}

static void set_timed_out_head_scene(timed_out_head_scene *s,
                                     const char *prefix) {
    for (int attempt = 1; !try_timed_out_head_scene(s, prefix); attempt++)
        CHECK_INT(attempt, <, 20);
}

static void finish_timed_out_head_scene(timed_out_head_scene *s) {
    CHECK_INT(test_wait_child_within(s->next, 0, CHILD_DEADLINE_MS), ==, 0);
    CHECK_INT(s->o[1].rc, ==, FAIRLOCK_OK);
    check_no_keys_left(s->c, s->name);
    fairlock_free(s->holder);
    redisFree(s->c);
}

/* The head times out while the lock is still held: its entry goes and the
 * release goes to the waiter behind it. */
static void timed_out_head_leaves_the_lock_to_the_next(void) {
    timed_out_head_scene s;
    set_timed_out_head_scene(&s, "fifo-head-timeout");

    CHECK(kill(s.head, SIGCONT) == 0);
    CHECK_INT(test_wait_child_within(s.head, 0, CHILD_DEADLINE_MS), ==, 0);
    check_timed_out(&s.o[0]);
    CHECK_INT(test_int(s.c, "ZCARD %s:queue", s.name), ==, 1);
    CHECK_INT(test_queue_rank_of(s.c, s.name, s.head_token, NULL), ==, -1);

    CHECK_RC(s.holder, fairlock_release(s.holder), FAIRLOCK_OK);
    finish_timed_out_head_scene(&s);
}

/* The release hands the lock to the stopped head after its deadline; when
 * it resumes it gives up (cancel.lua undoes the hand-off) and the lock
 * must reach the waiter behind it.  If it was stopped in the instant
 * between its deadline check and its next attempt, it takes the lock
 * instead, which is also correct; either way the next waiter gets it. */
static void timed_out_head_passes_a_late_hand_off_on(void) {
    timed_out_head_scene s;
    set_timed_out_head_scene(&s, "fifo-head-late");

    CHECK_RC(s.holder, fairlock_release(s.holder), FAIRLOCK_OK);
    char holder_token[FAIRLOCK_TOKEN_MAX];
    CHECK(test_get_string(s.c, s.name, holder_token, sizeof holder_token));
    CHECK_STR(holder_token, s.head_token);

    CHECK(kill(s.head, SIGCONT) == 0);
    CHECK_INT(test_wait_child_within(s.head, 0, CHILD_DEADLINE_MS), ==, 0);
    if (s.o[0].rc == FAIRLOCK_OK)
        fprintf(stderr, "   the head took the late hand-off\n");
    else
        check_timed_out(&s.o[0]);
    finish_timed_out_head_scene(&s);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(grants_follow_request_order);
    RUN_TEST(release_pushes_the_lock_to_the_head);
    RUN_TEST(non_blocking_try_leaves_no_entry);
    RUN_TEST(timed_out_waiter_leaves_the_queue);
    RUN_TEST(timed_out_head_leaves_the_lock_to_the_next);
    RUN_TEST(timed_out_head_passes_a_late_hand_off_on);
    return check_done();
}
