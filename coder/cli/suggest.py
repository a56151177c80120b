"""CLI: `coder suggest`, `coder suggestions export`, `coder train`, `coder models`."""

from __future__ import annotations

import click

from coder.cli.options import documents_option, split_list, study_argument
from coder.cli.progress import bar, working


def _open(path):
    from coder.study import Study

    return Study(path)


def scoring_options(lead: str = ""):
    """--top-k, --min-score, --include-interviewer: what `suggest` and `train --suggest` share
    (``lead``: words before each help text)."""
    say = (lambda text: lead + text) if lead else (lambda text: text[0].upper() + text[1:])

    def add(fn):
        for option in reversed([
                click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
                             help=say("most codes to suggest per segment.")),
                click.option("--min-score", type=click.FloatRange(0, 1), default=0.05,
                             show_default=True,
                             help=say("lowest calibrated score worth suggesting."))]):
            fn = option(fn)
        return fn
    return add


def interviewer_option(lead: str = ""):
    text = "suggest codes for interviewer turns too."
    return click.option("--include-interviewer", is_flag=True,
                        help=lead + text if lead else text[0].upper() + text[1:])


def register(cli):
    @cli.command("suggest")
    @study_argument
    @documents_option
    @scoring_options()
    @click.option("--recompute", is_flag=True,
                  help="Re-score segments that already have suggestions from the current model.")
    @interviewer_option()
    @click.option("--backend", type=click.Choice(["torch", "onnx-fp32", "onnx-int8"]),
                  help="What computes the embeddings: onnx-fp32 (the default: the torch "
                       "model's very vectors, 2-3x faster), onnx-int8 (fastest, within 1 point "
                       "of macro-F1 on AnnoMI but not on a topical codebook) or torch. Default: "
                       "the backend the current trained model learned from, else "
                       "$CODER_EMBEDDING_BACKEND, else onnx-fp32.")
    @click.option("--dask", "dask_address", metavar="ADDRESS",
                  help="Encode on the Dask cluster whose scheduler is at ADDRESS "
                       "(tcp://host:8786); the texts go to its workers.")
    @click.option("--workers", type=click.IntRange(min=1), metavar="N",
                  help="Encode on a local Dask cluster of N worker processes.")
    def suggest_cmd(study, documents, top_k, min_score, recompute, include_interviewer, backend,
                    dask_address, workers):
        """Pre-code segments with ranked codebook codes."""
        from coder.machine import suggest as lib

        if dask_address is not None and workers is not None:
            raise click.UsageError("use --dask or --workers, not both")
        with _open(study) as s, bar("Encoding segments") as progress:
            df = lib.suggest(s, documents=split_list(documents), top_k=top_k, min_score=min_score,
                             recompute=recompute, include_interviewer=include_interviewer,
                             backend=backend, dask=dask_address, workers=workers,
                             progress=progress)
            if df.empty:
                click.echo("No segments needed suggestions (use --recompute to redo them).")
                return
            version = int(df["model_version"].iloc[0])
            kind = s.db.one("SELECT kind FROM models WHERE version=?", (version,))["kind"]
            _print_suggested(df, version, kind)

    @cli.group("suggestions")
    def suggestions_group():
        """Stored suggestions."""

    @suggestions_group.command("export")
    @study_argument
    @click.argument("out", type=click.Path(dir_okay=False))
    def export_cmd(study, out):
        """Write suggestions as CSV: document,segment,speaker,text,code,score,rank,source,model_version."""
        from coder.machine import suggest as lib

        with _open(study) as s:
            df = lib.export_suggestions(s, out)
        click.echo(f"Wrote {len(df)} suggestions to {out}")

    @cli.command("train")
    @study_argument
    @click.option("--coders", help="Comma-separated coders whose decisions to learn from (default: all).")
    @click.option("--report", type=click.Path(dir_okay=False), help="Also write the model summary as JSON.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--suggest", "then_suggest", is_flag=True,
                  help="Then re-score every segment with the new model, as `coder suggest "
                       "--recompute` would (faster in one command: segments and vectors are "
                       "read once).")
    @scoring_options("With --suggest: ")
    @interviewer_option("With --suggest: ")
    def train_cmd(study, coders, report, seed, then_suggest, top_k, min_score,
                  include_interviewer):
        """Refit the suggestion model on confirmed and rejected codes (a new model version)."""
        from coder.machine import suggest as lib

        with _open(study) as s, bar("Encoding segments") as progress, \
                working("Training (cross-validated by document)"):
            if then_suggest:
                m, df = lib.train_and_suggest(
                    s, coders=split_list(coders), report=report, seed=seed, top_k=top_k,
                    min_score=min_score, include_interviewer=include_interviewer,
                    progress=progress)
            else:
                m = lib.train(s, coders=split_list(coders), report=report, seed=seed,
                              progress=progress)
        on = m.trained_on
        click.echo(f"Model v{m.version}: trained on {on['segments']} segments from "
                   f"{on['documents']} documents by {', '.join(on['coders'])}; classifiers for "
                   f"{len(on['classifier_codes'])} codes, codebook similarity for the rest.")
        rows = [e for e in m.metrics["per_code"] if e["support"]]
        if rows:
            _print_cross_validated(m.metrics, rows, lib.JUDGE_AT)
        if report:
            click.echo(f"Report: {report}")
        if then_suggest:
            _print_suggested(df, m.version, "trained")

    @cli.command("models")
    @study_argument
    def models_cmd(study):
        """List model versions: when, trained on what, cross-validated quality."""
        from coder.machine import suggest as lib

        with _open(study) as s:
            df = lib.models(s)
        if df.empty:
            click.echo("No models yet (coder suggest uses the codebook alone; coder train learns).")
            return
        click.echo(df.to_string(index=False, na_rep="-"))


