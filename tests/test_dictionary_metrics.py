"""Dictionary metrics against hand-computed values, and the evaluation pipeline against an
independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from othello_tui.dictionary.evaluate import evaluate_dictionaries
from othello_tui.dictionary.metrics import (
    THRESHOLDS,
    PropertyCounts,
    SparseCodes,
    board_properties,
    board_reconstruction,
    coverage,
    feature_labels,
    fvu,
    l0,
    property_counts,
    relative_error,
)
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of
from othello_tui.game.generator import generate_games


def test_reconstruction_metrics_by_hand():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # mean (2, 0): Σ‖x − x̄‖² = 2
    x_hat = torch.tensor([[1.0, 0.5], [3.0, 0.0]])  # Σ‖x − x̂‖² = 0.25
    assert fvu(x, x_hat) == pytest.approx(0.125)
    assert relative_error(x, x_hat) == pytest.approx(0.25 / 2.0)  # mean‖x − x̂‖ / mean‖x‖
    assert l0(torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])) == pytest.approx(1.0)


def toy_codes() -> tuple[SparseCodes, torch.Tensor]:
    # feature 0 fires 2, 1 on tokens 0, 1; feature 1 fires 4, 0.3 on tokens 2, 3
    c_NF = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 4.0], [0.0, 0.3]])
    properties_NG = torch.tensor([[1, 0], [0, 0], [0, 1], [1, 0]], dtype=torch.bool)
    return SparseCodes.from_dense(c_NF), properties_NG


def test_coverage_by_hand():
    """t = 0: f0 fires on {0,1}, f1 on {2,3}: best F1 for g0 = 0.5, g1 = 2/3 → mean 7/12.
    t = 0.1…0.4: f1 fires on {2} only (0.3 < 0.4): g1 → 1 → mean 0.75.
    t ≥ 0.5: f0 fires on {0} only (1 is not > 1): g0 → 2/3; g1 → 1 → mean 5/6 (the maximum)."""
    codes, properties_NG = toy_codes()
    max_F = codes.max_per_feature()
    assert max_F.tolist() == [2.0, 4.0]
    counts = property_counts(codes, properties_NG, max_F)
    assert counts.fired_TF[0].tolist() == [2, 2] and counts.fired_TF[5].tolist() == [1, 1]
    assert counts.hits_TFG[0].tolist() == [[1, 0], [1, 1]]
    f1 = counts.f1_TFG()
    assert torch.allclose(f1[0], torch.tensor([[0.5, 0.0], [0.5, 2 / 3]]))
    assert coverage(counts, slice(0, 2)) == pytest.approx(5 / 6)
    assert coverage(counts, slice(1, 2)) == pytest.approx(1.0)


def test_feature_labels_need_precision_and_ten_hits():
    counts = PropertyCounts(
        fired_TF=torch.tensor([[20.0, 100.0, 5.0]]),
        hits_TFG=torch.tensor([[[19.0, 0.0], [94.0, 96.0], [5.0, 5.0]]]),
        positives_G=torch.tensor([200.0, 200.0]),
    )
    assert feature_labels(counts).tolist() == [[[True, False], [False, True], [False, False]]]


def test_board_reconstruction_by_hand():
    """f0 labelled mine a-0, f1 theirs a-0, f2 mine a-1. Token 0: f0, truth mine a-0 (TP).
    Token 1: f0 and f1, truth theirs a-0 (a TP and an FP on one square: counts as FP only).
    Token 2: f2, truth mine a-1 and theirs a-5 (TP, FN). Token 3: nothing, truth mine a-2 (FN).
    TP 3 − 1 = 2, FP 1, FN 2: precision 2/3, recall 1/2, F1 4/7."""
    c_NF = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0], [0, 0, 1.0], [0, 0, 0]])
    truth_NG = torch.zeros(4, 192, dtype=torch.bool)
    truth_NG[0, 0] = truth_NG[1, 64] = truth_NG[2, 1] = truth_NG[2, 64 + 5] = truth_NG[3, 2] = True
    labels_TFG = torch.zeros(len(THRESHOLDS), 3, 192, dtype=torch.bool)
    labels_TFG[:, 0, 0] = labels_TFG[:, 1, 64] = labels_TFG[:, 2, 1] = True
    codes = SparseCodes.from_dense(c_NF)
    assert board_reconstruction(codes, truth_NG, labels_TFG, codes.max_per_feature()) == pytest.approx(4 / 7)


def test_sparse_codes_split_concatenate_and_chunks():
    c_NF = torch.relu(torch.randn(50, 7))
    codes = SparseCodes.from_dense(c_NF)
    head, tail = codes.split(20)
    again = SparseCodes.concatenate([head, tail])
    assert torch.equal(torch.cat([dense for _, dense in again.dense_chunks(size=8)]), c_NF)
    assert torch.equal(torch.cat([dense for _, dense in tail.dense_chunks()]), c_NF[20:])


def test_board_properties_follow_the_player_who_just_moved():
    games = generate_games(40, seed=3)
    props = board_properties(games)
    assert props.shape == (40, 59, 192)
    mine, theirs, legal = props[..., :64], props[..., 64:128], props[..., 128:]
    # the first move always flips exactly one disc: the mover has 4, the other side 1
    assert (mine[:, 0].sum(-1) == 4).all() and (theirs[:, 0].sum(-1) == 1).all()
    squares = games.squares[:, :59]
    played = squares >= 0
    rows, cols = np.nonzero(played)
    assert mine[rows, cols, squares[rows, cols]].all()  # the square just played is the mover's
    discs = np.abs(games.board()[:, :59]).sum(-1)
    assert ((mine.sum(-1) + theirs.sum(-1)) == np.where(played, discs, 0)).all()
    assert (legal == games.legal_mask()[:, :59]).all()
    assert not props[~played].any()


def identity_dictionary(module: str, d_model: int) -> Dictionary:
    """A ReLU dictionary with features ±e_i: c = (relu(x), relu(−x)), x̂ = relu(x) − relu(−x) = x."""
    cfg = DictionaryConfig(module, hook_name_of(module), "standard", d_in=d_model, d_sae=2 * d_model)
    dictionary = Dictionary(cfg)
    eye = torch.eye(d_model)
    with torch.no_grad():
        dictionary.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        dictionary.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        dictionary.b_enc.zero_()
        dictionary.b_dec.zero_()
    return dictionary


def test_evaluation_of_an_exact_dictionary(tiny_model):
    d = tiny_model.cfg.d_model
    results = evaluate_dictionaries(tiny_model, {"L1A": identity_dictionary("L1A", d)}, n_games=40)
    metrics = results["modules"]["L1A"]
    assert metrics["fvu"] == pytest.approx(0.0, abs=1e-10)
    assert metrics["spliced_kl"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["spliced_legal_top1"] == pytest.approx(results["model"]["legal_top1"], abs=1e-6)
    assert metrics["l0"] == pytest.approx(d, abs=0.01)  # every coordinate is non-zero
    assert metrics["tokens"] == results["model"]["tokens"]


def test_evaluation_matches_an_independent_computation(tiny_model, tiny_dictionaries):
    from othello_tui.model.targets import model_inputs

    dictionary = tiny_dictionaries["L0M"]
    results = evaluate_dictionaries(tiny_model, {"L0M": dictionary}, n_games=30, seed=11)
    tokens, _ = model_inputs(generate_games(30, 11))
    _, cache = tiny_model.run_with_cache(tokens, names=[dictionary.cfg.hook_name])
    x = cache[dictionary.cfg.hook_name][tokens != 0]
    x_hat, c = dictionary(x)
    metrics = results["modules"]["L0M"]
    assert metrics["fvu"] == pytest.approx(fvu(x, x_hat), rel=1e-5)
    assert metrics["rel_error"] == pytest.approx(relative_error(x, x_hat), rel=1e-5)
    assert metrics["l0"] == pytest.approx(l0(c), rel=1e-6)
    assert metrics["mean_norm"] == pytest.approx(x.norm(dim=-1).mean().item(), rel=1e-5)
    rate = (c > 0).float().mean(0)
    assert metrics["alive_frac"] == pytest.approx((rate >= 1e-5).float().mean().item())
    assert metrics["dense_features"] == int((rate > 0.1).sum())
    assert 0.0 <= metrics["coverage"] <= 1.0 and 0.0 <= metrics["legal_coverage"] <= 1.0
    assert metrics["spliced_kl"] > 0.0
