/* version.c -- the runtime version, to compare with the header's macros. */
#include "fairlock.h"

const char *fairlock_version(void) { return FAIRLOCK_VERSION_STRING; }

int fairlock_version_number(void) { return FAIRLOCK_VERSION_NUMBER; }
