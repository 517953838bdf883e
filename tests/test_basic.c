/* test_basic.c -- single-process behaviour against a real server: waiting,
 * leases, queries, bad calls, connections and script reloading. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

static fairlock *lock_with(const char *name, int64_t timeout_ms, int64_t ttl_ms,
                           int fifo) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = timeout_ms;
    opts.ttl_ms = ttl_ms;
    opts.fifo = fifo;
    return test_lock_opts(&opts);
}

static long long pttl(redisContext *c, const char *name) {
    return test_int(c, "PTTL %s", name);
}

static void nonblocking_and_timeout(void) {
    const char *name = test_name("basic-wait");
    redisContext *c = test_redis();
    fairlock *holder = test_lock(name, 10000);
    fairlock *other = test_lock(name, 10000);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);

    CHECK_RC(other,
             fairlock_acquire_ex(other, FAIRLOCK_DEFAULT, 0, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK(strstr(fairlock_errmsg(other), "does not wait") != NULL);
    CHECK_INT(test_int(c, "EXISTS %s:queue", name), ==, 0);

    int64_t start = test_now_ns();
    CHECK_RC(other, fairlock_acquire_ex(other, 200, -1, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_INT((test_now_ns() - start) / 1000000, >=, 200);
    CHECK_INT(test_int(c, "EXISTS %s:queue", name), ==, 0);
    CHECK_INT(fairlock_ticket(other), ==, 0);
    CHECK(fairlock_token(other) == NULL);

    /* The holder is untouched by the failed attempts. */
    int owned = 0;
    CHECK_RC(holder, fairlock_owned(holder, &owned), FAIRLOCK_OK);
    CHECK_INT(owned, ==, 1);
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(holder);
    fairlock_free(other);
    redisFree(c);
}

/* The PTTL ranges leave seconds between the grant and the PTTL, so a
 * slow machine does not matter, and stay apart from every other lease the
 * code could have given. */
static void lease_follows_timeout_or_ttl(void) {
    const char *name = test_name("basic-lease");
    redisContext *c = test_redis();
    /* The reference: timeout is also the lease. */
    fairlock *lock = test_lock(name, 30000);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(pttl(c, name), >, 20000);
    CHECK_INT(pttl(c, name), <=, 30000);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    /* Per-call timeout overrides the lease too. */
    CHECK_RC(lock, fairlock_acquire_ex(lock, 60000, -1, FAIRLOCK_DEFAULT),
             FAIRLOCK_OK);
    CHECK_INT(pttl(c, name), >, 50000);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);

    /* No timeout, no ttl: no expiry, as in the reference. */
    lock = test_lock(name, FAIRLOCK_FOREVER);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(pttl(c, name), ==, -1);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);

    /* An explicit ttl wins over the timeout. */
    lock = lock_with(name, FAIRLOCK_FOREVER, 45000, 1);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(pttl(c, name), >, 35000);
    CHECK_INT(pttl(c, name), <=, 45000);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);

    /* Timeout 0 everywhere with no ttl has no lease to give. */
    lock = test_lock(name, 0);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_INVALID);
    fairlock_free(lock);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    redisFree(c);
}

static void extend_owned_locked(void) {
    const char *name = test_name("basic-extend");
    redisContext *c = test_redis();
    /* A lease far longer than the calls below take, however slow. */
    fairlock *lock = lock_with(name, 30000, 30000, 1);
    int owned = 1, locked = 1;
    CHECK_RC(lock, fairlock_owned(lock, &owned), FAIRLOCK_OK);
    CHECK_INT(owned, ==, 0);
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_OK);
    CHECK_INT(locked, ==, 0);
    CHECK_RC(lock, fairlock_extend(lock, 1000), FAIRLOCK_NOTOWNED);

    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_OK);
    CHECK_INT(locked, ==, 1);
    CHECK_RC(lock, fairlock_extend(lock, 60000), FAIRLOCK_OK);
    CHECK_INT(pttl(c, name), >, 50000);
    CHECK_RC(lock, fairlock_extend(lock, FAIRLOCK_FOREVER), FAIRLOCK_OK);
    CHECK_INT(pttl(c, name), ==, -1);
    CHECK_RC(lock, fairlock_extend(lock, 0), FAIRLOCK_INVALID);
    CHECK_RC(lock, fairlock_extend(lock, -7), FAIRLOCK_INVALID);
    CHECK_RC(lock, fairlock_extend(lock, 200), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_BUSY);

    /* Lease runs out: the handle learns it on extend or release. */
    test_sleep_ms(400);
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_OK);
    CHECK_INT(locked, ==, 0);
    CHECK_RC(lock, fairlock_owned(lock, &owned), FAIRLOCK_OK);
    CHECK_INT(owned, ==, 0);
    CHECK_RC(lock, fairlock_extend(lock, 1000), FAIRLOCK_NOTOWNED);
    CHECK_INT(test_int(c, "EXISTS %s", name), ==, 0);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_NOTOWNED);
    fairlock_free(lock);
    redisFree(c);
}

