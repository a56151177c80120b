"""How long the terminal review takes from a key press to the decision stored in the study file.

Builds a throw-away study (the seed codebook, one generated interview of N respondent turns,
three suggestions per turn inserted with SQL), then drives the real Textual app with its pilot:
for each key ('a' accept, 'r' reject, 'n' no code) it times from the
press until a second connection sees the new row in ``coding_history``. It also times
``review.decide`` alone, and captures the review screen of the real ``coder review`` command in
tmux (capture-pane) to evaluation/review_screen.txt.

    .venv/bin/python evaluation/bench_review.py [--decisions 200] [--screen evaluation/review_screen.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from coder import Study, review  # noqa: E402
from coder.store.db import now  # noqa: E402
from coder.tui import ReviewApp  # noqa: E402

CODEBOOK = ROOT / "codebook" / "sme_internationalization.yaml"
ANSWERS = [
    "Our home market is small, so after five years we simply had nowhere left to grow.",
    "MATRADE took us to a trade fair in Dubai and that is where we met our first distributor.",
    "Honestly the bank loans were the hardest part; the grants take months to come through.",
    "My cousin in Singapore introduced us to the buyers, family ties matter a lot here.",
    "We follow our multinational customers wherever they open a new plant.",
    "Standards and certification abroad cost us more than the shipping itself.",
]
CODES = [  # plausible suggestions for each answer (seed codebook ids), best first
    ["trig-domestic", "ext-fma", "trig-demand"],
    ["net-institutions", "ops-modes", "net-business"],
    ["barr-barriers", "barr-challenges", "ext-gov"],
    ["net-personal", "net-business", "ops-markets"],
    ["trig-global", "net-business", "ops-modes"],
    ["barr-challenges", "barr-barriers", "int-org"],
]


def build(path: Path, turns: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    transcript = path.parent / "p01.txt"
    lines = []
    for i in range(turns):
        lines.append(f"Interviewer: Question {i + 1}: what happened next?")
        lines.append(f"Respondent: {ANSWERS[i % len(ANSWERS)]} (turn {i + 1})")
    transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")
    study = Study.create(path, codebook=CODEBOOK)
    study.import_transcripts([transcript])
    rows = []
    for k, item in enumerate(review.queue(study, "nobody", order="document")):
        scores = sorted((rng.uniform(0.3, 0.95) for _ in range(3)), reverse=True)
        for rank, (code, score) in enumerate(zip(CODES[k % len(CODES)], scores), start=1):
            rows.append((item.segment_id, code, round(score, 3), rank, "codebook", 0.5, 1,
                         study.codebook_version, now()))
    with study.db.transaction() as conn:
        conn.executemany("INSERT INTO suggestions (segment_id, code_id, score, rank, source,"
                         " threshold, model_version, codebook_version, created_at)"
                         " VALUES (?,?,?,?,?,?,?,?,?)", rows)
    study.close()
    return path


async def drive(path: Path, decisions: int, coder: str = "alice"
                ) -> tuple[list[float], list[float]]:
    """Per decision: ms from the key event entering the app to its row being readable by another
    connection, and ms for the pilot's whole press (which also waits for idle and repaint)."""
    watcher = sqlite3.connect(str(path))
    count = lambda: watcher.execute("SELECT COUNT(*) FROM coding_history").fetchall()[0][0]  # noqa: E731
    keys = ["a", "r", "n"]
    stored: list[float] = []
    pressed: list[float] = []
    app = ReviewApp(path, coder, order="document")
    async with app.run_test(size=(110, 34)) as pilot:
        await pilot.pause()
        for i in range(decisions):
            if app.item is None:
                break
            key = keys[i % len(keys)]
            before = count()
            if i % 2:  # the pilot's own press: includes its waits for idle and the repaint
                t0 = time.perf_counter()
                await pilot.press(key)
                while count() == before:
                    await asyncio.sleep(0)
                pressed.append((time.perf_counter() - t0) * 1000)
            else:  # a bare key event into the app, as the terminal driver posts it
                event = events.Key(key, key)
                event.set_sender(app)
                t0 = time.perf_counter()
                app._driver.send_message(event)
                while count() == before:
                    await asyncio.sleep(0)
                stored.append((time.perf_counter() - t0) * 1000)
                await pilot.pause()
        await pilot.press("q")
    app.study.close()  # as `coder review` does when the app exits
    watcher.close()
    return stored, pressed


