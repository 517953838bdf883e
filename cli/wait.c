/* wait.c -- make the lock handle from the options and wait for the lock.
 *
 * Shared by run and acquire.  While it waits, fairlock_acquire() polls our
 * interrupt callback (every interrupt_check_ms and after every wake-up):
 * that is where a SIGINT/SIGTERM/SIGHUP/SIGQUIT makes the library leave
 * the queue, and where the live status line is redrawn.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

/* How often a waiter checks for signals: the delay between ^C and a
 * clean exit.  Each check is one short BLPOP round trip. */
#define INTERRUPT_CHECK_MS 100

/* The callback's state.  One wait at a time per process. */
static struct { cli_progress *progress; } waiting;

static int on_interrupt(void *arg) {
    (void)arg;
    if (cli_signal_pending())
        return 1;
    cli_progress_tick(waiting.progress);
    return cli_signal_pending() != 0;
}

/* Runs on the library's renewal thread: it only queues an event for the
 * main loop, which prints the notice and applies --on-lost. */
static void on_lost(fairlock *lock, void *arg) {
    (void)lock;
    (void)arg;
    cli_signals_notify_lost();
}

int cli_lock_create(const cli_lock_opts *o, fairlock **out) {
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = o->name;
    opts.url = o->url;
    cli_auth_apply(&opts);
    opts.identity_label = cli_identity_label(o);
    if (o->no_identity)
        opts.identity = 0;
    opts.blocking = !o->nonblock;
    opts.timeout_ms = o->wait_ms;
    /* Always explicit: the library's default (the lease is the wait
     * timeout, as in the reference) would make `-w 5` a 5 s lease. */
    opts.ttl_ms = o->ttl_ms;
    opts.fifo = o->fifo;
    opts.stale_timeout_ms = o->stale_ms;
    opts.fencing = o->fencing;
    opts.kind = o->kind;
    opts.permits = o->permits;
    opts.shared = o->shared;
    opts.interrupt = on_interrupt;
    opts.interrupt_check_ms = INTERRUPT_CHECK_MS;
    if (strcmp(o->command, "run") == 0 && o->ttl_ms != FAIRLOCK_FOREVER) {
        opts.auto_renew = 1;
        opts.on_lost = on_lost;
    }
    fairlock *lock = NULL;
    int rc = fairlock_create(&opts, &lock);
    if (rc != FAIRLOCK_OK) {
        if (lock != NULL)
            cli_msg("%s", fairlock_errmsg(lock));
        else
            cli_msg("%s", fairlock_strerror(rc));
        fairlock_free(lock);
        return cli_exit_for(rc);
    }
    *out = lock;
    return 0;
}

int cli_lock_wait(const cli_lock_opts *o, fairlock *lock) {
    char name[128], took[32];
    cli_text(name, sizeof name, o->name, strlen(o->name));
    if (cli_signal_pending())
        return CLI_EXIT_SIGNAL + cli_signal_pending();
    if (o->verbose)
        cli_msg("%s: acquiring the lock", name);
    waiting.progress = cli_progress_new(o);
    cli_progress_begin(waiting.progress);
    int64_t start = cli_now_ms();
    int rc = fairlock_acquire(lock);
    cli_duration(took, sizeof took, cli_now_ms() - start);
    cli_progress_end(waiting.progress);
    cli_progress_free(waiting.progress);
    waiting.progress = NULL;

    switch (rc) {
    case FAIRLOCK_OK:
        if (o->verbose) {
            const char *token = fairlock_token(lock);
            cli_msg("%s: acquired after %s (ticket %" PRId64 ", fence %" PRId64
                    ", token %s)",
                    name, took, fairlock_ticket(lock), fairlock_fence(lock),
                    token ? token : "?");
        }
        return CLI_HELD;
    case FAIRLOCK_TIMEOUT:
        if (!o->quiet) {
            if (o->nonblock || o->wait_ms == 0)
                cli_msg("%s: the lock is held by someone else", name);
            else
                cli_msg("%s: not acquired within %s", name, took);
        }
        return o->conflict_exit;
    case FAIRLOCK_INTERRUPTED:
        /* The library has left the queue already. */
        if (o->verbose)
            cli_msg("%s: interrupted by signal %d while waiting; left the "
                    "queue",
                    name, cli_signal_pending());
        return CLI_EXIT_SIGNAL + cli_signal_pending();
    default:
        cli_msg("%s: %s", name, fairlock_errmsg(lock));
        return cli_exit_for(rc);
    }
}
