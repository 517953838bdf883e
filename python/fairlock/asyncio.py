"""fairlock.asyncio -- the FIFO-fair locks of fairlock for asyncio.

    import fairlock.asyncio

    async def main():
        lock = fairlock.asyncio.RedisLockFifo("jobs:nightly", redis_client,
                                              timeout=30)
        async with lock:
            ...

RedisLockFifo, RedisSemaphoreFifo and RedisRWLockFifo take the arguments of
the blocking classes of the same names (a redis.asyncio.Redis client is
read for its server as a redis.Redis client is) and have the same methods,
as coroutines: ``await lock.acquire()``, ``await lock.release()``,
``await lock.extend(ttl)``, ``await lock.owned()``, ``await lock.locked()``
and ``async with lock:``.

No thread waits: each lock is one fairlock handle of the C library, driven
by its non-blocking API from the running loop -- the handle's socket is
watched with loop.add_reader()/add_writer() and its timer is a
loop.call_later() -- so a thousand waiting tasks cost a thousand idle
sockets and nothing else.  The wait itself happens on the Redis server.

Cancellation never leaves a lock behind.  Cancelling a task that awaits
acquire() (asyncio.wait_for, asyncio.timeout, task.cancel(), Ctrl-C under
asyncio.run) makes the handle leave the queue; a grant that raced the
cancellation is given back, and the CancelledError reaches the caller once
that is done (a second cancellation stops the waiting, not the cleanup).
A release() whose task is cancelled still releases: the operation runs to
its end on the loop.  So unlike redis-py's redis.asyncio.lock.Lock (redis-py
issue 3847), the object never forgets a lock that Redis still holds for
it: after any cancellation, owned() is True exactly when locked() says so
because of this object, and release() may be called again.

One object runs one operation at a time: calls from several tasks on the
same object wait for each other in turn.  An object is driven by the loop
that last called it.  Every URL the blocking classes take works (Sentinel
and Cluster too); a per-call check_interval is not taken (give it to the
constructor: the C library's non-blocking acquire has none).
"""
from __future__ import annotations

import asyncio
import atexit
import functools
import os
import weakref
from types import TracebackType
from typing import Any, Callable, Optional, Tuple, Type, TypeVar, Union

from . import _where
from ._fairlock import AsyncLock as _AsyncLock
from ._fairlock import LockError, LockTimeoutError

__all__ = ["RedisLockFifo", "RedisSemaphoreFifo", "RedisRWLockFifo",
           "LockError", "LockTimeoutError"]

Seconds = Union[int, float]
_Self = TypeVar("_Self", bound="_AsyncLockBase")

# FAIRLOCK_EV_* of include/fairlock.h.
_READ, _WRITE = 1, 2
# fairlock_state() values (fairlock_state_code).
_HELD, _PENDING = 1, 3

# Every engine, to free at the interpreter's exit those a stopped loop left
# holding or waiting (a KeyboardInterrupt out of loop.run_until_complete()).
_ENGINES: "weakref.WeakSet[_Engine]" = weakref.WeakSet()


def _call(ref: "weakref.ref[_Engine]", method: str, *args: Any) -> None:
    """A callback of the C handle, given to it through a weak reference so
    that the handle does not keep its engine alive."""
    engine = ref()
    if engine is not None:
        getattr(engine, method)(*args)


