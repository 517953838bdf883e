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
    CHECK_INT(
        decode("*7\r\n:1\r\n:7\r\n:0\r\n:0\r\n:30000\r\n:9\r\n:0\r\n", &a), ==,
        0);
    CHECK_INT(a.granted, ==, 1);
    CHECK_INT(a.ticket, ==, 7);
    CHECK_INT(a.lease_ms, ==, 30000);
    CHECK_INT(a.fence, ==, 9);
    CHECK_INT(a.next_call, ==, FAIRLOCK__NEXT_ON_PUSH);
    CHECK_INT(decode("*7\r\n:0\r\n:9\r\n:3\r\n:-1\r\n:0\r\n:0\r\n:1\r\n", &a),
              ==, 0);
    CHECK_INT(a.granted, ==, 0);
    CHECK_INT(a.rank, ==, 3);
    CHECK_INT(a.pttl_ms, ==, -1);
    CHECK_INT(a.next_call, ==, FAIRLOCK__NEXT_NOW);

    CHECK_INT(decode("$2\r\nOK\r\n", &a), ==, -1);
    /* The six-field reply of the scripts before "again" existed. */
    CHECK_INT(decode("*6\r\n:1\r\n:7\r\n:0\r\n:0\r\n:0\r\n:0\r\n", &a), ==, -1);
    CHECK_INT(decode("*7\r\n:2\r\n:7\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n", &a),
              ==, -1);
    CHECK_INT(decode("*7\r\n:1\r\n:-7\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n", &a),
              ==, -1);
    CHECK_INT(
        decode("*7\r\n:1\r\n$1\r\n7\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n", &a), ==,
        -1);
    CHECK_INT(decode("*7\r\n:1\r\n:7\r\n*0\r\n:0\r\n:0\r\n:0\r\n:0\r\n", &a),
              ==, -1);
    CHECK_INT(decode("*7\r\n:0\r\n:7\r\n:0\r\n:0\r\n:0\r\n:0\r\n:2\r\n", &a),
              ==, 0);
    CHECK_INT(a.next_call, ==, FAIRLOCK__NEXT_POLL);
    CHECK_INT(decode("*7\r\n:0\r\n:7\r\n:0\r\n:0\r\n:0\r\n:0\r\n:3\r\n", &a),
              ==, -1);
    CHECK_INT(decode("-ERR boom\r\n", &a), ==, -1);
    CHECK_INT(fairlock__decode_attempt(NULL, &a, (char[8]){0}, 8), ==, -1);
}

static void cancel_replies(void) {
    int undone = -1;
    char cursor[21], err[128];
    redisReply *r = read_reply("*2\r\n:1\r\n$1\r\n0\r\n");
    CHECK_INT(fairlock__decode_cancel(r, &undone, cursor, sizeof cursor, err,
                                      sizeof err),
              ==, 0);
    CHECK_INT(undone, ==, 1);
    CHECK_STR(cursor, "0");
    freeReplyObject(r);
    r = read_reply("*2\r\n:0\r\n$5\r\n12345\r\n");
    CHECK_INT(fairlock__decode_cancel(r, &undone, cursor, sizeof cursor, err,
                                      sizeof err),
              ==, 0);
    CHECK_INT(undone, ==, 0);
    CHECK_STR(cursor, "12345");
    freeReplyObject(r);
    const char *bad[] = {":1\r\n",
                         "*2\r\n:2\r\n$1\r\n0\r\n",
                         "*2\r\n:1\r\n$2\r\n1x\r\n",
                         "*2\r\n:1\r\n$0\r\n\r\n",
                         "*2\r\n:1\r\n:0\r\n",
                         "*2\r\n:1\r\n$21\r\n123456789012345678901\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = read_reply(bad[i]);
        CHECK_INT(fairlock__decode_cancel(r, &undone, cursor, sizeof cursor,
                                          err, sizeof err),
                  ==, -1);
        freeReplyObject(r);
    }
}

static int handoff(const char *s, fairlock__attempt *a) {
    return fairlock__decode_handoff(s, s ? strlen(s) : 0, a);
}

