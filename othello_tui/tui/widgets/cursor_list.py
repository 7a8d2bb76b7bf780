"""A keyboard-navigable list drawn with Textual's line API (cached strips, only the rows on
screen drawn, as in toolong's log view): the cursor, the keys that move it and the scrolling
that follows it. The features panel and a feature page's top examples are such lists; each
draws its own rows in ``render_line`` and says how many there are in ``row_count``.
"""

from __future__ import annotations

from rich.style import Style
from textual.binding import Binding
from textual.reactive import reactive
from textual.scroll_view import ScrollView


class CursorList(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    CursorList { height: 1fr; overflow-x: hidden; }
    CursorList > .cursor-list--cursor { background: $block-cursor-blurred-background; }
    CursorList:focus > .cursor-list--cursor { background: $block-cursor-background;
                                              color: $block-cursor-foreground; text-style: bold; }
    """
    COMPONENT_CLASSES = {"cursor-list--cursor"}
    BINDINGS = [
        Binding("up", "move(-1)", "previous row", show=False, id="list.up"),
        Binding("down", "move(1)", "next row", show=False, id="list.down"),
        Binding("pageup", "move(-10)", "ten rows up", show=False, id="list.pageup"),
        Binding("pagedown", "move(10)", "ten rows down", show=False, id="list.pagedown"),
    ]

    cursor: reactive[int] = reactive(0)

    @property
    def row_count(self) -> int:
        raise NotImplementedError

    def cursor_style(self) -> Style:
        return self.get_component_rich_style("cursor-list--cursor")

    def action_move(self, delta: int) -> None:
        self.cursor = min(max(self.cursor + delta, 0), max(self.row_count - 1, 0))

    def watch_cursor(self) -> None:
        self.scroll_to_cursor()
        self.refresh()

    def scroll_to_cursor(self) -> None:
        top, height = self.scroll_offset.y, max(self.size.height, 1)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)
