#!/usr/bin/env python3
"""run_docs.py -- runs the code blocks of the user documentation, so that a
snippet that stops working fails CI.

    run_docs.py --bin DIR [--python EXE] FILE...

FILE is Markdown (every ```sh and ```python block) or a man page (every
.nf/.fi block of its EXAMPLES section, as shell).  Each block runs in a
scratch directory against a redis-server of this run alone (unix socket,
no TCP), with DIR (where the fairlock command is) first on PATH and
$FAIRLOCK_URL naming that server; redis-py clients made without arguments
talk to it too.  A shell block runs under `bash -e -o pipefail`, and after
each block no key may be left on the server but fencing counters.

A block that cannot run here says so explicitly, on the line before it:

    <!-- docs-test: skip WHY -->            (Markdown)
    .\\" docs-test: skip WHY                 (man page)

and one whose commands stand for the user's own programs names them:

    <!-- docs-test: stub ./deploy.sh /usr/local/bin/backup -->

Stubs are executables that exit 0; an absolute path in the block is
rewritten to its stub.  The run prints every block with its outcome and
the counts; it fails on any failed block and on a block of another
language than sh, python, c, cmake or output (untagged) text.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

RUN_KINDS = ("sh", "python")
READ_KINDS = ("c", "cmake", "")  # shown, not run here
MARK = re.compile(r"docs-test:\s*(skip|stub)\b\s*(.*?)\s*(-->)?\s*$")

PY_PRELUDE = r'''
import os, runpy, sys
import redis as _redis_module
_Base = _redis_module.Redis
class _DocsRedis(_Base):
    """redis.Redis() with no address: the docs test's private server."""
    def __init__(self, *args, **kwargs):
        if not args and not any(k in kwargs for k in
                                ("host", "port", "unix_socket_path")):
            kwargs["unix_socket_path"] = os.environ["FAIRLOCK_DOCS_SOCKET"]
        super().__init__(*args, **kwargs)
