"""A study served to a team (`coder serve` with `coder users`): sign-in, sessions, roles,
independence, rate limit, cookie flags, TLS and one writer; over real study files and real
servers (uvicorn on loopback, and `coder serve` as a process)."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from coder.store import users
from coder.study import Study
from coder.web.app import create_app

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import run  # noqa: E402
from web_helpers import make_study, running  # noqa: E402

BASE = "http://127.0.0.1:8765"
PASSWORDS = {"alice": "alice's long password", "bob": "bob's long password"}


@pytest.fixture
def team(tmp_path) -> Path:
    """A study with a lead (alice) and a coder (bob), both past their one-time password."""
    path = make_study(tmp_path / "s")
    with Study(path) as s:
        users.add_user(s, "alice", role="lead", password=PASSWORDS["alice"])
        users.add_user(s, "bob", password=PASSWORDS["bob"])
    return path


def csrf_of(c: TestClient, page: str = "/signin") -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', c.get(page).text).group(1)


def signed_in(path: Path, name: str, password: str | None = None, **kwargs) -> TestClient:
    c = TestClient(create_app(path, **kwargs), base_url=BASE)
    r = c.post("/signin", data={"name": name, "password": password or PASSWORDS[name],
                                "csrf": csrf_of(c)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def decide(c: TestClient, segment_id: int, code: str, decision: str = "confirmed", **extra):
    return c.post("/api/decide", json={"segment_id": segment_id, "code_id": code,
                                       "decision": decision, **extra},
                  headers={"X-CSRF-Token": csrf_of(c, "/start")})


def first_segments(path: Path, n: int = 2) -> list[int]:
    with Study(path) as s:
        return [int(x) for x in s.segments(include_interviewer=False)["segment_id"][:n]]


def leaf(path: Path, i: int = 0) -> str:
    with Study(path) as s:
        return s.codebook().leaves()[i].id


def coded_by(path: Path) -> list[tuple[str, int, str]]:
    with Study(path) as s:
        return sorted((r["coder"], r["segment_id"], r["code_id"]) for r in s.db.query(
            "SELECT c.name AS coder, k.segment_id, k.code_id FROM codings k JOIN coders c "
            "ON c.id=k.coder_id WHERE k.decision='confirmed'"))


# -- who may come in --------------------------------------------------------------------------
def test_a_study_with_users_asks_everyone_to_sign_in(team):
    c = TestClient(create_app(team), base_url=BASE)
    c.cookies.set("coder_name", "alice")          # the old self-declared name counts for nothing
    r = c.get("/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Freview"
    assert c.get("/api/next").status_code == 401
    assert c.get("/analysis", follow_redirects=False).status_code == 303
    r = decide(c, first_segments(team)[0], leaf(team))
    assert r.status_code == 401
    assert coded_by(team) == []


def test_beyond_loopback_without_users_nobody_gets_in(tmp_path):
    path = make_study(tmp_path / "s")
    c = TestClient(create_app(path, local_only=False), base_url="http://192.168.1.20:8765")
    c.cookies.set("coder_name", "alice")
    assert c.get("/api/next").status_code == 401
    r = c.get("/review", follow_redirects=False)
    assert r.headers["location"].startswith("/signin")


def test_serve_beyond_loopback_refuses_a_study_without_users(tmp_path):
    path = make_study(tmp_path / "s")
    r = run("serve", path, "--host", "0.0.0.0", "--port", "0")
    assert r.exit_code == 2
    assert "each coder must sign in" in r.output and "coder users add" in r.output
    r = run("serve", path, "--tls-cert", path, "--port", "0")
    assert r.exit_code == 2 and "--tls-cert and --tls-key go together" in r.output


def test_sign_in_with_the_one_time_password_then_choose_one(tmp_path):
    path = make_study(tmp_path / "s")
    with Study(path) as s:
        _, once = users.add_user(s, "carol")
    c = signed_in(path, "carol", once)
    r = c.get("/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/password"
    assert decide(c, first_segments(path)[0], leaf(path)).status_code == 403
    token = csrf_of(c, "/password")
    r = c.post("/password", data={"current": once, "new": "short", "repeat": "short",
                                  "csrf": token})
    assert r.status_code == 400 and "at least 10 characters" in r.text
    r = c.post("/password", data={"current": once, "new": "carol's own password",
                                  "repeat": "carol's own password", "csrf": token},
               follow_redirects=False)
    assert r.status_code == 303
    assert decide(c, first_segments(path)[0], leaf(path)).status_code == 200
    assert coded_by(path) == [("carol", first_segments(path)[0], leaf(path))]


def test_wrong_password_is_refused_and_says_not_which_part(team):
    c = TestClient(create_app(team), base_url=BASE)
    for name in ("alice", "mallory"):
        r = c.post("/signin", data={"name": name, "password": "guess", "csrf": csrf_of(c)})
        assert r.status_code == 403 and "Wrong name or password." in r.text
    assert "coder_session" not in c.cookies


def test_sign_in_is_rate_limited_per_name_and_per_client(team):
    c = TestClient(create_app(team), base_url=BASE)
    token = csrf_of(c)
    for _ in range(5):
        assert c.post("/signin", data={"name": "bob", "password": "guess",
                                       "csrf": token}).status_code == 403
    r = c.post("/signin", data={"name": "bob", "password": PASSWORDS["bob"], "csrf": token})
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60 + 1
    # the same client is also held back for another name (password spraying)
    r = c.post("/signin", data={"name": "alice", "password": PASSWORDS["alice"], "csrf": token})
    assert r.status_code == 429


def test_session_cookie_flags_and_next_stays_on_this_site(team):
    c = TestClient(create_app(team), base_url=BASE)
    r = c.post("/signin", data={"name": "bob", "password": PASSWORDS["bob"], "next": "//evil.example/",
                                "csrf": csrf_of(c)}, follow_redirects=False)
    assert r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "coder_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie     # plain HTTP on loopback: a Secure cookie would not return
    c = TestClient(create_app(team, tls=True), base_url="https://127.0.0.1:8765")
    r = c.post("/signin", data={"name": "bob", "password": PASSWORDS["bob"], "next": "/review",
                                "csrf": csrf_of(c)}, follow_redirects=False)
    assert r.headers["location"] == "/review" and "; secure" in r.headers["set-cookie"].lower()


def test_sign_out_and_removal_end_the_session_at_once(team):
    bob = signed_in(team, "bob")
    assert bob.get("/api/next").status_code == 200
    with Study(team) as s:                         # the lead, on the server's machine
        users.remove_user(s, "bob")
    assert bob.get("/api/next").status_code == 401
    alice = signed_in(team, "alice")
    r = alice.post("/signout", data={"csrf": csrf_of(alice, "/start")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    alice.cookies.clear()
    assert alice.get("/api/next").status_code == 401


# -- each decision is the signed-in coder's ----------------------------------------------------
def test_decisions_are_the_signed_in_coders_whatever_the_request_says(team):
    sid = first_segments(team)[0]
    bob = signed_in(team, "bob")
    bob.cookies.set("coder_name", "alice")        # a forged name cookie
    assert decide(bob, sid, leaf(team), coder="alice").status_code == 200
    r = bob.post("/start", data={"name": "alice", "csrf": csrf_of(bob, "/start")})
    assert r.status_code == 403 and "signed in as bob" in r.text
    assert coded_by(team) == [("bob", sid, leaf(team))]
    assert "Signed in: <strong id=\"coder-name\">bob</strong>" in bob.get("/start").text


def test_a_csrf_token_is_bound_to_its_session(team):
    alice, bob = signed_in(team, "alice"), signed_in(team, "bob")
    stolen = csrf_of(alice, "/start")
    r = bob.post("/api/decide", json={"segment_id": first_segments(team)[0],
                                      "code_id": leaf(team), "decision": "confirmed"},
                 headers={"X-CSRF-Token": stolen})
    assert r.status_code == 403 and "CSRF" in r.text
    assert coded_by(team) == []


# -- roles and independence --------------------------------------------------------------------
def test_only_a_lead_reconciles_and_sets_independence(team):
    a, b = first_segments(team)
    alice, bob = signed_in(team, "alice"), signed_in(team, "bob")
    assert decide(alice, a, leaf(team, 0)).status_code == 200
    assert decide(bob, a, leaf(team, 1)).status_code == 200
    assert decide(alice, b, leaf(team, 0)).status_code == 200
    assert decide(bob, b, leaf(team, 0)).status_code == 200
    assert bob.get("/reconcile").status_code == 403
    assert "only a lead" in bob.get("/team").text
    for url, body in (("/reconcile/start", {"coders": "alice,bob"}),
                      ("/team", {"others": "on"}),
                      ("/reconcile", {"document": "p10", "segment": "2", "agreed": "none"})):
        r = bob.post(url, data={**body, "csrf": csrf_of(bob, "/start")})
        assert r.status_code == 403 and "only a lead" in r.text, url
    assert "Team</a>" not in bob.get("/start").text
    with Study(team) as s:
        assert s.db.one("SELECT COUNT(*) FROM coders WHERE kind='consensus'")[0] == 0
        assert users.others_visible(s.db) is False
    # the lead starts the consensus: the agreed segment is carried over, the other is open
    token = csrf_of(alice, "/start")
    r = alice.post("/reconcile/start", data={"coders": "alice,bob", "as": "consensus",
                                             "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    page = alice.get("/reconcile").text
    with Study(team) as s:
        pos_a = s.db.one("SELECT position FROM segments WHERE id=?", (a,))[0]
        pos_b = s.db.one("SELECT position FROM segments WHERE id=?", (b,))[0]
    assert f'id="item-p10-{pos_a}"' in page and f'id="item-p10-{pos_b}"' not in page
    r = alice.post("/reconcile", data={"as": "consensus", "document": "p10",
                                       "segment": str(pos_a), "agreed": leaf(team, 1),
                                       "reason": "bob is right", "csrf": token},
                   follow_redirects=False)
    assert r.status_code == 303
    assert 'id="nothing-open"' in alice.get("/reconcile").text
    assert ("consensus", a, leaf(team, 1)) in coded_by(team)
    assert ("consensus", b, leaf(team, 0)) in coded_by(team)


def test_a_coder_sees_only_their_own_decisions_until_the_lead_allows_more(team):
    sid, other = first_segments(team)
    alice, bob = signed_in(team, "alice"), signed_in(team, "bob")
    assert decide(alice, sid, leaf(team, 2)).status_code == 200
    assert decide(bob, other, leaf(team, 2)).status_code == 200
    card = bob.get(f"/api/segment/{sid}?others=1").json()["html"]
    assert "alice" not in card
    page = bob.get("/analysis").text
    assert "the lead has not allowed coders to see each other" in page
    assert "confirmed or added by you (the lead has not allowed" in bob.get("/codebook").text
    assert "bob" in alice.get(f"/api/segment/{other}?others=1").json()["html"]  # a lead sees
    r = alice.post("/api/memo", json={"segment_id": sid, "text": "a private hunch of alice"},
                   headers={"X-CSRF-Token": csrf_of(alice, "/start")})
    assert r.status_code == 200
    assert "a private hunch of alice" not in bob.get("/analysis?view=memos").text
    assert "a private hunch of alice" in alice.get("/analysis?view=memos").text
    r = alice.post("/team", data={"others": "on", "csrf": csrf_of(alice, "/start")},
                   follow_redirects=False)
    assert r.status_code == 303
    assert "alice" in bob.get(f"/api/segment/{sid}?others=1").json()["html"]


# -- one writer, many coders ---------------------------------------------------------------------
def test_eight_coders_at_once_lose_and_misattribute_nothing(tmp_path):
    path = make_study(tmp_path / "s", turns=30)
    names = [f"coder{i}" for i in range(8)]
    with Study(path) as s:
        for n in names:
            users.add_user(s, n, password=f"{n} long password")
        segs = [int(x) for x in s.segments(include_interviewer=False)["segment_id"]]
        codes = [c.id for c in s.codebook().leaves()]
    sent: dict[str, list[tuple[int, str]]] = {n: [] for n in names}
    errors: list[str] = []
    with running(create_app(path)) as url:
        def work(name: str, k: int) -> None:
            import httpx
            with httpx.Client(base_url=url, timeout=30) as c:
                page = c.get("/signin").text
                token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
                c.post("/signin", data={"name": name, "password": f"{name} long password",
                                        "csrf": token})
                token = re.search(r'name="csrf-token" content="([^"]+)"',
                                  c.get("/start").text).group(1)
                for j, sid in enumerate(segs[:20]):
                    code = codes[(j + k) % len(codes)]
                    r = c.post("/api/decide", json={"segment_id": sid, "code_id": code,
                                                    "decision": "confirmed"},
                               headers={"X-CSRF-Token": token})
                    if r.status_code != 200:
                        errors.append(f"{name}: {r.status_code} {r.text[:80]}")
                    else:
                        sent[name].append((sid, code))
        threads = [threading.Thread(target=work, args=(n, k)) for k, n in enumerate(names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert errors == []
    stored = coded_by(path)
    want = sorted((n, sid, code) for n, pairs in sent.items() for sid, code in pairs)
    assert len(want) == 8 * 20 and stored == want


# -- HTTPS: `coder serve --tls-cert --tls-key` as a process ------------------------------------
def test_serve_over_tls_with_secure_cookies(team, tmp_path):
    import trustme  # a test dependency (pyproject's test extra)

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from coder.cli import main; main()", "serve", str(team),
         "--port", "0", "--tls-cert", str(cert_file), "--tls-key", str(key_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        port = re.search(r"https://127\.0\.0\.1:(\d+)/", line).group(1)
        assert "Sign-in required: 2 user(s), 1 lead(s)" in proc.stdout.readline()
        context = ssl.create_default_context()
        ca.configure_trust(context)
        page = urllib.request.urlopen(f"https://127.0.0.1:{port}/signin", timeout=10,
                                      context=context).read().decode()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        data = f"name=bob&password={PASSWORDS['bob'].replace(' ', '+')}&csrf={token}"
        req = urllib.request.Request(f"https://127.0.0.1:{port}/signin", data=data.encode(),
                                     headers={"Host": f"127.0.0.1:{port}"})

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                             NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as answer:
            opener.open(req, timeout=10)
        answer.value.close()
        assert answer.value.code == 303
        cookie = answer.value.headers["set-cookie"].lower()
        assert "coder_session=" in cookie and "; secure" in cookie and "httponly" in cookie
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP there
            urllib.request.urlopen(f"http://127.0.0.1:{port}/signin", timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out


# -- in a real browser (Debian's chromium, Playwright) ------------------------------------------
from test_web_browser import CARD, browser, decisions, press_and_wait, shown  # noqa: E402,F401


def browser_sign_in(browser, url: str, name: str, password: str | None = None):
    """A fresh browser context (its own cookies) signed in by typing, as a person would."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(url + "/review")
    page.wait_for_url(url + "/signin?next=%2Freview")
    page.fill("input#name", name)
    page.fill("input#password", password or PASSWORDS[name])
    page.keyboard.press("Enter")
    return context, page


