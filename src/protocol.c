/* protocol.c -- the client side of the scripts: keys, tokens, typed calls.
 *
 * The only C file that knows what each script takes in ARGV (the comment
 * at the top of each src/lua/ script) and which command carries what;
 * every reply goes through a decoder of reply.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static const char *const key_suffixes[FAIRLOCK__KEY_COUNT] = {
    [FAIRLOCK__KEY_LOCK] = "",          [FAIRLOCK__KEY_QUEUE] = ":queue",
    [FAIRLOCK__KEY_SEQ] = ":seq",       [FAIRLOCK__KEY_NFWAIT] = ":nfwait",
    [FAIRLOCK__KEY_NFWAKE] = ":nfwake", [FAIRLOCK__KEY_FENCE] = ":fence",
    [FAIRLOCK__KEY_WATCH] = ":watch",   [FAIRLOCK__KEY_WHO] = ":who"};
/* The semaphore's and readers-writer lock's, none of them the mutex's but
 * the last, which their scripts only look at (sem_common.lua). */
static const char *const shared_suffixes[FAIRLOCK__KEY_COUNT] = {
    [FAIRLOCK__SKEY_KIND] = ":kind",     [FAIRLOCK__SKEY_HOLDERS] = ":holders",
    [FAIRLOCK__SKEY_QUEUE] = ":waiters", [FAIRLOCK__SKEY_SEQ] = ":tickets",
    [FAIRLOCK__SKEY_FENCE] = ":fencing", [FAIRLOCK__SKEY_GRANTS] = ":grants",
    [FAIRLOCK__SKEY_MUTEX] = "",         [FAIRLOCK__SKEY_WHO] = ":who"};
static const char wake_infix[] = ":wake:";
static const char grant_infix[] = ":grant:";
#define INFIX_MAX                                                              \
    (sizeof grant_infix > sizeof wake_infix ? sizeof grant_infix               \
                                            : sizeof wake_infix)

static int is_mutex(const fairlock__keys *keys) {
    return keys->kind == FAIRLOCK_KIND_MUTEX;
}

static const char *infix_of(const fairlock__keys *keys) {
    return is_mutex(keys) ? wake_infix : grant_infix;
}

/* ---------------------------------------------------------------------------
 * Keys and tokens
 * ------------------------------------------------------------------------- */

int fairlock__keys_init(fairlock__keys *keys, const char *name, size_t len,
                        int hash_tag) {
    return fairlock__keys_init_kind(keys, name, len, hash_tag,
                                    FAIRLOCK_KIND_MUTEX, 0);
}

int fairlock__keys_init_kind(fairlock__keys *keys, const char *name, size_t len,
                             int hash_tag, int kind, int64_t permits) {
    memset(keys, 0, sizeof *keys);
    keys->kind = kind;
    if (kind == FAIRLOCK_KIND_SEMAPHORE)
        snprintf(keys->tag, sizeof keys->tag, "semaphore %" PRId64, permits);
    else if (kind == FAIRLOCK_KIND_RWLOCK)
        snprintf(keys->tag, sizeof keys->tag, "rwlock");
    const char *const *suffixes = is_mutex(keys) ? key_suffixes
                                                 : shared_suffixes;
    const char *infix = infix_of(keys);
    size_t base_len = len + (hash_tag ? 2 : 0);
    for (int i = 0; i < FAIRLOCK__KEY_COUNT; i++) {
        size_t suffix_len = strlen(suffixes[i]);
        char *key = malloc(base_len + suffix_len + 1);
        if (key == NULL)
            return FAIRLOCK_NOMEM;
        keys->names[i] = key;
        keys->lens[i] = base_len + suffix_len;
        if (hash_tag)
            *key++ = '{';
        memcpy(key, name, len);
        key += len;
        if (hash_tag)
            *key++ = '}';
        memcpy(key, suffixes[i], suffix_len + 1);
    }
    keys->wake = malloc(base_len + INFIX_MAX + FAIRLOCK_TOKEN_MAX);
    if (keys->wake == NULL)
        return FAIRLOCK_NOMEM;
    /* Every key begins with the base, the mutex's lock key is the base. */
    memcpy(keys->wake, keys->names[0], base_len);
    memcpy(keys->wake + base_len, infix, strlen(infix) + 1);
    keys->base_len = base_len;
    keys->wake_len = base_len + strlen(infix);
    return FAIRLOCK_OK;
}

