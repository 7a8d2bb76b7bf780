"""Othello-GPTs as TransformerLens users keep them: one file holding ``HookedTransformer.state_dict()``.

The file is ``.safetensors``, or ``.pth``/``.pt`` read with ``torch.load(weights_only=True)``
(tensors and plain containers only: a pickle that would build objects or run code is refused,
never run). Its config is, in this order: the JSON named by ``--config``, the JSON beside the file
with the same stem (``model.pth`` → ``model.json``), or inferred from the tensors' shapes (and
the caller says so). Either JSON holds ``HookedTransformerConfig`` fields, bare or under
``"config"``.

``normalization_type="LNPre"`` checkpoints (LayerNorm weights folded into the next layer) have no
``ln1``/``ln2``/``ln_final`` tensors: they are filled with γ = 1 and β = 0 here, so the model and
every decomposition in ``circuits/`` are the ones of an ``LN`` model. The attention buffers
``mask`` and ``IGNORE`` are not weights and are dropped. Anything else that changes the maths (see
``_UNSUPPORTED``) is refused with a one-line :class:`WeightsError`.

Facts: ``../shared/reference/formats.md`` (TransformerLens checkpoints).
"""

from __future__ import annotations

import json
import math
import pickle
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from othello_tui.model.config import NORMALIZATIONS, ModelConfig
from othello_tui.model.errors import WeightsError

SUFFIXES = (".safetensors", ".pth", ".pt")
BUFFERS = ("attn.mask", "attn.IGNORE")  # TransformerLens's causal mask and its -inf: not weights
N_CTX = (59, 60)  # 59: the last move is never an input (Li et al.'s model); 60: ours
D_VOCAB = 61  # token 0 (padding) and the 60 moves: our tokens are theirs (formats.md)
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")

