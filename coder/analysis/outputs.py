"""The methods analyses' tables in the formats of ``coder freq`` (table, csv, md, latex, html,
xlsx, json), and their figures as PNG or SVG.

A result is a :class:`Tables`: a title, one or more DataFrames (the first is the main one: the
one ``--format csv`` writes), the notes that say whose codings count on which segments, and
the facts a JSON reader needs. Output paths are checked and formats chosen by
:mod:`coder.analysis.tables` (``check_output``, ``format_for``), so every command refuses the
same bad paths with the same words.
"""

from __future__ import annotations

import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from coder.analysis import tables as freq_tables
from coder.errors import CoderError
from coder.spreadsheet import neutralise_workbook

FORMATS = freq_tables.FORMATS
FIGURE_SUFFIXES = (".png", ".svg")


@dataclass
class Table:
    """One DataFrame with the words a display format needs."""

    name: str                                        # sheet name / JSON key
    frame: pd.DataFrame
    caption: str = ""
    labels: dict[str, str] = field(default_factory=dict)    # column -> header in display formats
    formats: dict[str, str] = field(default_factory=dict)   # column -> format, e.g. "{:.2f}"
    hidden: list[str] = field(default_factory=list)         # columns left out of displays
    indent: str | None = None      # a column shown indented by the row's "depth" (a tree)

    def display(self) -> tuple[list[str], list[list[str]], set[int]]:
        """Headers, rows of strings and the right-aligned (numeric) columns."""
        cols = [c for c in self.frame.columns if c not in self.hidden]
        headers = [self.labels.get(c, str(c)) for c in cols]
        numeric = {i for i, c in enumerate(cols)
                   if pd.api.types.is_numeric_dtype(self.frame[c].dtype)
                   and not pd.api.types.is_bool_dtype(self.frame[c].dtype)}
        rows = [[_cell(v, self.formats.get(c)) for c, v in zip(cols, r)]
                for r in self.frame[cols].itertuples(index=False, name=None)]
        if self.indent in cols and "depth" in self.frame.columns:
            k = cols.index(self.indent)
            for row, depth in zip(rows, self.frame["depth"]):
                row[k] = "  " * (int(depth) - 1) + row[k]
        return headers, rows, numeric


@dataclass
class Tables:
    """An analysis ready to be written: its tables, notes and facts."""

    title: str
    tables: list[Table]
    notes: list[str]
    meta: dict = field(default_factory=dict)         # extra JSON facts (N, coders, ...)
    summary: str = ""                                # one sentence above the tables
    sheets: list[Table] | None = None                # xlsx sheets, if not the tables

    @property
    def main(self) -> Table:
        return self.tables[0]


def _cell(value, fmt: str | None = None) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if fmt:
        try:
            return fmt.format(value)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}"
    return str(value)


