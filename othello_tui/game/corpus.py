"""The game corpus in HDF5: a public contract (see ``othello-tui games --help``).

The file is written under a temporary name and renamed once complete, so an interrupted run
never leaves a half file behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
from rich.progress import Progress

from othello_tui.game.generator import N_MOVES, iter_games

FORMAT_VERSION = 1
DATASETS = {  # name: (dtype, per-move trailing shape)
    "tokens": (np.uint8, ()),
    "squares": (np.int8, ()),
    "player": (np.int8, ()),
    "board": (np.int8, (64,)),
    "flipped": (bool, (64,)),
    "legal": (bool, (64,)),
}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it to ``path`` only if the block succeeds."""
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_corpus(path: Path, n_games: int, seed: int, show_progress: bool = True) -> None:
    with atomic_path(Path(path)) as tmp, h5py.File(tmp, "w") as f, Progress(disable=not show_progress) as bar:
        f.attrs.update(seed=seed, n_games=n_games, format_version=FORMAT_VERSION)
        datasets = {
            name: f.create_dataset(
                name,
                (n_games, N_MOVES, *shape),
                dtype=dtype,
                chunks=(min(n_games, 1024), N_MOVES, *shape),
                compression="gzip",
                compression_opts=1,
            )
            for name, (dtype, shape) in DATASETS.items()
        }
        task = bar.add_task("games", total=n_games)
        start = 0
        for games in iter_games(n_games, seed):
            rows = slice(start, start + len(games))
            datasets["tokens"][rows] = games.tokens
            datasets["squares"][rows] = games.squares
            datasets["player"][rows] = games.player
            datasets["board"][rows] = games.board()
            datasets["flipped"][rows] = games.flipped_mask()
            datasets["legal"][rows] = games.legal_mask()
            start += len(games)
            bar.update(task, completed=start)


def read_corpus(path: Path) -> dict[str, np.ndarray]:
    """Every dataset as an array, plus ``attrs``."""
    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in DATASETS}
        data["attrs"] = dict(f.attrs)
    return data
