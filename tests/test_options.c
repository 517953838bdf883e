/* test_options.c -- options, bad input at creation, result codes and
 * version; no server needed (creation does no I/O). */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "fairlock.h"

/* fairlock_create must fail with FAIRLOCK_INVALID and a message holding
 * `words`, and the handle must be freeable. */
static void create_fails(const fairlock_options *opts, const char *words) {
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create(opts, &lock), ==, FAIRLOCK_INVALID);
    CHECK(lock != NULL);
    if (strstr(fairlock_errmsg(lock), words) == NULL)
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", fairlock_errmsg(lock),
                words);
    CHECK(strstr(fairlock_errmsg(lock), words) != NULL);
    CHECK_INT(fairlock_errcode(lock), ==, FAIRLOCK_INVALID);
    /* A failed handle refuses to work, cleanly. */
    CHECK_INT(fairlock_acquire(lock), ==, FAIRLOCK_INVALID);
    CHECK_INT(fairlock_release(lock), ==, FAIRLOCK_NOTOWNED);
    fairlock_free(lock);
}

static void defaults_are_the_reference(void) {
    fairlock_options o;
    memset(&o, 0x5a, sizeof o);
    fairlock_options_init(&o);
    CHECK(o.name == NULL && o.redis == NULL && o.url == NULL);
    CHECK_INT(o.timeout_ms, ==, FAIRLOCK_FOREVER);
    CHECK_INT(o.ttl_ms, ==, FAIRLOCK_DEFAULT);
    CHECK_INT(o.blocking, ==, 1);
    CHECK_INT(o.check_interval_ms, ==, 50);
    CHECK_INT(o.fifo, ==, 1);
    CHECK_INT(o.stale_timeout_ms, ==, FAIRLOCK_DEFAULT);
    CHECK(o.interrupt == NULL);
}

static void bad_names(void) {
    fairlock_options o;
    fairlock_options_init(&o);
    create_fails(&o, "name is NULL");
    o.name = "";
    create_fails(&o, "name is empty");
    char *long_name = malloc(FAIRLOCK_NAME_MAX + 2);
    memset(long_name, 'x', FAIRLOCK_NAME_MAX + 1);
    long_name[FAIRLOCK_NAME_MAX + 1] = '\0';
    o.name = long_name;
    create_fails(&o, "limit");
    free(long_name);
    CHECK_INT(fairlock_create(NULL, NULL), ==, FAIRLOCK_INVALID);
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create(NULL, &lock), ==, FAIRLOCK_INVALID);
    fairlock_free(lock);
}

static void odd_names_are_accepted(void) {
    static const char binary[] = {'a', '\0', 'b', (char)0xff, ':', '*'};
    fairlock_options o;
    fairlock_options_init(&o);
    o.url = "redis://127.0.0.1:1";
    const char *names[] = {"a:b", "{tag}x", "*", "with space",
                           "\xc3\xa9t\xc3\xa9"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fairlock *lock = NULL;
        o.name = names[i];
        CHECK_INT(fairlock_create(&o, &lock), ==, FAIRLOCK_OK);
        size_t len;
        CHECK_STR(fairlock_name(lock, &len), names[i]);
        fairlock_free(lock);
    }
    fairlock *lock = NULL;
    o.name = binary;
    o.name_len = sizeof binary;
    CHECK_INT(fairlock_create(&o, &lock), ==, FAIRLOCK_OK);
    size_t len;
    CHECK(memcmp(fairlock_name(lock, &len), binary, sizeof binary) == 0);
    CHECK_INT(len, ==, sizeof binary);
    fairlock_free(lock);
}

static void bad_durations(void) {
    fairlock_options o;
    fairlock_options_init(&o);
    o.name = "x";
    o.timeout_ms = -5;
    create_fails(&o, "timeout_ms is -5");
    fairlock_options_init(&o);
    o.name = "x";
    o.ttl_ms = 0;
    create_fails(&o, "ttl_ms");
    fairlock_options_init(&o);
    o.name = "x";
    o.check_interval_ms = 0;
    create_fails(&o, "check_interval_ms");
    fairlock_options_init(&o);
    o.name = "x";
    o.stale_timeout_ms = FAIRLOCK_FOREVER;
    create_fails(&o, "stale_timeout_ms");
    fairlock_options_init(&o);
    o.name = "x";
    o.timeout_ms = INT64_MAX;
    create_fails(&o, "timeout_ms");
}

