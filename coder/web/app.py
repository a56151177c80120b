"""`coder serve`: the study in a browser on the researcher's own machine.

A second face of the same library code as the CLI: the review page calls `coder.review`
(queue, decide, undo), the analysis page `coder.analysis.frequency`, `coder.analysis.chart` and `coder.analysis.agreement`
(through `coder.analysis.report`). Nothing here decides what a decision means.

Safety, because a browser is a shared place:

* every state-changing request is a POST carrying the CSRF token (an HMAC of a per-server
  secret); anything else is refused with 403;
* bound to 127.0.0.1 by default, requests whose ``Host`` is not a loopback name are refused
  (DNS rebinding); a study with users (`coder users add`) asks everyone to sign in, on any
  address, and every decision is the signed-in coder's (the name comes from the session,
  never from the request); bound beyond loopback it must have users;
* sign-in: scrypt-hashed passwords (`coder.store.users`), failed sign-ins rate-limited per
  client and per name, session cookies HttpOnly, SameSite=Strict and Secure over TLS, the
  CSRF token bound to the session; a lead's pages (Team, Reconcile) refuse other coders;
* one writer: every state-changing request is written by one thread, in arrival order, and
  answered only after its transaction committed;
* Jinja2 autoescapes everything; the Content-Security-Policy allows only our own static
  scripts, so transcript text can never run as code;
* one study connection per worker thread, opened on first use and kept for the life of the
  server (SQLite in WAL mode: reads never block the one writer; a connection that stays
  open keeps its locks, so no other process can checkpoint the WAL away under it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

# the module itself: `from coder.web import` would run coder/web/__init__.py, which is us
import coder.web.transcript as transcript
from coder import review
from coder.errors import CoderError, NothingToDo, SignInRefused, UnknownReference
from coder.review import search as search_proposals
from coder.review import spans
from coder.store import POSITIVE, check_coder_name, users
from coder.study import Study

HERE = Path(__file__).resolve().parent
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
CODER_COOKIE = "coder_name"
BLIND_COOKIE = "coder_blind"
OTHERS_COOKIE = "coder_others"   # the setting "show other coders' codes" (off by default)
SESSION_COOKIE = "coder_session"
SIGNIN_FAILURES = 5          # failed sign-ins per client, and per name, within ...
SIGNIN_WINDOW = 15 * 60      # ... this many seconds; then sign-in waits until the window passes
DECISIONS = ("confirmed", "added", "rejected", "no_code")
ORDERS = ("uncertain", "document", "score", "random")
SEARCH_SHOWN = 500   # hits the search page lists (it says how many more there are)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


@dataclass
class Settings:
    """What one server knows: the study, the default coder, its secrets."""

    study_path: Path
    coder: str | None = None
    local_only: bool = True              # refuse non-loopback Host headers
    signin_required: bool = False        # bound beyond loopback: sign-in even with no users
    tls: bool = False                    # served over HTTPS: cookies are Secure
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def csrf(self, session: str | None = None) -> str:
        """The CSRF token of a page: bound to the session cookie when there is one, so a token
        seen by one coder is worthless in another coder's browser."""
        message = b"session:" + session.encode("utf-8") if session else b"csrf"
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


@dataclass
class Training:
    """A lead's "Train and re-suggest" on the Team page, run beside the server."""

    by: str
    started: str
    finished: str | None = None
    message: str = ""
    failed: bool = False


class SignInLimiter:
    """Failed sign-ins counted per client address and per name in a sliding window: the next
    attempt waits once either has SIGNIN_FAILURES within SIGNIN_WINDOW seconds."""

    def __init__(self, failures: int = SIGNIN_FAILURES, window: float = SIGNIN_WINDOW):
        self.failures, self.window = failures, window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, client: str, name: str) -> tuple[str, str]:
        from coder.store.coders import coder_key

        return "client:" + client, "name:" + coder_key(name)

    def wait(self, client: str, name: str) -> float:
        """Seconds until this client may try this name again (0: now)."""
        stamp = time.monotonic()
        with self._lock:
            longest = 0.0
            for key in self._keys(client, name):
                times = self._seen.get(key)
                while times and stamp - times[0] > self.window:
                    times.popleft()
                if times and len(times) >= self.failures:
                    longest = max(longest, self.window - (stamp - times[0]))
            return longest

    def failed(self, client: str, name: str) -> None:
        with self._lock:
            for key in self._keys(client, name):
                self._seen.setdefault(key, deque()).append(time.monotonic())

    def succeeded(self, client: str, name: str) -> None:
        with self._lock:
            for key in self._keys(client, name):
                self._seen.pop(key, None)


# -- the review library: the same queue, decisions and undo as `coder review` ---------------
def queue_ids(study: Study, coder: str, *, order: str = "uncertain", blind: bool = False,
              codes: list[str] | None = None, documents: list[str] | None = None,
              others: bool = False) -> list[int]:
    """Segment ids still to decide for this coder, in queue order (`coder.review.queue`)."""
    return review.queue_ids(study, coder, order=order, codes=codes, documents=documents,
                            blind=blind)


def undo(study: Study, coder: str) -> int | None:
    """Undo this coder's last decision; the segment it was on, or None when nothing is left."""
    try:
        return review.undo(study, coder).segment_id
    except (NothingToDo, UnknownReference):
        return None


