/* reply.c -- decoding of replies and tokens; no I/O, so it can be fuzzed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ATTEMPT_FIELDS 7

int fairlock__decode_attempt(const redisReply *reply, fairlock__attempt *out,
                             char *err, size_t errlen) {
    /* sem_acquire.lua adds the permit. */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        (reply->elements != ATTEMPT_FIELDS &&
         reply->elements != ATTEMPT_FIELDS + 1)) {
        snprintf(err, errlen, "unexpected reply to the acquire script");
        return -1;
    }
    long long v[ATTEMPT_FIELDS + 1] = {0};
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e == NULL || e->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errlen,
                     "unexpected element %zu in the acquire script's reply", i);
            return -1;
        }
        v[i] = e->integer;
    }
    if ((v[0] != 0 && v[0] != 1) || v[1] < 0 || v[2] < 0 || v[4] < 0 ||
        v[5] < 0 || v[6] < 0 || v[6] > 2 || v[7] < 0) {
        snprintf(err, errlen, "out-of-range value in the acquire reply");
        return -1;
    }
    out->granted = (int)v[0];
    out->ticket = v[1];
    out->rank = v[2];
    out->pttl_ms = v[3];
    out->lease_ms = v[4];
    out->fence = v[5];
    out->next_call = (int)v[6];
    out->permit = v[7];
    return 0;
}

int fairlock__decode_cancel(const redisReply *reply, int *undone, char *cursor,
                            size_t cursor_len, char *err, size_t errlen) {
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2 || reply->element[0] == NULL ||
        reply->element[1] == NULL ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        (reply->element[0]->integer != 0 && reply->element[0]->integer != 1) ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(err, errlen, "unexpected reply to the cancel script");
        return -1;
    }
    const redisReply *c = reply->element[1];
    if (c->len == 0 || c->len > 20 || c->len >= cursor_len ||
        strspn(c->str, "0123456789") != c->len) {
        snprintf(err, errlen, "malformed cursor in the cancel script's reply");
        return -1;
    }
    memcpy(cursor, c->str, c->len);
    cursor[c->len] = '\0';
    *undone = (int)reply->element[0]->integer;
    return 0;
}

/* Parses a decimal number of at most 18 digits from [*s, end) up to `stop`
 * (or end when stop is '\0'); advances *s past the stop character. */
static int parse_field(const char **s, const char *end, char stop,
                       int64_t *out) {
    const char *p = *s;
    int64_t v = 0;
    int digits = 0;
    while (p < end && *p != stop) {
        if (*p < '0' || *p > '9' || ++digits > 18)
            return -1;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (digits == 0 || (stop != '\0' && p == end))
        return -1;
    *out = v;
    *s = p < end ? p + 1 : p;
    return 0;
}

int fairlock__decode_handoff(const char *s, size_t len,
                             fairlock__attempt *out) {
    if (s == NULL)
        return -1;
    const char *end = s + len;
    int64_t ticket, lease, fence, permit = 0;
    const char *fourth = memchr(s, ':', len);
    fourth = fourth ? memchr(fourth + 1, ':', (size_t)(end - fourth - 1))
                    : NULL;
    fourth = fourth ? memchr(fourth + 1, ':', (size_t)(end - fourth - 1))
                    : NULL;
    if (parse_field(&s, end, ':', &ticket) != 0 ||
        parse_field(&s, end, ':', &lease) != 0 ||
        parse_field(&s, fourth ? fourth + 1 : end, fourth ? ':' : '\0',
                    &fence) != 0 ||
        (fourth && parse_field(&s, end, '\0', &permit) != 0) || s != end)
        return -1;
    out->permit = permit;
    out->ticket = ticket;
    out->lease_ms = lease;
    out->fence = fence;
    return 0;
}

static int64_t to_int(const redisReply *e, int *bad) {
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_NIL)
        return 0;
    if (e->type == REDIS_REPLY_STRING) {
        const char *p = e->str;
        int64_t v;
        if (parse_field(&p, e->str + e->len, '\0', &v) == 0)
            return v;
    }
    *bad = 1;
    return 0;
}

