"""What the cache says about one feature: plain numpy arrays and dataclasses (STYLE.md §7)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from othello_tui.features.labels import Label
from othello_tui.features.predicates import PLAYER_BLACK, kind_columns
from othello_tui.game.squares import square_name

BOARD_PANELS = ("move", "legal", "board", "flipped", "empty")  # 8×8 panels, DESIGN.md §6 order


@dataclass(frozen=True)
class Example:
    """A top-activating token: position p of game g (of the cache's seed) holds move p + 1,
    played on ``square``."""

    game: int
    position: int
    square: int
    activation: float

    @property
    def move(self) -> str:
        return square_name(self.square)


@dataclass(frozen=True)
class FeatureStats:
    """Dataset-level statistics of one feature.

    The panels summarise the board after the move at the top examples, relative to the player who
    just moved: ``move``, ``legal`` (legal next moves), ``flipped``, ``empty`` are int [8, 8]
    counts; ``board`` float [8, 8] is the mean of +1 mine / −1 theirs / 0 empty; ``player_black``
    counts examples where black moved; ``move_number`` int [60] counts positions.
    ``logit_effect`` float [8, 8] is ``W_dec[f] @ W_U`` on each square's move logit (NaN on the
    centre squares, which are never moves). ``histogram`` counts firing tokens per bin of
    ``histogram_edges`` (values outside the edges fall in the end bins).
    """

    feature_id: str
    module: str
    index: int
    fire_count: int
    n_tokens: int
    activation_sum: float
    histogram: np.ndarray
    histogram_edges: np.ndarray
    examples: list[Example]
    player_black: int
    move: np.ndarray
    legal: np.ndarray
    board: np.ndarray
    flipped: np.ndarray
    empty: np.ndarray
    move_number: np.ndarray
    logit_effect: np.ndarray
    label: Label | None
    candidates: list[Label]

    @property
    def frequency(self) -> float:
        """Share of all tokens where the feature fires."""
        return self.fire_count / max(self.n_tokens, 1)

    @property
    def mean_activation(self) -> float:
        """Mean activation over the tokens where it fires (0 for a dead feature)."""
        return self.activation_sum / max(self.fire_count, 1)

    @property
    def n_examples(self) -> int:
        return len(self.examples)

    def to_dict(self) -> dict:
        """JSON-ready: arrays as nested lists, NaN as null."""

        def plain(array: np.ndarray) -> list:
            return [None if isinstance(x, float) and math.isnan(x) else x for x in array.ravel().tolist()]

        def board(array: np.ndarray) -> list:
            flat = plain(array)
            return [flat[8 * row : 8 * row + 8] for row in range(8)]

        def label(value: Label | None) -> dict | None:
            return (
                None
                if value is None
                else {
                    "text": value.text,
                    "precision": value.precision,
                    "recall": value.recall,
                    "f1": value.f1,
                    "top_share": value.top_share,
                }
            )

        return {
            "feature": self.feature_id,
            "label": label(self.label),
            "label_candidates": [label(c) for c in self.candidates],
            "frequency": self.frequency,
            "fire_count": self.fire_count,
            "n_tokens": self.n_tokens,
            "mean_activation": self.mean_activation,
            "histogram": {"edges": plain(self.histogram_edges), "counts": plain(self.histogram)},
            "n_examples": self.n_examples,
            "player_black": self.player_black,
            **{name: board(getattr(self, name)) for name in (*BOARD_PANELS, "logit_effect")},
            "move_number": plain(self.move_number),
            "examples": [
                {"game": e.game, "position": e.position, "move": e.move, "activation": e.activation}
                for e in self.examples
            ],
        }


class Panels(TypedDict):
    """The board panels of :class:`FeatureStats`, by field name."""

    player_black: int
    move: np.ndarray
    legal: np.ndarray
    board: np.ndarray
    flipped: np.ndarray
    empty: np.ndarray


def panels_from_counts(counts_P: np.ndarray, n_examples: int) -> Panels:
    """The board panels from the predicate counts over the examples (``predicates.py`` layout)."""

    def square_counts(kind: str) -> np.ndarray:
        return counts_P[kind_columns(kind)].reshape(8, 8)

    board = (square_counts("mine") - square_counts("theirs")) / max(n_examples, 1)
    return {
        "player_black": int(counts_P[PLAYER_BLACK]),
        "move": square_counts("move"),
        "legal": square_counts("legal"),
        "board": board,
        "flipped": square_counts("flipped"),
        "empty": square_counts("empty"),
    }
