"""CLI: agree (a ratings CSV or a study) and reconcile (import an edited disagreements sheet)."""

from __future__ import annotations

from pathlib import Path

import click

from coder.analysis import agreement as A
from coder.analysis import coefficients
from coder.cli.options import split_list
from coder.errors import InputError

LABELS = {
    "percent_agreement": "Percent agreement",
    "cohen_kappa": "Cohen's kappa",
    "scott_pi": "Scott's pi",
    "fleiss_kappa": "Fleiss' kappa",
    "krippendorff_alpha": "Krippendorff's alpha",
    "gwet_ac1": "Gwet's AC1",
    "brennan_prediger": "Brennan-Prediger",
}


def register(cli: click.Group) -> None:
    cli.add_command(agree)
    cli.add_command(reconcile)


def is_study_file(path: Path) -> bool:
    """A study is an SQLite file (or named .db/.sqlite); anything else is a ratings CSV."""
    if path.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return True
    from coder.store.db import is_sqlite_file

    return is_sqlite_file(path)


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _console():
    from rich.console import Console

    console = Console(highlight=False)
    # piped output (a file, a test) gets a fixed, readable width instead of rich's 80 columns
    return console if console.is_terminal else Console(width=120, highlight=False)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--level", type=click.Choice(coefficients.LEVELS),
              help="Ratings CSV: level of measurement for Krippendorff's alpha [default: nominal].")
@click.option("--weights", type=click.Choice(coefficients.WEIGHTS),
              help="Ratings CSV: weights for Cohen's kappa (two coders, numeric values).")
@click.option("--coders", help="Study: comma-separated coder names to compare.")
@click.option("--machine", is_flag=True,
              help="Study: compare each coder with the machine: a model's cross-validated "
              "predictions on segments it learned from, the current suggestions (at or above "
              "their threshold) elsewhere; each kind reported on its own.")
@click.option("--codes", "code_patterns", multiple=True,
              help="Study: codes to compare, e.g. 'Barriers/*' (a code and its subtree), a path "
              "or an id; repeat or separate with commas (default: every code applied).")
@click.option("--documents", help="Study: comma-separated document names (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False),
              help="Study: also write the per-code table to this CSV file.")
@click.option("--disagreements", type=click.Path(dir_okay=False),
              help="Study: write every segment the coders disagree on to this .csv or .xlsx.")
@click.option("--resamples", type=click.IntRange(0), default=coefficients.DEFAULT_RESAMPLES,
              show_default=True, help="Bootstrap resamples for alpha's 95% interval (0: none).")
@click.option("--seed", type=int, default=coefficients.DEFAULT_SEED, show_default=True,
              help="Bootstrap seed (--unitizing: the seed of gamma's sampled chance).")