static void release_errors(void) {
    const char *name = test_name("basic-release");
    redisContext *c = test_redis();
    /* A lease that outlasts the calls below however slow the machine. */
    fairlock *lock = lock_with(name, 30000, 30000, 1);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_NOTOWNED);
    CHECK(strstr(fairlock_errmsg(lock), "not held") != NULL);

    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(fairlock_ticket(lock), ==, 1);
    const char *token = fairlock_token(lock);
    CHECK(token != NULL);
    CHECK_INT(strlen(token), >, 32);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_NOTOWNED);
    CHECK_INT(fairlock_ticket(lock), ==, 0);
    fairlock_free(lock);

    /* Released after the lease ran out and someone else took it: the
     * other owner's lock must survive.  (A slow machine only lets the
     * 150 ms lease run out sooner.) */
    lock = lock_with(name, 30000, 150, 1);
    fairlock *other = lock_with(name, 30000, 30000, 1);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    test_sleep_ms(300);
    CHECK_RC(other, fairlock_acquire(other), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_NOTOWNED);
    CHECK(strstr(fairlock_errmsg(lock), "lease") != NULL);
    int owned = 0;
    CHECK_RC(other, fairlock_owned(other, &owned), FAIRLOCK_OK);
    CHECK_INT(owned, ==, 1);
    CHECK_RC(other, fairlock_release(other), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(other);
    fairlock_free(lock);
    redisFree(c);
}

/* fairlock_detach() lets go of a held lock without releasing it: the
 * handle forgets the grant, and the lock stays held with the token (freeing
 * the handle does not release it) until someone releases that token. */
static void detach_keeps_the_lock(void) {
    const char *name = test_name("basic-detach");
    redisContext *c = test_redis();
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = 30000;
    opts.ttl_ms = 30000;
    opts.auto_renew = 1; /* detach stops the renewal too */
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_detach(lock), FAIRLOCK_NOTOWNED);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    char token[FAIRLOCK_TOKEN_MAX];
    snprintf(token, sizeof token, "%s", fairlock_token(lock));

    CHECK_RC(lock, fairlock_detach(lock), FAIRLOCK_OK);
    CHECK(fairlock_token(lock) == NULL);
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_IDLE);
    CHECK_INT(fairlock_ticket(lock), ==, 0);
    CHECK_RC(lock, fairlock_detach(lock), FAIRLOCK_NOTOWNED);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_NOTOWNED);
    fairlock_free(lock);

    /* Still held, by the saved token: nobody else gets it. */
    redisReply *holder = redisCommand(c, "GET %s", name);
    CHECK(holder != NULL && holder->type == REDIS_REPLY_STRING);
    CHECK_STR(holder->str, token);
    freeReplyObject(holder);
    CHECK_INT(pttl(c, name), >, 0);
    fairlock *other = lock_with(name, 0, 30000, 1);
    CHECK_RC(other, fairlock_acquire(other), FAIRLOCK_TIMEOUT);

    CHECK_RC(other, fairlock_release_token(other, token), FAIRLOCK_OK);
    CHECK_RC(other, fairlock_acquire(other), FAIRLOCK_OK);
    CHECK_RC(other, fairlock_release(other), FAIRLOCK_OK);
    fairlock_free(other);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    redisFree(c);
}

