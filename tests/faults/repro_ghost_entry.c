/* repro_ghost_entry.c -- minimal reproduction of bug B3: when the reply to
 * the first acquire.lua call of a request is lost, the request's queue
 * entry survives its "resolution", and the lock is later handed to that
 * ghost and sits unused for the whole lease.
 *
 *   repro_ghost_entry unix:///path/to/redis.sock
 *
 * The server must have DEBUG enabled (--enable-debug-command local): a
 * DEBUG SLEEP makes the client's command time out while the server still
 * has it, and runs it afterwards, as a lost reply would.
 * Exit status 1: the bug reproduced; 0: it did not.
 *
 * Why (src/acquire.c fairlock_acquire_ex / run_attempt, src/lease.c
 * fairlock__request_resolve, src/lua/cancel.lua): a new request starts with
 * lock->ticket = 0, and the ticket is learnt only from acquire.lua's reply.  If
 * that reply is lost, the request is PENDING with ticket 0, and the cancel.lua
 * that resolves it removes a queue entry only "if ticket > 0": the entry the
 * server made stays, fresh for the whole liveness window.  When it reaches the
 * head, a release hands the lock to it (docs/protocol.md promises the opposite:
 * cancel.lua "removes an entry if there is one"). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"

#define LEASE_MS 3000

static const char *url;
static char name[64];

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static fairlock *make(int64_t io_timeout_ms) {
    fairlock_options o;
    fairlock_options_init(&o);
    o.name = name;
    o.url = url;
    o.timeout_ms = 30000;
    o.ttl_ms = LEASE_MS;
    o.io_timeout_ms = io_timeout_ms;
    fairlock *lock = NULL;
    if (fairlock_create(&o, &lock) != FAIRLOCK_OK)
        exit(2);
    return lock;
}

static void *debug_sleep(void *arg) {
    redisContext *c = arg;
    redisReply *r = redisCommand(c, "DEBUG SLEEP 0.5");
    freeReplyObject(r);
    return NULL;
}

static long long zcard(redisContext *c) {
    redisReply *r = redisCommand(c, "ZCARD %s:queue", name);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

int main(int argc, char **argv) {
    if (argc != 2 || strncmp(argv[1], "unix://", 7) != 0) {
        fprintf(stderr, "usage: %s unix:///path/to/redis.sock\n", argv[0]);
        return 2;
    }
    url = argv[1];
    snprintf(name, sizeof name, "repro-b3:%d", (int)getpid());
    redisContext *c = redisConnectUnix(argv[1] + 7);
    redisContext *sleeper = redisConnectUnix(argv[1] + 7);
    if (c == NULL || c->err || sleeper == NULL || sleeper->err)
        return 2;

    fairlock *holder = make(5000);
    if (fairlock_acquire(holder) != FAIRLOCK_OK)
        return 2;
    /* A waiter queues first, so that acquire.lua is in the script cache
     * and the victim's first call is one EVALSHA. */
    fairlock *victim = make(200);
    if (fairlock_acquire_ex(victim, 0, 0, FAIRLOCK_DEFAULT) != FAIRLOCK_TIMEOUT)
        return 2;

    /* 1. The server stalls for 0.5 s; the victim's acquire times out after
     *    200 ms, and the server runs its acquire.lua when it wakes up. */
    pthread_t t;
    pthread_create(&t, NULL, debug_sleep, sleeper);
    sleep_ms(50);
    int rc = fairlock_acquire(victim);
    int state = fairlock_state(victim);
    pthread_join(t, NULL);
    printf("victim's acquire: %s, state %s, queue length now %lld\n",
           fairlock_code_name(rc),
           state == FAIRLOCK_STATE_PENDING ? "PENDING" : "other", zcard(c));

    /* 2. The unknown outcome is resolved, as the docs say: by freeing the
     *    handle (the next call would do the same). */
    fairlock_free(victim);
    long long ghosts = zcard(c);
    printf("after fairlock_free of the victim: %lld entr%s in the queue\n",
           ghosts, ghosts == 1 ? "y" : "ies");

    /* 3. The holder releases, handing the lock to the head of the queue;
     *    a new client asks right after and times how long it waits. */
    fairlock *next = make(5000);
    fairlock_release(holder);
    long long released = now_ms();
    rc = fairlock_acquire(next);
    long long granted = now_ms();
    printf("holder released; the next client got the lock %lld ms later "
           "(%s)\n",
           granted - released, fairlock_code_name(rc));
    fairlock_release(next);
    fairlock_free(next);
    fairlock_free(holder);
    redisFree(c);
    redisFree(sleeper);
    int reproduced = ghosts > 0 && granted - released > LEASE_MS / 2;
    printf("%s\n", reproduced ? "B3 REPRODUCED: a resolved request left its "
                                "queue entry, which got the lock"
                              : "B3 not reproduced");
    return reproduced ? 1 : 0;
}
