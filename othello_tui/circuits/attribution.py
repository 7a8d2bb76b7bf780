"""The four exact attributions (DESIGN.md §3.2–3.7): every node's contribution to a target.

All of them read node vectors through a *linearised* LayerNorm whose scale σ is frozen at its
value in the real forward pass (§3.2):

    w · LN_lin(v) = w · (γ ⊙ (v − mean v)) / σ = v · (γ⊙w − mean(γ⊙w)) / σ,

so a read-out direction is multiplied by γ and centred once, and every node's contribution is a
dot product. A dictionary that normalises its input per token (``sae.TokenNorm``) has its input
scale s_i frozen the same way: its encoder column is read as ``s_i·W_enc[:,Y]`` (written
``W_enc[:,Y]`` below). Each function states the identity its contributions sum to; the tests
check it.

Shape legend: N nodes, D d_model, H head, E d_head, M d_mlp, S source position, K read-outs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from othello_tui.circuits.decomposition import Decomposition
from othello_tui.circuits.nodes import Node, Target, node_id, pair_node
from othello_tui.dictionary.sae import Dictionary, TokenNorm
from othello_tui.model.transformer import OthelloGPT


class Traced(Protocol):
    """What the attributions read of a game's forward pass: a
    :class:`~othello_tui.circuits.trace.GameTrace`, which calls them."""

    model: OthelloGPT
    dictionaries: dict[str, Dictionary]
    cache: dict[str, Tensor]  # hook name -> value, without the batch axis
    norms: dict[str, TokenNorm]  # module -> its dictionary's input normalisation [T], frozen
    decomposition: Decomposition

    def ln_scale(self, ln: str) -> Tensor: ...  # σ [T] of a LayerNorm in the real forward pass

    def probe_direction(self, target: Target) -> tuple[Tensor, Tensor]: ...  # (w_D, b) of a probe target

    def target_value(self, target: Target) -> float: ...  # the target in the real forward pass


@dataclass
class Attribution:
    """Contributions ``values_N`` of every contributor; ``node_at(n)`` names contributor n.

    ``values_N.sum() == value`` (the target in the real forward pass) to float rounding.
    OV attributions also offer ``per_head()``, computed on demand (it costs H times the total):
    [N, H] whose column h decomposes the part of the target written through head h; the
    head-independent constants (``b_O``, ``b_enc``) have zero rows there. Score attributions
    set ``n_keys``: ``values_N`` is then [query part, key part] flattened row-major.
    Linear attributions set ``rows_N``: contributor n < len(rows_N) is decomposition row
    ``rows_N[n]`` (long, CPU), the rest are parameter nodes (what a graph reads without naming
    every node).
    """

    target: Target
    value: float
    values_N: Tensor
    node_at: Callable[[int], Node]
    per_head: Callable[[], Tensor] | None = None
    n_keys: int | None = None
    rows_N: Tensor | None = None

    def sum(self) -> float:
        return float(self.values_N.sum())

    def top(self, n: int | None = None, threshold: float | None = None) -> list[tuple[Node, float]]:
        """Contributors by decreasing |contribution|: the first ``n``, those with |value| ≥ ``threshold``."""
        magnitude_N = self.values_N.abs()
        k = len(magnitude_N) if n is None else min(n, len(magnitude_N))
        _, order = magnitude_N.topk(k)
        if threshold is not None:
            order = order[magnitude_N[order] >= threshold]
        return [(self.node_at(int(i)), float(self.values_N[i])) for i in order]


def _param_nodes(position: int, names: Sequence[str]) -> list[Node]:
    return [Node(node_id(position, name), position, "param") for name in names]


def _linear_attribution(
    trace: Traced,
    target: Target,
    rows: slice | Tensor,
    contributions_N: Tensor,
    params: dict[str, Tensor],
    value: float,
) -> Attribution:
    """Node rows first, then one parameter node per ``params`` entry (at the target's position)."""
    rows_N = torch.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
    constants = _param_nodes(target.position, list(params))
    values_N = torch.cat([contributions_N, torch.stack(list(params.values()))])

    def node_at(n: int) -> Node:
        return trace.decomposition.node(int(rows_N[n])) if n < len(rows_N) else constants[n - len(rows_N)]

    return Attribution(target, value, values_N, node_at, rows_N=rows_N)


def _through_layernorm(trace: Traced, ln: str, w_DK: Tensor) -> Tensor:
    """``γ⊙w − mean(γ⊙w)`` per column: ``x·v / σ = w·LN_lin(v)`` for any v."""
    x_DK = trace.model.layer_norm(ln).w[:, None] * w_DK
    return x_DK - x_DK.mean(0)


def _read_through(trace: Traced, ln: str, rows: slice | Tensor, w_DK: Tensor) -> Tensor:
    """``w_k · LN_lin(v_n)`` for the node ``rows`` ([N, K]), σ frozen at each node's own position."""
    x_DK = _through_layernorm(trace, ln, w_DK)
    scale_N = trace.ln_scale(ln)[trace.decomposition.position_N[rows]]
    return trace.decomposition.vectors_ND[rows] @ x_DK / scale_N[:, None]


def direct_logit(trace: Traced, target: Target) -> Attribution:
    """DLA (§3.3). ``logit_{i,t} = Σ_v W_U[:,t]·LN_final,lin(v) + W_U[:,t]·β_final + b_U[t]``,
    summed over every node at position i."""
    i, token = target.position, target.token
    w_D = trace.model.unembed.W_U[:, token]
    rows = trace.decomposition.rows_at(i, trace.decomposition.n_levels)
    params = {"ln_final.b": trace.model.ln_final.b @ w_D, "unembed.b_U": trace.model.unembed.b_U[token]}
    contributions_N = _read_through(trace, "ln_final", rows, w_D[:, None])[:, 0]
    return _linear_attribution(trace, target, rows, contributions_N, params, trace.target_value(target))


def probe_logit(trace: Traced, target: Target) -> Attribution:
    """A probe's class-logit difference on the residual stream after block l (§3.9), no LayerNorm
    in between: ``(W[:,q,a] − W[:,q,b])·r_i + (b[q,a] − b[q,b]) = Σ_v w·v + b`` over every node v
    at position i in levels up to L{l}M (the embeddings alone for the site before block 0)."""
    w_D, b = trace.probe_direction(target)
    decomposition = trace.decomposition
    # site 0 reads the embeddings (level 0); site l + 1 also every module up to L{l}M
    site = target.probe_key[0]
    below = 1 if site == 0 else decomposition.levels_below(f"L{site - 1}M") + 1
    rows = decomposition.rows_at(target.position, below)
    contributions_N = decomposition.vectors_ND[rows] @ w_D
    params = {"probes.mine_theirs.b": b}
    return _linear_attribution(trace, target, rows, contributions_N, params, trace.target_value(target))


def residual_feature(trace: Traced, target: Target, dictionary: Dictionary) -> Attribution:
    """A residual-stream feature's pre-activation (§3.9), the same linear readout as a probe:
    ``h_Y = W_enc[:,Y]·(r_i − b_dec) + b_enc[Y] = Σ_v W_enc[:,Y]·v + (b_enc[Y] − W_enc[:,Y]·b_dec)``
    over every node v at position i in levels up to L{l}M (no LayerNorm in between); the constant
    is the bias node ``P{i}L{l}R.b_enc``. The dictionary is a readout: it is no node itself."""
    module = target.feature_key[0]
    decomposition = trace.decomposition
    w_enc_D, constant = _encoder_constant(trace, target, dictionary)
    rows = decomposition.rows_at(target.position, decomposition.levels_below(f"L{module[1:-1]}M") + 1)
    contributions_N = decomposition.vectors_ND[rows] @ w_enc_D
    return _linear_attribution(trace, target, rows, contributions_N, constant, trace.target_value(target))


def _encoder_constant(
    trace: Traced, target: Target, dictionary: Dictionary
) -> tuple[Tensor, dict[str, Tensor]]:
    """Feature Y's encoder column as it reads the input at the target's position, ``s_i·W_enc[:,Y]``
    (s_i the dictionary's input scale there, frozen), and its constant ``b_enc[Y] − W_enc[:,Y]·b_dec``
    (§3.4): ``h_Y = s_i·W_enc[:,Y]·x_i + b_enc[Y] − W_enc[:,Y]·b_dec``."""
    module, feature = target.feature_key
    w_enc_D = dictionary.W_enc[:, feature]
    scale = trace.norms[module].in_scale_N[target.position]
    return scale * w_enc_D, {f"{module}.b_enc": dictionary.b_enc[feature] - dictionary.b_dec @ w_enc_D}


def mlp_feature(trace: Traced, target: Target) -> Attribution:
    """ADC (§3.5) of MLP feature Y at position i, the gate ``g = Φ(p)`` frozen:

    ``h_Y = Σ_v W_enc[:,Y]·W_out[(W_in·LN_lin(v)) ⊙ g] + W_enc[:,Y]·W_out[(W_in·β + b_in) ⊙ g]
    + W_enc[:,Y]·b_out + b_enc[Y] − W_enc[:,Y]·b_dec``, exact since ``GELU(p) = p·Φ(p)``.
    """
    module = target.feature_key[0]
    i, layer = target.position, int(module[1:-1])
    mlp = trace.model.block(layer).mlp
    w_enc_D, constant = _encoder_constant(trace, target, trace.dictionaries[module])
    gate_M = 0.5 * (1.0 + torch.erf(trace.cache[f"blocks.{layer}.mlp.hook_pre"][i] / math.sqrt(2.0)))
    u_M = (mlp.W_out @ w_enc_D) * gate_M
    w_D = mlp.W_in @ u_M
    rows = trace.decomposition.rows_at(i, trace.decomposition.levels_below(module))
    params = {
        f"blocks.{layer}.ln2.b": trace.model.block(layer).ln2.b @ w_D,
        f"blocks.{layer}.mlp.b_in": mlp.b_in @ u_M,
        f"blocks.{layer}.mlp.b_out": mlp.b_out @ w_enc_D,
        **constant,
    }
    value = trace.target_value(target)
    contributions_N = _read_through(trace, f"blocks.{layer}.ln2", rows, w_D[:, None])[:, 0]
    return _linear_attribution(trace, target, rows, contributions_N, params, value)


def attention_feature(trace: Traced, target: Target) -> Attribution:
    """OV (§3.6) of attention feature Y at query position i, pattern A and every source's σ_j
    frozen. Node v at source j contributes ``Σ_h A^h_ij W_enc[:,Y]·W_O^h W_V^h LN_lin,j(v)``;
    with ``a_h = Σ_j A^h_ij`` the constants are ``Σ_h a_h (β·W_V^h + b_V^h)·W_O^h W_enc[:,Y]``,
    ``W_enc[:,Y]·b_O`` and the encoder constant; all together they sum to h_Y.
    """
    module = target.feature_key[0]
    i, layer, decomposition = target.position, int(module[1:-1]), trace.decomposition
    attn, ln = trace.model.block(layer).attn, f"blocks.{layer}.ln1"
    w_enc_D, constant = _encoder_constant(trace, target, trace.dictionaries[module])
    u_HE = torch.einsum("hed,d->he", attn.W_O, w_enc_D)
    v_DH = torch.einsum("hde,he->dh", attn.W_V, u_HE)
    pattern_HS = trace.cache[f"blocks.{layer}.attn.hook_pattern"][:, i, : i + 1]
    # heads and the source's σ_j fold into one read-out direction per source position j
    y_SD = (pattern_HS.T @ _through_layernorm(trace, ln, v_DH).T) / trace.ln_scale(ln)[: i + 1, None]
    below = decomposition.levels_below(module)
    nodes_N = torch.cat(
        [decomposition.vectors_ND[decomposition.rows_at(j, below)] @ y_SD[j] for j in range(i + 1)]
    )
    rows_N = decomposition.rows_upto(i, below)
    mass_H = pattern_HS.sum(1)
    beta_H = mass_H * (trace.model.block(layer).ln1.b @ v_DH)
    b_V_H = mass_H * (attn.b_V * u_HE).sum(1)
    params = {
        f"{ln}.b": beta_H.sum(),
        f"blocks.{layer}.attn.b_V": b_V_H.sum(),
        f"blocks.{layer}.attn.b_O": attn.b_O @ w_enc_D,
        **constant,
    }

    def per_head() -> Tensor:
        weight_NH = pattern_HS[:, decomposition.position_N[rows_N]].T
        zero_H = torch.zeros_like(mass_H)
        with torch.no_grad():
            nodes_NH = _read_through(trace, ln, rows_N, v_DH) * weight_NH
            return torch.cat([nodes_NH, torch.stack([beta_H, b_V_H, zero_H, zero_H])])

    attribution = _linear_attribution(trace, target, rows_N, nodes_N, params, trace.target_value(target))
    attribution.per_head = per_head
    return attribution


def attention_score(trace: Traced, target: Target) -> Attribution:
    """QK (§3.7): ``s^h_ij = (Σ_a q_a)·(Σ_b k_b)/sqrt(E)`` where the query parts q_a are
    ``W_Q^h·LN_lin,i(v_a)`` for every node a at i plus ``β·W_Q^h`` and ``b_Q^h``, and the key
    parts likewise at j with W_K. Contributor (a, b) is ``q_a·k_b/sqrt(E)``, flattened row-major.
    """
    layer, head, j = target.score_key
    i = target.position
    attn, ln = trace.model.block(layer).attn, f"blocks.{layer}.ln1"
    beta_D, decomposition = trace.model.block(layer).ln1.b, trace.decomposition
    below = decomposition.levels_below(f"L{layer}A")
    sides = []
    query, key = (i, attn.W_Q[head], attn.b_Q[head], "b_Q"), (j, attn.W_K[head], attn.b_K[head], "b_K")
    for position, W_DE, b_E, bias_name in (query, key):
        rows = decomposition.rows_at(position, below)
        parts_NE = torch.cat([_read_through(trace, ln, rows, W_DE), (beta_D @ W_DE)[None], b_E[None]])
        names = [f"{ln}.b", f"blocks.{layer}.attn.{bias_name}"]
        sides.append((parts_NE, rows, _param_nodes(position, names)))
    (queries_QE, q_rows, q_params), (keys_KE, k_rows, k_params) = sides
    pairs_QK = queries_QE @ keys_KE.T / math.sqrt(attn.W_Q.shape[-1])
    n_keys = pairs_QK.shape[1]

    def side_node(n: int, rows: slice, params: list[Node]) -> Node:
        row = rows.start + n
        return decomposition.node(row) if row < rows.stop else params[row - rows.stop]

    def node_at(n: int) -> Node:
        a, b = divmod(n, n_keys)
        return pair_node(side_node(a, q_rows, q_params), side_node(b, k_rows, k_params))

    return Attribution(target, trace.target_value(target), pairs_QK.flatten(), node_at, n_keys=n_keys)
