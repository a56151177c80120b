"""Frequency tables in the formats researchers paste into papers.

Every table comes from a :func:`coder.analysis.frequency.frequencies` DataFrame and states its
N. The display formats (terminal table, Markdown, LaTeX, HTML, the XLSX "Frequencies" sheet) use
the seed paper's layout: factor, category, frequency, items. CSV and JSON (and the XLSX "Data"
sheet) carry the DataFrame itself, one row per code and roll-up, for further analysis.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from coder.errors import CoderError, InputError
from coder.spreadsheet import neutralise_frame, neutralise_workbook
from coder.store.codebook import path_levels

FORMATS = ("table", "csv", "md", "latex", "html", "xlsx", "json")
EXTENSIONS = {".txt": "table", ".csv": "csv", ".md": "md", ".markdown": "md", ".tex": "latex",
              ".latex": "latex", ".html": "html", ".htm": "html", ".xlsx": "xlsx",
              ".json": "json"}


@dataclass
class Layout:
    """A table as rows of display strings, shared by every display format."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str]
    numeric: set[int] = field(default_factory=set)      # right-aligned columns
    block_starts: set[int] = field(default_factory=set)  # rows that open a new factor


# -- layout ------------------------------------------------------------------------------------
def layout(df: pd.DataFrame, *, counts: bool = False, items: bool = True) -> Layout:
    """The seed's layout for categories; an indented tree for parents; a cross-tab with --by."""
    N = df.attrs.get("N")
    notes = list(df.attrs.get("notes") or [])
    if not notes or not notes[0].startswith(f"N = {N}"):
        notes.insert(0, f"N = {N}")
    if "value" in df.columns:
        lay = _crosstab(df, notes)
    elif len(df) and (df["level"] == "category").all():
        lay = _seed_layout(df, notes, counts=counts, items=items)
    else:
        lay = _tree_layout(df, notes, counts=counts)
    if df.attrs.get("caveat"):  # e.g. a partial consensus counted with --allow-partial
        lay.title = f"{lay.title} [{df.attrs['caveat']}]"
    return lay


def _seed_layout(df: pd.DataFrame, notes: list[str], *, counts: bool, items: bool) -> Layout:
    parents = df.attrs.get("parents") or {}
    kinds = df.attrs.get("rollups") or ["any", "mean"]
    has_factor = bool((df["depth"] > 1).any())
    has_group = bool((df["group"] != "").any())
    headers = (["Factor"] if has_factor else []) + (["Group"] if has_group else []) + [
        "Category", "Frequency", "n"]
    numeric = {len(headers) - 2, len(headers) - 1}
    if counts:
        headers += ["Segments (coded)", "Documents"]
        numeric |= {len(headers) - 2, len(headers) - 1}
    if items:
        headers.append("Items")

    def rollup_text(code_id: str | None) -> str:
        info = parents.get(code_id) if code_id else None
        if not info:
            return ""
        bits = [f"{k} {info[k]}" for k in kinds if info.get(k)]
        return f"{info['name']} ({'; '.join(bits)})" if bits else info["name"]

    rows, starts = [], set()
    last_factor, last_group = None, None
    for i, r in enumerate(df.itertuples(index=False)):
        path_parts = path_levels(r.path)   # a '/' inside a name is escaped, not a level
        factor_path = path_parts[0]
        group_path = "/".join(path_parts[:-1]) if r.depth > 2 else None
        cells = []
        if has_factor:
            if factor_path != last_factor:
                starts.add(i)
                cells.append(rollup_text(_find(parents, factor_path)) or r.factor)
                last_group = None
            else:
                cells.append("")
        if has_group:
            if group_path and group_path != last_group:
                cells.append(rollup_text(_find(parents, group_path)) or r.group)
            else:
                cells.append("")
        last_factor, last_group = factor_path, group_path
        cells += [r.name, r.label, _int(r.n)]
        if counts:
            cells += [str(r.segments), str(r.documents)]
        if items:
            cells.append(r.items)
        rows.append(cells)
    return Layout("Categories, items, and frequency counts", headers, rows, notes, numeric,
                  starts)


