"""Thematic saturation, after Guest, Namey & Chen (2020), "A simple method to assess and report
thematic saturation in qualitative research", PLOS ONE 15(5): e0232076.

Interviews are the study's documents (a focus group is one interview), in a chosen order; the
codes of an interview are the distinct codes that count on its participants' segments (the
coder options of ``coder freq``; a code is counted as it was applied, without roll-up).

* base: the distinct codes in the first ``base`` interviews (their number is the denominator
  of every run, and stays so);
* run: ``run`` consecutive interviews after the base; its new information is the number of
  codes that appear in the run and in no interview before it, divided by the number of codes
  in the base (the paper's example: 37 themes in a base of 4, 7 new in the first run of 2 =
  19%);
* the run slides one interview at a time; saturation is reached at the first run whose new
  information is at or below ``threshold``, and is reported as the paper does: at the ``k``
  interviews before that run, confirmed by the run (``k+r``, e.g. "11 interviews plus 2 to
  confirm"): "saturation reached after k interviews, confirmed by the next r (k+r; base 4,
  run 2, <=5% new information)".

The classic curve (new and cumulative codes per added interview) is drawn for the chosen order
with a band over ``rounds`` random orders of the same interviews (``seed`` makes it
repeatable), and the same rule is applied to every random order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coder.analysis import counting, outputs
from coder.errors import CoderError, UnknownReference

ORDERS = ("import", "date", "random")   # or any participant attribute
RUN_COLUMNS = ["run", "before", "first", "last", "documents", "new_codes", "new_information",
               "within_threshold", "new"]
CURVE_COLUMNS = ["interview", "document", "order_value", "codes", "new_codes", "cumulative",
                 "random_mean", "random_low", "random_high"]


@dataclass
class Saturation:
    runs: pd.DataFrame
    curve: pd.DataFrame
    reached: bool
    after: int | None              # k: saturation at k interviews (the run after confirms it)
    base: int
    run: int
    threshold: float
    base_codes: int
    order: str
    rounds: int
    seed: int
    random_reached: float | None   # share of random orders that reach saturation
    random_after: dict = field(default_factory=dict)   # median, low, high of k over them
    notes: list[str] = field(default_factory=list)
    N: int = 0
    coders: list[str] = field(default_factory=list)

    @property
    def rule(self) -> str:
        return (f"base {self.base}, run {self.run}, \u2264{_pct(self.threshold)} new "
                "information")

    @property
    def confirmed_at(self) -> int | None:
        """Interviews needed to see saturation: k and the run that confirms it."""
        return self.after + self.run if self.reached else None

    @property
    def statement(self) -> str:
        """The sentence a methods section reports (Guest et al.'s k+r: saturation at k
        interviews, confirmed by the run of r after them)."""
        if self.reached:
            return (f"Saturation reached after {self.after} interviews, confirmed by the next "
                    f"{self.run} ({self.after}+{self.run}; {self.rule}).")
        return f"Saturation not reached ({self.rule})."

    def summary(self) -> str:
        text = self.statement
        if self.reached:
            r = self.runs[self.runs["within_threshold"]].iloc[0]
            text += (f" Interviews {_span(r['first'], r['last'])} added {r['new_codes']} new "
                     f"code(s), {_pct(r['new_information'])} of the {self.base_codes} codes in "
                     "the base.")
        elif len(self.runs):
            r = self.runs.iloc[-1]
            text += (f" No run of {self.run} interviews after the base added \u2264"
                     f"{_pct(self.threshold)} new codes; the last (interviews "
                     f"{_span(r['first'], r['last'])}) added {r['new_codes']} "
                     f"({_pct(r['new_information'])}).")
        if self.random_reached is not None:
            text += (f" Over {self.rounds} random orders of the interviews (seed {self.seed}) "
                     f"saturation is reached in {_pct(self.random_reached)} of them")
            if self.random_after:
                a = self.random_after
                text += (f", after a median of {a['median']:g} interviews (95% of those: "
                         f"{a['low']:g}\u2013{a['high']:g}; each +{self.run} to confirm)")
            text += "."
        return text

    def tables(self) -> outputs.Tables:
        runs = outputs.Table(
            "Runs", self.runs, caption="Runs after the base",
            labels={"run": "Run", "before": "Interviews before", "first": "First",
                    "last": "Last", "documents": "Interviews",
                    "new_codes": "New codes", "new_information": "New information",
                    "within_threshold": "Within threshold", "new": "New codes (names)"},
            formats={"new_information": "{:.1%}"})
        curve = outputs.Table(
            "Curve", self.curve, caption="New codes per added interview",
            labels={"interview": "Interview", "document": "Document", "order_value": "Order",
                    "codes": "Codes", "new_codes": "New", "cumulative": "Cumulative",
                    "random_mean": "Random mean", "random_low": "Random 2.5%",
                    "random_high": "Random 97.5%"},
            formats={"random_mean": "{:.1f}", "random_low": "{:.1f}", "random_high": "{:.1f}"})
        return outputs.Tables(
            title=f"Thematic saturation ({self.rule}; order: {self.order})",
            tables=[runs, curve], notes=self.notes, summary=self.summary(),
            meta={"reached": self.reached, "after": self.after, "base": self.base,
                  "run": self.run, "threshold": self.threshold, "base_codes": self.base_codes,
                  "order": self.order, "rounds": self.rounds, "seed": self.seed,
                  "random_reached": self.random_reached, "random_after": self.random_after,
                  "confirmed_at": self.confirmed_at, "statement": self.statement,
                  "N": self.N, "coders": self.coders})

    def figure(self, *, width_in: float = 6.5, title: str | None = None):
        return curve_figure(self, width_in=width_in, title=title)


def _pct(x: float) -> str:
    return f"{round(x * 100, 1):g}%"


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}\u2013{last}"


def runs_of(sets: list[set], base: int, run: int) -> tuple[int, list[dict]]:
    """The base's number of codes and every run after it: first and last interview (1-based),
    the new codes (in no interview before the run) and their share of the base."""
    base_codes = set().union(*sets[:base]) if base else set()
    out = []
    for start in range(base, len(sets) - run + 1):
        seen = set().union(*sets[:start])
        new = set().union(*sets[start:start + run]) - seen
        share = len(new) / len(base_codes) if base_codes else float("nan")
        out.append({"first": start + 1, "last": start + run, "new": new, "share": share})
    return len(base_codes), out


def saturation(study, *, order: str = "import", base: int = 4, run: int = 2,
               threshold: float = 0.05, rounds: int = 1000, seed: int = 0,
               documents: list[str] | None = None, **who) -> Saturation:
    """Guest, Namey & Chen's saturation assessment on the study's counted codes."""
    if base < 1:
        raise CoderError("--base must be at least 1 interview")
    if run < 1:
        raise CoderError("--run must be at least 1 interview")
    if not 0 <= threshold < 1:
        raise CoderError("--threshold is a share of the base's codes, from 0 to below 1",
                         hint="e.g. 0.05 for 5%")
    if rounds < 0:
        raise CoderError("--rounds cannot be negative")
    data = counting.counted(study, documents=documents, **who)
    rows = data.codings.assign(target=data.codings["code_id"])
    held = data.units(rows, "document")
    docs, values = _order(study, order, documents, seed)
    n = len(docs)
    if n < base + run:
        raise CoderError(
            f"saturation needs at least base + run = {base + run} interviews; the analysed "
            f"documents are {n}", hint="use a smaller --base or --run")
    book_order = {c.id: c.position for c in data.book.codes}
    name_of = counting.labels(data.book.codes)
    per_doc = held.groupby("document_id")["target"].apply(set).to_dict()
    sets = [per_doc.get(d, set()) for d, _ in docs]
    base_n, found = runs_of(sets, base, run)
    if base_n == 0:
        raise CoderError(f"the first {base} interviews carry no counted code, so there is no "
                         "base to measure new information against",
                         hint="code them first, or choose another --order")
    run_rows = []
    for i, r in enumerate(found, 1):
        names = sorted(r["new"], key=lambda c: book_order.get(c, 0))
        run_rows.append({
            "run": i, "before": r["first"] - 1, "first": r["first"], "last": r["last"],
            "documents": ", ".join(d for _, d in docs[r["first"] - 1:r["last"]]),
            "new_codes": len(r["new"]), "new_information": r["share"],
            "within_threshold": bool(r["share"] <= threshold + 1e-12),
            "new": "; ".join(name_of.get(c, c) for c in names)})
    runs = pd.DataFrame(run_rows, columns=RUN_COLUMNS)
    hit = runs[runs["within_threshold"]]
    reached = bool(len(hit))
    after = int(hit.iloc[0]["before"]) if reached else None

    # the curve in this order, and the band over random orders
    codes = sorted(set().union(*sets), key=lambda c: book_order.get(c, 0))
    index = {c: j for j, c in enumerate(codes)}
    present = np.zeros((n, max(1, len(codes))), dtype=bool)
    for i, s in enumerate(sets):
        for c in s:
            present[i, index[c]] = True
    cum = np.maximum.accumulate(present, axis=0).sum(axis=1)
    new = np.diff(np.concatenate([[0], cum]))
    rng = np.random.default_rng(seed)
    random_cum = np.empty((rounds, n))
    ks: list[int] = []
    for r in range(rounds):
        c = np.maximum.accumulate(present[rng.permutation(n)], axis=0).sum(axis=1)
        random_cum[r] = c
        k = _first_k(c, base, run, threshold)
        if k is not None:
            ks.append(k)
    curve = pd.DataFrame({
        "interview": np.arange(1, n + 1), "document": [d for _, d in docs],
        "order_value": values, "codes": [len(s) for s in sets], "new_codes": new.astype(int),
        "cumulative": cum.astype(int),
        "random_mean": random_cum.mean(axis=0) if rounds else np.nan,
        "random_low": np.percentile(random_cum, 2.5, axis=0) if rounds else np.nan,
        "random_high": np.percentile(random_cum, 97.5, axis=0) if rounds else np.nan},
        columns=CURVE_COLUMNS)
    random_after = {}
    if ks:
        random_after = {"median": float(np.median(ks)), "low": float(np.percentile(ks, 2.5)),
                        "high": float(np.percentile(ks, 97.5))}
    notes = data.notes(unit="document") + [
        f"Interviews = the {n} analysed documents in {_order_words(order)} order. Codes = the "
        "distinct codes that count on an interview's participant segments, as applied (no "
        f"roll-up to parents); {len(codes)} codes in all.",
        f"Base = the distinct codes of the first {base} interviews ({base_n}). A run = "
        f"{run} consecutive interviews after the base, sliding by one; its new information = "
        "codes in the run that appear in no earlier interview, divided by the base's codes. "
        f"Saturation is reached at the first run at or below {_pct(threshold)}: after the k "
        f"interviews before that run, which confirms it (reported k+{run}; Guest, Namey & "
        "Chen 2020, PLOS ONE 15(5): e0232076).",
        (f"Random band: 2.5% to 97.5% of the cumulative codes over {rounds} random orders of "
         f"the interviews (seed {seed})." if rounds else "No random orders (--rounds 0).")]
    return Saturation(runs, curve, reached, after, base, run, threshold, base_n,
                      order, rounds, seed, len(ks) / rounds if rounds else None, random_after,
                      notes, data.N, list(data.selection.coders))


def _first_k(cum: np.ndarray, base: int, run: int, threshold: float) -> int | None:
    """The saturation point k of one order from its cumulative code counts (new codes in a run
    = the growth of the cumulative count over it; k = the interviews before that run)."""
    denominator = cum[base - 1]
    if denominator == 0:
        return None
    for start in range(base, len(cum) - run + 1):
        if (cum[start + run - 1] - cum[start - 1]) / denominator <= threshold + 1e-12:
            return start
    return None


def _order_words(order: str) -> str:
    return {"import": "import", "date": "interview date", "random": "a random"}.get(
        order, f"'{order}' attribute")


def _order(study, order: str, documents: list[str] | None,
           seed: int) -> tuple[list[tuple[int, str]], list[str]]:
    """The analysed documents (id, name) in the chosen order, and each one's order value."""
    rows = study.db.query(
        "SELECT d.id, d.name, d.metadata, MIN(v.participant_id) AS participant_id "
        "FROM documents d JOIN segment_view v ON v.document_id = d.id "
        "WHERE v.role = 'participant' AND v.participant_id IS NOT NULL "
        "GROUP BY d.id ORDER BY d.id")
    if documents:
        rows = [r for r in rows if r["name"] in documents]
    docs = [(r["id"], r["name"]) for r in rows]
    if order == "import":
        return docs, [str(i) for i in range(1, len(docs) + 1)]
    if order == "random":
        perm = np.random.default_rng(seed).permutation(len(docs))
        return [docs[i] for i in perm], [f"random (seed {seed})"] * len(docs)
    attrs = {r["attribute"] for r in study.db.query(
        "SELECT DISTINCT attribute FROM participant_attributes")}
    if order == "date":
        dated = {}
        for r in rows:
            try:
                meta = json.loads(r["metadata"] or "{}")
            except ValueError:
                meta = {}
            if meta.get("date"):
                dated[r["id"]] = str(meta["date"])
        if not dated and "date" not in attrs:
            raise UnknownReference(
                "no interview dates: neither the documents nor the participants have a 'date'",
                hint="add a 'date' column (YYYY-MM-DD) to the participants CSV and import it "
                     "with coder participants import, or use --order import|random|ATTRIBUTE")
        if dated:
            values = {d: dated.get(d, "") for d, _ in docs}
            return _sorted(docs, values)
    elif order not in attrs:
        raise UnknownReference(
            f"unknown order '{order}'",
            hint="use import, date, random or a participant attribute"
                 + (" (" + ", ".join(sorted(attrs)) + ")" if attrs else ""))
    attribute = "date" if order == "date" else order
    value_of = {r["participant_id"]: r["value"] for r in study.db.query(
        "SELECT participant_id, value FROM participant_attributes WHERE attribute = ?",
        (attribute,))}
    first_speaker = {r["id"]: r["participant_id"] for r in rows}
    values = {d: str(value_of.get(first_speaker[d]) or "") for d, _ in docs}
    return _sorted(docs, values)


