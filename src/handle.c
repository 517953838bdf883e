/* handle.c -- options, handle lifetime, accessors and detach. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tls.h"

#define DEFAULT_CHECK_INTERVAL_MS 50
#define DEFAULT_IO_TIMEOUT_MS 5000
#define DEFAULT_INTERRUPT_CHECK_MS 100
#define DEFAULT_WAIT_REPLICAS_TIMEOUT_MS 1000
#define DEFAULT_URL "redis://127.0.0.1:6379/0"
/* Largest duration accepted anywhere: far beyond any real need, and small
 * enough that sums of durations cannot overflow int64_t. */
#define MAX_DURATION_MS ((int64_t)1 << 53)

/* ---------------------------------------------------------------------------
 * Options and handle lifetime
 * ------------------------------------------------------------------------- */

/* The options as 0.1.0 laid them out: what the entry points of 0.1.0
 * (fairlock_options_init, fairlock_create), which programs built against
 * it call, may read and write.  Fields added later come after these. */
#define OPTIONS_SIZE_0_1 (offsetof(fairlock_options, hash_tag) + sizeof(int))

static void options_defaults(fairlock_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->timeout_ms = FAIRLOCK_FOREVER;
    opts->ttl_ms = FAIRLOCK_DEFAULT;
    opts->blocking = 1;
    opts->check_interval_ms = DEFAULT_CHECK_INTERVAL_MS;
    opts->fifo = 1;
    opts->stale_timeout_ms = FAIRLOCK_DEFAULT;
    opts->io_timeout_ms = DEFAULT_IO_TIMEOUT_MS;
    opts->interrupt_check_ms = DEFAULT_INTERRUPT_CHECK_MS;
    opts->wait_replicas_timeout_ms = DEFAULT_WAIT_REPLICAS_TIMEOUT_MS;
}

/* The caller's struct is `size` bytes: that of the header it was compiled
 * with.  Only those are written; a larger struct (a newer header) gets
 * zeros past the fields this library knows. */
void fairlock_options_init_sized(fairlock_options *opts, size_t size) {
    if (opts == NULL)
        return;
    fairlock_options defaults;
    options_defaults(&defaults);
    memset(opts, 0, size);
    memcpy(opts, &defaults, size < sizeof defaults ? size : sizeof defaults);
}

/* The 0.1.0 entry point (the header's macro of that name calls the sized
 * one); the parentheses keep the macro from expanding here. */
void(fairlock_options_init)(fairlock_options *opts) {
    fairlock_options_init_sized(opts, OPTIONS_SIZE_0_1);
}

int fairlock_seconds_to_ms(double seconds, int64_t *ms) {
    if (ms == NULL || isnan(seconds) || seconds < 0 ||
        seconds * 1000.0 > (double)MAX_DURATION_MS)
        return FAIRLOCK_INVALID;
    *ms = (int64_t)ceil(seconds * 1000.0);
    return FAIRLOCK_OK;
}

int fairlock__check_duration(fairlock *lock, const char *what, int64_t value,
                             int64_t min, int allow_forever,
                             int allow_default) {
    if ((allow_forever && value == FAIRLOCK_FOREVER) ||
        (allow_default && value == FAIRLOCK_DEFAULT))
        return FAIRLOCK_OK;
    if (value < min || value > MAX_DURATION_MS)
        return fairlock__fail(
            lock, FAIRLOCK_INVALID,
            "%s is %" PRId64 " ms; it must be from %" PRId64 " to 2^53 ms%s%s",
            what, value, min, allow_forever ? ", or FAIRLOCK_FOREVER" : "",
            allow_default ? ", or FAIRLOCK_DEFAULT" : "");
    return FAIRLOCK_OK;
}

