"""Shared fixtures. Tests use tiny models trained in seconds, never the long runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # many small ops: one thread is faster and leaves the other core free


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A folder with a 2-layer model trained for a few seconds (beats uniform, far from good)."""
    from othello_tui.model.config import TINY
    from othello_tui.model.train import TrainConfig, train_model

    out = tmp_path_factory.mktemp("tiny_weights")
    cfg = TrainConfig(minutes=None, games=64 * 40, batch=64, model=TINY, eval_games=50, warmup_steps=5)
    train_model(cfg, out, out / "checkpoint.safetensors", show_progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_weights):
    from othello_tui.model.weights import load_model

    model, _ = load_model(tiny_weights)
    return model
