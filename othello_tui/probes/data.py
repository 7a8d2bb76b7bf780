"""Residual-stream activations at the probe sites, with their labels, for a batch of games.

Shape legend: B games, T positions, N tokens (valid positions), S sites, D d_model, Q squares.
"""

from __future__ import annotations

import torch
from torch import Tensor

from othello_tui.game.generator import GameBatch
from othello_tui.model.targets import model_inputs
from othello_tui.model.transformer import OthelloGPT
from othello_tui.probes.families import probe_labels, valid_positions


@torch.no_grad()
def probe_data(model: OthelloGPT, games: GameBatch, sites: list[str]) -> tuple[Tensor, dict[str, Tensor]]:
    """``x`` [N, S, D] at every valid position of ``games`` (position order, game by game) and
    the family labels [N, Q] of the same tokens, on the model's device."""
    tokens_BT, _ = model_inputs(games, model.device)
    _, cache = model.run_with_cache(tokens_BT, names=sites)
    valid_BT = torch.from_numpy(valid_positions(games)).to(model.device)
    x_NSD = torch.stack([cache[site][valid_BT] for site in sites], dim=1)
    labels = {
        name: torch.from_numpy(value).to(model.device)[valid_BT]
        for name, value in probe_labels(games).items()
    }
    return x_NSD, labels
