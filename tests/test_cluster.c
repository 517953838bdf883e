/* test_cluster.c -- locks on a real Redis Cluster: hash slots, redirects,
 * a slot migration and a failover while locks are in use. */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

static char cluster_url[512];
static int base_port, node_count;

static void load_cluster_env(void) {
    const char *path = getenv("FAIRLOCK_TEST_CLUSTER_ENV");
    CHECK(path != NULL);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "FAIRLOCK_CLUSTER_URL=", 21) == 0)
            snprintf(cluster_url, sizeof cluster_url, "%s", line + 21);
        else if (strncmp(line, "FAIRLOCK_CLUSTER_BASE_PORT=", 27) == 0)
            base_port = atoi(line + 27);
        else if (strncmp(line, "FAIRLOCK_CLUSTER_NODES=", 23) == 0)
            node_count = atoi(line + 23);
    }
    fclose(f);
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

static fairlock *cluster_lock(const char *name, int hash_tag, int *rc) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = cluster_url;
    opts.timeout_ms = 10000;
    opts.hash_tag = hash_tag;
    fairlock *lock = NULL;
    *rc = fairlock_create(&opts, &lock);
    return lock;
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

/* Loops acquire → non-atomic increment → release until *stop, counting
 * Redis errors (expected only briefly around a failover). */
static void worker(const char *name, shared_counts *counts,
                   volatile int *stop) {
    int rc;
    fairlock *lock = cluster_lock(name, 0, &rc);
    CHECK_INT(rc, ==, FAIRLOCK_OK);
    while (!*stop) {
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

typedef struct {
    shared_counts counts;
    volatile int stop;
} shared_run;

static pid_t spawn_workers(const char *name, shared_run *run, int n,
                           pid_t *pids) {
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0) {
            worker(name, &run->counts, &run->stop);
            _exit(0);
        }
    }
    return pids[0];
}

static void stop_workers(shared_run *run, int n, const pid_t *pids) {
    run->stop = 1;
    for (int i = 0; i < n; i++)
        CHECK_INT(test_wait_child(pids[i], 0), ==, 0);
}

static int64_t grants_now(shared_run *run) {
    return __atomic_load_n(&run->counts.grants, __ATOMIC_SEQ_CST);
}

static void wait_for_grants(shared_run *run, int64_t more) {
    int64_t target = grants_now(run) + more;
    for (int i = 0; i < 1500 && grants_now(run) < target; i++)
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
    int to = from == base_port ? base_port + 1 : base_port;
    char *from_id = node_id(from), *to_id = node_id(to);

    shared_run *run = test_shared(sizeof *run);
    pid_t pids[4];
    spawn_workers(name, run, 4, pids);
    wait_for_grants(run, 50);

    freeReplyObject(
        on_node(to, "CLUSTER SETSLOT %lld IMPORTING %s", slot, from_id));
    freeReplyObject(
        on_node(from, "CLUSTER SETSLOT %lld MIGRATING %s", slot, to_id));
    for (int round = 0; round < 50; round++) {
        redisReply *keys = on_node(from, "CLUSTER GETKEYSINSLOT %lld 100",
                                   slot);
        size_t n = keys->elements;
        for (size_t i = 0; i < n; i++) {
            redisContext *c = node(from);
            redisReply *m = redisCommand(c, "MIGRATE 127.0.0.1 %d %s 0 5000",
                                         to, keys->element[i]->str);
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

/* Port of a replica of the master on `port` (waiting for the master to
 * learn of it: gossip may lag the fixture's view). */
static int replica_of(int port) {
    char *id = node_id(port);
    redisReply *r = NULL;
    for (int i = 0; i < 500; i++) {
        freeReplyObject(r);
        r = on_node(port, "CLUSTER REPLICAS %s", id);
        if (r->elements >= 1)
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
    for (int i = 0; i < 500 && master_of_slot(slot) != replica; i++)
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

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    load_cluster_env();
    RUN_TEST(names_must_share_a_slot);
    RUN_TEST(locks_on_every_master);
    RUN_TEST(slot_migration_under_load);
    RUN_TEST(failover_under_load);
    return 0;
}
