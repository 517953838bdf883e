/* test_crash.c -- holders and waiters that die (SIGKILL) or stall (SIGSTOP)
 * do not block the lock for longer than their lease or liveness window. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

#define MAX_PARTIES 4
/* Long enough that no live party's lease runs out or entry goes stale
 * however slow the machine, unless a test says otherwise. */
#define LONG_TIMEOUT_MS 30000
/* The liveness window of the parties that are to die or stall. */
#define SHORT_STALE_MS 500
/* Generous bounds for things that take milliseconds on an idle machine. */
#define GRANT_DEADLINE_MS 20000
#define CHILD_DEADLINE_MS 30000
/* How long a waiter may take to get a lock whose holder or head died: a
 * deadline, far above the lease or liveness window (at most 3 s) and the
 * waiter's next poll (at most 1 s) that it takes. */
#define RECOVERY_DEADLINE_MS 20000

/* One child's view of its request, written by the child except for
 * may_release. */
typedef struct party {
    int granted; /* set (atomically) once acquire has returned OK */
    int64_t asked_ns;
    int64_t granted_ns;
    int64_t ticket;
    int place;        /* 0-based position among the scene's grants */
    int dead_entries; /* entries of scene.dead_token when it was granted */
    char token[FAIRLOCK_TOKEN_MAX];
    int may_release; /* set by the parent for a party that holds on */
} party;

typedef struct scene {
    char name[128];
    char dead_token[FAIRLOCK_TOKEN_MAX]; /* set by the parent, or "" */
    int grants;
    party parties[MAX_PARTIES];
} scene;

/* Terms of a party; 0 keeps the library's default. */
typedef struct terms {
    int64_t timeout_ms;
    int64_t stale_ms;
    int hold_on; /* keep the lock until may_release */
} terms;

static const terms quick = {LONG_TIMEOUT_MS, 0, 0};
static const terms holding = {LONG_TIMEOUT_MS, 0, 1};
static const terms short_lived = {LONG_TIMEOUT_MS, SHORT_STALE_MS, 0};

/* The body of party i: acquire, note what it saw, release (at once, or
 * when told); returns the exit status. */
static int take_part(scene *s, int i, terms t) {
    party *p = &s->parties[i];
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = s->name;
    opts.timeout_ms = t.timeout_ms;
    if (t.stale_ms > 0)
        opts.stale_timeout_ms = t.stale_ms;
    fairlock *lock = test_lock_opts(&opts);
    redisContext *c = test_redis();
    p->asked_ns = test_now_ns();
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    p->granted_ns = test_now_ns();
    p->ticket = fairlock_ticket(lock);
    snprintf(p->token, sizeof p->token, "%s", fairlock_token(lock));
    p->place = __atomic_fetch_add(&s->grants, 1, __ATOMIC_SEQ_CST);
    if (s->dead_token[0] != '\0') {
        long long rank = test_queue_rank_of(c, s->name, s->dead_token, NULL);
        p->dead_entries = rank >= 0;
    }
    __atomic_store_n(&p->granted, 1, __ATOMIC_RELEASE);
    if (t.hold_on)
        CHECK(test_wait_flag(&p->may_release, 2 * CHILD_DEADLINE_MS));
    else
        test_sleep_ms(2);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);
    redisFree(c);
    return 0;
}

