#!/usr/bin/python3
"""checker.py -- reads the histories of a fault scenario and counts what went
wrong: overlapping holds, FIFO inversions, lost waiters, lost updates.

Input: the clients' history files (format in fault_client.c) and the
driver's fault log, lines "T KIND key=value ...", T in CLOCK_MONOTONIC ns
like the histories.  Fault kinds the checker understands:
  kill pid=P        P died by SIGKILL at T (its story ends there)
  hung pid=P        P did not finish in time and was killed by the driver
  stop pid=P class=short|long   P was SIGSTOPped at T
  cont pid=P        ... and continued at T
  global-begin what=W / global-end what=W   a fault that may legitimately
                    reorder every waiter (a restart that loses the queue)
Every other kind is only counted as an injected fault.

The histories may be of a semaphore (start line permits=N > 0: up to N
holds at once, no two on one permit) or of a readers-writer lock (mode=s
or mode=x: a writer's hold overlaps no other); "overlaps" then counts
those violations, and FIFO order is judged by fence (the server's grant
order) where two holds may begin together.

Optionally a holder log, lines "T TOKEN" (or "T -"), written by the driver
whenever a sampler saw the lock key change: it shows ghost grants, the lock
held by a request whose client had already resolved (given up) that
request.

Usable as a module (check(...) returns a dict of figures) or from the
command line: checker.py DIR [--counter N] [--fenced N] prints the figures
of the histories DIR/*.hist and the fault log DIR/faults.log.
"""

import bisect
import glob
import json
import os
import sys

# Outcomes of an acquire call.
GRANT, TIMEOUT, ERROR = "grant", "timeout", "error"


def parse_line(line):
    """'T PID TID EVENT k=v ... msg=text' -> (t, pid, tid, event, dict)."""
    head, sep, msg = line.partition(" msg=")
    parts = head.split()
    if len(parts) < 4:
        return None
    try:
        t, pid, tid = int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None
    fields = {}
    for p in parts[4:]:
        k, _, v = p.partition("=")
        fields[k] = v
    if sep:
        fields["msg"] = msg
    return t, pid, tid, parts[3], fields


def parse_fault(line):
    parts = line.split()
    if len(parts) < 2:
        return None
    fields = {}
    for p in parts[2:]:
        k, _, v = p.partition("=")
        fields[k] = v
    return int(parts[0]), parts[1], fields


class Acq:
    """One acquire call of one waiter, and the hold that followed a grant."""

    __slots__ = ("who", "n", "fifo", "timeout_ms", "ask", "queued",
                 "outcome", "out_t", "state", "ticket", "fence", "token",
                 "vu_grant", "end", "vu_end", "release_rc", "killed",
                 "writes", "verify", "permits", "mode", "permit")

    def __init__(self, who, n, fifo, timeout_ms, ask):
        self.who, self.n, self.fifo, self.timeout_ms = who, n, fifo, timeout_ms
        self.ask = ask
        self.queued = None
        self.outcome = None
        self.out_t = None
        self.state = None
        self.ticket = self.fence = 0
        self.token = None
        self.vu_grant = None
        self.end = None        # release-call, or death, for a grant
        self.vu_end = None
        self.release_rc = []
        self.killed = False
        self.verify = None
        self.permits, self.mode, self.permit = 0, "-", 0

    def safe_end(self):
        """End of the part of the hold covered by the validity bound."""
        vus = [v for v in (self.vu_grant, self.vu_end) if v not in (None, 0)]
        if -1 in vus:
            return self.end
        best = max(vus) if vus else self.out_t
        return min(self.end, best)


class Waiter:
    """One thread of one client process."""

    def __init__(self, pid, tid):
        self.pid, self.tid = pid, tid
        self.fifo, self.timeout_ms = 1, None
        self.permits, self.mode = 0, "-"
        self.acqs = []
        self.events = []  # (t, event, fields), in order
        self.ended = False


