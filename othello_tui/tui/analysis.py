"""What the torch side of the app gives the session: one forward pass over a game
(:class:`GameAnalysis`), through an :class:`Engine` (``othello_tui.tui.engine.ModelEngine``, or a
test's stub), or why there is no model (:class:`ModelUnavailableError`).

No torch, no Textual: the session imports this before the model loads.

Shape legend: T position, V vocabulary (61 tokens), F dictionary features, S probe sites,
Q squares, C classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from othello_tui.tui.feature_acts import FeatureActs
from othello_tui.tui.views import Labels

if TYPE_CHECKING:
    from othello_tui.features import FeatureCache
    from othello_tui.model.transformer import KVCache
    from othello_tui.tui.cache_build import CacheRequest


class ModelUnavailableError(RuntimeError):
    """The model cannot be loaded (missing or bad weights, no such device); says how to fix it."""


@dataclass(frozen=True, eq=False)
class GameAnalysis:
    """What one forward pass over a game gives, at every position T of it.

    probs_TV  float32 [T, 61]: softmax of the logits; row t predicts move t+2
    acts      module -> the dictionary's feature activations of the module's output [T, F], sparse
    beliefs_TSQC  float32 [T, S, 64, 3]: the mine/theirs probe's probabilities (mine, theirs,
              empty) at every probe site S (embed, after block 0, …); None without probes
    kv        the model's keys and values at these T positions, to run only the moves after
              them for a game that goes on from here (None: an engine that keeps none)
    """

    probs_TV: np.ndarray
    acts: dict[str, FeatureActs]
    beliefs_TSQC: np.ndarray | None = None
    kv: KVCache | None = None

    def __len__(self) -> int:
        return len(self.probs_TV)

    def truncated(self, n_positions: int) -> GameAnalysis:
        """The first ``n_positions`` positions: the model is causal, so exactly the analysis of
        any game that starts with the same moves."""
        return GameAnalysis(
            self.probs_TV[:n_positions],
            {module: acts.truncated(n_positions) for module, acts in self.acts.items()},
            None if self.beliefs_TSQC is None else self.beliefs_TSQC[:n_positions],
            None if self.kv is None else self.kv.truncated(n_positions),
        )

    def followed_by(self, later: GameAnalysis) -> GameAnalysis:
        """This analysis, then ``later``'s positions (a pass over the moves after these, given
        :attr:`kv`; its own ``kv`` covers both)."""
        beliefs_TSQC = None
        if self.beliefs_TSQC is not None and later.beliefs_TSQC is not None:
            beliefs_TSQC = np.concatenate([self.beliefs_TSQC, later.beliefs_TSQC])
        return GameAnalysis(
            np.concatenate([self.probs_TV, later.probs_TV]),
            {module: acts.followed_by(later.acts[module]) for module, acts in self.acts.items()},
            beliefs_TSQC,
            later.kv,
        )


class Engine(Protocol):
    """The torch side (``othello_tui.tui.engine.ModelEngine``; tests may use a stub)."""

    modules: tuple[str, ...]  # modules that have a dictionary, bottom to top
    features_note: str | None  # why there are no features, when there are none
    probes_note: str | None  # why there is no believed board, when there are no probes
    labels: Labels | None  # feature id -> automatic label, from the feature cache
    labels_note: str | None  # why there are no labels, when there are none
    n_features: dict[str, int]  # features of each module's dictionary
    feature_cache: FeatureCache | None  # the feature cache built for these weights
    cache_requests: tuple[CacheRequest, ...]  # the builds that make it where it is missing

    @property
    def identity(self) -> tuple[str, str]: ...  # (model fingerprint, dictionaries hash); hashes every weight

    def use_cache(self, path: Path) -> None: ...  # take a cache just built; labels come from it

    # ``reuse``: the analysis of the game's first moves, with its ``kv``: only the rest are run
    def analyse(self, squares: Sequence[int], reuse: GameAnalysis | None = None) -> GameAnalysis: ...
