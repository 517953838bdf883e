/* status.c -- `fairlock status`: the holders and the queue, as text or JSON.
 *
 * One snapshot, taken atomically on the server; ages and leases are
 * measured by the server's clock, so they are right whichever machine
 * asks.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

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
    printf("  %9s  %8s  %9s  %s\n",
           st->kind == FAIRLOCK_KIND_SEMAPHORE ? "PERMIT" : "MODE", "FENCE",
           "LEASE", "TOKEN");
    for (size_t i = 0; i < st->holder_count; i++) {
        const fairlock_holder *h = fairlock_status_holder(st, i);
        char what[24], lease[32] = "no expiry";
        if (st->kind == FAIRLOCK_KIND_SEMAPHORE)
            snprintf(what, sizeof what, "%" PRId64, h->permit);
        else
            snprintf(what, sizeof what, "%s",
                     h->shared ? "shared" : "exclusive");
        if (h->pttl_ms >= 0)
            cli_duration(lease, sizeof lease, h->pttl_ms);
        printf("  %9s  %8" PRId64 "  %9s  ", what, h->fence, lease);
        put_token(stdout, h->token, full);
        fputc('\n', stdout);
    }
}

static void print_text(const char *name, const fairlock_status *st, int full) {
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
    }
    if (st->fence > 0)
        printf("fence:    %" PRId64 "\n", st->fence);
    printf("waiters:  %zu\n", st->total_waiters);
    if (st->waiter_count == 0)
        return;
    int modes = st->kind == FAIRLOCK_KIND_RWLOCK;
    printf("  %4s  %8s  %9s  %9s  %s%s\n", "POS", "TICKET", "IDLE", "LIVENESS",
           modes ? "MODE       " : "", "TOKEN");
    for (size_t i = 0; i < st->waiter_count; i++) {
        const fairlock_waiter *w = &st->waiters[i];
        char idle[32], live[32] = "?";
        cli_duration(idle, sizeof idle, w->idle_ms);
        if (w->liveness_ms > 0)
            cli_duration(live, sizeof live, w->liveness_ms);
        printf("  %4zu  %8" PRId64 "  %9s  %9s  ", i + 1, w->ticket, idle,
               live);
        if (modes)
            printf("%-9s  ",
                   is_shared_token(w->token) ? "shared" : "exclusive");
        put_token(stdout, w->token, full);
        fputc('\n', stdout);
    }
    if (st->waiter_count < st->total_waiters)
        printf("  ... and %zu more\n", st->total_waiters - st->waiter_count);
}

static void print_json(const char *name, const fairlock_status *st) {
    fputs("{\"name\":", stdout);
    cli_put_json_string(stdout, name, strlen(name));
    printf(",\"server_time_ms\":%" PRId64 ",\"locked\":%s,\"holder\":",
           st->server_time_ms, st->holder ? "true" : "false");
    if (st->holder == NULL) {
        fputs("null", stdout);
    } else {
        fputs("{\"token\":", stdout);
        cli_put_json_string(stdout, st->holder, strlen(st->holder));
        if (st->holder_pttl_ms >= 0)
            printf(",\"ttl_ms\":%" PRId64 "}", st->holder_pttl_ms);
        else
            fputs(",\"ttl_ms\":null}", stdout);
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
            printf("%" PRId64 "}", w->liveness_ms);
        else
            fputs("null}", stdout);
    }
    fputs("]}\n", stdout);
}

int cli_status(int argc, char **argv) {
    static const struct option longopts[] = {
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {"long", no_argument, NULL, 'l'},
        {"url", required_argument, NULL, 'u'},
        CLI_AUTH_LONGOPTS,
        CLI_AUTH_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *name = NULL;
    int json = 0, full = 0, c;
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
    if (name == NULL)
        return cli_usage_error("status", "the lock name is missing");
    int auth_rc = cli_auth_finish("status", &url, 0);
    if (auth_rc != 0)
        return auth_rc;

    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = url;
    cli_auth_apply(&opts);
    fairlock *lock = NULL;
    int rc = fairlock_create(&opts, &lock);
    fairlock_status *st = NULL;
    if (rc == FAIRLOCK_OK)
        rc = fairlock_status_get(lock, MAX_LISTED, &st);
    /* A name free as a mutex may be in use as a semaphore or
     * readers-writer lock, whose keys are their own (the same for both:
     * the status says which). */
    if (rc == FAIRLOCK_OK && st->holder == NULL && st->total_waiters == 0) {
        fairlock *other = NULL;
        fairlock_status *other_st = NULL;
        opts.kind = FAIRLOCK_KIND_RWLOCK;
        if (fairlock_create(&opts, &other) == FAIRLOCK_OK &&
            fairlock_status_get(other, MAX_LISTED, &other_st) == FAIRLOCK_OK &&
            (other_st->holder_count > 0 || other_st->total_waiters > 0)) {
            fairlock_status_free(st);
            st = other_st;
            other_st = NULL;
        }
        fairlock_status_free(other_st);
        fairlock_free(other);
    }
    if (rc != FAIRLOCK_OK) {
        char shown[128];
        cli_text(shown, sizeof shown, name, strlen(name));
        cli_msg("%s: %s", shown,
                lock ? fairlock_errmsg(lock) : fairlock_strerror(rc));
        fairlock_free(lock);
        return cli_exit_for(rc);
    }
    if (json)
        print_json(name, st);
    else
        print_text(name, st, full);
    fairlock_status_free(st);
    fairlock_free(lock);
    return 0;
}
