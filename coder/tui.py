"""The full-screen terminal review (Textual): one key per decision, each saved when pressed.

All decisions go through :mod:`coder.review` (``decide``, ``undo``, ``memo``), one transaction
each, so quitting, a crash or ``kill -9`` loses nothing already decided. The screen shows the
segment with the turns around it, the suggestions with score and source (not in blind mode),
the model they came from and whose decisions it learned from, and progress. Other coders'
codes are shown only with ``show_others``; each decision records what was on screen
(`coder.review.context`).

The keys do what they do on the web page (`coder serve`): a accepts the highlighted suggestion,
r rejects it, and every other suggestion stays undecided until it is decided in turn; when
none is left undecided the next segment comes. o picks another code (type to search), n says
no code applies, enter or s goes to the next segment (undecided suggestions stay undecided),
u undo, m memo, up/down (or j/k) move, q quit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from coder import review
from coder.errors import CoderError
from coder.review import search as search_proposals
from coder.review.decisions import existing_coder
from coder.study import Study

KEYS = ("a accept  r reject  up/down move  o other code  n no code  enter/s next  u undo  "
        "m memo  q quit")
# what a and r do to the other suggestions, said on screen (the web page behaves the same)
HOW = ("a accepts the highlighted code, r rejects it; the others stay undecided until you "
       "decide them. The next segment comes when none is undecided; enter or s goes on now.")
MARK = {"confirmed": "✓ confirmed", "added": "+ added", "rejected": "✗ rejected",
        "auto": "• auto"}


@dataclass
class Row:
    """One code line on the screen: a suggestion, or a code the coder picked."""

    code_id: str
    path: str
    score: float | None = None
    source: str | None = None
    suggested: bool = False
    status: str | None = None  # the coder's stored decision on this code, if any
    proposal: search_proposals.Proposal | None = None  # a hit of `coder search --code`

    @property
    def pending(self) -> bool:
        """A suggestion (or search proposal) this coder has not decided yet."""
        return self.suggested and self.status is None


class PickCode(ModalScreen):
    """Searchable list of the codebook's codes; returns a code id or None."""

    BINDINGS = [Binding("escape", "cancel", "cancel", priority=True),
                Binding("down", "move(1)", show=False, priority=True),
                Binding("up", "move(-1)", show=False, priority=True)]
    DEFAULT_CSS = """
    PickCode { align: center middle; }
    PickCode > Vertical { width: 80%; height: 80%; border: round $accent; background: $panel; }
    PickCode OptionList { height: 1fr; }
    """

    def __init__(self, codes: list[tuple[str, str, str]]):
        super().__init__()
        self.codes = codes  # (id, path, searchable text)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Pick a code: type to search, up/down, enter to choose, escape to cancel")
            yield Input(placeholder="search codes", id="search")
            yield OptionList(id="choices")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one(Input).focus()

    def _fill(self, text: str) -> None:
        terms = text.lower().split()
        box = self.query_one(OptionList)
        box.clear_options()
        box.add_options([Option(Text(path), id=cid) for cid, path, hay in self.codes
                         if all(t in hay for t in terms)])
        if box.option_count:
            box.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        box = self.query_one(OptionList)
        if box.highlighted is not None and box.option_count:
            self.dismiss(box.get_option_at_index(box.highlighted).id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_move(self, step: int) -> None:
        box = self.query_one(OptionList)
        if box.option_count:
            box.highlighted = ((box.highlighted or 0) + step) % box.option_count

    def action_cancel(self) -> None:
        self.dismiss(None)


class MemoInput(ModalScreen):
    """A one-line memo for the current segment; returns the text or None."""

    BINDINGS = [Binding("escape", "cancel", "cancel", priority=True)]
    DEFAULT_CSS = """
    MemoInput { align: center middle; }
    MemoInput > Vertical { width: 80%; height: 7; border: round $accent; background: $panel; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Memo for this segment (enter to save, escape to cancel)")
            yield Input(placeholder="memo", id="memo")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReviewScreen(Screen):
    BINDINGS = [
        Binding("a", "accept", "accept", priority=True),
        Binding("r", "reject", "reject", priority=True),
        Binding("o", "other", "other code", priority=True),
        Binding("n", "no_code", "no code", priority=True),
        Binding("enter", "skip", "next", priority=True),
        Binding("s", "skip", "next", priority=True),
        Binding("u", "undo", "undo", priority=True),
        Binding("m", "memo", "memo", priority=True),
        Binding("q", "quit", "quit", priority=True),
        Binding("down", "move(1)", show=False, priority=True),
        Binding("up", "move(-1)", show=False, priority=True),
        Binding("j", "move(1)", show=False, priority=True),
        Binding("k", "move(-1)", show=False, priority=True),
    ]
    DEFAULT_CSS = """
    ReviewScreen { layout: vertical; }
    #status { height: 1; background: $primary; color: $text; padding: 0 1; }
    #context { height: auto; max-height: 60%; padding: 0 1; }
    #before, #after { color: $text-muted; }
    #segment { margin: 1 0; border: round $accent; padding: 0 1; }
    #codes { height: auto; padding: 0 1; border: round $secondary; }
    #how { height: auto; padding: 0 1; color: $text-muted; }
    #message { height: 1; padding: 0 1; color: $warning; }
    #keys { dock: bottom; height: 1; background: $panel; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Vertical(id="context"):
            yield Static(id="before")
            yield Static(id="segment")
            yield Static(id="after")
        yield Static(id="codes")
        yield Static(HOW, id="how")
        yield Static(id="message")
        yield Static(KEYS, id="keys")

    def on_mount(self) -> None:
        self.app.show_item(self.app.greeting)

    def action_accept(self) -> None:
        self.app.do_accept()

    def action_reject(self) -> None:
        self.app.do_reject()

    def action_other(self) -> None:
        self.app.pick_other()

    def action_no_code(self) -> None:
        self.app.do_no_code()

    def action_skip(self) -> None:
        self.app.do_skip()

    def action_undo(self) -> None:
        self.app.do_undo()

    def action_memo(self) -> None:
        self.app.ask_memo()

    def action_quit(self) -> None:
        self.app.exit()

    def action_move(self, step: int) -> None:
        self.app.move_cursor(step)


class ReviewApp(App):
    """Review one coder's queue; ``summary`` holds a line to print after the app exits."""

    TITLE = "coder review"

    def __init__(self, study: str | Path, coder: str, *, order: str = "uncertain",
                 codes: list[str] | None = None, documents: list[str] | None = None,
                 blind: bool = False, seed: int = 0, show_others: bool = False):
        super().__init__()
        self.study = Study(study)
        ref = self.study.resolve_coder(coder)
        self.coder = ref.name
        self.greeting = ref.note() or ""
        self.order, self.codes, self.documents, self.blind = order, codes, documents, blind
        self.show_others = show_others and not blind
        self.items = review.queue(self.study, self.coder, order=order, codes=codes,
                                  documents=documents, blind=blind, seed=seed,
                                  show_others=self.show_others)
        self.done, self.total = review.progress(self.study, self.coder, codes=codes,
                                                documents=documents)
        book = self.study.codebook()
        allowed = review.code_filter(book, codes)
        self.pickable = [(c.id, c.path, (c.path + " " + " ".join(c.items)).lower())
                         for c in book if allowed is None or c.id in allowed]
        self.index = 0
        self.rows: list[Row] = []
        self.cursor = 0
        self.shown_at = time.monotonic()
        self.decisions = 0
        self.no_code_decided = False
        self.seed = seed
        self.seen: review.Seen | None = None   # what the current segment's screen shows
        self._views: dict[tuple, review.Seen] = {}

    def on_mount(self) -> None:
        self.push_screen(ReviewScreen())

    @property
    def summary(self) -> str:
        return (f"{self.coder}: {self.decisions} decision(s) saved this session; "
                f"{self.done} of {self.total} segments decided.")

    # -- display ---------------------------------------------------------------------------
    @property
    def item(self) -> review.QueueItem | None:
        return self.items[self.index] if self.index < len(self.items) else None

    def _view(self, item: review.QueueItem) -> review.Seen:
        """What this segment's screen shows, as each decision on it records it."""
        others = tuple(sorted({c for c, _, _ in item.others})) if self.show_others else ()
        versions = tuple(sorted({s.model_version for s in item.suggestions
                                 if s.model_version is not None}))
        if (others, versions) not in self._views:
            self._views[(others, versions)] = review.seen(
                self.study, "terminal", blind=self.blind, others_shown=self.show_others,
                others=others, model_versions=versions)
        return self._views[(others, versions)]

    def _load_rows(self) -> None:
        item = self.item
        self.rows, self.cursor = [], 0
        self.no_code_decided = False
        if item is None:
            self.seen = None
            return
        self.seen = self._view(item)
        cid = existing_coder(self.study, self.coder)
        stored = {r["code_id"]: r["decision"] for r in self.study.db.query(
            "SELECT code_id, decision FROM codings WHERE segment_id=? AND coder_id=? "
            "AND start_char IS NULL", (item.segment_id, cid))}
        self.no_code_decided = None in stored
        for p in search_proposals.proposals(self.study, self.coder, segment_id=item.segment_id,
                                            open_only=False):
            if p.is_open or any(q.id == p.id for q in item.proposals):
                self.rows.append(Row(p.code_id, p.path, None, p.label, True,
                                     None if p.is_open else p.status, proposal=p))
        for s in item.suggestions:
            self.rows.append(Row(s.code_id, s.path, s.score, s.source, True,
                                 stored.get(s.code_id)))
        book = self.study.codebook()
        for code_id, status in stored.items():
            if code_id is not None and all(r.code_id != code_id for r in self.rows):
                path = book.get(code_id).path if code_id in book._by_id else code_id
                self.rows.append(Row(code_id, path, None, None, False, status))
        self.cursor = self._first_pending() or 0

    def _first_pending(self) -> int | None:
        """The first undecided suggestion from the top (where the web page's highlight goes)."""
        return next((i for i, r in enumerate(self.rows) if r.pending), None)

    def show_item(self, message: str = "") -> None:
        self._load_rows()
        self.shown_at = time.monotonic()
        self.render_item(message)

    def render_item(self, message: str = "") -> None:
        screen = self.screen
        item = self.item
        left = len(self.items) - self.index
        flags = "  [blind]" if self.blind else ""
        screen.query_one("#status", Static).update(Text(
            f"coder review · {self.coder} · {self.study.path.name} · order {self.order}{flags}   "
            f"decided {self.done}/{self.total} · {max(left, 0)} left in queue"))
        if item is None:
            screen.query_one("#before", Static).update("")
            screen.query_one("#segment", Static).update(Text(
                "Queue finished: every segment in it is decided. u undo, q quit."))
            screen.query_one("#after", Static).update("")
            screen.query_one("#codes", Static).update("")
            screen.query_one("#message", Static).update(Text(message))
            return
        before = Text()
        if item.previous_text is not None:
            before.append(f"{item.previous_speaker or '?'}: ", style="bold")
            before.append(item.previous_text)
        after = Text()
        if item.next_text is not None:
            after.append(f"{item.next_speaker or '?'}: ", style="bold")
            after.append(item.next_text)
        seg = Text()
        seg.append(f"{item.document} #{item.position}  {item.speaker or '?'}", style="bold")
        if item.participant and item.participant != item.speaker:
            seg.append(f" ({item.participant})")
        seg.append("\n")
        seg.append(item.text)
        if item.others and self.show_others:
            seg.append("\nother coders: " + "; ".join(
                f"{c}: {p or 'no code'} ({d})" for c, p, d in item.others), style="italic")
        screen.query_one("#before", Static).update(before)
        screen.query_one("#segment", Static).update(seg)
        screen.query_one("#after", Static).update(after)
        codes = Text()
        if self.seen is not None and self.seen.model_version is not None:
            learned = self.seen.model_coders
            codes.append(f"suggestions of model v{self.seen.model_version}, "
                         + (f"learned from {', '.join(learned)}" if learned
                            else "from the codebook alone") + "\n", style="dim")
        if self.no_code_decided:
            codes.append("decided: no code applies\n", style="bold")
        if not self.rows:
            codes.append("no suggestions (blind)" if self.blind else "no suggestions",
                         style="italic")
            codes.append(" · o pick a code · n no code · s skip")
        for i, row in enumerate(self.rows):
            line = Text()
            line.append("> " if i == self.cursor else "  ")
            line.append(f"{row.score:.2f} " if row.score is not None else "  -  ")
            line.append(row.path, style="bold" if i == self.cursor else "")
            if row.source:
                line.append(f"  ({row.source})", style="dim")
            if row.proposal is not None:
                line.append("  " + ("the whole segment" if row.proposal.span == "segment"
                                    else f"“{row.proposal.text}”"), style="italic")
            if row.status:
                line.append(f"  {MARK.get(row.status, row.status)}")
            elif row.suggested:
                line.append("  · undecided", style="dim")
            if i == self.cursor:
                line.stylize("reverse")
            codes.append_text(line)
            if i + 1 < len(self.rows):
                codes.append("\n")
        screen.query_one("#codes", Static).update(codes)
        screen.query_one("#message", Static).update(Text(message))

    # -- decisions --------------------------------------------------------------------------
    def _refresh_progress(self) -> None:
        """Decided/total from the study itself, after every decision and undo (an undo inside
        a segment makes it undecided again; `coder status` counts the same way)."""
        self.done, self.total = review.progress(self.study, self.coder, codes=self.codes,
                                                documents=self.documents)

    def _decide(self, code_id: str | None, decision: str,
                proposal: search_proposals.Proposal | None = None) -> bool:
        item = self.item
        if item is None:
            return False
        try:
            if proposal is not None:  # a search hit: its exact span, or a rejection
                search_proposals.decide_proposal(
                    self.study, self.coder, proposal.id, decision,
                    seconds=round(time.monotonic() - self.shown_at, 3), seen=self.seen)
            else:
                review.decide(self.study, self.coder, item.segment_id, code_id, decision,
                              seconds=round(time.monotonic() - self.shown_at, 3),
                              source="review", seen=self.seen)
        except CoderError as e:
            self.render_item(f"not saved: {e}")
            return False
        self.decisions += 1
        self._refresh_progress()
        return True

    def _suggested(self, code_id: str) -> bool:
        item = self.item
        return item is not None and self.study.db.one(
            "SELECT 1 FROM suggestions WHERE segment_id=? AND code_id=?",
            (item.segment_id, code_id)) is not None

    def _next(self, message: str) -> None:
        self.index += 1
        self.show_item(message)

    def _after(self, message: str) -> None:
        """As on the web page: stay while a suggestion is undecided (highlight the first one),
        go to the next segment when none is."""
        self._load_rows()
        if self._first_pending() is None:
            self._next(message)
            return
        left = sum(r.pending for r in self.rows)
        self.render_item(f"{message}; {left} suggestion(s) still undecided")

    def do_accept(self) -> None:
        if not self.rows:
            self.render_item("nothing highlighted: o picks a code, n says no code applies")
            return
        row = self.rows[self.cursor]
        decision = "confirmed" if (row.suggested or self._suggested(row.code_id)) else "added"
        if self._decide(row.code_id, decision, row.proposal):
            self._after(f"saved: {row.path} {decision}")

    def do_reject(self) -> None:
        if not self.rows:
            self.render_item("nothing highlighted to reject")
            return
        row = self.rows[self.cursor]
        if self._decide(row.code_id, "rejected", row.proposal):
            self._after(f"saved: {row.path} rejected")

    def do_no_code(self) -> None:
        if self._decide(None, "no_code"):
            self._next("saved: no code applies")

    def do_skip(self) -> None:
        """Enter or s: the next segment. A segment with decisions leaves the queue; its
        undecided suggestions stay undecided (the screen says how many)."""
        if self.item is None:
            return
        left = sum(r.pending for r in self.rows)
        if self.no_code_decided or any(r.status for r in self.rows):
            self._next("next segment; the last one is decided" + (
                f", {left} of its suggestions left undecided" if left else ""))
        else:
            self._next("skipped (it stays in the queue for next time)")

    def move_cursor(self, step: int) -> None:
        if self.rows:
            self.cursor = (self.cursor + step) % len(self.rows)
            self.render_item()

    def pick_other(self) -> None:
        if self.item is None:
            return

        def chosen(code_id: str | None) -> None:
            if not code_id:
                self.render_item("no code picked")
                return
            decision = "confirmed" if self._suggested(code_id) else "added"
            if self._decide(code_id, decision):
                path = self.study.codebook().get(code_id).path
                self._load_rows()
                self.cursor = next(i for i, r in enumerate(self.rows) if r.code_id == code_id)
                self.render_item(f"saved: {path} {decision} (enter: next segment)")

        self.push_screen(PickCode(self.pickable), chosen)

    def ask_memo(self) -> None:
        item = self.item
        if item is None:
            return

        def save(text: str | None) -> None:
            if text and text.strip():
                review.memo(self.study, self.coder, item.segment_id, text)
                self.render_item("memo saved")
            else:
                self.render_item("no memo saved")

        self.push_screen(MemoInput(), save)

    def do_undo(self) -> None:
        try:
            undone = review.undo(self.study, self.coder)
        except CoderError as e:
            self.render_item(str(e))
            return
        self.decisions = max(self.decisions - 1, 0)
        self._refresh_progress()
        where = [i for i, it in enumerate(self.items) if it.segment_id == undone.segment_id]
        if where:
            self.index = where[0]
        else:  # decided in an earlier session: bring it back if it is open again
            fresh = [it for it in review.queue(self.study, self.coder, order=self.order,
                                               codes=self.codes, documents=self.documents,
                                               blind=self.blind, seed=self.seed,
                                               show_others=self.show_others)
                     if it.segment_id == undone.segment_id]
            if fresh:
                self.items.insert(self.index, fresh[0])
        self.show_item(undone.description)
