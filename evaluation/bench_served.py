"""A served study under load: simulated coders over HTTP while other processes use the file.

Builds the demo study with `coder demo` in a temporary folder, starts the real `coder serve` on
a free loopback port, and for --seconds runs --coders simulated coders (threads speaking plain
HTTP, standard library only) through the review page's JSON API: each signs in (`coder users
add` made them users with a one-time password; the first sign-in replaces it with their own, as
a person would; --no-signin: the old page without users, where each chooses a name on /start),
takes the CSRF token from the page, then fetches a segment (/api/next, or /api/segment
once its queue is empty) and decides it as fast as the server answers: accept or reject a
suggestion, both at once, add a code, or "no code", with an occasional /api/undo. Meanwhile
other processes run `coder status` every 2 s, `coder codes import` of a small fresh codings CSV
in a loop, and `coder train` twice.

Every coder keeps the state its decisions should leave (replaying the library's rules for
no_code, unchanged decisions and undo). After the server stops, a fresh process opens the study
with sqlite3 and checks that each coder's acknowledged decisions, and every import that said
"Imported", are there, and that `PRAGMA integrity_check` is ok; a coding stored under one
coder that another coder made is counted as misattributed. Prints a Markdown table:
decisions/s, p50/p95 of /api/decide, HTTP errors by status, lost and misattributed decisions,
lost imports.
Exits 1 if anything was lost, is unexpected or corrupt, or a request or command failed.

    .venv/bin/python evaluation/bench_served.py [--seconds 60] [--coders 8] [--dir .] [--keep]
                                                [--no-signin]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

CODER = Path(sys.executable).parent / "coder"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
POSITIVE = ("confirmed", "added", "auto")
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')
SUGGESTION = re.compile(r'<li class="suggestion[^"]*" data-code-id="([^"]*)" data-state="([^"]*)"')
SERVING = re.compile(r"Serving .* at http://127\.0\.0\.1:(\d+)/")
ORDERS = ("uncertain", "document", "score", "random")
IMPORTER = "importer"
IMPORT_ROWS = 3


# -- set-up -----------------------------------------------------------------------------------
def build_study(folder: Path) -> Path:
    """The bundled demo study, built by the CLI as a user would; returns its study file."""
    out = folder / "demo"
    done = subprocess.run([str(CODER), "demo", "--out", str(out)], env=ENV,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"coder demo failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return out / "study.db"


def study_facts(path: Path) -> tuple[list[str], list[tuple[int, str, int]]]:
    """Code ids of the current codebook and the participant segments (id, document, position)."""
    conn = sqlite3.connect(str(path))
    try:
        codes = [r[0] for r in conn.execute(
            "SELECT id FROM codes WHERE codebook_version=(SELECT MAX(version) FROM "
            "codebook_versions) ORDER BY position")]
        segments = [tuple(r) for r in conn.execute(
            "SELECT segment_id, document, position FROM segment_view WHERE role='participant' "
            "ORDER BY document, position")]
    finally:
        conn.close()
    return codes, segments


def start_server(path: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """`coder serve STUDY --port 0` on 127.0.0.1; the process and the port it printed."""
    err = open(log, "w", encoding="utf-8")  # the server's own descriptor outlives ours
    proc = subprocess.Popen([str(CODER), "serve", str(path), "--port", "0", "--host",
                             "127.0.0.1"], env=ENV, stdout=subprocess.PIPE, stderr=err,
                            text=True)
    err.close()
    found: list[int] = []

    def read() -> None:  # keep draining stdout so the server never blocks on a full pipe
        for line in proc.stdout:
            m = SERVING.search(line)
            if m and not found:
                found.append(int(m.group(1)))

    threading.Thread(target=read, daemon=True).start()
    end = time.monotonic() + 60
    while not found:
        if proc.poll() is not None or time.monotonic() > end:
            stop_server(proc)
            raise SystemExit(f"coder serve did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, found[0]


def add_users(study: Path, names: list[str]) -> dict[str, str]:
    """`coder users add STUDY NAME` for each simulated coder: their one-time passwords."""
    out = {}
    for name in names:
        done = subprocess.run([str(CODER), "users", "add", str(study), name], env=ENV,
                              capture_output=True, text=True)
        m = re.search(r"one-time password: (\S+)", done.stdout)
        if done.returncode or not m:
            raise SystemExit(f"coder users add failed:\n{done.stdout}{done.stderr}")
        out[name] = m.group(1)
    return out


def stop_server(proc: subprocess.Popen) -> int | None:
    """Terminate (uvicorn shuts down cleanly on SIGTERM), then kill if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


