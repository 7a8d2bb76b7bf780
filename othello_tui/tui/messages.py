"""Messages that thread workers post back to the event loop (small, immutable payloads)."""

from __future__ import annotations

from textual.message import Message

from othello_tui.game.rules import Game


class ModelLoaded(Message):
    """The model finished loading (``error`` is None) or could not be loaded."""

    def __init__(self, error: str | None):
        super().__init__()
        self.error = error


class Analysed(Message):
    """An analysis landed in the session's cache."""


class GameLoaded(Message):
    """Game ``index`` of the session's seed is ready."""

    def __init__(self, game: Game, index: int):
        super().__init__()
        self.game, self.index = game, index


class ModelChose(Message):
    """The model's most probable legal move after ``n_moves`` moves of ``game`` (None: none)."""

    def __init__(self, game: Game, n_moves: int, square: int | None):
        super().__init__()
        self.game, self.n_moves, self.square = game, n_moves, square
