"""test_doctest.py -- the reference's own example, run against fairlock.

reference_example.txt is the doctest of the reference RedisLockFifo's
docstring, copied verbatim from the reference document
(shared/reference/RedisLockFifo-reference.txt; test_matches_reference
checks the copy when that file is at hand).  It runs with one change, the
import: RedisLockFifo is fairlock's.

Adaptation, and why: the example talks to "a local redis server" twice,
through redis.Redis() (its inspection client) and through RedisLockFifo
objects made without a client, which connect to the same default server.
The tests must never touch a developer's Redis on localhost:6379, so for
the run only:
  * redis.Redis called with no argument gives a client of the fixture's
    private server (redis.Redis is patched with a subclass that defaults
    to the fixture's unix socket), and
  * $FAIRLOCK_URL names the fixture's server, which RedisLockFifo objects
    made without redis_client use (fairlock's documented default).
The example's text, calls and expected output are unchanged.
"""
import doctest
import os
import unittest
from unittest import mock

import redis

import fairlock
import support

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "reference_example.txt")
REFERENCE_NAME = "RedisLockFifo-reference.txt"


def find_reference():
    """The reference document: $FAIRLOCK_REFERENCE, else shared/reference
    beside the repository (as on the developers' machines and CI)."""
    candidates = [os.environ.get("FAIRLOCK_REFERENCE", "")]
    root = os.path.dirname(os.path.dirname(HERE))
    candidates.append(os.path.join(os.path.dirname(root), "shared",
                                   "reference", REFERENCE_NAME))
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    return None


def example_of(reference_text):
    """The doctest of the reference's Examples section: from its first
    '>>>' line up to the RELEASE_SCRIPT attribute that follows it."""
    lines = reference_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(">>>"))
    end = next(i for i in range(start, len(lines))
               if lines[i].startswith("RELEASE_SCRIPT"))
    return "\n".join(lines[start:end]).rstrip("\n") + "\n"


class ReferenceDoctest(support.ServerTestCase):

    def test_reference_example(self):
        with open(EXAMPLE) as f:
            text = f.read()
        socket = self.socket

        class FixtureRedis(redis.Redis):
            def __init__(self, *args, **kwargs):
                if not args and not kwargs:
                    kwargs = {"unix_socket_path": socket}
                super().__init__(*args, **kwargs)

        # The one change to the example: the import.
        globs = {"RedisLockFifo": fairlock.RedisLockFifo}
        test = doctest.DocTestParser().get_doctest(
            text, globs, "RedisLockFifo (reference example)", EXAMPLE, 0)
        self.assertEqual(len(test.examples), 3)  # def, import, call
        output = []
        runner = doctest.DocTestRunner(verbose=False)
        with mock.patch.object(redis, "Redis", FixtureRedis), \
                mock.patch.dict(os.environ, {"FAIRLOCK_URL": self.url}):
            result = runner.run(test, out=output.append)
        self.assertEqual(result.failed, 0, "".join(output))
        self.assertEqual(result.attempted, len(test.examples))

    def test_matches_reference(self):
        path = find_reference()
        if path is None:
            self.skipTest("the reference document is not at hand")
        with open(path, encoding="utf-8") as f:
            expected = example_of(f.read())
        with open(EXAMPLE, encoding="utf-8") as f:
            self.assertEqual(f.read(), expected)


if __name__ == "__main__":
    unittest.main()
