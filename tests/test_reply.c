/* test_reply.c -- decoding of script replies, fed through hiredis's own
 * reader so the reply objects are exactly what the library sees. */
#include <hiredis/hiredis.h>

#include "check.h"
#include "internal.h"

static redisReply *read_reply(const char *wire) {
    redisReader *r = redisReaderCreate();
    CHECK(r != NULL);
    CHECK_INT(redisReaderFeed(r, wire, strlen(wire)), ==, REDIS_OK);
    void *reply = NULL;
    CHECK_INT(redisReaderGetReply(r, &reply), ==, REDIS_OK);
    CHECK(reply != NULL);
    redisReaderFree(r);
    return reply;
}

static int decode(const char *wire, fairlock__attempt *a) {
    redisReply *reply = read_reply(wire);
    char err[128];
    int rc = fairlock__decode_attempt(reply, a, err, sizeof err);
    if (rc != 0)
        CHECK(err[0] != '\0');
    freeReplyObject(reply);
    return rc;
}

static void attempt_replies(void) {
    fairlock__attempt a;
    CHECK_INT(decode("*5\r\n:1\r\n:7\r\n:0\r\n:0\r\n:30000\r\n", &a), ==, 0);
    CHECK_INT(a.granted, ==, 1);
    CHECK_INT(a.ticket, ==, 7);
    CHECK_INT(a.lease_ms, ==, 30000);
    CHECK_INT(decode("*5\r\n:0\r\n:9\r\n:3\r\n:-1\r\n:0\r\n", &a), ==, 0);
    CHECK_INT(a.granted, ==, 0);
    CHECK_INT(a.rank, ==, 3);
    CHECK_INT(a.pttl_ms, ==, -1);

    CHECK_INT(decode("$2\r\nOK\r\n", &a), ==, -1);
    CHECK_INT(decode("*4\r\n:1\r\n:7\r\n:0\r\n:0\r\n", &a), ==, -1);
    CHECK_INT(decode("*5\r\n:2\r\n:7\r\n:0\r\n:0\r\n:0\r\n", &a), ==, -1);
    CHECK_INT(decode("*5\r\n:1\r\n:-7\r\n:0\r\n:0\r\n:0\r\n", &a), ==, -1);
    CHECK_INT(decode("*5\r\n:1\r\n$1\r\n7\r\n:0\r\n:0\r\n:0\r\n", &a), ==, -1);
    CHECK_INT(decode("*5\r\n:1\r\n:7\r\n*0\r\n:0\r\n:0\r\n", &a), ==, -1);
    CHECK_INT(decode("-ERR boom\r\n", &a), ==, -1);
    CHECK_INT(fairlock__decode_attempt(NULL, &a, (char[8]){0}, 8), ==, -1);
}

static void handoff_messages(void) {
    int64_t ticket, lease;
    CHECK_INT(fairlock__decode_handoff("12:3000", 7, &ticket, &lease), ==, 0);
    CHECK_INT(ticket, ==, 12);
    CHECK_INT(lease, ==, 3000);
    CHECK_INT(fairlock__decode_handoff("12:", 3, &ticket, &lease), ==, -1);
    CHECK_INT(fairlock__decode_handoff(":5", 2, &ticket, &lease), ==, -1);
    CHECK_INT(fairlock__decode_handoff("1", 1, &ticket, &lease), ==, -1);
    CHECK_INT(fairlock__decode_handoff("1:2:3", 5, &ticket, &lease), ==, -1);
    CHECK_INT(fairlock__decode_handoff("-1:2", 4, &ticket, &lease), ==, -1);
    CHECK_INT(fairlock__decode_handoff("1:99999999999999999999", 22, &ticket,
                                       &lease),
              ==, -1);
    CHECK_INT(fairlock__decode_handoff(NULL, 0, &ticket, &lease), ==, -1);
}

static void tokens(void) {
    char a[FAIRLOCK_TOKEN_MAX], b[FAIRLOCK_TOKEN_MAX];
    CHECK_INT(fairlock__token_new(a, 30000, 10000), ==, 0);
    CHECK_INT(fairlock__token_new(b, 30000, 10000), ==, 0);
    CHECK(strcmp(a, b) != 0);
    CHECK_INT(strlen(a), ==, 32 + strlen(".30000.10000"));
    CHECK(strcmp(a + 32, ".30000.10000") == 0);
    for (int i = 0; i < 32; i++)
        CHECK(strchr("0123456789abcdef", a[i]) != NULL);
    CHECK_INT(fairlock__token_new(a, 0, 100), ==, 0);
    CHECK(strcmp(a + 32, ".0.100") == 0);
}

int main(void) {
    RUN_TEST(attempt_replies);
    RUN_TEST(handoff_messages);
    RUN_TEST(tokens);
    return 0;
}
