"""test_args.py -- wrong arguments raise TypeError or ValueError with a
message that names the argument.  No server: the checks come before any
I/O (objects point at a port nothing listens on, and never connect)."""
import inspect
import math
import unittest

import redis

import fairlock

NOWHERE = "redis://127.0.0.1:1/0"


def make(*args, **kwargs):
    kwargs.setdefault("url", NOWHERE)
    return fairlock.RedisLockFifo(*args, **kwargs)


class Constructor(unittest.TestCase):

    def test_signature_is_the_references(self):
        params = list(inspect.signature(fairlock.RedisLockFifo).parameters)
        self.assertEqual(params[:7], [
            "name", "redis_client", "timeout", "blocking", "check_interval",
            "fifo", "fifo_stale_timeout"])

    def test_defaults_as_attributes(self):
        lock = make("n")
        self.assertEqual((lock.name, lock.timeout, lock.blocking,
                          lock.check_interval, lock.fifo,
                          lock.fifo_stale_timeout),
                         ("n", None, True, 0.05, True, None))
        self.assertEqual((lock.ttl, lock.auto_renew, lock.fencing),
                         (None, False, False))
        self.assertEqual((lock.token, lock.ticket, lock.fence, lock.held,
                          lock.valid_until), (None, 0, 0, False, None))
        self.assertEqual(lock.client, NOWHERE)

    def test_name(self):
        with self.assertRaisesRegex(TypeError, "missing 1 required "
                                    "positional argument: 'name'"):
            fairlock.RedisLockFifo()
        with self.assertRaisesRegex(TypeError,
                                    "name must be a str or bytes, not 'int'"):
            make(42)
        with self.assertRaisesRegex(ValueError, "name must not be empty"):
            make("")
        with self.assertRaisesRegex(ValueError, "1024"):
            make("x" * 2000)
        self.assertEqual(make(b"raw\x00key").name, b"raw\x00key")

    def test_durations_type(self):
        for arg in ("timeout", "check_interval", "fifo_stale_timeout", "ttl",
                    "io_timeout"):
            with self.subTest(arg=arg):
                with self.assertRaisesRegex(
                        TypeError,
                        f"^{arg} must be a number of seconds or None, "
                        "not 'str'$"):
                    make("n", **{arg: "1"})
                with self.assertRaisesRegex(TypeError, "not 'bool'"):
                    make("n", **{arg: True})
                with self.assertRaisesRegex(TypeError, "not 'complex'"):
                    make("n", **{arg: 1j})

    def test_durations_value(self):
        for arg in ("timeout", "check_interval", "fifo_stale_timeout", "ttl",
                    "io_timeout"):
            with self.subTest(arg=arg):
                with self.assertRaisesRegex(
                        ValueError,
                        f"^{arg} must not be negative \\(got -1 seconds\\)$"):
                    make("n", **{arg: -1})
                with self.assertRaisesRegex(
                        ValueError, f"^{arg} must be a number of seconds, "
                        "not NaN$"):
                    make("n", **{arg: math.nan})
                with self.assertRaisesRegex(ValueError, "too large"):
                    make("n", **{arg: 1e300})
                with self.assertRaisesRegex(ValueError, "too large"):
                    make("n", **{arg: 10 ** 400})
        for arg in ("check_interval", "ttl", "io_timeout"):
            with self.subTest(arg=arg), self.assertRaisesRegex(
                    ValueError, f"^{arg} must be greater than 0 seconds"):
                make("n", **{arg: 0})
        for arg in ("check_interval", "fifo_stale_timeout", "io_timeout"):
            with self.subTest(arg=arg), self.assertRaisesRegex(
                    ValueError, f"^{arg} must be finite, not inf$"):
                make("n", **{arg: math.inf})

    def test_durations_accepted(self):
        from fractions import Fraction
        lock = make("n", timeout=math.inf, ttl=math.inf, check_interval=1,
                    fifo_stale_timeout=0, io_timeout=Fraction(1, 2))
        self.assertEqual(lock.timeout, math.inf)
        make("n", timeout=0, ttl=0.0001)  # rounded up to 1 ms

    def test_flags(self):
        for arg in ("blocking", "fifo", "auto_renew", "fencing"):
            with self.subTest(arg=arg), self.assertRaisesRegex(
                    TypeError, f"^{arg} must be a bool, not 'str'$"):
                make("n", ttl=1, **{arg: "false"})
            with self.subTest(arg=arg), self.assertRaisesRegex(
                    TypeError, f"^{arg} must be a bool, not 'NoneType'$"):
                make("n", ttl=1, **{arg: None})
        self.assertFalse(make("n", blocking=0).blocking)

    def test_auto_renew_needs_a_finite_lease(self):
        with self.assertRaisesRegex(ValueError, "auto_renew=True needs a "
                                    "finite ttl"):
            make("n", auto_renew=True, ttl=math.inf)

    def test_extras_are_keyword_only(self):
        with self.assertRaises(TypeError):
            fairlock.RedisLockFifo("n", None, None, True, 0.05, True, None,
                                   1.0)
        with self.assertRaisesRegex(TypeError, "'bogus'"):
            make("n", bogus=1)

    def test_server(self):
        with self.assertRaisesRegex(TypeError, "redis_client must be a "
                                    "redis.Redis client .* not 'int'"):
            fairlock.RedisLockFifo("n", 42)
        with self.assertRaisesRegex(TypeError, "not 'bytes'"):
            fairlock.RedisLockFifo("n", url=b"redis://x")
        with self.assertRaisesRegex(TypeError, "either redis_client or url"):
            fairlock.RedisLockFifo("n", NOWHERE, url=NOWHERE)
        with self.assertRaisesRegex(ValueError, "must start with redis://"):
            fairlock.RedisLockFifo("n", "http://localhost")
        with self.assertRaisesRegex(ValueError, "port"):
            fairlock.RedisLockFifo("n", url="redis://h:99999")
        # TLS clients and URLs are taken (test_tls runs them); what the
        # library cannot honour is refused.
        fairlock.RedisLockFifo("n", redis.Redis(ssl=True))
        fairlock.RedisLockFifo("n", url="rediss://h")
        with self.assertRaisesRegex(ValueError, "ssl_ca_data"):
            fairlock.RedisLockFifo("n", redis.Redis(ssl=True,
                                                    ssl_ca_data="PEM"))
        with self.assertRaisesRegex(ValueError, "unknown query parameter"):
            fairlock.RedisLockFifo("n", url="rediss://h?ssl=1")
        with self.assertRaisesRegex(ValueError, "absolute"):
            fairlock.RedisLockFifo(
                "n", redis.Redis(unix_socket_path="relative.sock"))
        with self.assertRaisesRegex(ValueError, "port must be an integer"):
            fairlock.RedisLockFifo("n", redis.Redis(port="6379x"))
        client = redis.Redis(host="::1", port=1, db=2, username="u",
                             password="p@ss:/%")
        self.assertIs(fairlock.RedisLockFifo("n", client).client, client)

    def test_uninitialised_object(self):
        class Sub(fairlock.RedisLockFifo):
            def __init__(self):
                pass
        with self.assertRaisesRegex(fairlock.LockError, "__init__"):
            Sub().acquire()
        lock = make("n")
        with self.assertRaisesRegex(TypeError, "only once"):
            lock.__init__("m")


