"""The believed board: what the mine/theirs probe reads from the residual stream, per position
and probe site (Li et al. 2023's picture of Othello-GPT's world model).

Shape legend: T position, S probe site, D d_model, Q squares (64), C classes (mine, theirs, empty).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from othello_tui.model.transformer import OthelloGPT
from othello_tui.probes.linear import LinearProbes

FAMILY = "mine_theirs"


@torch.no_grad()
def belief_probs(probes: LinearProbes, residuals: Mapping[str, Tensor]) -> Tensor:
    """[T, S, Q, C]: the probe's class probabilities from the residual stream ``[T, D]`` at each
    of its sites (``residuals`` maps hook names to values, e.g. a ``run_with_cache`` cache)."""
    x_TSD = torch.stack([residuals[site] for site in probes.sites], dim=1)
    return probes.family_logits(FAMILY, x_TSD).softmax(-1)


@torch.no_grad()
def read_beliefs(model: OthelloGPT, probes: LinearProbes, tokens_T: Tensor) -> Tensor:
    """[T, S, Q, C]: :func:`belief_probs` over one game's forward pass."""
    _, cache = model.run_with_cache(tokens_T.to(model.device)[None], probes.sites)
    return belief_probs(probes, {site: value[0] for site, value in cache.items()})
