/* support.c -- shared helpers of the integration tests. */
#include "support.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* The fixtures' KEY=VALUE files, each read once. */
typedef struct fixture_file {
    const char *env_var;
    char text[4096];
} fixture_file;

static const char *fixture_text(const char *env_var) {
    static fixture_file files[4];
    size_t i = 0;
    for (; i < sizeof files / sizeof files[0] && files[i].env_var; i++)
        if (strcmp(files[i].env_var, env_var) == 0)
            return files[i].text;
    CHECK(i < sizeof files / sizeof files[0]);
    const char *path = getenv(env_var);
    if (path == NULL) {
        fprintf(stderr,
                "%s is not set: run through ctest, which starts the "
                "fixture servers first\n",
                env_var);
        exit(1);
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    /* Leading newline: every line then starts after one. */
    files[i].text[0] = '\n';
    size_t n = fread(files[i].text + 1, 1, sizeof files[i].text - 2, f);
    CHECK(!ferror(f) && feof(f));
    fclose(f);
    files[i].text[n + 1] = '\0';
    files[i].env_var = env_var;
    return files[i].text;
}

const char *test_fixture_value(const char *env_var, const char *key) {
    const char *text = fixture_text(env_var);
    static char value[512];
    char needle[128];
    snprintf(needle, sizeof needle, "\n%s=", key);
    const char *at = strstr(text, needle);
    if (at == NULL) {
        fprintf(stderr, "no %s in the file $%s names\n", key, env_var);
        exit(1);
    }
    at += strlen(needle);
    snprintf(value, sizeof value, "%.*s", (int)strcspn(at, "\n"), at);
    return value;
}

static char env_url[512], env_tcp_url[512], env_pidfile[512];
static int env_port;

/* The redis fixture's address, from $FAIRLOCK_TEST_ENV. */
static void load_env(void) {
    if (env_url[0])
        return;
    const char *var = "FAIRLOCK_TEST_ENV";
    snprintf(env_tcp_url, sizeof env_tcp_url, "%s",
             test_fixture_value(var, "FAIRLOCK_TEST_TCP_URL"));
    snprintf(env_pidfile, sizeof env_pidfile, "%s",
             test_fixture_value(var, "FAIRLOCK_TEST_PIDFILE"));
    env_port = atoi(test_fixture_value(var, "FAIRLOCK_TEST_PORT"));
    snprintf(env_url, sizeof env_url, "%s",
             test_fixture_value(var, "FAIRLOCK_TEST_URL"));
}

const char *test_url(void) {
    load_env();
    return env_url;
}

const char *test_tcp_url(void) {
    load_env();
    return env_tcp_url;
}

int test_port(void) {
    load_env();
    return env_port;
}

pid_t test_server_pid(void) {
    load_env();
    FILE *f = fopen(env_pidfile, "r");
    CHECK(f != NULL);
    long pid = 0;
    CHECK(fscanf(f, "%ld", &pid) == 1);
    fclose(f);
    return (pid_t)pid;
}

/* The tests' own checks talk plain text on the server's unix socket:
 * hiredis 0.14 has no TLS, and a TLS fixture's clients are the library. */
redisContext *test_redis(void) {
    const char *url = test_url();
    char path[512];
    if (strncmp(url, "unix://", 7) == 0)
        snprintf(path, sizeof path, "%s", url + 7);
    else
        snprintf(
            path, sizeof path, "%s",
            test_fixture_value("FAIRLOCK_TEST_ENV", "FAIRLOCK_TEST_SOCKET"));
    redisContext *c = redisConnectUnix(path);
    CHECK(c != NULL);
    if (c->err) {
        fprintf(stderr, "cannot connect to %s: %s\n", path, c->errstr);
        exit(1);
    }
    return c;
}

const char *test_tcp_url_with(const char *userinfo, int db) {
    static char url[1024];
    const char *tcp = test_tcp_url();
    const char *host = strstr(tcp, "://");
    CHECK(host != NULL);
    host += 3;
    size_t query = strcspn(host, "?");
    snprintf(url, sizeof url, "%.*s%s%s%.*s/%d%s", (int)(host - tcp), tcp,
             userinfo ? userinfo : "", userinfo ? "@" : "", (int)query, host,
             db, host + query);
    return url;
}

long long test_int(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    CHECK(r != NULL);
    if (r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "redis error: %s\n", r->str);
    CHECK(r->type == REDIS_REPLY_INTEGER || r->type == REDIS_REPLY_NIL);
    long long v = r->type == REDIS_REPLY_NIL ? -1 : r->integer;
    freeReplyObject(r);
    return v;
}

long long test_calls_of(redisContext *c, const char *command) {
    redisReply *r = redisCommand(c, "INFO commandstats");
    CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", command);
    const char *at = strstr(r->str, needle);
    long long n = at ? atoll(at + strlen(needle)) : 0;
    freeReplyObject(r);
    return n;
}

long long test_keys_of(redisContext *c, const char *name) {
    long long n = test_int(c, "EXISTS %s", name);
    redisReply *r = redisCommand(c, "KEYS %b:*", name, strlen(name));
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY);
    n += (long long)r->elements;
    freeReplyObject(r);
    return n;
}

