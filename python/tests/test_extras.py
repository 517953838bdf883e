"""test_extras.py -- behaviour against a real server: the reference's
semantics (timeouts, non-blocking, release, context manager) and the
extras of the C core (ttl, extend, owned, locked, ticket, fence, token,
auto_renew), connecting through redis-py clients, and threads."""
import math
import threading
import time
import unittest

import redis

import fairlock
import support


class Base(support.ServerTestCase):

    def lock(self, name, **kwargs):
        kwargs.setdefault("url", self.url)
        return fairlock.RedisLockFifo(name, **kwargs)

    def assertClean(self, name):
        self.assertEqual(support.keys_of(self.redis, name), [])


class ReferenceSemantics(Base):

    def test_context_manager(self):
        name = support.unique("with")
        lock = self.lock(name, timeout=5)
        with lock as entered:
            self.assertIs(entered, lock)
            self.assertEqual(self.redis.get(name).decode(), lock.token)
        self.assertIsNone(lock.token)
        self.assertClean(name)

    def test_context_manager_releases_on_exception(self):
        name = support.unique("with-exc")
        lock = self.lock(name, timeout=5)
        with self.assertRaises(KeyError):
            with lock:
                raise KeyError("body")
        self.assertFalse(lock.held)
        self.assertClean(name)

    # Upper bounds on a wait are deadlines that only a real failure
    # reaches, never measurements: the holder keeps the lock for a minute,
    # so a waiter that ignored its timeout would still wait (or, past the
    # lease, get the lock) long after them.  Lower bounds are exact: a
    # slow machine only makes a wait longer.
    def test_timeout(self):
        name = support.unique("timeout")
        holder = self.lock(name, timeout=60)
        holder.acquire()
        waiter = self.lock(name, timeout=0.3)
        start = time.monotonic()
        with self.assertRaises(fairlock.LockTimeoutError) as cm:
            waiter.acquire()
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.28)
        self.assertLess(elapsed, 20)
        exc = cm.exception
        self.assertIsInstance(exc, TimeoutError)
        self.assertIsInstance(exc, fairlock.LockError)
        self.assertIsInstance(exc, RuntimeError)
        self.assertEqual(exc.code, "FAIRLOCK_TIMEOUT")
        self.assertIn(repr(name), str(exc))
        self.assertEqual(self.redis.zcard(f"{name}:queue"), 0)
        # A per-call timeout overrides the object's (of 40 s here).
        patient = self.lock(name, timeout=40)
        start = time.monotonic()
        with self.assertRaises(fairlock.LockTimeoutError):
            patient.acquire(timeout=0.1)
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.09)
        self.assertLess(elapsed, 20)
        holder.release()
        self.assertClean(name)

    def test_non_blocking(self):
        name = support.unique("nonblock")
        holder = self.lock(name, timeout=60)
        holder.acquire()
        # A timeout of 40 s that a single try must not wait out.
        for lock, kwargs in (
                (self.lock(name, blocking=False, timeout=40), {}),
                (self.lock(name, timeout=40), {"blocking": False}),
                (self.lock(name, fifo=False, blocking=False, timeout=40),
                 {})):
            start = time.monotonic()
            with self.assertRaises(fairlock.LockTimeoutError):
                lock.acquire(**kwargs)
            self.assertLess(time.monotonic() - start, 20)
            with self.assertRaises(fairlock.LockTimeoutError):
                with self.lock(name, blocking=False):
                    self.fail("entered a held lock")
        self.assertEqual(self.redis.zcard(f"{name}:queue"), 0)
        holder.release()
        self.assertTrue(self.lock(name, blocking=False).acquire())
        self.redis.delete(name)

    def test_release(self):
        name = support.unique("release")
        lock = self.lock(name, timeout=5)
        self.assertFalse(lock.release())  # not held: silent
        self.assertIs(lock.acquire(), True)
        self.assertTrue(lock.release())
        self.assertFalse(lock.release())  # twice: silent
        self.assertClean(name)

    def test_lease_lost_release_is_false(self):
        name = support.unique("lost")
        lock = self.lock(name, ttl=0.15)
        lock.acquire()
        time.sleep(0.3)
        self.assertFalse(lock.owned())
        self.assertFalse(lock.release())

    def test_acquire_twice_is_a_lock_error(self):
        name = support.unique("busy")
        lock = self.lock(name, timeout=5)
        lock.acquire()
        with self.assertRaises(fairlock.LockError) as cm:
            lock.acquire()
        self.assertEqual(cm.exception.code, "FAIRLOCK_BUSY")
        self.assertNotIsInstance(cm.exception, fairlock.LockTimeoutError)
        self.assertTrue(lock.release())

    # PTTL ranges leave seconds for the time between the grant and the
    # PTTL, and stay apart from every other lease the code could give.
    def test_lease_is_the_timeout(self):
        name = support.unique("lease")
        lock = self.lock(name, timeout=30)
        lock.acquire()
        self.assertTrue(20000 < self.redis.pttl(name) <= 30000)
        lock.release()
        lock = self.lock(name)  # timeout None: no expiry
        lock.acquire()
        self.assertEqual(self.redis.pttl(name), -1)
        lock.release()
        lock.acquire(timeout=50)  # the call's timeout is the lease
        self.assertTrue(40000 < self.redis.pttl(name) <= 50000)
        lock.release()


