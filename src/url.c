/* url.c -- parsing of redis:// and unix:// URLs; no I/O, so it can be fuzzed.
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   unix://[[user]:password@]/path/to.sock[?db=N]
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]
 *   redis+cluster://[[user]:password@]host[:port][,host[:port]...]
 *   rediss://, rediss+sentinel://, rediss+cluster:// -- the same over TLS,
 *     with query parameters named as redis-py names them (see tls_query)
 *
 * User and password may be percent-encoded.  Error messages describe the
 * part that is wrong without repeating the URL, which may hold a password.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "tls.h"

#define DEFAULT_PORT 6379
#define DEFAULT_SENTINEL_PORT 26379

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies [s, s+len) percent-decoded into a new string.  Returns NULL and
 * sets *bad when an escape is malformed or decodes to NUL. */
static char *decode_part(const char *s, size_t len, int *bad) {
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len) {
                *bad = 1;
                free(out);
                return NULL;
            }
            int h = hex_value(s[i + 1]), l = hex_value(s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                *bad = 1;
                free(out);
                return NULL;
            }
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int parse_int(const char *s, size_t len, long min, long max, int *out) {
    if (len == 0 || len > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

static int fail(fairlock__url *url, char *err, size_t errlen, int code,
                const char *why) {
    snprintf(err, errlen, "%s", why);
    fairlock__url_clear(url);
    return code;
}

/* Splits "user:password@" off the authority, if present. */
static int parse_userinfo(const char **p, const char *end, fairlock__url *url,
                          char *err, size_t errlen) {
    const char *at = NULL;
    for (const char *q = *p; q < end; q++)
        if (*q == '@')
            at = q; /* the last '@': a password may contain '@' unescaped */
    if (at == NULL)
        return FAIRLOCK_OK;
    const char *colon = memchr(*p, ':', (size_t)(at - *p));
    int bad = 0;
    if (colon != NULL) {
        if (colon > *p) {
            url->user = decode_part(*p, (size_t)(colon - *p), &bad);
            if (url->user == NULL)
                goto nomem_or_bad;
        }
        url->password = decode_part(colon + 1, (size_t)(at - colon - 1), &bad);
        if (url->password == NULL)
            goto nomem_or_bad;
    } else {
        /* "secret@host", as redis-cli and redis-py read it: a password. */
        url->password = decode_part(*p, (size_t)(at - *p), &bad);
        if (url->password == NULL)
            goto nomem_or_bad;
    }
    *p = at + 1;
    return FAIRLOCK_OK;
nomem_or_bad:
    if (bad)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: bad percent-escape in the credentials");
    return fail(url, err, errlen, FAIRLOCK_NOMEM, "out of memory");
}

/* Parses one "host[:port]" or "[v6]:port" in [p, end) into an endpoint.
 * An empty host means the local machine. */
static int parse_endpoint(const char *p, const char *end, int default_port,
                          fairlock__endpoint *out, fairlock__url *url,
                          char *err, size_t errlen) {
    const char *host = p, *host_end, *port = NULL;
    if (p < end && *p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL)
            return fail(url, err, errlen, FAIRLOCK_INVALID,
                        "malformed URL: unterminated '[' in the host");
        if (host_end + 1 < end) {
            if (host_end[1] != ':')
                return fail(url, err, errlen, FAIRLOCK_INVALID,
                            "malformed URL: junk after the IPv6 address");
            port = host_end + 2;
        }
    } else {
        host_end = memchr(host, ':', (size_t)(end - host));
        if (host_end != NULL)
            port = host_end + 1;
        else
            host_end = end;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0) {
        host = "127.0.0.1";
        host_len = strlen(host);
    }
    for (size_t i = 0; i < host_len; i++)
        if (host[i] == '@' || host[i] == '/' || host[i] == ' ' ||
            host[i] == '[' || host[i] == ']' || host[i] == ',')
            return fail(url, err, errlen, FAIRLOCK_INVALID,
                        "malformed URL: invalid character in the host");
    out->port = default_port;
    if (port != NULL &&
        parse_int(port, (size_t)(end - port), 1, 65535, &out->port) != 0)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: the port must be a number from 1 to "
                    "65535");
    out->host = strndup(host, host_len);
    if (out->host == NULL)
        return fail(url, err, errlen, FAIRLOCK_NOMEM, "out of memory");
    return FAIRLOCK_OK;
}

