"""support.py -- what the binding's tests share: the fixture's server.

The CTest fixture (tests/redis-fixture.sh) starts a private redis-server
and writes its address to the file named by $FAIRLOCK_TEST_ENV:
FAIRLOCK_TEST_URL (unix://...), FAIRLOCK_TEST_SOCKET, FAIRLOCK_TEST_TCP_URL
and FAIRLOCK_TEST_PORT.  Tests never touch any other Redis.
"""
import os
import subprocess
import sys
import time
import unittest
import uuid

import redis


def _load_env():
    path = os.environ.get("FAIRLOCK_TEST_ENV")
    if not path or not os.path.exists(path):
        return None
    env = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep:
                env[key] = value
    return env


ENV = _load_env()


class ServerTestCase(unittest.TestCase):
    """A test case that needs the fixture's server."""

    @classmethod
    def setUpClass(cls):
        if ENV is None:
            raise unittest.SkipTest("no redis fixture ($FAIRLOCK_TEST_ENV)")
        cls.url = ENV["FAIRLOCK_TEST_URL"]
        cls.tcp_url = ENV["FAIRLOCK_TEST_TCP_URL"]
        cls.socket = ENV["FAIRLOCK_TEST_SOCKET"]
        cls.port = int(ENV["FAIRLOCK_TEST_PORT"])
        cls.redis = client()

    @classmethod
    def tearDownClass(cls):
        cls.redis.close()


def spawn_python(script, *args, **kwargs):
    """`python -c script args...` with the tests' interpreter.  Such a
    child puts its working directory first on sys.path, so it runs in this
    directory: from a build directory, a stray `fairlock` module (an older
    build's extension, say) would shadow the installed package."""
    return subprocess.Popen([sys.executable, "-c", script, *args],
                            cwd=os.path.dirname(os.path.abspath(__file__)),
                            **kwargs)


def client(db=0, **kwargs):
    """A redis-py client of the fixture's server (unix socket)."""
    return redis.Redis(unix_socket_path=ENV["FAIRLOCK_TEST_SOCKET"], db=db,
                       **kwargs)


def unique(what):
    """A lock name no other test (or run) uses."""
    return f"pytest:{what}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def keys_of(r, name):
    """The lock's keys: NAME and NAME:*, as str."""
    found = r.keys(name) + r.keys(name + ":*")
    return sorted(k.decode() for k in found)


def wait_until(predicate, timeout=10.0, interval=0.01):
    """Polls predicate() until it is true; returns whether it became so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
