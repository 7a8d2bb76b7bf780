"""What the main screen shows: a game and how many of its moves, as one value."""

from __future__ import annotations

from dataclasses import dataclass

from othello_tui.game.rules import Game


@dataclass(frozen=True, eq=False)
class Shown:
    """What the screen shows, as one value: the undo stack holds these."""

    game: Game
    n_moves: int
    source: str  # "game 17 (seed 3)", "pasted moves", …
    index: int | None  # dataset index of the game (None: not a dataset game)

    @property
    def dataset_index(self) -> int | None:
        """The dataset index when the game is that dataset game itself, not a branch of it."""
        return None if "branched" in self.source else self.index
