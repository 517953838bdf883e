/* spawn.c -- find the command, build its environment, fork and exec it.
 *
 * fairlock is multithreaded by the time the command starts (the library
 * renews the lease on a thread of its own), so the child may only make
 * async-signal-safe calls between fork and exec: the PATH search, the
 * environment and the argument vectors are all prepared before fork, and
 * the child does no more than reset signals and call execve.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli.h"

extern char **environ;

/* ---------------------------------------------------------------------------
 * File descriptors
 * ------------------------------------------------------------------------- */

/* hiredis opens its sockets without close-on-exec, so without this the
 * command (and any daemon it leaves behind) would keep fairlock's Redis
 * connections open.  Descriptors fairlock inherited are the caller's to
 * pass on (`3>file`), so only the ones opened since start are marked. */
static int *inherited;
static size_t inherited_count;

static int fd_list(int **out, size_t *count) {
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    size_t n = 0, cap = 16;
    int *fds = malloc(cap * sizeof *fds);
    struct dirent *e;
    while (fds != NULL && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(dir))
            continue;
        if (n == cap) {
            int *grown = realloc(fds, 2 * cap * sizeof *fds);
            if (grown == NULL) {
                free(fds);
                fds = NULL;
                break;
            }
            fds = grown, cap *= 2;
        }
        fds[n++] = fd;
    }
    closedir(dir);
    if (fds == NULL)
        return -1;
    *out = fds;
    *count = n;
    return 0;
}

void cli_fds_remember(void) {
    free(inherited);
    inherited = NULL;
    inherited_count = 0;
    if (fd_list(&inherited, &inherited_count) != 0)
        inherited = NULL; /* no /proc: pass everything on */
}

static void fds_close_on_exec(void) {
    int *fds;
    size_t n;
    if (inherited == NULL || fd_list(&fds, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        int known = 0;
        for (size_t j = 0; j < inherited_count && !known; j++)
            known = inherited[j] == fds[i];
        int flags = fcntl(fds[i], F_GETFD);
        if (!known && flags >= 0 && !(flags & FD_CLOEXEC))
            fcntl(fds[i], F_SETFD, flags | FD_CLOEXEC);
    }
    free(fds);
}

/* ---------------------------------------------------------------------------
 * Finding the command
 * ------------------------------------------------------------------------- */

/* 0 if path is an executable regular file, else ENOENT or EACCES. */
static int check_file(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == EACCES ? EACCES : ENOENT;
    if (S_ISDIR(st.st_mode))
        return EACCES;
    return access(path, X_OK) == 0 ? 0 : EACCES;
}

/* The argument vector for a script without #!, made before fork because
 * the child must not allocate. */
static int make_sh_argv(cli_command *cmd) {
    static char sh[] = "sh";
    size_t argc = 0;
    while (cmd->argv[argc] != NULL)
        argc++;
    cmd->sh_argv = calloc(argc + 2, sizeof *cmd->sh_argv);
    if (cmd->sh_argv == NULL)
        return ENOMEM;
    cmd->sh_argv[0] = sh;
    cmd->sh_argv[1] = cmd->path;
    for (size_t i = 1; i < argc; i++)
        cmd->sh_argv[i + 1] = cmd->argv[i];
    return 0;
}

static int find_path(cli_command *cmd, char **argv) {
    cmd->argv = argv;
    const char *file = argv[0];
    if (*file == '\0')
        return ENOENT;
    if (strchr(file, '/') != NULL) {
        int rc = check_file(file);
        if (rc == 0 && (cmd->path = strdup(file)) == NULL)
            return ENOMEM;
        return rc;
    }
    /* As execvp: an unset PATH means the confstr(_CS_PATH) default, and an
     * empty element the current directory.  A file found but not
     * executable is remembered and reported if nothing better turns up. */
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/bin:/usr/bin";
    int result = ENOENT;
    size_t file_len = strlen(file);
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t dir_len = end ? (size_t)(end - p) : strlen(p);
        size_t size = dir_len + file_len + 3;
        char *candidate = malloc(size);
        if (candidate == NULL)
            return ENOMEM;
        if (dir_len == 0)
            snprintf(candidate, size, "./%s", file);
        else
            snprintf(candidate, size, "%.*s/%s", (int)dir_len, p, file);
        int rc = check_file(candidate);
        if (rc == 0) {
            cmd->path = candidate;
            return 0;
        }
        free(candidate);
        if (rc == EACCES)
            result = EACCES;
        if (end == NULL)
            break;
        p = end;
    }
    return result;
}

int cli_command_find(cli_command *cmd, char **argv) {
    memset(cmd, 0, sizeof *cmd);
    int rc = find_path(cmd, argv);
    return rc == 0 ? make_sh_argv(cmd) : rc;
}

/* ---------------------------------------------------------------------------
 * Environment
 * ------------------------------------------------------------------------- */

static const char *const lock_vars[] = {"FAIRLOCK_NAME",   "FAIRLOCK_TICKET",
                                        "FAIRLOCK_TOKEN",  "FAIRLOCK_FENCE",
                                        "FAIRLOCK_PERMIT", "FAIRLOCK_MODE"};
#define LOCK_VAR_COUNT (sizeof lock_vars / sizeof lock_vars[0])

static int is_lock_var(const char *entry) {
    for (size_t i = 0; i < LOCK_VAR_COUNT; i++) {
        size_t n = strlen(lock_vars[i]);
        if (strncmp(entry, lock_vars[i], n) == 0 && entry[n] == '=')
            return 1;
    }
    return 0;
}

static char *make_var(const char *name, const char *value, size_t len) {
    size_t size = strlen(name) + 1 + len + 1;
    char *var = malloc(size);
    if (var != NULL) {
        snprintf(var, size, "%s=", name);
        memcpy(var + strlen(name) + 1, value, len);
        var[size - 1] = '\0';
    }
    return var;
}

static char *make_number_var(const char *name, int64_t value) {
    char digits[24];
    snprintf(digits, sizeof digits, "%" PRId64, value);
    return make_var(name, digits, strlen(digits));
}

int cli_command_env(cli_command *cmd, const fairlock *lock,
                    const cli_lock_opts *o) {
    size_t count = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        count++;
    char **envp = calloc(count + LOCK_VAR_COUNT + 1, sizeof *envp);
    if (envp == NULL)
        return ENOMEM;
    size_t n = 0;
    /* Inherited values would be a stale identity (a nested fairlock).
     * The password variables were meant for us, not for the command. */
    for (size_t i = 0; i < count; i++)
        if (!is_lock_var(environ[i]) && !cli_auth_is_secret_var(environ[i]))
            envp[n++] = environ[i];
    size_t name_len;
    const char *name = fairlock_name(lock, &name_len);
    const char *token = fairlock_token(lock);
    /* A name with a NUL byte cannot be an environment value; it cannot
     * come from the command line either. */
    char **own = cmd->own;
    own[0] = make_var("FAIRLOCK_NAME", name, strnlen(name, name_len));
    own[1] = make_number_var("FAIRLOCK_TICKET", fairlock_ticket(lock));
    own[2] = make_var("FAIRLOCK_TOKEN", token ? token : "",
                      token ? strlen(token) : 0);
    cmd->own_count = 3;
    if (o->fencing)
        own[cmd->own_count++] = make_number_var("FAIRLOCK_FENCE",
                                                fairlock_fence(lock));
    /* Which of the N resources is ours, or how we hold the lock: what a
     * command needs to act on its share. */
    if (o->kind == FAIRLOCK_KIND_SEMAPHORE)
        own[cmd->own_count++] = make_number_var("FAIRLOCK_PERMIT",
                                                fairlock_permit(lock));
    if (o->kind == FAIRLOCK_KIND_RWLOCK) {
        const char *mode = o->shared ? "shared" : "exclusive";
        own[cmd->own_count++] = make_var("FAIRLOCK_MODE", mode, strlen(mode));
    }
    cmd->envp = envp;
    for (size_t i = 0; i < cmd->own_count; i++) {
        if (own[i] == NULL)
            return ENOMEM;
        envp[n++] = own[i];
    }
    envp[n] = NULL;
    return 0;
}

void cli_command_free(cli_command *cmd) {
    for (size_t i = 0; i < cmd->own_count; i++)
        free(cmd->own[i]);
    free(cmd->envp);
    free(cmd->sh_argv);
    free(cmd->path);
    memset(cmd, 0, sizeof *cmd);
}

/* ---------------------------------------------------------------------------
 * Fork and exec
 * ------------------------------------------------------------------------- */

/* In the child: only async-signal-safe calls until execve. */
static void child(const cli_command *cmd, const sigset_t *mask, int deathsig,
                  pid_t parent, int report_fd) {
    cli_signals_child(mask);
#ifdef __linux__
    if (deathsig != 0) {
        prctl(PR_SET_PDEATHSIG, deathsig);
        if (getppid() != parent) /* fairlock died before the prctl */
            _exit(CLI_EXIT_SIGNAL + deathsig);
    }
#else
    (void)deathsig;
    (void)parent;
#endif
    execve(cmd->path, cmd->argv, cmd->envp);
    int err = errno;
    if (err == ENOEXEC && cmd->sh_argv != NULL) {
        /* A script without #!: run it with sh, as execvp and shells do. */
        execve("/bin/sh", cmd->sh_argv, cmd->envp);
        err = errno;
    }
    ssize_t n = write(report_fd, &err, sizeof err);
    (void)n;
    _exit(CLI_EXIT_NOTFOUND);
}

pid_t cli_command_spawn(const cli_command *cmd, int deathsig, int *err) {
    /* The child reports a failed exec through this pipe; a successful
     * exec closes it (O_CLOEXEC), which the parent reads as end of file. */
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *err = errno;
        return -1;
    }
    fds_close_on_exec();
    sigset_t mask;
    /* No handler of ours may run in the child, where it would write to
     * the parent's pipe: signals stay blocked until the child has reset
     * them. */
    cli_signals_block(&mask);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        child(cmd, &mask, deathsig, parent, report[1]);
    }
    int fork_errno = errno;
    cli_signals_restore(&mask);
    close(report[1]);
    if (pid < 0) {
        close(report[0]);
        *err = fork_errno;
        return -1;
    }
    int exec_errno = 0;
    ssize_t n;
    do
        n = read(report[0], &exec_errno, sizeof exec_errno);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof exec_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        *err = exec_errno;
        return -1;
    }
    *err = 0;
    return pid;
}