class Extras(Base):

    def test_ttl_and_extend(self):
        name = support.unique("ttl")
        lock = self.lock(name, timeout=1, ttl=20)
        lock.acquire()
        self.assertTrue(10000 < self.redis.pttl(name) <= 20000)
        self.assertIs(lock.extend(100), True)
        self.assertTrue(90000 < self.redis.pttl(name) <= 100000)
        self.assertTrue(lock.extend(math.inf))
        self.assertEqual(self.redis.pttl(name), -1)
        self.assertEqual(lock.valid_until, math.inf)
        lock.release()
        with self.assertRaises(fairlock.LockError) as cm:
            lock.extend(1)
        self.assertEqual(cm.exception.code, "FAIRLOCK_NOTOWNED")
        lock = self.lock(name, ttl=math.inf, timeout=1)
        lock.acquire()
        self.assertEqual(self.redis.pttl(name), -1)
        lock.release()
        self.assertClean(name)

    def test_owned_locked_held_valid_until(self):
        name = support.unique("owned")
        mine, other = self.lock(name, ttl=5), self.lock(name)
        self.assertEqual((mine.owned(), mine.locked(), mine.held),
                         (False, False, False))
        self.assertIsNone(mine.valid_until)
        before = time.monotonic()
        mine.acquire()
        self.assertEqual((mine.owned(), mine.locked(), mine.held),
                         (True, True, True))
        self.assertEqual((other.owned(), other.locked(), other.held),
                         (False, True, False))
        self.assertTrue(before + 4.5 < mine.valid_until <
                        time.monotonic() + 5)
        mine.release()
        self.assertEqual((mine.owned(), mine.locked(), mine.held),
                         (False, False, False))

    def test_token_ticket(self):
        name = support.unique("ticket")
        first, second = self.lock(name), self.lock(name)
        self.assertEqual((first.token, first.ticket), (None, 0))
        first.acquire()
        self.assertEqual(self.redis.get(name).decode(), first.token)
        self.assertGreaterEqual(first.ticket, 1)
        thread = threading.Thread(target=second.acquire)
        thread.start()
        self.assertTrue(support.wait_until(
            lambda: self.redis.zcard(f"{name}:queue") == 1))
        first.release()
        thread.join(10)
        self.assertGreater(second.ticket, 0)
        self.assertNotEqual(second.token, first.token)
        self.assertEqual(self.redis.get(name).decode(), second.token)
        second.release()
        nonfifo = self.lock(name, fifo=False)
        nonfifo.acquire()
        self.assertEqual(nonfifo.ticket, 0)
        nonfifo.release()
        self.assertClean(name)

    def test_fence(self):
        name = support.unique("fence")
        lock = self.lock(name, fencing=True, timeout=5)
        fences = []
        for _ in range(3):
            with lock:
                fences.append(lock.fence)
            self.assertEqual(lock.fence, 0)
        self.assertEqual(fences, [fences[0], fences[0] + 1, fences[0] + 2])
        self.assertGreaterEqual(fences[0], 1)
        self.assertEqual(self.lock(name).fence, 0)
        self.redis.delete(f"{name}:fence")  # the one key fencing keeps
        self.assertClean(name)

    def test_auto_renew(self):
        # Held for more than twice the lease: only renewals (every third
        # of it) keep it, and a renewal would have to be a second late to
        # lose it.
        name = support.unique("renew")
        lock = self.lock(name, ttl=1.5, auto_renew=True)
        lock.acquire()
        time.sleep(3.5)
        self.assertTrue(lock.owned())
        self.assertTrue(lock.release())
        self.assertClean(name)

    def test_bytes_name_and_subclass(self):
        class MyLock(fairlock.RedisLockFifo):
            pass
        name = support.unique("bytes").encode() + b"\xff"
        with MyLock(name, url=self.url, timeout=5) as lock:
            self.assertTrue(self.redis.exists(name))
            self.assertIsInstance(lock, MyLock)
        self.assertFalse(self.redis.exists(name))


