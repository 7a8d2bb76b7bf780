"""A feature's page (DESIGN.md §6): what it responds to across the dataset, from the feature
cache, and where it fires in the game the main screen shows.

Top: the user's own label and notes (N edits them, ``othello_tui/notes.py``); the automatic label with its precision, recall and F1 and the other candidates; firing
frequency, mean activation and who moved at the top examples; the activation at the main
screen's position and the moves of that game where the feature fires. Middle: the five board
panels over the top examples and the decoder's logit effect, as coloured 8×8 heatmaps with their
scales (``features/render.py``, as ``othello-tui feature`` prints them). Bottom: the top examples
(Enter opens one's game at that move in the main screen) beside the activation histogram and the
move numbers of the examples.

The statistics come from the session's :class:`~othello_tui.tui.feature_library.FeatureLibrary`:
from memory when read before, else from a worker (one small HDF5 read). Without a cache the page
says why; while one is being built it shows the build's progress and fills in when it is ready.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

import numpy as np
from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import get_current_worker

from othello_tui.circuits.nodes import Target
from othello_tui.game.rules import Game
from othello_tui.notes import MARK
from othello_tui.tui.messages import OpenTree, ShowGame
from othello_tui.tui.screens.note import edit_note
from othello_tui.tui.session import Session
from othello_tui.tui.views import FeatureSummary
from othello_tui.tui.widgets.examples import HEADER, ExampleList
from othello_tui.tui.widgets.footer import Footer

if TYPE_CHECKING:
    from othello_tui.features import Example, FeatureStats

BOARD_CELL = 4  # characters a square: a panel is 38 wide, three fit in 120 columns
PANEL_WIDTH = 39  # a panel and the gutter after it
MAX_MOVES_LISTED = 24
POLL_SECONDS = 0.5  # how often a page waiting for the cache looks again
MODULE_KINDS = {"A": "attention output", "M": "MLP output"}
PANELS = ("move", "legal", "board", "flipped", "empty", "logit")  # as ``board_panels`` orders them
SHOWN_IN = {
    "head": "feature-head",
    **{name: f"panel-{name}" for name in (*PANELS, "belief")},  # belief: residual features only
    "distributions": "distributions",
}


def describe(feature_id: str) -> str:
    """``"L2M845"`` -> ``"feature 845 of L2M, the MLP output of layer 2"``."""
    match = re.fullmatch(r"(L(\d+)([AMR]))(\d+)", feature_id)
    if match is None:
        return "not a feature id"
    module, layer, kind, index = match.groups()
    if kind == "R":
        return f"feature {index} of {module}, a readout of the residual stream after block {layer}"
    return f"feature {index} of {module}, the {MODULE_KINDS[kind]} of layer {layer}"


def here_line(summary: FeatureSummary, source: str) -> Text:
    """The activation at the main screen's position, and where else the feature fires there."""
    text = Text("here: ", style="bold")
    if summary.position < 0:
        return text.append(f"no move played yet in {source}")
    where = f"move {summary.position + 1} (P{summary.position}) of {source}"
    activation = summary.activation
    if activation is None:
        return text.append(f"{where} is not analysed yet")
    text.append(f"{activation:.3g}" if activation else "not active", style="bold")
    moves = " ".join(str(move) for move, _ in summary.firing[:MAX_MOVES_LISTED])
    moves += " …" if len(summary.firing) > MAX_MOVES_LISTED else ""
    text.append(f" at {where} · fires at {len(summary.firing)} of {summary.analysed_moves} moves")
    return text.append(f": {moves}" if summary.firing else "")