static void tokens_are_fresh(void) {
    const char *name = test_name("basic-token");
    fairlock *lock = test_lock(name, 5000);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    char first[FAIRLOCK_TOKEN_MAX];
    snprintf(first, sizeof first, "%s", fairlock_token(lock));
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK(strcmp(first, fairlock_token(lock)) != 0);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);

    /* A forked child draws its own token. */
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        fairlock *child = test_lock(name, 5000);
        int rc = fairlock_acquire(child);
        const char *t = rc == FAIRLOCK_OK ? fairlock_token(child) : "";
        ssize_t w = write(pipefd[1], t, strlen(t) + 1);
        fairlock_release(child);
        fairlock_free(child);
        fairlock_free(lock); /* the parent's copy: not held, no I/O */
        _exit(rc == FAIRLOCK_OK && w > 0 ? 0 : 1);
    }
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    char parent_token[FAIRLOCK_TOKEN_MAX];
    snprintf(parent_token, sizeof parent_token, "%s", fairlock_token(lock));
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    char child_token[FAIRLOCK_TOKEN_MAX] = "";
    CHECK_INT(test_wait_child(pid, 0), ==, 0);
    CHECK(read(pipefd[0], child_token, sizeof child_token) > 0);
    CHECK(strcmp(child_token, parent_token) != 0);
    CHECK(strcmp(child_token, first) != 0);
    close(pipefd[0]);
    close(pipefd[1]);
    fairlock_free(lock);
}

static int count_calls(void *arg) {
    (*(int *)arg)++;
    return 42;
}

static void scoped_form(void) {
    const char *name = test_name("basic-with");
    redisContext *c = test_redis();
    fairlock *lock = test_lock(name, 5000);
    int calls = 0, result = 0;
    CHECK_RC(lock, fairlock_with(lock, count_calls, &calls, &result),
             FAIRLOCK_OK);
    CHECK_INT(calls, ==, 1);
    CHECK_INT(result, ==, 42);
    CHECK_INT(test_keys_of(c, name), ==, 0);

    /* Not acquired: the body does not run. */
    fairlock *holder = test_lock(name, 5000);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_acquire_ex(lock, 0, -1, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.blocking = 0;
    opts.timeout_ms = 5000;
    fairlock *try_lock = test_lock_opts(&opts);
    CHECK_RC(try_lock, fairlock_with(try_lock, count_calls, &calls, NULL),
             FAIRLOCK_TIMEOUT);
    CHECK_INT(calls, ==, 1);
    CHECK_RC(lock, fairlock_with(lock, NULL, NULL, NULL), FAIRLOCK_INVALID);
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    fairlock_free(try_lock);
    fairlock_free(holder);
    fairlock_free(lock);
    redisFree(c);
}

static void borrowed_connection(void) {
    const char *name = test_name("basic-borrowed");
    redisContext *c = test_redis();
    struct timeval tv = {7, 0};
    redisSetTimeout(c, tv);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.redis = c;
    opts.timeout_ms = 30000; /* also a's lease: it outlasts b's wait */
    fairlock *a = test_lock_opts(&opts);
    fairlock *b = test_lock_opts(&opts);
    CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
    /* b waits (blocking BLPOP on the shared context) and times out. */
    CHECK_RC(b, fairlock_acquire_ex(b, 150, -1, FAIRLOCK_DEFAULT),
             FAIRLOCK_TIMEOUT);
    CHECK_RC(a, fairlock_release(a), FAIRLOCK_OK);
    CHECK_RC(b, fairlock_acquire(b), FAIRLOCK_OK);
    fairlock_free(b); /* frees its lock, never the borrowed context */
    CHECK_INT(test_int(c, "EXISTS %s", name), ==, 0);
    /* The caller's socket timeout is put back after a blocking wait. */
    struct timeval now_tv;
    socklen_t len = sizeof now_tv;
    CHECK(getsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &now_tv, &len) == 0);
    CHECK_INT(now_tv.tv_sec, ==, 7);
    fairlock_free(a);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    redisFree(c);
}

