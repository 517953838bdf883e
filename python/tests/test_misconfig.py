"""test_misconfig.py -- each misconfiguration a user can make in the
address of the server gets a LockError that says what to change, from the
url argument and from a redis-py client alike, and never the password."""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import redis

import fairlock
import support

SECRET = "s3cr3t-pw"


class PrivateServer:
    """A redis-server of this test alone, on a unix socket."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="fl-py-", dir="/tmp")
        self.sock = os.path.join(self.dir, "r.sock")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock,
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline:
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.02)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Misconfiguration(support.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if shutil.which("redis-server") is None:
            raise unittest.SkipTest("redis-server is not installed")
        cls.locked = PrivateServer("--requirepass", SECRET)
        cls.replica = PrivateServer("--replicaof", "127.0.0.1", "1")

    @classmethod
    def tearDownClass(cls):
        cls.locked.stop()
        cls.replica.stop()
        super().tearDownClass()

    def expect(self, expected, url=None, client=None):
        lock = fairlock.RedisLockFifo(support.unique("misconf"),
                                      redis_client=client, url=url,
                                      timeout=2, hash_tag=True)
        with self.assertRaises(fairlock.LockError) as caught:
            lock.acquire()
        text = str(caught.exception)
        self.assertIn(expected, text)
        self.assertNotIn(SECRET, text)

    def test_no_password(self):
        self.expect("requires a password (NOAUTH)",
                    url="unix://" + self.locked.sock)
        self.expect("requires a password (NOAUTH)",
                    client=redis.Redis(unix_socket_path=self.locked.sock))

    def test_wrong_password_or_user(self):
        self.expect("wrong user name or password",
                    url="unix://:wrong@" + self.locked.sock)
        self.expect("wrong user name or password",
                    client=redis.Redis(unix_socket_path=self.locked.sock,
                                       username="nobody", password=SECRET))

    def test_password_not_needed(self):
        self.expect("the server requires none",
                    url="unix://:%s@%s" % (SECRET, self.socket))

    def test_database_out_of_range(self):
        self.expect("database number in the URL does not exist",
                    url="unix://%s?db=4000" % self.socket)

    def test_read_only_replica(self):
        self.expect("read-only replica", url="unix://" + self.replica.sock)

    def test_server_of_another_kind(self):
        tcp = self.tcp_url[len("redis://"):]
        self.expect("not a Redis Cluster node",
                    url="redis+cluster://" + tcp)
        self.expect("not a Redis Sentinel",
                    url="redis+sentinel://%s/mymaster" % tcp)

    def test_right_password_works(self):
        lock = fairlock.RedisLockFifo(
            support.unique("misconf"),
            url="unix://:%s@%s" % (SECRET, self.locked.sock), timeout=2)
        with lock:
            self.assertTrue(lock.held)


if __name__ == "__main__":
    unittest.main()