class Fork(Base):

    def test_child_dropping_an_inherited_held_lock_keeps_it(self):
        """A forked child that drops its copy of a held lock object does
        not release the parent's lock (fairlock_free would: the binding
        skips it in a process other than the one that acquired)."""
        import gc
        import os
        name = support.unique("fork")
        lock = self.lock(name, timeout=10)
        lock.acquire()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                del_ = [lock]
                del lock
                del_.clear()
                gc.collect()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertTrue(lock.owned())
        self.assertTrue(lock.release())
        self.assertClean(name)


class Clients(Base):
    """redis_client as a redis-py client or URL: the lock lands on the
    client's server and database."""

    def check_client(self, client, db=0):
        name = support.unique("client")
        lock = fairlock.RedisLockFifo(name, client, timeout=5)
        self.assertIs(lock.client, client)
        with lock:
            check = support.client(db=db)
            self.assertEqual(check.get(name).decode(), lock.token)
            check.close()
            if db != 0:
                self.assertFalse(self.redis.exists(name))
        return lock

    def test_unix_socket_client(self):
        self.check_client(redis.Redis(unix_socket_path=self.socket))
        self.check_client(redis.Redis(unix_socket_path=self.socket, db=2),
                          db=2)

    def test_tcp_client(self):
        # 127.0.0.1, not redis-py's default host 'localhost', which need
        # not resolve (a container's /etc/hosts may lack it).  That a
        # client with the default host maps to redis://localhost:PORT is
        # a conversion, checked without connecting (and in test_args).
        self.assertEqual(fairlock._url_of(redis.Redis(port=self.port)),
                         "redis://localhost:%d/0" % self.port)
        self.check_client(redis.Redis(host="127.0.0.1", port=self.port))
        self.check_client(redis.Redis(host="127.0.0.1", port=self.port,
                                      db=3), db=3)

    def test_url_string(self):
        self.check_client(self.tcp_url + "/4", db=4)
        self.check_client(self.url)

    def test_default_is_fairlock_url(self):
        self.assertEqual(fairlock.DEFAULT_URL, "redis://127.0.0.1:6379/0")
        import os
        from unittest import mock
        with mock.patch.dict(os.environ, {"FAIRLOCK_URL": self.tcp_url + "/5"}):
            lock = fairlock.RedisLockFifo(support.unique("env"), timeout=5)
        self.assertIsNone(lock.client)
        with lock:
            check = support.client(db=5)
            self.assertTrue(check.exists(lock.name))
            check.close()

    def test_default_is_redis_url_after_fairlock_url(self):
        # The C library's rule, which the binding leaves to it.
        import os
        from unittest import mock
        redis_url = self.tcp_url + "/6"
        for fairlock_url, db in (("", 6), (self.tcp_url + "/7", 7)):
            env = {"REDIS_URL": redis_url, "FAIRLOCK_URL": fairlock_url}
            with self.subTest(**env):
                with mock.patch.dict(os.environ, env):
                    lock = fairlock.RedisLockFifo(support.unique("env"),
                                                  timeout=5)
                with lock:
                    check = support.client(db=db)
                    self.assertTrue(check.exists(lock.name))
                    check.close()

    def test_acl_user_with_special_password(self):
        user, password = "fl-py-user", "p@ss:w/rd %20?#ü"
        self.redis.acl_setuser(user, enabled=True, passwords=["+" + password],
                               keys=["*"], categories=["+@all"])
        self.addCleanup(self.redis.acl_deluser, user)
        client = redis.Redis(unix_socket_path=self.socket, username=user,
                             password=password)
        self.assertTrue(client.ping())  # redis-py agrees
        self.check_client(client)
        self.check_client(redis.Redis(host="127.0.0.1", port=self.port,
                                      username=user, password=password,
                                      db=1), db=1)
        wrong = redis.Redis(unix_socket_path=self.socket, username=user,
                            password="wrong-secret")
        lock = fairlock.RedisLockFifo(support.unique("acl"), wrong)
        with self.assertRaises(fairlock.LockError) as cm:
            lock.acquire()
        self.assertEqual(cm.exception.code, "FAIRLOCK_REDIS")
        self.assertNotIn("wrong-secret", str(cm.exception))


