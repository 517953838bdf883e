"""FIFO-fair distributed locks on Redis (the fairlock C library).

RedisLockFifo is a drop-in for the reference Python class of that name:
change the import and keep the code.  RedisSemaphoreFifo (N holders at
once, each with a permit of its own) and RedisRWLockFifo (shared readers,
exclusive writers) are FIFO-fair too, with the same arguments, leases,
renewal and fencing, and work as context managers.  LockError (a RuntimeError) reports
Redis failures and misuse; LockTimeoutError (a TimeoutError and a
LockError) a lock not granted in time, or taken when blocking is false.
"""
from __future__ import annotations

from typing import Optional, Union

from ._fairlock import Lock as _Lock
from ._fairlock import LockError, LockTimeoutError, __version__
from ._redis_url import url_of as _url_of

__all__ = ["RedisLockFifo", "RedisSemaphoreFifo", "RedisRWLockFifo",
           "LockError", "LockTimeoutError", "DEFAULT_URL", "__version__"]

# Where a lock made without redis_client or url connects when neither
# $FAIRLOCK_URL nor $REDIS_URL is set: the C library decides (the binding
# passes it no URL), and documents this default in include/fairlock.h; it
# is also the server redis.Redis() talks to.
DEFAULT_URL = "redis://127.0.0.1:6379/0"

Seconds = Union[int, float]


def _where(redis_client: object, url: Optional[str]):
    """The client as given, and the URL the C library connects to."""
    if url is not None and redis_client is not None:
        raise TypeError("give either redis_client or url, not both")
    given = redis_client if url is None else url
    if url is None and redis_client is not None:
        url = (redis_client if isinstance(redis_client, str)
               else _url_of(redis_client))
    return given, url


class RedisLockFifo(_Lock):
    """A FIFO-fair lock on Redis, a drop-in for the reference's RedisLockFifo
    class (same arguments, methods and keys) on the fairlock C library.

    name               the lock's Redis key (str or bytes).
    redis_client       a redis.Redis client, whose server (host, port, db,
                       unix socket path, username and password; also a
                       Sentinel.master_for() client or a redis.RedisCluster)
                       fairlock connects to on its own connection, TLS
                       settings included; or a URL: redis://, rediss://,
                       unix://, redis[s]+sentinel://, redis[s]+cluster://
                       (percent-encode user and password); or None: the C
                       library's rule, $FAIRLOCK_URL, else $REDIS_URL, else
                       redis://127.0.0.1:6379/0.
    timeout            seconds acquire() waits (None: for ever) and, unless
                       ttl is given, the lease of a grant (None: no expiry).
    blocking           False: acquire() fails at once if the lock is taken.
    check_interval     seconds between checks of an expired holder.
    fifo               serve waiters in order of arrival.
    fifo_stale_timeout seconds after which a silent waiter is evicted
                       (None: timeout, and 10 s when that is None too).
    ttl                lease in seconds (math.inf: no expiry).
    auto_renew         renew the lease from a background thread while held.
    fencing            give every grant a fencing token (the fence property).
    url                same as a URL string as redis_client.
    io_timeout         connect and reply timeout in seconds (default 5).
    hash_tag           store the keys under {name}, one Cluster hash slot.

    One object may be used from several threads, one call at a time (calls
    are serialized); it holds the lock for whoever calls release().
    """

    __slots__ = ("_client",)

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
        super().__init__(name, url, timeout, blocking, check_interval,
                         fifo, fifo_stale_timeout, ttl=ttl,
                         auto_renew=auto_renew, fencing=fencing,
                         io_timeout=io_timeout, hash_tag=hash_tag)
        self._client = given

    @property
    def client(self) -> object:
        """The redis_client (or url) given, or None."""
        return getattr(self, "_client", None)

    def __repr__(self) -> str:
        state = "held" if self.held else "not held"
        return (f"<{type(self).__module__}.{type(self).__qualname__} "
                f"{self.name!r} {state} at {id(self):#x}>")


class RedisSemaphoreFifo(_Lock):
    """A FIFO-fair counting semaphore: up to `permits` holders at once,
    granted in order of arrival; each holder has a permit of its own (the
    permit property, 1 to permits) and, with fencing, a fencing token.

    The arguments are RedisLockFifo's (no fifo: it is always FIFO).  Every
    user of a name must give the same permits: a different number fails
    acquire() with a LockError whose code is "FAIRLOCK_MISMATCH".  A holder
    that dies frees its permit when its lease (ttl, else timeout) ends.

        with RedisSemaphoreFifo("gpus", 4, url, ttl=60, auto_renew=True) as s:
            train(gpu=s.permit - 1)
    """

    __slots__ = ("_client",)

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
        super().__init__(name, url, timeout, blocking, check_interval,
                         True, fifo_stale_timeout, ttl=ttl,
                         auto_renew=auto_renew, fencing=fencing,
                         io_timeout=io_timeout, hash_tag=hash_tag,
                         permits=permits)
        self._client = given

    def __repr__(self) -> str:
        state = ("permit %d held" % self.permit if self.held
                 else "not held")
        return (f"<{type(self).__module__}.{type(self).__qualname__} "
                f"{self.name!r} of {self.permits} {state} at {id(self):#x}>")


class _RWSide(_Lock):
    """One side (shared or exclusive) of a RedisRWLockFifo: a lock of its
    own with RedisLockFifo's methods and context manager."""

    __slots__ = ()

    def __repr__(self) -> str:
        side = "read" if self.shared else "write"
        state = "held" if self.held else "not held"
        return (f"<fairlock.RedisRWLockFifo {side} side of {self.name!r} "
                f"{state} at {id(self):#x}>")


class RedisRWLockFifo:
    """A FIFO-fair readers-writer lock: any number of readers at once, or
    one writer.  Requests are served in order of arrival: a waiting writer
    is not overtaken by readers that come after it, and readers next to
    each other in the queue enter together.

    read() and write() return the two sides, each a lock with acquire(),
    release() and the context manager (one holder each: for several
    readers in one process, make several RedisRWLockFifo objects).  The
    arguments are RedisLockFifo's (no fifo: it is always FIFO).

        rw = RedisRWLockFifo("catalog", url, timeout=30)
        with rw.read():
            ...
        with rw.write():
            ...
    """

    __slots__ = ("_read", "_write", "_client")

    def __init__(self, name: Union[str, bytes],
                 redis_client: object = None,
                 timeout: Optional[Seconds] = None,
                 blocking: bool = True,
                 check_interval: Optional[Seconds] = 0.05,
                 fifo_stale_timeout: Optional[Seconds] = None, *,
                 url: Optional[str] = None, **options: object) -> None:
        """options: RedisSemaphoreFifo's keyword-only ones (ttl,
        auto_renew, fencing, io_timeout, hash_tag)."""
        given, url = _where(redis_client, url)
        sides = []
        for shared in (True, False):
            sides.append(_RWSide(name, url, timeout, blocking,
                                 check_interval, True, fifo_stale_timeout,
                                 rwlock=True, shared=shared, **options))
        self._read, self._write = sides
        self._client = given

    def read(self) -> _Lock:
        """The shared side: hold it with `with rw.read():`."""
        return self._read

    def write(self) -> _Lock:
        """The exclusive side: hold it with `with rw.write():`."""
        return self._write

    @property
    def name(self) -> Union[str, bytes]:
        return self._read.name

    @property
    def client(self) -> object:
        """The redis_client (or url) given, or None."""
        return self._client

    def __repr__(self) -> str:
        return (f"<fairlock.RedisRWLockFifo {self.name!r} "
                f"at {id(self):#x}>")