def load_histories(paths):
    waiters = {}
    starts = {}
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                p = parse_line(line.rstrip("\n"))
                if p is None:
                    continue
                t, pid, tid, ev, fields = p
                if ev == "start":
                    starts[pid] = fields
                    continue
                w = waiters.get((pid, tid))
                if w is None:
                    w = waiters[(pid, tid)] = Waiter(pid, tid)
                    s = starts.get(pid, {})
                    w.fifo = int(s.get("fifo", "1"))
                    w.timeout_ms = int(s.get("timeout", "-1"))
                    w.permits = int(s.get("permits", "0"))
                    w.mode = s.get("mode", "-")
                w.events.append((t, ev, fields))
    return waiters, starts


def load_faults(path):
    faults = []
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                p = parse_fault(line.strip())
                if p:
                    faults.append(p)
    faults.sort(key=lambda x: x[0])
    return faults


def build_acqs(w, kill_t):
    """Turns a waiter's events into Acq records."""
    cur = None
    for t, ev, f in w.events:
        if ev == "ask":
            cur = Acq((w.pid, w.tid), int(f.get("n", 0)), w.fifo,
                      w.timeout_ms, t)
            cur.permits, cur.mode = w.permits, w.mode
            w.acqs.append(cur)
        elif cur is None:
            if ev == "end":
                w.ended = True
            continue
        elif ev == "queued":
            if cur.queued is None:
                cur.queued = t
                cur.token = f.get("token")
        elif ev == "grant":
            cur.outcome, cur.out_t = GRANT, t
            cur.ticket = int(f.get("ticket", 0))
            cur.fence = int(f.get("fence", 0))
            cur.permit = int(f.get("permit", 0))
            cur.token = f.get("token")
            cur.vu_grant = int(f.get("vu", -1))
        elif ev in ("timeout", "error"):
            cur.outcome, cur.out_t = ev, t
            cur.state = f.get("state")
        elif ev == "verify":
            cur.verify = int(f.get("ok", -1))
        elif ev == "release-call":
            cur.end = t
            cur.vu_end = int(f.get("vu", 0))
        elif ev == "release":
            cur.release_rc.append((t, f.get("rc"), f.get("state")))
        elif ev == "end":
            w.ended = True
    last = w.acqs[-1] if w.acqs else None
    if last is not None and last.outcome == GRANT and last.end is None:
        # Died holding the lock: it held it until its death at the latest
        # (or, for a crash nobody caused, until its last word).
        last.killed = kill_t is not None
        last.end = kill_t if kill_t is not None else w.events[-1][0]
    if last is not None and last.outcome is None and kill_t is not None:
        last.killed = True


def stop_intervals(faults):
    """pid -> [(stop_t, cont_t, class)]."""
    out, open_ = {}, {}
    for t, kind, f in faults:
        pid = int(f.get("pid", 0))
        if kind == "stop":
            open_[pid] = (t, f.get("class", "long"))
        elif kind == "cont" and pid in open_:
            s, cls = open_.pop(pid)
            out.setdefault(pid, []).append((s, t, cls))
    for pid, (s, cls) in open_.items():
        out.setdefault(pid, []).append((s, float("inf"), cls))
    return out


def global_intervals(faults):
    out, open_ = [], {}
    for t, kind, f in faults:
        if kind == "global-begin":
            open_[f.get("what", "")] = t
        elif kind == "global-end" and f.get("what", "") in open_:
            out.append((open_.pop(f.get("what", "")), t))
    for s in open_.values():
        out.append((s, float("inf")))
    return out


def overlaps_any(a, b, intervals):
    return any(s < b and e > a for s, e in intervals)


def conflict(a, b):
    """Whether two holds may not overlap: always for the mutex, on one
    permit for a semaphore, with a writer for a readers-writer lock."""
    if a.permits > 0 or b.permits > 0:
        return a.permit == b.permit
    if a.mode in "sx" and b.mode in "sx":
        return a.mode == "x" or b.mode == "x"
    return True


def over_capacity(holds):
    """Semaphore grants at whose start more holds than permits were going
    on within their validity bounds (the new one included)."""
    count, examples = 0, []
    for b in holds:
        if b.permits <= 0:
            continue
        inside = sum(1 for a in holds
                     if a.out_t <= b.out_t < min(a.end, a.safe_end()))
        if inside > b.permits:
            count += 1
            if len(examples) < 5:
                examples.append({"grant": "%d/%d n=%d" % (b.who[0], b.who[1],
                                                          b.n),
                                 "holds": inside, "permits": b.permits})
    return count, examples


