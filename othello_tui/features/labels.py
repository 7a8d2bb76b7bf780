"""Automatic feature labels: predicates scored as classifiers of "the feature fires".

For feature f and predicate p over all tokens: TP = #(f fires ∧ p), precision = TP / #fires,
recall = TP / #p, F1 = 2·TP / (#fires + #p). Every count is a product of 0/1 matrices summed over
tokens, so one pass accumulates them all: TP [F, P] = firesᵀ·predicates per chunk.

Conjunctions of up to three predicates are found by a greedy beam (width 1) from each feature's
*anchor* A, its best single predicate in the first chunk where it fires, and its *partner* B,
the best second predicate in that chunk: TP(A ∧ C) and TP(A ∧ B ∧ C) for every C are the same
product with the fires masked by A, or by A ∧ B. A feature fires for the first time in the chunk
that picks them, so these true positives are exact over all tokens; only the choice of A and B
rests on that first chunk. The predicate counts #(A ∧ C) come from the co-occurrence matrix, and
#(A ∧ B ∧ C), which depends on the feature, from a second pass over the tokens
(:func:`conjunction_counts`). A conjunction is the label only where its F1 beats every shorter
candidate's by ``CONJUNCTION_GAIN``.

A label must say something: its precision must beat the predicate's base rate by ``MIN_LIFT``.
Otherwise a feature firing almost everywhere would be "labelled" ``empty=a-7`` with F1 0.87 just
because that corner is usually empty (a classifier that always says yes scores 2p/(1+p) at base
rate p).

Shape legend: N tokens, F features, P predicates, C label candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from othello_tui.features.predicates import PREDICATE_NAMES

LABEL_F1_FLOOR = 0.5  # below this a feature is unlabelled
MIN_LIFT = 0.1  # a label's precision must beat its predicate's base rate by this much
GOOD_LABEL_F1 = 0.8  # the share of alive features labelled at least this well is the headline figure
CONJUNCTION_GAIN = 0.1
N_SINGLE_CANDIDATES = 3
N_CANDIDATES = N_SINGLE_CANDIDATES + 2  # the best singles, the best pair, the best triple
CONJUNCTION_SIZE = 3  # predicates per candidate (unused slots −1)
#: a conjunction must hold on this many firing tokens: on a handful, some triple always fits
MIN_CONJUNCTION_SUPPORT = 10


def cooccurrence(a_NX: Tensor, b_NY: Tensor) -> Tensor:
    """int64 [X, Y]: ``aᵀ·b`` for 0/1 int8 matrices, the number of rows where both columns are 1.

    Exact: on CPU int8 products accumulate in int32 (``torch._int_mm``, AMX/VNNI kernels, several
    times faster than float32 here); elsewhere float32, exact while N < 2**24.
    """
    if a_NX.device.type == "cpu":
        # A one-column transposed view ([1, N], strides (1, 1)) comes out wrong from _int_mm
        # (torch 2.13), so that case gets a plain contiguous row.
        a_XN = a_NX.T if a_NX.shape[1] > 1 else a_NX.reshape(1, -1)
        return torch._int_mm(a_XN, b_NY).long()
    return (a_NX.T.float() @ b_NY.float()).long()


def informative(tp, fires, count, n_tokens: int):
    """Where the predicate holds more often when the feature fires than overall (by ``MIN_LIFT``)."""
    return tp / fires.clip(min=1) >= count / max(n_tokens, 1) + MIN_LIFT


def f1_score(tp, fires, count):
    """``2·TP / (#fires + #predicate)``, 0 where both counts are 0; numpy or torch, broadcasting."""
    return 2 * tp / (fires + count).clip(min=1)


class PredicateCounts:
    """How often each predicate and each pair of predicates holds: shared by every module."""

    def __init__(self, device: torch.device | str = "cpu"):
        P = len(PREDICATE_NAMES)
        self.n_tokens = 0
        self.count_P = torch.zeros(P, dtype=torch.int64, device=device)
        self.pairs_PP = torch.zeros(P, P, dtype=torch.int64, device=device)
        self.chunk_n, self.chunk_count_P, self.chunk_pairs_PP = 0, self.count_P.clone(), self.pairs_PP.clone()

    def update(self, predicates_NP: Tensor) -> None:
        """Add a chunk; its own counts stay in ``chunk_*`` (a feature's anchor and partner are
        chosen within the chunk where it first fires)."""
        self.chunk_n = len(predicates_NP)
        self.chunk_count_P = predicates_NP.sum(0)
        self.chunk_pairs_PP = cooccurrence(predicates_NP, predicates_NP)
        self.n_tokens += self.chunk_n
        self.count_P += self.chunk_count_P
        self.pairs_PP += self.chunk_pairs_PP


class LabelCounts:
    """The true positives of one dictionary's features, singles and anchored conjunctions."""

    def __init__(self, n_features: int, device: torch.device | str = "cpu"):
        P = len(PREDICATE_NAMES)
        self.fires_F = torch.zeros(n_features, dtype=torch.int64, device=device)
        self.tp_FP = torch.zeros(n_features, P, dtype=torch.int64, device=device)
        self.conjunction_tp_FP = torch.zeros(n_features, P, dtype=torch.int64, device=device)
        self.triple_tp_FP = torch.zeros(n_features, P, dtype=torch.int64, device=device)
        self.anchor_F = torch.zeros(n_features, dtype=torch.int64, device=device)
        self.partner_F = torch.zeros(n_features, dtype=torch.int64, device=device)
        self.chosen_F = torch.zeros(n_features, dtype=torch.bool, device=device)  # anchor and partner set

    def update(
        self,
        fires_NF: Tensor,
        feature_E: Tensor,
        token_E: Tensor,
        predicates_NP: Tensor,
        predicates: PredicateCounts,
    ) -> None:
        """Add a chunk whose firing is given twice: dense, ``fires_NF`` int8 0/1 (for the
        products), and as entries (``feature_E[e]`` fires at token ``token_E[e]``, for the sparse
        steps). ``predicates_NP`` int8 0/1; ``predicates`` already counts the chunk."""
        batch_fires_F = torch.bincount(feature_E, minlength=len(self.fires_F))
        first_F = ~self.chosen_F & (batch_fires_F > 0)
        self.chosen_F |= first_F
        self.fires_F += batch_fires_F
        self.tp_FP += cooccurrence(fires_NF, predicates_NP)
        # a first-firing feature's counts so far are this chunk's: score its anchor and partner
        # against the chunk's predicate counts too
        count_P, n = predicates.chunk_count_P, predicates.chunk_n
        if first_F.any():
            tp_FP, fires_F1 = self.tp_FP[first_F], self.fires_F[first_F, None]
            f1_FP = f1_score(tp_FP, fires_F1, count_P)
            useful_FP = informative(tp_FP, fires_F1, count_P, n)
            self.anchor_F[first_F] = f1_FP.masked_fill(~useful_FP, -1.0).argmax(dim=1)
        anchored_NF = self._fires_where(fires_NF, feature_E, token_E, predicates_NP, (self.anchor_F,))
        self.conjunction_tp_FP += cooccurrence(anchored_NF, predicates_NP)
        if first_F.any():
            anchor_F = self.anchor_F[first_F]
            f1_FP = pair_f1(
                self.conjunction_tp_FP[first_F], self.fires_F[first_F, None],
                predicates.chunk_pairs_PP[anchor_F], count_P[anchor_F][:, None], count_P, n,
            )  # fmt: skip
            self.partner_F[first_F] = f1_FP.argmax(dim=1)
        both_NF = self._fires_where(
            fires_NF, feature_E, token_E, predicates_NP, (self.anchor_F, self.partner_F)
        )
        self.triple_tp_FP += cooccurrence(both_NF, predicates_NP)

    @staticmethod
    def _fires_where(fires_NF, feature_E, token_E, predicates_NP, columns: tuple[Tensor, ...]) -> Tensor:
        """int8 [N, F]: the feature fires and its predicates ``columns`` (one [F] each) hold; built
        from the entries (far fewer than N·F) by flat indices."""
        F, P = fires_NF.shape[1], predicates_NP.shape[1]
        held_E = torch.ones_like(feature_E, dtype=torch.bool)
        for column_F in columns:
            held_E &= predicates_NP.view(-1)[token_E * P + column_F[feature_E]].bool()
        out_NF = torch.zeros_like(fires_NF)
        out_NF.view(-1)[(token_E * F + feature_E)[held_E]] = 1
        return out_NF


def pair_f1(tp_FP, fires_F1, pair_count_FP, first_count_F1, count_P, n_tokens: int):
    """F1 of ``first ∧ p`` for every p, −1 where the conjunction is no conjunction (p implies the
    first predicate or is implied by it: A ∧ A, move=s ∧ mine=s, …) or says nothing."""
    f1 = f1_score(tp_FP, fires_F1, pair_count_FP)
    redundant = (pair_count_FP == first_count_F1) | (pair_count_FP == count_P)
    bad = redundant | ~informative(tp_FP, fires_F1, pair_count_FP, n_tokens)
    return f1 - (f1 + 1) * bad  # numpy or torch alike


def conjunction_counts(predicates_NP: Tensor, anchor_F: Tensor, partner_F: Tensor) -> Tensor:
    """int64 [F, P]: tokens of a chunk where each feature's anchor, partner and predicate p all
    hold (the predicate counts of the triples, which depend on the feature)."""
    both_NF = predicates_NP[:, anchor_F] & predicates_NP[:, partner_F]
    return cooccurrence(both_NF.contiguous(), predicates_NP)


@dataclass(frozen=True)
class Label:
    """A predicate (or conjunction, names joined by " & ") and its scores as a classifier, with
    the share of the feature's top examples it holds on (None where not measured)."""

    text: str
    precision: float
    recall: float
    f1: float
    top_share: float | None = None

    def __str__(self) -> str:
        return f"{self.text} (P {self.precision:.2f}, R {self.recall:.2f})"


def label_text(*predicates: int) -> str:
    """``"move=b-4 & flipped=c-4"`` from predicate indices (−1: unused slot)."""
    return " & ".join(PREDICATE_NAMES[p] for p in predicates if p >= 0)


def score_labels(
    labels: LabelCounts, predicates: PredicateCounts, triple_count_FP: Tensor | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Label candidates of every feature: predicate indices int16 [F, C, 3] (−1: unused; a
    conjunction's predicates in index order) and scores float32 [F, C, 3] (precision, recall, F1).
    Candidates: the best singles, the best pair A ∧ ·, the best triple A ∧ B ∧ · (scored only
    with ``triple_count_FP``, from :func:`conjunction_counts`). Candidate 0 is the label, the
    others follow by F1."""
    fires_F1 = labels.fires_F.cpu().numpy()[:, None]
    count_P = predicates.count_P.cpu().numpy()
    tp_FP = labels.tp_FP.cpu().numpy()
    anchor_F, partner_F = labels.anchor_F.cpu().numpy(), labels.partner_F.cpu().numpy()
    F, n_tokens = len(fires_F1), predicates.n_tokens
    rows_F1 = np.arange(F)[:, None]

    def scores(tp, count):  # [F, X] -> [F, X, 3]
        return np.stack(
            [tp / fires_F1.clip(min=1), tp / count.clip(min=1), f1_score(tp, fires_F1, count)], -1
        )

    single_f1_FP = np.where(
        informative(tp_FP, fires_F1, count_P, n_tokens), f1_score(tp_FP, fires_F1, count_P), -1.0
    )
    single_FS = np.argsort(-single_f1_FP, axis=1, kind="stable")[:, :N_SINGLE_CANDIDATES]
    pairs_PP = predicates.pairs_PP.cpu().numpy()
    pair_count_FP, pair_tp_FP = pairs_PP[anchor_F], labels.conjunction_tp_FP.cpu().numpy()
    pair_f1_FP = pair_f1(pair_tp_FP, fires_F1, pair_count_FP, count_P[anchor_F][:, None], count_P, n_tokens)
    pair_f1_FP[pair_tp_FP < MIN_CONJUNCTION_SUPPORT] = -1
    best_pair_F1 = pair_f1_FP.argmax(axis=1)[:, None]
    if triple_count_FP is None:
        triple_count_FP = np.zeros_like(tp_FP)  # unmeasured: every triple scores −1 below
    triple_count_FP = np.asarray(
        triple_count_FP.cpu() if isinstance(triple_count_FP, Tensor) else triple_count_FP
    )
    triple_tp_FP = labels.triple_tp_FP.cpu().numpy()
    ab_count_F1 = pairs_PP[anchor_F, partner_F][:, None]
    triple_f1_FP = pair_f1(triple_tp_FP, fires_F1, triple_count_FP, ab_count_F1, pair_count_FP, n_tokens)
    no_pair_F1 = pair_f1_FP[rows_F1, partner_F[:, None]] < 0
    triple_f1_FP[(triple_count_FP == 0) | (triple_tp_FP < MIN_CONJUNCTION_SUPPORT) | no_pair_F1] = -1
    best_triple_F1 = triple_f1_FP.argmax(axis=1)[:, None]

    unused_F1 = np.full((F, 1), -1)
    candidates_FCJ = np.concatenate(
        [
            np.stack([single_FS, *[np.full_like(single_FS, -1)] * 2], -1),
            np.concatenate(
                [np.sort(np.stack([anchor_F[:, None], best_pair_F1], -1), axis=-1), unused_F1[..., None]], -1
            ),
            np.sort(np.stack([anchor_F[:, None], partner_F[:, None], best_triple_F1], -1), axis=-1),
        ],
        axis=1,
    )
    scores_FC3 = np.concatenate(
        [
            scores(tp_FP[rows_F1, single_FS], count_P[single_FS]),
            scores(pair_tp_FP[rows_F1, best_pair_F1], pair_count_FP[rows_F1, best_pair_F1]),
            scores(triple_tp_FP[rows_F1, best_triple_F1], triple_count_FP[rows_F1, best_triple_F1]),
        ],
        axis=1,
    )
    usable_FC = np.concatenate(
        [
            single_f1_FP[rows_F1, single_FS] >= 0,
            pair_f1_FP[rows_F1, best_pair_F1] >= 0,
            triple_f1_FP[rows_F1, best_triple_F1] >= 0,
        ],
        axis=1,
    )
    scores_FC3[~usable_FC] = 0.0  # uninformative candidates score nothing: never a label
    f1_FC = scores_FC3[..., 2]
    # the label: the best single, unless a longer candidate beats every shorter one by the gain
    pick_F = np.zeros(F, np.int64)
    pair_wins = f1_FC[:, N_SINGLE_CANDIDATES] >= f1_FC[:, 0] + CONJUNCTION_GAIN
    pick_F[pair_wins] = N_SINGLE_CANDIDATES
    best_shorter_F = np.maximum(f1_FC[:, 0], f1_FC[:, N_SINGLE_CANDIDATES])
    pick_F[f1_FC[:, -1] >= best_shorter_F + CONJUNCTION_GAIN] = N_CANDIDATES - 1
    key_FC = f1_FC.copy()
    key_FC[np.arange(F), pick_F] = np.inf  # the label first
    order_FC = np.argsort(-key_FC, axis=1, kind="stable")
    return candidates_FCJ[rows_F1, order_FC].astype(np.int16), scores_FC3[rows_F1, order_FC].astype(
        np.float32
    )