@pytest.mark.browser
def test_two_coders_signed_in_in_two_browsers(browser, team):  # noqa: F811
    with running(create_app(team)) as url:
        ca, alice = browser_sign_in(browser, url, "alice")
        cb, bob = browser_sign_in(browser, url, "bob")
        for page in (alice, bob):
            page.wait_for_url(url + "/review")
            page.wait_for_selector(CARD)
        assert alice.inner_text("#coder-name") == "alice" and \
            bob.inner_text("#coder-name") == "bob"
        assert bob.locator("a[href='/start']", has_text="switch").count() == 0
        a_first, b_first = shown(alice), shown(bob)
        a_code = alice.get_attribute(f"{CARD} li.suggestion", "data-code-id")
        b_code = bob.get_attribute(f"{CARD} li.suggestion", "data-code-id")
        press_and_wait(alice, "a")
        press_and_wait(bob, "r")
        assert decisions(team, "alice") == {a_first: [(a_code, "confirmed")]}
        assert decisions(team, "bob") == {b_first: [(b_code, "rejected")]}
        # the cookies: HttpOnly (no script reads them), SameSite=Strict
        session = [c for c in cb.cookies() if c["name"] == "coder_session"]
        assert len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
        assert bob.evaluate("document.cookie").find("coder_session") == -1
        # bob cannot decide as alice: a forged name in the request changes nothing
        script = """async ([sid, code]) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/api/decide', {method: 'POST', headers: {
                'Content-Type': 'application/json', 'X-CSRF-Token': token},
                body: JSON.stringify({segment_id: sid, code_id: code, decision: 'confirmed',
                                      coder: 'alice', name: 'alice'})});
            return r.status; }"""
        assert bob.evaluate(script, [a_first, b_code]) == 200
        assert decisions(team, "alice") == {a_first: [(a_code, "confirmed")]}
        assert (b_code, "confirmed") in decisions(team, "bob")[a_first]
        # bob is a coder, not a lead: no Reconcile link, and the page refuses him
        assert bob.locator("a[href='/reconcile']").count() == 0
        bob.goto(url + "/reconcile")
        assert "only a lead can do this" in bob.inner_text("main")
        alice.goto(url + "/reconcile")
        alice.wait_for_selector("#start-reconcile")
        alice.click("#start-reconcile")
        alice.wait_for_url(url + "/reconcile?as=consensus")
        assert "Consensus coder consensus of alice, bob" in alice.inner_text("main")
        # signing out ends the session: the review page asks again
        bob.goto(url + "/review")
        bob.click("#signout")
        bob.wait_for_url(url + "/signin")
        bob.goto(url + "/review")
        bob.wait_for_url(url + "/signin?next=%2Freview")
        ca.close()
        cb.close()


