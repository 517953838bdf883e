/* test_sentinel.c -- locks through Redis Sentinel, across a failover. */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

static char sentinel_url[1024], sentinel_dir[512];
static int master_port, replica_port, sentinel_port;
/* With the fixture's tls argument, what the sentinels report (and the URL
 * names) are TLS ports, this far above the plain ones of our checks. */
static int tls_shift;

static void load_sentinel_env(void) {
    const char *var = "FAIRLOCK_TEST_SENTINEL_ENV";
    snprintf(sentinel_url, sizeof sentinel_url, "%s",
             test_fixture_value(var, "FAIRLOCK_SENTINEL_URL"));
    snprintf(sentinel_dir, sizeof sentinel_dir, "%s",
             test_fixture_value(var, "FAIRLOCK_SENTINEL_DIR"));
    master_port = atoi(
        test_fixture_value(var, "FAIRLOCK_SENTINEL_MASTER_PORT"));
    replica_port = atoi(
        test_fixture_value(var, "FAIRLOCK_SENTINEL_REPLICA_PORT"));
    sentinel_port = atoi(test_fixture_value(var, "FAIRLOCK_SENTINEL_PORT"));
    tls_shift = atoi(test_fixture_value(var, "FAIRLOCK_SENTINEL_TLS_SHIFT"));
    CHECK(sentinel_url[0] && master_port && replica_port && sentinel_port);
}

static fairlock *sentinel_lock(const char *name) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = sentinel_url;
    opts.timeout_ms = 5000;
    opts.io_timeout_ms = 1000;
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_OK);
    return lock;
}

/* The master's port as the first sentinel reports it. */
/* The master's port as the sentinel on `sentinel` reports it, or -1. */
static int reported_by(int sentinel) {
    redisContext *c = redisConnect("127.0.0.1", sentinel);
    int port = -1;
    if (c != NULL && !c->err) {
        redisReply *r = redisCommand(
            c, "SENTINEL get-master-addr-by-name mymaster");
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            port = atoi(r->element[1]->str) - tls_shift;
        freeReplyObject(r);
    }
    redisFree(c);
    return port;
}

/* The master's port as the first sentinel reports it. */
static int reported_master(void) {
    int port = reported_by(sentinel_port);
    CHECK(port > 0);
    return port;
}

/* The master all three sentinels name, or -1 while they disagree (one
 * may lag a failover, or a loaded machine may have made them fail over on
 * their own). */
static int agreed_master(void) {
    int first = reported_by(sentinel_port);
    for (int s = 1; s < 3 && first > 0; s++)
        if (reported_by(sentinel_port + s) != first)
            return -1;
    return first;
}

static long long exists_on(int port, const char *key) {
    redisContext *c = redisConnect("127.0.0.1", port);
    CHECK(c != NULL && !c->err);
    long long n = test_int(c, "EXISTS %s", key);
    redisFree(c);
    return n;
}

static void lock_on_the_master(void) {
    const char *name = "fltest:sentinel:basic";
    fairlock *lock = sentinel_lock(name);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_INT(exists_on(reported_master(), name), ==, 1);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(exists_on(reported_master(), name), ==, 0);
    fairlock_free(lock);
}

/* A master name the sentinels do not monitor: a message that names it,
 * not a hang or a bare nil. */
static void unknown_master_name(void) {
    /* The master name is the path's last part, before a query. */
    char url[1200];
    size_t path_len = strcspn(sentinel_url, "?");
    const char *name = sentinel_url + path_len;
    while (name[-1] != '/')
        name--;
    snprintf(url, sizeof url, "%.*snosuchmaster%s", (int)(name - sentinel_url),
             sentinel_url, sentinel_url + path_len);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "fltest:sentinel:unknown";
    opts.url = url;
    opts.timeout_ms = 2000;
    fairlock *lock = NULL;
    CHECK_RC(lock, fairlock_create(&opts, &lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock),
                 "does not know master 'nosuchmaster'") != NULL);
    fairlock_free(lock);
}

/* An ACL user on master and replica made by `fairlock acl --sentinel`,
 * and its sentinel user on the three sentinels (consecutive ports), with
 * the credentials given as options. */
