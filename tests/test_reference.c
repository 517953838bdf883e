/* test_reference.c -- every behaviour of the reference's doctest example. */
#include <sys/time.h>

#include "check.h"
#include "support.h"

static int noop(void *arg) {
    (void)arg;
    return 7;
}

/* with RedisLockFifo('test:lock', timeout=1): pass */
static void simple_usage(void) {
    const char *name = test_name("ref-simple");
    fairlock *lock = test_lock(name, 1000);
    int result = 0;
    CHECK_RC(lock, fairlock_with(lock, noop, NULL, &result), FAIRLOCK_OK);
    CHECK_INT(result, ==, 7);
    redisContext *c = test_redis();
    CHECK_INT(test_keys_of(c, name), ==, 0);
    redisFree(c);
    fairlock_free(lock);
}

/* with RedisLockFifo('test:lock', fifo=False, timeout=1): pass, and no
 * queue keys are created. */
static void non_fifo_usage(void) {
    const char *name = test_name("ref-nonfifo");
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.fifo = 0;
    opts.timeout_ms = 1000;
    fairlock *lock = test_lock_opts(&opts);
    redisContext *c = test_redis();
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "EXISTS %s:queue", name), ==, 0);
    CHECK_INT(test_int(c, "EXISTS %s:seq", name), ==, 0);
    CHECK_INT(test_int(c, "EXISTS %s", name), ==, 1);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    redisFree(c);
    fairlock_free(lock);
}

/* The reference document's doctest: a head entry injected with a
 * wall-clock stamp 10 s old, then a client with fifo_stale_timeout=0.01
 * acquires.  The entry stands for a dead waiter of another client, so it
 * is judged the way such entries are (docs/protocol.md, "Liveness"): once
 * the lock has stayed free with it at the head for the window, it goes.
 * Afterwards no key of the lock is left. */
static void stale_head_is_evicted(void) {
    const char *name = test_name("ref-stale");
    redisContext *c = test_redis();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long old_ts = ((long long)tv.tv_sec - 10) * 1000 + tv.tv_usec / 1000;
    CHECK_INT(test_int(c, "INCR %s:seq", name), ==, 1);
    CHECK_INT(test_int(c, "ZADD %s:queue 1 1:stale:%lld", name, old_ts), ==, 1);

    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = 1000;
    opts.stale_timeout_ms = 10;
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(fairlock_ticket(lock), ==, 2);
    CHECK_INT(test_int(c, "EXISTS %s:queue", name), ==, 0);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(lock);

    /* with RedisLockFifo(name, timeout=1): pass -> queue keys removed */
    lock = test_lock(name, 1000);
    CHECK_RC(lock, fairlock_with(lock, noop, NULL, NULL), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "EXISTS %s:queue", name), ==, 0);
    CHECK_INT(test_int(c, "EXISTS %s:seq", name), ==, 0);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(lock);
    redisFree(c);
}

/* A fresh entry (heartbeat just now) of another client is not stale: it
 * keeps its place and the newcomer waits behind it. */
