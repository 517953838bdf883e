/* fuzz_reply.c -- libFuzzer target for script reply decoding: bytes go
 * through hiredis's reader (as from a hostile or broken server), then
 * through every decoder of the library. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* hiredis 0.14 allocates whatever aggregate size the server announces (1.x
 * caps it); inputs announcing huge sizes would only fuzz malloc. */
static int announces_huge_sizes(const uint8_t *data, size_t size) {
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*' && data[i] != '$')
            continue;
        unsigned long n = 0;
        for (size_t j = i + 1; j < size && data[j] >= '0' && data[j] <= '9';
             j++)
            if ((n = n * 10 + (unsigned long)(data[j] - '0')) > 100000)
                return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The hand-off message decoder sees raw list elements. */
    fairlock__attempt attempt;
    if (fairlock__decode_handoff((const char *)data, size, &attempt) == 0 &&
        (attempt.ticket < 0 || attempt.lease_ms < 0 || attempt.fence < 0))
        abort();

    /* So does the token decoder (status replies carry foreign tokens). */
    if (fairlock__token_liveness((const char *)data, size) < 0)
        abort();

    if (announces_huge_sizes(data, size))
        return 0;
    redisReader *reader = redisReaderCreate();
    if (reader == NULL)
        return 0;
    if (redisReaderFeed(reader, (const char *)data, size) == REDIS_OK) {
        void *reply = NULL;
        while (redisReaderGetReply(reader, &reply) == REDIS_OK &&
               reply != NULL) {
            char err[128];
            if (fairlock__decode_attempt(reply, &attempt, err, sizeof err) ==
                    0 &&
                (attempt.granted < 0 || attempt.granted > 1 ||
                 attempt.next_call < 0 || attempt.next_call > 2))
                abort();
            int undone = -1;
            char cursor[21];
            if (fairlock__decode_cancel(reply, &undone, cursor, sizeof cursor,
                                        err, sizeof err) == 0 &&
                ((undone != 0 && undone != 1) ||
                 strlen(cursor) > sizeof cursor - 1 || cursor[0] == '\0'))
                abort();
            for (int sem = 0; sem < 2; sem++) {
                fairlock_status *status = NULL;
                int rc = sem ? fairlock__decode_sem_status(reply, &status, err,
                                                           sizeof err)
                             : fairlock__decode_status(reply, &status, err,
                                                       sizeof err);
                if (rc != FAIRLOCK_OK)
                    continue;
                if (status->waiter_count > 0 && status->waiters == NULL)
                    abort();
                for (size_t i = 0; i < status->waiter_count; i++)
                    if (status->waiters[i].token == NULL)
                        abort();
                for (size_t i = 0; i < status->holder_count; i++)
                    if (fairlock_status_holder(status, i) == NULL ||
                        fairlock_status_holder(status, i)->token == NULL)
                        abort();
                fairlock_status_free(status);
            }
            int flag = fairlock__decode_flag(reply);
            if (flag < -1 || flag > 1)
                abort();
            const char *msg = NULL;
            size_t len = 0;
            int wake = fairlock__decode_wake(reply, &msg, &len);
            if (wake == FAIRLOCK__WAKE_PUSHED &&
                (msg == NULL || memchr(msg, '\0', len + 1) == NULL))
                abort(); /* a pushed element lies within the reply */
            if (wake < FAIRLOCK__WAKE_BAD || wake > FAIRLOCK__WAKE_UNBLOCKED)
                abort();
            if (fairlock__decode_wait(reply) < -1)
                abort();
            freeReplyObject(reply);
            reply = NULL;
        }
    }
    redisReaderFree(reader);
    return 0;
}