class _Engine:
    """Drives one handle from an event loop: keeps its fd and timer
    registered as the C library's watcher says, calls process() when they
    fire, and resolves the future of the operation in progress when its
    completion callback comes.  One operation at a time (the mutex)."""

    __slots__ = ("handle", "loop", "fd", "events", "wanted", "timer", "op",
                 "on_idle", "giving_up", "pid", "mutex", "__weakref__")

    def __init__(self, handle: _AsyncLock) -> None:
        self.handle = handle
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.fd = -1
        self.events = 0  # registered with the loop
        self.wanted = 0  # what the library wants now
        self.timer: Optional[asyncio.TimerHandle] = None
        self.op: Optional["asyncio.Future[Any]"] = None
        # Called (soon) once the operation in progress has ended.
        self.on_idle: Optional[Callable[[], None]] = None
        # Whether the operation in progress is given up when interrupted.
        self.giving_up = False
        self.pid = os.getpid()  # of the process that drives it
        self.mutex: Optional[asyncio.Lock] = None
        _ENGINES.add(self)

    # ---- The loop's side --------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drives the handle from `loop` from now on."""
        if self.loop is loop:
            return
        if (self.mutex is not None and self.mutex.locked()
                and self.loop is not None and not self.loop.is_closed()):
            raise RuntimeError("this lock is in use by another event loop")
        # A loop that closed with an operation in progress left it to the
        # next one: begin() ends it first.
        self.op = None
        self.on_idle = None
        if self.pid == os.getpid():
            self.unbind()
        else:  # a forked child's copy of the parent's loop: leave it alone
            self.fd, self.events, self.wanted, self.timer = -1, 0, 0, None
        self.loop = loop
        self.pid = os.getpid()
        self.mutex = asyncio.Lock()
        ref = weakref.ref(self)
        # The watcher is told at once what to watch now.
        self.handle.set_callbacks(functools.partial(_call, ref, "watch"),
                                  functools.partial(_call, ref, "done"))

    def unbind(self) -> None:
        """Stops watching anything on the loop."""
        self._unwatch_fd()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.loop = None

    def _unwatch_fd(self) -> None:
        fd, self.fd, self.events, self.wanted = self.fd, -1, 0, 0
        loop = self.loop
        if fd < 0 or loop is None or loop.is_closed():
            return
        for remove in (loop.remove_writer, loop.remove_reader):
            try:
                remove(fd)
            except OSError:  # already closed (the library says -1 first)
                pass

    # The loop's registrations follow the watcher lazily where that saves
    # work: between two operations the library stops wanting to read, and
    # the next operation wants it again a moment later, so the reader stays
    # registered (one epoll_ctl() less each way) until it fires unwanted
    # (the server closed the connection, or sent what nobody asked for);
    # likewise a timer that is no longer wanted, or wanted later, is left to
    # fire, and process(0) then is harmless.  Writers, which would fire at
    # once, and sockets about to close are dropped at once.
    def watch(self, fd: int, events: int, timeout_ms: int) -> None:
        """The C library's watcher: what to watch, changed.  Told fd -1
        before the library closes a socket, so that it is never left
        registered with the loop's selector after it closed."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if fd < 0:
            events = 0
        if fd != self.fd:
            self._unwatch_fd()
        if fd >= 0:
            self.fd = fd
            added = events & ~self.events
            if added & _READ:
                loop.add_reader(fd, self._ready, _READ)
            if added & _WRITE:
                loop.add_writer(fd, self._ready, _WRITE)
            if self.events & _WRITE and not events & _WRITE:
                loop.remove_writer(fd)
                self.events &= ~_WRITE
            self.events |= events
        self.wanted = events
        if timeout_ms >= 0:
            when = loop.time() + timeout_ms / 1000
            if self.timer is None or when < self.timer.when():
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = loop.call_at(when, self._expired)

    def resync(self) -> None:
        """Registers what the handle wants now: after a callback of the
        handle raised (a signal handler's exception), the watcher may have
        been cut short."""
        self.watch(*self.handle.watching())

    def _ready(self, events: int) -> None:
        wanted = self.wanted
        try:
            # Also when not wanted: a read while idle tells the library
            # that the server closed the connection (it closes it too).
            self.handle.process(events)
        except BaseException:
            self.resync()
            raise
        unwanted = events & self.events & ~wanted & ~self.wanted
        if unwanted and self.loop is not None and self.fd >= 0:
            # Registered, not wanted before nor now: stop watching it.
            if unwanted & _READ:
                self.loop.remove_reader(self.fd)
            if unwanted & _WRITE:
                self.loop.remove_writer(self.fd)
            self.events &= ~unwanted

    def _expired(self) -> None:
        self.timer = None
        try:
            self.handle.process(0)
        except BaseException:
            self.resync()
            raise
        # The timer may have been left from a deadline since moved later,
        # or a loop's timer may fire a hair before the library's clock
        # says it is due; then the watcher was told nothing, so the timer
        # is set again from what is due now.
        if self.timer is None and self.loop is not None:
            timeout_ms = self.handle.watching()[2]
            if timeout_ms >= 0:
                self.timer = self.loop.call_later(timeout_ms / 1000,
                                                  self._expired)

    def done(self, code: int, value: object) -> None:
        """The completion callback of the operation in progress."""
        op, self.op = self.op, None
        if op is not None and not op.done():  # else: cancelled with its task
            if isinstance(value, BaseException):
                op.set_exception(value)
            else:
                op.set_result(value)
        idle, self.on_idle = self.on_idle, None
        if idle is not None and self.loop is not None:
            if op is not None and op.done() and not op.cancelled():
                op.exception()  # an unwind waits: nobody else will look
            self.loop.call_soon(idle)

    # ---- Operations -------------------------------------------------------

    async def begin(self) -> asyncio.AbstractEventLoop:
        """Waits for this object's turn on the running loop."""
        loop = asyncio.get_running_loop()
        self.bind(loop)
        assert self.mutex is not None
        await self.mutex.acquire()
        if self.handle.busy():
            # Orphaned by a loop that closed with it in progress (the mutex
            # is held for each operation until the handle is idle again):
            # ended as an interrupted one is, then it is our turn.
            await asyncio.shield(self._unwind(loop, None, self.giving_up))
            await self.mutex.acquire()
        return loop

    def end(self) -> None:
        if self.mutex is not None and self.mutex.locked():
            self.mutex.release()

    def start(self, loop: asyncio.AbstractEventLoop, start: Any,
              *args: Any) -> Optional["asyncio.Future[Any]"]:
        """Starts an operation (the mutex is ours); its future, or None
        when start() said there was nothing to do."""
        op = loop.create_future()
        self.op = op
        try:
            started = start(*args)
        except BaseException:
            if not self.handle.busy():
                self.op = None
            else:  # started, then a callback raised (a signal handler's)
                self.resync()
            raise
        if started is False:
            self.op = None
            return None
        return op

    async def run(self, start: Any, *args: Any, give_up: bool = False,
                  nothing: object = None) -> Any:
        """Runs one operation to its end and returns its value; `nothing`
        when start() found nothing to do.  When the caller is interrupted
        (cancelled, or an exception thrown in), the operation goes on on
        the loop -- or, with give_up, is cancelled, and what it may have
        got is released -- and the caller waits for that (a second
        cancellation ends the waiting only) before the exception goes on."""
        loop = await self.begin()
        self.giving_up = give_up
        try:
            op = self.start(loop, start, *args)
        except BaseException:
            if not self.handle.busy():
                self.end()
                raise
            await asyncio.shield(self._unwind(loop, None, give_up))
            raise
        if op is None:
            self.end()
            return nothing
        try:
            value = await op
        except BaseException as exc:
            if (op.done() and not op.cancelled()
                    and op.exception() is exc):
                self.end()  # the operation's own failure
                raise
            await asyncio.shield(self._unwind(loop, op, give_up))
            raise
        self.end()
        return value

    def _unwind(self, loop: asyncio.AbstractEventLoop,
                op: Optional["asyncio.Future[Any]"],
                give_up: bool) -> "asyncio.Future[None]":
        """After an interruption: lets the operation in progress end (it
        is cancelled first with give_up), then, with give_up, releases a
        grant the handle got meanwhile or whose fate is unknown; then the
        mutex is free.  Loop callbacks only, no task: asyncio.run()'s final
        cancellation of every task does not cut it short.  The future it
        returns is done when all is over.  (The operation's future may
        have been cancelled with the task: the handle says when it ends.)"""
        over = loop.create_future()
        if op is not None and op.done() and not op.cancelled():
            op.exception()  # retrieved: nobody else will

        def all_over(fut: Optional["asyncio.Future[Any]"] = None) -> None:
            if fut is not None and not fut.cancelled():
                fut.exception()
            self.end()
            if not over.done():
                over.set_result(None)

        def op_over() -> None:
            if give_up and self.handle.state() in (_HELD, _PENDING):
                try:
                    release = self.start(loop, self.handle.start_release)
                except Exception:  # Redis and the like: fairlock_free's
                    release = None
                if release is not None:
                    release.add_done_callback(all_over)
                    return
            all_over()

        if self.handle.busy():
            if give_up:
                self.handle.cancel()
            self.on_idle = op_over
        else:
            op_over()
        return over

    def close(self) -> None:
        """Stops driving and frees the handle now (blocking: releases what
        it holds, leaves the queue)."""
        if self.pid == os.getpid():
            try:
                self.unbind()
            except Exception:  # a loop being torn down
                pass
        # else a forked child's copy: its loop's epoll instance is the
        # parent's, which must keep watching (and the handle leaves the
        # parent's lock alone).
        self.handle.close()


@atexit.register
def _close_all() -> None:
    """At the interpreter's exit, frees the handles that a stopped loop
    left waiting or holding, so that no queue entry or lock stays behind
    for its lease (the handle's deallocation would too, but objects left
    in cycles at exit may never be deallocated)."""
    for engine in list(_ENGINES):
        try:
            if engine.handle.busy() or engine.handle.state() in (_HELD,
                                                                 _PENDING):
                engine.close()
        except Exception:
            pass


def _property(attr: str, doc: str) -> property:
    return property(lambda self: getattr(self._engine.handle, attr), doc=doc)


class _AsyncLockBase:
    """What the asyncio classes share: the handle's properties and the
    coroutines on it."""

    __slots__ = ("_engine", "_client", "__weakref__")

    def _setup(self, client: object, **options: Any) -> None:
        self._client = client
        self._engine = _Engine(_AsyncLock(**options))

    async def acquire(self, timeout: Optional[Seconds] = None,
                      blocking: Optional[bool] = None) -> bool:
        """Wait for the lock, first come first served, take it and return
        True.  Arguments left None take the object's values;
        timeout=math.inf waits for ever (and is the lease unless the
        object has a ttl, as in the blocking class).

        Raises LockTimeoutError when the lock is not granted within the
        timeout, or is taken and blocking is false; LockError when Redis
        fails or this object already holds the lock.  Cancelled, it leaves
        the queue (and gives back a grant that raced the cancellation)
        before the CancelledError goes on."""
        return bool(await self._engine.run(
            self._engine.handle.start_acquire, timeout, blocking,
            give_up=True))

    async def release(self) -> bool:
        """Release the lock and hand it to the next waiter.  True, or
        False when this object did not hold it.  Raises LockError when
        Redis fails (call it again to retry).  A release whose task is
        cancelled goes on to its end."""
        return bool(await self._engine.run(
            self._engine.handle.start_release, nothing=False))

    async def extend(self, ttl: Seconds) -> bool:
        """Set the remaining lease of the held lock to ttl seconds from now
        (math.inf: no expiry).  Raises LockError (code FAIRLOCK_NOTOWNED)
        when the lock is not held by this object any more."""
        return bool(await self._engine.run(
            self._engine.handle.start_extend, ttl))

    async def _status(self) -> Tuple[bool, bool]:
        locked, owned = await self._engine.run(
            self._engine.handle.start_status)
        return bool(locked), bool(owned)

    async def owned(self) -> bool:
        """Ask Redis whether this object holds the lock."""
        return (await self._status())[1]

    async def locked(self) -> bool:
        """Ask Redis whether anyone holds the lock."""
        return (await self._status())[0]

    async def __aenter__(self: _Self) -> _Self:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]],
                        exc_value: Optional[BaseException],
                        traceback: Optional[TracebackType]) -> bool:
        await self.release()
        return False

    def __del__(self) -> None:
        # The handle goes with the object, as a blocking lock's does (a
        # lock still held is released, blocking); first the loop must stop
        # watching its socket.
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()

    @property
    def client(self) -> object:
        """The redis_client (or url) given, or None."""
        return getattr(self, "_client", None)

    name = _property("name", "The lock's Redis key, as given.")
    timeout = _property("timeout", "The timeout given, in seconds.")
    blocking = _property("blocking", "Whether acquire() waits.")
    check_interval = _property("check_interval",
                               "The check_interval given, in seconds.")
    fifo = _property("fifo", "Whether waiters are served in order.")
    fifo_stale_timeout = _property("fifo_stale_timeout",
                                   "The fifo_stale_timeout given, in seconds.")
    ttl = _property("ttl", "The ttl given, in seconds.")
    auto_renew = _property("auto_renew",
                           "Whether the loop renews the lease while held.")
    fencing = _property("fencing", "Whether grants carry a fencing token.")
    hash_tag = _property("hash_tag", "Whether the keys are under {name}.")
    token = _property("token", "Owner token of the current grant, or None.")
    ticket = _property("ticket", "Place of the current grant in the queue.")
    fence = _property("fence", "Fencing token of the current grant, or 0.")
    permit = _property("permit", "A semaphore's permit held, or 0.")
    permits = _property("permits", "A semaphore's number of permits, or 0.")
    held = _property("held", "Whether this object holds the lock, as far "
                     "as it knows (no I/O).")
    valid_until = _property("valid_until", "Until when the lock is surely "
                            "held, on the time.monotonic() clock.")

    def __repr__(self) -> str:
        state = "held" if self.held else "not held"
        return (f"<{type(self).__module__}.{type(self).__qualname__} "
                f"{self.name!r} {state} at {id(self):#x}>")


