#!/usr/bin/env python3
# test_cli.py -- end-to-end tests of the fairlock command against the
# private redis-server of the CTest fixture (its address in the file named
# by $FAIRLOCK_TEST_ENV).  Standard library only.
#
#   test_cli.py PATH/TO/fairlock [TEST_NAME...]
#
# Every test uses its own lock names, and checks that nothing is left
# behind in Redis (no lock, no queue entry) after the command is done.
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

FAIRLOCK = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
SOCKET = None
ENV_TCP = None  # host:port of the fixture's server
ENV = None
TMP = None
_counter = 0
CONF = {}


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def setup():
    global SOCKET, ENV, TMP, ENV_TCP
    path = os.environ.get("FAIRLOCK_TEST_ENV")
    if not path:
        sys.exit("FAIRLOCK_TEST_ENV is not set: run through ctest, which "
                 "starts the test redis-server")
    conf = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            conf[key] = value
    SOCKET = conf["FAIRLOCK_TEST_SOCKET"]
    ENV_TCP = conf["FAIRLOCK_TEST_TCP_URL"][len("redis://"):]
    CONF.update(conf)
    ENV = dict(os.environ)
    ENV.pop("REDIS_URL", None)
    ENV["FAIRLOCK_URL"] = conf["FAIRLOCK_TEST_URL"]
    TMP = tempfile.mkdtemp(prefix="fairlock-cli-")


def name(prefix):
    global _counter
    _counter += 1
    return "fltest:cli:%s:%d:%d" % (prefix, os.getpid(), _counter)


def redis(*args):
    out = subprocess.run(["redis-cli", "-s", SOCKET, "--raw"] +
                         [str(a) for a in args], capture_output=True,
                         text=True, timeout=10)
    check(out.returncode == 0, "redis-cli %s failed: %s" % (args, out.stderr))
    return out.stdout.strip()


def keys_of(lock, keep_fence=True):
    found = redis("KEYS", lock) .split() + redis("KEYS", lock + ":*").split()
    if keep_fence:
        found = [k for k in found if k != lock + ":fence"]
    return sorted(found)


def queue_len(lock):
    return int(redis("ZCARD", lock + ":queue") or 0)


def fl(*args, env=None, timeout=20, **kw):
    """Runs fairlock to its end; returns the CompletedProcess."""
    return subprocess.run([FAIRLOCK] + list(args), capture_output=True,
                          text=True, env=env or ENV, timeout=timeout, **kw)


