"""The web page in a real browser: Debian's chromium driven by Playwright against `coder serve`'s
app on a free port, over a real study file in a tmp dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from coder.study import Study
from coder.web.app import create_app

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import XSS_TEXT, make_study, running  # noqa: E402

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
CARD = "#segment-card"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():  # a missing browser is a failure, never a silent skip
        pytest.fail(f"{CHROMIUM} is missing: `./dev test` installs Debian's chromium "
                    "(apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def server(tmp_path):
    path = make_study(tmp_path / "s")
    with running(create_app(path)) as url:
        yield url, path


def sign_in(browser, url: str, name: str):
    """A fresh browser context (its own cookies) that has chosen a coder, keyboard only."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(url + "/")
    page.wait_for_selector("input#name:focus")
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/review")
    page.wait_for_selector(CARD)
    return context, page


def shown(page) -> int | None:
    value = page.get_attribute(CARD, "data-segment-id")
    return int(value) if value else None


def press_and_wait(page, key: str) -> int | None:
    """Press a key and wait until a different segment is on the card."""
    before = shown(page)
    page.keyboard.press(key)
    page.wait_for_function(
        "old => { const c = document.getElementById('segment-card');"
        " return c && c.dataset.segmentId !== String(old); }", arg=before)
    return shown(page)


def decisions(path: Path, coder: str) -> dict[int, list[tuple[str | None, str]]]:
    with Study(path) as s:
        df = s.codings(coder=coder)
    out: dict[int, list] = {}
    for r in df.itertuples():
        out.setdefault(int(r.segment_id), []).append(
            (None if r.code_id is None or r.code_id != r.code_id else r.code_id, r.decision))
    return out


def test_review_ten_segments_with_the_keyboard_only_then_undo(browser, server):
    url, path = server
    context, page = sign_in(browser, url, "alice")
    seen, expected = [], {}
    plan = ["a", "a", "r", "n", "o", "a", "m", "a", "n", "a"]
    for key in plan:
        sid = shown(page)
        seen.append(sid)
        code = page.get_attribute(f"{CARD} li.suggestion", "data-code-id")
        if key == "o":  # pick another code by typing; stays on the segment, Enter moves on
            page.keyboard.press("o")
            page.wait_for_selector("#picker-input:focus")
            page.keyboard.type("financ")
            page.wait_for_selector("#picker-list li.highlight >> text=Financial constraints")
            page.keyboard.press("Enter")
            page.wait_for_selector(f"{CARD} #mine >> text=Financial constraints")
            press_and_wait(page, "Enter")
            expected[sid] = [("bar-finance", "added")]
            continue
        if key == "m":  # a memo, then accept
            page.keyboard.press("m")
            page.wait_for_selector("#memo-input:focus")
            page.keyboard.type("first export via a cousin")
            page.keyboard.press("Enter")
            page.wait_for_selector(f"{CARD} .memos >> text=first export via a cousin")
            key = "a"
        press_and_wait(page, key)
        expected[sid] = {"a": [(code, "confirmed")], "r": [(code, "rejected")],
                         "n": [(None, "no_code")]}[key]
    assert len(set(seen)) == 10
    assert decisions(path, "alice") == expected
    assert page.inner_text("#progress").startswith("10 decided")
    # undo: the last segment comes back and its decision is gone
    page.keyboard.press("u")
    page.wait_for_function(f"() => document.getElementById('segment-card').dataset.segmentId"
                           f" === '{seen[-1]}'")
    page.wait_for_selector("#flash >> text=Undone.")
    got = decisions(path, "alice")
    assert seen[-1] not in got and len(got) == 9
    # skip leaves no decision
    after = press_and_wait(page, "s")
    assert after != seen[-1] and len(decisions(path, "alice")) == 9
    context.close()


def test_keys_typed_ahead_are_not_lost(browser, server):
    url, path = server
    context, page = sign_in(browser, url, "dora")
    for _ in range(5):
        page.keyboard.press("a")
    page.wait_for_function("() => document.getElementById('progress').textContent"
                           ".startsWith('5 decided')")
    assert sum(len(v) for v in decisions(path, "dora").values()) == 5
    context.close()


