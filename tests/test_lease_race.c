/* test_lease_race.c -- the validity bound when an extend and a renewal race.
 *
 * The renewal thread has its own connection; here it goes through a small
 * proxy in this process that can hold back the replies, or the requests,
 * of that connection, while the handle's own connection (a borrowed
 * `redis` context) goes to the server directly.  So a renewal can be made
 * to run on the server and then stay "in flight" for as long as a test
 * wants, or to reach the server only after a manual fairlock_extend().
 *
 * Every test checks the same property from the server's side: whenever the
 * handle says FAIRLOCK_STATE_HELD and now < fairlock_valid_until_ms(), the
 * lock key holds the handle's token (a separate client reads it), and a
 * second client cannot acquire the lock.  No test asserts how fast
 * anything happens; the waits are generous deadlines. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "internal.h" /* the extend script's SHA1, to recognise a renewal */
#include "support.h"

static int64_t now_ms(void) { return test_now_ns() / 1000000; }

/* ---------------------------------------------------------------------------
 * A holding proxy: TCP on loopback in front of the fixture's unix socket
 * ------------------------------------------------------------------------- */

#define PROXY_MAX_CONNS 128
#define PROXY_PEEK 1024

typedef struct proxy {
    int listen_fd;
    int port;
    char url[64];
    char upstream[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* the
                                 fixture server's unix socket */
    pthread_t acceptor;
    pthread_t conns[PROXY_MAX_CONNS];
    int nconns; /* acceptor only, then the stopper */
    pthread_mutex_t mu;
    /* Under mu. */
    int stop;
    int hold_requests;  /* buffer client -> server bytes */
    int hold_replies;   /* buffer server -> client bytes */
    int flush_requests; /* one shot: forward the requests held now */
    long flushes;       /* one-shot flushes done */
    size_t held_request_bytes, held_reply_bytes; /* over all connections */
    char peek[PROXY_PEEK]; /* start of the latest held request */
} proxy;

typedef struct pconn {
    proxy *p;
    int cfd, ufd;
} pconn;

typedef struct pbuf {
    char *data;
    size_t len, cap;
} pbuf;

static void pbuf_add(pbuf *b, const char *data, size_t len) {
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2;
        b->data = realloc(b->data, b->cap);
        CHECK(b->data != NULL);
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static int send_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads what fd has into b; returns 0 at EOF or on an error. */
static int pump_in(int fd, pbuf *b) {
    char chunk[16384];
    ssize_t n;
    do
        n = recv(fd, chunk, sizeof chunk, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return 0;
    pbuf_add(b, chunk, (size_t)n);
    return 1;
}

static void *pconn_main(void *arg) {
    pconn *pc = arg;
    proxy *p = pc->p;
    pbuf req = {0}, rep = {0};
    size_t counted_req = 0, counted_rep = 0; /* our share of the totals */
    for (;;) {
        struct pollfd fds[2] = {{pc->cfd, POLLIN, 0}, {pc->ufd, POLLIN, 0}};
        int n = poll(fds, 2, 2);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && fds[0].revents != 0 && !pump_in(pc->cfd, &req))
            break;
        if (n > 0 && fds[1].revents != 0 && !pump_in(pc->ufd, &rep))
            break;
        pthread_mutex_lock(&p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        int send_req = req.len > 0 && (!p->hold_requests || p->flush_requests);
        if (send_req && p->hold_requests) {
            p->flush_requests = 0;
            p->flushes++;
        }
        int send_rep = rep.len > 0 && !p->hold_replies;
        size_t pend_req = send_req ? 0 : req.len;
        size_t pend_rep = send_rep ? 0 : rep.len;
        if (pend_req > 0 && pend_req != counted_req) {
            size_t k = req.len < PROXY_PEEK - 1 ? req.len : PROXY_PEEK - 1;
            memcpy(p->peek, req.data, k);
            p->peek[k] = '\0';
        }
        p->held_request_bytes += pend_req - counted_req;
        p->held_reply_bytes += pend_rep - counted_rep;
        counted_req = pend_req;
        counted_rep = pend_rep;
        pthread_mutex_unlock(&p->mu);
        if (send_req) {
            if (send_all(pc->ufd, req.data, req.len) != 0)
                break;
            req.len = 0;
        }
        if (send_rep) {
            if (send_all(pc->cfd, rep.data, rep.len) != 0)
                break;
            rep.len = 0;
        }
    }
    /* A closed connection drops what it held, like a lost packet. */
    pthread_mutex_lock(&p->mu);
    p->held_request_bytes -= counted_req;
    p->held_reply_bytes -= counted_rep;
    pthread_mutex_unlock(&p->mu);
    close(pc->cfd);
    close(pc->ufd);
    free(req.data);
    free(rep.data);
    free(pc);
    return NULL;
}

static void *proxy_accept_main(void *arg) {
    proxy *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        struct pollfd pfd = {p->listen_fd, POLLIN, 0};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int cfd = accept(p->listen_fd, NULL, NULL);
        if (cfd < 0)
            continue;
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int ufd = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(ufd >= 0);
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, p->upstream, sizeof sa.sun_path);
        CHECK(connect(ufd, (struct sockaddr *)&sa, sizeof sa) == 0);
        CHECK(p->nconns < PROXY_MAX_CONNS);
        pconn *pc = malloc(sizeof *pc);
        CHECK(pc != NULL);
        pc->p = p, pc->cfd = cfd, pc->ufd = ufd;
        CHECK(pthread_create(&p->conns[p->nconns++], NULL, pconn_main, pc) ==
              0);
    }
    return NULL;
}

static void proxy_start(proxy *p) {
    memset(p, 0, sizeof *p);
    const char *url = test_url();
    CHECK(strncmp(url, "unix://", 7) == 0);
    CHECK(strlen(url + 7) < sizeof p->upstream);
    snprintf(p->upstream, sizeof p->upstream, "%s", url + 7);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(p->listen_fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(p->listen_fd, 16) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(p->listen_fd, (struct sockaddr *)&a, &len) == 0);
    p->port = ntohs(a.sin_port);
    snprintf(p->url, sizeof p->url, "redis://127.0.0.1:%d", p->port);
    pthread_mutex_init(&p->mu, NULL);
    CHECK(pthread_create(&p->acceptor, NULL, proxy_accept_main, p) == 0);
}

static void proxy_stop(proxy *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->acceptor, NULL);
    for (int i = 0; i < p->nconns; i++)
        pthread_join(p->conns[i], NULL);
    close(p->listen_fd);
    pthread_mutex_destroy(&p->mu);
}