static int check_options(fairlock *lock, const fairlock_options *o) {
    int rc;
    if ((rc = fairlock__check_duration(lock, "timeout_ms", o->timeout_ms, 0, 1,
                                       0)) ||
        (rc = fairlock__check_duration(lock, "ttl_ms", o->ttl_ms, 1, 1, 1)) ||
        (rc = fairlock__check_duration(lock, "check_interval_ms",
                                       o->check_interval_ms, 1, 0, 0)) ||
        (rc = fairlock__check_duration(lock, "stale_timeout_ms",
                                       o->stale_timeout_ms, 0, 0, 1)) ||
        (rc = fairlock__check_duration(lock, "io_timeout_ms", o->io_timeout_ms,
                                       1, 0, 0)) ||
        (rc = fairlock__check_duration(lock, "interrupt_check_ms",
                                       o->interrupt_check_ms, 1, 0, 0)) ||
        (rc = fairlock__check_duration(lock, "wait_replicas_timeout_ms",
                                       o->wait_replicas_timeout_ms, 1, 0, 0)))
        return rc;
    if (o->wait_replicas < 0)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "wait_replicas is %d; it must be 0 or more",
                              o->wait_replicas);
    if (o->kind != FAIRLOCK_KIND_MUTEX && o->kind != FAIRLOCK_KIND_SEMAPHORE &&
        o->kind != FAIRLOCK_KIND_RWLOCK)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "kind is %d; it must be FAIRLOCK_KIND_MUTEX, "
                              "_SEMAPHORE or _RWLOCK",
                              o->kind);
    if (o->kind == FAIRLOCK_KIND_SEMAPHORE &&
        (o->permits < 1 || o->permits > FAIRLOCK_PERMITS_MAX))
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "permits is %" PRId64 "; a semaphore needs 1 to "
                              "%" PRId64,
                              o->permits, FAIRLOCK_PERMITS_MAX);
    if (o->kind != FAIRLOCK_KIND_SEMAPHORE && o->permits != 0)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "permits is set but kind is not "
                              "FAIRLOCK_KIND_SEMAPHORE");
    if (o->kind != FAIRLOCK_KIND_RWLOCK && o->shared)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "shared is set but kind is not "
                              "FAIRLOCK_KIND_RWLOCK");
    /* A non-FIFO request never queues, and the new kinds are all queue:
     * a barging waiter would starve a queued writer. */
    if (o->kind != FAIRLOCK_KIND_MUTEX && !o->fifo)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "a semaphore or readers-writer lock is always "
                              "FIFO; fifo must be 1");
    if (o->auto_renew && o->ttl_ms == FAIRLOCK_FOREVER)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "auto_renew needs a finite lease, but ttl_ms is "
                              "FAIRLOCK_FOREVER");
    return FAIRLOCK_OK;
}

/* Redis Cluster hashes only the part between the first '{' and the next
 * '}' when it is not empty, so such a name keeps all its keys together. */
static int has_hash_tag(const char *name, size_t len) {
    const char *open = memchr(name, '{', len);
    if (open == NULL)
        return 0;
    const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - name));
    return close != NULL && close > open + 1;
}

/* Copies the name and derives the keys. */
static int copy_name_and_keys(fairlock *lock, const char *name, size_t len,
                              int hash_tag, int kind, int64_t permits) {
    lock->name = malloc(len + 1);
    if (lock->name == NULL)
        return FAIRLOCK_NOMEM;
    memcpy(lock->name, name, len);
    lock->name[len] = '\0';
    lock->name_len = len;
    return fairlock__keys_init_kind(&lock->keys, name, len, hash_tag, kind,
                                    permits);
}

/* Parses the URL from the option, $FAIRLOCK_URL, $REDIS_URL or the
 * default, in that order.  A handle on a borrowed context parses one only
 * when it was given explicitly (the renewal thread needs it). */
static int resolve_url(fairlock *lock, const fairlock_options *opts) {
    const char *url = opts->url, *source = "the url option";
    if (url == NULL && opts->redis != NULL)
        return FAIRLOCK_OK;
    if (url == NULL) {
        source = "$FAIRLOCK_URL";
        url = getenv("FAIRLOCK_URL");
    }
    if (url == NULL || *url == '\0') {
        source = "$REDIS_URL";
        url = getenv("REDIS_URL");
    }
    if (url == NULL || *url == '\0') {
        source = "the default URL";
        url = DEFAULT_URL;
    }
    char why[160];
    int rc = fairlock__url_parse(url, &lock->url, why, sizeof why);
    if (rc != FAIRLOCK_OK)
        return fairlock__fail(lock, rc, "%s: %s", source, why);
    lock->has_url = 1;
    return FAIRLOCK_OK;
}

/* Copies `s` into out[size], cut at size - 1 bytes, with control
 * characters (the record's separators among them) replaced by
 * '?': the record stays one line of four fields and cannot drive a
 * terminal that shows it. */