static void tcp_and_database(void) {
    char url[1024];
    snprintf(url, sizeof url, "%s", test_tcp_url_with(NULL, 3));
    const char *name = test_name("basic-db");
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = url;
    opts.timeout_ms = 5000;
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    redisContext *c = test_redis();
    CHECK_INT(test_int(c, "EXISTS %s", name), ==, 0);
    redisReply *r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    CHECK_INT(test_int(c, "EXISTS %s", name), ==, 1);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(lock);
    redisFree(c);

    /* $FAIRLOCK_URL is used when no URL is given, before $REDIS_URL. */
    setenv("FAIRLOCK_URL", test_url(), 1);
    setenv("REDIS_URL", "redis://127.0.0.1:1", 1);
    opts.url = NULL;
    fairlock *from_env = NULL;
    CHECK_INT(fairlock_create(&opts, &from_env), ==, FAIRLOCK_OK);
    CHECK_RC(from_env, fairlock_acquire(from_env), FAIRLOCK_OK);
    CHECK_RC(from_env, fairlock_release(from_env), FAIRLOCK_OK);
    fairlock_free(from_env);
    unsetenv("FAIRLOCK_URL");
    unsetenv("REDIS_URL");
}

static void wrong_password(void) {
    redisContext *c = test_redis();
    redisReply *r = redisCommand(
        c, "ACL SETUSER fltest-user on >right-pass ~fltest:* +@all");
    CHECK(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    char url[1024];
    snprintf(url, sizeof url, "%s",
             test_tcp_url_with("fltest-user:hunter2", 0));
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = test_name("basic-auth");
    opts.url = url;
    opts.timeout_ms = 30000; /* also the lease of the good acquire below */
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "authentication") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), "hunter2") == NULL);
    fairlock_free(lock);

    snprintf(url, sizeof url, "%s",
             test_tcp_url_with("fltest-user:right-pass", 0));
    lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);
    r = redisCommand(c, "ACL DELUSER fltest-user");
    freeReplyObject(r);
    redisFree(c);
}

static void scripts_reload_after_flush(void) {
    const char *name = test_name("basic-flush");
    redisContext *c = test_redis();
    fairlock *lock = test_lock(name, 5000);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    redisReply *r = redisCommand(c, "SCRIPT FLUSH");
    CHECK(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(lock);
    redisFree(c);
}

static void odd_names_on_the_server(void) {
    static const char binary[] = {'f',  'l',    't', 'e', 's', 't', ':',
                                  '\0', '\xff', ' ', '*', '{', '}'};
    redisContext *c = test_redis();
    const char *names[] = {"fltest:with space", "fltest:{tag}*:x",
                           "fltest:\xc3\xa9"};
    for (size_t i = 0; i < 4; i++) {
        fairlock_options opts;
        fairlock_options_init(&opts);
        opts.timeout_ms = 5000;
        if (i < 3) {
            opts.name = names[i];
        } else {
            opts.name = binary;
            opts.name_len = sizeof binary;
        }
        fairlock *a = test_lock_opts(&opts);
        fairlock *b = test_lock_opts(&opts);
        CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
        CHECK_RC(b, fairlock_acquire_ex(b, 0, 0, FAIRLOCK_DEFAULT),
                 FAIRLOCK_TIMEOUT);
        CHECK_RC(a, fairlock_release(a), FAIRLOCK_OK);
        CHECK_RC(b, fairlock_acquire(b), FAIRLOCK_OK);
        CHECK_RC(b, fairlock_release(b), FAIRLOCK_OK);
        size_t len;
        const char *n = fairlock_name(a, &len);
        redisReply *r = redisCommand(c, "EXISTS %b %b:queue %b:seq", n, len, n,
                                     len, n, len);
        CHECK(r != NULL && r->type == REDIS_REPLY_INTEGER);
        CHECK_INT(r->integer, ==, 0);
        freeReplyObject(r);
        fairlock_free(a);
        fairlock_free(b);
    }
    redisFree(c);
}

/* A private second server, stopped while a waiter waits: the waiter gets
 * FAIRLOCK_REDIS well within its timeout plus one I/O timeout. */
static void server_dies_mid_wait(void) {
    char dir[] = "/tmp/fltest-dies.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sock[256], cmd[1024];
    snprintf(sock, sizeof sock, "%s/r.sock", dir);
    snprintf(cmd, sizeof cmd,
             "redis-server --port 0 --unixsocket %s --daemonize yes "
             "--pidfile %s/r.pid --logfile %s/r.log --save '' "
             "--appendonly no --dir %s",
             sock, dir, dir, dir);
    CHECK(system(cmd) == 0);
    char url[300];
    snprintf(url, sizeof url, "unix://%s", sock);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "fltest:dies";
    opts.url = url;
    opts.timeout_ms = 20000;
    opts.io_timeout_ms = 1000;
    fairlock *holder = NULL, *waiter = NULL;
    CHECK_INT(fairlock_create(&opts, &holder), ==, FAIRLOCK_OK);
    CHECK_INT(fairlock_create(&opts, &waiter), ==, FAIRLOCK_OK);
    int rc = FAIRLOCK_REDIS;
    for (int i = 0; i < 100 && rc == FAIRLOCK_REDIS; i++) {
        rc = fairlock_acquire(holder); /* the server may still be starting */
        if (rc == FAIRLOCK_REDIS)
            test_sleep_ms(50);
    }
    CHECK_RC(holder, rc, FAIRLOCK_OK);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        test_sleep_ms(300);
        snprintf(cmd, sizeof cmd, "redis-cli -s %s shutdown nosave", sock);
        _exit(system(cmd) == -1);
    }
    int64_t start = test_now_ns();
    CHECK_RC(waiter, fairlock_acquire(waiter), FAIRLOCK_REDIS);
    int64_t waited_ms = (test_now_ns() - start) / 1000000;
    CHECK_INT(waited_ms, <, 20000);
    CHECK(fairlock_ticket(waiter) == 0);
    test_wait_child(pid, 0);
    /* The holder's release cannot reach the server: unknown outcome, the
     * token is kept for a retry. */
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_REDIS);
    CHECK(fairlock_token(holder) != NULL);
    fairlock_free(holder);
    fairlock_free(waiter);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* Identity (opt-in) of holders and waiters, through the mutex's hand-off
 * and a semaphore's, and the per-handle statistics: counted, not timed. */
