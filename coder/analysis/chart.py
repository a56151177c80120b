"""Charts of a frequency table: horizontal bars of percent by category, grouped by factor;
grouped bars per participant group with ``by``. Drawn with matplotlib's Agg backend (no
display needed) at an exact pixel size, so a chart can be checked and embedded reliably.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from coder.errors import CoderError

ROW_PX = 26         # pixels per bar row
HEADER_PX = 26      # pixels per factor heading row
MARGIN_PX = 140     # title, axis and legend


@dataclass
class ChartInfo:
    path: Path
    width_px: int
    height_px: int
    bars: int


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _entries(df: pd.DataFrame, rollup: str) -> pd.DataFrame:
    """The rows to draw: categories as they are, parents with the chosen roll-up."""
    keep = (df["rollup"] == "") | (df["rollup"] == rollup)
    return df[keep]


def size_for(df: pd.DataFrame, *, rollup: str = "any", width_px: int = 1000) -> tuple[int, int]:
    """The pixel size :func:`plot` gives this table when no height is asked for."""
    rows = _entries(df, rollup)
    key = "value" if "value" in rows.columns else None
    codes = rows.drop_duplicates(["id"]) if key else rows
    blocks = codes["factor"].nunique() if (codes["depth"] > 1).any() else 0
    groups = rows[key].nunique() if key else 1
    bars_px = len(codes) * ROW_PX * (1 if groups <= 2 else max(1, groups // 2))
    return width_px, MARGIN_PX + bars_px + blocks * HEADER_PX


def plot(df: pd.DataFrame, *, rollup: str = "any", width_px: int = 1000,
         height_px: int | None = None, dpi: int = 100, title: str | None = None):
    """A matplotlib Figure for a :func:`coder.analysis.frequency.frequencies` table."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if rollup not in ("any", "mean"):
        raise CoderError(f"unknown roll-up '{rollup}'", hint="use any or mean")
    rows = _entries(df, rollup)
    if rows.empty:
        raise CoderError("nothing to chart: the table has no rows")
    N = df.attrs.get("N")
    by = df.attrs.get("by")
    w, h = size_for(df, rollup=rollup, width_px=width_px)
    h = height_px or h
    fig = plt.figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    ax = fig.add_axes((0.36, MARGIN_PX * 0.55 / h, 0.42 if by else 0.60, 1 - MARGIN_PX / h))
    codes = rows.drop_duplicates(["id"]) if by else rows
    grouped = bool((codes["depth"] > 1).any())
    colors = plt.get_cmap("tab10").colors

    # y positions from the top: a heading row per factor, then its codes.
    labels, ys, headings, y = [], {}, [], 0.0
    last = None
    for r in codes.itertuples(index=False):
        if grouped and r.factor != last:
            headings.append((y, r.factor))
            y += 1
            last = r.factor
        name = r.name if not r.rollup else f"{r.name} ({r.rollup})"
        labels.append((y, _short(name)))
        ys[r.id] = y
        y += 1
    if by:
        values = list(dict.fromkeys(rows["value"]))
        groups = df.attrs.get("groups") or {}
        height = 0.8 / len(values)
        for k, v in enumerate(values):
            part = rows[rows["value"] == v]
            pos = [ys[i] - 0.4 + height * (k + 0.5) for i in part["id"]]
            vals = [float(p) if pd.notna(p) else 0.0 for p in part["percent"]]
            ax.barh(pos, vals, height=height * 0.95, color=colors[k % len(colors)],
                    label=f"{v} (N = {groups.get(v, '')})")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False,
                  title=by, title_fontsize=8, alignment="left")
    else:
        factors = list(dict.fromkeys(codes["factor"]))
        for r in codes.itertuples(index=False):
            value = float(r.percent) if pd.notna(r.percent) else 0.0
            color = colors[factors.index(r.factor) % len(colors)]
            ax.barh(ys[r.id], value, height=0.7, color=color)
            ax.text(value + 1, ys[r.id], r.label, va="center", fontsize=8)
    ax.set_yticks([p for p, _ in labels], [t for _, t in labels], fontsize=8)
    for p, name in headings:
        ax.text(-0.01, p, _short(name, 56), transform=ax.get_yaxis_transform(), ha="right",
                va="center", fontsize=9, fontweight="bold")
    ax.set_ylim(y - 0.5, -0.5)
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"Percent of participants (N = {N})")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.suptitle(title or (f"Participants raising each code, by {by}" if by else
                           "Participants raising each code"), fontsize=11)
    return fig


def png_bytes(df: pd.DataFrame, **options) -> bytes:
    import matplotlib.pyplot as plt

    fig = plot(df, **options)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    plt.close(fig)
    return buf.getvalue()


def chart(study, path: str | Path, *, by: str | None = None, level: str = "category",
          rollup: str = "any", width_px: int = 1000, height_px: int | None = None,
          dpi: int = 100, title: str | None = None, **options) -> ChartInfo:
    """Compute frequencies (``options`` as for :func:`coder.analysis.frequency.frequencies`) and save a
    PNG chart of them; returns where it went and its exact pixel size."""
    from coder.analysis import frequency
    from coder.analysis.tables import check_output

    path = check_output(path)
    if path.suffix.lower() != ".png":
        raise CoderError(f"charts are written as PNG; {path.name} does not end in .png",
                         path=path)
    df = frequency.frequencies(study, level=level, by=by, **options)
    data = png_bytes(df, rollup=rollup, width_px=width_px, height_px=height_px, dpi=dpi,
                     title=title)
    path.write_bytes(data)
    width, height = png_size(data)
    bars = len(_entries(df, rollup))
    return ChartInfo(path, width, height, bars)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise CoderError("not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
