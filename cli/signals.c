/* signals.c -- signal handlers that only note the signal, via a self-pipe.
 *
 * The handlers run on whichever thread the kernel picks (the library's
 * renewal thread too), so they touch nothing but an atomic flag and the
 * pipe; the main loop does the rest.  A byte per signal keeps the order
 * and the count, and says whether the kernel sent it on behalf of the
 * terminal: ^C reaches the whole foreground process group, the command
 * included, so such a signal must not be forwarded a second time.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Signals forwarded to the command; the first four also end a wait. */
static const int handled[] = {SIGINT,  SIGTERM, SIGHUP, SIGQUIT,
                              SIGUSR1, SIGUSR2, SIGCHLD};
#define HANDLED_COUNT (sizeof handled / sizeof handled[0])

static int pipe_fds[2] = {-1, -1};
static volatile sig_atomic_t pending_signal;
/* Dispositions at start (SIG_DFL or SIG_IGN, as exec left them), which
 * the command gets back; SIGPIPE included, which fairlock ignores. */
static struct sigaction original[HANDLED_COUNT + 1];

static void put_event(unsigned char byte) {
    /* A full pipe drops the event; the main loop also polls the child and
     * the lock state, so nothing is lost that matters. */
    ssize_t n = write(pipe_fds[1], &byte, 1);
    (void)n;
}

static void on_signal(int sig, siginfo_t *info, void *context) {
    (void)context;
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    if (sig != SIGCHLD && info != NULL && info->si_code == SI_KERNEL)
        byte |= CLI_EVENT_TERMINAL;
    if (pending_signal == 0 &&
        (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT))
        pending_signal = sig;
    put_event(byte);
    errno = saved;
}

int cli_signals_init(void) {
    if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < HANDLED_COUNT; i++) {
        struct sigaction this = sa;
        if (handled[i] == SIGCHLD)
            this.sa_flags |= SA_NOCLDSTOP;
        if (sigaction(handled[i], NULL, &original[i]) != 0)
            return -1;
        /* An ignored signal stays ignored, for us and the command: that
         * is how nohup(1) and a shell's background jobs (SIGINT, SIGQUIT)
         * ask for it. */
        if (original[i].sa_handler == SIG_IGN && handled[i] != SIGCHLD)
            continue;
        if (sigaction(handled[i], &this, NULL) != 0)
            return -1;
    }
    /* hiredis writes to its sockets without MSG_NOSIGNAL: a Redis that
     * goes away must give an error we can report, not kill fairlock while
     * it holds a lock and a command runs under it. */
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    return sigaction(SIGPIPE, &ignore, &original[HANDLED_COUNT]);
}

int cli_signals_fd(void) { return pipe_fds[0]; }

int cli_signal_pending(void) { return pending_signal; }

int cli_signals_next(void) {
    unsigned char byte;
    for (;;) {
        ssize_t n = read(pipe_fds[0], &byte, 1);
        if (n == 1)
            return byte;
        if (n < 0 && errno == EINTR)
            continue;
        return 0;
    }
}

void cli_signals_drain(void) {
    while (cli_signals_next() != 0) {
    }
}

void cli_signals_notify_lost(void) { put_event(CLI_EVENT_LOST); }

void cli_signals_block(sigset_t *old) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

void cli_signals_restore(const sigset_t *old) {
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

void cli_signals_child(const sigset_t *old) {
    for (size_t i = 0; i < HANDLED_COUNT; i++)
        sigaction(handled[i], &original[i], NULL);
    sigaction(SIGPIPE, &original[HANDLED_COUNT], NULL);
    sigprocmask(SIG_SETMASK, old, NULL);
}

int cli_signal_forwarded(int sig) {
    for (size_t i = 0; i < HANDLED_COUNT; i++)
        if (handled[i] == sig)
            return sig != SIGCHLD;
    return 0;
}
