"""Active dictionary features of every module at the current position: a collapsible,
keyboard-navigable list (line API with cached strips, like the board).

One header row per module (``▸ L0A  12 active``); an expanded module lists its features,
largest activation first (``L0A622    2.31  label``). Enter or a click on a feature posts
:class:`FeatureList.Open`; Enter, Space or a click on a header expands or collapses it. Which
modules are expanded, and the row under the cursor, survive stepping through the game.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip

from othello_tui.tui.views import ActiveFeature, PositionView
from othello_tui.tui.widgets.cursor_list import CursorList

CHANGED = "#ffd787"  # an activation the interventions changed (light: grey under NO_COLOR)


@dataclass(frozen=True)
class Row:
    module: str
    feature: ActiveFeature | None = None  # None: the module's header row
    rank: int = 0  # position of the feature in its module's list
    count: int = 0  # header rows: active features in the module


def row_text(row: Row, expanded: bool, width: int = 0) -> tuple[tuple[str, str], ...]:
    """(text, style key) pieces of one row; a label that would pass ``width`` (0: no limit) is
    cut with "…", so that a narrow panel says it shows only part."""
    if row.feature is None:
        return (
            ("▾ " if expanded else "▸ ", "header"),
            (row.module, "header"),
            (f"  {row.count} active", "plain"),
        )
    feature = row.feature
    if feature.before is None:
        value = (f"{feature.activation:6.2f}", "plain")
    else:  # an intervention changed it: before → after, as the contributor tree shows it
        value = (f"{feature.before:6.2f}→{feature.activation:.2f}", "changed")
    pieces = (("  ", "plain"), (f"{feature.feature_id:<8}", "id"), value)
    if not feature.label:
        return pieces
    label = f" {feature.label}"
    room = width - sum(len(text) for text, _ in pieces)
    if width and len(label) > room:
        label = label[: max(room - 1, 0)] + "…"
    return (*pieces, (label, "label"))


def _same_place(rows: list[Row], old: Row, fallback: int) -> int:
    """The row where ``old`` was: its module's header, or the feature of the same rank in that
    module (the last one when the module now has fewer)."""
    found = None
    for i, row in enumerate(rows):
        if row.module == old.module and (
            found is None or (old.feature and row.feature and row.rank <= old.rank)
        ):
            found = i
    return found if found is not None else min(fallback, max(len(rows) - 1, 0))


class FeatureList(CursorList):
    BINDINGS = [
        Binding("enter", "select", "open", id="features.select"),
        Binding("space", "toggle_module", "expand or collapse module", show=False, id="features.toggle"),
    ]

    class Open(Message):
        """Enter on a feature."""

        def __init__(self, feature: ActiveFeature):
            super().__init__()
            self.feature = feature

    view: reactive[PositionView | None] = reactive(None, always_update=True)

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.expanded: set[str] = set()
        self.rows: list[Row] = []
        self._strips: LRUCache[tuple, Strip] = LRUCache(256)
        self._styles: dict[str, Style] | None = None

    # -- data ---------------------------------------------------------------------------------

    def watch_view(self) -> None:
        self._rebuild()

    def _rebuild(self) -> None:
        """Rows for the current view, keeping the cursor on the same module and rank."""
        old = self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None
        rows: list[Row] = []
        for module in self.view.features if self.view is not None else ():
            rows.append(Row(module.module, count=len(module)))
            if module.module in self.expanded:
                rows.extend(Row(module.module, f, rank) for rank, f in enumerate(module.features()))
        self.rows = rows
        if old is not None:
            self.set_reactive(FeatureList.cursor, _same_place(rows, old, self.cursor))
        self.virtual_size = Size(0, len(rows))
        self.scroll_to_cursor()
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def current(self) -> Row | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    # -- keys and mouse -----------------------------------------------------------------------

    def action_select(self) -> None:
        row = self.current
        if row is not None and row.feature is not None:
            self.post_message(self.Open(row.feature))
        else:
            self.action_toggle_module()

    def action_toggle_module(self) -> None:
        row = self.current
        if row is not None:
            self.expanded ^= {row.module}
            self.cursor = next(i for i, r in enumerate(self.rows) if r.module == row.module)
            self._rebuild()

    def on_click(self, event: Click) -> None:
        index = event.y + self.scroll_offset.y
        if 0 <= index < len(self.rows):
            self.cursor = index
            self.action_select()

    # -- drawing ------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None

    def on_focus(self) -> None:
        self.notify_style_update()
        self.refresh()

    def on_blur(self) -> None:
        self.notify_style_update()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        if self._styles is None:
            base = self.rich_style
            self._styles = {
                "plain": base,
                "header": base + Style(bold=True),
                "id": base + Style(bold=True),
                "label": base + Style(italic=True),
                "changed": base + Style(bold=True, color=CHANGED),
                "cursor": self.cursor_style(),
            }
        index = y + self.scroll_offset.y
        width = self.size.width
        if index >= len(self.rows):
            return Strip.blank(width, self._styles["plain"])
        row = self.rows[index]
        pieces = row_text(row, row.module in self.expanded, width)
        key = (pieces, index == self.cursor, self.has_focus, width)
        strip = self._strips.get(key)
        if strip is None:
            cursor = self._styles["cursor"] if index == self.cursor else None
            segments = [
                Segment(text, self._styles[style] + cursor if cursor else self._styles[style])
                for text, style in pieces
            ]
            strip = Strip(segments).adjust_cell_length(width, cursor or self._styles["plain"])
            self._strips[key] = strip
        return strip
