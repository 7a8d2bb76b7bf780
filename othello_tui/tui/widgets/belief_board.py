"""The believed board: what the mine/theirs probe reads from the residual stream at one probe
site, drawn on the same grid as the true board (:class:`~othello_tui.tui.widgets.board.Board`).

Mine and theirs are drawn in real colours (mine is the colour of the player who just moved), so
the two boards compare at a glance: ``●``/``○`` a believed disc, ``·`` believed empty, ``87`` the
reading's probability in percent when below 95% (cells of 5 columns or more), ``!`` and a red cell where the
reading differs from the true board. When focused, ``hjkl`` (and ``↑``/``↓``) move a cursor:
``t`` then explains that square's reading, and ``f`` edits it (mine ↔ theirs).
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.message import Message
from textual.reactive import reactive

from othello_tui.game.rules import BLACK
from othello_tui.probes.families import DEFAULT_SITE, site_short
from othello_tui.tui.views import Beliefs, PositionView
from othello_tui.tui.widgets.board import DISC, Board, Face

SURE = 0.95  # readings at least this probable show no number: the doubtful ones stand out
EMPTY = 2  # the mine/theirs probe's classes: 0 mine, 1 theirs, 2 empty


def belief_faces(beliefs: Beliefs, site: int, cursor: int | None, cell_width: int) -> list[Face]:
    """What each of the 64 cells shows for the reading at ``site``."""
    class_Q, p_Q = beliefs.reading(site)
    faces: list[Face] = []
    for square in range(64):
        bg = "dark" if (square // 8 + square % 8) % 2 else "light"
        belief = int(class_Q[square])
        if belief == EMPTY:
            fg, text = "empty", "·"
        else:
            colour = beliefs.mover if belief == 0 else -beliefs.mover
            fg, text = ("black" if colour == BLACK else "white"), DISC[colour]
        if cell_width >= 5 and p_Q[square] < SURE:
            text += f"{round(100 * float(p_Q[square]))}"
        if belief != int(beliefs.truth_Q[square]):
            bg = "wrong"
            text = text + "!" if len(text) < cell_width else text
        if square == cursor:
            text = f"›{text}‹" if len(text) + 2 <= cell_width else text
            fg = bg = "cursor"
        faces.append((text, fg, bg))
    return faces


def beliefs_title(view: PositionView, site: int) -> Text:
    """Three lines under the believed board: the probe site, and how many squares it gets wrong."""
    if view.beliefs is None:
        return Text(view.beliefs_note or "No believed board here.", style="italic")
    wrong = int(view.beliefs.wrong(site).sum())
    where = "embeddings" if site == 0 else f"after block {site - 1}"
    return Text.assemble(
        (f"Belief {site_short(site)}", "bold"),
        f": {where}\n",
        (f"{wrong} wrong", "bold red" if wrong else "bold green"),
        f" · mine = {DISC[view.beliefs.mover]}\n",
        ("[ ] layer · t why", "dim"),
    )


class BeliefBoard(Board, inherit_bindings=False):
    """Shows ``view.beliefs`` at probe site ``site``; the parent screen owns both."""

    BINDINGS = [
        Binding("up,k", "cursor(-8)", "cursor up", show=False, id="beliefs.up"),
        Binding("down,j", "cursor(8)", "cursor down", show=False, id="beliefs.down"),
        Binding("h", "cursor(-1)", "cursor left", show=False, id="beliefs.left"),
        Binding("l", "cursor(1)", "cursor right", show=False, id="beliefs.right"),
        Binding(
            "f",
            "flip",
            "flip belief",
            tooltip="edit the model's belief: flip the cursor's disc",
            id="beliefs.flip",
        ),
        Binding(
            "t",
            "screen.trace",
            "why",
            tooltip="the exact tree of the cursor square's reading (the probe's logit difference)",
            id="beliefs.why",
        ),
        Binding(
            "F",
            "flip(True)",
            "flip along a feature",
            show=False,
            tooltip="flip the cursor's disc along the best-aligned residual feature's decoder row",
            id="beliefs.flip_feature",
        ),
    ]

    class Flip(Message):
        """Flip the believed colour of ``square`` at probe site ``site`` (``f``), along the
        best-aligned residual feature's decoder row with ``along_feature`` (``F``)."""

        def __init__(self, site: int, square: int, along_feature: bool = False):
            super().__init__()
            self.site, self.square, self.along_feature = site, square, along_feature

    site: reactive[int] = reactive(DEFAULT_SITE)

    def faces(self, view: PositionView) -> list[Face]:
        if view.beliefs is None or not 0 <= self.site < view.beliefs.n_sites:
            return []
        return belief_faces(view.beliefs, self.site, self.cursor if self.has_focus else None, self.cell[0])

    watch_site = Board._recompute

    def on_focus(self) -> None:
        self._recompute()

    def on_blur(self) -> None:
        self._recompute()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return True  # its cursor moves whenever it has focus (play mode is the true board's)

    def action_flip(self, along_feature: bool = False) -> None:
        self.post_message(self.Flip(self.site, self.cursor, along_feature))

    def on_click(self, event: Click) -> None:
        square = self.square_at(event.x, event.y)
        if square is not None:
            self.cursor = square