@click.option("--overlap", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Study: the share of a segment a coded span must cover to mark it (0: any "
                   "overlap).")
@click.option("--unitizing", is_flag=True,
              help="Study: agreement on the coded spans' characters instead of segments: "
                   "Krippendorff's alpha_u per code and pooled, and Mathet's gamma when "
                   "pygamma-agreement is installed (--seed seeds its sampling).")
def agree(source, level, weights, coders, machine, code_patterns, documents, as_json, csv_out,
          disagreements, resamples, seed, overlap, unitizing):
    """Inter-coder agreement for a study (per code) or a ratings CSV (unit,coder,value).

    \b
    coder agree study.db --coders alice,bob [--machine] [--codes "Barriers/*"]
    coder agree study.db --coders alice,bob --disagreements disagreements.xlsx
    coder agree study.db --coders alice,bob --unitizing [--json] [--csv spans.csv]
    coder agree ratings.csv [--level interval] [--weights quadratic] [--json]
    """
    path = Path(source)
    if not path.exists():
        raise InputError("file not found", path=path)
    ci = resamples > 0
    if not is_study_file(path):
        study_only = {"--coders": coders, "--machine": machine, "--codes": code_patterns,
                      "--documents": documents, "--csv": csv_out,
                      "--disagreements": disagreements, "--unitizing": unitizing}
        given = [k for k, v in study_only.items() if v]
        if given:
            raise click.UsageError(f"{', '.join(given)} apply to a study file; {path} is read as a "
                                   "ratings CSV (columns unit,coder,value)")
        res = A.ratings_agreement(path, level=level or "nominal", weights=weights, ci=ci,
                                  resamples=resamples, seed=seed)
        if as_json:
            click.echo(A.to_json(res))
        else:
            _print_ratings(res)
        return

    if level or weights:
        raise click.UsageError("--level and --weights apply to a ratings CSV; in a study each "
                               "code is present or absent per segment (nominal, unweighted)")
    names = split_list(coders)
    if not names:
        raise click.UsageError("name the coders to compare: --coders alice,bob")
    from coder.study import Study

    study = Study(path)
    patterns = [p for value in code_patterns for p in split_list(value) or []] or None
    docs = split_list(documents)
    if unitizing:
        _unitizing(study, names, patterns, docs, as_json, csv_out, seed,
                   {"--machine": machine, "--disagreements": disagreements,
                    "--overlap": overlap})
        return
    if disagreements:
        df = A.disagreements(study, names, machine=machine, codes=patterns, documents=docs,
                             overlap=overlap)
        A.write_sheet(df, disagreements)
    res = A.study_agreement(study, names, machine=machine, codes=patterns, documents=docs, ci=ci,
                            resamples=resamples, seed=seed, overlap=overlap)
    if csv_out:
        A.write_sheet(res.table(), csv_out)
    if as_json:
        click.echo(A.to_json(res))
    else:
        _print_study(res)
        _print_independence(study, res.coders)
        if csv_out:
            click.echo(f"Wrote the per-code table to {csv_out}")
    if disagreements:
        click.echo(f"Wrote {len(df)} disagreement(s) to {disagreements}",
                   err=as_json)


def _unitizing(study, names, patterns, docs, as_json, csv_out, seed, segment_only) -> None:
    """`--unitizing`: coder.analysis.unitizing's table (characters, not segments)."""
    from coder.analysis import unitizing as U

    given = [k for k, v in segment_only.items() if v]
    if given:
        raise click.UsageError(f"{', '.join(given)} compare segments; --unitizing compares "
                               "the coded characters themselves")
    res = U.unitizing_agreement(study, names, codes=patterns, documents=docs, seed=seed)
    if csv_out:
        A.write_sheet(res.table(), csv_out)
    if as_json:
        click.echo(A.to_json(res))
        return
    from rich.table import Table

    who = "/".join(res.coders)
    t = Table(title=f"Unitizing agreement per code: {len(res.documents)} document(s) every coder "
              f"coded ({', '.join(res.coders)}), {res.characters:,} characters compared",
              title_justify="left")
    t.add_column("Code", overflow="fold", min_width=24, max_width=60)
    t.add_column(f"Spans\n({who})", justify="right")
    t.add_column(f"Characters\ncoded ({who})", justify="right")
    for head in ("α_u", "α_U\n1995", "γ"):
        t.add_column(head, justify="right")
    for r in res.rows:
        t.add_row(r["code"], "/".join(str(r["spans"][c]) for c in res.coders),
                  "/".join(f"{r['coded_characters'][c]:,}" for c in res.coders),
                  _fmt(r["alpha_u"]), _fmt(r["alpha_U_1995"]), _fmt(r["gamma"]))
    t.add_section()
    p = res.pooled
    t.add_row("pooled over codes", "", "", _fmt(p["alpha_u"]), _fmt(p["alpha_U_1995"]),
              _fmt(p["gamma"]))
    _console().print(t)
    click.echo(U.EXPLAIN + " Pooled: 1 - ΣD_o/ΣD_e over codes; –: undefined (no variation).")
    click.echo(res.gamma_note)
    for note in res.notes:
        click.echo(note[0].upper() + note[1:] + ".")
    if csv_out:
        click.echo(f"Wrote the per-code table to {csv_out}")


def _print_independence(study, coders: list[str]) -> None:
    """One line per pair of human coders: were their decisions independent of each other
    (what each could see is recorded with each decision; `coder.review.independence`)."""
    from itertools import combinations

    from coder.review import independence, independence_line

    humans = {r["name"] for r in study.db.query("SELECT name FROM coders WHERE kind='human'")}
    for a, b in combinations([c for c in coders if c in humans], 2):
        click.echo("Independence: " + independence_line(independence(study, a, b)))


def _print_ratings(res: coefficients.Agreement) -> None:
    from rich.table import Table

    t = Table(title=f"Agreement: {res.units} units coded by two or more of {len(res.coders)} "
              f"coders ({', '.join(res.coders)})", title_justify="left")
    t.add_column("Measure")
    t.add_column("Value", justify="right")
    t.add_column("Note")
    for m in coefficients.MEASURES:
        note = res.notes.get(m, "")
        if m == "krippendorff_alpha":
            note = note or f"level: {res.level}"
        if m == "cohen_kappa" and res.weights and not note:
            note = f"{res.weights} weights"
        t.add_row(LABELS[m], _fmt(getattr(res, m)), note)
    console = _console()
    console.print(t)
    if res.alpha_ci95:
        b = res.bootstrap or {}
        click.echo(f"Krippendorff's alpha 95% interval: [{res.alpha_ci95[0]:.3f}, "
                      f"{res.alpha_ci95[1]:.3f}] ({b.get('method')}, {b.get('resamples')} "
                      f"resamples, seed {b.get('seed')})")
    elif res.notes.get("alpha_ci95"):
        click.echo(f"No interval for alpha: {res.notes['alpha_ci95']}")
    if res.notes.get("coders"):
        click.echo(f"Note: {res.notes['coders']}")


SHORT = {"cross-validated": "cross-validated", "unseen": "not trained on", "unknown": "in-sample?"}


def _print_study(res: A.StudyAgreement) -> None:
    from rich.table import Table

    main, extra = res.comparisons[0], res.comparisons[1:]
    two = len(main.coders) == 2
    kappa_key = "cohen_kappa" if two else "fleiss_kappa"
    humans = [c for c in res.coders if c != A.MACHINE]
    t = Table(title=f"Agreement per code: {res.units} segments decided by every coder "
              f"({', '.join(humans)}); compared: {main.label}"
              + (f", on {main.units} of them" if main.units != res.units else ""),
              title_justify="left")
    t.add_column("Code", overflow="fold", min_width=24, max_width=60)
    t.add_column("Applied\n(" + "/".join(main.coders) + ")", justify="right")
    for head in ("α", "κ" if two else "Fleiss κ", "AC1", "%"):
        t.add_column(head, justify="right")
    for comp in extra:  # names stacked, so that many comparisons still fit
        head = "α\n" + "\n".join(comp.coders)
        if comp.machine:
            head += f"\n({SHORT.get(comp.kind, comp.kind)})"
        t.add_column(head, justify="right")

    def cells(d: dict) -> list[str]:
        pct = d["percent_agreement"]
        return [_fmt(d["krippendorff_alpha"]), _fmt(d[kappa_key]), _fmt(d["gwet_ac1"]),
                "–" if pct is None else f"{100 * pct:.0f}"]

    for i, r in enumerate(main.per_code):
        t.add_row(r["code"], "/".join(str(r["positives"][c]) for c in main.coders), *cells(r),
                  *[_fmt(comp.per_code[i]["krippendorff_alpha"]) for comp in extra])
    t.add_section()
    t.add_row("mean over codes", "", *cells(main.mean_over_codes),
              *[_fmt(comp.mean_over_codes["krippendorff_alpha"]) for comp in extra])
    t.add_row("pooled (segment × code)", "", *cells(main.pooled.as_dict()),
              *[_fmt(comp.pooled.krippendorff_alpha) for comp in extra])
    _console().print(t)
    click.echo("Applied: segments each coder gave the code. α: Krippendorff's alpha (binary: "
               "present/absent per segment); κ: " + ("Cohen's kappa" if two else "Fleiss' kappa")
               + "; AC1: Gwet; %: percent agreement; –: undefined (no variation: nobody or "
               "everybody applied the code).")
    if res.span_rule:
        click.echo(res.span_rule + " (--overlap).")
    for mk in res.machine:
        click.echo(f"machine ({SHORT.get(mk.key, mk.key)}): {mk.label}; "
                   f"{len(mk.units)} of the {res.units} segments.")
    if len(res.machine) > 1:
        click.echo("The machine's kinds of judgement are compared separately, never pooled.")
    if extra:
        every = Table(title="Every comparison, pooled over segment × code", title_justify="left")
        for head in ("Compared", "Segments", "α", "κ", "AC1", "%"):
            every.add_column(head, justify="left" if head == "Compared" else "right",
                         overflow="fold")
        for comp in res.comparisons:
            d = comp.pooled.as_dict()
            kappa = d["cohen_kappa"] if len(comp.coders) == 2 else d["fleiss_kappa"]
            every.add_row(" + ".join(comp.coders) + (f" ({SHORT.get(comp.kind, comp.kind)})"
                                                 if comp.machine else ""),
                      str(comp.units), _fmt(d["krippendorff_alpha"]), _fmt(kappa),
                      _fmt(d["gwet_ac1"]), "–" if d["percent_agreement"] is None
                      else f"{100 * d['percent_agreement']:.0f}")
        _console().print(every)
        click.echo("κ: Cohen's kappa for two coders, Fleiss' kappa for more.")
    for comp in res.comparisons:
        ci = comp.pooled.alpha_ci95
        if ci:
            b = comp.pooled.bootstrap or {}
            click.echo(f"{comp.label}: pooled alpha 95% interval [{ci[0]:.3f}, "
                       f"{ci[1]:.3f}] (segments resampled, {b.get('resamples')} resamples, "
                       f"seed {b.get('seed')})")


@click.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--coders", required=True, help="Comma-separated coders whose disagreements "
              "are reconciled.")
