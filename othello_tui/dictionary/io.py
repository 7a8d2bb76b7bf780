"""Dictionaries on disk, one pair of files per module (DESIGN.md §2, SAELens conventions):

- ``{module}.safetensors``: ``W_enc`` [d_in, d_sae], ``b_enc`` [d_sae], ``W_dec`` [d_sae, d_in],
  ``b_dec`` [d_in], and ``threshold`` [d_sae] for JumpReLU;
- ``{module}.json``: SAELens-style config (``architecture``, ``d_in``, ``d_sae``, ``hook_name``,
  ``hook_layer``, ``k`` where it applies, ``apply_b_dec_to_input``, ``normalize_activations``), plus
  ``module``, ``model_fingerprint`` (the model it was trained on), ``training`` and ``metrics``.

The saved dictionary works on raw module outputs: any normalisation used in training is folded in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from othello_tui.dictionary.sae import Dictionary, DictionaryConfig, hook_name_of
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import (
    WeightsError,
    atomic_save_tensors,
    atomic_write_text,
    model_fingerprint,
    read_json,
    read_tensors,
)

TRAIN_HINT = "train them with `othello-tui train dictionaries`"
_MODULE_NAME = re.compile(r"L(\d+)([AM])")


def _tensor_shapes(cfg: DictionaryConfig) -> dict[str, tuple[int, ...]]:
    shapes = {
        "W_enc": (cfg.d_in, cfg.d_sae),
        "b_enc": (cfg.d_sae,),
        "W_dec": (cfg.d_sae, cfg.d_in),
        "b_dec": (cfg.d_in,),
    }
    if cfg.architecture == "jumprelu":
        shapes["threshold"] = (cfg.d_sae,)
    return shapes


def save_dictionary(dictionary: Dictionary, directory: Path, info: dict | None = None) -> None:
    """Write ``{module}.safetensors`` and ``{module}.json`` atomically. ``info`` adds top-level
    keys, normally ``model_fingerprint``, ``training`` and ``metrics``."""
    cfg = dictionary.cfg
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(dictionary, name) for name in _tensor_shapes(cfg)}
    atomic_save_tensors(directory / f"{cfg.module}.safetensors", tensors)
    meta = {
        "architecture": cfg.architecture,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "hook_name": cfg.hook_name,
        "hook_layer": int(cfg.module[1:-1]),
        "module": cfg.module,
        **({"k": cfg.k} if cfg.architecture == "topk" else {}),
        **({"l1_coefficient": cfg.l1_coefficient} if cfg.architecture == "standard" else {}),
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "dtype": "float32",
        **(info or {}),
    }
    atomic_write_text(directory / f"{cfg.module}.json", json.dumps(meta, indent=2) + "\n")


def _load_one(directory: Path, module: str, model: OthelloGPT | None, fingerprint: str | None) -> Dictionary:
    meta_path, tensors_path = directory / f"{module}.json", directory / f"{module}.safetensors"
    meta = read_json(meta_path)
    try:
        # fields that do not apply to the architecture are absent from the file: None, not the default
        cfg = DictionaryConfig.from_dict(
            {**meta, "k": meta.get("k"), "l1_coefficient": meta.get("l1_coefficient")}
        )
    except (TypeError, ValueError) as error:
        raise WeightsError(f"{meta_path} has no usable dictionary config ({error})") from None
    if cfg.architecture == "topk" and not isinstance(cfg.k, int):
        raise WeightsError(f"{meta_path} is a topk dictionary without an integer k")
    if cfg.module != module or cfg.hook_name != hook_name_of(module):
        raise WeightsError(f"{meta_path} describes {cfg.module} ({cfg.hook_name}), not {module}")
    if model is not None and (cfg.d_in != model.cfg.d_model or int(module[1:-1]) >= model.cfg.n_layers):
        raise WeightsError(
            f"{meta_path} (d_in {cfg.d_in}, layer {module[1:-1]}) does not fit the model "
            f"(d_model {model.cfg.d_model}, {model.cfg.n_layers} layers); {TRAIN_HINT}"
        )
    if fingerprint is not None and meta.get("model_fingerprint") != fingerprint:
        raise WeightsError(
            f"{meta_path} was trained for another model (fingerprint {meta.get('model_fingerprint')}, "
            f"this model is {fingerprint}); {TRAIN_HINT}"
        )
    tensors = read_tensors(tensors_path)
    problems = [
        f"{name} {tuple(tensors[name].shape) if name in tensors else 'missing'} (expected {shape})"
        for name, shape in _tensor_shapes(cfg).items()
        if name not in tensors or tuple(tensors[name].shape) != shape
    ]
    if problems:
        raise WeightsError(f"{tensors_path} does not match its config: " + "; ".join(problems))
    dictionary = Dictionary(cfg)
    with torch.no_grad():
        for name in _tensor_shapes(cfg):
            getattr(dictionary, name).copy_(tensors[name])
    return dictionary.eval()


def load_dictionaries(
    directory: Path, model: OthelloGPT | None = None, modules: list[str] | None = None
) -> dict[str, Dictionary]:
    """The named modules' dictionaries (default: every module found), bottom to top.

    Raises :class:`WeightsError` for a missing folder or file, an unreadable or truncated file,
    tensors of the wrong shape, or — when ``model`` is given — a dictionary trained for another
    model (its ``model_fingerprint`` differs from ``model_fingerprint(model)``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightsError(f"no dictionaries in {directory} (no such folder); {TRAIN_HINT}")
    if modules is None:
        found = {path.stem for path in directory.iterdir() if _MODULE_NAME.fullmatch(path.stem)}
        modules = sorted(found, key=lambda m: (int(m[1:-1]), m[-1]))
        if not modules:
            raise WeightsError(f"no dictionaries in {directory}; {TRAIN_HINT}")
    fingerprint = model_fingerprint(model) if model is not None else None
    return {module: _load_one(directory, module, model, fingerprint) for module in modules}
