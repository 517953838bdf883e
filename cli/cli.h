/* cli.h -- what the files of the fairlock command share.
 *
 * The command is a client of the public API only (fairlock.h), as curl's
 * tool is of libcurl: nothing here reaches into src/.
 */
#ifndef FAIRLOCK_CLI_H
#define FAIRLOCK_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "fairlock.h"

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* ---- Exit statuses (documented in --help and fairlock(1)). ----
 * Our own failures use the sysexits(3) numbers, as flock(1) does, so that
 * they rarely collide with the small numbers commands exit with; the
 * command's own status is passed through unchanged. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_CONFLICT = 1,     /* default of -E: taken, or timed out */
    CLI_EXIT_USAGE = 64,       /* EX_USAGE: bad command line */
    CLI_EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: Redis unreachable/failing */
    CLI_EXIT_SOFTWARE = 70,    /* EX_SOFTWARE: unexpected library result */
    CLI_EXIT_OSERR = 71,       /* EX_OSERR: fork, pipe, memory, output */
    CLI_EXIT_LOST = 75,        /* EX_TEMPFAIL: the lease was lost */
    CLI_EXIT_NOEXEC = 126,     /* command found but not executable */
    CLI_EXIT_NOTFOUND = 127,   /* command not found */
    CLI_EXIT_SIGNAL = 128      /* + signal number */
};

