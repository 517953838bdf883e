/* errors.c -- result codes, their strings, and the per-handle detail. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *fairlock_strerror(int code) {
    switch ((fairlock_code)code) {
#define FAIRLOCK_STRERROR_CASE(name, number, text)                             \
    case FAIRLOCK_##name:                                                      \
        return text;
        FAIRLOCK_CODE_LIST(FAIRLOCK_STRERROR_CASE)
#undef FAIRLOCK_STRERROR_CASE
    }
    return "unknown result code";
}

const char *fairlock_code_name(int code) {
    switch ((fairlock_code)code) {
#define FAIRLOCK_NAME_CASE(name, number, text)                                 \
    case FAIRLOCK_##name:                                                      \
        return "FAIRLOCK_" #name;
        FAIRLOCK_CODE_LIST(FAIRLOCK_NAME_CASE)
#undef FAIRLOCK_NAME_CASE
    }
    return "FAIRLOCK_UNKNOWN";
}

int fairlock__error_set(fairlock__error *err, int code, const char *fmt, ...) {
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int fairlock__ok(fairlock *lock) {
    lock->err.code = FAIRLOCK_OK;
    lock->err.msg[0] = '\0';
    return FAIRLOCK_OK;
}

const char *fairlock_errmsg(const fairlock *lock) {
    if (lock == NULL)
        return "no handle (out of memory?)";
    return lock->err.msg;
}

int fairlock_errcode(const fairlock *lock) {
    return lock == NULL ? FAIRLOCK_NOMEM : lock->err.code;
}