static fairlock *ident_lock(const char *name, const char *label, int kind) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = test_url();
    opts.timeout_ms = 20000;
    opts.identity = 1;
    opts.identity_label = label;
    opts.kind = kind;
    opts.permits = kind == FAIRLOCK_KIND_SEMAPHORE ? 1 : 0;
    return test_lock_opts(&opts);
}

static void identity_and_stats_of(int kind) {
    const char *name = test_name("ident");
    redisContext *c = test_redis();
    char host[256];
    CHECK_INT(gethostname(host, sizeof host), ==, 0);
    host[64] = '\0';
    fairlock *a = ident_lock(name, "worker a", kind);
    CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
    int *go = test_shared(sizeof *go);
    pid_t child = test_fork();
    if (child == 0) {
        /* Control characters would split the record: they become '?'. */
        fairlock *b = ident_lock(name, "worker\tb\n", kind);
        int ok = fairlock_acquire(b) == FAIRLOCK_OK;
        fairlock_stats st;
        ok = ok && fairlock_stats_get(b, &st) == FAIRLOCK_OK &&
             st.acquisitions == 1 && st.handoffs == 1 && st.size == sizeof st &&
             st.last_wait_ms >= 0;
        test_wait_flag(go, 60000);
        ok = ok && fairlock_release(b) == FAIRLOCK_OK;
        fairlock_free(b);
        _exit(ok ? 0 : 1);
    }
    char who[128];
    snprintf(who, sizeof who, "%s:who", name);
    /* The waiter's record appears with its entry. */
    fairlock_status *st = NULL;
    for (int tries = 0; tries < 2000; tries++) {
        CHECK_RC(a, fairlock_status_get(a, 10, &st), FAIRLOCK_OK);
        if (st->waiter_count == 1 &&
            fairlock_status_waiter_identity(st, 0) != NULL)
            break;
        fairlock_status_free(st);
        st = NULL;
        test_sleep_ms(10);
    }
    CHECK(st != NULL);
    const fairlock_identity *h = fairlock_status_holder_identity(st, 0);
    CHECK(h != NULL && h->size == sizeof *h);
    CHECK_STR(h->label, "worker a");
    CHECK_STR(h->host, host);
    CHECK_INT(h->pid, ==, getpid());
    CHECK_INT(h->age_ms, >=, 0);
    const fairlock_identity *w = fairlock_status_waiter_identity(st, 0);
    CHECK_STR(w->label, "worker?b?");
    CHECK_INT(w->pid, ==, child);
    CHECK(fairlock_status_waiter_identity(st, 1) == NULL);
    fairlock_status_free(st);

    fairlock_stats s;
    CHECK_INT(fairlock_stats_get(a, &s), ==, FAIRLOCK_OK);
    CHECK_INT(s.acquisitions, ==, 1);
    CHECK_INT(s.handoffs, ==, 0);
    CHECK_INT(s.held_ms, >=, 0);
    CHECK_RC(a, fairlock_release(a), FAIRLOCK_OK);
    CHECK_INT(fairlock_stats_get(a, &s), ==, FAIRLOCK_OK);
    CHECK_INT(s.held_ms, ==, 0);
    CHECK_INT(s.last_hold_ms, >=, 0);
    CHECK_INT(s.total_hold_ms, ==, s.last_hold_ms);
    /* A struct of an older, smaller layout gets only its own bytes. */
    struct {
        fairlock_stats head;
        int64_t canary;
    } small = {{0}, 77};
    CHECK_INT(fairlock_stats_get_sized(a, &small.head,
                                       offsetof(fairlock_stats, handoffs)),
              ==, FAIRLOCK_OK);
    CHECK_INT(small.head.acquisitions, ==, 1);
    CHECK_INT(small.head.handoffs, ==, 0);
    CHECK_INT(small.canary, ==, 77);

    /* Handed over: the waiter's record is now the holder's. */
    for (int tries = 0; tries < 2000; tries++) {
        CHECK_RC(a, fairlock_status_get(a, 10, &st), FAIRLOCK_OK);
        if (st->holder_count == 1)
            break;
        fairlock_status_free(st);
        st = NULL;
        test_sleep_ms(10);
    }
    CHECK(st != NULL);
    h = fairlock_status_holder_identity(st, 0);
    CHECK(h != NULL && h->pid == child);
    CHECK_STR(h->label, "worker?b?");
    fairlock_status_free(st);
    *go = 1;
    CHECK_INT(test_wait_child_within(child, 0, 60000), ==, 0);
    /* Every record went with its entry and its grant. */
    CHECK_INT(test_int(c, "EXISTS %s", who), ==, 0);
    CHECK_INT(test_keys_of(c, name), ==, 0);
    fairlock_free(a);
    redisFree(c);
}

