/* tls.h -- a TLS client session over memory buffers, for the engine. */
#ifndef FAIRLOCK_TLS_H
#define FAIRLOCK_TLS_H

#include <stddef.h>

#include "internal.h"

/* The session never touches the socket: the engine hands it what it
 * received and sends what it has to send, so writes go through the
 * engine's send(MSG_NOSIGNAL) and a closed peer never raises SIGPIPE, and
 * so the same session works under any event loop. */
typedef struct fairlock__tls fairlock__tls;

/* Builds cfg->ctx from cfg's settings (CAs loaded, client certificate
 * checked against its key, TLS 1.2 at least) unless it is there, or TLS is
 * off.  A failure leaves it NULL: each connection then tries again and
 * reports why.  One context serves every connection of the handle and its
 * renewal thread (a copy made by fairlock__url_copy takes a reference):
 * OpenSSL (1.1.0 and later) lets threads make sessions from one context
 * at once as long as nobody changes it, which nobody does once it is
 * built, and counts its references atomically. */
void fairlock__tls_prepare(fairlock__tls_config *cfg);
/* Another reference to cfg->ctx, for a copy of cfg (no-op when NULL). */
void fairlock__tls_ctx_ref(fairlock__tls_config *cfg);
/* Drops cfg's reference to its context and sets it NULL. */
void fairlock__tls_ctx_release(fairlock__tls_config *cfg);

/* A session for a connection to host:port with these settings (cfg->ctx
 * when built, else a context made for it), the name to verify and send as
 * SNI: server_name, else host.  NULL with err set (FAIRLOCK_REDIS, or
 * FAIRLOCK_NOMEM). */
fairlock__tls *fairlock__tls_new(const fairlock__tls_config *cfg,
                                 const char *host, int port,
                                 fairlock__error *err);
void fairlock__tls_free(fairlock__tls *tls);

/* Advances the handshake: 1 done, 0 waiting for the server, -1 failed
 * with err saying why (an unverifiable or expired certificate, a name
 * mismatch, a plain-text port, a client certificate refused). */
int fairlock__tls_handshake(fairlock__tls *tls, fairlock__error *err);
/* Encrypts plaintext into the bytes to send.  0, or -1 with err set. */
int fairlock__tls_encrypt(fairlock__tls *tls, const char *buf, size_t len,
                          fairlock__error *err);
/* The encrypted bytes waiting to be sent (their count, and *data); then
 * fairlock__tls_sent() with how many were. */
size_t fairlock__tls_pending(fairlock__tls *tls, const char **data);
void fairlock__tls_sent(fairlock__tls *tls, size_t n);
/* Bytes received from the socket.  0, or -1 when out of memory. */
int fairlock__tls_received(fairlock__tls *tls, const char *buf, size_t len);
/* Decrypts into buf: the count (> 0), 0 when more must be received first,
 * -1 with err set when the session failed or the server closed it. */
long fairlock__tls_decrypt(fairlock__tls *tls, char *buf, size_t cap,
                           fairlock__error *err);

#endif
