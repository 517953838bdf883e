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
    long long scans = test_calls_of(c, "zscan");
    CHECK_RC(waiter, fairlock_acquire_ex(waiter, 150, 1, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_INT(test_calls_of(c, "zscan") - scans, ==, 0);
    fairlock_free(waiter);
    CHECK_INT(test_calls_of(c, "zscan") - scans, ==, 0);
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

    long long scans = test_calls_of(c, "zscan");
    int calls = cancel_to_the_end(&conn, &keys, token, 0);
    /* One ZSCAN page per call: the work of each call is bounded. */
    CHECK_INT(test_calls_of(c, "zscan") - scans, ==, calls);
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
    long long blpops = test_calls_of(c, "blpop");
    long long evals = test_calls_of(c, "evalsha") + test_calls_of(c, "eval");
    CHECK_RC(waiter, fairlock_acquire(waiter), FAIRLOCK_OK);
    long long attempts = test_calls_of(c, "evalsha") +
                         test_calls_of(c, "eval") - evals;
    CHECK_INT(test_calls_of(c, "blpop") - blpops, ==, 0);
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
 * unlimited -- but only when the hold outlasts a third of the capped lease
 * (the renewal thread sends it then): a shorter hold is released before
 * the cap matters, and a hand-off costs three commands, as with a lease.
 * Until the confirmation the bound is the capped lease's.
 *
 * The variants, what the head does after its hand-off:
 *   RELEASE  releases at once.  Regression: every hand-off of the default
 *            configuration sent a fourth command (counted: no PERSIST).
 *   OUTLAST  holds until the confirmation lifts the bound, after the
 *            script cache was flushed (the thread's EVALSHA must not be
 *            lost to a NOSCRIPT).
 *   GONE     finds its key deleted behind its back: the confirmation
 *            makes the lock lost (state, on_lost, release).
 *   EXTEND   extends before the confirmation is due, which supersedes
 *            it: the key keeps the lease asked for.
 *   DETACH   lets go of the lock for a later process to release: the
 *            confirmation is made first, or the key would expire with the
 *            cap. */
enum { HEAD_RELEASE, HEAD_OUTLAST, HEAD_GONE, HEAD_EXTEND, HEAD_DETACH };
/* EXTEND's lease: its key outlives the wait below by seconds. */
#define EXTEND_MS 6000

typedef struct {
    int64_t acquired_at, valid_after_acquire, valid_later;
    int64_t extended_at, pttl_read_at;
    char token[FAIRLOCK_TOKEN_MAX];
    long long pttl_later;
    int state_after_acquire, state_later, owned_later, lost_calls;
    int rc_release, rc_detach;
    int warmed, parent_holds; /* handshakes */
} confirm_result;

static void count_lost(fairlock *lock, void *arg) {
    (void)lock;
    ((confirm_result *)arg)->lost_calls++;
}

static int64_t now_ms(void) { return test_now_ns() / 1000000; }

/* The head's side, in the child. */
static void head_after_handoff(const char *name, int64_t liveness_ms, int what,
                               confirm_result *res) {
    redisContext *own = test_redis();
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.stale_timeout_ms = liveness_ms;
    opts.on_lost = count_lost;
    opts.on_lost_arg = res;
    fairlock *waiter = test_lock_opts(&opts);
    /* A first round, so that the hand-off below finds scripts cached on
     * the server (OUTLAST then flushes them). */
    CHECK_RC(waiter, fairlock_acquire(waiter), FAIRLOCK_OK);
    CHECK_RC(waiter, fairlock_release(waiter), FAIRLOCK_OK);
    res->warmed = 1;
    CHECK(test_wait_flag(&res->parent_holds, 60000));
    CHECK_RC(waiter, fairlock_acquire(waiter), FAIRLOCK_OK);
    res->acquired_at = now_ms();
    res->valid_after_acquire = fairlock_valid_until_ms(waiter);
    res->state_after_acquire = fairlock_state(waiter);
    snprintf(res->token, sizeof res->token, "%s", fairlock_token(waiter));
    int64_t deadline = now_ms() + 60000;
    switch (what) {
    case HEAD_RELEASE:
        break;
    case HEAD_OUTLAST:
        while (fairlock_valid_until_ms(waiter) != INT64_MAX &&
               now_ms() < deadline)
            usleep(10000);
        /* Past the capped lease's end: still ours. */
        while (now_ms() < res->valid_after_acquire + 50)
            usleep(10000);
        break;
    case HEAD_GONE:
        CHECK_INT(test_int(own, "DEL %s", name), ==, 1);
        while (fairlock_state(waiter) != FAIRLOCK_STATE_LOST &&
               now_ms() < deadline)
            usleep(10000);
        break;
    case HEAD_DETACH:
        res->rc_detach = fairlock_detach(waiter);
        break;
    case HEAD_EXTEND:
        CHECK_RC(waiter, fairlock_extend(waiter, EXTEND_MS), FAIRLOCK_OK);
        res->extended_at = now_ms(); /* after the extend ran */
        /* Past the time the confirmation would have been sent, and the
         * time a renewal of the new lease would be. */
        while (now_ms() < res->extended_at + EXTEND_MS / 3 + 500)
            usleep(10000);
        break;
    }
    res->valid_later = fairlock_valid_until_ms(waiter);
    res->state_later = fairlock_state(waiter);
    res->pttl_read_at = now_ms(); /* before the PTTL runs */
    res->pttl_later = test_int(own, "PTTL %s", name);
    if (what != HEAD_GONE && what != HEAD_DETACH)
        CHECK_RC(waiter, fairlock_owned(waiter, &res->owned_later),
                 FAIRLOCK_OK);
    if (what == HEAD_DETACH)
        res->rc_release = fairlock_release_token(waiter, res->token);
    else
        res->rc_release = fairlock_release(waiter);
    fairlock_free(waiter);
    redisFree(own);
}

static void confirmation_when(int what) {
    const char *name = test_name("proto-confirm");
    /* The confirmation is due a third of the way through the capped
     * lease; GONE needs time to delete the key before that. */
    int64_t liveness_ms = what == HEAD_GONE ? FAIRLOCK_DEFAULT_LIVENESS_MS
                                            : 900;
    redisContext *c = test_redis();
    confirm_result *res = test_shared(sizeof *res);
    fairlock *holder = test_lock(name, FAIRLOCK_FOREVER);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    pid_t child = test_fork();
    if (child == 0) {
        head_after_handoff(name, liveness_ms, what, res);
        _exit(0);
    }
    /* The child holds and releases once... */
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK(test_wait_flag(&res->warmed, 60000));
    /* ...then queues behind the holder for the hand-off. */
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    res->parent_holds = 1;
    test_wait_queued(c, name, 1);
    if (what == HEAD_OUTLAST) {
        redisReply *r = redisCommand(c, "SCRIPT FLUSH");
        CHECK(r != NULL && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    long long persists = test_calls_of(c, "persist");
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_wait_child_within(child, 0, 120000), ==, 0);
    CHECK_INT(res->state_after_acquire, ==, FAIRLOCK_STATE_HELD);
    /* The capped lease's bound: finite, at most the liveness window. */
    CHECK_INT(res->valid_after_acquire, <, INT64_MAX);
    CHECK_INT(res->valid_after_acquire, <=, res->acquired_at + liveness_ms);
    switch (what) {
    case HEAD_RELEASE:
        CHECK_INT(test_calls_of(c, "persist") - persists, ==, 0);
        CHECK_INT(res->rc_release, ==, FAIRLOCK_OK);
        break;
    case HEAD_OUTLAST:
        /* Confirmed: no expiry on the server, none in the bound. */
        CHECK_INT(res->valid_later, ==, INT64_MAX);
        CHECK_INT(res->pttl_later, ==, -1);
        CHECK_INT(res->state_later, ==, FAIRLOCK_STATE_HELD);
        CHECK_INT(res->owned_later, ==, 1);
        CHECK_INT(test_calls_of(c, "persist") - persists, >=, 1);
        CHECK_INT(res->rc_release, ==, FAIRLOCK_OK);
        break;
    case HEAD_GONE:
        CHECK_INT(res->state_later, ==, FAIRLOCK_STATE_LOST);
        CHECK_INT(res->valid_later, ==, 0);
        CHECK_INT(res->lost_calls, ==, 1);
        CHECK_INT(res->rc_release, ==, FAIRLOCK_NOTOWNED);
        break;
    case HEAD_DETACH:
        CHECK_INT(res->rc_detach, ==, FAIRLOCK_OK);
        CHECK_INT(res->pttl_later, ==, -1);
        CHECK_INT(res->state_later, ==, FAIRLOCK_STATE_IDLE);
        CHECK_INT(res->rc_release, ==, FAIRLOCK_OK);
        break;
    case HEAD_EXTEND:
        /* The lease asked for, never made unlimited behind its back. */
        CHECK_INT(test_calls_of(c, "persist") - persists, ==, 0);
        CHECK_INT(res->pttl_later, >, 0);
        /* Not set again since (a renewal would have counted from later):
         * at least the time between the two calls has run off it. */
        CHECK_INT(res->pttl_later, <=,
                  EXTEND_MS - (res->pttl_read_at - res->extended_at) + 5);
        CHECK_INT(res->valid_later, <, INT64_MAX);
        CHECK_INT(res->owned_later, ==, 1);
        CHECK_INT(res->rc_release, ==, FAIRLOCK_OK);
        break;
    }
    CHECK_INT(test_wait_no_keys(c, name, 60000), ==, 0);
    fairlock_free(holder);
    redisFree(c);
}

static void short_hold_after_handoff_sends_no_confirmation(void) {
    confirmation_when(HEAD_RELEASE);
}

static void long_hold_after_handoff_is_confirmed(void) {
    confirmation_when(HEAD_OUTLAST);
}

static void confirmation_finds_the_key_gone(void) {
    confirmation_when(HEAD_GONE);
}

static void extend_supersedes_the_confirmation(void) {
    confirmation_when(HEAD_EXTEND);
}

static void detach_confirms_first(void) { confirmation_when(HEAD_DETACH); }

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(non_fifo_cancel_scans_nothing);
    RUN_TEST(unknown_ticket_cancel_is_paged);
    RUN_TEST(free_lock_drains_at_once);
    RUN_TEST(short_hold_after_handoff_sends_no_confirmation);
    RUN_TEST(long_hold_after_handoff_is_confirmed);
    RUN_TEST(confirmation_finds_the_key_gone);
    RUN_TEST(extend_supersedes_the_confirmation);
    RUN_TEST(detach_confirms_first);
    return check_done();
}
