/* fairlock_worker.c -- benchmark worker: runs libfairlock on line commands.
 *
 * The benchmark driver (bench/run) starts one process per simulated client
 * and talks to it over stdin/stdout with the line protocol described in
 * bench/PROTOCOL.md, which the peer workers (bench/peers/, bench/node/)
 * speak too, so one driver times every lock the same way.
 *
 * Times are CLOCK_MONOTONIC nanoseconds: that clock is system-wide on
 * Linux, so the driver may subtract a time taken here from one taken in
 * another worker (hand-off latency).
 *
 * The lock has a connection of its own, made from a URL as with the
 * library's defaults; the worker's own hiredis connection carries the
 * PINGs and the workload.  With --tls-port the lock's connection is TLS
 * (rediss://) and the hiredis one stays plain text (hiredis 0.14 has no
 * TLS), so PING is then a plain-text round trip.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"

#define LINE_MAX_LEN 4096
/* Threads of `many` wait in hiredis calls only; a small stack lets one
 * process hold hundreds of waiters. */
#define WAITER_STACK_BYTES (256 * 1024)

typedef struct config {
    const char *host;
    int port;
    const char *unix_path;
    const char *name;
    int64_t ttl_ms;   /* <= 0: the library's default */
    int64_t check_ms; /* <= 0: the library's default */
    int64_t permits;  /* > 0: a semaphore of this many permits */
    int tls_port;     /* > 0: the lock over TLS, to this port */
    const char *tls_ca;
} config;