class ClientUrls(unittest.TestCase):
    """The URL a redis-py client maps to (no connection is made)."""

    def test_redis(self):
        url = fairlock._url_of
        self.assertEqual(url(redis.Redis()), "redis://localhost:6379/0")
        self.assertEqual(
            url(redis.Redis(host="::1", port=7000, db=3, username="us er",
                            password="p@ss:/%\u00fc")),
            "redis://us%20er:p%40ss%3A%2F%25%C3%BC@[::1]:7000/3")
        self.assertEqual(url(redis.Redis(password="pw")),
                         "redis://:pw@localhost:6379/0")
        self.assertEqual(url(redis.Redis(username="u")),
                         "redis://u:@localhost:6379/0")
        self.assertEqual(url(redis.Redis.from_url("redis://h:7/2")),
                         "redis://h:7/2")
        self.assertEqual(url(redis.Redis(port="7000")),
                         "redis://localhost:7000/0")

    def test_unix(self):
        url = fairlock._url_of
        self.assertEqual(url(redis.Redis(unix_socket_path="/run/r.sock")),
                         "unix:///run/r.sock")
        self.assertEqual(url(redis.Redis(unix_socket_path="/run/r.sock",
                                         db=2, password="x")),
                         "unix://:x@/run/r.sock?db=2")

    def test_sentinel(self):
        from redis.sentinel import Sentinel
        sentinel = Sentinel([("h1", 26379), ("::1", 26380)], password="pw",
                            db=4)
        self.assertEqual(fairlock._url_of(sentinel.master_for("mymaster")),
                         "redis+sentinel://:pw@h1:26379,[::1]:26380/"
                         "mymaster/4")
        guarded = Sentinel([("h", 1)], sentinel_kwargs={"password": "x"})
        with self.assertRaisesRegex(ValueError, "sentinels need a password"):
            fairlock._url_of(guarded.master_for("m"))

    def test_cluster_duck_typed(self):
        # redis.RedisCluster connects when made: a stand-in with its
        # attributes (nodes_manager.startup_nodes / connection_kwargs).
        class Node:
            def __init__(self, host, port):
                self.host, self.port = host, port

        class Manager:
            connection_kwargs = {"username": "u", "password": "pw"}
            startup_nodes = {"a": Node("10.0.0.1", 7000),
                             "b": Node("::1", 7001)}

        class Cluster:
            nodes_manager = Manager()
        self.assertEqual(fairlock._url_of(Cluster()),
                         "redis+cluster://u:pw@10.0.0.1:7000,[::1]:7001")

    def test_asyncio_client(self):
        import redis.asyncio
        self.assertEqual(
            fairlock._url_of(redis.asyncio.Redis(host="h", port=1, db=1)),
            "redis://h:1/1")

    def test_not_a_client(self):
        with self.assertRaisesRegex(TypeError, "not 'object'"):
            fairlock._url_of(object())