static scene *new_scene(const char *prefix) {
    scene *s = test_shared(sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", test_name(prefix));
    return s;
}

static pid_t fork_party(scene *s, int i, terms t) {
    pid_t pid = test_fork();
    if (pid == 0)
        _exit(take_part(s, i, t));
    return pid;
}

/* Forks party i and waits until the queue holds `queued` entries, so that
 * whoever asks next is behind it. */
static pid_t fork_queued_party(redisContext *c, scene *s, int i, terms t,
                               long long queued) {
    pid_t pid = fork_party(s, i, t);
    test_wait_queued(c, s->name, queued);
    return pid;
}

static void kill_party(pid_t pid) {
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK_INT(test_wait_child_within(pid, SIGKILL, CHILD_DEADLINE_MS), ==,
              128 + SIGKILL);
}

static void let_go(scene *s, int i, pid_t pid) {
    __atomic_store_n(&s->parties[i].may_release, 1, __ATOMIC_RELEASE);
    CHECK_INT(test_wait_child_within(pid, 0, CHILD_DEADLINE_MS), ==, 0);
}

static void check_holder(redisContext *c, const scene *s, const char *token) {
    char holder[FAIRLOCK_TOKEN_MAX];
    CHECK(test_get_string(c, s->name, holder, sizeof holder));
    CHECK_STR(holder, token);
}

/* Wake lists and queue keys of the dead expire within their liveness
 * windows; nothing may stay for longer. */
static void check_no_keys_left(redisContext *c, const scene *s) {
    CHECK_INT(test_wait_no_keys(c, s->name, 5000), ==, 0);
}

static long long ms_between(int64_t from_ns, int64_t to_ns) {
    return (long long)((to_ns - from_ns) / 1000000);
}

/* (a) A holder killed with a 3 s lease: the waiter gets the lock once the
 * lease has run out, and not before.  The lease must outlast the fork and
 * first call of the waiter, which is to queue behind the live holder:
 * 3 s is seconds more than that takes on a loaded machine. */
#define HOLDER_LEASE_MS 3000
static void killed_holder_loses_the_lock_with_its_lease(void) {
    scene *s = new_scene("crash-holder");
    redisContext *c = test_redis();
    const terms lease_terms = {HOLDER_LEASE_MS, 0, 1};
    pid_t holder = fork_party(s, 0, lease_terms);
    CHECK(test_wait_flag(&s->parties[0].granted, GRANT_DEADLINE_MS));
    pid_t waiter = fork_queued_party(c, s, 1, holding, 1);
    kill_party(holder);

    CHECK(test_wait_flag(&s->parties[1].granted, RECOVERY_DEADLINE_MS));
    /* The lease began after asked_ns; Redis's clock may differ a little
     * from ours, hence the margin. */
    CHECK_INT(ms_between(s->parties[0].asked_ns, s->parties[1].granted_ns), >=,
              HOLDER_LEASE_MS - 50);
    fprintf(stderr, "   granted %lld ms after the dead holder asked\n",
            ms_between(s->parties[0].asked_ns, s->parties[1].granted_ns));
    check_holder(c, s, s->parties[1].token);
    CHECK(strcmp(s->parties[0].token, s->parties[1].token) != 0);
    CHECK_INT(test_queue_rank_of(c, s->name, s->parties[0].token, NULL), ==,
              -1);
    let_go(s, 1, waiter);
    check_no_keys_left(c, s);
    redisFree(c);
}

/* (b) The head of the queue is killed while it waits, and the lock is
 * released at once, so its last heartbeat is fresh: the release hands the
 * lock to the dead head, for no longer than its liveness window.  The
 * next waiter must still get it, and the queue must heal.
 *
 * The next waiter still believes it is second in line, so it notices that
 * the dead head's lease ran out only when it next refreshes its entry, a
 * third of its liveness window later, not after check_interval_ms: its
 * window is 3 s to keep that within the bound. */
static void killed_head_does_not_block_the_queue(void) {
    scene *s = new_scene("crash-head");
    redisContext *c = test_redis();
    fairlock *holder = test_lock(s->name, LONG_TIMEOUT_MS);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    pid_t dead = fork_queued_party(c, s, 0, short_lived, 1);
    const terms next_terms = {LONG_TIMEOUT_MS, 3000, 1};
    pid_t next = fork_queued_party(c, s, 1, next_terms, 2);
    char dead_token[FAIRLOCK_TOKEN_MAX];
    CHECK(test_queue_at(c, s->name, 0, dead_token, sizeof dead_token, NULL));
    kill_party(dead);

    int64_t release_ns = test_now_ns();
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    char first[FAIRLOCK_TOKEN_MAX];
    if (test_get_string(c, s->name, first, sizeof first) &&
        strcmp(first, dead_token) == 0) {
        long long pttl = test_int(c, "PTTL %s", s->name);
        CHECK_INT(pttl, >, 0);
        CHECK_INT(pttl, <=, SHORT_STALE_MS);
        fprintf(stderr, "   handed to the dead head for %lld ms\n", pttl);
    }

    CHECK(test_wait_flag(&s->parties[1].granted, RECOVERY_DEADLINE_MS));
    fprintf(stderr, "   next waiter granted %lld ms after the release\n",
            ms_between(release_ns, s->parties[1].granted_ns));
    check_holder(c, s, s->parties[1].token);
    CHECK_INT(test_int(c, "ZCARD %s:queue", s->name), ==, 0);
    let_go(s, 1, next);
    check_no_keys_left(c, s);
    fairlock_free(holder);
    redisFree(c);
}

/* (c) A waiter in the middle of the queue is killed and goes silent for
 * longer than its liveness window: the others are granted in their order
 * and its entry is evicted on the way, without ever being handed the lock
 * (which would only delay the next waiter). */
static void killed_middle_waiter_is_skipped(void) {
    scene *s = new_scene("crash-middle");
    redisContext *c = test_redis();
    fairlock *holder = test_lock(s->name, LONG_TIMEOUT_MS);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    /* The two around the victim hold on, so the parent can see to whom
     * the lock goes when the one before it releases. */
    const terms party_terms[MAX_PARTIES] = {holding, short_lived, holding,
                                            quick};
    pid_t pids[MAX_PARTIES];
    for (int i = 0; i < MAX_PARTIES; i++)
        pids[i] = fork_queued_party(c, s, i, party_terms[i], i + 1);
    CHECK(test_queue_at(c, s->name, 1, s->dead_token, sizeof s->dead_token,
                        NULL));
    kill_party(pids[1]);
    test_sleep_ms(2 * SHORT_STALE_MS);

    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK(test_wait_flag(&s->parties[0].granted, RECOVERY_DEADLINE_MS));
    let_go(s, 0, pids[0]);
    char next_holder[FAIRLOCK_TOKEN_MAX];
    CHECK(test_get_string(c, s->name, next_holder, sizeof next_holder));
    CHECK(strcmp(next_holder, s->dead_token) != 0);
    CHECK(test_wait_flag(&s->parties[2].granted, RECOVERY_DEADLINE_MS));
    check_holder(c, s, s->parties[2].token);
    let_go(s, 2, pids[2]);
    CHECK_INT(test_wait_child_within(pids[3], 0, CHILD_DEADLINE_MS), ==, 0);
    const party *p = s->parties;
    CHECK_INT(s->grants, ==, 3);
    CHECK_INT(p[0].place, ==, 0);
    CHECK_INT(p[2].place, ==, 1);
    CHECK_INT(p[3].place, ==, 2);
    CHECK_INT(p[2].ticket, >, p[0].ticket);
    CHECK_INT(p[3].ticket, >, p[2].ticket);
    /* Gone by the time the waiters behind it were served. */
    CHECK_INT(p[2].dead_entries, ==, 0);
    CHECK_INT(p[3].dead_entries, ==, 0);
    check_no_keys_left(c, s);
    fairlock_free(holder);
    redisFree(c);
}

/* (d) A waiter that stops heartbeating for longer than its liveness
 * window loses its place: the next release evicts its entry as stale and
 * serves the waiter behind it.  What the library does when the evicted
 * waiter runs again (acquire.lua): its next call finds no entry for its
 * ticket and queues it afresh, at the back with a new ticket, and it goes
 * on waiting; its acquire does not fail. */
static void stalled_waiter_loses_its_place(void) {
    scene *s = new_scene("crash-stall");
    redisContext *c = test_redis();
    fairlock *holder = test_lock(s->name, LONG_TIMEOUT_MS);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    pid_t stalled = fork_queued_party(c, s, 0, short_lived, 1);
    pid_t second = fork_queued_party(c, s, 1, holding, 2);
    pid_t third = fork_queued_party(c, s, 2, quick, 3);
    char stalled_token[FAIRLOCK_TOKEN_MAX];
    long long first_ticket = 0;
    CHECK(test_queue_at(c, s->name, 0, stalled_token, sizeof stalled_token,
                        &first_ticket));
    int status;
    CHECK(test_stop_child(stalled, &status));
    test_sleep_ms(3 * SHORT_STALE_MS);

    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    /* Evicted, not handed the lock. */
    char next_holder[FAIRLOCK_TOKEN_MAX];
    CHECK(test_get_string(c, s->name, next_holder, sizeof next_holder));
    CHECK(strcmp(next_holder, stalled_token) != 0);
    CHECK(test_wait_flag(&s->parties[1].granted, RECOVERY_DEADLINE_MS));
    check_holder(c, s, s->parties[1].token);
    CHECK_INT(test_queue_rank_of(c, s->name, stalled_token, NULL), ==, -1);
    CHECK_INT(test_int(c, "ZCARD %s:queue", s->name), ==, 1);
    char third_token[FAIRLOCK_TOKEN_MAX];
    long long third_ticket = 0;
    CHECK(test_queue_at(c, s->name, 0, third_token, sizeof third_token,
                        &third_ticket));
    CHECK_INT(third_ticket, >, first_ticket);

    CHECK(kill(stalled, SIGCONT) == 0);
    test_wait_queued(c, s->name, 2);
    long long requeued_ticket = 0;
    CHECK_INT(test_queue_rank_of(c, s->name, stalled_token, &requeued_ticket),
              ==, 1);
    CHECK_INT(requeued_ticket, >, third_ticket);

    let_go(s, 1, second);
    CHECK_INT(test_wait_child_within(third, 0, CHILD_DEADLINE_MS), ==, 0);
    CHECK_INT(test_wait_child_within(stalled, 0, CHILD_DEADLINE_MS), ==, 0);
    const party *p = s->parties;
    CHECK_INT(p[1].place, ==, 0);
    CHECK_INT(p[2].place, ==, 1);
    CHECK_INT(p[0].place, ==, 2);
    CHECK_INT(p[0].ticket, >, p[2].ticket);
    check_no_keys_left(c, s);
    fairlock_free(holder);
    redisFree(c);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(killed_holder_loses_the_lock_with_its_lease);
    RUN_TEST(killed_head_does_not_block_the_queue);
    RUN_TEST(killed_middle_waiter_is_skipped);
    RUN_TEST(stalled_waiter_loses_its_place);
    return check_done();
}
