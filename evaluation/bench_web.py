"""Decision round trip of the review page in a real browser, and a screenshot of it.

Builds a study from the bundled demo interviews (seed codebook, codebook-only suggestions from
the bundled embedding model, the demo coders' scripted decisions), serves it with `coder serve`'s
app on a free loopback port, and drives Debian's chromium with Playwright as coder "you":

* ``no code`` (n): key press -> decision stored (POST) -> next segment fetched and painted;
* ``accept`` (a): key press -> decision stored -> the card repainted with the code ticked.

Times run from the keydown event's timestamp to the first animation frame after the card's
DOM changed (what the eye sees), both on the page's own clock. Prints p50/p95 and writes the
screenshot to evaluation/review_page.png.

    python evaluation/bench_web.py [--decisions 30] [--study existing.db] [--fake-suggestions]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from web_helpers import add_suggestions, running  # noqa: E402

from coder.study import Study  # noqa: E402
from coder.web.app import create_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PROBE = """() => {
  window.__marks = [];
  const card = document.getElementById('card');
  document.addEventListener('keydown', ev => { window.__down = ev.timeStamp; }, true);
  new MutationObserver(() => {
    const down = window.__down;
    requestAnimationFrame(() => requestAnimationFrame(t => {
      window.__marks.push({down: down, dom: performance.now(), frame: t});
    }));
  }).observe(card, {childList: true});
}"""


def build_demo_study(folder: Path, fake: bool) -> tuple[Path, str]:
    from coder import demo

    path = folder / "study.db"
    with Study.create(path, codebook=demo.SEED_CODEBOOK) as study:
        study.import_transcripts(demo.transcripts(),
                                 participants=demo.DEMO_DATA / "participants.csv")
        how = "fake suggestions"
        if not fake:
            try:
                from coder.machine import suggest

                started = time.perf_counter()
                suggest.suggest(study)
                how = f"codebook-only suggestions ({time.perf_counter() - started:.0f} s)"
            except Exception as e:  # noqa: BLE001 - the bench still measures the page
                print(f"suggest failed ({type(e).__name__}: {e}); using fake suggestions")
        if how == "fake suggestions":
            add_suggestions(study, per_segment=3)
        demo.play_decisions(study, demo.DEMO_DATA / "decisions.csv")
    return path, how


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(page, key: str) -> float:
    page.evaluate("() => { window.__marks = []; }")
    page.keyboard.press(key)
    page.wait_for_function("() => window.__marks.length > 0")
    mark = page.evaluate("() => window.__marks[0]")
    return mark["frame"] - mark["down"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=30)
    parser.add_argument("--study", type=Path, help="use a copy of this study instead of the demo")
    parser.add_argument("--fake-suggestions", action="store_true",
                        help="do not load the embedding model; insert made-up suggestions")
    parser.add_argument("--screenshot", type=Path, default=ROOT / "evaluation" / "review_page.png")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="coder-bench-web-"))
    try:
        if args.study:
            path = work / "study.db"
            shutil.copy(args.study, path)
            how = f"copy of {args.study}"
        else:
            path, how = build_demo_study(work, args.fake_suggestions)
        with Study(path) as s:
            st = s.status()
        print(f"study: {st.documents} documents, {st.segments} segments, "
              f"{st.suggestions} suggestions; {how}")
        with running(create_app(path)) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 860},
                                          device_scale_factor=1)
            context.add_cookies([{"name": "coder_name", "value": "you", "url": url}])
            page = context.new_page()
            page.goto(url + "/review?order=document")
            page.wait_for_selector("#segment-card li.suggestion")
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.screenshot), full_page=True)
            print(f"screenshot: {args.screenshot}")
            page.evaluate(PROBE)
            nxt, acc = [], []
            for _ in range(args.decisions):
                if page.locator("#segment-card li.suggestion[data-state='']").count():
                    acc.append(measure(page, "a"))
                nxt.append(measure(page, "n"))
            browser.close()
        with Study(path) as s:
            stored = len(s.codings(coder="you"))
        print(f"decisions stored by 'you': {stored}")
        for name, values in (("no code -> next segment shown", nxt),
                             ("accept -> card repainted", acc)):
            print(f"{name:<32} n={len(values):>3}  p50 {pct(values, .5):6.1f} ms  "
                  f"p95 {pct(values, .95):6.1f} ms  max {max(values):6.1f} ms  "
                  f"mean {statistics.mean(values):6.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
