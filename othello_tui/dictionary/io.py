"""Dictionaries on disk, one pair of files per module (DESIGN.md §2, SAELens conventions), or
SAELens folders (:func:`load_saelens`):

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

from othello_tui.dictionary.sae import ARCHITECTURES, Dictionary, DictionaryConfig, hook_name_of, is_residual
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
RESIDUAL_SUBDIR = "residual"  # WEIGHTS/residual: the residual-stream dictionaries L0R … L5R
_MODULE_NAME = re.compile(r"L(\d+)([AMR])")
_HOOK_NAME = re.compile(r"blocks\.(\d+)\.hook_(attn_out|mlp_out|resid_post)")


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


def _check_fits(cfg: DictionaryConfig, model: OthelloGPT | None, path: Path) -> None:
    layer = int(cfg.module[1:-1])
    if model is not None and (cfg.d_in != model.cfg.d_model or layer >= model.cfg.n_layers):
        raise WeightsError(
            f"{path} (d_in {cfg.d_in}, layer {layer}) does not fit the model "
            f"(d_model {model.cfg.d_model}, {model.cfg.n_layers} layers); {TRAIN_HINT}"
        )


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
    _check_fits(cfg, model, meta_path)
    if fingerprint is not None and meta.get("model_fingerprint") != fingerprint:
        raise WeightsError(
            f"{meta_path} was trained for another model (fingerprint {meta.get('model_fingerprint')}, "
            f"this model is {fingerprint}); {TRAIN_HINT}"
        )
    return _build(cfg, read_tensors(tensors_path), tensors_path)


def _build(cfg: DictionaryConfig, tensors: dict[str, torch.Tensor], path: Path) -> Dictionary:
    """A dictionary holding ``tensors``, which must have the shapes ``cfg`` gives them."""
    problems = [
        f"{name} {tuple(tensors[name].shape) if name in tensors else 'missing'} (expected {shape})"
        for name, shape in _tensor_shapes(cfg).items()
        if name not in tensors or tuple(tensors[name].shape) != shape
    ]
    if problems:
        raise WeightsError(f"{path} does not match its config: " + "; ".join(problems))
    dictionary = Dictionary(cfg, init=False)
    # the tensors read become the weights (in the dictionary's dtype): no second copy of them
    loaded = {name: tensors[name].to(getattr(dictionary, name).dtype) for name in _tensor_shapes(cfg)}
    dictionary.load_state_dict(loaded, strict=False, assign=True)
    return dictionary.eval()


def module_of_hook(hook_name: str) -> str | None:
    """``"blocks.3.hook_mlp_out" -> "L3M"``, ``"blocks.3.hook_resid_post" -> "L3R"``; None for a
    hook that no dictionary of this app reads."""
    match = _HOOK_NAME.fullmatch(hook_name)
    return None if match is None else f"L{match[1]}{match[2][0].upper()}"


def load_saelens(folder: Path, model: OthelloGPT | None = None) -> Dictionary:
    """A SAELens folder (``cfg.json`` + ``sae_weights.safetensors``, sae-lens 6.x or older) as the
    dictionary of the module its hook names, whatever the folder is called.

    ``apply_b_dec_to_input: false`` (``h = W_enc·x + b_enc``) is folded into ours exactly:
    ``h = W_enc·(x − b_dec) + (b_enc + W_enc·b_dec)``. Any input normalisation and decoder-norm
    rescaling are refused: they would make the pre-activation something else. A
    ``metadata.model_fingerprint`` (our provenance there) must match ``model``."""
    cfg_path, tensors_path = folder / "cfg.json", folder / "sae_weights.safetensors"
    meta = read_json(cfg_path)
    hook = (meta.get("metadata") or {}).get("hook_name", meta.get("hook_name", meta.get("hook_point")))
    module = module_of_hook(hook) if isinstance(hook, str) else None
    if module is None:
        raise WeightsError(
            f"{cfg_path}: hook {hook!r} is no module output this app reads "
            "(blocks.<layer>.hook_attn_out, hook_mlp_out or hook_resid_post)"
        )
    architecture = meta.get("architecture", "standard")
    unsupported = []
    if architecture not in ARCHITECTURES:
        unsupported.append(f"architecture {architecture!r} (supported: {', '.join(ARCHITECTURES)})")
    if meta.get("normalize_activations", "none") not in ("none", None):
        unsupported.append(f"normalize_activations {meta['normalize_activations']!r} (supported: none)")
    if meta.get("rescale_acts_by_decoder_norm"):
        unsupported.append("rescale_acts_by_decoder_norm true")
    if unsupported:
        raise WeightsError(f"{cfg_path}: not supported: " + "; ".join(unsupported))
    try:
        cfg = DictionaryConfig(
            module, hook_name_of(module), architecture, int(meta["d_in"]), int(meta["d_sae"]), meta.get("k")
        )
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsError(f"{cfg_path} has no usable dictionary config ({error})") from None
    if cfg.architecture == "topk" and not isinstance(cfg.k, int):
        raise WeightsError(f"{cfg_path} is a topk dictionary without an integer k")
    _check_fits(cfg, model, cfg_path)
    built_for = (meta.get("metadata") or {}).get("model_fingerprint")
    if model is not None and built_for is not None and built_for != model_fingerprint(model):
        raise WeightsError(
            f"{cfg_path} was trained for another model (fingerprint {built_for}, this model is "
            f"{model_fingerprint(model)})"
        )
    tensors = read_tensors(tensors_path)
    if architecture != "jumprelu":
        tensors.pop("threshold", None)
    dictionary = _build(cfg, tensors, tensors_path)
    with torch.no_grad():
        if meta.get("apply_b_dec_to_input", True) is False:
            dictionary.b_enc.add_(dictionary.b_dec @ dictionary.W_enc)
        # SAELens: ReLU(h)·[h > θ]; ours h·[h > θ]: the same for every h once θ ≥ 0
        dictionary.threshold.clamp_(min=0)
    return dictionary


def load_dictionaries(
    directory: Path, model: OthelloGPT | None = None, modules: list[str] | None = None
) -> dict[str, Dictionary]:
    """The named modules' dictionaries (default: every module found), bottom to top, in either
    layout: our ``{module}.json`` + ``.safetensors`` pairs, or SAELens subfolders (any name,
    :func:`load_saelens`).

    Raises :class:`WeightsError` for a missing folder or file, an unreadable or truncated file,
    tensors of the wrong shape, two dictionaries for one module, or — when ``model`` is given — one
    of ours trained for another model (its ``model_fingerprint`` differs from
    ``model_fingerprint(model)``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightsError(f"no dictionaries in {directory} (no such folder); {TRAIN_HINT}")
    ours = {path.stem for path in directory.iterdir() if _MODULE_NAME.fullmatch(path.stem)}
    theirs: dict[str, Dictionary] = {}
    for folder in sorted(path for path in directory.iterdir() if (path / "cfg.json").is_file()):
        dictionary = load_saelens(folder, model)
        module = dictionary.cfg.module
        if module in theirs or module in ours:
            raise WeightsError(f"{directory} holds two dictionaries for {module} (one in {folder.name}/)")
        theirs[module] = dictionary
    if modules is None:
        modules = sorted(ours | set(theirs), key=lambda m: (int(m[1:-1]), m[-1]))
        if not modules:
            raise WeightsError(f"no dictionaries in {directory}; {TRAIN_HINT}")
    fingerprint = model_fingerprint(model) if model is not None else None
    return {
        module: theirs[module] if module in theirs else _load_one(directory, module, model, fingerprint)
        for module in modules
    }


def load_residual(weights: Path, model: OthelloGPT | None = None) -> dict[str, Dictionary]:
    """The residual-stream dictionaries (``L0R`` …) in ``weights/residual``, bottom to top; none
    when that folder does not exist. They live apart from the module-output dictionaries, so
    ``--dictionaries`` and the node decomposition never see them (DESIGN.md §2, §3.9). Raises
    :class:`WeightsError` like :func:`load_dictionaries`, and for a module-output dictionary there."""
    directory = Path(weights) / RESIDUAL_SUBDIR
    if not directory.is_dir():
        return {}
    loaded = load_dictionaries(directory, model)
    if wrong := [module for module in loaded if not is_residual(module)]:
        raise WeightsError(
            f"{directory} holds module-output dictionaries ({', '.join(wrong)}); they belong in "
            f"{Path(weights) / 'dictionaries'}"
        )
    return loaded
