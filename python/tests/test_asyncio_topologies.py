"""test_asyncio_topologies.py -- fairlock.asyncio behind Sentinel and on a
Redis Cluster, on private servers of its own (the fixtures py_sentinel and
py_cluster, which no other test disturbs).  There the handle changes
sockets within one operation (a sentinel's, then the master's; a node's,
then the one a MOVED names), which the engine must follow.  Tasks on many
names, a cancelled waiter, redis.asyncio's Sentinel and RedisCluster
clients mapped to URLs; no key left on any server."""
import asyncio
import os
import unittest
import uuid

import redis
import redis.asyncio.cluster
import redis.asyncio.sentinel

import fairlock
import fairlock.asyncio as fa

DEADLINE = 60


def load(var):
    path = os.environ.get(var)
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return dict(line.strip().partition("=")[::2] for line in f
                    if "=" in line)


class Topology:
    """What both cases check, given self.url, self.servers (redis-py
    clients of every master, to scan) and self.client (a redis.asyncio
    client of the setup)."""

    def scan(self, tag):
        found = set()
        for server in self.servers:
            found |= {k.decode() for k in server.scan_iter(match=f"*{tag}*")}
        return sorted(found)

    def names(self, count):
        # One hash slot per name on a cluster: {tag}.
        tag = uuid.uuid4().hex[:10]
        return tag, [f"{{{tag}-{i}}}" for i in range(count)]

    async def test_tasks_on_many_names(self):
        tag, names = self.names(20)
        inside = dict.fromkeys(names, 0)
        overlaps, entries = [], [0]

        async def worker(name):
            lock = fa.RedisLockFifo(name, url=self.url, timeout=60)
            for _ in range(3):
                async with lock:
                    inside[name] += 1
                    if inside[name] != 1:
                        overlaps.append(name)
                    await asyncio.sleep(0)
                    entries[0] += 1
                    inside[name] -= 1

        await asyncio.wait_for(asyncio.gather(
            *(worker(name) for name in names for _ in range(5))), DEADLINE)
        self.assertEqual(overlaps, [])
        self.assertEqual(entries[0], 20 * 5 * 3)
        self.assertEqual(self.scan(tag), [])

    async def test_cancelled_waiter(self):
        tag, (name,) = self.names(1)
        holder = fa.RedisLockFifo(name, url=self.url, timeout=60)
        await holder.acquire()
        waiter = fa.RedisLockFifo(name, url=self.url, timeout=60)
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(waiter.acquire(), 0.5)
        self.assertFalse(waiter.held)
        self.assertFalse(await waiter.owned())
        self.assertEqual([k for k in self.scan(tag) if k.endswith(":queue")],
                         [])
        self.assertTrue(await holder.owned())
        self.assertTrue(await holder.release())
        self.assertEqual(self.scan(tag), [])

    async def test_through_a_redis_asyncio_client(self):
        tag, (name,) = self.names(1)
        lock = fa.RedisLockFifo(name, self.client, timeout=10)
        async with lock:
            self.assertTrue(await lock.owned())
            other = fa.RedisLockFifo(name, self.client, timeout=10,
                                     blocking=False)
            with self.assertRaises(fairlock.LockTimeoutError):
                await other.acquire()
        self.assertEqual(self.scan(tag), [])


class Sentinel(Topology, unittest.IsolatedAsyncioTestCase):

    @classmethod
    def setUpClass(cls):
        env = load("FAIRLOCK_TEST_SENTINEL_ENV")
        if env is None:
            raise unittest.SkipTest("no sentinel fixture")
        cls.url = env["FAIRLOCK_SENTINEL_URL"]
        # The master only: a replica may lag behind a deletion.
        # 127.0.0.1, not redis-py's default 'localhost': a machine without
        # /etc/hosts (a fresh debootstrapped root) cannot resolve it.
        cls.servers = [redis.Redis(
            host="127.0.0.1", port=int(env["FAIRLOCK_SENTINEL_MASTER_PORT"]))]
        port = int(env["FAIRLOCK_SENTINEL_PORT"])
        cls.client = redis.asyncio.sentinel.Sentinel(
            [("127.0.0.1", port + i) for i in range(3)]).master_for(
                "mymaster")


class Cluster(Topology, unittest.IsolatedAsyncioTestCase):

    @classmethod
    def setUpClass(cls):
        env = load("FAIRLOCK_TEST_CLUSTER_ENV")
        if env is None:
            raise unittest.SkipTest("no cluster fixture")
        cls.url = env["FAIRLOCK_CLUSTER_URL"]
        base = int(env["FAIRLOCK_CLUSTER_BASE_PORT"])
        nodes = [redis.Redis(host="127.0.0.1", port=base + i)
                 for i in range(int(env["FAIRLOCK_CLUSTER_NODES"]))]
        # The masters only: a replica may lag behind a deletion.
        cls.servers = [node for node in nodes
                       if node.info("replication")["role"] == "master"]
        cls.client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1",
                                                        port=base)


if __name__ == "__main__":
    unittest.main()