class Methods(unittest.TestCase):

    def setUp(self):
        self.lock = make("n")

    def test_acquire(self):
        with self.assertRaisesRegex(
                TypeError, "^timeout must be a number of seconds or None, "
                "not 'str'$"):
            self.lock.acquire("1")
        with self.assertRaisesRegex(ValueError, "^timeout must not be "
                                    "negative"):
            self.lock.acquire(timeout=-0.5)
        with self.assertRaisesRegex(ValueError, "^check_interval must be "
                                    "greater than 0"):
            self.lock.acquire(check_interval=0)
        with self.assertRaisesRegex(TypeError, "^blocking must be a bool, "
                                    "not 'str'$"):
            self.lock.acquire(blocking="no")
        with self.assertRaises(TypeError):
            self.lock.acquire(1, True, 0.1, "extra")

    def test_extend(self):
        with self.assertRaisesRegex(TypeError, "^ttl must be a number of "
                                    "seconds, not None$"):
            self.lock.extend(None)
        with self.assertRaisesRegex(ValueError, "^ttl must not be negative"):
            self.lock.extend(-1)
        with self.assertRaisesRegex(ValueError, "^ttl must be greater than "
                                    "0 seconds"):
            self.lock.extend(0)
        with self.assertRaises(TypeError):
            self.lock.extend()
        # Well-formed, but the lock is not held: no I/O, LockError.
        with self.assertRaises(fairlock.LockError) as cm:
            self.lock.extend(1)
        self.assertEqual(cm.exception.code, "FAIRLOCK_NOTOWNED")

    def test_release_when_not_held(self):
        self.assertFalse(self.lock.release())  # silent, as the reference

    def test_no_arguments(self):
        for method in ("release", "owned", "locked", "__enter__"):
            with self.subTest(method=method), self.assertRaises(TypeError):
                getattr(self.lock, method)(1)

    def test_read_only_attributes(self):
        for attr in ("name", "timeout", "token", "ticket", "fence"):
            with self.subTest(attr=attr), self.assertRaises(AttributeError):
                setattr(self.lock, attr, 1)

    def test_connection_refused_is_a_lock_error(self):
        with self.assertRaises(fairlock.LockError) as cm:
            self.lock.acquire()
        self.assertEqual(cm.exception.code, "FAIRLOCK_REDIS")
        self.assertIn("127.0.0.1:1", str(cm.exception))
        self.assertNotIsInstance(cm.exception, fairlock.LockTimeoutError)


class Exceptions(unittest.TestCase):

    def test_hierarchy(self):
        self.assertTrue(issubclass(fairlock.LockError, RuntimeError))
        self.assertTrue(issubclass(fairlock.LockTimeoutError, TimeoutError))
        self.assertTrue(issubclass(fairlock.LockTimeoutError,
                                   fairlock.LockError))
        self.assertEqual(fairlock.LockError.__module__, "fairlock")


if __name__ == "__main__":
    unittest.main()
