"""Model weights on disk: a folder of ours, or one TransformerLens checkpoint file
(``tl_checkpoint.py``: ``.safetensors``/``.pth``/``.pt`` with its config beside it).

Our folder: ``othello_gpt.safetensors`` (TransformerLens names and shapes) and
``othello_gpt.json`` (``{"config": HookedTransformerConfig fields, "training": …, "metrics": …}``).

A TransformerLens 2.x/3.x user loads them with no conversion code::

    cfg = HookedTransformerConfig(**json.load(open("othello_gpt.json"))["config"])
    model = HookedTransformer(cfg)
    model.load_state_dict(safetensors.torch.load_file("othello_gpt.safetensors"), strict=False)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from othello_tui.model.config import ModelConfig
from othello_tui.model.errors import WeightsError as WeightsError  # re-exported: its home is errors.py
from othello_tui.model.tl_checkpoint import checkpoint_config, our_state, read_checkpoint
from othello_tui.model.transformer import OthelloGPT

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
MODEL_STEM = "othello_gpt"
TRAIN_HINT = "train them with `othello-tui train model` (or pass --weights DIR)"


def weights_home(weights: Path) -> Path:
    """The folder that holds what belongs to the model in ``weights`` (its ``dictionaries/``,
    probes, model card): the weights folder itself, or, for a single checkpoint file, the folder
    named after it beside it (``synthetic_model.pth`` → ``synthetic_model/``)."""
    weights = Path(weights)
    return weights.with_suffix("") if weights.is_file() else weights


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
    os.replace(tmp, path)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise WeightsError(f"{path} does not exist")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a readable safetensors file ({error})") from None


def read_json(path: Path) -> dict:
    if not path.exists():
        raise WeightsError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsError(f"{path} is not valid JSON ({error})") from None


def model_fingerprint(model: OthelloGPT) -> str:
    """A short hash of the parameter values: dictionaries and caches record the model they fit."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict_tl().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().data)  # its buffer: no copy
    return digest.hexdigest()[:16]


def save_model(model: OthelloGPT, directory: Path, info: dict | None = None) -> None:
    """Write the two files atomically; ``info`` adds e.g. ``training`` and ``metrics``."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(directory / f"{MODEL_STEM}.safetensors", model.state_dict_tl())
    meta = {"config": model.cfg.to_dict(), **(info or {})}
    atomic_write_text(directory / f"{MODEL_STEM}.json", json.dumps(meta, indent=2) + "\n")


def load_state_dict(
    model: OthelloGPT, state: dict[str, torch.Tensor], source: str, strict: bool = False
) -> None:
    """Load a TransformerLens-keyed state dict, naming every missing or mismatched tensor (and,
    when ``strict``, every tensor the model has no place for)."""
    expected = model.state_dict_tl()
    if strict and (unknown := sorted(set(state) - set(expected))):
        raise WeightsError(
            f"{source} has tensors othello-tui's GPT has no place for (an unsupported architecture): "
            f"{', '.join(unknown[:3])}{' …' if len(unknown) > 3 else ''}"
        )
    missing = sorted(set(expected) - set(state))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or wrong:
        problems = (
            [f"missing {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}"] if missing else []
        ) + wrong[:5]
        raise WeightsError(f"{source} does not fit this model: " + "; ".join(problems))
    # the loaded tensors become the parameters (in the model's dtype): no second copy of the
    # weights, which for a 25M-parameter model costs as much as reading them
    tensors = {name: state[name].to(value.dtype) for name, value in expected.items()}
    model.load_state_dict(tensors, strict=False, assign=True)


def load_model(
    directory: Path = WEIGHTS_DIR, device: str | torch.device = "cpu", config: Path | None = None
) -> tuple[OthelloGPT, dict]:
    """The model and its JSON metadata; :class:`WeightsError` with a hint when anything is off.
    ``directory`` is our weights folder or one TransformerLens checkpoint file (with ``config``,
    a JSON of its config; see :func:`load_checkpoint_file`)."""
    directory = Path(directory)
    if directory.is_file():
        return load_checkpoint_file(directory, device, config)
    if config is not None:
        raise WeightsError(
            f"--config is for a single checkpoint file; {directory} is a folder (its config is "
            f"{MODEL_STEM}.json there)"
        )
    tensors_path, meta_path = directory / f"{MODEL_STEM}.safetensors", directory / f"{MODEL_STEM}.json"
    if not tensors_path.exists() or not meta_path.exists():
        raise WeightsError(f"no model weights in {directory}; {TRAIN_HINT}")
    meta = read_json(meta_path)
    try:
        cfg = ModelConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsError(f"{meta_path} has no usable model config ({error})") from None
    model = OthelloGPT(cfg, init=False)
    load_state_dict(model, read_tensors(tensors_path), str(tensors_path))
    return model.to(device).eval(), meta


def load_checkpoint_file(
    path: Path, device: str | torch.device = "cpu", config: Path | None = None
) -> tuple[OthelloGPT, dict]:
    """The model in a TransformerLens state-dict file and its metadata: ``{"config", "source",
    "config_source", "note"}``, where ``note`` (or None) says that the config was inferred."""
    state = read_checkpoint(path)
    cfg, config_source, note = checkpoint_config(path, state, config)
    model = OthelloGPT(cfg, init=False)
    load_state_dict(model, our_state(state, cfg, path), str(path), strict=True)
    meta = {"config": cfg.to_dict(), "source": str(path), "config_source": config_source, "note": note}
    return model.to(device).eval(), meta