class RedisLockFifo(_AsyncLockBase):
    """A FIFO-fair lock on Redis for asyncio: fairlock.RedisLockFifo's
    arguments, its methods as coroutines, and ``async with``.

    name               the lock's Redis key (str or bytes).
    redis_client       a redis.asyncio.Redis or redis.Redis client (also a
                       Sentinel master_for() client or a RedisCluster),
                       whose server fairlock connects to on its own
                       connection; or a URL (redis://, rediss://, unix://,
                       redis[s]+sentinel://, redis[s]+cluster://); or None:
                       the C library's rule ($FAIRLOCK_URL, else $REDIS_URL,
                       else redis://127.0.0.1:6379/0).
    timeout            seconds acquire() waits (None: for ever) and, unless
                       ttl is given, the lease of a grant.
    blocking           False: acquire() fails at once if the lock is taken.
    check_interval     seconds between checks of an expired holder.
    fifo               serve waiters in order of arrival.
    fifo_stale_timeout seconds after which a silent waiter is evicted.
    ttl                lease in seconds (math.inf: no expiry).
    auto_renew         renew the lease from the loop (a timer) while held.
    fencing            give every grant a fencing token (the fence property).
    url                same as a URL string as redis_client.
    io_timeout         connect and reply timeout in seconds (default 5).
    hash_tag           store the keys under {name}.
    """

    __slots__ = ()

    def __init__(self, name: Union[str, bytes],
                 redis_client: object = None,
                 timeout: Optional[Seconds] = None,
                 blocking: bool = True,
                 check_interval: Optional[Seconds] = 0.05,
                 fifo: bool = True,
                 fifo_stale_timeout: Optional[Seconds] = None, *,
                 ttl: Optional[Seconds] = None,
                 auto_renew: bool = False,
                 fencing: bool = False,
                 url: Optional[str] = None,
                 io_timeout: Optional[Seconds] = None,
                 hash_tag: bool = False) -> None:
        given, url = _where(redis_client, url)
        self._setup(given, name=name, url=url, timeout=timeout,
                    blocking=blocking, check_interval=check_interval,
                    fifo=fifo, fifo_stale_timeout=fifo_stale_timeout,
                    ttl=ttl, auto_renew=auto_renew, fencing=fencing,
                    io_timeout=io_timeout, hash_tag=hash_tag)