const char *test_name(const char *prefix) {
    static char buf[128];
    static int n;
    snprintf(buf, sizeof buf, "fltest:%s:%d:%d", prefix, (int)getpid(), n++);
    return buf;
}

fairlock *test_lock_opts(fairlock_options *opts) {
    if (opts->url == NULL && opts->redis == NULL)
        opts->url = test_url();
    fairlock *lock = NULL;
    int rc = fairlock_create(opts, &lock);
    if (rc != FAIRLOCK_OK) {
        fprintf(stderr, "fairlock_create: %s: %s\n", fairlock_code_name(rc),
                fairlock_errmsg(lock));
        exit(1);
    }
    return lock;
}

fairlock *test_lock(const char *name, int64_t timeout_ms) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = timeout_ms;
    return test_lock_opts(&opts);
}

int64_t test_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void test_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void *test_shared(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    memset(p, 0, size);
    return p;
}

/* The exit status of a reaped child; see test_wait_child. */
static int child_result(pid_t pid, int status, int expected_signal) {
    if (WIFSIGNALED(status)) {
        if (WTERMSIG(status) != expected_signal) {
            fprintf(stderr, "child %d killed by signal %d\n", (int)pid,
                    WTERMSIG(status));
            exit(1);
        }
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

int test_wait_child(pid_t pid, int expected_signal) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
        CHECK(errno == EINTR);
    return child_result(pid, status, expected_signal);
}

int test_wait_int(redisContext *c, long long value, int64_t timeout_ms,
                  const char *fmt, ...) {
    int64_t end = test_now_ns() + timeout_ms * 1000000;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = redisvCommand(c, fmt, ap);
        va_end(ap);
        CHECK(r != NULL);
        long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        if (v == value)
            return 1;
        if (test_now_ns() > end)
            return 0;
        test_sleep_ms(5);
    }
}

/* ---------------------------------------------------------------------------
 * Concurrency with real processes
 * ------------------------------------------------------------------------- */

/* Registered in children only: reached solely through exit(), which only
 * failing checks call there. */
static void leave_child_on_exit(void) { _exit(1); }

pid_t test_fork(void) {
    pid_t parent = getpid();
    /* Buffered output would otherwise be printed by parent and child. */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* getppid() catches a parent that died before prctl() took hold. */
        if (atexit(leave_child_on_exit) != 0 ||
            prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(1);
    }
    return pid;
}

int test_wait_child_within(pid_t pid, int expected_signal, int64_t timeout_ms) {
    int64_t end = test_now_ns() + timeout_ms * 1000000;
    int status;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return child_result(pid, status, expected_signal);
        CHECK(got == 0 || errno == EINTR);
        if (test_now_ns() > end) {
            fprintf(stderr, "child %d still running after %lld ms: killed\n",
                    (int)pid, (long long)timeout_ms);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            exit(1);
        }
        test_sleep_ms(5);
    }
}

int test_stop_child(pid_t pid, int *exit_status) {
    CHECK(kill(pid, SIGSTOP) == 0);
    int status;
    while (waitpid(pid, &status, WUNTRACED) < 0)
        CHECK(errno == EINTR);
    if (WIFSTOPPED(status))
        return 1;
    *exit_status = child_result(pid, status, 0);
    return 0;
}

int test_wait_flag(const int *flag, int64_t timeout_ms) {
    int64_t end = test_now_ns() + timeout_ms * 1000000;
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) == 0) {
        if (test_now_ns() > end)
            return 0;
        test_sleep_ms(1);
    }
    return 1;
}

void test_wait_queued(redisContext *c, const char *name, long long entries) {
    if (!test_wait_int(c, entries, 20000, "ZCARD %s:queue", name)) {
        fprintf(stderr, "%s:queue never held %lld waiters\n", name, entries);
        exit(1);
    }
}