def _plain(value):
    """A JSON-safe Python value."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return None
    return value


# -- text formats ------------------------------------------------------------------------------
def to_markdown(result: Tables) -> str:
    md = freq_tables._md_cell
    lines = [f"**{md(result.title)}**", ""]
    if result.summary:
        lines += [md(result.summary), ""]
    for t in result.tables:
        headers, rows, numeric = t.display()
        if t.caption:
            lines += [f"*{md(t.caption)}*", ""]
        if not rows:
            lines += ["(none)", ""]
            continue
        lines.append("| " + " | ".join(md(h) for h in headers) + " |")
        lines.append("|" + "|".join("---:" if i in numeric else "---"
                                    for i in range(len(headers))) + "|")
        lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
        lines.append("")
    lines += [f"_Note: {md(n)}_" if i == 0 else f"_{md(n)}_" for i, n in enumerate(result.notes)]
    return "\n".join(lines).rstrip() + "\n"


def to_latex(result: Tables) -> str:
    esc = freq_tables.latex_escape
    out = ["% requires \\usepackage{booktabs}"]
    for k, t in enumerate(result.tables):
        headers, rows, numeric = t.display()
        spec = "".join("r" if i in numeric else ("p{7cm}" if len(h) > 3 and h.lower() in (
            "text", "passage", "quote", "codes") else "l") for i, h in enumerate(headers))
        caption = result.title if k == 0 else (t.caption or t.name)
        out += ["\\begin{table}[htbp]", "\\centering", f"\\caption{{{esc(caption)}}}",
                f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                " & ".join(esc(h) for h in headers) + " \\\\", "\\midrule"]
        out += [" & ".join(esc(c) for c in row) + " \\\\" for row in rows]
        out += ["\\bottomrule", "\\end{tabular}"]
        if k == 0:
            lead = (result.summary + " ") if result.summary else ""
            out.append("\\par\\footnotesize Note: " + esc(lead) + " ".join(
                esc(n) for n in result.notes))
        out += ["\\end{table}", ""]
    return "\n".join(out)


def html_fragment(result: Tables, *, heading: str = "h3", captions: bool = True) -> str:
    """The tables as escaped HTML (for the report and the web page)."""
    e = html.escape
    out = []
    if result.summary:
        out.append(f'<p class="summary"><strong>{e(result.summary)}</strong></p>')
    for t in result.tables:
        headers, rows, numeric = t.display()
        if captions and t.caption:
            out.append(f"<{heading}>{e(t.caption)}</{heading}>")
        if not rows:
            out.append('<p class="muted">(none)</p>')
            continue
        num = ' class="num"'
        out.append('<table class="freq"><thead><tr>' + "".join(
            f"<th{num if i in numeric else ''}>{e(h)}</th>" for i, h in enumerate(headers))
            + "</tr></thead><tbody>")
        indent = freq_tables._indent   # a tree's leading spaces, visible in HTML
        out += ["<tr>" + "".join(f"<td{num if j in numeric else ''}>{indent(e(c))}</td>"
                                 for j, c in enumerate(row)) + "</tr>" for row in rows]
        out.append("</tbody></table>")
    out += [f'<p class="note">{"Note: " if i == 0 else ""}{e(n)}</p>'
            for i, n in enumerate(result.notes)]
    return "\n".join(out)


def to_html(result: Tables) -> str:
    e = html.escape
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(result.title)}</title><style>{freq_tables.CSS}</style></head>\n<body>\n"
            f"<h1>{e(result.title)}</h1>\n{html_fragment(result)}\n</body></html>\n")


def to_json(result: Tables) -> str:
    data = {"title": result.title, **{k: _plain(v) for k, v in result.meta.items()}}
    if result.summary:
        data["summary"] = result.summary
    data["notes"] = list(result.notes)
    data["tables"] = {t.name: [{str(k): _plain(v) for k, v in r.items()}
                               for r in t.frame.to_dict("records")] for t in result.tables}
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def to_text(result: Tables, *, width: int = 120) -> str:
    from rich.console import Console

    buf = io.StringIO()
    print_tables(result, Console(file=buf, width=width, color_system=None,
                                 force_terminal=False))
    return buf.getvalue()


def print_tables(result: Tables, console) -> None:
    from rich.table import Table as RichTable

    if result.summary:
        console.print(result.summary, markup=False, highlight=False)
    for k, t in enumerate(result.tables):
        headers, rows, numeric = t.display()
        title = result.title if k == 0 else (t.caption or t.name)
        table = RichTable(title=title, title_justify="left")
        for i, h in enumerate(headers):
            longest = max([len(r[i]) for r in rows] + [1])
            # numbers never break; text columns keep a readable width when the table is wide
            table.add_column(h, justify="right" if i in numeric else "left", overflow="fold",
                             min_width=longest if i in numeric else min(12, longest))
        for row in rows:
            table.add_row(*row)
        if rows:
            console.print(table)
        else:
            console.print(f"{title}: (none)", markup=False, highlight=False)
    for i, n in enumerate(result.notes):
        console.print(("Note: " if i == 0 else "") + n, markup=False, highlight=False)


def to_csv(result: Tables) -> str:
    return freq_tables.to_csv(result.main.frame)


def render(result: Tables, fmt: str) -> str:
    """A text format as a string (xlsx is binary: use :func:`write`)."""
    writers = {"csv": to_csv, "json": to_json, "md": to_markdown, "latex": to_latex,
               "html": to_html, "table": to_text}
    if fmt == "xlsx":
        raise CoderError("xlsx is a binary format", hint="write it to a file with --out FILE.xlsx")
    if fmt not in writers:
        raise CoderError(f"unknown format '{fmt}'", hint="use " + ", ".join(FORMATS))
    return writers[fmt](result)


def sheet_name(name: str, taken: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\, unique in the book."""
    clean = "".join(" " if ch in "[]:*?/\\" else ch for ch in name).strip() or "Sheet"
    base, candidate, n = clean[:31], clean[:31], 2
    while candidate.lower() in taken:
        suffix = f" ({n})"
        candidate, n = base[: 31 - len(suffix)] + suffix, n + 1
    taken.add(candidate.lower())
    return candidate


def to_xlsx(result: Tables, path: str | Path) -> Path:
    """One sheet per table (or per ``sheets``), then Notes."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    taken: set[str] = set()
    for t in result.sheets or result.tables:
        ws = wb.create_sheet(sheet_name(t.name, taken))
        ws.append([t.caption or result.title])
        ws["A1"].font = Font(bold=True)
        frame = t.frame.astype(object).where(t.frame.notna(), None)
        ws.append([t.labels.get(c, str(c)) for c in frame.columns])
        for cell in ws[2]:
            cell.font = Font(bold=True)
        for row in frame.itertuples(index=False, name=None):
            ws.append([_plain(v) if not isinstance(v, (list, dict)) else json.dumps(v)
                       for v in row])
        for col in ws.iter_cols(min_row=2, max_row=2):
            header = str(col[0].value or "")
            ws.column_dimensions[col[0].column_letter].width = (
                60 if header.lower() in ("text", "passage") else max(10, min(40, len(header) + 4)))
    notes = wb.create_sheet(sheet_name("Notes", taken))
    if result.summary:
        notes.append([result.summary])
    for n in result.notes:
        notes.append([n])
    neutralise_workbook(wb)
    path = Path(path)
    wb.save(path)
    return path


def write(result: Tables, path: str | Path, fmt: str | None = None) -> Path:
    path = freq_tables.check_output(path)
    fmt = freq_tables.format_for(path, fmt)
    if fmt == "xlsx":
        return to_xlsx(result, path)
    path.write_text(render(result, fmt), encoding="utf-8")
    return path


# -- figures -----------------------------------------------------------------------------------
def check_figure_path(path: str | Path) -> Path:
    path = freq_tables.check_output(path)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise CoderError(f"figures are written as PNG or SVG; {path.name} ends in neither",
                         path=path, hint="name the file FIGURE.png or FIGURE.svg")
    return path


def figure_bytes(fig, fmt: str = "png", *, dpi: int | None = None) -> bytes:
    """The figure as PNG or SVG bytes; the figure is closed afterwards."""
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        # SVG text stays text (editable, searchable), with no date so files are repeatable
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "coder"}):
            fig.savefig(buf, format=fmt, dpi=dpi or fig.dpi,
                        **({"metadata": {"Date": None}} if fmt == "svg" else {}))
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | Path, *, dpi: int | None = None) -> Path:
    path = check_figure_path(path)
    path.write_bytes(figure_bytes(fig, path.suffix.lower().lstrip("."), dpi=dpi))
    return path


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt
