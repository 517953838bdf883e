/* test_cluster.c -- locks on a real Redis Cluster: hash slots, redirects,
 * a slot migration and a failover while locks are in use. */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

static char cluster_url[1024];
static int base_port, node_count;
/* With the fixture's tls argument: how far above its plain port a node
 * listens with TLS, which node-to-node traffic (MIGRATE) then uses. */
static int tls_shift;

/* Deadlines for events that take a second or two on an idle machine
 * (grants, a failover, gossip, a slot emptied): only a failure reaches
 * them, never a slow machine.  No duration is asserted. */
#define EVENT_DEADLINE_MS 60000

static int64_t ms_since(int64_t ns) { return (test_now_ns() - ns) / 1000000; }

static void load_cluster_env(void) {
    const char *var = "FAIRLOCK_TEST_CLUSTER_ENV";
    snprintf(cluster_url, sizeof cluster_url, "%s",
             test_fixture_value(var, "FAIRLOCK_CLUSTER_URL"));
    base_port = atoi(test_fixture_value(var, "FAIRLOCK_CLUSTER_BASE_PORT"));
    node_count = atoi(test_fixture_value(var, "FAIRLOCK_CLUSTER_NODES"));
    tls_shift = atoi(test_fixture_value(var, "FAIRLOCK_CLUSTER_TLS_SHIFT"));
    CHECK(cluster_url[0] != '\0' && base_port > 0 && node_count > 0);
}

static redisContext *node(int port) {
    redisContext *c = redisConnect("127.0.0.1", port);
    CHECK(c != NULL && !c->err);
    return c;
}

/* A command on a node; fails the test on an error reply. */
static redisReply *on_node(int port, const char *fmt, ...) {
    redisContext *c = node(port);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    CHECK(r != NULL);
    if (r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "port %d: %s\n", port, r->str);
    CHECK(r->type != REDIS_REPLY_ERROR);
    redisFree(c);
    return r;
}

/* Port of the master serving `slot`, from CLUSTER SLOTS. */
static int master_of_slot(long long slot) {
    redisReply *r = on_node(base_port, "CLUSTER SLOTS");
    int port = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *range = r->element[i];
        if (slot >= range->element[0]->integer &&
            slot <= range->element[1]->integer)
            port = (int)range->element[2]->element[1]->integer;
    }
    freeReplyObject(r);
    CHECK(port > 0);
    return port;
}

/* A master other than the one on `port` (roles change in a failover, so
 * the test can run again on the same cluster). */
static int other_master(int port) {
    redisReply *r = on_node(base_port, "CLUSTER SLOTS");
    int other = 0;
    for (size_t i = 0; i < r->elements && other == 0; i++) {
        int master = (int)r->element[i]->element[2]->element[1]->integer;
        if (master != port)
            other = master;
    }
    freeReplyObject(r);
    CHECK(other > 0);
    return other;
}

static long long slot_of(const char *key) {
    redisReply *r = on_node(base_port, "CLUSTER KEYSLOT %s", key);
    long long slot = r->integer;
    freeReplyObject(r);
    return slot;
}

static char *node_id(int port) {
    redisReply *r = on_node(port, "CLUSTER MYID");
    char *id = strdup(r->str);
    freeReplyObject(r);
    return id;
}

static int never_interrupt(void *arg) {
    (void)arg;
    return 0;
}

/* timeout_ms and io_timeout_ms 0 keep 10 s and the default; slice_ms > 0
 * cuts waits into BLPOPs of at most that long (through an interrupt
 * callback that never fires). */
static fairlock *cluster_lock_io(const char *name, int hash_tag,
                                 int64_t timeout_ms, int64_t io_timeout_ms,
                                 int64_t slice_ms, int *rc) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = cluster_url;
    opts.timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    opts.hash_tag = hash_tag;
    if (io_timeout_ms > 0)
        opts.io_timeout_ms = io_timeout_ms;
    if (slice_ms > 0) {
        opts.interrupt = never_interrupt;
        opts.interrupt_check_ms = slice_ms;
    }
    fairlock *lock = NULL;
    *rc = fairlock_create(&opts, &lock);
    return lock;
}

static fairlock *cluster_lock(const char *name, int hash_tag, int *rc) {
    return cluster_lock_io(name, hash_tag, 0, 0, 0, rc);
}

static void names_must_share_a_slot(void) {
    int rc;
    fairlock *lock = cluster_lock("plain:name", 0, &rc);
    CHECK_INT(rc, ==, FAIRLOCK_INVALID);
    CHECK(strstr(fairlock_errmsg(lock), "hash slot") != NULL);
    fairlock_free(lock);
    lock = cluster_lock("{}:empty-tag", 0, &rc);
    CHECK_INT(rc, ==, FAIRLOCK_INVALID);
    fairlock_free(lock);

    /* hash_tag wraps the name: the keys are {plain:name}... */
    lock = cluster_lock("plain:name", 1, &rc);
    CHECK_INT(rc, ==, FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    int port = master_of_slot(slot_of("{plain:name}"));
    redisReply *r = on_node(port, "EXISTS {plain:name}");
    CHECK_INT(r->integer, ==, 1);
    freeReplyObject(r);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);
}

/* A plain redis:// URL naming one node: a lock whose slot lives elsewhere
 * fails with a message that says to use a cluster URL (not a bare MOVED),
 * and one whose slot is on that node works. */
static void plain_url_on_a_cluster_node(void) {
    int port = master_of_slot(0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    int moved = 0, local = 0;
    for (int i = 0; i < 24; i++) {
        char name[64];
        snprintf(name, sizeof name, "{fltest-plain-%d}:job", i);
        fairlock_options opts;
        fairlock_options_init(&opts);
        opts.name = name;
        opts.url = url;
        opts.timeout_ms = 2000;
        fairlock *lock = NULL;
        CHECK_RC(lock, fairlock_create(&opts, &lock), FAIRLOCK_OK);
        int rc = fairlock_acquire(lock);
        if (master_of_slot(slot_of(name)) == port) {
            CHECK_RC(lock, rc, FAIRLOCK_OK);
            CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
            local++;
        } else {
            CHECK_INT(rc, ==, FAIRLOCK_REDIS);
            CHECK(strstr(fairlock_errmsg(lock), "redis+cluster://") != NULL);
            moved++;
        }
        fairlock_free(lock);
    }
    CHECK(moved > 0 && local > 0);
}

/* Names whose tags hash to every master; each lock works through the seed
 * URL by following MOVED, and leaves nothing behind. */
static void locks_on_every_master(void) {
    int seen[64] = {0}, masters = 0;
    for (int i = 0; i < 24; i++) {
        char name[64];
        snprintf(name, sizeof name, "{fltest-%d}:job", i);
        int rc;
        fairlock *a = cluster_lock(name, 0, &rc);
        fairlock *b = cluster_lock(name, 0, &rc);
        CHECK_RC(a, fairlock_acquire(a), FAIRLOCK_OK);
        CHECK_RC(b, fairlock_acquire_ex(b, 0, 0, FAIRLOCK_DEFAULT),
                 FAIRLOCK_TIMEOUT);
        CHECK_RC(a, fairlock_release(a), FAIRLOCK_OK);
        CHECK_RC(b, fairlock_acquire(b), FAIRLOCK_OK);
        CHECK_RC(b, fairlock_release(b), FAIRLOCK_OK);
        int port = master_of_slot(slot_of(name));
        int idx = port - base_port;
        CHECK(idx >= 0 && idx < 64);
        if (!seen[idx]++)
            masters++;
        redisReply *r = on_node(port, "EXISTS %s %s:queue %s:seq", name, name,
                                name);
        CHECK_INT(r->integer, ==, 0);
        freeReplyObject(r);
        fairlock_free(a);
        fairlock_free(b);
    }
    CHECK_INT(masters, ==, 3);
}

typedef struct {
    int64_t grants;
    int64_t errors;
    int64_t in_section;
    int64_t overlaps;
    int64_t counter;
} shared_counts;

typedef struct {
    shared_counts counts;
    volatile int stop;
    int64_t timeout_ms;    /* acquire timeout, also the lease; 0: 10 s */
    int64_t io_timeout_ms; /* of the workers' handles; 0: the default */
    int64_t slice_ms;      /* longest BLPOP of a wait; 0: no limit */
} shared_run;

/* Loops acquire → non-atomic increment → release until run->stop,
 * counting Redis errors (expected only briefly around a failover). */
static void worker(const char *name, shared_run *run) {
    shared_counts *counts = &run->counts;
    int rc;
    fairlock *lock = cluster_lock_io(name, 0, run->timeout_ms,
                                     run->io_timeout_ms, run->slice_ms, &rc);
    CHECK_INT(rc, ==, FAIRLOCK_OK);
    while (!run->stop) {
        rc = fairlock_acquire(lock);
        if (rc != FAIRLOCK_OK) {
            fprintf(stderr, "   acquire: %s: %s\n", fairlock_code_name(rc),
                    fairlock_errmsg(lock));
            __atomic_add_fetch(&counts->errors, 1, __ATOMIC_SEQ_CST);
            test_sleep_ms(20);
            continue;
        }
        if (__atomic_add_fetch(&counts->in_section, 1, __ATOMIC_SEQ_CST) != 1)
            __atomic_add_fetch(&counts->overlaps, 1, __ATOMIC_SEQ_CST);
        int64_t v = counts->counter;
        test_sleep_ms(1);
        counts->counter = v + 1;
        __atomic_sub_fetch(&counts->in_section, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&counts->grants, 1, __ATOMIC_SEQ_CST);
        if ((rc = fairlock_release(lock)) != FAIRLOCK_OK) {
            fprintf(stderr, "   release: %s: %s\n", fairlock_code_name(rc),
                    fairlock_errmsg(lock));
            __atomic_add_fetch(&counts->errors, 1, __ATOMIC_SEQ_CST);
        }
    }
    fairlock_free(lock);
}

static pid_t spawn_workers(const char *name, shared_run *run, int n,
                           pid_t *pids) {
    for (int i = 0; i < n; i++) {
        pids[i] = test_fork(); /* dies with the test: no orphan */
        if (pids[i] == 0) {
            worker(name, run);
            _exit(0);
        }
    }
    return pids[0];
}

static void stop_workers(shared_run *run, int n, const pid_t *pids) {
    run->stop = 1;
    for (int i = 0; i < n; i++)
        /* A worker stuck in a call fails the test instead of hanging
         * it; the bound is far above any call's own deadline. */
        CHECK_INT(test_wait_child_within(pids[i], 0, 120000), ==, 0);
}

static int64_t grants_now(shared_run *run) {
    return __atomic_load_n(&run->counts.grants, __ATOMIC_SEQ_CST);
}

static void wait_for_grants(shared_run *run, int64_t more) {
    int64_t target = grants_now(run) + more;
    int64_t from = test_now_ns();
    while (grants_now(run) < target && ms_since(from) < EVENT_DEADLINE_MS)
        test_sleep_ms(10);
    CHECK_INT(grants_now(run), >=, target);
}

/* Moves the slot of `name` to another master the way redis-cli --cluster
 * reshard does (IMPORTING/MIGRATING, MIGRATE the keys, SETSLOT NODE),
 * while workers hammer the lock: ASK and MOVED are followed, no grant
 * overlaps and the workers see no errors. */
static void slot_migration_under_load(void) {
    const char *name = "{fltest-migrate}:job";
    long long slot = slot_of(name);
    int from = master_of_slot(slot);
    int to = other_master(from);
    char *from_id = node_id(from), *to_id = node_id(to);

    shared_run *run = test_shared(sizeof *run);
    /* A call refused while keys move is retried until its deadline: far
     * beyond any time a loaded machine needs to move them. */
    run->timeout_ms = 90000;
    run->io_timeout_ms = 90000;
    pid_t pids[4];
    spawn_workers(name, run, 4, pids);
    wait_for_grants(run, 50);

    freeReplyObject(
        on_node(to, "CLUSTER SETSLOT %lld IMPORTING %s", slot, from_id));
    freeReplyObject(
        on_node(from, "CLUSTER SETSLOT %lld MIGRATING %s", slot, to_id));
    /* Until the slot is empty on `from` (new keys of the slot go to `to`,
     * so this ends); a slot still holding keys would make SETSLOT NODE
     * fail below. */
    int64_t migrate_from = test_now_ns();
    for (;;) {
        CHECK_INT(ms_since(migrate_from), <, EVENT_DEADLINE_MS);
        redisReply *keys = on_node(from, "CLUSTER GETKEYSINSLOT %lld 100",
                                   slot);
        size_t n = keys->elements;
        for (size_t i = 0; i < n; i++) {
            redisContext *c = node(from);
            redisReply *m = redisCommand(c, "MIGRATE 127.0.0.1 %d %s 0 5000",
                                         to + tls_shift, keys->element[i]->str);
            CHECK(m != NULL);
            /* A key may vanish between GETKEYSINSLOT and MIGRATE. */
            freeReplyObject(m);
            redisFree(c);
        }
        freeReplyObject(keys);
        if (n == 0)
            break;
        test_sleep_ms(5);
    }
    for (int p = 0; p < node_count; p++) {
        redisContext *c = node(base_port + p);
        redisReply *r = redisCommand(c, "CLUSTER SETSLOT %lld NODE %s", slot,
                                     to_id);
        freeReplyObject(r); /* replicas answer an error: ignored */
        redisFree(c);
    }
    CHECK_INT(master_of_slot(slot), ==, to);
    wait_for_grants(run, 100);
    stop_workers(run, 4, pids);
    fprintf(stderr, "   migration: %lld grants, %lld errors, %lld overlaps\n",
            (long long)run->counts.grants, (long long)run->counts.errors,
            (long long)run->counts.overlaps);
    CHECK_INT(run->counts.overlaps, ==, 0);
    CHECK_INT(run->counts.counter, ==, run->counts.grants);
    CHECK_INT(run->counts.errors, ==, 0);
    redisReply *r = on_node(to, "EXISTS %s %s:queue %s:seq", name, name, name);
    CHECK_INT(r->integer, ==, 0);
    freeReplyObject(r);
    free(from_id);
    free(to_id);
}

/* How many TRYAGAIN and ASK replies a node has sent (INFO errorstats). */
static long long migration_replies(int port) {
    redisReply *r = on_node(port, "INFO errorstats");
    long long total = 0;
    const char *names[2] = {"errorstat_TRYAGAIN:count=",
                            "errorstat_ASK:count="};
    for (int i = 0; i < 2; i++) {
        const char *at = strstr(r->str, names[i]);
        if (at != NULL)
            total += atoll(at + strlen(names[i]));
    }
    freeReplyObject(r);
    return total;
}

/* How long the slot stays half-way in a migration: until the callers have
 * met it (at least one TRYAGAIN or ASK reply, and the free lock's acquire
 * under way for a while) and at least HOLD_MIN_MS have passed.  Only a
 * failure reaches HOLD_CAP_MS; every caller's deadline (acquire timeout,
 * lease, I/O timeout, which bounds a refused release's retries) is
 * HOLD_CALLER_DEADLINE_MS, far beyond it, so a slow machine that keeps
 * the slot migrating longer cannot make a call fail. */
#define HOLD_MIN_MS 3000
#define HOLD_FREE_LOCK_MS 1000
#define HOLD_CAP_MS 60000
#define HOLD_CALLER_DEADLINE_MS 90000

/* A lock nobody uses yet, taken and given back by a child while its slot
 * is in migration: with none of its keys anywhere, the owner answers ASK
 * and the importing node TRYAGAIN. */
typedef struct {
    int started; /* the acquire is about to be called */
    int acquire_rc, release_rc;
    char msg[256];
} free_lock_result;

static pid_t use_free_lock(const char *name, free_lock_result *out) {
    pid_t pid = test_fork();
    if (pid == 0) {
        int rc;
        fairlock *lock = cluster_lock_io(name, 0, HOLD_CALLER_DEADLINE_MS,
                                         HOLD_CALLER_DEADLINE_MS, 0, &rc);
        CHECK_INT(rc, ==, FAIRLOCK_OK);
        __atomic_store_n(&out->started, 1, __ATOMIC_SEQ_CST);
        out->acquire_rc = fairlock_acquire(lock);
        snprintf(out->msg, sizeof out->msg, "%s", fairlock_errmsg(lock));
        out->release_rc = out->acquire_rc == FAIRLOCK_OK
                              ? fairlock_release(lock)
                              : FAIRLOCK_OK;
        if (out->release_rc != FAIRLOCK_OK)
            snprintf(out->msg, sizeof out->msg, "%s", fairlock_errmsg(lock));
        fairlock_free(lock);
        _exit(0);
    }
    return pid;
}

/* Holds the lock's slot half-way in a migration -- MIGRATING on its owner,
 * IMPORTING on another master, no key moved -- while four processes use
 * the lock, then puts the slot back.  Meanwhile a script on the busy lock
 * meets TRYAGAIN (some of its keys are missing on the owner), a BLPOP of a
 * wake list meets ASK and blocks on the importing node (the workers cut
 * their waits into 20 ms BLPOPs, so new ones are sent during the window),
 * and a free lock of the same slot meets ASK and then TRYAGAIN
 * (use_free_lock).  No error may reach a caller: each call retries until
 * its own deadline.  The window ends on the event it is there for, the
 * callers meeting the migration (see HOLD_MIN_MS), not after a fixed time
 * in which a slow machine might not get there.  No script can run while
 * the slot is in this state (Redis refuses a multi-key command unless
 * every key is on the node asked), so grants pause and resume after it. */
static void slot_held_migrating(void) {
    const char *name = "{fltest-hold}:job";
    const char *free_name = "{fltest-hold}:free";
    long long slot = slot_of(name);
    CHECK_INT(slot_of(free_name), ==, slot);
    int owner = master_of_slot(slot);
    int other = other_master(owner);
    char *owner_id = node_id(owner), *other_id = node_id(other);

    shared_run *run = test_shared(sizeof *run);
    free_lock_result *solo = test_shared(sizeof *solo);
    run->timeout_ms = HOLD_CALLER_DEADLINE_MS;
    run->io_timeout_ms = HOLD_CALLER_DEADLINE_MS;
    run->slice_ms = 20;
    pid_t pids[4];
    spawn_workers(name, run, 4, pids);
    wait_for_grants(run, 50);

    long long before_replies = migration_replies(owner) +
                               migration_replies(other);
    freeReplyObject(
        on_node(other, "CLUSTER SETSLOT %lld IMPORTING %s", slot, owner_id));
    freeReplyObject(
        on_node(owner, "CLUSTER SETSLOT %lld MIGRATING %s", slot, other_id));
    int64_t held_from = test_now_ns(), solo_seen = 0;
    int64_t before = grants_now(run);
    pid_t solo_pid = use_free_lock(free_name, solo);
    long long replies = 0;
    for (;;) {
        replies = migration_replies(owner) + migration_replies(other) -
                  before_replies;
        if (solo_seen == 0 && __atomic_load_n(&solo->started, __ATOMIC_SEQ_CST))
            solo_seen = test_now_ns();
        if ((replies > 0 && solo_seen != 0 &&
             ms_since(held_from) >= HOLD_MIN_MS &&
             ms_since(solo_seen) >= HOLD_FREE_LOCK_MS) ||
            ms_since(held_from) >= HOLD_CAP_MS)
            break;
        test_sleep_ms(20);
    }
    int64_t held_ms = ms_since(held_from);
    int64_t during = grants_now(run) - before;
    freeReplyObject(on_node(owner, "CLUSTER SETSLOT %lld STABLE", slot));
    freeReplyObject(on_node(other, "CLUSTER SETSLOT %lld STABLE", slot));
    CHECK_INT(master_of_slot(slot), ==, owner);

    wait_for_grants(run, 50);
    stop_workers(run, 4, pids);
    CHECK_INT(test_wait_child_within(solo_pid, 0, 120000), ==, 0);
    fprintf(stderr,
            "   held migrating %lld ms: %lld grants (%lld while migrating), "
            "%lld errors, %lld overlaps, %lld TRYAGAIN/ASK replies; free "
            "lock: %s, %s\n",
            (long long)held_ms, (long long)run->counts.grants,
            (long long)during, (long long)run->counts.errors,
            (long long)run->counts.overlaps, replies,
            fairlock_code_name(solo->acquire_rc),
            fairlock_code_name(solo->release_rc));
    if (solo->acquire_rc != FAIRLOCK_OK || solo->release_rc != FAIRLOCK_OK)
        fprintf(stderr, "   free lock: %s\n", solo->msg);
    CHECK_INT(run->counts.overlaps, ==, 0);
    CHECK_INT(run->counts.counter, ==, run->counts.grants);
    CHECK_INT(run->counts.errors, ==, 0);
    CHECK_INT(solo->acquire_rc, ==, FAIRLOCK_OK);
    CHECK_INT(solo->release_rc, ==, FAIRLOCK_OK);
    /* The callers did run into the migration (and retried through it). */
    CHECK_INT(replies, >, 0);
    CHECK(solo_seen != 0);
    redisReply *r = on_node(owner, "EXISTS %s %s:queue %s:seq %s", name, name,
                            name, free_name);
    CHECK_INT(r->integer, ==, 0);
    freeReplyObject(r);
    free(owner_id);
    free(other_id);
}

/* Port of a replica of the master on `port` (waiting for the master to
 * learn of it: gossip may lag the fixture's view). */
static int replica_of(int port) {
    char *id = node_id(port);
    redisReply *r = NULL;
    int64_t from = test_now_ns();
    for (;;) {
        freeReplyObject(r);
        r = on_node(port, "CLUSTER REPLICAS %s", id);
        if (r->elements >= 1 || ms_since(from) >= EVENT_DEADLINE_MS)
            break;
        test_sleep_ms(20);
    }
    free(id);
    CHECK(r->elements >= 1);
    const char *line = r->element[0]->str;
    const char *colon = strchr(line, ':');
    CHECK(colon != NULL);
    int replica = atoi(colon + 1);
    freeReplyObject(r);
    return replica;
}

/* CLUSTER FAILOVER on the replica of the lock's master while workers run:
 * they may see a few errors while the roles swap, then go on, and mutual
 * exclusion holds throughout. */
static void failover_under_load(void) {
    const char *name = "{fltest-failover}:job";
    long long slot = slot_of(name);
    int master = master_of_slot(slot);
    int replica = replica_of(master);
    shared_run *run = test_shared(sizeof *run);
    pid_t pids[4];
    spawn_workers(name, run, 4, pids);
    wait_for_grants(run, 50);
    freeReplyObject(on_node(replica, "CLUSTER FAILOVER"));
    int64_t failover_from = test_now_ns();
    while (master_of_slot(slot) != replica &&
           ms_since(failover_from) < EVENT_DEADLINE_MS)
        test_sleep_ms(20);
    CHECK_INT(master_of_slot(slot), ==, replica);
    wait_for_grants(run, 100);
    stop_workers(run, 4, pids);
    fprintf(stderr, "   failover: %lld grants, %lld errors, %lld overlaps\n",
            (long long)run->counts.grants, (long long)run->counts.errors,
            (long long)run->counts.overlaps);
    CHECK_INT(run->counts.overlaps, ==, 0);
    CHECK_INT(run->counts.counter, ==, run->counts.grants);
}

/* An ACL user made by `fairlock acl --cluster` on every node takes locks
 * under its prefix on every master (following MOVED), and gets "no
 * permission" naming the key outside it. */
static void least_privilege(void) {
    char args[256], user[64], password[64], prefix[64];
    int pid = (int)getpid();
    snprintf(user, sizeof user, "fltest-cluster-%d", pid);
    snprintf(password, sizeof password, "cluster-pw-%d", pid);
    snprintf(prefix, sizeof prefix, "fltest:cluster:%d:", pid);
    snprintf(args, sizeof args, "%s --user %s --cluster", prefix, user);
    for (int i = 0; i < node_count; i++) {
        redisContext *c = node(base_port + i);
        test_acl_setuser(c, args, 0, password);
        redisFree(c);
    }
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.url = cluster_url;
    opts.timeout_ms = 5000;
    opts.user = user;
    opts.password = password;
    char name[128];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "%s{%d}", prefix, i);
        opts.name = name;
        fairlock *lock = test_lock_opts(&opts);
        CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
        CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
        fairlock_free(lock);
    }
    opts.name = "fltest:elsewhere:{1}";
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "no permission") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), "fltest:elsewhere:{1}") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), password) == NULL);
    fairlock_free(lock);
    for (int i = 0; i < node_count; i++) {
        redisContext *c = node(base_port + i);
        test_acl_deluser(c, user);
        redisFree(c);
    }
}