int fairlock__keys_copy(fairlock__keys *dst, const fairlock__keys *src) {
    memset(dst, 0, sizeof *dst);
    dst->kind = src->kind;
    memcpy(dst->tag, src->tag, sizeof dst->tag);
    for (int i = 0; i < FAIRLOCK__KEY_COUNT; i++) {
        if ((dst->names[i] = malloc(src->lens[i] + 1)) == NULL)
            return FAIRLOCK_NOMEM;
        memcpy(dst->names[i], src->names[i], src->lens[i] + 1);
        dst->lens[i] = src->lens[i];
    }
    dst->base_len = src->base_len;
    return FAIRLOCK_OK;
}

void fairlock__keys_set_wake(fairlock__keys *keys, const char *token) {
    size_t prefix = keys->base_len + strlen(infix_of(keys));
    size_t token_len = strlen(token);
    memcpy(keys->wake + prefix, token, token_len + 1);
    keys->wake_len = prefix + token_len;
}

void fairlock__keys_clear(fairlock__keys *keys) {
    for (int i = 0; i < FAIRLOCK__KEY_COUNT; i++)
        free(keys->names[i]);
    free(keys->wake);
    memset(keys, 0, sizeof *keys);
}

/* 128 random bits per acquisition.  The lease and liveness window ride
 * along so that whichever script hands the lock over knows the waiter's
 * terms (common.lua's token_terms). */
int fairlock__token_new(char out[FAIRLOCK_TOKEN_MAX], int64_t lease_ms,
                        int64_t live_ms, int fencing) {
    unsigned char random_bytes[16];
    if (fairlock__random_bytes(random_bytes, sizeof random_bytes) != 0)
        return -1;
    static const char hex[] = "0123456789abcdef";
    size_t pos = 0;
    for (size_t i = 0; i < sizeof random_bytes; i++) {
        out[pos++] = hex[random_bytes[i] >> 4];
        out[pos++] = hex[random_bytes[i] & 15];
    }
    snprintf(out + pos, FAIRLOCK_TOKEN_MAX - pos, ".%" PRId64 ".%" PRId64 "%s",
             lease_ms, live_ms, fencing ? ".f" : "");
    return 0;
}

/* ---------------------------------------------------------------------------
 * Script calls
 * ------------------------------------------------------------------------- */

/* How a kind tag reads in a message. */
static void describe_tag(const char *tag, size_t len, char *out, size_t size) {
    char copy[FAIRLOCK__KIND_TAG_SIZE];
    if (len >= sizeof copy)
        len = sizeof copy - 1;
    memcpy(copy, tag, len);
    copy[len] = '\0';
    long long n;
    if (sscanf(copy, "semaphore %lld", &n) == 1)
        snprintf(out, size, "a semaphore of %lld permit%s", n,
                 n == 1 ? "" : "s");
    else if (strcmp(copy, "rwlock") == 0)
        snprintf(out, size, "a readers-writer lock");
    else if (strcmp(copy, "mutex") == 0)
        snprintf(out, size, "a mutex");
    else
        snprintf(out, size, "\"%s\"", copy);
}

/* The new kinds' scripts refuse a name recorded as another kind (or N)
 * with "fairlock-kind: [TAG]" (sem_common.lua's check_kind); that is the
 * caller's mistake, not Redis failing, so it gets its own code and a
 * message naming both sides.  rc is the script's FAIRLOCK_REDIS. */
static int kind_mismatch(fairlock__error *err, const fairlock__keys *keys,
                         int rc) {
    if (rc != FAIRLOCK_REDIS)
        return rc;
    const char *open = strstr(err->msg, "fairlock-kind: [");
    const char *close = open ? strchr(open, ']') : NULL;
    if (close == NULL)
        return rc;
    open += strlen("fairlock-kind: [");
    char recorded[64], wanted[64];
    describe_tag(open, (size_t)(close - open), recorded, sizeof recorded);
    const char *tag = is_mutex(keys) ? "mutex" : keys->tag;
    describe_tag(tag, strlen(tag), wanted, sizeof wanted);
    /* Every key begins with the name; the mutex's lock key is the name. */
    const char *name =
        keys->names[is_mutex(keys) ? FAIRLOCK__KEY_LOCK : FAIRLOCK__SKEY_MUTEX];
    int name_len = keys->base_len > 80 ? 80 : (int)keys->base_len;
    return fairlock__error_set(
        err, FAIRLOCK_MISMATCH,
        "\"%.*s\" is in use as %s, but this handle asks for %s: every user "
        "of a name must agree (to change it, see \"Changing the number of "
        "permits\" in docs/protocol.md)",
        name_len, name, recorded, wanted);
}

