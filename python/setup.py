"""setup.py -- builds fairlock._fairlock, the C extension of the fairlock
package, with the fairlock C library compiled into it (pyproject.toml has
the rest of the package's description).

The library comes from this checkout: ../src/*.c, ../include, and the Lua
scripts of ../src/lua, which are turned into C here exactly as CMake's
cmake/embed_lua.cmake does (tests/test_package.py compares the two).  So
`pip install ./python` needs a C compiler, the Python headers and
libhiredis-dev, but neither CMake nor an installed libfairlock; at run
time the extension needs only libhiredis.  The library's symbols stay
hidden inside the extension (FAIRLOCK_STATIC, -fvisibility=hidden): only
PyInit__fairlock is exported.
"""
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional, Tuple

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
INCLUDE = ROOT / "include"
GENERATED_HEADER = "/* Generated from src/lua by {}. Do not edit. */\n"


def library_version() -> str:
    """The version defined once, in include/fairlock.h."""
    header = (INCLUDE / "fairlock.h").read_text(encoding="utf-8")
    parts = [re.search(rf"^#define FAIRLOCK_VERSION_{part} +(\d+)", header,
                       re.MULTILINE) for part in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise SystemExit("setup.py: no FAIRLOCK_VERSION_* in fairlock.h")
    return ".".join(m.group(1) for m in parts if m)


def embed_lua(lua_dir: Path, generator: str = "python/setup.py") -> str:
    """The C file of script constants for src/lua/*.lua: common.lua is put
    before every script but one whose second line begins '-- standalone:'
    (and sem_common.lua after it before the sem_* scripts), and each SHA1 is
    of exactly
    the text sent to Redis (for EVALSHA)."""
    common = (lua_dir / "common.lua").read_bytes().decode("utf-8")
    sem_common = (lua_dir / "sem_common.lua").read_bytes().decode("utf-8")
    out = [GENERATED_HEADER.format(generator), '#include "internal.h"\n']
    for path in sorted(lua_dir.glob("*.lua")):
        if path.name in ("common.lua", "sem_common.lua"):
            continue
        body = path.read_bytes().decode("utf-8")
        standalone = re.match(r"[^\n]*\n-- standalone:", body)
        prefix = common + (sem_common if path.name.startswith("sem_")
                           else "")
        text = body if standalone else prefix + body
        sha = hashlib.sha1(text.encode("utf-8")).hexdigest()
        text = (text.replace("\\", "\\\\").replace('"', '\\"')
                .replace("\n", '\\n"\n    "'))
        out.append(f"\nconst fairlock__script fairlock__script_{path.stem} = "
                   f'{{\n    "{path.stem}", "{sha}",\n    "{text}"}};\n')
    return "".join(out)


def pkg_config(*names: str) -> Optional[Tuple[List[str], List[str],
                                               List[str]]]:
    """Include dirs, library dirs and libraries of the packages, by
    pkg-config; None when it or one of them is missing."""
    if not shutil.which("pkg-config"):
        return None
    run = subprocess.run(["pkg-config", "--cflags", "--libs", *names],
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        return None
    flags = run.stdout.split()

    def pick(prefix: str) -> List[str]:
        return [f[2:] for f in flags if f.startswith(prefix)]
    return pick("-I"), pick("-L"), pick("-l")


def dependencies() -> Tuple[List[str], List[str], List[str], bool]:
    """hiredis (Debian's libhiredis-dev ships hiredis.pc), and OpenSSL for
    TLS when its development files are there (libssl-dev), as CMake's
    FAIRLOCK_TLS; FAIRLOCK_TLS=OFF in the environment leaves it out."""
    includes, library_dirs, libraries = (pkg_config("hiredis")
                                         or ([], [], ["hiredis"]))
    tls = None
    if os.environ.get("FAIRLOCK_TLS", "ON").upper() not in ("OFF", "0"):
        tls = pkg_config("libssl", "libcrypto")
    if tls is not None:
        includes, library_dirs, libraries = (includes + tls[0],
                                             library_dirs + tls[1],
                                             libraries + tls[2])
    return includes, library_dirs, libraries, tls is not None


class BuildExt(build_ext):
    """Adds the library's sources, and the generated script file, to the
    extension when it is built (not in the project description, which
    lists only files under python/)."""

    def build_extension(self, ext: Extension) -> None:
        if not (SRC / "internal.h").is_file():
            raise SystemExit(
                f"setup.py: the fairlock C sources are not at {SRC}: build "
                "the package from a fairlock checkout (pip install ./python)")
        scripts = Path(self.build_temp).resolve() / "generated" / "scripts.c"
        text = embed_lua(SRC / "lua")
        # Rewritten only when it changed, so that an unchanged tree is not
        # compiled again.
        if not scripts.is_file() or scripts.read_text("utf-8") != text:
            scripts.parent.mkdir(parents=True, exist_ok=True)
            scripts.write_text(text, encoding="utf-8")
        ext.sources = ext.sources + [str(p) for p in sorted(SRC.glob("*.c"))]
        ext.sources.append(str(scripts))
        # This file too: its macros (FAIRLOCK_HAVE_TLS) change the objects.
        ext.depends = [str(p) for pattern in ("src/*.h", "include/*.h",
                                              "src/lua/*.lua")
                       for p in sorted(ROOT.glob(pattern))]
        ext.depends.append(str(Path(__file__).resolve()))
        super().build_extension(ext)


def main() -> None:
    includes, library_dirs, libraries, tls = dependencies()
    extension = Extension(
        "fairlock._fairlock",
        sources=["fairlock/_fairlock.c"],
        include_dirs=[str(INCLUDE), str(SRC), *includes],
        define_macros=[("_GNU_SOURCE", None), ("FAIRLOCK_STATIC", None),
                       ("FAIRLOCK_HAVE_TLS", "1" if tls else "0")],
        extra_compile_args=["-std=c11", "-fvisibility=hidden"],
        library_dirs=library_dirs,
        libraries=[*libraries, "m"],
        extra_link_args=["-pthread"],
    )
    setup(version=library_version(), ext_modules=[extension],
          cmdclass={"build_ext": BuildExt})


# setuptools' build backend runs this file as __main__; tests import it
# under another name for embed_lua().
if __name__ == "__main__":
    main()
