"""Probe accuracy per site, family and square on held-out games.

Per family and site the summary is the mean accuracy over the squares that count (see
``families.py``: squares with a constant label are left out) and the worst such square. The
majority-class share per square is reported beside it: binary labels are rare (a square is legal
at ~10% of positions), so "always no" already scores high and the gap to it is the signal.

Shape legend: N tokens, S sites, D d_model, Q squares, C classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from othello_tui.game.generator import iter_games
from othello_tui.game.squares import N_SQUARES, square_name
from othello_tui.model.evaluate import EVAL_SEED
from othello_tui.model.transformer import OthelloGPT
from othello_tui.probes.data import probe_data
from othello_tui.probes.families import FAMILY
from othello_tui.probes.linear import LinearProbes

#: held-out games for probes: disjoint from training seeds (below EVAL_SEED) and other evaluations
PROBE_EVAL_SEED = EVAL_SEED + 9
GAMES_PER_FORWARD = 100  # logits of 100 games at 7 sites: ~85 MB


@dataclass(frozen=True)
class ProbeAccuracy:
    sites: tuple[str, ...]
    tokens: int
    correct: dict[str, np.ndarray]  # family -> int [S, Q]: tokens classified right
    class_counts: dict[str, np.ndarray]  # family -> int [Q, C]: tokens of each true class

    def per_square(self, family: str) -> np.ndarray:
        """float [S, Q]: share of tokens classified right."""
        return self.correct[family] / max(self.tokens, 1)

    def mean(self, family: str) -> np.ndarray:
        """float [S]: mean accuracy over the squares that count."""
        return self.per_square(family)[:, FAMILY[family].counted()].mean(1)

    def worst(self, family: str) -> list[tuple[str, float]]:
        """Per site, the counted square with the lowest accuracy and that accuracy."""
        counted = FAMILY[family].counted()
        accuracy_SQ = np.where(counted, self.per_square(family), np.inf)
        return [
            (square_name(int(q)), float(row[q]))
            for row, q in zip(accuracy_SQ, accuracy_SQ.argmin(1), strict=True)
        ]

    def baseline(self, family: str) -> float:
        """Mean over counted squares of the majority-class share (the accuracy of a constant guess)."""
        majority_Q = self.class_counts[family].max(1) / max(self.tokens, 1)
        return float(majority_Q[FAMILY[family].counted()].mean())

    def to_dict(self) -> dict:
        """Every number of the summary, plus per-square accuracies (``null`` where not counted)."""
        families = {}
        for family in self.correct:
            counted = FAMILY[family].counted()
            layers = [
                {
                    "site": site,
                    "mean": round(float(mean), 6),
                    "worst": round(worst, 6),
                    "worst_square": square,
                    "per_square": [
                        round(float(a), 5) if c else None for a, c in zip(row, counted, strict=True)
                    ],
                }
                for site, mean, (square, worst), row in zip(
                    self.sites, self.mean(family), self.worst(family), self.per_square(family), strict=True
                )
            ]
            families[family] = {"baseline": round(self.baseline(family), 6), "layers": layers}
        return {"sites": list(self.sites), "tokens": self.tokens, "families": families}


class AccuracyCounter:
    """Accumulates right/wrong counts of ``probes`` over batches of (activations, labels)."""

    def __init__(self, probes: LinearProbes):
        self.probes = probes
        S = len(probes.sites)
        self.tokens = 0
        self.correct = {name: np.zeros((S, N_SQUARES), np.int64) for name in probes.families}
        self.class_counts = {
            name: np.zeros((N_SQUARES, len(f.classes)), np.int64) for name, f in probes.families.items()
        }

    @torch.no_grad()
    def add(self, x_NSD: Tensor, labels: dict[str, Tensor]) -> None:
        predicted = self.probes.predict(self.probes(x_NSD))
        for name, label_NQ in labels.items():
            if name not in self.correct:
                continue
            label_NQ = label_NQ.long()
            self.correct[name] += (predicted[name] == label_NQ[:, None]).sum(0).cpu().numpy()
            one_hot_NQC = torch.nn.functional.one_hot(label_NQ, self.class_counts[name].shape[1])
            self.class_counts[name] += one_hot_NQC.sum(0).cpu().numpy()
        self.tokens += len(x_NSD)

    def result(self) -> ProbeAccuracy:
        return ProbeAccuracy(self.probes.sites, self.tokens, self.correct, self.class_counts)


def evaluate_probes(
    model: OthelloGPT, probes: LinearProbes, n_games: int, seed: int = PROBE_EVAL_SEED
) -> ProbeAccuracy:
    """Accuracy on every valid position of the first ``n_games`` games of ``seed``."""
    model.eval()
    probes.eval()
    counter = AccuracyCounter(probes)
    for chunk in iter_games(n_games, seed):
        for start in range(0, len(chunk), GAMES_PER_FORWARD):
            counter.add(*probe_data(model, chunk[start : start + GAMES_PER_FORWARD], list(probes.sites)))
    return counter.result()