static void bad_urls(void) {
    fairlock_options o;
    fairlock_options_init(&o);
    o.name = "x";
    o.url = "redis://alice:hunter2@h:notaport";
    create_fails(&o, "port");
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create(&o, &lock), ==, FAIRLOCK_INVALID);
    CHECK(strstr(fairlock_errmsg(lock), "hunter2") == NULL);
    fairlock_free(lock);
    o.url = "ftp://x";
    create_fails(&o, "redis://");

    /* The environment is read when no URL is given. */
    o.url = NULL;
    setenv("FAIRLOCK_URL", "bogus", 1);
    create_fails(&o, "$FAIRLOCK_URL");
    unsetenv("FAIRLOCK_URL");
    setenv("REDIS_URL", "bogus", 1);
    create_fails(&o, "$REDIS_URL");
    unsetenv("REDIS_URL");
}

static void unreachable_server(void) {
    fairlock_options o;
    fairlock_options_init(&o);
    o.name = "x";
    o.url = "redis://:hunter2@127.0.0.1:1/0";
    o.io_timeout_ms = 500;
    fairlock *lock = NULL;
    CHECK_INT(fairlock_create(&o, &lock), ==, FAIRLOCK_OK);
    CHECK_RC(lock, fairlock_acquire(lock), FAIRLOCK_REDIS);
    CHECK(strstr(fairlock_errmsg(lock), "127.0.0.1:1") != NULL);
    CHECK(strstr(fairlock_errmsg(lock), "hunter2") == NULL);
    CHECK_INT(fairlock_ticket(lock), ==, 0);
    int locked = 5;
    CHECK_RC(lock, fairlock_locked(lock, &locked), FAIRLOCK_REDIS);
    CHECK_INT(locked, ==, 0);
    CHECK_RC(lock, fairlock_release(lock), FAIRLOCK_NOTOWNED);
    CHECK_RC(lock, fairlock_extend(lock, 1000), FAIRLOCK_NOTOWNED);
    fairlock_free(lock);
}

static void codes_and_version(void) {
    CHECK_STR(fairlock_code_name(FAIRLOCK_OK), "FAIRLOCK_OK");
    CHECK_STR(fairlock_code_name(FAIRLOCK_TIMEOUT), "FAIRLOCK_TIMEOUT");
    CHECK_STR(fairlock_code_name(12345), "FAIRLOCK_UNKNOWN");
    CHECK_STR(fairlock_strerror(-1), "unknown result code");
    for (int code = 0; code <= FAIRLOCK_BUSY; code++) {
        CHECK(strcmp(fairlock_code_name(code), "FAIRLOCK_UNKNOWN") != 0);
        CHECK(strlen(fairlock_strerror(code)) > 5);
    }
    CHECK_STR(fairlock_version(), FAIRLOCK_VERSION_STRING);
    CHECK_INT(fairlock_version_number(), ==, FAIRLOCK_VERSION_NUMBER);
    CHECK(FAIRLOCK_VERSION_AT_LEAST(0, 1, 0));
    CHECK(!FAIRLOCK_VERSION_AT_LEAST(99, 0, 0));
    CHECK_STR(fairlock_errmsg(NULL), "no handle (out of memory?)");
    fairlock_free(NULL);
}

static void seconds_conversion(void) {
    int64_t ms = 0;
    CHECK_INT(fairlock_seconds_to_ms(1.5, &ms), ==, FAIRLOCK_OK);
    CHECK_INT(ms, ==, 1500);
    CHECK_INT(fairlock_seconds_to_ms(0.0001, &ms), ==, FAIRLOCK_OK);
    CHECK_INT(ms, ==, 1);
    CHECK_INT(fairlock_seconds_to_ms(0, &ms), ==, FAIRLOCK_OK);
    CHECK_INT(ms, ==, 0);
    CHECK_INT(fairlock_seconds_to_ms(-1, &ms), ==, FAIRLOCK_INVALID);
    CHECK_INT(fairlock_seconds_to_ms(NAN, &ms), ==, FAIRLOCK_INVALID);
    CHECK_INT(fairlock_seconds_to_ms(INFINITY, &ms), ==, FAIRLOCK_INVALID);
    CHECK_INT(fairlock_seconds_to_ms(1e300, &ms), ==, FAIRLOCK_INVALID);
    CHECK_INT(fairlock_seconds_to_ms(1, NULL), ==, FAIRLOCK_INVALID);
}

int main(int argc, char **argv) {
    check_select(argc, argv);
    unsetenv("FAIRLOCK_URL");
    unsetenv("REDIS_URL");
    RUN_TEST(defaults_are_the_reference);
    RUN_TEST(bad_names);
    RUN_TEST(odd_names_are_accepted);
    RUN_TEST(bad_durations);
    RUN_TEST(bad_urls);
    RUN_TEST(unreachable_server);
    RUN_TEST(codes_and_version);
    RUN_TEST(seconds_conversion);
    return check_done();
}
