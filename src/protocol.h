/* protocol.h -- the client side of the scripts: keys, tokens, calls, replies.
 *
 * The server side is src/lua/ (common.lua is the contract); this is its
 * mirror.  protocol.c builds the keys and tokens and makes one typed call
 * per script, so it is the only C file that knows ARGV positions; reply.c
 * decodes every reply without I/O, so that it can be fuzzed. */
#ifndef FAIRLOCK_PROTOCOL_H
#define FAIRLOCK_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "fairlock.h"

/* Defined in internal.h; a typedef may be repeated in C11. */
typedef struct fairlock__conn fairlock__conn;
typedef struct fairlock__error fairlock__error;

/* ---- Keys (protocol.c). ---- */

/* The KEYS of every script, in common.lua's order. */
typedef enum {
    FAIRLOCK__KEY_LOCK,   /* NAME: the holder's token */
    FAIRLOCK__KEY_QUEUE,  /* NAME:queue */
    FAIRLOCK__KEY_SEQ,    /* NAME:seq */
    FAIRLOCK__KEY_NFWAIT, /* NAME:nfwait */
    FAIRLOCK__KEY_NFWAKE, /* NAME:nfwake */
    FAIRLOCK__KEY_FENCE,  /* NAME:fence */
    FAIRLOCK__KEY_WATCH,  /* NAME:watch */
    FAIRLOCK__KEY_WHO,    /* NAME:who: identities (opt-in) */
    FAIRLOCK__KEY_COUNT
} fairlock__key_slot;

/* The KEYS of the semaphore and readers-writer scripts, in
 * sem_common.lua's order: as many, so the connection passes either set
 * the same way, and the queue and counters where common.lua's helpers
 * read them. */
enum {
    FAIRLOCK__SKEY_KIND,    /* NAME:kind */
    FAIRLOCK__SKEY_QUEUE,   /* NAME:waiters */
    FAIRLOCK__SKEY_SEQ,     /* NAME:tickets */
    FAIRLOCK__SKEY_HOLDERS, /* NAME:holders */
    FAIRLOCK__SKEY_GRANTS,  /* NAME:grants */
    FAIRLOCK__SKEY_FENCE,   /* NAME:fencing */
    FAIRLOCK__SKEY_MUTEX,   /* NAME, the mutex's lock key, only read */
    FAIRLOCK__SKEY_WHO      /* NAME:who: identities (opt-in) */
};

/* Room for "semaphore N" or "rwlock". */
#define FAIRLOCK__KIND_TAG_SIZE 32

/* The keys of one lock, and the wake list of its current request.  kind
 * (a fairlock_kind) selects the layout and the scripts every call below
 * runs; tag is what the new kinds record in NAME:kind. */
typedef struct fairlock__keys {
    int kind;
    char tag[FAIRLOCK__KIND_TAG_SIZE];
    char *names[FAIRLOCK__KEY_COUNT];
    size_t lens[FAIRLOCK__KEY_COUNT];
    size_t base_len; /* NAME, or {NAME} with hash_tag */
    char *wake;      /* NAME:wake:TOKEN once a token is set */
    size_t wake_len;
    /* Identity sent with acquires (fairlock_options.identity): borrowed
     * from the handle, NULL when off.  Not copied by keys_copy. */
    const char *who_host;
    const char *who_label;
} fairlock__keys;

/* Derives the keys of the lock `name`: "NAME..." or, with hash_tag,
 * "{NAME}...".  Returns FAIRLOCK_OK or FAIRLOCK_NOMEM (clear them then). */
int fairlock__keys_init(fairlock__keys *keys, const char *name, size_t len,
                        int hash_tag);
/* The same for a lock of any kind: permits is a semaphore's N. */
int fairlock__keys_init_kind(fairlock__keys *keys, const char *name, size_t len,
                             int hash_tag, int kind, int64_t permits);
