"""test_kinds.py -- RedisSemaphoreFifo and RedisRWLockFifo across
processes: at most N holders, distinct permits, readers together, writers
alone, a disagreeing N refused, nothing left behind.
"""
import multiprocessing
import time
import unittest

import fairlock
import support

CTX = multiprocessing.get_context("fork")


def sem_worker(url, name, permits, iterations, start):
    """Counts holders inside (NAME:inside) and records the most seen, and
    the permit each holder saw, in NAME:permit:P (never two at once)."""
    r = support.client()
    sem = fairlock.RedisSemaphoreFifo(name, permits, url=url, timeout=30)
    start.wait(10)
    for _ in range(iterations):
        with sem:
            inside = r.incr(f"{name}:inside")
            r.execute_command("EVAL", "local m = tonumber(redis.call('GET', "
                              "KEYS[1]) or '0') if tonumber(ARGV[1]) > m "
                              "then redis.call('SET', KEYS[1], ARGV[1]) end",
                              1, f"{name}:most", inside)
            if r.incr(f"{name}:permit:{sem.permit}") != 1:
                r.incr(f"{name}:clash")
            time.sleep(0.001)
            r.decr(f"{name}:permit:{sem.permit}")
            r.decr(f"{name}:inside")


def rw_worker(url, name, writer, iterations, start):
    r = support.client()
    rw = fairlock.RedisRWLockFifo(name, url=url, timeout=30)
    side = rw.write() if writer else rw.read()
    start.wait(10)
    for _ in range(iterations):
        with side:
            if writer:
                if r.incr(f"{name}:writers") != 1 or \
                        int(r.get(f"{name}:readers") or 0) != 0:
                    r.incr(f"{name}:clash")
                time.sleep(0.001)
                r.decr(f"{name}:writers")
            else:
                r.incr(f"{name}:readers")
                if int(r.get(f"{name}:writers") or 0) != 0:
                    r.incr(f"{name}:clash")
                time.sleep(0.001)
                r.decr(f"{name}:readers")


class Kinds(support.ServerTestCase):

    def run_all(self, procs, start):
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(90)
        for p in procs:
            if p.is_alive():
                p.kill()
        self.assertEqual([p.exitcode for p in procs], [0] * len(procs))

    def test_semaphore_at_most_n(self):
        name = support.unique("sem")
        start = CTX.Event()
        procs = [CTX.Process(target=sem_worker,
                             args=(self.url, name, 3, 25, start))
                 for _ in range(6)]
        self.run_all(procs, start)
        r = support.client()
        self.assertLessEqual(int(r.get(f"{name}:most")), 3)
        self.assertIsNone(r.get(f"{name}:clash"))
        r.delete(f"{name}:most", f"{name}:inside")
        r.delete(*[f"{name}:permit:{i}" for i in (1, 2, 3)])
        self.assertEqual(support.keys_of(r, name), [])

    def test_semaphore_api(self):
        name = support.unique("sem-api")
        a = fairlock.RedisSemaphoreFifo(name, 2, url=self.url, timeout=5)
        b = fairlock.RedisSemaphoreFifo(name, 2, url=self.url, timeout=5)
        c = fairlock.RedisSemaphoreFifo(name, 2, url=self.url, timeout=5,
                                        blocking=False)
        with a, b:
            self.assertEqual({a.permit, b.permit}, {1, 2})
            self.assertTrue(a.owned())
            with self.assertRaises(fairlock.LockTimeoutError):
                c.acquire()
            other = fairlock.RedisSemaphoreFifo(name, 5, url=self.url,
                                                timeout=5)
            with self.assertRaises(fairlock.LockError) as caught:
                other.acquire()
            self.assertEqual(caught.exception.code, "FAIRLOCK_MISMATCH")
            self.assertIn("2 permits", str(caught.exception))
            self.assertIn("5 permits", str(caught.exception))
            # A mutex on the semaphore's name is refused the same way, and
            # leaves no key of its own.
            r = support.client()
            before = support.keys_of(r, name)
            mutex = fairlock.RedisLockFifo(name, self.url, timeout=5)
            with self.assertRaises(fairlock.LockError) as caught:
                mutex.acquire()
            self.assertEqual(caught.exception.code, "FAIRLOCK_MISMATCH")
            self.assertIn("2 permits", str(caught.exception))
            self.assertIn("a mutex", str(caught.exception))
            self.assertEqual(support.keys_of(r, name), before)
        self.assertEqual(a.permit, 0)
        self.assertEqual(a.permits, 2)
        with self.assertRaises(ValueError):
            fairlock.RedisSemaphoreFifo(name, 0, url=self.url)
        r = support.client()
        self.assertEqual(support.keys_of(r, name), [])

    def test_rwlock_processes(self):
        name = support.unique("rw")
        start = CTX.Event()
        procs = [CTX.Process(target=rw_worker,
                             args=(self.url, name, i < 2, 20, start))
                 for i in range(6)]
        self.run_all(procs, start)
        r = support.client()
        self.assertIsNone(r.get(f"{name}:clash"))
        r.delete(f"{name}:readers", f"{name}:writers")
        self.assertEqual(support.keys_of(r, name), [])

    def test_rwlock_api(self):
        name = support.unique("rw-api")
        one = fairlock.RedisRWLockFifo(name, url=self.url, timeout=5)
        two = fairlock.RedisRWLockFifo(name, url=self.url, timeout=5,
                                       blocking=False)
        with one.read():
            with two.read():
                self.assertTrue(two.read().held)
            with self.assertRaises(fairlock.LockTimeoutError):
                two.write().acquire()
        with one.write():
            with self.assertRaises(fairlock.LockTimeoutError):
                two.read().acquire()
        self.assertTrue(one.read().shared)
        self.assertFalse(one.write().shared)
        r = support.client()
        self.assertEqual(support.keys_of(r, name), [])


if __name__ == "__main__":
    unittest.main()
