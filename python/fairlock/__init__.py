"""FIFO-fair distributed locks on Redis (the fairlock C library).

RedisLockFifo is a drop-in for the reference Python class of that name:
change the import and keep the code.  LockError (a RuntimeError) reports
Redis failures and misuse; LockTimeoutError (a TimeoutError and a
LockError) a lock not granted in time, or taken when blocking is false.
"""
from __future__ import annotations

from typing import Optional, Union

from ._fairlock import Lock as _Lock
from ._fairlock import LockError, LockTimeoutError, __version__
from ._redis_url import url_of as _url_of

__all__ = ["RedisLockFifo", "LockError", "LockTimeoutError", "DEFAULT_URL",
           "__version__"]

# Where a lock made without redis_client or url connects when neither
# $FAIRLOCK_URL nor $REDIS_URL is set: the C library decides (the binding
# passes it no URL), and documents this default in include/fairlock.h; it
# is also the server redis.Redis() talks to.
DEFAULT_URL = "redis://127.0.0.1:6379/0"

Seconds = Union[int, float]


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
        if url is not None and redis_client is not None:
            raise TypeError("give either redis_client or url, not both")
        given = redis_client if url is None else url
        if url is None and redis_client is not None:
            url = (redis_client if isinstance(redis_client, str)
                   else _url_of(redis_client))
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
