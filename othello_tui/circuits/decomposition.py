"""The residual stream of one game as a sum of node vectors (DESIGN.md §3.1).

At position i, the input of module m (L0A, L0M, L1A, … in order) is

    r_i = W_E[tok_i] + W_pos[i] + Σ_{modules m' < m} out_{m',i},
    out_{m',i} = Σ_k c_{m',k,i} o_i·d_{m',k} + (o_i·b_dec,m' + μ_i) + ε_{m',i},

with o_i = 1, μ_i = 0 unless the dictionary normalises its input (its decoder's output scale and
the token's mean, ``sae.TokenNorm``, frozen at the real output like LayerNorm's σ, DESIGN.md §3.2):
the bias node is what the decoder writes with no feature active (for ``layer_norm`` that includes
the token's mean μ_i), the error ε the dictionary's reconstruction error, as sae-lens has it. So r_i
is the sum of the node vectors of *levels* 0…m: level 0 holds the embeddings, level k ≥ 1
the nodes of module k−1 (its active features, decoder bias and error; or the whole output of a
module without a dictionary). All nodes of a game live in one matrix, sorted by position, then
level, then feature index, so the nodes of one position below a level are one contiguous slice.

Shape legend: T position, D d_model, F features, N nodes, L levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from othello_tui.circuits.nodes import Node, node_id
from othello_tui.dictionary.sae import Dictionary, TokenNorm

EMBED, POS, FEATURE, BIAS, ERROR, OUTPUT = range(6)
_KIND_NAMES = ("embed", "pos", "feature", "bias", "error", "output")


@dataclass
class Decomposition:
    modules: list[str]  # level k ≥ 1 is modules[k − 1]
    vectors_ND: Tensor
    position_N: Tensor  # long
    level_N: Tensor  # long
    kind_N: Tensor  # long, one of EMBED … OUTPUT
    feature_N: Tensor  # long, −1 for nodes that are not features
    offsets_TL: Tensor  # long [T, L + 1]: first row of (position t, level l); column L ends t
    _upto: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)

    @property
    def n_levels(self) -> int:
        return len(self.modules) + 1

    def levels_below(self, module: str | None) -> int:
        """Number of levels that make up the input of ``module`` (None: the final LayerNorm)."""
        return self.n_levels if module is None else self.modules.index(module) + 1

    def rows_at(self, position: int, below: int) -> slice:
        """Rows of the nodes at ``position`` in levels ``< below``."""
        return slice(int(self.offsets_TL[position, 0]), int(self.offsets_TL[position, below]))

    def rows_upto(self, position: int, below: int) -> Tensor:
        """Rows of the nodes at positions ``≤ position`` in levels ``< below`` (long [N])."""
        if below not in self._upto:
            rows_N = torch.nonzero(self.level_N < below).squeeze(1)
            ends_T = torch.searchsorted(
                self.position_N[rows_N], torch.arange(len(self.offsets_TL)), right=True
            )
            self._upto[below] = rows_N, ends_T
        rows_N, ends_T = self._upto[below]
        return rows_N[: int(ends_T[position])]

    def residual(self, position: int, below: int) -> Tensor:
        """The sum of the node vectors: the input of the module at ``below − 1`` (a check)."""
        return self.vectors_ND[self.rows_at(position, below)].sum(0)

    def node(self, row: int) -> Node:
        position, level, kind = int(self.position_N[row]), int(self.level_N[row]), int(self.kind_N[row])
        if kind in (EMBED, POS):
            return Node(node_id(position, _KIND_NAMES[kind]), position, _KIND_NAMES[kind])
        module = self.modules[level - 1]
        if kind == FEATURE:
            feature = int(self.feature_N[row])
            return Node(node_id(position, f"{module}{feature}"), position, "feature", module, feature)
        name = module if kind == OUTPUT else f"{module}.{_KIND_NAMES[kind]}"
        return Node(node_id(position, name), position, _KIND_NAMES[kind], module)

    def find_feature(self, position: int, module: str, feature: int) -> int | None:
        """Row of an active feature at a position; None when it is not active there."""
        level = self.modules.index(module) + 1
        start, end = int(self.offsets_TL[position, level]), int(self.offsets_TL[position, level + 1])
        features = self.feature_N[start:end][self.kind_N[start:end] == FEATURE]  # sorted: a prefix
        index = int(torch.searchsorted(features, feature))
        if index < len(features) and int(features[index]) == feature:
            return start + index
        return None


def decompose(
    embed_TD: Tensor,
    pos_TD: Tensor,
    outputs: Sequence[tuple[str, Tensor]],
    dictionaries: Mapping[str, Dictionary],
    norms: Mapping[str, TokenNorm],
) -> tuple[Decomposition, dict[str, Tensor]]:
    """Split every module output ``out_TD`` (in module order) into nodes with its dictionary,
    whose input normalisation at each position is ``norms[module]`` (its ``token_norm(out_TD)``).

    Returns the decomposition and each dictionary module's activations ``c_TF``. Identity:
    for each position and level, the node vectors sum to the embeddings plus the module outputs
    below that level (to float rounding).
    """
    T = embed_TD.shape[0]
    arange_T = torch.arange(T)
    minus_T = torch.full((T,), -1)
    blocks = [
        (embed_TD, arange_T, 0, torch.full((T,), EMBED), minus_T),
        (pos_TD, arange_T, 0, torch.full((T,), POS), minus_T),
    ]
    activations: dict[str, Tensor] = {}
    for level, (module, out_TD) in enumerate(outputs, start=1):
        dictionary = dictionaries.get(module)
        if dictionary is None:
            blocks.append((out_TD, arange_T, level, torch.full((T,), OUTPUT), minus_T))
            continue
        c_TF, norm = dictionary.encode(out_TD), norms[module]
        activations[module] = c_TF
        t_N, f_N = torch.nonzero(c_TF, as_tuple=True)  # row-major: sorted by position, then feature
        scale_N = c_TF[t_N, f_N] * norm.out_scale_N[t_N]
        features_ND = dictionary.W_dec.index_select(0, f_N).mul_(scale_N[:, None])
        bias_TD = dictionary.b_dec * norm.out_scale_N[:, None] + norm.mean_N[:, None]
        # ε = out − (bias + Σ features) from these very vectors: the nodes sum to the output
        # (and the sparse sum skips decode's dense [T, F] × [F, D] product)
        error_TD = out_TD - bias_TD.index_add(0, t_N, features_ND)
        t_N, f_N = t_N.cpu(), f_N.cpu()  # node metadata stays on the CPU (read an int at a time)
        blocks += [
            (features_ND, t_N, level, torch.full_like(t_N, FEATURE), f_N),
            (bias_TD, arange_T, level, torch.full((T,), BIAS), minus_T),
            (error_TD, arange_T, level, torch.full((T,), ERROR), minus_T),
        ]
    n_levels = len(outputs) + 1
    position_N = torch.cat([b[1] for b in blocks])
    level_N = torch.cat([torch.full_like(b[1], b[2]) for b in blocks])
    kind_N = torch.cat([b[3] for b in blocks])
    feature_N = torch.cat([b[4] for b in blocks])
    # a stable sort keeps features (by index), then bias, then error within a (position, level)
    key_N = position_N * n_levels + level_N
    key_N, order_N = torch.sort(key_N, stable=True)
    starts = (arange_T[:, None] * n_levels + torch.arange(n_levels + 1)).flatten()
    offsets_TL = torch.searchsorted(key_N, starts).reshape(T, n_levels + 1)
    decomposition = Decomposition(
        modules=[module for module, _ in outputs],
        vectors_ND=_in_order([b[0] for b in blocks], order_N),
        position_N=position_N[order_N],
        level_N=level_N[order_N],
        kind_N=kind_N[order_N],
        feature_N=feature_N[order_N],
        offsets_TL=offsets_TL,
    )
    return decomposition, activations


def _in_order(vectors: Sequence[Tensor], order_N: Tensor) -> Tensor:
    """The rows of ``vectors`` (one block after another) in the order ``order_N``: written
    straight to their places, with no concatenated copy to reorder (for the public model's 30,000
    nodes × 512, each such copy is a fresh 60 MB, and first use of fresh memory is slow)."""
    first = vectors[0]
    row_N = torch.empty_like(order_N)
    row_N[order_N] = torch.arange(len(order_N))
    out_ND = torch.empty(len(order_N), first.shape[1], dtype=first.dtype, device=first.device)
    start = 0
    for block_ND in vectors:
        out_ND.index_copy_(0, row_N[start : start + len(block_ND)].to(out_ND.device), block_ND)
        start += len(block_ND)
    return out_ND
