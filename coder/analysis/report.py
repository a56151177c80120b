"""The one-page study report: a self-contained HTML file with the summary, codebook, frequency
tables, charts and agreement, for a supervisor or an appendix."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from coder.analysis.tables import CSS, check_output, html_quotes, html_table, layout
from coder.errors import CoderError, NothingToDo

# -- the study report --------------------------------------------------------------------------
REPORT_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ css }}</style></head>
<body>
<h1>{{ title }}</h1>
<p class="muted">Study file {{ study_path }} &middot; written by coder {{ version }} on {{ when }}</p>

<h2>Study</h2>
<table class="freq"><tbody>
{% for key, value in summary %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>
{% endfor %}</tbody></table>

<h2>Codebook: {{ codebook_name }}</h2>
<p class="muted">{{ codebook_version_note }}</p>
{% if codebook_description %}<p>{{ codebook_description }}</p>{% endif %}
{{ codebook_html }}

<h2>Frequencies</h2>
{% if freq_error %}<p><strong>{{ freq_error }}</strong></p>{% else %}
{{ category_table }}
{% if category_chart %}<p><img class="chart" alt="Percent of participants by category"
 src="data:image/png;base64,{{ category_chart }}"></p>{% endif %}
{{ factor_table }}
{% for table, chart, attribute in by_tables %}
<h3>By {{ attribute }}</h3>
{{ table }}
{% if chart %}<p><img class="chart" alt="Percent of participants by category and {{ attribute }}"
 src="data:image/png;base64,{{ chart }}"></p>{% endif %}
{% endfor %}{% endif %}

{{ methods_html }}

<h2>Agreement</h2>
{% if agreement_html %}{{ agreement_html }}{% else %}<p class="muted">{{ agreement_note }}</p>{% endif %}

<h2>Exemplar quotes</h2>
{% if quotes_html %}{{ quotes_html }}{% else %}<p class="muted">No coded segments to quote yet.</p>{% endif %}
</body></html>
"""


def _codebook_html(book) -> str:
    e = html.escape

    def node(code) -> str:
        bits = [f"<strong>{e(code.name)}</strong>"]
        if code.description:
            bits.append(f" &mdash; {e(code.description)}")
        if code.items:
            bits.append('<br><span class="muted">Items: ' + e("; ".join(code.items)) + "</span>")
        kids = book.children(code.id)
        inner = ("<ul class=\"codebook\">" + "".join(node(k) for k in kids) + "</ul>") if kids \
            else ""
        return f"<li>{''.join(bits)}{inner}</li>"

    return '<ul class="codebook">' + "".join(node(c) for c in book.children(None)) + "</ul>"


def _version_note(study, book) -> str:
    """Which codebook version every table of the report uses, when and from where it came."""
    history = study.codebook_history()
    row = history[history["version"] == book.version]
    when = ""
    if len(row):
        r = row.iloc[0]
        when = f", imported {r['created_at']}" + (f" from {r['source']}" if r["source"] else "") \
            + (f" by {r['imported_by']}" if r["imported_by"] else "")
    older = len(history) - 1
    text = f"Version {book.version} of {len(history)}{when}: the version every table in this "
    if not older:
        return text + "report uses."
    return text + ("report uses (codings made under earlier versions count through their "
                   "stable code ids). Earlier versions and what changed: coder codebook history "
                   f"{study.path}.")


AGREEMENT_COLUMNS = ["comparison", "code", "units", "percent_agreement", "cohen_kappa",
                     "fleiss_kappa", "krippendorff_alpha", "gwet_ac1"]


def _agreement_html(study) -> tuple[str, str]:
    """The per-code agreement table between the human coders, when coder.analysis.agreement is there;
    a report section never sinks the report, so failures become a note."""
    try:
        from coder.analysis.agreement import study_agreement
    except ImportError:
        return "", "Agreement is not available in this version of coder."
    coders = [r["name"] for r in study.db.query(
        "SELECT DISTINCT c.name, c.id FROM coders c JOIN codings k ON k.coder_id = c.id "
        "WHERE c.kind = 'human' ORDER BY c.id")]
    if len(coders) < 2:
        return "", "Agreement needs at least two coders who coded the same segments."
    try:
        result = study_agreement(study, coders, ci=False)
        rows = []
        for comp in result.comparisons:
            label = comp.label
            rows += [{"comparison": label, **r} for r in comp.per_code]
            rows.append({"comparison": label, "code": "(mean over codes)", "units": comp.units,
                         **comp.mean_over_codes})
        frame = pd.DataFrame(rows)
    except CoderError as e:
        return "", f"Agreement could not be computed: {e}"
    except Exception as e:  # noqa: BLE001
        return "", f"Agreement could not be computed ({type(e).__name__}: {e})."
    frame = frame[[c for c in AGREEMENT_COLUMNS if c in frame.columns]]
    names = {"percent_agreement": "% agreement", "cohen_kappa": "Cohen's κ",
             "fleiss_kappa": "Fleiss' κ", "krippendorff_alpha": "Krippendorff's α",
             "gwet_ac1": "Gwet's AC1"}
    frame = frame.rename(columns=names).round(3)
    table = frame.to_html(index=False, classes="freq", border=0, escape=True, na_rep="–")
    note = (f'<p class="note">Coders: {html.escape(", ".join(coders))}; units are segments '
            f"every one of them decided ({result.units}); each code is present or absent per "
            "segment.</p>")
    return table + note, ""


