"""Probes on disk: ``probes.safetensors`` (``{family}.W`` [S, D, 64(, C)], ``{family}.b`` [S, 64(, C)])
and ``probes.json`` beside it::

    {"format": "othello-tui probes 1", "sites": [hook names], "d_model": D,
     "families": {name: {"classes": [...], "binary": bool, "constant_squares": [...]}},
     "shapes": {"mine_theirs.W": [...], ...},
     "model_fingerprint": "...", "training": {...}, "metrics": {...}}

The weights act on the raw residual stream at each site (any standardisation used in training is
folded in), so ``x · W[s, :, q] + b[s, q]`` are the logits of square q at site s.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from othello_tui.game.squares import square_name
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import (
    WeightsError,
    atomic_save_tensors,
    atomic_write_text,
    model_fingerprint,
    read_json,
    read_tensors,
)
from othello_tui.probes.families import FAMILIES, probe_sites
from othello_tui.probes.linear import LinearProbes

FORMAT = "othello-tui probes 1"
PROBES_STEM = "probes"
TRAIN_HINT = "train them with `othello-tui train probes`"


def probe_paths(path: Path) -> tuple[Path, Path]:
    """(tensors, json) for a weights folder or for a ``….safetensors`` path."""
    path = Path(path)
    tensors = path if path.suffix == ".safetensors" else path / f"{PROBES_STEM}.safetensors"
    return tensors, tensors.with_suffix(".json")


def _families_meta() -> dict:
    return {
        f.name: {
            "classes": list(f.classes),
            "binary": f.binary,
            "constant_squares": [square_name(q) for q in f.constant_squares],
        }
        for f in FAMILIES
    }


def save_probes(probes: LinearProbes, path: Path, info: dict | None = None) -> None:
    """Write both files atomically; ``path`` is a folder or the ``.safetensors`` path. ``info``
    adds top-level keys, normally ``model_fingerprint``, ``training`` and ``metrics``."""
    tensors_path, meta_path = probe_paths(path)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(tensors_path, probes.tensors())
    meta = {
        "format": FORMAT,
        "sites": list(probes.sites),
        "d_model": probes.d_model,
        "families": _families_meta(),
        "shapes": {key: list(shape) for key, shape in probes.tensor_shapes().items()},
        **(info or {}),
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")


def load_probes(path: Path, model: OthelloGPT | None = None) -> tuple[LinearProbes, dict]:
    """The probes and their JSON metadata. ``path`` is a weights folder or the ``.safetensors`` path.

    Raises :class:`WeightsError` for missing, unreadable or truncated files, tensors that do not
    match the JSON, probes of another format version, and — when ``model`` is given — probes of
    another shape (d_model, layers) or trained on another model (fingerprint)."""
    tensors_path, meta_path = probe_paths(path)
    if not tensors_path.exists() or not meta_path.exists():
        raise WeightsError(f"no probes at {tensors_path} (or its JSON is missing); {TRAIN_HINT}")
    meta = read_json(meta_path)
    if meta.get("format") != FORMAT or meta.get("families") != _families_meta():
        raise WeightsError(
            f"{meta_path} holds probes of another format ({meta.get('format')!r}, expected {FORMAT!r} "
            f"with families {', '.join(f.name for f in FAMILIES)}); {TRAIN_HINT}"
        )
    try:
        probes = LinearProbes(list(meta["sites"]), int(meta["d_model"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise WeightsError(f"{meta_path} has no usable sites / d_model ({error})") from None
    if model is not None:
        _check_fits(probes, meta, model, meta_path)
    tensors = read_tensors(tensors_path)
    problems = [
        f"{key} {tuple(tensors[key].shape) if key in tensors else 'missing'} (expected {shape})"
        for key, shape in probes.tensor_shapes().items()
        if key not in tensors or tuple(tensors[key].shape) != shape
    ]
    if problems:
        raise WeightsError(f"{tensors_path} does not match {meta_path.name}: " + "; ".join(problems))
    with torch.no_grad():
        for key, value in probes.tensors().items():
            value.copy_(tensors[key])
    return probes.eval(), meta


def _check_fits(probes: LinearProbes, meta: dict, model: OthelloGPT, meta_path: Path) -> None:
    expected = probe_sites(model.cfg.n_layers)
    if probes.d_model != model.cfg.d_model or list(probes.sites) != expected:
        raise WeightsError(
            f"{meta_path} (d_model {probes.d_model}, {len(probes.sites)} sites) does not fit the model "
            f"(d_model {model.cfg.d_model}, {len(expected)} sites); {TRAIN_HINT}"
        )
    fingerprint = model_fingerprint(model)
    if meta.get("model_fingerprint") != fingerprint:
        raise WeightsError(
            f"{meta_path} was trained for another model (fingerprint {meta.get('model_fingerprint')}, "
            f"this model is {fingerprint}); {TRAIN_HINT}"
        )
