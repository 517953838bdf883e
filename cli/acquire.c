/* acquire.c -- `fairlock acquire` and `release`: a lock held across commands.
 *
 * For scripts: acquire prints the owner token and leaves the lock held;
 * release frees it given that token. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_acquire(int argc, char **argv) {
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
        CLI_KIND_LONGOPTS,
        {"url", required_argument, NULL, 'u'},
        CLI_AUTH_LONGOPTS,
        CLI_AUTH_LONGOPTS,
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    cli_lock_opts o;
    cli_lock_opts_init(&o, "acquire");
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "-:w:nE:u:sxqvh", longopts, NULL)) !=
           -1) {
        if (c == 1) {
            if (o.name != NULL)
                return cli_usage_error("acquire", "unexpected argument '%s'",
                                       optarg);
            o.name = optarg;
            continue;
        }
        if (c == 'h') {
            cli_help_command(stdout, "acquire");
            return 0;
        }
        int rc = cli_lock_option(&o, c, optarg);
        if (rc == CLI_EXIT_USAGE)
            return rc;
        if (rc == 0)
            return cli_getopt_error("acquire", c, argv);
    }
    for (; optind < argc; optind++) {
        if (o.name != NULL)
            return cli_usage_error("acquire", "unexpected argument '%s'",
                                   argv[optind]);
        o.name = argv[optind];
    }
    if (o.name == NULL)
        return cli_usage_error("acquire", "the lock name is missing");
    int rc = cli_lock_opts_check(&o);
    if (rc != 0)
        return rc;
    if (cli_signals_init() != 0) {
        cli_msg("cannot set up signal handling");
        return CLI_EXIT_OSERR;
    }

    fairlock *lock;
    if ((rc = cli_lock_create(&o, &lock)) != 0)
        return rc;
    rc = cli_lock_wait(&o, lock);
    if (rc == CLI_HELD && cli_signal_pending())
        rc = CLI_EXIT_SIGNAL + cli_signal_pending();
    if (rc != CLI_HELD) {
        fairlock_free(lock); /* releases a grant that raced the signal */
        return rc;
    }
    /* The lock outlives this process: whoever has the token releases it.
     * Detached first, since that can fail (a hand-off's confirmation is
     * made then, see fairlock_detach): a token is printed only for a lock
     * that stays held. */
    char token[FAIRLOCK_TOKEN_MAX];
    snprintf(token, sizeof token, "%s", fairlock_token(lock));
    if ((rc = fairlock_detach(lock)) != FAIRLOCK_OK) {
        cli_msg("%s", fairlock_errmsg(lock));
        fairlock_free(lock); /* releases it */
        return cli_exit_for(rc);
    }
    printf("%s\n", token);
    if (fflush(stdout) != 0) {
        /* Nobody learnt the token, so nobody could release the lock. */
        fairlock_release_token(lock, token);
        fairlock_free(lock);
        return CLI_EXIT_OSERR;
    }
    fairlock_free(lock);
    return 0;
}

int cli_release(int argc, char **argv) {
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        CLI_KIND_LONGOPTS,
        CLI_AUTH_LONGOPTS,
        CLI_AUTH_LONGOPTS,
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *operands[2] = {NULL, NULL};
    int quiet = 0, verbose = 0, count = 0, c;
    /* The kind says which keys the token is looked for in. */
    cli_lock_opts kind;
    cli_lock_opts_init(&kind, "release");
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "-:u:sxqvh", longopts, NULL)) != -1) {
        switch (c) {
        case 1:
            if (count == 2)
                return cli_usage_error("release", "unexpected argument '%s'",
                                       optarg);
            operands[count++] = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            cli_help_command(stdout, "release");
            return 0;
        case 's':
        case 'x':
        case CLI_OPT_PERMITS:
            if (cli_lock_option(&kind, c, optarg) != 1)
                return CLI_EXIT_USAGE;
            break;
        default: {
            int rc = cli_auth_option("release", c, optarg);
            if (rc == 0)
                return cli_getopt_error("release", c, argv);
            if (rc != 1)
                return rc;
        }
        }
    }
    for (; optind < argc; optind++) {
        if (count == 2)
            return cli_usage_error("release", "unexpected argument '%s'",
                                   argv[optind]);
        operands[count++] = argv[optind];
    }
    if (count < 2)
        return cli_usage_error("release", count == 0
                                              ? "the lock name is missing"
                                              : "the token is missing");
    if (*operands[1] == '\0')
        return cli_usage_error("release", "the token is empty");
    int auth_rc = cli_auth_finish("release", &url, quiet);
    if (auth_rc != 0)
        return auth_rc;

    char shown[128];
    cli_text(shown, sizeof shown, operands[0], strlen(operands[0]));
    fairlock_options opts;
    fairlock_options_init(&opts);
    opts.name = operands[0];
    opts.url = url;
    opts.kind = kind.kind;
    opts.permits = kind.permits;
    opts.shared = kind.shared;
    cli_auth_apply(&opts);
    fairlock *lock = NULL;
    int rc = fairlock_create(&opts, &lock);
    if (rc == FAIRLOCK_OK)
        rc = fairlock_release_token(lock, operands[1]);
    int status = 0;
    if (rc == FAIRLOCK_NOTOWNED) {
        if (!quiet)
            cli_msg("%s: not released: that token does not hold the lock",
                    shown);
        status = CLI_EXIT_CONFLICT;
    } else if (rc != FAIRLOCK_OK) {
        cli_msg("%s: %s", shown,
                lock ? fairlock_errmsg(lock) : fairlock_strerror(rc));
        status = cli_exit_for(rc);
    } else if (verbose) {
        cli_msg("%s: released", shown);
    }
    fairlock_free(lock);
    return status;
}
