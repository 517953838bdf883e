"""test_processes.py -- mutual exclusion and FIFO order across processes.

Workers are forked with multiprocessing; each makes its own RedisLockFifo
and redis-py client after the fork.
"""
import multiprocessing
import time
import unittest

import fairlock
import support

CTX = multiprocessing.get_context("fork")


def mutex_worker(url, name, iterations, fifo, start):
    """Increments a counter in Redis with a non-atomic GET + SET inside the
    lock; counts (in NAME:overlaps) every time it finds someone else inside
    the critical section."""
    r = support.client()
    lock = fairlock.RedisLockFifo(name, url=url, timeout=30, fifo=fifo)
    start.wait(10)
    for _ in range(iterations):
        with lock:
            if r.incr(f"{name}:inside") != 1:
                r.incr(f"{name}:overlaps")
            value = int(r.get(f"{name}:counter") or 0)
            time.sleep(0.001)  # widen the race window
            r.set(f"{name}:counter", value + 1)
            r.decr(f"{name}:inside")


def fifo_worker(url, name, ident):
    """Waits for the lock, then appends "ident:ticket" to NAME:order."""
    r = support.client()
    lock = fairlock.RedisLockFifo(name, url=url, timeout=30)
    lock.acquire()
    r.rpush(f"{name}:order", f"{ident}:{lock.ticket}")
    time.sleep(0.005)
    lock.release()


class Processes(support.ServerTestCase):

    def run_workers(self, processes):
        for p in processes:
            p.start()
        for p in processes:
            p.join(60)
        for p in processes:
            if p.is_alive():
                p.kill()
        self.assertEqual([p.exitcode for p in processes],
                         [0] * len(processes))

    def check_mutual_exclusion(self, fifo, workers, iterations):
        name = support.unique("mutex")
        start = CTX.Event()
        procs = [CTX.Process(target=mutex_worker,
                             args=(self.url, name, iterations, fifo, start))
                 for _ in range(workers)]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
        self.assertEqual([p.exitcode for p in procs], [0] * workers)
        r = self.redis
        self.assertEqual(int(r.get(f"{name}:counter")), workers * iterations)
        self.assertIsNone(r.get(f"{name}:overlaps"))
        r.delete(f"{name}:counter", f"{name}:inside")
        # Non-FIFO waiters leave NAME:nfwait and NAME:nfwake behind, with a
        # lease of a few check intervals: everything else is gone already.
        for key in support.keys_of(r, name):
            self.assertIn(key, (f"{name}:nfwait", f"{name}:nfwake"))
            self.assertGreater(r.pttl(key), 0, key)
        self.assertTrue(support.wait_until(
            lambda: support.keys_of(r, name) == [], timeout=5))

    def test_mutual_exclusion_fifo(self):
        self.check_mutual_exclusion(True, workers=6, iterations=25)

    def test_mutual_exclusion_nonfifo(self):
        self.check_mutual_exclusion(False, workers=4, iterations=20)

    def test_fifo_order(self):
        """Waiters that queue up one after the other, while the parent
        holds the lock, get it in that order, with increasing tickets."""
        name = support.unique("fifo")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=30)
        holder.acquire()
        waiters = 8
        procs = []
        for i in range(waiters):
            p = CTX.Process(target=fifo_worker, args=(self.url, name, i))
            p.start()
            procs.append(p)
            # The known enqueue order: the next one starts only once this
            # one is in the queue.
            self.assertTrue(support.wait_until(
                lambda: r.zcard(f"{name}:queue") == i + 1),
                f"waiter {i} did not queue up")
        self.assertTrue(holder.release())
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
        self.assertEqual([p.exitcode for p in procs], [0] * waiters)
        entries = [e.decode().split(":")
                   for e in r.lrange(f"{name}:order", 0, -1)]
        self.assertEqual([int(i) for i, _ in entries], list(range(waiters)))
        tickets = [int(t) for _, t in entries]
        self.assertEqual(tickets, sorted(tickets))
        self.assertEqual(len(set(tickets)), waiters)
        r.delete(f"{name}:order")
        self.assertEqual(support.keys_of(r, name), [])


if __name__ == "__main__":
    unittest.main()
