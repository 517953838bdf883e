/* ops.c -- the operator's commands: `fairlock list`, `fairlock metrics`
 * (also `status --format prometheus`) and `fairlock break`.
 *
 * All three start from snapshots (status.c's cli_snapshot); list and
 * metrics find the names with fairlock_list(), which scans the server
 * with SCAN on every master.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *kind_word(int kind) {
    return kind == FAIRLOCK_KIND_SEMAPHORE ? "semaphore"
           : kind == FAIRLOCK_KIND_RWLOCK  ? "rwlock"
                                           : "mutex";
}

/* ---------------------------------------------------------------------------
 * Finding the locks
 * ------------------------------------------------------------------------- */

typedef struct lock_row {
    char *name;
    fairlock_status *st;
} lock_row;

typedef struct found_set {
    const char *url;
    lock_row *rows;
    size_t count, cap;
    int rc; /* the first snapshot failure's exit status */
} found_set;

static int on_found(void *arg, const char *name, size_t len, int kind) {
    found_set *set = arg;
    if (memchr(name, '\0', len) != NULL)
        return 0; /* not a name the command line could have given */
    char *copy = strndup(name, len);
    if (copy == NULL)
        return 1;
    fairlock *lock = NULL;
    fairlock_status *st = NULL;
    int rc = cli_snapshot(copy, set->url, kind, 0, &lock, &st);
    fairlock_free(lock);
    /* Gone between the scan and the snapshot: not a live lock. */
    if (rc != 0 || (st->holder == NULL && st->holder_count == 0 &&
                    st->total_waiters == 0)) {
        if (rc != 0 && set->rc == 0)
            set->rc = rc;
        fairlock_status_free(st);
        free(copy);
        return 0;
    }
    if (set->count == set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 32;
        lock_row *rows = realloc(set->rows, cap * sizeof *rows);
        if (rows == NULL) {
            fairlock_status_free(st);
            free(copy);
            return 1;
        }
        set->rows = rows;
        set->cap = cap;
    }
    set->rows[set->count++] = (lock_row){copy, st};
    return 0;
}

static void found_free(found_set *set) {
    for (size_t i = 0; i < set->count; i++) {
        free(set->rows[i].name);
        fairlock_status_free(set->rows[i].st);
    }
    free(set->rows);
}

/* Scans for the locks matching pattern and takes a snapshot of each. */
static int find_locks(const char *command, const char *pattern, const char *url,
                      found_set *set) {
    memset(set, 0, sizeof *set);
    set->url = url;
    fairlock_options opts;
    fairlock_options_init(&opts);
    /* Only the connection is used; a hash tag keeps a cluster URL happy. */
    opts.name = "{fairlock}:list";
    opts.url = url;
    cli_auth_apply(&opts);
    fairlock *lock = NULL;
    int rc = fairlock_create(&opts, &lock);
    if (rc == FAIRLOCK_OK)
        rc = fairlock_list(lock, pattern, on_found, set);
    if (rc != FAIRLOCK_OK) {
        cli_msg("%s: %s", command,
                lock ? fairlock_errmsg(lock) : fairlock_strerror(rc));
        fairlock_free(lock);
        found_free(set);
        memset(set, 0, sizeof *set);
        return rc == FAIRLOCK_INTERRUPTED ? CLI_EXIT_OSERR : cli_exit_for(rc);
    }
    fairlock_free(lock);
    return set->rc;
}

/* Options of list and metrics: [PATTERN], -u, credentials, and --json
 * for list.  Returns -1 to go on, or an exit status. */
