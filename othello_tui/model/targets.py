"""From generated games to model inputs and next-move targets."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from othello_tui.game.generator import GameBatch
from othello_tui.game.squares import TOKEN_TO_SQUARE


def model_inputs(games: GameBatch, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """``tokens`` long [B, 59] (moves 1…59) and ``legal`` bool [B, 59, 61]: at position i, the
    tokens legal as move i+2. The last move predicts nothing, so it is not fed to the model."""
    tokens = torch.from_numpy(games.tokens[:, :-1].astype(np.int64))
    legal_squares = games.legal_mask()[:, :-1]  # [B, 59, 64]
    legal = np.zeros((*legal_squares.shape[:2], 61), bool)
    legal[..., 1:] = legal_squares[..., TOKEN_TO_SQUARE[1:]]
    return tokens.to(device), torch.from_numpy(legal).to(device)


def soft_target_loss(logits_BTV: Tensor, legal_BTV: Tensor) -> Tensor:
    """Cross-entropy against the uniform distribution over the legal next moves, averaged over
    positions that have any (DESIGN.md §4: the expected loss of sampled next-move prediction)."""
    count_BT = legal_BTV.sum(-1)
    valid_BT = count_BT > 0
    logp_BTV = torch.log_softmax(logits_BTV, dim=-1)
    per_position = -(logp_BTV * legal_BTV).sum(-1) / count_BT.clamp(min=1)
    return per_position[valid_BT].mean()