/* Splits "ticket:token:ts" (token may hold ':') without copying. */
static int split_member(const redisReply *m, int64_t *ticket,
                        const char **token, size_t *token_len, int64_t *ts) {
    const char *first = memchr(m->str, ':', m->len);
    const char *last = NULL;
    for (const char *p = m->str + m->len; p > m->str; p--)
        if (p[-1] == ':') {
            last = p - 1;
            break;
        }
    if (first == NULL || last == first)
        return -1;
    const char *p = m->str;
    if (parse_field(&p, first + 1, ':', ticket) != 0)
        return -1;
    p = last + 1;
    if (parse_field(&p, m->str + m->len, '\0', ts) != 0)
        return -1;
    *token = first + 1;
    *token_len = (size_t)(last - first - 1);
    return 0;
}

/* Our tokens read "<hex>.<lease>.<live>[.f]". */
int64_t fairlock__token_liveness(const char *token, size_t len) {
    const char *dot1 = memchr(token, '.', len);
    if (dot1 == NULL)
        return 0;
    const char *rest = dot1 + 1, *end = token + len;
    const char *dot2 = memchr(rest, '.', (size_t)(end - rest));
    if (dot2 == NULL)
        return 0;
    const char *p = dot2 + 1;
    int64_t live;
    const char *dot3 = memchr(p, '.', (size_t)(end - p));
    if (parse_field(&p, dot3 ? dot3 : end, '\0', &live) != 0)
        return 0;
    return live;
}

/* Whether a token asks for a shared hold ("...[.f].s"). */
static int token_shared(const char *token, size_t len) {
    return len >= 2 && token[len - 2] == '.' && token[len - 1] == 's';
}

/* One NAME:who record, "since<TAB>pid<TAB>host<TAB>label" (after the
 * token for the mutex's holder), into *id with its strings copied to
 * *strings.  A malformed record leaves id->size 0: shown as none. */
static void decode_identity(const char *s, size_t len, int64_t now,
                            fairlock_identity *id, char **strings) {
    const char *p = s, *end = s + len;
    int64_t since, pid;
    if (parse_field(&p, end, '\t', &since) != 0 ||
        parse_field(&p, end, '\t', &pid) != 0)
        return;
    const char *tab = memchr(p, '\t', (size_t)(end - p));
    if (tab == NULL)
        return;
    id->size = sizeof *id;
    id->since_ms = since;
    id->age_ms = now - since;
    id->pid = pid;
    memcpy(*strings, p, (size_t)(tab - p));
    id->host = *strings;
    *strings += tab - p + 1;
    memcpy(*strings, tab + 1, (size_t)(end - tab - 1));
    id->label = *strings;
    *strings += end - tab;
}

/* The mutex's holder record: "TOKEN<TAB>" then the rest, when TOKEN is
 * the holder's (a record left by an earlier, expired grant is not). */
static void decode_holder_identity(const redisReply *r, const char *holder,
                                   int64_t now, fairlock_identity *id,
                                   char **strings) {
    if (holder == NULL || r->type != REDIS_REPLY_STRING)
        return;
    size_t n = strlen(holder);
    if (r->len <= n || memcmp(r->str, holder, n) != 0 || r->str[n] != '\t')
        return;
    decode_identity(r->str + n + 1, r->len - n - 1, now, id, strings);
}

/* Both status replies begin {server_ms, holder, pttl, fence, total}; the
 * new kinds' go on {tag, holder_count, 4 fields per holder} before the
 * K members; then come the NAME:who records, of the holder(s) and of each
 * member (false where none).  One block: the struct, the holders, the
 * waiters, the identities, the strings. */
