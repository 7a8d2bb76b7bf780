"""How long `othello-tui train probes` takes: model forward passes vs probe fitting.

    python bench/probes.py [--games 1000] [--positions 16] [--weights DIR] [--threads 2]

Without --weights it times a randomly initialised model of the shipped size (6 layers, d_model
128): the compute does not depend on the weight values. Prints wall-clock and process CPU seconds
(on a shared machine the CPU seconds are the comparable figure) and projects the default run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from othello_tui.game.generator import random_games
from othello_tui.model.config import ModelConfig
from othello_tui.model.transformer import OthelloGPT
from othello_tui.model.weights import load_model
from othello_tui.probes.data import probe_data
from othello_tui.probes.families import probe_sites
from othello_tui.probes.train import ProbeTrainConfig, train_probes


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--games", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=16)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.weights is None:
        model = OthelloGPT(ModelConfig())
        model.reset_parameters(seed=0)
    else:
        model, _ = load_model(args.weights)
    model.eval()
    defaults = ProbeTrainConfig()
    games = random_games(defaults.games_per_forward, np.random.default_rng(0))
    sites = probe_sites(model.cfg.n_layers)
    wall, cpu, _ = timed(lambda: probe_data(model, games, sites))
    print(f"forward + labels: {len(games) / wall:,.0f} games/s wall, {len(games) / cpu:,.0f} games/s CPU")
    cfg = ProbeTrainConfig(games=args.games, positions_per_game=args.positions, threads=args.threads)
    wall, cpu, (_, info) = timed(lambda: train_probes(model, cfg, show_progress=False))
    print(
        f"train probes: {info['games']:,} games, {info['tokens']:,} tokens, {info['steps']:,} steps "
        f"in {wall:.1f} s wall / {cpu:.1f} s CPU ({args.threads} threads)"
    )
    scale = defaults.games / info["games"] * (defaults.positions_per_game / args.positions)
    print(
        f"projected default run ({defaults.games:,} games, {defaults.positions_per_game} positions): "
        f"≤ {wall * defaults.games / info['games'] / 60:.1f} min wall "
        f"(fitting share scales by {scale:.1f}×, forward share by {defaults.games / info['games']:.1f}×)"
    )


if __name__ == "__main__":
    main()