# -- what a coder's decisions should leave in the study --------------------------------------
@dataclass
class Expected:
    """One coder's codings as the library's rules make them: segment -> {code or '': decision},
    and the undo stack (the segment and its codings before each recorded decision)."""

    state: dict[int, dict[str, str]] = field(default_factory=dict)
    stack: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def decide(self, segment: int, code: str, decision: str) -> None:
        before = dict(self.state.get(segment, {}))
        if before.get(code) == decision and not any(
                (decision == "no_code" and d in POSITIVE) or (decision in POSITIVE and k == "")
                for k, d in before.items()):
            return  # unchanged: review.decide records nothing, so undo skips it
        after = dict(before)
        if decision == "no_code":
            after = {k: d for k, d in after.items() if k == "" or d not in POSITIVE}
        elif decision in POSITIVE:
            after.pop("", None)
        after[code] = decision
        self.state[segment] = after
        self.stack.append((segment, before))

    def undo(self) -> int | None:
        if not self.stack:
            return None
        segment, before = self.stack.pop()
        self.state[segment] = before
        return segment

    def rows(self) -> list[list]:
        return [[s, k, d] for s, codes in self.state.items() for k, d in codes.items()]


# -- one simulated coder ---------------------------------------------------------------------
@dataclass
class CoderRun:
    """What one simulated coder did and saw."""

    name: str
    decide_ms: list[float] = field(default_factory=list)
    fetch_ms: list[float] = field(default_factory=list)
    decisions: int = 0
    requests: int = 0
    undos: int = 0
    ack_mismatches: int = 0
    errors: Counter = field(default_factory=Counter)
    error_texts: list[str] = field(default_factory=list)
    expected: Expected = field(default_factory=Expected)
    uncertain: set[int] = field(default_factory=set)


class Session:
    """A browser's worth of HTTP: one keep-alive connection to 127.0.0.1 and its cookies."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: dict | None = None, *, form: bool = False,
                csrf: str | None = None) -> tuple[int, dict, str, float]:
        """Status, headers, body text and milliseconds from sending to the whole answer."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = (urlencode(body) if form else json.dumps(body)).encode()
            headers["Content-Type"] = ("application/x-www-form-urlencoded" if form
                                       else "application/json")
        if csrf:
            headers["X-CSRF-Token"] = csrf
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                text = res.read().decode("utf-8", "replace")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if method != "GET" or attempt == 2:  # a POST may have been stored: never resend
                    raise
        ms = (time.perf_counter() - t0) * 1000
        for value in res.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return res.status, dict(res.headers), text, ms


def choose(rng: random.Random, suggestions: list[tuple[str, str]], codes: list[str]
           ) -> list[dict]:
    """A plausible mix: accept, reject, accept one and reject another, add a code, no code."""
    pending = [c for c, state in suggestions if not state] or [c for c, _ in suggestions]
    r = rng.random()
    if pending and r < 0.40:
        return [{"code_id": pending[0], "decision": "confirmed"}]
    if pending and r < 0.62:
        return [{"code_id": rng.choice(pending), "decision": "rejected"}]
    if len(pending) >= 2 and r < 0.72:
        a, b = rng.sample(pending, 2)
        return [{"code_id": a, "decision": "confirmed"}, {"code_id": b, "decision": "rejected"}]
    if r < 0.82:
        return [{"code_id": rng.choice(codes), "decision": "added"}]
    return [{"code_id": None, "decision": "no_code"}]


def fail(run: CoderRun, what: str, status: int | str, text: str) -> None:
    run.errors[status] += 1
    if len(run.error_texts) < 5:
        run.error_texts.append(f"{run.name} {what}: {status} {text[:300]}")


def sign_in(run: CoderRun, web: Session, password: str) -> str | None:
    """Sign in with the one-time password and choose one's own; the session's CSRF token."""
    _, _, page, _ = web.request("GET", "/signin")
    csrf = CSRF.search(page).group(1)
    status, headers, text, _ = web.request("POST", "/signin", {
        "name": run.name, "password": password, "csrf": csrf}, form=True, csrf=csrf)
    if status != 303 or "coder_session" not in web.cookies:
        fail(run, "POST /signin", status, text)
        return None
    _, _, page, _ = web.request("GET", "/password")
    csrf = CSRF.search(page).group(1)
    own = f"{run.name}'s own password"
    status, _, text, _ = web.request("POST", "/password", {
        "current": password, "new": own, "repeat": own, "csrf": csrf}, form=True, csrf=csrf)
    if status != 303:
        fail(run, "POST /password", status, text)
        return None
    _, _, page, _ = web.request("GET", "/start")
    return CSRF.search(page).group(1)