/* Parses "h1:p1,h2:p2,..." in [p, end) into url->nodes. */
static int parse_endpoint_list(const char *p, const char *end, int default_port,
                               fairlock__url *url, char *err, size_t errlen) {
    size_t count = 1;
    for (const char *q = p; q < end; q++)
        count += *q == ',';
    if (count > FAIRLOCK__URL_MAX_NODES)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: too many hosts");
    url->nodes = calloc(count, sizeof *url->nodes);
    if (url->nodes == NULL)
        return fail(url, err, errlen, FAIRLOCK_NOMEM, "out of memory");
    while (url->node_count < count) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        if (item_end == p)
            return fail(url, err, errlen, FAIRLOCK_INVALID,
                        "malformed URL: empty host in the list");
        int rc = parse_endpoint(p, item_end, default_port,
                                &url->nodes[url->node_count], url, err, errlen);
        if (rc != FAIRLOCK_OK)
            return rc;
        url->node_count++;
        p = item_end + 1;
    }
    return FAIRLOCK_OK;
}

static int is_word(const char *s, size_t len, const char *word) {
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* A yes/no value as Python's and redis-py's URLs spell it. */
static int parse_bool(const char *s, size_t len, int *out) {
    if (is_word(s, len, "true") || is_word(s, len, "yes") ||
        is_word(s, len, "1"))
        *out = 1;
    else if (is_word(s, len, "false") || is_word(s, len, "no") ||
             is_word(s, len, "0"))
        *out = 0;
    else
        return -1;
    return 0;
}

/* The query of a rediss:// URL: "name=value&..." with redis-py's names
 * (ssl_server_hostname is ours: redis-py has no such parameter). */
static int tls_query(const char *q, const char *end, fairlock__url *url,
                     char *err, size_t errlen) {
    static const char *const names[] = {
        "ssl_ca_certs",       "ssl_ca_path",   "ssl_certfile",
        "ssl_keyfile",        "ssl_cert_reqs", "ssl_check_hostname",
        "ssl_server_hostname"};
    fairlock__tls_config *tls = &url->tls;
    char **fields[] = {&tls->ca_file,    &tls->ca_path, &tls->cert_file,
                       &tls->key_file,   NULL,          NULL,
                       &tls->server_name};
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(item_end - q));
        if (eq == NULL) {
            char msg[100];
            size_t len = (size_t)(item_end - q);
            snprintf(msg, sizeof msg,
                     "malformed URL: query parameter '%.*s' has no value",
                     len > 40 ? 40 : (int)len, q);
            return fail(url, err, errlen, FAIRLOCK_INVALID, msg);
        }
        size_t name_len = (size_t)(eq - q);
        const char *value = eq + 1;
        size_t value_len = (size_t)(item_end - value);
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] &&
               !is_word(q, name_len, names[i]))
            i++;
        if (i == sizeof names / sizeof names[0]) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "malformed URL: unknown query parameter '%.*s' (TLS "
                     "takes ssl_ca_certs, ssl_ca_path, ssl_certfile, "
                     "ssl_keyfile, ssl_cert_reqs, ssl_check_hostname, "
                     "ssl_server_hostname)",
                     name_len > 40 ? 40 : (int)name_len, q);
            return fail(url, err, errlen, FAIRLOCK_INVALID, msg);
        }
        if (fields[i] != NULL) {
            int bad = 0;
            char *decoded = decode_part(value, value_len, &bad);
            if (decoded == NULL)
                return fail(url, err, errlen,
                            bad ? FAIRLOCK_INVALID : FAIRLOCK_NOMEM,
                            bad ? "malformed URL: bad percent-escape in a "
                                  "query parameter"
                                : "out of memory");
            free(*fields[i]);
            *fields[i] = decoded;
        } else if (strcmp(names[i], "ssl_cert_reqs") == 0) {
            /* A client that asks for a certificate needs it: "optional"
             * is "required" on the client side, as in Python's ssl. */
            if (is_word(value, value_len, "none"))
                tls->verify = 0;
            else if (is_word(value, value_len, "required") ||
                     is_word(value, value_len, "optional"))
                tls->verify = 1;
            else
                return fail(url, err, errlen, FAIRLOCK_INVALID,
                            "malformed URL: ssl_cert_reqs must be none, "
                            "optional or required");
        } else if (parse_bool(value, value_len, &tls->check_host) != 0) {
            return fail(url, err, errlen, FAIRLOCK_INVALID,
                        "malformed URL: ssl_check_hostname must be true or "
                        "false");
        }
        q = item_end < end ? item_end + 1 : end;
    }
    return FAIRLOCK_OK;
}