@pytest.mark.browser
def test_sign_in_is_rate_limited_in_the_page(browser, team):  # noqa: F811
    with running(create_app(team)) as url:
        context, page = browser_sign_in(browser, url, "bob", "wrong password 1")
        page.wait_for_selector("#signin-error")
        assert page.inner_text("#signin-error") == "Wrong name or password."
        for i in range(2, 6):
            page.fill("input#password", f"wrong password {i}")
            page.click("#signin")
            page.wait_for_selector("#signin-error")
        page.fill("input#password", PASSWORDS["bob"])   # right, but too late
        page.click("#signin")
        page.wait_for_selector("#signin-error >> text=Too many failed sign-ins")
        assert "/signin" in page.url
        context.close()


@pytest.mark.browser
def test_first_sign_in_chooses_a_password_and_tls_cookies_are_secure(browser, tmp_path):  # noqa: F811
    import trustme
    path = make_study(tmp_path / "s")
    with Study(path) as s:
        _, once = users.add_user(s, "carol")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with running(create_app(path, tls=True), ssl_certfile=str(cert_file),
                 ssl_keyfile=str(key_file)) as url:
        assert url.startswith("https://")
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(url + "/")
        page.wait_for_url(url + "/signin?next=%2F")
        page.fill("input#name", "carol")
        page.fill("input#password", once)
        page.click("#signin")
        page.wait_for_url(url + "/password")
        page.fill("#current", once)
        page.fill("#new", "carol's own password")
        page.fill("#repeat", "carol's own password")
        page.click("#save-password")
        page.wait_for_selector(CARD)
        session = [c for c in context.cookies() if c["name"] == "coder_session"]
        assert session and session[0]["secure"] and session[0]["httpOnly"]
        context.close()
    with Study(path) as s:
        assert users.get_user(s, "carol").one_time is False