int fairlock__script_failed(fairlock__error *err, int kind,
                            const fairlock__keys *keys,
                            const fairlock__script *script, const char *sent,
                            const char *reply) {
    fairlock__error_script(err, kind, script->name, keys->names[0],
                           keys->lens[0], sent, reply);
    return kind_mismatch(err, keys, FAIRLOCK_REDIS);
}

static int eval(fairlock__conn *conn, fairlock__error *err,
                const fairlock__keys *keys, const fairlock__cmd *cmd,
                redisReply **out) {
    int rc = fairlock__conn_eval(conn, err, keys, cmd->script, cmd->argc,
                                 cmd->argv, out);
    return kind_mismatch(err, keys, rc);
}

/* Host and label are cleaned when the handle is made; the pid is read at
 * each call, so that a forked child's requests name the child. */
void fairlock__ident_format(char *out, long pid, const char *host,
                            const char *label) {
    if (host == NULL)
        out[0] = '\0';
    else
        snprintf(out, FAIRLOCK__IDENT_SIZE, "%ld\t%.64s\t%.*s", pid, host,
                 FAIRLOCK_LABEL_MAX, label ? label : "");
}

static const char *ident_arg(fairlock__cmd *cmd, const fairlock__keys *keys) {
    fairlock__ident_format(cmd->ident, (long)getpid(), keys->who_host,
                           keys->who_label);
    return cmd->ident;
}

/* ---------------------------------------------------------------------------
 * Building the commands
 * ------------------------------------------------------------------------- */

/* The cmd->nums[i] slot set to v, for an argument. */
static const char *num_arg(fairlock__cmd *cmd, int i, int64_t v) {
    snprintf(cmd->nums[i], sizeof cmd->nums[i], "%" PRId64, v);
    return cmd->nums[i];
}

static void script_cmd(fairlock__cmd *cmd, const fairlock__script *script,
                       int argc) {
    cmd->script = script;
    cmd->argc = argc;
    cmd->block_ms = 0;
    for (int i = 0; i < argc; i++)
        cmd->lens[i] = strlen(cmd->argv[i]);
}

void fairlock__build_acquire(fairlock__cmd *cmd, const fairlock__keys *keys,
                             const char *token, int64_t ticket,
                             int64_t foreign_live_ms, int try_once) {
    cmd->argv[0] = token;
    cmd->argv[1] = num_arg(cmd, 0, ticket);
    cmd->argv[3] = try_once ? "1" : "0";
    cmd->argv[4] = ident_arg(cmd, keys);
    if (!is_mutex(keys)) {
        cmd->argv[2] = keys->tag;
        script_cmd(cmd, &fairlock__script_sem_acquire, 5);
        return;
    }
    cmd->argv[2] = num_arg(cmd, 1, foreign_live_ms);
    script_cmd(cmd, &fairlock__script_acquire, 5);
}

void fairlock__build_acquire_nonfifo(fairlock__cmd *cmd,
                                     const fairlock__keys *keys,
                                     const char *token, int64_t wait_ms,
                                     int64_t foreign_live_ms) {
    cmd->argv[0] = token;
    cmd->argv[1] = num_arg(cmd, 0, wait_ms);
    cmd->argv[2] = num_arg(cmd, 1, foreign_live_ms);
    cmd->argv[3] = ident_arg(cmd, keys);
    script_cmd(cmd, &fairlock__script_acquire_nonfifo, 4);
}

void fairlock__build_release(fairlock__cmd *cmd, const fairlock__keys *keys,
                             const char *token, int64_t foreign_live_ms) {
    cmd->argv[0] = token;
    cmd->argv[1] = is_mutex(keys) ? num_arg(cmd, 0, foreign_live_ms)
                                  : keys->tag;
    /* Only a handle that records identities clears the holder's record
     * (an HDEL no other release pays for). */
    cmd->argv[2] = keys->who_host ? "1" : "0";
    script_cmd(cmd,
               is_mutex(keys) ? &fairlock__script_release
                              : &fairlock__script_sem_release,
               is_mutex(keys) ? 3 : 2);
}