def test_two_coders_at_once(browser, server):
    url, path = server
    (ca, alice), (cb, bob) = sign_in(browser, url, "alice"), sign_in(browser, url, "bob")
    for _ in range(4):
        press_and_wait(alice, "a")
        press_and_wait(bob, "n")
    a, b = decisions(path, "alice"), decisions(path, "bob")
    assert len(a) == 4 and len(b) == 4
    assert all(v[0][1] == "confirmed" for v in a.values())
    assert all(v == [(None, "no_code")] for v in b.values())
    assert alice.inner_text("#coder-name") == "alice" and bob.inner_text("#coder-name") == "bob"
    # bob sees alice's code on a segment she decided only with the setting; in blind mode not
    sid = next(iter(a))
    bob.goto(f"{url}/review?segment={sid}")
    assert "alice" not in bob.inner_text(CARD)
    bob.goto(f"{url}/review?segment={sid}&others=1")
    assert "alice:" in bob.inner_text(CARD)
    bob.goto(f"{url}/review?segment={sid}&blind=1")
    assert "alice" not in bob.inner_text(CARD) and bob.locator("li.suggestion").count() == 0
    ca.close()
    cb.close()


def test_script_in_a_transcript_renders_as_text(browser, server):
    url, path = server
    context, page = sign_in(browser, url, "alice")
    page.goto(url + "/transcripts/p99")
    assert XSS_TEXT in page.inner_text("ol.transcript")
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator("ol.transcript img").count() == 0
    page.click("ol.transcript li.seg.participant")  # click a segment to (re)code it
    page.wait_for_selector(CARD)
    assert XSS_TEXT in page.inner_text("#segment-text")
    assert page.evaluate("() => window.__pwned === undefined")
    page.keyboard.press("a")
    page.wait_for_selector(f"{CARD} #mine li.decision-confirmed")
    page.goto(url + "/transcripts/p99")
    assert "alice" in page.inner_text("ol.transcript")
    context.close()


def test_post_without_the_csrf_token_is_refused(browser, server):
    url, path = server
    context, page = sign_in(browser, url, "mallory")
    sid = shown(page)
    script = """async ([sid, token]) => {
        const headers = {'Content-Type': 'application/json'};
        if (token) headers['X-CSRF-Token'] = token;
        const r = await fetch('/api/decide', {method: 'POST', headers,
            body: JSON.stringify({segment_id: sid, code_id: null, decision: 'no_code'})});
        return [r.status, await r.text()];
    }"""
    status, body = page.evaluate(script, [sid, None])
    assert status == 403 and "CSRF" in body
    status, _ = page.evaluate(script, [sid, "forged"])
    assert status == 403
    assert decisions(path, "mallory") == {}
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    status, _ = page.evaluate(script, [sid, token])
    assert status == 200 and decisions(path, "mallory") == {sid: [(None, "no_code")]}
    context.close()


def test_several_codes_on_one_segment(browser, tmp_path):
    path = make_study(tmp_path / "two", suggestions=2, xss=False)
    with running(create_app(path)) as url:
        context, page = sign_in(browser, url, "alice")
        sid = shown(page)
        first, second = [li.get_attribute("data-code-id")
                         for li in page.locator(f"{CARD} li.suggestion").all()]
        page.keyboard.press("j")
        page.wait_for_selector(f"{CARD} li.suggestion.highlight[data-code-id='{second}']")
        page.keyboard.press("a")  # the second: one suggestion left, so the card stays
        page.wait_for_selector(f"{CARD} li.suggestion[data-code-id='{second}'][data-state='confirmed']")
        assert shown(page) == sid
        names = {"trig-domestic": "Domestic conditions", "trig-globalization": "Globalization",
                 "net-institutions": "non-government", "net-personal": "Personal relations",
                 "bar-finance": "Financial constraints"}
        other = next(c for c in names if c not in (first, second))
        page.keyboard.press("o")
        page.keyboard.type(names[other].lower())
        page.keyboard.press("Enter")  # a code the machine did not suggest: 'added'
        page.wait_for_selector(f"{CARD} #mine li.decision-added")
        after = press_and_wait(page, "a")  # the first: nothing pending, on to the next segment
        assert after != sid
        assert sorted(decisions(path, "alice")[sid]) == sorted(
            [(first, "confirmed"), (second, "confirmed"), (other, "added")])
        context.close()