/* ---------------------------------------------------------------------------
 * The non-blocking API on a cluster
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

/* One poll() turn for one handle. */
static void async_turn(fairlock *lock) {
    int ev = fairlock_async_events(lock);
    struct pollfd p = {fairlock_async_fd(lock), 0, 0};
    p.events = (short)((ev & FAIRLOCK_EV_READ ? POLLIN : 0) |
                       (ev & FAIRLOCK_EV_WRITE ? POLLOUT : 0));
    int64_t t = fairlock_async_timeout(lock);
    int n = poll(&p, p.fd >= 0 && ev ? 1 : 0, t < 0 || t > 100 ? 100 : (int)t);
    fairlock_async_process(lock, n > 0 ? ev : 0);
}

static int async_run(fairlock *lock, async_seen *s) {
    int64_t from = test_now_ns();
    while (!s->calls) {
        CHECK(ms_since(from) < EVENT_DEADLINE_MS);
        async_turn(lock);
    }
    s->calls = 0;
    return s->code;
}

/* Each lock on its slot's master, found through MOVED from the seeds; and
 * a slot in migration waited out: a lock whose keys are not on the owner
 * follows the ASK to the importing node, which answers TRYAGAIN (a
 * script's keys do not all exist there), and one whose keys are partly on
 * the owner gets TRYAGAIN there; both retry until the slot is stable,
 * then go through. */
