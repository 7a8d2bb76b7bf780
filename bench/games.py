"""Labelled games per second: the vectorised bitboard generator vs the plain single-game rules,
and the corpus export (`othello-tui games`) vs a peer engine's bare random playouts.

    python bench/games.py [--games 40960] [--plain-games 300] [--export-games 50000]
                          [--peer-games 20000] [--repeats 5]

"Labelled" means everything the generator hands to training: moves, players, and per move the
board, flipped squares and legal next moves (as bitboards), plus, separately, the unpacked
training targets (tokens and the legal-token mask). The generator runs on one thread.

The export writes the whole HDF5 corpus (every label, compressed) to a temporary folder. The peer
is rust-reversi (a Rust engine with Python bindings; `pip install othello-tui[bench]`) driven by
a Python loop that plays random games and keeps nothing: once drawing each move in Python from
the legal moves (as the export draws with numpy), once with the engine's own random move. Prints
medians.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from othello_tui.game.corpus import write_corpus
from othello_tui.game.generator import CHUNK, random_games
from othello_tui.game.rules import Game

try:
    import rust_reversi
except ImportError:  # a bench-only dependency: the export is then measured without its peer
    rust_reversi = None


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


def export_corpus(n: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        write_corpus(Path(folder) / "games.h5", n, seed, show_progress=False)


def peer_games(n: int, seed: int, engine_draw: bool) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        board = rust_reversi.Board()
        while not board.is_game_over():
            if board.is_pass():
                board.do_pass()
            elif engine_draw:
                board.do_move(board.get_random_move())
            else:
                board.do_move(rng.choice(board.get_legal_moves_vec()))


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
    parser.add_argument("--export-games", type=int, default=50_000)
    parser.add_argument("--peer-games", type=int, default=20_000)
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
    export = rate(export_corpus, args.export_games, args.repeats)
    print(f"{f'corpus export, {args.export_games:,} games to HDF5':<44} {export:>10,.0f}")
    if rust_reversi is None:
        print("rust-reversi is not installed (pip install 'othello-tui[bench]'): no peer to compare with")
        return
    for name, engine_draw in (("Python draw", False), ("engine draw", True)):
        peer_rate = rate(
            functools.partial(peer_games, engine_draw=engine_draw), args.peer_games, args.repeats
        )
        print(f"{f'rust-reversi bare playouts, {name}':<44} {peer_rate:>10,.0f}")
        print(f"ratio export / rust-reversi ({name}): {export / peer_rate:.2f}×")


if __name__ == "__main__":
    main()
