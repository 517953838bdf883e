/* engine.h -- one non-blocking Redis connection as a state machine. */
#ifndef FAIRLOCK_ENGINE_H
#define FAIRLOCK_ENGINE_H

#include <stdint.h>

#include "internal.h"

/* The states of a connection, in the order it goes through them.  Any
 * state may end in FAILED (the error says why); a FAILED engine is only
 * freed.  HANDSHAKE is skipped without TLS, SETUP without AUTH or SELECT.
 *
 * Events drive it: the owner polls fairlock__engine_fd() for
 * fairlock__engine_events() and hands what happened to
 * fairlock__engine_handle(); a deadline passed is fairlock__engine_expire().
 * The blocking calls at the end of this header are exactly that, in a
 * poll() loop, as an event loop would do it from outside. */
typedef enum {
    FAIRLOCK__ENGINE_CONNECTING, /* non-blocking connect() in flight */
    FAIRLOCK__ENGINE_HANDSHAKE,  /* TLS handshake */
    FAIRLOCK__ENGINE_SETUP,      /* AUTH and SELECT sent, replies awaited */
    FAIRLOCK__ENGINE_READY,      /* commands are sent and replies read */
    FAIRLOCK__ENGINE_FAILED
} fairlock__engine_state;

typedef struct fairlock__engine fairlock__engine;

/* Where to connect and how to set the connection up.  Strings are copied
 * or used only during fairlock__engine_start. */
typedef struct fairlock__engine_target {
    const char *host; /* TCP; NULL for a unix socket */
    int port;
    const char *path; /* unix socket */
    const char *user; /* AUTH user; NULL: password alone */
    const char *password;
    int db;                          /* SELECT when not 0 */
    fairlock__url_kind kind;         /* for diagnosing setup replies */
    const fairlock__tls_config *tls; /* NULL or not enabled: plain text */
} fairlock__engine_target;

/* Resolves the address (getaddrinfo: the one blocking step, bounded by the
 * resolver's own timeouts) and starts a non-blocking connect.  The socket
 * is close-on-exec.  Returns NULL only when out of memory; any other
 * failure is a FAILED engine with its error set. */
fairlock__engine *fairlock__engine_start(const fairlock__engine_target *target,
                                         int64_t deadline_ms);
void fairlock__engine_free(fairlock__engine *eng);

fairlock__engine_state fairlock__engine_get_state(const fairlock__engine *eng);
/* The failure of a FAILED engine. */
const fairlock__error *fairlock__engine_error(const fairlock__engine *eng);
/* The host it connects to (NULL: a unix socket). */
const char *fairlock__engine_host(const fairlock__engine *eng);

/* The socket to watch and the poll() events it waits for now (POLLIN,
 * POLLOUT); -1 and 0 when FAILED. */
int fairlock__engine_fd(const fairlock__engine *eng);
short fairlock__engine_events(const fairlock__engine *eng);
/* What tells that socket from any other made before or since, also one
 * that reused its fd number (0 when there is none).  A loop that watched
 * a closed socket must drop its registration and make a new one. */
uint64_t fairlock__engine_socket_id(const fairlock__engine *eng);
/* Until when (monotonic ms) the current step may take. */
int64_t fairlock__engine_deadline(const fairlock__engine *eng);
void fairlock__engine_set_deadline(fairlock__engine *eng, int64_t deadline_ms);
/* Advances on what poll() reported for the socket. */
void fairlock__engine_handle(fairlock__engine *eng, short revents);
/* The deadline has passed: the engine fails (a reply still owed may come
 * later, so the connection cannot be used again). */
void fairlock__engine_expire(fairlock__engine *eng);

/* Formats a command (hiredis) behind those queued before; it is written
 * once the connection is READY.  Returns 0, or -1 when out of memory (the
 * engine is then FAILED). */
int fairlock__engine_queue(fairlock__engine *eng, int argc, const char **argv,
                           const size_t *lens);
/* Whether queued bytes are still to be written. */
int fairlock__engine_writing(const fairlock__engine *eng);
/* The next reply to a queued command, if it has arrived; the caller frees
 * it.  NULL when none yet (or FAILED). */
redisReply *fairlock__engine_reply(fairlock__engine *eng);

/* ---- The blocking API: the above in a poll() loop. ---- */

/* Runs the engine until it is READY, or FAILED, or deadline_ms passes (it
 * then fails).  Returns 0 when READY. */
int fairlock__engine_wait_ready(fairlock__engine *eng, int64_t deadline_ms);
/* Runs it until every queued byte is written.  Returns 0, or -1 FAILED. */
int fairlock__engine_wait_written(fairlock__engine *eng, int64_t deadline_ms);
/* Runs it until the next reply arrives.  NULL when it FAILED (on the
 * deadline too). */
redisReply *fairlock__engine_wait_reply(fairlock__engine *eng,
                                        int64_t deadline_ms);

#endif
