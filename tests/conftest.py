"""Shared fixtures. Tests use tiny models trained in seconds, never the long runs."""

from __future__ import annotations

import json
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


def random_dictionaries(
    model, modules: list[str] | None = None, d_sae: int = 64, k: int = 8, enc_mean: float = 0.0, seed: int = 0
) -> dict:
    """Random-but-plausible top-k dictionaries (``d_sae`` features) for ``modules`` of ``model``
    (default: every module output); ``enc_mean`` shifts ``b_enc`` so that more features fire."""
    from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of, module_names

    generator = torch.Generator().manual_seed(seed)
    dictionaries = {}
    for module in module_names(model.cfg.n_layers) if modules is None else modules:
        cfg = DictionaryConfig(module, hook_name_of(module), "topk", d_in=model.cfg.d_model, d_sae=d_sae, k=k)
        dictionary = Dictionary(cfg)
        dictionary.reset_parameters(generator)
        with torch.no_grad():
            dictionary.b_enc.normal_(enc_mean, 0.1, generator=generator)
            dictionary.b_dec.normal_(0.0, 0.1, generator=generator)
        dictionaries[module] = dictionary.eval()
    return dictionaries


@pytest.fixture(scope="session")
def tiny_dictionaries(tiny_model):
    return random_dictionaries(tiny_model)


def random_residual_dictionaries(model, d_sae: int = 48) -> dict:
    """Random residual-stream dictionaries ``L0R`` … (top-k, ``d_sae`` features) for ``model``, with
    ``b_enc`` shifted up so that a good share of features fire."""
    from othello_tui.dictionary.sae import residual_names

    return random_dictionaries(model, residual_names(model.cfg.n_layers), d_sae, k=6, enc_mean=0.5, seed=1)


@pytest.fixture(scope="session")
def tiny_residual(tiny_model):
    """Residual-stream dictionaries ``L0R``, ``L1R`` for the tiny model (readouts, not nodes)."""
    return random_residual_dictionaries(tiny_model)


@pytest.fixture(scope="session")
def residual_weights_dir(weights_dir, tiny_model, tiny_residual, tmp_path_factory) -> Path:
    """``weights_dir`` plus ``residual/`` with the tiny residual-stream dictionaries."""
    import shutil

    from othello_tui.dictionary.io import save_dictionary
    from othello_tui.model.weights import model_fingerprint

    out = tmp_path_factory.mktemp("residual_weights")
    shutil.copytree(weights_dir, out, dirs_exist_ok=True)
    for dictionary in tiny_residual.values():
        save_dictionary(dictionary, out / "residual", {"model_fingerprint": model_fingerprint(tiny_model)})
    return out


@pytest.fixture(scope="session")
def weights_dir(tiny_weights, tiny_model, tiny_dictionaries, tmp_path_factory) -> Path:
    """The tiny model with its dictionaries saved beside it, as `train dictionaries` would."""
    import shutil

    from othello_tui.dictionary.io import save_dictionary
    from othello_tui.model.weights import model_fingerprint

    out = tmp_path_factory.mktemp("weights")
    for path in tiny_weights.glob("othello_gpt.*"):
        shutil.copy(path, out)
    for dictionary in tiny_dictionaries.values():
        save_dictionary(
            dictionary, out / "dictionaries", {"model_fingerprint": model_fingerprint(tiny_model)}
        )
    return out


@pytest.fixture(scope="session")
def tiny_cache(tiny_model, tiny_dictionaries, tmp_path_factory) -> Path:
    """A feature cache of the tiny dictionaries over 300 games of seed 0 (top 32 tokens each)."""
    from othello_tui.features import build_cache

    path = tmp_path_factory.mktemp("tiny_cache") / "features-tiny.h5"
    return build_cache(tiny_model, tiny_dictionaries, 300, 0, 32, path, batch_games=100)


def write_saelens(folder: Path, dictionary, **cfg) -> Path:
    """A folder as ``sae.save_model(folder)`` (sae-lens 6.54) writes one of a TopK SAE, holding
    ``dictionary``'s tensors; ``cfg`` overrides fields of its ``cfg.json``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    tensors = {
        name: getattr(dictionary, name).detach().clone() for name in ("W_enc", "b_enc", "W_dec", "b_dec")
    }
    save_file(tensors, folder / "sae_weights.safetensors")
    config = {
        "d_in": dictionary.cfg.d_in,
        "d_sae": dictionary.cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"sae_lens_version": "6.54.12", "hook_name": dictionary.cfg.hook_name},
        "k": dictionary.cfg.k,
        "rescale_acts_by_decoder_norm": False,
        "architecture": "topk",
        **cfg,
    }
    (folder / "cfg.json").write_text(json.dumps(config))
    return folder


#: how each dictionary of ``normalised_dictionaries`` normalises its input (L1A: not at all)
NORMALISED = {
    "L0A": "layer_norm",
    "L0M": "constant_norm_rescale",
    "L1A": "none",
    "L1M": "layer_norm",
    "L1R": "constant_norm_rescale",
}


@pytest.fixture(scope="session")
def normalised_dictionaries(tiny_dictionaries, tiny_residual, tmp_path_factory) -> dict:
    """The tiny dictionaries (and the residual L1R) read back from SAELens folders that normalise
    each token's input as ``NORMALISED`` says (sae-lens's ``normalize_activations``)."""
    from othello_tui.dictionary.io import load_saelens

    out = tmp_path_factory.mktemp("normalised")
    sources = {**tiny_dictionaries, "L1R": tiny_residual["L1R"]}
    return {
        module: load_saelens(write_saelens(out / module, sources[module], normalize_activations=kind))
        for module, kind in NORMALISED.items()
    }
