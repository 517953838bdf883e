"""install_venv.py -- install the fairlock package the way a user does,
into a virtual environment that the Python tests then run in.

    python3 install_venv.py SOURCE_ROOT WORK_DIR

CTest runs it as the setup of the fixture python_package.  It copies the
parts of the checkout the package is built from (python/ but its tests,
src/, include/) to WORK_DIR/checkout, so that the build writes nothing in
the source tree and a later run rebuilds only what changed (mtimes are
kept); makes WORK_DIR/venv with `python3 -m venv --system-site-packages`
(redis-py, setuptools and pip come from Debian's packages); and runs
`pip install --no-build-isolation --no-index` on the copy, offline.
"""
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

NOT_PACKAGED = shutil.ignore_patterns("tests", "build", "*.egg-info",
                                      "__pycache__")


def copy_checkout(root: Path, checkout: Path) -> None:
    for part in ("src", "include"):
        shutil.rmtree(checkout / part, ignore_errors=True)
        shutil.copytree(root / part, checkout / part)
    # python/build, setuptools' build directory, is kept for the next run.
    python = checkout / "python"
    python.mkdir(parents=True, exist_ok=True)
    for entry in python.iterdir():
        if entry.name != "build":
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    shutil.copytree(root / "python", python, ignore=NOT_PACKAGED,
                    dirs_exist_ok=True)


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print("usage: install_venv.py SOURCE_ROOT WORK_DIR", file=sys.stderr)
        return 2
    root, work = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    checkout, venv = work / "checkout", work / "venv"
    copy_checkout(root, checkout)
    python = venv / "bin" / "python"
    if not python.exists():
        # No pip of its own (ensurepip takes seconds): Debian's, from the
        # system site-packages, installs into the environment it runs in.
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                        "--without-pip", str(venv)], check=True)
    for module, package in (("pip", "python3-pip"),
                            ("setuptools", "python3-setuptools"),
                            ("wheel", "python3-wheel")):
        found = subprocess.run([str(python), "-c", f"import {module}"],
                               capture_output=True, check=False)
        if found.returncode != 0:
            print(f"install_venv.py: {module} is missing for {sys.executable}"
                  f" (apt-get install {package}, or scripts/install-deps.sh)",
                  file=sys.stderr)
            return 1
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-build-isolation",
         "--no-index", "--no-deps", "--force-reinstall",
         "--disable-pip-version-check", "--no-color",
         str(checkout / "python")],
        check=False)
    return pip.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