static void proxy_hold(proxy *p, int requests, int replies) {
    pthread_mutex_lock(&p->mu);
    p->hold_requests = requests;
    p->hold_replies = replies;
    pthread_mutex_unlock(&p->mu);
}

/* Forwards the requests held now, keeps holding later ones; waits until
 * that happened. */
static void proxy_flush_requests(proxy *p) {
    pthread_mutex_lock(&p->mu);
    long before = p->flushes;
    p->flush_requests = 1;
    pthread_mutex_unlock(&p->mu);
    int64_t end = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        long after = p->flushes;
        pthread_mutex_unlock(&p->mu);
        if (after > before)
            return;
        CHECK(now_ms() < end);
        test_sleep_ms(1);
    }
}

/* Waits until the proxy holds a reply (replies = 1) or a request that is a
 * renewal with PX `lease` (replies = 0); returns 1 if it did in time. */
static int proxy_wait_held(proxy *p, int replies, int64_t lease,
                           int64_t timeout_ms) {
    char px[32];
    snprintf(px, sizeof px, "\r\n%lld\r\n", (long long)lease);
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int held = replies ? p->held_reply_bytes > 0
                           : p->held_request_bytes > 0 &&
                                 strstr(p->peek,
                                        fairlock__script_extend.sha1) != NULL &&
                                 strstr(p->peek, px) != NULL;
        pthread_mutex_unlock(&p->mu);
        if (held)
            return 1;
        if (now_ms() > end)
            return 0;
        test_sleep_ms(1);
    }
}

