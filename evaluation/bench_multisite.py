"""A multi-site study end to end at 300 interviews (~30,000 segments), with the interactive
paths timed at that size (issue "Speed and scale", targets 2 and 3).

    python evaluation/bench_multisite.py ../shared/corpora/annomi-dev [--interviews 300]
        [--decisions 2000] [--results evaluation/RESULTS.md]

The interviews are made by resampling AnnoMI's documents (each: one conversation followed by
the first half of another, so no two are the same text); the corpus is read in place. Each step
runs as a user would run it, as its own `coder` process from cold (model load included):
import -> suggest -> a scripted review of N decisions (the experts' codes as the reviewer: the
right code confirmed or added, the best wrong suggestion rejected; in this process, through the
library the terminal and web faces call) -> train --suggest (retrain + re-suggest; train, then
suggest --recompute, are timed on a copy besides) -> freq -> agree
(the reviewer against the machine) -> report. Prints each step's seconds and peak RSS, the
total against the 5-minute / 2 GB targets, the study file's size, and the interactive
latencies: a terminal review key (decision stored, progress recounted), the web page's
decision answered with the next card, freq and agree, retrain + re-suggest.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import annomi_convert  # noqa: E402

from coder import Study  # noqa: E402
from coder.review import decisions, queue  # noqa: E402

CODER = [sys.executable, "-m", "coder"]


def make_interviews(corpus: Path, out: Path, n: int, seed: int = 0, distinct: bool = False):
    """n transcripts, each a conversation and half of another; and the reference code of each
    (document, segment position). ``distinct``: every turn ends with its interview's number, so
    no text repeats and every segment must be encoded (the worst case for suggest)."""
    docs = sorted((corpus / "transcripts").glob("*.txt"))
    codes: dict[tuple[str, int], str] = {}
    with open(corpus / "codes.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            codes[(r["doc_id"], int(r["turn_index"]))] = r["code"]
    rng = random.Random(seed)
    truth: dict[tuple[str, int], str] = {}
    used = set()
    paths = []
    for i in range(n):
        while True:
            a, b = rng.sample(range(len(docs)), 2)
            if (a, b) not in used:
                used.add((a, b))
                break
        la = docs[a].read_text(encoding="utf-8").splitlines()
        lb = docs[b].read_text(encoding="utf-8").splitlines()
        lb = lb[:max(1, len(lb) // 2)]
        name = f"site{i % 10:02d}_int{i:03d}"
        lines = []
        for doc, block in ((docs[a].stem, la), (docs[b].stem, lb)):
            for t, line in enumerate(block):
                lines.append(f"{line} ({i})" if distinct and ":" in line else line)
                code = codes.get((doc, t))
                if code:
                    truth[(name, len(lines))] = code
        p = out / f"{name}.txt"
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(p)
    return paths, truth


def step(label: str, args: list[str], rows: list, env: dict) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run(CODER + args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{label} failed:\n{r.stdout}\n{r.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: report it when this step raised it
    rss = peak / 1024 if peak > before or not rows else None
    rows.append((label, seconds, rss))
    print(f"  {label:<34} {seconds:7.1f} s" + (f"   peak RSS {rss:,.0f} MB" if rss else ""),
          flush=True)
    return seconds


def review(path: Path, truth: dict, n: int, coder: str = "alice") -> tuple[float, list[float]]:
    """The scripted review as the terminal makes it: the queue built once, then per key the
    decision stored and the progress recounted from the study (timed per key)."""
    from coder.review import progress

    study = Study(path)
    by_id = {c.id for c in study.codebook().codes}
    names = {r["segment_id"]: (r["document"], r["position"]) for r in
             study.db.query("SELECT segment_id, document, position FROM segment_view")}
    latencies: list[float] = []
    made = 0
    t_all = time.perf_counter()
    items = iter(queue(study, coder))
    for item in items:
        if made >= n:
            break
        want = truth.get(names[item.segment_id])
        t0 = time.perf_counter()
        if want not in by_id:
            decisions.decide(study, coder, item.segment_id, None, "no_code", source="bench")
        else:
            suggested = [s.code_id for s in item.suggestions]
            decisions.decide(study, coder, item.segment_id, want,
                             "confirmed" if want in suggested else "added", source="bench")
            wrong = [c for c in suggested if c != want]
            if wrong and made + 1 < n:
                made += 1
                decisions.decide(study, coder, item.segment_id, wrong[0], "rejected",
                                 source="bench")
        made += 1
        progress(study, coder)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - t_all
    study.close()
    return seconds, latencies


def web_round_trips(path: Path, n: int = 40, coder: str = "carol") -> list[float]:
    """The review page's JSON round trip, in process (no browser): a "no code" decision POSTed
    as the page sends it, answered with the next card."""
    import re

    from starlette.testclient import TestClient

    from coder.web.app import create_app

    c = TestClient(create_app(path), base_url="http://127.0.0.1:8765")
    c.cookies.set("coder_name", coder)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/start").text).group(1)
    item = c.get("/api/next").json()
    out = []
    for _ in range(n):
        seg = (item.get("item") or {}).get("segment_id") or item.get("segment_id")
        if seg is None:
            break
        t0 = time.perf_counter()
        # as the page sends "no code": the answer is the next card
        r = c.post("/api/decide", json={"segment_id": seg, "decision": "no_code", "advance": 1},
                   headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        item = r.json()
        out.append(time.perf_counter() - t0)
    return out


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--interviews", type=int, default=300)
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--distinct", action="store_true",
                    help="make every turn's text unique (no embedding is reused)")
    ap.add_argument("--results", type=Path)
    ap.add_argument("--keep", type=Path, metavar="PATH",
                    help="copy the finished study file to PATH (to time commands on it again)")
    a = ap.parse_args()
    env = {**os.environ, "CODER_PROGRESS": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "interviews"
        folder.mkdir()
        paths, truth = make_interviews(a.corpus, folder, a.interviews, distinct=a.distinct)
        book = annomi_convert.write(a.corpus, tmp / "codebook.yaml")
        study = tmp / "study.db"
        print(f"{len(paths)} interviews resampled from {a.corpus}; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        rows: list = []
        total = 0.0
        total += step("init + codebook", ["init", str(study), "--codebook", str(book)], rows, env)
        total += step("import (unit: turn)", ["import", str(study), *map(str, paths)], rows, env)
        with Study(study) as s:
            segments = s.db.one("SELECT COUNT(*) FROM segments")[0]
            distinct = s.db.one("SELECT COUNT(DISTINCT text_hash) FROM segments")[0]
        print(f"  ({segments:,} segments, {distinct:,} distinct texts)")
        total += step("suggest (codebook, cold)", ["suggest", str(study)], rows, env)
        t0 = time.perf_counter()
        seconds, lat = review(study, truth, a.decisions)
        rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append((f"review ({a.decisions} decisions, scripted)", seconds, rss_self))
        total += time.perf_counter() - t0
        print(f"  {'review (' + str(a.decisions) + ' decisions)':<34} {seconds:7.1f} s   "
              f"peak RSS {rss_self:,.0f} MB (this process)")
        # retrain + re-suggest: first the two commands, from cold, on a copy of the study as
        # it is now; then as one command (segments and vectors read once) on the study itself
        import sqlite3

        with sqlite3.connect(study) as src, sqlite3.connect(tmp / "two.db") as dst:
            src.backup(dst)
        aside: list = [None]  # not in the table (and no peak RSS printed for them)
        two_s = step("  train (a copy)", ["train", str(tmp / "two.db")], aside, env)
        two_s += step("  suggest --recompute (the copy)",
                      ["suggest", str(tmp / "two.db"), "--recompute"], aside, env)
        retrain_s = step("train --suggest (trained)", ["train", str(study), "--suggest"],
                         rows, env)
        total += retrain_s
        freq_s = step("freq", ["freq", str(study), "--coder", "alice"], rows, env)
        total += freq_s
        agree_s = step("agree (alice and the machine)", ["agree", str(study), "--coders", "alice",
                                                         "--machine"], rows, env)
        total += agree_s
        total += step("report", ["report", str(study), str(tmp / "report.html"),
                                 "--coder", "alice"], rows, env)
        size = study.stat().st_size / 2**20
        if a.keep:  # SQLite's own copy (WAL included), whatever schema step the file is at
            import sqlite3

            src, dst = sqlite3.connect(study), sqlite3.connect(a.keep)
            src.backup(dst)
            dst.close()
            src.close()
            print(f"  study kept as {a.keep}")
        peak = max(r[2] or 0 for r in rows)
        print(f"\nEnd to end: {total:.0f} s (target < 300 s); peak RSS {peak:,.0f} MB "
              f"(target < 2,048 MB); study file {size:,.0f} MB")
        # interactive paths, warm, in one process
        with Study(study) as s:
            from coder.analysis.frequency import frequencies

            t0 = time.perf_counter()
            frequencies(s, coder="alice")
            freq_warm = time.perf_counter() - t0
        web = web_round_trips(study)
        print(f"Terminal review key -> next segment (decision stored, progress recounted): p50 "
              f"{1000 * statistics.median(lat):.0f} ms, p95 {1000 * pct(lat, 0.95):.0f} ms "
              f"(target < 50 ms)")
        if web:
            print(f"Web page decision + next card (JSON API, in process): p50 "
                  f"{1000 * statistics.median(web):.0f} ms, p95 {1000 * pct(web, 0.95):.0f} ms "
                  f"over {len(web)} (target < 150 ms p95)")
        print(f"agree: {agree_s:.2f} s as a command from cold (target < 1 s)")
        print(f"freq: {freq_s:.2f} s as a command from cold, {freq_warm:.2f} s warm "
              f"(target < 1 s); retrain + re-suggest: {retrain_s:.1f} s as one command from "
              f"cold, coder train --suggest (target < 5 s); {two_s:.1f} s as two commands "
              "(train, then suggest --recompute)")
        if a.results:
            lines = ["## A multi-site study end to end", "",
                     f"Run {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; "
                     f"{len(paths)} interviews, {segments:,} segments ({distinct:,} distinct "
                     "texts), resampled from AnnoMI dev.", "",
                     "| step | seconds | peak RSS (MB) |", "|---|---:|---:|"]
            lines += [f"| {lab} | {sec:.1f} | {'' if rss is None else f'{rss:,.0f}'} |"
                      for lab, sec, rss in rows]
            lines += [f"| **end to end** | **{total:.0f}** (target < 300) | **{peak:,.0f}** "
                      "(target < 2,048) |", "",
                      f"Study file: {size:,.0f} MB. Terminal review key -> next segment: p50 "
                      f"{1000 * statistics.median(lat):.0f} ms, p95 {1000 * pct(lat, 0.95):.0f} "
                      "ms. Web decision + next card: "
                      + (f"p50 {1000 * statistics.median(web):.0f} ms, p95 "
                         f"{1000 * pct(web, 0.95):.0f} ms" if web else "not measured")
                      + f". freq warm {freq_warm:.2f} s. Retrain + re-suggest: {retrain_s:.1f} s "
                      f"as one command (`coder train --suggest`), {two_s:.1f} s as `coder train` "
                      "then `coder suggest --recompute`.", ""]
            from bench_suggest import write_results

            heading = "## A multi-site study end to end" + (" (every text distinct)"
                                                             if a.distinct else "")
            lines[0] = heading
            write_results(a.results, "\n".join(lines), heading=heading)


if __name__ == "__main__":
    main()
