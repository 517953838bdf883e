/* reply.c -- decoding of script replies; no I/O, so it can be fuzzed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int fairlock__decode_attempt(const redisReply *reply, fairlock__attempt *out,
                             char *err, size_t errlen) {
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 5) {
        snprintf(err, errlen, "unexpected reply to the acquire script");
        return -1;
    }
    long long values[5];
    for (size_t i = 0; i < 5; i++) {
        const redisReply *e = reply->element[i];
        if (e == NULL || e->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errlen,
                     "unexpected element %zu in the acquire script's reply",
                     i);
            return -1;
        }
        values[i] = e->integer;
    }
    if ((values[0] != 0 && values[0] != 1) || values[1] < 0 ||
        values[2] < 0 || values[4] < 0) {
        snprintf(err, errlen, "out-of-range value in the acquire reply");
        return -1;
    }
    out->granted = (int)values[0];
    out->ticket = values[1];
    out->rank = values[2];
    out->pttl_ms = values[3];
    out->lease_ms = values[4];
    return 0;
}

static int parse_nonneg(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int fairlock__decode_handoff(const char *s, size_t len, int64_t *ticket,
                             int64_t *lease_ms) {
    const char *colon = s ? memchr(s, ':', len) : NULL;
    if (colon == NULL)
        return -1;
    size_t head = (size_t)(colon - s);
    if (parse_nonneg(s, head, ticket) != 0 ||
        parse_nonneg(colon + 1, len - head - 1, lease_ms) != 0)
        return -1;
    return 0;
}
