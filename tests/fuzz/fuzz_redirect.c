/* fuzz_redirect.c -- libFuzzer target for cluster redirect parsing: the
 * text of a MOVED or ASK error reply, as from a hostile or broken node. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* hiredis hands error replies over as C strings. */
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *asked[2] = {"127.0.0.1", NULL};
    for (int i = 0; i < 2; i++) {
        char host[16];
        int port = 0;
        memset(host, 'x', sizeof host);
        if (fairlock__parse_redirect(text, asked[i], host, sizeof host,
                                     &port) == 0 &&
            (port <= 0 || memchr(host, '\0', sizeof host) == NULL ||
             host[0] == '\0'))
            abort(); /* a redirect names a node that can be connected to */
    }
    free(text);
    return 0;
}
