/* fault_client.c -- one process of the fault suite: acquire, update a shared
 * counter without atomicity, release, and log every step to a history file.
 *
 * The histories are the evidence the checker (checker.py) works from, so
 * every line is written with one write(2) on an O_APPEND descriptor: a
 * SIGKILL can cut the story short but never leaves half a line, and lines
 * of the threads of one process never interleave.  Times are
 * CLOCK_MONOTONIC in ns, which is system-wide on Linux, so the histories of
 * all processes (and the driver's fault log) share one time line.
 *
 * A history line reads "T PID TID EVENT key=value ...", with msg= (free
 * text) always last.  Events:
 *   start     the options
 *   ask       before fairlock_acquire()
 *   queued    first time the interrupt probe sees us waiting: an upper
 *             bound on when our queue entry was made (FIFO order is judged
 *             from it), with our token so the driver can find our entry
 *   grant     acquire returned FAIRLOCK_OK: ticket, fence, token, validity
 *   verify    the lock key (a semaphore's or readers-writer lock's
 *             NAME:holders) read on a direct connection right after a grant
 *   read / write-sent / write / skip      the unfenced counter update
 *   fclaim / fwrite                       the fenced resource
 *   release-call  before fairlock_release(), with the best validity seen
 *   release   its result (retried while the outcome is unknown)
 *   timeout / error   acquire failed; error carries the handle's state
 *             and, while PENDING, the token of the unresolved request
 *   end       the loop finished (a history without it was killed)
 *
 * The fenced resource is a check-and-set without Lua: WATCH the highest
 * fence seen, refuse a lower one, else MULTI/SET/EXEC.  A holder claims it
 * right after its grant, so a holder that was paused past its lease finds
 * a higher fence there when it wakes up and its write is refused. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"

/* Retries of a release whose outcome is unknown (FAIRLOCK_REDIS): each one
 * first resolves the pending state, so a few are enough. */
#define RELEASE_TRIES 20
#define RELEASE_BACKOFF_MS 100
/* Pause after a failed acquire, so that a dead server is not hammered. */
#define ERROR_BACKOFF_MS 50
/* The hold is slept in slices this long, to track the validity bound while
 * a renewal thread moves it. */
#define HOLD_SLICE_MS 10
#define LINE_MAX_BYTES 1024

typedef struct config {
    const char *history;
    const char *name;
    const char *url;
    const char *data_url;   /* the counter and fenced resource */
    const char *direct_url; /* the lock server without a proxy, for verify */
    const char *counter;
    const char *fenced;
    int fifo;
    int renew;
    int fencing;
    int naive;  /* write even when the validity bound has passed */
    int verify; /* read the lock key after each grant */
    int threads;
    int hold_signal;  /* hold the first grant until SIGUSR1 */
    int retry_errors; /* an acquire that fails with an error does not use
                         up an iteration (the flood's connect storms) */
    int64_t permits;  /* > 0: a semaphore of this many permits */
    int rw_mode;      /* 's' or 'x': a readers-writer lock, else 0 */
    int64_t timeout_ms, ttl_ms, stale_ms, io_ms, check_ms, probe_ms;
    int64_t hold_min_ms, hold_max_ms, gap_min_ms, gap_max_ms;
    long iterations;
    int64_t duration_ms;
    unsigned seed;
} config;

typedef struct worker {
    const config *cfg;
    int tid;
    fairlock *lock;
    unsigned rng;
    long n;           /* current iteration */
    int queued_noted; /* "queued" logged for this acquire */
    pthread_t thread;
} worker;

static int history_fd = -1;
static int64_t end_at_ns; /* when no new iteration starts */
static volatile sig_atomic_t stop_requested, release_requested;

/* One data connection per process, shared by its threads: the lock makes
 * the critical sections exclusive anyway, and ten thousand waiters must
 * not need ten thousand more connections. */
static pthread_mutex_t data_mu = PTHREAD_MUTEX_INITIALIZER;
static redisContext *data_conn, *direct_conn;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int64_t ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