static void live_foreign_head_keeps_its_place(void) {
    const char *name = test_name("ref-live");
    redisContext *c = test_redis();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long ts = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    CHECK_INT(test_int(c, "INCR %s:seq", name), ==, 1);
    CHECK_INT(test_int(c, "ZADD %s:queue 1 1:other:%lld", name, ts), ==, 1);
    fairlock *lock = test_lock(name, 5000);
    CHECK_RC(lock, fairlock_acquire_ex(lock, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    /* Our try left no entry; the foreign one is intact. */
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 1);
    /* The other client takes the lock the reference way and releases it
     * with a plain DEL; we then get it. */
    CHECK_INT(test_int(c, "ZREM %s:queue 1:other:%lld", name, ts), ==, 1);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(fairlock_ticket(lock), ==, 3); /* 2 went to our try */
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(lock);
    redisFree(c);
}

/* The reference stamps its entry with its own process's monotonic clock
 * (a small number such as 348339), which read as server time looks about
 * 1.8e12 ms old.  Such a head must survive while the lock is held and
 * after a release, until the lock has stayed free for the window with it
 * at the head.  Regression: every script that found the lock free used to
 * evict it, so reference clients in a mixed fleet never got the lock. */
static void monotonic_stamped_head_is_not_aged(void) {
    const char *name = test_name("ref-mono");
    redisContext *c = test_redis();
    fairlock *holder = test_lock(name, 30000);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "INCR %s:seq", name), ==, 1);
    CHECK_INT(test_int(c, "ZADD %s:queue 1 1:ref:348339", name), ==, 1);

    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = 30000;
    opts.stale_timeout_ms = 30000; /* far longer than this test runs */
    fairlock *waiter = test_lock_opts(&opts);
    /* Held: a try is refused and the foreign head stays. */
    CHECK_RC(waiter, fairlock_acquire_ex(waiter, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    /* The release finds the lock free with the foreign head first: it
     * hands nothing to anyone and leaves the head in place. */
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "ZRANK %s:queue 1:ref:348339", name), ==, 0);
    CHECK_INT(test_int(c, "EXISTS %s", name), ==, 0);
    /* Free, but the foreign head has its window to take it: no overtaking. */
    CHECK_RC(waiter, fairlock_acquire_ex(waiter, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_INT(test_int(c, "ZRANK %s:queue 1:ref:348339", name), ==, 0);
    /* The queue must not expire under a waiter that never re-registers. */
    CHECK_INT(test_int(c, "PTTL %s:queue", name), ==, -1);
    /* It takes the lock the reference way; then it is ours to get. */
    CHECK_INT(test_int(c, "ZREM %s:queue 1:ref:348339", name), ==, 1);
    CHECK_RC(waiter, fairlock_acquire(waiter), FAIRLOCK_OK);
    CHECK_RC(waiter, fairlock_release(waiter), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(waiter);
    fairlock_free(holder);
    redisFree(c);
}

/* The reference's release deletes NAME:seq with a command of its own, and
 * its INCR and ZADD are two commands: a queue can outlive its counter.
 * A newcomer then continues after the tail instead of restarting at 1 and
 * jumping ahead of everyone queued. */
static void newcomer_queues_after_the_tail(void) {
    const char *name = test_name("ref-seq");
    redisContext *c = test_redis();
    fairlock *holder = test_lock(name, 30000);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "ZADD %s:queue 51 51:ref:348339", name), ==, 1);
    fairlock *waiter = test_lock(name, 30000);
    CHECK_RC(waiter, fairlock_acquire_ex(waiter, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    char seq[32];
    char key[256];
    snprintf(key, sizeof key, "%s:seq", name);
    CHECK(test_get_string(c, key, seq, sizeof seq));
    CHECK_STR(seq, "52");
    CHECK_INT(test_int(c, "ZREM %s:queue 51:ref:348339", name), ==, 1);
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "DEL %s:seq %s:watch", name, name), >=, 0);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(waiter);
    fairlock_free(holder);
    redisFree(c);
}

/* A non-FIFO client does not barge past a live reference waiter at the
 * head of a free lock (it takes the lock itself within its poll); it would
 * otherwise starve it, and with every grant restart the clock that judges
 * a dead one. */
static void non_fifo_defers_to_live_foreign_head(void) {
    const char *name = test_name("ref-nf");
    redisContext *c = test_redis();
    CHECK_INT(test_int(c, "INCR %s:seq", name), ==, 1);
    CHECK_INT(test_int(c, "ZADD %s:queue 1 1:ref:348339", name), ==, 1);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.fifo = 0;
    opts.timeout_ms = 30000;
    fairlock *nf = test_lock_opts(&opts);
    CHECK_RC(nf, fairlock_acquire_ex(nf, 0, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_INT(test_int(c, "EXISTS %s", name), ==, 0);
    /* The reference waiter takes it and leaves the queue; then it is ours. */
    CHECK_INT(test_int(c, "ZREM %s:queue 1:ref:348339", name), ==, 1);
    CHECK_RC(nf, fairlock_acquire_ex(nf, 0, 0, FAIRLOCK_DEFAULT), FAIRLOCK_OK);
    CHECK_RC(nf, fairlock_release(nf), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "DEL %s:seq %s:watch %s:nfwait", name, name, name),
              >=, 0);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(nf);
    redisFree(c);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(simple_usage);
    RUN_TEST(non_fifo_usage);
    RUN_TEST(stale_head_is_evicted);
    RUN_TEST(live_foreign_head_keeps_its_place);
    RUN_TEST(monotonic_stamped_head_is_not_aged);
    RUN_TEST(newcomer_queues_after_the_tail);
    RUN_TEST(non_fifo_defers_to_live_foreign_head);
    return check_done();
}
