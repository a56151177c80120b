"""The methods analyses as HTML sections, shared by ``coder report`` and the web page's
Analysis view: co-occurrence, the code x participant matrix, saturation, the model figure and
the memos next to their codes. A section that cannot be computed becomes a note; it never
sinks the page. Everything from the study is escaped; figures are PNG data URIs (no inline
styles or scripts, so the web page's Content-Security-Policy holds)."""

from __future__ import annotations

import base64
import html

from coder.analysis import cooccurrence, matrix, memos, model_figure, outputs, saturation
from coder.errors import CoderError

VIEWS = {"cooccur": "Co-occurrence", "matrix": "Codes by participant",
         "saturation": "Saturation", "model": "Model figure", "memos": "Memos"}


def _img(fig, alt: str) -> str:
    data = base64.b64encode(outputs.figure_bytes(fig, "png", dpi=130)).decode("ascii")
    return (f'<p><img class="chart" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{data}"></p>')


def _note(text: str) -> str:
    return f'<p class="muted">{html.escape(text)}</p>'


def cooccur_html(study, *, quotes: int = 1, top: int = 15, **who) -> str:
    result = cooccurrence.cooccurrence(study, quotes=quotes, **who)
    out = []
    try:
        out.append(_img(result.figure(), "Heatmap of codes on the same segment"))
    except CoderError as e:
        out.append(_note(str(e)))
    shown = result.tables()
    listed = set(map(tuple, result.pairs.head(top)[["code_a", "code_b"]].to_numpy()))
    shown.tables[0].frame = result.pairs.head(top)
    shown.tables[0].caption = f"The {min(top, len(result.pairs))} pairs sharing most segments"
    if len(shown.tables) > 1:
        q = shown.tables[1].frame
        shown.tables[1].frame = q[[(a, b) in listed for a, b in zip(q["code_a"], q["code_b"])]]
    return "\n".join(out) + "\n" + outputs.html_fragment(shown)


def matrix_html(study, **who) -> str:
    return outputs.html_fragment(matrix.case_matrix(study, by="participant", **who).tables())


def saturation_html(study, **who) -> str:
    result = saturation.saturation(study, **who)
    return _img(result.figure(), result.statement) + "\n" + outputs.html_fragment(
        result.tables())


def model_html(study, **who) -> str:
    fig = model_figure.plot(study, **who)
    return _img(fig, "The study's model: factors, categories and percent of participants")


def memos_html(study, **who) -> str:
    # one coder's table shows that coder's memos (a signed-in coder sees only their own)
    frame = memos.memos(study, coder=who.get("coder"))
    if frame.empty:
        return _note("No memos yet (press m in the review to write one).")
    e = html.escape
    out = []
    for heading, block in memos.by_code(frame, study.codebook()):
        out.append(f"<h3>{e(heading)}</h3><ul>")
        for r in block.to_dict("records"):
            where = r["document"] + (f", segment {r['position']}" if r["position"] is not None
                                     and str(r["position"]) != "<NA>" else "")
            out.append(f"<li>{e(str(r['text']))} <span class=\"muted\">({e(r['kind'])} memo, "
                       f"{e(r['coder'] or 'unknown coder')}, {e(where)})</span></li>")
        out.append("</ul>")
    notes = memos.tables(frame).notes
    out += [f'<p class="note">{e(n)}</p>' for n in notes]
    return "\n".join(out)


BUILDERS = {"cooccur": cooccur_html, "matrix": matrix_html, "saturation": saturation_html,
            "model": model_html, "memos": memos_html}


def view_html(study, view: str, **who) -> str:
    """One section's HTML; a reason instead when it cannot be computed."""
    if view not in BUILDERS:
        raise CoderError(f"unknown view '{view}'", hint="use " + ", ".join(VIEWS))
    try:
        return BUILDERS[view](study, **who)
    except CoderError as e:
        return _note(f"{VIEWS[view]}: {e}")


def report_html(study, **who) -> str:
    """Every section, with its heading, for ``coder report``."""
    return "\n".join(f"<h2>{html.escape(title)}</h2>\n{view_html(study, key, **who)}"
                     for key, title in VIEWS.items())