def report(study, path: str | Path, *, coder: str | None = None,
           coders: list[str] | None = None, rule: str = "any", consensus: bool = False,
           include_auto: bool = False, quotes: int = 2, decimals: int = 0,
           by: list[str] | None = None, title: str | None = None,
           allow_partial: bool = False) -> Path:
    """Write one self-contained HTML page (inline CSS, charts as data URIs, nothing fetched).

    A consensus coder that does not yet cover what its coders decided is refused (as by
    ``coder freq``) unless ``allow_partial``; the tables' headers then say what it covers."""
    import jinja2

    from coder import __version__
    from coder.analysis import chart as chart_mod
    from coder.analysis import frequency
    from coder.store.db import now

    path = check_output(path)
    options = dict(coder=coder, coders=coders, rule=rule, consensus=consensus,
                   include_auto=include_auto)
    book = study.codebook()
    status = study.status()
    people = study.participants()
    summary = [("Documents", status.documents), ("Participants", status.participants),
               ("Segments", f"{status.segments} ({status.codable_segments} participant segments)"),
               ("Codebook", f"{book.name} (version {status.codebook_version}, "
                            f"{status.codes} codes)"),
               ("Coders", ", ".join(f"{k} ({v} segments decided)" for k, v in
                                    status.coders.items()) or "none yet")]
    attributes = [c for c in people.columns if c not in ("id", "participant")]
    for a in attributes:
        counts = people[a].fillna("(none)").value_counts().sort_index()
        summary.append((f"Participants by {a}", ", ".join(f"{k}: {v}" for k, v in counts.items())))

    markup = jinja2.utils.markupsafe.Markup
    ctx = dict(codebook_version_note=_version_note(study, book),title=title or f"{book.name}: study report", css=markup(CSS), version=__version__,
               when=now(), study_path=str(study.path), summary=summary,
               codebook_name=book.name, codebook_description=book.description,
               codebook_html=jinja2.utils.markupsafe.Markup(_codebook_html(book)),
               freq_error="", category_table="", factor_table="", category_chart="",
               by_tables=[], quotes_html="")
    try:
        cats = frequency.frequencies(study, level="category", decimals=decimals,
                                     allow_partial=allow_partial, **options)
    except NothingToDo as e:
        ctx["freq_error"] = str(e)
    else:
        ctx["category_table"] = markup(html_table(layout(cats, counts=True), cats.attrs["N"]))
        ctx["category_chart"] = base64.b64encode(chart_mod.png_bytes(cats)).decode("ascii")
        factors = frequency.frequencies(study, level="all", decimals=decimals,
                                        allow_partial=allow_partial, **options)
        if (factors["level"] != "category").any():
            ctx["factor_table"] = markup(html_table(layout(factors, counts=True),
                                                    factors.attrs["N"]))
        for a in (by if by is not None else attributes):
            groups = frequency.frequencies(study, level="category", by=a, decimals=decimals,
                                           allow_partial=allow_partial, **options)
            if groups["value"].nunique() > 13:  # All + 12 groups: beyond that it is unreadable
                continue
            png = chart_mod.png_bytes(groups)
            ctx["by_tables"].append((markup(html_table(layout(groups), groups.attrs["N"])),
                                     base64.b64encode(png).decode("ascii"), a))
        if quotes:
            picked = frequency.exemplars(study, per_code=quotes, allow_partial=allow_partial,
                                         **options)
            ctx["quotes_html"] = markup(html_quotes(picked))
    agreement_html, agreement_note = _agreement_html(study)
    ctx["agreement_html"] = markup(agreement_html) if agreement_html else ""
    ctx["agreement_note"] = agreement_note
    # co-occurrence, matrix, saturation, model figure, memos: coder.analysis.sections
    from coder.analysis import sections

    ctx["methods_html"] = markup(sections.report_html(study, allow_partial=allow_partial,
                                                       **options))
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = env.from_string(REPORT_TEMPLATE).render(**ctx)
    path.write_text(page, encoding="utf-8")
    return path