@click.option("--as", "as_coder", default="consensus", show_default=True,
              help="Name of the consensus coder that records the agreed codes.")
@click.option("--single", type=click.Choice(A.SINGLE_RULES),
              help="Segments only one of the coders decided: keep that decision, drop the "
              "segment, or ask (reconcile it like a disagreement) [default: the consensus "
              "coder's rule, else keep].")
@click.option("--sheet", type=click.Path(dir_okay=False),
              help="Import an edited disagreements sheet (.csv or .xlsx) with 'agreed' and "
              "'reason' instead of walking the disagreements in the terminal.")
@click.option("--codes", "code_patterns", multiple=True,
              help="Walk: only disagreements on these codes (as for agree).")
@click.option("--documents", help="Walk: comma-separated document names (default: all).")
def reconcile(study, coders, as_coder, single, sheet, code_patterns, documents):
    """Build a consensus coder: the coders' agreed codes carried over, their disagreements
    reconciled (their own codings are kept).

    The consensus coder covers every segment the coders decided: where they agree, their
    decision is carried over; where they disagree, the reconciled one; segments only one of
    them decided follow --single. Running it again brings it up to date with their latest
    decisions; reconciled decisions are kept.

    Without --sheet, walks every open disagreement in the terminal: type the agreed codes
    (ids, paths or names separated by ';', or 'none') and a reason; each is saved at once,
    Enter skips, q stops. Segments already reconciled are not shown again.

    \b
    coder reconcile study.db --coders alice,bob --as consensus
    coder agree study.db --coders alice,bob --disagreements sheet.xlsx   # or: a sheet
    coder reconcile study.db --coders alice,bob --as consensus --sheet sheet.xlsx
    """
    from coder.study import Study

    s = Study(study)
    names = split_list(coders) or []
    if sheet:
        r = A.reconcile_sheet(s, sheet, coders=names, as_coder=as_coder, single=single)
        msg = (f"Recorded {r.codings} decision(s) on {r.segments} segment(s) as consensus coder "
               f"'{r.coder}'.")
        if r.skipped:
            msg += f" Skipped {r.skipped} row(s) with no 'agreed' value."
        click.echo(msg)
        _summary(s, r.status)
        return
    _walk(s, names, as_coder, single,
          [p for v in code_patterns for p in split_list(v) or []] or None, split_list(documents))