def simulate(run: CoderRun, port: int, deadline: float, codes: list[str], segments: list[int],
             seed: int, think: float, password: str | None = None) -> None:
    """Decide segments as `run.name` until the deadline, recording latencies and acks."""
    rng = random.Random(seed)
    order = ORDERS[seed % len(ORDERS)]
    web = Session(port)
    if password is not None:
        csrf = sign_in(run, web, password)
        if csrf is None:
            return
    else:
        status, _, page, _ = web.request("GET", "/start")
        csrf = CSRF.search(page).group(1)
        status, _, text, _ = web.request("POST", "/start", {"name": run.name, "csrf": csrf},
                                         form=True, csrf=csrf)
        if status != 303 or web.cookies.get("coder_name") != run.name:
            fail(run, "POST /start", status, text)
            return
    exhausted, can_undo = False, True
    while time.monotonic() < deadline:
        segment = None
        try:
            if not exhausted:
                status, _, text, ms = web.request("GET", "/api/next?" + urlencode({"order": order}))
            else:
                status, _, text, ms = web.request(
                    "GET", f"/api/segment/{rng.choice(segments)}?order={order}")
            run.requests += 1
            if status != 200:
                fail(run, "GET next", status, text)
                continue
            run.fetch_ms.append(ms)
            card = json.loads(text)
            segment = card["segment_id"]
            if segment is None:
                exhausted = True  # the queue is done: revisit segments, as a coder revising
                continue
            entries = choose(rng, SUGGESTION.findall(card["html"]), codes)
            if think:
                time.sleep(rng.uniform(0, 2 * think))
            body = {"segment_id": segment, "order": order, "seconds": "1.0"}
            body.update(entries[0] if len(entries) == 1 else {"decisions": entries})
            status, _, text, ms = web.request("POST", "/api/decide", body, csrf=csrf)
            run.requests += 1
            if status != 200:
                fail(run, "POST /api/decide", status, text)
                run.uncertain.add(segment)
                can_undo = False  # the server's undo stack may now differ from ours
                continue
            run.decide_ms.append(ms)
            ack = json.loads(text)
            for e in entries:
                run.expected.decide(segment, e["code_id"] or "", e["decision"])
            run.decisions += len(entries)
            states = dict(SUGGESTION.findall(ack["html"]))
            mine = run.expected.state.get(segment, {})
            if ack.get("segment_id") != segment or ack.get("stored") != len(entries) or any(
                    states.get(e["code_id"], mine.get(e["code_id"])) != mine.get(e["code_id"])
                    for e in entries if e["code_id"]) or (
                    ("decision-no_code" in ack["html"]) != ("" in mine)):
                run.ack_mismatches += 1
            if can_undo and rng.random() < 0.06:
                want = run.expected.stack[-1][0] if run.expected.stack else None
                status, _, text, ms = web.request("POST", "/api/undo", {"order": order},
                                                  csrf=csrf)
                run.requests += 1
                if status != 200:
                    fail(run, "POST /api/undo", status, text)
                    can_undo = False
                    if want is not None:
                        run.uncertain.add(want)
                    continue
                got = json.loads(text)
                run.expected.undo()
                run.undos += 1
                if got.get("segment_id") != want or (want is None) != bool(got.get("nothing")):
                    run.ack_mismatches += 1
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            fail(run, "request", type(e).__name__, str(e))
            can_undo = False
            if segment is not None:
                run.uncertain.add(segment)
            cookies = web.cookies   # the same browser: its name or its session cookie
            web = Session(port)
            web.cookies.update(cookies)


# -- the other processes ---------------------------------------------------------------------
@dataclass
class Command:
    """One CLI run beside the server."""

    name: str
    returncode: int
    seconds: float
    output: str


def run_cli(name: str, argv: list[str]) -> Command:
    t0 = time.perf_counter()
    try:
        done = subprocess.run([str(CODER), *argv], env=ENV, capture_output=True, text=True,
                              timeout=600)
        rc, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = -9, f"timed out after {e.timeout} s"
    return Command(name, rc, time.perf_counter() - t0, out)


def status_loop(study: Path, deadline: float, log: list[Command]) -> None:
    """`coder status STUDY` every ~2 s."""
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        log.append(run_cli("status", ["status", str(study)]))
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))


