"""test_mixed_fleet.py -- fairlock and the reference RedisLockFifo on one name.

Issue 11, item 1.  README and docs/protocol.md promise that a fleet mixing
fairlock clients and clients of the Python reference implementation on one
lock name stays mutually exclusive and that nobody starves.  The reference
clients here are tests/reference_client.py, which makes the reference's
Redis calls in the reference's order (its queue members carry a stamp of
its own process's monotonic clock, it never re-registers, and its release
cleans the queue keys up with separate, racy commands).

Every worker is a real process (forked), with its own connections.  The
test's own bookkeeping lives under "pydata:NAME...", outside the lock's key
space, so that "no key of the lock is left" can be checked with SCAN NAME*
(NAME, NAME:queue and NAME:seq must be gone; a marker key of fairlock's may
remain only with an expiry of at most three liveness windows).

Only hangs have deadlines, and they are generous; no assertion depends on
how fast the machine is.  The one lower bound (a dead reference head is not
evicted before the liveness window) cannot be broken by a slow machine.
"""
import multiprocessing
import os
import signal
import sys
import time
import unittest

import fairlock
import support

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "tests")))
import reference_client  # noqa: E402  (tests/reference_client.py)

CTX = multiprocessing.get_context("fork")

REF, FL = "ref", "fl"


def data_of(name):
    """Where a test keeps its own keys: not under NAME."""
    return "pydata:" + name


def server_ms(r):
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


def make_lock(kind, url, name, stale=None):
    """A lock of either kind, with the reference's defaults (timeout=None,
    check_interval=0.05); `stale` sets a fairlock client's
    fifo_stale_timeout (its liveness window, also for foreign entries).

    Reference clients always keep fifo_stale_timeout=None: the reference's
    stale rule is age since enqueue by its own clock, so a reference waiter
    with fifo_stale_timeout=S that waits longer than S evicts itself (its
    cleanup runs before its head check) and, without a timeout, then waits
    for ever.  That is the reference's own defect, not the fleet's."""
    if kind == REF:
        return reference_client.RedisLockFifo(name, support.client(),
                                              timeout=None)
    return fairlock.RedisLockFifo(name, url=url, fifo_stale_timeout=stale)


def fleet_worker(kind, url, name, ident, rounds, start):
    """`rounds` times: acquire; check nobody else is inside; a non-atomic
    read-modify-write of a shared counter; release."""
    data = data_of(name)
    r = support.client()
    lock = make_lock(kind, url, name)
    start.wait(30)
    for i in range(rounds):
        lock.acquire()
        if r.incr(f"{data}:inside") != 1:
            r.incr(f"{data}:overlaps")
        value = int(r.get(f"{data}:counter") or 0)
        time.sleep(0.001)  # widen the race window
        r.set(f"{data}:counter", value + 1)
        r.hincrby(f"{data}:grants", kind, 1)
        r.hset(f"{data}:progress", ident, i + 1)
        r.set(f"{data}:last_grant", server_ms(r))
        r.decr(f"{data}:inside")
        if lock.release() is False:  # fairlock: not held any more
            r.incr(f"{data}:lost")


def order_worker(kind, url, name, ident, stale, hold):
    """Waits for the lock, notes its id (and the server time) in the order
    of grants, holds it for `hold` seconds, releases."""
    data = data_of(name)
    r = support.client()
    lock = make_lock(kind, url, name, stale)
    lock.acquire()
    r.hset(f"{data}:granted_at", ident, server_ms(r))
    r.rpush(f"{data}:order", ident)
    time.sleep(hold)
    if lock.release() is False:
        r.incr(f"{data}:lost")


def join_all(procs, deadline, r, name):
    """Joins until `deadline` (monotonic); kills what is still alive.
    Returns the list of those and the lock's state (snapshot) as it was
    before they were killed."""
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    state = snapshot(r, name)
    for p in hung:
        p.kill()
    for p in hung:
        p.join(10)
    return hung, state


def entry_id(member):
    """"ticket:token" of a queue member "ticket:token:ts_ms"."""
    return member.decode().rsplit(":", 1)[0]


def queued(r, name, ident):
    """Whether an entry with this "ticket:token" is in the queue."""
    return any(entry_id(m) == ident
               for m in r.zrange(f"{name}:queue", 0, -1))


def lock_keys(r, name):
    """Every key of the lock: NAME and NAME:*, by SCAN."""
    return sorted(k.decode() for k in r.scan_iter(match=name + "*", count=1000)
                  if k.decode() == name or k.decode().startswith(name + ":"))


def snapshot(r, name):
    """The lock's state, for failure messages."""
    queue = r.zrange(f"{name}:queue", 0, -1, withscores=True)
    kinds = []
    for member, score in queue:
        m = member.decode()
        token = m.split(":")[1] if m.count(":") >= 2 else "?"
        kind = FL if "." in token else REF
        kinds.append(f"{kind} {m} (score {int(score)})")
    holder = r.get(name)
    return (f"holder={holder and holder.decode()!r} pttl={r.pttl(name)} "
            f"seq={r.get(name + ':seq')} queue pttl={r.pttl(name + ':queue')}"
            f" queue=[{'; '.join(kinds)}] keys={lock_keys(r, name)}")


