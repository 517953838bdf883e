/* output.c -- messages on stderr, and escaping for terminals and JSON. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

void cli_msg(const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* One fprintf, so that the line is written in one piece. */
    fprintf(stderr, "fairlock: %s\n", text);
}

int cli_usage_error(const char *command, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (command != NULL)
        fprintf(stderr, "fairlock %s: %s (see 'fairlock %s --help')\n", command,
                text, command);
    else
        fprintf(stderr, "fairlock: %s (see 'fairlock --help')\n", text);
    return CLI_EXIT_USAGE;
}

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), or 0.
 * Overlong forms, surrogates and values past U+10FFFF are invalid. */
static size_t utf8_length(const unsigned char *s, size_t left) {
    unsigned char c = s[0];
    size_t n;
    unsigned min;
    unsigned value;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80, value = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800, value = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000, value = c & 0x07;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        value = (value << 6) | (s[i] & 0x3f);
    }
    if (value < min || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
        return 0;
    return n;
}

/* Appends the text form of the character at s to buf if it fits; returns
 * the bytes consumed from s (0 when it did not fit). */
static size_t text_char(char *buf, size_t size, size_t *pos,
                        const unsigned char *s, size_t left) {
    size_t n = utf8_length(s, left);
    char esc[5];
    const char *piece;
    size_t piece_len;
    if (n == 1 && (s[0] < 0x20 || s[0] == 0x7f))
        n = 0;
    if (n == 0) {
        snprintf(esc, sizeof esc, "\\x%02x", s[0]);
        piece = esc, piece_len = 4, n = 1;
    } else if (n == 1 && s[0] == '\\') {
        piece = "\\\\", piece_len = 2;
    } else {
        piece = (const char *)s, piece_len = n;
    }
    if (*pos + piece_len >= size)
        return 0;
    memcpy(buf + *pos, piece, piece_len);
    *pos += piece_len;
    return n;
}

size_t cli_text(char *buf, size_t size, const char *s, size_t len) {
    size_t pos = 0, i = 0;
    if (size == 0)
        return 0;
    while (i < len) {
        size_t n = text_char(buf, size, &pos, (const unsigned char *)s + i,
                             len - i);
        if (n == 0)
            break;
        i += n;
    }
    buf[pos] = '\0';
    return pos;
}

void cli_put_text(FILE *out, const char *s, size_t len) {
    char chunk[256];
    size_t i = 0;
    while (i < len) {
        size_t pos = 0;
        while (i < len) {
            size_t n = text_char(chunk, sizeof chunk, &pos,
                                 (const unsigned char *)s + i, len - i);
            if (n == 0)
                break;
            i += n;
        }
        fwrite(chunk, 1, pos, out);
    }
}

void cli_put_json_string(FILE *out, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        size_t n = utf8_length(u + i, len - i);
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c < 0x20 || c == 0x7f || n == 0) {
            fprintf(out, "\\u%04x", c);
            n = 1;
        } else {
            fwrite(u + i, 1, n, out);
        }
        i += n ? n : 1;
    }
    fputc('"', out);
}

int cli_exit_for(int code) {
    switch (code) {
    case FAIRLOCK_REDIS:
    case FAIRLOCK_NOTREPLICATED:
        return CLI_EXIT_UNAVAILABLE;
    case FAIRLOCK_INVALID:
    case FAIRLOCK_MISMATCH: /* the name is another kind: fix the command */
        return CLI_EXIT_USAGE;
    case FAIRLOCK_NOMEM:
        return CLI_EXIT_OSERR;
    default:
        return CLI_EXIT_SOFTWARE;
    }
}

void cli_duration(char *buf, size_t size, int64_t ms) {
    if (ms < 0)
        ms = 0;
    if (ms < 10000)
        snprintf(buf, size, "%d.%d s", (int)(ms / 1000),
                 (int)(ms % 1000 / 100));
    else if (ms < 60000)
        snprintf(buf, size, "%d s", (int)(ms / 1000));
    else if (ms < 3600000)
        snprintf(buf, size, "%dm%02ds", (int)(ms / 60000),
                 (int)(ms / 1000 % 60));
    else
        snprintf(buf, size, "%" PRId64 "h%02dm", ms / 3600000,
                 (int)(ms / 60000 % 60));
}

int64_t cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