static void identity_and_stats(void) {
    identity_and_stats_of(FAIRLOCK_KIND_MUTEX);
    identity_and_stats_of(FAIRLOCK_KIND_SEMAPHORE);
}

/* Without the option nothing is recorded and NAME:who is never written. */
static void no_identity_by_default(void) {
    const char *name = test_name("noident");
    redisContext *c = test_redis();
    fairlock *a = test_lock(name, 5000);
    CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
    char who[128];
    snprintf(who, sizeof who, "%s:who", name);
    CHECK_INT(test_int(c, "EXISTS %s", who), ==, 0);
    fairlock_status *st = NULL;
    CHECK_RC(a, fairlock_status_get(a, 10, &st), FAIRLOCK_OK);
    CHECK(fairlock_status_holder_identity(st, 0) == NULL);
    fairlock_status_free(st);
    CHECK_RC(a, fairlock_release(a), FAIRLOCK_OK);
    fairlock_free(a);
    redisFree(c);
}

/* NAME:who never outlives the keys whose records it holds.  A waiter with
 * an identity queues behind a holder and is SIGKILLed; once its window and
 * the queue's expiry pass and the holder is gone, no key of the name is
 * left.  The holder: WHO_FOREIGN a foreign token (the reference's, whose
 * queue is not kept for it); WHO_EXTENDED a holder without identity that
 * makes its lease endless; WHO_BROKEN a holder with identity and no lease
 * end, released by its token from a handle without identity (as a break
 * by a library user).  Before the fix NAME:who stayed without expiry in
 * each case. */
