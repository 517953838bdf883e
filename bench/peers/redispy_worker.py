#!/usr/bin/python3
"""redispy_worker.py -- benchmark worker for redis-py's redis.lock.Lock.

Speaks the line protocol of bench/PROTOCOL.md on stdin/stdout, like
bench/fairlock_worker.c, so bench/run times both alike.  Run it with
Debian's /usr/bin/python3 and python3-redis.  --sleep is the Lock's poll
interval in seconds (0.1 is redis-py's default).
"""
import argparse
import sys
import threading
import time

import redis


def now_ns():
    # CLOCK_MONOTONIC, the clock every worker of the benchmark uses.
    return time.monotonic_ns()


def reply(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Worker:
    def __init__(self, args):
        self.args = args
        self.r = self.connect()
        self.lock = self.make_lock(self.r)
        self.crowd = None

    def connect(self):
        if self.args.unix:
            return redis.Redis(unix_socket_path=self.args.unix)
        if self.args.tls_port:
            # The lock and its PINGs over TLS, as redis-py users run it.
            return redis.Redis(host=self.args.host, port=self.args.tls_port,
                               ssl=True, ssl_ca_certs=self.args.tls_ca,
                               ssl_check_hostname=True)
        return redis.Redis(host=self.args.host, port=self.args.port)

    def make_lock(self, r):
        timeout = self.args.ttl_ms / 1000.0 if self.args.ttl_ms > 0 else None
        # thread_local=False: each waiter thread of `many` has its own Lock
        # object anyway, and the token must survive acquire -> release.
        return r.lock(self.args.name, timeout=timeout,
                      sleep=self.args.sleep, thread_local=False)

    def ping(self, n):
        out = []
        for _ in range(n):
            t0 = now_ns()
            self.r.ping()
            out.append(now_ns() - t0)
        reply("ok " + " ".join(map(str, out)))

    def cycles(self, n):
        out = []
        lock = self.lock
        for _ in range(n):
            t0 = now_ns()
            lock.acquire()
            lock.release()
            out.append(now_ns() - t0)
        reply("ok " + " ".join(map(str, out)))

    def acquire(self):
        self.lock.acquire()
        reply("ok %d 0" % now_ns())

    def release(self):
        t = now_ns()
        self.lock.release()
        reply("ok %d" % t)

    def fifo(self, hold_ms):
        self.lock.acquire()
        t = now_ns()
        time.sleep(hold_ms / 1000.0)
        self.lock.release()
        reply("ok %d 0" % t)

    def hammer(self, start, end, counter):
        grants = []
        r, lock = self.r, self.lock
        delay = start - now_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        while now_ns() < end:
            lock.acquire()
            grants.append(now_ns())
            n = r.get(counter)
            r.set(counter, int(n or 0) + 1)
            lock.release()
        reply("ok %d %s" % (len(grants),
                            " ".join("%d:0" % t for t in grants)))

    def many(self, n, hold_ms):
        if self.crowd is not None:
            reply("err a crowd is already waiting; send join first")
            return
        results = [None] * n
        # One client per waiter, as n separate processes would have.
        def waiter(i):
            try:
                r = self.connect()
                lock = self.make_lock(r)
                lock.acquire()
                t = now_ns()
                time.sleep(hold_ms / 1000.0)
                lock.release()
                results[i] = t
                r.close()
            except Exception as e:  # reported through the failure count
                sys.stderr.write("redispy_worker: waiter failed: %r\n" % e)
        threads = [threading.Thread(target=waiter, args=(i,), daemon=True)
                   for i in range(n)]
        threading.stack_size(256 * 1024)
        for t in threads:
            t.start()
        self.crowd = (threads, results)
        reply("ok %d" % n)

    def join(self):
        threads, results = self.crowd or ([], [])
        for t in threads:
            t.join()
        self.crowd = None
        ok = [t for t in results if t is not None]
        reply("ok %d %d %s" % (len(ok), len(results) - len(ok),
                               " ".join("%d:0" % t for t in ok)))

    def serve(self):
        reply("ready redis-py %s sleep=%g" % (redis.__version__,
                                              self.args.sleep))
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            verb, rest = words[0], words[1:]
            try:
                if verb == "ping":
                    self.ping(int(rest[0]))
                elif verb == "cycles":
                    self.cycles(int(rest[0]))
                elif verb == "acquire":
                    self.acquire()
                elif verb == "release":
                    self.release()
                elif verb == "fifo":
                    self.fifo(int(rest[0]))
                elif verb == "hammer":
                    self.hammer(int(rest[0]), int(rest[1]), rest[2])
                elif verb == "many":
                    self.many(int(rest[0]), int(rest[1]))
                elif verb == "join":
                    self.join()
                elif verb == "quit":
                    break
                else:
                    reply("err unknown command: " + line.strip())
            except (redis.RedisError, IndexError, ValueError) as e:
                reply("err %s: %s" % (verb, str(e).replace("\n", " ")))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--unix")
    p.add_argument("--name", required=True)
    p.add_argument("--ttl-ms", type=int, default=0)
    p.add_argument("--sleep", type=float, default=0.1)
    p.add_argument("--check-ms", type=int, default=0)  # fairlock's only
    p.add_argument("--impl")  # accepted so one command line fits all
    p.add_argument("--tls-port", type=int, default=0)
    p.add_argument("--tls-ca")
    Worker(p.parse_args()).serve()


if __name__ == "__main__":
    main()
