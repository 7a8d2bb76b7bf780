"""Labelled games per second: the vectorised bitboard generator vs the plain single-game rules.

    python bench/games.py [--games 40960] [--plain-games 300] [--repeats 5]

"Labelled" means everything the generator hands to training: moves, players, and per move the
board, flipped squares and legal next moves (as bitboards), plus, separately, the unpacked
training targets (tokens and the legal-token mask). Runs on one thread; prints medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from othello_tui.game.generator import CHUNK, random_games
from othello_tui.game.rules import Game


def plain_games(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        game = Game()
        while not game.over:
            game.play(game.legal[rng.integers(len(game.legal))])


def vectorised_games(n: int, seed: int, with_targets: bool) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(0, n, CHUNK):
        games = random_games(CHUNK, rng)
        if with_targets:
            games.tokens, games.legal_mask()


def rate(fn, n: int, repeats: int) -> float:
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        fn(n, seed)
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--games", type=int, default=10 * CHUNK)
    parser.add_argument("--plain-games", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    vectorised = rate(lambda n, s: vectorised_games(n, s, False), args.games, args.repeats)
    with_targets = rate(lambda n, s: vectorised_games(n, s, True), args.games, args.repeats)
    plain = rate(plain_games, args.plain_games, args.repeats)
    print(f"{'implementation':<44} {'games/s':>10}")
    print(f"{'vectorised bitboards (labels as bitboards)':<44} {vectorised:>10,.0f}")
    print(f"{'vectorised + unpacked training targets':<44} {with_targets:>10,.0f}")
    print(f"{'plain single-game rules':<44} {plain:>10,.0f}")
    print(f"ratio vectorised / plain: {vectorised / plain:.0f}×")


if __name__ == "__main__":
    main()
