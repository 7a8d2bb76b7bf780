"""Sparse feature activations against the dense array they were made from: every way of reading
them back gives exactly its numbers."""

from __future__ import annotations

import numpy as np

from othello_tui.tui.feature_acts import FeatureActs


def dense_acts(n_positions: int, seed: int) -> np.ndarray:
    """float32 [T, 40], about a tenth nonzero; one row all zeros."""
    rng = np.random.default_rng(seed)
    acts_TF = (rng.random((n_positions, 40)) * (rng.random((n_positions, 40)) < 0.1)).astype(np.float32)
    acts_TF[n_positions // 2] = 0.0
    return acts_TF


def test_rows_columns_and_the_whole_array_come_back_exactly():
    acts_TF = dense_acts(12, seed=0)
    acts = FeatureActs.of(acts_TF)
    assert len(acts) == 12 and len(acts.value_N) == np.count_nonzero(acts_TF)
    assert np.array_equal(acts.dense(), acts_TF)
    assert all(np.array_equal(acts.row(t), acts_TF[t]) for t in range(12))
    assert all(np.array_equal(acts.column(f), acts_TF[:, f]) for f in range(40))


def test_truncating_and_joining_are_slicing_and_concatenating_the_rows():
    first, later = dense_acts(9, seed=1), dense_acts(5, seed=2)
    acts = FeatureActs.of(first)
    for n in (0, 1, 4, 9):
        assert np.array_equal(acts.truncated(n).dense(), first[:n])
    joined = acts.truncated(6).followed_by(FeatureActs.of(later))
    assert np.array_equal(joined.dense(), np.concatenate([first[:6], later]))
    assert np.array_equal(joined.column(3), np.concatenate([first[:6, 3], later[:, 3]]))