def import_loop(study: Path, folder: Path, deadline: float, keys: list[tuple[str, int, str]],
                log: list[Command], imported: list[list[list]]) -> None:
    """`coder codes import` of a new small CSV each round; rows never repeat a (segment, code),
    so every successful import must still be in the study at the end."""
    decisions = ("confirmed", "rejected", "added")
    i = 0
    while time.monotonic() < deadline and (i + 1) * IMPORT_ROWS <= len(keys):
        rows = [[doc, pos, code, decisions[(i + j) % 3], f"bench import {i}"]
                for j, (doc, pos, code) in enumerate(keys[i * IMPORT_ROWS:(i + 1) * IMPORT_ROWS])]
        path = folder / f"import-{i:03d}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["document", "segment", "code", "decision", "memo"])
            w.writerows(rows)
        cmd = run_cli("codes import", ["codes", "import", str(study), str(path),
                                       "--coder", IMPORTER])
        log.append(cmd)
        if cmd.returncode == 0 and f"Imported {IMPORT_ROWS} coding(s)" in cmd.output:
            imported.append(rows)
        i += 1
        time.sleep(0.5)


def train_loop(study: Path, start: float, seconds: float, log: list[Command]) -> None:
    """`coder train STUDY` twice: a tenth and a little over half of the way through."""
    for at in (0.1, 0.55):
        time.sleep(max(0.0, start + at * seconds - time.monotonic()))
        log.append(run_cli("train", ["train", str(study)]))


# -- the check, in a fresh process -----------------------------------------------------------
def verify(study: Path, expected_file: Path) -> dict:
    """Compare the study file with what the coders and imports were acknowledged for."""
    want = json.loads(expected_file.read_text(encoding="utf-8"))
    conn = sqlite3.connect(str(study))
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        rows = conn.execute(
            "SELECT o.name, k.segment_id, COALESCE(k.code_id, ''), k.decision, k.memo, "
            "v.document, v.position FROM codings k JOIN coders o ON o.id = k.coder_id "
            "JOIN segment_view v ON v.segment_id = k.segment_id").fetchall()
    finally:
        conn.close()
    have: dict[str, dict[tuple[int, str], str]] = {}
    for name, seg, code, decision, _, _, _ in rows:
        have.setdefault(name, {})[(seg, code)] = decision
    lost, unexpected, misattributed = 0, 0, 0
    expects = {name: {(s, c): d for s, c, d in info["rows"]}
               for name, info in want["coders"].items()}
    for name, info in want["coders"].items():
        skip = set(info["uncertain"])
        mine = {k: d for k, d in have.get(name, {}).items() if k[0] not in skip}
        expect = {k: d for k, d in expects[name].items() if k[0] not in skip}
        lost += sum(1 for k, d in expect.items() if mine.get(k) != d)
        strays = [(k, d) for k, d in mine.items() if k not in expect]
        unexpected += len(strays)
        misattributed += sum(1 for k, d in strays if any(
            e.get(k) == d for other, e in expects.items() if other != name))
    stored = {(doc, pos, code, decision, memo) for name, _, code, decision, memo, doc, pos
              in rows if name == IMPORTER}
    lost_imports = sum(1 for batch in want["imports"]
                       if any(tuple(r) not in stored for r in batch))
    return {"lost": lost, "unexpected": unexpected, "misattributed": misattributed,
            "lost_imports": lost_imports,
            "integrity": "; ".join(r[0] for r in integrity)}


