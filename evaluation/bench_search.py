"""Search speed: `coder.sources.search.search` over the AnnoMI transcripts, p50/p95 per query kind.

Usage: python evaluation/bench_search.py ../shared/corpora/annomi-dev [--repeat 50]
The corpus is imported into a temporary study (unit turn, THERAPIST as the interviewer, as
evaluation/bench_import.py does) and read in place, never copied into the project. Each query is
run once to warm the page cache, then timed ``--repeat`` times; a time is the whole library call
(FTS5 or re, exact offsets, context, the DataFrame), what `coder search` and the web page wait
for. Also timed: turning the word query's hits into proposals (`coder search --code`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coder import Study
from coder.review.search import propose
from coder.sources.search import search

QUERIES = [
    ("word", "drink", False),
    ("phrase", '"cut down"', False),
    ("prefix", "alcoh*", False),
    ("NEAR", "NEAR(smoking quit, 5)", False),
    ("two words", "drink week", False),
    ("regex", r"\bcut(ting)? (down|back)\b", True),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(corpus: str, repeat: int) -> None:
    files = sorted((Path(corpus) / "transcripts").glob("*.txt"))
    if not files:
        sys.exit(f"no transcripts under {corpus}/transcripts")
    with tempfile.TemporaryDirectory() as tmp:
        study = Study.create(Path(tmp) / "bench.db",
                             codebook=Path(__file__).parent / "annomi_codebook.yaml")
        t0 = time.perf_counter()
        report = study.import_transcripts(files, unit="turn", interviewer="THERAPIST")
        imported = time.perf_counter() - t0
        chars = study.db.one("SELECT SUM(LENGTH(text)) FROM segments")[0]
        print(f"{len(files)} transcripts from {corpus}: {report.segments} segments, "
              f"{chars:,} characters (import with the index: {imported:.2f} s)")
        print(f"each query timed {repeat} times after one warm-up run")
        print("| query kind | query | hits | p50 ms | p95 ms |")
        print("|---|---|---:|---:|---:|")
        for kind, query, regex in QUERIES:
            hits = search(study, query, regex=regex)
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                search(study, query, regex=regex)
                times.append((time.perf_counter() - t) * 1000)
            print(f"| {kind} | `{query}`{' (regex)' if regex else ''} | {len(hits):,} | "
                  f"{statistics.median(times):.1f} | {percentile(times, 0.95):.1f} |")
        code = study.codebook().leaves()[0].path
        t = time.perf_counter()
        made = propose(study, "drink", code=code, coder="bench", span="sentence")
        print(f"proposals: `drink` -> {made.made:,} sentence proposals of '{code}' "
              f"({made.hits:,} participant hits) in {(time.perf_counter() - t) * 1000:.0f} ms")
        study.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    main(args.corpus, args.repeat)