/* ---------------------------------------------------------------------------
 * Handles, and the check of the bound against the server
 * ------------------------------------------------------------------------- */

typedef struct lost_log {
    atomic_int calls;
} lost_log;

static void record_lost(fairlock *lock, void *arg) {
    (void)lock;
    atomic_fetch_add(&((lost_log *)arg)->calls, 1);
}

static int wait_lost(lost_log *l, int64_t timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (atomic_load(&l->calls) == 0) {
        if (now_ms() > end)
            return 0;
        test_sleep_ms(2);
    }
    return 1;
}

/* Auto-renewed: the handle's commands go straight to the server (`direct`),
 * the renewal thread's through the proxy. */
static fairlock *proxied_lock(const proxy *p, redisContext *direct,
                              const char *name, int64_t ttl_ms, lost_log *l) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.redis = direct;
    opts.url = p->url;
    opts.timeout_ms = 10000;
    opts.ttl_ms = ttl_ms;
    opts.auto_renew = 1;
    opts.on_lost = record_lost;
    opts.on_lost_arg = l;
    return test_lock_opts(&opts);
}

/* Waits until a renewal has moved the bound past `above`. */
static int wait_valid_above(fairlock *lock, int64_t above, int64_t timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (fairlock_valid_until_ms(lock) <= above) {
        if (now_ms() > end)
            return 0;
        test_sleep_ms(2);
    }
    return 1;
}

typedef struct watch {
    fairlock *lock;
    const char *name;
    char token[FAIRLOCK_TOKEN_MAX];
    redisContext *c; /* a separate client */
    fairlock *rival; /* a second client, trying without waiting */
    long checks, claims, rival_tries, rival_wins;
} watch;

static void watch_init(watch *w, fairlock *lock, const char *name) {
    memset(w, 0, sizeof *w);
    w->lock = lock;
    w->name = name;
    snprintf(w->token, sizeof w->token, "%s", fairlock_token(lock));
    w->c = test_redis();
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.timeout_ms = 1000;
    opts.blocking = 0;
    w->rival = test_lock_opts(&opts);
}

static void watch_free(watch *w) {
    fairlock_free(w->rival);
    redisFree(w->c);
}

/* One look from the server's side: the key (value and PTTL in one script,
 * so at one instant), then whether a second client gets the lock. */
static void watch_once(watch *w) {
    int64_t valid = fairlock_valid_until_ms(w->lock);
    int state = fairlock_state(w->lock);
    redisReply *r = redisCommand(
        w->c, "EVAL %s 1 %s",
        "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}",
        w->name);
    int64_t t = now_ms(); /* after the server looked */
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    int ours = r->element[0]->type == REDIS_REPLY_STRING &&
               strcmp(r->element[0]->str, w->token) == 0;
    long long pttl = r->element[1]->integer;
    freeReplyObject(r);
    w->checks++;
    if (state == FAIRLOCK_STATE_HELD && t < valid) {
        w->claims++;
        if (!ours) {
            fprintf(stderr,
                    "   the handle says HELD, valid for %lld ms more, but "
                    "the key %s (PTTL %lld)\n",
                    (long long)(valid - t),
                    pttl == -2 ? "is gone" : "has another owner", pttl);
            CHECK(ours);
        }
    }
    if (w->checks % 4 != 0)
        return;
    valid = fairlock_valid_until_ms(w->lock);
    state = fairlock_state(w->lock);
    w->rival_tries++;
    int rc = fairlock_acquire_ex(w->rival, FAIRLOCK_DEFAULT, 0,
                                 FAIRLOCK_DEFAULT);
    t = now_ms();
    if (rc == FAIRLOCK_OK) {
        if (state == FAIRLOCK_STATE_HELD && t < valid)
            fprintf(stderr,
                    "   a second client acquired while the handle says "
                    "HELD, valid for %lld ms more\n",
                    (long long)(valid - t));
        CHECK(!(state == FAIRLOCK_STATE_HELD && t < valid));
        w->rival_wins++;
        CHECK_RC(w->rival, fairlock_release(w->rival), FAIRLOCK_OK);
    } else {
        CHECK_INT(rc, ==, FAIRLOCK_TIMEOUT);
    }
}