#: HookedTransformerConfig fields whose non-default values change the maths: (field, supported?)
_UNSUPPORTED = (
    ("act_fn", lambda v: v == "gelu"),
    ("normalization_type", lambda v: v in NORMALIZATIONS),
    ("positional_embedding_type", lambda v: v == "standard"),
    ("attention_dir", lambda v: v == "causal"),
    ("attn_only", lambda v: not v),
    ("parallel_attn_mlp", lambda v: not v),
    ("gated_mlp", lambda v: not v),
    ("final_rms", lambda v: not v),
    ("use_local_attn", lambda v: not v),
    ("use_qk_norm", lambda v: not v),
    ("use_normalization_before_and_after", lambda v: not v),
    ("scale_attn_by_inverse_layer_idx", lambda v: not v),
    ("use_attn_scale", lambda v: v),
    ("n_key_value_heads", lambda v: v is None),
    ("num_experts", lambda v: v is None),
    ("output_logits_soft_cap", lambda v: v is None or v <= 0),
    ("attn_scores_soft_cap", lambda v: v is None or v <= 0),
)


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``.pth``/``.pt`` state dict (float tensors as they are)."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise WeightsError(f"{path}: a model file is {', '.join(SUFFIXES)} (a TransformerLens state dict)")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightsError(f"{path} is not a readable safetensors file ({error})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise WeightsError(
                f"{path} holds more than tensors (pickled objects or code): refused, never unpickled;"
                " save model.state_dict() alone, or convert it to .safetensors"
            ) from None
        raise WeightsError(f"{path} is not a readable torch file ({_first_line(error)})") from None
    except Exception as error:  # garbage makes the restricted unpickler raise
        # anything (IndexError, KeyError, …): whatever it is, this file cannot be read
        raise WeightsError(f"{path} is not a readable torch file ({_first_line(error)})") from None
    return _tensors_only(state, path)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _tensors_only(state: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict, refusing anything that is not a flat mapping of names to tensors."""
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict (name -> tensor)")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor;"
                " save model.state_dict() alone (a state dict of tensors)"
            )
    return dict(state)


def checkpoint_config(
    path: Path, state: Mapping[str, torch.Tensor], config: Path | None = None
) -> tuple[ModelConfig, str, str | None]:
    """(config, where it came from, a note when it was inferred) for the checkpoint at ``path``:
    ``config`` (a JSON file), else the JSON beside ``path``, else the tensors' shapes."""
    inferred = infer_config(state, path)
    json_path = Path(config) if config is not None else Path(path).with_suffix(".json")
    if config is None and not json_path.exists():
        note = (
            f"config inferred from the tensor shapes of {Path(path).name} ({describe(inferred)}; act_fn "
            f"'gelu' assumed): put its HookedTransformerConfig in {json_path.name} beside it, or pass --config"
        )
        return inferred, "inferred from the tensor shapes", note
    return tl_config(read_config_json(json_path), inferred, json_path), str(json_path), None


def read_config_json(path: Path) -> dict:
    """``HookedTransformerConfig`` fields from a JSON file: bare, or under ``"config"``."""
    if not path.exists():
        raise WeightsError(f"{path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsError(f"{path} is not valid JSON ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]
    if not isinstance(data, dict):
        raise WeightsError(f"{path} holds no HookedTransformerConfig fields (a JSON object)")
    return data


def tl_config(data: Mapping, shapes: ModelConfig, source: Path | str) -> ModelConfig:
    """Our config from ``HookedTransformerConfig`` fields; a field that is absent or unset
    (TransformerLens's ``-1``/``None``: derived) takes its value from the tensor shapes
    (``shapes``). Raises :class:`WeightsError` naming the first unsupported setting."""
    for field, supported in _UNSUPPORTED:
        if field in data and not supported(data[field]):
            raise WeightsError(
                f"unsupported model in {source}: {field}={data[field]!r} (othello-tui reads pre-LayerNorm "
                "GPTs: exact GELU, LN or LNPre, learned positions, causal attention)"
            )
    known = {f.name for f in fields(ModelConfig)}
    given = {k: v for k, v in data.items() if k in known and v is not None and v != -1}
    cfg = ModelConfig(**{**shapes.to_dict(), **given})
    scale = data.get("attn_scale", -1.0)
    if scale is not None and scale > 0 and not math.isclose(scale, math.sqrt(cfg.d_head), rel_tol=1e-6):
        raise WeightsError(f"unsupported model in {source}: attn_scale={scale} (only sqrt(d_head))")
    return check_config(cfg, source)


def check_config(cfg: ModelConfig, source: Path | str) -> ModelConfig:
    """``cfg`` if othello-tui can run it on Othello tokens; else a one-line :class:`WeightsError`."""
    if cfg.n_ctx not in N_CTX:
        raise WeightsError(f"unsupported model in {source}: n_ctx={cfg.n_ctx} (59 or 60 moves)")
    if cfg.d_vocab != D_VOCAB or cfg.d_vocab_out != D_VOCAB:
        raise WeightsError(
            f"unsupported model in {source}: d_vocab={cfg.d_vocab}, d_vocab_out={cfg.d_vocab_out}"
            f" (Othello-GPT tokens: {D_VOCAB})"
        )
    if cfg.act_fn != "gelu" or cfg.normalization_type not in NORMALIZATIONS:
        raise WeightsError(
            f"unsupported model in {source}: act_fn={cfg.act_fn!r}, normalization_type={cfg.normalization_type!r}"
        )
    return cfg


def infer_config(state: Mapping[str, torch.Tensor], source: Path | str) -> ModelConfig:
    """The config the tensors' shapes imply (``act_fn`` cannot be seen: 'gelu' is assumed)."""
    needed = ("embed.W_E", "pos_embed.W_pos", "unembed.W_U", "blocks.0.attn.W_Q", "blocks.0.mlp.W_in")
    if missing := [k for k in needed if k not in state]:
        raise WeightsError(
            f"{source} is not a TransformerLens Othello-GPT state dict: no {', '.join(missing)}"
        )
    n_heads, d_model, d_head = state["blocks.0.attn.W_Q"].shape
    cfg = ModelConfig(
        n_layers=1 + max(int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))),
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_head,
        d_mlp=state["blocks.0.mlp.W_in"].shape[1],
        d_vocab=state["embed.W_E"].shape[0],
        d_vocab_out=state["unembed.W_U"].shape[1],
        n_ctx=state["pos_embed.W_pos"].shape[0],
        normalization_type="LN" if "blocks.0.ln1.w" in state else "LNPre",
        model_name=Path(source).stem,
    )
    return check_config(cfg, source)


def describe(cfg: ModelConfig) -> str:
    return (
        f"{cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads × d_head {cfg.d_head}, "
        f"d_mlp {cfg.d_mlp}, n_ctx {cfg.n_ctx}, {cfg.normalization_type}"
    )


def our_state(
    state: Mapping[str, torch.Tensor], cfg: ModelConfig, source: Path | str
) -> dict[str, torch.Tensor]:
    """The checkpoint as our model's parameters: buffers dropped and, for LNPre, LayerNorm filled
    with γ = 1, β = 0 (``LN(x) = (x − mean) / σ`` exactly, the same function)."""
    out = {k: v for k, v in state.items() if not k.endswith(BUFFERS)}
    norms = [f"blocks.{layer}.ln{i}" for layer in range(cfg.n_layers) for i in (1, 2)] + ["ln_final"]
    if cfg.normalization_type == "LNPre":
        if present := [f"{n}.{p}" for n in norms for p in "wb" if f"{n}.{p}" in out]:
            raise WeightsError(f"{source}: the config says LNPre, yet the file has {present[0]} (LN)")
        for name in norms:
            out[f"{name}.w"] = torch.ones(cfg.d_model)
            out[f"{name}.b"] = torch.zeros(cfg.d_model)
    return out