class Threads(Base):

    def test_gil_released_while_waiting(self):
        """While the main thread waits in acquire(), Python threads run:
        a thread sees the main thread's queue entry and releases the lock
        it waits for.  With the GIL held through the wait, that thread
        could not run until the acquire had timed out (40 s)."""
        name = support.unique("gil")
        holder = self.lock(name, timeout=60)
        holder.acquire()
        released = []

        def release_when_queued():
            if support.wait_until(
                    lambda: self.redis.zcard(f"{name}:queue") == 1,
                    timeout=30):
                released.append(holder.release())
        helper = threading.Thread(target=release_when_queued)
        helper.start()
        waiter = self.lock(name, timeout=40)
        try:
            self.assertIs(waiter.acquire(), True)
        finally:
            helper.join(60)
        self.assertEqual(released, [True])
        self.assertTrue(waiter.release())
        self.assertClean(name)

    def test_calls_on_one_object_are_serialized(self):
        """A call made while another thread waits in acquire() on the same
        object waits for that acquire to end."""
        name = support.unique("serial")
        holder = self.lock(name, timeout=60)
        holder.acquire()
        shared = self.lock(name, timeout=40)
        acquired, owned = [], []

        def ask_owned():
            # True only if it runs after the acquire: until then the
            # holder has the lock.
            owned.append(shared.owned())
        waiter = threading.Thread(
            target=lambda: acquired.append(shared.acquire()))
        waiter.start()
        self.assertTrue(support.wait_until(
            lambda: self.redis.zcard(f"{name}:queue") == 1))
        asker = threading.Thread(target=ask_owned)
        asker.start()
        # The asker blocks while the acquire waits (on a slow machine it
        # may not have called owned() yet: the check below holds anyway).
        time.sleep(0.3)
        self.assertEqual(owned, [], "owned() returned during the wait")
        self.assertTrue(holder.release())
        waiter.join(30)
        asker.join(30)
        self.assertEqual((acquired, owned), ([True], [True]))
        self.assertTrue(shared.release())
        self.assertClean(name)

    def test_threads_share_nothing_across_objects(self):
        """Threads with one object each exclude one another."""
        name = support.unique("threads")
        inside, overlaps, done = [0], [0], []

        def work():
            lock = self.lock(name, timeout=20)
            for _ in range(20):
                with lock:
                    inside[0] += 1
                    if inside[0] != 1:
                        overlaps[0] += 1
                    time.sleep(0.0005)
                    inside[0] -= 1
            done.append(1)
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual((len(done), overlaps[0]), (4, 0))
        self.assertClean(name)


if __name__ == "__main__":
    unittest.main()
