"""Dictionaries on disk (DESIGN.md §2): one SAELens folder per module, as sae-lens 6.x writes them,
so ``sae_lens.SAE.load_from_disk("weights/dictionaries/L3M")`` opens ours with no conversion and
:func:`load_dictionaries` opens theirs:

- ``{module}/sae_weights.safetensors``: ``W_enc`` [d_in, d_sae], ``b_enc`` [d_sae], ``W_dec``
  [d_sae, d_in], ``b_dec`` [d_in], and ``threshold`` [d_sae] for JumpReLU;
- ``{module}/cfg.json``: the fields of sae-lens's ``SAEConfig.to_dict()`` (``d_in``, ``d_sae``,
  ``dtype``, ``device``, ``apply_b_dec_to_input``, ``normalize_activations``,
  ``reshape_activations``, ``architecture``; ``k`` and ``rescale_acts_by_decoder_norm`` for topk)
  and ``metadata``: sae-lens's (``sae_lens_version``, ``hook_name``, ``model_name``, …) plus our
  provenance, ``module``, ``model_fingerprint`` (the model it was trained on), ``training``,
  ``metrics`` (and ``l1_coefficient`` for standard).

Older pairs ``{module}.json`` + ``{module}.safetensors`` (config and provenance at the top level)
are still read. Ours work on raw module outputs (``normalize_activations: "none"``): any scale used
in training is folded in; a loaded one that normalises each token keeps its setting when saved.

Ours encode exactly as sae-lens reads the folder (``h = W_enc·(x̃ − b_dec) + b_enc`` for both, x̃
the input after the folder's normalisation, :class:`~othello_tui.dictionary.sae.TokenNorm`):
``standard`` is ReLU(h) in both; ``topk`` keeps the k largest ReLU(h), sae-lens ReLU of the k
largest h: the same nonzero entries (the positive ones among the k largest; ties aside);
``jumprelu`` is h·[h > θ] here and ReLU(h)·[h > θ] there: the same once θ ≥ 0, which trained
thresholds are (exp of a parameter) and loaded ones are made to be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from othello_tui.dictionary.sae import (
    ARCHITECTURES,
    NORMALISATIONS,
    Dictionary,
    DictionaryConfig,
    hook_name_of,
    is_residual,
)
from othello_tui.game.generator import N_MOVES
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
CONFIG_FILE, WEIGHTS_FILE = "cfg.json", "sae_weights.safetensors"  # sae-lens's names
SAE_LENS_VERSION = "6.0.0"  # the on-disk format written: sae-lens 6.x
#: sae-lens runs these input normalisations as the identity at inference (sae.py,
#: ``_setup_activation_normalization``); old configs say true/false for expected_average_only_in/none
IDENTITY_NORMALISATIONS = ("none", None, "expected_average_only_in", False, True)
#: sae-lens folds it into the weights at the end of training (``fold_activation_whitening``, then
#: "none"); a folder still marked with it is a training checkpoint whose whitening statistics live in
#: the trainer's files, and sae-lens itself runs it as the identity, not as trained
WHITENING = "covariance_whitening"
_OLD_NAME = re.compile(r"L(\d+)([AMR])\.json")
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


def saelens_config(dictionary: Dictionary, info: dict | None = None) -> dict:
    """``cfg.json`` of ``dictionary``, key for key what sae-lens 6.x's ``SAEConfig.to_dict()``
    writes; ``info`` (our provenance) joins ``metadata``."""
    cfg = dictionary.cfg
    topk = {"k": cfg.k, "rescale_acts_by_decoder_norm": False} if cfg.architecture == "topk" else {}
    return {
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": str(dictionary.W_enc.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": cfg.normalize_activations,
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": SAE_LENS_VERSION,
            "sae_lens_training_version": None,  # trained by othello-tui, not by sae-lens
            "model_name": "othello-gpt",
            "model_class_name": "HookedTransformer",
            "hook_name": cfg.hook_name,
            "hook_head_index": None,
            "prepend_bos": False,
            "context_size": N_MOVES - 1,  # moves 1…59 are fed; move 60 predicts nothing
            "module": cfg.module,
            **({"l1_coefficient": cfg.l1_coefficient} if cfg.architecture == "standard" else {}),
            **(info or {}),
        },
        **topk,
        "architecture": cfg.architecture,
    }


def save_dictionary(dictionary: Dictionary, directory: Path, info: dict | None = None) -> Path:
    """Write the SAELens folder ``directory/{module}`` (each file atomically) and return it;
    an older ``{module}.json`` + ``.safetensors`` pair there is replaced. ``info`` is our provenance
    in ``metadata``, normally ``model_fingerprint``, ``training`` and ``metrics``."""
    cfg = dictionary.cfg
    directory = Path(directory)
    folder = directory / cfg.module
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(dictionary, name) for name in _tensor_shapes(cfg)}
    atomic_save_tensors(folder / WEIGHTS_FILE, tensors)
    atomic_write_text(folder / CONFIG_FILE, json.dumps(saelens_config(dictionary, info), indent=2) + "\n")
    for suffix in (".json", ".safetensors"):
        (directory / f"{cfg.module}{suffix}").unlink(missing_ok=True)
    return folder


def _check_fits(cfg: DictionaryConfig, model: OthelloGPT | None, path: Path) -> None:
    layer = int(cfg.module[1:-1])
    if model is not None and (cfg.d_in != model.cfg.d_model or layer >= model.cfg.n_layers):
        raise WeightsError(
            f"{path} (d_in {cfg.d_in}, layer {layer}) does not fit the model "
            f"(d_model {model.cfg.d_model}, {model.cfg.n_layers} layers); {TRAIN_HINT}"
        )


def _check_fingerprint(built_for: object, fingerprint: str | None, path: Path) -> None:
    if fingerprint is not None and built_for != fingerprint:
        raise WeightsError(
            f"{path} was trained for another model (fingerprint {built_for}, this model is "
            f"{fingerprint}); {TRAIN_HINT}"
        )


def _read_config(path: Path) -> dict:
    meta = read_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("metadata") or {}, dict):
        raise WeightsError(f"{path} is no dictionary config (a JSON object is expected)")
    return meta


def _load_pair(directory: Path, module: str, model: OthelloGPT | None, fingerprint: str | None) -> Dictionary:
    """An older ``{module}.json`` + ``{module}.safetensors`` pair of ours."""
    meta_path, tensors_path = directory / f"{module}.json", directory / f"{module}.safetensors"
    meta = _read_config(meta_path)
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
    _check_fingerprint(meta.get("model_fingerprint"), fingerprint, meta_path)
    return _build(cfg, read_tensors(tensors_path), tensors_path)


def _build(cfg: DictionaryConfig, tensors: dict[str, torch.Tensor], path: Path) -> Dictionary:
    """A dictionary holding ``tensors``, which must have the shapes ``cfg`` gives them. JumpReLU
    thresholds are raised to 0 at least, where ours and sae-lens's rule agree (module docstring)."""
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
    with torch.no_grad():
        dictionary.threshold.clamp_(min=0)
    return dictionary.eval()