def count_overlaps(holds):
    """Pairs of holds that overlap and may not (see conflict), plus
    semaphore grants beyond capacity: (within the validity bounds of both,
    only beyond a bound, the worst examples)."""
    holds = sorted(holds, key=lambda h: h.out_t)
    within, examples = over_capacity(holds)
    beyond = 0
    for i, a in enumerate(holds):
        a_safe = a.safe_end()
        for b in holds[i + 1:]:
            if b.out_t >= a.end:
                break
            if not conflict(a, b):
                continue
            b_safe = b.safe_end()
            if b.out_t < a_safe and b.out_t < b_safe:
                within += 1
                if len(examples) < 5:
                    examples.append({
                        "first": "%d/%d n=%d" % (a.who[0], a.who[1], a.n),
                        "second": "%d/%d n=%d" % (b.who[0], b.who[1], b.n),
                        "overlap_ms": round((min(a_safe, b_safe) - b.out_t)
                                            / 1e6, 3)})
            else:
                beyond += 1
    return within, beyond, examples


def granted_later(a, b):
    """Whether A was granted (or gave up) after B was granted.  Where two
    holds may begin together (a semaphore, readers), a hand-off's waiter
    returns from acquire later than a caller granted directly after it,
    so the server's order, the fence, decides when both have one."""
    together = a.permits > 0 or a.mode == "s" or b.mode == "s"
    if together and a.outcome == GRANT and a.fence and b.fence:
        return a.fence > b.fence
    return a.out_t > b.out_t


def count_inversions(acqs, stops, globals_):
    """Waiter A was surely queued (its 'queued' probe) before waiter B
    asked, both were FIFO and alive throughout their waits (no SIGKILL, no
    SIGSTOP other than a short one, no error, no queue-losing fault), and
    B was granted while A still waited."""
    def alive(a):
        if a.out_t is None or a.outcome == ERROR or not a.fifo:
            return False
        for s, e, cls in stops.get(a.who[0], ()):
            if cls != "short" and s < a.out_t and e > a.ask:
                return False
        return not overlaps_any(a.ask, a.out_t, globals_)

    cands = [a for a in acqs if alive(a)]
    firsts = sorted((a for a in cands if a.queued is not None),
                    key=lambda a: a.queued)
    seconds = sorted((b for b in cands if b.outcome == GRANT),
                     key=lambda b: b.ask)
    qs = [a.queued for a in firsts]
    inversions, examples = 0, []
    active, k = [], 0
    for b in seconds:
        while k < len(firsts) and qs[k] < b.ask:
            active.append(firsts[k])
            k += 1
        # A's wait must still be going on when B asks.
        active = [a for a in active if a.out_t > b.ask]
        for a in active:
            if a.who != b.who and granted_later(a, b):
                inversions += 1
                if len(examples) < 5:
                    examples.append({
                        "ahead": "%d/%d n=%d" % (a.who[0], a.who[1], a.n),
                        "overtaken_by": "%d/%d n=%d" % (b.who[0], b.who[1],
                                                        b.n),
                        "ahead_outcome": a.outcome})
    return inversions, examples


def ticket_inversions(acqs):
    """For a run in which the queue never drains (the flood, behind a gate):
    grants must come in ticket order."""
    grants = sorted((a for a in acqs if a.outcome == GRANT and a.ticket > 0),
                    key=lambda a: a.out_t)
    worst, inv = 0, 0
    for a in grants:
        if a.ticket < worst:
            inv += 1
        worst = max(worst, a.ticket)
    return inv