def start(*args, env=None, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([FAIRLOCK] + list(args), env=env or ENV,
                            text=True, **kw)


def finish(proc, timeout=15):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise Failure("fairlock %s did not end within %d s" %
                      (proc.args[1:], timeout))
    return proc.returncode, out or "", err or ""


def wait_until(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise Failure("timed out waiting for " + what)


def tmpfile(label):
    """A new path in the test's scratch directory (never the same twice)."""
    global _counter
    _counter += 1
    return os.path.join(TMP, "%s.%d" % (label, _counter))


class Holder:
    """A `fairlock run` that holds LOCK until release() is called."""

    def __init__(self, lock, *options):
        self.go = tmpfile("go")
        self.proc = start("run", *options, lock, "--", "sh", "-c",
                          'while [ ! -e "$0" ]; do sleep 0.02; done', self.go)
        self.lock = lock
        wait_until(lambda: redis("EXISTS", lock) == "1",
                   "the holder to take " + lock)
        self.token = redis("GET", lock)

    def release(self):
        open(self.go, "w").close()
        rc, _, err = finish(self.proc)
        check(rc == 0, "holder exited with %d: %s" % (rc, err))


def one_line(err):
    lines = err.splitlines()
    return len(lines) == 1 and lines[0].startswith("fairlock")


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_help_and_version():
    r = fl("--help")
    check(r.returncode == 0, "--help exits 0")
    for word in ("run", "acquire", "release", "status", "Exit status",
                 "64", "69", "75", "127"):
        check(word in r.stdout, "--help mentions %r" % word)
    r = fl("run", "--help")
    check(r.returncode == 0 and "--on-lost" in r.stdout and
          "FAIRLOCK_TICKET" in r.stdout, "run --help documents options/env")
    r = fl("help", "status")
    check(r.returncode == 0 and "--json" in r.stdout, "help status")
    r = fl("--version")
    check(r.returncode == 0 and re.match(r"fairlock \d+\.\d+\.\d+", r.stdout),
          "--version prints the version: %r" % r.stdout)


def test_exit_status_and_environment():
    lock = name("status")
    r = fl("run", lock, "--", "sh", "-c", "exit 7")
    check(r.returncode == 7, "exit 7 passed through, got %d" % r.returncode)
    r = fl("run", lock, "--", "true")
    check(r.returncode == 0, "exit 0 passed through")
    r = fl("run", lock, "--", "sh", "-c", "kill -KILL $$")
    check(r.returncode == 128 + 9, "killed by SIGKILL gives 137, got %d" %
          r.returncode)
    check(keys_of(lock) == [], "no keys left: %s" % keys_of(lock))

    # The child sees the lock's identity while it holds the lock.
    envfile, go = tmpfile("env"), tmpfile("go")
    env = dict(ENV, FAIRLOCK_TOKEN="stale", FAIRLOCK_FENCE="99")
    # Written aside and renamed: the file is whole once it exists.
    p = start("run", lock, "--", "sh", "-c",
              'env > "$0.part" && mv "$0.part" "$0"; '
              'while [ ! -e "$1" ]; do sleep 0.02; done; exit 3',
              envfile, go, env=env)
    wait_until(lambda: os.path.exists(envfile), "the child's environment")
    child_env = dict(line.split("=", 1) for line in
                     open(envfile).read().splitlines() if "=" in line)
    check(child_env.get("FAIRLOCK_NAME") == lock, "FAIRLOCK_NAME")
    check(re.fullmatch(r"[1-9][0-9]*", child_env.get("FAIRLOCK_TICKET", "")),
          "FAIRLOCK_TICKET is a positive number")
    check(child_env.get("FAIRLOCK_TOKEN") == redis("GET", lock),
          "FAIRLOCK_TOKEN is the holder's token (%r)" %
          child_env.get("FAIRLOCK_TOKEN"))
    check("FAIRLOCK_FENCE" not in child_env,
          "no (inherited) FAIRLOCK_FENCE without --fencing")
    open(go, "w").close()
    rc, _, _ = finish(p)
    check(rc == 3, "exit 3 after holding, got %d" % rc)
    check(keys_of(lock) == [], "released: %s" % keys_of(lock))

    # Fencing: strictly increasing per lock name.
    fences = []
    for _ in range(2):
        r = fl("run", "--fencing", lock, "--", "sh", "-c",
               'echo "$FAIRLOCK_FENCE"')
        check(r.returncode == 0, "--fencing run")
        fences.append(int(r.stdout.strip()))
    check(fences[0] >= 1 and fences[1] > fences[0],
          "fences increase: %s" % fences)
    redis("DEL", lock + ":fence")


def test_conflict_exit_code():
    lock = name("conflict")
    h = Holder(lock)
    r = fl("run", "-n", lock, "--", "true")
    check(r.returncode == 1, "-n on a held lock exits 1, got %d" %
          r.returncode)
    check(one_line(r.stderr) and "held by someone else" in r.stderr,
          "one-line conflict message: %r" % r.stderr)
    r = fl("run", "-n", "-E", "9", lock, "--", "true")
    check(r.returncode == 9, "-E 9 gives 9, got %d" % r.returncode)
    r = fl("run", "--nonblock", "-q", "--conflict-exit-code=0", lock, "--",
           "sh", "-c", "echo ran")
    check(r.returncode == 0 and r.stderr == "" and r.stdout == "",
          "-q -E 0: silent, command not run: %r %r" % (r.stdout, r.stderr))
    r = fl("acquire", "-n", lock)
    check(r.returncode == 1 and r.stdout == "", "acquire -n conflicts")
    check(queue_len(lock) == 0, "no queue entry left by -n")
    check(redis("GET", lock) == h.token, "the holder still holds it")
    h.release()
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_timeout():
    lock = name("timeout")
    h = Holder(lock)
    t0 = time.monotonic()
    r = fl("run", "-w", "0.5", lock, "--", "sh", "-c", "echo ran")
    took = time.monotonic() - t0
    check(r.returncode == 1, "-w 0.5 times out with 1, got %d" % r.returncode)
    # Not before its time; the upper bound is a deadline that only a wait
    # ignoring -w reaches (the holder keeps the lock), not a measurement.
    check(0.45 <= took < 15, "waited about 0.5 s, took %.2f" % took)
    check("ran" not in r.stdout, "command not run")
    check(one_line(r.stderr) and "not acquired within" in r.stderr,
          "timeout message: %r" % r.stderr)
    r = fl("run", "--wait", ".2", "-E", "3", lock, "--", "true")
    check(r.returncode == 3, "-w .2 -E 3 gives 3, got %d" % r.returncode)
    check(queue_len(lock) == 0, "no queue entry left after the timeouts")
    h.release()
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_fifo_order():
    lock = name("fifo")
    out = tmpfile("order")
    h = Holder(lock)
    waiters = []
    for i in range(1, 5):
        waiters.append(start("run", lock, "--", "sh", "-c",
                             'echo "%d $FAIRLOCK_TICKET" >> "$0"' % i, out))
        # Each joins the queue before the next starts.
        wait_until(lambda: queue_len(lock) == i, "waiter %d to queue" % i)
    h.release()
    for p in waiters:
        rc, _, err = finish(p)
        check(rc == 0, "waiter exited %d: %s" % (rc, err))
    rows = [line.split() for line in open(out).read().splitlines()]
    order = [int(r[0]) for r in rows]
    tickets = [int(r[1]) for r in rows]
    check(order == [1, 2, 3, 4], "FIFO order, got %s" % order)
    check(tickets == sorted(tickets) and len(set(tickets)) == 4,
          "tickets increase: %s" % tickets)
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_renewal_keeps_lock_past_ttl():
    lock = name("renew")
    # Control: a 3 s lease that nobody renews is gone after 3 s.
    r = fl("acquire", "--ttl", "3", lock + ":control")
    check(r.returncode == 0, "acquire --ttl 3")
    check(0 < int(redis("PTTL", lock + ":control")) <= 3000,
          "the control lease is at most 3 s")
    # The same lease under run, with a job far longer.  Renewals come every
    # second; only one two seconds late (a real failure) would lose it.
    p = start("run", "--ttl", "3", lock, "--", "sleep", "8")
    wait_until(lambda: redis("EXISTS", lock) == "1", "the grant")
    token = redis("GET", lock)
    pttl = int(redis("PTTL", lock))
    check(0 < pttl <= 3000, "the lease is 3 s (PTTL %d)" % pttl)
    time.sleep(3.5)
    check(redis("EXISTS", lock + ":control") == "0",
          "the unrenewed control lease expired")
    for _ in range(3):
        check(redis("GET", lock) == token,
              "still held by the same token past the ttl")
        check(0 < int(redis("PTTL", lock)) <= 3000, "lease still short")
        time.sleep(0.45)
    rc, _, err = finish(p)
    check(rc == 0, "run --ttl 3 of an 8 s job exits 0, got %d: %s" %
          (rc, err))
    check(keys_of(lock) == [], "released: %s" % keys_of(lock))


def test_signal_forwarding():
    lock = name("forward")
    log = tmpfile("signals")
    script = ('trap \'echo USR1 >> "$0"\' USR1; '
              'trap \'echo TERM >> "$0"; exit 42\' TERM; '
              'echo ready >> "$0"; while :; do sleep 0.05; done')
    p = start("run", lock, "--", "sh", "-c", script, log)
    wait_until(lambda: os.path.exists(log), "the command to start")
    p.send_signal(signal.SIGUSR1)
    wait_until(lambda: "USR1" in open(log).read(), "SIGUSR1 forwarded")
    check(p.poll() is None, "fairlock survives a forwarded SIGUSR1")
    p.send_signal(signal.SIGTERM)
    rc, _, err = finish(p)
    check(rc == 42, "the command's status after SIGTERM (42), got %d: %s" %
          (rc, err))
    check(open(log).read().split() == ["ready", "USR1", "TERM"],
          "the command got USR1 then TERM: %r" % open(log).read())
    check(keys_of(lock) == [], "released: %s" % keys_of(lock))

    # A command that does not catch SIGTERM dies of it: 128+15.
    p = start("run", lock, "--", "sleep", "30")
    wait_until(lambda: redis("EXISTS", lock) == "1", "the grant")
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    rc, _, _ = finish(p)
    check(rc == 143, "SIGTERM-killed command gives 143, got %d" % rc)
    check(keys_of(lock) == [], "released: %s" % keys_of(lock))


def test_signal_while_waiting_leaves_queue():
    lock = name("interrupt")
    h = Holder(lock)
    for sig, expected in ((signal.SIGTERM, 143), (signal.SIGINT, 130),
                          (signal.SIGHUP, 129)):
        ran = tmpfile("ran")
        # --stale 60: no heartbeat for 20 s, so only the signal can end the
        # wait within the deadline below (the holder never lets go).
        p = start("run", "--stale", "60", lock, "--", "sh", "-c",
                  'touch "$0"', ran)
        wait_until(lambda: queue_len(lock) == 1, "the waiter to queue")
        t0 = time.monotonic()
        p.send_signal(sig)
        rc, _, err = finish(p)
        check(rc == expected, "%s while waiting gives %d, got %d: %s" %
              (sig.name, expected, rc, err))
        took = time.monotonic() - t0
        check(took < 10, "left promptly (%.2f s)" % took)
        check(queue_len(lock) == 0, "the queue entry is gone")
        check(not os.path.exists(ran), "the command did not run")
    check(redis("GET", lock) == h.token, "the holder is untouched")
    h.release()
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_lost_lease_policies():
    # The command runs 2 s (ignore: it must be let finish) or 20 s (term,
    # kill: its log then shows the policy acted long before its own end).
    trap = ('trap \'echo TERM >> "$0"; exit 0\' TERM; echo up >> "$0"; '
            'i=0; while [ $i -lt $1 ]; do sleep 0.05; i=$((i+1)); done; '
            'echo done >> "$0"')
    for policy, expect_log, ticks in (("term", ["up", "TERM"], 400),
                                      ("kill", ["up"], 400),
                                      ("ignore", ["up", "done"], 40)):
        lock = name("lost-" + policy)
        log = tmpfile("lost")
        p = start("run", "--ttl", "1", "--on-lost", policy, lock, "--", "sh",
                  "-c", trap, log, str(ticks))
        wait_until(lambda: os.path.exists(log) and
                   redis("EXISTS", lock) == "1", "the command to start")
        t0 = time.monotonic()
        redis("DEL", lock)  # the lease vanishes from outside
        rc, _, err = finish(p)
        took = time.monotonic() - t0
        check(rc == 75, "lost lease (%s) exits 75, got %d: %s" %
              (policy, rc, err))
        check("lease lost" in err and "--on-lost=" + policy in err,
              "the loss and the policy are reported: %r" % err)
        check(open(log).read().split() == expect_log,
              "--on-lost=%s: command log %r" % (policy, open(log).read()))
        if policy != "ignore":
            # A deadline (the command would end by itself at 20 s), not a
            # measurement: a renewal period is 1/3 s.
            check(took < 15, "noticed long before the command's end "
                  "(%.2f s)" % took)
        check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_lost_lease_kill_after():
    # --on-lost=term escalates to SIGKILL for a command that ignores TERM.
    lock = name("killafter")
    log = tmpfile("ka")
    p = start("run", "--ttl", "1", "--kill-after", "0.3", lock, "--", "sh",
              "-c", 'trap "" TERM; echo up > "$0"; '
              'while :; do sleep 0.05; done', log)
    wait_until(lambda: os.path.exists(log) and
               redis("EXISTS", lock) == "1", "the command to start")
    t0 = time.monotonic()
    redis("DEL", lock)
    rc, _, err = finish(p)
    check(rc == 75, "exit 75 after the escalation, got %d: %s" % (rc, err))
    check("SIGTERM" in err and "killing it" in err,
          "the SIGKILL after SIGTERM is reported: %r" % err)
    # Not before --kill-after; the upper bound is a deadline (the command
    # never ends by itself), not a measurement.
    took = time.monotonic() - t0
    check(0.3 <= took < 10, "SIGKILL after ~0.3 s (%.2f s)" % took)


def test_redis_dies_while_running():
    # A server of our own, killed while the command runs: the renewal
    # fails until the lease ends, then the loss policy applies.  fairlock
    # must not die of SIGPIPE on the dead connection.
    if shutil.which("redis-server") is None:
        raise Failure("redis-server is not installed")
    d = tempfile.mkdtemp(prefix="fl-", dir="/tmp")
    sock = os.path.join(d, "r.sock")
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
         "--appendonly", "no", "--dir", d], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(sock), "the private server")
        log = tmpfile("dies")
        p = start("run", "--ttl", "1", "-u", "unix://" + sock, name("dies"),
                  "--", "sh", "-c", 'trap \'echo TERM >> "$0"; exit 0\' TERM; '
                  'echo up >> "$0"; while :; do sleep 0.05; done', log)
        wait_until(lambda: os.path.exists(log), "the command to start")
        time.sleep(0.4)
        server.kill()
        server.wait()
        t0 = time.monotonic()
        rc, _, err = finish(p)
        check(rc == 75, "lost lease when Redis dies: 75, got %d: %r" %
              (rc, err))
        # A deadline (the command never ends by itself): the loss is
        # noticed within the 1 s lease on an idle machine.
        took = time.monotonic() - t0
        check(took < 10, "noticed the loss (%.2f s)" % took)
        check(open(log).read().split() == ["up", "TERM"],
              "the command got SIGTERM: %r" % open(log).read())
        check("lease lost" in err, "the loss is reported: %r" % err)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_status_text_and_json():
    lock = name("status")
    r = fl("status", "--json", lock)
    check(r.returncode == 0, "status of a free lock")
    doc = json.loads(r.stdout)
    check(doc["name"] == lock and doc["locked"] is False and
          doc["holder"] is None and doc["waiters"] == [] and
          doc["waiters_total"] == 0, "free lock JSON: %r" % doc)
    r = fl("status", lock)
    check("none (free)" in r.stdout and "waiters:  0" in r.stdout,
          "free lock text: %r" % r.stdout)

    h = Holder(lock)
    waiters = []
    for i in (1, 2):
        waiters.append(start("run", lock, "--", "true"))
        wait_until(lambda: queue_len(lock) == i, "waiter %d" % i)
    r = fl("status", "--json", lock)
    check(r.returncode == 0, "status --json exits 0")
    doc = json.loads(r.stdout)
    check(doc["locked"] is True, "locked")
    check(doc["holder"]["token"] == h.token, "holder token")
    check(0 < doc["holder"]["ttl_ms"] <= 30000, "holder ttl_ms")
    check(doc["waiters_total"] == 2 and len(doc["waiters"]) == 2,
          "two waiters")
    ws = doc["waiters"]
    check([w["position"] for w in ws] == [1, 2], "positions")
    check(ws[0]["ticket"] < ws[1]["ticket"], "tickets in queue order")
    # Younger than the liveness window, or they would have been evicted.
    check(all(0 <= w["idle_ms"] < w["liveness_ms"] for w in ws),
          "idle_ms: %r" % ws)
    check(all(w["liveness_ms"] == 10000 for w in ws), "default liveness")
    check(isinstance(doc["server_time_ms"], int) and
          abs(doc["server_time_ms"] / 1000 - time.time()) < 60,
          "server_time_ms is the server's wall clock")

    r = fl("status", lock)
    text = r.stdout
    check(r.returncode == 0, "status exits 0")
    check(("holder:   %s..." % h.token[:12]) in text,
          "holder token prefix in text: %r" % text)
    check(h.token not in text, "the token is cut without -l")
    check("lease:" in text and "waiters:  2" in text, "lease and count")
    rows = [l.split() for l in text.splitlines() if re.match(r"\s+[12]\s", l)]
    check([int(row[0]) for row in rows] == [1, 2] and
          [int(row[1]) for row in rows] == [w["ticket"] for w in ws],
          "text rows: position and ticket: %r" % rows)
    r = fl("status", "-l", lock)
    check(h.token in r.stdout and ws[1]["token"] in r.stdout,
          "-l shows whole tokens")

    h.release()
    for p in waiters:
        check(finish(p)[0] == 0, "waiter done")
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))

    # JSON escaping of an awkward name.
    odd = name("st") + ' "q" \\ \t \x01 é'
    r = fl("status", "--json", odd)
    check(r.returncode == 0 and json.loads(r.stdout)["name"] == odd,
          "odd name round-trips through JSON: %r" % r.stdout)
    r = fl("status", odd)
    check("\x01" not in r.stdout and "\\x01" in r.stdout,
          "control characters are escaped in text")