def drive_tmux(path: Path, decisions: int) -> list[float]:
    """The real command in tmux: ms from ``tmux send-keys`` to the row in the study file."""
    if not shutil.which("tmux"):
        return []
    exe = Path(sys.executable).parent / "coder"
    session = f"coder-bench-keys-{int(time.time())}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "110", "-y", "34",
                    f"{exe} review {path} --coder dave --order document"], check=True)
    watcher = sqlite3.connect(str(path))
    count = lambda: watcher.execute("SELECT COUNT(*) FROM coding_history").fetchall()[0][0]  # noqa: E731
    times = []
    try:
        time.sleep(4)
        for i in range(decisions):
            before = count()
            t0 = time.perf_counter()
            subprocess.run(["tmux", "send-keys", "-t", session, "n" if i % 2 else "a"], check=True)
            end = t0 + 5
            while count() == before and time.perf_counter() < end:
                time.sleep(0.0005)
            times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.05)  # a (very fast) person: let the screen repaint
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=False)
        time.sleep(0.5)
        subprocess.run(["tmux", "kill-session", "-t", session], check=False,
                       capture_output=True)
        watcher.close()
    return times


def time_decide(path: Path, n: int) -> list[float]:
    study = Study(path)
    items = review.queue(study, "bob", order="document")[:n]
    out = []
    for item in items:
        t0 = time.perf_counter()
        review.decide(study, "bob", item.segment_id, None, "no_code")
        out.append((time.perf_counter() - t0) * 1000)
    study.close()
    return out


def capture_screen(path: Path, out: Path) -> str | None:
    """The real command in a 100x30 tmux pane, captured as text after the first key."""
    if not shutil.which("tmux"):
        return None
    exe = Path(sys.executable).parent / "coder"
    session = f"coder-bench-{int(time.time())}"
    cmd = f"{exe} review {path} --coder carol --order uncertain"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmd],
                   check=True)
    try:
        time.sleep(4)
        subprocess.run(["tmux", "send-keys", "-t", session, "r"], check=True)
        time.sleep(1)
        text = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], check=True,
                              capture_output=True, text=True).stdout
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=False)
        time.sleep(1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False,
                       capture_output=True)
    text = "\n".join(line.rstrip() for line in text.splitlines()).rstrip() + "\n"
    out.write_text(text, encoding="utf-8")
    return text


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=200)
    ap.add_argument("--screen", type=Path, default=ROOT / "evaluation" / "review_screen.txt")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coder-bench-review-"))
    try:
        path = build(tmp / "bench.db", args.decisions + 20)
        stored, pressed = asyncio.run(drive(path, args.decisions))
        lib = time_decide(path, args.decisions)
        real = drive_tmux(path, min(args.decisions, 100))
        for label, t in (("key event -> decision stored (Textual app, headless)", stored),
                         ("pilot.press -> stored (incl. pilot idle waits + repaint)", pressed),
                         ("tmux send-keys -> stored (real `coder review` in a pty)", real)):
            if t:
                print(f"{label}, {len(t)} decisions: p50 {statistics.median(t):.1f} ms, "
                      f"p95 {pct(t, 0.95):.1f} ms, max {max(t):.1f} ms")
        print(f"review.decide alone ({len(lib)} decisions): p50 {statistics.median(lib):.2f} ms, "
              f"p95 {pct(lib, 0.95):.2f} ms")
        text = capture_screen(path, args.screen)
        if text is None:
            print("tmux not found: no screen capture written")
        else:
            print(f"screen capture (tmux capture-pane, 100x30) written to {args.screen}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
