"""Meaning metrics (DESIGN.md §5) on hand-built per-feature statistics with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from othello_tui.features.meaning import meaning

N_TOKENS = 100_000


def metrics(**changes):
    """Four features over 100,000 tokens and 3 predicates:

    - f0: dense (fires on 60%), activation 60, label F1 0.9; its top examples all satisfy p0,
      whose base rate is 0.5 (lift 0.5);
    - f1: fires on 20%, activation 30, label F1 0.69 (just below 0.7); top examples satisfy p1
      91% of the time, but p1's base rate 0.8 (lift 0.11, too little);
    - f2: fires on 0.5%, activation 10, label F1 0.75; top examples satisfy p2 only 50% of the
      time, but its label candidate (a conjunction) 95%, with base rate 0.01;
    - f3: fires on 5 tokens (below the alive rate 1e-4), activation 0.5.
    """
    fields = dict(
        fire_count_F=np.array([60_000, 20_000, 500, 5]),
        activation_sum_F=np.array([60.0, 30.0, 10.0, 0.5]),
        label_f1_F=np.array([0.9, 0.69, 0.75, 0.0]),
        example_counts_FP=np.array([[256, 0, 0], [0, 233, 0], [0, 0, 128], [5, 5, 5]]),
        n_examples_F=np.array([256, 256, 256, 5]),
        base_rate_P=np.array([0.5, 0.8, 0.02]),
        candidate_share_FC=np.array([[1.0, 0.0], [0.91, 0.0], [0.95, 0.5], [1.0, 1.0]]),
        candidate_base_FC=np.array([[0.5, 1.0], [0.8, 1.0], [0.01, 0.02], [0.0, 0.0]]),
        n_tokens=N_TOKENS,
    )
    return meaning(**{**fields, **changes})


def test_labelled_mass_counts_activation_of_features_labelled_at_f1_07():
    m = metrics()
    assert m.labelled_mass == pytest.approx((60 + 10) / 100.5)
    assert m.dense_mass_10 == pytest.approx(90 / 100.5) and m.dense_mass_50 == pytest.approx(60 / 100.5)


def test_monosemantic_share_needs_purity_and_lift_among_alive_features():
    m = metrics()
    assert m.alive == 3  # f3 fires on 5 in 100,000 < 1e-4
    assert m.monosemantic == 2  # f0 by a single predicate, f2 by its conjunction; f1 lacks lift
    assert m.monosemantic_share == pytest.approx(2 / 3)
    lower_base = metrics(base_rate_P=np.array([0.5, 0.6, 0.02]))  # now p1 has lift 0.31
    assert lower_base.monosemantic == 3
    impure = metrics(
        example_counts_FP=np.array([[230, 0, 0], [0, 233, 0], [0, 0, 128], [5, 5, 5]]),
        candidate_share_FC=np.array([[0.898, 0.0], [0.91, 0.0], [0.95, 0.5], [1.0, 1.0]]),
    )
    assert impure.monosemantic == 1  # f0's predicate holds on 230/256 < 90% of its top examples


def test_empty_module():
    m = metrics(fire_count_F=np.zeros(4, int), activation_sum_F=np.zeros(4), n_examples_F=np.zeros(4, int))
    assert (m.alive, m.monosemantic, m.labelled_mass, m.monosemantic_share) == (0, 0, 0.0, 0.0)