def read_pty(master, proc, until, timeout):
    """Reads the pseudo-terminal until `until(data)` or the process ends."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            data += chunk
        if until(data):
            break
        if proc.poll() is not None and not ready:
            break
    return data


def run_on_pty(args, columns=None):
    master, slave = pty.openpty()
    if columns:
        import fcntl
        import struct
        import termios
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([FAIRLOCK] + args, stdin=slave, stdout=slave,
                            stderr=slave, env=ENV, close_fds=True)
    os.close(slave)
    return master, proc


def test_status_line_on_terminal():
    lock = name("pty")
    h = Holder(lock)
    holder_pid = h.proc.pid
    master, proc = run_on_pty(["run", lock, "--", "echo", "command-ran"],
                              columns=200)
    line = "\rfairlock: waiting for %s: position 1 of 1, " % lock
    try:
        t0 = time.monotonic()
        wait_until(lambda: queue_len(lock) == 1, "the waiter to queue")
        # Watch it wait until the line has been drawn three times (a
        # deadline, not a measurement: on an idle machine that is 0.5 s).
        data = read_pty(master, proc,
                        lambda d: d.count(line.encode()) >= 3, 20)
        h.release()
        data += read_pty(master, proc, lambda d: b"command-ran" in d, 10)
        # Every redraw happened within this time.
        waited = time.monotonic() - t0
        check(proc.wait(timeout=10) == 0, "the waiter exits 0")
    finally:
        os.close(master)
    text = data.decode("utf-8", "replace")
    draws = text.count(line)
    check(draws >= 3, "the status line is drawn and redrawn in place "
          "(%d times): %r" % (draws, text[:300]))
    check(draws <= 4 * waited + 3,
          "at most ~4 redraws a second (%d in %.1f s)" % (draws, waited))
    check(re.search(r"position 1 of 1, \d+\.\d s", text), "time waited")
    check(", held by pid %d on " % holder_pid in text,
          "the holder's identity: %r" % text[:300])
    before, _, after = text.rpartition(line)
    check(re.match(r"[^\r\n]*\r +\r", after),
          "the line is erased before the command runs: %r" % after[:120])
    check("command-ran" in after, "the command ran after the wait")

    # -q on a terminal, and a stderr that is not a terminal: no line.
    h = Holder(lock)
    master, proc = run_on_pty(["run", "-q", lock, "--", "echo", "quiet-ran"])
    try:
        wait_until(lambda: queue_len(lock) == 1, "the quiet waiter")
        time.sleep(0.6)
        p2 = start("run", lock, "--", "true")
        wait_until(lambda: queue_len(lock) == 2, "the piped waiter")
        time.sleep(0.6)
        h.release()
        data = read_pty(master, proc, lambda d: b"quiet-ran" in d, 10)
        check(proc.wait(timeout=10) == 0, "the quiet waiter exits 0")
        rc, _, err = finish(p2)
    finally:
        os.close(master)
    check(b"waiting for" not in data, "-q: no status line: %r" % data)
    check(rc == 0 and err == "", "not a terminal: no status line: %r" % err)
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_bad_input():
    lock = name("bad")
    cases = [
        [],
        ["frobnicate", lock],
        ["--frobnicate"],
        ["run", "--bogus", lock, "--", "true"],
        ["run", "-Z", lock, "--", "true"],   # (-x is --exclusive now)
        ["run", "--quiet=1", lock, "--", "true"],
        ["run", "--permits", "0", lock, "--", "true"],
        ["run", "--permits", "x", lock, "--", "true"],
        ["run", "--permits", "2", "-s", lock, "--", "true"],
        ["run", lock, "true"],               # missing --
        ["run", lock, "sh", "--", "true"],   # stray argument before --
        ["run", lock, "--"],                 # no command
        ["run", "--", "true"],               # no name
        ["run", "-w"],                       # missing value
        ["run", "-w", "abc", lock, "--", "true"],
        ["run", "-w", "-1", lock, "--", "true"],
        ["run", "-w", "nan", lock, "--", "true"],
        ["run", "-w", "inf", lock, "--", "true"],
        ["run", "-w", "1e3", lock, "--", "true"],
        ["run", "-w", "", lock, "--", "true"],
        ["run", "-w", "1.2.3", lock, "--", "true"],
        ["run", "-w", "99999999999999999999", lock, "--", "true"],
        ["run", "-E", "256", lock, "--", "true"],
        ["run", "-E", "-1", lock, "--", "true"],
        ["run", "--ttl", "x", lock, "--", "true"],
        ["run", "--stale", "1s", lock, "--", "true"],
        ["run", "--on-lost", "maybe", lock, "--", "true"],
        ["run", "-n", "-w", "1", lock, "--", "true"],
        ["run", "-q", "-v", lock, "--", "true"],
        ["run", "-u", "ftp://example", lock, "--", "true"],
        ["acquire"],
        ["acquire", lock, "extra"],
        ["release", lock],
        ["release", lock, ""],
        ["status"],
        ["status", "--bogus", lock],
        ["help", "frobnicate"],
    ]
    for args in cases:
        r = fl(*args)
        check(r.returncode == 64, "%s: exit 64, got %d (%r)" %
              (args, r.returncode, r.stderr))
        check(one_line(r.stderr) or args == [],
              "%s: one line on stderr: %r" % (args, r.stderr))
        check(r.stdout == "", "%s: nothing on stdout" % args)
    check(keys_of(lock) == [], "bad input touches nothing: %s" %
          keys_of(lock))


def test_command_not_found_or_not_executable():
    lock = name("exec")
    r = fl("run", lock, "--", "fairlock-no-such-command")
    check(r.returncode == 127 and one_line(r.stderr) and
          "command not found" in r.stderr, "not in PATH: 127 %r" % r.stderr)
    r = fl("run", lock, "--", "/nonexistent/dir/cmd")
    check(r.returncode == 127, "missing path: 127, got %d" % r.returncode)
    plain = tmpfile("plain")
    with open(plain, "w") as f:
        f.write("echo hi\n")
    os.chmod(plain, 0o644)
    r = fl("run", lock, "--", plain)
    check(r.returncode == 126 and one_line(r.stderr),
          "not executable: 126, got %d %r" % (r.returncode, r.stderr))
    r = fl("run", lock, "--", TMP)
    check(r.returncode == 126, "a directory: 126, got %d" % r.returncode)
    # Found and executable, but exec fails after the grant (its
    # interpreter is missing): 127, and the lock is released.
    bad = tmpfile("badshebang")
    with open(bad, "w") as f:
        f.write("#!/nonexistent/interpreter\n")
    os.chmod(bad, 0o755)
    r = fl("run", "-v", lock, "--", bad)
    check(r.returncode == 127, "bad interpreter: 127, got %d %r" %
          (r.returncode, r.stderr))
    check("acquired" in r.stderr, "... after the lock was acquired")
    # A script without #! runs with sh, as from a shell.
    nobang = tmpfile("nobang")
    with open(nobang, "w") as f:
        f.write('echo "args:$1"\nexit 5\n')
    os.chmod(nobang, 0o755)
    r = fl("run", lock, "--", nobang, "x")
    check(r.returncode == 5 and r.stdout == "args:x\n",
          "a script without #! runs: %d %r" % (r.returncode, r.stdout))
    check(keys_of(lock) == [], "no lock or queue entry left: %s" %
          keys_of(lock))


def test_unreachable_redis():
    lock = name("down")
    for url in ("redis://127.0.0.1:1", "unix:///nonexistent/redis.sock"):
        for args in (["run", "-u", url, lock, "--", "true"],
                     ["acquire", "--url", url, lock],
                     ["release", "-u", url, lock, "tok"],
                     ["status", "-u", url, lock]):
            t0 = time.monotonic()
            r = fl(*args)
            check(r.returncode == 69, "%s: exit 69, got %d %r" %
                  (args, r.returncode, r.stderr))
            check(one_line(r.stderr) and "connect" in r.stderr,
                  "%s: one line: %r" % (args, r.stderr))
            # Fails rather than waits for a server (run would wait for
            # ever): a deadline, not a measurement.
            took = time.monotonic() - t0
            check(took < 15, "fails fast (%.2f s)" % took)
    # $FAIRLOCK_URL is used when -u is not given.
    r = fl("status", lock, env=dict(ENV, FAIRLOCK_URL="redis://127.0.0.1:1"))
    check(r.returncode == 69, "$FAIRLOCK_URL is used")


def test_localhost_needs_no_resolver():
    # A minimal root (a container, a debootstrap) may have no /etc/hosts:
    # "localhost" is still the loopback, as redis-py's default host.  Run
    # under a shim (tests/cli/no_resolver.c) in which getaddrinfo() knows
    # no host name at all.
    shim = os.environ.get("FAIRLOCK_TEST_NO_RESOLVER")
    if not shim:
        raise Failure("$FAIRLOCK_TEST_NO_RESOLVER (the shim) is not set")
    env = dict(ENV, LD_PRELOAD=shim)
    # A sanitizer runtime wants to be first among preloaded libraries.
    env["ASAN_OPTIONS"] = ":".join(
        o for o in (env.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
    port = ENV_TCP.split(":")[1]
    lock = name("localhost")
    check(os.path.isfile(shim), "the shim is built: %s" % shim)
    r = subprocess.run([sys.executable, "-c", "import socket; "
                        "socket.getaddrinfo('localhost', 6379)"], env=env,
                       capture_output=True, text=True, timeout=10)
    check(r.returncode != 0, "under the shim getaddrinfo() resolves "
          "nothing: %r" % r.stderr)
    r = fl("run", "-u", "redis://localhost:" + port, lock, "--", "true",
           env=env)
    check(r.returncode == 0, "fairlock run on redis://localhost without a "
          "resolver: exit %d %r" % (r.returncode, r.stderr))
    check(keys_of(lock) == [], "nothing left")


class PrivateServer:
    """A redis-server of this test alone, on a unix socket, started with
    more arguments (a password, a replica role...)."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="fl-", dir="/tmp")
        self.sock = os.path.join(self.dir, "r.sock")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock,
             "--save", "", "--appendonly", "no", "--dir", self.dir] +
            list(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists(self.sock), "the private server")

    def url(self, auth="", query=""):
        return "unix://%s%s%s" % (auth, self.sock, query)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_misconfiguration_is_explained():
    # Each mistake a user makes in the URL gets one line that says what to
    # change, from every command that talks to the server (exit 69), and
    # never shows the password.
    secret = "s3cr3t-pw"
    locked = PrivateServer("--requirepass", secret)
    replica = PrivateServer("--replicaof", "127.0.0.1", "1")
    fixture = "unix://" + SOCKET
    lock = name("misconf")
    tagged = "{%s}" % lock  # a cluster URL needs a hash tag
    cases = [
        (locked.url(), "requires a password (NOAUTH)"),
        (locked.url(":wrong-pw@"), "wrong user name or password"),
        (locked.url("nobody:%s@" % secret), "wrong user name or password"),
        ("unix://:%s@%s" % (secret, SOCKET), "the server requires none"),
        (fixture + "?db=4000", "database number in the URL does not exist"),
        # (status only reads: a replica answers it)
        (replica.url(), "read-only replica", ["run", "acquire"]),
        ("redis+cluster://" + ENV_TCP, "not a Redis Cluster node"),
        ("redis+sentinel://%s/mymaster" % ENV_TCP, "not a Redis Sentinel"),
    ]
    try:
        for url, expected, *only in cases:
            on = tagged if url.startswith("redis+cluster") else lock
            for args in (["run", "-u", url, on, "--", "true"],
                         ["acquire", "--url", url, on],
                         ["status", "-u", url, on]):
                if only and args[0] not in only[0]:
                    continue
                r = fl(*args)
                # (the warning about a password in -u is another test's)
                r.stderr = "".join(
                    line for line in r.stderr.splitlines(True)
                    if "a password on the command line" not in line)
                what = "%s %s" % (args[0], url.replace(secret, "SECRET"))
                check(r.returncode == 69, "%s: exit 69, got %d %r" %
                      (what, r.returncode, r.stderr))
                check(one_line(r.stderr) and expected in r.stderr,
                      "%s: says %r: %r" % (what, expected, r.stderr))
                check(secret not in r.stderr, "%s: no password shown" % what)
        # Given right, the same servers work.
        r = fl("run", "-u", locked.url(":%s@" % secret), lock, "--", "true")
        check(r.returncode == 0, "with the password: %r" % r.stderr)
    finally:
        locked.stop()
        replica.stop()