class FeatureScreen(Screen):
    AUTO_FOCUS = "ExampleList"
    DEFAULT_CSS = """
    FeatureScreen { layout: vertical; }
    #feature-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    #feature-yours { height: auto; padding: 0 1; }
    #feature-head { height: auto; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    #feature-note { height: auto; padding: 0 1; color: $text-warning; }
    #boards { display: none; height: 1fr; layout: grid; grid-size: 3; grid-gutter: 0 1;
              grid-rows: 11; grid-columns: 38; padding: 0 1; scrollbar-size-vertical: 1; }
    #boards > Static { width: 38; height: 11; }  /* fixed: no measuring the panels to lay out */
    #lower { display: none; height: 12; }
    #examples-pane { width: 40; border-top: hkey $primary; border-title-align: left; }
    #examples-header { height: 1; text-style: bold; }
    #distributions { width: 1fr; height: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    BINDINGS = [
        Binding("escape,backspace", "back", "back", tooltip="back to the screen before", id="feature.back"),
        Binding(
            "enter",
            "open_example",
            "open example",
            tooltip="open the top example's game at its move, in the main screen",
            id="feature.example",
        ),
        Binding("N", "note", "note", tooltip="write your label and notes on this feature", id="feature.note"),
        Binding(
            "t",
            "trace",
            "tree",
            tooltip="the contributor tree of this feature at the main screen's move",
            id="feature.tree",
        ),
    ]

    class Loaded(Message):
        """The page's statistics and the feature's activations in the main screen's game (and a
        residual feature's believed board, ``Session.decoder_reading``)."""

        def __init__(self, stats: FeatureStats, summary: FeatureSummary, reading: np.ndarray | None):
            super().__init__()
            self.stats, self.summary, self.reading = stats, summary, reading

    class Failed(Message):
        """What a worker could not do, and why."""

        def __init__(self, text: str):
            super().__init__()
            self.text = text

    def __init__(
        self, session: Session, feature_id: str, game: Game, n_moves: int, source: str, row: int = 0
    ):
        super().__init__()
        self.session, self.feature_id = session, feature_id
        self.game, self.n_moves, self.source = game, n_moves, source
        self.stats: FeatureStats | None = None
        self.summary: FeatureSummary | None = None  # where it fires in the main screen's game
        self._row = row  # the examples' cursor row to restore
        self._poll: Timer | None = None

    def reopen(self) -> FeatureScreen:
        """A fresh copy (for going back after a detour), its examples' cursor where it was."""
        row = self.query_one(ExampleList).cursor if self.stats is not None else self._row
        return FeatureScreen(self.session, self.feature_id, self.game, self.n_moves, self.source, row)

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.feature_id} · {describe(self.feature_id)}"), id="feature-title")
        yield Static(self.yours(), id="feature-yours")
        yield Static(id=SHOWN_IN["head"])
        yield Static(id="feature-note")
        with VerticalScroll(id="boards"):
            for name in PANELS:
                yield Static(id=SHOWN_IN[name])
            yield Static(id=SHOWN_IN["belief"])
        with Horizontal(id="lower"):
            with Vertical(id="examples-pane"):
                yield Static(HEADER, id="examples-header")
                yield ExampleList(id="examples")
            yield Static(id=SHOWN_IN["distributions"])
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.fit(self.app.size.width)
        self.check_cache()

    # -- filling in -------------------------------------------------------------------------

    def yours(self) -> Text:
        """The user's label and notes, or how to write them, or why there are none."""
        notes = self.session.notes
        note = notes.get(self.feature_id) if notes is not None else None
        text = Text(f"{MARK} yours: ", style="bold")
        if note is None:
            why = self.session.notes_unavailable()
            return text.append(why or "no label of yours yet (N writes one)", style="dim")
        text.append(note.label or "(no label)", style="bold italic")
        return text.append(f" · {note.notes}" if note.notes else "")

    def from_memory(self) -> tuple[FeatureStats, FeatureSummary, np.ndarray | None] | tuple[()]:
        """The statistics and the game's activations if both are at hand without waiting (the
        statistics were read before, the game is analysed), else nothing."""
        stats = self.session.library.cached(self.feature_id)
        if stats is None:
            return ()
        summary = self.session.feature_summary(self.game, self.n_moves, stats.module, stats.index)
        if summary and (summary.activation is not None or summary.position < 0):
            return stats, summary, self.session.decoder_reading(stats.module, stats.index)
        return ()

    def check_cache(self) -> None:
        """Read the statistics if the cache is ready; else say why not, and look again every so
        often while it may still come."""
        state = self.session.library.state()
        self.say(state.note)
        if state.waiting and self._poll is None:
            self._poll = self.set_interval(POLL_SECONDS, self.check_cache)
        if not state.waiting and self._poll is not None:
            self._poll.stop()
            self._poll = None
        if not state.ready:
            return
        found = self.from_memory()
        if found:  # no worker needed; still a message, so that the empty page is drawn first:
            self.post_message(self.Loaded(*found))  # measured cheaper than composing it filled
        else:
            self.load()

    def say(self, note: str | None) -> None:
        widget = self.query_one("#feature-note", Static)
        widget.update(Text(note or ""))
        widget.display = bool(note)

    @work(thread=True, exclusive=True, group="feature-page")
    def load(self) -> None:
        library = self.session.library
        try:
            stats = library.stats(self.feature_id)
        except (ValueError, RuntimeError) as error:  # FeatureIdError, CacheError: say so
            self.post_message(self.Failed(f"No statistics for {self.feature_id}: {error}"))
            return
        self.session.analyse(self.game)  # the main screen's game: usually analysed already
        summary = self.session.feature_summary(self.game, self.n_moves, stats.module, stats.index)
        if not get_current_worker().is_cancelled:
            self.post_message(
                self.Loaded(stats, summary, self.session.decoder_reading(stats.module, stats.index))
            )

    def on_feature_screen_failed(self, message: Failed) -> None:
        self.say(message.text)

    def on_feature_screen_loaded(self, message: Loaded) -> None:
        parts = self.parts(message.stats, message.summary, message.reading)
        self.summary = message.summary
        self.say(None)
        for part, widget in SHOWN_IN.items():
            self.query_one(f"#{widget}", Static).update(parts[part])
        self.query_one(f"#{SHOWN_IN['belief']}").display = message.reading is not None
        self.query_one(ExampleList).show(message.stats.examples, self._row)
        self.query_one("#examples-pane").border_title = cast(str, parts["examples"])  # a plain title
        self.query_one("#boards").display = self.query_one("#lower").display = True

    def parts(
        self, stats: FeatureStats, summary: FeatureSummary, reading: np.ndarray | None = None
    ) -> dict[str, RenderableType]:
        """What the page shows of ``stats``, ``summary`` and a residual feature's believed board
        ``reading``, by part; keeps ``stats``."""
        # not at import time: the features package brings torch, and the app starts without it
        # (statistics exist only once the engine, which imports torch, has opened the cache)
        from othello_tui.features.render import (
            belief_panel,
            board_panels,
            candidates_line,
            facts_line,
            histogram_line,
            label_line,
            move_number_line,
        )

        self.stats = stats
        head = Text("label: ", style="bold").append_text(label_line(stats))
        for line in (candidates_line(stats), facts_line(stats), here_line(summary, self.source)):
            head.append("\n").append_text(line)
        return {
            "head": head,
            **dict(zip(PANELS, board_panels(stats, BOARD_CELL), strict=True)),
            "belief": belief_panel(reading, BOARD_CELL) if reading is not None else "",
            "examples": f"top {stats.n_examples} examples · Enter opens one",
            "distributions": Text.assemble(
                histogram_line(stats, "\n"), "\n\n", move_number_line(stats, "\n")
            ),
        }

    # -- keys -------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_note(self) -> None:
        def saved(text: str) -> None:
            self.notify(text, title="Note")
            self.query_one("#feature-yours", Static).update(self.yours())

        edit_note(self.app, self.session, self.feature_id, saved)

    def action_trace(self) -> None:
        stats, summary = self.stats, self.summary
        if stats is None or summary is None or summary.position < 0 or not summary.activation:
            where = (
                f"move {summary.position + 1}" if summary is not None and summary.position >= 0 else "here"
            )
            self.say(
                f"{self.feature_id} is not active at {where}: t explains it where it fires (Enter opens a top example)."
            )
            return
        self.post_message(
            OpenTree(Target("feature", summary.position, module=stats.module, feature=stats.index))
        )

    def on_example_list_open(self, message: ExampleList.Open) -> None:
        self.load_example(message.example)

    def action_open_example(self) -> None:
        example = self.query_one(ExampleList).current
        if example is not None:
            self.load_example(example)

    @work(thread=True, exclusive=True, group="feature-example")
    def load_example(self, example: Example) -> None:
        try:
            game, seed = self.session.library.example_game(example.game)
        except (IndexError, RuntimeError) as error:
            self.post_message(self.Failed(f"Cannot open game {example.game}: {error}"))
            return
        if seed == self.session.seed:
            index, source = example.game, f"game {example.game} (seed {seed})"
        else:  # not a game of the session's seed, which n and g count in
            index, source = None, f"game {example.game} of the feature cache (seed {seed})"
        self.post_message(ShowGame(game, example.position + 1, source, index))

    # -- terminal size ----------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        self.fit(event.size.width)

    def fit(self, width: int) -> None:
        """As many board panels a row as fit (three at 120 columns)."""
        fitting = (width - 2) // PANEL_WIDTH  # less the padding and the 1-cell scroll bar, plus a gutter
        columns, styles = max(1, min(3, fitting)), self.query_one("#boards").styles
        if styles.grid_size_columns != columns:  # setting it lays the page out again
            styles.grid_size_columns = columns