def module_of_hook(hook_name: str) -> str | None:
    """``"blocks.3.hook_mlp_out" -> "L3M"``, ``"blocks.3.hook_resid_post" -> "L3R"``; None for a
    hook that no dictionary of this app reads."""
    match = _HOOK_NAME.fullmatch(hook_name)
    return None if match is None else f"L{match[1]}{match[2][0].upper()}"


def _module_of(cfg_path: Path, meta: dict) -> str:
    """The module whose output a SAELens config's hook names (6.x ``metadata.hook_name``, else
    ``hook_name``, else a pre-6.0 ``hook_point``)."""
    hook = (meta.get("metadata") or {}).get("hook_name", meta.get("hook_name", meta.get("hook_point")))
    module = module_of_hook(hook) if isinstance(hook, str) else None
    if module is None:
        raise WeightsError(
            f"{cfg_path}: hook {hook!r} is no module output this app reads "
            "(blocks.<layer>.hook_attn_out, hook_mlp_out or hook_resid_post)"
        )
    return module


def _architecture(meta: dict) -> tuple[str, Any]:
    """(architecture, k as the file has it) of a SAELens config. One from before 6.0 may have no
    architecture (standard) or say TopK as ``activation_fn: "topk"`` with ``activation_fn_kwargs.k``,
    as sae-lens's ``handle_pre_6_0_config`` reads it."""
    kwargs = meta.get("activation_fn_kwargs")
    old_k = kwargs.get("k") if isinstance(kwargs, dict) else None
    if meta.get("activation_fn", meta.get("activation_fn_str")) == "topk" and old_k is not None:
        return "topk", old_k
    architecture = meta.get("architecture", "standard")
    return architecture, meta.get("k") if architecture == "topk" else None