static int parse_pattern_command(const char *command, int argc, char **argv,
                                 const char **pattern, const char **url,
                                 int *json) {
    static const struct option longopts[] = {
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {"url", required_argument, NULL, 'u'},
        CLI_AUTH_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "-:u:h", longopts, NULL)) != -1) {
        switch (c) {
        case 1:
            if (*pattern != NULL)
                return cli_usage_error(command, "unexpected argument '%s'",
                                       optarg);
            *pattern = optarg;
            break;
        case CLI_OPT_JSON:
            if (json == NULL)
                return cli_usage_error(command, "unknown option --json");
            *json = 1;
            break;
        case 'u':
            *url = optarg;
            break;
        case 'h':
            cli_help_command(stdout, command);
            return 0;
        default: {
            int rc = cli_auth_option(command, c, optarg);
            if (rc == 0)
                return cli_getopt_error(command, c, argv);
            if (rc != 1)
                return rc;
        }
        }
    }
    for (; optind < argc; optind++) {
        if (*pattern != NULL)
            return cli_usage_error(command, "unexpected argument '%s'",
                                   argv[optind]);
        *pattern = argv[optind];
    }
    int rc = cli_auth_finish(command, url, 0);
    return rc ? rc : -1;
}

/* ---------------------------------------------------------------------------
 * fairlock list
 * ------------------------------------------------------------------------- */

/* The identity of the holder held longest, and its index. */
static const fairlock_identity *longest_holder(const fairlock_status *st) {
    const fairlock_identity *best = NULL;
    for (size_t i = 0; i < st->holder_count; i++) {
        const fairlock_identity *id = fairlock_status_holder_identity(st, i);
        if (id != NULL && (best == NULL || id->age_ms > best->age_ms))
            best = id;
    }
    return best;
}

/* The longest wait among the waiters listed (who recorded identity). */
static const fairlock_identity *longest_waiter(const fairlock_status *st) {
    const fairlock_identity *best = NULL;
    for (size_t i = 0; i < st->waiter_count; i++) {
        const fairlock_identity *id = fairlock_status_waiter_identity(st, i);
        if (id != NULL && (best == NULL || id->age_ms > best->age_ms))
            best = id;
    }
    return best;
}

/* The shortest remaining lease: -1 when every lease is without end, -2
 * when nobody holds. */
static int64_t first_lease_end(const fairlock_status *st) {
    int64_t first = -2;
    for (size_t i = 0; i < st->holder_count; i++) {
        int64_t p = fairlock_status_holder(st, i)->pttl_ms;
        if (p >= 0 && (first < 0 || p < first))
            first = p;
        else if (p < 0 && first == -2)
            first = -1;
    }
    return first;
}

int cli_list(int argc, char **argv) {
    const char *pattern = NULL, *url = NULL;
    int json = 0;
    int rc = parse_pattern_command("list", argc, argv, &pattern, &url, &json);
    if (rc >= 0)
        return rc;
    found_set set;
    if ((rc = find_locks("list", pattern, url, &set)) != 0 && set.rows == NULL)
        return rc;
    if (!json && set.count > 0)
        printf("%-30s  %-9s  %7s  %7s  %9s  %9s  %9s  %s\n", "NAME", "KIND",
               "HOLDERS", "WAITERS", "HELD", "LEASE", "WAITING", "HOLDER");
    for (size_t i = 0; i < set.count; i++) {
        const char *name = set.rows[i].name;
        const fairlock_status *st = set.rows[i].st;
        if (json) {
            cli_print_status_json(name, st);
            continue;
        }
        char shown[256], held[32] = "-", lease[32] = "-", waiting[32] = "-";
        /* Whole names (padded, never cut): a cut name is another name. */
        cli_text(shown, sizeof shown, name, strlen(name));
        const fairlock_identity *h = longest_holder(st);
        const fairlock_identity *w = longest_waiter(st);
        int64_t end = first_lease_end(st);
        if (h != NULL)
            cli_duration(held, sizeof held, h->age_ms);
        if (end >= 0)
            cli_duration(lease, sizeof lease, end);
        else if (end == -1)
            snprintf(lease, sizeof lease, "no expiry");
        if (w != NULL)
            cli_duration(waiting, sizeof waiting, w->age_ms);
        printf("%-30s  %-9s  %7zu  %7zu  %9s  %9s  %9s  ", shown,
               kind_word(st->kind), st->holder_count, st->total_waiters, held,
               lease, waiting);
        if (st->holder_count == 0)
            fputs("-", stdout);
        else
            cli_put_identity(stdout,
                             h ? h : fairlock_status_holder_identity(st, 0));
        fputc('\n', stdout);
    }
    found_free(&set);
    return rc;
}