def counter_figures(waiters, kill_pids, final, fenced):
    """Lost updates on a counter updated read-then-write: compares the
    writes that surely landed (and their values) with the final value.
    A write whose reply never came (an error, or the writer was killed
    after sending it) may or may not have landed: it is ambiguous."""
    confirmed, ambiguous = [], 0
    sent_ev = "fclaim" if fenced else "write-sent"
    for w in waiters.values():
        sent = set()
        for t, ev, f in w.events:
            n = f.get("n")
            if ev == sent_ev:
                sent.add(n)
            elif fenced and ev == "fwrite":
                sent.discard(n)
                if f.get("ok") == "1":
                    confirmed.append(int(f.get("v", -1)))
                elif f.get("ok") == "-1":
                    ambiguous += 1
            elif not fenced and ev == "write":
                sent.discard(n)
                confirmed.append(int(f.get("v", -1)))
            elif not fenced and ev == "write-failed":
                sent.discard(n)
                ambiguous += 1
        if w.pid in kill_pids:
            ambiguous += len(sent)
    if final is None:
        return None
    dup = len(confirmed) - len(set(confirmed))
    return {"confirmed": len(confirmed), "ambiguous": ambiguous,
            "final": final, "lost": max(len(confirmed) - final, dup, 0),
            "phantom": max(final - len(confirmed) - ambiguous, 0)}