static void die(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void note(const struct worker *w, const char *event, const char *fmt,
                 ...) PRINTF_LIKE(3, 4);
static redisReply *command_on(redisContext **cp, const char *url,
                              int64_t timeout_ms, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fault_client: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* ---------------------------------------------------------------------------
 * History
 * ------------------------------------------------------------------------- */

/* Appends "T PID TID EVENT <fields>\n" in one write. */
static void note(const struct worker *w, const char *event, const char *fmt,
                 ...) {
    char line[LINE_MAX_BYTES];
    int n = snprintf(line, sizeof line, "%" PRId64 " %d %d %s ", now_ns(),
                     (int)getpid(), w != NULL ? w->tid : 0, event);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated: keep room for the newline */
    /* Messages must stay on one line. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t done = 0;
    while ((size_t)done < len) {
        ssize_t k = write(history_fd, line + done, len - (size_t)done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        done += k;
    }
}

/* ---------------------------------------------------------------------------
 * Direct Redis connections (counter, fenced resource, verification)
 * ------------------------------------------------------------------------- */

/* Connects to unix:///path or redis://host:port[/db] (no credentials: the
 * suite's servers have none). */
static redisContext *connect_url(const char *url, int64_t timeout_ms) {
    struct timeval tv = {(time_t)(timeout_ms / 1000),
                         (suseconds_t)(timeout_ms % 1000) * 1000};
    redisContext *c = NULL;
    if (strncmp(url, "unix://", 7) == 0) {
        c = redisConnectUnixWithTimeout(url + 7, tv);
    } else if (strncmp(url, "redis://", 8) == 0) {
        char host[256];
        int port = 6379;
        const char *hp = url + 8;
        const char *colon = strrchr(hp, ':');
        size_t hlen = colon ? (size_t)(colon - hp) : strcspn(hp, "/");
        if (hlen >= sizeof host)
            die("host too long in %s", url);
        memcpy(host, hp, hlen);
        host[hlen] = '\0';
        if (colon)
            port = atoi(colon + 1);
        c = redisConnectWithTimeout(host, port, tv);
    } else {
        die("unsupported data URL %s", url);
    }
    if (c == NULL)
        die("out of memory");
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* A command on a lazily (re)connected context; NULL on I/O failure, after
 * which the context is dropped so the next call reconnects. */
static redisReply *command_on(redisContext **cp, const char *url,
                              int64_t timeout_ms, const char *fmt, ...) {
    if (*cp == NULL)
        *cp = connect_url(url, timeout_ms);
    if (*cp == NULL)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(*cp, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        redisFree(*cp);
        *cp = NULL;
    }
    return r;
}

static long long reply_number(const redisReply *r) {
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    return 0;
}

/* Outcome of a fenced check-and-set. */
enum { FENCE_OK, FENCE_REJECTED, FENCE_ERROR };

/* Check-and-set on the fenced resource: refuses `fence` if a higher one has
 * been seen, else records it (and, when value >= 0, stores the value) in
 * one MULTI guarded by WATCH.  *highest gets the fence found there. */
static int fenced_cas(const config *cfg, int64_t fence, long long value,
                      long long *highest) {
    char fence_key[300], value_key[300];
    snprintf(fence_key, sizeof fence_key, "%s:fence", cfg->fenced);
    snprintf(value_key, sizeof value_key, "%s:value", cfg->fenced);
    *highest = -1;
    /* A concurrent claim makes EXEC fail; try again with what it wrote. */
    for (int attempt = 0; attempt < 50; attempt++) {
        redisReply *r = command_on(&data_conn, cfg->data_url, cfg->io_ms,
                                   "WATCH %s", fence_key);
        if (r == NULL)
            return FENCE_ERROR;
        freeReplyObject(r);
        r = redisCommand(data_conn, "GET %s", fence_key);
        if (r == NULL)
            goto io_error;
        *highest = reply_number(r);
        freeReplyObject(r);
        if (*highest > fence) {
            r = redisCommand(data_conn, "UNWATCH");
            if (r == NULL)
                goto io_error;
            freeReplyObject(r);
            return FENCE_REJECTED;
        }
        r = redisCommand(data_conn, "MULTI");
        if (r == NULL)
            goto io_error;
        freeReplyObject(r);
        r = redisCommand(data_conn, "SET %s %lld", fence_key, (long long)fence);
        if (r == NULL)
            goto io_error;
        freeReplyObject(r);
        if (value >= 0) {
            r = redisCommand(data_conn, "SET %s %lld", value_key, value);
            if (r == NULL)
                goto io_error;
            freeReplyObject(r);
        }
        r = redisCommand(data_conn, "EXEC");
        if (r == NULL)
            goto io_error;
        int done = r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);
        if (done)
            return FENCE_OK;
    }
    return FENCE_ERROR;
io_error:
    redisFree(data_conn);
    data_conn = NULL;
    return FENCE_ERROR;
}

/* ---------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------- */

static unsigned next_random(unsigned *state) {
    /* xorshift32: reproducible from the seed, no shared state. */
    unsigned x = *state ? *state : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static int64_t pick(worker *w, int64_t lo, int64_t hi) {
    if (hi <= lo)
        return lo;
    return lo + (int64_t)(next_random(&w->rng) % (unsigned)(hi - lo + 1));
}

static const char *state_name(int state) {
    switch (state) {
    case FAIRLOCK_STATE_IDLE:
        return "IDLE";
    case FAIRLOCK_STATE_HELD:
        return "HELD";
    case FAIRLOCK_STATE_LOST:
        return "LOST";
    case FAIRLOCK_STATE_PENDING:
        return "PENDING";
    }
    return "?";
}

/* Validity bound as ns on the shared clock; -1 for "no expiry". */
static int64_t validity_ns(fairlock *lock) {
    int64_t ms = fairlock_valid_until_ms(lock);
    return ms == INT64_MAX ? -1 : ms * 1000000;
}

/* Called by the library while acquire waits (every probe_ms): the first
 * call after our entry exists logs when we were surely queued. */
static int probe(void *arg) {
    worker *w = arg;
    if (!w->queued_noted) {
        int64_t rank = fairlock_rank(w->lock);
        const char *token = fairlock_token(w->lock);
        if (rank >= 0 && token != NULL) {
            note(w, "queued", "n=%ld rank=%" PRId64 " token=%s", w->n, rank,
                 token);
            w->queued_noted = 1;
        }
    }
    return 0;
}

static int keep_going(const worker *w) {
    const config *cfg = w->cfg;
    if (stop_requested)
        return 0;
    if (cfg->iterations > 0 && w->n >= cfg->iterations)
        return 0;
    if (cfg->duration_ms > 0 && now_ns() >= end_at_ns)
        return 0;
    return 1;
}

/* Sleeps through the hold and returns the best validity bound seen. */
static int64_t hold(worker *w, int64_t vu) {
    const config *cfg = w->cfg;
    if (cfg->hold_signal && w->n == 1) {
        while (!release_requested && !stop_requested)
            sleep_ms(HOLD_SLICE_MS);
        return vu;
    }
    int64_t until = now_ns() +
                    pick(w, cfg->hold_min_ms, cfg->hold_max_ms) * 1000000;
    for (;;) {
        int64_t v = validity_ns(w->lock);
        if (v == -1 || (vu != -1 && v > vu))
            vu = v;
        int64_t left = until - now_ns();
        if (left <= 0)
            return vu;
        sleep_ms(left / 1000000 < HOLD_SLICE_MS ? left / 1000000 + 1
                                                : HOLD_SLICE_MS);
    }
}

/* The critical section: verify, claim the fenced resource, read the
 * counter, hold, write it back, write the fenced value. */
static int64_t critical_section(worker *w, int64_t vu) {
    const config *cfg = w->cfg;
    int64_t fence = fairlock_fence(w->lock);
    pthread_mutex_lock(&data_mu);
    if (cfg->verify) {
        const char *token = fairlock_token(w->lock);
        /* A semaphore's or readers-writer lock's holders are members of
         * NAME:holders (the score is the end of the lease). */
        int many = cfg->permits > 0 || cfg->rw_mode;
        redisReply *r = many ? command_on(&direct_conn, cfg->direct_url,
                                          cfg->io_ms, "ZSCORE %s:holders %s",
                                          cfg->name, token ? token : "-")
                             : command_on(&direct_conn, cfg->direct_url,
                                          cfg->io_ms, "GET %s", cfg->name);
        if (r == NULL)
            note(w, "verify", "n=%ld ok=-1", w->n);
        else
            note(w, "verify", "n=%ld ok=%d", w->n,
                 r->type == REDIS_REPLY_STRING && token != NULL &&
                     (many || strcmp(r->str, token) == 0));
        freeReplyObject(r);
    }
    long long highest;
    if (cfg->fenced != NULL && fence > 0) {
        int rc = fenced_cas(cfg, fence, -1, &highest);
        note(w, "fclaim", "n=%ld fence=%" PRId64 " highest=%lld ok=%d", w->n,
             fence, highest,
             rc == FENCE_OK         ? 1
             : rc == FENCE_REJECTED ? 0
                                    : -1);
    }
    long long value = -1, fvalue = -1;
    if (cfg->counter != NULL) {
        redisReply *r = command_on(&data_conn, cfg->data_url, cfg->io_ms,
                                   "GET %s", cfg->counter);
        if (r != NULL && r->type != REDIS_REPLY_ERROR)
            value = reply_number(r);
        freeReplyObject(r);
        note(w, "read", "n=%ld v=%lld", w->n, value);
    }
    if (cfg->fenced != NULL && fence > 0) {
        char value_key[300];
        snprintf(value_key, sizeof value_key, "%s:value", cfg->fenced);
        redisReply *r = command_on(&data_conn, cfg->data_url, cfg->io_ms,
                                   "GET %s", value_key);
        if (r != NULL && r->type != REDIS_REPLY_ERROR)
            fvalue = reply_number(r);
        freeReplyObject(r);
    }
    pthread_mutex_unlock(&data_mu);

    vu = hold(w, vu);

    pthread_mutex_lock(&data_mu);
    if (value >= 0) {
        /* A careful holder stops touching the resource once its validity
         * bound has passed (docs/protocol.md); a naive one does not, which
         * is what the fencing scenario shows the damage of. */
        if (!cfg->naive && vu != -1 && now_ns() >= vu) {
            note(w, "skip", "n=%ld why=lease", w->n);
        } else {
            note(w, "write-sent", "n=%ld v=%lld", w->n, value + 1);
            redisReply *r = command_on(&data_conn, cfg->data_url, cfg->io_ms,
                                       "SET %s %lld", cfg->counter, value + 1);
            if (r != NULL && r->type == REDIS_REPLY_STATUS)
                note(w, "write", "n=%ld v=%lld", w->n, value + 1);
            else
                note(w, "write-failed", "n=%ld v=%lld", w->n, value + 1);
            freeReplyObject(r);
        }
    }
    if (fvalue >= 0) {
        int rc = fenced_cas(cfg, fence, fvalue + 1, &highest);
        note(w, "fwrite", "n=%ld fence=%" PRId64 " highest=%lld v=%lld ok=%d",
             w->n, fence, highest, fvalue + 1,
             rc == FENCE_OK         ? 1
             : rc == FENCE_REJECTED ? 0
                                    : -1);
    }
    pthread_mutex_unlock(&data_mu);
    return vu;
}

static void release_lock(worker *w, int64_t vu) {
    note(w, "release-call", "n=%ld vu=%" PRId64 " state=%s", w->n, vu,
         state_name(fairlock_state(w->lock)));
    for (int tries = 1;; tries++) {
        int64_t t0 = now_ns();
        int rc = fairlock_release(w->lock);
        const char *token = fairlock_token(w->lock);
        note(w, "release",
             "n=%ld rc=%s ms=%" PRId64 " state=%s token=%s msg=%s", w->n,
             fairlock_code_name(rc), (now_ns() - t0) / 1000000,
             state_name(fairlock_state(w->lock)), token ? token : "-",
             rc == FAIRLOCK_OK ? "" : fairlock_errmsg(w->lock));
        /* FAIRLOCK_REDIS leaves the outcome unknown and the token kept:
         * calling again resolves it. */
        if (rc != FAIRLOCK_REDIS || tries >= RELEASE_TRIES)
            return;
        sleep_ms(RELEASE_BACKOFF_MS);
    }
}

static void *run_worker(void *arg) {
    worker *w = arg;
    const config *cfg = w->cfg;
    /* A thousand threads that connect at the same instant overflow the
     * server's accept backlog: spread them over half a second. */
    if (cfg->threads > 1)
        sleep_ms((w->tid % 1000) / 2);
    while (keep_going(w)) {
        w->n++;
        w->queued_noted = 0;
        note(w, "ask", "n=%ld", w->n);
        int64_t t0 = now_ns();
        int rc = fairlock_acquire(w->lock);
        int64_t took_ms = (now_ns() - t0) / 1000000;
        if (rc == FAIRLOCK_OK) {
            int64_t vu = validity_ns(w->lock);
            note(w, "grant",
                 "n=%ld ticket=%" PRId64 " fence=%" PRId64 " permit=%" PRId64
                 " token=%s vu=%" PRId64 " ms=%" PRId64,
                 w->n, fairlock_ticket(w->lock), fairlock_fence(w->lock),
                 fairlock_permit(w->lock), fairlock_token(w->lock), vu,
                 took_ms);
            vu = critical_section(w, vu);
            release_lock(w, vu);
        } else if (rc == FAIRLOCK_TIMEOUT) {
            note(w, "timeout", "n=%ld ms=%" PRId64 " state=%s", w->n, took_ms,
                 state_name(fairlock_state(w->lock)));
        } else {
            /* The token of a PENDING request lets the checker see whether
             * the server still hands the lock to it after it has been
             * resolved (a ghost grant). */
            const char *token = fairlock_token(w->lock);
            note(w, "error",
                 "n=%ld rc=%s ms=%" PRId64 " state=%s token=%s msg=%s", w->n,
                 fairlock_code_name(rc), took_ms,
                 state_name(fairlock_state(w->lock)), token ? token : "-",
                 fairlock_errmsg(w->lock));
            sleep_ms(cfg->retry_errors ? pick(w, 10, 10 * ERROR_BACKOFF_MS)
                                       : ERROR_BACKOFF_MS);
            if (cfg->retry_errors)
                w->n--; /* the next ask reuses this iteration's number */
        }
        sleep_ms(pick(w, cfg->gap_min_ms, cfg->gap_max_ms));
    }
    /* fairlock_free resolves a pending request (cancel.lua); the state
     * before it tells the checker whether one was left to resolve. */
    note(w, "end", "n=%ld state=%s", w->n, state_name(fairlock_state(w->lock)));
    fairlock_free(w->lock);
    w->lock = NULL;
    return NULL;
}

static fairlock *make_lock(const config *cfg, worker *w) {
    fairlock_options o;
    fairlock_options_init(&o);
    o.name = cfg->name;
    o.url = cfg->url;
    o.fifo = cfg->fifo;
    o.timeout_ms = cfg->timeout_ms;
    if (cfg->ttl_ms != 0)
        o.ttl_ms = cfg->ttl_ms;
    if (cfg->stale_ms != 0)
        o.stale_timeout_ms = cfg->stale_ms;
    o.io_timeout_ms = cfg->io_ms;
    o.check_interval_ms = cfg->check_ms;
    o.auto_renew = cfg->renew;
    o.fencing = cfg->fencing;
    if (cfg->permits > 0) {
        o.kind = FAIRLOCK_KIND_SEMAPHORE;
        o.permits = cfg->permits;
    } else if (cfg->rw_mode) {
        o.kind = FAIRLOCK_KIND_RWLOCK;
        o.shared = cfg->rw_mode == 's';
    }
    if (cfg->probe_ms > 0) {
        o.interrupt = probe;
        o.interrupt_arg = w;
        o.interrupt_check_ms = cfg->probe_ms;
    }
    fairlock *lock = NULL;
    int rc = fairlock_create(&o, &lock);
    if (rc != FAIRLOCK_OK)
        die("fairlock_create: %s: %s", fairlock_code_name(rc),
            lock ? fairlock_errmsg(lock) : "");
    return lock;
}

/* ---------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------- */

static void on_signal(int sig) {
    if (sig == SIGUSR1)
        release_requested = 1;
    else
        stop_requested = 1;
}

/* "A" or "A:B" in ms. */
static void parse_range(const char *s, int64_t *lo, int64_t *hi) {
    char *end;
    *lo = strtoll(s, &end, 10);
    *hi = *end == ':' ? strtoll(end + 1, NULL, 10) : *lo;
    if (*lo < 0 || *hi < *lo)
        die("bad range %s", s);
}

static void usage(void) {
    fprintf(stderr,
            "usage: fault_client --history FILE --name NAME --url URL\n"
            "  [--data-url URL] [--direct-url URL] [--counter KEY]\n"
            "  [--fenced KEY] [--fifo 0|1] [--timeout MS] [--ttl MS]\n"
            "  [--stale MS] [--io-timeout MS] [--check MS] [--probe MS]\n"
            "  [--renew] [--fencing] [--naive] [--verify]\n"
            "  [--hold MS[:MS]] [--gap MS[:MS]] [--iterations N]\n"
            "  [--duration MS] [--threads N] [--hold-signal] [--seed N]\n"
            "  [--retry-errors] [--permits N] [--rw s|x]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, config *cfg) {
    enum {
        OPT_HISTORY = 1,
        OPT_NAME,
        OPT_URL,
        OPT_DATA,
        OPT_DIRECT,
        OPT_COUNTER,
        OPT_FENCED,
        OPT_FIFO,
        OPT_TIMEOUT,
        OPT_TTL,
        OPT_STALE,
        OPT_IO,
        OPT_CHECK,
        OPT_PROBE,
        OPT_RENEW,
        OPT_FENCING,
        OPT_NAIVE,
        OPT_VERIFY,
        OPT_HOLD,
        OPT_GAP,
        OPT_ITER,
        OPT_DURATION,
        OPT_THREADS,
        OPT_HOLD_SIGNAL,
        OPT_SEED,
        OPT_RETRY_ERRORS,
        OPT_PERMITS,
        OPT_RW
    };
    static const struct option opts[] = {
        {"history", required_argument, NULL, OPT_HISTORY},
        {"name", required_argument, NULL, OPT_NAME},
        {"url", required_argument, NULL, OPT_URL},
        {"data-url", required_argument, NULL, OPT_DATA},
        {"direct-url", required_argument, NULL, OPT_DIRECT},
        {"counter", required_argument, NULL, OPT_COUNTER},
        {"fenced", required_argument, NULL, OPT_FENCED},
        {"fifo", required_argument, NULL, OPT_FIFO},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"stale", required_argument, NULL, OPT_STALE},
        {"io-timeout", required_argument, NULL, OPT_IO},
        {"check", required_argument, NULL, OPT_CHECK},
        {"probe", required_argument, NULL, OPT_PROBE},
        {"renew", no_argument, NULL, OPT_RENEW},
        {"fencing", no_argument, NULL, OPT_FENCING},
        {"naive", no_argument, NULL, OPT_NAIVE},
        {"verify", no_argument, NULL, OPT_VERIFY},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"gap", required_argument, NULL, OPT_GAP},
        {"iterations", required_argument, NULL, OPT_ITER},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"hold-signal", no_argument, NULL, OPT_HOLD_SIGNAL},
        {"seed", required_argument, NULL, OPT_SEED},
        {"retry-errors", no_argument, NULL, OPT_RETRY_ERRORS},
        {"permits", required_argument, NULL, OPT_PERMITS},
        {"rw", required_argument, NULL, OPT_RW},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_HISTORY:
            cfg->history = optarg;
            break;
        case OPT_NAME:
            cfg->name = optarg;
            break;
        case OPT_URL:
            cfg->url = optarg;
            break;
        case OPT_DATA:
            cfg->data_url = optarg;
            break;
        case OPT_DIRECT:
            cfg->direct_url = optarg;
            break;
        case OPT_COUNTER:
            cfg->counter = optarg;
            break;
        case OPT_FENCED:
            cfg->fenced = optarg;
            break;
        case OPT_FIFO:
            cfg->fifo = atoi(optarg);
            break;
        case OPT_TIMEOUT:
            cfg->timeout_ms = strtoll(optarg, NULL, 10);
            break;
        case OPT_TTL:
            cfg->ttl_ms = strtoll(optarg, NULL, 10);
            break;
        case OPT_STALE:
            cfg->stale_ms = strtoll(optarg, NULL, 10);
            break;
        case OPT_IO:
            cfg->io_ms = strtoll(optarg, NULL, 10);
            break;
        case OPT_CHECK:
            cfg->check_ms = strtoll(optarg, NULL, 10);
            break;
        case OPT_PROBE:
            cfg->probe_ms = strtoll(optarg, NULL, 10);
            break;
        case OPT_RENEW:
            cfg->renew = 1;
            break;
        case OPT_FENCING:
            cfg->fencing = 1;
            break;
        case OPT_PERMITS:
            cfg->permits = strtoll(optarg, NULL, 10);
            break;
        case OPT_RW:
            cfg->rw_mode = optarg[0] == 's' ? 's' : 'x';
            break;
        case OPT_NAIVE:
            cfg->naive = 1;
            break;
        case OPT_VERIFY:
            cfg->verify = 1;
            break;
        case OPT_HOLD:
            parse_range(optarg, &cfg->hold_min_ms, &cfg->hold_max_ms);
            break;
        case OPT_GAP:
            parse_range(optarg, &cfg->gap_min_ms, &cfg->gap_max_ms);
            break;
        case OPT_ITER:
            cfg->iterations = atol(optarg);
            break;
        case OPT_DURATION:
            cfg->duration_ms = strtoll(optarg, NULL, 10);
            break;
        case OPT_THREADS:
            cfg->threads = atoi(optarg);
            break;
        case OPT_HOLD_SIGNAL:
            cfg->hold_signal = 1;
            break;
        case OPT_SEED:
            cfg->seed = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case OPT_RETRY_ERRORS:
            cfg->retry_errors = 1;
            break;
        default:
            usage();
        }
    }
    if (optind != argc || !cfg->history || !cfg->name || !cfg->url)
        usage();
    if (cfg->data_url == NULL)
        cfg->data_url = cfg->url;
    if (cfg->direct_url == NULL)
        cfg->direct_url = cfg->url;
    if (cfg->threads < 1)
        cfg->threads = 1;
    if (cfg->iterations <= 0 && cfg->duration_ms <= 0)
        die("give --iterations or --duration");
}

int main(int argc, char **argv) {
    /* Die with the driver, so that a killed test run leaves no client
     * blocked on a server. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* A connection that a fault resets must fail a call, not kill us. */
    signal(SIGPIPE, SIG_IGN);

    config cfg = {0};
    cfg.fifo = 1;
    cfg.timeout_ms = 30000;
    cfg.io_ms = 2000;
    cfg.check_ms = 50;
    cfg.seed = (unsigned)getpid();
    parse_args(argc, argv, &cfg);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    history_fd = open(cfg.history, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                      0644);
    if (history_fd < 0)
        die("cannot open %s: %s", cfg.history, strerror(errno));
    end_at_ns = now_ns() + cfg.duration_ms * 1000000;

    note(NULL, "start",
         "name=%s fifo=%d timeout=%" PRId64 " ttl=%" PRId64 " stale=%" PRId64
         " io=%" PRId64 " renew=%d fencing=%d naive=%d threads=%d seed=%u"
         " permits=%" PRId64 " mode=%c",
         cfg.name, cfg.fifo, cfg.timeout_ms, cfg.ttl_ms, cfg.stale_ms,
         cfg.io_ms, cfg.renew, cfg.fencing, cfg.naive, cfg.threads, cfg.seed,
         cfg.permits, cfg.rw_mode ? cfg.rw_mode : '-');

    worker *workers = calloc((size_t)cfg.threads, sizeof *workers);
    if (workers == NULL)
        die("out of memory");
    for (int i = 0; i < cfg.threads; i++) {
        workers[i].cfg = &cfg;
        workers[i].tid = i;
        workers[i].rng = cfg.seed * 2654435761u + (unsigned)i;
        workers[i].lock = make_lock(&cfg, &workers[i]);
    }
    if (cfg.threads == 1) {
        run_worker(&workers[0]);
    } else {
        /* Small stacks: a flood runs a thousand waiters per process. */
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        for (int i = 0; i < cfg.threads; i++) {
            int e = pthread_create(&workers[i].thread, &attr, run_worker,
                                   &workers[i]);
            if (e != 0)
                die("pthread_create: %s", strerror(e));
        }
        pthread_attr_destroy(&attr);
        for (int i = 0; i < cfg.threads; i++)
            pthread_join(workers[i].thread, NULL);
    }
    free(workers);
    if (data_conn != NULL)
        redisFree(data_conn);
    if (direct_conn != NULL)
        redisFree(direct_conn);
    close(history_fd);
    return 0;
}