static void clean_copy(char *out, size_t size, const char *s) {
    size_t n = 0;
    for (; s != NULL && s[n] != '\0' && n + 1 < size; n++) {
        unsigned char c = (unsigned char)s[n];
        out[n] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[n] = '\0';
}

/* The identity a handle sends (fairlock_options.identity): host and
 * label, cleaned and capped; the pid is read at each request. */
static void identity_init(fairlock *lock, const char *label) {
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    clean_copy(lock->who_host, sizeof lock->who_host, host);
    clean_copy(lock->who_label, sizeof lock->who_label, label);
    lock->keys.who_host = lock->who_host;
    lock->keys.who_label = lock->who_label;
}

static int create(const fairlock_options *opts, fairlock **out);

/* Only the caller's `size` bytes are read; the fields past them (added
 * after the header it was compiled with) keep their defaults, and fields
 * of a newer header that this library does not know are ignored. */
int fairlock_create_sized(const fairlock_options *opts, size_t size,
                          fairlock **out) {
    if (opts == NULL)
        return create(NULL, out);
    fairlock_options full;
    options_defaults(&full);
    memcpy(&full, opts, size < sizeof full ? size : sizeof full);
    return create(&full, out);
}

int(fairlock_create)(const fairlock_options *opts, fairlock **out) {
    return fairlock_create_sized(opts, OPTIONS_SIZE_0_1, out);
}

static int create(const fairlock_options *opts, fairlock **out) {
    if (out == NULL)
        return FAIRLOCK_INVALID;
    fairlock *lock = calloc(1, sizeof *lock);
    if (lock != NULL && (lock->lease = fairlock__lease_new()) == NULL) {
        free(lock);
        lock = NULL;
    }
    *out = lock;
    if (lock == NULL)
        return FAIRLOCK_NOMEM;
    if (opts == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "options are NULL");
    if (opts->name == NULL)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "the lock name is NULL");
    size_t len = opts->name_len ? opts->name_len : strlen(opts->name);
    if (len == 0)
        return fairlock__fail(lock, FAIRLOCK_INVALID, "the lock name is empty");
    if (len > FAIRLOCK_NAME_MAX)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the lock name is %zu bytes long; the limit is "
                              "%d",
                              len, FAIRLOCK_NAME_MAX);
    int rc = check_options(lock, opts);
    if (rc == FAIRLOCK_OK && opts->auto_renew && opts->redis != NULL &&
        opts->url == NULL)
        rc = fairlock__fail(lock, FAIRLOCK_INVALID,
                            "auto_renew with a borrowed connection also needs "
                            "the url option: the renewal thread opens its "
                            "own connection");
    if (rc == FAIRLOCK_OK)
        rc = resolve_url(lock, opts);
    if (rc == FAIRLOCK_OK &&
        (opts->user != NULL || opts->password != NULL ||
         opts->sentinel_user != NULL || opts->sentinel_password != NULL)) {
        char why[160];
        if (!lock->has_url)
            rc = fairlock__fail(lock, FAIRLOCK_INVALID,
                                "credentials are given but no url: a "
                                "borrowed connection is the caller's to "
                                "authenticate");
        else if ((rc = fairlock__url_set_auth(
                      &lock->url, opts->user, opts->password,
                      opts->sentinel_user, opts->sentinel_password, why,
                      sizeof why)) != FAIRLOCK_OK)
            fairlock__fail(lock, rc, "%s", why);
    }
    int tls_given = opts->tls || opts->tls_insecure ||
                    opts->tls_ca_file != NULL || opts->tls_ca_path != NULL ||
                    opts->tls_cert_file != NULL || opts->tls_key_file != NULL ||
                    opts->tls_server_name != NULL;
    if (rc == FAIRLOCK_OK && tls_given && !lock->has_url)
        rc = fairlock__fail(lock, FAIRLOCK_INVALID,
                            "TLS options are given but no url: a borrowed "
                            "connection is the caller's to set up");
    if (rc == FAIRLOCK_OK && lock->has_url) {
        char why[200];
        if ((rc = fairlock__url_set_tls(&lock->url, opts, why, sizeof why)) !=
            FAIRLOCK_OK)
            fairlock__fail(lock, rc, "%s", why);
        else /* the CA and certificate files read once, not per connection */
            fairlock__tls_prepare(&lock->url.tls);
    }
    if (rc == FAIRLOCK_OK && lock->has_url &&
        lock->url.kind == FAIRLOCK__URL_CLUSTER && !opts->hash_tag &&
        !has_hash_tag(opts->name, len))
        rc = fairlock__fail(lock, FAIRLOCK_INVALID,
                            "in Redis Cluster the lock's keys must share a "
                            "hash slot: use a name with a hash tag such as "
                            "\"{orders}:42\", or set the hash_tag option");
    if (rc == FAIRLOCK_OK &&
        copy_name_and_keys(lock, opts->name, len, opts->hash_tag != 0,
                           opts->kind, opts->permits) != 0)
        rc = FAIRLOCK_NOMEM;
    if (rc == FAIRLOCK_NOMEM) {
        fairlock_free(lock);
        *out = NULL;
    }
    if (rc != FAIRLOCK_OK)
        return rc;
    lock->opts = *opts;
    lock->opts.name = NULL;
    lock->opts.url = NULL;
    lock->opts.redis = NULL;
    /* Copied into lock->url; the caller's may be gone. */
    lock->opts.user = lock->opts.password = NULL;
    lock->opts.sentinel_user = lock->opts.sentinel_password = NULL;
    lock->opts.tls_ca_file = lock->opts.tls_ca_path = NULL;
    lock->opts.tls_cert_file = lock->opts.tls_key_file = NULL;
    lock->opts.tls_server_name = NULL;
    lock->opts.identity_label = NULL;
    if (opts->identity)
        identity_init(lock, opts->identity_label);
    lock->opts.blocking = opts->blocking != 0;
    lock->opts.fifo = opts->fifo != 0;
    lock->opts.auto_renew = opts->auto_renew != 0;
    lock->opts.fencing = opts->fencing != 0;
    lock->opts.shared = opts->shared != 0;
    lock->conn.io_timeout_ms = opts->io_timeout_ms;
    if (opts->redis != NULL) {
        lock->conn.ctx = opts->redis;
        lock->conn.borrowed = 1;
    } else {
        lock->conn.url = &lock->url;
    }
    lock->rank = -1;
    /* The stale timeout as the reference derives it: the option, else
     * the timeout, else (both unset) a liveness window of our choosing. */
    lock->foreign_live_ms = opts->stale_timeout_ms;
    if (lock->foreign_live_ms == FAIRLOCK_DEFAULT)
        lock->foreign_live_ms = opts->timeout_ms == FAIRLOCK_FOREVER
                                    ? FAIRLOCK_DEFAULT_LIVENESS_MS
                                    : opts->timeout_ms;
    lock->usable = 1;
    return fairlock__ok(lock);
}

