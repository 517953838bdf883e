"""run.py -- run one test module of the fairlock Python binding.

    VENV/bin/python -B python/tests/run.py test_NAME

CTest runs it with the interpreter of the venv that install_venv.py
installed the package into (FAIRLOCK_TEST_VENV names it, and test_package
checks that fairlock comes from there), and FAIRLOCK_TEST_ENV at the redis
fixture's redis.env.  Exit status: 0 when
every test passed, 1 otherwise, 77 (CTest: skipped) when Debian's
python3-redis, which the tests use on the client side, is missing.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    if len(argv) != 2:
        print("usage: run.py test_NAME", file=sys.stderr)
        return 2
    sys.path.insert(0, HERE)
    try:
        import fairlock
    except ImportError as exc:
        print(f"run.py: cannot import the fairlock module ({exc}); "
              f"sys.path={sys.path!r}",
              file=sys.stderr)
        return 1
    try:
        import redis
    except ImportError:
        print("run.py: SKIPPED: redis-py is missing "
              "(apt-get install python3-redis)", file=sys.stderr)
        return 77
    print(f"run.py: {sys.executable} {sys.version.split()[0]}, "
          f"fairlock {fairlock.__version__} from {fairlock.__file__}, "
          f"redis-py {redis.__version__}", flush=True)
    suite = unittest.defaultTestLoader.loadTestsFromName(argv[1])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