# -- reading what a page shows -----------------------------------------------------------------
def segment_item(study: Study, coder: str, segment_id: int, *, blind: bool = False,
                 codes: list[str] | None = None, context: int = 2,
                 others: bool = False) -> dict:
    """One segment as the review card shows it: text, neighbours, suggestions, decisions
    (other coders' only with ``others``, the page's setting; never when ``blind``)."""
    seg = study.db.one("SELECT * FROM segment_view WHERE segment_id=?", (segment_id,))
    if seg is None:
        raise CoderError(f"unknown segment {segment_id}")
    near = study.db.query(
        "SELECT position, speaker, role, text FROM segment_view WHERE document_id=? AND "
        "position BETWEEN ? AND ? AND position != ? ORDER BY position",
        (seg["document_id"], seg["position"] - context, seg["position"] + context,
         seg["position"]))
    version = study.codebook_version
    suggestions = [] if blind else [dict(r) for r in study.db.query(
        "SELECT s.code_id, c.path, c.name, s.score, s.rank, s.source, s.threshold, "
        "s.model_version FROM suggestions s JOIN codes c ON c.id=s.code_id AND "
        "c.codebook_version=? WHERE s.segment_id=? ORDER BY s.rank", (version, segment_id))]
    wanted = review.code_filter(study.codebook(), codes)
    if wanted is not None:
        suggestions = [x for x in suggestions if x["code_id"] in wanted]
    suggestions.sort(key=lambda x: (-x["score"], x["rank"]))
    decided = study.db.query(
        "SELECT k.code_id, c.path, k.decision, k.memo, k.created_at, o.name AS coder, "
        "k.start_char "
        "FROM codings k JOIN coders o ON o.id=k.coder_id LEFT JOIN codes c ON c.id=k.code_id "
        "AND c.codebook_version=? WHERE k.segment_id=? ORDER BY o.name, c.position",
        (version, segment_id))
    mine = [dict(r) for r in decided if r["coder"] == coder]
    others = [] if blind or not others else [dict(r) for r in decided if r["coder"] != coder]
    state = {r["code_id"] or "": r["decision"] for r in mine}
    for s in suggestions:
        s["state"] = state.get(s["code_id"], "")
    suggested = {s["code_id"] for s in suggestions}
    added = [r for r in mine if r["code_id"] and r["code_id"] not in suggested]
    memos = [r["text"] for r in study.db.query(
        "SELECT m.text FROM memos m JOIN coders o ON o.id=m.coder_id WHERE m.segment_id=? AND "
        "o.name=? ORDER BY m.id", (segment_id, coder))]
    proposals = [proposal_row(p, seg["text"]) for p in search_proposals.proposals(
        study, coder, segment_id=segment_id, open_only=False)
        if wanted is None or p.code_id in wanted]
    return {
        "segment_id": seg["segment_id"], "document": seg["document"],
        "position": seg["position"], "speaker": seg["speaker"] or "", "role": seg["role"],
        "participant": seg["participant"], "text": seg["text"],
        "before": [dict(r) for r in near if r["position"] < seg["position"]],
        "after": [dict(r) for r in near if r["position"] > seg["position"]],
        "suggestions": suggestions, "mine": mine, "added": added, "others": others,
        "no_code": state.get("") == "no_code", "memos": memos, "proposals": proposals,
        "start_char": seg["start_char"],
    }


def proposal_row(p: search_proposals.Proposal, text: str, around: int = 40) -> dict:
    """A search proposal as the card shows it: its code, "from search: ...", the proposed
    characters with a little of the segment either side, and its state ('' while open)."""
    end = p.offset + len(p.text)
    return {"id": p.id, "code_id": p.code_id, "path": p.path, "label": p.label,
            "state": "" if p.is_open else p.status, "whole": p.span == "segment",
            "text": p.text, "before": text[max(0, p.offset - around):p.offset],
            "after": text[end:end + around], "cut_before": p.offset > around,
            "cut_after": end + around < len(text)}


def progress(study: Study, coder: str, remaining: int, *, codes=None, documents=None) -> dict:
    decided, total = review.progress(study, coder, codes=codes, documents=documents)
    return {"decided": decided, "remaining": remaining, "total": total}


def confirmed_counts(study: Study, coder: str | None = None) -> dict[str, int]:
    """Segments confirmed (or added) per code, by any coder (or only ``coder``), rolled up to
    parents."""
    book = study.codebook()
    rows = study.db.query(
        "SELECT DISTINCT k.segment_id, k.code_id FROM codings k JOIN coders c ON "
        "c.id=k.coder_id WHERE k.decision IN (%s) AND k.code_id IS NOT NULL AND "
        "(? IS NULL OR c.name = ?)" % ",".join("?" * len(POSITIVE)), (*POSITIVE, coder, coder))
    per: dict[str, set[int]] = {}
    for r in rows:
        code_id = r["code_id"]
        while code_id is not None:
            per.setdefault(code_id, set()).add(r["segment_id"])
            try:
                code_id = book.get(code_id).parent_id
            except CoderError:
                break
    return {k: len(v) for k, v in per.items()}


# -- the application ----------------------------------------------------------------------------
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True)
    env.filters["pct"] = lambda x: "" if x is None else f"{float(x):.2f}"
    return env