def _find(parents: dict, path: str) -> str | None:
    for code_id, info in parents.items():
        if info["path"] == path:
            return code_id
    return None


def _tree_layout(df: pd.DataFrame, notes: list[str], *, counts: bool) -> Layout:
    headers = ["Code", "Level", "Roll-up", "Frequency", "n"]
    numeric = {3, 4}
    if counts:
        headers += ["Segments (coded)", "Documents"]
        numeric |= {5, 6}
    rows, starts = [], set()
    top = int(df["depth"].min()) if len(df) else 1
    for i, r in enumerate(df.itertuples(index=False)):
        if r.depth == top and (i == 0 or df.iloc[i - 1]["id"] != r.id):
            starts.add(i)
        cells = ["  " * (r.depth - top) + r.name, r.level, r.rollup, r.label, _int(r.n)]
        if counts:
            cells += [str(r.segments), str(r.documents)]
        rows.append(cells)
    level = df.attrs.get("level", "")
    title = {"factor": "Frequency counts by factor", "group": "Frequency counts by group of "
             "categories"}.get(level, "Frequency counts by code")
    return Layout(title, headers, rows, notes, numeric, starts)


def _crosstab(df: pd.DataFrame, notes: list[str]) -> Layout:
    by = df.attrs.get("by") or df["by"].iloc[0]
    groups = df.attrs.get("groups") or {}
    values = list(dict.fromkeys(df["value"]))
    has_factor = bool((df["depth"] > 1).any())
    headers = (["Factor"] if has_factor else []) + ["Code"] + [
        f"{v} (N = {groups.get(v, '')})" for v in values]
    keys = list(dict.fromkeys(zip(df["id"], df["rollup"])))
    cell = {(r.id, r.rollup, r.value): r for r in df.itertuples(index=False)}
    rows, starts, last = [], set(), None
    for i, (code_id, rollup) in enumerate(keys):
        first = cell[(code_id, rollup, values[0])]
        factor = first.factor if first.depth > 1 else ""
        if first.factor != last:
            starts.add(i)
        name = first.name + (f" ({rollup})" if rollup else "")
        row = ([factor if first.factor != last else ""] if has_factor else []) + [name]
        last = first.factor
        for v in values:
            r = cell.get((code_id, rollup, v))
            if r is None:
                row.append("")
            elif rollup == "mean":
                row.append(r.label)
            else:
                row.append(f"{_int(r.n)} ({r.label})" if r.label else _int(r.n))
        rows.append(row)
    notes = [notes[0] + f" Group sizes are in the column headers (participant attribute "
             f"'{by}').", *notes[1:]]
    first_value = 2 if has_factor else 1
    return Layout(f"Frequency counts by {by}", headers, rows, notes,
                  set(range(first_value, len(headers))), starts)


def _int(value) -> str:
    return "" if value is None or pd.isna(value) else str(int(value))


# -- quotes ------------------------------------------------------------------------------------
def _quotes_by_path(quotes: pd.DataFrame | None) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    if quotes is None or quotes.empty:
        return out
    for r in quotes.to_dict("records"):
        out.setdefault(r["path"], []).append(r)
    return out


def _attribution(q: dict) -> str:
    return f"{q['participant']}, {q['document']} segment {q['position']}"


# -- formats -----------------------------------------------------------------------------------
def to_csv(df: pd.DataFrame) -> str:
    return neutralise_frame(df).to_csv(index=False, lineterminator="\n")


