/* status.c -- `fairlock status`: the holders and the queue, as text or JSON.
 *
 * One snapshot, taken atomically on the server; ages and leases are
 * measured by the server's clock, so they are right whichever machine
 * asks.
 */
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Enough for any real queue; the rest is counted, not listed. */
#define MAX_LISTED 10000
/* Tokens are 32 hex digits plus their terms; this much tells them apart. */
#define TOKEN_PREFIX 12

static void put_token(FILE *out, const char *token, int full) {
    size_t len = strlen(token);
    if (!full && len > TOKEN_PREFIX) {
        cli_put_text(out, token, TOKEN_PREFIX);
        fputs("...", out);
    } else {
        cli_put_text(out, token, len);
    }
}

static int is_shared_token(const char *token) {
    size_t len = strlen(token);
    return len >= 2 && strcmp(token + len - 2, ".s") == 0;
}

static const char *kind_name(int kind) {
    return kind == FAIRLOCK_KIND_SEMAPHORE ? "semaphore"
           : kind == FAIRLOCK_KIND_RWLOCK  ? "rwlock"
                                           : "mutex";
}

/* "pid 123 on host: label" (the label only when there is one). */
void cli_put_identity(FILE *out, const fairlock_identity *id) {
    if (id == NULL) {
        fputc('-', out);
        return;
    }
    fprintf(out, "pid %" PRId64 " on ", id->pid);
    cli_put_text(out, id->host, strlen(id->host));
    if (id->label[0] != '\0') {
        fputs(": ", out);
        cli_put_text(out, id->label, strlen(id->label));
    }
}

/* The holders of a semaphore or readers-writer lock, one a line. */
static void print_holders(const fairlock_status *st, int full) {
    if (st->kind == FAIRLOCK_KIND_SEMAPHORE)
        printf("kind:     semaphore of %" PRId64 " permits\n"
               "holders:  %zu of %" PRId64 "\n",
               st->permits, st->holder_count, st->permits);
    else
        printf("kind:     readers-writer lock\nholders:  %zu\n",
               st->holder_count);
    if (st->holder_count == 0)
        return;
    printf("  %9s  %8s  %9s  %9s  %-15s  %s\n",
           st->kind == FAIRLOCK_KIND_SEMAPHORE ? "PERMIT" : "MODE", "FENCE",
           "LEASE", "HELD", "TOKEN", "WHO");
    for (size_t i = 0; i < st->holder_count; i++) {
        const fairlock_holder *h = fairlock_status_holder(st, i);
        const fairlock_identity *id = fairlock_status_holder_identity(st, i);
        char what[24], lease[32] = "no expiry", held[32] = "?";
        if (st->kind == FAIRLOCK_KIND_SEMAPHORE)
            snprintf(what, sizeof what, "%" PRId64, h->permit);
        else
            snprintf(what, sizeof what, "%s",
                     h->shared ? "shared" : "exclusive");
        if (h->pttl_ms >= 0)
            cli_duration(lease, sizeof lease, h->pttl_ms);
        if (id != NULL)
            cli_duration(held, sizeof held, id->age_ms);
        printf("  %9s  %8" PRId64 "  %9s  %9s  ", what, h->fence, lease, held);
        put_token(stdout, h->token, full);
        fputs("  ", stdout);
        cli_put_identity(stdout, id);
        fputc('\n', stdout);
    }
}