class RedisSemaphoreFifo(_AsyncLockBase):
    """A FIFO-fair counting semaphore for asyncio: up to `permits` holders
    at once, with fairlock.RedisSemaphoreFifo's arguments and
    RedisLockFifo's coroutines.

        async with RedisSemaphoreFifo("gpus", 4, url, ttl=60) as s:
            await train(gpu=s.permit - 1)
    """

    __slots__ = ()

    def __init__(self, name: Union[str, bytes], permits: int,
                 redis_client: object = None,
                 timeout: Optional[Seconds] = None,
                 blocking: bool = True,
                 check_interval: Optional[Seconds] = 0.05,
                 fifo_stale_timeout: Optional[Seconds] = None, *,
                 ttl: Optional[Seconds] = None,
                 auto_renew: bool = False,
                 fencing: bool = False,
                 url: Optional[str] = None,
                 io_timeout: Optional[Seconds] = None,
                 hash_tag: bool = False) -> None:
        if isinstance(permits, bool) or not isinstance(permits, int) or \
                permits < 1:
            raise ValueError("permits must be a positive int, not %r" %
                             (permits,))
        given, url = _where(redis_client, url)
        self._setup(given, name=name, url=url, timeout=timeout,
                    blocking=blocking, check_interval=check_interval,
                    fifo=True, fifo_stale_timeout=fifo_stale_timeout,
                    ttl=ttl, auto_renew=auto_renew, fencing=fencing,
                    io_timeout=io_timeout, hash_tag=hash_tag,
                    permits=permits)

    def __repr__(self) -> str:
        state = ("permit %d held" % self.permit if self.held
                 else "not held")
        return (f"<{type(self).__module__}.{type(self).__qualname__} "
                f"{self.name!r} of {self.permits} {state} at {id(self):#x}>")