class Web:
    """The routes, bound to one study file and one server's secrets."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.env = _environment()
        self._local = threading.local()
        # the one writer: decisions are written in the order they arrive, one at a time
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coder-writer")
        self.limiter = SignInLimiter()
        self.training: Training | None = None
        self._training_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------
    def csrf(self, request: Request) -> str:
        return self.settings.csrf(request.cookies.get(SESSION_COOKIE))

    def render(self, request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
        signed = getattr(request.state, "signed", None)
        ctx.update(csrf=self.csrf(request), coder=getattr(request.state, "coder", None),
                   signed=signed, signin=getattr(request.state, "signin", False),
                   restricted=getattr(request.state, "restricted", False),
                   path=request.url.path)
        page = self.env.get_template(template).render(**ctx)
        return HTMLResponse(page, status_code=status)

    def coder(self, request: Request) -> str | None:
        """The coder of a page served without sign-in: the name chosen on /start."""
        name = request.cookies.get(CODER_COOKIE) or self.settings.coder
        try:
            return check_coder_name(name) if name else None
        except CoderError:
            return None

    def open(self) -> Study:
        """This worker thread's study connection, opened once and kept."""
        study = getattr(self._local, "study", None)
        if study is None:
            study = self._local.study = Study(self.settings.study_path)
        return study

    def refuse(self, request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/") or request.method == "POST":
            return JSONResponse({"error": message}, status_code=status)
        return PlainTextResponse(message, status_code=status)

    def own_only(self, request: Request) -> bool:
        """Show this coder only their own decisions: blind coding, or a signed-in coder whom
        the lead has not allowed to see the others'."""
        return request.cookies.get(BLIND_COOKIE) == "1" or getattr(request.state, "restricted",
                                                                    False)

    def _page(self, request: Request) -> bool:
        return request.method == "GET" and not request.url.path.startswith("/api/")

    def admit(self, request: Request, study: Study, *, gate: bool, needs_coder: bool,
              lead: bool) -> Response | None:
        """Who is asking (the signed-in coder, or the name chosen on a page without sign-in),
        and whether they may; a response when they may not."""
        signin = self.settings.signin_required or users.any_users(study.db)
        state = request.state
        state.signin, state.signed, state.restricted = signin, None, False
        if not signin:
            state.coder = self.coder(request)
        else:
            signed = users.session(study.db, request.cookies.get(SESSION_COOKIE))
            state.signed, state.coder = signed, signed.name if signed else None
            if gate and signed is None:
                if self._page(request):
                    return RedirectResponse("/signin?" + urlencode({"next": request.url.path}),
                                            status_code=303)
                return self.refuse(request, 401, "refused: sign in first")
            if gate and signed.one_time and request.url.path not in ("/password", "/signout"):
                if self._page(request):
                    return RedirectResponse("/password", status_code=303)
                return self.refuse(request, 403, "refused: choose your own password first")
            if signed is not None:
                state.restricted = not signed.lead and not users.others_visible(study.db)
            if lead and not (signed and signed.lead):
                message = "refused: only a lead can do this (coder users role STUDY NAME lead)"
                if self._page(request):
                    return self.render(request, "error.html", status=403, message=message)
                return self.refuse(request, 403, message)
        if needs_coder and state.coder is None:
            if self._page(request):
                return RedirectResponse("/start", status_code=303)
            return self.refuse(request, 403, "refused: choose a coder name first")
        return None

    def route(self, fn: Callable, *, write: bool = False, needs_coder: bool = False,
              gate: bool = True, lead: bool = False) -> Callable:
        """Wrap a handler with the checks every request passes, then run it in a thread with
        its own study connection: a write on the one writer thread, a read on any."""

        async def endpoint(request: Request) -> Response:
            host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
            if self.settings.local_only and host not in LOOPBACK:
                return self.refuse(request, 400, "refused: unexpected Host header")
            data: dict[str, Any] = {}
            if write:
                if request.method != "POST":
                    return self.refuse(request, 405, "refused: use POST")
                origin = request.headers.get("origin")
                if origin and urlsplit(origin).netloc != request.headers.get("host"):
                    return self.refuse(request, 403, "refused: cross-origin request")
                data = await _read_body(request)
                given = request.headers.get("x-csrf-token") or str(data.get("csrf") or "")
                if not hmac.compare_digest(given, self.csrf(request)):
                    return self.refuse(request, 403, "refused: missing or wrong CSRF token")

            def run() -> Response:
                study = self.open()
                refused = self.admit(request, study, gate=gate, needs_coder=needs_coder,
                                     lead=lead)
                if refused is not None:
                    return refused
                try:
                    return fn(request, study, request.state.coder, data)
                except CoderError as e:
                    return self.refuse(request, 400, str(e)) if (
                        write or request.url.path.startswith("/api/")) else self.render(
                        request, "error.html", status=400, message=str(e))

            if write:  # answered only once the one writer has committed it
                response = await asyncio.get_running_loop().run_in_executor(self.writer, run)
            else:
                response = await run_in_threadpool(run)
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return endpoint

    def _cookie(self, response: Response, name: str, value: str, **kwargs) -> None:
        response.set_cookie(name, value, httponly=True, samesite="strict",
                            secure=self.settings.tls, **kwargs)

    # -- entry, coder and sign-in -------------------------------------------------------------
    def home(self, request, study, coder, data):
        return RedirectResponse("/review" if coder else "/start", status_code=303)

    def start_page(self, request, study, coder, data):
        return self.render(request, "start.html", coders=study.coders(),
                           study_name=self.settings.study_path.name,
                           blind=request.cookies.get(BLIND_COOKIE) == "1",
                           others=request.cookies.get(OTHERS_COOKIE) == "1")

    def start_post(self, request, study, coder, data):
        name = str(data.get("name") or "").strip()
        if request.state.signin:  # the name is the signed-in coder's; only the settings change
            if name and study.resolve_coder(check_coder_name(name)).name != coder:
                return self.refuse(request, 403, f"refused: you are signed in as {coder}; sign "
                                                 "out to code as another coder")
        else:
            check_coder_name(name)
            name = study.resolve_coder(name).name  # 'Alice' is alice; a near-duplicate is refused
        response = RedirectResponse("/review", status_code=303)
        if not request.state.signin:
            self._cookie(response, CODER_COOKIE, name, max_age=365 * 86400)
        for flag, cookie in (("blind", BLIND_COOKIE), ("others", OTHERS_COOKIE)):
            if data.get(flag):
                self._cookie(response, cookie, "1")
            else:
                response.delete_cookie(cookie)
        return response

    def _next(self, value: str | None) -> str:
        """Where to go after signing in: a path of this site only."""
        value = str(value or "")
        return value if value.startswith("/") and not value.startswith("//") and \
            "\\" not in value else "/"

    def signin_page(self, request, study, coder, data):
        if not request.state.signin:
            return RedirectResponse("/", status_code=303)
        q = request.query_params
        return self.render(request, "signin.html", error=None, name=q.get("name") or "",
                           next=self._next(q.get("next")))

    def signin_post(self, request, study, coder, data):
        name = str(data.get("name") or "").strip()
        password = str(data.get("password") or "")
        client = request.client.host if request.client else "unknown"
        back = self._next(data.get("next"))
        wait = self.limiter.wait(client, name)
        if wait:
            minutes = max(1, round(wait / 60))
            page = self.render(request, "signin.html", status=429, name=name, next=back,
                               error=f"Too many failed sign-ins. Try again in {minutes} "
                                     f"minute{'s' if minutes != 1 else ''}.")
            page.headers["Retry-After"] = str(int(wait) + 1)
            return page
        try:
            token = users.sign_in(study, name, password, client=client)
        except SignInRefused:
            self.limiter.failed(client, name)
            return self.render(request, "signin.html", status=403, name=name, next=back,
                               error="Wrong name or password.")
        self.limiter.succeeded(client, name)
        response = RedirectResponse(back, status_code=303)
        self._cookie(response, SESSION_COOKIE, token, max_age=int(users.SESSION_HOURS * 3600))
        response.delete_cookie(CODER_COOKIE)
        return response

    def signout_post(self, request, study, coder, data):
        users.sign_out(study, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def password_page(self, request, study, coder, data):
        return self.render(request, "password.html", error=None)

    def password_post(self, request, study, coder, data):
        new = str(data.get("new") or "")
        if new != str(data.get("repeat") or ""):
            return self.render(request, "password.html", status=400,
                               error="The two new passwords differ.")
        try:
            users.change_password(study, request.state.signed, str(data.get("current") or ""),
                                  new)
        except SignInRefused as e:
            return self.render(request, "password.html", status=400, error=e.detail.capitalize()
                               + ".")
        return RedirectResponse("/", status_code=303)

    # -- the lead's pages ---------------------------------------------------------------------
    def team_page(self, request, study, coder, data):
        decided = {r["name"]: r["n"] for r in study.db.query(
            "SELECT c.name, COUNT(*) AS n FROM codings k JOIN coders c ON c.id=k.coder_id "
            "GROUP BY c.id")}
        models = study.db.query("SELECT version, created_at FROM models ORDER BY version DESC "
                                "LIMIT 1")
        return self.render(request, "team.html", users=users.list_users(study), decided=decided,
                           others=users.others_visible(study.db), training=self.training,
                           model=dict(models[0]) if models else None)

    def team_post(self, request, study, coder, data):
        users.set_others_visible(study, str(data.get("others") or "") == "on")
        return RedirectResponse("/team", status_code=303)

    def team_train(self, request, study, coder, data):
        """Start `coder train --suggest` for the lead, in its own thread and study connection:
        it takes minutes, and decisions must go on meanwhile (they wait only while it writes)."""
        from coder.store import now

        with self._training_lock:
            if self.training is not None and self.training.finished is None:
                raise CoderError(f"training started by {self.training.by} at "
                                 f"{self.training.started} is still running")
            job = self.training = Training(by=coder, started=now())
        threading.Thread(target=self._train, args=(job,), name="coder-training",
                         daemon=True).start()
        return RedirectResponse("/team", status_code=303)

    def _train(self, job: Training) -> None:
        from coder.machine import suggest
        from coder.store import now

        try:
            with Study(self.settings.study_path) as study:
                summary, made = suggest.train_and_suggest(study)
            on = summary.trained_on
            job.message = (f"Model v{summary.version}: trained on {on['segments']} segments "
                           f"from {on['documents']} documents by {', '.join(on['coders'])}; "
                           f"{len(made)} suggestions made with it.")
        except CoderError as e:
            job.message, job.failed = str(e), True
        except Exception as e:  # noqa: BLE001  the server goes on; the lead reads what failed
            job.message, job.failed = f"training failed: {type(e).__name__}: {e}", True
        finally:
            job.finished = now()

    def reconcile_page(self, request, study, coder, data):
        """The open disagreements of a consensus coder (`coder.analysis.agreement`), one form
        each: the agreed codes and a reason, recorded as the consensus coder's decision."""
        from coder.analysis import agreement

        as_coder = request.query_params.get("as") or "consensus"
        humans = [r["name"] for r in study.db.query(
            "SELECT DISTINCT c.name, c.id FROM coders c JOIN codings k ON k.coder_id=c.id "
            "WHERE c.kind='human' ORDER BY c.id")]
        ctx: dict[str, Any] = {"as_coder": as_coder, "humans": humans, "items": [],
                               "members": [], "summary": None}
        if study.db.one("SELECT 1 FROM coders WHERE name=? AND kind='consensus'", (as_coder,)):
            status = agreement.consensus_status(study, as_coder)
            items = agreement.open_items(study, as_coder)
            ctx.update(summary=status.summary(), members=status.coders or [],
                       items=items.to_dict("records"))
        return self.render(request, "reconcile.html", **ctx)

    def reconcile_start(self, request, study, coder, data):
        from coder.analysis import agreement

        names = [x.strip() for x in str(data.get("coders") or "").split(",") if x.strip()]
        as_coder = str(data.get("as") or "consensus").strip()
        agreement.build_consensus(study, names, as_coder)
        return RedirectResponse("/reconcile?" + urlencode({"as": as_coder}), status_code=303)

    def reconcile_post(self, request, study, coder, data):
        import pandas as pd

        from coder.analysis import agreement

        as_coder = str(data.get("as") or "consensus")
        members = agreement.consensus_status(study, as_coder).coders or []
        plan, errors, _ = agreement.plan_consensus(study, pd.DataFrame([{
            "document": data.get("document"), "segment": data.get("segment"),
            "agreed": data.get("agreed"), "reason": data.get("reason")}]))
        if errors:
            raise CoderError("; ".join(e.split(": ", 1)[1] for e in errors))
        if not plan:
            raise CoderError("type the agreed codes, or 'none'")
        agreement.record_consensus(study, plan, coders=members, as_coder=as_coder)
        return RedirectResponse("/reconcile?" + urlencode({"as": as_coder}), status_code=303)

    # -- review -----------------------------------------------------------------------------
    def _options(self, request: Request, data: dict | None = None) -> dict:
        q = dict(request.query_params)
        q.update({k: v for k, v in (data or {}).items() if k in ("blind", "order", "codes",
                                                                  "documents", "others")})
        if "blind" not in q:  # chosen at the start; a page may still say otherwise
            q["blind"] = request.cookies.get(BLIND_COOKIE, "")
        if "others" not in q:
            q["others"] = request.cookies.get(OTHERS_COOKIE, "")
        if getattr(request.state, "restricted", False):  # the lead has not allowed it
            q["others"] = ""
        order = q.get("order") or "uncertain"
        if order not in ORDERS:
            raise CoderError(f"unknown order '{order}'", hint="use " + ", ".join(ORDERS))
        split = lambda v: [x.strip() for x in str(v).split(",") if x.strip()] or None  # noqa: E731
        yes = ("1", "true", "yes", "on")
        return {"blind": str(q.get("blind", "")).lower() in yes,
                "order": order, "codes": split(q.get("codes") or ""),
                "documents": split(q.get("documents") or ""),
                "others": str(q.get("others", "")).lower() in yes}

    def _state(self, study, coder, options, segment_id: int | None = None,
               skip: set[int] | frozenset = frozenset()) -> tuple[dict | None, dict]:
        """The card to show (the given segment, or the queue's first not skipped) and progress."""
        ids = queue_ids(study, coder, **options)
        if segment_id is None:
            left = [i for i in ids if i not in skip]
            segment_id = left[0] if left else None
        item = None if segment_id is None else segment_item(
            study, coder, segment_id, blind=options["blind"], codes=options["codes"],
            others=options["others"])
        prog = progress(study, coder, len(ids), codes=options["codes"],
                        documents=options["documents"])
        return item, prog

    def _card(self, item: dict | None, prog: dict, blind: bool) -> str:
        return self.env.get_template("_item.html").render(item=item, progress=prog, blind=blind)

    def review_page(self, request, study, coder, data):
        options = self._options(request)
        segment = request.query_params.get("segment")
        item, prog = self._state(study, coder, options, int(segment) if segment else None)
        book = study.codebook()
        # the picker offers only codes a segment can carry (not a non-codable category)
        codes = [{"id": c.id, "path": c.path, "name": c.name} for c in book.codes
                 if getattr(c, "codable", True)]
        back = f"/transcripts/{quote(item['document'])}#seg-{item['segment_id']}" if (
            segment and item) else None
        return self.render(request, "review.html", card=Markup(self._card(
            item, prog, options["blind"])), codes=codes, options=options, single=bool(segment),
            back=back)

    def _state_json(self, study, coder, options, segment_id: int | None,
                    skip: set[int] | frozenset = frozenset(), **extra) -> JSONResponse:
        item, prog = self._state(study, coder, options, segment_id, skip)
        return JSONResponse({
            "segment_id": item["segment_id"] if item else None,
            "html": self._card(item, prog, options["blind"]), "progress": prog, **extra})

    def api_next(self, request, study, coder, data):
        skip = {int(x) for x in request.query_params.get("skip", "").split(",") if x.isdigit()}
        return self._state_json(study, coder, self._options(request), None, skip)

    def api_segment(self, request, study, coder, data):
        return self._state_json(study, coder, self._options(request),
                                int(request.path_params["segment_id"]))

    def api_decide(self, request, study, coder, data):
        """Store a decision through `coder.review.decide`; several codes for one segment
        (``decisions``: a list) go in one transaction."""
        try:
            segment_id = int(data.get("segment_id"))
        except (TypeError, ValueError):
            raise CoderError("a decision needs a segment_id") from None
        entries = data.get("decisions") or [{"code_id": data.get("code_id"),
                                             "decision": data.get("decision"),
                                             "proposal_id": data.get("proposal_id")}]
        seconds = data.get("seconds")
        seconds = float(seconds) if seconds not in (None, "") else None
        memo = str(data.get("memo") or "").strip() or None
        for entry in entries:
            if entry.get("decision") not in DECISIONS:
                raise CoderError(f"unknown decision '{entry.get('decision')}'",
                                 hint="use " + ", ".join(DECISIONS))
        study.coder_id(coder)
        options = self._options(request, data)
        # what the card showed this coder, recorded with each decision (coder.review.context)
        seen = review.seen_on(study, coder, segment_id, "web", blind=options["blind"],
                              show_others=options["others"],
                              codes=review.code_filter(study.codebook(), options["codes"]))
        if data.get("span"):  # part of the segment selected: the code goes on that part only
            self._accept_part(study, coder, segment_id, entries, data["span"], memo=memo,
                              seconds=seconds, seen=seen)
            return self._state_json(study, coder, options, segment_id, stored=1)
        with study.db.transaction():
            for entry in entries:
                if entry.get("proposal_id") not in (None, ""):  # a hit of `coder search --code`
                    search_proposals.decide_proposal(study, coder, int(entry["proposal_id"]),
                                                     entry["decision"], memo=memo,
                                                     seconds=seconds, seen=seen)
                    continue
                review.decide(study, coder, segment_id, entry.get("code_id") or None,
                              entry["decision"], memo=memo, seconds=seconds, source="web",
                              seen=seen)
        if data.get("advance"):  # the page moves on: answer with the next card at once
            skip = {int(x) for x in str(data.get("skip") or "").split(",") if x.isdigit()}
            return self._state_json(study, coder, options, None, skip, stored=len(entries))
        return self._state_json(study, coder, options, segment_id, stored=len(entries))

    def _accept_part(self, study, coder, segment_id: int, entries: list[dict], span,
                     **kwargs) -> int:
        """Accept (or add) one code for the selected part ``span`` = [start, end) (document
        offsets inside the segment) as a span coding, with the suggestion's provenance."""
        if len(entries) != 1 or entries[0].get("decision") not in spans.SPAN_DECISIONS:
            raise CoderError("only accepting or adding one code can be narrowed to a selection")
        seg = study.db.one("SELECT document_id, start_char, end_char FROM segments WHERE id=?",
                           (segment_id,))
        if seg is None:
            raise UnknownReference(f"unknown segment {segment_id}")
        try:
            start, end = (int(x) for x in span)
        except (TypeError, ValueError):
            raise CoderError("a selection needs two whole-number offsets") from None
        start, end = max(start, seg["start_char"]), min(end, seg["end_char"])
        if start < end:
            start, end = transcript.snap(study, seg["document_id"], start, end)
        if start >= end:
            raise CoderError("the selection is not inside this segment",
                             hint="select part of the segment's text, or none to accept it all")
        code = str(entries[0].get("code_id") or "")
        hint = study.db.one("SELECT model_version, score FROM suggestions WHERE segment_id=? "
                            "AND code_id=? ORDER BY rank LIMIT 1", (segment_id, code))
        return spans.code_span(study, coder, seg["document_id"], start, end, code,
                               decision=entries[0]["decision"], source="web",
                               model_version=hint["model_version"] if hint else None,
                               suggestion_score=hint["score"] if hint else None, **kwargs)

    def api_undo(self, request, study, coder, data):
        segment_id = undo(study, coder)
        if segment_id is None:
            return JSONResponse({"segment_id": None, "nothing": True,
                                 "message": "Nothing to undo."})
        return self._state_json(study, coder, self._options(request, data), segment_id,
                                undone=True)

    def api_memo(self, request, study, coder, data):
        segment_id = int(data.get("segment_id"))
        review.memo(study, coder, segment_id, str(data.get("text") or ""))
        return self._state_json(study, coder, self._options(request, data), segment_id,
                                memo=True)

    # -- browsing ---------------------------------------------------------------------------
    def transcripts_page(self, request, study, coder, data):
        docs = study.documents().to_dict("records")
        return self.render(request, "transcripts.html", documents=docs)

    def document_page(self, request, study, coder, data):
        """The transcript with its coded spans highlighted and the coding stripes in the
        margin (`coder.web.transcript`); transcript.js codes a selection through /api/spans."""
        name = request.path_params["name"]
        doc_id = study.document_id(name)   # by name (spans.document_id tries ids first)
        want_coder = request.query_params.get("coder") or ""
        want_code = request.query_params.get("code") or ""
        blind = self.own_only(request)
        shown = self._transcript(request, study, coder, doc_id, want_coder, want_code)
        # the document by id: a transcript may be called "12"
        data_for_js = {"document": shown["document_id"], "codes": shown["codes"],
                       "recent": shown["recent"], "layout": transcript.layout(shown)}
        return self.render(request, "document.html", name=shown["document"],
                           segments=shown["segments"], data=data_for_js,
                           coders=[coder] if blind and coder else study.coders(),
                           codes=study.codebook().codes, want_coder=want_coder,
                           want_code=want_code, blind=blind)

    def _transcript(self, request, study, coder, document: str | int, want_coder: str = "",
                    want_code: str = "") -> dict:
        """The transcript view as this coder may see it (blind: only their own codings)."""
        wanted = None
        if want_code:
            book = study.codebook()
            code = book.resolve(want_code)
            wanted = {code.id} | {d.id for d in book.descendants(code.id)}
        return transcript.view(study, document, coder,
                               blind=self.own_only(request),
                               want_coder=want_coder, wanted=wanted)

    def _redraw(self, request, study, coder, data) -> dict:
        """What the page needs to redraw itself after a change (`transcript.layout`)."""
        if not data.get("document"):
            return {}
        return {"layout": transcript.layout(self._transcript(
            request, study, coder, str(data["document"]), str(data.get("coder_filter") or ""),
            str(data.get("code_filter") or "")))}

    # -- coded spans (coder.review.spans), from the transcript page ------------------------
    def codes_css(self, request, study, coder, data):
        return Response(transcript.stylesheet(study.codebook()), media_type="text/css")

    def _transcript_seen(self, study, coder, request, data, segments) -> review.Seen:
        """What the transcript page showed around a span: other coders' codings on the
        segments it overlaps unless blind (or filtered to one coder); no suggestions."""
        blind = self.own_only(request)
        only = str(data.get("coder_filter") or "")   # the page's "Coder" filter
        shown = not blind and only != coder
        others = []
        if shown and segments:
            others = [r["name"] for r in study.db.query(
                "SELECT DISTINCT c.name FROM coding_segments x JOIN coders c ON c.id=x.coder_id"
                " WHERE x.segment_id IN (%s) AND c.name != ?" % ",".join("?" * len(segments)),
                (*segments, coder)) if not only or r["name"] == only]
        return review.seen(study, "web", blind=blind, others_shown=shown, others=others)

    def api_span(self, request, study, coder, data):
        """Code a selected passage (``document``, ``start``, ``end``: code points of the stored
        text, end exclusive; ``code_id``) as this coder's 'added' decision, in one transaction."""
        document = str(data.get("document") or "")
        start, end = data.get("start"), data.get("end")
        if data.get("snap"):
            start, end = transcript.snap(study, document, start, end)
        where = spans.locate(study, document, start, end)
        code = str(data.get("code_id") or "")
        if not code:
            raise CoderError("choose a code for the passage")
        seconds = data.get("seconds")
        seconds = float(seconds) if seconds not in (None, "") else None
        study.coder_id(coder)
        seen = self._transcript_seen(study, coder, request, data, where.segments)
        coding_id = spans.code_span(study, coder, where.document_id, where.start, where.end,
                                    code, decision="added", source="web", seconds=seconds,
                                    memo=str(data.get("memo") or "").strip() or None, seen=seen)
        text = spans.document_id(study, where.document_id)[2][where.start:where.end]
        path = study.codebook().resolve(code).path
        return JSONResponse({"coding_id": coding_id, "start": where.start, "end": where.end,
                             "segments": list(where.segments), "code_id": code, "path": path,
                             "text": text, "message": f"Coded {path}: “{_clip(text)}”",
                             **self._redraw(request, study, coder, data)})

    def api_span_change(self, request, study, coder, data):
        """Remove, re-code or write the memo of one of this coder's codings; each one
        transaction that /api/undo takes back."""
        coding_id = int(request.path_params["coding_id"])
        row = study.db.one("SELECT o.name FROM codings k JOIN coders o ON o.id=k.coder_id "
                           "WHERE k.id=?", (coding_id,))
        if row is not None and row["name"] != coder:
            return self.refuse(request, 403, f"coding {coding_id} is another coder's; only "
                                             "they can change it")
        action = request.path_params["action"]
        if action not in ("remove", "recode", "memo"):
            return self.refuse(request, 404, f"unknown action '{action}' (remove, recode, memo)")
        if action == "remove":
            spans.remove_coding(study, coder, coding_id)
            out = {"coding_id": coding_id, "message": "Removed."}
        elif action == "recode":
            code = str(data.get("code_id") or "")
            new_id = spans.recode(study, coder, coding_id, code)
            path = study.codebook().resolve(code).path
            out = {"coding_id": new_id, "message": f"Re-coded as {path}."}
        else:
            spans.set_memo(study, coder, coding_id, str(data.get("text") or ""))
            out = {"coding_id": coding_id, "message": "Memo saved."}
        return JSONResponse({**out, **self._redraw(request, study, coder, data)})

    def api_spans(self, request, study, coder, data):
        """The codings a transcript page draws (blind: only one's own), as JSON, with the
        page's layout (``?document=&coder=&code=``: the page's filters)."""
        q = request.query_params
        shown = self._transcript(request, study, coder, q.get("document") or "",
                                 q.get("coder") or "", q.get("code") or "")
        return JSONResponse({"document": shown["document"],
                             "codings": list(shown["marks"].values()),
                             "layout": transcript.layout(shown)})

    def codebook_page(self, request, study, coder, data):
        book = study.codebook()
        counts = confirmed_counts(study, coder if request.state.restricted else None)
        return self.render(request, "codebook.html", book=book, counts=counts,
                           roots=book.children(None), children=book.children)

    def _frequencies(self, study, who: str, allow_partial: bool = False):
        from coder.analysis import frequency

        known = who in study.coders()
        kwargs = {"coder": who} if who and known else (
            {"consensus": True} if who == "consensus" else {})
        return frequency.frequencies(study, level="category", allow_partial=allow_partial,
                                     **kwargs)

    def analysis_page(self, request, study, coder, data):
        who = request.query_params.get("coder") or ""
        allow_partial = request.query_params.get("allow_partial") == "1"
        options = [(r["name"], r["name"] if r["kind"] != "consensus" else
                    f"{r['name']} (consensus coder)")
                   for r in study.db.query("SELECT name, kind FROM coders ORDER BY id")]
        restricted = request.state.restricted   # a signed-in coder sees only their own
        if restricted:
            who, options = coder, [(coder, coder)]
        ctx: dict[str, Any] = {"who": who, "coder_options": options, "freq_html": "",
                               "freq_error": "", "chart": "", "allow_partial": allow_partial}
        try:
            from coder.analysis import chart, report
        except ImportError:
            ctx["freq_error"] = "Frequency tables are not available in this version of coder."
        else:
            try:
                df = self._frequencies(study, who, allow_partial)
            except CoderError as e:
                ctx["freq_error"] = str(e)
            else:
                ctx["freq_html"] = Markup(report.html_table(report.layout(df, counts=True),
                                                            df.attrs.get("N")))
                ctx["chart"] = base64.b64encode(chart.png_bytes(df)).decode("ascii")
        if restricted:
            ctx.update(agreement_section(study, hidden=True))
        else:
            ctx.update(agreement_section(study,
                                         machine=request.query_params.get("machine") == "1"))
        ctx.update(self._methods_view(study, request, who, allow_partial))
        return self.render(request, "analysis.html", **ctx)

    def quotes_page(self, request, study, coder, data):
        """Every coded passage of a code (`coder.analysis.quotes`), whose codings as on the
        Analysis page; each links to its place in the transcript."""
        from coder.analysis import quotes

        q = request.query_params
        want, who, by = q.get("code") or "", q.get("coder") or "", q.get("by") or ""
        allow_partial = q.get("allow_partial") == "1"
        blind = self.own_only(request) and coder is not None
        who = coder if blind else who   # blind coding: only one's own passages
        ctx: dict[str, Any] = dict(
            want_code=want, who=who, by=by, allow_partial=allow_partial, sections=[], blind=blind,
            notes=[], error="", codes=study.codebook().codes,
            attributes=[r[0] for r in study.db.query(
                "SELECT DISTINCT attribute FROM participant_attributes ORDER BY attribute")],
            coder_options=[(r["name"], r["name"] if r["kind"] != "consensus" else
                            f"{r['name']} (consensus coder)") for r in study.db.query(
                "SELECT name, kind FROM coders ORDER BY id")
                if not request.state.restricted or r["name"] == coder])
        if want:
            kwargs: dict[str, Any] = {"coder": who} if who and who in study.coders() else (
                {"consensus": True} if who == "consensus" else {})
            try:
                frame = quotes.quotes(study, want, by=by or None, allow_partial=allow_partial,
                                      **kwargs)
            except CoderError as e:
                ctx["error"] = str(e)
            else:
                ctx.update(sections=quotes.sections(frame), notes=frame.attrs["notes"],
                           title=quotes.title(frame), where=quotes.where)
        return self.render(request, "quotes.html", **ctx)

    def search_page(self, request, study, coder, data):
        """`coder search` in the page (`coder.sources.search`): every hit with its context,
        the hit marked (all text escaped by the template), each linking to its segment."""
        from coder.sources.search import search

        q = request.query_params
        ctx: dict[str, Any] = {
            "query": (q.get("q") or "").strip(), "regex": q.get("regex") == "1",
            "speaker": (q.get("speaker") or "").strip(),
            "documents": (q.get("documents") or "").strip(), "hits": [], "total": 0,
            "shown": SEARCH_SHOWN, "error": "",
            "speakers": [r[0] for r in study.db.query(
                "SELECT DISTINCT label FROM speakers ORDER BY label")]}
        if ctx["query"]:
            names = [x.strip() for x in ctx["documents"].split(",") if x.strip()] or None
            try:
                hits = search(study, ctx["query"], regex=ctx["regex"],
                              speaker=ctx["speaker"] or None, documents=names)
            except CoderError as e:
                ctx["error"] = str(e)
            else:
                ctx["total"] = len(hits)
                ctx["documents_hit"] = hits["document"].nunique()
                ctx["hits"] = [dict(h, link=f"/transcripts/{quote(h['document'])}"
                                            f"#seg-{h['segment_id']}")
                               for h in hits.head(SEARCH_SHOWN).to_dict("records")]
        return self.render(request, "search.html", **ctx)

    def _methods_view(self, study, request, who: str, allow_partial: bool) -> dict[str, Any]:
        """One methods analysis at a time (``?view=cooccur|matrix|saturation|model|memos``,
        `coder.analysis.sections`), counting whose codings the frequency table counts."""
        from coder.analysis import sections

        view = request.query_params.get("view") or ""
        kwargs: dict[str, Any] = {"coder": who} if who and who in study.coders() else (
            {"consensus": True} if who == "consensus" else {})
        body = sections.view_html(study, view, allow_partial=allow_partial, **kwargs) \
            if view in sections.VIEWS else ""
        query = {k: v for k, v in (("coder", who), ("allow_partial", "1" if allow_partial
                                                    else "")) if v}
        return {"methods_views": [(k, label, "?" + urlencode({**query, "view": k}))
                                  for k, label in sections.VIEWS.items()],
                "methods_view": view, "methods_html": Markup(body)}


AGREEMENT_MEASURES = [("percent_agreement", "% agreement"), ("cohen_kappa", "Cohen's κ"),
                      ("fleiss_kappa", "Fleiss' κ"), ("krippendorff_alpha", "Krippendorff's α"),
                      ("gwet_ac1", "Gwet's AC1")]


def agreement_section(study: Study, *, machine: bool = False, hidden: bool = False
                      ) -> dict[str, Any]:
    """Per-code agreement among the human coders (and the machine), via `coder.analysis.agreement`;
    ``hidden``: a signed-in coder who may not see the others' decisions."""
    out: dict[str, Any] = {"agreement_rows": [], "agreement_note": "", "machine": machine,
                           "measures": AGREEMENT_MEASURES, "agreement_coders": [],
                           "agreement_machine": []}
    if hidden:
        out["agreement_note"] = ("Agreement compares your decisions with other coders'; the "
                                 "lead has not allowed coders to see each other's decisions.")
        return out
    try:
        from coder.analysis.agreement import study_agreement
    except ImportError:
        out["agreement_note"] = "Agreement is not available in this version of coder."
        return out
    coders = [r["name"] for r in study.db.query(
        "SELECT DISTINCT c.name, c.id FROM coders c JOIN codings k ON k.coder_id = c.id "
        "WHERE c.kind = 'human' AND k.decision != 'auto' ORDER BY c.id")]
    out["agreement_coders"] = coders
    if len(coders) < (1 if machine else 2):
        out["agreement_note"] = ("Agreement needs at least two coders who decided the same "
                                 "segments (or one coder and the machine).")
        return out
    try:
        result = study_agreement(study, coders, machine=machine, ci=False)
    except CoderError as e:
        out["agreement_note"] = f"Agreement could not be computed: {e}"
        return out
    rows = []
    for comp in result.comparisons:
        label = comp.label
        rows += [{"comparison": label, **r} for r in comp.per_code]
        rows.append({"comparison": label, "code": "(mean over codes)", "units": comp.units,
                     **comp.mean_over_codes})
    out["agreement_rows"] = rows
    out["agreement_units"] = result.units
    out["agreement_machine"] = [f"{m.label}: {len(m.units)} of the {result.units} segments"
                                for m in result.machine]
    return out


def _clip(text: str, most: int = 60) -> str:
    """A passage shortened for a one-line message."""
    text = " ".join(text.split())
    return text if len(text) <= most else text[:most - 1] + "…"


async def _read_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    kind = request.headers.get("content-type", "")
    if "json" in kind:
        try:
            value = json.loads(body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def create_app(study_path: str | Path, *, coder: str | None = None, local_only: bool = True,
               tls: bool = False, secret: bytes | None = None) -> Starlette:
    """The ASGI app for one study file. ``local_only``: bound to loopback (else every visitor
    signs in, and the study must have users); ``tls``: served over HTTPS."""
    path = Path(study_path)
    with Study(path) as study:  # fail now, with the library's message, if it is not a study
        if coder is not None:  # 'Alice' is alice; a near-duplicate is refused
            coder = study.resolve_coder(check_coder_name(coder)).name
    settings = Settings(study_path=path, coder=coder, local_only=local_only,
                        signin_required=not local_only, tls=tls)
    if secret is not None:
        settings.secret = secret
    web = Web(settings)
    r = web.route
    routes = [
        Route("/", r(web.home, gate=True)),
        Route("/start", r(web.start_page), methods=["GET"]),
        Route("/start", r(web.start_post, write=True), methods=["POST"]),
        Route("/signin", r(web.signin_page, gate=False), methods=["GET"]),
        Route("/signin", r(web.signin_post, write=True, gate=False), methods=["POST"]),
        Route("/signout", r(web.signout_post, write=True, gate=False), methods=["POST"]),
        Route("/password", r(web.password_page, needs_coder=True), methods=["GET"]),
        Route("/password", r(web.password_post, write=True, needs_coder=True),
              methods=["POST"]),
        Route("/team", r(web.team_page, lead=True), methods=["GET"]),
        Route("/team", r(web.team_post, write=True, lead=True), methods=["POST"]),
        Route("/team/train", r(web.team_train, write=True, lead=True), methods=["POST"]),
        Route("/reconcile", r(web.reconcile_page, lead=True), methods=["GET"]),
        Route("/reconcile", r(web.reconcile_post, write=True, lead=True), methods=["POST"]),
        Route("/reconcile/start", r(web.reconcile_start, write=True, lead=True),
              methods=["POST"]),
        Route("/review", r(web.review_page, needs_coder=True)),
        Route("/api/next", r(web.api_next, needs_coder=True)),
        Route("/api/segment/{segment_id:int}", r(web.api_segment, needs_coder=True)),
        Route("/api/decide", r(web.api_decide, write=True, needs_coder=True), methods=["POST"]),
        Route("/api/undo", r(web.api_undo, write=True, needs_coder=True), methods=["POST"]),
        Route("/api/memo", r(web.api_memo, write=True, needs_coder=True), methods=["POST"]),
        Route("/transcripts", r(web.transcripts_page)),
        Route("/transcripts/{name:path}", r(web.document_page)),
        Route("/codes.css", r(web.codes_css)),
        Route("/api/spans", r(web.api_spans, needs_coder=True), methods=["GET"]),
        Route("/api/spans", r(web.api_span, write=True, needs_coder=True), methods=["POST"]),
        Route("/api/spans/{coding_id:int}/{action:str}",
              r(web.api_span_change, write=True, needs_coder=True), methods=["POST"]),
        Route("/codebook", r(web.codebook_page)),
        Route("/analysis", r(web.analysis_page)),
        Route("/search", r(web.search_page)),
        Route("/quotes", r(web.quotes_page)),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        web.writer.shutdown(wait=True)   # the last decisions are written before the exit

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    return app
