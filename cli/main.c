/* main.c -- the fairlock command's entry: dispatch, help, output errors. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef int (*command_fn)(int argc, char **argv);

static const struct {
    const char *name;
    command_fn fn;
} commands[] = {{"run", cli_run},         {"acquire", cli_acquire},
                {"release", cli_release}, {"status", cli_status},
                {"list", cli_list},       {"metrics", cli_metrics},
                {"break", cli_break},     {"acl", cli_acl}};

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        cli_help_main(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "help") == 0) {
        if (argc > 2 && strcmp(command, "help") == 0) {
            if (cli_help_command(stdout, argv[2]) != 0)
                return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
            return 0;
        }
        cli_help_main(stdout);
        return 0;
    }
    if (strcmp(command, "-V") == 0 || strcmp(command, "--version") == 0 ||
        strcmp(command, "version") == 0) {
        cli_version(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(command, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    if (command[0] == '-')
        return cli_usage_error(NULL, "unknown option %s before the command",
                               command);
    return cli_usage_error(NULL, "unknown command '%s'", command);
}

int main(int argc, char **argv) {
    int status = dispatch(argc, argv);
    /* A full disk or a closed pipe must not pass for success: a script
     * that reads a token or a status needs to know it got all of it. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno != EPIPE)
            cli_msg("cannot write the output: %s", strerror(errno));
        if (status == 0)
            status = CLI_EXIT_OSERR;
    }
    return status;
}
