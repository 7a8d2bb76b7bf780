"""``GameTrace``: one game's forward pass, cached once and decomposed into nodes, answering
attribution questions about it cheaply and one node at a time (what a UI needs).

    trace = GameTrace(model, dictionaries, tokens)
    trace.target_value(parse_target("logit:e-1", 12))
    trace.contributions(target).top(8)     # [(Node, contribution), …]
    trace.children(node, top=8)            # an Expansion, or None for a leaf

Shape legend: T position, D d_model, F features, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from othello_tui.circuits import attribution
from othello_tui.circuits.decomposition import decompose
from othello_tui.circuits.nodes import CircuitError, Node, Target, parse_feature_node, readout_note
from othello_tui.circuits.tree import Expansion, expand
from othello_tui.dictionary.sae import Dictionary, hook_name_of, is_residual, module_names, residual_names
from othello_tui.model.transformer import OthelloGPT
from othello_tui.probes.linear import LinearProbes

_ATTRIBUTIONS = {
    "logit": attribution.direct_logit,
    "score": attribution.attention_score,
    "probe": attribution.probe_logit,
}


def hook_names(n_layers: int) -> list[str]:
    """Every hook value the decomposition, the attributions and frozen interventions read."""
    names = ["hook_embed", "hook_pos_embed", "ln_final.hook_scale"]
    for layer in range(n_layers):
        block = f"blocks.{layer}"
        names += [f"{block}.hook_attn_out", f"{block}.hook_mlp_out", f"{block}.ln1.hook_scale"]
        names += [f"{block}.ln2.hook_scale", f"{block}.attn.hook_pattern", f"{block}.attn.hook_attn_scores"]
        names += [f"{block}.mlp.hook_pre"]
    return names


class GameTrace:
    """Attribution over one game (a 1-D sequence of move tokens) for a model and dictionaries
    (and, for probe targets, the probes on its residual stream).

    Modules without a dictionary enter the decomposition as one node (their whole output).
    Residual-stream dictionaries (``L3R``) among ``dictionaries`` are readouts only: they never
    enter the decomposition (``self.dictionaries`` holds the module-output ones, ``self.residual``
    them), and their features are targets (§3.9), never nodes.
    """

    @torch.no_grad()
    def __init__(
        self,
        model: OthelloGPT,
        dictionaries: Mapping[str, Dictionary],
        tokens: Sequence[int] | Tensor | np.ndarray,
        probes: LinearProbes | None = None,
    ):
        self.model, self.probes = model, probes
        self.dictionaries = {m: d for m, d in dictionaries.items() if not is_residual(m)}
        self.residual = {m: d for m, d in dictionaries.items() if is_residual(m)}
        self.modules = module_names(model.cfg.n_layers)
        known = self.modules + residual_names(model.cfg.n_layers)
        for module, dictionary in dictionaries.items():
            if module not in known:
                raise CircuitError(f"dictionary {module} does not fit a {model.cfg.n_layers}-layer model")
            if dictionary.cfg.d_in != model.cfg.d_model:
                raise CircuitError(
                    f"dictionary {module} reads d_in={dictionary.cfg.d_in}, the model writes {model.cfg.d_model}"
                )
        self.tokens_T = torch.as_tensor(tokens, dtype=torch.long, device=model.device).flatten()
        if not 0 < len(self.tokens_T) <= model.cfg.n_ctx:
            raise CircuitError(f"a game of {len(self.tokens_T)} tokens (the model reads 1…{model.cfg.n_ctx})")
        sites = list(probes.sites) if probes is not None else []
        readouts = [hook_name_of(module) for module in self.residual]
        names = list(dict.fromkeys(hook_names(model.cfg.n_layers) + sites + readouts))
        logits_BTV, cache = model.run_with_cache(self.tokens_T[None], names)
        self.logits_TV = logits_BTV[0]
        self.cache: dict[str, Tensor] = {}
        for name, value in cache.items():
            value = value if name == "hook_pos_embed" else value[0]  # W_pos[:T] has no batch axis
            self.cache[name] = value.squeeze(-1) if name.endswith("hook_scale") else value  # [T, 1] -> [T]
        # every dictionary's input normalisation, frozen at the real outputs (like LayerNorm's σ)
        self.norms = {m: d.token_norm(self.cache[hook_name_of(m)]) for m, d in dictionaries.items()}
        outputs = [(module, self.cache[hook_name_of(module)]) for module in self.modules]
        self.decomposition, self.activations = decompose(
            self.cache["hook_embed"], self.cache["hook_pos_embed"], outputs, self.dictionaries, self.norms
        )
        for module, dictionary in self.residual.items():  # readouts: activations, never nodes
            self.activations[module] = dictionary.encode(self.cache[hook_name_of(module)])

    @property
    def all_dictionaries(self) -> dict[str, Dictionary]:
        """Module-output and residual-stream dictionaries together (what a feature cache covers)."""
        return {**self.dictionaries, **self.residual}

    @property
    def n_positions(self) -> int:
        return len(self.tokens_T)

    def ln_scale(self, ln: str) -> Tensor:
        """σ of LayerNorm ``ln`` (``blocks.1.ln2``, ``ln_final``) at every position, [T]."""
        return self.cache[f"{ln}.hook_scale"]

    def check_position(self, position: int) -> None:
        if position >= self.model.cfg.n_ctx:
            raise CircuitError(
                f"position {position}: the model reads {self.model.cfg.n_ctx} moves (n_ctx), "
                f"positions 0…{self.model.cfg.n_ctx - 1}"
            )
        if not 0 <= position < self.n_positions:
            raise CircuitError(
                f"position {position} is outside this game (positions 0…{self.n_positions - 1})"
            )

    def check_feature(self, module: str, feature: int) -> Dictionary:
        if is_residual(module):
            return self._check_residual(module, feature)
        if module not in self.modules:
            raise CircuitError(
                f"no module {module} in a {self.model.cfg.n_layers}-layer model ({self.modules[0]}…{self.modules[-1]})"
            )
        if module not in self.dictionaries:
            raise CircuitError(f"no dictionary loaded for {module}")
        return self._check_index(module, self.dictionaries[module], feature)

    def _check_residual(self, module: str, feature: int) -> Dictionary:
        names = residual_names(self.model.cfg.n_layers)
        if module not in names:
            raise CircuitError(
                f"no residual-stream dictionary {module} in a {self.model.cfg.n_layers}-layer model "
                f"({names[0]}…{names[-1]})"
            )
        if module not in self.residual:
            raise CircuitError(
                f"no residual-stream dictionary loaded for {module} (weights/residual; train it with "
                f"`othello-tui train dictionaries --modules {module}`)"
            )
        return self._check_index(module, self.residual[module], feature)

    @staticmethod
    def _check_index(module: str, dictionary: Dictionary, feature: int) -> Dictionary:
        if not 0 <= feature < dictionary.cfg.d_sae:
            raise CircuitError(f"{module} has features 0…{dictionary.cfg.d_sae - 1}, not {feature}")
        return dictionary

    def check(self, target: Target) -> None:
        """Raise :class:`CircuitError` when the target does not exist in this model and game."""
        self.check_position(target.position)
        if target.kind == "feature":
            self.check_feature(*target.feature_key)
        elif target.kind == "score":
            cfg = self.model.cfg
            layer, head, key = target.score_key
            if not (0 <= layer < cfg.n_layers and 0 <= head < cfg.n_heads):
                raise CircuitError(
                    f"no head L{layer}H{head} (layers 0…{cfg.n_layers - 1}, heads 0…{cfg.n_heads - 1})"
                )
            if not 0 <= key <= target.position:
                raise CircuitError(
                    f"key position {key} must be within 0…{target.position} (attention is causal)"
                )
        elif target.kind == "probe":
            self.check_probe_site(target.probe_key[0])

    def check_probe_site(self, site: int) -> str:
        """The hook name of probe site ``site`` (0 the embeddings, l + 1 after block l);
        :class:`CircuitError` without probes or without that site."""
        probes = self.loaded_probes()
        if not 0 <= site < len(probes.sites):
            name = "embed" if site == 0 else f"L{site - 1}"
            raise CircuitError(f"no probe site {name} (embed, or L0…L{len(probes.sites) - 2})")
        return probes.sites[site]

    def loaded_probes(self) -> LinearProbes:
        """The probes; :class:`CircuitError` without them."""
        if self.probes is None:
            raise CircuitError("no probes loaded (train them with `othello-tui train probes`)")
        return self.probes

    def probe_direction(self, target: Target) -> tuple[Tensor, Tensor]:
        """(w_D, b): the probe target is ``w_D · r + b`` on the residual stream r at its site."""
        site, square, classes = target.probe_key
        return self.loaded_probes().direction("mine_theirs", site, square, *classes)

    def activation(self, position: int, module: str, feature: int) -> float:
        """The feature's activation c at a position (0 when inactive)."""
        self.check_position(position)
        self.check_feature(module, feature)
        return float(self.activations[module][position, feature])

    @torch.no_grad()
    def pre_activation(self, position: int, module: str, feature: int) -> Tensor:
        """``h = W_enc[:,Y]·(s·out − b_dec) + b_enc[Y]`` on the real module output, or on the
        residual stream after block l for a residual-stream dictionary (a 0-d tensor); s is the
        dictionary's input scale there (1 unless it normalises its input)."""
        dictionary = self.check_feature(module, feature)
        return dictionary.pre_acts(self.cache[hook_name_of(module)][position])[feature]

    def attention_pattern(self, position: int) -> Tensor:
        """[L, H, S]: every head's attention from query ``position`` to keys S = 0…position."""
        self.check_position(position)
        return torch.stack(
            [
                self.cache[f"blocks.{layer}.attn.hook_pattern"][:, position, : position + 1]
                for layer in range(self.model.cfg.n_layers)
            ]
        )

    def active_features(self, position: int, module: str) -> list[tuple[int, float]]:
        """(feature, activation) of the features active at a position, strongest first."""
        c_F = self.activations[module][position]
        indices = torch.nonzero(c_F).squeeze(1)
        return sorted(((int(f), float(c_F[f])) for f in indices), key=lambda item: -item[1])

    def feature_node(self, position: int, module: str, feature: int) -> Node:
        """The node of an active feature; :class:`CircuitError` when it is inactive there."""
        self.check_position(position)
        self.check_feature(module, feature)
        if is_residual(module):
            raise CircuitError(readout_note(f"{module}{feature}"))
        row = self.decomposition.find_feature(position, module, feature)
        if row is None:
            h = float(self.pre_activation(position, module, feature))
            raise CircuitError(
                f"{module}{feature} is not active at position {position} (pre-activation {h:.4g})"
            )
        return self.decomposition.node(row)

    def node(self, text: str) -> Node:
        """An active feature node by id, ``"P7L1M379"``."""
        return self.feature_node(*parse_feature_node(text))

    @torch.no_grad()
    def target_value(self, target: Target) -> float:
        """The target's value in the real forward pass."""
        self.check(target)
        if target.kind == "logit":
            value = self.logits_TV[target.position, target.token]
        elif target.kind == "feature":
            value = self.pre_activation(target.position, *target.feature_key)
        elif target.kind == "probe":
            w_D, b = self.probe_direction(target)
            site = self.loaded_probes().sites[target.probe_key[0]]
            value = self.cache[site][target.position] @ w_D + b
        else:
            layer, head, key = target.score_key
            value = self.cache[f"blocks.{layer}.attn.hook_attn_scores"][head, target.position, key]
        return float(value)

    @torch.no_grad()
    def contributions(self, target: Target) -> attribution.Attribution:
        """Every contributor of ``target``; they sum to :meth:`target_value`."""
        self.check(target)
        if target.kind == "feature":
            module, _ = target.feature_key
            if is_residual(module):
                return attribution.residual_feature(self, target, self.residual[module])
            kind = attribution.attention_feature if module.endswith("A") else attribution.mlp_feature
            return kind(self, target)
        return _ATTRIBUTIONS[target.kind](self, target)

    def expand(
        self, target: Target, depth: int = 1, top: int | None = 8, threshold: float | None = None
    ) -> Expansion:
        """The target's top contributors, each feature among them expanded to ``depth`` levels."""
        return expand(self, target, depth, top, threshold)

    def children(self, node: Node, top: int | None = 8, threshold: float | None = None) -> Expansion | None:
        """One more level under a node: its own top contributors, or None for a leaf."""
        target = node.as_target()
        return None if target is None else self.expand(target, 1, top, threshold)