/* redis://, redis+sentinel:// and redis+cluster:// share the authority
 * syntax; they differ in how many hosts they take and in the path. */
static int parse_network(const char *p, fairlock__url *url, char *err,
                         size_t errlen) {
    const char *end = p + strlen(p);
    const char *query = strchr(p, '?');
    if (query != NULL && !url->tls.enabled)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: query parameters are not supported here "
                    "(give the database as /N)");
    if (query != NULL) {
        int rc = tls_query(query + 1, end, url, err, errlen);
        if (rc != FAIRLOCK_OK)
            return rc;
        end = query;
    }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash ? slash : end;
    int rc = parse_userinfo(&p, auth_end, url, err, errlen);
    if (rc != FAIRLOCK_OK)
        return rc;
    const char *db = slash ? slash + 1 : end;
    if (url->kind == FAIRLOCK__URL_TCP) {
        fairlock__endpoint ep;
        if ((rc = parse_endpoint(p, auth_end, DEFAULT_PORT, &ep, url, err,
                                 errlen)) != FAIRLOCK_OK)
            return rc;
        url->host = ep.host;
        url->port = ep.port;
    } else {
        int port = url->kind == FAIRLOCK__URL_SENTINEL ? DEFAULT_SENTINEL_PORT
                                                       : DEFAULT_PORT;
        if ((rc = parse_endpoint_list(p, auth_end, port, url, err, errlen)) !=
            FAIRLOCK_OK)
            return rc;
    }
    if (url->kind == FAIRLOCK__URL_SENTINEL) {
        const char *name_end = slash ? memchr(db, '/', (size_t)(end - db))
                                     : NULL;
        if (name_end == NULL)
            name_end = end;
        if (slash == NULL || name_end == db)
            return fail(url, err, errlen, FAIRLOCK_INVALID,
                        "malformed URL: redis+sentinel:// needs the master "
                        "name after the hosts, as in "
                        "redis+sentinel://h1:26379,h2:26379/mymaster");
        url->master = strndup(db, (size_t)(name_end - db));
        if (url->master == NULL)
            return fail(url, err, errlen, FAIRLOCK_NOMEM, "out of memory");
        db = name_end < end ? name_end + 1 : end;
    }
    if (db < end &&
        parse_int(db, (size_t)(end - db), 0, INT_MAX, &url->db) != 0)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: the database after '/' must be a "
                    "non-negative number");
    if (url->kind == FAIRLOCK__URL_CLUSTER && url->db != 0)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: Redis Cluster has only database 0");
    return FAIRLOCK_OK;
}

static int parse_unix(const char *p, fairlock__url *url, char *err,
                      size_t errlen) {
    const char *end = p + strlen(p);
    const char *query = strchr(p, '?');
    const char *path_end = query ? query : end;
    const char *slash = memchr(p, '/', (size_t)(path_end - p));
    if (slash == NULL)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: unix:// needs an absolute socket path, "
                    "as in unix:///run/redis.sock");
    int rc = parse_userinfo(&p, slash, url, err, errlen);
    if (rc != FAIRLOCK_OK)
        return rc;
    if (p != slash)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: unix:// takes no host, as in "
                    "unix:///run/redis.sock");
    if (path_end - slash < 2)
        return fail(url, err, errlen, FAIRLOCK_INVALID,
                    "malformed URL: empty socket path");
    url->path = strndup(slash, (size_t)(path_end - slash));
    if (url->path == NULL)
        return fail(url, err, errlen, FAIRLOCK_NOMEM, "out of memory");
    if (query != NULL) {
        const char *q = query + 1;
        if (strncmp(q, "db=", 3) != 0 ||
            parse_int(q + 3, (size_t)(end - q - 3), 0, INT_MAX, &url->db) != 0)
            return fail(url, err, errlen, FAIRLOCK_INVALID,
                        "malformed URL: the only query parameter of unix:// "
                        "is db=N with N a non-negative number");
    }
    return FAIRLOCK_OK;
}

int fairlock__url_parse(const char *text, fairlock__url *url, char *err,
                        size_t errlen) {
    memset(url, 0, sizeof *url);
    if (text == NULL || *text == '\0')
        return fail(url, err, errlen, FAIRLOCK_INVALID, "empty URL");
    for (const char *c = text; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return fail(url, err, errlen, FAIRLOCK_INVALID,
                        "malformed URL: control character");
    static const struct {
        const char *prefix;
        fairlock__url_kind kind;
        int tls;
    } schemes[] = {
        {"redis://", FAIRLOCK__URL_TCP, 0},
        {"redis+sentinel://", FAIRLOCK__URL_SENTINEL, 0},
        {"redis+cluster://", FAIRLOCK__URL_CLUSTER, 0},
        {"rediss://", FAIRLOCK__URL_TCP, 1},
        {"rediss+sentinel://", FAIRLOCK__URL_SENTINEL, 1},
        {"rediss+cluster://", FAIRLOCK__URL_CLUSTER, 1},
    };
    if (strncmp(text, "unix://", 7) == 0) {
        url->kind = FAIRLOCK__URL_UNIX;
        return parse_unix(text + 7, url, err, errlen);
    }
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncmp(text, schemes[i].prefix, n) != 0)
            continue;
#if !FAIRLOCK_HAVE_TLS
        if (schemes[i].tls)
            return fail(url, err, errlen, FAIRLOCK_INVALID,
                        "TLS (rediss://) is not available: this fairlock "
                        "was built without it (FAIRLOCK_TLS=OFF)");
#endif
        url->kind = schemes[i].kind;
        url->tls.enabled = schemes[i].tls;
        url->tls.verify = url->tls.check_host = 1;
        return parse_network(text + n, url, err, errlen);
    }
    return fail(url, err, errlen, FAIRLOCK_INVALID,
                "malformed URL: it must start with redis://, rediss://, "
                "unix://, redis[s]+sentinel:// or redis[s]+cluster://");
}

/* Frees a password without leaving it in freed heap memory. */
static void free_secret(char *secret) {
    if (secret != NULL) {
        volatile char *p = secret;
        while (*p)
            *p++ = '\0';
    }
    free(secret);
}

void fairlock__url_clear(fairlock__url *url) {
    for (size_t i = 0; i < url->node_count; i++)
        free(url->nodes[i].host);
    free(url->nodes);
    free(url->master);
    free(url->host);
    free(url->path);
    free(url->user);
    free_secret(url->password);
    free(url->sentinel_user);
    free_secret(url->sentinel_password);
    free(url->tls.ca_file);
    free(url->tls.ca_path);
    free(url->tls.cert_file);
    free(url->tls.key_file);
    free(url->tls.server_name);
    fairlock__tls_ctx_release(&url->tls);
    memset(url, 0, sizeof *url);
}

/* Replaces *field with a copy of value unless value is NULL. */
static int replace(char **field, const char *value, int secret) {
    if (value == NULL)
        return 0;
    char *copy = strdup(value);
    if (copy == NULL)
        return -1;
    if (secret)
        free_secret(*field);
    else
        free(*field);
    *field = copy;
    return 0;
}

int fairlock__url_set_auth(fairlock__url *url, const char *user,
                           const char *password, const char *sentinel_user,
                           const char *sentinel_password, char *err,
                           size_t errlen) {
    if ((sentinel_user != NULL || sentinel_password != NULL) &&
        url->kind != FAIRLOCK__URL_SENTINEL) {
        snprintf(err, errlen,
                 "sentinel_user and sentinel_password need a "
                 "redis+sentinel:// URL");
        return FAIRLOCK_INVALID;
    }
    if (replace(&url->user, user, 0) != 0 ||
        replace(&url->password, password, 1) != 0 ||
        replace(&url->sentinel_user, sentinel_user, 0) != 0 ||
        replace(&url->sentinel_password, sentinel_password, 1) != 0) {
        snprintf(err, errlen, "out of memory");
        return FAIRLOCK_NOMEM;
    }
    /* AUTH takes a user only together with a password; a user alone
     * would be dropped without a word. */
    if (url->user != NULL && url->password == NULL) {
        snprintf(err, errlen, "a Redis user is given but no password");
        return FAIRLOCK_INVALID;
    }
    if (url->sentinel_user != NULL && url->sentinel_password == NULL) {
        snprintf(err, errlen,
                 "sentinel_user is given but no "
                 "sentinel_password");
        return FAIRLOCK_INVALID;
    }
    return FAIRLOCK_OK;
}

