"""The attention view (``w``): where every head of every layer looks from the current position,
and, for one (head, key position), why: the pre-softmax score as an exact sum over (query node,
key node) pairs (QK, DESIGN.md §3.7). Positional-embedding pairs dominating a score is what a
head attending by position looks like.

The screen owns the state (game, query position, chosen cell) and asks the session's circuits
backend in thread workers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from othello_tui.circuits.nodes import CircuitError
from othello_tui.circuits.tree import Expansion
from othello_tui.game.rules import Game
from othello_tui.game.squares import square_name
from othello_tui.tui.circuits_backend import CircuitsUnavailableError
from othello_tui.tui.session import Session
from othello_tui.tui.widgets.attention_grid import AttentionGrid
from othello_tui.tui.widgets.contributor_tree import sum_check
from othello_tui.tui.widgets.footer import Footer
from othello_tui.tui.widgets.qk_table import QKTable

QK_TOP = 30  # pairs listed; the rest is one row

LEGEND = "weight: · <5%  ░ 5–20%  ▒ 20–40%  ▓ 40–70%  █ ≥70%"  # its own line: it fits 80 columns


class AttentionScreen(Screen):
    DEFAULT_CSS = """
    AttentionScreen { layout: vertical; }
    #attention-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    #attention-legend { height: auto; padding: 0 1; color: $text-muted; }
    #attention-cell { height: auto; padding: 0 1; }
    #qk-title { height: auto; padding: 0 1; margin-top: 1; }
    #attention-message { height: auto; max-height: 3; padding: 0 1; color: $text-warning; }
    """
    BINDINGS = [
        Binding("escape", "close", "back", tooltip="back to the board", id="attention.back"),
        Binding(
            "enter",
            "qk",
            "QK pairs",
            tooltip="the QK decomposition of the head and key under the cursor",
            id="attention.qk",
        ),
        Binding(
            "j", "jump", "jump", tooltip="the board at the key position under the cursor", id="attention.jump"
        ),
    ]

    class PatternLoaded(Message):
        def __init__(self, pattern_LHS: np.ndarray | None, error: str | None = None):
            super().__init__()
            self.pattern_LHS, self.error = pattern_LHS, error

    class PairsLoaded(Message):
        def __init__(self, cell: tuple[int, int, int], expansion: Expansion | None, error: str | None = None):
            super().__init__()
            self.cell, self.expansion, self.error = cell, expansion, error

    def __init__(self, session: Session, game: Game, position: int, source: str, jump: Callable[[int], None]):
        """Attention from query ``position`` of ``game``; ``jump`` shows move n on the main board."""
        super().__init__()
        self.session, self.game, self.position, self.source = session, game, position, source
        self._jump = jump

    def reopen(self) -> AttentionScreen:
        """The same view anew (Backspace back from a detour; see ``navigation.py``)."""
        return AttentionScreen(self.session, self.game, self.position, self.source, self._jump)

    def compose(self) -> ComposeResult:
        yield Static(id="attention-title")
        yield Static(LEGEND, id="attention-legend")
        yield AttentionGrid(id="attention-grid")
        yield Static(id="attention-cell")
        yield Static(id="qk-title")
        yield QKTable(id="qk-table")
        yield Static(id="attention-message")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        try:
            self.grid = self.query_one(AttentionGrid)
        except NoMatches:  # pushed while the app quits: it never got its widgets
            return
        move = self.game.moves[self.position]
        self.query_one("#attention-title", Static).update(
            Text(
                f"Attention · {self.source} · query P{self.position} (move {self.position + 1}, "
                f"{square_name(move.square)})"
            )
        )
        self.query_one("#qk-title", Static).update(Text("Enter on a cell: its QK pairs.", "italic"))
        self.load_pattern()

    # -- workers ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="attention")
    def load_pattern(self) -> None:
        try:
            pattern = self.session.circuits.attention(self.game.squares, self.position)
        except (CircuitError, CircuitsUnavailableError) as error:
            self.post_message(self.PatternLoaded(None, str(error)))
        else:
            self.post_message(self.PatternLoaded(pattern))

    @work(thread=True, exclusive=True, group="qk")
    def load_qk(self, layer: int, head: int, key: int) -> None:
        try:
            expansion = self.session.circuits.qk(self.game.squares, self.position, layer, head, key, QK_TOP)
        except (CircuitError, CircuitsUnavailableError) as error:
            self.post_message(self.PairsLoaded((layer, head, key), None, str(error)))
        else:
            self.post_message(self.PairsLoaded((layer, head, key), expansion))

    def on_attention_screen_pattern_loaded(self, message: PatternLoaded) -> None:
        if message.error is not None:
            self.say(message.error, "No attention: ")
            return
        assert message.pattern_LHS is not None  # loaded without an error
        self.grid.show_pattern(message.pattern_LHS)
        self.grid.move_cursor(column=self.position)  # the query's own key: a start
        self.grid.focus()
        self.action_qk()

    def on_attention_screen_pairs_loaded(self, message: PairsLoaded) -> None:
        if message.cell != self.grid.cell():  # the cursor moved on while it was computed
            return
        if message.error is not None:
            self.say(message.error, "No QK pairs: ")
            return
        expansion = message.expansion
        assert expansion is not None  # loaded without an error
        target = expansion.target
        title = Text.assemble(
            (f"QK of L{target.layer}H{target.head}", "bold"),
            f", query P{target.position} → key P{target.key}: pre-softmax score ",
        )
        title.append_text(sum_check(expansion))
        title.append(f"\ntop {len(expansion.branches)} (query node, key node) pairs and the rest", "dim")
        self.query_one("#qk-title", Static).update(title)
        self.query_one(QKTable).show_expansion(expansion, self.session.labels)

    # -- events and actions -----------------------------------------------------------------------

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        cell = self.grid.cell()
        if event.data_table is not self.grid or cell is None:
            return
        layer, head, key = cell
        move = square_name(self.game.moves[key].square)
        self.query_one("#attention-cell", Static).update(
            Text.assemble(
                (f"L{layer}H{head}", "bold"),
                f" from P{self.position} to key P{key} (move {key + 1}, {move}): ",
                (f"{100 * self.grid.weight(layer, head, key):.1f}%", "bold"),
                ("   its QK pairs below · j: the board there", "dim"),
            )
        )
        self.action_qk()  # the table follows the cursor

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if event.data_table is self.grid:
            self.action_qk()

    def action_qk(self) -> None:
        cell = self.grid.cell()
        if cell is None:
            self.say("The attention pattern is still being computed.")
            return
        self.query_one("#qk-title", Static).update(
            Text(f"QK of L{cell[0]}H{cell[1]} → P{cell[2]}: computing…")
        )
        self.load_qk(*cell)

    def action_jump(self) -> None:
        cell = self.grid.cell()
        if cell is not None:
            self._jump(cell[2] + 1)
            self.say(f"The board is at move {cell[2] + 1} (P{cell[2]}); Esc returns to it.")

    def action_close(self) -> None:
        self.dismiss()

    def say(self, text: str, heading: str = "") -> None:
        self.query_one("#attention-message", Static).update(Text.assemble((heading, "bold"), text))
