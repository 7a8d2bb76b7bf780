"""How much of a dictionary a person can read (DESIGN.md §5, "meaning"; issue 14).

- **labelled mass**: the share of the module's total activation (summed over the tokens) carried by
  features whose label has F1 ≥ ``LABELLED_F1``. A tree is built from activation, so this is the
  share of a typical explanation that comes with a meaning.
- **top-k monosemantic share**: the share of alive features (firing on ≥ ``ALIVE_RATE`` of tokens)
  whose top examples satisfy one predicate, or one of the feature's label candidates (which may be
  conjunctions), in ≥ ``MONOSEMANTIC_SHARE`` of cases, at least ``MONOSEMANTIC_LIFT`` above the
  predicate's base rate: the write-up's own reading of its panels.
- **density profile**: the share of the activation carried by features firing on more than 10% and
  more than 50% of tokens (a dense code carries nearly all of it there).

Inputs are per-feature arrays, as the feature cache stores them. Shape legend: F features,
P predicates, C label candidates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

LABELLED_F1 = 0.7
ALIVE_RATE = 1e-4
MONOSEMANTIC_SHARE = 0.9
MONOSEMANTIC_LIFT = 0.3
DENSE_RATES = (0.1, 0.5)


@dataclass(frozen=True)
class Meaning:
    alive: int
    labelled_mass: float
    monosemantic: int  # alive features whose top examples share a predicate or label candidate
    dense_mass_10: float  # activation share of features firing on > 10% of tokens
    dense_mass_50: float  # … on > 50%

    @property
    def monosemantic_share(self) -> float:
        return self.monosemantic / max(self.alive, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "monosemantic_share": self.monosemantic_share}


def meaning(
    fire_count_F: np.ndarray,
    activation_sum_F: np.ndarray,
    label_f1_F: np.ndarray,
    example_counts_FP: np.ndarray,
    n_examples_F: np.ndarray,
    base_rate_P: np.ndarray,
    candidate_share_FC: np.ndarray,
    candidate_base_FC: np.ndarray,
    n_tokens: int,
) -> Meaning:
    """The meaning metrics of one module. ``example_counts_FP``: how many of each feature's
    ``n_examples_F`` top examples satisfy each predicate; ``candidate_share_FC`` the share of them
    satisfying each label candidate, whose base rate is ``candidate_base_FC``."""
    total = max(float(activation_sum_F.sum()), 1e-30)
    rate_F = fire_count_F / max(n_tokens, 1)
    alive_F = rate_F >= ALIVE_RATE
    share_FP = example_counts_FP / np.maximum(n_examples_F, 1)[:, None]
    single_F = _pure(share_FP, base_rate_P[None, :]).any(1)
    candidate_F = _pure(candidate_share_FC, candidate_base_FC).any(1)
    monosemantic_F = alive_F & (n_examples_F > 0) & (single_F | candidate_F)
    return Meaning(
        alive=int(alive_F.sum()),
        labelled_mass=float(activation_sum_F[label_f1_F >= LABELLED_F1].sum() / total),
        monosemantic=int(monosemantic_F.sum()),
        dense_mass_10=float(activation_sum_F[rate_F > DENSE_RATES[0]].sum() / total),
        dense_mass_50=float(activation_sum_F[rate_F > DENSE_RATES[1]].sum() / total),
    )


def _pure(share, base):
    return (share >= MONOSEMANTIC_SHARE) & (share >= base + MONOSEMANTIC_LIFT)
