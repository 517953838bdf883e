"""test_redis_url.py -- fairlock._redis_url, the redis-py client to URL
mapping, branch by branch: real redis-py clients where making one connects
to nothing, stand-ins with the same attributes elsewhere.  No server.
(test_args.ClientUrls checks the common clients through fairlock._url_of.)
"""
import unittest

import redis
from redis.sentinel import Sentinel

from fairlock._redis_url import url_of


class Pool:
    def __init__(self, **kwargs):
        self.connection_kwargs = kwargs


class Client:
    """A stand-in for a redis.Redis: a connection_pool with kwargs."""

    def __init__(self, **kwargs):
        self.connection_pool = Pool(**kwargs)


class Node:
    def __init__(self, host, port):
        self.host, self.port = host, port


class Cluster:
    """A stand-in for a redis.RedisCluster, which connects when made."""

    def __init__(self, nodes, **kwargs):
        manager = type("Manager", (), {})()
        manager.connection_kwargs = kwargs
        manager.startup_nodes = {f"{n.host}:{n.port}": n for n in nodes}
        self.nodes_manager = manager


class Credentials:
    def __init__(self, *creds):
        self.creds = creds

    def get_credentials(self):
        return self.creds


class Tcp(unittest.TestCase):

    def test_host_port_db(self):
        self.assertEqual(url_of(redis.Redis(host="h", port=7001, db=9)),
                         "redis://h:7001/9")
        self.assertEqual(url_of(Client(host="10.1.2.3")),
                         "redis://10.1.2.3:6379/0")
        self.assertEqual(url_of(Client(host="fe80::1", port="7000")),
                         "redis://[fe80::1]:7000/0")

    def test_credentials(self):
        self.assertEqual(url_of(redis.Redis(host="h", username="u",
                                            password="p w")),
                         "redis://u:p%20w@h:6379/0")
        self.assertEqual(url_of(Client(host="h", password=b"\xffb")),
                         "redis://:%FFb@h:6379/0")
        both, password = Credentials("u", "~p-._"), Credentials("pw")
        self.assertEqual(url_of(Client(host="h", credential_provider=both)),
                         "redis://u:~p-._@h:6379/0")
        self.assertEqual(url_of(Client(host="h",
                                       credential_provider=password)),
                         "redis://:pw@h:6379/0")

    def test_bad_credentials(self):
        with self.assertRaisesRegex(ValueError, "credential_provider must "
                                    "return"):
            url_of(Client(host="h", credential_provider=Credentials()))
        with self.assertRaisesRegex(TypeError, "password must be a str, "
                                    "not 'int'"):
            url_of(Client(host="h", password=5))
        with self.assertRaisesRegex(ValueError, "username contains a NUL"):
            url_of(Client(host="h", username="a\0b"))

    def test_bad_settings(self):
        with self.assertRaisesRegex(ValueError, "neither a host nor a unix "
                                    "socket path"):
            url_of(Client())
        with self.assertRaisesRegex(TypeError, "host must be a str"):
            url_of(Client(host=b"h"))
        for port in (0, 65536, True, "x", 1.5):
            with self.subTest(port=port), self.assertRaisesRegex(
                    ValueError, "port must be an integer from 1 to 65535"):
                url_of(Client(host="h", port=port))
        with self.assertRaisesRegex(ValueError, "db must be an integer"):
            url_of(Client(host="h", db=-1))


class Unix(unittest.TestCase):

    def test_socket(self):
        self.assertEqual(url_of(redis.Redis(unix_socket_path="/s.sock",
                                            username="u", password="p")),
                         "unix://u:p@/s.sock")
        self.assertEqual(url_of(Client(path="/s.sock", db="3")),
                         "unix:///s.sock?db=3")

    def test_bad_socket(self):
        with self.assertRaisesRegex(TypeError, "socket path must be a str"):
            url_of(Client(path=b"/s.sock"))
        with self.assertRaisesRegex(ValueError, "absolute and contain no"):
            url_of(Client(path="/s.sock?x"))