def _summary(study, status: A.ConsensusStatus) -> None:
    """What the consensus covers now, and what is still open."""
    click.echo(status.summary()[0].upper() + status.summary()[1:] + ".")
    if not status.complete:
        click.echo(f"Not complete yet: {'; '.join(status.problems())}. Until it is, coder "
                   "freq, coder report and the web page refuse it unless --allow-partial is "
                   "given.")


def _walk(study, coders: list[str], as_coder: str, single, codes, documents) -> None:
    import pandas as pd

    status = A.build_consensus(study, coders, as_coder, single=single)
    todo = A.open_items(study, as_coder, codes=codes, documents=documents)
    done = status.reconciled
    if not len(todo) and status.open_segments:
        _summary(study, status)
        click.echo(f"Nothing to reconcile on the chosen codes and documents; "
                   f"{len(status.open_segments)} segment(s) open elsewhere.")
        return
    if not len(todo):
        _summary(study, status)
        click.echo(f"Nothing to reconcile: {done} disagreement(s) between "
                   f"{', '.join(coders)}, {done} already decided by '{as_coder}'.")
        return
    click.echo(f"{len(todo)} disagreement(s) to reconcile ({done} already done). "
               "Codes: ids, paths or names separated by ';', or 'none'. Enter skips, q stops.")
    recorded = skipped = 0
    for n, row in enumerate(todo.to_dict("records"), start=1):
        click.echo("")
        click.secho(f"[{n}/{len(todo)}] {row['document']} #{row['segment']} "
                    f"({row['speaker'] or 'no speaker'})", bold=True)
        if row["previous"]:
            click.secho(f"  before: {row['previous']}", dim=True)
        click.echo(f"  > {row['text']}")
        if row["next"]:
            click.secho(f"  after:  {row['next']}", dim=True)
        for c in coders:
            click.echo(f"  {c}: {row[c]}")
        while True:
            agreed = click.prompt("Agreed codes", default="", show_default=False).strip()
            if agreed.lower() in ("q", "quit"):
                click.echo(f"Stopped. Recorded {recorded}, skipped {skipped}.")
                _summary(study, A.consensus_status(study, as_coder))
                return
            if not agreed:
                skipped += 1
                break
            reason = click.prompt("Reason", default="", show_default=False).strip()
            plan, errors, _ = A.plan_consensus(study, pd.DataFrame([{
                "document": row["document"], "segment": row["segment"], "agreed": agreed,
                "reason": reason}]))
            if errors:
                click.echo("  " + "; ".join(e.split(": ", 1)[1] for e in errors) + "; try again")
                continue
            A.record_consensus(study, plan, coders=coders, as_coder=as_coder, single=single)
            recorded += 1
            break
    click.echo(f"Done. Recorded {recorded} segment(s) as consensus coder '{as_coder}', skipped "
               f"{skipped}.")
    _summary(study, A.consensus_status(study, as_coder))
