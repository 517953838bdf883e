/* auth.c -- credentials without the command line: password files, the
 * FAIRLOCK_PASSWORD variables, and a URL's password wiped from argv; and
 * the TLS settings (certificates are credentials too), named as in
 * redis-cli.
 *
 * Anything on a command line can be read by every local user
 * (/proc/PID/cmdline, ps) for as long as the process runs, which for
 * `fairlock run` is as long as the command under the lock.  The password
 * therefore comes from a file only its owner can read or from the
 * environment (readable by the same user and root only), and one that
 * does arrive in a URL on the command line is overwritten in our argv as
 * soon as the options are parsed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Longer than any password a person or a generator makes; a bigger file
 * is not a password file. */
#define PASSWORD_MAX 4096

/* The credentials of this process's one command; the CLI runs one command
 * per process, so they live here rather than in every command's options. */
static struct {
    const char *user;
    const char *password_file;
    const char *sentinel_user;
    const char *sentinel_password_file;
    char *password;          /* read from the file or the environment */
    char *sentinel_password; /* idem */
    char *url;               /* copy of a -u URL whose password was wiped */
    int tls, insecure;
    const char *cacert, *cacertdir, *cert, *key, *sni;
} auth;

static const char *const secret_vars[] = {"FAIRLOCK_PASSWORD",
                                          "FAIRLOCK_SENTINEL_PASSWORD"};

int cli_auth_option(const char *command, int c, const char *arg) {
    const char **field;
    switch (c) {
    case CLI_OPT_USER:
        field = &auth.user;
        break;
    case CLI_OPT_PASSWORD_FILE:
        field = &auth.password_file;
        break;
    case CLI_OPT_SENTINEL_USER:
        field = &auth.sentinel_user;
        break;
    case CLI_OPT_SENTINEL_PASSWORD_FILE:
        field = &auth.sentinel_password_file;
        break;
    case CLI_OPT_TLS:
        auth.tls = 1;
        return 1;
    case CLI_OPT_INSECURE:
        auth.insecure = 1;
        return 1;
    case CLI_OPT_CACERT:
        field = &auth.cacert;
        break;
    case CLI_OPT_CACERTDIR:
        field = &auth.cacertdir;
        break;
    case CLI_OPT_CERT:
        field = &auth.cert;
        break;
    case CLI_OPT_KEY:
        field = &auth.key;
        break;
    case CLI_OPT_SNI:
        field = &auth.sni;
        break;
    default:
        return 0;
    }
    if (*arg == '\0')
        return cli_usage_error(command, "an empty value is not allowed for "
                                        "a credential or TLS option");
    *field = arg;
    return 1;
}

/* Reads a password file into a new string, without its final line end.
 * Refuses a file that others than its owner may read: the password would
 * be as public as on the command line.  Returns 0, or an exit status
 * after a message. */