class Tls(unittest.TestCase):
    """redis-py's TLS clients map to rediss:// with the ssl_* settings."""

    def test_defaults(self):
        # redis-py 4 passes its defaults along: required, no host check.
        self.assertEqual(
            url_of(redis.Redis(host="h", port=6380, ssl=True)),
            "rediss://h:6380/0?ssl_cert_reqs=required"
            "&ssl_check_hostname=false")
        self.assertEqual(url_of(Client(host="h", port=1, ssl=True)),
                         "rediss://h:1/0")
        self.assertEqual(
            url_of(Client(host="h", port=1,
                          connection_class=redis.SSLConnection)),
            "rediss://h:1/0")

    def test_settings(self):
        client = redis.Redis(host="h", port=6380, db=2, password="p w",
                             ssl=True, ssl_ca_certs="/etc/my ca.pem",
                             ssl_ca_path="/etc/cas",
                             ssl_certfile="/c.pem", ssl_keyfile="/k.pem",
                             ssl_cert_reqs="none", ssl_check_hostname=True)
        self.assertEqual(
            url_of(client),
            "rediss://:p%20w@h:6380/2?ssl_ca_certs=/etc/my%20ca.pem"
            "&ssl_ca_path=/etc/cas&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
            "&ssl_cert_reqs=none&ssl_check_hostname=true")
        self.assertEqual(
            url_of(Client(host="h", port=1, ssl=True, ssl_cert_reqs=None)),
            "rediss://h:1/0?ssl_cert_reqs=none")
        self.assertEqual(
            url_of(Client(host="h", port=1, ssl=True, ssl_cert_reqs=2)),
            "rediss://h:1/0?ssl_cert_reqs=required")

    def test_from_url_and_cluster(self):
        self.assertEqual(url_of(redis.Redis.from_url("rediss://h:1/0")),
                         "rediss://h:1/0")
        self.assertEqual(
            url_of(Cluster([Node("a", 1), Node("b", 2)], ssl=True,
                           ssl_ca_certs="/ca.pem")),
            "rediss+cluster://a:1,b:2?ssl_ca_certs=/ca.pem")


class Refused(unittest.TestCase):
    """Clients fairlock cannot follow raise, with the reason."""

    def test_tls_settings_without_counterpart(self):
        for kwargs, words in (
                (dict(ssl_ca_data="-----BEGIN"), "ssl_ca_data"),
                (dict(ssl_password="x"), "ssl_password"),
                (dict(ssl_validate_ocsp=True), "ssl_validate_ocsp"),
                (dict(ssl_cert_reqs="maybe"), "ssl_cert_reqs"),
                (dict(ssl_ca_certs=b"/ca.pem"), "ssl_ca_certs")):
            with self.subTest(kwargs=kwargs), self.assertRaisesRegex(
                    ValueError, words):
                url_of(Client(host="h", port=1, ssl=True, **kwargs))
        with self.assertRaisesRegex(ValueError, "TLS on a unix socket"):
            url_of(Client(path="/s.sock", ssl=True))

    def test_not_a_client(self):
        for thing in (42, "redis://h", object(), Pool()):
            with self.subTest(thing=thing), self.assertRaisesRegex(
                    TypeError, "redis_client must be a redis.Redis client"):
                url_of(thing)

    def test_sentinel(self):
        with self.assertRaisesRegex(ValueError, "sentinels need a password"):
            url_of(Sentinel([("h", 1)], sentinel_kwargs={"username": "u"})
                   .master_for("m"))
        with self.assertRaisesRegex(ValueError, "has no sentinels"):
            url_of(Sentinel([]).master_for("m"))
        with self.assertRaisesRegex(ValueError, "service name"):
            url_of(Sentinel([("h", 1)]).master_for("a/b"))

    def test_cluster(self):
        with self.assertRaisesRegex(ValueError, "no startup nodes"):
            url_of(Cluster([]))
        with self.assertRaisesRegex(ValueError, "cluster node's port"):
            url_of(Cluster([Node("h", 0)]))
        broken = Cluster([])
        broken.nodes_manager.startup_nodes = None
        with self.assertRaisesRegex(TypeError, "startup_nodes dict"):
            url_of(broken)


class Sentinels(unittest.TestCase):

    def test_master_for(self):
        client = Sentinel([("s1", 26379)], username="u",
                          password="p").master_for("mymaster")
        self.assertEqual(url_of(client), "redis+sentinel://u:p@s1:26379/"
                         "mymaster")


if __name__ == "__main__":
    unittest.main()
