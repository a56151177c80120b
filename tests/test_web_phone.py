"""The review page at phone width: every control stays on screen and nothing scrolls sideways."""

from __future__ import annotations

import pytest
from test_web_browser import CARD, browser, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [360, 414])
def test_review_page_fits_a_phone(browser, server, width):  # noqa: F811
    url, _ = server
    context = browser.new_context(viewport={"width": width, "height": 800}, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(url + "/")
    page.fill("input#name", "phone")
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/review")
    page.wait_for_selector(CARD + " button")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls {overflow}px sideways at {width}px"
    offscreen = page.evaluate(
        """() => [...document.querySelectorAll('button, nav a, input, select')]
               .filter(el => el.offsetParent !== null)
               .map(el => [el.textContent.trim() || el.name || el.id,
                           el.getBoundingClientRect().right])
               .filter(([, right]) => right > window.innerWidth + 0.5)""")
    assert offscreen == []
    small = page.evaluate(
        """() => [...document.querySelectorAll('#segment-card button')]
               .map(el => el.getBoundingClientRect())
               .filter(r => r.height < 32 || r.width < 44).length""")
    assert small == 0, "buttons smaller than a finger at phone width"
    context.close()