/* A copy for another thread.  Returns FAIRLOCK_OK or FAIRLOCK_NOMEM. */
int fairlock__keys_copy(fairlock__keys *dst, const fairlock__keys *src);
/* Points keys->wake at the wake list of `token`. */
void fairlock__keys_set_wake(fairlock__keys *keys, const char *token);
void fairlock__keys_clear(fairlock__keys *keys);

/* ---- Tokens (protocol.c encodes, reply.c decodes). ---- */

/* Writes a fresh owner token "<32 hex>.<lease_ms>.<live_ms>[.f]".
 * Returns 0, or -1 with errno set when no randomness could be had. */
int fairlock__token_new(char out[FAIRLOCK_TOKEN_MAX], int64_t lease_ms,
                        int64_t live_ms, int fencing);
/* The liveness window a token of ours carries; 0 for other tokens. */
int64_t fairlock__token_liveness(const char *token, size_t len);

/* ---- Replies (reply.c): pure, fuzzable. ---- */

/* When a waiter calls its acquire script again (acquire.lua's "next"). */
enum {
    FAIRLOCK__NEXT_ON_PUSH = 0, /* a push, its heartbeat or the lease's end */
    FAIRLOCK__NEXT_NOW = 1,     /* lock free, dead entries left to clear */
    FAIRLOCK__NEXT_POLL = 2     /* clients of another kind: check_interval */
};

/* Outcome of an acquire script. */
typedef struct fairlock__attempt {
    int granted;
    int64_t ticket;
    int64_t rank;     /* 0-based place in the queue while waiting */
    int64_t pttl_ms;  /* holder's remaining lease; <0 none or no holder */
    int64_t lease_ms; /* lease given with a grant; 0 = no expiry */
    int64_t fence;    /* fencing token of a grant, 0 = none */
    int next_call;    /* FAIRLOCK__NEXT_*: when a waiter should call again */
    int64_t permit;   /* semaphore: the grant's permit; else 0 */
} fairlock__attempt;

/* Decodes the reply of acquire.lua / acquire_nonfifo.lua, or of
 * sem_acquire.lua (an eighth field: the permit).  Returns 0, or -1
 * with a reason in err. */
int fairlock__decode_attempt(const redisReply *reply, fairlock__attempt *out,
                             char *err, size_t errlen);

/* Decodes the reply of cancel.lua: *undone (0 or 1) and the scan cursor to
 * resume from ("0": done), at most 20 digits, into cursor[cursor_len].
 * Returns 0, or -1 with a reason in err. */
int fairlock__decode_cancel(const redisReply *reply, int *undone, char *cursor,
                            size_t cursor_len, char *err, size_t errlen);

/* Decodes the element a hand-off pushes to a waiter's wake list
 * ("ticket:lease_ms:fence", or with ":permit" from sem_common.lua) into
 * out->ticket, lease_ms, fence and permit (0 when absent).
 * Returns 0 or -1. */
int fairlock__decode_handoff(const char *s, size_t len, fairlock__attempt *out);

/* The identity argument of the acquire scripts: "pid<TAB>host<TAB>label",
 * or "" when host is NULL (identity off).  out needs
 * FAIRLOCK__IDENT_SIZE bytes. */
#define FAIRLOCK__IDENT_SIZE (24 + 65 + FAIRLOCK_LABEL_MAX + 1)
void fairlock__ident_format(char *out, long pid, const char *host,
                            const char *label);

/* Decodes the reply of status.lua into a fairlock_status allocated as one
 * block.  Returns FAIRLOCK_OK, FAIRLOCK_NOMEM, or FAIRLOCK_REDIS with a
 * reason in err. */
int fairlock__decode_status(const redisReply *reply, fairlock_status **out,
                            char *err, size_t errlen);
/* The same for sem_status.lua's reply. */
int fairlock__decode_sem_status(const redisReply *reply, fairlock_status **out,
                                char *err, size_t errlen);

/* The reply of a script that answers 1 or 0 (release.lua, extend.lua):
 * 1 or 0, or -1 for no reply (NULL) or one that is not an integer. */
