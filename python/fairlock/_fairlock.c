/* _fairlock.c -- fairlock._fairlock, the C half of the `fairlock` Python
 * package: the lock type on the C core, argument conversion, the GIL and
 * signals.  fairlock/__init__.py subclasses it as RedisLockFifo and turns
 * a redis-py client into the URL given here; nothing else is in C.
 *
 * One Lock object owns one fairlock handle.  Arguments are checked and
 * converted here, with the GIL held, so that error messages name the
 * Python arguments; the handle is then driven with the GIL released.
 *
 * Threads: a handle may be used by one thread at a time, so every method
 * that touches it first takes the object's own mutex (a PyThread lock,
 * waited for with the GIL released).  Calls on one object from several
 * threads are thus serialized: a call made while another thread waits in
 * acquire() on the same object waits until that acquire returns.  The
 * properties read values cached after each call and never wait.
 *
 * Signals: while acquire() waits, the core polls an interrupt callback
 * every INTERRUPT_CHECK_MS.  The callback takes the GIL and runs
 * PyErr_CheckSignals(); if a handler raised (KeyboardInterrupt on Ctrl-C),
 * the exception is kept, the core leaves the queue and returns
 * FAIRLOCK_INTERRUPTED, and acquire() raises it.  Python runs signal
 * handlers on the main thread only, so only a wait there is interrupted.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fairlock.h"

/* How often a waiting acquire() looks for a signal, in ms. */
#define INTERRUPT_CHECK_MS 50

#if PY_VERSION_HEX < 0x030A0000
static PyObject *Py_NewRef(PyObject *obj) {
    Py_INCREF(obj);
    return obj;
}
static PyObject *Py_XNewRef(PyObject *obj) {
    Py_XINCREF(obj);
    return obj;
}
#endif

static PyObject *LockError;        /* fairlock.LockError(RuntimeError) */
static PyObject *LockTimeoutError; /* (TimeoutError, LockError) */

/* ---------------------------------------------------------------------------
 * The object
 * ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD fairlock *lock; /* NULL until __init__ succeeded */
    PyThread_type_lock mutex;     /* one call on the handle at a time */
    pid_t owner_pid;              /* process that last acquired */

    /* The arguments as given: the reference's attributes. */
    PyObject *name;
    PyObject *timeout;
    PyObject *check_interval;
    PyObject *fifo_stale_timeout;
    PyObject *ttl;
    int blocking;
    int fifo;
    int auto_renew;
    int fencing;
    int hash_tag;
    int64_t permits; /* a semaphore's N, else 0 */
    int rwlock;
    int shared;

    /* Cached after every call on the handle, for the properties. */
    PyObject *token; /* str, or None */
    int64_t ticket;
    int64_t fence;
    int64_t permit;

    /* The exception a signal handler raised while acquire() waited, kept
     * by the interrupt callback (which holds the GIL then). */
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *pending;
#else
    PyObject *pending_type, *pending_value, *pending_tb;
#endif

    /* AsyncLock only (fairlock.asyncio): the Python callables the C
     * callbacks call, an exception one of them raised (kept for the method
     * that made the C call), and the operation in progress. */
    PyObject *watch_cb; /* watch(fd, events, timeout_ms) */
    PyObject *done_cb;  /* done(code, value_or_exception) */
    PyObject *cb_error; /* exception instance, or NULL */
    int op;             /* ASYNC_* of the operation in progress */
} LockObject;

static int has_pending(const LockObject *self) {
#if PY_VERSION_HEX >= 0x030C0000
    return self->pending != NULL;
#else
    return self->pending_type != NULL;
#endif
}

/* Moves the current exception into the object. */
static void keep_pending(LockObject *self) {
#if PY_VERSION_HEX >= 0x030C0000
    self->pending = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&self->pending_type, &self->pending_value, &self->pending_tb);
#endif
}

/* Raises the kept exception again. */
static void raise_pending(LockObject *self) {
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(self->pending);
    self->pending = NULL;
#else
    PyErr_Restore(self->pending_type, self->pending_value, self->pending_tb);
    self->pending_type = self->pending_value = self->pending_tb = NULL;
#endif
}

/* ---------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------- */

#define DUR_NONE 1     /* None is accepted and gives none_ms */
#define DUR_INF 2      /* math.inf is accepted and gives FAIRLOCK_FOREVER */
#define DUR_POSITIVE 4 /* 0 is rejected */

/* Converts a duration in seconds (a real number, not a bool) to ms with
 * fairlock_seconds_to_ms(), or raises TypeError / ValueError naming it. */
static int duration_arg(PyObject *obj, const char *what, int flags,
                        int64_t none_ms, int64_t *out) {
    const char *or_none = (flags & DUR_NONE) ? " or None" : "";
    if (obj == Py_None) {
        if (flags & DUR_NONE) {
            *out = none_ms;
            return 0;
        }
        PyErr_Format(PyExc_TypeError,
                     "%s must be a number of seconds, not None", what);
        return -1;
    }
    if (PyBool_Check(obj) || !PyNumber_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a number of seconds%s, not '%.100s'", what,
                     or_none, Py_TYPE(obj)->tp_name);
        return -1;
    }
    double seconds = PyFloat_AsDouble(obj);
    if (seconds == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s is too large: at most 2**53 ms",
                         what);
        } else if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%s must be a number of seconds%s, not '%.100s'", what,
                         or_none, Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    if (isnan(seconds)) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a number of seconds, not NaN", what);
        return -1;
    }
    if (seconds < 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s must not be negative (got %R seconds)", what, obj);
        return -1;
    }
    if (isinf(seconds)) {
        if (flags & DUR_INF) {
            *out = FAIRLOCK_FOREVER;
            return 0;
        }
        PyErr_Format(PyExc_ValueError, "%s must be finite, not %R", what, obj);
        return -1;
    }
    int64_t ms;
    if (fairlock_seconds_to_ms(seconds, &ms) != FAIRLOCK_OK) {
        PyErr_Format(PyExc_ValueError,
                     "%s is too large (%R seconds): at most 2**53 ms", what,
                     obj);
        return -1;
    }
    if (ms == 0 && (flags & DUR_POSITIVE)) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be greater than 0 seconds, not %R", what, obj);
        return -1;
    }
    *out = ms;
    return 0;
}

