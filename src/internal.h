/* internal.h -- what the library's files share and nobody else sees. */
#ifndef FAIRLOCK_INTERNAL_H
#define FAIRLOCK_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"

#define FAIRLOCK__ERRMSG_SIZE 256
#define FAIRLOCK__KEY_COUNT 5

/* ---- URL parsing (url.c): pure, no I/O, fuzzable. ---- */

typedef enum { FAIRLOCK__URL_TCP, FAIRLOCK__URL_UNIX } fairlock__url_kind;

typedef struct fairlock__url {
    fairlock__url_kind kind;
    char *host; /* TCP: host name or address, without IPv6 brackets */
    int port;
    char *path; /* UNIX: socket path */
    char *user; /* NULL when absent; percent-decoded */
    char *password;
    int db;
} fairlock__url;

/* Parses url into *out (all strings heap-allocated).  On failure returns
 * FAIRLOCK_INVALID or FAIRLOCK_NOMEM and writes a reason, which never
 * repeats the URL's credentials, into err. */
int fairlock__url_parse(const char *url, fairlock__url *out, char *err,
                        size_t errlen);
void fairlock__url_clear(fairlock__url *url);

/* ---- Script replies (reply.c): pure, fuzzable. ---- */

/* Outcome of an acquire script. */
typedef struct fairlock__attempt {
    int granted;
    int64_t ticket;
    int64_t rank;     /* 0-based place in the queue while waiting */
    int64_t pttl_ms;  /* holder's remaining lease; <0 none or no holder */
    int64_t lease_ms; /* lease given with a grant; 0 = no expiry */
} fairlock__attempt;

/* Decodes the reply of acquire.lua / acquire_nonfifo.lua.  Returns 0, or -1
 * with a reason in err. */
int fairlock__decode_attempt(const redisReply *reply, fairlock__attempt *out,
                             char *err, size_t errlen);

/* Decodes the element a hand-off pushes to a waiter's wake list
 * ("ticket:lease_ms").  Returns 0 or -1. */
int fairlock__decode_handoff(const char *s, size_t len, int64_t *ticket,
                             int64_t *lease_ms);

/* ---- Lua scripts (generated from src/lua by CMake). ---- */

typedef struct fairlock__script {
    const char *name;
    const char *sha1; /* 40 lowercase hex digits */
    const char *body;
} fairlock__script;

extern const fairlock__script fairlock__script_acquire;
extern const fairlock__script fairlock__script_acquire_nonfifo;
extern const fairlock__script fairlock__script_release;
extern const fairlock__script fairlock__script_cancel;
extern const fairlock__script fairlock__script_extend;

/* ---- Tokens (token.c). ---- */

/* Writes a fresh owner token "<32 hex>.<lease_ms>.<live_ms>" from
 * getrandom(2).  Returns 0, or -1 with errno set. */
int fairlock__token_new(char out[FAIRLOCK_TOKEN_MAX], int64_t lease_ms,
                        int64_t live_ms);

/* ---- Monotonic clock. ---- */
int64_t fairlock__now_ms(void);

/* ---- The handle. ---- */

typedef struct fairlock__conn {
    redisContext *ctx; /* borrowed, or owned when `owned` */
    int owned;
    int borrowed;
    pid_t pid; /* process that made an owned connection */
    fairlock__url url;
    int64_t io_timeout_ms;
} fairlock__conn;

struct fairlock {
    int usable; /* fairlock_create() succeeded */
    char *name;
    size_t name_len;
    char *keys[FAIRLOCK__KEY_COUNT]; /* NAME, :queue, :seq, :nfwait, :nfwake */
    size_t key_lens[FAIRLOCK__KEY_COUNT];
    char *wake_key; /* NAME:wake:TOKEN of the current request */
    size_t wake_key_len;

    fairlock__conn conn;

    int64_t timeout_ms;
    int64_t ttl_ms;
    int64_t check_interval_ms;
    int64_t stale_timeout_ms;
    int64_t interrupt_check_ms;
    int blocking;
    int fifo;
    fairlock_interrupt_fn interrupt;
    void *interrupt_arg;

    /* Current request or grant. */
    char token[FAIRLOCK_TOKEN_MAX];
    int held;            /* granted and not released */
    int pending;         /* a script failed with unknown outcome */
    int64_t ticket;
    int64_t lease_ms;
    int64_t foreign_live_ms;

    int errcode;
    char errmsg[FAIRLOCK__ERRMSG_SIZE];
};

/* ---- Errors (errors.c). ---- */

/* Records code and a printf-style detail on the handle; returns code. */
int fairlock__fail(fairlock *lock, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Records success; returns FAIRLOCK_OK. */
int fairlock__ok(fairlock *lock);

/* ---- Connection (conn.c). ---- */

/* Resolves the URL (option, environment, default) for a handle without a
 * borrowed context. */
int fairlock__conn_init(fairlock *lock, struct redisContext *borrowed,
                        const char *url, int64_t io_timeout_ms);
void fairlock__conn_close(fairlock__conn *conn);

/* Connects lazily; returns FAIRLOCK_OK or FAIRLOCK_REDIS. */
int fairlock__conn_ready(fairlock *lock);

/* Sends one command and reads its reply.  block_ms > 0 lengthens the
 * socket timeout for a blocking command.  Returns NULL with the handle's
 * error set on I/O failure (the reply is never an error reply then: those
 * are returned to the caller). */
redisReply *fairlock__conn_command(fairlock *lock, int argc, const char **argv,
                                   const size_t *lens, int64_t block_ms);

/* Runs a script with the lock's keys and the given arguments via EVALSHA,
 * falling back to EVAL on NOSCRIPT.  Returns FAIRLOCK_OK and *out, or
 * FAIRLOCK_REDIS with the handle's error set (server error replies
 * included). */
int fairlock__conn_eval(fairlock *lock, const fairlock__script *script,
                        int argc, const char **argv, redisReply **out);

#endif