def test_only_a_lead_trains_from_the_team_page_and_coding_goes_on(tmp_path, monkeypatch):
    import time

    from test_suggest import CODEBOOK, HashingEmbedder, code_all, write_transcripts

    from coder.machine import suggest

    monkeypatch.setattr(suggest, "default_embedder", lambda: HashingEmbedder(dim=256))
    book = tmp_path / "toy.yaml"
    book.write_text(CODEBOOK, encoding="utf-8")
    with Study.create(tmp_path / "toy.db", codebook=book) as s:
        s.import_transcripts(write_transcripts(tmp_path))
        code_all(s, "alice")
        users.add_user(s, "alice", role="lead", password=PASSWORDS["alice"])
        users.add_user(s, "bob", password=PASSWORDS["bob"])
        sid = int(s.segments(include_interviewer=False)["segment_id"].iloc[0])
    path = tmp_path / "toy.db"
    alice, bob = signed_in(path, "alice"), signed_in(path, "bob")
    r = bob.post("/team/train", data={"csrf": csrf_of(bob, "/start")})
    assert r.status_code == 403 and "only a lead" in r.text
    r = alice.post("/team/train", data={"csrf": csrf_of(alice, "/start")},
                   follow_redirects=False)
    assert r.status_code == 303
    assert decide(bob, sid, "finance").status_code == 200   # coding goes on meanwhile
    deadline = time.time() + 120
    while "Train and re-suggest</button>" not in alice.get("/team").text or \
            "is running" in alice.get("/team").text:
        assert time.time() < deadline, "training did not finish"
        time.sleep(0.3)
    page = alice.get("/team").text
    assert re.search(r"Model v1: trained on \d+ segments from 6 documents by alice", page), page
    with Study(path) as s:
        assert s.db.one("SELECT MAX(version) FROM models")[0] == 1
        assert s.db.one("SELECT COUNT(*) FROM suggestions WHERE model_version=1")[0] > 0
    assert ("bob", sid, "finance") in coded_by(path)
