"""Othello-GPT: a hooked pre-LayerNorm GPT in the spirit of nanoGPT's ``model.py``.

Parameters carry TransformerLens names and shapes, so ``state_dict()`` *is* a TransformerLens
``HookedTransformer`` state dict. Hooks are identity modules placed where each value is used,
named like TransformerLens's (``blocks.0.attn.hook_pattern``).

Shape legend: B batch, T position (query), S source position (key), D d_model, H head,
E d_head, M d_mlp, V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from einops import einsum
from torch import Tensor, nn

from othello_tui.model.config import ModelConfig


class HookPoint(nn.Module):
    """Identity; a place to read (cache) or replace (intervene) a value by name."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class LayerNorm(nn.Module):
    """``w ⊙ (x − mean) / scale + b`` with ``scale = sqrt(var + eps)`` exposed as a hook, since
    the circuit analysis freezes it (DESIGN.md §3.2)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.eps = cfg.eps
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.b = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_scale = HookPoint()  # [B, T, 1]
        self.hook_normalized = HookPoint()  # [B, T, D]

    def forward(self, x: Tensor) -> Tensor:
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale * self.w + self.b)


class Attention(nn.Module):
    # registered in __init__ (the buffer, and the hooks through setattr); declared for type checkers
    mask: Tensor
    hook_q: HookPoint
    hook_k: HookPoint
    hook_v: HookPoint
    hook_attn_scores: HookPoint
    hook_pattern: HookPoint
    hook_z: HookPoint

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        H, D, E = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q, self.W_K, self.W_V = (nn.Parameter(torch.empty(H, D, E)) for _ in range(3))
        self.W_O = nn.Parameter(torch.empty(H, E, D))
        self.b_Q, self.b_K, self.b_V = (nn.Parameter(torch.zeros(H, E)) for _ in range(3))
        self.b_O = nn.Parameter(torch.zeros(D))
        self.register_buffer("mask", torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool)))
        self.attn_scale = math.sqrt(E)
        for name in ("q", "k", "v", "attn_scores", "pattern", "z"):
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, x_BTD: Tensor, past: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``past``: the keys and values [B, P, H, E] of P earlier positions; ``x_BTD`` then holds
        the T positions after them (the hooks see those alone, as TransformerLens's do)."""
        q_BTHE = self.hook_q(_per_head(x_BTD, self.W_Q) + self.b_Q)
        k_BSHE = self.hook_k(_per_head(x_BTD, self.W_K) + self.b_K)
        v_BSHE = self.hook_v(_per_head(x_BTD, self.W_V) + self.b_V)
        if past is not None:  # causal: the earlier positions' keys and values are all they give
            k_BSHE, v_BSHE = torch.cat([past[0], k_BSHE], 1), torch.cat([past[1], v_BSHE], 1)
        scores_BHTS = einsum(q_BTHE, k_BSHE, "b t h e, b s h e -> b h t s") / self.attn_scale
        T, S = x_BTD.shape[1], k_BSHE.shape[1]
        scores_BHTS = scores_BHTS.masked_fill(~self.mask[S - T : S, :S], float("-inf"))
        pattern_BHTS = self.hook_pattern(F.softmax(self.hook_attn_scores(scores_BHTS), dim=-1))
        z_BTHE = self.hook_z(einsum(pattern_BHTS, v_BSHE, "b h t s, b s h e -> b t h e"))
        return einsum(z_BTHE, self.W_O, "b t h e, h e d -> b t d") + self.b_O


def _per_head(x_BTD: Tensor, W_HDE: Tensor) -> Tensor:
    """``x @ W[h]`` for every head h, [B, T, H, E]: one batched matmul over the heads reads W as
    stored, where ``einsum`` would first copy it to [D, H·E], a second pass over weights that are
    most of the work of a one-position pass (measured 7–10% of it on the public 512-wide model)."""
    (B, T, D), (H, _, E) = x_BTD.shape, W_HDE.shape
    x_HND = x_BTD.reshape(1, B * T, D).expand(H, B * T, D)  # a view: no copy per head
    return torch.bmm(x_HND, W_HDE).view(H, B, T, E).permute(1, 2, 0, 3)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_pre = HookPoint()  # [B, T, M]
        self.hook_post = HookPoint()

    def forward(self, x_BTD: Tensor) -> Tensor:
        pre_BTM = self.hook_pre(x_BTD @ self.W_in + self.b_in)
        return self.hook_post(F.gelu(pre_BTM)) @ self.W_out + self.b_out


class Block(nn.Module):
    # registered in __init__ through setattr; declared for type checkers
    hook_resid_pre: HookPoint
    hook_attn_out: HookPoint
    hook_resid_mid: HookPoint
    hook_mlp_out: HookPoint
    hook_resid_post: HookPoint

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.attn = LayerNorm(cfg), Attention(cfg)
        self.ln2, self.mlp = LayerNorm(cfg), MLP(cfg)
        for name in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"):
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, resid_BTD: Tensor, past: tuple[Tensor, Tensor] | None = None) -> Tensor:
        resid_BTD = self.hook_resid_pre(resid_BTD)
        attn_out = self.hook_attn_out(self.attn(self.ln1(resid_BTD), past))
        resid_BTD = self.hook_resid_mid(resid_BTD + attn_out)
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(resid_BTD)))
        return self.hook_resid_post(resid_BTD + mlp_out)


class Embed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))


class PosEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))


class Unembed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab_out))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab_out))