void cli_print_status_text(const char *name, const fairlock_status *st,
                           int full) {
    char buf[32];
    fputs("lock:     ", stdout);
    cli_put_text(stdout, name, strlen(name));
    fputc('\n', stdout);
    if (st->kind != FAIRLOCK_KIND_MUTEX) {
        print_holders(st, full);
    } else if (fputs("holder:   ", stdout), st->holder == NULL) {
        fputs("none (free)\n", stdout);
    } else {
        put_token(stdout, st->holder, full);
        if (st->holder_pttl_ms >= 0) {
            cli_duration(buf, sizeof buf, st->holder_pttl_ms);
            printf(" (lease: %s left)\n", buf);
        } else {
            fputs(" (lease: no expiry)\n", stdout);
        }
        const fairlock_identity *id = fairlock_status_holder_identity(st, 0);
        if (id != NULL) {
            cli_duration(buf, sizeof buf, id->age_ms);
            printf("held by:  ");
            cli_put_identity(stdout, id);
            printf(" (for %s)\n", buf);
        }
    }
    if (st->fence > 0)
        printf("fence:    %" PRId64 "\n", st->fence);
    printf("waiters:  %zu\n", st->total_waiters);
    if (st->waiter_count == 0)
        return;
    int modes = st->kind == FAIRLOCK_KIND_RWLOCK;
    printf("  %4s  %8s  %9s  %9s  %9s  %s%-15s  %s\n", "POS", "TICKET",
           "WAITING", "IDLE", "LIVENESS", modes ? "MODE       " : "", "TOKEN",
           "WHO");
    for (size_t i = 0; i < st->waiter_count; i++) {
        const fairlock_waiter *w = &st->waiters[i];
        const fairlock_identity *id = fairlock_status_waiter_identity(st, i);
        char idle[32], live[32] = "?", waiting[32] = "?";
        cli_duration(idle, sizeof idle, w->idle_ms);
        if (w->liveness_ms > 0)
            cli_duration(live, sizeof live, w->liveness_ms);
        if (id != NULL)
            cli_duration(waiting, sizeof waiting, id->age_ms);
        printf("  %4zu  %8" PRId64 "  %9s  %9s  %9s  ", i + 1, w->ticket,
               waiting, idle, live);
        if (modes)
            printf("%-9s  ",
                   is_shared_token(w->token) ? "shared" : "exclusive");
        put_token(stdout, w->token, full);
        fputs("  ", stdout);
        cli_put_identity(stdout, id);
        fputc('\n', stdout);
    }
    if (st->waiter_count < st->total_waiters)
        printf("  ... and %zu more\n", st->total_waiters - st->waiter_count);
}

/* ,"identity":{...} or null; age_key names the age ("held_ms" or
 * "waiting_ms"). */
static void put_json_identity(const fairlock_identity *id,
                              const char *age_key) {
    fputs(",\"identity\":", stdout);
    if (id == NULL) {
        fputs("null", stdout);
        return;
    }
    fputs("{\"host\":", stdout);
    cli_put_json_string(stdout, id->host, strlen(id->host));
    printf(",\"pid\":%" PRId64 ",\"label\":", id->pid);
    cli_put_json_string(stdout, id->label, strlen(id->label));
    printf(",\"since_ms\":%" PRId64 ",\"%s\":%" PRId64 "}", id->since_ms,
           age_key, id->age_ms);
}

