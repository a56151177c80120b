"""What `PRAGMA synchronous = FULL` costs a human decision, against NORMAL.

WAL with NORMAL never corrupts the study but may lose the last commits in a power cut; FULL
syncs the WAL at every commit, so a decision acknowledged is a decision on disk. This times
`review.decide` (one transaction each) under both on a real study file in a temporary folder.

    python evaluation/bench_durability.py [--decisions 400] [--dir .]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from coder import Study, review
from coder.demo import DEMO_DATA, SEED_CODEBOOK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=400)
    parser.add_argument("--dir", default=".", help="where the temporary study goes (a real "
                        "disk, not tmpfs: fsync is the cost measured)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "study.db"
        study = Study.create(path, codebook=SEED_CODEBOOK)
        study.import_transcripts(sorted(DEMO_DATA.glob("p*.txt")))
        segments = [int(s) for s in study.segments(include_interviewer=False)["segment_id"]]
        codes = [c.id for c in study.codebook().codes if c.depth > 0][:8]
        print(f"{args.decisions} decisions, one transaction each, on {path.parent.name}/")
        print("| synchronous | median ms | p95 ms | decisions/s |")
        print("|---|---:|---:|---:|")
        for round_, mode in enumerate(("NORMAL", "FULL", "NORMAL", "FULL")):
            study.db.execute(f"PRAGMA synchronous = {mode}")
            times = []
            start = time.perf_counter()
            for i in range(args.decisions):
                t = time.perf_counter()
                review.decide(study, f"bench-{round_}", segments[i % len(segments)],
                              codes[i % len(codes)], ("confirmed", "rejected")[i % 2])
                times.append((time.perf_counter() - t) * 1000)
            rate = args.decisions / (time.perf_counter() - start)
            q = statistics.quantiles(times, n=20)
            print(f"| {mode} | {statistics.median(times):.2f} | {q[18]:.2f} | {rate:,.0f} |")
        study.close()


if __name__ == "__main__":
    main()