void fairlock__build_cancel(fairlock__cmd *cmd, const fairlock__keys *keys,
                            const char *token, int64_t ticket,
                            int64_t foreign_live_ms, const char *cursor,
                            int in_flight) {
    cmd->argv[0] = token;
    cmd->argv[1] = num_arg(cmd, 0, ticket);
    cmd->argv[2] = is_mutex(keys) ? num_arg(cmd, 1, foreign_live_ms)
                                  : keys->tag;
    cmd->argv[3] = cursor;
    cmd->argv[4] = in_flight ? "1" : "0";
    script_cmd(cmd,
               is_mutex(keys) ? &fairlock__script_cancel
                              : &fairlock__script_sem_cancel,
               5);
}

void fairlock__build_extend(fairlock__cmd *cmd, const fairlock__keys *keys,
                            const char *token, int64_t lease_ms) {
    cmd->argv[0] = token;
    cmd->argv[1] = num_arg(cmd, 0, lease_ms);
    script_cmd(cmd,
               is_mutex(keys) ? &fairlock__script_extend
                              : &fairlock__script_sem_extend,
               2);
}

void fairlock__build_status(fairlock__cmd *cmd, const fairlock__keys *keys,
                            size_t max_waiters) {
    cmd->argv[0] = num_arg(
        cmd, 0, max_waiters > 1000000 ? 1000000 : (int64_t)max_waiters);
    script_cmd(cmd,
               is_mutex(keys) ? &fairlock__script_status
                              : &fairlock__script_sem_status,
               1);
}

void fairlock__build_wait_push(fairlock__cmd *cmd, const fairlock__keys *keys,
                               int fifo, int64_t slice_ms) {
    snprintf(cmd->nums[0], sizeof cmd->nums[0], "%" PRId64 ".%03" PRId64,
             slice_ms / 1000, slice_ms % 1000);
    cmd->script = NULL;
    cmd->argc = 3;
    cmd->block_ms = slice_ms;
    cmd->argv[0] = "BLPOP", cmd->lens[0] = 5;
    cmd->argv[1] = fifo ? keys->wake : keys->names[FAIRLOCK__KEY_NFWAKE];
    cmd->lens[1] = fifo ? keys->wake_len : keys->lens[FAIRLOCK__KEY_NFWAKE];
    cmd->argv[2] = cmd->nums[0], cmd->lens[2] = strlen(cmd->nums[0]);
}

void fairlock__build_wait_replicas(fairlock__cmd *cmd, int replicas,
                                   int64_t timeout_ms) {
    cmd->script = NULL;
    cmd->argc = 3;
    cmd->block_ms = timeout_ms + 1;
    cmd->argv[0] = "WAIT", cmd->lens[0] = 4;
    cmd->argv[1] = num_arg(cmd, 0, replicas);
    cmd->lens[1] = strlen(cmd->argv[1]);
    cmd->argv[2] = num_arg(cmd, 1, timeout_ms);
    cmd->lens[2] = strlen(cmd->argv[2]);
}

/* ---------------------------------------------------------------------------
 * Reading the replies
 * ------------------------------------------------------------------------- */

int fairlock__read_attempt(fairlock__error *err, const redisReply *reply,
                           fairlock__attempt *out) {
    char why[128];
    if (fairlock__decode_attempt(reply, out, why, sizeof why) != 0)
        return fairlock__error_set(err, FAIRLOCK_REDIS, "%s", why);
    return FAIRLOCK_OK;
}

int fairlock__read_cancel(fairlock__error *err, const redisReply *reply,
                          char *cursor, int *undone) {
    char why[128];
    if (fairlock__decode_cancel(reply, undone, cursor, FAIRLOCK__CURSOR_SIZE,
                                why, sizeof why) != 0)
        return fairlock__error_set(err, FAIRLOCK_REDIS, "%s", why);
    return FAIRLOCK_OK;
}

int fairlock__read_status(fairlock__error *err, const fairlock__keys *keys,
                          const redisReply *reply, fairlock_status **out) {
    char why[128];
    int rc = is_mutex(keys)
                 ? fairlock__decode_status(reply, out, why, sizeof why)
                 : fairlock__decode_sem_status(reply, out, why, sizeof why);
    if (rc == FAIRLOCK_OK && (*out)->kind < 0)
        (*out)->kind = keys->kind;
    if (rc != FAIRLOCK_OK)
        return fairlock__error_set(
            err, rc, "%s", rc == FAIRLOCK_NOMEM ? "out of memory" : why);
    return FAIRLOCK_OK;
}