def test_acquire_and_release():
    lock = name("acq")
    r = fl("acquire", "-n", lock)
    check(r.returncode == 0, "acquire -n on a free lock: %r" % r.stderr)
    token = r.stdout.strip()
    check(re.fullmatch(r"[0-9a-f]{32}\.\d+\.\d+", token),
          "prints the token: %r" % r.stdout)
    check(redis("GET", lock) == token, "the lock holds the printed token")
    check(redis("PTTL", lock) == "-1", "no expiry without --ttl")
    r = fl("run", "-w", "0.2", lock, "--", "true")
    check(r.returncode == 1, "run conflicts with the acquired lock")
    r = fl("release", lock, "0" * 32 + ".0.10000")
    check(r.returncode == 1 and "does not hold" in r.stderr,
          "release with a wrong token: 1 %r" % r.stderr)
    check(redis("GET", lock) == token, "still held")
    r = fl("release", "-v", lock, token)
    check(r.returncode == 0 and "released" in r.stderr, "release: 0")
    check(keys_of(lock) == [], "released: %s" % keys_of(lock))
    r = fl("release", "-q", lock, token)
    check(r.returncode == 1 and r.stderr == "", "release twice: 1, quiet")

    # A waiting `run` gets the lock when the acquired one is released.
    token = fl("acquire", lock).stdout.strip()
    p = start("run", lock, "--", "echo", "after-release")
    wait_until(lambda: queue_len(lock) == 1, "the run to queue")
    check(fl("release", lock, token).returncode == 0, "release")
    rc, out, _ = finish(p)
    check(rc == 0 and out == "after-release\n", "hand-over to the waiter")
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_descriptors():
    lock = name("fds")
    # The command inherits fairlock's descriptors, not its connections.
    r, w = os.pipe()
    try:
        p = subprocess.run(
            [FAIRLOCK, "run", lock, "--", "sh", "-c",
             # ls lists the shell's descriptors (a glob in the shell
             # would add the one it reads the directory with).
             'ls /proc/$$/fd; true'],
            capture_output=True, text=True, env=ENV, timeout=20,
            pass_fds=(w,))
    finally:
        os.close(r)
        os.close(w)
    fds = sorted(int(x) for x in p.stdout.split())
    check(p.returncode == 0, "run exits 0")
    check(fds == sorted([0, 1, 2, w]),
          "the command has 0, 1, 2 and the passed fd %d only: %s" % (w, fds))


def test_output_errors():
    lock = name("full")
    if not os.path.exists("/dev/full"):
        return
    with open("/dev/full", "w") as full:
        r = subprocess.run([FAIRLOCK, "status", lock], stdout=full,
                           stderr=subprocess.PIPE, text=True, env=ENV,
                           timeout=20)
    check(r.returncode == 71 and "cannot write" in r.stderr,
          "a write error is reported: %d %r" % (r.returncode, r.stderr))
    # acquire detaches the lock before it prints the token; a token that
    # nobody could read must not leave the lock held.
    with open("/dev/full", "w") as full:
        r = subprocess.run([FAIRLOCK, "acquire", lock], stdout=full,
                           stderr=subprocess.PIPE, text=True, env=ENV,
                           timeout=20)
    check(r.returncode == 71, "acquire to a full stdout exits 71: %d %r" %
          (r.returncode, r.stderr))
    check(redis("EXISTS", lock) == "0",
          "and leaves the lock free: %r" % redis("GET", lock))


def acl_user(prefix, user, password):
    """Creates USER from `fairlock acl PREFIX --user USER`; returns a URL
    of the fixture server without credentials."""
    r = fl("acl", prefix, "--user", user)
    check(r.returncode == 0 and r.stdout.count("\n") == 1,
          "acl prints one line: %r %r" % (r.stdout, r.stderr))
    check(redis(*(r.stdout.split() + [">" + password])) == "OK",
          "the printed ACL SETUSER is accepted")
    return "redis://127.0.0.1:%s" % CONF["FAIRLOCK_TEST_PORT"]


def test_acl_helper():
    r = fl("acl", "app:locks:", "--user", "app")
    check(r.returncode == 0, "acl exits 0")
    line = r.stdout.strip()
    check(line.startswith("ACL SETUSER app on resetkeys ~app:locks:* "
                          "resetchannels -@all +evalsha +eval "),
          "acl line: " + line)
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "..", "docs", "acl.md")
    with open(doc) as f:
        check(line in f.read(), "docs/acl.md shows the line acl prints")
    r = fl("acl", "app:", "--sentinel-user", "watcher", "--hash-tag")
    lines = r.stdout.splitlines()
    check(len(lines) == 2 and "~{app:*" in lines[0] and "+role" in lines[0]
          and lines[1].startswith("ACL SETUSER watcher on ") and
          "+sentinel|get-master-addr-by-name" in lines[1],
          "sentinel lines: %r" % lines)
    check("+asking +cluster|myid" in fl("acl", "app:", "--cluster").stdout,
          "--cluster allows ASKING")
    for bad in ([""], ["app:*"], ["a b"], ["app:", "--user", "x y"], []):
        r = fl("acl", *bad)
        check(r.returncode == 64 and one_line(r.stderr),
              "acl %r is a usage error: %r" % (bad, r.stderr))


def test_password_kept_off_the_command_line():
    user = "fltest-cli-%d" % os.getpid()
    password = "clipw-%d-Secret" % os.getpid()
    prefix = "fltest:cli:acl:%d:" % os.getpid()
    url = acl_user(prefix, user, password)
    try:
        lock = prefix + "run"
        env = dict(ENV, FAIRLOCK_PASSWORD=password)
        pidfile = tmpfile("child-pid")
        with_password = url.replace("//", "//%s:%s@" % (user, password))
        proc = start("run", "-u", with_password, lock, "--", "sh", "-c",
                     'echo $$ > "$0"; exec sleep 5', pidfile, env=env)
        wait_until(lambda: os.path.exists(pidfile) and
                   open(pidfile).read().endswith("\n"), "the command")
        with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
            cmdline = f.read()
        with open(pidfile) as f:
            child = int(f.read())
        with open("/proc/%d/environ" % child, "rb") as f:
            environ = f.read()
        os.kill(child, signal.SIGTERM)
        rc, _, err = finish(proc)
        check(password.encode() not in cmdline,
              "the password is wiped from argv: %r" % cmdline)
        check(b"//%s:***" % user.encode() in cmdline,
              "the rest of the URL stays: %r" % cmdline)
        check(b"FAIRLOCK_PASSWORD" not in environ and
              password.encode() not in environ,
              "the command does not inherit FAIRLOCK_PASSWORD")
        check("password on the command line" in err and
              password not in err, "one warning: %r" % err)
        check(keys_of(lock) == [], "nothing left behind")
        r = fl("run", "-q", "-u", with_password, lock, "--", "true")
        check(r.returncode == 0 and r.stderr == "", "-q: no warning")

        # A name outside the prefix: no permission, naming the key.
        other = name("outside")
        r = fl("run", "-u", url, "--user", user, other, "--", "true",
               env=env)
        check(r.returncode == 69 and "no permission" in r.stderr and
              other in r.stderr and password not in r.stderr,
              "outside the prefix: %d %r" % (r.returncode, r.stderr))

        # --password-file: only a file its owner alone can read.
        pwfile = tmpfile("password")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        os.chmod(pwfile, 0o644)
        r = fl("run", "-u", url, "--user", user, "--password-file", pwfile,
               lock, "--", "true")
        check(r.returncode == 64 and "other users can read it" in r.stderr
              and one_line(r.stderr), "mode 0644 refused: %r" % r.stderr)
        os.chmod(pwfile, 0o600)
        r = fl("run", "-u", url, "--user", user, "--password-file", pwfile,
               lock, "--", "true")
        check(r.returncode == 0, "mode 0600 accepted: %r" % r.stderr)
        r = fl("acquire", "-u", url, "--user", user, "--password-file",
               pwfile, "--ttl", "30", lock)
        check(r.returncode == 0, "acquire: %r" % r.stderr)
        token = r.stdout.strip()
        r = fl("status", "-u", url, "--user", user, "--password-file",
               pwfile, lock)
        check(r.returncode == 0 and token[:12] in r.stdout,
              "status: %r" % r.stderr)
        r = fl("release", "-u", url, "--user", user, lock, token, env=env)
        check(r.returncode == 0, "release: %r" % r.stderr)
        check(keys_of(lock) == [], "nothing left behind")
        r = fl("run", "-u", url, "--user", user, "--password-file",
               tmpfile("missing"), lock, "--", "true")
        check(r.returncode == 64 and one_line(r.stderr),
              "a missing password file: %r" % r.stderr)
    finally:
        redis("ACL", "DELUSER", user)


def test_semaphore_and_rwlock():
    lock = name("sem")
    envfile, go = tmpfile("env"), tmpfile("go")
    holders = []
    # Two of three permits held; the child learns which one it has.
    for i in range(2):
        out, g = tmpfile("env"), tmpfile("go")
        p = start("run", "--permits", "3", lock, "--", "sh", "-c",
                  'env > "$0.part" && mv "$0.part" "$0"; '
                  'while [ ! -e "$1" ]; do sleep 0.02; done', out, g)
        wait_until(lambda: os.path.exists(out), "holder %d" % i)
        env = dict(line.split("=", 1) for line in
                   open(out).read().splitlines() if "=" in line)
        holders.append((p, g, env))
    permits = sorted(h[2].get("FAIRLOCK_PERMIT") for h in holders)
    check(permits == ["1", "2"], "FAIRLOCK_PERMIT 1 and 2: %s" % permits)
    check("FAIRLOCK_MODE" not in holders[0][2], "no FAIRLOCK_MODE")
    st = json.loads(fl("status", "--json", lock).stdout)
    check(st["kind"] == "semaphore" and st["permits"] == 3 and
          len(st["holders"]) == 2, "status --json: %s" % st)
    text = fl("status", lock).stdout
    check("semaphore of 3 permits" in text and "2 of 3" in text,
          "status text: %r" % text)
    r = fl("run", "--permits", "4", "-n", lock, "--", "true")
    check(r.returncode == 64 and "a semaphore of 3 permits" in r.stderr and
          "a semaphore of 4 permits" in r.stderr and one_line(r.stderr),
          "mismatched N: %d %r" % (r.returncode, r.stderr))
    r = fl("run", "-x", "-n", lock, "--", "true")
    check(r.returncode == 64, "a semaphore is not a rwlock: %d" %
          r.returncode)
    # Nor a mutex, whether it waits, only tries or does not queue; and the
    # refused mutex leaves no key of its own.
    before = keys_of(lock)
    for extra in (["-w", "5"], ["-n"], ["--no-fifo", "-w", "5"]):
        r = fl("run", *extra, lock, "--", "true")
        check(r.returncode == 64 and "a semaphore of 3 permits" in r.stderr
              and "a mutex" in r.stderr and one_line(r.stderr),
              "a semaphore is not a mutex %s: %d %r"
              % (extra, r.returncode, r.stderr))
    check(keys_of(lock) == before, "no mutex keys: %s" % keys_of(lock))
    r = fl("run", "--permits", "3", "-n", lock, "--", "true")
    check(r.returncode == 0, "the third permit is free: %d" % r.returncode)
    token = fl("acquire", "--permits", "3", lock).stdout.strip()
    check(fl("run", "--permits", "3", "-n", lock, "--", "true").returncode
          == 1, "all three permits taken")
    check(fl("release", lock, token).returncode == 1,
          "the mutex does not hold a semaphore token")
    check(fl("release", "--permits", "3", lock, token).returncode == 0,
          "release --permits")
    for p, g, _ in holders:
        open(g, "w").close()
        rc, _, err = finish(p)
        check(rc == 0, "holder exited %d: %s" % (rc, err))
    check(keys_of(lock) == [], "no keys left: %s" % keys_of(lock))

    rw = name("rw")
    out, g = tmpfile("env"), tmpfile("go")
    reader = start("run", "-s", rw, "--", "sh", "-c",
                   'env > "$0.part" && mv "$0.part" "$0"; '
                   'while [ ! -e "$1" ]; do sleep 0.02; done', out, g)
    wait_until(lambda: os.path.exists(out), "the reader")
    env = dict(line.split("=", 1) for line in
               open(out).read().splitlines() if "=" in line)
    check(env.get("FAIRLOCK_MODE") == "shared", "FAIRLOCK_MODE=shared")
    r = fl("run", "--shared", "-n", rw, "--", "sh", "-c",
           'echo "$FAIRLOCK_MODE"')
    check(r.returncode == 0 and r.stdout.strip() == "shared",
          "readers overlap: %d %r" % (r.returncode, r.stdout))
    check(fl("run", "-x", "-n", rw, "--", "true").returncode == 1,
          "a writer waits for the reader")
    before = keys_of(rw)
    r = fl("run", "-w", "5", rw, "--", "true")
    check(r.returncode == 64 and "a readers-writer lock" in r.stderr and
          "a mutex" in r.stderr and one_line(r.stderr),
          "a rwlock is not a mutex: %d %r" % (r.returncode, r.stderr))
    check(keys_of(rw) == before, "no mutex keys: %s" % keys_of(rw))
    st = json.loads(fl("status", "--json", rw).stdout)
    check(st["kind"] == "rwlock" and st["holders"][0]["mode"] == "shared",
          "rwlock status: %s" % st)
    check(fl("run", "-s", "-x", rw, "--", "true").returncode == 64,
          "-s and -x exclude each other")
    check(fl("run", "-x", "--no-fifo", rw, "--", "true").returncode == 64,
          "--no-fifo is for the mutex")
    open(g, "w").close()
    rc, _, _ = finish(reader)
    check(rc == 0, "reader exit")
    r = fl("run", "--exclusive", rw, "--", "sh", "-c", 'echo "$FAIRLOCK_MODE"')
    check(r.stdout.strip() == "exclusive", "FAIRLOCK_MODE=exclusive")
    check(keys_of(rw) == [], "no keys left: %s" % keys_of(rw))


def test_tls_flags():
    """The TLS flags, named as in redis-cli, against the tls fixture's
    server (mutual TLS); run as cli_tls, and a no-op without it."""
    tls_dir = CONF.get("FAIRLOCK_TEST_TLS_DIR")
    if not tls_dir:
        return
    port = CONF["FAIRLOCK_TEST_PORT"]
    ca, cert, key = (os.path.join(tls_dir, f)
                     for f in ("ca.crt", "client.crt", "client.key"))
    client = ["--cert", cert, "--key", key]
    lock = name("tls")
    variants = [
        ["-u", "rediss://127.0.0.1:%s" % port, "--cacert", ca] + client,
        ["-u", "redis://localhost:%s" % port, "--tls", "--cacertdir",
         os.path.join(tls_dir, "cadir")] + client,
        ["-u", "rediss://127.0.0.1:%s" % port, "--cacert", ca, "--sni",
         "localhost"] + client,
        ["-u", "rediss://127.0.0.1:%s" % port, "--insecure"] + client,
    ]
    for flags in variants:
        r = fl("run", *flags, lock, "--", "true")
        check(r.returncode == 0, "run %s: %r" % (flags, r.stderr))
        r = fl("acquire", "-n", *flags, lock)
        check(r.returncode == 0, "acquire %s: %r" % (flags, r.stderr))
        token = r.stdout.strip()
        r = fl("status", *flags, lock)
        check(r.returncode == 0 and token[:12] in r.stdout,
              "status %s: %r %r" % (flags, r.stdout, r.stderr))
        r = fl("release", *flags, lock, token)
        check(r.returncode == 0, "release %s: %r" % (flags, r.stderr))
        check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))
    # Each failure is a Redis failure (69) with its cause.
    other = os.path.join(tls_dir, "other-ca.crt")
    failures = [
        (["--cacert", other] + client, "not signed by a CA"),
        (["--cacert", ca, "--sni", "wrong.test"] + client, "is not for"),
        (["--cacert", ca], "client certificate"),
    ]
    for flags, cause in failures:
        r = fl("run", "-u", "rediss://127.0.0.1:%s" % port, *flags, lock,
               "--", "true")
        check(r.returncode == 69 and cause in r.stderr,
              "%s: 69 and %r: %d %r" % (flags, cause, r.returncode,
                                        r.stderr))
    r = fl("run", "-u", "redis://127.0.0.1:%s" % port, lock, "--", "true")
    check(r.returncode == 69 and "rediss://" in r.stderr,
          "plain text to a TLS port: %d %r" % (r.returncode, r.stderr))
    r = fl("run", "--cacert", "", lock, "--", "true")
    check(r.returncode == 64, "an empty --cacert is a usage error")



# ---------------------------------------------------------------------------
# Operating: identity, list, break, metrics, --watch
# ---------------------------------------------------------------------------

def status_json(lock, *args):
    r = fl("status", "--json", lock, *args)
    check(r.returncode == 0, "status --json: %r" % r.stderr)
    return json.loads(r.stdout)


def test_identity_of_holder_and_waiters():
    lock = name("ident")
    h = Holder(lock)
    waiter = start("run", "-w", "30", lock, "--", "echo", "waited")
    wait_until(lambda: queue_len(lock) == 1, "the waiter to queue")
    st = status_json(lock)
    host = os.uname().nodename[:64]
    hid = st["holder"]["identity"]
    # By default the label names the command, the lock and the program
    # run under it, none of the program's arguments.
    check(hid is not None and hid["pid"] == h.proc.pid and
          hid["host"] == host and hid["label"] == "run %s -- sh" % lock and
          hid["held_ms"] >= 0, "the holder's identity: %r" % hid)
    wid = st["waiters"][0]["identity"]
    check(wid is not None and wid["pid"] == waiter.pid and
          wid["label"] == "run %s -- echo" % lock and
          wid["waiting_ms"] >= 0, "the waiter's identity: %r" % wid)
    r = fl("status", lock)
    check("held by:  pid %d on %s: run %s -- sh" % (h.proc.pid, host, lock)
          in r.stdout and "pid %d on %s" % (waiter.pid, host) in r.stdout,
          "text shows both: %r" % r.stdout)
    # Hand-off: the waiter's record becomes the holder's.
    h.release()
    rc, out, _ = finish(waiter)
    check(rc == 0 and "waited" in out, "the waiter ran")
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))
    # --no-identity records nothing.
    h = Holder(lock, "--no-identity")
    st = status_json(lock)
    check(st["holder"]["identity"] is None, "--no-identity: %r" % st)
    h.release()
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))
    # --label: the user's own text, stored as given; acquire's default.
    h = Holder(lock, "--label", "nightly deploy #42")
    st = status_json(lock)
    check(st["holder"]["identity"]["label"] == "nightly deploy #42",
          "--label: %r" % st)
    h.release()
    r = fl("acquire", lock)
    check(r.returncode == 0, "acquire: %r" % r.stderr)
    st = status_json(lock)
    check(st["holder"]["identity"]["label"] == "acquire %s" % lock,
          "acquire's label: %r" % st)
    fl("release", lock, r.stdout.strip())
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_child_arguments_never_stored():
    # What follows the program's name is the program's business: a
    # password in a URL, -pSECRET, a header.  None of it reaches Redis.
    lock = name("childsecret")
    secret = "childpw-%d-Secret" % os.getpid()
    go = tmpfile("go")
    holder = start("run", lock, "--", "/bin/sh", "-c",
                   'while [ ! -e "$0" ]; do sleep 0.02; done', go,
                   "postgres://u:%s@h/db" % secret, "-p" + secret,
                   "Authorization: Bearer " + secret)
    wait_until(lambda: redis("EXISTS", lock) == "1", "the holder")
    waiter = start("run", lock, "--", "echo", "-p" + secret)
    wait_until(lambda: queue_len(lock) == 1, "the waiter")
    try:
        stored = redis("HGETALL", lock + ":who")
        check(secret not in stored and "-p" not in stored,
              "no argument stored: %r" % stored)
        check("run %s -- sh" % lock in stored and
              "run %s -- echo" % lock in stored, "the programs: %r" % stored)
        r = fl("status", "--json", lock)
        check(r.returncode == 0 and secret not in r.stdout,
              "status shows none: %r" % r.stdout)
    finally:
        open(go, "w").close()
        check(finish(holder)[0] == 0, "the holder ends")
        check(finish(waiter)[0] == 0, "the waiter ends")
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


