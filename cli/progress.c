/* progress.c -- the live one-line status on a terminal while waiting.
 *
 *   fairlock: waiting for NAME: position 2 of 5, 12.4 s, held by pid 42 on h
 *
 * The line is redrawn in place (carriage return, then spaces over what is
 * left of the previous one, so no terminal capabilities are needed), at
 * most four times a second, from the acquire's interrupt callback.
 *
 * The queue is read through a second handle: the first one is inside
 * fairlock_acquire() on this very thread, and a handle serves one call at
 * a time.  That also means we cannot ask the first handle for its token,
 * so our own queue entry is found by elimination: it is one of the entries
 * that were not there before we joined, and it stays while we wait.  When
 * several processes joined at the same moment the position is shown as a
 * range until the others leave.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

#define REDRAW_MS 250
/* The status handle must not hold up the signal checks for long. */
#define STATUS_IO_TIMEOUT_MS 1000
#define MAX_LISTED 10000

struct cli_progress {
    fairlock *status; /* NULL without a queue (--no-fifo) or on error */
    char **before;    /* tokens present before our acquire */
    size_t before_count;
    char **mine; /* candidates for our own entry */
    size_t mine_count;
    int64_t start_ms, last_draw_ms;
    size_t drawn; /* columns of the line on screen */
    char name[96];
};

static void free_tokens(char **tokens, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(tokens[i]);
    free(tokens);
}

static int has_token(char *const *tokens, size_t count, const char *token) {
    for (size_t i = 0; i < count; i++)
        if (strcmp(tokens[i], token) == 0)
            return 1;
    return 0;
}

cli_progress *cli_progress_new(const cli_lock_opts *o) {
    if (o->quiet || !isatty(STDERR_FILENO))
        return NULL;
    cli_progress *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    cli_text(p->name, sizeof p->name, o->name, strlen(o->name));
    if (o->fifo) {
        fairlock_options opts;
        fairlock_options_init(&opts);
        opts.name = o->name;
        opts.url = o->url;
        cli_auth_apply(&opts);
        opts.io_timeout_ms = STATUS_IO_TIMEOUT_MS;
        if (fairlock_create(&opts, &p->status) != FAIRLOCK_OK) {
            fairlock_free(p->status);
            p->status = NULL;
        }
    }
    return p;
}

void cli_progress_begin(cli_progress *p) {
    if (p == NULL)
        return;
    p->start_ms = cli_now_ms();
    fairlock_status *st;
    if (p->status == NULL ||
        fairlock_status_get(p->status, MAX_LISTED, &st) != FAIRLOCK_OK)
        return;
    p->before = calloc(st->waiter_count + 1, sizeof *p->before);
    if (p->before != NULL) {
        for (size_t i = 0; i < st->waiter_count; i++)
            if ((p->before[p->before_count] = strdup(st->waiters[i].token)))
                p->before_count++;
    }
    fairlock_status_free(st);
}

/* Narrows the candidates for our entry with a new snapshot, and returns
 * the 1-based positions of the first and last one (0 when unknown). */
static void locate(cli_progress *p, const fairlock_status *st, size_t *first,
                   size_t *last) {
    *first = *last = 0;
    size_t kept = 0;
    for (size_t i = 0; i < p->mine_count; i++) {
        int present = 0;
        for (size_t j = 0; j < st->waiter_count && !present; j++)
            present = strcmp(p->mine[i], st->waiters[j].token) == 0;
        if (present)
            p->mine[kept++] = p->mine[i];
        else
            free(p->mine[i]);
    }
    p->mine_count = kept;
    if (p->mine_count == 0) {
        /* First look, or every candidate went (we were evicted and came
         * back with a new ticket): start again from the newcomers. */
        free(p->mine);
        p->mine = calloc(st->waiter_count + 1, sizeof *p->mine);
        if (p->mine == NULL)
            return;
        for (size_t j = 0; j < st->waiter_count; j++) {
            const char *token = st->waiters[j].token;
            if (!has_token(p->before, p->before_count, token) &&
                (p->mine[p->mine_count] = strdup(token)) != NULL)
                p->mine_count++;
        }
    }
    for (size_t j = 0; j < st->waiter_count; j++) {
        if (has_token(p->mine, p->mine_count, st->waiters[j].token)) {
            if (*first == 0)
                *first = j + 1;
            *last = j + 1;
        }
    }
}

static size_t terminal_width(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

static void draw(cli_progress *p, const char *text) {
    size_t len = strlen(text);
    size_t width = terminal_width();
    /* A line that wraps could no longer be redrawn with \r. */
    if (width > 1 && len > width - 1)
        len = width - 1;
    char line[512];
    size_t pad = p->drawn > len ? p->drawn - len : 0;
    if (len + pad + 2 > sizeof line)
        return;
    line[0] = '\r';
    memcpy(line + 1, text, len);
    memset(line + 1 + len, ' ', pad);
    size_t total = 1 + len + pad;
    if (pad > 0) /* back to the end of the text */
        line[total++] = '\r';
    if (pad > 0) {
        memcpy(line + total, text, len);
        total += len;
    }
    ssize_t n = write(STDERR_FILENO, line, total);
    (void)n;
    p->drawn = len;
}

void cli_progress_tick(cli_progress *p) {
    if (p == NULL)
        return;
    int64_t now = cli_now_ms();
    if (p->last_draw_ms != 0 && now - p->last_draw_ms < REDRAW_MS)
        return;
    p->last_draw_ms = now;
    char waited[32], where[64] = "", holder[128] = "";
    cli_duration(waited, sizeof waited, now - p->start_ms);
    fairlock_status *st;
    if (p->status != NULL &&
        fairlock_status_get(p->status, MAX_LISTED, &st) == FAIRLOCK_OK) {
        size_t first, last;
        locate(p, st, &first, &last);
        if (first != 0 && first == last)
            snprintf(where, sizeof where, ": position %zu of %zu", first,
                     st->total_waiters);
        else if (first != 0)
            snprintf(where, sizeof where, ": position %zu-%zu of %zu", first,
                     last, st->total_waiters);
        /* Who we wait for, when it recorded that: the first thing an
         * operator asks. */
        const fairlock_identity *id = fairlock_status_holder_identity(st, 0);
        if (id != NULL) {
            char host[72];
            cli_text(host, sizeof host, id->host, strlen(id->host));
            snprintf(holder, sizeof holder, ", held by pid %lld on %s",
                     (long long)id->pid, host);
        }
        fairlock_status_free(st);
    }
    char text[384];
    snprintf(text, sizeof text, "fairlock: waiting for %s%s, %s%s", p->name,
             where, waited, holder);
    draw(p, text);
}

void cli_progress_end(cli_progress *p) {
    if (p == NULL || p->drawn == 0)
        return;
    char line[512];
    size_t n = p->drawn < sizeof line - 2 ? p->drawn : sizeof line - 2;
    line[0] = '\r';
    memset(line + 1, ' ', n);
    line[n + 1] = '\r';
    ssize_t w = write(STDERR_FILENO, line, n + 2);
    (void)w;
    p->drawn = 0;
}

void cli_progress_free(cli_progress *p) {
    if (p == NULL)
        return;
    fairlock_free(p->status);
    free_tokens(p->before, p->before_count);
    free_tokens(p->mine, p->mine_count);
    free(p);
}
