/* test_async_loop.c -- the event-loop adapters: built once with
 * FAIRLOCK_TEST_LIBUV (test_async_libuv) and once with
 * FAIRLOCK_TEST_LIBEVENT (test_async_libevent).  Hundreds of handles on
 * one loop in one thread, cancel and free while waiting, free from a
 * callback, and a loop that ends by itself once the handles are done. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "support.h"

#if defined(FAIRLOCK_TEST_LIBUV)
#include "fairlock/libuv.h"
#elif defined(FAIRLOCK_TEST_LIBEVENT)
#include "fairlock/libevent.h"
#else
#error "build with FAIRLOCK_TEST_LIBUV or FAIRLOCK_TEST_LIBEVENT"
#endif

#define DEADLINE_MS 60000
#define LONG_TIMEOUT_MS 60000

/* ---------------------------------------------------------------------------
 * The loop, whichever it is
 * ------------------------------------------------------------------------- */

#if defined(FAIRLOCK_TEST_LIBUV)
static uv_loop_t loop;
static void loop_init(void) { CHECK_INT(uv_loop_init(&loop), ==, 0); }
static void attach(fairlock *lock) {
    CHECK_INT(fairlock_libuv_attach(lock, &loop), ==, 0);
}
/* Runs until nothing is active; returns once the handles are idle. */
static void loop_drain(void) { uv_run(&loop, UV_RUN_DEFAULT); }
static void tick(uv_timer_t *t) { (void)t; }
/* One turn, never blocking for long: a ticking timer bounds it. */
static void loop_turn(void) {
    uv_timer_t ticker;
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, tick, 20, 0);
    uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* finishes the close */
}
static void loop_end(void) {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), ==, 0); /* nothing left open */
}
#else
static struct event_base *base;
static void loop_init(void) { CHECK((base = event_base_new()) != NULL); }
static void attach(fairlock *lock) {
    CHECK_INT(fairlock_libevent_attach(lock, base), ==, 0);
}
static void loop_drain(void) { event_base_dispatch(base); }
static void tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
}
static void loop_turn(void) {
    struct timeval tv = {0, 20000};
    struct event *ticker = evtimer_new(base, tick, NULL);
    CHECK(ticker != NULL);
    evtimer_add(ticker, &tv);
    event_base_loop(base, EVLOOP_ONCE);
    event_free(ticker);
}
static void loop_end(void) {
    /* Nothing is pending: dispatch returns at once. */
    CHECK_INT(event_base_dispatch(base), ==, 1);
    event_base_free(base);
}
#endif

static void turn_until(const int *flag) {
    int64_t end = test_now_ns() + (int64_t)DEADLINE_MS * 1000000;
    while (!*flag) {
        CHECK(test_now_ns() < end);
        loop_turn();
    }
}

typedef struct seen {
    int calls;
    int code;
} seen;

static void record(fairlock *lock, int code, void *arg) {
    (void)lock;
    seen *s = arg;
    s->calls++;
    s->code = code;
}

static void status_seen(fairlock *lock, int code, fairlock_status *st,
                        void *arg) {
    fairlock_status_free(st);
    record(lock, code, arg);
}

static char *name_copy(const char *prefix) {
    char *name = strdup(test_name(prefix));
    CHECK(name != NULL);
    return name;
}

/* ---------------------------------------------------------------------------
 * Many handles on one loop
 * ------------------------------------------------------------------------- */

#define MANY_HANDLES 500
#define MANY_NAMES 100
#define MANY_ROUNDS 4

typedef struct worker {
    int name;
    int rounds;
} worker;

static int holders[MANY_NAMES];
static int overlaps, grants, finished, failures;

static void released(fairlock *lock, int code, void *arg);

static void acquired(fairlock *lock, int code, void *arg) {
    worker *w = arg;
    if (code != FAIRLOCK_OK) {
        fprintf(stderr, "acquire: %s: %s\n", fairlock_code_name(code),
                fairlock_errmsg(lock));
        failures++;
        finished++;
        fairlock_free(lock);
        return;
    }
    if (++holders[w->name] > 1)
        overlaps++;
    grants++;
    holders[w->name]--;
    CHECK_RC(lock, fairlock_release_start(lock, released, w), FAIRLOCK_OK);
}

static void released(fairlock *lock, int code, void *arg) {
    worker *w = arg;
    if (code != FAIRLOCK_OK) {
        fprintf(stderr, "release: %s: %s\n", fairlock_code_name(code),
                fairlock_errmsg(lock));
        failures++;
    }
    if (++w->rounds == MANY_ROUNDS || code != FAIRLOCK_OK) {
        finished++;
        fairlock_free(lock); /* from its own callback */
        return;
    }
    CHECK_RC(lock, fairlock_acquire_start(lock, FAIRLOCK_DEFAULT, acquired, w),
             FAIRLOCK_OK);
}

/* Hundreds of connections (and TLS handshakes) at once, maybe beside
 * another test doing the same under a sanitizer: a generous I/O timeout,
 * which only a real failure reaches. */
static fairlock *many_lock(const char *name) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = LONG_TIMEOUT_MS;
    opts.io_timeout_ms = 30000;
    return test_lock_opts(&opts);
}