static int decode_any_status(const redisReply *reply, int sem,
                             fairlock_status **out, char *err, size_t errlen) {
    *out = NULL;
    size_t head = sem ? 7 : 5;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements < head + 1) {
        snprintf(err, errlen, "unexpected reply to the status script");
        return FAIRLOCK_REDIS;
    }
    int bad = 0;
    const redisReply *holder = reply->element[1];
    size_t holders = 0;
    if (sem) {
        int64_t n = to_int(reply->element[6], &bad);
        if (bad || n < 0 || (size_t)n > (reply->elements - head) / 5) {
            snprintf(err, errlen, "unexpected holder count in the status");
            return FAIRLOCK_REDIS;
        }
        holders = (size_t)n;
    } else {
        holders = holder->type == REDIS_REPLY_STRING;
    }
    size_t first_member = head + (sem ? 4 * holders : 0);
    /* K members, then the records: sem ? holders : 1, then K. */
    size_t records = sem ? holders : 1;
    size_t rest = reply->elements - first_member;
    if (rest < records || (rest - records) % 2 != 0) {
        snprintf(err, errlen, "unexpected length of the status reply");
        return FAIRLOCK_REDIS;
    }
    size_t count = (rest - records) / 2;
    size_t first_record = first_member + count;
    size_t size = sizeof(fairlock_status) + holders * sizeof(fairlock_holder) +
                  count * sizeof(fairlock_waiter) +
                  (holders + count) * sizeof(fairlock_identity);
    if (holder->type == REDIS_REPLY_STRING)
        size += holder->len + 1;
    for (size_t i = 0; i < holders && sem; i++) {
        const redisReply *t = reply->element[head + 4 * i];
        if (t->type != REDIS_REPLY_STRING) {
            snprintf(err, errlen, "unexpected holder in the status");
            return FAIRLOCK_REDIS;
        }
        size += t->len + 1;
    }
    for (size_t i = 0; i < count; i++) {
        const redisReply *m = reply->element[first_member + i];
        if (m->type != REDIS_REPLY_STRING) {
            snprintf(err, errlen, "unexpected queue member in the status");
            return FAIRLOCK_REDIS;
        }
        size += m->len + 1;
    }
    for (size_t i = first_record; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        if (r->type == REDIS_REPLY_STRING)
            size += r->len + 2; /* host and label, each NUL-terminated */
        else if (r->type != REDIS_REPLY_NIL)
            bad = 1;
    }
    if (bad) {
        snprintf(err, errlen, "unexpected identity record in the status");
        return FAIRLOCK_REDIS;
    }
    fairlock_status *st = calloc(1, size);
    if (st == NULL)
        return FAIRLOCK_NOMEM;
    fairlock_holder *hs = (fairlock_holder *)(st + 1);
    st->waiters = (fairlock_waiter *)(hs + holders);
    fairlock_identity *hids = (fairlock_identity *)(st->waiters + count);
    fairlock_identity *wids = hids + holders;
    char *strings = (char *)(wids + count);
    st->holder_ids_ = hids;
    st->waiter_ids_ = wids;
    st->server_time_ms = to_int(reply->element[0], &bad);
    st->holder_pttl_ms = to_int(reply->element[2], &bad);
    st->fence = to_int(reply->element[3], &bad);
    st->total_waiters = (size_t)to_int(reply->element[4], &bad);
    st->kind = FAIRLOCK_KIND_MUTEX;
    st->holders_ = hs;
    st->holder_count = holders;
    int64_t now = st->server_time_ms;
    if (holder->type == REDIS_REPLY_STRING) {
        memcpy(strings, holder->str, holder->len);
        st->holder = strings;
        strings += holder->len + 1;
    } else if (holder->type != REDIS_REPLY_NIL) {
        bad = 1;
    }
    if (!sem && holders == 1) {
        hs[0].size = sizeof hs[0];
        hs[0].token = st->holder;
        hs[0].pttl_ms = st->holder_pttl_ms;
        hs[0].fence = st->fence;
        decode_holder_identity(reply->element[first_record], st->holder, now,
                               &hids[0], &strings);
    }
    if (sem) {
        const redisReply *tag = reply->element[5];
        st->kind = -1; /* nothing recorded: the caller's kind */
        if (tag->type == REDIS_REPLY_STRING) {
            long long n;
            if (strncmp(tag->str, "rwlock", tag->len) == 0 && tag->len == 6)
                st->kind = FAIRLOCK_KIND_RWLOCK;
            else if (tag->len < 32 &&
                     sscanf(tag->str, "semaphore %lld", &n) == 1) {
                st->kind = FAIRLOCK_KIND_SEMAPHORE;
                st->permits = n;
            }
        }
        for (size_t i = 0; i < holders; i++) {
            const redisReply *t = reply->element[head + 4 * i];
            fairlock_holder *h = &hs[i];
            h->size = sizeof *h;
            memcpy(strings, t->str, t->len);
            h->token = strings;
            strings += t->len + 1;
            h->pttl_ms = to_int(reply->element[head + 4 * i + 1], &bad);
            h->permit = to_int(reply->element[head + 4 * i + 2], &bad);
            h->fence = to_int(reply->element[head + 4 * i + 3], &bad);
            h->shared = token_shared(t->str, t->len);
            const redisReply *r = reply->element[first_record + i];
            if (r->type == REDIS_REPLY_STRING)
                decode_identity(r->str, r->len, now, &hids[i], &strings);
        }
    }
    for (size_t i = 0; i < count && !bad; i++) {
        const redisReply *m = reply->element[first_member + i];
        fairlock_waiter *w = &st->waiters[st->waiter_count];
        const char *token;
        size_t token_len;
        int64_t ts;
        if (split_member(m, &w->ticket, &token, &token_len, &ts) != 0)
            continue; /* malformed members are shown by nobody */
        memcpy(strings, token, token_len);
        w->token = strings;
        strings += token_len + 1;
        w->idle_ms = st->server_time_ms - ts;
        w->liveness_ms = fairlock__token_liveness(token, token_len);
        const redisReply *r = reply->element[first_record + records + i];
        if (r->type == REDIS_REPLY_STRING)
            decode_identity(r->str, r->len, now, &wids[st->waiter_count],
                            &strings);
        st->waiter_count++;
    }
    if (bad) {
        free(st);
        snprintf(err, errlen, "unexpected value in the status reply");
        return FAIRLOCK_REDIS;
    }
    *out = st;
    return FAIRLOCK_OK;
}

