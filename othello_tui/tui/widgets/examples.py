"""A feature's top examples as a keyboard-navigable list: game, move, square, activation.

A :class:`~othello_tui.tui.widgets.cursor_list.CursorList` rather than a ``DataTable``: the
table measures every cell of every row when the rows are added, which alone took the feature
page past its 50 ms budget at 256 examples; this draws only the rows on screen. Home and End
jump to the first and last example; a click posts :class:`ExampleList.Open`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.segment import Segment
from textual.binding import Binding
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from othello_tui.tui.widgets.cursor_list import CursorList

if TYPE_CHECKING:  # the features package brings torch, and the app starts without it
    from othello_tui.features.stats import Example

HEADER = f"{'game':>6}  {'move':>4}  {'square':<6}  {'activation':>10}"


def example_row(example: Example) -> str:
    """One example in the columns of :data:`HEADER`; ``move`` is the position + 1."""
    return f"{example.game:>6}  {example.position + 1:>4}  {example.move:<6}  {example.activation:>10.4g}"


class ExampleList(CursorList):
    BINDINGS = [
        Binding("home", "jump(0)", "first example", show=False, id="examples.first"),
        Binding("end", "jump(-1)", "last example", show=False, id="examples.last"),
    ]

    class Open(Message):
        """A click on an example (Enter is the feature page's)."""

        def __init__(self, example: Example):
            super().__init__()
            self.example = example

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._strips: LRUCache[tuple, Strip] = LRUCache(128)
        self.examples: Sequence[Example] = ()

    def show(self, examples: Sequence[Example], cursor: int = 0) -> None:
        self.examples = examples
        self._strips.clear()
        self.virtual_size = Size(0, len(examples))
        self.cursor = self._clamp(cursor)
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self.examples)

    @property
    def current(self) -> Example | None:
        return self.examples[self.cursor] if 0 <= self.cursor < len(self.examples) else None

    def _clamp(self, index: int) -> int:
        """``index`` within the examples (-1 and below: the last)."""
        last = max(len(self.examples) - 1, 0)
        return last if index < 0 else min(index, last)

    def action_jump(self, index: int) -> None:
        """To example ``index`` (-1: the last)."""
        self.cursor = self._clamp(index)

    def on_click(self, event: Click) -> None:
        index = event.y + self.scroll_offset.y
        if 0 <= index < len(self.examples):
            self.cursor = index
            self.post_message(self.Open(self.examples[index]))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def render_line(self, y: int) -> Strip:
        index = y + self.scroll_offset.y
        width, base = self.size.width, self.rich_style
        if index >= len(self.examples):
            return Strip.blank(width, base)
        cursor = index == self.cursor
        key = (index, cursor, self.has_focus, width)
        strip = self._strips.get(key)
        if strip is None:
            style = base + self.cursor_style() if cursor else base
            strip = Strip([Segment(example_row(self.examples[index]), style)]).adjust_cell_length(
                width, style
            )
            self._strips[key] = strip
        return strip
