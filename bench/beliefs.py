"""Belief-edit success rate (issue 15 target: ≥ 80% of positions at the best layer).

    python bench/beliefs.py [--games 500] [--positions 2] [--margins 4,16,32,64] [--seed 0] [--along probe|feature]

The shipped model and probes. At random positions of held-out games, one disc whose colour flip
changes the legal moves is flipped in the mine/theirs probe's reading at every probe site, with
each margin (the logit lead the new class gets). An edit succeeds when the model's legal-move set
(p > 0.01) is closer to the edited board's legal moves than to the real board's. Also printed: how
often the probe then reads the new class, the push's norm relative to the residual's, the clean
model's rate (no edit) and a control: a random push of the same norm. ``--along feature`` pushes
along the decoder row of the residual feature (``weights/residual``) best aligned with the probe's
class difference instead, and counts the edits no multiple of that row makes (a failure).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from othello_tui.circuits.belief_eval import edit_success
from othello_tui.dictionary.io import load_residual
from othello_tui.model.evaluate import EVAL_SEED
from othello_tui.model.weights import load_model
from othello_tui.probes.families import site_short
from othello_tui.probes.io import load_probes

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
BELIEF_SEED = EVAL_SEED + 15  # held-out games, apart from every other evaluation's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=500)
    parser.add_argument("--positions", type=int, default=2, help="edited positions per game")
    parser.add_argument("--margins", default="4,16,32,64")
    parser.add_argument("--seed", type=int, default=BELIEF_SEED)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--along", choices=("probe", "feature"), default="probe")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(WEIGHTS)
    probes, _ = load_probes(WEIGHTS, model)
    margins = [float(m) for m in args.margins.split(",")]
    sites = list(range(1, len(probes.sites)))  # the embeddings cannot carry an edit upwards alone
    start = time.perf_counter()
    residual = load_residual(WEIGHTS, model) if args.along == "feature" else None
    result = edit_success(model, probes, args.games, args.positions, sites, margins, args.seed, residual)
    seconds = time.perf_counter() - start
    print(f"{result.positions} edited positions ({args.games} games, seed {args.seed}), {seconds:.0f} s")
    print(
        f"no edit: {result.unedited / result.positions:.1%} already follow the edited board; along {args.along}"
    )
    print(
        f"{'site':<6} {'margin':>6} {'success':>8} {'probe flipped':>14} {'|push|/|r|':>11} {'random push':>12}"
        f" {'no push':>8}"
    )
    for site in sites:
        for margin in margins:
            print(
                f"{site_short(site):<6} {margin:>6g} {result.rate(site, margin):>8.1%} "
                f"{result.mean(result.flipped, site, margin):>14.1%} {result.mean(result.push_norm, site, margin):>11.2f} "
                f"{result.mean(result.controls, site, margin):>12.1%} {result.mean(result.infeasible, site, margin):>8.1%}"
            )
    site, margin, rate = result.best()
    print(f"best: {site_short(site)} margin {margin:g}: {rate:.1%} (target ≥ 80%)")


if __name__ == "__main__":
    main()