/* A flag: a bool, or an int taken as a bool.  Anything else is a TypeError,
 * so that a string such as "false" is not silently taken as true. */
static int flag_arg(PyObject *obj, const char *what, int *out) {
    if (!PyLong_Check(obj)) { /* bool is a subclass of int */
        PyErr_Format(PyExc_TypeError, "%s must be a bool, not '%.100s'", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int truth = PyObject_IsTrue(obj);
    if (truth < 0)
        return -1;
    *out = truth;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Calls on the handle
 * ------------------------------------------------------------------------- */

/* Takes the object's mutex, waiting with the GIL released; a signal handler
 * that raises meanwhile ends the wait.  Returns 0, or -1 with an exception
 * set. */
static int enter(LockObject *self) {
    if (self->lock == NULL) {
        PyErr_SetString(LockError, "RedisLockFifo.__init__() has not run");
        return -1;
    }
    if (PyThread_acquire_lock(self->mutex, NOWAIT_LOCK))
        return 0;
    for (;;) {
        PyLockStatus got;
        Py_BEGIN_ALLOW_THREADS
        got = PyThread_acquire_lock_timed(self->mutex, -1, 1);
        Py_END_ALLOW_THREADS
        if (got == PY_LOCK_ACQUIRED)
            return 0;
        if (got == PY_LOCK_INTR && PyErr_CheckSignals() < 0)
            return -1;
    }
}

static void leave(LockObject *self) { PyThread_release_lock(self->mutex); }

/* Copies what the properties show from the handle.  Called with the mutex
 * and the GIL held, and no exception set. */
static void update_cache(LockObject *self) {
    const char *token = fairlock_token(self->lock);
    PyObject *text = token ? PyUnicode_FromString(token) : NULL;
    if (text == NULL) {
        PyErr_Clear();
        text = Py_NewRef(Py_None);
    }
    PyObject *old = self->token;
    self->token = text;
    Py_XDECREF(old);
    self->ticket = fairlock_ticket(self->lock);
    self->fence = fairlock_fence(self->lock);
    self->permit = fairlock_permit(self->lock);
}

/* The exception for result code `code` of the last call on the handle,
 * with its detail: LockTimeoutError, ValueError, MemoryError or LockError
 * (a new reference, or NULL with an exception set).  LockErrors carry the
 * code's name in their `code` attribute. */
static PyObject *code_exception(LockObject *self, int code) {
    if (code == FAIRLOCK_NOMEM)
        return PyObject_CallObject(PyExc_MemoryError, NULL);
    const char *detail = fairlock_errmsg(self->lock);
    if (detail == NULL || *detail == '\0')
        detail = fairlock_strerror(code);
    PyObject *type = code == FAIRLOCK_TIMEOUT   ? LockTimeoutError
                     : code == FAIRLOCK_INVALID ? PyExc_ValueError
                                                : LockError;
    PyObject *text = PyUnicode_FromFormat("redis lock %R: %s", self->name,
                                          detail);
    if (text == NULL)
        return NULL;
    PyObject *exc = PyObject_CallFunctionObjArgs(type, text, NULL);
    Py_DECREF(text);
    if (exc == NULL)
        return NULL;
    if (type != PyExc_ValueError) {
        PyObject *name = PyUnicode_FromString(fairlock_code_name(code));
        if (name == NULL || PyObject_SetAttrString(exc, "code", name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(exc);
            return NULL;
        }
        Py_DECREF(name);
    }
    return exc;
}

/* Raises code_exception(self, code).  Returns NULL. */
static PyObject *raise_code(LockObject *self, int code) {
    PyObject *exc = code_exception(self, code);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* The core's interrupt callback, run on the thread waiting in acquire()
 * without the GIL: take the GIL and run the signal handlers. */
static int interrupt_cb(void *arg) {
    LockObject *self = arg;
    PyGILState_STATE gil = PyGILState_Ensure();
    int stop = has_pending(self);
    if (!stop && PyErr_CheckSignals() < 0) {
        keep_pending(self);
        stop = 1;
    }
    PyGILState_Release(gil);
    return stop;
}

static PyObject *do_acquire(LockObject *self, int64_t timeout_ms, int blocking,
                            int64_t check_interval_ms) {
    if (enter(self) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fairlock_acquire_ex(self->lock, timeout_ms, blocking,
                             check_interval_ms);
    if (rc == FAIRLOCK_OK && has_pending(self))
        fairlock_release(self->lock); /* granted as a handler raised */
    Py_END_ALLOW_THREADS
    if (rc == FAIRLOCK_OK)
        self->owner_pid = getpid();
    update_cache(self);
    PyObject *result = NULL;
    if (has_pending(self))
        raise_pending(self);
    else if (rc == FAIRLOCK_OK)
        result = Py_NewRef(Py_True);
    else
        raise_code(self, rc);
    leave(self);
    return result;
}

/* ---------------------------------------------------------------------------
 * Methods
 * ------------------------------------------------------------------------- */

PyDoc_STRVAR(
    acquire_doc,
    "acquire($self, /, timeout=None, blocking=None, check_interval=None)\n"
    "--\n"
    "\n"
    "Wait for the lock, first come first served, take it and return True.\n"
    "Arguments left None take the object's values; timeout=math.inf waits for\n"
    "ever.  Unless the object has a ttl, the timeout is also the lease, as in\n"
    "the reference.\n"
    "\n"
    "Raises LockTimeoutError when the lock is not granted within the timeout,\n"
    "or is taken and blocking is false; LockError when Redis fails or this\n"
    "object already holds the lock.  Ctrl-C while waiting raises\n"
    "KeyboardInterrupt after leaving the queue.");

static PyObject *Lock_acquire(LockObject *self, PyObject *args,
                              PyObject *kwds) {
    static char *kwlist[] = {(char *)"timeout", (char *)"blocking",
                             (char *)"check_interval", NULL};
    PyObject *timeout = Py_None, *blocking = Py_None, *check = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:acquire", kwlist,
                                     &timeout, &blocking, &check))
        return NULL;
    int64_t timeout_ms, check_ms;
    int block = -1;
    if (duration_arg(timeout, "timeout", DUR_NONE | DUR_INF, FAIRLOCK_DEFAULT,
                     &timeout_ms) < 0 ||
        duration_arg(check, "check_interval", DUR_NONE | DUR_POSITIVE,
                     FAIRLOCK_DEFAULT, &check_ms) < 0)
        return NULL;
    if (blocking != Py_None && flag_arg(blocking, "blocking", &block) < 0)
        return NULL;
    return do_acquire(self, timeout_ms, block, check_ms);
}

PyDoc_STRVAR(
    release_doc,
    "release($self, /)\n"
    "--\n"
    "\n"
    "Release the lock and hand it to the next waiter.  Returns True, or False\n"
    "when this object did not hold it: never acquired, already released, or\n"
    "the lease ran out (the reference's release() is silent then too).\n"
    "Raises LockError when Redis fails; calling release() again retries.");

static PyObject *Lock_release(LockObject *self, PyObject *unused) {
    (void)unused;
    if (enter(self) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fairlock_release(self->lock);
    Py_END_ALLOW_THREADS
    update_cache(self);
    PyObject *result = rc == FAIRLOCK_OK         ? Py_NewRef(Py_True)
                       : rc == FAIRLOCK_NOTOWNED ? Py_NewRef(Py_False)
                                                 : raise_code(self, rc);
    leave(self);
    return result;
}

PyDoc_STRVAR(
    extend_doc,
    "extend($self, /, ttl)\n"
    "--\n"
    "\n"
    "Set the remaining lease of the held lock to ttl seconds from now\n"
    "(math.inf: no expiry).  Raises LockError (code FAIRLOCK_NOTOWNED) when\n"
    "the lock is not held by this object any more.");

static PyObject *Lock_extend(LockObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {(char *)"ttl", NULL};
    PyObject *ttl;
    int64_t ttl_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:extend", kwlist, &ttl) ||
        duration_arg(ttl, "ttl", DUR_INF | DUR_POSITIVE, 0, &ttl_ms) < 0)
        return NULL;
    if (enter(self) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fairlock_extend(self->lock, ttl_ms);
    Py_END_ALLOW_THREADS
    update_cache(self);
    PyObject *result = rc == FAIRLOCK_OK ? Py_NewRef(Py_True)
                                         : raise_code(self, rc);
    leave(self);
    return result;
}

/* owned() and locked(): a yes/no question to Redis. */
static PyObject *ask(LockObject *self, int (*question)(fairlock *, int *)) {
    if (enter(self) < 0)
        return NULL;
    int rc, answer = 0;
    Py_BEGIN_ALLOW_THREADS
    rc = question(self->lock, &answer);
    Py_END_ALLOW_THREADS
    PyObject *result = rc == FAIRLOCK_OK ? PyBool_FromLong(answer)
                                         : raise_code(self, rc);
    leave(self);
    return result;
}

PyDoc_STRVAR(
    owned_doc,
    "owned($self, /)\n--\n\nAsk Redis whether this object holds the lock.");

static PyObject *Lock_owned(LockObject *self, PyObject *unused) {
    (void)unused;
    return ask(self, fairlock_owned);
}

PyDoc_STRVAR(
    locked_doc,
    "locked($self, /)\n--\n\nAsk Redis whether anyone holds the lock.");

static PyObject *Lock_locked(LockObject *self, PyObject *unused) {
    (void)unused;
    return ask(self, fairlock_locked);
}

static PyObject *Lock_enter(LockObject *self, PyObject *unused) {
    (void)unused;
    PyObject *ok = do_acquire(self, FAIRLOCK_DEFAULT, -1, FAIRLOCK_DEFAULT);
    if (ok == NULL)
        return NULL;
    Py_DECREF(ok);
    return Py_NewRef((PyObject *)self);
}

static PyObject *Lock_exit(LockObject *self, PyObject *args) {
    (void)args;
    PyObject *released = Lock_release(self, NULL);
    if (released == NULL)
        return NULL;
    Py_DECREF(released);
    Py_RETURN_FALSE;
}

static PyMethodDef Lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Lock_acquire,
     METH_VARARGS | METH_KEYWORDS, acquire_doc},
    {"release", (PyCFunction)Lock_release, METH_NOARGS, release_doc},
    {"extend", (PyCFunction)(void (*)(void))Lock_extend,
     METH_VARARGS | METH_KEYWORDS, extend_doc},
    {"owned", (PyCFunction)Lock_owned, METH_NOARGS, owned_doc},
    {"locked", (PyCFunction)Lock_locked, METH_NOARGS, locked_doc},
    {"__enter__", (PyCFunction)Lock_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nAcquire the lock (acquire() with the "
     "object's values); return the object."},
    {"__exit__", (PyCFunction)Lock_exit, METH_VARARGS,
     "__exit__($self, exc_type, exc_value, traceback, /)\n--\n\n"
     "Release the lock; an exception of the block goes on."},
    {NULL, NULL, 0, NULL}};

/* ---------------------------------------------------------------------------
 * Properties
 * ------------------------------------------------------------------------- */

static PyObject *get_object(LockObject *self, void *offset) {
    PyObject *value = *(PyObject **)((char *)self + (size_t)offset);
    return Py_NewRef(value ? value : Py_None);
}

static PyObject *get_flag(LockObject *self, void *offset) {
    return PyBool_FromLong(*(int *)((char *)self + (size_t)offset));
}

static PyObject *get_ticket(LockObject *self, void *unused) {
    (void)unused;
    return PyLong_FromLongLong(self->ticket);
}

static PyObject *get_fence(LockObject *self, void *unused) {
    (void)unused;
    return PyLong_FromLongLong(self->fence);
}

static PyObject *get_permit(LockObject *self, void *unused) {
    (void)unused;
    return PyLong_FromLongLong(self->permit);
}

static PyObject *get_permits(LockObject *self, void *unused) {
    (void)unused;
    return PyLong_FromLongLong(self->permits);
}

static PyObject *get_held(LockObject *self, void *unused) {
    (void)unused;
    return PyBool_FromLong(self->lock != NULL &&
                           fairlock_state(self->lock) == FAIRLOCK_STATE_HELD);
}

static PyObject *get_valid_until(LockObject *self, void *unused) {
    (void)unused;
    int64_t until = self->lock ? fairlock_valid_until_ms(self->lock) : 0;
    if (until <= 0)
        Py_RETURN_NONE;
    if (until == INT64_MAX)
        return PyFloat_FromDouble(INFINITY);
    return PyFloat_FromDouble((double)until / 1000.0);
}

#define OBJECT_FIELD(field) ((void *)offsetof(LockObject, field))

static PyGetSetDef Lock_getset[] = {
    {"name", (getter)get_object, NULL, "The lock's Redis key, as given.",
     OBJECT_FIELD(name)},
    {"timeout", (getter)get_object, NULL, "The timeout given, in seconds.",
     OBJECT_FIELD(timeout)},
    {"check_interval", (getter)get_object, NULL,
     "The check_interval given, in seconds.", OBJECT_FIELD(check_interval)},
    {"fifo_stale_timeout", (getter)get_object, NULL,
     "The fifo_stale_timeout given, in seconds.",
     OBJECT_FIELD(fifo_stale_timeout)},
    {"ttl", (getter)get_object, NULL,
     "The ttl given, in seconds (None: the acquire's timeout).",
     OBJECT_FIELD(ttl)},
    {"blocking", (getter)get_flag, NULL, "Whether acquire() waits.",
     OBJECT_FIELD(blocking)},
    {"fifo", (getter)get_flag, NULL, "Whether waiters are served in order.",
     OBJECT_FIELD(fifo)},
    {"auto_renew", (getter)get_flag, NULL,
     "Whether a background thread renews the lease.", OBJECT_FIELD(auto_renew)},
    {"fencing", (getter)get_flag, NULL, "Whether grants carry a fencing token.",
     OBJECT_FIELD(fencing)},
    {"hash_tag", (getter)get_flag, NULL,
     "Whether the keys are stored under {name} (Redis Cluster).",
     OBJECT_FIELD(hash_tag)},
    {"token", (getter)get_object, NULL,
     "Owner token of the current grant (the value of the lock key), or "
     "None.",
     OBJECT_FIELD(token)},
    {"ticket", (getter)get_ticket, NULL,
     "Place of the current grant in the FIFO queue; 0 when not held or "
     "fifo=False.",
     NULL},
    {"fence", (getter)get_fence, NULL,
     "Fencing token of the current grant (fencing=True), or 0.", NULL},
    {"permit", (getter)get_permit, NULL,
     "A semaphore's permit held (1 to permits, no two holders alike), or 0.",
     NULL},
    {"permits", (getter)get_permits, NULL,
     "A semaphore's number of permits, or 0.", NULL},
    {"rwlock", (getter)get_flag, NULL, "Whether this is a readers-writer lock.",
     OBJECT_FIELD(rwlock)},
    {"shared", (getter)get_flag, NULL,
     "Whether a readers-writer lock is taken shared (a reader).",
     OBJECT_FIELD(shared)},
    {"held", (getter)get_held, NULL,
     "Whether this object holds the lock, as far as it knows (no I/O).", NULL},
    {"valid_until", (getter)get_valid_until, NULL,
     "Until when the lock is surely held, on the time.monotonic() clock; "
     "math.inf without expiry, None when not held.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

/* ---------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------- */

static PyObject *Lock_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    (void)args;
    (void)kwds;
    LockObject *self = (LockObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->mutex = PyThread_allocate_lock();
    if (self->mutex == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->token = Py_NewRef(Py_None);
    return (PyObject *)self;
}

/* Sets *field to a new reference to value. */
static void set_field(PyObject **field, PyObject *value) {
    PyObject *old = *field;
    *field = Py_NewRef(value);
    Py_XDECREF(old);
}

PyDoc_STRVAR(
    Lock_doc,
    "Lock(name, url=None, timeout=None, blocking=True, check_interval=None, "
    "fifo=True, fifo_stale_timeout=None, *, ttl=None, auto_renew=False, "
    "fencing=False, io_timeout=None, hash_tag=False, permits=0, "
    "rwlock=False, shared=False)\n"
    "--\n"
    "\n"
    "One fairlock handle.  fairlock.RedisLockFifo, the public class, is this\n"
    "type with the reference's constructor; see its documentation.  url is a\n"
    "URL string, or None for the C library's rule ($FAIRLOCK_URL, then\n"
    "$REDIS_URL, then redis://127.0.0.1:6379/0).");

static int Lock_init(LockObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {(char *)"name",
                             (char *)"url",
                             (char *)"timeout",
                             (char *)"blocking",
                             (char *)"check_interval",
                             (char *)"fifo",
                             (char *)"fifo_stale_timeout",
                             (char *)"ttl",
                             (char *)"auto_renew",
                             (char *)"fencing",
                             (char *)"io_timeout",
                             (char *)"hash_tag",
                             (char *)"permits",
                             (char *)"rwlock",
                             (char *)"shared",
                             NULL};
    PyObject *name, *url = Py_None, *timeout = Py_None;
    PyObject *blocking = Py_True, *check = NULL, *fifo = Py_True;
    PyObject *stale = Py_None, *ttl = Py_None, *auto_renew = Py_False;
    PyObject *fencing = Py_False, *io = Py_None, *hash_tag = Py_False;
    PyObject *rwlock = Py_False, *shared = Py_False;
    long long permits = 0;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "O|OOOOOO$OOOOOLOO:RedisLockFifo", kwlist, &name, &url,
            &timeout, &blocking, &check, &fifo, &stale, &ttl, &auto_renew,
            &fencing, &io, &hash_tag, &permits, &rwlock, &shared))
        return -1;
    if (self->lock != NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "RedisLockFifo.__init__() may be called only once");
        return -1;
    }

    fairlock_options opts;
    fairlock_options_init(&opts);
    Py_ssize_t len;
    if (PyUnicode_Check(name)) {
        opts.name = PyUnicode_AsUTF8AndSize(name, &len);
        if (opts.name == NULL)
            return -1;
    } else if (PyBytes_Check(name)) {
        opts.name = PyBytes_AS_STRING(name);
        len = PyBytes_GET_SIZE(name);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "name must be a str or bytes, not '%.100s'",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    if (len == 0) {
        PyErr_SetString(PyExc_ValueError, "name must not be empty");
        return -1;
    }
    opts.name_len = (size_t)len;

    if (duration_arg(timeout, "timeout", DUR_NONE | DUR_INF, FAIRLOCK_FOREVER,
                     &opts.timeout_ms) < 0 ||
        duration_arg(check ? check : Py_None, "check_interval",
                     DUR_NONE | DUR_POSITIVE, opts.check_interval_ms,
                     &opts.check_interval_ms) < 0 ||
        duration_arg(stale, "fifo_stale_timeout", DUR_NONE, FAIRLOCK_DEFAULT,
                     &opts.stale_timeout_ms) < 0 ||
        duration_arg(ttl, "ttl", DUR_NONE | DUR_INF | DUR_POSITIVE,
                     FAIRLOCK_DEFAULT, &opts.ttl_ms) < 0 ||
        duration_arg(io, "io_timeout", DUR_NONE | DUR_POSITIVE,
                     opts.io_timeout_ms, &opts.io_timeout_ms) < 0)
        return -1;
    if (flag_arg(blocking, "blocking", &opts.blocking) < 0 ||
        flag_arg(fifo, "fifo", &opts.fifo) < 0 ||
        flag_arg(auto_renew, "auto_renew", &opts.auto_renew) < 0 ||
        flag_arg(fencing, "fencing", &opts.fencing) < 0 ||
        flag_arg(hash_tag, "hash_tag", &opts.hash_tag) < 0)
        return -1;
    int is_rwlock = 0;
    if (flag_arg(rwlock, "rwlock", &is_rwlock) < 0 ||
        flag_arg(shared, "shared", &opts.shared) < 0)
        return -1;
    opts.permits = permits;
    opts.kind = permits != 0 ? FAIRLOCK_KIND_SEMAPHORE
                : is_rwlock  ? FAIRLOCK_KIND_RWLOCK
                             : FAIRLOCK_KIND_MUTEX;
    if (opts.auto_renew && opts.ttl_ms == FAIRLOCK_FOREVER) {
        PyErr_SetString(PyExc_ValueError,
                        "auto_renew=True needs a finite ttl, not math.inf");
        return -1;
    }

    /* No URL: the core's own rule, so that the binding connects where a
     * C program or the CLI would. */
    if (url != Py_None) {
        if (!PyUnicode_Check(url)) {
            PyErr_Format(PyExc_TypeError,
                         "url must be a redis:// or unix:// URL string, not "
                         "'%.100s'",
                         Py_TYPE(url)->tp_name);
            return -1;
        }
        opts.url = PyUnicode_AsUTF8AndSize(url, &len);
        if (opts.url == NULL)
            return -1;
        if ((Py_ssize_t)strlen(opts.url) != len) {
            PyErr_SetString(PyExc_ValueError,
                            "the URL contains a NUL character");
            return -1;
        }
    }

    opts.interrupt = interrupt_cb;
    opts.interrupt_arg = self;
    opts.interrupt_check_ms = INTERRUPT_CHECK_MS;
    fairlock *lock = NULL;
    int rc = fairlock_create(&opts, &lock); /* copies every string */
    if (rc != FAIRLOCK_OK) {
        if (lock == NULL || rc == FAIRLOCK_NOMEM)
            PyErr_NoMemory();
        else
            PyErr_Format(rc == FAIRLOCK_INVALID ? PyExc_ValueError : LockError,
                         "%s", fairlock_errmsg(lock));
        fairlock_free(lock);
        return -1;
    }

    PyObject *check_value = check ? Py_NewRef(check) : PyFloat_FromDouble(0.05);
    if (check_value == NULL) {
        fairlock_free(lock);
        return -1;
    }
    set_field(&self->name, name);
    set_field(&self->timeout, timeout);
    set_field(&self->check_interval, check_value);
    Py_DECREF(check_value);
    set_field(&self->fifo_stale_timeout, stale);
    set_field(&self->ttl, ttl);
    self->blocking = opts.blocking;
    self->fifo = opts.fifo;
    self->auto_renew = opts.auto_renew;
    self->fencing = opts.fencing;
    self->hash_tag = opts.hash_tag;
    self->permits = opts.permits;
    self->rwlock = is_rwlock;
    self->shared = opts.shared;
    self->lock = lock;
    return 0;
}

static int Lock_traverse(LockObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->name);
    Py_VISIT(self->timeout);
    Py_VISIT(self->check_interval);
    Py_VISIT(self->fifo_stale_timeout);
    Py_VISIT(self->ttl);
    Py_VISIT(self->token);
    Py_VISIT(self->watch_cb);
    Py_VISIT(self->done_cb);
    Py_VISIT(self->cb_error);
    return 0;
}

static int Lock_clear(LockObject *self) {
    Py_CLEAR(self->name);
    Py_CLEAR(self->timeout);
    Py_CLEAR(self->check_interval);
    Py_CLEAR(self->fifo_stale_timeout);
    Py_CLEAR(self->ttl);
    Py_CLEAR(self->token);
    Py_CLEAR(self->watch_cb);
    Py_CLEAR(self->done_cb);
    Py_CLEAR(self->cb_error);
    return 0;
}

/* Frees the handle, which releases a lock it holds and leaves its queue.
 * Not in a forked child that inherited a held handle: the lock is the
 * parent's, and freeing it there would release it under the parent. */
static void Lock_dealloc(LockObject *self) {
    PyObject_GC_UnTrack(self);
    fairlock *lock = self->lock;
    self->lock = NULL;
    /* fairlock_free() tells the watcher it goes (FAIRLOCK_EV_FREED), but
     * it runs here without the GIL: the Python watcher must not be
     * called, and fairlock.asyncio stopped watching the socket first. */
    if (lock != NULL && self->watch_cb != NULL)
        fairlock_async_set_watcher(lock, NULL, NULL);
    if (lock != NULL) {
        int state = fairlock_state(lock);
        int inherited = self->owner_pid != 0 && self->owner_pid != getpid() &&
                        (state == FAIRLOCK_STATE_HELD ||
                         state == FAIRLOCK_STATE_PENDING);
        if (!inherited) {
            Py_BEGIN_ALLOW_THREADS
            fairlock_free(lock);
            Py_END_ALLOW_THREADS
        }
    }
    Lock_clear(self);
    if (self->mutex != NULL)
        PyThread_free_lock(self->mutex);
    /* A subclass's instance: subtype_dealloc drops the type afterwards. */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* clang-format takes PyVarObject_HEAD_INIT for an expression. */
/* clang-format off */
static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "fairlock._fairlock.Lock",
    .tp_basicsize = sizeof(LockObject),
    .tp_dealloc = (destructor)Lock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Lock_doc,
    .tp_traverse = (traverseproc)Lock_traverse,
    .tp_clear = (inquiry)Lock_clear,
    .tp_methods = Lock_methods,
    .tp_getset = Lock_getset,
    .tp_init = (initproc)Lock_init,
    .tp_new = Lock_new,
};
/* clang-format on */

/* ---------------------------------------------------------------------------
 * AsyncLock: the same handle driven by an event loop (fairlock.asyncio)
 *
 * The non-blocking API of the C library (fairlock_acquire_start() and the
 * rest) on a handle made exactly as Lock makes one.  No call here blocks,
 * so the GIL stays held; the C library's two callbacks call Python
 * callables given by fairlock/asyncio.py: the watcher, told which fd and
 * events to watch and when the timer is due (it calls loop.add_reader()
 * and the like), and the completion of an operation, given the result
 * code and the value or exception the awaiting coroutine gets.  Both run
 * from within the methods below (the library calls them from its start
 * functions, cancel and process, never on another thread), so an
 * exception either callable raises is kept and raised again by the method
 * once the C call has returned.
 * ------------------------------------------------------------------------- */

enum { ASYNC_NONE, ASYNC_ACQUIRE, ASYNC_RELEASE, ASYNC_EXTEND, ASYNC_STATUS };

/* Keeps the current exception for the method that made the C call: the
 * first one wins, later ones are reported as unraisable. */
static void keep_cb_error(LockObject *self) {
    if (self->cb_error != NULL) {
        PyErr_WriteUnraisable(self->done_cb);
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    self->cb_error = PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    self->cb_error = value;
#endif
}

/* Ends a method that called into the library: raises what a callback
 * raised (returning NULL), else returns result (stolen). */
static PyObject *async_return(LockObject *self, PyObject *result) {
    if (self->cb_error == NULL)
        return result;
    Py_XDECREF(result);
    PyObject *exc = self->cb_error;
    self->cb_error = NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static void async_watch(fairlock *lock, int fd, int events, int64_t timeout_ms,
                        void *arg) {
    (void)lock;
    LockObject *self = arg;
    if (self->watch_cb == NULL)
        return;
    PyObject *r = PyObject_CallFunction(self->watch_cb, "iiL", fd, events,
                                        (long long)timeout_ms);
    if (r == NULL)
        keep_cb_error(self);
    Py_XDECREF(r);
}

/* Calls done(code, value); value is stolen (NULL: an exception is set,
 * which is then what the operation gives). */
static void async_finish(LockObject *self, int code, PyObject *value) {
    if (value == NULL) {
        keep_cb_error(self);
        value = Py_NewRef(Py_None);
        code = FAIRLOCK_NOMEM;
    }
    if (self->done_cb != NULL) {
        PyObject *r = PyObject_CallFunction(self->done_cb, "iO", code, value);
        if (r == NULL)
            keep_cb_error(self);
        Py_XDECREF(r);
    }
    Py_DECREF(value);
}

/* Completion of acquire, release and extend.  The value is what the
 * blocking method returns (True; False for a release of a lock not
 * held) or the exception it raises, built here while fairlock_errmsg()
 * still has the detail. */
static void async_done(fairlock *lock, int code, void *arg) {
    (void)lock;
    LockObject *self = arg;
    int op = self->op;
    self->op = ASYNC_NONE;
    if (op == ASYNC_ACQUIRE && code == FAIRLOCK_OK)
        self->owner_pid = getpid();
    update_cache(self);
    PyObject *value = code == FAIRLOCK_OK ? Py_NewRef(Py_True)
                      : op == ASYNC_RELEASE && code == FAIRLOCK_NOTOWNED
                          ? Py_NewRef(Py_False)
                          : code_exception(self, code);
    async_finish(self, code, value);
}

/* Completion of a snapshot: (locked, owned), as locked() and owned() of
 * the blocking class answer them: someone holds the lock, and this
 * handle's token is one of its holders. */
static void async_status_done(fairlock *lock, int code, fairlock_status *status,
                              void *arg) {
    LockObject *self = arg;
    self->op = ASYNC_NONE;
    PyObject *value;
    if (code != FAIRLOCK_OK || status == NULL) {
        value = code_exception(self,
                               code == FAIRLOCK_OK ? FAIRLOCK_REDIS : code);
    } else {
        const char *mine = fairlock_token(lock);
        int locked = status->holder != NULL || status->holder_count > 0;
        int owned = mine != NULL && status->holder != NULL &&
                    strcmp(status->holder, mine) == 0;
        for (size_t i = 0; mine != NULL && !owned && i < status->holder_count;
             i++) {
            const fairlock_holder *h = fairlock_status_holder(status, i);
            owned = h != NULL && h->token != NULL &&
                    strcmp(h->token, mine) == 0;
        }
        value = Py_BuildValue("(OO)", locked ? Py_True : Py_False,
                              owned ? Py_True : Py_False);
    }
    fairlock_status_free(status);
    async_finish(self, code, value);
}

/* The handle, or NULL with LockError set when the object is not usable. */
static fairlock *async_handle(LockObject *self) {
    if (self->lock == NULL)
        PyErr_SetString(LockError, "the lock is closed, or __init__() has "
                                   "not run");
    return self->lock;
}

/* The end of a start function: op becomes in progress on FAIRLOCK_OK. */
static PyObject *async_started(LockObject *self, int rc, int op) {
    if (rc == FAIRLOCK_OK)
        self->op = op;
    return async_return(self, rc == FAIRLOCK_OK ? Py_NewRef(Py_None)
                                                : raise_code(self, rc));
}

static PyObject *AsyncLock_set_callbacks(LockObject *self, PyObject *args) {
    PyObject *watch, *done;
    if (!PyArg_ParseTuple(args, "OO:set_callbacks", &watch, &done))
        return NULL;
    fairlock *lock = async_handle(self);
    if (lock == NULL)
        return NULL;
    PyObject *old_watch = self->watch_cb, *old_done = self->done_cb;
    self->watch_cb = watch == Py_None ? NULL : Py_NewRef(watch);
    self->done_cb = done == Py_None ? NULL : Py_NewRef(done);
    Py_INCREF(self);
    /* Calls the new watcher at once with what to watch now. */
    fairlock_async_set_watcher(lock, self->watch_cb ? async_watch : NULL, self);
    Py_XDECREF(old_watch);
    Py_XDECREF(old_done);
    PyObject *r = async_return(self, Py_NewRef(Py_None));
    Py_DECREF(self);
    return r;
}

static PyObject *AsyncLock_start_acquire(LockObject *self, PyObject *args,
                                         PyObject *kwds) {
    static char *kwlist[] = {(char *)"timeout", (char *)"blocking", NULL};
    PyObject *timeout = Py_None, *blocking = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:start_acquire", kwlist,
                                     &timeout, &blocking))
        return NULL;
    int64_t timeout_ms;
    int block = self->blocking;
    if (duration_arg(timeout, "timeout", DUR_NONE | DUR_INF, FAIRLOCK_DEFAULT,
                     &timeout_ms) < 0 ||
        (blocking != Py_None && flag_arg(blocking, "blocking", &block) < 0))
        return NULL;
    fairlock *lock = async_handle(self);
    if (lock == NULL)
        return NULL;
    /* The library's single try is a timeout of 0. */
    if (!block)
        timeout_ms = 0;
    Py_INCREF(self);
    int rc = fairlock_acquire_start(lock, timeout_ms, async_done, self);
    PyObject *r = async_started(self, rc, ASYNC_ACQUIRE);
    Py_DECREF(self);
    return r;
}

static PyObject *AsyncLock_start_release(LockObject *self, PyObject *unused) {
    (void)unused;
    fairlock *lock = async_handle(self);
    if (lock == NULL)
        return NULL;
    Py_INCREF(self);
    int rc = fairlock_release_start(lock, async_done, self);
    PyObject *r;
    if (rc == FAIRLOCK_NOTOWNED) { /* nothing held: no operation */
        update_cache(self);
        r = async_return(self, Py_NewRef(Py_False));
    } else {
        r = async_started(self, rc, ASYNC_RELEASE);
        if (r != NULL) {
            Py_DECREF(r);
            r = Py_NewRef(Py_True);
        }
    }
    Py_DECREF(self);
    return r;
}

static PyObject *AsyncLock_start_extend(LockObject *self, PyObject *args,
                                        PyObject *kwds) {
    static char *kwlist[] = {(char *)"ttl", NULL};
    PyObject *ttl;
    int64_t ttl_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:start_extend", kwlist,
                                     &ttl) ||
        duration_arg(ttl, "ttl", DUR_INF | DUR_POSITIVE, 0, &ttl_ms) < 0)
        return NULL;
    fairlock *lock = async_handle(self);
    if (lock == NULL)
        return NULL;
    Py_INCREF(self);
    int rc = fairlock_extend_start(lock, ttl_ms, async_done, self);
    PyObject *r = async_started(self, rc, ASYNC_EXTEND);
    Py_DECREF(self);
    return r;
}

static PyObject *AsyncLock_start_status(LockObject *self, PyObject *unused) {
    (void)unused;
    fairlock *lock = async_handle(self);
    if (lock == NULL)
        return NULL;
    Py_INCREF(self);
    int rc = fairlock_status_start(lock, 0, async_status_done, self);
    PyObject *r = async_started(self, rc, ASYNC_STATUS);
    Py_DECREF(self);
    return r;
}

static PyObject *AsyncLock_cancel(LockObject *self, PyObject *unused) {
    (void)unused;
    fairlock *lock = async_handle(self);
    if (lock == NULL)
        return NULL;
    Py_INCREF(self);
    int rc = fairlock_async_cancel(lock);
    PyObject *r = async_return(self, PyBool_FromLong(rc == FAIRLOCK_OK));
    Py_DECREF(self);
    return r;
}

static PyObject *AsyncLock_process(LockObject *self, PyObject *arg) {
    int events = PyLong_Check(arg) ? (int)PyLong_AsLong(arg) : -1;
    if (events < 0 || events > (FAIRLOCK_EV_READ | FAIRLOCK_EV_WRITE)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError,
                            "events must be an int from 0 to 3");
        return NULL;
    }
    fairlock *lock = async_handle(self);
    if (lock == NULL)
        return NULL;
    Py_INCREF(self);
    fairlock_async_process(lock, events);
    PyObject *r = async_return(self, Py_NewRef(Py_None));
    Py_DECREF(self);
    return r;
}

static PyObject *AsyncLock_watching(LockObject *self, PyObject *unused) {
    (void)unused;
    fairlock *lock = async_handle(self);
    if (lock == NULL)
        return NULL;
    return Py_BuildValue("(iiL)", fairlock_async_fd(lock),
                         fairlock_async_events(lock),
                         (long long)fairlock_async_timeout(lock));
}

static PyObject *AsyncLock_busy(LockObject *self, PyObject *unused) {
    (void)unused;
    return PyBool_FromLong(self->lock != NULL &&
                           fairlock_async_busy(self->lock));
}

static PyObject *AsyncLock_state(LockObject *self, PyObject *unused) {
    (void)unused;
    return PyLong_FromLong(self->lock ? fairlock_state(self->lock)
                                      : FAIRLOCK_STATE_IDLE);
}

/* Frees the handle now, as its deallocation would: a lock held is
 * released and a queue entry removed, blocking (io_timeout per command).
 * For the interpreter's exit, when no loop runs any more. */
static PyObject *AsyncLock_close(LockObject *self, PyObject *unused) {
    (void)unused;
    fairlock *lock = self->lock;
    self->lock = NULL;
    self->op = ASYNC_NONE;
    if (lock != NULL) /* as in Lock_dealloc */
        fairlock_async_set_watcher(lock, NULL, NULL);
    if (lock != NULL) {
        int state = fairlock_state(lock);
        int inherited = self->owner_pid != 0 && self->owner_pid != getpid() &&
                        (state == FAIRLOCK_STATE_HELD ||
                         state == FAIRLOCK_STATE_PENDING);
        if (!inherited) {
            Py_BEGIN_ALLOW_THREADS
            fairlock_free(lock);
            Py_END_ALLOW_THREADS
        }
    }
    Py_XSETREF(self->token, Py_NewRef(Py_None));
    self->ticket = self->fence = self->permit = 0;
    Py_RETURN_NONE;
}

static PyMethodDef AsyncLock_methods[] = {
    {"set_callbacks", (PyCFunction)AsyncLock_set_callbacks, METH_VARARGS,
     "set_callbacks($self, watch, done, /)\n--\n\n"
     "watch(fd, events, timeout_ms) is told what the loop must watch (it is\n"
     "called at once); done(code, value) gets each operation's outcome."},
    {"start_acquire", (PyCFunction)(void (*)(void))AsyncLock_start_acquire,
     METH_VARARGS | METH_KEYWORDS,
     "start_acquire($self, /, timeout=None, blocking=None)\n--\n\n"
     "Start acquiring; done() gets True or the exception."},
    {"start_release", (PyCFunction)AsyncLock_start_release, METH_NOARGS,
     "start_release($self, /)\n--\n\n"
     "Start releasing and return True; False when nothing is held (no\n"
     "operation is started then)."},
    {"start_extend", (PyCFunction)(void (*)(void))AsyncLock_start_extend,
     METH_VARARGS | METH_KEYWORDS,
     "start_extend($self, /, ttl)\n--\n\nStart extending the lease."},
    {"start_status", (PyCFunction)AsyncLock_start_status, METH_NOARGS,
     "start_status($self, /)\n--\n\n"
     "Start a snapshot; done() gets (locked, owned)."},
    {"cancel", (PyCFunction)AsyncLock_cancel, METH_NOARGS,
     "cancel($self, /)\n--\n\n"
     "Give up the acquire in progress (it completes with\n"
     "FAIRLOCK_INTERRUPTED once the queue entry is gone); False when no\n"
     "acquire is in progress."},
    {"process", (PyCFunction)AsyncLock_process, METH_O,
     "process($self, events, /)\n--\n\n"
     "Advance: events is what the fd is ready for (1 read, 2 write), 0 for\n"
     "the timer."},
    {"watching", (PyCFunction)AsyncLock_watching, METH_NOARGS,
     "watching($self, /)\n--\n\n(fd, events, timeout_ms) to watch now."},
    {"busy", (PyCFunction)AsyncLock_busy, METH_NOARGS,
     "busy($self, /)\n--\n\nWhether an operation is in progress."},
    {"state", (PyCFunction)AsyncLock_state, METH_NOARGS,
     "state($self, /)\n--\n\n"
     "fairlock_state(): 0 idle, 1 held, 2 lost, 3 pending."},
    {"close", (PyCFunction)AsyncLock_close, METH_NOARGS,
     "close($self, /)\n--\n\n"
     "Free the handle now (blocking): release what it holds, leave the\n"
     "queue."},
    {NULL, NULL, 0, NULL}};

PyDoc_STRVAR(AsyncLock_doc,
             "AsyncLock(name, url=None, ...)\n"
             "--\n"
             "\n"
             "One fairlock handle driven by an event loop, with Lock's\n"
             "constructor and properties: the machinery of\n"
             "fairlock.asyncio.RedisLockFifo.  Import that, not this.");

/* clang-format off */
static PyTypeObject AsyncLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "fairlock._fairlock.AsyncLock",
    .tp_basicsize = sizeof(LockObject),
    .tp_dealloc = (destructor)Lock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = AsyncLock_doc,
    .tp_traverse = (traverseproc)Lock_traverse,
    .tp_clear = (inquiry)Lock_clear,
    .tp_methods = AsyncLock_methods,
    .tp_getset = Lock_getset,
    .tp_init = (initproc)Lock_init,
    .tp_new = Lock_new,
};
/* clang-format on */

