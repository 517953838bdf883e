"""reference_client.py -- a client that behaves exactly like the reference.

The Python `RedisLockFifo` that fairlock is compatible with (stouputils,
`stouputils/lock/redis_fifo.py` with its `RedisTicketQueue` backend from
`stouputils/lock/queue.py`; documented in
/work/shared/reference/RedisLockFifo-reference.txt) makes the same Redis
calls in the same order as this class.  It exists so that tests can run a
fleet that mixes both implementations on one lock name; it depends on
redis-py only (Debian's python3-redis).

What the real code does beyond its document, kept here on purpose because
a fleet has to live with it:

- A queue member is `ticket:qtoken:ts_ms`, where `qtoken` is a uuid4 of the
  queue (not the lock's owner token) and `ts_ms` is
  `int(time.monotonic() * 1000)` of the waiter's own process: a small
  number (time since boot) that means nothing to another machine and is
  nowhere near the server's epoch clock.  (The document's doctest injects a
  wall-clock stamp; the code never writes one.)
- A waiter is the head when the head member's ticket (text before the first
  ':') equals its own ticket, compared as integers.  Two members with the
  same ticket (possible after the seq key was deleted under a live queue)
  both count as the head.
- It registers once per acquire and never again: once its member is gone
  from the queue it can never become the head, and with `timeout=None` it
  waits for ever.
- Stale cleanup (stale = fifo_stale_timeout, else timeout; none when both
  are None) runs before every look at the head and once in release: it
  reads the head member, takes the third ':'-field as ts_ms, and ZREMs the
  head when `time.monotonic() * 1000 - ts_ms >= stale * 1000`.  So a
  reference client evicts a fairlock head only by comparing its own
  monotonic clock with fairlock's epoch stamp: never.
- `acquire` keeps its member in a local variable; `self.queue_member` is
  never set.  A waiter that times out (or fails) therefore leaves its member
  in the queue, and `release` never ZREMs anything (its member is already
  gone after a successful acquire).
- `release` runs the token-checked delete script, then its stale cleanup,
  then "if ZCARD NAME:queue == 0: DEL NAME:queue; DEL NAME:seq" as three
  separate commands.  A member ZADDed between the ZCARD and the first DEL is
  deleted with the queue (its waiter, if it is a reference waiter without a
  timeout, then hangs for ever); an INCR between the two DELs is undone, so
  tickets restart from 1 under a live queue.
- The lease is `PX int(timeout * 1000)` of the acquire's timeout (the
  argument, else the constructor's); None means no expiry.

Usable from the command line too, for trying a mixed fleet by hand:

    python3 tests/reference_client.py --socket PATH NAME [--hold S]
        [--rounds N] [--timeout S] [--stale S]
"""
import time
import uuid

import redis


class LockError(RuntimeError):
    """The reference's LockError."""


class LockTimeoutError(TimeoutError, LockError):
    """The reference's LockTimeoutError."""


class RedisTicketQueue:
    """The reference's Redis ticket queue (INCR + ZADD)."""

    def __init__(self, name, client, stale_timeout=None):
        self.name = name
        self.client = client
        self.stale_timeout = stale_timeout

    def register(self):
        ticket = int(self.client.incr(f"{self.name}:seq"))
        ts_ms = int(time.monotonic() * 1000)
        token = uuid.uuid4().hex
        member = f"{ticket}:{token}:{ts_ms}"
        self.client.zadd(f"{self.name}:queue", {member: ticket})
        return ticket, member

    def is_head(self, ticket):
        head = self.client.zrange(f"{self.name}:queue", 0, 0)
        if not head:
            return False
        head_member = head[0].decode()
        try:
            head_ticket = int(head_member.split(":")[0])
        except Exception:
            return False
        return head_ticket == ticket

    def remove(self, member):
        try:
            self.client.zrem(f"{self.name}:queue", member)
        except Exception:
            pass

    def cleanup_stale(self):
        stale = self.stale_timeout
        if stale is None:
            return
        try:
            head = self.client.zrange(f"{self.name}:queue", 0, 0)
            if not head:
                return
            head_member = head[0].decode()
            parts = head_member.split(":")
            if len(parts) < 3:
                return
            ts_ms = int(parts[2])
            age = (time.monotonic() * 1000) - ts_ms
            if age >= (stale * 1000):
                try:
                    self.client.zrem(f"{self.name}:queue", head_member)
                except Exception:
                    pass
        except Exception:
            pass

    def is_empty(self):
        try:
            return int(self.client.zcard(f"{self.name}:queue")) == 0
        except Exception:
            return False

    def maybe_cleanup(self):
        try:
            if not self.is_empty():
                return
            try:
                self.client.delete(f"{self.name}:queue")
                self.client.delete(f"{self.name}:seq")
            except Exception:
                pass
        except Exception:
            pass