void cli_print_status_json(const char *name, const fairlock_status *st) {
    fputs("{\"name\":", stdout);
    cli_put_json_string(stdout, name, strlen(name));
    printf(",\"server_time_ms\":%" PRId64 ",\"locked\":%s,\"holder\":",
           st->server_time_ms,
           st->holder || st->holder_count ? "true" : "false");
    if (st->holder == NULL) {
        fputs("null", stdout);
    } else {
        fputs("{\"token\":", stdout);
        cli_put_json_string(stdout, st->holder, strlen(st->holder));
        if (st->holder_pttl_ms >= 0)
            printf(",\"ttl_ms\":%" PRId64, st->holder_pttl_ms);
        else
            fputs(",\"ttl_ms\":null", stdout);
        put_json_identity(fairlock_status_holder_identity(st, 0), "held_ms");
        fputc('}', stdout);
    }
    printf(",\"kind\":\"%s\",\"permits\":", kind_name(st->kind));
    if (st->kind == FAIRLOCK_KIND_SEMAPHORE)
        printf("%" PRId64, st->permits);
    else
        fputs("null", stdout);
    fputs(",\"holders\":[", stdout);
    for (size_t i = 0; i < st->holder_count; i++) {
        const fairlock_holder *h = fairlock_status_holder(st, i);
        fputs(i ? ",{\"token\":" : "{\"token\":", stdout);
        cli_put_json_string(stdout, h->token, strlen(h->token));
        if (h->pttl_ms >= 0)
            printf(",\"ttl_ms\":%" PRId64, h->pttl_ms);
        else
            fputs(",\"ttl_ms\":null", stdout);
        printf(",\"fence\":%" PRId64, h->fence);
        if (st->kind == FAIRLOCK_KIND_SEMAPHORE)
            printf(",\"permit\":%" PRId64, h->permit);
        if (st->kind == FAIRLOCK_KIND_RWLOCK)
            printf(",\"mode\":\"%s\"", h->shared ? "shared" : "exclusive");
        put_json_identity(fairlock_status_holder_identity(st, i), "held_ms");
        fputc('}', stdout);
    }
    printf("],\"fence\":%" PRId64 ",\"waiters_total\":%zu,\"waiters\":[",
           st->fence, st->total_waiters);
    for (size_t i = 0; i < st->waiter_count; i++) {
        const fairlock_waiter *w = &st->waiters[i];
        printf("%s{\"position\":%zu,\"ticket\":%" PRId64 ",\"token\":",
               i ? "," : "", i + 1, w->ticket);
        cli_put_json_string(stdout, w->token, strlen(w->token));
        printf(",\"idle_ms\":%" PRId64 ",\"liveness_ms\":", w->idle_ms);
        if (w->liveness_ms > 0)
            printf("%" PRId64, w->liveness_ms);
        else
            fputs("null", stdout);
        put_json_identity(fairlock_status_waiter_identity(st, i), "waiting_ms");
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

/* cli_snapshot's work: returns a fairlock code, and on an error the
 * message for it in msg (no handle or snapshot then). */
static int snapshot(const char *name, const char *url, int kind,
                    int64_t permits, fairlock **lock_out,
                    fairlock_status **st_out, char *msg, size_t msg_len) {
    *lock_out = NULL;
    *st_out = NULL;
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = url;
    cli_auth_apply(&opts);
    /* The semaphore and the readers-writer lock share their keys and
     * status script: a readers-writer handle reads either (the status
     * says which), and needs no N. */
    opts.kind = kind < 0 ? FAIRLOCK_KIND_MUTEX : kind;
    opts.permits = kind == FAIRLOCK_KIND_SEMAPHORE ? permits : 0;
    if (opts.kind == FAIRLOCK_KIND_SEMAPHORE && opts.permits < 1) {
        opts.kind = FAIRLOCK_KIND_RWLOCK;
        opts.permits = 0;
    }
    fairlock *lock = NULL;
    int rc = fairlock_create(&opts, &lock);
    fairlock_status *st = NULL;
    if (rc == FAIRLOCK_OK)
        rc = fairlock_status_get(lock, MAX_LISTED, &st);
    /* A name free as a mutex may be in use as a semaphore or
     * readers-writer lock, whose keys are their own. */
    if (kind < 0 && rc == FAIRLOCK_OK && st->holder == NULL &&
        st->total_waiters == 0) {
        fairlock *other = NULL;
        fairlock_status *other_st = NULL;
        opts.kind = FAIRLOCK_KIND_RWLOCK;
        if (fairlock_create(&opts, &other) == FAIRLOCK_OK &&
            fairlock_status_get(other, MAX_LISTED, &other_st) == FAIRLOCK_OK &&
            (other_st->holder_count > 0 || other_st->total_waiters > 0)) {
            fairlock_status_free(st);
            st = other_st;
            other_st = NULL;
            fairlock_free(lock);
            lock = other;
            other = NULL;
        }
        fairlock_status_free(other_st);
        fairlock_free(other);
    }
    if (rc != FAIRLOCK_OK) {
        char shown[128];
        cli_text(shown, sizeof shown, name, strlen(name));
        snprintf(msg, msg_len, "%s: %s", shown,
                 lock ? fairlock_errmsg(lock) : fairlock_strerror(rc));
        fairlock_free(lock);
        return rc;
    }
    *lock_out = lock;
    *st_out = st;
    return FAIRLOCK_OK;
}

int cli_snapshot(const char *name, const char *url, int kind, int64_t permits,
                 fairlock **lock_out, fairlock_status **st_out) {
    char msg[1024];
    int rc = snapshot(name, url, kind, permits, lock_out, st_out, msg,
                      sizeof msg);
    if (rc == FAIRLOCK_OK)
        return 0;
    cli_msg("%s", msg);
    return cli_exit_for(rc);
}

/* `status --watch`: the snapshot again every interval, drawn over the
 * last one as top(1) does, until a signal.  A snapshot that fails (the
 * server restarting, a failover, a network blip) is shown in its place
 * and the next one tried at the next interval: an operator watching a
 * lock through an incident wants the screen back when the server is.
 * Only options no retry can mend (FAIRLOCK_INVALID: a bad URL or name)
 * end it, with their exit status. */
static int watch(const char *name, const char *url, int full,
                 int64_t interval_ms) {
    if (!isatty(STDOUT_FILENO))
        return cli_usage_error("status",
                               "--watch redraws a terminal, and the output "
                               "is not one: leave --watch out (or loop "
                               "yourself) to print a snapshot");
    if (cli_signals_init() != 0) {
        cli_msg("status: cannot set up signal handling");
        return CLI_EXIT_OSERR;
    }
    int rc = 0;
    while (cli_signal_pending() == 0) {
        fairlock *lock = NULL;
        fairlock_status *st = NULL;
        char msg[1024];
        int code = snapshot(name, url, -1, 0, &lock, &st, msg, sizeof msg);
        if (code == FAIRLOCK_INVALID) {
            cli_msg("%s", msg);
            rc = cli_exit_for(code);
            break;
        }
        time_t now = time(NULL);
        char when[64];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
        /* Home, then clear to the end: no flicker of a full clear. */
        fputs("\033[H", stdout);
        printf("fairlock status --watch, every %" PRId64 ".%" PRId64
               " s -- %s (Ctrl-C to quit)\033[K\n\033[K\n",
               interval_ms / 1000, interval_ms % 1000 / 100, when);
        if (code == FAIRLOCK_OK) {
            cli_print_status_text(name, st, full);
        } else {
            /* As the snapshot's message on stderr (the name escaped). */
            printf("error: %s\033[K\n(trying again every interval)\033[K\n",
                   msg);
        }
        fputs("\033[J", stdout);
        fflush(stdout);
        fairlock_status_free(st);
        fairlock_free(lock);
        struct pollfd pfd = {cli_signals_fd(), POLLIN, 0};
        poll(&pfd, 1, (int)interval_ms);
    }
    fputc('\n', stdout);
    return rc;
}

int cli_status(int argc, char **argv) {
    static const struct option longopts[] = {
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {"long", no_argument, NULL, 'l'},
        {"url", required_argument, NULL, 'u'},
        {"watch", no_argument, NULL, CLI_OPT_WATCH},
        {"interval", required_argument, NULL, CLI_OPT_INTERVAL},
        {"format", required_argument, NULL, CLI_OPT_FORMAT},
        CLI_AUTH_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *name = NULL, *format = NULL;
    int json = 0, full = 0, watching = 0, c;
    int64_t interval_ms = 2000;
    opterr = 0;
    optind = 1;
    /* "-" first: operands come back in order as 1, so options may follow
     * the name; ":" next: a missing value is told from an unknown option. */
    while ((c = getopt_long(argc, argv, "-:lu:h", longopts, NULL)) != -1) {
        switch (c) {
        case 1:
            if (name != NULL)
                return cli_usage_error("status", "unexpected argument '%s'",
                                       optarg);
            name = optarg;
            break;
        case CLI_OPT_JSON:
            json = 1;
            break;
        case CLI_OPT_WATCH:
            watching = 1;
            break;
        case CLI_OPT_INTERVAL:
            if (cli_parse_seconds(optarg, &interval_ms) != 0 ||
                interval_ms < 100)
                return cli_usage_error("status",
                                       "--interval needs seconds, at least "
                                       "0.1, not '%s'",
                                       optarg);
            break;
        case CLI_OPT_FORMAT:
            format = optarg;
            break;
        case 'l':
            full = 1;
            break;
        case 'u':
            url = optarg;
            break;
        case 'h':
            cli_help_command(stdout, "status");
            return 0;
        default: {
            int rc = cli_auth_option("status", c, optarg);
            if (rc == 0)
                return cli_getopt_error("status", c, argv);
            if (rc != 1)
                return rc;
        }
        }
    }
    for (; optind < argc; optind++) { /* after "--" */
        if (name != NULL)
            return cli_usage_error("status", "unexpected argument '%s'",
                                   argv[optind]);
        name = argv[optind];
    }
    if (format != NULL) {
        if (strcmp(format, "json") == 0) {
            json = 1;
        } else if (strcmp(format, "prometheus") == 0) {
            if (json || watching)
                return cli_usage_error("status",
                                       "--format prometheus goes with neither "
                                       "--json nor --watch");
            /* The operand is a pattern then, as for `fairlock metrics`. */
            int auth_rc = cli_auth_finish("status", &url, 0);
            return auth_rc ? auth_rc : cli_metrics_print(name, url);
        } else if (strcmp(format, "text") != 0) {
            return cli_usage_error("status",
                                   "--format is text, json or prometheus, "
                                   "not '%s'",
                                   format);
        }
    }
    if (name == NULL)
        return cli_usage_error("status", "the lock name is missing");
    if (json && watching)
        return cli_usage_error("status", "--watch and --json do not go "
                                         "together");
    int auth_rc = cli_auth_finish("status", &url, 0);
    if (auth_rc != 0)
        return auth_rc;
    if (watching)
        return watch(name, url, full, interval_ms);

    fairlock *lock = NULL;
    fairlock_status *st = NULL;
    int rc = cli_snapshot(name, url, -1, 0, &lock, &st);
    if (rc != 0)
        return rc;
    if (json)
        cli_print_status_json(name, st);
    else
        cli_print_status_text(name, st, full);
    fairlock_status_free(st);
    fairlock_free(lock);
    return 0;
}