class _RWSide(_AsyncLockBase):
    """One side (shared or exclusive) of a RedisRWLockFifo."""

    __slots__ = ("_shared",)
    _shared: bool

    def __repr__(self) -> str:
        side = "read" if self._shared else "write"
        state = "held" if self.held else "not held"
        return (f"<fairlock.asyncio.RedisRWLockFifo {side} side of "
                f"{self.name!r} {state} at {id(self):#x}>")


class RedisRWLockFifo:
    """A FIFO-fair readers-writer lock for asyncio, with
    fairlock.RedisRWLockFifo's arguments: read() and write() return the
    shared and exclusive sides, each with RedisLockFifo's coroutines.

        rw = RedisRWLockFifo("catalog", url, timeout=30)
        async with rw.read():
            ...
    """

    __slots__ = ("_read", "_write", "_client")

    def __init__(self, name: Union[str, bytes],
                 redis_client: object = None,
                 timeout: Optional[Seconds] = None,
                 blocking: bool = True,
                 check_interval: Optional[Seconds] = 0.05,
                 fifo_stale_timeout: Optional[Seconds] = None, *,
                 url: Optional[str] = None, **options: Any) -> None:
        """options: RedisSemaphoreFifo's keyword-only ones (ttl,
        auto_renew, fencing, io_timeout, hash_tag)."""
        given, url = _where(redis_client, url)
        sides = []
        for shared in (True, False):
            side = _RWSide.__new__(_RWSide)
            side._shared = shared
            side._setup(given, name=name, url=url, timeout=timeout,
                        blocking=blocking, check_interval=check_interval,
                        fifo=True, fifo_stale_timeout=fifo_stale_timeout,
                        rwlock=True, shared=shared, **options)
            sides.append(side)
        self._read, self._write = sides
        self._client = given

    def read(self) -> _AsyncLockBase:
        """The shared side: hold it with `async with rw.read():`."""
        return self._read

    def write(self) -> _AsyncLockBase:
        """The exclusive side: hold it with `async with rw.write():`."""
        return self._write

    @property
    def name(self) -> Union[str, bytes]:
        name: Union[str, bytes] = self._read.name
        return name

    @property
    def client(self) -> object:
        """The redis_client (or url) given, or None."""
        return self._client

    def __repr__(self) -> str:
        return (f"<fairlock.asyncio.RedisRWLockFifo {self.name!r} "
                f"at {id(self):#x}>")
