/* test_acl.c -- least privilege: a Redis ACL user with only the commands
 * and the key prefix docs/acl.md lists (as `fairlock acl` prints them)
 * can do everything on locks under the prefix, and gets a clear "no
 * permission" message elsewhere; credentials given as options; no
 * message ever holds the password; a server without scripting. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

static char user[64], password[64], prefix[64], url[600];

/* Every message a handle gives is checked for the password: the library
 * promises never to repeat it. */
static void check_no_secret(const fairlock *lock) {
    const char *msg = fairlock_errmsg(lock);
    if (strstr(msg, password) != NULL) {
        fprintf(stderr, "the password is in a message: %s\n", msg);
        exit(1);
    }
}

/* Creates user `name` for the prefix from `fairlock acl`, minus `drop` (a
 * command or category, or NULL). */
static void create_user(redisContext *c, const char *name, const char *drop) {
    char args[256];
    snprintf(args, sizeof args, "'%s' --user '%s'", prefix, name);
    test_acl_setuser(c, args, 0, password);
    if (drop != NULL) {
        redisReply *r = redisCommand(c, "ACL SETUSER %s -%s", name, drop);
        CHECK(r != NULL && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
}

static void options_as(fairlock_options *opts, const char *name,
                       const char *as) {
    fairlock_options_init(opts);
    opts->name = name;
    opts->url = url;
    opts->user = as;
    opts->password = password;
    opts->timeout_ms = 10000;
    opts->io_timeout_ms = 2000;
}

static fairlock *lock_as(const char *name, const char *as) {
    fairlock_options opts;
    options_as(&opts, name, as);
    return test_lock_opts(&opts);
}

static const char *name_in_prefix(const char *what) {
    static char buf[128];
    static int n;
    snprintf(buf, sizeof buf, "%s%s:%d", prefix, what, n++);
    return buf;
}

/* A child that takes the lock (waiting behind the parent's) and releases
 * it; exits 0 on success. */
static pid_t waiter(const char *name, int fifo) {
    pid_t pid = test_fork();
    if (pid == 0) {
        fairlock_options opts;
        options_as(&opts, name, user);
        opts.fifo = fifo;
        fairlock *lock = test_lock_opts(&opts);
        int ok = fairlock_acquire(lock) == FAIRLOCK_OK &&
                 fairlock_release(lock) == FAIRLOCK_OK;
        check_no_secret(lock);
        fairlock_free(lock);
        _exit(ok ? 0 : 1);
    }
    return pid;
}

static void everything_under_the_prefix(void) {
    redisContext *c = test_redis();

    /* acquire, owned, locked, status, fence, extend, release */
    const char *name = name_in_prefix("basic");
    fairlock_options opts;
    options_as(&opts, name, user);
    opts.fencing = 1;
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK(fairlock_fence(lock) > 0);
    int yes = 0;
    CHECK_RC(lock, fairlock_owned(lock, &yes), FAIRLOCK_OK);
    CHECK(yes);
    CHECK_RC(lock, fairlock_locked(lock, &yes), FAIRLOCK_OK);
    CHECK(yes);
    fairlock_status *st = NULL;
    CHECK_RC(lock, fairlock_status_get(lock, 10, &st), FAIRLOCK_OK);
    CHECK(st->holder != NULL);
    fairlock_status_free(st);
    CHECK_RC(lock, fairlock_extend(lock, 20000), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);

    /* FIFO wait and hand-off to another process */
    name = name_in_prefix("fifo");
    lock = lock_as(name, user);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    pid_t pid = waiter(name, 1);
    test_wait_queued(c, name, 1);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_wait_child_within(pid, 0, 20000), ==, 0);
    fairlock_free(lock);

    /* non-FIFO wait and wake-up */
    name = name_in_prefix("nonfifo");
    options_as(&opts, name, user);
    opts.fifo = 0;
    lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    pid = waiter(name, 0);
    CHECK(test_wait_int(c, 1, 20000, "EXISTS %s:nfwait", name));
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_wait_child_within(pid, 0, 20000), ==, 0);
    fairlock_free(lock);

    /* automatic renewal past the lease */
    name = name_in_prefix("renew");
    options_as(&opts, name, user);
    opts.ttl_ms = 300;
    opts.auto_renew = 1;
    lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    test_sleep_ms(1000);
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_HELD);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);

    /* a semaphore and a readers-writer lock: their scripts' commands */
    const int kinds[2] = {FAIRLOCK_KIND_SEMAPHORE, FAIRLOCK_KIND_RWLOCK};
    for (int k = 0; k < 2; k++) {
        name = name_in_prefix("kinds");
        options_as(&opts, name, user);
        opts.kind = kinds[k];
        opts.permits = kinds[k] == FAIRLOCK_KIND_SEMAPHORE ? 2 : 0;
        opts.fencing = 1;
        lock = test_lock_opts(&opts);
        CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
        CHECK_RC(lock, fairlock_owned(lock, &yes), FAIRLOCK_OK);
        CHECK(yes);
        CHECK_RC(lock, fairlock_locked(lock, &yes), FAIRLOCK_OK);
        CHECK_RC(lock, fairlock_status_get(lock, 10, &st), FAIRLOCK_OK);
        CHECK_INT(st->holder_count, ==, 1);
        fairlock_status_free(st);
        CHECK_RC(lock, fairlock_extend(lock, 20000), FAIRLOCK_OK);
        CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
        fairlock_free(lock);
    }

    /* WAIT runs (the fixture has no replica, so it is not acknowledged) */
    name = name_in_prefix("wait");
    options_as(&opts, name, user);
    opts.wait_replicas = 1;
    opts.wait_replicas_timeout_ms = 50;
    lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_NOTREPLICATED);
    check_no_secret(lock);
    fairlock_free(lock);

    /* credentials in the URL work too */
    name = name_in_prefix("url");
    options_as(&opts, name, NULL);
    char with_auth[700];
    snprintf(with_auth, sizeof with_auth, "redis://%s:%s@127.0.0.1:%d/0", user,
             password, test_port());
    opts.url = with_auth;
    opts.password = NULL;
    lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);

    /* outside the prefix: no permission, naming the key */
    char outside[128];
    snprintf(outside, sizeof outside, "fltest:elsewhere:%d", (int)getpid());
    lock = lock_as(outside, user);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    fprintf(stderr, "outside: %s\n", fairlock_errmsg(lock));
    CHECK(strstr(fairlock_errmsg(lock), "no permission") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), outside) != NULL);
    check_no_secret(lock);
    int locked = 1;
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "no permission") != NULL);
    check_no_secret(lock);
    fairlock_free(lock);
    CHECK_INT(test_keys_of(c, outside), ==, 0);
    redisFree(c);
}