# -- the report ------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def commands_cell(log: list[Command], name: str) -> str:
    runs = [c for c in log if c.name == name]
    bad = [c for c in runs if c.returncode]
    mean = sum(c.seconds for c in runs) / len(runs) if runs else 0.0
    return f"{len(runs)} runs, {len(bad)} failed (mean {mean:.1f} s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--coders", type=int, default=8)
    parser.add_argument("--dir", default=".", help="where the temporary study folder goes "
                        "(a real disk: every decision is an fsync)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a coder pauses before each decision (0: flat out)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--no-signin", dest="signin", action="store_false",
                        help="the page without users: each coder chooses a name on /start")
    parser.add_argument("--verify", nargs=2, type=Path, metavar=("STUDY", "EXPECTED"),
                        help=argparse.SUPPRESS)  # the fresh process of the final check
    args = parser.parse_args()
    if args.verify:
        print(json.dumps(verify(*args.verify)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="coder-bench-served-", dir=args.dir))
    server = None
    try:
        t0 = time.perf_counter()
        study = build_study(work)
        codes, segments = study_facts(study)
        print(f"study: {study} ({len(segments)} participant segments, {len(codes)} codes), "
              f"built in {time.perf_counter() - t0:.0f} s")
        keys = [(doc, pos, code) for _, doc, pos in segments for code in codes]
        random.Random(1).shuffle(keys)

        runs = [CoderRun(f"sim{i + 1}") for i in range(args.coders)]
        passwords = add_users(study, [r.name for r in runs]) if args.signin else {}
        server, port = start_server(study, work / "server.log")
        print(f"coder serve on 127.0.0.1:{port}; {args.coders} coders for {args.seconds:.0f} s"
              + (", each signed in" if args.signin else ", no sign-in"))
        log: list[Command] = []
        imported: list[list[list]] = []
        start = time.monotonic()
        deadline = start + args.seconds
        seg_ids = [s for s, _, _ in segments]
        threads = [threading.Thread(target=simulate, args=(r, port, deadline, codes, seg_ids,
                                                           i, args.think,
                                                           passwords.get(r.name)))
                   for i, r in enumerate(runs)]
        threads += [threading.Thread(target=status_loop, args=(study, deadline, log)),
                    threading.Thread(target=import_loop, args=(study, work, deadline, keys,
                                                               log, imported)),
                    threading.Thread(target=train_loop, args=(study, start, args.seconds, log))]
        for t in threads:
            t.start()
        for t in threads[:args.coders]:
            t.join()
        elapsed = time.monotonic() - start
        for t in threads[args.coders:]:
            t.join()
        rc = stop_server(server)
        server = None

        expected = work / "expected.json"
        expected.write_text(json.dumps({
            "coders": {r.name: {"rows": r.expected.rows(), "uncertain": sorted(r.uncertain)}
                       for r in runs},
            "imports": imported}), encoding="utf-8")
        done = subprocess.run([sys.executable, __file__, "--verify", str(study), str(expected)],
                              env=ENV, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the check failed to run:\n{done.stderr[-2000:]}")
        check = json.loads(done.stdout)

        decide_ms = [x for r in runs for x in r.decide_ms]
        fetch_ms = [x for r in runs for x in r.fetch_ms]
        decisions = sum(r.decisions for r in runs)
        errors = sum((r.errors for r in runs), Counter())
        mismatches = sum(r.ack_mismatches for r in runs)
        uncertain = sum(len(r.uncertain) for r in runs)
        failed = [c for c in log if c.returncode]
        cells = [
            ("simulated coders", f"{args.coders} for {elapsed:.1f} s"
                                 + (", each signed in" if args.signin else ", no sign-in")),
            ("decisions acknowledged", f"{decisions} ({len(decide_ms)} requests, "
                                       f"{sum(r.undos for r in runs)} undos)"),
            ("decisions/s", f"{decisions / elapsed:.1f}"),
            ("/api/decide p50 / p95", f"{pct(decide_ms, .5):.1f} / {pct(decide_ms, .95):.1f} ms"),
            ("/api/decide max", f"{max(decide_ms, default=float('nan')):.1f} ms"),
            ("/api/next, /api/segment p95", f"{pct(fetch_ms, .95):.1f} ms"),
            ("HTTP errors", ", ".join(f"{k}: {v}" for k, v in sorted(errors.items(), key=str))
             or "0"),
            ("acks not matching the request", str(mismatches)),
            ("coder status", commands_cell(log, "status")),
            ("coder codes import", commands_cell(log, "codes import")),
            ("coder train", commands_cell(log, "train")),
            ("lost decisions", str(check["lost"])),
            ("unexpected codings", str(check["unexpected"])),
            ("misattributed (another coder's decision)", str(check["misattributed"])),
            ("segments not checked (after an error)", str(uncertain)),
            ("lost imports", f"{check['lost_imports']} of {len(imported)}"),
            ("integrity_check", check["integrity"]),
            ("server exit", str(rc)),
        ]
        print("\n| measure | value |\n|---|---:|")
        for k, v in cells:
            print(f"| {k} | {v} |")
        for r in runs:
            for t in r.error_texts:
                print("error:", t)
        for c in failed[:5]:
            print(f"failed: coder {c.name} (exit {c.returncode}): {c.output.strip()[-600:]}")
        tail = (work / "server.log").read_text(encoding="utf-8", errors="replace").strip()
        if tail:
            print("server stderr (last lines):\n" + "\n".join(tail.splitlines()[-15:]))
        bad = (check["lost"] or check["unexpected"] or check["misattributed"]
               or check["lost_imports"] or mismatches
               or errors or failed or check["integrity"] != "ok")
        return 1 if bad else 0
    finally:
        if server is not None:
            stop_server(server)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