/* ---------------------------------------------------------------------------
 * fairlock metrics: the Prometheus text exposition format
 * ------------------------------------------------------------------------- */

/* A label value: UTF-8 with backslash, double quote and newline escaped
 * (the format's only escapes); a byte that is not UTF-8 becomes U+FFFD,
 * since the format requires UTF-8. */
static void put_label_value(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80             ? 1
                   : (*p & 0xe0) == 0xc0 ? 2
                   : (*p & 0xf0) == 0xe0 ? 3
                   : (*p & 0xf8) == 0xf0 ? 4
                                         : 0;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                n = 0;
        if (n == 2 && *p < 0xc2)
            n = 0; /* overlong */
        if (n == 0) {
            fputs("\xef\xbf\xbd", stdout);
            p++;
        } else if (*p == '\\') {
            fputs("\\\\", stdout), p++;
        } else if (*p == '"') {
            fputs("\\\"", stdout), p++;
        } else if (*p == '\n') {
            fputs("\\n", stdout), p++;
        } else {
            fwrite(p, 1, n, stdout);
            p += n;
        }
    }
}

typedef enum {
    M_HELD,
    M_HOLDERS,
    M_HOLDER_AGE,
    M_LEASE,
    M_WAITERS,
    M_OLDEST_WAITER,
    M_GRANTS,
    M_COUNT
} metric;

static const struct {
    const char *name, *type, *help;
} metrics[M_COUNT] = {
    {"fairlock_held", "gauge", "1 while the lock is held, else 0."},
    {"fairlock_holders", "gauge",
     "Holders of the lock (a semaphore's permits in use)."},
    {"fairlock_holder_age_seconds", "gauge",
     "How long the longest holder has held the lock (holders that recorded "
     "their identity)."},
    {"fairlock_lease_remaining_seconds", "gauge",
     "Time until the first holder's lease ends (+Inf: no expiry)."},
    {"fairlock_waiters", "gauge", "Waiters in the lock's queue."},
    {"fairlock_oldest_waiter_age_seconds", "gauge",
     "How long the longest waiter has waited (waiters that recorded their "
     "identity)."},
    {"fairlock_grants_total", "counter",
     "Grants so far: the fencing counter, where fencing is in use."}};

/* The value of metric m for one lock into buf; 0 when it has none. */
static int metric_value(metric m, const fairlock_status *st, char *buf,
                        size_t size) {
    const fairlock_identity *id;
    int64_t end;
    switch (m) {
    case M_HELD:
        snprintf(buf, size, "%d", st->holder_count > 0);
        return 1;
    case M_HOLDERS:
        snprintf(buf, size, "%zu", st->holder_count);
        return 1;
    case M_HOLDER_AGE:
        if ((id = longest_holder(st)) == NULL)
            return 0;
        snprintf(buf, size, "%.3f", (double)id->age_ms / 1000.0);
        return 1;
    case M_LEASE:
        if ((end = first_lease_end(st)) == -2)
            return 0;
        if (end == -1)
            snprintf(buf, size, "+Inf");
        else
            snprintf(buf, size, "%.3f", (double)end / 1000.0);
        return 1;
    case M_WAITERS:
        snprintf(buf, size, "%zu", st->total_waiters);
        return 1;
    case M_OLDEST_WAITER:
        if ((id = longest_waiter(st)) == NULL)
            return 0;
        snprintf(buf, size, "%.3f", (double)id->age_ms / 1000.0);
        return 1;
    case M_GRANTS:
        if (st->fence <= 0)
            return 0;
        snprintf(buf, size, "%" PRId64, st->fence);
        return 1;
    case M_COUNT:
        break;
    }
    return 0;
}

