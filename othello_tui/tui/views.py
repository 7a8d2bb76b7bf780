"""What the screens show for a position, as plain immutable data made by the session
(``session.py``): no Textual, no torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from othello_tui.circuits.edits import BeliefEdit, Edit

Labels = Callable[[str], "str | None"]  # feature id -> automatic label (None: unlabelled)


@dataclass(frozen=True)
class Prediction:
    square: int
    probability: float
    legal: bool


@dataclass(frozen=True)
class ActiveFeature:
    module: str  # "L2M"
    index: int  # 845
    activation: float  # with the interventions, when there are any
    label: str | None
    before: float | None = None  # without them, when they change it

    @property
    def feature_id(self) -> str:
        return f"{self.module}{self.index}"


@dataclass(frozen=True, eq=False)
class ModuleFeatures:
    """A module's active features at one position, largest activation first. Kept as arrays:
    a module can have a hundred active features and the screen shows only expanded modules."""

    module: str
    index_K: np.ndarray  # int64 [K] feature indices
    acts_K: np.ndarray  # float32 [K] their activations (with the interventions, if any)
    labels: Labels | None = None
    before_K: np.ndarray | None = None  # float32 [K] without the interventions (None: none)

    def __len__(self) -> int:
        return len(self.index_K)

    def features(self) -> tuple[ActiveFeature, ...]:
        before_K = self.acts_K if self.before_K is None else self.before_K
        return tuple(
            ActiveFeature(
                self.module,
                int(i),
                float(a),
                self.labels(f"{self.module}{i}") if self.labels else None,
                None if a == b else float(b),
            )
            for i, a, b in zip(self.index_K, self.acts_K, before_K, strict=True)
        )


@dataclass(frozen=True, eq=False)
class PositionView:
    """The position after ``n_moves`` moves of a game, with the model's view of it when known."""

    n_moves: int  # moves played (0: the start position)
    n_total: int  # moves in the whole game
    board: np.ndarray  # int8 [64]: +1 black, -1 white, 0 empty
    last_move: int | None  # square of move n_moves
    flipped: tuple[int, ...]  # squares that move flipped
    to_move: int  # colour to move next; 0 once the game is over
    legal: tuple[int, ...]  # legal next moves
    passed: int  # colour that had to pass before this position (0: nobody)
    black: int
    white: int
    probs: np.ndarray | None  # float32 [64]: P(next move = square)
    top: tuple[Prediction, ...]
    top1_legal: tuple[int, int] | None  # (argmax legal, positions scored) over moves 2…n_moves+1
    predictions_note: str | None  # why there are no predictions, when there are none
    features: tuple[ModuleFeatures, ...]
    features_note: str | None
    pending: bool  # the model is ready but this position is not analysed yet
    probs_before: np.ndarray | None = None  # float32 [64]: ``probs`` without the interventions
    edits: tuple[
        Edit | BeliefEdit, ...
    ] = ()  # interventions on this game (``probs`` include those before it)
    beliefs: Beliefs | None = None  # the probes' believed board (with the interventions)
    beliefs_note: str | None = None  # why there is no believed board, when there is none


@dataclass(frozen=True, eq=False)
class Beliefs:
    """What the mine/theirs probe reads from the residual stream at one position, at every probe
    site (embed, after block 0, …), next to the true board."""

    probs_SQC: np.ndarray  # float32 [S, 64, 3]: P(mine), P(theirs), P(empty)
    truth_Q: np.ndarray  # int [64]: the true class (0 mine, 1 theirs, 2 empty)
    mover: int  # colour of the player who just moved: "mine" (+1 black, −1 white)

    @property
    def n_sites(self) -> int:
        return len(self.probs_SQC)

    def reading(self, site: int) -> tuple[np.ndarray, np.ndarray]:
        """(class [64], its probability [64]) the probe reads at ``site``."""
        class_Q = self.probs_SQC[site].argmax(-1)
        return class_Q, np.take_along_axis(self.probs_SQC[site], class_Q[:, None], -1)[:, 0]

    def wrong(self, site: int) -> np.ndarray:
        """bool [64]: squares where the reading at ``site`` differs from the true board."""
        return self.reading(site)[0] != self.truth_Q


@dataclass(frozen=True)
class FeatureSummary:
    """Where a feature fires in the analysed part of one game."""

    feature_id: str
    position: int  # token position (move position + 1)
    firing: tuple[tuple[int, float], ...]  # (move number, activation) where it fires in this game
    analysed_moves: int  # how many moves of the game those were looked for in

    @property
    def activation(self) -> float | None:
        """At ``position`` (None: not analysed there)."""
        if not 0 <= self.position < self.analysed_moves:
            return None
        return dict(self.firing).get(self.position + 1, 0.0)
