"""The study's model as a figure, like the seed paper's Figure 2: each factor a box with its
groups and categories inside, each with the percent of participants who raised it (from
:func:`coder.analysis.frequency.frequencies`, the same coder options), and an arrow from a
factor to each factor it ``leads_to`` in the codebook.

Factors are placed in columns by the order the arrows give (a factor left of the factors it
leads to, those leading to nothing on the right); without any ``leads_to`` they fill a grid.
Drawn with matplotlib (Agg) at a journal's text width (7 inches by default), text at 6.5 pt
or more.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from coder.analysis import frequency, outputs
from coder.store.codebook import Code, Codebook

FONT = 6.5                       # points: the smallest text in the figure
LINE = FONT * 1.32 / 72          # inches per text line
PAD = 0.07                       # inches inside a box
GAP_X, GAP_Y = 0.42, 0.16        # inches between columns (room for arrows), between boxes
COLORS = ["#1f5fa8", "#2f855a", "#b7791f", "#805ad5", "#c53030", "#2c7a7b", "#4a5568",
          "#97266d"]


@dataclass
class FigureInfo:
    path: Path
    width_px: int | None
    height_px: int | None
    factors: int
    arrows: int


def columns(book: Codebook) -> list[list[Code]]:
    """Factors by column: a factor's column is left of every factor it leads to."""
    factors = [c for c in book.codes if c.depth == 1]
    ids = {c.id for c in factors}
    edges = {c.id: [t for t in c.leads_to if t in ids and t != c.id] for c in factors}
    if not any(edges.values()):
        per = 3 if len(factors) > 4 else max(1, len(factors))
        return [factors[i::per] for i in range(per)]
    to_sink: dict[str, int] = {}

    def depth(node: str, stack: tuple = ()) -> int:   # longest path to a factor leading nowhere
        if node in to_sink:
            return to_sink[node]
        if node in stack:          # a circle in leads_to: stop here
            return 0
        d = max((depth(t, stack + (node,)) + 1 for t in edges[node]), default=0)
        to_sink[node] = d
        return d

    linked = {c.id for c in factors if edges[c.id]} | {t for ts in edges.values() for t in ts}
    top = max(depth(c.id) for c in factors)
    cols: list[list[Code]] = [[] for _ in range(top + 1)]
    loose = []
    for c in factors:
        if c.id in linked:
            cols[top - depth(c.id)].append(c)
        else:
            loose.append(c)
    for c in loose:                # factors outside the arrows go where there is least
        min(cols, key=len).append(c)
    return [col for col in cols if col]


def _lines(book: Codebook, factor: Code, labels: dict[str, str], chars: int) -> list[tuple]:
    """(kind, text, percent, indent) lines of one factor's box."""
    out = []

    def walk(code: Code, indent: int) -> None:
        kids = book.children(code.id)
        name_chars = max(10, chars - 8 - 2 * indent)   # room for the percent
        if kids:
            wrapped = textwrap.wrap(code.name, name_chars) or [code.name]
            for k, part in enumerate(wrapped):
                out.append(("group", part, labels.get(code.id, "") if k == 0 else "", indent))
            for kid in kids:
                walk(kid, indent + 1)
        else:
            wrapped = textwrap.wrap(code.name, name_chars) or [code.name]
            for k, part in enumerate(wrapped):
                out.append(("category", part,
                            labels.get(code.id, "") if k == len(wrapped) - 1 else "", indent))

    for kid in book.children(factor.id):
        walk(kid, 0)
    return out


