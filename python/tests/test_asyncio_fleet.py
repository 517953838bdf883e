"""test_asyncio_fleet.py -- fairlock.asyncio across processes: FIFO order
on one name between asyncio processes (several tasks each) and blocking
ones, and Ctrl-C (SIGINT) in a process whose loop waits in acquire(),
under asyncio.run() and under a bare run_until_complete().  Nothing may be
left on the server."""
import asyncio
import atexit
import os
import signal
import subprocess
import unittest

import fairlock
import fairlock.asyncio as fa
import support

DEADLINE = 30

# A process that queues its waiters one at a time (the parent says when,
# on stdin) and records "ident:ticket" in NAME:order as each gets the lock.
WAITERS = r"""
import asyncio, sys
import fairlock, fairlock.asyncio
import redis
url, socket, name, kind = sys.argv[1:5]
r = redis.Redis(unix_socket_path=socket)

def record(ident, lock):
    r.rpush(name + ":order", "%s:%d" % (ident, lock.ticket))

async def waiter(ident):
    lock = fairlock.asyncio.RedisLockFifo(name, url=url, timeout=60)
    await lock.acquire()
    record(ident, lock)
    await asyncio.sleep(0.002)
    await lock.release()

async def main():
    loop = asyncio.get_running_loop()
    tasks = []
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            break
        tasks.append(asyncio.ensure_future(waiter(line.strip())))
        print("queued", flush=True)
    await asyncio.gather(*tasks)

if kind == "asyncio":
    asyncio.run(main())
else:
    while True:
        line = sys.stdin.readline()
        if not line.strip():
            break
        lock = fairlock.RedisLockFifo(name, url=url, timeout=60)
        print("queued", flush=True)
        lock.acquire()
        record(line.strip(), lock)
        lock.release()
"""

# A process whose loop waits in acquire() until SIGINT.
INTERRUPTED = r"""
import asyncio, sys
import fairlock.asyncio
url, name, mode = sys.argv[1:4]

async def main():
    lock = fairlock.asyncio.RedisLockFifo(name, url=url,
                                          fifo_stale_timeout=120)
    print("waiting", flush=True)
    await lock.acquire()
    print("acquired", flush=True)

try:
    if mode == "run":
        asyncio.run(main())
    else:
        asyncio.new_event_loop().run_until_complete(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
"""


class Fleet(support.ServerTestCase):

    def spawn(self, script, *args, stdin=False):
        child = support.spawn_python(
            script, *args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: child.poll() is None and child.kill())
        return child

    def test_fifo_across_processes(self):
        """Two asyncio processes (several waiting tasks each) and a
        blocking one queue 9 waiters, one at a time, while the parent
        holds the lock; they are served in that order, with increasing
        tickets."""
        name = support.unique("aio-procs")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=60)
        holder.acquire()
        kinds = {"A": "asyncio", "B": "asyncio", "C": "blocking"}
        procs = {p: self.spawn(WAITERS, self.url, self.socket, name, kind,
                               stdin=True) for p, kind in kinds.items()}
        # A blocking process waits with one waiter: C queues one only.
        plan = "ABCABABAB"
        for i, p in enumerate(plan):
            procs[p].stdin.write(f"{i}\n")
            procs[p].stdin.flush()
            self.assertEqual(procs[p].stdout.readline(), "queued\n")
            self.assertTrue(support.wait_until(
                lambda: r.zcard(f"{name}:queue") == i + 1, timeout=30),
                f"waiter {i} did not queue up")
        for proc in procs.values():
            proc.stdin.write("\n")
            proc.stdin.flush()
        holder.release()
        for proc in procs.values():
            out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 0, err)
        entries = [e.decode().split(":")
                   for e in r.lrange(f"{name}:order", 0, -1)]
        self.assertEqual([int(i) for i, _ in entries], list(range(9)))
        tickets = [int(t) for _, t in entries]
        self.assertEqual(tickets, sorted(set(tickets)))
        r.delete(f"{name}:order")
        self.assertEqual(support.keys_of(r, name), [])

    def check_sigint(self, mode):
        name = support.unique(f"aio-sigint-{mode}")
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url, timeout=60)
        holder.acquire()
        child = self.spawn(INTERRUPTED, self.url, name, mode)
        self.assertEqual(child.stdout.readline(), "waiting\n")
        self.assertTrue(support.wait_until(
            lambda: r.zcard(f"{name}:queue") == 1, timeout=30))
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        self.assertEqual(child.returncode, 3, err)
        self.assertEqual(out, "KeyboardInterrupt\n")
        self.assertEqual(r.zcard(f"{name}:queue"), 0)
        self.assertEqual(r.keys(f"{name}:wake:*"), [])
        self.assertTrue(holder.owned())
        self.assertTrue(holder.release())
        self.assertEqual(support.keys_of(r, name), [])

    def test_sigint_under_asyncio_run(self):
        """asyncio.run() cancels the main task on Ctrl-C: the acquire
        leaves the queue before KeyboardInterrupt comes out."""
        self.check_sigint("run")

    def test_sigint_out_of_run_until_complete(self):
        """Ctrl-C raised out of a bare run_until_complete() leaves the
        task pending and the loop stopped: the handle leaves the queue at
        the interpreter's exit."""
        self.check_sigint("bare")


class Fork(support.ServerTestCase):

    def test_forked_child_leaves_the_parents_loop_alone(self):
        """A forked child shares the parent's epoll instance: using an
        inherited object on a loop of its own, and exiting (atexit) with
        one that holds the parent's lock, must not take the parent's
        sockets off the parent's loop, nor release its lock."""
        held, used = support.unique("aio-fork-held"), support.unique(
            "aio-fork-used")
        loop = asyncio.new_event_loop()
        # A socket taken off the loop would stall a call until its reply
        # timeout, which is past the test's deadline.
        a = fa.RedisLockFifo(held, url=self.url, timeout=60, io_timeout=60)
        b = fa.RedisLockFifo(used, url=self.url, timeout=60, io_timeout=60)

        async def setup():
            await a.acquire()
            await b.acquire()
            await b.release()  # its reader stays registered, idle
        loop.run_until_complete(setup())
        pid = os.fork()
        if pid == 0:  # the child: no assertion here, only an exit code
            code = 1
            try:
                child_loop = asyncio.new_event_loop()

                async def child():
                    await b.acquire()
                    await b.release()
                child_loop.run_until_complete(
                    asyncio.wait_for(child(), DEADLINE))
                code = 0
            finally:
                atexit._run_exitfuncs()  # closes `a`, the parent's
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)

        async def after():
            self.assertTrue(await a.owned())
            self.assertTrue(await a.release())
            await b.acquire()
            self.assertTrue(await b.release())
        loop.run_until_complete(asyncio.wait_for(after(), DEADLINE))
        loop.close()
        self.assertEqual(support.keys_of(self.redis, held), [])
        self.assertEqual(support.keys_of(self.redis, used), [])


if __name__ == "__main__":
    unittest.main()
