/* run.c -- `fairlock run`: hold the lock while a command runs.
 *
 * Wait for the lock, start the command, forward signals to it, watch the
 * lease (the library renews it on its own thread and tells us when it is
 * lost), and release the lock when the command ends, passing its exit
 * status on.  Every path out after the grant goes through the release.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* The poll timeout when nothing is due: a safety net for an event the
 * self-pipe dropped (it never should). */
#define IDLE_POLL_MS 1000

static const struct option longopts[] = {
    {"wait", required_argument, NULL, 'w'},
    {"timeout", required_argument, NULL, 'w'},
    {"nonblock", no_argument, NULL, 'n'},
    {"conflict-exit-code", required_argument, NULL, 'E'},
    {"ttl", required_argument, NULL, CLI_OPT_TTL},
    {"no-fifo", no_argument, NULL, CLI_OPT_NO_FIFO},
    {"stale", required_argument, NULL, CLI_OPT_STALE},
    {"fencing", no_argument, NULL, CLI_OPT_FENCING},
    {"no-identity", no_argument, NULL, CLI_OPT_NO_IDENTITY},
    {"label", required_argument, NULL, CLI_OPT_LABEL},
    CLI_KIND_LONGOPTS,
    {"on-lost", required_argument, NULL, CLI_OPT_ON_LOST},
    {"kill-after", required_argument, NULL, CLI_OPT_KILL_AFTER},
    {"url", required_argument, NULL, 'u'},
    CLI_AUTH_LONGOPTS,
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static const char *const policy_names[] = {"term", "kill", "ignore"};

/* Parses `run [OPTIONS] NAME -- COMMAND...`.  Returns -1 to go on, or an
 * exit status (0 after --help). */
static int parse(int argc, char **argv, cli_lock_opts *o, char ***command) {
    /* The first "--" ends fairlock's part; getopt never sees what follows,
     * so the command's own options cannot be taken for ours. */
    int dashes = 1;
    while (dashes < argc && strcmp(argv[dashes], "--") != 0)
        dashes++;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(dashes, argv, "-:w:nE:u:sxqvh", longopts, NULL)) !=
           -1) {
        if (c == 1) {
            if (o->name != NULL && dashes == argc)
                return cli_usage_error("run", "missing '--' between the lock "
                                              "name and the command");
            if (o->name != NULL)
                return cli_usage_error(
                    "run", "unexpected argument '%s' before '--'", optarg);
            o->name = optarg;
            continue;
        }
        if (c == 'h') {
            cli_help_command(stdout, "run");
            return 0;
        }
        if (c == CLI_OPT_ON_LOST) {
            size_t i = 0;
            while (i < 3 && strcmp(optarg, policy_names[i]) != 0)
                i++;
            if (i == 3)
                return cli_usage_error("run",
                                       "--on-lost: '%s' is not one of term, "
                                       "kill, ignore",
                                       optarg);
            o->on_lost = (int)i;
            continue;
        }
        if (c == CLI_OPT_KILL_AFTER) {
            if (cli_parse_seconds(optarg, &o->kill_after_ms) != 0)
                return cli_usage_error("run",
                                       "--kill-after: '%s' is not a number "
                                       "of seconds",
                                       optarg);
            continue;
        }
        int rc = cli_lock_option(o, c, optarg);
        if (rc == CLI_EXIT_USAGE)
            return rc;
        if (rc == 0)
            return cli_getopt_error("run", c, argv);
    }
    if (o->name == NULL)
        return cli_usage_error("run", "the lock name is missing");
    if (dashes == argc)
        return cli_usage_error("run", "missing '--' before the command");
    if (dashes + 1 == argc)
        return cli_usage_error("run", "the command after '--' is missing");
    *command = argv + dashes + 1;
    o->child = (*command)[0];
    int rc = cli_lock_opts_check(o);
    return rc ? rc : -1;
}

/* What happened while the command ran. */
typedef struct run_state {
    const cli_lock_opts *o;
    const char *name; /* for messages */
    pid_t pid;
    int reaped;
    int code;           /* its exit status, as a shell reports it */
    int lost;           /* the lease was lost */
    int64_t kill_at_ms; /* SIGKILL due (after the on-lost SIGTERM), or 0 */
} run_state;

static void lease_lost(run_state *s) {
    if (s->lost)
        return;
    s->lost = 1;
    switch (s->o->on_lost) {
    case CLI_ON_LOST_TERM:
        cli_msg("%s: lease lost while the command runs; sending it SIGTERM "
                "(--on-lost=term)",
                s->name);
        kill(s->pid, SIGTERM);
        if (s->o->kill_after_ms > 0)
            s->kill_at_ms = cli_now_ms() + s->o->kill_after_ms;
        break;
    case CLI_ON_LOST_KILL:
        cli_msg("%s: lease lost while the command runs; killing it "
                "(--on-lost=kill)",
                s->name);
        kill(s->pid, SIGKILL);
        break;
    default:
        cli_msg("%s: lease lost while the command runs; letting it finish "
                "(--on-lost=ignore)",
                s->name);
        break;
    }
}

static void handle_event(run_state *s, int event) {
    if (event == CLI_EVENT_LOST) {
        lease_lost(s);
        return;
    }
    int sig = event & ~CLI_EVENT_TERMINAL;
    if (sig == SIGCHLD || !cli_signal_forwarded(sig))
        return;
    /* The terminal sent it to the whole foreground process group, the
     * command included: forwarding it would deliver it twice. */
    if (event & CLI_EVENT_TERMINAL)
        return;
    if (s->o->verbose)
        cli_msg("%s: forwarding signal %d to the command", s->name, sig);
    kill(s->pid, sig);
}

