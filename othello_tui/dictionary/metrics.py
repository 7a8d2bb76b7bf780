"""Dictionary quality metrics on tensors (DESIGN.md §5, issue 4); ``evaluate.py`` runs the model.

Reconstruction: ``FVU = Σ‖x − x̂‖² / Σ‖x − x̄‖²``; relative error ``mean‖x − x̂‖ / mean‖x‖`` (the
write-up reports those two means); ``L0`` = mean number of active features per token.

Board-state interpretability follows Karvonen et al. 2024, "Measuring Progress in Dictionary Learning
for Language Model Interpretability with Board Game Models" (arXiv 2408.00113; code
github.com/adamkarvonen/SAE_BoardGameEval, ``circuits/eval_sae_as_classifier.py``,
``f1_analysis.py``, ``analysis.py``, ``eval_board_reconstruction.py``, ``pipeline_config.py``):

- a feature f *fires at threshold t* on a token when its activation exceeds ``t · max_f``, with
  ``max_f`` its largest activation on the labelling data and ``t ∈ {0, 0.1, …, 0.9}`` (they also
  use 1.0, where nothing fires);
- *coverage* of a family of binary board properties g is
  ``max_t mean_g max_f F1(f fires at t, g)``;
- a feature is *labelled* with g at threshold t when it is a high-precision classifier of g:
  ``P(g | f fires) ≥ 0.95`` and it fired on at least 10 tokens that have g;
- *board reconstruction*: on held-out tokens, predict g whenever some feature labelled g fires, and
  score the prediction of the 128 mine/theirs properties with F1 over all (token, property) pairs,
  where a square predicted both mine and theirs counts as a false positive only (their
  ``f1_score_per_square``); the best threshold is reported. Labels come from a labelling split,
  the score from a disjoint test split, as in their pipeline.

Properties here: ``mine``/``theirs`` per square relative to the player who just moved (tracking
colours through passes, DESIGN.md §2; they use move parity) and ``legal`` next move per square.
Shape legend: N tokens, D d_in, F features, G properties, T thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from othello_tui.game.generator import GameBatch

THRESHOLDS = tuple(i / 10 for i in range(10))
HIGH_PRECISION = 0.95
MIN_HITS = 10
CHUNK_TOKENS = 8192
N_SQUARES = 64
MINE, THEIRS, LEGAL = slice(0, 64), slice(64, 128), slice(128, 192)


def fvu(x_ND: Tensor, x_hat_ND: Tensor) -> float:
    """Fraction of variance unexplained: ``Σ‖x − x̂‖² / Σ‖x − x̄‖²``."""
    x_ND, x_hat_ND = x_ND.double(), x_hat_ND.double()
    return ((x_ND - x_hat_ND).pow(2).sum() / (x_ND - x_ND.mean(0)).pow(2).sum()).item()


def relative_error(x_ND: Tensor, x_hat_ND: Tensor) -> float:
    """``mean‖x − x̂‖ / mean‖x‖`` over tokens."""
    return ((x_ND - x_hat_ND).double().norm(dim=-1).mean() / x_ND.double().norm(dim=-1).mean()).item()


def l0(c_NF: Tensor) -> float:
    """Mean number of active (non-zero) features per token."""
    return (c_NF != 0).sum(-1).double().mean().item()


def board_properties(games: GameBatch) -> np.ndarray:
    """bool [B, 59, 192] at each model position (after moves 1…59): ``mine`` (64), ``theirs`` (64)
    relative to the player who just moved, and ``legal`` next moves (64). Rows after a game's end
    are all False."""
    board_BTS = games.board()[:, :-1]
    player_BT1 = games.player[:, :-1, None]
    moved_BT1 = player_BT1 != 0
    mine = (board_BTS == player_BT1) & moved_BT1
    theirs = (board_BTS == -player_BT1) & moved_BT1
    return np.concatenate([mine, theirs, games.legal_mask()[:, :-1]], axis=-1)


@dataclass
class SparseCodes:
    """Feature activations of ``n_tokens`` tokens as COO triples, sorted by token."""

    token: Tensor  # long [nnz]
    feature: Tensor  # long [nnz]
    value: Tensor  # float [nnz]
    n_tokens: int
    d_sae: int

    @staticmethod
    def from_dense(c_NF: Tensor) -> SparseCodes:
        token, feature = c_NF.nonzero(as_tuple=True)
        return SparseCodes(token, feature, c_NF[token, feature], c_NF.shape[0], c_NF.shape[1])

    @staticmethod
    def concatenate(parts: list[SparseCodes]) -> SparseCodes:
        offsets = np.cumsum([0] + [p.n_tokens for p in parts[:-1]])
        return SparseCodes(
            torch.cat([p.token + int(o) for p, o in zip(parts, offsets, strict=True)]),
            torch.cat([p.feature for p in parts]),
            torch.cat([p.value for p in parts]),
            sum(p.n_tokens for p in parts),
            parts[0].d_sae,
        )

    def split(self, n: int) -> tuple[SparseCodes, SparseCodes]:
        """Tokens ``[0, n)`` and ``[n, n_tokens)`` (the second renumbered from 0)."""
        cut = int(torch.searchsorted(self.token, torch.tensor(n)))
        head = SparseCodes(self.token[:cut], self.feature[:cut], self.value[:cut], n, self.d_sae)
        tail = SparseCodes(
            self.token[cut:] - n, self.feature[cut:], self.value[cut:], self.n_tokens - n, self.d_sae
        )
        return head, tail

    def max_per_feature(self) -> Tensor:
        return torch.zeros(self.d_sae).scatter_reduce(0, self.feature, self.value.float(), "amax")

    def dense_chunks(self, size: int = CHUNK_TOKENS):
        """Yield ``(start, c [chunk, F])`` over consecutive token ranges."""
        for start in range(0, self.n_tokens, size):
            stop = min(start + size, self.n_tokens)
            lo, hi = torch.searchsorted(self.token, torch.tensor([start, stop])).tolist()
            dense = torch.zeros(stop - start, self.d_sae)
            dense[self.token[lo:hi] - start, self.feature[lo:hi]] = self.value[lo:hi].float()
            yield start, dense


@dataclass
class PropertyCounts:
    """Counts for every threshold t, feature f and property g: ``fired_TF`` tokens where f fires,
    ``hits_TFG`` tokens where f fires and g holds, ``positives_G`` tokens where g holds."""

    fired_TF: Tensor
    hits_TFG: Tensor
    positives_G: Tensor

    def f1_TFG(self) -> Tensor:
        """F1 of "f fires" as a classifier of g: ``2·hits / (fired + positives)``, 0 when undefined."""
        denominator = self.fired_TF[:, :, None] + self.positives_G
        return torch.where(denominator > 0, 2 * self.hits_TFG / denominator.clamp(min=1), 0.0)


def property_counts(codes: SparseCodes, properties_NG: Tensor, max_F: Tensor) -> PropertyCounts:
    """:class:`PropertyCounts` for the thresholds :data:`THRESHOLDS` (fractions of ``max_F``)."""
    T, F, G = len(THRESHOLDS), codes.d_sae, properties_NG.shape[1]
    fired_TF, hits_TFG = torch.zeros(T, F), torch.zeros(T, F, G)
    for start, c_nF in codes.dense_chunks():
        props_nG = properties_NG[start : start + len(c_nF)].float()
        for t, fraction in enumerate(THRESHOLDS):
            fires_nF = (c_nF > fraction * max_F).float()
            fired_TF[t] += fires_nF.sum(0)
            hits_TFG[t] += fires_nF.T @ props_nG
    return PropertyCounts(fired_TF, hits_TFG, properties_NG.sum(0).float())


def coverage(counts: PropertyCounts, properties: slice) -> float:
    """``max_t mean_g max_f F1`` over the given properties (Karvonen et al.'s coverage)."""
    best_TG = counts.f1_TFG()[:, :, properties].amax(dim=1)
    return best_TG.mean(-1).max().item()


def feature_labels(counts: PropertyCounts) -> Tensor:
    """bool [T, F, G]: f fires at t with precision ≥ 0.95 for g, on at least 10 tokens with g."""
    precision_TFG = counts.hits_TFG / counts.fired_TF[:, :, None].clamp(min=1)
    return (precision_TFG >= HIGH_PRECISION) & (counts.hits_TFG >= MIN_HITS)


def board_reconstruction(
    codes: SparseCodes, properties_NG: Tensor, labels_TFG: Tensor, max_F: Tensor
) -> float:
    """Best-threshold F1 of the mine/theirs board rebuilt from the labels of firing features,
    a square predicted both mine and theirs counting as a false positive only."""
    T = len(THRESHOLDS)
    tp, fp, fn, both = (torch.zeros(T, dtype=torch.float64) for _ in range(4))
    board_labels_TFG = labels_TFG[:, :, : 2 * N_SQUARES].float()
    for start, c_nF in codes.dense_chunks():
        truth_nG = properties_NG[start : start + len(c_nF), : 2 * N_SQUARES]
        for t, fraction in enumerate(THRESHOLDS):
            predicted_nG = ((c_nF > fraction * max_F).float() @ board_labels_TFG[t]) > 0
            hit_nG, false_nG = predicted_nG & truth_nG, predicted_nG & ~truth_nG
            tp[t] += hit_nG.sum()
            fp[t] += false_nG.sum()
            fn[t] += (~predicted_nG & truth_nG).sum()
            hit_nS = hit_nG[:, MINE] | hit_nG[:, THEIRS]
            false_nS = false_nG[:, MINE] | false_nG[:, THEIRS]
            both[t] += (hit_nS & false_nS).sum()
    tp = tp - both
    precision = tp / (tp + fp).clamp(min=1)
    recall = tp / (tp + fn).clamp(min=1)
    f1 = torch.where(
        precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0
    )
    return f1.max().item()