def _sorted(docs, values: dict) -> tuple[list[tuple[int, str]], list[str]]:
    """By value (missing values last), ties in import order."""
    ordered = sorted(docs, key=lambda d: (values[d[0]] == "", values[d[0]], d[0]))
    return ordered, [values[d] or "(none)" for d, _ in ordered]


def curve_figure(result: Saturation, *, width_in: float = 6.5, title: str | None = None):
    """New codes per added interview (bars) and cumulative codes (line) in the chosen order,
    with the band of cumulative codes over random orders and the saturation point."""
    plt = outputs.pyplot()
    c = result.curve
    n = len(c)
    fig = plt.figure(figsize=(width_in, 4.0), dpi=200)
    ax = fig.add_axes((0.09, 0.27, 0.88, 0.56))
    x = c["interview"].to_numpy()
    if result.rounds:
        ax.fill_between(x, c["random_low"], c["random_high"], color="#9fb3c8", alpha=0.45,
                        linewidth=0, label=f"cumulative, 95% of {result.rounds} random orders")
        ax.plot(x, c["random_mean"], color="#627d98", linewidth=1, linestyle="--",
                label="cumulative, mean of random orders")
    ax.bar(x, c["new_codes"], color="#f0b429", width=0.6, label="new codes in the interview")
    ax.plot(x, c["cumulative"], color="#1f5fa8", marker="o", markersize=3, linewidth=1.6,
            label=f"cumulative codes ({result.order} order)")
    ax.axvspan(0.5, result.base + 0.5, color="#e4e7eb", alpha=0.6, linewidth=0, zorder=0)
    top = max(float(c["cumulative"].max()), float(c["random_high"].max())
              if result.rounds else 0.0) or 1.0
    ax.text(result.base / 2 + 0.5, top * 1.04, f"base ({result.base})", ha="center",
            va="bottom", fontsize=7, color="#4a5568")
    if result.reached:
        # the saturation point k and the run that confirms it (Guest et al.'s k+r), labelled
        # above the curve, where nothing else is drawn
        k = result.after
        ax.axvspan(k + 0.5, k + result.run + 0.5, color="#f4d8d3", alpha=0.6, linewidth=0,
                   zorder=0, label=f"the run of {result.run} that confirms saturation")
        ax.axvline(k + 0.5, color="#a33a2a", linewidth=1.2)
        ax.text(k + 0.5, top * 1.04, f" saturation after {k} (+{result.run})", ha="left"
                if k + 0.5 < n * 0.7 else "right", va="bottom", fontsize=7, color="#a33a2a")
    ax.set_xlim(0.5, n + 0.5)
    ax.set_ylim(0, top * 1.15)
    step = 1 if n <= 20 else max(1, round(n / 15))
    ax.set_xticks(range(1, n + 1, step))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("Interviews added", fontsize=8)
    ax.set_ylabel("Codes", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    # the legend below the axes: inside, it hid the late interviews and the saturation mark
    fig.legend(*ax.get_legend_handles_labels(), fontsize=6.5, frameon=False, ncol=2,
               loc="lower center", bbox_to_anchor=(0.5, 0.0))
    fig.text(0.01, 0.97, title or "Thematic saturation: new codes per added interview",
             fontsize=9, fontweight="bold", va="top")
    fig.text(0.01, 0.91, result.statement, fontsize=7.5, va="top", color="#1d2430")
    return fig