static void many_handles_one_loop(void) {
    char *base_name = name_copy("loop_many");
    static worker workers[MANY_HANDLES];
    char name[160];
    loop_init();
    for (int i = 0; i < MANY_HANDLES; i++) {
        workers[i].name = i % MANY_NAMES;
        snprintf(name, sizeof name, "%s:%d", base_name, workers[i].name);
        fairlock *lock = many_lock(name);
        attach(lock);
        CHECK_RC(lock,
                 fairlock_acquire_start(lock, FAIRLOCK_DEFAULT, acquired,
                                        &workers[i]),
                 FAIRLOCK_OK);
    }
    /* The loop ends by itself: every handle done and freed. */
    loop_drain();
    CHECK_INT(finished, ==, MANY_HANDLES);
    CHECK_INT(failures, ==, 0);
    CHECK_INT(overlaps, ==, 0);
    CHECK_INT(grants, ==, MANY_HANDLES * MANY_ROUNDS);
    loop_end();
    redisContext *c = test_redis();
    for (int i = 0; i < MANY_NAMES; i++) {
        snprintf(name, sizeof name, "%s:%d", base_name, i);
        CHECK_INT(test_keys_of(c, name), ==, 0);
    }
    redisFree(c);
    free(base_name);
}

/* ---------------------------------------------------------------------------
 * Cancel and free while waiting
 * ------------------------------------------------------------------------- */

static void cancel_and_free_while_waiting(void) {
    char *name = name_copy("loop_cancel");
    redisContext *c = test_redis();
    loop_init();
    fairlock *holder = test_lock(name, LONG_TIMEOUT_MS);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    fairlock *a = test_lock(name, LONG_TIMEOUT_MS);
    fairlock *b = test_lock(name, LONG_TIMEOUT_MS);
    attach(a);
    attach(b);
    seen sa = {0, -1}, sb = {0, -1};
    CHECK_RC(a, fairlock_acquire_start(a, FAIRLOCK_DEFAULT, record, &sa),
             FAIRLOCK_OK);
    CHECK_RC(b, fairlock_acquire_start(b, FAIRLOCK_DEFAULT, record, &sb),
             FAIRLOCK_OK);
    int64_t end = test_now_ns() + (int64_t)DEADLINE_MS * 1000000;
    while (test_int(c, "ZCARD %s:queue", name) < 2) {
        CHECK(test_now_ns() < end);
        loop_turn();
    }
    /* a is cancelled (its callback comes from the loop), b is freed (no
     * callback ever, and the adapter lets go of it). */
    CHECK_RC(a, fairlock_async_cancel(a), FAIRLOCK_OK);
    fairlock_free(b);
    turn_until(&sa.calls);
    CHECK_RC(a, sa.code, FAIRLOCK_INTERRUPTED);
    CHECK_INT(sb.calls, ==, 0);
    CHECK_INT(test_int(c, "ZCARD %s:queue", name), ==, 0);
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(a);
    fairlock_free(holder);
    loop_end();
    CHECK_INT(sb.calls, ==, 0);
    redisFree(c);
    free(name);
}

/* ---------------------------------------------------------------------------
 * A blocking call that reconnects between operations
 * ------------------------------------------------------------------------- */

/* The blocking call closes the socket the loop was told of and makes a
 * new one, often with the same fd number; the next operation must still
 * be watched on the new socket (the loop's registration of the old one
 * went with it) and complete. */
static void blocking_reconnect_between_operations(void) {
    test_server srv;
    memset(&srv, 0, sizeof srv);
    test_server_start(&srv, 0, NULL);
    redisContext *c = test_server_redis(&srv);
    loop_init();
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "fltest:loop_reconnect";
    opts.url = srv.url;
    opts.timeout_ms = LONG_TIMEOUT_MS;
    opts.io_timeout_ms = 5000;
    fairlock *lock = test_lock_opts(&opts);
    attach(lock);
    seen s = {0, -1};
    CHECK_RC(lock, fairlock_acquire_start(lock, FAIRLOCK_DEFAULT, record, &s),
             FAIRLOCK_OK);
    turn_until(&s.calls);
    CHECK_RC(lock, s.code, FAIRLOCK_OK);
    test_int(c, "CLIENT KILL TYPE normal SKIPME yes");
    int owned = 0, rc = fairlock_owned(lock, &owned);
    if (rc == FAIRLOCK_REDIS) /* found the connection dead */
        rc = fairlock_owned(lock, &owned);
    CHECK_RC(lock, rc, FAIRLOCK_OK);
    CHECK_INT(owned, ==, 1);
    s.calls = 0;
    CHECK_RC(lock, fairlock_status_start(lock, 10, status_seen, &s),
             FAIRLOCK_OK);
    turn_until(&s.calls);
    CHECK_RC(lock, s.code, FAIRLOCK_OK);
    s.calls = 0;
    CHECK_RC(lock, fairlock_release_start(lock, record, &s), FAIRLOCK_OK);
    turn_until(&s.calls);
    CHECK_RC(lock, s.code, FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, opts.name), ==, 0);
    fairlock_free(lock);
    loop_end();
    redisFree(c);
    test_server_remove(&srv);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    check_select(argc, argv);
    RUN_TEST(many_handles_one_loop);
    RUN_TEST(cancel_and_free_while_waiting);
    RUN_TEST(blocking_reconnect_between_operations);
    return check_done();
}