static int read_password_file(const char *command, const char *option,
                              const char *path, char **out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        cli_msg("%s: %s %s: %s", command, option, path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    /* Checked on the open file, so that what is checked is what is read. */
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_mode & (S_IRGRP | S_IROTH))
        why = "other users can read it; make it readable by its owner "
              "only (chmod 600)";
    char *buf = why ? NULL : malloc(PASSWORD_MAX + 2);
    ssize_t len = 0;
    if (why == NULL && buf == NULL)
        why = strerror(ENOMEM);
    while (why == NULL && len <= PASSWORD_MAX) {
        ssize_t n = read(fd, buf + len, (size_t)(PASSWORD_MAX + 1 - len));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            why = strerror(errno);
        if (n <= 0)
            break;
        len += n;
    }
    close(fd);
    /* The first line: what `echo secret >file` and editors write. */
    char *eol = why ? NULL : memchr(buf, '\n', (size_t)len);
    if (eol != NULL)
        len = eol - buf;
    if (why == NULL && len > 0 && buf[len - 1] == '\r')
        len--;
    if (why == NULL && len > PASSWORD_MAX)
        why = "longer than 4096 bytes: not a password file";
    else if (why == NULL && len == 0)
        why = "empty";
    else if (why == NULL && memchr(buf, '\0', (size_t)len) != NULL)
        why = "contains a NUL byte";
    if (why != NULL) {
        if (buf != NULL)
            memset(buf, 0, PASSWORD_MAX + 2);
        free(buf);
        cli_msg("%s: %s %s: %s", command, option, path, why);
        return CLI_EXIT_USAGE;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* The password of a file option, else of the environment variable. */
static int find_password(const char *command, const char *option,
                         const char *path, const char *var, char **out) {
    if (path != NULL)
        return read_password_file(command, option, path, out);
    const char *value = getenv(var);
    if (value != NULL && *value != '\0' && (*out = strdup(value)) == NULL) {
        cli_msg("%s: %s", command, strerror(ENOMEM));
        return CLI_EXIT_OSERR;
    }
    return 0;
}

/* The password inside a URL as url.c reads it: the userinfo ends at the
 * last '@' before the first '/' after the scheme, and the password is
 * what follows its first ':' (all of it when there is none).  Sets
 * *start and *len; returns 0 when there is none. */
static int url_password(char *url, char **start, size_t *len) {
    char *p = strstr(url, "://");
    if (p == NULL)
        return 0;
    p += 3;
    char *end = p + strcspn(p, "/");
    char *at = NULL;
    for (char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at == NULL)
        return 0;
    char *colon = memchr(p, ':', (size_t)(at - p));
    *start = colon ? colon + 1 : p;
    *len = (size_t)(at - *start);
    return *len > 0;
}

int cli_auth_finish(const char *command, const char **url, int quiet) {
    char *secret;
    size_t len;
    /* *url points into our argv (getopt's optarg), which is writable:
     * what /proc/PID/cmdline shows is that very memory. */
    if (*url != NULL && url_password((char *)*url, &secret, &len)) {
        auth.url = strdup(*url);
        if (auth.url == NULL) {
            cli_msg("%s: %s", command, strerror(ENOMEM));
            return CLI_EXIT_OSERR;
        }
        memset(secret, '*', len);
        *url = auth.url;
        if (!quiet)
            cli_msg("warning: a password on the command line can be read "
                    "by other users; use FAIRLOCK_PASSWORD or "
                    "--password-file");
    }
    int rc = find_password(command, "--password-file", auth.password_file,
                           "FAIRLOCK_PASSWORD", &auth.password);
    if (rc == 0)
        rc = find_password(
            command, "--sentinel-password-file", auth.sentinel_password_file,
            "FAIRLOCK_SENTINEL_PASSWORD", &auth.sentinel_password);
    return rc;
}

static char label[FAIRLOCK_LABEL_MAX + 1];

/* Stars out every occurrence of `secret` in s. */
static void star_out(char *s, const char *secret) {
    size_t n = secret ? strlen(secret) : 0;
    if (n == 0)
        return;
    for (char *p = strstr(s, secret); p != NULL; p = strstr(p + n, secret))
        memset(p, '*', n);
}

const char *cli_identity_label(const cli_lock_opts *o) {
    /* By default only what names the work: our command, the lock, and the
     * program run under it -- never an argument of that program (a
     * password in a URL, -pSECRET, an Authorization header).  --label is
     * the user's own text, stored as given.  The passwords we know of
     * (read from a file or the environment) are starred out wherever they
     * appear, in case one was typed into the label or the name too --
     * before the cut, so that no prefix of one survives it. */
    char *full;
    if (o->label != NULL) {
        full = strdup(o->label);
    } else {
        const char *child = NULL;
        if (o->child != NULL) {
            const char *slash = strrchr(o->child, '/');
            child = slash ? slash + 1 : o->child;
        }
        size_t n = strlen(o->command) + strlen(o->name) + 2 +
                   (child ? strlen(child) + 4 : 0);
        full = malloc(n);
        if (full != NULL)
            snprintf(full, n, "%s %s%s%s", o->command, o->name,
                     child ? " -- " : "", child ? child : "");
    }
    label[0] = '\0';
    if (full == NULL)
        return label;
    star_out(full, auth.password);
    star_out(full, auth.sentinel_password);
    for (size_t i = 0; i < sizeof secret_vars / sizeof secret_vars[0]; i++)
        star_out(full, getenv(secret_vars[i]));
    star_out(full, getenv("REDISCLI_AUTH"));
    snprintf(label, sizeof label, "%s", full);
    free(full);
    return label;
}

void cli_auth_apply(fairlock_options *opts) {
    /* Who asked, on by default (--no-identity turns it off for run and
     * acquire): `fairlock status` and `list` show it. */
    opts->identity = 1;
    opts->identity_label = NULL;
    opts->user = auth.user;
    opts->password = auth.password;
    opts->sentinel_user = auth.sentinel_user;
    opts->sentinel_password = auth.sentinel_password;
    /* As in redis-cli, --tls is needed with a redis:// URL; a rediss://
     * one implies it. */
    opts->tls = auth.tls;
    opts->tls_insecure = auth.insecure;
    opts->tls_ca_file = auth.cacert;
    opts->tls_ca_path = auth.cacertdir;
    opts->tls_cert_file = auth.cert;
    opts->tls_key_file = auth.key;
    opts->tls_server_name = auth.sni;
}

int cli_auth_is_secret_var(const char *entry) {
    for (size_t i = 0; i < sizeof secret_vars / sizeof secret_vars[0]; i++) {
        size_t n = strlen(secret_vars[i]);
        if (strncmp(entry, secret_vars[i], n) == 0 && entry[n] == '=')
            return 1;
    }
    return 0;
}
