"""The model and dictionaries the benchmarks run on: the shipped ones in ``weights/``, or random
TopK dictionaries of the real size where ``weights/dictionaries`` is missing."""

from __future__ import annotations

from pathlib import Path

import torch

from othello_tui.dictionary.io import load_dictionaries
from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of, module_names
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import WeightsError, load_model

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def random_dictionaries(model: OthelloGPT, k: int, seed: int = 0) -> dict[str, Dictionary]:
    """TopK dictionaries of 1024 random features (and small random encoder biases) per module."""
    generator = torch.Generator().manual_seed(seed)
    dictionaries = {}
    for module in module_names(model.cfg.n_layers):
        cfg = DictionaryConfig(module, hook_name_of(module), "topk", d_in=model.cfg.d_model, d_sae=1024, k=k)
        dictionary = Dictionary(cfg)
        dictionary.reset_parameters(generator)
        with torch.no_grad():
            dictionary.b_enc.normal_(0.0, 0.1, generator=generator)
        dictionaries[module] = dictionary.eval()
    return dictionaries


def model_and_dictionaries(
    weights: Path = WEIGHTS, k: int = 80
) -> tuple[OthelloGPT, dict[str, Dictionary], str]:
    """(model, dictionaries, a description of them) on the CPU."""
    model, _ = load_model(weights, "cpu")
    try:
        return model.eval(), load_dictionaries(weights / "dictionaries", model=model), "shipped dictionaries"
    except WeightsError:
        return model.eval(), random_dictionaries(model, k), f"random k-{k} dictionaries"
