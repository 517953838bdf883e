/* help.c -- the texts of --help and --version (fairlock(1) says more). */
#include <string.h>

#include "cli.h"

static const char exit_status_text[] =
    "Exit status:\n"
    "  0       success; run passes the command's own status through\n"
    "  1       the lock is taken (-n) or the wait timed out (-w); change it\n"
    "          with -E.  release: the token does not hold the lock.  break:\n"
    "          nothing was held, the answer was no, or the holder let go\n"
    "          first\n"
    "  64      usage error: unknown option, bad number, missing '--'\n"
    "  69      Redis unreachable or failing\n"
    "  70      internal error\n"
    "  71      system error: fork, pipe, memory, output\n"
    "  75      the lease was lost while the command ran (also after\n"
    "          another user's `fairlock break`)\n"
    "  126     the command was found but cannot be executed\n"
    "  127     the command was not found\n"
    "  128+N   fairlock or the command was ended by signal N\n";

static const char url_text[] =
    "Redis: -u/--url URL, else $FAIRLOCK_URL, else $REDIS_URL, else\n"
    "redis://127.0.0.1:6379/0.  URLs: redis://[[USER]:PASS@]HOST[:PORT][/DB]\n"
    "(rediss:// over TLS) or unix:///PATH.sock[?db=N].\n"
    "Password: --password-file FILE (readable by its owner only), else\n"
    "$FAIRLOCK_PASSWORD, else the URL's (wiped from the process's arguments,\n"
    "with a warning).  --user NAME: the ACL user.  Sentinels: "
    "--sentinel-user,\n"
    "--sentinel-password-file, $FAIRLOCK_SENTINEL_PASSWORD.  COMMAND does not\n"
    "inherit the password variables.\n"
    "TLS: a rediss:// URL or --tls; --cacert FILE, --cacertdir DIR (trusted\n"
    "CAs; default: the system's), --cert FILE --key FILE (client "
    "certificate),\n"
    "--sni NAME (name sent and checked; default: the host), --insecure (no\n"
    "certificate check).\n";

void cli_help_main(FILE *out) {
    fputs("Usage: fairlock COMMAND [OPTIONS] ...\n"
          "FIFO-fair distributed locks on Redis: flock(1) for many "
          "machines.\n"
          "\n"
          "Commands:\n"
          "  run [OPTIONS] NAME -- COMMAND [ARGS...]\n"
          "                 wait for the lock, run COMMAND while holding it\n"
          "  acquire [OPTIONS] NAME\n"
          "                 take the lock, print its token, leave it held\n"
          "  release [OPTIONS] NAME TOKEN\n"
          "                 release a lock taken with acquire\n"
          "  status [--json] [-l] [--watch] [-u URL] NAME\n"
          "                 show the holder and the queue, and who they are\n"
          "  list [--json] [PATTERN]\n"
          "                 the locks that are held or waited for\n"
          "  metrics [PATTERN]\n"
          "                 the same as Prometheus metrics (text format)\n"
          "  break [--yes] NAME\n"
          "                 release whoever holds NAME; the next waiter gets "
          "it\n"
          "  acl [OPTIONS] PREFIX\n"
          "                 print the Redis ACL for locks named PREFIX...\n"
          "  help [COMMAND] this text, or the options of COMMAND\n"
          "  version        the versions of fairlock and libfairlock\n"
          "\n",
          out);
    fputs(url_text, out);
    fputc('\n', out);
    fputs(exit_status_text, out);
    fputs("\nSee fairlock(1) for more.\n", out);
}

