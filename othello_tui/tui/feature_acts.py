"""One module's dictionary activations over the positions of a game, kept sparse.

A dictionary fires a few dozen of its thousands of features at a token, so a dense [T, F] array
is almost all zeros: for the public model's sixteen 4,096-feature dictionaries, 15 MB a game,
that the analysis cache would hold sixty-four of and a move played would copy whole to add one
row. No torch, no Textual.

Shape legend: T position, F features, N nonzero activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class FeatureActs:
    """Row t's nonzero activations are ``value_N[s:e]``, of features ``feature_N[s:e]``
    (ascending), where ``s, e = starts_T1[t], starts_T1[t + 1]``; every other one is 0."""

    starts_T1: np.ndarray  # int64 [T + 1]
    feature_N: np.ndarray  # int64 [N]
    value_N: np.ndarray  # float32 [N]
    n_features: int

    @classmethod
    def of(cls, acts_TF: np.ndarray) -> FeatureActs:
        """The nonzero entries of a dense float32 [T, F] array, exactly."""
        t_N, f_N = np.nonzero(acts_TF)  # row-major: by position, then feature
        starts_T1 = np.searchsorted(t_N, np.arange(len(acts_TF) + 1))
        return cls(starts_T1, f_N, acts_TF[t_N, f_N], acts_TF.shape[1])

    def __len__(self) -> int:
        return len(self.starts_T1) - 1

    def row(self, t: int) -> np.ndarray:
        """float32 [F]: every feature's activation at position ``t``."""
        start, end = self.starts_T1[t], self.starts_T1[t + 1]
        acts_F = np.zeros(self.n_features, np.float32)
        acts_F[self.feature_N[start:end]] = self.value_N[start:end]
        return acts_F

    def column(self, feature: int) -> np.ndarray:
        """float32 [T]: the activation of ``feature`` at every position."""
        at_N = np.flatnonzero(self.feature_N == feature)
        acts_T = np.zeros(len(self), np.float32)
        acts_T[np.searchsorted(self.starts_T1, at_N, side="right") - 1] = self.value_N[at_N]
        return acts_T

    def dense(self) -> np.ndarray:
        """float32 [T, F]."""
        acts_TF = np.zeros((len(self), self.n_features), np.float32)
        acts_TF[np.repeat(np.arange(len(self)), np.diff(self.starts_T1)), self.feature_N] = self.value_N
        return acts_TF

    def truncated(self, n_positions: int) -> FeatureActs:
        """The first ``n_positions`` rows."""
        end = self.starts_T1[n_positions]
        starts_T1 = self.starts_T1[: n_positions + 1]
        return FeatureActs(starts_T1, self.feature_N[:end], self.value_N[:end], self.n_features)

    def followed_by(self, later: FeatureActs) -> FeatureActs:
        """These rows, then ``later``'s."""
        starts_T1 = np.concatenate([self.starts_T1, later.starts_T1[1:] + self.starts_T1[-1]])
        feature_N = np.concatenate([self.feature_N, later.feature_N])
        return FeatureActs(
            starts_T1, feature_N, np.concatenate([self.value_N, later.value_N]), self.n_features
        )
