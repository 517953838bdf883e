/* server.c -- private redis-servers that a test starts, stops, pauses and
 * restarts itself, for what the shared fixture server must not suffer. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "support.h"

/* Only a failure reaches it, never a slow machine. */
#define SERVER_DEADLINE_MS 60000

static int64_t now_ms(void) { return test_now_ns() / 1000000; }

/* A loopback port nobody listens on right now; a race with another
 * process is caught by test_server_start's retry. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void spawn(test_server *s) {
    char port[16], logfile[160];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(logfile, sizeof logfile, "%s/redis.log", s->dir);
    const char *argv[40];
    int n = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port", argv[n++] = port;
    argv[n++] = "--bind", argv[n++] = "127.0.0.1";
    argv[n++] = "--unixsocket", argv[n++] = s->sock;
    argv[n++] = "--unixsocketperm", argv[n++] = "700";
    argv[n++] = "--dir", argv[n++] = s->dir;
    argv[n++] = "--logfile", argv[n++] = logfile;
    argv[n++] = "--save", argv[n++] = "";
    argv[n++] = "--appendonly", argv[n++] = "no";
    argv[n++] = "--enable-debug-command", argv[n++] = "local";
    /* Later arguments win, so extra ones override the defaults above. */
    for (int i = 0; s->extra[i] != NULL; i++)
        argv[n++] = s->extra[i];
    argv[n] = NULL;
    pid_t pid = test_fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
}

/* Waits until the server answers a data command (not -LOADING); returns 0
 * if it exited instead. */
static int wait_ready(test_server *s) {
    int64_t end = now_ms() + SERVER_DEADLINE_MS;
    while (now_ms() < end) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return 0;
        }
        redisContext *c = redisConnectUnix(s->sock);
        if (c != NULL && !c->err) {
            redisReply *r = redisCommand(c, "EXISTS fltest:ready");
            int ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 1;
        } else {
            redisFree(c);
        }
        test_sleep_ms(20);
    }
    fprintf(stderr, "redis-server in %s did not come up\n", s->dir);
    exit(1);
}

/* Starts (or restarts, same socket and port) a private server.  extra is a
 * NULL-terminated list of more arguments, or NULL. */
void test_server_start(test_server *s, int tcp, const char *const *extra) {
    if (s->dir[0] == '\0') {
        snprintf(s->dir, sizeof s->dir, "/tmp/fltest-lease.XXXXXX");
        CHECK(mkdtemp(s->dir) != NULL);
        snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
        snprintf(s->url, sizeof s->url, "unix://%s", s->sock);
        int n = 0;
        for (; extra != NULL && extra[n] != NULL; n++) {
            CHECK(n < TEST_SERVER_MAX_EXTRA);
            s->extra[n] = extra[n];
        }
        s->extra[n] = NULL;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int fresh_port = tcp && (s->port == 0 || attempt > 0);
        if (fresh_port)
            s->port = free_port();
        spawn(s);
        if (wait_ready(s))
            return;
        if (!fresh_port && !tcp)
            break; /* a unix-only server has no port to retry with */
        test_sleep_ms(100);
    }
    fprintf(stderr, "cannot start redis-server in %s (see redis.log)\n",
            s->dir);
    exit(1);
}

redisContext *test_server_redis(const test_server *s) {
    redisContext *c = redisConnectUnix(s->sock);
    CHECK(c != NULL && !c->err);
    return c;
}

static void reap(test_server *s) {
    test_wait_child_within(s->pid, SIGKILL, 20000);
    s->pid = 0;
}

/* SIGTERM: a graceful shutdown (the AOF, if any, is flushed). */
void test_server_stop(test_server *s) {
    if (s->pid == 0)
        return;
    kill(s->pid, SIGCONT); /* a paused server cannot act on SIGTERM */
    kill(s->pid, SIGTERM);
    reap(s);
}

/* The SHUTDOWN command, as an operator would stop it. */
void test_server_shutdown(test_server *s) {
    redisContext *c = test_server_redis(s);
    redisReply *r = redisCommand(c, "SHUTDOWN");
    /* Success closes the connection; an error reply means it refused. */
    CHECK(r == NULL);
    redisFree(c);
    reap(s);
}

void test_server_remove(test_server *s) {
    test_server_stop(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
    CHECK(system(cmd) == 0);
    memset(s, 0, sizeof *s);
}

/* SIGSTOP, and returns once the server has stopped: it runs nothing after
 * this returns. */
void test_server_pause(const test_server *s) {
    int exit_status = 0;
    CHECK(test_stop_child(s->pid, &exit_status) == 1);
}
void test_server_resume(const test_server *s) {
    CHECK(kill(s->pid, SIGCONT) == 0);
}