static void least_privilege(void) {
    char args[256], user[64], sentinel_user[64], password[64], prefix[64];
    int pid = (int)getpid();
    snprintf(user, sizeof user, "fltest-sentinel-%d", pid);
    snprintf(sentinel_user, sizeof sentinel_user, "fltest-watch-%d", pid);
    snprintf(password, sizeof password, "sentinel-pw-%d", pid);
    snprintf(prefix, sizeof prefix, "fltest:sentinel:%d:", pid);
    snprintf(args, sizeof args, "%s --user %s --sentinel-user %s", prefix, user,
             sentinel_user);
    int data_ports[2] = {master_port, replica_port};
    for (int i = 0; i < 5; i++) {
        int port = i < 2 ? data_ports[i] : sentinel_port + i - 2;
        redisContext *c = redisConnect("127.0.0.1", port);
        CHECK(c != NULL && !c->err);
        test_acl_setuser(c, args, i < 2 ? 0 : 1, password);
        redisFree(c);
    }
    char name[128];
    snprintf(name, sizeof name, "%slock", prefix);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = sentinel_url;
    opts.timeout_ms = 5000;
    opts.io_timeout_ms = 1000;
    opts.user = user;
    opts.password = password;
    opts.sentinel_user = sentinel_user;
    opts.sentinel_password = password;
    opts.auto_renew = 1;
    opts.ttl_ms = 300;
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    test_sleep_ms(700);
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_HELD);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);

    /* The sentinels are asked with AUTH: a wrong password fails there. */
    opts.sentinel_password = "wrong-sentinel-pw";
    lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    fprintf(stderr, "wrong sentinel password: %s\n", fairlock_errmsg(lock));
    CHECK(strstr(fairlock_errmsg(lock), "authentication to a sentinel") !=
          NULL);
    CHECK(strstr(fairlock_errmsg(lock), "wrong-sentinel-pw") == NULL);
    fairlock_free(lock);

    /* Outside the prefix: no permission, naming the key. */
    opts.sentinel_password = password;
    opts.name = "fltest:sentinel:elsewhere";
    lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "no permission") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), "fltest:sentinel:elsewhere") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), password) == NULL);
    fairlock_free(lock);

    for (int i = 0; i < 5; i++) {
        int port = i < 2 ? data_ports[i] : sentinel_port + i - 2;
        redisContext *c = redisConnect("127.0.0.1", port);
        CHECK(c != NULL && !c->err);
        test_acl_deluser(c, i < 2 ? user : sentinel_user);
        redisFree(c);
    }
}

typedef struct {
    int64_t grants, errors, in_section, overlaps, counter;
    int64_t grants_at_kill;
    volatile int stop;
} shared_run;

static void worker(const char *name, shared_run *run) {
    fairlock *lock = sentinel_lock(name);
    while (!run->stop) {
        if (fairlock_acquire(lock) != FAIRLOCK_OK) {
            __atomic_add_fetch(&run->errors, 1, __ATOMIC_SEQ_CST);
            test_sleep_ms(50);
            continue;
        }
        if (__atomic_add_fetch(&run->in_section, 1, __ATOMIC_SEQ_CST) != 1)
            __atomic_add_fetch(&run->overlaps, 1, __ATOMIC_SEQ_CST);
        int64_t v = run->counter;
        test_sleep_ms(1);
        run->counter = v + 1;
        __atomic_sub_fetch(&run->in_section, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&run->grants, 1, __ATOMIC_SEQ_CST);
        if (fairlock_release(lock) != FAIRLOCK_OK)
            __atomic_add_fetch(&run->errors, 1, __ATOMIC_SEQ_CST);
    }
    fairlock_free(lock);
}

static pid_t read_pid(const char *role) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s/redis.pid", sentinel_dir, role);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    long pid = 0;
    CHECK(fscanf(f, "%ld", &pid) == 1);
    fclose(f);
    return (pid_t)pid;
}

static int64_t grants(shared_run *run) {
    return __atomic_load_n(&run->grants, __ATOMIC_SEQ_CST);
}

/* Deadlines for events that take a second or two on an idle machine: only
 * a failure reaches them, never a slow machine. */
#define GRANTS_DEADLINE_MS 60000
#define FAILOVER_DEADLINE_MS 60000

static int64_t ms_since(int64_t ns) { return (test_now_ns() - ns) / 1000000; }

/* Polls until the workers have made `target` grants or deadline_ms has
 * passed since from_ns. */
static void wait_for_grants(shared_run *run, int64_t target, int64_t from_ns,
                            int64_t deadline_ms) {
    while (grants(run) < target && ms_since(from_ns) < deadline_ms)
        test_sleep_ms(10);
}