/* Copies a string that may be NULL; *bad is set when memory runs out. */
static char *copy_or_null(const char *s, int *bad) {
    if (s == NULL)
        return NULL;
    char *copy = strdup(s);
    if (copy == NULL)
        *bad = 1;
    return copy;
}

int fairlock__url_copy(fairlock__url *dst, const fairlock__url *src) {
    memset(dst, 0, sizeof *dst);
    int bad = 0;
    dst->kind = src->kind;
    dst->port = src->port;
    dst->db = src->db;
    dst->host = copy_or_null(src->host, &bad);
    dst->master = copy_or_null(src->master, &bad);
    dst->path = copy_or_null(src->path, &bad);
    dst->user = copy_or_null(src->user, &bad);
    dst->password = copy_or_null(src->password, &bad);
    dst->sentinel_user = copy_or_null(src->sentinel_user, &bad);
    dst->sentinel_password = copy_or_null(src->sentinel_password, &bad);
    dst->tls = src->tls;
    fairlock__tls_ctx_ref(&dst->tls); /* shared: see tls.h */
    dst->tls.ca_file = copy_or_null(src->tls.ca_file, &bad);
    dst->tls.ca_path = copy_or_null(src->tls.ca_path, &bad);
    dst->tls.cert_file = copy_or_null(src->tls.cert_file, &bad);
    dst->tls.key_file = copy_or_null(src->tls.key_file, &bad);
    dst->tls.server_name = copy_or_null(src->tls.server_name, &bad);
    if (src->node_count > 0) {
        dst->nodes = calloc(src->node_count, sizeof *dst->nodes);
        if (dst->nodes == NULL)
            bad = 1;
        for (size_t i = 0; dst->nodes != NULL && i < src->node_count; i++) {
            dst->nodes[i].port = src->nodes[i].port;
            dst->nodes[i].host = copy_or_null(src->nodes[i].host, &bad);
            dst->node_count = i + 1;
        }
    }
    if (bad) {
        fairlock__url_clear(dst);
        return FAIRLOCK_NOMEM;
    }
    return FAIRLOCK_OK;
}

int fairlock__url_set_tls(fairlock__url *url, const fairlock_options *opts,
                          char *err, size_t errlen) {
    fairlock__tls_config *tls = &url->tls;
    fairlock__tls_ctx_release(tls); /* built from the settings changed here */
    if (opts->tls && !tls->enabled) {
        tls->enabled = 1;
        tls->verify = tls->check_host = 1;
    }
    if (opts->tls_insecure)
        tls->verify = tls->check_host = 0;
    if (replace(&tls->ca_file, opts->tls_ca_file, 0) != 0 ||
        replace(&tls->ca_path, opts->tls_ca_path, 0) != 0 ||
        replace(&tls->cert_file, opts->tls_cert_file, 0) != 0 ||
        replace(&tls->key_file, opts->tls_key_file, 0) != 0 ||
        replace(&tls->server_name, opts->tls_server_name, 0) != 0) {
        snprintf(err, errlen, "out of memory");
        return FAIRLOCK_NOMEM;
    }
    if (!tls->enabled)
        return FAIRLOCK_OK;
#if !FAIRLOCK_HAVE_TLS
    snprintf(err, errlen,
             "TLS is not available: this fairlock was built without it "
             "(FAIRLOCK_TLS=OFF)");
    return FAIRLOCK_INVALID;
#else
    if (url->kind == FAIRLOCK__URL_UNIX) {
        snprintf(err, errlen, "TLS is for TCP connections, not unix://");
        return FAIRLOCK_INVALID;
    }
    if ((tls->cert_file == NULL) != (tls->key_file == NULL)) {
        snprintf(err, errlen,
                 "a TLS client certificate needs its key, and a key its "
                 "certificate (ssl_certfile and ssl_keyfile, or "
                 "tls_cert_file and tls_key_file)");
        return FAIRLOCK_INVALID;
    }
    return FAIRLOCK_OK;
#endif
}
