"""test_package.py -- the package itself: that the tests run against the
installed package (not the source or build tree), what it ships, and that
what it repeats of the C side agrees with it.  No server."""
import importlib.metadata
import importlib.util
import os
import re
import sys
import sysconfig
import unittest
from pathlib import Path

import fairlock
import fairlock._fairlock

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class Installed(unittest.TestCase):
    """$FAIRLOCK_TEST_VENV, set by CTest, names the venv the fixture
    python_package installed the package into."""

    def setUp(self):
        venv = os.environ.get("FAIRLOCK_TEST_VENV")
        if not venv:
            self.skipTest("not run by CTest ($FAIRLOCK_TEST_VENV unset)")
        self.venv = Path(venv).resolve()

    def test_runs_in_the_venv(self):
        self.assertEqual(Path(sys.prefix).resolve(), self.venv)
        self.assertNotEqual(sys.prefix, sys.base_prefix)

    def test_imports_the_installed_package(self):
        purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
        platlib = Path(sysconfig.get_paths()["platlib"]).resolve()
        package = Path(fairlock.__file__).resolve().parent
        self.assertEqual(package, purelib / "fairlock")
        self.assertEqual(Path(fairlock._fairlock.__file__).resolve().parent,
                         platlib / "fairlock")
        self.assertNotEqual(package, ROOT / "python" / "fairlock")
        self.assertEqual(importlib.metadata.version("fairlock"),
                         fairlock.__version__)

    def test_ships_type_information(self):
        package = Path(fairlock.__file__).parent
        for name in ("py.typed", "_fairlock.pyi", "_redis_url.py",
                     "asyncio.py"):
            self.assertTrue((package / name).is_file(), name)
        self.assertFalse((package / "_fairlock.c").exists())


class PublicApi(unittest.TestCase):

    def test_names(self):
        for name in fairlock.__all__:
            self.assertTrue(hasattr(fairlock, name), name)
        self.assertTrue(issubclass(fairlock.RedisLockFifo,
                                   fairlock._fairlock.Lock))
        self.assertEqual(fairlock.RedisLockFifo.__module__, "fairlock")
        self.assertIs(fairlock.LockError, fairlock._fairlock.LockError)

    def test_asyncio_names(self):
        import fairlock.asyncio
        for name in fairlock.asyncio.__all__:
            self.assertTrue(hasattr(fairlock.asyncio, name), name)
        self.assertIs(fairlock.asyncio.LockError, fairlock.LockError)
        self.assertIs(fairlock.asyncio.LockTimeoutError,
                      fairlock.LockTimeoutError)
        # The stub names every method of the handle type.
        stub = (Path(fairlock.__file__).parent / "_fairlock.pyi").read_text()
        body = stub[stub.index("class AsyncLock:"):]
        for name in dir(fairlock._fairlock.AsyncLock):
            if not name.startswith("_"):
                self.assertIn(f" {name}(", body, name)

    def test_version_is_the_librarys(self):
        header = (ROOT / "include" / "fairlock.h").read_text()
        parts = [re.search(rf"#define FAIRLOCK_VERSION_{p} +(\d+)",
                           header).group(1)
                 for p in ("MAJOR", "MINOR", "PATCH")]
        self.assertEqual(fairlock.__version__, ".".join(parts))

    def test_default_url_is_the_librarys(self):
        # The library applies it; the header documents the rule once.
        header = " ".join((ROOT / "include" / "fairlock.h").read_text()
                          .replace("*", " ").split())
        self.assertIn("NULL means $FAIRLOCK_URL, then $REDIS_URL, then "
                      f"{fairlock.DEFAULT_URL}.", header)


class LuaEmbedding(unittest.TestCase):

    def test_setup_py_embeds_as_cmake_does(self):
        generated = os.environ.get("FAIRLOCK_TEST_SCRIPTS_C")
        if not generated or not os.path.isfile(generated):
            self.skipTest("no CMake build's scripts.c "
                          "($FAIRLOCK_TEST_SCRIPTS_C)")
        spec = importlib.util.spec_from_file_location(
            "fairlock_setup", ROOT / "python" / "setup.py")
        setup_py = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(setup_py)
        ours = setup_py.embed_lua(ROOT / "src" / "lua")
        cmakes = Path(generated).read_text(encoding="utf-8")

        # The same constants, byte for byte, in whatever order.
        def constants(text):
            return sorted(re.findall(r"^const fairlock__script .*?\};$",
                                     text, re.MULTILINE | re.DOTALL))
        self.assertEqual(constants(ours), constants(cmakes))
        self.assertTrue(constants(ours))


if __name__ == "__main__":
    unittest.main()
