/* acl.c -- `fairlock acl`: the least-privilege Redis ACL for a key prefix.
 *
 * Prints ACL SETUSER commands, ready for redis-cli, that let a user take
 * fairlock locks whose names start with PREFIX and do nothing else.  The
 * command list is derived in docs/acl.md from every command the library
 * sends and every command its Lua scripts run (Redis checks both).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* What any lock needs: the scripts, the commands they run (the
 * semaphore's and readers-writer lock's add ZSCORE and ZCOUNT; the hash
 * commands keep the identity records, NAME:who), BLPOP (waiting for a
 * hand-off), WAIT (wait_replicas), GET and EXISTS (owned/locked queries) and
 * SELECT (a URL with a database number). */
static const char base_commands[] =
    "+evalsha +eval +blpop +wait +get +exists +select +time +set +del "
    "+incr +pexpire +persist +pttl +rpush +zadd +zcard +zrange "
    "+zrangebyscore +zrank +zrem +zscan +zscore +zcount +hget +hset +hdel "
    "+hexists +hmget";

/* Characters that would make the line mean something else: a space or a
 * quote splits or joins redis-cli arguments, and glob characters would
 * widen the key pattern. */
static int prefix_ok(const char *prefix) {
    for (const char *p = prefix; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr("*?[]\\\"'", *p))
            return 0;
    return 1;
}

static int name_ok(const char *name) {
    return *name != '\0' && prefix_ok(name) && strchr(name, '|') == NULL;
}

int cli_acl(int argc, char **argv) {
    static const struct option longopts[] = {
        {"user", required_argument, NULL, CLI_OPT_USER},
        {"sentinel-user", required_argument, NULL, CLI_OPT_SENTINEL_USER},
        {"sentinel", no_argument, NULL, CLI_OPT_SENTINEL},
        {"cluster", no_argument, NULL, CLI_OPT_CLUSTER},
        {"hash-tag", no_argument, NULL, CLI_OPT_HASH_TAG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *user = "fairlock", *sentinel_user = NULL, *prefix = NULL;
    int sentinel = 0, cluster = 0, hash_tag = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
        switch (c) {
        case 1:
            if (prefix != NULL)
                return cli_usage_error("acl", "unexpected argument '%s'",
                                       optarg);
            prefix = optarg;
            break;
        case CLI_OPT_USER:
            user = optarg;
            break;
        case CLI_OPT_SENTINEL_USER:
            sentinel_user = optarg;
            sentinel = 1;
            break;
        case CLI_OPT_SENTINEL:
            sentinel = 1;
            break;
        case CLI_OPT_CLUSTER:
            cluster = 1;
            break;
        case CLI_OPT_HASH_TAG:
            hash_tag = 1;
            break;
        case 'h':
            cli_help_command(stdout, "acl");
            return 0;
        default:
            return cli_getopt_error("acl", c, argv);
        }
    }
    for (; optind < argc; optind++) {
        if (prefix != NULL)
            return cli_usage_error("acl", "unexpected argument '%s'",
                                   argv[optind]);
        prefix = argv[optind];
    }
    if (prefix == NULL)
        return cli_usage_error("acl", "the key prefix is missing");
    /* An empty prefix would grant every key, which is what this command
     * exists to avoid. */
    if (*prefix == '\0' || !prefix_ok(prefix))
        return cli_usage_error("acl", "the prefix must be non-empty, without "
                                      "blanks, quotes or the glob characters "
                                      "*?[]\\");
    if (!name_ok(user) || (sentinel_user != NULL && !name_ok(sentinel_user)))
        return cli_usage_error("acl", "a user name must be non-empty, "
                                      "without blanks, quotes, glob "
                                      "characters or '|'");
    if (sentinel && cluster)
        return cli_usage_error("acl",
                               "--sentinel and --cluster exclude each other");
    /* The lock's keys all start with its name, or with "{" and its name
     * when the hash_tag option wraps it. */
    printf("ACL SETUSER %s on resetkeys ~%s%s* resetchannels -@all %s%s%s\n",
           user, hash_tag ? "{" : "", prefix, base_commands,
           sentinel ? " +role" : "", cluster ? " +asking +cluster|myid" : "");
    if (sentinel)
        printf("ACL SETUSER %s on resetkeys resetchannels -@all "
               "+sentinel|get-master-addr-by-name\n",
               sentinel_user ? sentinel_user : user);
    return 0;
}
