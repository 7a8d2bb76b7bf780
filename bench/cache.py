"""Feature-cache build throughput and the open + fetch latency, with the real configuration.

    python bench/cache.py [--games 2000] [--threads 2] [--fetches 100] [--weights DIR]

The shipped model and dictionaries (``weights/``, ``weights/dictionaries``); where the
dictionaries are missing, 12 random TopK dictionaries (1024 features, k 80). One process times, over the same games:
the model's forward passes alone, forward + dictionary encoding, and the whole ``build_cache``,
so the statistics' own share is the difference; then extrapolates linearly to 20,000 games (the
issue's target: ≤ 60 s on 2 CPU cores) and reports the file size. Latency: ``open_cache`` plus
``feature()`` of a random feature, p50 / p95 over ``--fetches`` tries, and ``feature()`` alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from shipped import model_and_dictionaries

from othello_tui.dictionary.sae import Dictionary, hook_name_of, module_names
from othello_tui.features import build_cache, open_cache
from othello_tui.features.format import BuildSettings
from othello_tui.game.generator import generate_games
from othello_tui.model.transformer import OthelloGPT

TARGET_GAMES = 20_000


@torch.inference_mode()
def model_pass(model: OthelloGPT, dictionaries: dict[str, Dictionary] | None, n_games: int) -> None:
    """The forward passes (and encodings) a build makes, without the statistics."""
    games = generate_games(n_games, 0)
    hooks = [hook_name_of(m) for m in module_names(model.cfg.n_layers)]
    for first in range(0, n_games, BuildSettings.batch_games):
        tokens = games.tokens[first : first + BuildSettings.batch_games, :59]
        valid = torch.from_numpy(tokens != 0)
        _, cache = model.run_with_cache(torch.from_numpy(tokens.astype(np.int64)), names=hooks)
        for dictionary in (dictionaries or {}).values():
            dictionary.encode_entries(cache[dictionary.cfg.hook_name][valid])


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a busy machine the CPU time is the
    better guide to what an idle one would take."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def percentiles(samples: list[float]) -> str:
    ms = sorted(1e3 * s for s in samples)
    return f"p50 {statistics.median(ms):.1f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--games", type=int, default=2000)
    parser.add_argument("--top-k", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fetches", type=int, default=100)
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, dictionaries, source = model_and_dictionaries(args.weights)
    n_tokens = (generate_games(args.games, 0).tokens[:, :59] != 0).sum()
    print(f"{args.games:,} games ({n_tokens:,} tokens), {source}, {args.threads} threads")

    forward = timed(model_pass, model, None, args.games)
    encode = timed(model_pass, model, dictionaries, args.games)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.h5"
        marks = [("start", time.process_time())]  # (phase, CPU seconds) after every batch

        def mark(phase: str, done: int, total: int) -> None:
            marks.append((phase, time.process_time()))

        build = timed(build_cache, model, dictionaries, args.games, 0, args.top_k, path, mark)
        scale = TARGET_GAMES / args.games
        print(f"{'stage':<34} {'wall s':>7} {'CPU s':>7} {'tokens/CPU s':>13} {'CPU s → 20k games':>18}")
        for name, (wall, cpu) in (
            ("model forward", forward),
            ("forward + 12 dictionary encodes", encode),
            ("whole build_cache", build),
            ("  of which statistics and writing", (build[0] - encode[0], build[1] - encode[1])),
        ):
            print(f"{name:<34} {wall:>7.1f} {cpu:>7.1f} {n_tokens / cpu:>13,.0f} {cpu * scale:>18,.0f}")
        print(
            f"file {path.stat().st_size / 1e6:.1f} MB (the games grow with --games; per-feature data does not)"
        )

        # The first batch warms the top-k lists up (every firing enters); the example panels and
        # the writing cost about the same for any number of games.
        games = [cpu for phase, cpu in marks if phase == "games"]
        first, later = games[0] - marks[0][1], (games[-1] - games[0]) / max(len(games) - 1, 1)
        panels = [cpu for phase, cpu in marks if phase == "panels"][-1] - games[-1]
        writing = marks[0][1] + build[1] - marks[-1][1]
        batches = -(-TARGET_GAMES // BuildSettings.batch_games)
        estimate = first + later * (batches - 1) + panels + writing
        print(
            f"build phases, CPU s: first batch {first:.1f}, later batches {later:.2f} each, "
            f"example panels {panels:.1f}, writing {writing:.1f} -> {TARGET_GAMES:,} games ≈ {estimate:,.0f} CPU s"
        )

        rng = np.random.default_rng(0)
        ids = [
            f"{m}{f}"
            for m, f in zip(
                rng.choice(module_names(6), args.fetches), rng.integers(0, 1024, args.fetches), strict=True
            )
        ]
        cache = open_cache(path)
        opened, fetched = [], []
        for feature_id in ids:
            start = time.perf_counter()
            open_cache(path).feature(feature_id)
            opened.append(time.perf_counter() - start)
            start = time.perf_counter()
            cache.feature(feature_id)
            fetched.append(time.perf_counter() - start)
        print(
            f"open_cache + feature(): {percentiles(opened)}; feature() on an open cache: {percentiles(fetched)}"
        )


if __name__ == "__main__":
    main()
