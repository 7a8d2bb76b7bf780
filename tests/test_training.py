"""Training, resuming, Muon, and the evaluation metrics."""

from __future__ import annotations

import math

import pytest
import torch

from othello_tui.model.config import TINY
from othello_tui.model.evaluate import evaluate_model, prediction_metrics
from othello_tui.model.muon import Muon, from_matrix_view, matrix_view
from othello_tui.model.train import TrainConfig, TrainingInterrupted, lr_scale, train_model
from othello_tui.model.weights import load_model


def test_tiny_model_beats_the_uniform_baseline(tiny_weights):
    model, meta = load_model(tiny_weights)
    metrics = evaluate_model(model, 200, seed=2_000_000_000)
    assert metrics.loss < math.log(60) - 0.5
    assert metrics.legal_top1 > 0.5  # uniform over 60 squares is legal ~15% of the time
    assert metrics.loss >= metrics.loss_floor
    assert meta["training"]["games"] == 64 * 80 and meta["training"]["learning_curve"]


def test_interrupted_training_resumes_exactly_where_it_stopped(tmp_path, monkeypatch):
    from othello_tui.model import train

    cfg = TrainConfig(minutes=None, games=16 * 6, batch=16, model=TINY, eval_games=10, warmup_steps=3)
    train_model(cfg, tmp_path / "a", tmp_path / "a.ckpt", show_progress=False)

    real_random_games, calls = train.random_games, []

    def interrupt_on_fourth_batch(n, rng):
        calls.append(n)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_random_games(n, rng)

    monkeypatch.setattr(train, "random_games", interrupt_on_fourth_batch)
    with pytest.raises(TrainingInterrupted, match="step 3"):
        train_model(cfg, tmp_path / "b", tmp_path / "b.ckpt", show_progress=False)
    assert not (tmp_path / "b").exists()  # no weights until training finishes
    monkeypatch.setattr(train, "random_games", real_random_games)
    train_model(cfg, tmp_path / "b", tmp_path / "b.ckpt", resume=True, show_progress=False)
    a, meta_a = load_model(tmp_path / "a")
    b, meta_b = load_model(tmp_path / "b")
    assert meta_b["training"]["steps"] == meta_a["training"]["steps"] == 6
    for name, value in a.state_dict_tl().items():
        assert torch.equal(b.state_dict_tl()[name], value), name


def test_learning_rate_schedule():
    cfg = TrainConfig(minutes=10, warmup_steps=100, final_lr_frac=0.1)
    assert lr_scale(0, 0.0, cfg) == pytest.approx(0.01)
    assert lr_scale(99, 0.0, cfg) == pytest.approx(1.0)
    assert lr_scale(500, 0.5, cfg) == pytest.approx(0.55)
    assert lr_scale(10_000, 1.0, cfg) == pytest.approx(0.1)


def test_training_seeds_cannot_collide_with_evaluation_seeds():
    with pytest.raises(ValueError, match="training seeds must be below"):
        TrainConfig(seed=1_000_000_000)


def test_muon_matches_torch_muon_on_matrices():
    torch.manual_seed(0)
    ours, theirs = torch.randn(512, 128, requires_grad=True), None
    theirs = ours.detach().clone().requires_grad_()
    opt_ours, opt_theirs = (
        Muon([ours], lr=0.02, weight_decay=0.01),
        torch.optim.Muon([theirs], lr=0.02, weight_decay=0.01),
    )
    for _ in range(3):
        grad = torch.randn(512, 128)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        opt_ours.step()
        opt_theirs.step()
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("shape", [(8, 128, 16), (8, 16, 128)])
def test_muon_matrix_view_of_per_head_weights(shape):
    weight = torch.randn(shape)
    matrix = matrix_view(weight)
    assert matrix.shape == (128, 128)
    assert torch.equal(from_matrix_view(matrix, weight.shape), weight)
    if shape[1] == 128:  # W_Q [H, D, E]: column block h of the matrix is head h
        assert torch.equal(matrix[:, 16:32], weight[1])


def test_prediction_metrics_on_hand_built_logits():
    # one game, two positions, vocabulary 4 (token 0 padding); position 2 has no legal move
    legal = torch.tensor([[[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]], dtype=torch.bool)
    logits = torch.log(torch.tensor([[[1e-9, 0.5, 0.2, 0.3], [1e-9, 0.9, 0.005, 0.095], [0.25] * 4]]))
    m = prediction_metrics(logits, legal, threshold=0.01)
    assert m.positions == 2
    assert m.legal_top1 == pytest.approx(0.5)  # argmax token 1 legal, then token 1 illegal
    # sets above 0.01: {1,2,3} vs {1,2} -> F1 0.8; {1,3} vs {3} -> F1 2/3
    assert m.legal_set_f1 == pytest.approx((0.8 + 2 / 3) / 2)
    assert m.legal_set_exact == 0.0
    expected_loss = (-(math.log(0.5) + math.log(0.2)) / 2 - math.log(0.095)) / 2
    assert m.loss == pytest.approx(expected_loss, rel=1e-5)
    assert m.loss_floor == pytest.approx(math.log(2) / 2)
    assert m.legal_top1_by_move[:2] == [1.0, 0.0]


def test_snapshots_keep_the_weights_at_the_asked_minutes(tmp_path, monkeypatch):
    """Minute 0 is passed at the first step; a minute never reached leaves no folder."""
    cfg = TrainConfig(
        minutes=None,
        games=16 * 3,
        batch=16,
        model=TINY,
        eval_games=10,
        warmup_steps=3,
        snapshot_minutes=(0, 999),
    )
    train_model(cfg, tmp_path / "out", tmp_path / "ckpt" / "model.safetensors", show_progress=False)
    snapshots = tmp_path / "ckpt" / "snapshots"
    assert sorted(p.name for p in snapshots.iterdir()) == ["minute-0"]
    early, meta = load_model(snapshots / "minute-0")
    final, _ = load_model(tmp_path / "out")
    assert meta["training"]["steps"] == 1
    assert any(not torch.equal(v, final.state_dict_tl()[k]) for k, v in early.state_dict_tl().items())
