/* test_protocol.c -- the work each script does is bounded, counted rather
 * than timed.
 *
 * This test has a redis-server of its own (fixture "redis_counted"), so
 * that INFO commandstats counts only its commands: a script's inner calls
 * are counted there too, which is how "no script scans the whole queue"
 * and "a waiter never sleeps while the lock is free" are checked without a
 * clock. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"
#include "support.h"

/* Calls of one command so far, from INFO commandstats. */
static long long calls_of(redisContext *c, const char *command) {
    redisReply *r = redisCommand(c, "INFO commandstats");
    CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", command);
    const char *at = strstr(r->str, needle);
    long long n = at ? atoll(at + strlen(needle)) : 0;
    freeReplyObject(r);
    return n;
}

/* Fills NAME:queue with `count` entries of other (unrelated) fairlock
 * waiters, tickets from `first`, stamped `stamp` ms of server time. */
static void fill_queue(redisContext *c, const char *name, long long first,
                       long long count, long long stamp) {
    static const char script[] =
        "for i = 0, tonumber(ARGV[2]) - 1 do "
        "local t = tonumber(ARGV[1]) + i "
        "redis.call('ZADD', KEYS[1], t, string.format("
        "'%d:%032x.0.2000:%d', t, t, tonumber(ARGV[3]))) end "
        "redis.call('SET', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2])) "
        "return 1";
    char queue[256], seq[256];
    snprintf(queue, sizeof queue, "%s:queue", name);
    snprintf(seq, sizeof seq, "%s:seq", name);
    redisReply *r = redisCommand(c, "EVAL %s 2 %s %s %lld %lld %lld", script,
                                 queue, seq, first, count, stamp);
    CHECK(r != NULL && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

static long long server_ms(redisContext *c) {
    redisReply *r = redisCommand(c, "TIME");
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    long long ms = atoll(r->element[0]->str) * 1000 +
                   atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

/* A non-FIFO waiter has no queue entry, so giving up (a timeout here)
 * must not search the queue for one.  Regression: its cancel scanned the
 * whole queue with ZSCAN in one script (379.6 ms of blocked Redis with
 * 300,000 entries). */
static void non_fifo_cancel_scans_nothing(void) {
    const char *name = test_name("proto-nf");
    redisContext *c = test_redis();
    fairlock *holder = test_lock(name, 60000);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    fill_queue(c, name, 1000, 20000, server_ms(c) + 3600000);

    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.fifo = 0;
    opts.timeout_ms = 60000;
    fairlock *waiter = test_lock_opts(&opts);
    long long scans = calls_of(c, "zscan");
    CHECK_RC(waiter, fairlock_acquire_ex(waiter, 150, 1, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_INT(calls_of(c, "zscan") - scans, ==, 0);
    fairlock_free(waiter);
    CHECK_INT(calls_of(c, "zscan") - scans, ==, 0);
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 20000);

    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    fairlock_free(holder);
    CHECK_INT(test_int(c, "DEL %s:queue %s:seq %s:watch", name, name, name), >=,
              1);
    redisFree(c);
}

/* Runs cancel.lua for `token` with `ticket` as resolve_pending() does, a
 * call per page until the cursor comes back "0"; returns the calls. */
static int cancel_to_the_end(fairlock__conn *conn, const fairlock__keys *keys,
                             const char *token, int64_t ticket) {
    char cursor[FAIRLOCK__CURSOR_SIZE] = "0";
    fairlock__error err = {0};
    int calls = 0, undone = 1;
    do {
        CHECK_INT(fairlock__call_cancel(conn, &err, keys, token, ticket, 10000,
                                        cursor, 0, &undone),
                  ==, FAIRLOCK_OK);
        CHECK_INT(undone, ==, 0);
        CHECK_INT(++calls, <=, 40001); /* it ends */
    } while (strcmp(cursor, "0") != 0);
    return calls;
}

/* cancel.lua with ticket 0 (the reply that carried the ticket was lost)
 * looks for the caller's entry one bounded page per call and says where to
 * resume; the entry is found and removed in the end. */
static void unknown_ticket_cancel_is_paged(void) {
    const char *name = test_name("proto-page");
    redisContext *c = test_redis();
    fairlock *holder = test_lock(name, 60000);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    long long far = server_ms(c) + 3600000;
    fill_queue(c, name, 1, 20000, far);
    const char *token = "0123456789abcdef0123456789abcdef.60000.10000";
    CHECK_INT(
        test_int(c, "ZADD %s:queue 20001 20001:%s:%lld", name, token, far), ==,
        1);
    fill_queue(c, name, 20002, 20000, far);

    fairlock__keys keys;
    CHECK_INT(fairlock__keys_init(&keys, name, strlen(name), 0), ==,
              FAIRLOCK_OK);
    fairlock__url url;
    char why[256];
    CHECK_INT(fairlock__url_parse(test_url(), &url, why, sizeof why), ==, 0);
    fairlock__conn conn = {0};
    conn.url = &url;
    conn.io_timeout_ms = 10000;
    fairlock__error err = {0};
    CHECK_INT(fairlock__conn_ready(&conn, &err), ==, FAIRLOCK_OK);

    long long scans = calls_of(c, "zscan");
    int calls = cancel_to_the_end(&conn, &keys, token, 0);
    /* One ZSCAN page per call: the work of each call is bounded. */
    CHECK_INT(calls_of(c, "zscan") - scans, ==, calls);
    CHECK_INT(calls, >, 1);
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 40000);
    CHECK_INT(test_queue_rank_of(c, name, token, NULL), ==, -1);

    /* A ticket that is no longer the entry's (a heartbeat that re-queued
     * it had its reply lost): not found by ticket, so searched for. */
    CHECK_INT(
        test_int(c, "ZADD %s:queue 40005 40005:%s:%lld", name, token, far), ==,
        1);
    cancel_to_the_end(&conn, &keys, token, 7);
    CHECK_INT(test_queue_rank_of(c, name, token, NULL), ==, -1);
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 40000);

    fairlock__conn_close(&conn);
    fairlock__url_clear(&url);
    fairlock__keys_clear(&keys);
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    fairlock_free(holder);
    CHECK_INT(test_int(c, "DEL %s:queue %s:seq %s:watch", name, name, name), >=,
              1);
    redisFree(c);
}

/* One live waiter behind 1,000 dead entries of a free lock: each script
 * evicts at most 64, and the waiter goes on calling at once until it
 * reaches the head, rather than sleeping until its next heartbeat.
 * Regression: it waited 10.6 s (heartbeats) for a lock that was free.
 * Counted: it never blocks in BLPOP, and it needs about 1000 / 64 calls. */
static void free_lock_drains_at_once(void) {
    const char *name = test_name("proto-drain");
    redisContext *c = test_redis();
    fill_queue(c, name, 1, 1000, server_ms(c) - 60000);

    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = 60000;
    opts.stale_timeout_ms = 2000;
    fairlock *waiter = test_lock_opts(&opts);
    long long blpops = calls_of(c, "blpop");
    long long evals = calls_of(c, "evalsha") + calls_of(c, "eval");
    CHECK_RC(waiter, fairlock_acquire(waiter), FAIRLOCK_OK);
    long long attempts = calls_of(c, "evalsha") + calls_of(c, "eval") - evals;
    CHECK_INT(calls_of(c, "blpop") - blpops, ==, 0);
    CHECK_INT(attempts, >=, 1000 / 64);
    CHECK_INT(attempts, <=, 1000 / 64 + 4);
    CHECK_INT(fairlock_ticket(waiter), ==, 1002);
    CHECK_RC(waiter, fairlock_release(waiter), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(waiter);
    redisFree(c);
}

/* With no lease (the defaults), a hand-off gives the head a lease capped at
 * its liveness window, and the head confirms it by making the lease
 * unlimited.  The confirmation is sent without waiting for its reply: the
 * acquire returns with the capped lease's bound, and the next call on the
 * handle reads the reply and lifts the bound.  Regression: the head waited
 * for one more round trip in every hand-off of the default configuration.
 * Counted: the acquire reads no reply of extend.lua. */
typedef struct {
    int64_t valid_after_acquire;
    int64_t valid_after_next_call;
    long long pttl_after_next_call;
    int state_after_acquire;
    int rc_release;
    int warmed, parent_holds; /* handshakes */
} confirm_result;

enum { NEXT_OWNED, NEXT_OWNED_AFTER_FLUSH, NEXT_EXTEND };

static void deferred_confirmation_then(int next) {
    const char *name = test_name("proto-confirm");
    redisContext *c = test_redis();
    confirm_result *res = test_shared(sizeof *res);
    fairlock *holder = test_lock(name, FAIRLOCK_FOREVER);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    pid_t child = test_fork();
    if (child == 0) {
        redisContext *own = test_redis();
        fairlock *waiter = test_lock(name, FAIRLOCK_FOREVER);
        /* A first round, so that the hand-off below finds scripts cached
         * on the server (NEXT_OWNED_AFTER_FLUSH then flushes them). */
        CHECK_RC(waiter, fairlock_acquire(waiter), FAIRLOCK_OK);
        CHECK_RC(waiter, fairlock_extend(waiter, FAIRLOCK_FOREVER),
                 FAIRLOCK_OK);
        CHECK_RC(waiter, fairlock_release(waiter), FAIRLOCK_OK);
        res->warmed = 1;
        CHECK(test_wait_flag(&res->parent_holds, 60000));
        CHECK_RC(waiter, fairlock_acquire(waiter), FAIRLOCK_OK);
        res->valid_after_acquire = fairlock_valid_until_ms(waiter);
        res->state_after_acquire = fairlock_state(waiter);
        if (next == NEXT_EXTEND) {
            /* Its own command in flight while the confirmation's reply is
             * still owed: the reply is read first. */
            int64_t sent = test_now_ns() / 1000000;
            CHECK_RC(waiter, fairlock_extend(waiter, 60000), FAIRLOCK_OK);
            int64_t valid = fairlock_valid_until_ms(waiter);
            CHECK_INT(valid, >, sent + 30000);
            CHECK_INT(valid, <=, test_now_ns() / 1000000 + 60000);
        } else {
            int owned = 0;
            CHECK_RC(waiter, fairlock_owned(waiter, &owned), FAIRLOCK_OK);
            CHECK_INT(owned, ==, 1);
        }
        res->valid_after_next_call = fairlock_valid_until_ms(waiter);
        res->pttl_after_next_call = test_int(own, "PTTL %s", name);
        res->rc_release = fairlock_release(waiter);
        fairlock_free(waiter);
        redisFree(own);
        _exit(0);
    }
    /* The child holds and releases once... */
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK(test_wait_flag(&res->warmed, 60000));
    /* ...then queues behind the holder for the hand-off. */
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    res->parent_holds = 1;
    test_wait_queued(c, name, 1);
    if (next == NEXT_OWNED_AFTER_FLUSH) {
        /* A NOSCRIPT that nobody would retry, had the confirmation been
         * an EVALSHA. */
        redisReply *r = redisCommand(c, "SCRIPT FLUSH");
        CHECK(r != NULL && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_wait_child_within(child, 0, 120000), ==, 0);
    CHECK_INT(res->state_after_acquire, ==, FAIRLOCK_STATE_HELD);
    /* The capped lease's bound: finite, at most the liveness window. */
    CHECK_INT(res->valid_after_acquire, <, INT64_MAX);
    CHECK_INT(res->valid_after_acquire, <=,
              test_now_ns() / 1000000 + FAIRLOCK_DEFAULT_LIVENESS_MS);
    if (next == NEXT_EXTEND) {
        CHECK_INT(res->pttl_after_next_call, >, 30000);
        CHECK_INT(res->pttl_after_next_call, <=, 60000);
    } else {
        /* Confirmed: no expiry on the server, none in the bound. */
        CHECK_INT(res->pttl_after_next_call, ==, -1);
        CHECK_INT(res->valid_after_next_call, ==, INT64_MAX);
    }
    CHECK_INT(res->rc_release, ==, FAIRLOCK_OK);
    CHECK_INT(test_wait_no_keys(c, name, 60000), ==, 0);
    fairlock_free(holder);
    redisFree(c);
}

static void deferred_confirmation(void) {
    deferred_confirmation_then(NEXT_OWNED);
}

/* Regression: after SCRIPT FLUSH the confirmation, sent as EVALSHA,
 * answered NOSCRIPT unseen, and the unlimited lease silently stayed capped
 * at the liveness window (a second client got the lock 400 ms later). */
static void deferred_confirmation_after_script_flush(void) {
    deferred_confirmation_then(NEXT_OWNED_AFTER_FLUSH);
}

/* Regression: fairlock_extend() sent while the confirmation's reply was
 * owed shared its ledger slot, so the bound could come from the wrong
 * command. */
static void extend_while_confirmation_is_owed(void) {
    deferred_confirmation_then(NEXT_EXTEND);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(non_fifo_cancel_scans_nothing);
    RUN_TEST(unknown_ticket_cancel_is_paged);
    RUN_TEST(free_lock_drains_at_once);
    RUN_TEST(deferred_confirmation);
    RUN_TEST(deferred_confirmation_after_script_flush);
    RUN_TEST(extend_while_confirmation_is_owed);
    return check_done();
}
