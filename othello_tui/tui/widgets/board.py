"""The 8×8 board: Textual's line API with cached strips (as in toolong's log view).

Every cell is drawn with a symbol as well as a colour, so the board reads the same on truecolor,
256-colour and ``NO_COLOR`` terminals: ``●`` black, ``○`` white, ``[●]`` the move just played,
``(○)`` a disc it flipped, ``+`` a legal next move, ``31`` the model's probability in percent
(overlay on), ``12!`` probability on an illegal square (``!`` alone for 10% or more in the
smallest cells, where three characters would touch the next cell's), ``›+‹`` the play-mode cursor.
"""

from __future__ import annotations

from functools import cache

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from othello_tui.game.rules import BLACK, WHITE
from othello_tui.game.squares import ROWS
from othello_tui.tui.views import PositionView

#: cell sizes (width, height) in terminal cells, smallest first; the screen picks one to fit
CELL_SIZES = ((3, 1), (5, 2), (7, 3))
LABEL_WIDTH = 2  # "a " before each row
OVERLAY_MIN = 0.01  # probabilities below this are not written on the board
WRONG_LOUD = 0.05  # probability on an illegal square from which its cell turns red
DISC = {BLACK: "●", WHITE: "○"}

_BG = {"dark": "#1b5e20", "light": "#2e7d32"}  # checkered greens (distinct in 256 colours too)
PALETTE = {
    "empty": Style(color="#7fb08c"),
    "black": Style(color="#000000", bold=True),
    "white": Style(color="#ffffff", bold=True),
    "legal": Style(color="#f2d94e", bold=True),
    "last_bg": Style(bgcolor="#b8860b"),
    "flipped_bg": Style(bgcolor="#4f9a63"),
    "prob_hi": Style(color="#ffffff", bgcolor="#1565c0", bold=True),
    "prob_mid": Style(color="#ffffff", bgcolor="#1e5f96", bold=True),
    "prob_lo": Style(color="#e0e0e0", bgcolor="#2a5270"),
    "wrong": Style(color="#ffffff", bgcolor="#b3261e", bold=True),
    "wrong_quiet": Style(color="#ff8a80"),
    "cursor": Style(color="#000000", bgcolor="#e8e8e8", bold=True),
}
Face = tuple[str, str, str]  # (text, foreground style key, background style key)