static void async_on_a_cluster(void) {
    int rc;
    async_seen s = {0, -1};
    for (int i = 0; i < 12; i++) {
        char name[64];
        snprintf(name, sizeof name, "{fltest-async-%d}:job", i);
        fairlock *a = cluster_lock(name, 0, &rc);
        fairlock *b = cluster_lock(name, 0, &rc);
        CHECK_RC(a,
                 fairlock_acquire_start(a, FAIRLOCK_DEFAULT, async_record, &s),
                 FAIRLOCK_OK);
        CHECK_RC(a, async_run(a, &s), FAIRLOCK_OK);
        CHECK_RC(b, fairlock_acquire_ex(b, 0, 0, FAIRLOCK_DEFAULT),
                 FAIRLOCK_TIMEOUT);
        CHECK_RC(a, fairlock_release_start(a, async_record, &s), FAIRLOCK_OK);
        CHECK_RC(a, async_run(a, &s), FAIRLOCK_OK);
        redisReply *r = on_node(master_of_slot(slot_of(name)),
                                "EXISTS %s %s:queue %s:seq", name, name, name);
        CHECK_INT(r->integer, ==, 0);
        freeReplyObject(r);
        fairlock_free(a);
        fairlock_free(b);
    }

    const char *name = "{fltest-async-mig}:job";
    const char *held_name = "{fltest-async-mig}:held";
    long long slot = slot_of(name);
    CHECK_INT(slot_of(held_name), ==, slot);
    int owner = master_of_slot(slot);
    int other = other_master(owner);
    char *owner_id = node_id(owner), *other_id = node_id(other);
    fairlock *lock = cluster_lock(name, 0, &rc);
    fairlock *held = cluster_lock(held_name, 0, &rc);
    fairlock *waiter = cluster_lock(held_name, 0, &rc);
    /* Both connected to the owner first; `held` is held there. */
    CHECK_RC(lock,
             fairlock_acquire_start(lock, FAIRLOCK_DEFAULT, async_record, &s),
             FAIRLOCK_OK);
    CHECK_RC(lock, async_run(lock, &s), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release_start(lock, async_record, &s), FAIRLOCK_OK);
    CHECK_RC(lock, async_run(lock, &s), FAIRLOCK_OK);
    CHECK_RC(held,
             fairlock_acquire_start(held, FAIRLOCK_DEFAULT, async_record, &s),
             FAIRLOCK_OK);
    CHECK_RC(held, async_run(held, &s), FAIRLOCK_OK);

    long long before_owner = migration_replies(owner);
    long long before_other = migration_replies(other);
    freeReplyObject(
        on_node(other, "CLUSTER SETSLOT %lld IMPORTING %s", slot, owner_id));
    freeReplyObject(
        on_node(owner, "CLUSTER SETSLOT %lld MIGRATING %s", slot, other_id));
    async_seen ws = {0, -1};
    CHECK_RC(lock,
             fairlock_acquire_start(lock, FAIRLOCK_FOREVER, async_record, &s),
             FAIRLOCK_OK);
    CHECK_RC(
        waiter,
        fairlock_acquire_start(waiter, FAIRLOCK_FOREVER, async_record, &ws),
        FAIRLOCK_OK);
    /* The importing node hears only from `lock`, through ASK; the owner
     * answers `lock` ASK and `waiter` TRYAGAIN. */
    int64_t from = test_now_ns();
    while (migration_replies(other) < before_other + 2 ||
           migration_replies(owner) < before_owner + 4) {
        CHECK(ms_since(from) < EVENT_DEADLINE_MS);
        async_turn(lock);
        async_turn(waiter);
    }
    CHECK_INT(s.calls, ==, 0); /* both still waiting the migration out */
    CHECK_INT(ws.calls, ==, 0);
    freeReplyObject(on_node(owner, "CLUSTER SETSLOT %lld STABLE", slot));
    freeReplyObject(on_node(other, "CLUSTER SETSLOT %lld STABLE", slot));
    CHECK_RC(lock, async_run(lock, &s), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release_start(lock, async_record, &s), FAIRLOCK_OK);
    CHECK_RC(lock, async_run(lock, &s), FAIRLOCK_OK);
    CHECK_RC(held, fairlock_release_start(held, async_record, &s), FAIRLOCK_OK);
    CHECK_RC(held, async_run(held, &s), FAIRLOCK_OK);
    CHECK_RC(waiter, async_run(waiter, &ws), FAIRLOCK_OK);
    CHECK_RC(waiter, fairlock_release_start(waiter, async_record, &ws),
             FAIRLOCK_OK);
    CHECK_RC(waiter, async_run(waiter, &ws), FAIRLOCK_OK);
    redisReply *r = on_node(owner,
                            "EXISTS %s %s:queue %s:seq %s %s:queue %s:seq",
                            name, name, name, held_name, held_name, held_name);
    CHECK_INT(r->integer, ==, 0);
    freeReplyObject(r);
    fairlock_free(lock);
    fairlock_free(held);
    fairlock_free(waiter);
    free(owner_id);
    free(other_id);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    load_cluster_env();
    RUN_TEST(names_must_share_a_slot);
    RUN_TEST(plain_url_on_a_cluster_node);
    RUN_TEST(locks_on_every_master);
    RUN_TEST(least_privilege);
    RUN_TEST(async_on_a_cluster);
    RUN_TEST(slot_migration_under_load);
    RUN_TEST(slot_held_migrating);
    RUN_TEST(failover_under_load);
    return check_done();
}
