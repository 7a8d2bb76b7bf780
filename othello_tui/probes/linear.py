"""Linear probes, one per (site, family), stored as stacked tensors.

For family ``f`` at site ``s`` and square ``q`` the probe's logits are ``x_s · W[s, :, q] + b[s, q]``
(one logit per class for 3-way families, one logit for binary ones), where ``x_s`` is the raw
residual stream at site ``s``. Stacking every site into one tensor per family makes a forward
pass one batched matmul per family and keeps the file layout simple:
``mine_theirs.W`` [S, D, 64, 3], ``mine_theirs.b`` [S, 64, 3], ``flipped.W`` [S, D, 64], ….

Shape legend: N tokens, S sites, D d_model, Q squares (64), C classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from othello_tui.game.squares import N_SQUARES
from othello_tui.probes.families import FAMILIES, Family

PRIOR_EPS = 1e-3  # floor of the class frequencies behind the initial biases (centre squares are never empty)


class LinearProbes(nn.Module):
    def __init__(self, sites: Sequence[str], d_model: int, families: Sequence[Family] = FAMILIES):
        super().__init__()
        self.sites = tuple(sites)
        self.d_model = d_model
        self.families = {family.name: family for family in families}
        S, D = len(self.sites), d_model
        # Zero weights: the problem is convex, so the start only matters for speed and determinism.
        self.W = nn.ParameterDict(
            {f.name: nn.Parameter(torch.zeros(S, D, N_SQUARES, *f.logit_shape)) for f in families}
        )
        self.b = nn.ParameterDict(
            {f.name: nn.Parameter(torch.zeros(S, N_SQUARES, *f.logit_shape)) for f in families}
        )

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """File keys (``"{family}.W"``, ``"{family}.b"``) and their shapes."""
        return {key: tuple(value.shape) for key, value in self.tensors().items()}

    def tensors(self) -> dict[str, Tensor]:
        return {f"{name}.{kind}": getattr(self, kind)[name] for name in self.families for kind in ("W", "b")}

    def forward(self, x_NSD: Tensor) -> dict[str, Tensor]:
        """Family name -> logits [N, S, Q, C] (3-way) or [N, S, Q] (binary)."""
        return {name: self.family_logits(name, x_NSD) for name in self.families}

    def family_logits(self, name: str, x_NSD: Tensor) -> Tensor:
        """One family's logits: [N, S, Q, C] (3-way) or [N, S, Q] (binary)."""
        W_SDK = self.W[name].flatten(2)  # K = Q·C (or Q)
        logits_NSK = torch.einsum("nsd,sdk->nsk", x_NSD, W_SDK)
        return logits_NSK.unflatten(2, self.W[name].shape[2:]) + self.b[name]

    def square_logits(self, name: str, site: int, square: int, x_D: Tensor) -> Tensor:
        """A 3-way family's class logits [C] at one site and square for the residual ``x_D``."""
        return x_D @ self.W[name][site, :, square] + self.b[name][site, square]

    def direction(self, name: str, site: int, square: int, plus: int, minus: int) -> tuple[Tensor, Tensor]:
        """``(w_D, b)`` of a 3-way family's class-logit difference ``plus − minus`` at one site and
        square: ``x·w_D + b`` is ``logit[plus] − logit[minus]`` (DESIGN.md §3.9)."""
        W_DC, b_C = self.W[name][site, :, square], self.b[name][site, square]
        return W_DC[:, plus] - W_DC[:, minus], b_C[plus] - b_C[minus]

    @torch.no_grad()
    def set_prior_biases(self, labels: dict[str, Tensor]) -> None:
        """Biases = log class frequencies per square in ``labels`` (the logit of the frequency for
        binary families), at every site: with ``W = 0`` the probes start as the best constant guess
        instead of spending their first steps learning the base rates."""
        for name, family in self.families.items():
            label_NQ = labels[name].long()
            if family.binary:
                bias = torch.logit(label_NQ.float().mean(0).clamp(PRIOR_EPS, 1 - PRIOR_EPS))
            else:
                frequency_QC = F.one_hot(label_NQ, len(family.classes)).float().mean(0)
                bias = frequency_QC.clamp(min=PRIOR_EPS).log()
            self.b[name].copy_(bias.expand_as(self.b[name]))

    @torch.no_grad()
    def fold_input_affine(self, mean_SD: Tensor, scale_S: Tensor) -> None:
        """Probes fitted on ``(x − mean) / scale`` become probes on raw ``x``:
        ``((x − mean)/scale)·W + b = x·(W/scale) + (b − (mean/scale)·W)``."""
        for name in self.families:
            W = self.W[name]
            shape = (-1,) + (1,) * (W.dim() - 1)
            W_raw = W / scale_S.view(shape)
            self.b[name] -= torch.einsum("sd,sd...->s...", mean_SD, W_raw)
            W.copy_(W_raw)

    def loss(self, logits: dict[str, Tensor], labels: dict[str, Tensor]) -> Tensor:
        """Sum over families of the mean loss over tokens, sites and squares: softmax
        cross-entropy for 3-way families, binary cross-entropy for binary ones.
        ``labels[name]`` is [N, Q] (class index, or 0/1)."""
        total = torch.zeros((), device=self.W[next(iter(self.families))].device)
        for name, logits_NSQ in logits.items():
            label_NSQ = labels[name].unsqueeze(1).expand(-1, len(self.sites), -1)
            if self.families[name].binary:
                total = total + F.binary_cross_entropy_with_logits(logits_NSQ, label_NSQ.float())
            else:
                total = total + F.cross_entropy(logits_NSQ.movedim(-1, 1), label_NSQ.long())
        return total

    def predict(self, logits: dict[str, Tensor]) -> dict[str, Tensor]:
        """Family name -> predicted class [N, S, Q]: argmax for 3-way, ``logit > 0`` for binary."""
        return {
            name: (value > 0).long() if self.families[name].binary else value.argmax(-1)
            for name, value in logits.items()
        }