def to_json(df: pd.DataFrame) -> str:
    rows = []
    for r in df.to_dict("records"):
        row = {k: (None if _missing(v) else v) for k, v in r.items()}
        row["items"] = [s for s in (row.get("items") or "").split("; ") if s]
        for key in ("n", "N", "segments", "documents", "depth"):
            if row.get(key) is not None:
                row[key] = int(row[key])
        if row.get("percent") is not None:
            p = float(row["percent"])
            row["percent"] = int(p) if df.attrs.get("decimals", 0) == 0 else p
        rows.append(row)
    a = df.attrs
    data = {"N": a.get("N"), "level": a.get("level"), "coders": a.get("coders"),
            "rule": a.get("rule"), "consensus": a.get("consensus"),
            "include_auto": a.get("include_auto"), "decimals": a.get("decimals"),
            "by": a.get("by"), "groups": a.get("groups"), "notes": a.get("notes"), "rows": rows}
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _missing(v) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _md_cell(text: str) -> str:
    # "\<": a memo or quote like "<push>" shows as written instead of vanishing as an HTML tag
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<").replace(
        "\n", " ")


def to_markdown(df: pd.DataFrame, *, quotes: pd.DataFrame | None = None,
                counts: bool = False) -> str:
    lay = layout(df, counts=counts)
    lines = [f"**{lay.title}** (N = {df.attrs.get('N')})", ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in lay.headers) + " |")
    lines.append("|" + "|".join("---:" if i in lay.numeric else "---"
                                for i in range(len(lay.headers))) + "|")
    for row in lay.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    lines.append("")
    lines += [f"_Note: {_md_cell(n)}_" if i == 0 else f"_{_md_cell(n)}_"
              for i, n in enumerate(lay.notes)]
    by_path = _quotes_by_path(quotes)
    if by_path:
        lines += ["", "**Exemplar quotes**", ""]
        for path, qs in by_path.items():
            lines.append(f"- {_md_cell(path)}")
            for q in qs:
                lines.append(f"  - \u201c{_md_cell(q['text'])}\u201d ({_md_cell(_attribution(q))})")
    return "\n".join(lines).rstrip() + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}",
          # outside T1 fonts pdflatex prints < > as other glyphs and stops at a bare ≤
          "<": r"\textless{}", ">": r"\textgreater{}", "\u2264": r"$\leq$",
          "\u2265": r"$\geq$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, *, counts: bool = False) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); long items wrap in a p-column."""
    lay = layout(df, counts=counts)
    spec = "".join("r" if i in lay.numeric else ("p{6cm}" if h == "Items" else "l")
                   for i, h in enumerate(lay.headers))
    out = ["% requires \\usepackage{booktabs}", "\\begin{table}[htbp]", "\\centering",
           f"\\caption{{{latex_escape(lay.title)} (N = {df.attrs.get('N')})}}",
           f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
           " & ".join(latex_escape(h) for h in lay.headers) + " \\\\", "\\midrule"]
    for i, row in enumerate(lay.rows):
        if i in lay.block_starts and i:
            out.append("\\midrule")
        out.append(" & ".join(latex_escape(c) for c in row) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", ""]
    out += [f"\\par\\footnotesize Note: {latex_escape(lay.notes[0])} "
            + " ".join(latex_escape(n) for n in lay.notes[1:]), "\\end{table}"]
    return "\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;
color:#1d2430;line-height:1.45;padding:0 1rem}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #d6dbe3;padding-bottom:.25rem;margin-top:2.2rem}
table.freq{border-collapse:collapse;margin:1rem 0;font-size:.92rem;width:100%}
table.freq caption{text-align:left;font-weight:600;padding:.3rem 0}
table.freq th,table.freq td{padding:.3rem .55rem;vertical-align:top;text-align:left}
table.freq thead th{border-top:2px solid #1d2430;border-bottom:1px solid #1d2430}
table.freq tbody tr:last-child td{border-bottom:2px solid #1d2430}
table.freq tr.block td{border-top:1px solid #b9c0cc}
table.freq td.num,table.freq th.num{text-align:right;white-space:nowrap}
p.note{font-size:.85rem;color:#4a5568;margin:.2rem 0}
blockquote{margin:.4rem 0 .4rem 1rem;padding:.2rem .8rem;border-left:3px solid #9fb3c8;color:#2d3748}
blockquote cite{display:block;font-size:.8rem;color:#6b7785;font-style:normal}
img.chart{max-width:100%;height:auto;border:1px solid #e2e6ec}
.muted{color:#6b7785}ul.codebook li{margin:.2rem 0}
"""


def html_table(lay: Layout, N) -> str:
    """An escaped HTML table fragment with its notes."""
    e = html.escape
    out = ['<table class="freq">', f"<caption>{e(lay.title)} (N = {e(str(N))})</caption>",
           "<thead><tr>"]
    num = ' class="num"'
    out += [f"<th{num if i in lay.numeric else ''}>{e(h)}</th>"
            for i, h in enumerate(lay.headers)]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(lay.rows):
        cls = ' class="block"' if i in lay.block_starts and i else ""
        cells = "".join(f"<td{num if j in lay.numeric else ''}>{_indent(e(c))}</td>"
                        for j, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    out += [f'<p class="note">{"Note: " if i == 0 else ""}{e(n)}</p>'
            for i, n in enumerate(lay.notes)]
    return "\n".join(out)


def _indent(text: str) -> str:
    """Keep the tree layout's leading spaces visible in HTML."""
    stripped = text.lstrip(" ")
    return "&nbsp;&nbsp;" * ((len(text) - len(stripped)) // 2) + stripped


def html_quotes(quotes: pd.DataFrame | None) -> str:
    e = html.escape
    out = []
    for path, qs in _quotes_by_path(quotes).items():
        out.append(f"<h3>{e(path)}</h3>")
        for q in qs:
            out.append(f"<blockquote>{e(q['text'])}<cite>{e(_attribution(q))}</cite></blockquote>")
    return "\n".join(out)


def to_html(df: pd.DataFrame, *, quotes: pd.DataFrame | None = None,
            counts: bool = False) -> str:
    lay = layout(df, counts=counts)
    body = html_table(lay, df.attrs.get("N"))
    if quotes is not None and not quotes.empty:
        body += "\n<h2>Exemplar quotes</h2>\n" + html_quotes(quotes)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(lay.title)}</title><style>{CSS}</style></head>\n<body>\n"
            f"{body}\n</body></html>\n")


def rich_table(df: pd.DataFrame, *, counts: bool = False):
    from rich.table import Table

    lay = layout(df, counts=counts)
    table = Table(title=f"{lay.title} (N = {df.attrs.get('N')})", show_lines=False,
                  caption="Note: " + lay.notes[0], caption_justify="left",
                  expand="Items" in lay.headers or any(" (N = " in h for h in lay.headers))
    crosstab = lay.title.startswith("Frequency counts by ") and any(
        " (N = " in h for h in lay.headers)
    for i, h in enumerate(lay.headers):
        numeric = i in lay.numeric
        sized = numeric or h in ("Category", "Code")  # as wide as their text (up to 32)
        if crosstab and numeric:  # group name over its N
            h = h.replace(" (N = ", "\n(N = ")
        table.add_column(h, justify="right" if numeric else "left", overflow="fold",
                         no_wrap=numeric and not crosstab,
                         max_width=None if numeric else 32 if sized else None,
                         ratio=(3 if h == "Code" else 2 if not numeric else 1) if crosstab
                         else None if sized else (4 if h == "Items" else 2))
    for i, row in enumerate(lay.rows):
        table.add_row(*row, end_section=(i + 1) in lay.block_starts)
    return table, lay


def to_text(df: pd.DataFrame, *, quotes: pd.DataFrame | None = None, counts: bool = False,
            width: int = 120) -> str:
    """The terminal table as plain text (what ``--format table --out FILE`` writes)."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    print_table(df, console, quotes=quotes, counts=counts)
    return buf.getvalue()


def print_table(df: pd.DataFrame, console, *, quotes: pd.DataFrame | None = None,
                counts: bool = False) -> None:
    table, lay = rich_table(df, counts=counts)
    console.print(table)
    for n in lay.notes[1:]:
        console.print(n, markup=False, highlight=False)
    by_path = _quotes_by_path(quotes)
    if by_path:
        console.print("\nExemplar quotes", markup=False, highlight=False)
        for path, qs in by_path.items():
            console.print(f"  {path}", markup=False, highlight=False)
            for q in qs:
                console.print(f"    \u201c{q['text']}\u201d ({_attribution(q)})", markup=False,
                              highlight=False)


def to_xlsx(df: pd.DataFrame, path: str | Path, *, counts: bool = False) -> Path:
    """Sheets: Frequencies (the seed layout), Data (the DataFrame), Notes."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    lay = layout(df, counts=counts)
    wb = Workbook()
    ws = wb.active
    ws.title = "Frequencies"
    ws.append([f"{lay.title} (N = {df.attrs.get('N')})"])
    ws["A1"].font = Font(bold=True)
    ws.append(lay.headers)
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for row in lay.rows:
        ws.append(row)
    ws.append([])
    for i, n in enumerate(lay.notes):
        ws.append([("Note: " if i == 0 else "") + n])
    for col, h in zip(ws.iter_cols(min_row=2, max_row=2), lay.headers):
        letter = col[0].column_letter
        ws.column_dimensions[letter].width = 60 if h == "Items" else 28
        if h == "Items":
            for c in ws[letter][2:]:
                c.alignment = Alignment(wrap_text=True, vertical="top")
    data = wb.create_sheet("Data")
    plain = df.astype(object).where(df.notna(), None)
    data.append(list(plain.columns))
    for row in plain.itertuples(index=False):
        data.append(list(row))
    notes = wb.create_sheet("Notes")
    notes.append([f"N = {df.attrs.get('N')}"])
    for n in df.attrs.get("notes", []):
        notes.append([n])
    path = Path(path)
    neutralise_workbook(wb)
    wb.save(path)
    return path


def render(df: pd.DataFrame, fmt: str, *, quotes: pd.DataFrame | None = None,
           counts: bool = False) -> str:
    """A text format as a string (xlsx is binary: use :func:`write`)."""
    if fmt == "csv":
        return to_csv(df)
    if fmt == "json":
        return to_json(df)
    if fmt == "md":
        return to_markdown(df, quotes=quotes, counts=counts)
    if fmt == "latex":
        return to_latex(df, counts=counts)
    if fmt == "html":
        return to_html(df, quotes=quotes, counts=counts)
    if fmt == "table":
        return to_text(df, quotes=quotes, counts=counts)
    if fmt == "xlsx":
        raise CoderError("xlsx is a binary format", hint="write it to a file with --out FILE.xlsx")
    raise CoderError(f"unknown format '{fmt}'", hint="use " + ", ".join(FORMATS))


def format_for(path: str | Path | None, fmt: str | None, *, formats=FORMATS,
               extensions=EXTENSIONS) -> str:
    """The format asked for, else the one the output file's extension names (of ``formats``
    and ``extensions``: a table's by default; `coder quotes` has its own)."""
    if fmt:
        if fmt not in formats:
            raise CoderError(f"unknown format '{fmt}'", hint="use " + ", ".join(formats))
        return fmt
    if path is None:
        return "table"
    suffix = Path(path).suffix.lower()
    if suffix not in extensions:
        raise CoderError(f"unknown format '{suffix or Path(path).name}' for {path}",
                         hint="give --format (" + ", ".join(formats) + ") or use one of "
                         + ", ".join(sorted(extensions)))
    return extensions[suffix]


def check_output(path: str | Path) -> Path:
    """Refuse an output path whose folder does not exist, before any work is done."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"folder {parent} does not exist", path=path,
                         hint="create it first or choose another output path")
    if path.is_dir():
        raise InputError("is a folder, not a file", path=path)
    return path


def write(df: pd.DataFrame, path: str | Path, fmt: str | None = None, *,
          quotes: pd.DataFrame | None = None, counts: bool = False) -> Path:
    path = check_output(path)
    fmt = format_for(path, fmt)
    if fmt == "xlsx":
        return to_xlsx(df, path, counts=counts)
    path.write_text(render(df, fmt, quotes=quotes, counts=counts), encoding="utf-8")
    return path