def test_identity_never_stores_secrets():
    user = "fltest-cli-id-%d" % os.getpid()
    password = "idpw-%d-Secret" % os.getpid()
    sentinel_pw = "idsentinel-%d-Secret" % os.getpid()
    prefix = "fltest:cli:idsecret:%d:" % os.getpid()
    url = acl_user(prefix, user, password)
    try:
        lock = prefix + "lock"
        pwfile = tmpfile("password")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        os.chmod(pwfile, 0o600)
        # REDISCLI_AUTH: a password variable of another tool, starred out
        # all the same.
        env = dict(ENV, FAIRLOCK_PASSWORD=password, REDISCLI_AUTH=sentinel_pw)
        go = tmpfile("go")
        wait = 'while [ ! -e "$0" ]; do sleep 0.02; done'
        # The password in the URL (wiped from argv), in the environment,
        # in a file, and typed as an argument of the command too.
        with_password = url.replace("//", "//%s:%s@" % (user, password))
        holder = start("run", "-q", "-u", with_password, lock, "--", "sh",
                       "-c", wait, go, password, sentinel_pw, env=env)
        wait_until(lambda: redis("EXISTS", lock) == "1", "the holder")
        waiter = start("run", "-u", url, "--user", user, "--password-file",
                       pwfile, lock, "--", "echo", password, env=env)
        wait_until(lambda: queue_len(lock) == 1, "the waiter")
        # A password typed into --label, across the label's 200-byte cut:
        # starred out, and no prefix of it may survive the cut either.
        cut = start("run", "-u", url, "--user", user, "--label",
                    "x" * 195 + password, lock, "--", "echo", env=env)
        wait_until(lambda: queue_len(lock) == 2, "the third waiter")
        stored = redis("HGETALL", lock + ":who")
        check(stored.count("run " + lock) == 2 and "x" * 195 in stored,
              "all recorded: %r" % stored)
        check(password[:4] not in stored, "no prefix: %r" % stored)
        for secret in (password, sentinel_pw):
            check(secret not in stored, "no secret stored: %r" % stored)
        check("***" in stored, "the secrets are starred out: %r" % stored)
        r = fl("status", "--json", "-u", url, "--user", user, lock, env=env)
        check(r.returncode == 0 and password not in r.stdout and
              sentinel_pw not in r.stdout, "status shows none: %r" % r.stdout)
        open(go, "w").close()
        check(finish(holder)[0] == 0, "the holder ends")
        check(finish(waiter)[0] == 0, "the waiter ends")
        check(finish(cut)[0] == 0, "the third waiter ends")
        check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))
    finally:
        redis("ACL", "DELUSER", user)


def list_names(*args):
    r = fl("list", *args, timeout=60)
    check(r.returncode == 0, "list: %d %r" % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    if not lines:
        return [], r.stdout
    check(lines[0].split()[:3] == ["NAME", "KIND", "HOLDERS"],
          "a header: %r" % lines[0])
    return [line.split()[0] for line in lines[1:]], r.stdout


def test_list_finds_exactly_the_live_locks():
    base = name("list")
    # Thousands of unrelated keys, some of every type, some with names and
    # values close to ours.
    pipe = ["SET %s:junk:%d value-%d" % (base, i, i) for i in range(3000)]
    pipe += ["HSET %s:hash:%d f v" % (base, i) for i in range(100)]
    pipe += ["ZADD %s:zset:%d 1 m" % (base, i) for i in range(100)]
    pipe += ["SET %s:almost 0123456789abcdef0123456789abcdeg.10.10" % base,
             "SET %s:big %s" % (base, "a" * 5000),
             "INCR %s:onlyfence:fence" % base]
    out = subprocess.run(["redis-cli", "-s", SOCKET], input="\n".join(pipe),
                         capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, "junk written")
    held = base + ":held"
    queued = base + ":queued"
    sem = base + ":sem"
    rw = base + ":rw"
    freed = base + ":freed"
    tokens = {}
    for lock, opts in ((held, []), (queued, []), (sem, ["--permits", "2"]),
                       (rw, ["-s"]), (freed, ["--fencing"])):
        r = fl("acquire", "--ttl", "60", *opts, lock)
        check(r.returncode == 0, "acquire %s: %r" % (lock, r.stderr))
        tokens[lock] = r.stdout.strip()
    r = fl("release", freed, tokens[freed])
    check(r.returncode == 0, "release: %r" % r.stderr)
    waiter = start("run", queued, "--", "true")
    wait_until(lambda: queue_len(queued) == 1, "the waiter")
    try:
        names, text = list_names(base + ":*")
        check(names == sorted([held, queued, rw, sem]),
              "exactly the live locks: %r" % text)
        lines = {line.split()[0]: line.split() for line in
                 text.splitlines()[1:]}
        check(lines[queued][1:4] == ["mutex", "1", "1"] and
              lines[sem][1:4] == ["semaphore", "1", "0"] and
              lines[rw][1:4] == ["rwlock", "1", "0"],
              "kind, holders and waiters: %r" % text)
        check("pid " in lines[held][-4:][0] + " " + " ".join(lines[held]),
              "who holds it: %r" % lines[held])
        r = fl("list", "--json", base + ":*")
        objs = [json.loads(line) for line in r.stdout.splitlines()]
        check(r.returncode == 0 and [o["name"] for o in objs] ==
              sorted([held, queued, rw, sem]), "--json: %r" % r.stdout)
        names, _ = list_names(base + ":q*")
        check(names == [queued], "the pattern selects: %r" % names)
    finally:
        for lock in (held, queued):
            fl("release", lock, tokens[lock])
        fl("release", "--permits", "2", sem, tokens[sem])
        fl("release", "-s", rw, tokens[rw])
        finish(waiter)
        redis("EVAL", "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
              "redis.call('DEL', k) end", "0", base + ":*")
    names, text = list_names(base + ":*")
    check(names == [], "nothing once released: %r" % text)


def test_break_hands_over_to_the_next_waiter():
    lock = name("break")
    go = tmpfile("go")
    # A short lease renewed every third of a second: the loss is noticed
    # at the next renewal.
    holder = start("run", "--ttl", "1", lock, "--", "sh", "-c",
                   'while [ ! -e "$0" ]; do sleep 0.02; done', go)
    wait_until(lambda: redis("EXISTS", lock) == "1", "the holder")
    waiter = start("run", lock, "--", "echo", "next-got-it")
    wait_until(lambda: queue_len(lock) == 1, "the waiter")
    r = fl("break", lock, stdin=subprocess.DEVNULL)
    check(r.returncode == 64 and "--yes" in r.stderr,
          "no terminal, no --yes: refused: %d %r" % (r.returncode, r.stderr))
    check(redis("GET", lock).split(".")[0] != "" and queue_len(lock) == 1,
          "nothing changed")
    r = fl("break", "--yes", lock)
    check(r.returncode == 0 and "broke 1 hold" in r.stdout,
          "broken: %d %r %r" % (r.returncode, r.stdout, r.stderr))
    check("pid %d" % holder.pid in r.stderr, "who held it: %r" % r.stderr)
    check("now held by pid %d" % waiter.pid in r.stdout,
          "handed to the waiter: %r" % r.stdout)
    rc, out, err = finish(waiter)
    check(rc == 0 and "next-got-it" in out, "the waiter ran: %r" % err)
    rc, _, err = finish(holder)
    check(rc == 75 and "lease lost" in err,
          "the broken holder exits 75: %d %r" % (rc, err))
    r = fl("break", "--yes", lock)
    check(r.returncode == 1 and "not held" in r.stderr,
          "a free lock: 1: %d %r" % (r.returncode, r.stderr))
    # A semaphore: every holder, or the one --token names.
    r1 = fl("acquire", "--permits", "2", "--ttl", "60", lock + ":sem")
    r2 = fl("acquire", "--permits", "2", "--ttl", "60", lock + ":sem")
    t1, t2 = r1.stdout.strip(), r2.stdout.strip()
    r = fl("break", "--yes", "--token", t1, lock + ":sem")
    check(r.returncode == 0 and "broke 1 hold" in r.stdout,
          "--token: %r %r" % (r.stdout, r.stderr))
    r = fl("release", "--permits", "2", lock + ":sem", t1)
    check(r.returncode == 1, "the broken hold is gone")
    r = fl("break", "-y", lock + ":sem")
    check(r.returncode == 0 and "now free" in r.stdout, "the rest: %r" %
          r.stdout)
    check(fl("release", "--permits", "2", lock + ":sem", t2).returncode == 1,
          "that one too")
    check(keys_of(lock) == [] and keys_of(lock + ":sem") == [],
          "nothing left: %s" % keys_of(lock))


def test_break_asks_on_a_terminal():
    lock = name("breakask")
    r = fl("acquire", "--ttl", "60", lock)
    check(r.returncode == 0, "acquired: %r" % r.stderr)
    token = r.stdout.strip()
    for answer, rc_expected, held in ((b"n\n", 1, True), (b"y\n", 0, False)):
        master, proc = run_on_pty(["break", lock])
        try:
            data = read_pty(master, proc, lambda d: b"[y/N]" in d, 20)
            check(b"[y/N]" in data and token.encode() in data,
                  "asks, naming the holder: %r" % data)
            os.write(master, answer)
            data += read_pty(master, proc, lambda d: False, 10)
            rc = proc.wait(timeout=10)
        finally:
            os.close(master)
        check(rc == rc_expected, "answer %r: exit %d, %r" % (answer, rc, data))
        check((redis("GET", lock) == token) == held,
              "answer %r: held %s" % (answer, held))
    check(keys_of(lock) == [], "nothing left: %s" % keys_of(lock))


PROM_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
PROM_LABEL_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
PROM_SAMPLE = re.compile(
    r"^(%s)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*=%s)(?:,[a-zA-Z_][a-zA-Z0-9_]*=%s)*"
    r")\})? ([-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|Inf|NaN))$" %
    (PROM_NAME, PROM_LABEL_VALUE, PROM_LABEL_VALUE))


def prom_unescape(v):
    return re.sub(r'\\(["\\n])',
                  lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_prometheus(text):
    """A strict reader of the text exposition format: returns
    {family: {"type", "help", "samples": [(labels, value)]}} or fails."""
    check(text.endswith("\n"), "ends with a newline")
    families, current, seen_samples = {}, None, set()
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, fam, rest = line[2:6], *line[7:].split(" ", 1)
            check(re.fullmatch(PROM_NAME, fam), "family name %r" % fam)
            f = families.setdefault(fam, {"samples": []})
            check(kind.lower() not in f, "one %s per family: %r" % (kind, line))
            check(fam not in seen_samples, "%s after samples: %r" %
                  (kind, line))
            if kind == "TYPE":
                check(rest in ("counter", "gauge", "histogram", "summary",
                               "untyped"), "type %r" % rest)
                if rest == "counter":
                    check(fam.endswith("_total"), "a counter ends in _total")
            f[kind.lower()] = rest
            if current != fam:
                check(not f["samples"], "families are contiguous: %r" % fam)
            current = fam
            continue
        check(not line.startswith("#") and line.strip() == line and line,
              "no stray line: %r" % line)
        m = PROM_SAMPLE.match(line)
        check(m, "a well-formed sample: %r" % line)
        fam = m.group(1)
        check(fam == current and "type" in families[fam],
              "a sample of the family just typed: %r" % line)
        seen_samples.add(fam)
        labels = {}
        if m.group(2):
            for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)=(%s)' %
                                   PROM_LABEL_VALUE, m.group(2)):
                check(k not in labels, "a label once: %r" % line)
                labels[k] = prom_unescape(v[1:-1])
        key = (fam, tuple(sorted(labels.items())))
        check(key not in [(fam, tuple(sorted(l.items())))
                          for l, _ in families[fam]["samples"]],
              "no duplicate series: %r" % line)
        families[fam]["samples"].append((labels, float(m.group(3))))
    return families