def _unsupported(meta: dict) -> list[str]:
    """What in a SAELens config would make its encoding other than ours."""
    architecture, _ = _architecture(meta)
    normalisation = meta.get("normalize_activations", "none")
    unsupported = []
    if architecture not in ARCHITECTURES:
        unsupported.append(f"architecture {architecture!r} (supported: {', '.join(ARCHITECTURES)})")
    if normalisation == WHITENING:
        unsupported.append(
            f"normalize_activations {WHITENING!r} (a training checkpoint: the input whitening it was "
            "trained on is not in its cfg.json or weights; sae-lens folds it into the final ones)"
        )
    elif normalisation not in IDENTITY_NORMALISATIONS + NORMALISATIONS:
        unsupported.append(f"normalize_activations {normalisation!r} (unknown to sae-lens 6.x)")
    if meta.get("reshape_activations", "none") not in ("none", None):
        unsupported.append(f"reshape_activations {meta['reshape_activations']!r} (supported: none)")
    if meta.get("rescale_acts_by_decoder_norm"):
        unsupported.append("rescale_acts_by_decoder_norm true")
    return unsupported


def load_saelens(folder: Path, model: OthelloGPT | None = None, fingerprint: str | None = None) -> Dictionary:
    """A SAELens folder (``cfg.json`` + ``sae_weights.safetensors``, sae-lens 6.x or older; ours
    or anyone's) as the dictionary of the module its hook names, whatever the folder is called.

    ``apply_b_dec_to_input: false`` (``h = W_enc·x̃ + b_enc``) is folded into ours exactly:
    ``h = W_enc·(x̃ − b_dec) + (b_enc + W_enc·b_dec)``. Input normalisations sae-lens runs as the
    identity are read as such; ``constant_norm_rescale`` and ``layer_norm`` are per-token scales
    (:class:`~othello_tui.dictionary.sae.TokenNorm`), and layer_norm's centring ``x − mean(x) = P·x``
    (``P = I − 11ᵀ/d``) is folded into the encoder: ``W_enc·(s·P·x − b_dec) = (P·W_enc)·(s·x − b_dec)
    − (W_enc − P·W_enc)·b_dec``, the last term going into b_enc. Covariance whitening, decoder-norm
    rescaling and reshaping are refused: they would make the pre-activation something else. A
    ``metadata.model_fingerprint`` (our provenance there) must match ``model`` (``fingerprint``:
    its ``model_fingerprint``, when the caller has it)."""
    cfg_path, tensors_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    meta = _read_config(cfg_path)
    module = _module_of(cfg_path, meta)
    if unsupported := _unsupported(meta):
        raise WeightsError(f"{cfg_path}: not supported: " + "; ".join(unsupported))
    metadata = meta.get("metadata") or {}
    architecture, k = _architecture(meta)
    normalisation = meta.get("normalize_activations", "none")
    try:
        cfg = DictionaryConfig(
            module,
            hook_name_of(module),
            architecture,
            int(meta["d_in"]),
            int(meta["d_sae"]),
            k,
            metadata.get("l1_coefficient") if architecture == "standard" else None,
            normalisation if normalisation in NORMALISATIONS else "none",
        )
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsError(f"{cfg_path} has no usable dictionary config ({error})") from None
    if cfg.architecture == "topk" and not isinstance(cfg.k, int):
        raise WeightsError(f"{cfg_path} is a topk dictionary without an integer k")
    if metadata.get("module", module) != module:
        raise WeightsError(f"{cfg_path} names module {metadata['module']} but hook {cfg.hook_name}")
    _check_fits(cfg, model, cfg_path)
    if "model_fingerprint" in metadata and model is not None:
        _check_fingerprint(metadata["model_fingerprint"], fingerprint or model_fingerprint(model), cfg_path)
    tensors = read_tensors(tensors_path)
    if architecture != "jumprelu":
        tensors.pop("threshold", None)
    dictionary = _build(cfg, tensors, tensors_path)
    with torch.no_grad():
        if meta.get("apply_b_dec_to_input", True) is False:
            dictionary.b_enc.add_(dictionary.b_dec @ dictionary.W_enc)
        if cfg.normalize_activations == "layer_norm":
            centred_DF = dictionary.W_enc - dictionary.W_enc.mean(0)  # P·W_enc
            dictionary.b_enc.add_(dictionary.b_dec @ (centred_DF - dictionary.W_enc))
            dictionary.W_enc.copy_(centred_DF)
    return dictionary