def cell_faces(view: PositionView, overlay: bool, cursor: int | None, cell_width: int) -> list[Face]:
    """What each of the 64 cells shows; everything that changes a cell's pixels is in here."""
    legal = set(view.legal)
    flipped = set(view.flipped)
    faces: list[Face] = []
    for square in range(64):
        bg = "dark" if (square // 8 + square % 8) % 2 else "light"
        disc = int(view.board[square])
        p = float(view.probs[square]) if overlay and view.probs is not None else 0.0
        if disc:
            fg, text = ("black" if disc == BLACK else "white"), DISC[disc]
            if square == view.last_move:
                text, bg = f"[{text}]", "last_bg"
            elif square in flipped:
                text, bg = f"({text})", "flipped_bg"
        elif p >= OVERLAY_MIN:
            text = f"{min(round(100 * p), 99)}"
            if square in legal:
                fg = bg = "prob_hi" if p >= 0.3 else "prob_mid" if p >= 0.1 else "prob_lo"
            else:  # a wrong prediction: loud once it matters, quiet while it is noise
                # in a 3-wide cell "12!" would run into its neighbours: "!" alone (the predictions list the %)
                text = text + "!" if cell_width > 3 or len(text) == 1 else "!"
                fg = "wrong" if p >= WRONG_LOUD else "wrong_quiet"
        elif square in legal:
            fg, text = "legal", "+"
        else:
            fg, text = "empty", "·"
        if square == cursor:
            text = f"›{text}‹" if len(text) + 2 <= cell_width else text
            fg = bg = "cursor"
        faces.append((text, fg, bg))
    return faces


@cache
def _cell_style(fg: str, bg: str) -> Style:
    return Style(bgcolor=_BG.get(bg)) + PALETTE.get(bg, Style()) + PALETTE[fg]


class Board(Widget, can_focus=True):
    """Shows a :class:`PositionView`; in play mode a cursor picks a square and posts :class:`Placed`."""

    DEFAULT_CSS = """
    Board { width: auto; height: auto; }
    """
    BINDINGS = [
        Binding(
            "up,k", "cursor(-8)", "cursor", key_display="←↑↓→", tooltip="cursor up", id="board.up"
        ),  # the footer: one entry
        Binding("down,j", "cursor(8)", "cursor down", show=False, id="board.down"),
        Binding("left,h", "cursor(-1)", "cursor left", show=False, id="board.left"),
        Binding("right,l", "cursor(1)", "cursor right", show=False, id="board.right"),
        Binding("enter,space", "place", "place a disc", id="board.place"),
    ]

    class Placed(Message):
        """The user chose ``square`` in play mode (Enter or a click)."""

        def __init__(self, square: int):
            super().__init__()
            self.square = square

    view: reactive[PositionView | None] = reactive(None, always_update=True)
    overlay: reactive[bool] = reactive(True)
    play: reactive[bool] = reactive(False)
    cell: reactive[tuple[int, int]] = reactive(CELL_SIZES[0], layout=True)
    cursor: reactive[int] = reactive(19)

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._faces: list[Face] = []
        self._strips: LRUCache[tuple, Strip] = LRUCache(512)
        self._base: Style | None = None  # the widget's own style, looked up once per change

    # -- data down ----------------------------------------------------------------------------

    def _recompute(self) -> None:
        if self.view is not None:
            self._faces = self.faces(self.view)
        self.refresh()

    def faces(self, view: PositionView) -> list[Face]:
        """The 64 cells' faces for ``view`` (a subclass draws something else on the same grid)."""
        return cell_faces(view, self.overlay, self.cursor if self.play else None, self.cell[0])

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base = None

    watch_view = watch_overlay = watch_play = watch_cursor = watch_cell = _recompute

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cursor keys belong to the board only in play mode; otherwise they step the game."""
        if action in ("cursor", "place"):
            return self.play
        return True

    def action_cursor(self, delta: int) -> None:
        row, col = divmod(self.cursor, 8)
        if abs(delta) == 1:
            col = (col + delta) % 8
        else:
            row = (row + delta // 8) % 8
        self.cursor = 8 * row + col

    def action_place(self) -> None:
        self.post_message(self.Placed(self.cursor))

    def on_click(self, event: Click) -> None:
        square = self.square_at(event.x, event.y)
        if square is not None and self.play:
            self.cursor = square
            self.post_message(self.Placed(square))

    def square_at(self, x: int, y: int) -> int | None:
        """The square under widget coordinates (x, y), if any."""
        cw, ch = self.cell
        col, row = (x - LABEL_WIDTH) // cw, (y - 1) // ch
        if x < LABEL_WIDTH or y < 1 or not (0 <= col < 8 and 0 <= row < 8):
            return None
        return 8 * row + col

    # -- drawing ------------------------------------------------------------------------------

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return LABEL_WIDTH + 8 * self.cell[0]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 1 + 8 * self.cell[1]

    def render_line(self, y: int) -> Strip:
        cw, ch = self.cell
        width = self.size.width
        if self._base is None:
            self._base = self.rich_style
        base = self._base
        if y == 0:
            key: tuple = ("columns", cw, width, base)
        elif y <= 8 * ch and self._faces:
            row, sub = divmod(y - 1, ch)
            middle = sub == ch // 2
            key = ("row", row, middle, cw, width, base, tuple(self._faces[8 * row : 8 * row + 8]))
        else:
            return Strip.blank(width, base)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._draw(key, base, width)
            self._strips[key] = strip
        return strip

    def _draw(self, key: tuple, base: Style, width: int) -> Strip:
        if key[0] == "columns":
            cw = key[1]
            text = " " * LABEL_WIDTH + "".join(str(c).center(cw) for c in range(8))
            return Strip([Segment(text, base)]).adjust_cell_length(width, base)
        _, row, middle, cw, _, _, faces = key
        label = f"{ROWS[row]} " if middle else "  "
        segments = [Segment(label, base)]
        for text, fg, bg in faces:
            style = _cell_style(fg, bg)
            segments.append(Segment(text.center(cw) if middle else " " * cw, style))
        return Strip(segments).adjust_cell_length(width, base)