/* Watches for duration_ms, or, with until_rival, until the second client
 * got the lock once (then duration_ms is a deadline). */
static void watch_for(watch *w, int64_t duration_ms, int until_rival) {
    int64_t end = now_ms() + duration_ms;
    while (now_ms() < end && !(until_rival && w->rival_wins > 0)) {
        watch_once(w);
        test_sleep_ms(3);
    }
    fprintf(stderr,
            "   %ld looks at the key, %ld while the handle claimed it; a "
            "second client tried %ld times, got it %ld times\n",
            w->checks, w->claims, w->rival_tries, w->rival_wins);
}

/* ---------------------------------------------------------------------------
 * 1. A shorter extend, then the reply of a renewal the server ran before it
 *
 * The case of the issue: a 6 s lease renewed every 2 s; a renewal runs on
 * the server and its reply is held; meanwhile the owner extends to 1.5 s.
 * The server ran the renewal first, so the key now expires 1.5 s after the
 * extend.  When the old renewal's reply finally arrives it must not bring
 * back its 6 s bound, and renewal goes on with the new lease.
 * ------------------------------------------------------------------------- */

enum { LONG_LEASE = 6000, SHORT_LEASE = 1500 };

static void shorter_extend_then_late_renewal(void) {
    const char *name = test_name("race-shorter");
    proxy p;
    proxy_start(&p);
    redisContext *direct = test_redis();
    lost_log lost;
    memset(&lost, 0, sizeof lost);
    fairlock *lock = proxied_lock(&p, direct, name, LONG_LEASE, &lost);
    redisContext *c = test_redis();

    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    /* One renewal through the proxy first: the renewal connection is up and
     * its script loaded, so the next thing it sends is a renewal. */
    CHECK(wait_valid_above(lock, fairlock_valid_until_ms(lock), 20000));
    proxy_hold(&p, 0, 1);
    CHECK(proxy_wait_held(&p, 1, 0, 20000));
    /* The server ran that renewal: the key has most of 6 s. */
    CHECK_INT(test_int(c, "PTTL %s", name), >, SHORT_LEASE);

    int64_t sent = now_ms();
    CHECK_RC(lock, fairlock_extend(lock, SHORT_LEASE), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "PTTL %s", name), <=, SHORT_LEASE);
    CHECK_INT(fairlock_valid_until_ms(lock), <=, now_ms() + SHORT_LEASE);
    proxy_hold(&p, 0, 0); /* the old renewal's reply arrives */

    watch w;
    watch_init(&w, lock, name);
    watch_for(&w, 2 * LONG_LEASE / 3, 0);
    /* The renewals that followed used the new lease. */
    CHECK_INT(atomic_load(&lost.calls), ==, 0);
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_HELD);
    CHECK_INT(fairlock_valid_until_ms(lock), >, sent + SHORT_LEASE);
    long long pttl = test_int(c, "PTTL %s", name);
    CHECK_INT(pttl, >, 0);
    CHECK_INT(pttl, <=, SHORT_LEASE);
    /* No lease without expiry while renewing; nothing changes. */
    CHECK_RC(lock, fairlock_extend(lock, FAIRLOCK_FOREVER), FAIRLOCK_INVALID);
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_HELD);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);

    watch_free(&w);
    fairlock_free(lock);
    redisFree(direct);
    redisFree(c);
    proxy_stop(&p);
}

