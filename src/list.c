/* list.c -- fairlock_list(): the locks that exist on the server, found
 * with SCAN (never KEYS, which blocks the server for the whole keyspace).
 *
 * A lock exists while it is held or waited for, and then one of its keys
 * says so: NAME:queue (the mutex's waiters), NAME:kind (a semaphore or
 * readers-writer lock, held or waited for), or NAME itself holding a
 * fairlock token (a mutex held with nobody waiting).  Every other key of
 * the protocol is skipped without a look, and any other string is read
 * only as far as a token can reach (GETRANGE), so unrelated keys cost one
 * short read at most. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct found {
    char *name;
    size_t len;
    int kind;
} found;

typedef struct scan_state {
    const char *pattern;
    found *items;
    size_t count, cap;
} scan_state;

static int ends_with(const char *s, size_t len, const char *suffix,
                     size_t *base) {
    size_t n = strlen(suffix);
    if (len <= n || memcmp(s + len - n, suffix, n) != 0)
        return 0;
    *base = len - n;
    return 1;
}

/* Keys of the protocol that never tell on their own that a lock exists. */
static int other_protocol_key(const char *k, size_t len) {
    static const char *const suffixes[] = {
        ":seq",     ":nfwait",  ":nfwake",  ":fence",  ":watch",  ":who",
        ":waiters", ":tickets", ":holders", ":grants", ":fencing"};
    size_t base;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (ends_with(k, len, suffixes[i], &base))
            return 1;
    /* Wake lists NAME:wake:TOKEN and NAME:grant:TOKEN, and a cancelled
     * request's tombstone NAME:gone:TOKEN (cancel.lua). */
    for (size_t i = 0; i + 6 <= len; i++)
        if (k[i] == ':' && (memcmp(k + i, ":wake:", 6) == 0 ||
                            memcmp(k + i, ":gone:", 6) == 0 ||
                            (i + 7 <= len && memcmp(k + i, ":grant:", 7) == 0)))
            return 1;
    return 0;
}