def plot(study, *, width_in: float = 7.0, title: str | None = None, **who):
    """The model figure (a matplotlib Figure); ``who`` as for ``coder freq``."""
    from matplotlib.patches import FancyBboxPatch

    plt = outputs.pyplot()
    df = frequency.frequencies(study, level="all", rollups=("any",), **who)
    book = study.codebook()
    labels = {r.id: r.label for r in df.itertuples(index=False) if r.rollup in ("", "any")}
    cols = columns(book)
    ncol = len(cols)
    box_w = (width_in - 0.2 - GAP_X * (ncol - 1)) / ncol
    chars = int((box_w - 2 * PAD) * 72 / (FONT * 0.5))
    content = {}
    heights = {}
    for col in cols:
        for f in col:
            head_chars = int((box_w - 2 * PAD) * 72 / ((FONT + 1) * 0.62))
            head = textwrap.wrap(f"{f.name} ({labels.get(f.id, '')})", head_chars) or [f.name]
            body = _lines(book, f, labels, chars)
            content[f.id] = (head, body)
            heights[f.id] = 2 * PAD + LINE * (len(head) * 1.15 + len(body)) + 0.05
    col_h = [sum(heights[f.id] for f in col) + GAP_Y * (len(col) - 1) for col in cols]
    N = df.attrs["N"]
    foot = textwrap.wrap(
        f"Percent of participants (N = {N}) who raised each category; a factor or group: any "
        "category below it." + (" Arrows: the factor order the codebook declares (leads_to)."
                                if any(f.leads_to for f in book.codes) else "")
        + " Codings: " + df.attrs["selection"] + ".", int((width_in - 0.2) * 72 / (FONT * 0.5)))
    header_in, footer_in = 0.32, 0.12 + LINE * 1.25 * len(foot)
    height_in = header_in + max(col_h) + footer_in
    fig = plt.figure(figsize=(width_in, height_in), dpi=200)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_in)
    ax.set_ylim(height_in, 0)
    ax.axis("off")
    where: dict[str, tuple[float, float, float, float]] = {}
    order = [c.id for c in book.codes if c.depth == 1]
    for k, col in enumerate(cols):
        x = 0.1 + k * (box_w + GAP_X)
        y = header_in + (max(col_h) - col_h[k]) / 2        # centred in its column
        for f in col:
            h = heights[f.id]
            color = COLORS[order.index(f.id) % len(COLORS)]
            ax.add_patch(FancyBboxPatch((x, y), box_w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                        facecolor="white", edgecolor=color, linewidth=1.1))
            head, body = content[f.id]
            head_h = LINE * len(head) * 1.15 + PAD
            ax.add_patch(FancyBboxPatch((x, y), box_w, head_h + 0.02,
                                        boxstyle="round,pad=0,rounding_size=0.05",
                                        facecolor=color, edgecolor=color, linewidth=1.1,
                                        alpha=0.14))
            ty = y + PAD
            for part in head:
                ax.text(x + PAD, ty, part, fontsize=FONT + 1, fontweight="bold", va="top",
                        color="#1d2430")
                ty += LINE * 1.15
            ty += 0.05
            for kind, text, pct, indent in body:
                ix = x + PAD + indent * 0.1
                weight = "bold" if kind == "group" else "normal"
                style = "italic" if kind == "group" else "normal"
                ax.text(ix, ty, text, fontsize=FONT, va="top", fontweight=weight,
                        fontstyle=style, color="#1d2430")
                if pct:
                    ax.text(x + box_w - PAD, ty, pct, fontsize=FONT, va="top", ha="right",
                            fontweight=weight, color="#1d2430")
                ty += LINE
            where[f.id] = (x, y, box_w, h)
            y += h + GAP_Y
    arrows = 0
    for f in (c for c in book.codes if c.depth == 1):
        for target in f.leads_to:
            if target not in where or target == f.id:
                continue
            arrows += 1
            sx, sy, sw, sh = where[f.id]
            tx, ty_, tw, th = where[target]
            if tx > sx + sw:
                start, end = (sx + sw, sy + sh / 2), (tx, ty_ + th / 2)
            elif tx + tw < sx:
                start, end = (sx, sy + sh / 2), (tx + tw, ty_ + th / 2)
            elif ty_ > sy:
                start, end = (sx + sw / 2, sy + sh), (tx + tw / 2, ty_)
            else:
                start, end = (sx + sw / 2, sy), (tx + tw / 2, ty_ + th)
            ax.annotate("", xy=end, xytext=start, arrowprops=dict(
                arrowstyle="-|>", color="#4a5568", linewidth=1.0, mutation_scale=8,
                shrinkA=1, shrinkB=1))
    ax.text(0.1, 0.12, title or f"{book.name}", fontsize=FONT + 2.5, fontweight="bold",
            va="top")
    ax.text(0.1, height_in - footer_in + 0.06, "\n".join(foot), fontsize=FONT, va="top",
            color="#4a5568", linespacing=1.25)
    fig.coder_arrows = arrows
    return fig


def model_figure(study, path: str | Path, *, width_in: float = 7.0, title: str | None = None,
                 **who) -> FigureInfo:
    """Draw the model figure and save it as PNG or SVG (by the file's suffix)."""
    from coder.analysis.chart import png_size

    path = outputs.check_figure_path(path)
    fig = plot(study, width_in=width_in, title=title, **who)
    arrows = getattr(fig, "coder_arrows", 0)
    factors = sum(1 for c in study.codebook().codes if c.depth == 1)
    outputs.save_figure(fig, path)
    w = h = None
    if path.suffix.lower() == ".png":
        w, h = png_size(path.read_bytes())
    return FigureInfo(path, w, h, factors, arrows)
