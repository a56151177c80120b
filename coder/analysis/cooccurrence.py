"""Co-occurrence: how often two codes are on the same segment, or raised by the same
participant.

For each pair of codes at one level (categories, or factors: a factor carries anything below
it), ``count`` is the number of units (segments, or participants) on which both count, under
the coder rule of ``coder freq``; ``jaccard`` is that count over the units carrying either.
The matrix has the count (or Jaccard index) of every pair, and on its diagonal the units
carrying the code (Jaccard: 1). Shared quotes are the passages that carry both codes; by
participant, a participant's passage for each of the two codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from coder.analysis import counting, outputs
from coder.errors import CoderError

MEASURES = ("count", "jaccard")
UNITS = ("segment", "participant")
PAIR_COLUMNS = ["code_a", "code_b", "path_a", "path_b", "name_a", "name_b", "count", "n_a",
                "n_b", "jaccard"]
QUOTE_COLUMNS = ["code_a", "code_b", "name_a", "name_b", "participant", "document", "position",
                 "carries", "text"]


@dataclass
class Cooccurrence:
    pairs: pd.DataFrame      # one row per pair sharing at least one unit, most shared first
    matrix: pd.DataFrame     # codes x codes (names), the measure; diagonal: units per code
    quotes: pd.DataFrame     # shared passages per listed pair
    level: str
    unit: str
    measure: str
    notes: list[str]
    N: int
    coders: list[str]
    factors: list[str] | None = None   # the factor of each matrix row, for the figure

    def tables(self) -> outputs.Tables:
        unit_word = "segments" if self.unit == "segment" else "participants"
        pairs = outputs.Table(
            "Pairs", self.pairs, caption=f"Pairs of codes sharing {unit_word}",
            labels={"name_a": "Code A", "name_b": "Code B", "count": f"Shared {unit_word}",
                    "n_a": "A", "n_b": "B", "jaccard": "Jaccard"},
            formats={"jaccard": "{:.2f}"}, hidden=["code_a", "code_b", "path_a", "path_b"])
        matrix = self.matrix.reset_index().rename(columns={"index": "code"})
        fmt = {c: "{:.2f}" for c in self.matrix.columns} if self.measure == "jaccard" else {}
        grid = outputs.Table("Matrix", matrix, caption=f"{self.measure} of shared "
                             f"{unit_word} (diagonal: {unit_word} per code)", formats=fmt)
        shown = [pairs]
        if len(self.quotes):
            shown.append(outputs.Table(
                "Quotes", self.quotes, caption="Shared quotes",
                labels={"name_a": "Code A", "name_b": "Code B", "participant": "Participant",
                        "document": "Document", "position": "Segment", "carries": "Carries",
                        "text": "Text"}, hidden=["code_a", "code_b"]))
        return outputs.Tables(
            title=f"Co-occurrence of {self.level} codes by {self.unit} (N = {self.N})",
            tables=shown, notes=self.notes, sheets=[pairs, grid, *shown[1:]],
            meta={"N": self.N, "level": self.level, "unit": self.unit, "measure": self.measure,
                  "coders": self.coders,
                  "matrix": {str(k): {str(c): v for c, v in row.items()}
                             for k, row in self.matrix.to_dict("index").items()}})

    def figure(self, *, width_in: float | None = None, title: str | None = None):
        return heatmap(self, width_in=width_in, title=title)


def cooccurrence(study, *, level: str = "category", unit: str = "segment",
                 measure: str = "count", quotes: int = 0, documents: list[str] | None = None,
                 max_chars: int = 300, **who) -> Cooccurrence:
    """Pairs of codes on the same segment (``unit="segment"``) or raised by the same
    participant (``unit="participant"``); ``who`` as for
    :func:`coder.analysis.frequency.frequencies` (coder, coders, rule, consensus,
    include_auto)."""
    counting.check_level(level)
    if unit not in UNITS:
        raise CoderError(f"unknown unit '{unit}'", hint="use segment or participant")
    if measure not in MEASURES:
        raise CoderError(f"unknown measure '{measure}'", hint="use count or jaccard")
    if quotes < 0:
        raise CoderError("--quotes cannot be negative")
    data = counting.counted(study, documents=documents, **who)
    rows = data.targets(level)
    held = data.units(rows, unit)
    col = counting.UNITS[unit]
    sets = held.groupby("target")[col].apply(set).to_dict()
    codes = [c for c in data.codes_at(level) if sets.get(c.id)]
    names = counting.labels(codes)
    pairs = []
    for a, b in combinations(codes, 2):
        shared = sets[a.id] & sets[b.id]
        if not shared:
            continue
        either = sets[a.id] | sets[b.id]
        pairs.append({"code_a": a.id, "code_b": b.id, "path_a": a.path, "path_b": b.path,
                      "name_a": names[a.id], "name_b": names[b.id], "count": len(shared),
                      "n_a": len(sets[a.id]), "n_b": len(sets[b.id]),
                      "jaccard": len(shared) / len(either)})
    frame = pd.DataFrame(pairs, columns=PAIR_COLUMNS)
    order = {c.id: c.position for c in data.book.codes}
    if len(frame):
        frame["_a"], frame["_b"] = frame["code_a"].map(order), frame["code_b"].map(order)
        key = "jaccard" if measure == "jaccard" else "count"
        frame = frame.sort_values([key, "count", "_a", "_b"], ascending=[False, False, True, True],
                                  kind="stable").drop(columns=["_a", "_b"])
    frame = frame.reset_index(drop=True)
    frame["count"] = frame["count"].astype(int)

    labels = [names[c.id] for c in codes]
    grid = np.zeros((len(codes), len(codes)), dtype=float)
    for i, a in enumerate(codes):
        for j, b in enumerate(codes):
            shared = len(sets[a.id] & sets[b.id])
            if measure == "jaccard":
                grid[i, j] = shared / len(sets[a.id] | sets[b.id])
            else:
                grid[i, j] = shared
    matrix = pd.DataFrame(grid if measure == "jaccard" else grid.astype(int), index=labels,
                          columns=labels)

    picked = _quotes(data, rows, held, frame, unit, quotes, max_chars) if quotes else \
        pd.DataFrame(columns=QUOTE_COLUMNS)
    unit_word = "segment" if unit == "segment" else "participant"
    notes = data.notes(unit=unit, level=level) + [
        f"count = {unit_word}s on which both codes count; A, B = {unit_word}s carrying each code; "
        f"Jaccard = count / {unit_word}s carrying either. Only codes on at least one "
        f"{unit_word} are in the matrix ({len(codes)} of {len(data.codes_at(level))})."
        + (" A factor counts every coding below it." if level == "factor" else "")]
    factors = [counting._top(data.book, c).name for c in codes]
    return Cooccurrence(frame, matrix, picked, level, unit, measure, notes, data.N,
                        list(data.selection.coders), factors)


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quotes(data: counting.Counted, rows: pd.DataFrame, held: pd.DataFrame, pairs: pd.DataFrame,
            unit: str, per_pair: int, max_chars: int) -> pd.DataFrame:
    """Up to ``per_pair`` passages per pair: segments carrying both codes (by segment); by
    participant, for each shared participant a passage of each code (one carrying both first)."""
    seg_units = data.units(rows, "segment")
    seg_sets = seg_units.groupby("target")["segment_id"].apply(set).to_dict()
    info = data.segments(seg_units["segment_id"]).set_index("segment_id")
    reading = info.sort_values(["document", "position"]).index.tolist()
    rank = {s: i for i, s in enumerate(reading)}
    out = []
    for p in pairs.itertuples(index=False):
        both = sorted(seg_sets.get(p.code_a, set()) & seg_sets.get(p.code_b, set()),
                      key=rank.get)
        base = {"code_a": p.code_a, "code_b": p.code_b, "name_a": p.name_a, "name_b": p.name_b}
        if unit == "segment":
            for s in both[:per_pair]:
                r = info.loc[s]
                out.append({**base, "participant": r["participant"], "document": r["document"],
                            "position": int(r["position"]), "carries": "both",
                            "text": _short(r["text"], max_chars)})
            continue
        people = held[held["target"] == p.code_a]["participant_id"]
        shared = sorted(set(people) & set(held[held["target"] == p.code_b]["participant_id"]))
        names = data.participants.set_index("participant_id")["participant"]
        for pid in sorted(shared, key=lambda x: names.get(x, ""))[:per_pair]:
            mine = [s for s in both if info.loc[s, "participant_id"] == pid]
            if mine:
                picks = [(mine[0], "both")]
            else:
                picks = []
                for code, name in ((p.code_a, p.name_a), (p.code_b, p.name_b)):
                    segs = sorted((s for s in seg_sets.get(code, set())
                                   if info.loc[s, "participant_id"] == pid), key=rank.get)
                    if segs:
                        picks.append((segs[0], name))
            for s, carries in picks:
                r = info.loc[s]
                out.append({**base, "participant": r["participant"], "document": r["document"],
                            "position": int(r["position"]), "carries": carries,
                            "text": _short(r["text"], max_chars)})
    return pd.DataFrame(out, columns=QUOTE_COLUMNS)


def heatmap(result: Cooccurrence, *, width_in: float | None = None, title: str | None = None):
    """The matrix as a heatmap (matplotlib Figure, Agg): codes that share a unit with another
    code, in codebook order, a line between factors, each cell's value written in it; the
    diagonal (a code's own units) is grey."""
    from matplotlib.ticker import MaxNLocator

    plt = outputs.pyplot()
    full = result.matrix
    values = full.to_numpy(dtype=float).copy()
    np.fill_diagonal(values, 0.0)
    keep = [i for i in range(len(full)) if values[i].any()]
    if not keep:
        raise CoderError("nothing to draw: no two codes share a "
                         + ("segment" if result.unit == "segment" else "participant"),
                         hint="try --unit participant or --level factor")
    m = full.iloc[keep, keep]
    factors = [result.factors[i] for i in keep] if result.factors else [""] * len(keep)
    k = len(m)
    width = width_in or 7.2                      # a journal's full text width, in inches
    longest = max(len(_short(str(s), 40)) for s in m.index)
    font = 7.0
    for _ in range(3):                           # labels and cells shrink together
        label_in = longest * font * 0.56 / 72 + 0.15
        cell = max(0.1, min(0.32, (width - label_in - 0.9) / k))
        font = max(4.5, min(7.0, cell * 72 * 0.62))
    side = cell * k
    width = max(width, label_in + side + 0.9)
    height = 0.45 + label_in + side + 0.3
    fig = plt.figure(figsize=(width, height), dpi=200)
    ax = fig.add_axes((label_in / width, 0.3 / height, side / width, side / height))
    shown = m.to_numpy(dtype=float).copy()
    np.fill_diagonal(shown, np.nan)
    vmax = float(np.nanmax(shown)) if np.isfinite(np.nanmax(shown)) else 1.0
    cmap = plt.get_cmap("Blues").with_extremes(bad="#dddddd")
    image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=max(vmax, 1e-9), aspect="equal")
    names = [_short(str(s), 40) for s in m.index]
    ax.set_xticks(range(k), names, rotation=90, fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    ax.xaxis.tick_top()
    ax.tick_params(length=0, pad=1.5)
    for i in range(k):
        for j in range(k):
            v = m.iat[i, j]
            if i == j or v == 0:
                continue
            text = str(int(v)) if result.measure == "count" else (
                "1" if v >= 0.995 else f"{v:.2f}".lstrip("0"))
            ax.text(j, i, text, ha="center", va="center", fontsize=font * 0.85,
                    color="white" if shown[i, j] > 0.6 * vmax else "#1d2430")
    ax.set_xticks(np.arange(-0.5, k, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, k, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for i in range(1, k):                        # a line where one factor ends
        if factors[i] != factors[i - 1]:
            ax.axhline(i - 0.5, color="#4a5568", linewidth=0.8)
            ax.axvline(i - 0.5, color="#4a5568", linewidth=0.8)
    bar = fig.add_axes(((label_in + side + 0.15) / width, 0.3 / height, 0.1 / width,
                        min(side, 2.5) / height))
    fig.colorbar(image, cax=bar)
    if result.measure == "count":
        bar.yaxis.set_major_locator(MaxNLocator(integer=True))
    bar.tick_params(labelsize=6)
    what = "Jaccard index" if result.measure == "jaccard" else (
        "shared segments" if result.unit == "segment" else "shared participants")
    bar.set_ylabel(what, fontsize=6.5)
    left_out = len(full) - k
    fig.text(0.01, 1 - 0.08 / height, title or (
        f"Co-occurrence of {result.level} codes: {what} (N = {result.N} participants)"),
        fontsize=8.5, fontweight="bold", va="top")
    if left_out:
        fig.text(0.01, 1 - 0.26 / height, f"{left_out} code(s) that share no "
                 f"{result.unit} with another code are not drawn.", fontsize=6.5, va="top",
                 color="#4a5568")
    return fig