static void missing_permissions(void) {
    redisContext *c = test_redis();
    const char *name = name_in_prefix("denied");
    char other[80];

    /* A command a script runs: Redis does not name it, the message names
     * the script. */
    snprintf(other, sizeof other, "%s-nozadd", user);
    create_user(c, other, "zadd");
    fairlock *lock = lock_as(name, other);
    fairlock *holder = lock_as(name, user);
    CHECK_RC(holder, fairlock_acquire(holder), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_acquire_ex(lock, 100, 1, FAIRLOCK_DEFAULT),
             FAIRLOCK_REDIS);
    fprintf(stderr, "no zadd: %s\n", fairlock_errmsg(lock));
    CHECK(strstr(fairlock_errmsg(lock), "no permission to run a command of "
                                        "script acquire") != NULL);
    check_no_secret(lock);
    CHECK_RC(holder, fairlock_release(holder), FAIRLOCK_OK);
    fairlock_free(holder);
    fairlock_free(lock);
    test_acl_deluser(c, other);

    /* Without scripting at all. */
    snprintf(other, sizeof other, "%s-noscript", user);
    create_user(c, other, "@scripting");
    lock = lock_as(name, other);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    fprintf(stderr, "no scripting: %s\n", fairlock_errmsg(lock));
    CHECK(strstr(fairlock_errmsg(lock), "no permission to run EVALSHA") !=
          NULL);
    CHECK(strstr(fairlock_errmsg(lock), "Lua scripting") != NULL);
    check_no_secret(lock);
    fairlock_free(lock);
    test_acl_deluser(c, other);

    /* EVALSHA allowed, EVAL not: the fallback after NOSCRIPT says so. */
    snprintf(other, sizeof other, "%s-noeval", user);
    create_user(c, other, "eval");
    redisReply *r = redisCommand(c, "SCRIPT FLUSH");
    freeReplyObject(r);
    lock = lock_as(name, other);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "no permission to run EVAL:") != NULL);
    fairlock_free(lock);
    test_acl_deluser(c, other);

    /* A wrong password. */
    fairlock_options opts;
    options_as(&opts, name, user);
    opts.password = "not-the-password";
    lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "authentication failed") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), "not-the-password") == NULL);
    fairlock_free(lock);
    /* Redis does not undo what a script did before the denied command
     * (the no-zadd user's INCR of NAME:seq stays), but nobody holds it. */
    CHECK_INT(test_int(c, "EXISTS %s", name), ==, 0);
    redisFree(c);
}

