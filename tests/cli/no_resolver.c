/* no_resolver.c -- an LD_PRELOAD shim under which no host name resolves,
 * as in a minimal root without /etc/hosts or DNS: getaddrinfo() fails for
 * any name that is not a numeric address, and passes numeric ones on. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stddef.h>

typedef int (*getaddrinfo_fn)(const char *, const char *,
                              const struct addrinfo *, struct addrinfo **);

static int numeric(const char *node) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, node, buf) == 1 ||
           inet_pton(AF_INET6, node, buf) == 1;
}

/* Exported despite the project's hidden default: it must interpose. */
__attribute__((visibility("default"))) int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
            struct addrinfo **res) {
    if (node != NULL && !numeric(node))
        return EAI_NONAME;
    getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    return real != NULL ? real(node, service, hints, res) : EAI_FAIL;
}
