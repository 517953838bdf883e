/* test_engine.c -- the connection engine against tiny servers of the test's
 * own: no SIGPIPE on a closed peer, deadlines on a silent one. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "support.h"

typedef struct fake {
    int listener;
    char path[108];
    char url[160];
    pthread_t thread;
} fake;

static void fake_listen(fake *f) {
    snprintf(f->path, sizeof f->path, "/tmp/fairlock-engine-%ld.sock",
             (long)getpid());
    unlink(f->path);
    f->listener = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(f->listener >= 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", f->path);
    CHECK(bind(f->listener, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(f->listener, 4) == 0);
    snprintf(f->url, sizeof f->url, "unix://%s", f->path);
}

/* Reads one command (it fits in one read here), answers it, and closes. */
static void *fake_main(void *arg) {
    fake *f = arg;
    int c = accept(f->listener, NULL, NULL);
    CHECK(c >= 0);
    char buf[4096];
    CHECK(read(c, buf, sizeof buf) > 0);
    CHECK(write(c, ":0\r\n", 4) == 4);
    close(c);
    return NULL;
}

static void fake_close(fake *f) {
    close(f->listener);
    unlink(f->path);
}

static fairlock *lock_on(const char *url, int64_t io_timeout_ms) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = "engine-test";
    opts.url = url;
    opts.io_timeout_ms = io_timeout_ms;
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create(&opts, &lock), ==, FAIRLOCK_OK);
    return lock;
}

/* A write to a unix socket whose peer has closed fails with EPIPE at once;
 * hiredis's write() raised SIGPIPE there, which kills a process that keeps
 * the default disposition (seen before the engine: this test died of it). */
static void no_sigpipe(void) {
    signal(SIGPIPE, SIG_DFL);
    fake f;
    fake_listen(&f);
    CHECK(pthread_create(&f.thread, NULL, fake_main, &f) == 0);
    fairlock *lock = lock_on(f.url, 5000);
    int locked = -1;
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_OK);
    CHECK_INT(locked, ==, 0);
    pthread_join(f.thread, NULL);
    /* The peer is gone: this write finds the socket closed. */
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "I/O error") != NULL);
    fairlock_free(lock);
    fake_close(&f);
}

/* A server that accepts and never answers: the call ends at the I/O
 * timeout, with the outcome unknown. */
static void silent_server_times_out(void) {
    int locked;
    fake f;
    fake_listen(&f);
    fairlock *lock = lock_on(f.url, 300);
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "no reply in time") != NULL);
    fairlock_free(lock);
    fake_close(&f);
}

static void refused(void) {
    int locked;
    fake f;
    fake_listen(&f);
    fake_close(&f); /* nobody listens there any more */
    fairlock *lock = lock_on(f.url, 1000);
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "cannot connect to unix socket") !=
          NULL);
    fairlock_free(lock);
}

/* The engine on its own, driven by events as an event loop would: a
 * silent server leaves it waiting for POLLIN until its deadline. */
static void events_and_deadline(void) {
    fake f;
    fake_listen(&f);
    fairlock__engine_target t;
    memset(&t, 0, sizeof t);
    t.path = f.path;
    t.kind = FAIRLOCK__URL_UNIX;
    fairlock__engine *eng = fairlock__engine_start(&t, INT64_MAX);
    CHECK(eng != NULL);
    CHECK(fairlock__engine_wait_ready(eng, fairlock__now_ms() + 5000) == 0);
    const char *argv[1] = {"PING"};
    CHECK(fairlock__engine_queue(eng, 1, argv, NULL) == 0);
    CHECK(fairlock__engine_events(eng) & POLLOUT);
    CHECK(fairlock__engine_wait_written(eng, fairlock__now_ms() + 5000) == 0);
    CHECK(fairlock__engine_events(eng) == POLLIN);
    CHECK(fairlock__engine_reply(eng) == NULL);
    CHECK(fairlock__engine_wait_reply(eng, fairlock__now_ms() + 50) == NULL);
    CHECK_INT(fairlock__engine_get_state(eng), ==, FAIRLOCK__ENGINE_FAILED);
    CHECK_INT(fairlock__engine_error(eng)->code, ==, FAIRLOCK_REDIS);
    fairlock__engine_free(eng);
    fake_close(&f);
}

int main(void) {
    RUN_TEST(no_sigpipe);
    RUN_TEST(silent_server_times_out);
    RUN_TEST(refused);
    RUN_TEST(events_and_deadline);
    return 0;
}