class MixedFleet(support.ServerTestCase):

    def check_no_keys_left(self, name, window):
        """NAME, NAME:queue and NAME:seq must be gone at once: every waiter
        left the queue and the last release dropped it.  Any other key of
        the lock (a marker of fairlock's) must be on its way out: with an
        expiry no longer than three liveness windows (`window`, seconds),
        the bound fairlock's own queue keys use for a queue whose waiters
        all died.  Nothing runs any more, so its expiry is final."""
        r = self.redis
        keys = lock_keys(r, name)
        for key in (name, f"{name}:queue", f"{name}:seq"):
            self.assertNotIn(key, keys, f"left behind: {snapshot(r, name)}")
        for key in keys:
            pttl = r.pttl(key)
            if pttl == -2:
                continue  # expired just now
            self.assertGreater(pttl, 0,
                               f"{key} has no expiry: {snapshot(r, name)}")
            self.assertLessEqual(pttl, 3 * window * 1000,
                                 f"{key} outlives the fleet by {pttl} ms")
        for key in keys:
            r.delete(key)

    def queue_waiter(self, name, procs, members, proc):
        """Starts proc and waits until its entry is in the queue; records
        its "ticket:token" (the waiters are started one at a time).  A
        fairlock waiter rewrites its member's stamp at every poll, so
        entries are told apart by ticket and token only."""
        r = self.redis
        before = {entry_id(m) for m in r.zrange(f"{name}:queue", 0, -1)}
        proc.start()
        procs.append(proc)
        self.assertTrue(support.wait_until(
            lambda: r.zcard(f"{name}:queue") == len(before) + 1,
            timeout=20), f"{proc.name} did not queue up: {snapshot(r, name)}")
        new = [entry_id(m) for m in r.zrange(f"{name}:queue", 0, -1)
               if entry_id(m) not in before]
        self.assertEqual(len(new), 1, snapshot(r, name))
        members[proc.name] = new[0]

    # -- (a) ------------------------------------------------------------

    def test_mixed_fleet(self):
        """3 reference processes (timeout=None) and 3 fairlock processes
        (default options) do 40 rounds each on one name: all finish, never
        overlap, lose no counter update, and leave no key behind (none
        without an expiry; see check_no_keys_left).

        Before issue 11 was fixed, fairlock's scripts evicted every
        reference member at once (its monotonic stamp looked 1.8e12 ms
        old by the server's clock), so the reference processes never got
        the lock and waited for ever."""
        rounds = 40
        name = support.unique("mixed")
        data = data_of(name)
        r = self.redis
        start = CTX.Event()
        kinds = [REF, FL, REF, FL, REF, FL]
        procs = [CTX.Process(target=fleet_worker, name=f"{kind}{i}",
                             args=(kind, self.url, name, f"{kind}{i}", rounds,
                                   start))
                 for i, kind in enumerate(kinds)]
        for p in procs:
            p.start()
        t0 = time.monotonic()
        start.set()
        hung, state = join_all(procs, t0 + 120, r, name)
        elapsed = time.monotonic() - t0
        progress = {k.decode(): int(v) for k, v in
                    r.hgetall(f"{data}:progress").items()}
        grants = {k.decode(): int(v) for k, v in
                  r.hgetall(f"{data}:grants").items()}
        print(f"\n  mixed fleet: {elapsed:.1f} s, grants {grants}, "
              f"rounds done {progress}", flush=True)
        last = r.get(f"{data}:last_grant")
        idle = (server_ms(r) - int(last)) / 1000 if last else None
        try:
            self.assertEqual(
                [p.name for p in hung], [],
                f"processes still waiting after 120 s (killed): rounds done "
                f"{progress} of {rounds} each, grants {grants}, no grant in "
                f"the last {idle} s; lock: {state}")
            self.assertEqual({p.name: p.exitcode for p in procs},
                             {p.name: 0 for p in procs})
            self.assertIsNone(r.get(f"{data}:overlaps"), "holds overlapped")
            self.assertIsNone(r.get(f"{data}:lost"), "a release found the "
                              "lock gone")
            self.assertEqual(int(r.get(f"{data}:counter") or 0),
                             rounds * len(procs), "lost counter updates")
            self.assertEqual(grants, {REF: 3 * rounds, FL: 3 * rounds})
            # The liveness window of these clients is the default 10 s.
            self.check_no_keys_left(name, window=10)
        finally:
            for key in r.scan_iter(match=data + ":*"):
                r.delete(key)
            if hung:
                for key in lock_keys(r, name):
                    r.delete(key)

    # -- (b) ------------------------------------------------------------

    def test_killed_reference_head_is_evicted(self):
        """A reference waiter at the head of the queue is killed while a
        fairlock client holds the lock; behind it wait a fairlock client, a
        live reference client and another fairlock client, all with a
        liveness window of 2 s.  After the release the dead head is evicted
        (not before the window has passed with the lock free) and the
        others get the lock in their order: the live reference waiter is
        not evicted with the dead one."""
        window = 2.0
        name = support.unique("killhead")
        data = data_of(name)
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url,
                                        fifo_stale_timeout=window)
        holder.acquire()
        procs, members = [], {}
        try:
            for ident, kind in (("dead", REF), ("fl1", FL), ("ref2", REF),
                                ("fl3", FL)):
                self.queue_waiter(name, procs, members, CTX.Process(
                    target=order_worker, name=ident,
                    args=(kind, self.url, name, ident, window, 0.05)))
            dead = procs[0]
            os.kill(dead.pid, signal.SIGKILL)
            dead.join(10)
            self.assertEqual(dead.exitcode, -signal.SIGKILL)
            head = [entry_id(m) for m in r.zrange(f"{name}:queue", 0, 0)]
            self.assertEqual(head, [members["dead"]],
                             "the killed reference waiter is not the head: "
                             + snapshot(r, name))
            released_at = server_ms(r)
            self.assertTrue(holder.release())
            t0 = time.monotonic()
            hung, state = join_all(procs[1:], t0 + 45, r, name)
            order = [x.decode() for x in r.lrange(f"{data}:order", 0, -1)]
            granted = {k.decode(): int(v) - released_at for k, v in
                       r.hgetall(f"{data}:granted_at").items()}
            print(f"\n  grants (ms after the release): {granted}", flush=True)
            problems = []
            if hung:
                problems.append(
                    f"still waiting after 45 s (killed): "
                    f"{[p.name for p in hung]}; lock: {state}")
            if order != ["fl1", "ref2", "fl3"]:
                problems.append(f"order of grants {order}, expected "
                                f"['fl1', 'ref2', 'fl3']")
            if queued(r, name, members["dead"]):
                problems.append("the dead head is still queued")
            # The dead head may be evicted only after the lock has been
            # free for the window (server clock, from the release on).  A
            # slow machine can only make this later, never earlier.
            if "fl1" in granted and granted["fl1"] < window * 1000 - 250:
                problems.append(
                    f"fl1 got the lock {granted['fl1']} ms after the "
                    f"release: the dead reference head was evicted before "
                    f"the {window} s window had passed with the lock free")
            codes = {p.name: p.exitcode for p in procs[1:]}
            if codes != {p.name: 0 for p in procs[1:]}:
                problems.append(f"exit codes {codes}")
            if r.get(f"{data}:lost"):
                problems.append("a release found the lock gone")
            if problems:
                self.fail("\n".join(problems))
            self.check_no_keys_left(name, window=window)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(10)
            for key in r.scan_iter(match=data + ":*"):
                r.delete(key)

    # -- (c) ------------------------------------------------------------

    def test_fifo_across_kinds(self):
        """Reference and fairlock waiters queue alternately while a
        fairlock client holds the lock; after the release they get it in
        the order they queued.  A reference head takes a free lock within
        its check_interval (50 ms), so the fairlock waiter behind it must
        wait for it rather than be handed the lock."""
        name = support.unique("fifomix")
        data = data_of(name)
        r = self.redis
        holder = fairlock.RedisLockFifo(name, url=self.url)
        holder.acquire()
        kinds = [REF, FL, REF, FL, FL, REF, REF, FL]
        idents = [f"{i}{kind}" for i, kind in enumerate(kinds)]
        procs, members = [], {}
        try:
            for ident, kind in zip(idents, kinds):
                self.queue_waiter(name, procs, members, CTX.Process(
                    target=order_worker, name=ident,
                    args=(kind, self.url, name, ident, None, 0.05)))
            released_at = server_ms(r)
            self.assertTrue(holder.release())
            hung, state = join_all(procs, time.monotonic() + 45, r, name)
            order = [x.decode() for x in r.lrange(f"{data}:order", 0, -1)]
            granted = {k.decode(): int(v) - released_at for k, v in
                       r.hgetall(f"{data}:granted_at").items()}
            print(f"\n  grants (ms after the release): "
                  f"{sorted(granted.items(), key=lambda kv: kv[1])}",
                  flush=True)
            problems = []
            if order != idents:
                problems.append(f"order of grants {order}, "
                                f"queue order {idents}")
            if hung:
                problems.append(
                    f"still waiting after 45 s (killed): "
                    f"{[p.name for p in hung]}; lock: {state}")
            codes = {p.name: p.exitcode for p in procs}
            if codes != {p.name: 0 for p in procs}:
                problems.append(f"exit codes {codes}")
            if r.get(f"{data}:lost"):
                problems.append("a release found the lock gone")
            if problems:
                self.fail("\n".join(problems))
            self.check_no_keys_left(name, window=10)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(10)
            for key in r.scan_iter(match=data + ":*"):
                r.delete(key)


if __name__ == "__main__":
    unittest.main()