def _folders(directory: Path) -> dict[str, Path]:
    """The SAELens folders in ``directory`` by the module their hook names; two for one module,
    or one beside an older ``{module}.json`` pair, are refused."""
    found: dict[str, Path] = {}
    for folder in sorted(path for path in directory.iterdir() if (path / CONFIG_FILE).is_file()):
        module = _module_of(folder / CONFIG_FILE, _read_config(folder / CONFIG_FILE))
        if module in found or (directory / f"{module}.json").is_file():
            raise WeightsError(f"{directory} holds two dictionaries for {module} (one in {folder.name}/)")
        found[module] = folder
    return found


def _modules_in(directory: Path) -> tuple[dict[str, Path], set[str]]:
    """(SAELens folders by module, modules with an older pair) in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightsError(f"no dictionaries in {directory} (no such folder); {TRAIN_HINT}")
    pairs = {path.name[:-5] for path in directory.iterdir() if _OLD_NAME.fullmatch(path.name)}
    return _folders(directory), pairs


def load_dictionaries(
    directory: Path, model: OthelloGPT | None = None, modules: Iterable[str] | None = None
) -> dict[str, Dictionary]:
    """The named modules' dictionaries (default: every module found), bottom to top: SAELens
    subfolders (any name, :func:`load_saelens`), or older ``{module}.json`` + ``.safetensors`` pairs.

    Raises :class:`WeightsError` for a missing folder or dictionary, an unreadable or truncated
    file, tensors of the wrong shape, two dictionaries for one module, or — when ``model`` is given
    — one of ours trained for another model (its ``model_fingerprint`` differs from
    ``model_fingerprint(model)``)."""
    directory = Path(directory)
    folders, pairs = _modules_in(directory)
    if modules is None:
        modules = sorted(pairs | set(folders), key=lambda m: (int(m[1:-1]), m[-1]))
        if not modules:
            raise WeightsError(f"no dictionaries in {directory}; {TRAIN_HINT}")
    fingerprint = model_fingerprint(model) if model is not None else None
    loaded = {}
    for module in modules:
        if module in folders:
            loaded[module] = load_saelens(folders[module], model, fingerprint)
        elif module in pairs:
            loaded[module] = _load_pair(directory, module, model, fingerprint)
        else:
            raise WeightsError(f"no dictionary for {module} in {directory}; {TRAIN_HINT}")
    return loaded


def provenance_files(directory: Path, modules: Iterable[str]) -> dict[str, Path]:
    """Where each module's provenance (``training``, ``metrics``) is kept in ``directory``: the
    ``cfg.json`` of our SAELens folder, or an older ``{module}.json``. :class:`WeightsError` names
    the modules whose folder someone else wrote (no ``metadata.module`` of ours)."""
    folders, _ = _modules_in(directory)
    files = {m: folders[m] / CONFIG_FILE if m in folders else Path(directory) / f"{m}.json" for m in modules}
    foreign = [
        m for m in files if m in folders and "module" not in (_read_config(files[m]).get("metadata") or {})
    ]
    if foreign:
        raise WeightsError(
            f"{', '.join(foreign)}: SAELens folders written elsewhere (no othello-tui metadata)"
        )
    return files


def record_metrics(path: Path, metrics: dict) -> None:
    """Replace the metrics in a file of :func:`provenance_files`, atomically: ``metadata.metrics``
    of a ``cfg.json``, the top-level ``metrics`` of an older ``{module}.json``."""
    meta = _read_config(path)
    (meta["metadata"] if path.name == CONFIG_FILE else meta)["metrics"] = metrics
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


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