class RedisLockFifo:
    """The reference's RedisLockFifo, call for call."""

    RELEASE_SCRIPT = """
    if redis.call('get', KEYS[1]) == ARGV[1] then
        return redis.call('del', KEYS[1])
    else
        return 0
    end
    """

    def __init__(self, name, redis_client=None, timeout=None, blocking=True,
                 check_interval=0.05, fifo=True, fifo_stale_timeout=None):
        self.name = name
        self.client = redis_client
        self.timeout = timeout
        self.blocking = blocking
        self.check_interval = check_interval
        self.fifo = fifo
        self.fifo_stale_timeout = fifo_stale_timeout
        self.token = None
        self.queue_member = None  # never set by acquire (as in the original)
        self.queue = None
        # Not in the original: the member of the acquire in progress, so a
        # test can tell which queue entry is this client's.  Read-only use.
        self.last_member = None
        self.last_ticket = None

    def ensure_client(self):
        if self.client is None:
            self.client = redis.Redis()
        return self.client

    def acquire(self, timeout=None, blocking=None, check_interval=None):
        if blocking is None:
            blocking = self.blocking
        if timeout is None:
            timeout = self.timeout
        if check_interval is None:
            check_interval = self.check_interval
        deadline = None if timeout is None else (time.monotonic() + timeout)
        self.client = self.ensure_client()
        token = uuid.uuid4().hex

        if not self.fifo:
            while True:
                px = None if timeout is None else int((timeout or 0) * 1000)
                try:
                    ok = self.client.set(self.name, token, nx=True, px=px)
                except Exception as exc:
                    raise LockError(str(exc)) from exc
                if ok:
                    self.token = token
                    return
                if not blocking:
                    raise LockTimeoutError(
                        "Lock is already held and blocking is False")
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"Timeout while waiting for redis lock '{self.name}'")
                time.sleep(check_interval)

        try:
            if self.queue is None:
                self.queue = RedisTicketQueue(
                    self.name, self.client,
                    stale_timeout=(self.fifo_stale_timeout
                                   if self.fifo_stale_timeout is not None
                                   else self.timeout))
            ticket, member = self.queue.register()
            self.last_ticket, self.last_member = ticket, member

            while True:
                self.queue.cleanup_stale()
                if not self.queue.is_head(ticket):
                    if not blocking:
                        raise LockTimeoutError(
                            "Lock is already held and blocking is False")
                    if deadline is not None and time.monotonic() >= deadline:
                        raise LockTimeoutError(
                            f"Timeout while waiting for redis lock "
                            f"'{self.name}'")
                    time.sleep(check_interval)
                    continue
                px = None if timeout is None else int((timeout or 0) * 1000)
                try:
                    ok = self.client.set(self.name, token, nx=True, px=px)
                except Exception as exc:
                    raise LockError(str(exc)) from exc
                if ok:
                    self.token = token
                    try:
                        self.queue.remove(member)
                        self.queue_member = None
                    except Exception:
                        pass
                    return
                if not blocking:
                    raise LockTimeoutError(
                        "Lock is already held and blocking is False")
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"Timeout while waiting for redis lock '{self.name}'")
                time.sleep(check_interval)
        except Exception:
            # As in the original: queue_member is None here, so a waiter
            # that times out leaves its member in the queue.
            try:
                if self.queue is not None and self.queue_member is not None:
                    self.queue.remove(self.queue_member)
                    self.queue_member = None
            except Exception:
                pass
            raise

    def release(self):
        if not self.token:
            return
        self.client = self.ensure_client()
        try:
            self.client.eval(self.RELEASE_SCRIPT, 1, self.name, self.token)
        finally:
            try:
                if self.queue_member is not None:
                    self.client.zrem(f"{self.name}:queue", self.queue_member)
            except Exception:
                pass
            self.queue_member = None
            self.token = None
            try:
                if self.queue is not None:
                    try:
                        self.queue.cleanup_stale()
                    except Exception:
                        pass
                    try:
                        self.queue.maybe_cleanup()
                    except Exception:
                        pass
            except Exception:
                pass

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release()


def _main(argv=None):
    import argparse
    p = argparse.ArgumentParser(
        description="Take a lock the way the reference RedisLockFifo does.")
    p.add_argument("name")
    p.add_argument("--socket", help="unix socket of the server")
    p.add_argument("--url", help="redis:// or unix:// URL of the server")
    p.add_argument("--hold", type=float, default=0.0,
                   help="seconds to hold the lock (default 0)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--stale", type=float, default=None,
                   help="fifo_stale_timeout")
    p.add_argument("--no-fifo", action="store_true")
    args = p.parse_args(argv)
    if args.socket:
        client = redis.Redis(unix_socket_path=args.socket)
    elif args.url:
        client = redis.Redis.from_url(args.url)
    else:
        client = redis.Redis()
    lock = RedisLockFifo(args.name, client, timeout=args.timeout,
                         fifo=not args.no_fifo,
                         fifo_stale_timeout=args.stale)
    for i in range(args.rounds):
        t0 = time.monotonic()
        lock.acquire()
        print(f"round {i + 1}: acquired after "
              f"{time.monotonic() - t0:.3f} s (ticket {lock.last_ticket})",
              flush=True)
        time.sleep(args.hold)
        lock.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