/* ---------------------------------------------------------------------------
 * 2. A longer extend, overtaken on the server by an older renewal
 *
 * A 1.5 s lease; a renewal is held before it reaches the server, the owner
 * extends to 15 s, and only then does the renewal (PX 1500) reach the
 * server, which so cuts the lease back to 1.5 s.  Its reply, and every
 * later renewal, is held: the key expires 1.5 s after the old renewal ran,
 * and the handle must not claim it beyond that.  The renewer reports the
 * loss when its bound runs out.
 * ------------------------------------------------------------------------- */

static void longer_extend_overtaken_by_renewal(void) {
    const char *name = test_name("race-longer");
    proxy p;
    proxy_start(&p);
    redisContext *direct = test_redis();
    lost_log lost;
    memset(&lost, 0, sizeof lost);
    fairlock *lock = proxied_lock(&p, direct, name, SHORT_LEASE, &lost);
    redisContext *c = test_redis();

    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK(wait_valid_above(lock, fairlock_valid_until_ms(lock), 20000));
    proxy_hold(&p, 1, 1);
    CHECK(proxy_wait_held(&p, 0, SHORT_LEASE, 20000));

    CHECK_RC(lock, fairlock_extend(lock, 10 * SHORT_LEASE), FAIRLOCK_OK);
    CHECK_INT(test_int(c, "PTTL %s", name), >, SHORT_LEASE);
    proxy_flush_requests(&p); /* the old renewal now reaches the server */
    CHECK(test_wait_int(c, 1, 10000, "EVAL %s 1 %s %s",
                        "return redis.call('PTTL', KEYS[1]) <= tonumber("
                        "ARGV[1]) and 1 or 0",
                        name, "1500"));

    watch w;
    watch_init(&w, lock, name);
    /* Until the key has expired and a second client got the lock. */
    watch_for(&w, 30000, 1);
    CHECK_INT(w.rival_wins, >=, 1);
    /* Nothing got through to the renewer: the loss was reported. */
    CHECK(wait_lost(&lost, 20000));
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_LOST);
    CHECK_INT(fairlock_valid_until_ms(lock), ==, 0);
    proxy_hold(&p, 0, 0);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_NOTOWNED);

    watch_free(&w);
    fairlock_free(lock);
    CHECK_INT(test_wait_no_keys(c, name, 10000), ==, 0);
    redisFree(direct);
    redisFree(c);
    proxy_stop(&p);
}

/* ---------------------------------------------------------------------------
 * 3. Renewal resumes after a loss notice and a successful extend
 *
 * Renewals reach the server but their replies are held, so the renewer
 * reports the lease lost (it cannot know better) while the key is in fact
 * still ours.  A fairlock_extend() on the handle's own connection then
 * succeeds: the lock is held again, and renewal must go on.
 * ------------------------------------------------------------------------- */

static void renewal_resumes_after_extend(void) {
    const char *name = test_name("race-resume");
    proxy p;
    proxy_start(&p);
    redisContext *direct = test_redis();
    lost_log lost;
    memset(&lost, 0, sizeof lost);
    fairlock *lock = proxied_lock(&p, direct, name, LONG_LEASE, &lost);
    redisContext *c = test_redis();

    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_OK);
    CHECK(wait_valid_above(lock, fairlock_valid_until_ms(lock), 20000));
    proxy_hold(&p, 0, 1);
    CHECK(wait_lost(&lost, 20000));
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_LOST);
    /* The renewals kept reaching the server: the key is still ours. */
    char seen[FAIRLOCK_TOKEN_MAX];
    CHECK(test_get_string(c, name, seen, sizeof seen));
    CHECK_STR(seen, fairlock_token(lock));

    CHECK_RC(lock, fairlock_extend(lock, LONG_LEASE), FAIRLOCK_OK);
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_HELD);
    int64_t extended = fairlock_valid_until_ms(lock);
    CHECK_INT(extended, >, now_ms());
    proxy_hold(&p, 0, 0);
    /* A renewal after the extend moves the bound on. */
    if (!wait_valid_above(lock, extended, 3 * LONG_LEASE)) {
        fprintf(stderr, "   no renewal after the extend\n");
        CHECK(0);
    }
    watch w;
    watch_init(&w, lock, name);
    watch_for(&w, 1000, 0);
    CHECK_INT(atomic_load(&lost.calls), ==, 1);
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_HELD);
    /* The loss was withdrawn: the release is a normal one. */
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);

    watch_free(&w);
    fairlock_free(lock);
    redisFree(direct);
    redisFree(c);
    proxy_stop(&p);
}

