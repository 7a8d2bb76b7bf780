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

from othello_tui.tui.views import Labels

if TYPE_CHECKING:
    from othello_tui.features import FeatureCache
    from othello_tui.tui.cache_build import CacheRequest


class ModelUnavailableError(RuntimeError):
    """The model cannot be loaded (missing or bad weights, no such device); says how to fix it."""


@dataclass(frozen=True, eq=False)
class GameAnalysis:
    """What one forward pass over a game gives, at every position T of it.

    probs_TV  float32 [T, 61]: softmax of the logits; row t predicts move t+2
    acts      module -> float32 [T, F]: dictionary feature activations of the module's output
    beliefs_TSQC  float32 [T, S, 64, 3]: the mine/theirs probe's probabilities (mine, theirs,
              empty) at every probe site S (embed, after block 0, …); None without probes
    """

    probs_TV: np.ndarray
    acts: dict[str, np.ndarray]
    beliefs_TSQC: np.ndarray | None = None


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

    def analyse(self, squares: Sequence[int]) -> GameAnalysis: ...
