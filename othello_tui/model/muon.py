"""Muon (momentum + Newton–Schulz orthogonalised updates) for weights stored in
TransformerLens shapes.

``torch.optim.Muon`` only accepts 2-D parameters, but our attention weights are per-head 3-D
tensors (``W_Q`` [H, D, E], ``W_O`` [H, E, D]). Each is the linear map ``D -> H·E`` (or back) a
fused ``nn.Linear`` would hold, so we orthogonalise the update of that matrix view. For 2-D
parameters this is the same algorithm as ``torch.optim.Muon`` (tests compare them):
https://github.com/KellerJordan/Muon/blob/master/muon.py
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalise(G: Tensor, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Quintic Newton–Schulz iteration towards ``U Vᵀ`` of ``G = U S Vᵀ`` (in bfloat16)."""
    a, b, c = NS_COEFFICIENTS
    X = G.bfloat16()
    transposed = G.size(0) > G.size(1)
    if transposed:
        X = X.T
    X = X / X.norm().clamp(min=eps)
    for _ in range(steps):
        A = X @ X.T
        B = torch.addmm(A, A, A, beta=b, alpha=c)
        X = torch.addmm(X, B, X, beta=a)
    return (X.T if transposed else X).to(G.dtype)


def matrix_view(p: Tensor) -> Tensor:
    """The matrix a parameter applies: 2-D as is; ``[H, D, E] -> [D, H·E]``; ``[H, E, D] -> [H·E, D]``."""
    if p.ndim == 2:
        return p
    H, rows, cols = p.shape
    if rows > cols:  # W_Q/W_K/W_V: [H, D, E], maps D to each head's E
        return p.permute(1, 0, 2).reshape(rows, H * cols)
    return p.reshape(H * rows, cols)  # W_O: [H, E, D]


def from_matrix_view(matrix: Tensor, shape: torch.Size) -> Tensor:
    """Inverse of :func:`matrix_view`."""
    if len(shape) == 2:
        return matrix
    H, rows, cols = shape
    if rows > cols:
        return matrix.reshape(rows, H, cols).permute(1, 0, 2)
    return matrix.reshape(shape)


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = p.grad.lerp(buf, group["momentum"])  # Nesterov
                matrix = matrix_view(update)
                ortho = orthogonalise(matrix)
                rows, cols = matrix.shape
                lr = group["lr"] * math.sqrt(max(1.0, rows / cols))  # torch's "original" scaling
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(from_matrix_view(ortho, p.shape), alpha=-lr)
