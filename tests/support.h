/* support.h -- what the integration tests share: the private server's
 * address, direct Redis access for inspection, clocks and child processes. */
#ifndef FAIRLOCK_TEST_SUPPORT_H
#define FAIRLOCK_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"

/* The value of `key` in the KEY=VALUE file that a fixture wrote and whose
 * path CTest puts in $env_var; fails the test if there is none.  Each file
 * is read once; the value is valid until the next call. */
const char *test_fixture_value(const char *env_var, const char *key);

/* URLs of the fixture's redis-server (unix socket and TCP). */
const char *test_url(void);
const char *test_tcp_url(void);
/* The fixture's TCP URL (TLS parameters kept) with USER:PASS@ (userinfo
 * not NULL) and database db. */
const char *test_tcp_url_with(const char *userinfo, int db);
int test_port(void);
pid_t test_server_pid(void);

/* A new direct connection to the fixture server (never NULL). */
redisContext *test_redis(void);

/* Runs a command on a direct connection and returns its integer reply,
 * or -1 for nil; fails the test on errors. */
long long test_int(redisContext *c, const char *fmt, ...);
/* Calls of one command so far on the server (INFO commandstats; commands
 * run inside scripts included): on a server of the test's own, what a
 * test did. */
long long test_calls_of(redisContext *c, const char *command);

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

/* ---- Concurrency with real processes ---- */

/* fork() for tests.  The child dies with the parent (a failed test leaves
 * no orphan blocked on the server), and if it calls exit() -- which the
 * CHECK macros and the helpers above do on failure -- it leaves through
 * _exit(1) instead, so the parent's atexit handlers and stdio buffers are
 * not run twice.  Children end with _exit(). */
pid_t test_fork(void);

/* As test_wait_child, but gives up after timeout_ms: the child is killed
 * and the test fails, so a hung child cannot hang the test. */
int test_wait_child_within(pid_t pid, int expected_signal, int64_t timeout_ms);

/* Sends SIGSTOP and waits until the child has stopped; returns 1.  If it
 * exited first, it is reaped, *exit_status is set to its exit status (a
 * child killed by a signal fails the test) and 0 is returned. */
int test_stop_child(pid_t pid, int *exit_status);

/* Polls a flag in test_shared() memory until it is non-zero, up to
 * timeout_ms; returns 1 if it became so. */
int test_wait_flag(const int *flag, int64_t timeout_ms);

/* Waits until NAME:queue holds `entries` waiters; fails the test if that
 * does not happen within a bound generous enough for a loaded machine. */
void test_wait_queued(redisContext *c, const char *name, long long entries);

/* Polls test_keys_of() until it is 0, up to timeout_ms (keys with a TTL
 * may need a moment to expire); returns the last count. */
long long test_wait_no_keys(redisContext *c, const char *name,
                            int64_t timeout_ms);

/* Copies the string value of a key into buf; returns 1, or 0 if the key
 * does not exist.  Fails the test on other replies. */
int test_get_string(redisContext *c, const char *key, char *buf, size_t len);

/* The waiter at 0-based `rank` of NAME:queue: copies its token into buf and
 * its ticket into *ticket (may be NULL); returns 1, or 0 if there is none.
 * Members read "ticket:token:timestamp". */
int test_queue_at(redisContext *c, const char *name, long long rank,
                  char *token, size_t len, long long *ticket);

/* The 0-based rank in NAME:queue of the entry holding `token` (and its
 * ticket in *ticket, may be NULL), or -1 if it has none. */
long long test_queue_rank_of(redisContext *c, const char *name,
                             const char *token, long long *ticket);

/* ---- Private redis-servers (server.c) ----
 *
 * For tests that stop, pause, restart or reconfigure a server, which the
 * shared fixture server must not suffer.  Each runs in the foreground as a
 * child of the test (test_fork, so it dies with the test), in its own
 * mktemp directory, on a unix socket and, when asked, a free loopback
 * port.  A server can be stopped and started again on the same socket,
 * port and directory (to restart one that persists). */

#define TEST_SERVER_MAX_EXTRA 8

typedef struct test_server {
    pid_t pid; /* 0 when not running */
    int port;  /* 0: unix socket only */
    char dir[64];
    char sock[128];
    char url[160];
    const char *extra[TEST_SERVER_MAX_EXTRA + 1]; /* more arguments */
} test_server;

/* Starts (or restarts, same socket and port) a server; s zeroed the first
 * time.  tcp: also listen on a loopback port.  extra: a NULL-terminated
 * list of more redis-server arguments (later ones win), or NULL. */
void test_server_start(test_server *s, int tcp, const char *const *extra);
/* A new direct connection to it (never NULL). */
redisContext *test_server_redis(const test_server *s);
/* SIGTERM: a graceful shutdown (an AOF, if any, is flushed). */
void test_server_stop(test_server *s);
/* The SHUTDOWN command, as an operator would stop it. */
void test_server_shutdown(test_server *s);
/* Stops it and removes its directory; s is zeroed. */
void test_server_remove(test_server *s);
/* SIGSTOP; returns once it has stopped (it runs nothing after that). */
void test_server_pause(const test_server *s);
void test_server_resume(const test_server *s);

/* ---- ACL users ---- */

/* Runs line `line` (0-based) of `fairlock acl ARGS` (the command's path in
 * $FAIRLOCK_TEST_CLI; ARGS are words without quoting) on c, with
 * `>password` added: the user that line describes exists afterwards. */
void test_acl_setuser(redisContext *c, const char *args, int line,
                      const char *password);

/* ACL DELUSER name on c. */
void test_acl_deluser(redisContext *c, const char *name);

/* ---- The fairlock command ---- */

/* Runs `$FAIRLOCK_TEST_CLI ARGS` (ARGS as sh(1) reads them) and returns
 * its exit status, with at most size - 1 bytes of its standard output in
 * out. */
int test_cli(const char *args, char *out, size_t size);

/* The names fairlock_list() reports, each with its kind: collect them
 * with test_list_collect as the callback. */
typedef struct test_listed {
    char names[64][128];
    int kinds[64];
    int count;
} test_listed;
int test_list_collect(void *arg, const char *name, size_t len, int kind);

#endif