int fairlock__read_wait_push(fairlock__error *err, int kind, int fifo,
                             const redisReply *reply, int *woken,
                             fairlock__attempt *handoff) {
    const char *msg = NULL;
    size_t len = 0;
    *woken = fairlock__decode_wake(reply, &msg, &len);
    if (*woken == FAIRLOCK__WAKE_BAD)
        return fairlock__error_reply(
            err, kind, "BLPOP",
            reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    if (*woken == FAIRLOCK__WAKE_PUSHED && fifo &&
        fairlock__decode_handoff(msg, len, handoff) != 0)
        return fairlock__error_set(err, FAIRLOCK_REDIS,
                                   "malformed hand-off message");
    return FAIRLOCK_OK;
}

int fairlock__read_wait_replicas(fairlock__error *err, int kind,
                                 const redisReply *reply, long long *acked) {
    *acked = fairlock__decode_wait(reply);
    if (reply->type == REDIS_REPLY_ERROR)
        fairlock__error_reply(err, kind, "WAIT", reply->str);
    return *acked < 0 ? FAIRLOCK_REDIS : FAIRLOCK_OK;
}

/* ---------------------------------------------------------------------------
 * The blocking calls: build, run on the connection, read
 * ------------------------------------------------------------------------- */

/* Runs an acquire script and decodes its reply. */
static int attempt(fairlock__conn *conn, fairlock__error *err,
                   const fairlock__keys *keys, const fairlock__cmd *cmd,
                   fairlock__attempt *out) {
    redisReply *reply;
    int rc = eval(conn, err, keys, cmd, &reply);
    if (rc != FAIRLOCK_OK)
        return rc;
    rc = fairlock__read_attempt(err, reply, out);
    freeReplyObject(reply);
    return rc;
}

int fairlock__call_acquire(fairlock__conn *conn, fairlock__error *err,
                           const fairlock__keys *keys, const char *token,
                           int64_t ticket, int64_t foreign_live_ms,
                           int try_once, fairlock__attempt *out) {
    fairlock__cmd cmd;
    fairlock__build_acquire(&cmd, keys, token, ticket, foreign_live_ms,
                            try_once);
    return attempt(conn, err, keys, &cmd, out);
}

int fairlock__call_acquire_nonfifo(fairlock__conn *conn, fairlock__error *err,
                                   const fairlock__keys *keys,
                                   const char *token, int64_t wait_ms,
                                   int64_t foreign_live_ms,
                                   fairlock__attempt *out) {
    fairlock__cmd cmd;
    fairlock__build_acquire_nonfifo(&cmd, keys, token, wait_ms,
                                    foreign_live_ms);
    return attempt(conn, err, keys, &cmd, out);
}

/* Runs a script whose reply is 1 or 0. */
static int eval_flag(fairlock__conn *conn, fairlock__error *err,
                     const fairlock__keys *keys, const fairlock__cmd *cmd,
                     int *flag) {
    redisReply *reply;
    int rc = eval(conn, err, keys, cmd, &reply);
    if (rc != FAIRLOCK_OK)
        return rc;
    *flag = fairlock__decode_flag(reply) == 1;
    freeReplyObject(reply);
    return FAIRLOCK_OK;
}

int fairlock__call_release(fairlock__conn *conn, fairlock__error *err,
                           const fairlock__keys *keys, const char *token,
                           int64_t foreign_live_ms, int *released) {
    fairlock__cmd cmd;
    fairlock__build_release(&cmd, keys, token, foreign_live_ms);
    return eval_flag(conn, err, keys, &cmd, released);
}

int fairlock__call_cancel(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, const char *token,
                          int64_t ticket, int64_t foreign_live_ms, char *cursor,
                          int in_flight, int *undone) {
    fairlock__cmd cmd;
    fairlock__build_cancel(&cmd, keys, token, ticket, foreign_live_ms, cursor,
                           in_flight);
    redisReply *reply;
    int rc = eval(conn, err, keys, &cmd, &reply);
    if (rc != FAIRLOCK_OK)
        return rc;
    /* The cursor argument is not read again: decoding may overwrite it. */
    rc = fairlock__read_cancel(err, reply, cursor, undone);
    freeReplyObject(reply);
    return rc;
}

int fairlock__call_extend(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, const char *token,
                          int64_t lease_ms, int *owned) {
    fairlock__cmd cmd;
    fairlock__build_extend(&cmd, keys, token, lease_ms);
    return eval_flag(conn, err, keys, &cmd, owned);
}

int fairlock__call_status(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, size_t max_waiters,
                          fairlock_status **out) {
    fairlock__cmd cmd;
    fairlock__build_status(&cmd, keys, max_waiters);
    redisReply *reply;
    int rc = eval(conn, err, keys, &cmd, &reply);
    if (rc != FAIRLOCK_OK)
        return rc;
    rc = fairlock__read_status(err, keys, reply, out);
    freeReplyObject(reply);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Plain commands
 * ------------------------------------------------------------------------- */

int fairlock__call_wait_push(fairlock__conn *conn, fairlock__error *err,
                             const fairlock__keys *keys, int fifo,
                             int64_t slice_ms, int *woken,
                             fairlock__attempt *handoff) {
    fairlock__cmd cmd;
    fairlock__build_wait_push(&cmd, keys, fifo, slice_ms);
    redisReply *reply = fairlock__conn_command(conn, err, cmd.argc, cmd.argv,
                                               cmd.lens, cmd.block_ms);
    if (reply == NULL)
        return FAIRLOCK_REDIS;
    int rc = fairlock__read_wait_push(err, fairlock__conn_kind(conn), fifo,
                                      reply, woken, handoff);
    freeReplyObject(reply);
    return rc;
}

int fairlock__call_wait_replicas(fairlock__conn *conn, fairlock__error *err,
                                 int replicas, int64_t timeout_ms,
                                 long long *acked) {
    fairlock__cmd cmd;
    fairlock__build_wait_replicas(&cmd, replicas, timeout_ms);
    redisReply *reply = fairlock__conn_command(conn, err, cmd.argc, cmd.argv,
                                               cmd.lens, cmd.block_ms);
    if (reply == NULL)
        return FAIRLOCK_REDIS;
    int rc = fairlock__read_wait_replicas(err, fairlock__conn_kind(conn), reply,
                                          acked);
    freeReplyObject(reply);
    return rc;
}

/* GET or EXISTS on the lock key. */
static int query_lock_key(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, const char *command,
                          redisReply **out) {
    const char *argv[2] = {command, keys->names[FAIRLOCK__KEY_LOCK]};
    size_t lens[2] = {strlen(command), keys->lens[FAIRLOCK__KEY_LOCK]};
    redisReply *reply = fairlock__conn_command(conn, err, 2, argv, lens, 0);
    if (reply == NULL)
        return FAIRLOCK_REDIS;
    if (reply->type == REDIS_REPLY_ERROR) {
        fairlock__conn_error_reply(conn, err, command, reply);
        freeReplyObject(reply);
        return FAIRLOCK_REDIS;
    }
    *out = reply;
    return FAIRLOCK_OK;
}

int fairlock__call_holder_is(fairlock__conn *conn, fairlock__error *err,
                             const fairlock__keys *keys, const char *token,
                             int *owned) {
    if (!is_mutex(keys)) {
        fairlock__cmd cmd;
        cmd.argv[0] = token;
        script_cmd(&cmd, &fairlock__script_sem_holds, 1);
        return eval_flag(conn, err, keys, &cmd, owned);
    }
    redisReply *reply;
    int rc = query_lock_key(conn, err, keys, "GET", &reply);
    if (rc != FAIRLOCK_OK)
        return rc;
    *owned = reply->type == REDIS_REPLY_STRING &&
             strcmp(reply->str, token) == 0;
    freeReplyObject(reply);
    return FAIRLOCK_OK;
}

int fairlock__call_locked(fairlock__conn *conn, fairlock__error *err,
                          const fairlock__keys *keys, int *locked) {
    if (!is_mutex(keys)) {
        fairlock__cmd cmd;
        cmd.argv[0] = "";
        script_cmd(&cmd, &fairlock__script_sem_holds, 1);
        return eval_flag(conn, err, keys, &cmd, locked);
    }
    redisReply *reply;
    int rc = query_lock_key(conn, err, keys, "EXISTS", &reply);
    if (rc != FAIRLOCK_OK)
        return rc;
    *locked = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    freeReplyObject(reply);
    return FAIRLOCK_OK;
}
