/* repro_stale_handoff.c -- minimal reproduction of bug B1: a waiter that
 * was paused while the lock was handed to it, for longer than its lease but
 * shorter than its liveness window, returns from fairlock_acquire() with
 * FAIRLOCK_OK and a fresh-looking validity bound while another client holds
 * the lock.
 *
 *   repro_stale_handoff unix:///path/to/redis.sock
 *
 * Exit status 1: the bug reproduced (two holders); 0: it did not.
 *
 * Why (src/lua/common.lua grant_to_head, src/lua/acquire.lua, src/acquire.c
 * acquire_loop/take_grant): a hand-off sets NAME with PX = the waiter's
 * lease but gives NAME:wake:TOKEN a TTL of the waiter's liveness window,
 * so with lease < liveness the message outlives the grant.  When the
 * paused waiter runs again its next acquire.lua finds its entry gone and
 * re-queues it without deleting the stale message; the BLPOP that follows
 * pops it, and take_grant() counts the validity from that fresh attempt,
 * so the bound looks good and no confirming extend is sent. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"

static const char *url;

typedef struct outcome {
    int done;
    int rc;
    int state;
    long long valid_ms_left; /* fairlock_valid_until_ms() - now */
    int owned;               /* fairlock_owned() right after */
    char token[FAIRLOCK_TOKEN_MAX];
} outcome;

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

static fairlock *make(const char *name, int64_t ttl, int with_interrupt);

/* The interrupt callback only makes the waiter's BLPOPs short (10 ms), so
 * that no BLPOP is blocked on the server when the hand-off is pushed. */
static int never(void *arg) {
    (void)arg;
    return 0;
}

static fairlock *make(const char *name, int64_t ttl, int with_interrupt) {
    fairlock_options o;
    fairlock_options_init(&o);
    o.name = name;
    o.url = url;
    o.timeout_ms = 30000; /* liveness window 30 s, heartbeat 10 s */
    o.ttl_ms = ttl;
    if (with_interrupt) {
        o.interrupt = never;
        o.interrupt_check_ms = 10;
    }
    fairlock *lock = NULL;
    if (fairlock_create(&o, &lock) != FAIRLOCK_OK) {
        fprintf(stderr, "fairlock_create failed\n");
        exit(2);
    }
    return lock;
}

static long long redis_int(redisContext *c, const char *fmt, const char *a) {
    redisReply *r = redisCommand(c, fmt, a);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static int holder_is(redisContext *c, const char *name, const char *token) {
    redisReply *r = redisCommand(c, "GET %s", name);
    int same = r && r->type == REDIS_REPLY_STRING && token &&
               strcmp(r->str, token) == 0;
    freeReplyObject(r);
    return same;
}

static int attempt(redisContext *c, int round) {
    char name[64];
    snprintf(name, sizeof name, "repro-b1:%d:%d", (int)getpid(), round);
    outcome *out = mmap(NULL, sizeof *out, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(out, 0, sizeof *out);

    fairlock *holder = make(name, 60000, 0);
    if (fairlock_acquire(holder) != FAIRLOCK_OK)
        exit(2);

    /* The waiter: lease 1 s, liveness window 30 s. */
    pid_t w = fork();
    if (w == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fairlock *lock = make(name, 1000, 1);
        out->rc = fairlock_acquire(lock);
        out->state = fairlock_state(lock);
        out->valid_ms_left = fairlock_valid_until_ms(lock) - now_ms();
        fairlock_owned(lock, &out->owned);
        snprintf(out->token, sizeof out->token, "%s",
                 fairlock_token(lock) ? fairlock_token(lock) : "");
        __atomic_store_n(&out->done, 1, __ATOMIC_RELEASE);
        sleep_ms(100000); /* hold on until killed */
        _exit(0);
    }
    char queue[96];
    snprintf(queue, sizeof queue, "%s:queue", name);
    while (redis_int(c, "ZCARD %s", queue) != 1)
        sleep_ms(5);
    sleep_ms(200);

    /* 1. The waiter is paused; its last short BLPOP times out meanwhile. */
    kill(w, SIGSTOP);
    sleep_ms(100);
    /* 2. The holder releases: the lock is handed to the paused waiter,
     *    with PX 1000; its wake list lives 30 s. */
    fairlock_release(holder);
    /* 3. The hand-off lease runs out; a third client takes the lock. */
    sleep_ms(1300);
    fairlock *third = make(name, 10000, 0);
    int third_rc = fairlock_acquire(third);
    /* 4. The waiter runs again. */
    kill(w, SIGCONT);
    /* With the bug the waiter returns at once; without it, it waits. */
    long long end = now_ms() + 2000;
    while (!__atomic_load_n(&out->done, __ATOMIC_ACQUIRE) && now_ms() < end)
        sleep_ms(5);

    int two_holders = third_rc == FAIRLOCK_OK && out->done &&
                      out->rc == FAIRLOCK_OK &&
                      holder_is(c, name, fairlock_token(third));
    printf("round %d: third client %s and holds the key: %s; paused waiter's "
           "acquire returned %s, state %d, validity %lld ms ahead, "
           "fairlock_owned %d\n",
           round, fairlock_code_name(third_rc),
           holder_is(c, name, fairlock_token(third)) ? "yes" : "no",
           out->done ? fairlock_code_name(out->rc) : "(still waiting)",
           out->state, out->valid_ms_left, out->owned);
    kill(w, SIGKILL);
    waitpid(w, NULL, 0);
    fairlock_release(third);
    fairlock_free(third);
    fairlock_free(holder);
    munmap(out, sizeof *out);
    return two_holders;
}

int main(int argc, char **argv) {
    if (argc != 2 || strncmp(argv[1], "unix://", 7) != 0) {
        fprintf(stderr, "usage: %s unix:///path/to/redis.sock\n", argv[0]);
        return 2;
    }
    url = argv[1];
    redisContext *c = redisConnectUnix(argv[1] + 7);
    if (c == NULL || c->err)
        return 2;
    /* The pause can land inside a script call, which hides the bug; three
     * rounds make the reproduction dependable. */
    int reproduced = 0;
    for (int round = 1; round <= 3 && !reproduced; round++)
        reproduced = attempt(c, round);
    printf("%s\n", reproduced
                       ? "B1 REPRODUCED: two clients hold the lock at once"
                       : "B1 not reproduced");
    redisFree(c);
    return reproduced ? 1 : 0;
}
