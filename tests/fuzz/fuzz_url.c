/* fuzz_url.c -- libFuzzer target for URL parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    fairlock__url url;
    char err[160];
    if (fairlock__url_parse(text, &url, err, sizeof err) == FAIRLOCK_OK) {
        /* A parsed URL is complete and its numbers are in range. */
        if (url.kind == FAIRLOCK__URL_TCP &&
            (url.host == NULL || url.port < 1 || url.port > 65535))
            abort();
        if (url.kind == FAIRLOCK__URL_UNIX &&
            (url.path == NULL || url.path[0] != '/'))
            abort();
        if (url.db < 0)
            abort();
        fairlock__url_clear(&url);
    } else if (err[0] == '\0' || url.host != NULL || url.password != NULL) {
        abort(); /* failures explain themselves and leak nothing */
    }
    free(text);
    return 0;
}