int fairlock__decode_flag(const redisReply *reply);

/* What a BLPOP on a wake list brought. */
enum {
    FAIRLOCK__WAKE_NONE = 0,      /* nothing before its timeout */
    FAIRLOCK__WAKE_PUSHED = 1,    /* an element: *msg, *len point into it */
    FAIRLOCK__WAKE_UNBLOCKED = 2, /* a failover or slot move ended it */
    FAIRLOCK__WAKE_BAD = -1       /* an error reply or an unexpected shape */
};
int fairlock__decode_wake(const redisReply *reply, const char **msg,
                          size_t *len);

/* The replica count of a WAIT reply, or -1. */
long long fairlock__decode_wait(const redisReply *reply);

/* ---- Commands built and replies read (protocol.c), for callers that do
 * their own I/O: the blocking calls below and the non-blocking API. ---- */

/* Most ARGV a script takes. */
#define FAIRLOCK__CMD_ARGS 8

/* A script to run with the lock's keys (script set: argv are its ARGV) or
 * a plain command (script NULL: argv is the whole command).  The
 * arguments point into the keys, the token and the cursor given, and into
 * nums: build it where it stays, do not copy it. */
typedef struct fairlock__cmd {
    const struct fairlock__script *script;
    int argc;
    const char *argv[FAIRLOCK__CMD_ARGS];
    size_t lens[FAIRLOCK__CMD_ARGS];
    int64_t block_ms; /* how long the server may hold the reply back */
    char nums[2][32];
    char ident[FAIRLOCK__IDENT_SIZE];
} fairlock__cmd;

void fairlock__build_acquire(fairlock__cmd *cmd, const fairlock__keys *keys,
                             const char *token, int64_t ticket,
                             int64_t foreign_live_ms, int try_once);
void fairlock__build_acquire_nonfifo(fairlock__cmd *cmd,
                                     const fairlock__keys *keys,
                                     const char *token, int64_t wait_ms,
                                     int64_t foreign_live_ms);
void fairlock__build_release(fairlock__cmd *cmd, const fairlock__keys *keys,
                             const char *token, int64_t foreign_live_ms);
void fairlock__build_cancel(fairlock__cmd *cmd, const fairlock__keys *keys,
                            const char *token, int64_t ticket,
                            int64_t foreign_live_ms, const char *cursor,
                            int in_flight);
void fairlock__build_extend(fairlock__cmd *cmd, const fairlock__keys *keys,
                            const char *token, int64_t lease_ms);
void fairlock__build_status(fairlock__cmd *cmd, const fairlock__keys *keys,
                            size_t max_waiters);
void fairlock__build_wait_push(fairlock__cmd *cmd, const fairlock__keys *keys,
                               int fifo, int64_t slice_ms);
void fairlock__build_wait_replicas(fairlock__cmd *cmd, int replicas,
                                   int64_t timeout_ms);

/* Records the error reply of a script sent as `sent` (EVALSHA or EVAL),
 * diagnosed for a connection of url kind `kind` (a fairlock__url_kind):
 * FAIRLOCK_MISMATCH for a name in use as another kind, else
 * FAIRLOCK_REDIS. */
int fairlock__script_failed(fairlock__error *err, int kind,
                            const fairlock__keys *keys,
                            const struct fairlock__script *script,
                            const char *sent, const char *reply);
/* Decoders of a (non-error) script reply into what the calls below
 * return; FAIRLOCK_OK, or a code with err set. */
int fairlock__read_attempt(fairlock__error *err, const redisReply *reply,
                           fairlock__attempt *out);
/* cursor: FAIRLOCK__CURSOR_SIZE bytes, overwritten. */
int fairlock__read_cancel(fairlock__error *err, const redisReply *reply,
                          char *cursor, int *undone);
int fairlock__read_status(fairlock__error *err, const fairlock__keys *keys,
                          const redisReply *reply, fairlock_status **out);
