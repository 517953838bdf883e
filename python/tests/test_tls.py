"""test_tls.py -- a redis-py client with ssl=True, followed over TLS to the
tls fixture's server (mutual TLS): fairlock takes its settings, and both
see the same lock.  Run as py_tls; skipped without that fixture."""
import os
import unittest

import redis

import fairlock
import support


class RedisPyOverTls(support.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = support.ENV.get("FAIRLOCK_TEST_TLS_DIR")
        if cls.dir is None:
            raise unittest.SkipTest("not the tls fixture")

    def tls_client(self, ca="ca.crt", **kwargs):
        kwargs.setdefault("ssl_certfile", os.path.join(self.dir, "client.crt"))
        kwargs.setdefault("ssl_keyfile", os.path.join(self.dir, "client.key"))
        # The certificate names IP:127.0.0.1 too: redis-py resolves a host
        # name itself, which a root without /etc/hosts cannot for localhost.
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True,
                           ssl_ca_certs=os.path.join(self.dir, ca),
                           ssl_check_hostname=True, **kwargs)

    def test_lock_through_a_tls_client(self):
        client = self.tls_client()
        self.assertTrue(client.ping())  # redis-py itself, over TLS
        name = support.unique("tls")
        lock = fairlock.RedisLockFifo(name, redis_client=client, timeout=5)
        self.assertTrue(lock.acquire())
        self.assertEqual(client.exists(name), 1)
        other = fairlock.RedisLockFifo(name, redis_client=client, timeout=5,
                                       blocking=False)
        with self.assertRaises(fairlock.LockTimeoutError):
            other.acquire()
        lock.release()
        self.assertEqual(client.exists(name), 0)
        client.close()

    def test_failures_name_their_cause(self):
        for client, cause in (
                (self.tls_client(ca="other-ca.crt"), "not signed by a CA"),
                (self.tls_client(ssl_certfile=None, ssl_keyfile=None),
                 "client certificate")):
            lock = fairlock.RedisLockFifo(support.unique("tls-bad"),
                                          redis_client=client, timeout=2)
            with self.subTest(cause=cause), self.assertRaises(
                    fairlock.LockError) as caught:
                lock.acquire()
            self.assertIn(cause, str(caught.exception))


if __name__ == "__main__":
    unittest.main()