static const char run_text[] =
    "Usage: fairlock run [OPTIONS] NAME -- COMMAND [ARGS...]\n"
    "Wait for the lock NAME (first come, first served), run COMMAND while\n"
    "holding it, release it when COMMAND ends, and exit with COMMAND's\n"
    "status (128+N when signal N ended it).\n"
    "\n"
    "  -w, --wait SECONDS     give up after waiting this long (fractions\n"
    "                         allowed; default: wait for ever)\n"
    "  -n, --nonblock         give up at once if the lock is taken\n"
    "  -E, --conflict-exit-code N\n"
    "                         exit status when giving up (default 1)\n"
    "      --ttl SECONDS      lease, renewed every third of it while COMMAND\n"
    "                         runs (default 30; 0: no expiry, no renewal)\n"
    "      --on-lost POLICY   if the lease is lost anyway: term (SIGTERM,\n"
    "                         then SIGKILL after --kill-after; the default),\n"
    "                         kill, or ignore (let COMMAND finish)\n"
    "      --kill-after SECONDS\n"
    "                         grace after the on-lost SIGTERM (default 10;\n"
    "                         0: none)\n"
    "      --stale SECONDS    evict a waiter silent this long (default: the\n"
    "                         --wait time, else 10)\n"
    "      --no-fifo          do not queue: whoever asks when the lock is\n"
    "                         free gets it\n"
    "      --fencing          give each grant a fencing token\n"
    "      --no-identity      do not record who holds or waits (host, pid,\n"
    "                         label) for `fairlock status`\n"
    "      --label TEXT       the label recorded, as given (default: \"run\n"
    "                         NAME -- PROGRAM\", no arguments of PROGRAM)\n"
    "      --permits N        NAME is a semaphore of N permits: up to N\n"
    "                         holders at once, first come, first served\n"
    "  -s, --shared           NAME is a readers-writer lock; hold it shared\n"
    "  -x, --exclusive        NAME is a readers-writer lock; hold it alone\n"
    "  -u, --url URL          the Redis server (see below)\n"
    "  -q, --quiet            no status line, no message when giving up\n"
    "  -v, --verbose          tell what happens, on stderr\n"
    "  -h, --help             this text\n"
    "\n"
    "COMMAND's environment: FAIRLOCK_NAME; FAIRLOCK_TICKET, the grant's\n"
    "place in the queue (increasing while the queue is busy; 0 with\n"
    "--no-fifo); FAIRLOCK_TOKEN, the owner token; FAIRLOCK_FENCE, with\n"
    "--fencing, strictly increasing for every grant of NAME;\n"
    "FAIRLOCK_PERMIT, with --permits, the permit held (1 to N, no two\n"
    "holders at once alike); FAIRLOCK_MODE, with -s or -x, shared or\n"
    "exclusive.\n"
    "\n"
    "SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to\n"
    "COMMAND (those a terminal sends reach it directly).  While waiting,\n"
    "SIGINT, SIGTERM, SIGHUP and SIGQUIT make fairlock leave the queue and\n"
    "exit with 128+N.  On a terminal, a status line shows the place in the\n"
    "queue while waiting.\n";

static const char acquire_text[] =
    "Usage: fairlock acquire [OPTIONS] NAME\n"
    "Wait for the lock NAME, print its owner token on stdout and exit,\n"
    "leaving the lock held until `fairlock release NAME TOKEN`, or until its\n"
    "lease runs out.  Nothing renews it: without --ttl it never expires.\n"
    "\n"
    "  -w, --wait SECONDS     give up after waiting this long\n"
    "  -n, --nonblock         give up at once if the lock is taken\n"
    "  -E, --conflict-exit-code N\n"
    "                         exit status when giving up (default 1)\n"
    "      --ttl SECONDS      lease (default 0: no expiry)\n"
    "      --stale SECONDS    evict a waiter silent this long\n"
    "      --no-fifo          do not queue\n"
    "      --fencing          give the grant a fencing token (-v shows it)\n"
    "      --no-identity      do not record who holds or waits (host, pid,\n"
    "                         label) for `fairlock status`\n"
    "      --label TEXT       the label recorded, as given (default:\n"
    "                         \"acquire NAME\")\n"
    "      --permits N        a semaphore of N permits\n"
    "  -s, --shared           a readers-writer lock, held shared\n"
    "  -x, --exclusive        a readers-writer lock, held alone\n"
    "  -u, --url URL          the Redis server (see below)\n"
    "  -q, --quiet            no status line, no message when giving up\n"
    "  -v, --verbose          tell what happens, on stderr\n"
    "  -h, --help             this text\n"
    "\n"
    "  token=$(fairlock acquire --ttl 600 deploy) || exit\n"
    "  ...\n"
    "  fairlock release deploy \"$token\"\n";

static const char release_text[] =
    "Usage: fairlock release [OPTIONS] NAME TOKEN\n"
    "Release the lock NAME if TOKEN (printed by `fairlock acquire`) holds\n"
    "it, and hand it to the next waiter.  Exits with 1 if TOKEN does not\n"
    "hold it (released already, or its lease ran out).\n"
    "\n"
    "      --permits N        NAME is a semaphore (any N will do)\n"
    "  -s, -x                 NAME is a readers-writer lock\n"
    "  -u, --url URL          the Redis server (see below)\n"
    "  -q, --quiet            no message when TOKEN does not hold the lock\n"
    "  -v, --verbose          tell what happens, on stderr\n"
    "  -h, --help             this text\n";

static const char status_text[] =
    "Usage: fairlock status [OPTIONS] NAME\n"
    "       fairlock status --format prometheus [OPTIONS] [PATTERN]\n"
    "Show who holds the lock NAME and for how long (every holder of a\n"
    "semaphore or readers-writer lock, with its permit or mode), and every\n"
    "waiter in queue order with its ticket, how long it has waited and the\n"
    "time since its last heartbeat, all by the server's clock; and who each\n"
    "is (pid, host, command line) when it recorded that (fairlock run and\n"
    "acquire do, unless --no-identity).  Changes nothing.\n"
    "\n"
    "      --json             one JSON object: name, server_time_ms,\n"
    "                         locked, holder {token, ttl_ms, identity} or\n"
    "                         null, kind, permits, holders [...], fence,\n"
    "                         waiters_total, waiters [{position, ticket,\n"
    "                         token, idle_ms, liveness_ms, identity}];\n"
    "                         identity is {host, pid, label, since_ms,\n"
    "                         held_ms or waiting_ms} or null\n"
    "      --watch            redraw every --interval until interrupted, as\n"
    "                         top(1) does (a terminal only: refused when\n"
    "                         stdout is not one); a failed snapshot shows\n"
    "                         its error and is tried again\n"
    "      --interval SECONDS between redraws (default 2)\n"
    "      --format FORMAT    text (the default), json (as --json), or\n"
    "                         prometheus (as `fairlock metrics PATTERN`)\n"
    "  -l, --long             whole tokens (they are cut to 12 characters)\n"
    "  -u, --url URL          the Redis server (see below)\n"
    "  -h, --help             this text\n";