/* ---- Commands (one file each). argv[0] is the command's name. ---- */
int cli_run(int argc, char **argv);
int cli_acquire(int argc, char **argv);
int cli_release(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_metrics(int argc, char **argv);
int cli_break(int argc, char **argv);

/* ---- Snapshots (status.c), shared by list, metrics and break. ---- */

/* Takes the status of `name`: kind a fairlock_kind (permits: a
 * semaphore's N, any when unknown), or -1 to look at the mutex and then
 * the other kinds.  Returns 0 with the handle and the snapshot, or an exit
 * status after a message. */
int cli_snapshot(const char *name, const char *url, int kind, int64_t permits,
                 fairlock **lock_out, fairlock_status **st_out);
void cli_print_status_text(const char *name, const fairlock_status *st,
                           int full);
void cli_print_status_json(const char *name, const fairlock_status *st);
/* "pid 123 on host: label", or "-" for NULL, escaped for a terminal. */
void cli_put_identity(FILE *out, const fairlock_identity *id);
/* The Prometheus text of every lock matching pattern (NULL: all). */
int cli_metrics_print(const char *pattern, const char *url);

/* ---- Help texts (help.c). ---- */
void cli_help_main(FILE *out);
/* Prints the help of `command`; returns 0, or -1 if there is no such
 * command. */
int cli_help_command(FILE *out, const char *command);
void cli_version(FILE *out);

/* ---- Messages and escaping (output.c). ---- */

/* "fairlock: <text>\n" on stderr. */
void cli_msg(const char *fmt, ...) CLI_PRINTF(1, 2);
/* "fairlock CMD: <text> (see 'fairlock CMD --help')\n" on stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...) CLI_PRINTF(2, 3);
/* Writes s[0..len) for a human: valid UTF-8 as is, control characters and
 * invalid bytes as \xNN, so that a lock name or a foreign token cannot
 * drive the terminal. */
void cli_put_text(FILE *out, const char *s, size_t len);
/* The same into buf (always NUL-terminated), cut at a character boundary
 * when it does not fit; returns the number of bytes written. */
size_t cli_text(char *buf, size_t size, const char *s, size_t len);
/* Writes s[0..len) as a JSON string with its quotes.  Bytes that are not
 * UTF-8 are written as \u00NN (their Latin-1 reading). */
void cli_put_json_string(FILE *out, const char *s, size_t len);
/* Exit status for a failed library call that is not a conflict. */
int cli_exit_for(int code);
/* A duration for humans: "2.5 s", "42 s", "3m07s", "2h05m". */
void cli_duration(char *buf, size_t size, int64_t ms);

/* ---- Option and number parsing (args.c). ---- */

/* Options of commands that take the lock (run, acquire). */
typedef struct cli_lock_opts {
    const char *command; /* "run" or "acquire", for messages */
    const char *name;
    const char *url;   /* NULL: the library's default */
    int64_t wait_ms;   /* FAIRLOCK_FOREVER: wait for ever */
    int nonblock;      /* -n */
    int conflict_exit; /* -E */
    int64_t ttl_ms;    /* FAIRLOCK_FOREVER: no expiry */
    int fifo;          /* 0 with --no-fifo */
    int64_t stale_ms;  /* FAIRLOCK_DEFAULT: the library's */
    int fencing;       /* --fencing */
    int no_identity;   /* --no-identity: record no holder/waiter identity */
    const char *label; /* --label TEXT: the identity's label, as given */
    const char *child; /* run: the command's argv[0], for the label */
    int kind;          /* FAIRLOCK_KIND_*: --permits, -s or -x */
    int64_t permits;   /* --permits N */
    int shared;        /* -s */
    int quiet, verbose;
    /* run only */
    int on_lost;           /* CLI_ON_LOST_* */
    int64_t kill_after_ms; /* after the on-lost SIGTERM */
} cli_lock_opts;

enum { CLI_ON_LOST_TERM, CLI_ON_LOST_KILL, CLI_ON_LOST_IGNORE };

/* Parses a number of seconds ("5", "0.25", ".5"; no sign, no exponent)
 * into milliseconds, rounded up.  Returns 0, or -1 if it is not one. */
int cli_parse_seconds(const char *text, int64_t *ms);
/* Parses an exit status 0..255.  Returns 0 or -1. */
int cli_parse_exit_code(const char *text, int *code);
/* Reports a getopt_long() failure ('?' or ':'); returns CLI_EXIT_USAGE.
 * argv and optind are those getopt_long() just used. */
int cli_getopt_error(const char *command, int c, char *const *argv);

/* Long-only option values shared by run and acquire. */
enum {
    CLI_OPT_TTL = 256,
    CLI_OPT_NO_FIFO,
    CLI_OPT_STALE,
    CLI_OPT_FENCING,
    CLI_OPT_ON_LOST,
    CLI_OPT_KILL_AFTER,
    CLI_OPT_JSON,
    CLI_OPT_USER,
    CLI_OPT_PASSWORD_FILE,
    CLI_OPT_SENTINEL_USER,
    CLI_OPT_SENTINEL_PASSWORD_FILE,
    CLI_OPT_TLS,
    CLI_OPT_CACERT,
    CLI_OPT_CACERTDIR,
    CLI_OPT_CERT,
    CLI_OPT_KEY,
    CLI_OPT_SNI,
    CLI_OPT_INSECURE,
    CLI_OPT_SENTINEL,
    CLI_OPT_CLUSTER,
    CLI_OPT_HASH_TAG,
    CLI_OPT_PERMITS,
    CLI_OPT_NO_IDENTITY,
    CLI_OPT_WATCH,
    CLI_OPT_FORMAT,
    CLI_OPT_INTERVAL,
    CLI_OPT_YES,
    CLI_OPT_TOKEN,
    CLI_OPT_LABEL
};

/* The options that choose the kind of lock, for run's and acquire's
 * tables ("s" and "x" go into their short option strings). */
#define CLI_KIND_LONGOPTS                                                      \
    {"permits", required_argument, NULL, CLI_OPT_PERMITS},                     \
        {"shared", no_argument, NULL, 's'}, {                                  \
        "exclusive", no_argument, NULL, 'x'                                    \
    }

/* Sets the defaults of run (renewed 30 s lease) or acquire (no expiry). */
void cli_lock_opts_init(cli_lock_opts *o, const char *command);
/* Applies one option shared by run and acquire.  Returns 1 if it was one
 * (and valid), 0 if it is not shared, or CLI_EXIT_USAGE after a message. */
int cli_lock_option(cli_lock_opts *o, int c, const char *arg);
/* Checks combinations once all options are read and settles the
 * credentials (cli_auth_finish): 0, or an exit status after a message. */
int cli_lock_opts_check(cli_lock_opts *o);

/* ---- Credentials (auth.c). ---- */

/* The long options every command that connects takes: credentials, and
 * TLS as redis-cli spells it. */
#define CLI_AUTH_LONGOPTS                                                      \
    {"user", required_argument, NULL, CLI_OPT_USER},                           \
        {"password-file", required_argument, NULL, CLI_OPT_PASSWORD_FILE},     \
        {"sentinel-user", required_argument, NULL, CLI_OPT_SENTINEL_USER},     \
        {"sentinel-password-file", required_argument, NULL,                    \
         CLI_OPT_SENTINEL_PASSWORD_FILE},                                      \
        {"tls", no_argument, NULL, CLI_OPT_TLS},                               \
        {"cacert", required_argument, NULL, CLI_OPT_CACERT},                   \
        {"cacertdir", required_argument, NULL, CLI_OPT_CACERTDIR},             \
        {"cert", required_argument, NULL, CLI_OPT_CERT},                       \
        {"key", required_argument, NULL, CLI_OPT_KEY},                         \
        {"sni", required_argument, NULL, CLI_OPT_SNI}, {                       \
        "insecure", no_argument, NULL, CLI_OPT_INSECURE                        \
    }

/* Applies one credential or TLS option.  Returns 1 if it was one (and
 * valid), 0 if it is not one, or CLI_EXIT_USAGE after a message. */
int cli_auth_option(const char *command, int c, const char *arg);
/* Once the options are read: when *url (from -u, pointing into argv)
 * holds a password, points *url at a copy and overwrites the password in
 * argv, with a warning unless `quiet`; then reads the password files or
 * $FAIRLOCK_PASSWORD / $FAIRLOCK_SENTINEL_PASSWORD.  Returns 0, or an
 * exit status after a message. */
int cli_auth_finish(const char *command, const char **url, int quiet);
/* Sets the credential and TLS fields of *opts (NULL or 0 where none were
 * given), and turns identity on, without a label (cli_lock_create sets
 * the label of the commands that record one). */
void cli_auth_apply(fairlock_options *opts);
/* The identity label of a command that takes the lock: --label's text as
 * given, else "COMMAND NAME", with " -- PROGRAM" for run (the base name
 * of the command's argv[0], none of its arguments: those may carry
 * secrets).  At most FAIRLOCK_LABEL_MAX bytes, with every password read
 * from a file or the environment starred out.  Static storage. */
const char *cli_identity_label(const cli_lock_opts *o);
/* Whether an environment entry ("NAME=value") is one of the password
 * variables, which the command under the lock does not inherit. */
int cli_auth_is_secret_var(const char *entry);

/* `fairlock acl` (acl.c). */
int cli_acl(int argc, char **argv);

/* ---- Signals (signals.c). ----
 * Handlers for the signals the command cares about write one byte per
 * signal to a self-pipe, which the main loop polls; the renewal thread's
 * lost notice goes through the same pipe. */

#define CLI_EVENT_LOST 0x7f     /* the lease was lost */
#define CLI_EVENT_TERMINAL 0x80 /* or'ed in: sent by the kernel (a tty) */

/* Installs the handlers and makes the pipe.  Returns 0 or -1 (errno). */
int cli_signals_init(void);
/* Read end of the pipe (non-blocking). */
int cli_signals_fd(void);
/* The first of SIGINT, SIGTERM, SIGHUP, SIGQUIT received, or 0. */
int cli_signal_pending(void);
/* Reads one event: a signal number (maybe | CLI_EVENT_TERMINAL) or
 * CLI_EVENT_LOST; returns 0 when there is none. */
int cli_signals_next(void);
/* Discards events read so far (those that came before the command ran). */
void cli_signals_drain(void);
/* Async-signal-safe: queues CLI_EVENT_LOST (called on the renewal
 * thread). */
void cli_signals_notify_lost(void);
/* Blocks every signal; the old mask goes to *old. */
void cli_signals_block(sigset_t *old);
void cli_signals_restore(const sigset_t *old);
/* In a forked child, before exec: the dispositions fairlock started with,
 * then the mask `old`.  Async-signal-safe. */
void cli_signals_child(const sigset_t *old);
/* Whether `sig` is one that run forwards to the command. */
int cli_signal_forwarded(int sig);

/* ---- Running the command (spawn.c). ---- */

typedef struct cli_command {
    char *path;     /* as found in PATH (allocated) */
    char **argv;    /* borrowed from main */
    char **sh_argv; /* for a script without #!: sh PATH ARGS... */
    char **envp;    /* built by cli_command_env */
    char *own[6];   /* the FAIRLOCK_* entries of envp */
    size_t own_count;
} cli_command;

/* Remembers the file descriptors open at start, which the command
 * inherits; those opened later (Redis connections) are not passed on. */
void cli_fds_remember(void);
/* Looks argv[0] up as execvp(3) would.  Returns 0, or an errno value:
 * ENOENT (127) or EACCES (126) and others. */
int cli_command_find(cli_command *cmd, char **argv);
/* Builds the command's environment: ours plus the lock's identity (with
 * FAIRLOCK_PERMIT for a semaphore, FAIRLOCK_MODE for a readers-writer
 * lock). */
int cli_command_env(cli_command *cmd, const fairlock *lock,
                    const cli_lock_opts *o);
void cli_command_free(cli_command *cmd);
/* Forks and execs.  Returns the pid, or -1 with *err set to the errno of
 * fork or exec (the failed child is reaped).  deathsig (or 0) is sent to
 * the command if fairlock dies first. */
pid_t cli_command_spawn(const cli_command *cmd, int deathsig, int *err);

/* ---- Taking the lock (wait.c). ---- */

/* Creates the handle from the options (with renewal for run's finite
 * lease, whose loss is queued as CLI_EVENT_LOST).  Returns 0, or an exit
 * status after a message. */
int cli_lock_create(const cli_lock_opts *o, fairlock **out);
/* Waits for the lock: reacts to SIGINT/SIGTERM/SIGHUP/SIGQUIT by leaving
 * the queue, and shows the live status line on a terminal.  Returns
 * CLI_HELD, or an exit status (after a message) -- which may be 0, as
 * with -E 0. */
#define CLI_HELD (-1)
int cli_lock_wait(const cli_lock_opts *o, fairlock *lock);

/* ---- The live status line (progress.c). ---- */

typedef struct cli_progress cli_progress;
/* NULL unless stderr is a terminal and the line is wanted. */
cli_progress *cli_progress_new(const cli_lock_opts *o);
/* Before the acquire: notes who is queued already. */
void cli_progress_begin(cli_progress *p);
/* While waiting (from the interrupt callback): redraws, at most ~4/s. */
void cli_progress_tick(cli_progress *p);
/* Erases the line. */
void cli_progress_end(cli_progress *p);
void cli_progress_free(cli_progress *p);

/* CLOCK_MONOTONIC in milliseconds (output.c). */
int64_t cli_now_ms(void);

#endif
