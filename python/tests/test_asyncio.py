"""test_asyncio.py -- fairlock.asyncio on one loop against the fixture's
server: the methods, FIFO order between tasks, cancellation at every point
where the loop runs the handle (acquire and release; the redis-py #3847
scenario), the loop's own timer renewing a lease, a redis.asyncio client
mapped to a URL, the semaphore and readers-writer lock.

"No key left" is checked by scanning the server for the lock's keys.
Cancellation points are counted, not timed: the test wraps the engine's
two entry points from the loop (_Engine._ready for the socket and
_Engine._expired for the timer) and cancels the task right after the
handle's k-th step, for k = 0, 1, 2, ... until the operation ends before
step k.
"""
import asyncio
import gc
import math
import os
import resource
import socket
import threading
import unittest

import redis
import redis.asyncio

import fairlock
import fairlock.asyncio as fa
import support
from fairlock._redis_url import url_of

# How long an event may take before the test calls it a failure: only a
# real failure (a hang) reaches it.
DEADLINE = 30


def scan(r, name):
    """Every key of the lock on the server: NAME and NAME:*, by SCAN."""
    found = set(r.scan_iter(match=name)) | set(r.scan_iter(match=name + ":*"))
    return sorted(k.decode() for k in found)


async def eventually(predicate, timeout=DEADLINE):
    """Polls predicate() from the loop until it is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


class Steps:
    """Counts the steps of one handle (each call of its engine from the
    loop, socket or timer) and calls action() after step `at`."""

    def __init__(self):
        self.engine = None
        self.count = 0
        self.at = None
        self.action = None

    def __enter__(self):
        self.saved = fa._Engine._ready, fa._Engine._expired
        ready, expired = self.saved
        steps = self

        def counted(original):
            def step(engine, *args):
                original(engine, *args)
                if engine is steps.engine:
                    steps.count += 1
                    if steps.count == steps.at and steps.action is not None:
                        steps.action()
            return step
        fa._Engine._ready = counted(ready)
        fa._Engine._expired = counted(expired)
        return self

    def __exit__(self, *exc):
        fa._Engine._ready, fa._Engine._expired = self.saved
        return False

    def watch(self, lock, at, action, task):
        """Counts lock's steps from now; action() after step `at`;
        ended is the count when task ended."""
        self.engine = lock._engine
        self.count = 0
        self.at = at
        self.action = action
        self.ended = None
        task.add_done_callback(
            lambda _: setattr(self, "ended", self.count))


class Base(support.ServerTestCase, unittest.IsolatedAsyncioTestCase):

    def lock(self, name, cls=fa.RedisLockFifo, *args, **kwargs):
        kwargs.setdefault("url", self.url)
        return cls(name, *args, **kwargs)

    def assertClean(self, name):
        self.assertEqual(scan(self.redis, name), [])


class Methods(Base):

    async def test_acquire_release_with(self):
        name = support.unique("aio")
        lock = self.lock(name, timeout=10)
        self.assertIs(await lock.acquire(), True)
        self.assertTrue(lock.held)
        self.assertEqual(self.redis.get(name).decode(), lock.token)
        self.assertGreater(lock.ticket, 0)
        self.assertTrue(await lock.owned())
        self.assertTrue(await lock.locked())
        self.assertIs(await lock.release(), True)
        self.assertFalse(lock.held)
        self.assertIsNone(lock.token)
        self.assertIs(await lock.release(), False)
        self.assertFalse(await lock.owned())
        self.assertFalse(await lock.locked())
        async with lock as entered:
            self.assertIs(entered, lock)
            self.assertTrue(await lock.owned())
        self.assertFalse(lock.held)
        with self.assertRaises(KeyError):
            async with lock:
                raise KeyError("body")
        self.assertFalse(lock.held)
        self.assertClean(name)

    async def test_busy_timeout_nonblocking(self):
        name = support.unique("aio-busy")
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=60)
        holder.acquire()
        lock = self.lock(name, timeout=30)
        with self.assertRaises(fairlock.LockTimeoutError) as caught:
            await lock.acquire(blocking=False)
        self.assertEqual(caught.exception.code, "FAIRLOCK_TIMEOUT")
        with self.assertRaises(fairlock.LockTimeoutError):
            await lock.acquire(timeout=0.2)
        self.assertEqual(self.redis.zcard(f"{name}:queue"), 0)
        self.assertFalse(await lock.owned())
        self.assertTrue(await lock.locked())
        holder.release()
        self.assertTrue(await lock.acquire(blocking=False))
        with self.assertRaises(fairlock.LockError) as caught:
            await lock.acquire()
        self.assertEqual(caught.exception.code, "FAIRLOCK_BUSY")
        self.assertTrue(await lock.release())
        self.assertClean(name)

    async def test_extend_fencing_and_properties(self):
        name = support.unique("aio-extend")
        lock = self.lock(name, timeout=5, ttl=10, fencing=True)
        self.assertEqual((lock.name, lock.timeout, lock.ttl, lock.fencing),
                         (name, 5, 10, True))
        with self.assertRaises(fairlock.LockError) as caught:
            await lock.extend(20)
        self.assertEqual(caught.exception.code, "FAIRLOCK_NOTOWNED")
        await lock.acquire()
        self.assertGreater(lock.fence, 0)
        self.assertTrue(await lock.extend(math.inf))
        self.assertEqual(self.redis.pttl(name), -1)
        self.assertEqual(lock.valid_until, math.inf)
        self.assertTrue(await lock.extend(20))
        self.assertGreater(self.redis.pttl(name), 10000)
        with self.assertRaises(ValueError):
            await lock.extend(-1)
        await lock.release()
        self.redis.delete(f"{name}:fence")
        self.assertClean(name)

    async def test_dropped_object_releases(self):
        """An object dropped while it holds the lock releases it, as a
        blocking one does: its socket is first taken off the loop."""
        name = support.unique("aio-drop")
        lock = self.lock(name, timeout=60)
        await lock.acquire()
        self.assertEqual(self.redis.exists(name), 1)
        del lock
        gc.collect()
        self.assertClean(name)
        await asyncio.sleep(0.01)  # the loop runs on without it

    async def test_server_drops_an_idle_connection(self):
        """While idle the loop still watches the handle's socket for
        reads: when the server drops the connection the handle closes it
        at once (no socket left registered), and the next call connects
        again."""
        name = support.unique("aio-dropped")
        lock = self.lock(name, url=self.tcp_url, timeout=10)
        await lock.acquire()
        await lock.release()
        fd = lock._engine.fd
        self.assertGreaterEqual(fd, 0)
        with socket.socket(fileno=os.dup(fd)) as sock:
            host, port = sock.getsockname()[:2]
        self.assertEqual(self.redis.client_kill(f"{host}:{port}"), True)
        self.assertTrue(await eventually(lambda: lock._engine.fd == -1))
        self.assertTrue(await lock.acquire())
        self.assertTrue(await lock.owned())
        self.assertTrue(await lock.release())
        self.assertClean(name)

    async def test_bad_arguments(self):
        with self.assertRaises(TypeError):
            self.lock(5)
        with self.assertRaises(ValueError):
            self.lock("x", timeout=-1)
        with self.assertRaises(TypeError):
            fa.RedisLockFifo("x", redis_client=object())
        lock = self.lock(support.unique("aio-args"))
        with self.assertRaises(TypeError):
            await lock.acquire(timeout="1")
        with self.assertRaises(TypeError):
            await lock.acquire(check_interval=1)  # constructor only

    async def test_renewed_by_the_loop(self):
        """auto_renew on the loop's timer: held for more than twice the
        lease of 2 s, only renewals (every third of it) keep it, and one
        would have to be more than a second late to lose it; no thread was
        started for it."""
        name = support.unique("aio-renew")
        threads = threading.active_count()
        lock = self.lock(name, ttl=2, auto_renew=True)
        await lock.acquire()
        await asyncio.sleep(4.5)
        self.assertTrue(await lock.owned())
        self.assertEqual(threading.active_count(), threads)
        self.assertTrue(await lock.release())
        self.assertClean(name)


class Order(Base):

    async def test_fifo_between_tasks(self):
        """Tasks that queue one after the other get the lock in that
        order, with increasing tickets, across two loops' worth of
        handles: the holder is a blocking lock of this process."""
        name = support.unique("aio-fifo")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=60)
        holder.acquire()
        order = []

        async def waiter(i):
            lock = self.lock(name, timeout=60)
            await lock.acquire()
            order.append((i, lock.ticket))
            await asyncio.sleep(0.002)
            await lock.release()

        tasks = []
        for i in range(20):
            tasks.append(asyncio.ensure_future(waiter(i)))
            self.assertTrue(await eventually(
                lambda: r.zcard(f"{name}:queue") == i + 1),
                f"waiter {i} did not queue up")
        holder.release()
        await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
        self.assertEqual([i for i, _ in order], list(range(20)))
        tickets = [t for _, t in order]
        self.assertEqual(tickets, sorted(set(tickets)))
        self.assertClean(name)

    async def test_many_tasks_many_names(self):
        """1,000 tasks on one loop, 10 per name on 100 names, each taking
        its lock 3 times: never two inside at once, every entry counted,
        no thread started, and no key left."""
        # One connection per lock object: 1,000 of them at once, on the
        # server and in this process.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1500 and hard >= 1500:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1500, hard))
        maxclients = int(self.redis.config_get("maxclients")["maxclients"])
        if maxclients < 1100 or max(soft, hard) < 1500:
            self.skipTest(f"the server takes {maxclients} clients and this "
                          f"process {max(soft, hard)} files: 1,000 "
                          "connections need more")
        names = [support.unique(f"aio-many{i}") for i in range(100)]
        inside = dict.fromkeys(names, 0)
        entries = dict.fromkeys(names, 0)
        overlaps = []
        threads = threading.active_count()

        async def worker(name):
            lock = self.lock(name, timeout=120)
            for _ in range(3):
                async with lock:
                    inside[name] += 1
                    if inside[name] != 1:
                        overlaps.append(name)
                    await asyncio.sleep(0)
                    entries[name] += 1
                    inside[name] -= 1

        tasks = [worker(name) for name in names for _ in range(10)]
        self.assertEqual(len(tasks), 1000)
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        self.assertEqual(overlaps, [])
        self.assertEqual(set(entries.values()), {30})
        self.assertEqual(threading.active_count(), threads)
        for name in names:
            self.assertClean(name)


class Cancellation(Base):

    async def cancelled_acquire(self, contended, tcp=False):
        """Cancels an acquire after its k-th step for every k until it ends
        first.  Each time: either it was cancelled, and the lock is not
        held, its queue entry is gone and (the holder gone) no key is left;
        or it got the lock first.  With contended, a holder in this loop
        hands the lock over as soon as the waiter is queued, so the
        cancellation also meets the hand-off (and, at the step that takes
        the grant, a grant that raced it)."""
        r = self.redis
        url = self.tcp_url if tcp else self.url
        seen = set()
        with Steps() as steps:
            for k in range(0, 200):
                name = support.unique(f"aio-cancel{k}")
                lock = self.lock(name, timeout=60, url=url)
                holder = None
                if contended:
                    holder = self.lock(name, timeout=60)
                    await holder.acquire()
                task = asyncio.ensure_future(lock.acquire())
                steps.watch(lock, k, task.cancel, task)
                if k == 0:
                    await asyncio.sleep(0)  # started, no step yet
                    task.cancel()
                handoff = None
                if contended:
                    async def hand_over():
                        await eventually(lambda: task.done() or r.zcard(
                            f"{name}:queue") > 0)
                        await holder.release()
                    handoff = asyncio.ensure_future(hand_over())
                try:
                    got = await asyncio.wait_for(asyncio.shield(task),
                                                 DEADLINE)
                except asyncio.CancelledError:
                    got = None
                if handoff is not None:
                    await asyncio.wait_for(handoff, DEADLINE)
                self.assertTrue(task.done())
                if got is None:
                    self.assertTrue(task.cancelled())
                    seen.add("cancelled")
                    self.assertFalse(lock.held)
                    self.assertFalse(await lock.owned(), f"step {k}")
                    self.assertClean(name)
                else:
                    seen.add("acquired")
                    self.assertTrue(await lock.owned())
                    self.assertTrue(await lock.release())
                    self.assertClean(name)
                if steps.ended is not None and steps.ended < k:
                    break  # it ended before step k: every point was met
            else:
                self.fail("the acquire never ended by itself")
        self.assertEqual(seen, {"cancelled", "acquired"})
        return k

    async def test_cancel_uncontended_acquire_at_every_step(self):
        await self.cancelled_acquire(contended=False)

    async def test_cancel_contended_acquire_at_every_step(self):
        await self.cancelled_acquire(contended=True)

    async def test_cancel_acquire_over_tcp_at_every_step(self):
        """Over TCP the connect takes a step of its own."""
        await self.cancelled_acquire(contended=False, tcp=True)
        await self.cancelled_acquire(contended=True, tcp=True)

    async def test_cancel_release_at_every_step(self):
        """A release cancelled after any step still releases: the lock is
        free afterwards (another object takes it at once), and nothing is
        left.  k = 0 cancels the task right after release() started."""
        with Steps() as steps:
            for k in range(0, 100):
                name = support.unique(f"aio-crel{k}")
                lock = self.lock(name, timeout=60)
                await lock.acquire()
                task = asyncio.ensure_future(lock.release())
                steps.watch(lock, k, task.cancel, task)
                await asyncio.sleep(0)  # release() has started
                if k == 0:
                    task.cancel()
                try:
                    await asyncio.wait_for(asyncio.shield(task), DEADLINE)
                except asyncio.CancelledError:
                    pass
                self.assertFalse(lock.held)
                self.assertFalse(await lock.locked(), f"step {k}")
                other = self.lock(name, timeout=5, blocking=False)
                self.assertTrue(await other.acquire())
                self.assertTrue(await other.release())
                self.assertClean(name)
                if steps.ended is not None and steps.ended < k:
                    break

    async def test_redis_py_3847(self):
        """redis-py issue 3847: a release() cancelled at once left
        redis.asyncio's Lock locked in Redis and not owned by the object,
        for ever.  Here the object always knows: cancelled before it
        started, the release did nothing and the object still owns the
        lock (release() again frees it); cancelled after, it releases."""
        name = support.unique("aio-3847")
        lock = self.lock(name, timeout=60)
        await lock.acquire()
        release_task = asyncio.ensure_future(lock.release())
        release_task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await release_task
        self.assertEqual(await lock.locked(), await lock.owned())
        self.assertTrue(await lock.owned())
        self.assertTrue(await lock.release())
        self.assertFalse(await lock.locked())
        self.assertClean(name)
        # Cancelled once it runs: released all the same.
        await lock.acquire()
        release_task = asyncio.ensure_future(lock.release())
        await asyncio.sleep(0)
        release_task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await release_task
        self.assertFalse(await lock.locked())
        self.assertFalse(await lock.owned())
        self.assertClean(name)

    async def test_wait_for_timeout_leaves_the_queue(self):
        """asyncio.wait_for() cancels a waiting acquire: TimeoutError, and
        the queue entry is gone while the holder still holds."""
        name = support.unique("aio-waitfor")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=60)
        holder.acquire()
        lock = self.lock(name, timeout=60)
        task = asyncio.ensure_future(lock.acquire())
        self.assertTrue(await eventually(
            lambda: r.zcard(f"{name}:queue") == 1))
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.3)
        self.assertEqual(r.zcard(f"{name}:queue"), 0)
        self.assertTrue(holder.owned())
        holder.release()
        self.assertClean(name)

    async def test_calls_on_one_object_wait_their_turn(self):
        """release() from another task while acquire() waits: it runs
        after the acquire ends."""
        name = support.unique("aio-turn")
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=60)
        holder.acquire()
        lock = self.lock(name, timeout=60)
        acquiring = asyncio.ensure_future(lock.acquire())
        self.assertTrue(await eventually(
            lambda: self.redis.zcard(f"{name}:queue") == 1))
        releasing = asyncio.ensure_future(lock.release())
        await asyncio.sleep(0.05)
        self.assertFalse(releasing.done())
        holder.release()
        self.assertTrue(await asyncio.wait_for(acquiring, DEADLINE))
        self.assertTrue(await asyncio.wait_for(releasing, DEADLINE))
        self.assertClean(name)


class Loops(support.ServerTestCase):

    def test_one_object_on_two_loops(self):
        """An object is driven by the loop that calls it: one asyncio.run()
        after another, it connects again and works."""
        name = support.unique("aio-loops")
        lock = fa.RedisLockFifo(name, url=self.url, timeout=10)

        async def use():
            async with lock:
                return await lock.owned()
        self.assertTrue(asyncio.run(use()))
        self.assertTrue(asyncio.run(use()))
        self.assertEqual(scan(self.redis, name), [])


class InterruptedCallbacks(support.ServerTestCase):

    def interrupt_every_watcher_call(self, contended):
        """Ctrl-C's KeyboardInterrupt may be raised by the signal handler
        in any Python code the loop runs, also in the engine's watcher
        while the C library calls it.  Raised there at its n-th call
        (before it registers anything), for every n until the acquire ends
        first: it comes out of run_until_complete() as a stopped loop would
        see it; the loop is then run on as asyncio.run() does (the task
        cancelled), and the object must neither hold nor queue, and must
        work again.  Contended, a blocking lock holds all along and the
        acquire ends by its own timeout."""
        name = support.unique("aio-kbd")
        holder = None
        if contended:
            holder = fairlock.RedisLockFifo(name, url=self.url, timeout=60)
            holder.acquire()
        n = 0
        while True:
            n += 1
            loop = asyncio.new_event_loop()
            lock = fa.RedisLockFifo(name, url=self.tcp_url, timeout=30)
            calls = [0]
            original = fa._Engine.watch

            def watch(engine, *args):
                if engine is lock._engine:
                    calls[0] += 1
                    if calls[0] == n:
                        raise KeyboardInterrupt
                original(engine, *args)
            fa._Engine.watch = watch
            try:
                task = loop.create_task(
                    lock.acquire(timeout=0.3 if contended else None))
                # A handle left unwatched would hang: a deadline, after
                # which run_until_complete() raises RuntimeError.
                stop = loop.call_later(DEADLINE, loop.stop)
                try:
                    loop.run_until_complete(task)
                    interrupted = False
                except KeyboardInterrupt:
                    interrupted = True
                except fairlock.LockTimeoutError:
                    interrupted = False
                stop.cancel()
                task.cancel()
                loop.run_until_complete(asyncio.wait_for(
                    asyncio.gather(task, return_exceptions=True), DEADLINE))
            finally:
                fa._Engine.watch = original
            with self.subTest(n=n):
                self.assertEqual(self.redis.zcard(f"{name}:queue"), 0)
                if contended:
                    self.assertFalse(lock.held)
                    self.assertTrue(holder.owned())
                    with self.assertRaises(fairlock.LockTimeoutError):
                        loop.run_until_complete(lock.acquire(blocking=False))
                else:
                    if not lock.held:
                        self.assertFalse(loop.run_until_complete(
                            asyncio.wait_for(lock.locked(), DEADLINE)))
                        loop.run_until_complete(asyncio.wait_for(
                            lock.acquire(), DEADLINE))
                    self.assertTrue(loop.run_until_complete(lock.release()))
                    self.assertEqual(scan(self.redis, name), [])
            del lock
            loop.close()
            if not interrupted:
                break  # the acquire made fewer than n watcher calls
        if holder is not None:
            self.assertTrue(holder.release())
        self.assertEqual(scan(self.redis, name), [])
        self.assertGreater(n, 2)

    def test_keyboard_interrupt_in_every_watcher_call(self):
        self.interrupt_every_watcher_call(contended=False)

    def test_keyboard_interrupt_in_every_watcher_call_contended(self):
        self.interrupt_every_watcher_call(contended=True)


class Orphaned(support.ServerTestCase):

    def test_loop_closed_while_waiting(self):
        """A loop closed while a task waits in acquire() (a Ctrl-C out of
        run_until_complete(), then loop.close()) leaves the handle
        waiting; the next loop that calls the object first takes it out
        of the queue, then serves the call."""
        name = support.unique("aio-orphan")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=60)
        holder.acquire()
        lock = fa.RedisLockFifo(name, url=self.url, timeout=60)
        first = asyncio.new_event_loop()
        task = first.create_task(lock.acquire())

        async def queued():
            self.assertTrue(await eventually(
                lambda: r.zcard(f"{name}:queue") == 1))
        first.run_until_complete(queued())
        task._log_destroy_pending = False  # left pending on purpose
        first.close()
        self.assertEqual(r.zcard(f"{name}:queue"), 1)

        async def then():
            with self.assertRaises(fairlock.LockTimeoutError):
                await lock.acquire(blocking=False)
            self.assertEqual(r.zcard(f"{name}:queue"), 0)
            holder.release()
            self.assertTrue(await lock.acquire())
            self.assertTrue(await lock.release())
        asyncio.run(asyncio.wait_for(then(), DEADLINE))
        self.assertEqual(scan(r, name), [])


class Clients(Base):

    def test_asyncio_client_maps_like_the_blocking_one(self):
        for kwargs in ({"unix_socket_path": "/tmp/r.sock", "db": 3},
                       {"host": "10.0.0.7", "port": 7001, "db": 2,
                        "username": "u", "password": "p@ss"},
                       {"host": "h", "ssl": True,
                        "ssl_ca_certs": "/etc/ca.pem"}):
            with self.subTest(**kwargs):
                self.assertEqual(url_of(redis.asyncio.Redis(**kwargs)),
                                 url_of(redis.Redis(**kwargs)))

    async def test_lock_through_an_asyncio_client(self):
        client = redis.asyncio.Redis(unix_socket_path=self.socket)
        name = support.unique("aio-client")
        lock = fa.RedisLockFifo(name, client, timeout=10)
        self.assertIs(lock.client, client)
        async with lock:
            self.assertEqual(await client.get(name),
                             lock.token.encode())
        self.assertEqual(await client.exists(name), 0)
        tcp = redis.asyncio.Redis(host="127.0.0.1", port=self.port)
        async with fa.RedisLockFifo(name, tcp, timeout=10) as held:
            self.assertTrue(await held.owned())
        await client.close()
        await tcp.close()
        self.assertClean(name)


class Kinds(Base):

    async def test_semaphore(self):
        """Up to 3 of 9 tasks inside, each with a permit of its own."""
        name = support.unique("aio-sem")
        inside, most, clashes = set(), [0], []

        async def worker():
            sem = self.lock(name, fa.RedisSemaphoreFifo, 3, timeout=60)
            for _ in range(3):
                async with sem:
                    if sem.permit in inside:
                        clashes.append(sem.permit)
                    inside.add(sem.permit)
                    most[0] = max(most[0], len(inside))
                    await asyncio.sleep(0.002)
                    inside.discard(sem.permit)

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(9))),
                               DEADLINE * 2)
        self.assertEqual(clashes, [])
        self.assertLessEqual(most[0], 3)
        self.assertClean(name)

    async def test_cancelled_semaphore_waiter(self):
        """A task waiting for a full semaphore, cancelled, leaves its
        queue; the holders' releases then leave nothing behind."""
        name = support.unique("aio-sem-cancel")
        holders = [self.lock(name, fa.RedisSemaphoreFifo, 2, timeout=60)
                   for _ in range(2)]
        for sem in holders:
            await sem.acquire()
        self.assertEqual({sem.permit for sem in holders}, {1, 2})
        waiter = self.lock(name, fa.RedisSemaphoreFifo, 2, timeout=60)
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(waiter.acquire(), 0.3)
        self.assertFalse(waiter.held)
        for sem in holders:
            self.assertTrue(await sem.release())
        self.assertClean(name)

    async def test_rwlock(self):
        """Readers together, a writer alone."""
        name = support.unique("aio-rw")
        a, b, w = (self.lock(name, fa.RedisRWLockFifo, timeout=60)
                   for _ in range(3))
        await a.read().acquire()
        await b.read().acquire()
        with self.assertRaises(fairlock.LockTimeoutError):
            await w.write().acquire(blocking=False)
        writing = asyncio.ensure_future(w.write().acquire())
        await a.read().release()
        await asyncio.sleep(0.05)
        self.assertFalse(writing.done())
        await b.read().release()
        self.assertTrue(await asyncio.wait_for(writing, DEADLINE))
        self.assertTrue(await w.write().release())
        self.assertClean(name)


if __name__ == "__main__":
    unittest.main()