class OthelloGPT(nn.Module):
    def __init__(self, cfg: ModelConfig, init: bool = True):
        """``init=False`` leaves the weight matrices uninitialised, for weights loaded next."""
        super().__init__()
        self.cfg = cfg
        self.embed, self.pos_embed = Embed(cfg), PosEmbed(cfg)
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final = LayerNorm(cfg)
        self.unembed = Unembed(cfg)
        if init:
            self.reset_parameters()

    def block(self, layer: int) -> Block:
        """``blocks[layer]`` typed as a :class:`Block` (``nn.ModuleList`` items are plain Modules)."""
        return cast(Block, self.blocks[layer])

    def layer_norm(self, name: str) -> LayerNorm:
        """The LayerNorm named ``name`` (``blocks.1.ln2``, ``ln_final``)."""
        module = self.get_submodule(name)
        if not isinstance(module, LayerNorm):
            raise KeyError(f"{name!r} is not a LayerNorm")
        return module

    def reset_parameters(self, seed: int | None = None) -> None:
        """GPT-2 style: N(0, 0.02), residual-writing matrices scaled by 1/sqrt(2·n_layers)."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        for name, p in self.named_parameters():
            if name.endswith(("W_O", "W_out")):
                std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
            elif name.split(".")[-1].startswith("W_"):
                std = 0.02
            else:
                continue
            with torch.no_grad():
                p.normal_(0.0, std, generator=generator)

    def forward(self, tokens_BT: Tensor, past: KVCache | None = None) -> Tensor:
        """Logits [B, T, V] for move tokens [B, T]; with ``past``, those of the T positions that
        follow its P positions (``tokens_BT`` holds only the new moves): what a pass over all
        P + T moves gives at them."""
        P, T = (0 if past is None else len(past)), tokens_BT.shape[1]
        pos_TD = self.pos_embed.W_pos[P : P + T]
        resid_BTD = self.hook_embed(self.embed.W_E[tokens_BT]) + self.hook_pos_embed(pos_TD)
        for layer, block in enumerate(self.blocks):
            resid_BTD = block(resid_BTD, None if past is None else past.layer(layer))
        return self.ln_final(resid_BTD) @ self.unembed.W_U + self.unembed.b_U

    def state_dict_tl(self) -> dict[str, Tensor]:
        """Parameters only, keyed by TransformerLens names (buffers such as the mask excluded)."""
        return dict(self.named_parameters())

    @property
    def device(self) -> torch.device:
        return self.embed.W_E.device

    def hook_names(self) -> list[str]:
        return [name for name, m in self.named_modules() if isinstance(m, HookPoint)]

    @contextmanager
    def hooks(self, fwd_hooks: Iterable[tuple[str, Callable[[Tensor], Tensor | None]]]):
        """Attach ``fn(value) -> replacement or None`` to named hooks; removed on exit."""
        modules = dict(self.named_modules())
        handles = []
        try:
            for name, fn in fwd_hooks:
                if not isinstance(modules.get(name), HookPoint):
                    raise KeyError(f"no hook named {name!r}")
                handles.append(modules[name].register_forward_hook(lambda _m, _i, out, fn=fn: fn(out)))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def run_with_cache(
        self, tokens_BT: Tensor, names: Iterable[str] | None = None, past: KVCache | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits and the values of the named hooks (all hooks when ``names`` is None); with
        ``past``, of the positions after its own (see :meth:`forward`)."""
        cache: dict[str, Tensor] = {}

        def store(name: str):
            def hook(value: Tensor) -> None:
                cache[name] = value.detach()

            return hook

        names = self.hook_names() if names is None else list(names)
        with self.hooks((name, store(name)) for name in names):
            logits = self(tokens_BT, past)
        return logits, cache


@dataclass(frozen=True)
class KVCache:
    """Every layer's keys and values (its ``attn.hook_k`` and ``attn.hook_v``, [B, P, H, E]) at
    the first P positions of a sequence. Attention is causal, so they are all that later
    positions read of earlier ones: ``model(tokens, past=kv)`` runs only the moves after them.
    That pass multiplies the same numbers in smaller batches, so it equals a pass over the whole
    sequence to float rounding, not bit for bit (the tests bound the difference)."""

    keys: tuple[Tensor, ...]  # per layer, [B, P, H, E]
    values: tuple[Tensor, ...]

    def __len__(self) -> int:
        return self.keys[0].shape[1]

    def layer(self, layer: int) -> tuple[Tensor, Tensor]:
        return self.keys[layer], self.values[layer]

    def truncated(self, n_positions: int) -> KVCache:
        """The first ``n_positions`` positions' (a shorter sequence sharing them has just these)."""
        return KVCache(
            tuple(k[:, :n_positions] for k in self.keys), tuple(v[:, :n_positions] for v in self.values)
        )

    @staticmethod
    def hook_names(n_layers: int) -> list[str]:
        """The hooks whose values make a cache: ask :meth:`OthelloGPT.run_with_cache` for them."""
        return [f"blocks.{layer}.attn.hook_{kv}" for layer in range(n_layers) for kv in "kv"]

    @classmethod
    def of(cls, cache: Mapping[str, Tensor], n_layers: int, past: KVCache | None = None) -> KVCache:
        """The keys and values of a pass (its ``cache`` holds :meth:`hook_names`), after ``past``'s
        when the pass was given it: the cache that runs the positions after all of them."""
        keys = tuple(cache[f"blocks.{layer}.attn.hook_k"] for layer in range(n_layers))
        values = tuple(cache[f"blocks.{layer}.attn.hook_v"] for layer in range(n_layers))
        if past is not None:
            keys = tuple(torch.cat([old, new], 1) for old, new in zip(past.keys, keys, strict=True))
            values = tuple(torch.cat([old, new], 1) for old, new in zip(past.values, values, strict=True))
        return cls(keys, values)
