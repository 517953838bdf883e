/* demo.c -- first come, first served between processes, and fairlock_with().
 *
 *   demo [URL]     URL defaults to $FAIRLOCK_URL, then $REDIS_URL, then
 *                  redis://127.0.0.1:6379/0
 *
 * The parent takes the lock and starts WORKERS processes one after the
 * other.  Each asks for the same lock ROUNDS times, so while the parent
 * holds it they line up in the order they asked.  When the parent lets go,
 * the lock goes down the queue; a worker that has had its turn asks again
 * and goes to the back, so the lock goes round 1 2 3 4 1 2 3 4 ...  The
 * tickets (places in the queue) come out in increasing order: that is what
 * FIFO means here.  (Numbering starts again at 1 whenever the queue runs
 * empty.)  The workers log their grants in shared memory, which the lock
 * itself protects.  Last, fairlock_with() runs a function under the lock.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* MAP_ANONYMOUS, nanosleep under -std=c11 */
#endif
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fairlock.h>

#define LOCK_NAME "example:demo"
#define WORKERS 4
#define ROUNDS 3
#define LINE_UP_MS 50 /* between two workers' first requests */
#define WORK_MS 50    /* how long a worker holds the lock */

/* Written by whoever holds the lock. */
struct grant_log {
    atomic_int asked;  /* workers that have asked for the lock */
    atomic_int inside; /* holders right now: must never exceed 1 */
    int overlaps;
    int count;
    struct {
        int worker;
        int64_t ticket;
    } grants[WORKERS * ROUNDS];
};

static const char *url; /* NULL: the library reads the environment */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A handle on the demo's lock.  Prints why and returns NULL on failure. */
static fairlock *open_lock(const char *who) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = LOCK_NAME;
    opts.url = url;
    opts.timeout_ms = 10000; /* give up after 10 s in the queue */
    opts.ttl_ms = 5000;      /* a holder that dies frees it within 5 s */
    fairlock *lock = NULL;
    if (fairlock_create(&opts, &lock) != FAIRLOCK_OK) {
        fprintf(stderr, "%s: fairlock_create: %s\n", who,
                fairlock_errmsg(lock));
        fairlock_free(lock);
        return NULL;
    }
    return lock;
}

static int worker(int id, struct grant_log *log) {
    char who[32];
    snprintf(who, sizeof who, "worker %d", id);
    fairlock *lock = open_lock(who);
    if (lock == NULL)
        return 1;
    printf("worker %d asks for the lock\n", id);
    fflush(stdout);
    atomic_fetch_add(&log->asked, 1);
    for (int round = 0; round < ROUNDS; round++) {
        int rc = fairlock_acquire(lock);
        if (rc != FAIRLOCK_OK) {
            fprintf(stderr, "%s: fairlock_acquire: %s: %s\n", who,
                    fairlock_code_name(rc), fairlock_errmsg(lock));
            fairlock_free(lock);
            return 1;
        }
        /* The critical section. */
        if (atomic_fetch_add(&log->inside, 1) != 0)
            log->overlaps++;
        int64_t ticket = fairlock_ticket(lock);
        log->grants[log->count].worker = id;
        log->grants[log->count].ticket = ticket;
        log->count++;
        printf("worker %d got ticket %" PRId64 "\n", id, ticket);
        fflush(stdout);
        sleep_ms(WORK_MS);
        atomic_fetch_sub(&log->inside, 1);

        /* Hands the lock to the head of the queue in the same step; the
         * next acquire joins the queue at the back. */
        rc = fairlock_release(lock);
        if (rc != FAIRLOCK_OK) {
            fprintf(stderr, "%s: fairlock_release: %s: %s\n", who,
                    fairlock_code_name(rc), fairlock_errmsg(lock));
            fairlock_free(lock);
            return 1;
        }
    }
    fairlock_free(lock);
    return 0;
}

/* Checks what the workers logged: every grant made, no two holders at
 * once, and each ticket higher than the one before (or 1: a new queue). */
static int check_log(const struct grant_log *log) {
    int ok = log->count == WORKERS * ROUNDS && log->overlaps == 0;
    printf("order of grants:");
    for (int i = 0; i < log->count; i++) {
        int64_t ticket = log->grants[i].ticket;
        printf(" %d", log->grants[i].worker);
        if (i > 0 && ticket <= log->grants[i - 1].ticket && ticket != 1)
            ok = 0;
    }
    printf("\n");
    if (ok)
        printf("each ticket (place in the queue) was above the one before: "
               "the lock was handed over in request order\n");
    else
        printf("FAILED: %d grants of %d, %d overlaps, or tickets out of "
               "order\n",
               log->count, WORKERS * ROUNDS, log->overlaps);
    return ok;
}

/* ---- The scoped form ---------------------------------------------------- */

static int body(void *arg) {
    fairlock *lock = arg;
    printf("fairlock_with: the body runs under the lock (ticket %" PRId64 ")\n",
           fairlock_ticket(lock));
    return 42;
}

static int scoped(fairlock *lock) {
    int result = 0;
    /* Acquire, run body(arg), release: the return value is the acquire's
     * error, or the release's result once body has run. */
    int rc = fairlock_with(lock, body, lock, &result);
    if (rc != FAIRLOCK_OK) {
        fprintf(stderr, "fairlock_with: %s: %s\n", fairlock_code_name(rc),
                fairlock_errmsg(lock));
        return 0;
    }
    printf("fairlock_with: released; the body returned %d\n", result);
    return 1;
}

int main(int argc, char **argv) {
    url = argc > 1 ? argv[1] : NULL;
    struct grant_log *log = mmap(NULL, sizeof *log, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (log == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    fairlock *lock = open_lock("parent");
    if (lock == NULL)
        return 1;

    printf("fairlock %s demo: %d workers take lock \"%s\" %d times each\n",
           fairlock_version(), WORKERS, LOCK_NAME, ROUNDS);
    int rc = fairlock_acquire(lock);
    if (rc != FAIRLOCK_OK) {
        fprintf(stderr, "parent: fairlock_acquire: %s: %s\n",
                fairlock_code_name(rc), fairlock_errmsg(lock));
        fairlock_free(lock);
        return 1;
    }
    printf("parent holds the lock while the workers line up\n");
    fflush(stdout); /* or the children would print it again */

    pid_t pids[WORKERS];
    int started = 0;
    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(worker(i + 1, log)); /* never touches the parent's handle */
        if (pids[i] < 0) {
            perror("fork");
            break;
        }
        started++;
        /* Wait until this worker has asked, and a little longer for its
         * request to reach Redis, so the next one asks after it. */
        for (int ms = 0; atomic_load(&log->asked) < started && ms < 5000; ms++)
            sleep_ms(1);
        sleep_ms(LINE_UP_MS);
    }

    printf("parent releases: the lock goes down the queue\n");
    fflush(stdout);
    rc = fairlock_release(lock);
    if (rc != FAIRLOCK_OK)
        fprintf(stderr, "parent: fairlock_release: %s: %s\n",
                fairlock_code_name(rc), fairlock_errmsg(lock));

    int ok = rc == FAIRLOCK_OK && started == WORKERS;
    for (int i = 0; i < started; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "worker %d failed\n", i + 1);
            ok = 0;
        }
    }
    ok = check_log(log) && ok;
    ok = scoped(lock) && ok;

    fairlock_free(lock);
    munmap(log, sizeof *log);
    return ok ? 0 : 1;
}