def ghost_grants(waiters, holders_path):
    """Tokens that held the lock after their request was resolved: a
    request that failed PENDING is resolved by its client's next completed
    call (or by fairlock_free after "end").  Returns (count, ms held)."""
    if not holders_path or not os.path.exists(holders_path):
        return 0, 0.0
    resolved_at = {}
    for w in waiters.values():
        open_tokens = []
        for t, ev, f in w.events:
            if ev in ("error", "release") and f.get("state") == "PENDING":
                tok = f.get("token", "-")
                if tok != "-" and tok not in open_tokens:
                    open_tokens.append(tok)
                continue
            done = ev in ("queued", "grant", "timeout") or (
                ev == "error" and f.get("state") != "PENDING") or (
                ev == "release" and f.get("rc") in ("FAIRLOCK_OK",
                                                    "FAIRLOCK_NOTOWNED"))
            if ev == "end":
                done, t = True, t + 500 * 1000000
            if done:
                for tok in open_tokens:
                    resolved_at.setdefault(tok, t)
                open_tokens = []
    samples = []
    with open(holders_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                samples.append((int(parts[0]), parts[1]))
    ghosts, held = set(), 0.0
    for i, (t, tok) in enumerate(samples):
        r = resolved_at.get(tok)
        if r is not None and t > r:
            ghosts.add(tok)
            end = samples[i + 1][0] if i + 1 < len(samples) else t
            held += (end - t) / 1e6
    return len(ghosts), round(held, 1)


def check(history_paths, faults_path=None, counter=None, fenced=None,
          ticket_order=False, holders_path=None):
    waiters, starts = load_histories(history_paths)
    faults = load_faults(faults_path)
    kill_t = {}
    hung = set()
    for t, kind, f in faults:
        if kind in ("kill", "hung"):
            kill_t.setdefault(int(f.get("pid", 0)), t)
            if kind == "hung":
                hung.add(int(f.get("pid", 0)))
    stops = stop_intervals(faults)
    globals_ = global_intervals(faults)
    acqs = []
    for w in waiters.values():
        build_acqs(w, kill_t.get(w.pid))
        acqs.extend(w.acqs)

    grants = [a for a in acqs if a.outcome == GRANT]
    within, beyond, overlap_examples = count_overlaps(grants)
    inversions, inversion_examples = count_inversions(acqs, stops, globals_)

    # A waiter is lost when its call never returned although nobody killed
    # it as a fault (a process the driver had to kill as hung counts).
    lost, crashed = [], []
    for w in waiters.values():
        died = w.pid in kill_t and w.pid not in hung
        if w.acqs and w.acqs[-1].outcome is None and not died:
            lost.append("%d/%d n=%d" % (w.pid, w.tid, w.acqs[-1].n))
        if not w.ended and w.pid not in kill_t:
            crashed.append("%d/%d" % (w.pid, w.tid))

    # Unknown outcomes: a call failed with the handle left PENDING.  It is
    # resolved when the same waiter later completes a call, or ends (where
    # fairlock_free resolves it; the keys-left check vouches for that).
    unknown = resolved = 0
    for w in waiters.values():
        pending = 0
        for t, ev, f in w.events:
            done = (ev in ("grant", "timeout", "end") or
                    (ev == "error" and f.get("state") != "PENDING") or
                    (ev == "release" and f.get("rc") in
                     ("FAIRLOCK_OK", "FAIRLOCK_NOTOWNED")))
            if done:
                resolved += pending
                pending = 0
            if f.get("state") == "PENDING" and ev in ("error", "release"):
                unknown += 1
                pending += 1

    overruns = [(a.out_t - a.ask) / 1e6 - a.timeout_ms for a in acqs
                if a.out_t is not None and a.timeout_ms is not None
                and a.timeout_ms >= 0]
    release_ms = [int(w_ev[2].get("ms", 0)) for w in waiters.values()
                  for w_ev in w.events if w_ev[1] == "release"]
    expired = [a for a in grants if a.vu_grant not in (None, -1)
               and a.vu_grant < a.out_t]
    # A grant the server did not back: the lock key was not ours although
    # our validity bound had not passed.
    false_grants = [a for a in grants if a.verify == 0 and not (
        a.vu_grant not in (None, -1) and a.vu_grant < a.out_t)]

    # Takeover after a holder was killed: from its death to the next grant.
    takeovers = []
    starts_sorted = sorted(a.out_t for a in grants)
    for a in grants:
        if a.killed:
            i = bisect.bisect_right(starts_sorted, a.end)
            if i < len(starts_sorted):
                takeovers.append((starts_sorted[i] - a.end) / 1e6)

    fault_count = sum(1 for _, kind, _ in faults
                      if kind not in ("cont", "global-end", "hung", "note"))
    rejects = sum(1 for w in waiters.values() for _, ev, f in w.events
                  if ev in ("fclaim", "fwrite") and f.get("ok") == "0")
    fig = {
        "processes": len(starts),
        "waiters": len(waiters),
        "asks": len(acqs),
        "acquisitions": len(grants),
        "timeouts": sum(1 for a in acqs if a.outcome == TIMEOUT),
        "errors": sum(1 for a in acqs if a.outcome == ERROR),
        "faults": fault_count,
        "overlaps": within,
        "overlaps_beyond_lease": beyond,
        "overlap_examples": overlap_examples,
        "inversions": inversions,
        "inversion_examples": inversion_examples,
        "lost_waiters": len(lost),
        "lost_examples": lost[:5],
        "crashed": len(crashed),
        "unknown_outcomes": unknown,
        "resolved_outcomes": resolved,
        "max_acquire_overrun_ms": round(max(overruns), 1) if overruns else 0,
        "max_release_ms": max(release_ms) if release_ms else 0,
        "expired_grants": len(expired),
        "false_grants": len(false_grants),
        "notowned_releases": sum(1 for a in grants for r in a.release_rc
                                 if r[1] == "FAIRLOCK_NOTOWNED"),
        "takeover_ms": sorted(round(x, 1) for x in takeovers),
        "fenced_rejects": rejects,
        "skipped_writes": sum(1 for w in waiters.values()
                              for _, ev, _ in w.events if ev == "skip"),
    }
    kill_pids = set(kill_t)
    fig["counter"] = counter_figures(waiters, kill_pids, counter, False)
    fig["fenced"] = counter_figures(waiters, kill_pids, fenced, True)
    fig["ghost_grants"], fig["ghost_ms"] = ghost_grants(waiters,
                                                        holders_path)
    fig["lost_updates"] = fig["counter"]["lost"] if fig["counter"] else 0
    fig["fenced_lost_updates"] = fig["fenced"]["lost"] if fig["fenced"] else 0
    if ticket_order:
        fig["ticket_inversions"] = ticket_inversions(acqs)
    fig["_acqs"] = acqs
    return fig


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--counter", type=int)
    ap.add_argument("--fenced", type=int)
    args = ap.parse_args(argv)
    fig = check(sorted(glob.glob(os.path.join(args.dir, "*.hist"))),
                os.path.join(args.dir, "faults.log"), args.counter,
                args.fenced, holders_path=os.path.join(args.dir,
                                                       "holders.log"))
    fig.pop("_acqs")
    json.dump(fig, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