def _print_suggested(df, version: int, kind: str) -> None:
    if df.empty:
        click.echo(f"No suggestions scored high enough (model v{version}, {kind}).")
        return
    click.echo(f"{len(df)} suggestions for {df['segment_id'].nunique()} segments "
               f"(model v{version}, {kind}); sources: "
               + ", ".join(f"{k} {v}" for k, v in df["source"].value_counts().sort_index().items()))


def _print_cross_validated(metrics: dict, rows: list[dict], judge_at: int) -> None:
    """Per code: its support next to cross-validated precision, recall and F1."""
    cv = metrics.get("cross_validation", {})
    judge = cv.get("judge_at", judge_at)
    how = {"document": f"by document ({cv.get('folds')} folds): each segment scored by a model "
                       "fitted without its document",
           "segment": f"by segment ({cv.get('folds')} folds; too few documents to group them): "
                      "each segment scored by a model fitted without it"}.get(cv.get("grouped_by"))
    if how is None:  # a summary written before coder kept out-of-fold predictions
        click.echo("Not cross-validated: precision, recall and F1 are not shown.")
        return
    click.echo(f"Cross-validated {how}; thresholds chosen without the segment's fold. Support: "
               "confirmed segments; negatives: segments decided without the code. A code with "
               f"fewer than {judge} confirmed segments has too few positives to judge.")
    tried = {float(c): f for c, f in (cv.get("C_tried") or {}).items()}
    if len(tried) > 1:  # C="auto": the figures below are those of the C these folds chose
        click.echo(f"Regularisation C {cv.get('C'):g}, chosen by these folds' macro-F1 ("
                   + ", ".join(f"C {c:g}: {f:.3f}" for c, f in sorted(tried.items()))
                   + "): the figures below are of the better of two, slightly optimistic.")
    width = max(len(e["code"]) for e in rows)
    click.echo(f"{'code':<{width}}  source      support  negatives  precision  recall  f1    "
               "threshold")
    for e in rows:
        few = e.get("too_few_to_judge", e["support"] < judge)
        fmt = lambda v, few=few: "-" if v is None or few else f"{v:.2f}"  # noqa: E731
        line = (f"{e['code']:<{width}}  {e['source']:<10}  {e['support']:>7}  "
                f"{e.get('negatives', 0):>9}  {fmt(e.get('cv_precision')):>9}  "
                f"{fmt(e.get('cv_recall')):>6}  {fmt(e.get('cv_f1')):>4}  {e['threshold']:.3f}")
        if few:
            line += f"  too few positives to judge ({e['support']} < {judge})"
        click.echo(line)
