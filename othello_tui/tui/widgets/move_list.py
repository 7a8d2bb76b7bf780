"""The game's moves as a timeline grid: ``23●c-2`` is move 23, played by black; the current
move is bracketed, moves after it are dim, and ``‖`` marks a move after which the opponent had
to pass. Shows the rows around the current move; a click jumps to a move."""

from __future__ import annotations

from rich.text import Text
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from othello_tui.game.squares import square_name
from othello_tui.tui.widgets.board import DISC

ENTRY_WIDTH = 9  # "[23●c-2]‖" fits
Entry = tuple[int, int, bool]  # (square, player, the opponent passed after it)


class MoveList(Widget):
    DEFAULT_CSS = """
    MoveList { height: auto; width: 1fr; padding: 0 1; }
    """

    class Jump(Message):
        """Show the position after ``n_moves`` moves."""

        def __init__(self, n_moves: int):
            super().__init__()
            self.n_moves = n_moves

    entries: reactive[tuple[Entry, ...]] = reactive((), layout=True)
    current: reactive[int] = reactive(0)  # moves played at the position shown
    max_rows: reactive[int] = reactive(2, layout=True)

    @property
    def columns(self) -> int:
        return max(1, self.content_size.width // ENTRY_WIDTH)

    def _first_row(self) -> int:
        """The first row shown: keep the current move's row (or the next move's) in view."""
        rows = -(-len(self.entries) // self.columns)
        focus_row = max(self.current - 1, 0) // self.columns
        return max(0, min(focus_row - (self.max_rows - 1) // 2, rows - self.max_rows))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        columns = max(1, width // ENTRY_WIDTH)
        return max(1, min(self.max_rows, -(-len(self.entries) // columns)))

    def render(self) -> Text:
        if not self.entries:
            return Text("no moves yet", style="dim")
        text = Text(no_wrap=True, overflow="crop")
        first = self._first_row() * self.columns
        shown = self.entries[first : first + self.max_rows * self.columns]
        for i, (square, player, passed) in enumerate(shown):
            number = first + i + 1
            if i and i % self.columns == 0:
                text.append("\n")
            body = f"{number}{DISC[player]}{square_name(square)}"
            body = f"[{body}]" if number == self.current else f" {body} "
            style = "bold reverse" if number == self.current else "dim" if number > self.current else ""
            text.append(body, style=style)
            text.append(("‖" if passed else " ").ljust(ENTRY_WIDTH - len(body)))
        return text

    def on_click(self, event: Click) -> None:
        column = (event.x - self.gutter.left) // ENTRY_WIDTH
        row = event.y - self.gutter.top
        if 0 <= column < self.columns and row >= 0:
            index = (self._first_row() + row) * self.columns + column
            if index < len(self.entries):
                self.post_message(self.Jump(index + 1))