def test_metrics_parse_as_prometheus():
    base = name("prom")
    odd = base + ':quote"back\\slash'
    queued = base + ":queued"
    r1 = fl("acquire", "--ttl", "60", "--fencing", odd)
    r2 = fl("acquire", queued)
    check(r1.returncode == 0 and r2.returncode == 0, "acquired")
    waiter = start("run", queued, "--", "true")
    wait_until(lambda: queue_len(queued) == 1, "the waiter")
    try:
        for args in (["metrics", base + ":*"],
                     ["status", "--format", "prometheus", base + ":*"]):
            r = fl(*args)
            check(r.returncode == 0, "%s: %r" % (args, r.stderr))
            fams = parse_prometheus(r.stdout)

            def value(fam, lock):
                got = [v for l, v in fams[fam]["samples"]
                       if l.get("name") == lock]
                return got[0] if got else None
            check(value("fairlock_held", odd) == 1 and
                  value("fairlock_held", queued) == 1, "held")
            check(value("fairlock_waiters", queued) == 1 and
                  value("fairlock_waiters", odd) == 0, "waiters")
            check(0 < value("fairlock_lease_remaining_seconds", odd) <= 60 and
                  value("fairlock_lease_remaining_seconds", queued) ==
                  float("inf"), "lease")
            check(value("fairlock_grants_total", odd) >= 1 and
                  value("fairlock_grants_total", queued) is None, "grants")
            check(value("fairlock_holder_age_seconds", odd) >= 0 and
                  value("fairlock_oldest_waiter_age_seconds", queued) >= 0,
                  "ages")
            check(fams["fairlock_locks"]["samples"][0][1] == 2, "two locks")
    finally:
        fl("release", odd, r1.stdout.strip())
        fl("release", queued, r2.stdout.strip())
        finish(waiter)
    r = fl("metrics", base + ":*")
    check(r.returncode == 0 and
          parse_prometheus(r.stdout)["fairlock_locks"]["samples"][0][1] == 0,
          "none left: %r" % r.stdout)
    # The checker is strict: it refuses what the format does not allow.
    for bad in ('x{name="a} 1\n', "# TYPE x gauge\nx 1\n# TYPE x gauge\n",
                "# TYPE x_total counter\nx_total 1\n# TYPE y gauge\ny 1\n"
                "x_total 2\n", "# TYPE x gauge\nx one\n"):
        try:
            parse_prometheus(bad)
        except Failure:
            continue
        raise Failure("the checker accepted %r" % bad)


def test_status_watch_on_terminal():
    lock = name("watch")
    h = Holder(lock)
    master, proc = run_on_pty(["status", "--watch", "--interval", "0.2",
                               lock])
    try:
        data = read_pty(master, proc,
                        lambda d: d.count(b"fairlock status --watch") >= 3,
                        20)
        proc.send_signal(signal.SIGINT)
        check(proc.wait(timeout=10) == 0, "ends on SIGINT with 0")
    finally:
        os.close(master)
        h.release()
    text = data.decode("utf-8", "replace")
    check(text.count("fairlock status --watch") >= 3 and "\x1b[H" in text,
          "redrawn in place: %r" % text[:300])
    check("held by:  pid %d" % h.proc.pid in text, "with the holder")
    r = fl("status", "--watch", lock)
    check(r.returncode == 64 and "terminal" in r.stderr,
          "not a terminal: refused: %r" % r.stderr)

def test_status_watch_survives_errors():
    # A snapshot that fails (here: nobody listens on the port) is shown in
    # its place and tried again; --watch ends only when interrupted.
    master, proc = run_on_pty(["status", "--watch", "--interval", "0.1",
                               "-u", "redis://127.0.0.1:1", name("watcherr")])
    try:
        data = read_pty(master, proc, lambda d: d.count(b"error: ") >= 3, 20)
        check(proc.poll() is None, "still running after errors")
        proc.send_signal(signal.SIGINT)
        check(proc.wait(timeout=10) == 0, "ends on SIGINT with 0")
    finally:
        os.close(master)
    text = data.decode("utf-8", "replace")
    check(text.count("fairlock status --watch") >= 3,
          "redrawn with the error: %r" % text[:300])


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_")]


def main():
    if FAIRLOCK is None or not os.access(FAIRLOCK, os.X_OK):
        sys.exit("usage: test_cli.py PATH/TO/fairlock [TEST...]")
    setup()
    # Tests named on the command line or in $FAIRLOCK_TEST_ONLY, as the C
    # test programs take them; a name that is no test fails.
    wanted = sys.argv[2:] or os.environ.get(
        "FAIRLOCK_TEST_ONLY", "").replace(",", " ").split()
    unknown = set(wanted) - {t.__name__ for t in TESTS}
    if unknown:
        sys.exit("no test named %s" % ", ".join(sorted(unknown)))
    failed = []
    t_all = time.monotonic()
    try:
        for test in TESTS:
            if wanted and test.__name__ not in wanted:
                continue
            t0 = time.monotonic()
            try:
                test()
                print("ok    %-45s %5.2f s" %
                      (test.__name__, time.monotonic() - t0), flush=True)
            except Exception as e:  # report every test, then fail
                failed.append(test.__name__)
                print("FAIL  %-45s %s" % (test.__name__, e), flush=True)
                if not isinstance(e, Failure):
                    traceback.print_exc()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d failed, %.1f s in all" % (len(failed),
                                         time.monotonic() - t_all))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
