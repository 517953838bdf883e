/* async_bench.c -- W7: one thread driving N lock handles on a libuv loop,
 * against N threads doing the same with the blocking API.
 *
 *   async_bench URL N SECONDS async|blocking
 *
 * Each of the N handles has a lock name of its own and loops acquire ->
 * release for SECONDS; the program prints one JSON line: acquisitions,
 * acquisitions per second, and the client's CPU time (user + system, all
 * threads, getrusage) per acquisition.  bench/run runs it for N = 1, 100
 * and 1000 (its W7 rows); it can also run alone against any server. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <fairlock.h>
#include <fairlock/libuv.h>

static const char *url;
static int64_t end_ms;
static long long done_total;
static int failed;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static fairlock *make(int i) {
    char name[128];
    snprintf(name, sizeof name, "bench:async:%d:%d", (int)getpid(), i);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = url;
    opts.timeout_ms = 10000;
    fairlock *lock = NULL;
    if (fairlock_create(&opts, &lock) != FAIRLOCK_OK) {
        fprintf(stderr, "fairlock_create: %s\n", fairlock_errmsg(lock));
        exit(2);
    }
    return lock;
}

/* ---- async: one libuv loop ---- */

static void acquired(fairlock *lock, int code, void *arg);

static void released(fairlock *lock, int code, void *arg) {
    if (code != FAIRLOCK_OK) {
        fprintf(stderr, "release: %s\n", fairlock_errmsg(lock));
        failed = 1;
    }
    done_total++;
    if (now_ms() >= end_ms || failed) {
        fairlock_free(lock);
        return;
    }
    if (fairlock_acquire_start(lock, FAIRLOCK_DEFAULT, acquired, arg) !=
        FAIRLOCK_OK) {
        failed = 1;
        fairlock_free(lock);
    }
}

static void acquired(fairlock *lock, int code, void *arg) {
    if (code != FAIRLOCK_OK ||
        fairlock_release_start(lock, released, arg) != FAIRLOCK_OK) {
        fprintf(stderr, "acquire: %s\n", fairlock_errmsg(lock));
        failed = 1;
        fairlock_free(lock);
    }
}

static void run_async(int n) {
    uv_loop_t *loop = uv_default_loop();
    for (int i = 0; i < n; i++) {
        fairlock *lock = make(i);
        if (fairlock_libuv_attach(lock, loop) != 0 ||
            fairlock_acquire_start(lock, FAIRLOCK_DEFAULT, acquired, NULL) !=
                FAIRLOCK_OK) {
            fprintf(stderr, "start: %s\n", fairlock_errmsg(lock));
            exit(2);
        }
    }
    uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- blocking: a thread per handle ---- */

static void *blocking_thread(void *arg) {
    fairlock *lock = arg;
    long long n = 0;
    while (now_ms() < end_ms) {
        if (fairlock_acquire(lock) != FAIRLOCK_OK ||
            fairlock_release(lock) != FAIRLOCK_OK) {
            fprintf(stderr, "blocking: %s\n", fairlock_errmsg(lock));
            __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
            break;
        }
        n++;
    }
    __atomic_fetch_add(&done_total, n, __ATOMIC_RELAXED);
    return NULL;
}

static void run_blocking(int n) {
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    fairlock **locks = calloc((size_t)n, sizeof *locks);
    if (threads == NULL || locks == NULL)
        exit(2);
    for (int i = 0; i < n; i++) {
        locks[i] = make(i);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&threads[i], &attr, blocking_thread, locks[i]) !=
            0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(2);
        }
        pthread_attr_destroy(&attr);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
        fairlock_free(locks[i]);
    }
    free(threads);
    free(locks);
}

int main(int argc, char **argv) {
    if (argc != 5 ||
        (strcmp(argv[4], "async") && strcmp(argv[4], "blocking"))) {
        fprintf(stderr, "usage: async_bench URL N SECONDS async|blocking\n");
        return 2;
    }
    url = argv[1];
    int n = atoi(argv[2]);
    double seconds = atof(argv[3]);
    if (n < 1 || seconds <= 0) {
        fprintf(stderr, "async_bench: N >= 1 and SECONDS > 0\n");
        return 2;
    }
    int async = strcmp(argv[4], "async") == 0;
    double cpu0 = cpu_seconds();
    int64_t t0 = now_ms();
    end_ms = t0 + (int64_t)(seconds * 1000);
    if (async)
        run_async(n);
    else
        run_blocking(n);
    double wall = (double)(now_ms() - t0) / 1000;
    double cpu = cpu_seconds() - cpu0;
    printf("{\"mode\": \"%s\", \"n\": %d, \"seconds\": %.3f, "
           "\"acquisitions\": %lld, \"acq_per_s\": %.1f, "
           "\"cpu_us_per_acq\": %.2f, \"failed\": %s}\n",
           async ? "async" : "blocking", n, wall, done_total, done_total / wall,
           done_total ? cpu * 1e6 / done_total : 0.0,
           failed ? "true" : "false");
    return failed;
}
