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

/* A head entry injected with a wall-clock timestamp 10 s old is evicted as
 * stale by a client with fifo_stale_timeout=0.01, which then acquires;
 * afterwards the queue keys are gone. */
static void stale_head_is_evicted(void) {
    const char *name = test_name("ref-stale");
    redisContext *c = test_redis();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long old_ts = ((long long)tv.tv_sec - 10) * 1000 + tv.tv_usec / 1000;
    CHECK_INT(test_int(c, "ZADD %s:queue 1 1:stale:%lld", name, old_ts), ==, 1);

    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = 1000;
    opts.stale_timeout_ms = 10;
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "EXISTS %s:queue", name), ==, 0);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
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

int main(void) {
    RUN_TEST(simple_usage);
    RUN_TEST(non_fifo_usage);
    RUN_TEST(stale_head_is_evicted);
    RUN_TEST(live_foreign_head_keeps_its_place);
    return 0;
}