void fairlock_free(fairlock *lock) {
    if (lock == NULL)
        return;
    /* Inside a callback of the non-blocking API: freed when it returns. */
    if (fairlock__async_free(lock))
        return;
    fairlock__renewer_free(lock->renewer);
    lock->renewer = NULL;
    /* A forked child that frees its copy of the handle must not release the
     * parent's lock. */
    if (lock->usable &&
        (lock->request == FAIRLOCK__REQUEST_HELD ||
         lock->request == FAIRLOCK__REQUEST_PENDING) &&
        lock->request_pid == getpid()) {
        int undone;
        fairlock__request_resolve(lock, &undone);
    }
    fairlock__conn_close(&lock->conn);
    fairlock__url_clear(&lock->url);
    fairlock__keys_clear(&lock->keys);
    free(lock->name);
    fairlock__lease_free(lock->lease);
    free(lock);
}

int fairlock__ready(fairlock *lock) {
    if (!lock->usable)
        return fairlock__fail(lock, FAIRLOCK_INVALID,
                              "the handle was not created successfully");
    return fairlock__conn_ready(&lock->conn, &lock->err);
}

/* ---------------------------------------------------------------------------
 * Accessors
 * ------------------------------------------------------------------------- */

int fairlock_state(fairlock *lock) {
    return lock == NULL ? FAIRLOCK_STATE_IDLE
                        : fairlock__lease_state(lock->lease);
}

int64_t fairlock_valid_until_ms(fairlock *lock) {
    return lock == NULL ? 0 : fairlock__lease_valid_until(lock->lease);
}

int64_t fairlock_ticket(const fairlock *lock) {
    return lock != NULL && lock->request == FAIRLOCK__REQUEST_HELD
               ? lock->ticket
               : 0;
}

int64_t fairlock_fence(const fairlock *lock) {
    return lock != NULL && lock->request == FAIRLOCK__REQUEST_HELD ? lock->fence
                                                                   : 0;
}

int64_t fairlock_permit(const fairlock *lock) {
    return lock != NULL && lock->request == FAIRLOCK__REQUEST_HELD
               ? lock->permit
               : 0;
}

int64_t fairlock_rank(const fairlock *lock) {
    return lock == NULL ? -1 : lock->rank;
}

int fairlock_detach(fairlock *lock) {
    if (lock == NULL)
        return FAIRLOCK_INVALID;
    int rc = fairlock__async_idle(lock);
    if (rc != FAIRLOCK_OK)
        return rc;
    if (lock->request != FAIRLOCK__REQUEST_HELD)
        return fairlock__fail(lock, FAIRLOCK_NOTOWNED,
                              "the lock is not held by this handle");
    /* Nobody will confirm a capped hand-off once the handle lets go: the
     * key would expire with the cap, not with the lease it was asked
     * for. */
    if (fairlock__lease_owed(lock->lease) &&
        (rc = fairlock_extend(lock, lock->lease_ms == 0 ? FAIRLOCK_FOREVER
                                                        : lock->lease_ms)) !=
            FAIRLOCK_OK)
        return rc;
    fairlock__error ignored;
    fairlock__lease_stop(lock->lease, &ignored);
    fairlock__stats_hold_ended(lock);
    fairlock__request_forget(lock);
    return fairlock__ok(lock);
}

const char *fairlock_token(const fairlock *lock) {
    if (lock == NULL || lock->token[0] == '\0')
        return NULL;
    return lock->token;
}

const char *fairlock_name(const fairlock *lock, size_t *len) {
    if (lock == NULL || lock->name == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = lock->name_len;
    return lock->name;
}
