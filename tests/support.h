/* support.h -- what the integration tests share: the private server's
 * address, direct Redis access for inspection, clocks and child processes. */
#ifndef FAIRLOCK_TEST_SUPPORT_H
#define FAIRLOCK_TEST_SUPPORT_H

#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"

/* URLs of the fixture's redis-server (unix socket and TCP). */
const char *test_url(void);
const char *test_tcp_url(void);
int test_port(void);
pid_t test_server_pid(void);

/* A new direct connection to the fixture server (never NULL). */
redisContext *test_redis(void);

/* Runs a command on a direct connection and returns its integer reply,
 * or -1 for nil; fails the test on errors. */
long long test_int(redisContext *c, const char *fmt, ...);

/* Number of keys matching NAME and NAME:* (the lock's whole footprint). */
long long test_keys_of(redisContext *c, const char *name);

/* A unique lock name for this test run: "fltest:<prefix>:<pid>:<n>". */
const char *test_name(const char *prefix);

/* A handle on `name` with the fixture's URL and the given timeout. */
fairlock *test_lock(const char *name, int64_t timeout_ms);
fairlock *test_lock_opts(fairlock_options *opts);

/* CLOCK_MONOTONIC in ns (system-wide, so comparable across processes). */
int64_t test_now_ns(void);
void test_sleep_ms(int64_t ms);

/* Memory shared with forked children (zeroed). */
void *test_shared(size_t size);

/* Waits for a child and returns its exit status (fails the test if it
 * was killed by a signal other than `expected_signal`, 0 for none). */
int test_wait_child(pid_t pid, int expected_signal);

/* Polls until the command's integer reply equals `value`, up to
 * timeout_ms; returns 1 if it did. */
int test_wait_int(redisContext *c, long long value, int64_t timeout_ms,
                  const char *fmt, ...);

#endif