int cli_metrics_print(const char *pattern, const char *url) {
    found_set set;
    int rc = find_locks("metrics", pattern, url, &set);
    if (rc != 0) {
        /* Half a scrape would pass for a complete one: print nothing. */
        found_free(&set);
        return rc;
    }
    for (int m = 0; m < M_COUNT; m++) {
        printf("# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help,
               metrics[m].name, metrics[m].type);
        for (size_t i = 0; i < set.count; i++) {
            char value[64];
            if (!metric_value((metric)m, set.rows[i].st, value, sizeof value))
                continue;
            printf("%s{name=\"", metrics[m].name);
            put_label_value(set.rows[i].name);
            printf("\",kind=\"%s\"} %s\n", kind_word(set.rows[i].st->kind),
                   value);
        }
    }
    printf("# HELP fairlock_locks Locks found (held or waited for).\n"
           "# TYPE fairlock_locks gauge\nfairlock_locks %zu\n",
           set.count);
    found_free(&set);
    return 0;
}

int cli_metrics(int argc, char **argv) {
    const char *pattern = NULL, *url = NULL;
    int rc = parse_pattern_command("metrics", argc, argv, &pattern, &url, NULL);
    return rc >= 0 ? rc : cli_metrics_print(pattern, url);
}

/* ---------------------------------------------------------------------------
 * fairlock break
 * ------------------------------------------------------------------------- */

/* Asks on the terminal; returns 1 for yes. */
static int confirm(const char *question) {
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    char line[32];
    if (fgets(line, sizeof line, stdin) == NULL)
        return 0;
    return strcmp(line, "y\n") == 0 || strcmp(line, "yes\n") == 0 ||
           strcmp(line, "Y\n") == 0;
}

static void describe_holder(const fairlock_status *st, size_t i) {
    const fairlock_holder *h = fairlock_status_holder(st, i);
    const fairlock_identity *id = fairlock_status_holder_identity(st, i);
    char lease[32] = "no expiry", held[32];
    if (h->pttl_ms >= 0)
        cli_duration(lease, sizeof lease, h->pttl_ms);
    fputs("  token ", stderr);
    cli_put_text(stderr, h->token, strlen(h->token));
    fprintf(stderr, " (lease: %s%s)\n", lease, h->pttl_ms >= 0 ? " left" : "");
    if (id != NULL) {
        cli_duration(held, sizeof held, id->age_ms);
        fputs("  held by ", stderr);
        cli_put_identity(stderr, id);
        fprintf(stderr, " for %s\n", held);
    } else {
        fputs("  held by an unknown holder (it recorded no identity)\n",
              stderr);
    }
}