static void handoff_messages(void) {
    fairlock__attempt a;
    CHECK_INT(handoff("12:3000:0", &a), ==, 0);
    CHECK_INT(a.ticket, ==, 12);
    CHECK_INT(a.lease_ms, ==, 3000);
    CHECK_INT(a.fence, ==, 0);
    CHECK_INT(handoff("1:2:77", &a), ==, 0);
    CHECK_INT(a.fence, ==, 77);
    CHECK_INT(a.permit, ==, 0);
    /* A semaphore's hand-off carries the permit too. */
    CHECK_INT(handoff("1:2:3:4", &a), ==, 0);
    CHECK_INT(a.fence, ==, 3);
    CHECK_INT(a.permit, ==, 4);
    const char *bad[] = {
        "12:3000",   "12::1",  ":5:1",   "1",
        "1:2:3:4:5", "1:2:3:", "-1:2:3", "1:99999999999999999999:1",
        "1:2:",      "1:2:x",  "",       "a:b:c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(handoff(bad[i], &a), ==, -1);
    CHECK_INT(handoff(NULL, &a), ==, -1);
}

static void status_replies(void) {
    /* now, holder, pttl, fence, total, then K members, the holder's
     * identity record and one per member (nil where none) */
    redisReply *r = read_reply(
        "*12\r\n:100000\r\n$5\r\nowner\r\n:2500\r\n$2\r\n42\r\n:4\r\n"
        "$27\r\n3:0123abcd.30000.9000:99000\r\n"
        "$14\r\n4:a:b:c:100000\r\n"
        "$7\r\ngarbage\r\n"
        "$29\r\nowner\t97000\t4242\thost-a\trun x\r\n"
        "$24\r\n98000\t77\thost-b\tsleep 10\r\n"
        "$-1\r\n"
        "$-1\r\n");
    fairlock_status *st = NULL;
    char err[128];
    CHECK_INT(fairlock__decode_status(r, &st, err, sizeof err), ==,
              FAIRLOCK_OK);
    freeReplyObject(r);
    CHECK_INT(st->server_time_ms, ==, 100000);
    CHECK_STR(st->holder, "owner");
    CHECK_INT(st->holder_pttl_ms, ==, 2500);
    CHECK_INT(st->fence, ==, 42);
    CHECK_INT(st->total_waiters, ==, 4);
    CHECK_INT(st->waiter_count, ==, 2); /* the malformed one is skipped */
    CHECK_INT(st->waiters[0].ticket, ==, 3);
    CHECK_STR(st->waiters[0].token, "0123abcd.30000.9000");
    CHECK_INT(st->waiters[0].idle_ms, ==, 1000);
    CHECK_INT(st->waiters[0].liveness_ms, ==, 9000);
    CHECK_STR(st->waiters[1].token, "a:b:c");
    CHECK_INT(st->waiters[1].liveness_ms, ==, 0);
    const fairlock_identity *id = fairlock_status_holder_identity(st, 0);
    CHECK(id != NULL);
    CHECK_STR(id->host, "host-a");
    CHECK_STR(id->label, "run x");
    CHECK_INT(id->pid, ==, 4242);
    CHECK_INT(id->since_ms, ==, 97000);
    CHECK_INT(id->age_ms, ==, 3000);
    id = fairlock_status_waiter_identity(st, 0);
    CHECK(id != NULL);
    CHECK_STR(id->host, "host-b");
    CHECK_STR(id->label, "sleep 10");
    CHECK_INT(id->pid, ==, 77);
    CHECK_INT(id->age_ms, ==, 2000);
    CHECK(fairlock_status_waiter_identity(st, 1) == NULL);
    CHECK(fairlock_status_waiter_identity(st, 2) == NULL);
    fairlock_status_free(st);

    /* A holder record of an earlier grant (another token) is not shown. */
    r = read_reply("*6\r\n:1\r\n$5\r\nowner\r\n:-1\r\n$-1\r\n:0\r\n"
                   "$20\r\nolder\t1\t2\thost\tlabel\r\n");
    CHECK_INT(fairlock__decode_status(r, &st, err, sizeof err), ==,
              FAIRLOCK_OK);
    freeReplyObject(r);
    CHECK(fairlock_status_holder_identity(st, 0) == NULL);
    fairlock_status_free(st);

    r = read_reply("*6\r\n:1\r\n$-1\r\n:-2\r\n$-1\r\n:0\r\n$-1\r\n");
    CHECK_INT(fairlock__decode_status(r, &st, err, sizeof err), ==,
              FAIRLOCK_OK);
    freeReplyObject(r);
    CHECK(st->holder == NULL);
    CHECK_INT(st->holder_pttl_ms, ==, -2);
    CHECK_INT(st->waiter_count, ==, 0);
    CHECK(fairlock_status_holder_identity(st, 0) == NULL);
    fairlock_status_free(st);

    r = read_reply("*5\r\n:1\r\n$-1\r\n:-2\r\n$-1\r\n:0\r\n");
    CHECK_INT(fairlock__decode_status(r, &st, err, sizeof err), ==,
              FAIRLOCK_REDIS);
    freeReplyObject(r);
    CHECK(st == NULL);
    r = read_reply("*7\r\n:1\r\n$-1\r\n:-2\r\n$-1\r\n:0\r\n:5\r\n$-1\r\n");
    CHECK_INT(fairlock__decode_status(r, &st, err, sizeof err), ==,
              FAIRLOCK_REDIS);
    freeReplyObject(r);
}

static void tokens(void) {
    char a[FAIRLOCK_TOKEN_MAX], b[FAIRLOCK_TOKEN_MAX];
    CHECK_INT(fairlock__token_new(a, 30000, 10000, 0), ==, 0);
    CHECK_INT(fairlock__token_new(b, 30000, 10000, 0), ==, 0);
    CHECK(strcmp(a, b) != 0);
    CHECK_INT(strlen(a), ==, 32 + strlen(".30000.10000"));
    CHECK(strcmp(a + 32, ".30000.10000") == 0);
    for (int i = 0; i < 32; i++)
        CHECK(strchr("0123456789abcdef", a[i]) != NULL);
    CHECK_INT(fairlock__token_new(a, 0, 100, 1), ==, 0);
    CHECK(strcmp(a + 32, ".0.100.f") == 0);
}

/* BLPOP, WAIT and the 1-or-0 scripts. */
static void wake_wait_and_flag_replies(void) {
    const char *msg = NULL;
    size_t len = 0;
    redisReply *r = read_reply("*2\r\n$6\r\nNAME:w\r\n$7\r\n3:100:0\r\n");
    CHECK_INT(fairlock__decode_wake(r, &msg, &len), ==, FAIRLOCK__WAKE_PUSHED);
    CHECK_INT(len, ==, 7);
    CHECK(memcmp(msg, "3:100:0", 7) == 0);
    freeReplyObject(r);
    r = read_reply("*-1\r\n");
    CHECK_INT(fairlock__decode_wake(r, &msg, &len), ==, FAIRLOCK__WAKE_NONE);
    freeReplyObject(r);
    r = read_reply("-UNBLOCKED force unblock\r\n");
    CHECK_INT(fairlock__decode_wake(r, &msg, &len), ==,
              FAIRLOCK__WAKE_UNBLOCKED);
    freeReplyObject(r);
    r = read_reply("*2\r\n$1\r\nk\r\n:1\r\n");
    CHECK_INT(fairlock__decode_wake(r, &msg, &len), ==, FAIRLOCK__WAKE_BAD);
    CHECK_INT(fairlock__decode_wait(r), ==, -1);
    CHECK_INT(fairlock__decode_flag(r), ==, -1);
    freeReplyObject(r);
    r = read_reply(":2\r\n");
    CHECK_INT(fairlock__decode_wait(r), ==, 2);
    CHECK_INT(fairlock__decode_flag(r), ==, 0);
    freeReplyObject(r);
    r = read_reply(":1\r\n");
    CHECK_INT(fairlock__decode_flag(r), ==, 1);
    freeReplyObject(r);
    CHECK_INT(fairlock__decode_flag(NULL), ==, -1);
}

static void redirects(void) {
    char host[64];
    int port = 0;
    CHECK_INT(fairlock__parse_redirect("MOVED 3999 10.0.0.2:6381", NULL, host,
                                       sizeof host, &port),
              ==, 0);
    CHECK_STR(host, "10.0.0.2");
    CHECK_INT(port, ==, 6381);
    CHECK_INT(fairlock__parse_redirect("ASK 3999 :6382", "node1", host,
                                       sizeof host, &port),
              ==, 0);
    CHECK_STR(host, "node1");
    CHECK_INT(port, ==, 6382);
    CHECK_INT(fairlock__parse_redirect("ASK 3999 :6382", NULL, host,
                                       sizeof host, &port),
              ==, -1);
    CHECK_INT(fairlock__parse_redirect("MOVED 3999 h:0", NULL, host,
                                       sizeof host, &port),
              ==, -1);
    CHECK_INT(fairlock__parse_redirect("MOVED", NULL, host, sizeof host, &port),
              ==, -1);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    RUN_TEST(attempt_replies);
    RUN_TEST(cancel_replies);
    RUN_TEST(handoff_messages);
    RUN_TEST(status_replies);
    RUN_TEST(tokens);
    RUN_TEST(wake_wait_and_flag_replies);
    RUN_TEST(redirects);
    return check_done();
}
