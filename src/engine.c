/* engine.c -- one non-blocking Redis connection as a state machine, and
 * the poll() loop that makes a blocking call of it.
 *
 * hiredis formats the commands (redisFormatCommandArgv) and parses the
 * replies (redisReader); this file only moves bytes, so that it owns the
 * socket: non-blocking with explicit deadlines, written with MSG_NOSIGNAL
 * (no SIGPIPE, whatever the application's disposition), close-on-exec.
 * With TLS, tls.c encrypts and decrypts between the socket and these
 * buffers; the socket stays ours. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine.h"
#include "tls.h"

enum { MAX_ADDRS = 8, MAX_SETUP = 2, READ_CHUNK = 16384 };

struct fairlock__engine {
    fairlock__engine_state state;
    int fd;
    uint64_t socket_id; /* of fd: see fairlock__engine_socket_id() */
    int64_t deadline_ms;
    fairlock__error err;
    fairlock__url_kind kind;
    char *host; /* NULL for a unix socket */
    int port;
    char *path;

    /* Addresses to try in turn, and the errno of the last failed one. */
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t addr_lens[MAX_ADDRS];
    int addr_count, addr_next, last_errno;

    /* Bytes to write: the setup commands first, then the caller's, which
     * wait behind setup_end until the setup replies have all come (a
     * command sent after a failed AUTH would run as the default user). */
    char *out;
    size_t out_len, out_pos, out_cap, setup_end;
    const char *setup_what[MAX_SETUP]; /* what each setup reply answers */
    int setup_count, setup_done;

    redisReader *reader;
    long owed; /* replies to the caller's commands still to come */

    fairlock__tls *tls; /* NULL: plain text */
    int heard;          /* whether the server has sent anything yet */
    int replied;        /* whether it has sent anything but TLS handshake */
};