int fairlock__decode_status(const redisReply *reply, fairlock_status **out,
                            char *err, size_t errlen) {
    return decode_any_status(reply, 0, out, err, errlen);
}

int fairlock__decode_sem_status(const redisReply *reply, fairlock_status **out,
                                char *err, size_t errlen) {
    return decode_any_status(reply, 1, out, err, errlen);
}

int fairlock__decode_flag(const redisReply *reply) {
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER)
        return -1;
    return reply->integer == 1;
}

int fairlock__decode_wake(const redisReply *reply, const char **msg,
                          size_t *len) {
    if (reply == NULL)
        return FAIRLOCK__WAKE_BAD;
    if (reply->type == REDIS_REPLY_NIL)
        return FAIRLOCK__WAKE_NONE;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1] != NULL &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        *msg = reply->element[1]->str;
        *len = reply->element[1]->len;
        return FAIRLOCK__WAKE_PUSHED;
    }
    /* A failover or slot move unblocks waiters with an error; the wait
     * loop then re-runs its (idempotent) attempt on the new node, which is
     * the same as a wake-up without a push. */
    if (reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "UNBLOCKED", 9) == 0)
        return FAIRLOCK__WAKE_UNBLOCKED;
    return FAIRLOCK__WAKE_BAD;
}

long long fairlock__decode_wait(const redisReply *reply) {
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER ||
        reply->integer < 0)
        return -1;
    return reply->integer;
}