/* ---------------------------------------------------------------------------
 * The module
 * ------------------------------------------------------------------------- */

PyDoc_STRVAR(
    module_doc,
    "The C half of the fairlock package: the Lock type on the fairlock "
    "C\nlibrary, and the exceptions it raises.  Import fairlock, not "
    "this.");

static struct PyModuleDef fairlock_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fairlock._fairlock",
    .m_doc = module_doc,
    .m_size = -1,
};

/* PyModule_AddObject that also drops the reference on failure. */
static int add_object(PyObject *module, const char *name, PyObject *value) {
    if (value == NULL)
        return -1;
    if (PyModule_AddObject(module, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__fairlock(void) {
    if (PyType_Ready(&LockType) < 0 || PyType_Ready(&AsyncLockType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&fairlock_module);
    if (module == NULL)
        return NULL;
    if (LockError == NULL) {
        LockError = PyErr_NewExceptionWithDoc(
            "fairlock.LockError",
            "A lock operation failed: Redis failed, or the call does not fit "
            "the lock's state.  The `code` attribute names the fairlock "
            "result code (e.g. 'FAIRLOCK_REDIS').",
            PyExc_RuntimeError, NULL);
        if (LockError == NULL)
            goto fail;
    }
    if (LockTimeoutError == NULL) {
        PyObject *bases = PyTuple_Pack(2, PyExc_TimeoutError, LockError);
        if (bases == NULL)
            goto fail;
        LockTimeoutError = PyErr_NewExceptionWithDoc(
            "fairlock.LockTimeoutError",
            "The lock was not granted within the timeout, or was taken and "
            "the call does not wait.",
            bases, NULL);
        Py_DECREF(bases);
        if (LockTimeoutError == NULL)
            goto fail;
    }
    if (add_object(module, "LockError", Py_NewRef(LockError)) < 0 ||
        add_object(module, "LockTimeoutError", Py_NewRef(LockTimeoutError)) <
            0 ||
        add_object(module, "Lock", Py_NewRef((PyObject *)&LockType)) < 0 ||
        add_object(module, "AsyncLock", Py_NewRef((PyObject *)&AsyncLockType)) <
            0 ||
        add_object(module, "__version__",
                   PyUnicode_FromString(fairlock_version())) < 0)
        goto fail;
    return module;
fail:
    Py_DECREF(module);
    return NULL;
}
