"""Probe quality per layer (issue 15, item 5): mine/theirs/empty accuracy of a linear probe on the
raw residual stream, of a linear probe on the LayerNorm-normalised residual ``(r − mean r) / σ(r)``
(σ frozen at its value, so its logit differences stay linear in r for attribution), and of a small
nonlinear probe (one hidden layer of 256 ReLU units on the normalised residual), an upper bound on
what is decodable.

    python bench/probe_quality.py [--games 3000] [--positions 16] [--eval-games 500] [--epochs 4]

The shipped model; fresh training games, held-out evaluation games (the probe evaluation's seed).
Accuracy is the mean over the 64 squares and every position of the evaluation games.

Shape legend: N tokens, S sites, D d_model, Q squares (64), C classes (3), H hidden units.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from othello_tui.game.generator import generate_games
from othello_tui.model.weights import load_model
from othello_tui.probes.data import probe_data
from othello_tui.probes.evaluate import PROBE_EVAL_SEED
from othello_tui.probes.families import probe_sites, site_label

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
HIDDEN = 256


def normalised(x_ND: Tensor) -> Tensor:
    """LayerNorm without its affine part: ``(x − mean x) / sqrt(var x + 1e-5)`` per token."""
    centred_ND = x_ND - x_ND.mean(-1, keepdim=True)
    return centred_ND / (centred_ND.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()


def make_probe(kind: str, d_model: int) -> nn.Module:
    if kind == "nonlinear":
        return nn.Sequential(nn.Linear(d_model, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 64 * 3))
    return nn.Linear(d_model, 64 * 3)


def fit(kind: str, x_ND: Tensor, y_NQ: Tensor, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    probe = make_probe(kind, x_ND.shape[1])
    # raw residuals are standardised per dimension for the optimiser (an affine map: still linear)
    inputs_ND = x_ND if kind != "raw" else (x_ND - x_ND.mean(0)) / x_ND.std(0)
    optimiser = torch.optim.AdamW(probe.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * (len(x_ND) // 1024)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for _ in range(epochs):
        for batch in torch.randperm(len(x_ND)).split(1024):
            logits_NQC = probe(inputs_ND[batch]).view(-1, 64, 3)
            loss = nn.functional.cross_entropy(logits_NQC.flatten(0, 1), y_NQ[batch].flatten())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    probe.input_stats = (x_ND.mean(0), x_ND.std(0)) if kind == "raw" else None
    return probe


@torch.no_grad()
def accuracy(probe: nn.Module, kind: str, x_ND: Tensor, y_NQ: Tensor) -> float:
    inputs_ND = x_ND if kind != "raw" else (x_ND - probe.input_stats[0]) / probe.input_stats[1]
    return float((probe(inputs_ND).view(-1, 64, 3).argmax(-1) == y_NQ).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=3000)
    parser.add_argument("--positions", type=int, default=16, help="training positions per game")
    parser.add_argument("--eval-games", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, _ = load_model(WEIGHTS)
    sites = probe_sites(model.cfg.n_layers)
    x_NSD, labels = probe_data(model, generate_games(args.games, seed=0), sites)
    keep = torch.from_numpy(np.random.default_rng(0).permutation(len(x_NSD))[: args.games * args.positions])
    x_NSD, y_NQ = x_NSD[keep], labels["mine_theirs"][keep]
    eval_x_NSD, eval_labels = probe_data(model, generate_games(args.eval_games, PROBE_EVAL_SEED), sites)
    print(f"{len(x_NSD)} training tokens, {len(eval_x_NSD)} evaluation tokens (seed {PROBE_EVAL_SEED})")
    print(f"{'site':<14} {'linear, raw':>12} {'linear, LN':>11} {'nonlinear':>10}")
    for s, site in enumerate(sites):
        row = []
        for kind in ("raw", "normalised", "nonlinear"):
            train_x, test_x = x_NSD[:, s], eval_x_NSD[:, s]
            if kind != "raw":
                train_x, test_x = normalised(train_x), normalised(test_x)
            probe = fit(kind, train_x, y_NQ, args.epochs, seed=s)
            row.append(accuracy(probe, kind, test_x, eval_labels["mine_theirs"]))
        print(f"{site_label(site):<14} {row[0]:>12.1%} {row[1]:>11.1%} {row[2]:>10.1%}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
