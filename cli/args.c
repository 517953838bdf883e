/* args.c -- numbers and options of the command line, parsed strictly. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Thirty seconds, renewed every ten: a fairlock killed with SIGKILL holds
 * the lock for at most that long, and a slow Redis has time to answer. */
#define RUN_DEFAULT_TTL_MS 30000
#define DEFAULT_KILL_AFTER_MS 10000

int cli_parse_seconds(const char *text, int64_t *ms) {
    /* Digits with at most one dot: strtod alone would also take "inf",
     * "nan", "-1", "0x10", "1e3" and leading blanks, none of which an
     * operator means as a duration. */
    size_t digits = 0, dots = 0;
    for (const char *p = text; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (*p == '.')
            dots++;
        else
            return -1;
    }
    if (digits == 0 || dots > 1)
        return -1;
    char *end;
    double seconds = strtod(text, &end);
    if (*end != '\0')
        return -1;
    /* The library's converter rounds up and rejects what is out of range. */
    return fairlock_seconds_to_ms(seconds, ms) == FAIRLOCK_OK ? 0 : -1;
}

int cli_parse_exit_code(const char *text, int *code) {
    int value = 0;
    if (*text == '\0' || strlen(text) > 3)
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
    }
    if (value > 255)
        return -1;
    *code = value;
    return 0;
}

int cli_getopt_error(const char *command, int c, char *const *argv) {
    /* opterr is 0, so getopt printed nothing; we print one line.  A long
     * option has been stepped over (optind is past it); a short one is
     * named by optopt, as it may sit inside a cluster like -qx. */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
        int len = (int)strcspn(arg, "=");
        if (c == ':')
            return cli_usage_error(command, "option %.*s needs a value", len,
                                   arg);
        if (optopt != 0)
            return cli_usage_error(command, "option %.*s takes no value", len,
                                   arg);
        return cli_usage_error(command, "unknown option %.*s", len, arg);
    }
    if (c == ':')
        return cli_usage_error(command, "option -%c needs a value", optopt);
    return cli_usage_error(command, "unknown option -%c", optopt);
}

void cli_lock_opts_init(cli_lock_opts *o, const char *command) {
    memset(o, 0, sizeof *o);
    o->command = command;
    o->wait_ms = FAIRLOCK_FOREVER;
    o->conflict_exit = CLI_EXIT_CONFLICT;
    /* run renews its lease while the command runs; acquire cannot (it
     * exits), so its lock lasts until released unless --ttl is given. */
    o->ttl_ms = strcmp(command, "run") == 0 ? RUN_DEFAULT_TTL_MS
                                            : FAIRLOCK_FOREVER;
    o->fifo = 1;
    o->stale_ms = FAIRLOCK_DEFAULT;
    o->on_lost = CLI_ON_LOST_TERM;
    o->kill_after_ms = DEFAULT_KILL_AFTER_MS;
}

static int bad_seconds(const cli_lock_opts *o, const char *option,
                       const char *arg) {
    return cli_usage_error(o->command,
                           "%s: '%s' is not a number of seconds (like 5 or "
                           "0.25)",
                           option, arg);
}

static int kind_conflict(const cli_lock_opts *o) {
    return cli_usage_error(o->command, "--permits, --shared and --exclusive "
                                       "exclude each other");
}

int cli_lock_option(cli_lock_opts *o, int c, const char *arg) {
    int64_t ms;
    switch (c) {
    case 'w':
        if (cli_parse_seconds(arg, &ms) != 0)
            return bad_seconds(o, "--wait", arg);
        o->wait_ms = ms;
        return 1;
    case 'n':
        o->nonblock = 1;
        return 1;
    case 'E':
        if (cli_parse_exit_code(arg, &o->conflict_exit) != 0)
            return cli_usage_error(o->command,
                                   "--conflict-exit-code: '%s' is not an "
                                   "exit status from 0 to 255",
                                   arg);
        return 1;
    case CLI_OPT_TTL:
        if (cli_parse_seconds(arg, &ms) != 0)
            return bad_seconds(o, "--ttl", arg);
        o->ttl_ms = ms == 0 ? FAIRLOCK_FOREVER : ms;
        return 1;
    case CLI_OPT_NO_FIFO:
        o->fifo = 0;
        return 1;
    case CLI_OPT_STALE:
        if (cli_parse_seconds(arg, &ms) != 0)
            return bad_seconds(o, "--stale", arg);
        o->stale_ms = ms;
        return 1;
    case CLI_OPT_FENCING:
        o->fencing = 1;
        return 1;
    case CLI_OPT_NO_IDENTITY:
        o->no_identity = 1;
        return 1;
    case CLI_OPT_LABEL:
        o->label = arg;
        return 1;
    case CLI_OPT_PERMITS: {
        char *end;
        long long n = strtoll(arg, &end, 10);
        if (*arg < '0' || *arg > '9' || *end != '\0' || n < 1 ||
            n > FAIRLOCK_PERMITS_MAX)
            return cli_usage_error(o->command,
                                   "--permits: '%s' is not a number from 1 "
                                   "to %lld",
                                   arg, (long long)FAIRLOCK_PERMITS_MAX);
        if (o->kind == FAIRLOCK_KIND_RWLOCK)
            return kind_conflict(o);
        o->kind = FAIRLOCK_KIND_SEMAPHORE;
        o->permits = n;
        return 1;
    }
    case 's':
    case 'x':
        if (o->kind == FAIRLOCK_KIND_SEMAPHORE ||
            (o->kind == FAIRLOCK_KIND_RWLOCK && o->shared != (c == 's')))
            return kind_conflict(o);
        o->kind = FAIRLOCK_KIND_RWLOCK;
        o->shared = c == 's';
        return 1;
    case 'u':
        if (*arg == '\0')
            return cli_usage_error(o->command, "--url: the URL is empty");
        o->url = arg;
        return 1;
    case 'q':
        o->quiet = 1;
        return 1;
    case 'v':
        o->verbose = 1;
        return 1;
    default:
        return cli_auth_option(o->command, c, arg);
    }
}

int cli_lock_opts_check(cli_lock_opts *o) {
    if (o->quiet && o->verbose)
        return cli_usage_error(o->command,
                               "--quiet and --verbose exclude each other");
    if (o->nonblock && o->wait_ms != FAIRLOCK_FOREVER)
        return cli_usage_error(o->command,
                               "--nonblock and --wait exclude each other");
    if (o->kind != FAIRLOCK_KIND_MUTEX && !o->fifo)
        return cli_usage_error(o->command, "--no-fifo is for the mutex only: "
                                           "a semaphore or readers-writer "
                                           "lock is always FIFO");
    if (o->ttl_ms != FAIRLOCK_FOREVER && o->ttl_ms < 3)
        /* The renewal thread renews every third of the lease. */
        return cli_usage_error(o->command,
                               "--ttl must be at least 0.003 seconds");
    return cli_auth_finish(o->command, &o->url, o->quiet);
}