/* "<32 hex>.<digits>.<digits>[.f]": a mutex token of ours. */
static int is_mutex_token(const char *s, size_t len) {
    size_t i = 0;
    for (; i < len && i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    if (i != 32)
        return 0;
    for (int field = 0; field < 2; field++) {
        if (i >= len || s[i++] != '.')
            return 0;
        size_t digits = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
        if (digits == 0)
            return 0;
    }
    return i == len || (len - i == 2 && s[i] == '.' && s[i + 1] == 'f');
}

static int add(scan_state *st, fairlock__error *err, const char *name,
               size_t len, int kind) {
    /* The pattern is matched against the name as NUL-terminated text; a
     * name with a NUL byte in it is compared up to that byte. */
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return fairlock__error_set(err, FAIRLOCK_NOMEM, "out of memory");
    memcpy(copy, name, len);
    copy[len] = '\0';
    if (fnmatch(st->pattern, copy, 0) != 0) {
        free(copy);
        return FAIRLOCK_OK;
    }
    if (st->count == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 64;
        found *items = realloc(st->items, cap * sizeof *items);
        if (items == NULL) {
            free(copy);
            return fairlock__error_set(err, FAIRLOCK_NOMEM, "out of memory");
        }
        st->items = items;
        st->cap = cap;
    }
    st->items[st->count++] = (found){copy, len, kind};
    return FAIRLOCK_OK;
}

/* A reply of GET or GETRANGE; NULL after an I/O failure. */
static redisReply *read_key(fairlock__node *node, fairlock__error *err,
                            const char *command, const char *key, size_t len,
                            int ranged) {
    const char *argv[4] = {command, key, "0", "80"};
    size_t lens[4] = {strlen(command), len, 1, 2};
    return fairlock__node_command(node, err, ranged ? 4 : 2, argv, lens);
}

/* Looks at one key a SCAN returned. */
static int classify(scan_state *st, fairlock__node *node, fairlock__error *err,
                    const char *k, size_t len) {
    size_t base;
    if (ends_with(k, len, ":queue", &base))
        return add(st, err, k, base, FAIRLOCK_KIND_MUTEX);
    if (ends_with(k, len, ":kind", &base)) {
        redisReply *r = read_key(node, err, "GET", k, len, 0);
        if (r == NULL)
            return FAIRLOCK_REDIS;
        int kind = -1;
        if (r->type == REDIS_REPLY_STRING)
            kind = strncmp(r->str, "rwlock", r->len) == 0 && r->len == 6
                       ? FAIRLOCK_KIND_RWLOCK
                   : strncmp(r->str, "semaphore ", 10) == 0
                       ? FAIRLOCK_KIND_SEMAPHORE
                       : -1;
        freeReplyObject(r);
        return kind < 0 ? FAIRLOCK_OK : add(st, err, k, base, kind);
    }
    if (other_protocol_key(k, len))
        return FAIRLOCK_OK;
    /* A string that holds a token, read no further than a token reaches
     * (WRONGTYPE for any other type: not a lock). */
    redisReply *r = read_key(node, err, "GETRANGE", k, len, 1);
    if (r == NULL)
        return FAIRLOCK_REDIS;
    int held = r->type == REDIS_REPLY_STRING && is_mutex_token(r->str, r->len);
    freeReplyObject(r);
    return held ? add(st, err, k, len, FAIRLOCK_KIND_MUTEX) : FAIRLOCK_OK;
}

/* SCAN over one node, MATCH PATTERN* (every key of a matching name
 * begins with it), a page of 1000 keys per call. */
static int scan_node(void *arg, fairlock__node *node, fairlock__error *err) {
    scan_state *st = arg;
    size_t plen = strlen(st->pattern);
    char *match = malloc(plen + 2);
    if (match == NULL)
        return fairlock__error_set(err, FAIRLOCK_NOMEM, "out of memory");
    memcpy(match, st->pattern, plen);
    memcpy(match + plen, "*", 2);
    char cursor[32] = "0";
    int rc = FAIRLOCK_OK;
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
        redisReply *r = fairlock__node_command(node, err, 6, argv, NULL);
        if (r == NULL) {
            rc = FAIRLOCK_REDIS;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            rc = fairlock__conn_error_reply(node->conn, err, "SCAN", r);
            freeReplyObject(r);
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof cursor ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            rc = fairlock__error_set(err, FAIRLOCK_REDIS,
                                     "unexpected reply to SCAN");
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
        for (size_t i = 0; i < r->element[1]->elements && rc == FAIRLOCK_OK;
             i++) {
            const redisReply *k = r->element[1]->element[i];
            if (k->type == REDIS_REPLY_STRING)
                rc = classify(st, node, err, k->str, k->len);
        }
        freeReplyObject(r);
    } while (rc == FAIRLOCK_OK && strcmp(cursor, "0") != 0);
    free(match);
    return rc;
}

static int by_name(const void *a, const void *b) {
    const found *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    if (c != 0)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

int fairlock_list(fairlock *lock, const char *pattern, fairlock_list_fn fn,
                  void *arg) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    if (fairlock__async_idle(lock) != FAIRLOCK_OK)
        return FAIRLOCK_INVALID;
    if (fn == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "fn is NULL");
    int rc = fairlock__ready(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    scan_state st = {pattern && *pattern ? pattern : "*", NULL, 0, 0};
    rc = fairlock__conn_each_master(&lock->conn, &lock->err, scan_node, &st);
    if (rc == FAIRLOCK_OK) {
        /* A name is seen through several keys (and a SCAN may return a
         * key twice): one call each, in byte order. */
        if (st.count > 1) /* qsort's array may not be NULL, even empty */
            qsort(st.items, st.count, sizeof *st.items, by_name);
        for (size_t i = 0; i < st.count; i++) {
            if (i > 0 && by_name(&st.items[i - 1], &st.items[i]) == 0)
                continue;
            if (fn(arg, st.items[i].name, st.items[i].len, st.items[i].kind) !=
                0) {
                rc = fairlock__fail(lock, FAIRLOCK_INTERRUPTED,
                                    "stopped by the callback");
                break;
            }
        }
    }
    for (size_t i = 0; i < st.count; i++)
        free(st.items[i].name);
    free(st.items);
    return rc == FAIRLOCK_OK ? fairlock__ok(lock) : rc;
}