/* A connection and the lock handle that borrows it. */
typedef struct client {
    redisContext *ctx;
    fairlock *lock;
} client;

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns) {
    if (ns <= 0)
        return;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void sleep_until_ns(int64_t when) {
    for (int64_t left = when - now_ns(); left > 0; left = when - now_ns())
        sleep_ns(left);
}

/* A growable reply line; a failed allocation is reported once at the end
 * rather than at every append. */
typedef struct line {
    char *buf;
    size_t len, cap;
    int oom;
} line;

static void line_add(line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void line_add(line *l, const char *fmt, ...) {
    if (l->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = l->cap - l->len;
        int n = vsnprintf(l->buf ? l->buf + l->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            l->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            l->len += (size_t)n;
            return;
        }
        size_t cap = l->cap ? l->cap * 2 : 256;
        while (cap - l->len <= (size_t)n)
            cap *= 2;
        char *grown = realloc(l->buf, cap);
        if (grown == NULL) {
            l->oom = 1;
            return;
        }
        l->buf = grown;
        l->cap = cap;
    }
}

/* Writes the line and frees it.  Replies are flushed at once: the driver
 * waits for each before it sends the next command. */
static void line_send(line *l) {
    if (l->oom)
        fputs("err out of memory building the reply\n", stdout);
    else if (l->buf != NULL)
        printf("%s\n", l->buf);
    fflush(stdout);
    free(l->buf);
    memset(l, 0, sizeof *l);
}

static void reply_err(const char *what, const client *c, int rc) {
    printf("err %s: %s (%s)\n", what, fairlock_code_name(rc),
           c && c->lock ? fairlock_errmsg(c->lock) : fairlock_strerror(rc));
    fflush(stdout);
}

/* Growable array of int64 pairs (time, ticket) of grants. */
typedef struct grants {
    int64_t *v;
    size_t n, cap;
} grants;

static int grants_add(grants *g, int64_t t, int64_t ticket) {
    if (g->n + 2 > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 1024;
        int64_t *grown = realloc(g->v, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        g->v = grown;
        g->cap = cap;
    }
    g->v[g->n++] = t;
    g->v[g->n++] = ticket;
    return 0;
}

static void grants_print(line *l, const grants *g) {
    for (size_t i = 0; i + 1 < g->n; i += 2)
        line_add(l, " %" PRId64 ":%" PRId64, g->v[i], g->v[i + 1]);
}

/* ---------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------- */

static int client_open(const config *cfg, client *c, char *why,
                       size_t why_len) {
    memset(c, 0, sizeof *c);
    c->ctx = cfg->unix_path ? redisConnectUnix(cfg->unix_path)
                            : redisConnect(cfg->host, cfg->port);
    if (c->ctx == NULL || c->ctx->err) {
        snprintf(why, why_len, "cannot connect: %s",
                 c->ctx ? c->ctx->errstr : "out of memory");
        redisFree(c->ctx);
        c->ctx = NULL;
        return -1;
    }
    /* The lock has a connection of its own, made from a URL, as with the
     * library's defaults; c->ctx carries the PINGs and the workload. */
    char url[1024];
    if (cfg->unix_path)
        snprintf(url, sizeof url, "unix://%s", cfg->unix_path);
    else if (cfg->tls_port > 0)
        snprintf(url, sizeof url, "rediss://%s:%d?ssl_ca_certs=%s", cfg->host,
                 cfg->tls_port, cfg->tls_ca ? cfg->tls_ca : "");
    else
        snprintf(url, sizeof url, "redis://%s:%d", cfg->host, cfg->port);
    fairlock_options o;
    fairlock_options_init(&o);
    o.name = cfg->name;
    o.url = url;
    if (cfg->ttl_ms > 0)
        o.ttl_ms = cfg->ttl_ms;
    if (cfg->check_ms > 0)
        o.check_interval_ms = cfg->check_ms;
    if (cfg->permits > 0) {
        o.kind = FAIRLOCK_KIND_SEMAPHORE;
        o.permits = cfg->permits;
    }
    /* FAIRLOCK_BENCH_IDENTITY=1: every grant and queue entry records who
     * asked (fairlock_options.identity), to measure what that costs; the
     * label is about as long as a typical command line. */
    const char *identity = getenv("FAIRLOCK_BENCH_IDENTITY");
    if (identity != NULL && strcmp(identity, "1") == 0) {
        o.identity = 1;
        o.identity_label = "fairlock run --ttl 30 deploy:production -- "
                           "./deploy.sh --env production";
    }
    int rc = fairlock_create(&o, &c->lock);
    if (rc != FAIRLOCK_OK) {
        snprintf(why, why_len, "fairlock_create: %s (%s)",
                 fairlock_code_name(rc),
                 c->lock ? fairlock_errmsg(c->lock) : "");
        fairlock_free(c->lock);
        redisFree(c->ctx);
        memset(c, 0, sizeof *c);
        return -1;
    }
    return 0;
}

static void client_close(client *c) {
    fairlock_free(c->lock);
    redisFree(c->ctx);
    memset(c, 0, sizeof *c);
}

/* GET counter, SET counter+1: the critical section of W2 and of the
 * stress run, which checks mutual exclusion through the final value. */
static int bump_counter(redisContext *ctx, const char *key) {
    redisReply *r = redisCommand(ctx, "GET %s", key);
    if (r == NULL)
        return -1;
    long long n = 0;
    if (r->type == REDIS_REPLY_STRING)
        n = strtoll(r->str, NULL, 10);
    int bad = r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL;
    freeReplyObject(r);
    if (bad)
        return -1;
    r = redisCommand(ctx, "SET %s %lld", key, n + 1);
    if (r == NULL)
        return -1;
    bad = r->type != REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return bad ? -1 : 0;
}

/* ---------------------------------------------------------------------------
 * Commands on the worker's own client
 * ------------------------------------------------------------------------- */

static void cmd_ping(client *c, long n) {
    line l = {0};
    line_add(&l, "ok");
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        redisReply *r = redisCommand(c->ctx, "PING");
        int64_t t1 = now_ns();
        if (r == NULL) {
            free(l.buf);
            printf("err PING failed: %s\n", c->ctx->errstr);
            fflush(stdout);
            return;
        }
        freeReplyObject(r);
        line_add(&l, " %" PRId64, t1 - t0);
    }
    line_send(&l);
}

static void cmd_cycles(client *c, long n) {
    line l = {0};
    line_add(&l, "ok");
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        int rc = fairlock_acquire(c->lock);
        if (rc == FAIRLOCK_OK)
            rc = fairlock_release(c->lock);
        int64_t t1 = now_ns();
        if (rc != FAIRLOCK_OK) {
            free(l.buf);
            reply_err("cycle", c, rc);
            return;
        }
        line_add(&l, " %" PRId64, t1 - t0);
    }
    line_send(&l);
}

static void cmd_acquire(client *c) {
    int rc = fairlock_acquire(c->lock);
    int64_t t = now_ns();
    if (rc != FAIRLOCK_OK) {
        reply_err("acquire", c, rc);
        return;
    }
    printf("ok %" PRId64 " %" PRId64 "\n", t, fairlock_ticket(c->lock));
    fflush(stdout);
}

static void cmd_release(client *c) {
    int64_t t = now_ns();
    int rc = fairlock_release(c->lock);
    if (rc != FAIRLOCK_OK) {
        reply_err("release", c, rc);
        return;
    }
    printf("ok %" PRId64 "\n", t);
    fflush(stdout);
}

/* Acquire, hold for hold_ms, release: one waiter of a FIFO round. */
static void cmd_fifo(client *c, long hold_ms) {
    int rc = fairlock_acquire(c->lock);
    int64_t t = now_ns();
    int64_t ticket = fairlock_ticket(c->lock);
    if (rc != FAIRLOCK_OK) {
        reply_err("acquire", c, rc);
        return;
    }
    sleep_ns((int64_t)hold_ms * 1000000);
    rc = fairlock_release(c->lock);
    if (rc != FAIRLOCK_OK) {
        reply_err("release", c, rc);
        return;
    }
    printf("ok %" PRId64 " %" PRId64 "\n", t, ticket);
    fflush(stdout);
}

/* "ok COUNT T:X ..." for the grants of a loop, which it frees. */
static void reply_grants(grants *g) {
    line l = {0};
    line_add(&l, "ok %zu", g->n / 2);
    grants_print(&l, g);
    line_send(&l);
    free(g->v);
}

/* The semaphore's loop (W6): from `start` to `end` acquire, hold hold_us,
 * release; each hold is recorded as its two ends, "T1:T2", read inside
 * it, so the driver can count how many overlapped. */
static void cmd_spells(client *c, int64_t start, int64_t end, long hold_us) {
    grants g = {0};
    sleep_until_ns(start);
    while (now_ns() < end) {
        int rc = fairlock_acquire(c->lock);
        if (rc != FAIRLOCK_OK) {
            free(g.v);
            reply_err("acquire", c, rc);
            return;
        }
        int64_t t1 = now_ns();
        if (hold_us > 0)
            sleep_until_ns(t1 + (int64_t)hold_us * 1000);
        int64_t t2 = now_ns();
        rc = fairlock_release(c->lock);
        if (rc != FAIRLOCK_OK || grants_add(&g, t1, t2) != 0) {
            free(g.v);
            reply_err("release", c, rc);
            return;
        }
    }
    reply_grants(&g);
}

/* The contended loop: from `start` to `end` (monotonic ns) acquire, bump
 * the counter, release.  Each grant is recorded with the time read inside
 * the critical section, so sorting all workers' grants by it gives the
 * true grant order. */
static void cmd_hammer(client *c, int64_t start, int64_t end,
                       const char *counter) {
    grants g = {0};
    sleep_until_ns(start);
    while (now_ns() < end) {
        int rc = fairlock_acquire(c->lock);
        if (rc != FAIRLOCK_OK) {
            free(g.v);
            reply_err("acquire", c, rc);
            return;
        }
        int64_t t = now_ns();
        if (grants_add(&g, t, fairlock_ticket(c->lock)) != 0 ||
            bump_counter(c->ctx, counter) != 0) {
            free(g.v);
            printf("err critical section failed: %s\n",
                   c->ctx->err ? c->ctx->errstr : "bad reply or no memory");
            fflush(stdout);
            return;
        }
        rc = fairlock_release(c->lock);
        if (rc != FAIRLOCK_OK) {
            free(g.v);
            reply_err("release", c, rc);
            return;
        }
    }
    reply_grants(&g);
}

/* ---------------------------------------------------------------------------
 * Many waiters in one process (W5): one thread, connection and handle each
 * ------------------------------------------------------------------------- */

typedef struct waiter {
    pthread_t thread;
    const config *cfg;
    int64_t hold_ns;
    int started;
    int ok;
    int64_t t_grant;
    int64_t ticket;
    char why[200];
} waiter;

static void *waiter_main(void *arg) {
    waiter *w = arg;
    client c;
    if (client_open(w->cfg, &c, w->why, sizeof w->why) != 0)
        return NULL;
    int rc = fairlock_acquire(c.lock);
    if (rc == FAIRLOCK_OK) {
        w->t_grant = now_ns();
        w->ticket = fairlock_ticket(c.lock);
        sleep_ns(w->hold_ns);
        rc = fairlock_release(c.lock);
    }
    if (rc == FAIRLOCK_OK)
        w->ok = 1;
    else
        snprintf(w->why, sizeof w->why, "%s (%s)", fairlock_code_name(rc),
                 fairlock_errmsg(c.lock));
    client_close(&c);
    return NULL;
}

typedef struct crowd {
    waiter *w;
    long n;
} crowd;

static void cmd_many(const config *cfg, crowd *cr, long n, long hold_ms) {
    if (cr->w != NULL) {
        printf("err a crowd is already waiting; send join first\n");
        fflush(stdout);
        return;
    }
    cr->w = calloc((size_t)n, sizeof *cr->w);
    if (cr->w == NULL) {
        printf("err out of memory\n");
        fflush(stdout);
        return;
    }
    cr->n = n;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WAITER_STACK_BYTES);
    long started = 0;
    for (long i = 0; i < n; i++) {
        waiter *w = &cr->w[i];
        w->cfg = cfg;
        w->hold_ns = (int64_t)hold_ms * 1000000;
        if (pthread_create(&w->thread, &attr, waiter_main, w) == 0) {
            w->started = 1;
            started++;
        } else {
            snprintf(w->why, sizeof w->why, "pthread_create failed");
        }
    }
    pthread_attr_destroy(&attr);
    printf("ok %ld\n", started);
    fflush(stdout);
}