/* Whether the server on `port` is a replica in sync with its master. */
static int in_sync(int port) {
    redisContext *c = redisConnect("127.0.0.1", port);
    int ok = 0;
    if (c != NULL && !c->err) {
        redisReply *r = redisCommand(c, "INFO replication");
        ok = r != NULL && r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "master_link_status:up") != NULL;
        freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

/* Whether the sentinel on `sentinel` lists the replica on `port` as up
 * (flags exactly "slave": no s_down, no disconnected). */
static int sentinel_sees_replica(int sentinel, int port) {
    redisContext *c = redisConnect("127.0.0.1", sentinel);
    int ok = 0;
    if (c != NULL && !c->err) {
        redisReply *r = redisCommand(c, "SENTINEL REPLICAS mymaster");
        for (size_t i = 0;
             r && r->type == REDIS_REPLY_ARRAY && i < r->elements && !ok; i++) {
            const redisReply *e = r->element[i];
            int port_matches = 0, up = 0;
            for (size_t k = 0;
                 e->type == REDIS_REPLY_ARRAY && k + 1 < e->elements; k += 2) {
                const char *key = e->element[k]->str;
                const char *value = e->element[k + 1]->str;
                if (key == NULL || value == NULL)
                    continue;
                if (strcmp(key, "port") == 0)
                    port_matches = atoi(value) == port;
                else if (strcmp(key, "flags") == 0)
                    up = strcmp(value, "slave") == 0;
            }
            ok = port_matches && up;
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

/* The fixture's server on `port` (role dir `role`), started again as the
 * fixture starts it, as a replica of `master_of`; returns once it is in
 * sync and all three sentinels count it.  The setup then has a master and
 * a replica again, so the failover test can run again: ctest --repeat
 * does not set its fixture up again. */
static void restart_as_replica(const char *role, int port, int master_of) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "redis-server --port %d --bind 127.0.0.1 --daemonize yes "
             "--pidfile %s/%s/redis.pid --logfile %s/%s/redis.log "
             "--dir %s/%s --save '' --appendonly no "
             "--replicaof 127.0.0.1 %d >/dev/null 2>&1",
             port, sentinel_dir, role, sentinel_dir, role, sentinel_dir, role,
             master_of);
    CHECK(system(cmd) == 0);
    int64_t start = test_now_ns();
    int ready = 0;
    while (!ready && ms_since(start) < FAILOVER_DEADLINE_MS) {
        ready = in_sync(port);
        for (int s = 0; s < 3 && ready; s++)
            ready = sentinel_sees_replica(sentinel_port + s, port);
        if (!ready)
            test_sleep_ms(50);
    }
    if (!ready) {
        /* What was missing, for the log of a failed run. */
        fprintf(stderr, "restarted %s on %d: in sync %d;", role, port,
                in_sync(port));
        for (int s = 0; s < 3; s++)
            fprintf(stderr, " sentinel %d sees it %d;", sentinel_port + s,
                    sentinel_sees_replica(sentinel_port + s, port));
        fprintf(stderr, "\n");
        char log[2048];
        snprintf(log, sizeof log,
                 "tail -n 15 %s/%s/redis.log %s/sentinel-0/redis.log >&2",
                 sentinel_dir, role, sentinel_dir);
        if (system(log) != 0)
            fprintf(stderr, "(no logs)\n");
    }
    CHECK(ready);
}

/* kill -9 of the master while four processes use the lock: Sentinel
 * promotes the replica, the clients find it on their next command, and
 * go on.  Figures are printed for the documentation.  The killed server is
 * started again as a replica at the end. */
static void failover_under_load(void) {
    const char *name = "fltest:sentinel:failover";
    /* The fixture's master, or its replica if an earlier run failed over
     * to it: the one all sentinels name, with the other in sync behind it
     * and seen by all of them, so that the kill below is the only change. */
    int old = -1;
    int64_t settle_start = test_now_ns();
    while (ms_since(settle_start) < FAILOVER_DEADLINE_MS) {
        old = agreed_master();
        int other = old == master_port ? replica_port : master_port;
        int settled = (old == master_port || old == replica_port) &&
                      in_sync(other);
        for (int s = 0; s < 3 && settled; s++)
            settled = sentinel_sees_replica(sentinel_port + s, other);
        if (settled)
            break;
        old = -1;
        test_sleep_ms(50);
    }
    CHECK(old == master_port || old == replica_port);
    const char *old_role = old == master_port ? "master" : "replica";
    int successor = old == master_port ? replica_port : master_port;
    shared_run *run = test_shared(sizeof *run);
    enum { WORKERS = 4 };
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        /* test_fork: a worker dies with this process, so a failed check
         * fails the test at once instead of leaving workers behind. */
        pids[i] = test_fork();
        if (pids[i] == 0) {
            worker(name, run);
            _exit(0);
        }
    }
    wait_for_grants(run, 100, test_now_ns(), GRANTS_DEADLINE_MS);
    CHECK_INT(grants(run), >=, 100);
    run->grants_at_kill = grants(run);
    int64_t killed_at = test_now_ns();
    CHECK(kill(read_pid(old_role), SIGKILL) == 0);

    while (agreed_master() != successor &&
           ms_since(killed_at) < FAILOVER_DEADLINE_MS)
        test_sleep_ms(20);
    CHECK_INT(agreed_master(), ==, successor);
    int64_t target = grants(run) + 100;
    wait_for_grants(run, target, test_now_ns(), GRANTS_DEADLINE_MS);
    int64_t recovered_ms = ms_since(killed_at);
    CHECK_INT(grants(run), >=, target);
    run->stop = 1;
    for (int i = 0; i < WORKERS; i++)
        CHECK_INT(test_wait_child(pids[i], 0), ==, 0);
    fprintf(stderr,
            "   sentinel failover: %d processes, %lld grants (%lld before the "
            "kill), %lld errors during the failover, %lld overlaps, lost "
            "updates %lld, 100 more grants %lld ms after the kill\n",
            WORKERS, (long long)run->grants, (long long)run->grants_at_kill,
            (long long)run->errors, (long long)run->overlaps,
            (long long)(run->grants - run->counter), (long long)recovered_ms);
    CHECK_INT(run->overlaps, ==, 0);
    CHECK_INT(run->counter, ==, run->grants);
    redisContext *c = redisConnect("127.0.0.1", successor);
    CHECK(c != NULL && !c->err);
    CHECK_INT(test_int(c, "EXISTS %s %s:queue %s:seq", name, name, name), ==,
              0);
    redisFree(c);
    restart_as_replica(old_role, old, successor);
}

/* ---------------------------------------------------------------------------
 * The non-blocking API behind sentinels
 * ------------------------------------------------------------------------- */

typedef struct async_seen {
    int calls, code;
} async_seen;

static void async_record(fairlock *lock, int code, void *arg) {
    (void)lock;
    async_seen *s = arg;
    s->calls++;
    s->code = code;
}

/* Drives one handle with poll() until its callback has run. */
static int async_run(fairlock *lock, async_seen *s) {
    int64_t end = test_now_ns() + (int64_t)60000 * 1000000;
    while (!s->calls) {
        CHECK(test_now_ns() < end);
        int ev = fairlock_async_events(lock);
        struct pollfd p = {fairlock_async_fd(lock), 0, 0};
        p.events = (short)((ev & FAIRLOCK_EV_READ ? POLLIN : 0) |
                           (ev & FAIRLOCK_EV_WRITE ? POLLOUT : 0));
        int64_t t = fairlock_async_timeout(lock);
        int n = poll(&p, p.fd >= 0 && ev ? 1 : 0,
                     t < 0 || t > 100 ? 100 : (int)t);
        fairlock_async_process(lock, n > 0 ? ev : 0);
    }
    return s->code;
}

/* The master is asked of the sentinels one reply at a time, then the
 * acquire and release run on it; a master name they do not know is a
 * message from the loop, not a hang. */
static void async_behind_sentinels(void) {
    const char *name = "fltest:sentinel:async";
    fairlock *lock = sentinel_lock(name);
    async_seen s = {0, -1};
    CHECK_RC(lock, fairlock_acquire_start(lock, 5000, async_record, &s),
             FAIRLOCK_OK);
    CHECK_RC(lock, async_run(lock, &s), FAIRLOCK_OK);
    CHECK_INT(exists_on(reported_master(), name), ==, 1);
    s.calls = 0;
    CHECK_RC(lock, fairlock_release_start(lock, async_record, &s), FAIRLOCK_OK);
    CHECK_RC(lock, async_run(lock, &s), FAIRLOCK_OK);
    CHECK_INT(exists_on(reported_master(), name), ==, 0);
    fairlock_free(lock);

    char url[1200];
    size_t path_len = strcspn(sentinel_url, "?");
    const char *master = sentinel_url + path_len;
    while (master[-1] != '/')
        master--;
    snprintf(url, sizeof url, "%.*snosuchmaster%s",
             (int)(master - sentinel_url), sentinel_url,
             sentinel_url + path_len);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "fltest:sentinel:async_unknown";
    opts.url = url;
    opts.timeout_ms = 2000;
    lock = NULL;
    CHECK_RC(lock, fairlock_create(&opts, &lock), FAIRLOCK_OK);
    s.calls = 0;
    CHECK_RC(lock, fairlock_acquire_start(lock, 2000, async_record, &s),
             FAIRLOCK_OK);
    CHECK_RC(lock, async_run(lock, &s), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock),
                 "does not know master 'nosuchmaster'") != NULL);
    fairlock_free(lock);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    load_sentinel_env();
    RUN_TEST(lock_on_the_master);
    RUN_TEST(unknown_master_name);
    RUN_TEST(least_privilege);
    RUN_TEST(async_behind_sentinels);
    RUN_TEST(failover_under_load);
    return check_done();
}