/* Exit status of the command as a shell reports it. */
static int command_status(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return CLI_EXIT_SIGNAL + WTERMSIG(status);
    return CLI_EXIT_SOFTWARE;
}

static void supervise(run_state *s, fairlock *lock) {
    struct pollfd pfd = {cli_signals_fd(), POLLIN, 0};
    while (!s->reaped) {
        int status;
        pid_t got = waitpid(s->pid, &status, WNOHANG);
        if (got == s->pid) {
            s->code = command_status(status);
            s->reaped = 1;
            break;
        }
        if (got < 0 && errno != EINTR) {
            /* Cannot happen for our own child; do not spin on it. */
            cli_msg("%s: cannot wait for the command: %s", s->name,
                    strerror(errno));
            s->code = CLI_EXIT_SOFTWARE;
            s->reaped = 1;
            break;
        }
        /* The pipe may have dropped the notice; the state never lies. */
        if (!s->lost && fairlock_state(lock) == FAIRLOCK_STATE_LOST)
            lease_lost(s);
        int timeout = IDLE_POLL_MS;
        if (s->kill_at_ms != 0) {
            int64_t left = s->kill_at_ms - cli_now_ms();
            if (left <= 0) {
                char after[32];
                cli_duration(after, sizeof after, s->o->kill_after_ms);
                cli_msg("%s: the command is still running %s after SIGTERM; "
                        "killing it",
                        s->name, after);
                kill(s->pid, SIGKILL);
                s->kill_at_ms = 0;
                continue;
            }
            if (left < timeout)
                timeout = (int)left;
        }
        if (poll(&pfd, 1, timeout) > 0) {
            int event;
            while ((event = cli_signals_next()) != 0)
                handle_event(s, event);
        }
    }
}

/* Releases after the command ended; returns the exit status. */
static int finish(run_state *s, fairlock *lock, int status) {
    int rc = fairlock_release(lock);
    if (rc == FAIRLOCK_NOTOWNED || s->lost) {
        /* Lost without a notice: the key vanished while no renewal was
         * due, or there is no renewal (--ttl 0). */
        if (!s->lost)
            cli_msg("%s: lease lost while the command ran (%s)", s->name,
                    fairlock_errmsg(lock));
        cli_msg("%s: the command ended with status %d; exiting with %d "
                "for the lost lease",
                s->name, status, CLI_EXIT_LOST);
        return CLI_EXIT_LOST;
    }
    if (rc != FAIRLOCK_OK) {
        /* The command did its work under the lock; only the hand-over
         * failed, and the lease will end the grant. */
        cli_msg("%s: could not release the lock: %s; it is freed when its "
                "lease runs out",
                s->name, fairlock_errmsg(lock));
    } else if (s->o->verbose) {
        cli_msg("%s: released; the command exited with status %d", s->name,
                status);
    }
    return status;
}

static int exec_failure(const char *file, int err) {
    char shown[256];
    cli_text(shown, sizeof shown, file, strlen(file));
    if (err == ENOENT) {
        cli_msg("%s: command not found", shown);
        return CLI_EXIT_NOTFOUND;
    }
    if (err == EACCES || err == ENOEXEC || err == EISDIR) {
        cli_msg("%s: cannot execute: %s", shown, strerror(err));
        return CLI_EXIT_NOEXEC;
    }
    cli_msg("%s: cannot run: %s", shown, strerror(err));
    return err == ENOMEM || err == EAGAIN ? CLI_EXIT_OSERR : CLI_EXIT_NOEXEC;
}

int cli_run(int argc, char **argv) {
    cli_lock_opts o;
    cli_lock_opts_init(&o, "run");
    char **argv_cmd = NULL;
    int rc = parse(argc, argv, &o, &argv_cmd);
    if (rc >= 0)
        return rc;
    char name[128];
    cli_text(name, sizeof name, o.name, strlen(o.name));

    /* Before the wait: nobody should queue for an hour to learn of a
     * typo.  exec uses the path found here, so the check and the run
     * agree. */
    cli_command cmd;
    int err = cli_command_find(&cmd, argv_cmd);
    fairlock *lock = NULL;
    if (err != 0) {
        rc = exec_failure(argv_cmd[0], err);
        goto done;
    }
    cli_fds_remember();
    if (cli_signals_init() != 0) {
        cli_msg("cannot set up signal handling: %s", strerror(errno));
        rc = CLI_EXIT_OSERR;
        goto done;
    }
    if ((rc = cli_lock_create(&o, &lock)) != 0)
        goto done;
    if ((rc = cli_lock_wait(&o, lock)) != CLI_HELD)
        goto done; /* not held: nothing to release */

    /* Signals that came while waiting are not the command's business;
     * one that would have ended the wait ends the run before it starts. */
    cli_signals_drain();
    if (cli_signal_pending()) {
        rc = CLI_EXIT_SIGNAL + cli_signal_pending();
        fairlock_release(lock);
        goto done;
    }
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    s.name = name;
    int deathsig = o.on_lost == CLI_ON_LOST_KILL   ? SIGKILL
                   : o.on_lost == CLI_ON_LOST_TERM ? SIGTERM
                                                   : 0;
    if ((err = cli_command_env(&cmd, lock, &o)) == 0)
        s.pid = cli_command_spawn(&cmd, deathsig, &err);
    if (err != 0) {
        rc = exec_failure(argv_cmd[0], err);
        fairlock_release(lock);
        goto done;
    }
    supervise(&s, lock);
    rc = finish(&s, lock, s.code);
done:
    fairlock_free(lock);
    cli_command_free(&cmd);
    return rc;
}
