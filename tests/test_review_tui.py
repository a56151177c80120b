"""The terminal review: Textual's pilot drives the real app; a real pty run is killed with -9."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from review_helpers import make_study, seg

from coder import Study
from coder import review as R
from coder.tui import ReviewApp

ROOT = Path(__file__).parent.parent


@pytest.fixture
def study_file(tmp_path, data_dir) -> Path:
    make_study(tmp_path / "review.db", data_dir).close()
    return tmp_path / "review.db"


def text_of(app: ReviewApp, widget: str) -> str:
    return str(app.screen.query_one(widget).render())


def where(app: ReviewApp):
    item = app.item
    return (item.document, item.position) if item else None


def decisions(path: Path, coder: str = "alice") -> set[tuple[str, int, str | None, str]]:
    with Study(path) as s:
        return {(r["document"], r["position"], r["code_id"], r["decision"]) for r in s.db.query(
            "SELECT v.document, v.position, k.code_id, k.decision FROM codings k "
            "JOIN coders c ON c.id = k.coder_id JOIN segment_view v ON v.segment_id = k.segment_id"
            " WHERE c.name=?", (coder,))}


def run(coro):
    return asyncio.run(coro)


def test_pilot_accept_reject_other_no_code_undo_memo_skip_quit_and_resume(study_file):
    async def session():
        app = ReviewApp(study_file, "alice", order="document")
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            assert where(app) == ("p01", 2)
            status = text_of(app, "#status")
            assert "decided 0/5" in status and "5 left in queue" in status
            assert "DR AMINAH" in text_of(app, "#segment")
            assert "INTERVIEWER: Thank you for joining." in text_of(app, "#before")
            codes = text_of(app, "#codes")
            assert "> 0.90 Triggering factors/Domestic conditions  (codebook)  · undecided" in codes
            assert "  0.40 Barriers and challenges/Financial constraints  (codebook)  · " \
                   "undecided" in codes

            await pilot.press("a")                       # accept the highlighted suggestion
            assert decisions(study_file) == {("p01", 2, "trig-domestic", "confirmed")}
            assert where(app) == ("p01", 2)              # as on the web page: one is undecided
            assert text_of(app, "#message") == ("saved: Triggering factors/Domestic conditions "
                                                "confirmed; 1 suggestion(s) still undecided")
            await pilot.press("r")                       # the highlight moved to it: reject
            assert ("p01", 2, "bar-finance", "rejected") in decisions(study_file)
            assert where(app) == ("p01", 4)              # none undecided: the next segment

            await pilot.press("down", "r")               # reject net-personal
            assert ("p01", 4, "net-personal", "rejected") in decisions(study_file)
            assert app.cursor == 0 and where(app) == ("p01", 4)
            await pilot.press("o")                       # pick another code by typing
            await pilot.press(*"financ")
            await pilot.press("enter")
            assert ("p01", 4, "bar-finance", "added") in decisions(study_file)
            assert "+ added" in text_of(app, "#codes")
            await pilot.press("enter")                   # next segment: one stays undecided
            assert where(app) == ("p01", 6)
            assert text_of(app, "#message") == ("next segment; the last one is decided, 1 of its "
                                                "suggestions left undecided")
            assert not any(d[:3] == ("p01", 4, "net-institutions") for d in decisions(study_file))

            await pilot.press("n")                       # no code applies
            assert ("p01", 6, None, "no_code") in decisions(study_file)
            assert where(app) == ("p02", 2)
            await pilot.press("u")                       # undo it: back to p01 #6
            assert where(app) == ("p01", 6)
            assert not any(d[:2] == ("p01", 6) for d in decisions(study_file))
            assert "undid decision on p01 #6" in text_of(app, "#message")

            await pilot.press("m")                       # a memo, then skip
            await pilot.press(*"check later")
            await pilot.press("enter")
            assert "memo saved" in text_of(app, "#message")
            await pilot.press("s")
            assert where(app) == ("p02", 2)
            assert text_of(app, "#message") == "skipped (it stays in the queue for next time)"
            await pilot.press("a")
            assert ("p02", 2, "trig-globalization", "confirmed") in decisions(study_file)
            assert where(app) == ("p02", 4)
            assert "no suggestions" in text_of(app, "#codes")
            await pilot.press("a")
            assert "nothing highlighted" in text_of(app, "#message")
            await pilot.press("q")
        return app

    app = run(session())
    assert app.summary == "alice: 5 decision(s) saved this session; 3 of 5 segments decided."
    with Study(study_file) as s:
        assert R.memos(s, "alice")["text"].tolist() == ["check later"]
        secs = s.codings("alice")["seconds"]
        assert secs.notna().all() and (secs >= 0).all()

    async def resume():
        app = ReviewApp(study_file, "alice", order="document")
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            assert [(i.document, i.position) for i in app.items] == [("p01", 6), ("p02", 4)]
            assert "decided 3/5" in text_of(app, "#status")
            await pilot.press("q")

    run(resume())


def test_pilot_blind_hides_suggestions_and_other_coders(study_file):
    with Study(study_file) as s:
        R.decide(s, "bob", seg(s, "p01", 2), "trig-domestic", "confirmed")

    async def session():
        app = ReviewApp(study_file, "carol", order="document", blind=True)
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            screen = " ".join(text_of(app, w) for w in ("#segment", "#codes", "#status"))
            assert "[blind]" in screen and "no suggestions (blind)" in screen
            assert "Domestic" not in screen and "bob" not in screen
            await pilot.press("o", *"global", "enter", "enter")
            assert where(app) == ("p01", 4)
            await pilot.press("q")

    run(session())
    # a code the machine had not suggested on that segment is 'added'
    assert decisions(study_file, "carol") == {("p01", 2, "trig-globalization", "added")}


def test_pilot_undo_reaches_back_into_an_earlier_session(study_file):
    with Study(study_file) as s:
        R.decide(s, "alice", seg(s, "p02", 4), None, "no_code")

    async def session():
        app = ReviewApp(study_file, "alice", order="document")
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            await pilot.press("u")
            assert where(app) == ("p02", 4)
            await pilot.press("q")

    run(session())
    assert decisions(study_file) == set()


def wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_kill_9_mid_session_loses_no_decision(study_file):
    import pexpect  # a test dependency (pyproject's test extra); POSIX ptys
    coder_exe = Path(sys.executable).parent / "coder"
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="110", LINES="34")
    child = pexpect.spawn(str(coder_exe), ["review", str(study_file), "--coder", "alice",
                                           "--order", "document"],
                          env=env, dimensions=(34, 110), cwd=str(ROOT), timeout=60)
    try:
        child.expect("accept", timeout=60)           # the key line is drawn: the app is up
        child.send("a")
        assert wait_for(lambda: len(decisions(study_file)) == 1)
        child.send("r")
        assert wait_for(lambda: len(decisions(study_file)) == 2)
        child.send("n")
        assert wait_for(lambda: len(decisions(study_file)) == 3)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.isalive():
            os.kill(child.pid, signal.SIGKILL)
    assert child.signalstatus == signal.SIGKILL
    assert decisions(study_file) == {("p01", 2, "trig-domestic", "confirmed"),
                                     ("p01", 2, "bar-finance", "rejected"),
                                     ("p01", 4, None, "no_code")}
    with Study(study_file) as s:  # the file is sound and the queue resumes after them
        assert s.db.one("PRAGMA integrity_check")[0] == "ok"
        assert [(i.document, i.position) for i in R.queue(s, "alice", order="document")] == [
            ("p01", 6), ("p02", 2), ("p02", 4)]