static int fail(fairlock__engine *eng, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Records the first failure only: what follows it is a consequence. */
static int fail(fairlock__engine *eng, const char *fmt, ...) {
    if (eng->state != FAIRLOCK__ENGINE_FAILED) {
        char msg[FAIRLOCK__ERRMSG_SIZE];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fairlock__error_set(&eng->err, FAIRLOCK_REDIS, "%s", msg);
        eng->state = FAIRLOCK__ENGINE_FAILED;
    }
    return -1;
}

static int connect_failed(fairlock__engine *eng, const char *why) {
    if (eng->host == NULL)
        return fail(eng, "cannot connect to unix socket %s: %s", eng->path,
                    why);
    return fail(eng, "cannot connect to %s:%d: %s", eng->host, eng->port, why);
}

static int append(fairlock__engine *eng, const char *bytes, size_t len) {
    if (eng->out_len + len > eng->out_cap) {
        size_t cap = eng->out_cap ? eng->out_cap : 1024;
        while (cap < eng->out_len + len)
            cap *= 2;
        char *grown = realloc(eng->out, cap);
        if (grown == NULL) {
            fairlock__error_set(&eng->err, FAIRLOCK_NOMEM, "out of memory");
            eng->state = FAIRLOCK__ENGINE_FAILED;
            return -1;
        }
        eng->out = grown;
        eng->out_cap = cap;
    }
    memcpy(eng->out + eng->out_len, bytes, len);
    eng->out_len += len;
    return 0;
}

static int format_into(fairlock__engine *eng, int argc, const char **argv,
                       const size_t *lens) {
    char *cmd = NULL;
    /* int in hiredis 0.14, long long in 1.x. */
    long long len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0) {
        fairlock__error_set(&eng->err, FAIRLOCK_NOMEM, "out of memory");
        eng->state = FAIRLOCK__ENGINE_FAILED;
        return -1;
    }
    int rc = append(eng, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------- */

static int add_addrs(fairlock__engine *eng, const char *host, int numeric) {
    char port[16];
    snprintf(port, sizeof port, "%d", eng->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = numeric ? AI_NUMERICHOST : 0;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return rc;
    for (struct addrinfo *a = res; a != NULL && eng->addr_count < MAX_ADDRS;
         a = a->ai_next) {
        if (a->ai_addrlen > sizeof eng->addrs[0])
            continue;
        memcpy(&eng->addrs[eng->addr_count], a->ai_addr, a->ai_addrlen);
        eng->addr_lens[eng->addr_count++] = a->ai_addrlen;
    }
    freeaddrinfo(res);
    return 0;
}

/* "localhost" is the loopback by definition (RFC 6761), and is how curl
 * treats it: it needs no resolver, which a minimal root without /etc/hosts
 * lacks, and it is redis-py's default host.  IPv4 first, then IPv6, as
 * Redis listens on both by default. */
static int resolve(fairlock__engine *eng) {
    if (eng->host == NULL) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&eng->addrs[0];
        if (strlen(eng->path) >= sizeof sun->sun_path)
            return connect_failed(eng, "the path is too long");
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, eng->path, strlen(eng->path) + 1);
        eng->addr_lens[0] = (socklen_t)sizeof *sun;
        eng->addr_count = 1;
        return 0;
    }
    int rc;
    if (strcasecmp(eng->host, "localhost") == 0)
        rc = add_addrs(eng, "127.0.0.1", 1) || add_addrs(eng, "::1", 1);
    else
        rc = add_addrs(eng, eng->host, 0);
    if (rc != 0 || eng->addr_count == 0)
        return connect_failed(eng,
                              rc != 0 ? gai_strerror(rc) : "no usable address");
    return 0;
}

static void close_socket(fairlock__engine *eng) {
    if (eng->fd >= 0)
        close(eng->fd);
    eng->fd = -1;
}

static void do_write(fairlock__engine *eng);

/* A TLS server that refuses the client's certificate (or its absence)
 * after the handshake, as TLS 1.3 servers do, sends an alert and closes;
 * the alert is often lost to the reset that our unread command causes. */
static int refused_after_handshake(fairlock__engine *eng) {
    if (eng->tls == NULL && !eng->heard &&
        eng->state != FAIRLOCK__ENGINE_CONNECTING)
        /* A TLS port drops a plain-text client without a word. */
        return fail(eng, "Redis I/O error: the server closed the connection "
                         "before any reply (if the port is a TLS port, use "
                         "rediss://)");
    if (eng->tls == NULL || eng->replied ||
        eng->state == FAIRLOCK__ENGINE_HANDSHAKE)
        return 0;
    return fail(eng,
                "Redis I/O error: the server closed the TLS connection before "
                "any reply: it requires a client certificate, or refused the "
                "one given (ssl_certfile and ssl_keyfile / tls_cert_file "
                "and tls_key_file)");
}

/* A socket call failed with errno e. */
static void io_failed(fairlock__engine *eng, int e) {
    if (!refused_after_handshake(eng))
        fail(eng, "Redis I/O error: %s", strerror(e));
}

/* Writes as much of buf as the socket takes now: the count, or -1 when
 * the connection failed. */
static ssize_t send_now(fairlock__engine *eng, const char *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(eng->fd, buf + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            io_failed(eng, errno);
            return -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Sends what TLS has encrypted, as far as the socket takes it. */
static void flush_wire(fairlock__engine *eng) {
    const char *data;
    size_t len;
    while (eng->state != FAIRLOCK__ENGINE_FAILED &&
           (len = fairlock__tls_pending(eng->tls, &data)) > 0) {
        ssize_t n = send_now(eng, data, len);
        if (n > 0)
            fairlock__tls_sent(eng->tls, (size_t)n);
        if (n < (ssize_t)len)
            return;
    }
}

static int wire_pending(const fairlock__engine *eng) {
    const char *data;
    return eng->tls != NULL && fairlock__tls_pending(eng->tls, &data) > 0;
}

/* Setup or, without it, ready: the commands may be written now. */
static void secured(fairlock__engine *eng) {
    eng->state = eng->setup_count > 0 ? FAIRLOCK__ENGINE_SETUP
                                      : FAIRLOCK__ENGINE_READY;
    do_write(eng);
}

static void handshake_step(fairlock__engine *eng) {
    int rc = fairlock__tls_handshake(eng->tls, &eng->err);
    if (rc < 0) {
        eng->state = FAIRLOCK__ENGINE_FAILED;
        return;
    }
    flush_wire(eng);
    if (rc == 1 && eng->state == FAIRLOCK__ENGINE_HANDSHAKE)
        secured(eng);
}

/* The socket is up: what comes next. */
static void connected(fairlock__engine *eng) {
    if (eng->tls != NULL) {
        eng->state = FAIRLOCK__ENGINE_HANDSHAKE;
        handshake_step(eng);
    } else {
        secured(eng);
    }
}

/* Numbers every socket made, in any thread, so that a new socket is told
 * from a closed one whose fd number it reuses. */
static _Atomic uint64_t next_socket_id = 1;

/* Tries the remaining addresses until a connect is in flight or done. */
static int try_connect(fairlock__engine *eng) {
    while (eng->addr_next < eng->addr_count) {
        const struct sockaddr_storage *addr = &eng->addrs[eng->addr_next];
        socklen_t len = eng->addr_lens[eng->addr_next++];
        /* Close-on-exec from the start: a program that runs others (the
         * fairlock command) must not leak the socket into them. */
        eng->fd = socket(addr->ss_family,
                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (eng->fd < 0) {
            eng->last_errno = errno;
            continue;
        }
        eng->socket_id = atomic_fetch_add(&next_socket_id, 1);
        if (addr->ss_family != AF_UNIX) {
            /* Commands are small and each waits for its reply. */
            int one = 1;
            setsockopt(eng->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (connect(eng->fd, (const struct sockaddr *)addr, len) == 0) {
            connected(eng);
            return 0;
        }
        if (errno == EINPROGRESS)
            return 0;
        eng->last_errno = errno;
        close_socket(eng);
    }
    return connect_failed(
        eng, strerror(eng->last_errno ? eng->last_errno : ECONNREFUSED));
}

static void connect_done(fairlock__engine *eng) {
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(eng->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
        e = errno;
    if (e == 0) {
        connected(eng);
        return;
    }
    eng->last_errno = e;
    close_socket(eng);
    try_connect(eng);
}

fairlock__engine *fairlock__engine_start(const fairlock__engine_target *target,
                                         int64_t deadline_ms) {
    fairlock__engine *eng = calloc(1, sizeof *eng);
    if (eng == NULL)
        return NULL;
    eng->fd = -1;
    eng->state = FAIRLOCK__ENGINE_CONNECTING;
    eng->deadline_ms = deadline_ms;
    eng->kind = target->kind;
    eng->port = target->port;
    eng->reader = redisReaderCreate();
    if (target->host != NULL)
        eng->host = strdup(target->host);
    else
        eng->path = strdup(target->path);
    if (eng->reader == NULL || (eng->host == NULL && eng->path == NULL)) {
        fairlock__engine_free(eng);
        return NULL;
    }
    if (target->password != NULL) {
        const char *argv[3] = {"AUTH",
                               target->user ? target->user : target->password,
                               target->password};
        eng->setup_what[eng->setup_count++] =
            target->kind == FAIRLOCK__URL_SENTINEL
                ? "authentication to a sentinel"
                : "authentication";
        if (format_into(eng, target->user ? 3 : 2, argv, NULL) != 0)
            return eng;
    }
    if (target->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", target->db);
        const char *argv[2] = {"SELECT", db};
        eng->setup_what[eng->setup_count++] = "SELECT of the database";
        if (format_into(eng, 2, argv, NULL) != 0)
            return eng;
    }
    eng->setup_end = eng->out_len;
    if (target->tls != NULL && target->tls->enabled) {
        eng->tls = fairlock__tls_new(target->tls, eng->host ? eng->host : "",
                                     eng->port, &eng->err);
        if (eng->tls == NULL) {
            eng->state = FAIRLOCK__ENGINE_FAILED;
            return eng;
        }
    }
    if (resolve(eng) == 0)
        try_connect(eng);
    return eng;
}

void fairlock__engine_free(fairlock__engine *eng) {
    if (eng == NULL)
        return;
    fairlock__tls_free(eng->tls);
    close_socket(eng);
    if (eng->reader != NULL)
        redisReaderFree(eng->reader);
    if (eng->out != NULL) /* AUTH's password may be in it */
        memset(eng->out, 0, eng->out_cap);
    free(eng->out);
    free(eng->host);
    free(eng->path);
    free(eng);
}

/* ---------------------------------------------------------------------------
 * Moving bytes
 * ------------------------------------------------------------------------- */

/* How far the output may be written in this state. */
static size_t write_limit(const fairlock__engine *eng) {
    switch (eng->state) {
    case FAIRLOCK__ENGINE_SETUP:
        return eng->setup_end;
    case FAIRLOCK__ENGINE_READY:
        return eng->out_len;
    case FAIRLOCK__ENGINE_CONNECTING:
    case FAIRLOCK__ENGINE_HANDSHAKE:
    case FAIRLOCK__ENGINE_FAILED:
        break;
    }
    return 0;
}

static void do_write(fairlock__engine *eng) {
    size_t limit = write_limit(eng);
    if (eng->tls != NULL) {
        if (eng->out_pos < limit &&
            fairlock__tls_encrypt(eng->tls, eng->out + eng->out_pos,
                                  limit - eng->out_pos, &eng->err) != 0) {
            eng->state = FAIRLOCK__ENGINE_FAILED;
            return;
        }
        eng->out_pos = limit;
        flush_wire(eng);
    }
    if (eng->out_pos < limit) {
        ssize_t n = send_now(eng, eng->out + eng->out_pos,
                             limit - eng->out_pos);
        if (n < 0)
            return;
        eng->out_pos += (size_t)n;
    }
    if (eng->out_pos == eng->out_len) {
        eng->out_pos = eng->out_len = eng->setup_end = 0;
    }
}

/* Hands the setup replies to their checks; the first error reply fails
 * the connection with what it shows is misconfigured. */
static void check_setup(fairlock__engine *eng) {
    while (eng->state == FAIRLOCK__ENGINE_SETUP) {
        void *r = NULL;
        if (redisReaderGetReply(eng->reader, &r) != REDIS_OK) {
            fail(eng, "Redis I/O error: %s", eng->reader->errstr);
            return;
        }
        if (r == NULL)
            return;
        redisReply *reply = r;
        const char *what = eng->setup_what[eng->setup_done++];
        if (reply->type == REDIS_REPLY_ERROR) {
            fairlock__error_reply(&eng->err, eng->kind, what, reply->str);
            eng->state = FAIRLOCK__ENGINE_FAILED;
        } else if (eng->setup_done == eng->setup_count) {
            eng->state = FAIRLOCK__ENGINE_READY;
        }
        freeReplyObject(reply);
    }
}

/* Hands plaintext to the reply parser. */
static void parse(fairlock__engine *eng, const char *buf, size_t len) {
    if (redisReaderFeed(eng->reader, buf, len) != REDIS_OK) {
        fail(eng, "Redis I/O error: %s", eng->reader->errstr);
        return;
    }
    check_setup(eng);
}

/* What came from the socket, through TLS when there is TLS. */
static void received(fairlock__engine *eng, char *buf, size_t len) {
    if (eng->tls == NULL) {
        parse(eng, buf, len);
        return;
    }
    if (fairlock__tls_received(eng->tls, buf, len) != 0) {
        fairlock__error_set(&eng->err, FAIRLOCK_NOMEM, "out of memory");
        eng->state = FAIRLOCK__ENGINE_FAILED;
        return;
    }
    if (eng->state == FAIRLOCK__ENGINE_HANDSHAKE)
        handshake_step(eng);
    while (eng->state == FAIRLOCK__ENGINE_SETUP ||
           eng->state == FAIRLOCK__ENGINE_READY) {
        long n = fairlock__tls_decrypt(eng->tls, buf, READ_CHUNK, &eng->err);
        if (n < 0)
            eng->state = FAIRLOCK__ENGINE_FAILED;
        if (n <= 0)
            break;
        eng->replied = 1;
        parse(eng, buf, (size_t)n);
    }
    flush_wire(eng);
}

static void do_read(fairlock__engine *eng) {
    char buf[READ_CHUNK];
    ssize_t n;
    do
        n = recv(eng->fd, buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            io_failed(eng, errno);
        return;
    }
    if (n == 0 && refused_after_handshake(eng))
        return;
    if (n == 0) {
        fail(eng, "Redis I/O error: Server closed the connection%s",
             eng->tls != NULL && eng->state == FAIRLOCK__ENGINE_HANDSHAKE
                 ? " during the TLS handshake"
                 : "");
        return;
    }
    if (!eng->heard) {
        /* A TLS/plain-text mismatch shows in the first bytes, and a
         * reply parser or TLS would only call them garbage. */
        const char *why = fairlock__diagnose_first_bytes(buf, (size_t)n,
                                                         eng->tls != NULL);
        eng->heard = 1;
        if (why != NULL) {
            if (eng->host != NULL)
                fail(eng, "cannot talk to %s:%d: %s", eng->host, eng->port,
                     why);
            else
                fail(eng, "cannot talk to unix socket %s: %s", eng->path, why);
            return;
        }
    }
    received(eng, buf, (size_t)n);
}

/* ---------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------- */

fairlock__engine_state fairlock__engine_get_state(const fairlock__engine *eng) {
    return eng->state;
}

const fairlock__error *fairlock__engine_error(const fairlock__engine *eng) {
    return &eng->err;
}

const char *fairlock__engine_host(const fairlock__engine *eng) {
    return eng->host;
}

int fairlock__engine_fd(const fairlock__engine *eng) {
    return eng->state == FAIRLOCK__ENGINE_FAILED ? -1 : eng->fd;
}

uint64_t fairlock__engine_socket_id(const fairlock__engine *eng) {
    return eng->state == FAIRLOCK__ENGINE_FAILED || eng->fd < 0
               ? 0
               : eng->socket_id;
}

short fairlock__engine_events(const fairlock__engine *eng) {
    switch (eng->state) {
    case FAIRLOCK__ENGINE_CONNECTING:
        return POLLOUT;
    case FAIRLOCK__ENGINE_HANDSHAKE:
        return POLLIN | (wire_pending(eng) ? POLLOUT : 0);
    case FAIRLOCK__ENGINE_SETUP:
    case FAIRLOCK__ENGINE_READY: {
        short events = 0;
        if (eng->out_pos < write_limit(eng) || wire_pending(eng))
            events |= POLLOUT;
        if (eng->state == FAIRLOCK__ENGINE_SETUP || eng->owed > 0)
            events |= POLLIN;
        return events;
    }
    case FAIRLOCK__ENGINE_FAILED:
        break;
    }
    return 0;
}

int64_t fairlock__engine_deadline(const fairlock__engine *eng) {
    return eng->deadline_ms;
}

void fairlock__engine_set_deadline(fairlock__engine *eng, int64_t deadline_ms) {
    eng->deadline_ms = deadline_ms;
}

void fairlock__engine_handle(fairlock__engine *eng, short revents) {
    if (eng->state == FAIRLOCK__ENGINE_CONNECTING) {
        if (revents & (POLLOUT | POLLERR | POLLHUP))
            connect_done(eng);
        return;
    }
    if (eng->state == FAIRLOCK__ENGINE_FAILED)
        return;
    if (revents & (POLLOUT | POLLERR)) {
        if (eng->state == FAIRLOCK__ENGINE_HANDSHAKE)
            flush_wire(eng);
        else
            do_write(eng);
    }
    if (eng->state != FAIRLOCK__ENGINE_FAILED &&
        (revents & (POLLIN | POLLHUP | POLLERR)))
        do_read(eng);
    /* Setup done: the caller's commands may go now. */
    if (eng->state == FAIRLOCK__ENGINE_READY && eng->out_pos < eng->out_len &&
        (revents & POLLIN))
        do_write(eng);
}

void fairlock__engine_expire(fairlock__engine *eng) {
    switch (eng->state) {
    case FAIRLOCK__ENGINE_CONNECTING:
        connect_failed(eng, strerror(ETIMEDOUT));
        break;
    case FAIRLOCK__ENGINE_HANDSHAKE:
        connect_failed(eng, "no TLS handshake reply in time: the port does "
                            "not speak TLS (a plain-text port: use "
                            "redis://), or the server is stalled");
        break;
    case FAIRLOCK__ENGINE_SETUP:
        fail(eng, "%s failed: no reply in time",
             eng->setup_what[eng->setup_done]);
        break;
    case FAIRLOCK__ENGINE_READY:
        fail(eng, "Redis I/O error: %s",
             eng->out_pos < eng->out_len ? "the command could not be sent "
                                           "in time"
                                         : "no reply in time");
        break;
    case FAIRLOCK__ENGINE_FAILED:
        break;
    }
}

int fairlock__engine_queue(fairlock__engine *eng, int argc, const char **argv,
                           const size_t *lens) {
    if (eng->state == FAIRLOCK__ENGINE_FAILED)
        return -1;
    if (format_into(eng, argc, argv, lens) != 0)
        return -1;
    eng->owed++;
    return 0;
}

int fairlock__engine_writing(const fairlock__engine *eng) {
    return eng->out_pos < eng->out_len || wire_pending(eng);
}

redisReply *fairlock__engine_reply(fairlock__engine *eng) {
    if (eng->state != FAIRLOCK__ENGINE_READY || eng->owed == 0)
        return NULL;
    void *r = NULL;
    if (redisReaderGetReply(eng->reader, &r) != REDIS_OK) {
        fail(eng, "Redis I/O error: %s", eng->reader->errstr);
        return NULL;
    }
    if (r != NULL)
        eng->owed--;
    return r;
}

/* ---------------------------------------------------------------------------
 * The blocking API: a poll() loop with the deadline as its timeout
 * ------------------------------------------------------------------------- */

/* One turn: write what can be written at once (the socket is usually
 * writable, which saves a poll), else wait for the socket or the deadline.
 * Returns -1 when the engine FAILED. */
static int turn(fairlock__engine *eng) {
    short events = fairlock__engine_events(eng);
    if (events == 0)
        return fail(eng, "Redis I/O error: nothing to wait for");
    if ((events & POLLOUT) && eng->state != FAIRLOCK__ENGINE_CONNECTING) {
        fairlock__engine_handle(eng, POLLOUT);
        if (eng->state == FAIRLOCK__ENGINE_FAILED)
            return -1;
        /* All written: the caller's goal may be reached. */
        events = fairlock__engine_events(eng);
        if (!(events & POLLOUT))
            return 0;
    }
    int64_t left = eng->deadline_ms - fairlock__now_ms();
    if (left <= 0) {
        fairlock__engine_expire(eng);
        return -1;
    }
    struct pollfd pfd = {eng->fd, events, 0};
    int n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
    if (n < 0 && errno != EINTR)
        return fail(eng, "Redis I/O error: poll: %s", strerror(errno));
    if (n > 0)
        fairlock__engine_handle(eng, pfd.revents);
    return eng->state == FAIRLOCK__ENGINE_FAILED ? -1 : 0;
}

int fairlock__engine_wait_ready(fairlock__engine *eng, int64_t deadline_ms) {
    eng->deadline_ms = deadline_ms;
    while (eng->state != FAIRLOCK__ENGINE_READY)
        if (eng->state == FAIRLOCK__ENGINE_FAILED || turn(eng) != 0)
            return -1;
    return 0;
}

int fairlock__engine_wait_written(fairlock__engine *eng, int64_t deadline_ms) {
    eng->deadline_ms = deadline_ms;
    while (eng->state != FAIRLOCK__ENGINE_READY ||
           fairlock__engine_writing(eng))
        if (eng->state == FAIRLOCK__ENGINE_FAILED || turn(eng) != 0)
            return -1;
    return 0;
}

redisReply *fairlock__engine_wait_reply(fairlock__engine *eng,
                                        int64_t deadline_ms) {
    eng->deadline_ms = deadline_ms;
    for (;;) {
        redisReply *reply = fairlock__engine_reply(eng);
        if (reply != NULL)
            return reply;
        if (eng->state == FAIRLOCK__ENGINE_FAILED || turn(eng) != 0)
            return NULL;
    }
}
