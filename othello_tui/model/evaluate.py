"""Quality metrics of next-move predictions (DESIGN.md §4)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from othello_tui.game.generator import generate_games
from othello_tui.model.targets import model_inputs, soft_target_loss
from othello_tui.model.transformer import OthelloGPT

#: games for evaluation come from seeds at or above this; training seeds stay below it
EVAL_SEED = 1_000_000_000
SET_THRESHOLD = 0.01


@dataclass
class Metrics:
    legal_top1: float  # share of positions whose argmax is a legal move
    legal_set_f1: float  # mean over positions of F1({p > threshold}, legal set)
    legal_set_exact: float  # share of positions where that set equals the legal set
    loss: float  # cross-entropy against uniform-over-legal, nats per position
    loss_floor: float  # its minimum: mean log(number of legal moves)
    legal_top1_by_move: list[float]  # index i: predicting move i+2
    positions: int

    def to_dict(self) -> dict:
        return asdict(self)


def prediction_metrics(logits_BTV: Tensor, legal_BTV: Tensor, threshold: float = SET_THRESHOLD) -> Metrics:
    """Metrics over every position with at least one legal next move."""
    legal_BTV = legal_BTV.bool()
    count_BT = legal_BTV.sum(-1)
    valid_BT = count_BT > 0
    top1_BT = legal_BTV.gather(-1, logits_BTV.argmax(-1, keepdim=True)).squeeze(-1)
    predicted_BTV = torch.softmax(logits_BTV.float(), -1) > threshold
    hits_BT = (predicted_BTV & legal_BTV).sum(-1).float()
    f1_BT = 2 * hits_BT / (predicted_BTV.sum(-1) + count_BT).clamp(min=1)
    exact_BT = (predicted_BTV == legal_BTV).all(-1)
    by_move = (top1_BT & valid_BT).sum(0).float() / valid_BT.sum(0).clamp(min=1)
    return Metrics(
        legal_top1=top1_BT[valid_BT].float().mean().item(),
        legal_set_f1=f1_BT[valid_BT].mean().item(),
        legal_set_exact=exact_BT[valid_BT].float().mean().item(),
        loss=soft_target_loss(logits_BTV.float(), legal_BTV).item(),
        loss_floor=torch.log(count_BT[valid_BT].double()).mean().item(),
        legal_top1_by_move=[round(x, 6) for x in by_move.tolist()],
        positions=int(valid_BT.sum()),
    )


@torch.no_grad()
def evaluate_model(model: OthelloGPT, n_games: int, seed: int = EVAL_SEED, batch: int = 1000) -> Metrics:
    """Metrics on the first ``n_games`` games of ``seed``, in batches (memory stays flat)."""
    games = generate_games(n_games, seed)
    logits, legal = [], []
    for start in range(0, n_games, batch):
        tokens, legal_mask = model_inputs(games[start : start + batch], model.device)
        logits.append(model(tokens).cpu())
        legal.append(legal_mask.cpu())
    return prediction_metrics(torch.cat(logits), torch.cat(legal))


def uniform_baseline_loss() -> float:
    """Loss of predicting all 60 moves uniformly (what an untrained model should beat)."""
    return math.log(60)
