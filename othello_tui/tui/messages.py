"""Messages (small, immutable payloads): what thread workers post back to the event loop, and
the navigation requests any screen posts for the app to carry out (:class:`OpenFeature`,
:class:`ShowGame`)."""

from __future__ import annotations

from textual.message import Message

from othello_tui.circuits.nodes import Target
from othello_tui.game.rules import Game
from othello_tui.tui.cache_build import BuildStatus


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


class CacheProgress(Message):
    """The background build of the feature cache moved on, or ended (``status.state``)."""

    def __init__(self, status: BuildStatus):
        super().__init__()
        self.status = status


class OpenFeature(Message):
    """Open the page of a feature (any screen may post it; the app pushes the page)."""

    def __init__(self, feature_id: str):
        super().__init__()
        self.feature_id = feature_id


class OpenTree(Message):
    """Open the contributor tree of ``target`` in the main screen's game (any screen may post
    it; the app pushes the tree)."""

    def __init__(self, target: Target):
        super().__init__()
        self.target = target


class ShowGame(Message):
    """Show ``game`` after ``n_moves`` moves in the main screen, coming down from the screens
    above it (the app goes there; Backspace on the main screen comes back)."""

    def __init__(self, game: Game, n_moves: int, source: str, index: int | None):
        super().__init__()
        self.game, self.n_moves, self.source, self.index = game, n_moves, source, index
