"""JumpReLU and its step function with straight-through pseudo-derivatives for the threshold
(Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse
Autoencoders", §4, rectangle kernel).

``JumpReLU_θ(h) = h·H(h − θ)`` and ``H(h − θ)`` are piecewise constant in θ, so their true gradient
with respect to θ is zero almost everywhere. The paper replaces the Dirac delta in the derivative by
a kernel of bandwidth ε: ``∂/∂θ JumpReLU = −(θ/ε)·K((h − θ)/ε)`` and ``∂/∂θ H = −(1/ε)·K((h − θ)/ε)``
with ``K(u) = 1[|u| < ½]``. Gradients with respect to h are the ordinary ones (the step passes none).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: kernel bandwidth, in the units of the training activations (scaled so E‖x‖² ≈ d_in, i.e. about
#: √d_in times the paper's normalisation, which used ε = 0.001)
BANDWIDTH = 0.05


def _kernel(h: Tensor, threshold: Tensor) -> Tensor:
    return ((h - threshold).abs() < BANDWIDTH / 2).to(h.dtype) / BANDWIDTH


def _sum_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Undo broadcasting: sum ``grad`` down to ``shape``."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    dims = [i for i, (g, s) in enumerate(zip(grad.shape, shape, strict=True)) if s == 1 and g != 1]
    return grad.sum(dims, keepdim=True) if dims else grad


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, threshold: Tensor) -> Tensor:
        ctx.save_for_backward(h, threshold)
        return h * (h > threshold)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        h, threshold = ctx.saved_tensors
        grad_threshold = -(threshold * _kernel(h, threshold)) * grad
        return grad * (h > threshold), _sum_to(grad_threshold, threshold.shape)


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, threshold: Tensor) -> Tensor:
        ctx.save_for_backward(h, threshold)
        return (h > threshold).to(h.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:
        h, threshold = ctx.saved_tensors
        return None, _sum_to(-_kernel(h, threshold) * grad, threshold.shape)


def jumprelu(h: Tensor, threshold: Tensor) -> Tensor:
    """``h·[h > threshold]`` (threshold broadcast against h)."""
    return _JumpReLU.apply(h, threshold)


def step(h: Tensor, threshold: Tensor) -> Tensor:
    """``[h > threshold]`` as floats; summed over features it is the L0 the JumpReLU loss penalises."""
    return _Step.apply(h, threshold)
