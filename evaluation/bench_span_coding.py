"""Coding a span in the transcript page, in a real browser: how long from the key to stored.

Builds a study from the bundled demo interviews (seed codebook, the demo coders' scripted
decisions, so the pages already carry highlights) plus one long interview (``--turns`` turns),
serves it with `coder serve`'s app on a free loopback port and drives Debian's chromium with
Playwright as coder "you". For each span: a phrase of 2-8 words inside a participant's turn (one
in five runs on into the next turn) is selected with a DOM Range and a mouse-up, the picker
opens, a few letters of a code are typed, Enter.

Times are on the page's own clock (transcript.js records them in sessionStorage):

* key -> stored: Enter in the picker -> the server's answer (the coding committed);
* key -> shown: Enter -> the new highlight painted (the page redraws the segments whose
  highlights changed from the layout the server sends back; no reload);
* mouse-up -> picker: the selection mapped to document offsets and the picker open.

Every stored span is checked against the characters selected. Prints p50/p95 per measure.

    python evaluation/bench_span_coding.py [--spans 50] [--turns 150] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from web_helpers import running, write_interview  # noqa: E402

from coder.study import Study  # noqa: E402
from coder.web.app import create_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SELECT = """([start, end]) => {
  function point(pos, isEnd) {
    for (const p of document.querySelectorAll('#transcript .piece')) {
      const a = +p.dataset.start, b = +p.dataset.end;
      if (pos >= a && (pos < b || (isEnd && pos === b))) {
        let left = pos - a;
        const w = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
        let n;
        while ((n = w.nextNode())) { if (left <= n.length) return [n, left]; left -= n.length; }
      }
    }
    throw new Error('no piece holds ' + pos);
  }
  const [sn, so] = point(start, false), [en, eo] = point(end, true);
  const r = document.createRange(); r.setStart(sn, so); r.setEnd(en, eo);
  getSelection().removeAllRanges(); getSelection().addRange(r);
  const t0 = performance.now();
  sn.parentElement.dispatchEvent(new MouseEvent('mouseup', {bubbles: true, button: 0}));
  return performance.now() - t0;   // the mouse-up handler ran synchronously: picker open
}"""


def build(folder: Path, turns: int) -> Path:
    from coder import demo

    path = folder / "study.db"
    long = write_interview(folder / "p_long.txt", "MS LONG", turns)
    with Study.create(path, codebook=demo.SEED_CODEBOOK) as study:
        study.import_transcripts(demo.transcripts() + [long],
                                 participants=demo.DEMO_DATA / "participants.csv")
        demo.play_decisions(study, demo.DEMO_DATA / "decisions.csv")
    return path


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def phrases(study: Study, document: str, rng: random.Random, n: int) -> list[tuple[int, int]]:
    """``n`` word-aligned spans [start, end) of participants' turns; some run into the next."""
    segs = study.db.query(
        "SELECT v.start_char, v.end_char, v.text, v.role FROM segment_view v WHERE "
        "v.document=? ORDER BY v.start_char", (document,))
    text = study.db.one("SELECT text FROM documents WHERE name=?", (document,))["text"]
    out = []
    while len(out) < n:
        i = rng.randrange(len(segs))
        seg = segs[i]
        if seg["role"] == "interviewer" or len(seg["text"].split()) < 4:
            continue
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", seg["text"])]
        k = rng.randrange(0, len(words) - 1)
        length = rng.randint(2, 8)
        start = seg["start_char"] + words[k][0]
        if rng.random() < 0.2 and i + 1 < len(segs):      # across the turn boundary
            nxt = segs[i + 1]
            end = nxt["start_char"] + min(len(nxt["text"]), rng.randint(5, 40))
        else:
            end = seg["start_char"] + words[min(k + length, len(words)) - 1][1]
        if text[start:end].strip() and (start, end) not in out:
            out.append((start, end))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=50)
    parser.add_argument("--turns", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="coder-bench-span-"))
    try:
        path = build(work, args.turns)
        with Study(path) as s:
            st = s.status()
            sizes = {r["name"]: (len(r["text"]), r["n"]) for r in s.db.query(
                "SELECT d.name, d.text, COUNT(s.id) AS n FROM documents d JOIN segments s ON "
                "s.document_id=d.id GROUP BY d.id")}
            half = args.spans // 2
            plan = [("p01", x) for x in phrases(s, "p01", rng, half)]
            plan += [("p_long", x) for x in phrases(s, "p_long", rng, args.spans - half)]
            codes = list(s.codebook().leaves())
            existing = s.db.one("SELECT COUNT(*) FROM codings")[0]
        rng.shuffle(plan)
        print(f"study: {st.documents} documents, {st.segments} segments, {existing} codings "
              f"already; coding on p01 ({sizes['p01'][0]:,} characters, {sizes['p01'][1]} "
              f"segments) and p_long ({sizes['p_long'][0]:,} characters, "
              f"{sizes['p_long'][1]} segments)")
        with running(create_app(path)) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            context.add_cookies([{"name": "coder_name", "value": "you", "url": url}])
            page = context.new_page()
            page.set_default_timeout(20_000)
            picker, wanted = [], []
            current = None
            for n, (doc, (start, end)) in enumerate(plan, 1):
                if doc != current:
                    page.goto(f"{url}/transcripts/{doc}")
                    page.wait_for_selector("#transcript")
                    current = doc
                picker.append(page.evaluate(SELECT, [start, end]))
                page.wait_for_selector("#span-picker-input:focus")
                code = rng.choice(codes)
                page.keyboard.type(code.name.split()[0][:5].lower())
                page.wait_for_selector("#span-picker-list li.highlight")
                chosen = page.get_attribute("#span-picker-list li.highlight", "data-code-id")
                page.keyboard.press("Enter")
                page.wait_for_function(f"() => document.getElementById('transcript')"
                                       f".dataset.shown === '{n}'")
                wanted.append((doc, start, end, chosen))
            timings = page.evaluate("() => JSON.parse(sessionStorage.getItem("
                                    "'coder-span-timings'))")
            browser.close()
        with Study(path) as s:
            got = s.db.query(
                "SELECT d.name, x.start_char, x.end_char, x.code_id, d.text FROM coding_spans x "
                "JOIN coders c ON c.id=x.coder_id JOIN documents d ON d.id=x.document_id "
                "WHERE c.name='you'")
            stored = {(r["name"], r["start_char"], r["end_char"], r["code_id"]) for r in got}
            texts = {r["name"]: r["text"] for r in got}
        # the page trims white space at the ends of a selection; the phrases have none
        exact = sum((d, a, b, c) in stored for d, a, b, c in wanted)
        print(f"spans stored by 'you': {len(stored)}; exactly the characters selected: "
              f"{exact} of {len(wanted)}")
        assert texts  # something was stored
        key_stored = [t["stored"] - t["chosen"] for t in timings]
        key_shown = [t["shown"] - t["chosen"] for t in timings]
        for name, values in (("key -> stored", key_stored),
                             ("key -> highlight painted", key_shown),
                             ("mouse-up -> picker open", picker)):
            print(f"{name:<34} n={len(values):>3}  p50 {pct(values, .5):6.1f} ms  "
                  f"p95 {pct(values, .95):6.1f} ms  max {max(values):6.1f} ms  "
                  f"mean {statistics.mean(values):6.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