enum { WHO_FOREIGN, WHO_EXTENDED, WHO_BROKEN };

static void who_goes_with_dead_waiter_of(int holder) {
    const char *name = test_name("whodead");
    redisContext *c = test_redis();
    fairlock *a = NULL;
    if (holder == WHO_EXTENDED) {
        a = test_lock(name, 20000);
        CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
    } else if (holder == WHO_BROKEN) {
        fairlock_options opts;
        fairlock_options_init(&opts);
        opts.name = name;
        opts.url = test_url();
        opts.ttl_ms = FAIRLOCK_FOREVER;
        opts.identity = 1;
        opts.identity_label = "endless holder";
        a = test_lock_opts(&opts);
        CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
        /* Held on after the handle, as `fairlock acquire` leaves it. */
        CHECK_RC(a, fairlock_detach(a), FAIRLOCK_OK);
        fairlock_free(a);
        a = NULL;
    } else {
        redisReply *r = redisCommand(c, "SET %s foreign-holder", name);
        CHECK(r != NULL && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    pid_t child = test_fork();
    if (child == 0) {
        fairlock_options opts;
        fairlock_options_init(&opts);
        opts.name = name;
        opts.url = test_url();
        opts.timeout_ms = 600000;
        opts.stale_timeout_ms = 300;
        opts.identity = 1;
        opts.identity_label = "doomed waiter";
        fairlock *b = test_lock_opts(&opts);
        fairlock_acquire(b); /* killed while it waits */
        _exit(1);
    }
    test_wait_queued(c, name, 1);
    char who[128];
    snprintf(who, sizeof who, "%s:who", name);
    CHECK(test_wait_int(c, 1, 20000, "EXISTS %s", who));
    if (holder == WHO_EXTENDED)
        CHECK_RC(a, fairlock_extend(a, FAIRLOCK_FOREVER), FAIRLOCK_OK);
    CHECK_INT(kill(child, SIGKILL), ==, 0);
    CHECK_INT(test_wait_child_within(child, SIGKILL, 60000), ==, 128 + SIGKILL);
    /* The queue expires by itself once the waiter's window passed. */
    CHECK(test_wait_int(c, 0, 30000, "EXISTS %s:queue", name));
    if (holder == WHO_EXTENDED) {
        CHECK_RC(a, fairlock_release(a), FAIRLOCK_OK);
        fairlock_free(a);
    } else if (holder == WHO_BROKEN) {
        char token[FAIRLOCK_TOKEN_MAX];
        CHECK(test_get_string(c, name, token, sizeof token));
        fairlock *breaker = test_lock(name, 1000);
        CHECK_RC(breaker, fairlock_release_token(breaker, token), FAIRLOCK_OK);
        fairlock_free(breaker);
    } else {
        CHECK_INT(test_int(c, "DEL %s", name), ==, 1);
    }
    CHECK_INT(test_wait_no_keys(c, name, 30000), ==, 0);
    redisFree(c);
}

static void who_goes_with_dead_waiter(void) {
    who_goes_with_dead_waiter_of(WHO_FOREIGN);
    who_goes_with_dead_waiter_of(WHO_EXTENDED);
    who_goes_with_dead_waiter_of(WHO_BROKEN);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(nonblocking_and_timeout);
    RUN_TEST(lease_follows_timeout_or_ttl);
    RUN_TEST(extend_owned_locked);
    RUN_TEST(release_errors);
    RUN_TEST(detach_keeps_the_lock);
    RUN_TEST(tokens_are_fresh);
    RUN_TEST(scoped_form);
    RUN_TEST(borrowed_connection);
    RUN_TEST(tcp_and_database);
    RUN_TEST(wrong_password);
    RUN_TEST(scripts_reload_after_flush);
    RUN_TEST(odd_names_on_the_server);
    RUN_TEST(server_dies_mid_wait);
    RUN_TEST(identity_and_stats);
    RUN_TEST(no_identity_by_default);
    RUN_TEST(who_goes_with_dead_waiter);
    return check_done();
}
