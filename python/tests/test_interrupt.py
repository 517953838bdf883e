"""test_interrupt.py -- Ctrl-C (SIGINT) while acquire() waits.

A child python blocks in acquire() on a lock the test holds; SIGINT must
raise KeyboardInterrupt there promptly, and its queue entry must be gone.
A signal whose handler does not raise must not disturb the wait.
"""
import os
import signal
import subprocess
import time
import unittest

import fairlock
import support

CHILD = r"""
import signal, sys, time
import fairlock
url, name, mode = sys.argv[1:4]
hits = []
if mode == "usr1":
    signal.signal(signal.SIGUSR1, lambda signum, frame: hits.append(signum))
# A liveness window of two minutes: the waiter's own heartbeats (every
# 40 s) cannot end its wait early.
lock = fairlock.RedisLockFifo(name, url=url, fifo=(mode != "nonfifo"),
                              timeout=(20 if mode == "usr1" else None),
                              fifo_stale_timeout=120)
print("waiting", flush=True)
try:
    lock.acquire()
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
print("acquired", len(hits), lock.owned(), flush=True)
lock.release()
"""


class Interrupt(support.ServerTestCase):

    def start_child(self, name, mode):
        child = support.spawn_python(
            CHILD, self.url, name, mode,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: child.poll() is None and child.kill())
        self.assertEqual(child.stdout.readline(), "waiting\n")
        return child

    def check_sigint(self, fifo):
        name = support.unique("sigint")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=30)
        holder.acquire()
        child = self.start_child(name, "fifo" if fifo else "nonfifo")
        # Wait until the child is a waiter on the server.
        waiting_key = f"{name}:queue" if fifo else f"{name}:nfwait"
        self.assertTrue(support.wait_until(lambda: r.exists(waiting_key)))
        if fifo:
            self.assertEqual(r.zcard(waiting_key), 1)
        time.sleep(0.2)  # deep in its blocking wait
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        elapsed = time.monotonic() - sent
        self.assertEqual(child.returncode, 3, err)
        self.assertEqual(out, "KeyboardInterrupt\n")
        # Prompt: not at the end of the wait, which nothing ends before
        # the holder's 30 s lease (no heartbeat for 40 s).  A deadline, not
        # a measurement: a loaded machine stays far below it.
        self.assertLess(elapsed, 15, "KeyboardInterrupt was not prompt")
        # Its queue entry is gone; the holder still holds the lock.
        self.assertEqual(r.zcard(f"{name}:queue"), 0)
        self.assertEqual(r.keys(f"{name}:wake:*"), [])
        self.assertTrue(holder.owned())
        self.assertTrue(holder.release())
        self.assertTrue(support.wait_until(
            lambda: support.keys_of(r, name) == [], timeout=5))

    def test_sigint_fifo_waiter(self):
        self.check_sigint(fifo=True)

    def test_sigint_nonfifo_waiter(self):
        self.check_sigint(fifo=False)

    def test_signal_without_exception_keeps_waiting(self):
        """A handler that returns normally runs during the wait, which
        goes on and gets the lock once it is released."""
        name = support.unique("usr1")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=30)
        holder.acquire()
        child = self.start_child(name, "usr1")
        self.assertTrue(support.wait_until(
            lambda: r.zcard(f"{name}:queue") == 1))
        child.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        self.assertIsNone(child.poll())
        self.assertEqual(r.zcard(f"{name}:queue"), 1)
        self.assertTrue(holder.release())
        out, err = child.communicate(timeout=10)
        self.assertEqual(child.returncode, 0, err)
        self.assertEqual(out, "acquired 1 True\n")
        self.assertEqual(support.keys_of(r, name), [])

    def test_signal_while_another_thread_waits(self):
        """Python runs signal handlers on the main thread only: while
        another thread waits in acquire() (without the GIL), the main
        thread's handler runs at once, and the other thread's wait goes on
        until the lock is released."""
        import threading
        name = support.unique("thread")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=30)
        holder.acquire()
        waiter = fairlock.RedisLockFifo(name, url=self.url, timeout=20)
        outcome = []
        thread = threading.Thread(
            target=lambda: outcome.append(waiter.acquire()))
        hits = []
        old = signal.signal(signal.SIGUSR2, lambda s, f: hits.append(s))
        try:
            thread.start()
            self.assertTrue(support.wait_until(
                lambda: r.zcard(f"{name}:queue") == 1))
            os.kill(os.getpid(), signal.SIGUSR2)
            # At once, not when the wait ends (the holder's lease is 30 s).
            self.assertTrue(support.wait_until(lambda: hits, timeout=15))
            time.sleep(0.2)
            self.assertTrue(thread.is_alive())
            self.assertEqual(r.zcard(f"{name}:queue"), 1)
            self.assertTrue(holder.release())
            thread.join(10)
        finally:
            signal.signal(signal.SIGUSR2, old)
        self.assertEqual(outcome, [True])
        self.assertTrue(waiter.release())
        self.assertEqual(support.keys_of(r, name), [])


if __name__ == "__main__":
    unittest.main()