int cli_break(int argc, char **argv) {
    static const struct option longopts[] = {
        {"yes", no_argument, NULL, CLI_OPT_YES},
        {"token", required_argument, NULL, CLI_OPT_TOKEN},
        {"url", required_argument, NULL, 'u'},
        CLI_AUTH_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *name = NULL, *only = NULL;
    int yes = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "-:u:yh", longopts, NULL)) != -1) {
        switch (c) {
        case 1:
            if (name != NULL)
                return cli_usage_error("break", "unexpected argument '%s'",
                                       optarg);
            name = optarg;
            break;
        case 'y':
        case CLI_OPT_YES:
            yes = 1;
            break;
        case CLI_OPT_TOKEN:
            only = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'h':
            cli_help_command(stdout, "break");
            return 0;
        default: {
            int rc = cli_auth_option("break", c, optarg);
            if (rc == 0)
                return cli_getopt_error("break", c, argv);
            if (rc != 1)
                return rc;
        }
        }
    }
    for (; optind < argc; optind++) {
        if (name != NULL)
            return cli_usage_error("break", "unexpected argument '%s'",
                                   argv[optind]);
        name = argv[optind];
    }
    if (name == NULL)
        return cli_usage_error("break", "the lock name is missing");
    if (!yes && !isatty(STDIN_FILENO))
        return cli_usage_error("break",
                               "not on a terminal, so nobody can confirm: "
                               "give --yes to break without asking");
    int rc = cli_auth_finish("break", &url, 0);
    if (rc != 0)
        return rc;
    fairlock *lock = NULL;
    fairlock_status *st = NULL;
    if ((rc = cli_snapshot(name, url, -1, 0, &lock, &st)) != 0)
        return rc;
    fairlock_free(lock);
    lock = NULL;
    char shown[128];
    cli_text(shown, sizeof shown, name, strlen(name));
    size_t chosen = 0;
    for (size_t i = 0; i < st->holder_count; i++)
        chosen += only == NULL ||
                  strcmp(fairlock_status_holder(st, i)->token, only) == 0;
    if (chosen == 0) {
        cli_msg(only ? "%s: no holder has that token: nothing broken"
                     : "%s is not held: nothing to break",
                shown);
        fairlock_status_free(st);
        return CLI_EXIT_CONFLICT;
    }
    fprintf(stderr, "%s (%s) is held:\n", shown, kind_word(st->kind));
    for (size_t i = 0; i < st->holder_count; i++)
        if (only == NULL ||
            strcmp(fairlock_status_holder(st, i)->token, only) == 0)
            describe_holder(st, i);
    if (st->total_waiters > 0)
        fprintf(stderr, "%zu waiting; the next one gets it.\n",
                st->total_waiters);
    if (!yes && !confirm(chosen > 1 ? "Break these holds?" : "Break it?")) {
        cli_msg("%s: not broken", shown);
        fairlock_status_free(st);
        return CLI_EXIT_CONFLICT;
    }
    /* Release by the tokens shown, never "whoever holds it now": a holder
     * that changed meanwhile is not broken unseen. */
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = name;
    opts.url = url;
    cli_auth_apply(&opts);
    opts.kind = st->kind;
    opts.permits = st->kind == FAIRLOCK_KIND_SEMAPHORE ? st->permits : 0;
    rc = fairlock_create(&opts, &lock);
    size_t broken = 0, gone = 0;
    for (size_t i = 0; i < st->holder_count && rc == FAIRLOCK_OK; i++) {
        const char *token = fairlock_status_holder(st, i)->token;
        if (only != NULL && strcmp(token, only) != 0)
            continue;
        int r = fairlock_release_token(lock, token);
        if (r == FAIRLOCK_OK)
            broken++;
        else if (r == FAIRLOCK_NOTOWNED)
            gone++;
        else
            rc = r;
    }
    fairlock_status_free(st);
    if (rc != FAIRLOCK_OK) {
        cli_msg("break %s: %s", shown,
                lock ? fairlock_errmsg(lock) : fairlock_strerror(rc));
        fairlock_free(lock);
        return cli_exit_for(rc);
    }
    fairlock_free(lock);
    if (broken == 0) {
        cli_msg("%s: the holder let go (or its lease ended) before the "
                "break: nothing broken",
                shown);
        return CLI_EXIT_CONFLICT;
    }
    printf("broke %zu hold%s of %s", broken, broken == 1 ? "" : "s", shown);
    if (gone > 0)
        printf(" (%zu had let go already)", gone);
    fputc('\n', stdout);
    /* Who has it now: the next waiter, handed over by the same step. */
    if (cli_snapshot(name, url, -1, 0, &lock, &st) == 0) {
        const fairlock_identity *id = fairlock_status_holder_identity(st, 0);
        if (st->holder_count == 0)
            printf("now free\n");
        else if (id != NULL) {
            printf("now held by ");
            cli_put_identity(stdout, id);
            fputc('\n', stdout);
        } else {
            printf("now held by another holder\n");
        }
        fairlock_status_free(st);
        fairlock_free(lock);
    }
    return 0;
}