/* The reply of BLPOP (any, error replies too). */
int fairlock__read_wait_push(fairlock__error *err, int kind, int fifo,
                             const redisReply *reply, int *woken,
                             fairlock__attempt *handoff);
int fairlock__read_wait_replicas(fairlock__error *err, int kind,
                                 const redisReply *reply, long long *acked);

/* ---- Script calls (protocol.c). ----
 *
 * Each runs its script with the lock's keys on conn and decodes the reply;
 * keys->kind picks the mutex's scripts or sem_*.lua.  A name recorded as
 * another kind (or N) makes an acquire fail with FAIRLOCK_MISMATCH.
 * They return FAIRLOCK_OK, or a code with err set: FAIRLOCK_REDIS for an
 * I/O failure (outcome unknown), a server error or a malformed reply. */

/* Cursor buffer of cancel.lua's paged search. */
#define FAIRLOCK__CURSOR_SIZE 24
/* The ticket of a request that never queues (non-FIFO). */
#define FAIRLOCK__NO_TICKET (-1)

/* acquire.lua: ticket 0 for a new request; try_once leaves no entry
 * behind when the lock is not granted. */
int fairlock__call_acquire(fairlock__conn *conn, fairlock__error *err,
                           const fairlock__keys *keys, const char *token,
                           int64_t ticket, int64_t foreign_live_ms,
                           int try_once, fairlock__attempt *out);
/* acquire_nonfifo.lua: wait_ms advertises how long non-FIFO waiters wait,
 * 0 for a single try. */
int fairlock__call_acquire_nonfifo(fairlock__conn *conn, fairlock__error *err,
                                   const fairlock__keys *keys,
                                   const char *token, int64_t wait_ms,
                                   int64_t foreign_live_ms,
                                   fairlock__attempt *out);
/* release.lua: *released is 1 when the token held the lock. */
int fairlock__call_release(fairlock__conn *conn, fairlock__error *err,
                           const fairlock__keys *keys, const char *token,
                           int64_t foreign_live_ms, int *released);
/* One page of cancel.lua: ticket > 0 as last known, 0 unknown,
 * FAIRLOCK__NO_TICKET none; cursor[FAIRLOCK__CURSOR_SIZE] is "0" at first
 * and comes back "0" when done; *undone is 1 when a grant was undone.
 * in_flight: the request's last acquire got no reply, so a copy of it
 * may still arrive; the script then leaves the token's tombstone. */
int fairlock__call_cancel(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, const char *token,
                          int64_t ticket, int64_t foreign_live_ms, char *cursor,
                          int in_flight, int *undone);
/* extend.lua: lease_ms 0 for no expiry; *owned is 1 when the token held
 * the lock. */
int fairlock__call_extend(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, const char *token,
                          int64_t lease_ms, int *owned);
/* status.lua, listing at most max_waiters (capped at a million). */
int fairlock__call_status(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, size_t max_waiters,
                          fairlock_status **out);

/* One BLPOP of up to slice_ms on keys->wake (fifo) or NAME:nfwake.
 * *woken is a FAIRLOCK__WAKE_* other than BAD; with fifo the hand-off
 * that was pushed is decoded into *handoff (FAIRLOCK_REDIS if malformed). */
int fairlock__call_wait_push(fairlock__conn *conn, fairlock__error *err,
                             const fairlock__keys *keys, int fifo,
                             int64_t slice_ms, int *woken,
                             fairlock__attempt *handoff);
/* WAIT for `replicas` up to timeout_ms; *acked is how many acknowledged. */
int fairlock__call_wait_replicas(fairlock__conn *conn, fairlock__error *err,
                                 int replicas, int64_t timeout_ms,
                                 long long *acked);
/* GET of the lock key: *owned is 1 when it holds `token`. */
int fairlock__call_holder_is(fairlock__conn *conn, fairlock__error *err,
                             const fairlock__keys *keys, const char *token,
                             int *owned);
/* EXISTS of the lock key. */
int fairlock__call_locked(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, int *locked);

#endif