/* ---------------------------------------------------------------------------
 * 4. An extend of unknown outcome that shortens the lease
 *
 * No renewal; the handle's own connection goes through the proxy.  The
 * extend to 3 s runs on the server, its reply is held past the I/O
 * timeout: FAIRLOCK_REDIS, yet the key now expires in 3 s, so the bound
 * may not stay at 30 s.  It also may come back only as far as that shorter
 * lease allows, since a command of unknown outcome may still reach the
 * server after a later one (a stalled server runs what it had queued).
 * ------------------------------------------------------------------------- */

static void unknown_shorter_extend(void) {
    const char *name = test_name("race-unknown");
    proxy p;
    proxy_start(&p);
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = p.url;
    opts.timeout_ms = 10000;
    opts.ttl_ms = 10 * LONG_LEASE / 2;
    opts.io_timeout_ms = 300;
    fairlock *lock = test_lock_opts(&opts);
    redisContext *c = test_redis();

    /* Setup, not the subject: on a loaded machine the first acquire (a
     * connection, and the scripts' first EVAL) may outlast the short I/O
     * timeout this test needs later; its unknown outcome is resolved by
     * the next try. */
    int rc = FAIRLOCK_REDIS;
    for (int tries = 0; tries < 100 && rc == FAIRLOCK_REDIS; tries++)
        rc = fairlock_acquire(lock);
    CHECK_RC(lock, rc, FAIRLOCK_OK);
    CHECK_INT(fairlock_valid_until_ms(lock), >, now_ms() + LONG_LEASE);
    proxy_hold(&p, 0, 1);
    int64_t sent = now_ms();
    CHECK_RC(lock, fairlock_extend(lock, LONG_LEASE / 2), FAIRLOCK_REDIS);
    CHECK_INT(test_int(c, "PTTL %s", name), <=, LONG_LEASE / 2);
    int64_t valid = fairlock_valid_until_ms(lock);
    if (fairlock_state(lock) == FAIRLOCK_STATE_HELD)
        CHECK_INT(valid, <=, sent + LONG_LEASE / 2);
    proxy_hold(&p, 0, 0);

    sent = now_ms();
    /* A loaded machine may make this one time out too: another unknown
     * outcome, which the bound below must survive as well. */
    rc = FAIRLOCK_REDIS;
    for (int tries = 0; tries < 5 && rc == FAIRLOCK_REDIS; tries++)
        rc = fairlock_extend(lock, 10 * LONG_LEASE);
    CHECK_RC(lock, rc, FAIRLOCK_OK);
    CHECK_INT(fairlock_state(lock), ==, FAIRLOCK_STATE_HELD);
    valid = fairlock_valid_until_ms(lock);
    CHECK_INT(valid, >, sent);
    CHECK_INT(valid, <=, now_ms() + LONG_LEASE / 2);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_OK);
    CHECK_INT(test_keys_of(c, name), ==, 0);

    fairlock_free(lock);
    redisFree(c);
    proxy_stop(&p);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(shorter_extend_then_late_renewal);
    RUN_TEST(longer_extend_overtaken_by_renewal);
    RUN_TEST(renewal_resumes_after_extend);
    RUN_TEST(unknown_shorter_extend);
    return check_done();
}