static const char list_text[] =
    "Usage: fairlock list [OPTIONS] [PATTERN]\n"
    "List the locks (of every kind) that are held or waited for and whose\n"
    "names match the glob PATTERN (default: all), one a line: kind, holders,\n"
    "waiters, how long held, lease left, longest wait, and who holds it.\n"
    "Found with SCAN (never KEYS), on every master of a cluster and on the\n"
    "master behind sentinels.  A mutex held by a client of another\n"
    "implementation with nobody waiting is not recognised.\n"
    "\n"
    "      --json             one JSON object a line, as status --json\n"
    "  -u, --url URL          the Redis server (see below)\n"
    "  -h, --help             this text\n";

static const char metrics_text[] =
    "Usage: fairlock metrics [OPTIONS] [PATTERN]\n"
    "Print the locks matching PATTERN (as `fairlock list`) as Prometheus\n"
    "metrics in the text exposition format: fairlock_held,\n"
    "fairlock_holders, fairlock_holder_age_seconds,\n"
    "fairlock_lease_remaining_seconds, fairlock_waiters,\n"
    "fairlock_oldest_waiter_age_seconds, fairlock_grants_total (where\n"
    "fencing is in use), each labelled {name, kind}, and fairlock_locks.\n"
    "For node_exporter's textfile collector: see contrib/prometheus/.\n"
    "Prints nothing and fails when the scan fails.\n"
    "\n"
    "  -u, --url URL          the Redis server (see below)\n"
    "  -h, --help             this text\n";

static const char break_text[] =
    "Usage: fairlock break [OPTIONS] NAME\n"
    "Release whoever holds the lock NAME (every holder of a semaphore or\n"
    "readers-writer lock, or the one --token names) and hand it to the next\n"
    "waiter in the same step, after printing who that was.  On a terminal\n"
    "it asks first; elsewhere --yes is required.  Only the holds shown are\n"
    "broken: a holder that changed meanwhile is left alone.  The broken\n"
    "holder learns it at its next renewal or release, as for any lost\n"
    "lease: `fairlock run` then stops its command and exits with 75.\n"
    "\n"
    "  -y, --yes              do not ask\n"
    "      --token TOKEN      break only the hold of TOKEN\n"
    "  -u, --url URL          the Redis server (see below)\n"
    "  -h, --help             this text\n";

static const char acl_text[] =
    "Usage: fairlock acl [OPTIONS] PREFIX\n"
    "Print the ACL SETUSER command (for redis-cli) of a Redis user that may\n"
    "take fairlock locks whose names start with PREFIX, and nothing else.\n"
    "Add a password to it (>PASSWORD) when creating the user.  Connects to\n"
    "nothing.  See docs/acl.md.\n"
    "\n"
    "      --user NAME        the user's name (default fairlock)\n"
    "      --sentinel         also allow ROLE, and print a second command for\n"
    "                         the sentinels' user\n"
    "      --sentinel-user NAME\n"
    "                         the sentinels' user (implies --sentinel;\n"
    "                         default: --user)\n"
    "      --cluster          also allow ASKING (Redis Cluster; run the\n"
    "                         command on every node)\n"
    "      --hash-tag         keys of locks made with the hash_tag option\n"
    "                         ({PREFIX...})\n"
    "  -h, --help             this text\n";

int cli_help_command(FILE *out, const char *command) {
    const char *text;
    if (strcmp(command, "run") == 0)
        text = run_text;
    else if (strcmp(command, "acquire") == 0)
        text = acquire_text;
    else if (strcmp(command, "release") == 0)
        text = release_text;
    else if (strcmp(command, "status") == 0)
        text = status_text;
    else if (strcmp(command, "acl") == 0)
        text = acl_text;
    else if (strcmp(command, "list") == 0)
        text = list_text;
    else if (strcmp(command, "metrics") == 0)
        text = metrics_text;
    else if (strcmp(command, "break") == 0)
        text = break_text;
    else
        return -1;
    fputs(text, out);
    fputc('\n', out);
    fputs(url_text, out);
    fputc('\n', out);
    fputs(exit_status_text, out);
    return 0;
}

void cli_version(FILE *out) {
    fprintf(out, "fairlock %s (libfairlock %s)\n", FAIRLOCK_VERSION_STRING,
            fairlock_version());
}