_redis_module.Redis = _DocsRedis
del _redis_module, _Base, _DocsRedis
# The block runs in a namespace of its own: it must import what it uses.
runpy.run_path(sys.argv[1], run_name="__main__")
'''


class Block:
    def __init__(self, path, line, kind, text, mark):
        self.path, self.line, self.kind, self.text = path, line, kind, text
        self.skip = None
        self.stubs = []
        if mark:
            what, arg = mark
            if what == "skip":
                self.skip = arg or "no reason given"
            else:
                self.stubs = arg.split()

    def where(self):
        return "%s:%d" % (os.path.relpath(self.path), self.line)


def marker(line):
    m = MARK.search(line)
    return (m.group(1), m.group(2)) if m else None


def markdown_blocks(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        prev = next((lines[k] for k in range(start - 1, -1, -1)
                     if lines[k].strip()), "")
        blocks.append(Block(path, start + 1, m.group(1),
                            "\n".join(lines[start + 1:j]) + "\n",
                            marker(prev)))
        i = j + 1
    return blocks


def roff_text(line):
    line = line.replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\")
    return re.sub(r"\\f[BIRP]", "", line)


def man_blocks(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, section, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".SH"):
            section = line[3:].strip().strip('"')
        if section == "EXAMPLES" and line.strip() == ".nf":
            j = i + 1
            while j < len(lines) and lines[j].strip() != ".fi":
                j += 1
            prev = next((lines[k] for k in range(i - 1, -1, -1)
                         if lines[k].strip() and lines[k] != ".RS 4"), "")
            blocks.append(Block(path, i + 2, "sh",
                                "\n".join(roff_text(t)
                                          for t in lines[i + 1:j]) + "\n",
                                marker(prev)))
            i = j
        i += 1
    return blocks


class Server:
    def __init__(self, tmp):
        self.dir = tempfile.mkdtemp(prefix="srv-", dir=tmp)
        self.sock = os.path.join(self.dir, "redis.sock")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock,
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("run_docs: redis-server did not start")
            time.sleep(0.05)

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-s", self.sock, "--raw"] +
                             list(args), capture_output=True, text=True)
        return out.stdout.strip()

    def keys(self):
        return sorted(k for k in self.cli("KEYS", "*").split()
                      if not k.endswith(":fence"))

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def run_block(block, args, server, tmp):
    work = tempfile.mkdtemp(prefix="block-", dir=tmp)
    stubdir = os.path.join(work, ".stubs")
    os.mkdir(stubdir)
    text = block.text
    for stub in block.stubs:
        if stub.startswith("/"):
            target = os.path.join(stubdir, os.path.basename(stub))
            text = text.replace(stub, target)
        elif stub.startswith("./"):
            target = os.path.join(work, stub[2:])
        else:
            target = os.path.join(stubdir, stub)
        with open(target, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(target, 0o755)
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env["FAIRLOCK_URL"] = "unix://" + server.sock
    env["FAIRLOCK_DOCS_SOCKET"] = server.sock
    env["PATH"] = os.pathsep.join([os.path.abspath(args.bin), stubdir,
                                   env.get("PATH", "")])
    if block.kind == "sh":
        cmd = ["bash", "-e", "-o", "pipefail", "-c", text]
    else:
        script = os.path.join(work, "block.py")
        with open(script, "w") as f:
            f.write(text)
        cmd = [args.python, "-c", PY_PRELUDE, script]
    try:
        out = subprocess.run(cmd, cwd=work, env=env, capture_output=True,
                             text=True, timeout=120)
        ok, detail = out.returncode == 0, out.stdout + out.stderr
        # A command a block names but nobody has is a broken snippet, even
        # where the shell goes on (after && or ||).
        if "command not found" in out.stderr or "not found" in out.stderr:
            ok = False
        if not ok:
            detail = "exit %d\n%s" % (out.returncode, detail)
    except subprocess.TimeoutExpired:
        ok, detail = False, "did not end within 120 s"
    left = server.keys()
    if ok and left:
        ok, detail = False, "keys left on the server: %s" % left
    server.cli("FLUSHALL")
    return ok, detail


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True,
                    help="directory of the fairlock command")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("run_docs: redis-server is not installed")
    blocks = []
    for path in args.files:
        blocks += (man_blocks(path) if re.search(r"\.\d$", path)
                   else markdown_blocks(path))
    tmp = tempfile.mkdtemp(prefix="fairlock-docs-")
    server = Server(tmp)
    counts = {"ran": 0, "failed": 0, "skipped": 0, "read": 0, "unknown": 0}
    try:
        for b in blocks:
            if b.kind not in RUN_KINDS:
                key = "read" if b.kind in READ_KINDS else "unknown"
                counts[key] += 1
                print("%-7s %s (%s)" % ("read" if key == "read" else "UNKNOWN",
                                        b.where(), b.kind or "text"))
                continue
            if b.skip:
                counts["skipped"] += 1
                print("skip    %s: %s" % (b.where(), b.skip))
                continue
            ok, detail = run_block(b, args, server, tmp)
            counts["ran"] += 1
            print("%-7s %s (%s)" % ("ok" if ok else "FAIL", b.where(), b.kind))
            if not ok:
                counts["failed"] += 1
                print("  block:\n" + "".join("    " + t + "\n"
                                             for t in b.text.splitlines()))
                print("  result:\n" + "".join("    " + t + "\n" for t in
                                              detail.splitlines()[-30:]))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%(ran)d blocks ran, %(failed)d failed, %(skipped)d skipped "
          "(marked), %(read)d to read only (c, cmake, output), "
          "%(unknown)d of an unknown kind" % counts)
    sys.exit(1 if counts["failed"] or counts["unknown"] or
             not counts["ran"] else 0)


if __name__ == "__main__":
    main()
