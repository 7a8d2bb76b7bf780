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
    cfg = TrainConfig(
        minutes=None,
        games=64 * 80,
        batch=64,
        lr=0.01,
        muon_lr=0.05,
        model=TINY,
        eval_games=50,
        warmup_steps=5,
    )
    train_model(cfg, out, out / "checkpoint.safetensors", show_progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_weights):
    from othello_tui.model.weights import load_model

    model, _ = load_model(tiny_weights)
    return model


@pytest.fixture(scope="session")
def tiny_dictionaries(tiny_model):
    """Random-but-plausible top-k dictionaries (64 features) for every module of the tiny model."""
    from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of, module_names

    generator = torch.Generator().manual_seed(0)
    dictionaries = {}
    for module in module_names(tiny_model.cfg.n_layers):
        cfg = DictionaryConfig(
            module, hook_name_of(module), "topk", d_in=tiny_model.cfg.d_model, d_sae=64, k=8
        )
        dictionary = Dictionary(cfg)
        dictionary.reset_parameters(generator)
        with torch.no_grad():
            dictionary.b_enc.normal_(0.0, 0.1, generator=generator)
            dictionary.b_dec.normal_(0.0, 0.1, generator=generator)
        dictionaries[module] = dictionary.eval()
    return dictionaries