static void cmd_join(crowd *cr) {
    long ok = 0, failed = 0;
    const char *why = NULL;
    grants g = {0};
    int oom = 0;
    for (long i = 0; i < cr->n; i++) {
        waiter *w = &cr->w[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        if (w->ok) {
            ok++;
            oom |= grants_add(&g, w->t_grant, w->ticket);
        } else {
            failed++;
            if (why == NULL)
                why = w->why;
        }
    }
    line l = {0};
    if (oom)
        l.oom = 1;
    line_add(&l, "ok %ld %ld", ok, failed);
    grants_print(&l, &g);
    if (why != NULL)
        fprintf(stderr, "fairlock_worker: a waiter failed: %s\n", why);
    line_send(&l);
    free(g.v);
    free(cr->w);
    cr->w = NULL;
    cr->n = 0;
}

/* ---------------------------------------------------------------------------
 * Main: arguments, then the command loop
 * ------------------------------------------------------------------------- */

static int usage(void) {
    fprintf(stderr,
            "usage: fairlock_worker (--port N [--host H] | --unix PATH) "
            "--name NAME [--ttl-ms N] [--check-ms N] [--permits N] "
            "[--tls-port N --tls-ca FILE]\n"
            "Reads benchmark commands on stdin; see bench/PROTOCOL.md.\n");
    return 2;
}

static int parse_args(int argc, char **argv, config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    /* Options come in pairs: --name value. */
    if (argc % 2 != 1)
        return -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i];
        const char *v = argv[i + 1];
        if (strcmp(a, "--host") == 0)
            cfg->host = v;
        else if (strcmp(a, "--port") == 0)
            cfg->port = atoi(v);
        else if (strcmp(a, "--unix") == 0)
            cfg->unix_path = v;
        else if (strcmp(a, "--name") == 0)
            cfg->name = v;
        else if (strcmp(a, "--ttl-ms") == 0)
            cfg->ttl_ms = strtoll(v, NULL, 10);
        else if (strcmp(a, "--check-ms") == 0)
            cfg->check_ms = strtoll(v, NULL, 10);
        else if (strcmp(a, "--permits") == 0)
            cfg->permits = strtoll(v, NULL, 10);
        else if (strcmp(a, "--tls-port") == 0)
            cfg->tls_port = atoi(v);
        else if (strcmp(a, "--tls-ca") == 0)
            cfg->tls_ca = v;
        else if (strcmp(a, "--impl") == 0 || strcmp(a, "--sleep") == 0)
            ; /* the peers' options: accepted so one command line fits all */
        else
            return -1;
    }
    if (cfg->name == NULL || (cfg->unix_path == NULL && cfg->port <= 0))
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    config cfg;
    if (parse_args(argc, argv, &cfg) != 0)
        return usage();
    client c;
    char why[256];
    if (client_open(&cfg, &c, why, sizeof why) != 0) {
        printf("err %s\n", why);
        return 1;
    }
    printf("ready fairlock %s\n", fairlock_version());
    fflush(stdout);

    crowd cr = {0};
    char buf[LINE_MAX_LEN];
    while (fgets(buf, sizeof buf, stdin) != NULL) {
        char verb[32] = "";
        long long a = 0, b = 0;
        char key[LINE_MAX_LEN / 2] = "";
        int n = sscanf(buf, "%31s %lld %lld %2047s", verb, &a, &b, key);
        if (n < 1)
            continue;
        if (strcmp(verb, "ping") == 0 && n >= 2)
            cmd_ping(&c, (long)a);
        else if (strcmp(verb, "cycles") == 0 && n >= 2)
            cmd_cycles(&c, (long)a);
        else if (strcmp(verb, "acquire") == 0)
            cmd_acquire(&c);
        else if (strcmp(verb, "release") == 0)
            cmd_release(&c);
        else if (strcmp(verb, "fifo") == 0 && n >= 2)
            cmd_fifo(&c, (long)a);
        else if (strcmp(verb, "hammer") == 0 && n >= 4)
            cmd_hammer(&c, a, b, key);
        else if (strcmp(verb, "spells") == 0 && n >= 4)
            cmd_spells(&c, a, b, atol(key));
        else if (strcmp(verb, "many") == 0 && n >= 3 && a > 0)
            cmd_many(&cfg, &cr, (long)a, (long)b);
        else if (strcmp(verb, "join") == 0)
            cmd_join(&cr);
        else if (strcmp(verb, "quit") == 0)
            break;
        else {
            printf("err unknown or malformed command: %s", buf);
            fflush(stdout);
        }
    }
    if (cr.w != NULL)
        cmd_join(&cr);
    client_close(&c);
    return 0;
}