long long test_wait_no_keys(redisContext *c, const char *name,
                            int64_t timeout_ms) {
    int64_t end = test_now_ns() + timeout_ms * 1000000;
    for (;;) {
        long long n = test_keys_of(c, name);
        if (n == 0 || test_now_ns() > end)
            return n;
        test_sleep_ms(10);
    }
}

int test_get_string(redisContext *c, const char *key, char *buf, size_t len) {
    redisReply *r = redisCommand(c, "GET %s", key);
    CHECK(r != NULL);
    CHECK(r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
    int found = r->type == REDIS_REPLY_STRING;
    if (len > 0)
        snprintf(buf, len, "%s", found ? r->str : "");
    freeReplyObject(r);
    return found;
}

/* Splits a queue member "ticket:token:ts"; the token may hold ':'. */
static int split_member(const char *member, char *token, size_t len,
                        long long *ticket) {
    const char *first = strchr(member, ':');
    const char *last = strrchr(member, ':');
    if (first == NULL || last == first)
        return 0;
    if (ticket != NULL)
        *ticket = strtoll(member, NULL, 10);
    snprintf(token, len, "%.*s", (int)(last - first - 1), first + 1);
    return 1;
}

int test_queue_at(redisContext *c, const char *name, long long rank,
                  char *token, size_t len, long long *ticket) {
    redisReply *r = redisCommand(c, "ZRANGE %s:queue %lld %lld", name, rank,
                                 rank);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY);
    int found = r->elements == 1 &&
                split_member(r->element[0]->str, token, len, ticket);
    freeReplyObject(r);
    return found;
}

long long test_queue_rank_of(redisContext *c, const char *name,
                             const char *token, long long *ticket) {
    redisReply *r = redisCommand(c, "ZRANGE %s:queue 0 -1", name);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY);
    long long rank = -1;
    for (size_t i = 0; i < r->elements && rank < 0; i++) {
        char member_token[256];
        long long member_ticket;
        if (split_member(r->element[i]->str, member_token, sizeof member_token,
                         &member_ticket) &&
            strcmp(member_token, token) == 0) {
            rank = (long long)i;
            if (ticket != NULL)
                *ticket = member_ticket;
        }
    }
    freeReplyObject(r);
    return rank;
}

void test_acl_setuser(redisContext *c, const char *args, int line,
                      const char *password) {
    const char *cli = getenv("FAIRLOCK_TEST_CLI");
    if (cli == NULL) {
        fprintf(stderr, "FAIRLOCK_TEST_CLI is not set\n");
        exit(1);
    }
    char cmd[1024], text[2048] = "";
    snprintf(cmd, sizeof cmd, "'%s' acl %s", cli, args);
    FILE *p = popen(cmd, "r");
    int found = 0;
    for (int n = 0; p != NULL && fgets(text, sizeof text, p) != NULL; n++)
        if (n == line && (found = 1))
            break;
    if (p == NULL || pclose(p) != 0 || !found ||
        strncmp(text, "ACL SETUSER ", 12) != 0) {
        fprintf(stderr, "%s: no line %d: %s\n", cmd, line, text);
        exit(1);
    }
    /* The words as redis-cli would split them: the line has no quotes. */
    const char *argv[64];
    int argc = 0;
    char *save = NULL;
    for (char *w = strtok_r(text, " \n", &save); w != NULL && argc < 62;
         w = strtok_r(NULL, " \n", &save))
        argv[argc++] = w;
    char rule[128];
    snprintf(rule, sizeof rule, ">%s", password);
    argv[argc++] = rule;
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_STATUS) {
        fprintf(stderr, "%s: ACL SETUSER failed: %s\n", cmd,
                r ? r->str : c->errstr);
        exit(1);
    }
    freeReplyObject(r);
}

void test_acl_deluser(redisContext *c, const char *name) {
    redisReply *r = redisCommand(c, "ACL DELUSER %s", name);
    freeReplyObject(r);
}

int test_cli(const char *args, char *out, size_t size) {
    const char *cli = getenv("FAIRLOCK_TEST_CLI");
    if (cli == NULL) {
        fprintf(stderr, "FAIRLOCK_TEST_CLI is not set\n");
        exit(1);
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", cli, args);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        fprintf(stderr, "popen %s failed\n", cmd);
        exit(1);
    }
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0)
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int test_list_collect(void *arg, const char *name, size_t len, int kind) {
    test_listed *l = arg;
    if (l->count < 64 && len < sizeof l->names[0]) {
        memcpy(l->names[l->count], name, len);
        l->names[l->count][len] = '\0';
        l->kinds[l->count++] = kind;
    }
    return 0;
}