static void credential_options_checked(void) {
    fairlock_options opts;
    fairlock *lock = NULL;
    fairlock_options_init(&opts);
    CHECK(opts.user == NULL && opts.password == NULL &&
          opts.sentinel_user == NULL && opts.sentinel_password == NULL);
    opts.name = "x";
    opts.url = "redis://127.0.0.1:1";
    opts.user = "someone";
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_INVALID);
    CHECK(strstr(fairlock_errmsg(lock), "no password") != NULL);
    fairlock_free(lock);
    opts.user = NULL;
    opts.sentinel_password = password;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_INVALID);
    CHECK(strstr(fairlock_errmsg(lock), "redis+sentinel://") != NULL);
    check_no_secret(lock);
    fairlock_free(lock);
    /* The handle keeps copies: the caller's buffer may change. */
    char mutable_password[64];
    snprintf(mutable_password, sizeof mutable_password, "%s", password);
    opts.sentinel_password = NULL;
    opts.name = name_in_prefix("copy");
    opts.url = url;
    opts.user = user;
    opts.password = mutable_password;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_OK);
    memset(mutable_password, 'x', strlen(mutable_password));
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    fairlock_free(lock);
}

/* A server whose EVALSHA and EVAL are renamed away (the noscript fixture,
 * its redis.env in $FAIRLOCK_TEST_NOSCRIPT_ENV). */
static void server_without_scripting(void) {
    char noscript_url[600];
    snprintf(
        noscript_url, sizeof noscript_url, "%s",
        test_fixture_value("FAIRLOCK_TEST_NOSCRIPT_ENV", "FAIRLOCK_TEST_URL"));
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "fltest:noscript";
    opts.url = noscript_url;
    fairlock *lock = test_lock_opts(&opts);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    fprintf(stderr, "renamed: %s\n", fairlock_errmsg(lock));
    CHECK(strstr(fairlock_errmsg(lock), "needs Lua scripting") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), "EVALSHA") != NULL);
    fairlock_free(lock);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    int pid = (int)getpid();
    snprintf(user, sizeof user, "fltest-acl-%d", pid);
    snprintf(password, sizeof password, "pw-%d-S3cret", pid);
    snprintf(prefix, sizeof prefix, "fltest:acl:%d:", pid);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", test_port());
    redisContext *setup = test_redis();
    create_user(setup, user, NULL);
    redisFree(setup);
    RUN_TEST(credential_options_checked);
    RUN_TEST(everything_under_the_prefix);
    RUN_TEST(missing_permissions);
    RUN_TEST(server_without_scripting);
    redisContext *c = test_redis();
    test_acl_deluser(c, user);
    redisFree(c);
    return check_done();
}
